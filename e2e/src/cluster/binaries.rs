//! Where the cluster lab's programs are: the control plane built from Go modules
//! (`e2e/controlplane/build.sh`), kubectl and Helm (`hack/install-tools.sh`), our binaries
//! (`cargo build`), `lab-pod` (this crate) and util-linux `setpriv`. A missing one is an error
//! saying how to get it.

use std::path::{Path, PathBuf};

use super::error::ClusterError;

/// Environment variable choosing the Kubernetes release of the control plane (e.g.
/// `1.30.14`); default: the release pinned in `e2e/controlplane/go.mod`.
pub const K8S_VERSION_ENV: &str = "KUBE_VRRP_K8S_VERSION";

/// Every program the cluster lab runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The Kubernetes release, without `v` (e.g. "1.37.2").
    pub k8s_version: String,
    pub apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
    pub agent: PathBuf,
    pub operator: PathBuf,
    pub lab_pod: PathBuf,
    pub setpriv: PathBuf,
}

/// The repository's root (this crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The Kubernetes release `go.mod` pins: the `k8s.io/kubernetes vX.Y.Z` requirement.
pub fn pinned_k8s_version(go_mod: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("k8s.io/kubernetes"))
            .then(|| words.next())
            .flatten()
            .map(|v| v.trim_start_matches('v').to_owned())
    })
}

fn existing(
    path: PathBuf,
    what: &'static str,
    hint: &'static str,
) -> Result<PathBuf, ClusterError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClusterError::NotBuilt {
            what,
            path: path.display().to_string(),
            hint,
        })
    }
}

/// A binary of this workspace: `$ENV`, else `target/debug/NAME` (or under `$CARGO_TARGET_DIR`).
fn workspace_binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(
        || {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from)
                .join("debug")
                .join(name)
        },
        PathBuf::from,
    )
}

/// `lab-pod`: `$KUBE_VRRP_LAB_POD`, else beside the running executable (binaries) or one level
/// up (integration tests run from `target/debug/deps`).
fn lab_pod() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBE_VRRP_LAB_POD") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("lab-pod"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| workspace_binary("KUBE_VRRP_LAB_POD", "lab-pod"))
}

/// How to get each kind of missing program.
const BUILD: &str = "build it with `e2e/controlplane/build.sh` (make controlplane; KUBE_VRRP_K8S_VERSION picks another release)";
const TOOLS: &str = "install it with `make tools`";
const CARGO: &str = "build it with `cargo build --workspace --bins`";

impl Binaries {
    /// Finds every program, for the release in `$KUBE_VRRP_K8S_VERSION` or the pinned one.
    pub fn locate() -> Result<Self, ClusterError> {
        let root = repo_root();
        let go_mod_path = root.join("e2e/controlplane/go.mod");
        let go_mod = std::fs::read_to_string(&go_mod_path)
            .map_err(ClusterError::io(format!("read {}", go_mod_path.display())))?;
        let k8s_version = match std::env::var(K8S_VERSION_ENV) {
            Ok(v) if !v.is_empty() => v.trim_start_matches('v').to_owned(),
            _ => pinned_k8s_version(&go_mod).ok_or_else(|| ClusterError::Decode {
                what: go_mod_path.display().to_string(),
                message: "no k8s.io/kubernetes requirement".into(),
            })?,
        };
        let control_plane = root
            .join(".tools/controlplane")
            .join(format!("v{k8s_version}"));
        Ok(Self {
            apiserver: existing(
                control_plane.join("kube-apiserver"),
                "kube-apiserver",
                BUILD,
            )?,
            etcd: existing(control_plane.join("etcd"), "etcd", BUILD)?,
            k8s_version,
            kubectl: existing(root.join(".tools/bin/kubectl"), "kubectl", TOOLS)?,
            helm: existing(root.join(".tools/bin/helm"), "helm", TOOLS)?,
            agent: existing(
                workspace_binary("KUBE_VRRP_AGENT", "kube-vrrp-agent"),
                "kube-vrrp-agent",
                CARGO,
            )?,
            operator: existing(
                workspace_binary("KUBE_VRRP_OPERATOR", "kube-vrrp-operator"),
                "kube-vrrp-operator",
                CARGO,
            )?,
            lab_pod: existing(lab_pod(), "lab-pod", CARGO)?,
            setpriv: existing(
                PathBuf::from("/usr/bin/setpriv"),
                "setpriv",
                "install the Debian package util-linux",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_release_is_read_from_the_wrapper_go_mod() {
        let go_mod = "module x\n\nrequire (\n\tgo.etcd.io/etcd/server/v3 v3.7.0\n\tk8s.io/kubernetes v1.37.2\n)\n";
        assert_eq!(pinned_k8s_version(go_mod).as_deref(), Some("1.37.2"));
        assert_eq!(pinned_k8s_version("module x\n"), None);
    }
}
