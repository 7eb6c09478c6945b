//! The importer's only I/O: reading configuration files and listing directories for `include`
//! globs. [`Sources`] keeps the preprocessor pure (tests give it files from memory);
//! [`FileSystem`] is the real one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file; `executable` when any execute bit is set (keepalived skips those).
    File { executable: bool },
    /// A directory.
    Directory,
    /// Anything else (device, socket, ...).
    Other,
}

/// Where configuration text comes from.
pub trait Sources {
    /// The bytes of `path`, or `Ok(None)` when it holds more than `limit` bytes (only
    /// `limit + 1` bytes are ever read).
    fn read(&mut self, path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>>;
    /// The entry names of directory `dir` (without `.` and `..`), in any order.
    fn list(&mut self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// What `path` names, following symbolic links; `None` when nothing.
    fn kind(&mut self, path: &Path) -> Option<Kind>;
    /// The same path for the same file however it is named (for include loops).
    fn identity(&mut self, path: &Path) -> PathBuf;
}

/// The machine's files; relative paths are taken from `root`.
#[derive(Clone, Debug)]
pub struct FileSystem {
    root: PathBuf,
}

impl FileSystem {
    /// Relative paths are resolved against `root` (the working directory for the command line).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn full(&self, path: &Path) -> PathBuf {
        self.root.join(path)
    }
}

impl Sources for FileSystem {
    fn read(&mut self, path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        let file = std::fs::File::open(self.full(path))?;
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            Ok(None)
        } else {
            Ok(Some(bytes))
        }
    }

    fn list(&mut self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.full(dir))? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn kind(&mut self, path: &Path) -> Option<Kind> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(self.full(path)).ok()?;
        Some(if meta.is_file() {
            Kind::File {
                executable: meta.permissions().mode() & 0o111 != 0,
            }
        } else if meta.is_dir() {
            Kind::Directory
        } else {
            Kind::Other
        })
    }

    fn identity(&mut self, path: &Path) -> PathBuf {
        let full = self.full(path);
        std::fs::canonicalize(&full).unwrap_or_else(|_| normalize(&full))
    }
}

/// Files held in memory, keyed by normalised path: for tests of everything above the disk.
#[derive(Clone, Debug, Default)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    #[must_use]
    pub fn with(mut self, path: &str, text: impl Into<Vec<u8>>) -> Self {
        self.files.insert(normalize(Path::new(path)), text.into());
        self
    }
}

impl Sources for MemoryFiles {
    fn read(&mut self, path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        let bytes = self
            .files
            .get(&normalize(path))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
        Ok((bytes.len() as u64 <= limit).then(|| bytes.clone()))
    }

    fn list(&mut self, dir: &Path) -> std::io::Result<Vec<String>> {
        let dir = normalize(dir);
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&dir).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        names.dedup();
        if names.is_empty() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        Ok(names)
    }

    fn kind(&mut self, path: &Path) -> Option<Kind> {
        let path = normalize(path);
        if self.files.contains_key(&path) {
            Some(Kind::File { executable: false })
        } else if self.files.keys().any(|p| p.starts_with(&path)) {
            Some(Kind::Directory)
        } else {
            None
        }
    }

    fn identity(&mut self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// `path` with `.` removed and `..` applied to what precedes it, without touching the disk.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_removes_dots_without_the_disk() {
        assert_eq!(normalize(Path::new("a/./b/../c")), Path::new("a/c"));
        assert_eq!(normalize(Path::new("/etc/k/../x")), Path::new("/etc/x"));
        assert_eq!(normalize(Path::new("../x")), Path::new("../x"));
    }

    #[test]
    fn memory_files_list_directories_and_refuse_what_is_over_the_limit() {
        let mut files = MemoryFiles::new()
            .with("conf/a.conf", "x")
            .with("conf/d/b.conf", "yy");
        let mut names = files.list(Path::new("conf")).unwrap();
        names.sort();
        assert_eq!(names, ["a.conf", "d"]);
        assert_eq!(files.kind(Path::new("conf/d")), Some(Kind::Directory));
        assert_eq!(files.read(Path::new("conf/d/b.conf"), 1).unwrap(), None);
        assert_eq!(
            files.read(Path::new("./conf/a.conf"), 1).unwrap(),
            Some(b"x".to_vec())
        );
    }

    #[test]
    fn the_file_system_reads_at_most_one_byte_past_the_limit() {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-import-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("big"), vec![b'x'; 100]).unwrap();
        let mut fs = FileSystem::new(&dir);
        let outcome = (
            fs.read(Path::new("big"), 99).unwrap(),
            fs.read(Path::new("big"), 100).unwrap().map(|b| b.len()),
            fs.kind(Path::new("big")),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            outcome,
            (None, Some(100), Some(Kind::File { executable: false }))
        );
    }
}
