//! The host directories the agent may reach into (DESIGN §3): the ones scripts run from
//! (`--script-dir`: track scripts and script health checks) and the ones tracked files are
//! read from (`--track-file-dir`). A configuration naming a path elsewhere is refused when it
//! arrives ([`HostDirs::admit`], by the path as written); each script run checks again where
//! the path leads after symbolic links ([`HostDirs::resolve`]), so a link placed in an allowed
//! directory cannot reach a program outside it.

use std::path::{Component, Path, PathBuf};

/// What the directories are for: the words of errors and the flag that sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Programs run from them (`--script-dir`).
    #[default]
    Scripts,
    /// Tracked files are read from them (`--track-file-dir`).
    TrackFiles,
}

impl Purpose {
    fn flag(self) -> &'static str {
        match self {
            Self::Scripts => "--script-dir",
            Self::TrackFiles => "--track-file-dir",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Scripts => "scripts may run from",
            Self::TrackFiles => "tracked files are read from",
        }
    }
}

/// Allowed host directories for one purpose; none allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDirs {
    purpose: Purpose,
    dirs: Vec<PathBuf>,
}

/// Everything the agent may reach on the host besides its network: the script directories,
/// and the tracked-file directories (`None`: any absolute path, as on a host without a
/// container around the agent; the chart mounts one directory and names it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAccess {
    /// Where scripts run from.
    pub scripts: HostDirs,
    /// Where tracked files are read from.
    pub track_files: Option<HostDirs>,
}

impl HostAccess {
    /// Whether `path` of a `track.files` entry may be read.
    pub fn admit_track_file(&self, path: &str) -> Result<(), String> {
        match &self.track_files {
            Some(dirs) => dirs.admit(path),
            None if Path::new(path).is_absolute() => Ok(()),
            None => Err(format!("{path:?} is not an absolute path")),
        }
    }
}

impl HostDirs {
    /// Directories scripts may run from (absolute paths).
    pub fn scripts(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            purpose: Purpose::Scripts,
            dirs: dirs.into_iter().collect(),
        }
    }

    /// Directories tracked files may be read from (absolute paths).
    pub fn track_files(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            purpose: Purpose::TrackFiles,
            dirs: dirs.into_iter().collect(),
        }
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn listed(&self) -> String {
        if self.dirs.is_empty() {
            format!("none: give the agent {}", self.purpose.flag())
        } else {
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Whether `program` (a path as written in a configuration) lies in an allowed directory:
    /// an absolute path without `..`, under one of them. The error says why not.
    pub fn admit(&self, program: &str) -> Result<(), String> {
        let path = Path::new(program);
        if !path.is_absolute() {
            return Err(format!(
                "{program:?} is not an absolute path; {} only the allowed directories ({})",
                self.purpose.what(),
                self.listed()
            ));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        {
            return Err(format!("{program:?} contains .. components"));
        }
        if self
            .dirs
            .iter()
            .any(|dir| path.starts_with(dir) && path != dir)
        {
            Ok(())
        } else {
            Err(format!(
                "{program} is outside the directories {} ({})",
                self.purpose.what(),
                self.listed()
            ))
        }
    }

    /// Where `program` leads on the host now, if that is still inside an allowed directory
    /// (both resolved through symbolic links).
    pub fn resolve(&self, program: &str) -> Result<PathBuf, String> {
        self.admit(program)?;
        let real = std::fs::canonicalize(program).map_err(|e| format!("{program}: {e}"))?;
        let inside = self.dirs.iter().any(|dir| {
            std::fs::canonicalize(dir).is_ok_and(|dir| real.starts_with(&dir) && real != dir)
        });
        if inside {
            Ok(real)
        } else {
            Err(format!(
                "{program} leads to {}, outside the directories {} ({})",
                real.display(),
                self.purpose.what(),
                self.listed()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> HostDirs {
        HostDirs::scripts([PathBuf::from("/etc/kube-vrrp/scripts")])
    }

    #[test]
    fn a_program_in_an_allowed_directory_or_below_is_admitted() {
        assert_eq!(dirs().admit("/etc/kube-vrrp/scripts/check"), Ok(()));
        assert_eq!(dirs().admit("/etc/kube-vrrp/scripts/web/check"), Ok(()));
    }

    #[test]
    fn relative_dotted_outside_and_prefix_lookalike_paths_are_refused() {
        for program in [
            "check",
            "/etc/kube-vrrp/scripts/../../../bin/sh",
            "/usr/bin/pgrep",
            "/etc/kube-vrrp/scripts-evil/check",
            "/etc/kube-vrrp/scripts",
        ] {
            assert!(dirs().admit(program).is_err(), "{program} was admitted");
        }
    }

    #[test]
    fn without_directories_no_script_is_admitted_and_the_error_says_how_to_allow_one() {
        let error = HostDirs::default().admit("/bin/true").unwrap_err();
        assert!(error.contains("--script-dir"), "{error}");
    }

    #[test]
    fn tracked_files_are_read_anywhere_absolute_unless_directories_are_given() {
        let anywhere = HostAccess::default();
        assert_eq!(anywhere.admit_track_file("/etc/maintenance"), Ok(()));
        assert!(anywhere.admit_track_file("maintenance").is_err());
        let mounted = HostAccess {
            track_files: Some(HostDirs::track_files([PathBuf::from(
                "/etc/kube-vrrp/track",
            )])),
            ..HostAccess::default()
        };
        assert_eq!(
            mounted.admit_track_file("/etc/kube-vrrp/track/maintenance"),
            Ok(())
        );
        let error = mounted.admit_track_file("/etc/maintenance").unwrap_err();
        assert!(error.contains("tracked files are read from"), "{error}");
        assert!(error.contains("/etc/kube-vrrp/track"), "{error}");
    }

    #[test]
    fn a_symbolic_link_leading_outside_is_refused_when_run() {
        let root =
            std::env::temp_dir().join(format!("kube-vrrp-script-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let allowed = root.join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(allowed.join("inside"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/bin/sh", allowed.join("escape")).unwrap();
        let dirs = HostDirs::scripts([allowed.clone()]);
        let inside = allowed.join("inside");
        let escape = allowed.join("escape");
        let resolved = dirs.resolve(inside.to_str().unwrap());
        let escaped = dirs.resolve(escape.to_str().unwrap());
        let _ = std::fs::remove_dir_all(&root);
        assert!(resolved.is_ok(), "{resolved:?}");
        let error = escaped.unwrap_err();
        assert!(error.contains("outside"), "{error}");
    }
}
