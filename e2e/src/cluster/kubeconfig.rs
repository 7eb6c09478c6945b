//! Kubeconfig files: one cluster (the lab's API server and its CA), one user with a bearer
//! token, one context.

use std::path::Path;

use serde_json::json;

use super::error::ClusterError;

/// Writes a kubeconfig for `server` (e.g. `https://127.0.0.1:40123`) trusting `ca_cert`, as
/// `user` with `token`. Written as JSON, which is YAML, which kubectl, Helm and kube-rs read.
pub fn write(
    path: &Path,
    server: &str,
    ca_cert: &Path,
    user: &str,
    token: &str,
) -> Result<(), ClusterError> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "kube-vrrp-lab",
            "cluster": {"server": server, "certificate-authority": ca_cert},
        }],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{
            "name": "kube-vrrp-lab",
            "context": {"cluster": "kube-vrrp-lab", "user": user},
        }],
        "current-context": "kube-vrrp-lab",
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| ClusterError::Decode {
        what: "kubeconfig".into(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(ClusterError::io(format!("write {}", path.display())))
}
