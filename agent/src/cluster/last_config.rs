//! The last configuration the agent applied in cluster mode, kept on the node's disk
//! (`<state-dir>/last-config-<node>.json`, the chart mounts `/var/lib/kube-vrrp` from the host;
//! the node's name in the file name lets agents of several nodes share a directory) so
//! that an agent restarted while the API server is down runs it, and reconciles when the API
//! returns.
//!
//! What is kept: the `VrrpNode` generation and every instance the agent accepted from it, as
//! the operator wrote them (`VrrpInstance`, so they are validated and resolved again on load,
//! by the same code), plus the v2 passwords those instances read from Secrets. Rejected
//! instances are not kept: they did not run.
//!
//! Why the passwords are on disk: VRRPv2 simple-text authentication sends the password in clear
//! in every advert on the segment, so it protects nothing from anyone who can read the
//! segment; keepalived keeps it in clear in keepalived.conf. Keeping it in a root-only file
//! (mode 0600) on the node costs nothing the network does not already give away, while
//! leaving it out would stop a restarted agent from running its v2 instances exactly when
//! the API server cannot be asked.
//!
//! The file is JSON with a format name and a version. Writes are atomic: a temporary file in
//! the same directory (mode 0600), fsynced, renamed over the old one, then the directory
//! fsynced. A file that does not parse, has another format or a version this agent does not
//! know, or was written for another node, is an error the caller logs and ignores; it is never
//! a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use kube_vrrp_crds::{SecretKeyRef, VrrpInstance, VrrpNodeSpec};
use serde::{Deserialize, Serialize};

use crate::source::resolve::Accepted;

/// The `format` field of the file.
pub const FORMAT: &str = "kube-vrrp-agent/last-config";
/// The version of the format this agent writes and reads.
pub const VERSION: u32 = 1;
/// The file's name in the state directory, for `node`.
pub fn file_name(node: &str) -> String {
    format!("last-config-{node}.json")
}

/// Why the last configuration could not be kept or read back.
#[derive(Debug, thiserror::Error)]
pub enum LastConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a kube-vrrp last-config file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: format {found:?} is not {FORMAT:?}", path.display())]
    Format { path: PathBuf, found: String },
    #[error("{}: format version {found} is not {VERSION}, the one this agent reads", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("{}: written for node {found:?}, not {node:?}", path.display())]
    OtherNode {
        path: PathBuf,
        node: String,
        found: String,
    },
    #[error("encoding the last configuration: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A v2 password read from a Secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPassword {
    pub namespace: String,
    pub name: String,
    pub key: String,
    /// The bytes under the key, base64 in the file (as in a Secret).
    pub value: ByteString,
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastConfig {
    format: String,
    version: u32,
    /// The node the configuration is for.
    pub node: String,
    /// The `VrrpNode` generation it came from; `None` when the node had no `VrrpNode`.
    pub generation: Option<i64>,
    /// The accepted instances, as the operator wrote them.
    pub instances: Vec<VrrpInstance>,
    /// The v2 passwords they read.
    pub passwords: Vec<StoredPassword>,
}

/// Only the fields that say what the file is, read before the rest.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

impl LastConfig {
    /// What the agent runs now: `accepted` from the `VrrpNode` of `node` at `generation`.
    pub fn new(node: &str, generation: Option<i64>, accepted: &[Accepted]) -> Self {
        let mut passwords: Vec<StoredPassword> = accepted
            .iter()
            .filter_map(|a| {
                let key = &a.source.authentication.as_ref()?.password_secret_ref;
                Some(StoredPassword {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    key: key.key.clone(),
                    value: ByteString(a.password.clone()?),
                })
            })
            .collect();
        passwords
            .sort_by(|a, b| (&a.namespace, &a.name, &a.key).cmp(&(&b.namespace, &b.name, &b.key)));
        passwords
            .dedup_by(|a, b| (&a.namespace, &a.name, &a.key) == (&b.namespace, &b.name, &b.key));
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            node: node.to_owned(),
            generation,
            instances: accepted.iter().map(|a| a.source.clone()).collect(),
            passwords,
        }
    }

    /// The instances as a `VrrpNodeSpec`, to resolve like one from the API.
    pub fn spec(&self) -> VrrpNodeSpec {
        VrrpNodeSpec {
            instances: self.instances.clone(),
            virtual_servers: Vec::new(),
        }
    }

    /// The stored password of a Secret key, or why there is none.
    pub fn password(&self, key: &SecretKeyRef) -> Result<Vec<u8>, String> {
        self.passwords
            .iter()
            .find(|p| p.namespace == key.namespace && p.name == key.name && p.key == key.key)
            .map(|p| p.value.0.clone())
            .ok_or_else(|| {
                format!(
                    "the last configuration on disk holds no password for Secret {}/{} key {:?}",
                    key.namespace, key.name, key.key
                )
            })
    }
}

/// The path of `node`'s file in `dir`.
pub fn path_in(dir: &Path, node: &str) -> PathBuf {
    dir.join(file_name(node))
}

/// Writes `config` to `dir` atomically (see the module). Blocking: call it off the runtime.
pub fn store(dir: &Path, config: &LastConfig) -> Result<(), LastConfigError> {
    let path = path_in(dir, &config.node);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LastConfigError::Io { path, source }
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let text = serde_json::to_vec_pretty(config).map_err(LastConfigError::Encode)?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        file_name(&config.node),
        std::process::id()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(LastConfigError::Io {
            path: temporary,
            source,
        });
    }
    if let Err(source) = fs::rename(&temporary, &path) {
        let _ = fs::remove_file(&temporary);
        return Err(LastConfigError::Io { path, source });
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads the configuration kept in `dir` for `node`; `Ok(None)` when there is none yet.
/// Blocking: call it off the runtime.
pub fn load(dir: &Path, node: &str) -> Result<Option<LastConfig>, LastConfigError> {
    let path = path_in(dir, node);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LastConfigError::Io { path, source }),
    };
    let header: Header =
        serde_json::from_slice(&text).map_err(|source| LastConfigError::Parse {
            path: path.clone(),
            source,
        })?;
    if header.format != FORMAT {
        return Err(LastConfigError::Format {
            path,
            found: header.format,
        });
    }
    if header.version != VERSION {
        return Err(LastConfigError::Version {
            path,
            found: header.version,
        });
    }
    let config: LastConfig =
        serde_json::from_slice(&text).map_err(|source| LastConfigError::Parse {
            path: path.clone(),
            source,
        })?;
    if config.node != node {
        return Err(LastConfigError::OtherNode {
            path,
            node: node.to_owned(),
            found: config.node,
        });
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kv-last-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn config(node: &str) -> LastConfig {
        LastConfig {
            format: FORMAT.to_owned(),
            version: VERSION,
            node: node.to_owned(),
            generation: Some(3),
            instances: Vec::new(),
            passwords: vec![StoredPassword {
                namespace: "kube-vrrp".into(),
                name: "vrrp-auth".into(),
                key: "password".into(),
                value: ByteString(b"s3cret".to_vec()),
            }],
        }
    }

    #[test]
    fn a_stored_configuration_reads_back_equal() {
        let dir = dir("roundtrip");
        store(&dir, &config("n1")).unwrap();
        assert_eq!(load(&dir, "n1").unwrap(), Some(config("n1")));
        let text = fs::read_to_string(path_in(&dir, "n1")).unwrap();
        assert!(
            text.contains("\"format\": \"kube-vrrp-agent/last-config\""),
            "{text}"
        );
        assert!(
            text.contains("\"value\": \"czNjcmV0\""),
            "base64 like a Secret: {text}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_file_yet_is_nothing_not_an_error() {
        let dir = dir("absent");
        assert_eq!(load(&dir, "n1").unwrap(), None);
    }

    #[test]
    fn a_file_for_another_node_format_or_version_is_refused_with_what_it_is() {
        let dir = dir("refused");
        store(&dir, &config("n2")).unwrap();
        assert_eq!(
            load(&dir, "n1").unwrap(),
            None,
            "each node has its own file"
        );
        fs::rename(path_in(&dir, "n2"), path_in(&dir, "n1")).unwrap();
        let error = load(&dir, "n1").unwrap_err().to_string();
        assert!(
            error.ends_with("written for node \"n2\", not \"n1\""),
            "{error}"
        );
        let mut newer = config("n1");
        newer.version = VERSION + 1;
        store(&dir, &newer).unwrap();
        let error = load(&dir, "n1").unwrap_err().to_string();
        assert!(error.contains("format version 2 is not 1"), "{error}");
        fs::write(
            path_in(&dir, "n1"),
            br#"{"format": "something-else", "version": 1}"#,
        )
        .unwrap();
        assert!(matches!(
            load(&dir, "n1"),
            Err(LastConfigError::Format { .. })
        ));
        fs::write(path_in(&dir, "n1"), b"{ not json").unwrap();
        assert!(matches!(
            load(&dir, "n1"),
            Err(LastConfigError::Parse { .. })
        ));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_password_of_a_secret_key_is_found_or_its_absence_explained() {
        let kept = config("n1");
        let key = SecretKeyRef {
            namespace: "kube-vrrp".into(),
            name: "vrrp-auth".into(),
            key: "password".into(),
        };
        assert_eq!(kept.password(&key).unwrap(), b"s3cret");
        let other = SecretKeyRef {
            key: "other".into(),
            ..key
        };
        assert!(
            kept.password(&other)
                .unwrap_err()
                .contains("holds no password")
        );
    }
}
