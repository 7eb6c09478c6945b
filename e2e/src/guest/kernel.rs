//! Debian's cloud kernel for the guest: the package `linux-image-cloud-amd64` depends on is
//! downloaded with `apt-get download` and unpacked with `dpkg-deb -x` under
//! `.tools/guest/<version>/` (nothing is installed on the host), its module index is built
//! with `depmod -b`, and modules are listed in load order with `modprobe --show-depends`.
//! A later run finds the unpacked kernel and downloads nothing.

use std::path::{Path, PathBuf};

use super::{GuestError, tool};

/// The meta package naming the current cloud kernel.
pub const META_PACKAGE: &str = "linux-image-cloud-amd64";
/// Set to a version (`6.1.0-57-cloud-amd64`) to use that kernel instead of the newest.
pub const VERSION_ENV: &str = "KUBE_VRRP_GUEST_KERNEL";

/// A kernel unpacked for the guest.
#[derive(Debug, Clone)]
pub struct GuestKernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-cloud-amd64`.
    pub version: String,
    /// The folder the package was unpacked into.
    pub root: PathBuf,
}

impl GuestKernel {
    /// The cached kernel under `tools/guest/`, else the current one downloaded and unpacked.
    pub fn prepare(tools: &Path) -> Result<Self, GuestError> {
        let cache = tools.join("guest");
        let version = match std::env::var(VERSION_ENV) {
            Ok(v) if !v.is_empty() => v,
            _ => match newest_cached(&cache) {
                Some(v) => v,
                None => current_version()?,
            },
        };
        let root = cache.join(&version);
        let kernel = Self { version, root };
        if !kernel.ready_marker().exists() {
            kernel.download()?;
        }
        Ok(kernel)
    }

    fn ready_marker(&self) -> PathBuf {
        self.root.join(".ready")
    }

    fn download(&self) -> Result<(), GuestError> {
        let package = format!("linux-image-{}", self.version);
        let work = self.root.with_extension("download");
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_dir_all(&self.root);
        std::fs::create_dir_all(&work)
            .map_err(GuestError::io(format!("creating {}", work.display())))?;
        let status = std::process::Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&work)
            .output()
            .map_err(GuestError::io("running apt-get download"))?;
        if !status.status.success() {
            return Err(GuestError::Tool {
                command: format!("apt-get download {package}"),
                status: status.status.to_string(),
                stderr: String::from_utf8_lossy(&status.stderr).trim().to_owned(),
            });
        }
        let deb = std::fs::read_dir(&work)
            .map_err(GuestError::io("listing the download"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| {
                GuestError::Invalid(format!("apt-get download {package} left no .deb"))
            })?;
        let root = path_str(&self.root)?;
        tool("dpkg-deb", &["-x", path_str(&deb)?, root])?;
        tool("depmod", &["-b", root, &self.version])?;
        let _ = std::fs::remove_dir_all(&work);
        std::fs::write(self.ready_marker(), &self.version)
            .map_err(GuestError::io("marking the kernel ready"))?;
        Ok(())
    }

    /// The compressed kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.version))
    }

    /// The module files that `modules` need, dependencies first, each once.
    pub fn modules_in_load_order(&self, modules: &[&str]) -> Result<Vec<PathBuf>, GuestError> {
        let root = path_str(&self.root)?;
        let mut args = vec!["-d", root, "-S", &self.version, "--show-depends", "-a"];
        args.extend_from_slice(modules);
        let out = tool("modprobe", &args)?;
        let mut files: Vec<PathBuf> = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            // "insmod /path/to/module.ko [options]"; "builtin NAME" needs nothing.
            let mut words = line.split_whitespace();
            if words.next() == Some("insmod")
                && let Some(path) = words.next()
            {
                let path = PathBuf::from(path);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
        }
        Ok(files)
    }
}

fn path_str(path: &Path) -> Result<&str, GuestError> {
    path.to_str()
        .ok_or_else(|| GuestError::Invalid(format!("{} is not UTF-8", path.display())))
}

/// The newest kernel already unpacked under `cache`.
fn newest_cached(cache: &Path) -> Option<String> {
    let mut versions: Vec<String> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().join(".ready").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions.pop()
}

/// `6.1.0-57-cloud-amd64` → (6, 1, 0, 57) for ordering.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-', '+'])
        .map_while(|part| part.parse().ok())
        .collect()
}

/// The kernel version the meta package depends on now (`apt-cache depends`).
fn current_version() -> Result<String, GuestError> {
    let out = tool("apt-cache", &["depends", META_PACKAGE])?;
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|v| v.trim_end_matches("-unsigned").to_owned())
        .next()
        .ok_or_else(|| {
            GuestError::Invalid(format!(
                "apt-cache depends {META_PACKAGE} names no kernel; run apt-get update"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_order_by_their_numbers() {
        let mut v = [
            "6.1.0-9-cloud-amd64",
            "6.1.0-57-cloud-amd64",
            "6.1.0-10-cloud-amd64",
        ];
        v.sort_by_key(|v| version_key(v));
        assert_eq!(v.last(), Some(&"6.1.0-57-cloud-amd64"));
    }
}
