//! The host directories scripts may run from (the agent's `--script-dir`, DESIGN §3): track
//! scripts and script health checks alike. A configuration naming a program elsewhere is
//! refused when it arrives ([`ScriptDirs::admit`], by the path as written); each run checks
//! again where the path leads after symbolic links ([`ScriptDirs::resolve`]), so a link
//! placed in an allowed directory cannot reach a program outside it.

use std::path::{Component, Path, PathBuf};

/// The allowed directories; none allows no script at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptDirs {
    dirs: Vec<PathBuf>,
}

impl ScriptDirs {
    /// The directories as given (absolute paths).
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            dirs: dirs.into_iter().collect(),
        }
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    fn listed(&self) -> String {
        if self.dirs.is_empty() {
            "none: the agent runs no script unless started with --script-dir".to_owned()
        } else {
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Whether `program` (as written in a configuration) lies in an allowed directory: an
    /// absolute path without `..`, under one of them. The error says why not.
    pub fn admit(&self, program: &str) -> Result<(), String> {
        let path = Path::new(program);
        if !path.is_absolute() {
            return Err(format!(
                "{program:?} is not an absolute path; scripts run only from the allowed \
                 directories ({})",
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
                "{program} is outside the directories scripts may run from ({})",
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
                "{program} leads to {}, outside the directories scripts may run from ({})",
                real.display(),
                self.listed()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> ScriptDirs {
        ScriptDirs::new([PathBuf::from("/etc/kube-vrrp/scripts")])
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
        let error = ScriptDirs::default().admit("/bin/true").unwrap_err();
        assert!(error.contains("--script-dir"), "{error}");
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
        let dirs = ScriptDirs::new([allowed.clone()]);
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
