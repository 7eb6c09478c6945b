//! The kubelet's volume work for one container, done on the host: each volume the container
//! mounts becomes a directory (emptyDir: the pod's own; hostPath: under the node's root
//! directory, since the lab's nodes share one host filesystem; projected: the ServiceAccount
//! token from TokenRequest, ConfigMap keys and downward-API fields written as files), and
//! `lab-pod` mounts it at `mountPath`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::env::PodFacts;
use crate::cluster::error::ClusterError;
use crate::cluster::kubectl::Tool;

/// One directory to mount into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

impl Mount {
    /// `lab-pod --mount` syntax.
    pub fn as_arg(&self) -> String {
        let ro = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{ro}", self.source.display(), self.target)
    }
}

/// Where a pod's volumes live on the host.
#[derive(Clone, Debug)]
pub struct VolumeRoots {
    /// The pod's own directory (emptyDir, projected).
    pub pod: PathBuf,
    /// The node's "root filesystem" for hostPath volumes.
    pub node: PathBuf,
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn create_dir(dir: &Path) -> Result<(), ClusterError> {
    std::fs::create_dir_all(dir).map_err(ClusterError::io(format!("create {}", dir.display())))
}

fn write_file(dir: &Path, relative: &str, contents: &str, mode: u32) -> Result<(), ClusterError> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(&path, contents)
        .map_err(ClusterError::io(format!("write {}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(ClusterError::io(format!("chmod {}", path.display())))
}

/// Prepares every volume `container` mounts and returns the mounts, in the container's order.
pub fn prepare(
    pod: &Value,
    container: &Value,
    facts: &PodFacts,
    roots: &VolumeRoots,
    api: &Tool,
) -> Result<Vec<Mount>, ClusterError> {
    let refuse = |message: String| ClusterError::pod(&facts.name, message);
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut mounts = Vec::new();
    for mount in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let (Some(name), Some(target)) = (text(mount, "name"), text(mount, "mountPath")) else {
            return Err(refuse(format!(
                "volumeMount without name or mountPath: {mount}"
            )));
        };
        if mount.get("subPath").is_some() {
            return Err(refuse(format!(
                "volumeMount {name}: subPath is not supported by the lab"
            )));
        }
        let volume = volumes
            .iter()
            .find(|v| text(v, "name") == Some(name))
            .ok_or_else(|| refuse(format!("volumeMount {name}: no such volume")))?;
        let source = if volume.get("emptyDir").is_some() {
            let dir = roots.pod.join("volumes").join(name);
            create_dir(&dir)?;
            dir
        } else if let Some(host_path) = volume.get("hostPath") {
            let path = text(host_path, "path")
                .ok_or_else(|| refuse(format!("volume {name}: hostPath without path")))?;
            match text(host_path, "type").unwrap_or("") {
                "" | "Directory" | "DirectoryOrCreate" => {}
                other => {
                    return Err(refuse(format!(
                        "volume {name}: hostPath type {other} is not supported by the lab"
                    )));
                }
            }
            let dir = roots.node.join(path.trim_start_matches('/'));
            create_dir(&dir)?;
            dir
        } else if let Some(projected) = volume.get("projected") {
            let dir = roots.pod.join("volumes").join(name);
            create_dir(&dir)?;
            project(projected, &dir, pod, facts, api).map_err(|m| match m {
                ProjectError::Refused(message) => refuse(format!("volume {name}: {message}")),
                ProjectError::Cluster(e) => e,
            })?;
            dir
        } else {
            return Err(refuse(format!(
                "volume {name}: only emptyDir, hostPath and projected volumes are supported by the lab: {volume}"
            )));
        };
        mounts.push(Mount {
            source,
            target: target.to_owned(),
            read_only: mount.get("readOnly").and_then(Value::as_bool) == Some(true),
        });
    }
    Ok(mounts)
}

enum ProjectError {
    Refused(String),
    Cluster(ClusterError),
}

impl From<ClusterError> for ProjectError {
    fn from(e: ClusterError) -> Self {
        Self::Cluster(e)
    }
}

/// Writes a projected volume's files into `dir`.
fn project(
    projected: &Value,
    dir: &Path,
    pod: &Value,
    facts: &PodFacts,
    api: &Tool,
) -> Result<(), ProjectError> {
    let mode = projected
        .get("defaultMode")
        .and_then(Value::as_u64)
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0o644);
    for source in projected
        .get("sources")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        if let Some(token) = source.get("serviceAccountToken") {
            let path = text(token, "path")
                .ok_or_else(|| ProjectError::Refused("serviceAccountToken without path".into()))?;
            let seconds = token
                .get("expirationSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(3600);
            let value = request_token(api, pod, facts, seconds, text(token, "audience"))?;
            write_file(dir, path, &value, mode)?;
        } else if let Some(config_map) = source.get("configMap") {
            let name = text(config_map, "name")
                .ok_or_else(|| ProjectError::Refused("configMap without name".into()))?;
            let object = api.json(&[
                "get",
                "configmap",
                name,
                "-n",
                &facts.namespace,
                "-o",
                "json",
            ])?;
            for item in config_map
                .get("items")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let (Some(key), Some(path)) = (text(item, "key"), text(item, "path")) else {
                    return Err(ProjectError::Refused(format!(
                        "configMap {name}: item without key or path"
                    )));
                };
                let value = object
                    .pointer(&format!("/data/{key}"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ProjectError::Refused(format!("configMap {name} has no key {key}"))
                    })?;
                write_file(dir, path, value, mode)?;
            }
        } else if let Some(downward) = source.get("downwardAPI") {
            for item in downward
                .get("items")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let path = text(item, "path")
                    .ok_or_else(|| ProjectError::Refused("downwardAPI item without path".into()))?;
                let field = item
                    .pointer("/fieldRef/fieldPath")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ProjectError::Refused(format!(
                            "downwardAPI {path}: only fieldRef is supported"
                        ))
                    })?;
                let value = facts.field(field).ok_or_else(|| {
                    ProjectError::Refused(format!(
                        "downwardAPI {path}: unsupported fieldPath {field}"
                    ))
                })?;
                write_file(dir, path, &value, mode)?;
            }
        } else {
            return Err(ProjectError::Refused(format!(
                "projected source not supported by the lab: {source}"
            )));
        }
    }
    Ok(())
}

/// A ServiceAccount token bound to the pod (TokenRequest), as the kubelet requests it: it
/// carries the pod's name and uid and, when the pod has a node, the node's name.
fn request_token(
    api: &Tool,
    pod: &Value,
    facts: &PodFacts,
    seconds: u64,
    audience: Option<&str>,
) -> Result<String, ClusterError> {
    let service_account = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let duration = format!("{seconds}s");
    let mut args = vec![
        "create",
        "token",
        service_account,
        "-n",
        &facts.namespace,
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        &facts.name,
        "--bound-object-uid",
        &facts.uid,
        "--duration",
        &duration,
    ];
    if let Some(audience) = audience {
        args.extend(["--audience", audience]);
    }
    Ok(api.run(&args)?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_arguments_mark_read_only_mounts() {
        let m = Mount {
            source: "/tmp/x".into(),
            target: "/var/run/secrets".into(),
            read_only: true,
        };
        assert_eq!(m.as_arg(), "/tmp/x:/var/run/secrets:ro");
        let m = Mount {
            read_only: false,
            ..m
        };
        assert_eq!(m.as_arg(), "/tmp/x:/var/run/secrets");
    }
}
