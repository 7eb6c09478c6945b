//! Puts a daemon's program file in the same page-cache state before each benchmark run: out
//! of the cache, so the run maps its code from disk. How a binary entered the cache changes
//! how much of it a process maps (a file the linker or `cp` has just written sits in large
//! folios, and fault-around then maps up to 0.8 MiB more of the agent's code than after a read
//! from disk), so without this the resident memory of two runs of the same binary differs by
//! where the file came from, not by what the daemon does.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

/// Writes back and drops the cached pages of the file at `path` (pages mapped by a running
/// process stay: evict before the daemon starts).
pub fn evict(path: &Path) -> std::io::Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    posix_fadvise(file.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .map_err(std::io::Error::from)
}

/// How many bytes of the file at `path` the page cache holds (util-linux's `fincore`).
pub fn cached_bytes(path: &Path) -> std::io::Result<u64> {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "fincore {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    text.trim().parse().map_err(|_| {
        std::io::Error::other(format!(
            "fincore {}: unexpected output {text:?}",
            path.display()
        ))
    })
}

/// The file `program` names: itself if it has a slash, otherwise its first match on `PATH`.
pub fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_with_a_slash_is_its_own_path_and_a_bare_name_is_found_on_path() {
        assert_eq!(resolve("/x/y"), Some(PathBuf::from("/x/y")));
        let sh = resolve("sh").expect("sh is on PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(resolve("no-such-program-kube-vrrp"), None);
    }

    #[test]
    fn an_evicted_file_leaves_the_cache_with_its_contents_kept() {
        // Under target/, on the disk: a tmpfs (which /tmp may be) has no cache to leave.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(format!("page-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("program");
        let contents = vec![7u8; 1 << 20];
        std::fs::write(&path, &contents).unwrap();
        assert!(
            cached_bytes(&path).unwrap() > 0,
            "a file just written is cached"
        );
        evict(&path).unwrap();
        assert_eq!(cached_bytes(&path).unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), contents);
        assert!(
            cached_bytes(&path).unwrap() > 0,
            "reading it brings it back"
        );
        assert!(evict(&dir.join("missing")).is_err());
        assert!(cached_bytes(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
