//! Real-server verdicts kept on the node across agent restarts (a small JSON file in the
//! agent's state directory, rewritten on every change of a verdict), so that a restarting
//! agent starts each real server as it last knew it: a dead one stays out of the pool and a
//! live one stays in, until its first check. keepalived has no such memory across restarts
//! (it starts every real server alive, or every one dead with `alpha`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The file name in the state directory, before the node name (agents of a lab share one
/// directory, each keeps its own file).
pub const MEMORY_FILE_PREFIX: &str = "real-server-health-";

/// Where the verdicts are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    path: PathBuf,
}

impl Memory {
    /// The memory file of `node` in `state_dir`.
    pub fn in_dir(state_dir: &Path, node: &str) -> Self {
        Self {
            path: state_dir.join(format!("{MEMORY_FILE_PREFIX}{node}.json")),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The verdicts kept, by `virtualServer/address:port`; nothing when there is no file or it
    /// cannot be read (logged: the real servers then start healthy, as keepalived's do).
    pub fn load(&self) -> BTreeMap<String, bool> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %self.path.display(), %error, "real-server verdicts unreadable; every real server starts healthy");
                BTreeMap::new()
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the real-server verdicts; every real server starts healthy");
                BTreeMap::new()
            }
        }
    }

    /// Replaces the file with `verdicts` (written beside it, then renamed over it).
    pub fn save(&self, verdicts: &BTreeMap<String, bool>) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temporary = self.path.with_extension("json.new");
        let bytes = serde_json::to_vec_pretty(verdicts).map_err(io::Error::other)?;
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_survive_a_save_and_load_and_garbage_reads_as_nothing() {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-memory-{}", std::process::id()));
        let memory = Memory::in_dir(&dir, "n1");
        assert!(memory.path().ends_with("real-server-health-n1.json"));
        assert!(memory.load().is_empty(), "no file yet");
        let verdicts = BTreeMap::from([
            ("web/10.0.0.1:80".to_owned(), false),
            ("web/10.0.0.2:80".to_owned(), true),
        ]);
        memory.save(&verdicts).unwrap();
        let loaded = memory.load();
        std::fs::write(memory.path(), b"{not json").unwrap();
        let garbage = memory.load();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded, verdicts);
        assert!(garbage.is_empty());
    }
}
