//! The lab's kubelet: runs a pod of the chart (created as a real Pod object from its
//! workload's template) as a process in a lab namespace, with exactly the container's
//! command, args and environment ([`env`](mod@env)), its volumes ([`volumes`]: the ServiceAccount
//! token from TokenRequest bound to the Pod), and its security context ([`security`]).
//! Readiness is the container's own readiness probe; stopping honours the grace period.

pub mod env;
pub mod security;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use self::env::PodFacts;
use self::security::Privileges;
use self::volumes::{Mount, VolumeRoots};
use super::error::ClusterError;
use super::kubectl::Tool;
use crate::http;
use crate::process::DaemonProcess;

/// PATH inside a container (what images commonly set).
const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every pod of the lab shares: the helpers that start containers, where each image
/// command's binary is, and the API server the pods' in-cluster configuration points at.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// The `lab-pod` binary (mount namespace, volumes, read-only root).
    pub lab_pod: PathBuf,
    /// util-linux `setpriv` (user, group, capabilities).
    pub setpriv: PathBuf,
    /// Image command name → binary on the host (the lab has no images).
    pub binaries: BTreeMap<String, PathBuf>,
    /// The API server as pods reach it (KUBERNETES_SERVICE_HOST/PORT).
    pub apiserver: SocketAddr,
    /// Admin access for creating Pods and requesting tokens.
    pub api: Tool,
}

/// Where a pod runs.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The network namespace (the node's for hostNetwork pods, the pod's own otherwise).
    pub netns: String,
    /// The node (spec.nodeName), if any, and its InternalIP.
    pub node: Option<(String, IpAddr)>,
    /// The pod's address.
    pub pod_ip: IpAddr,
    /// The node's root directory for hostPath volumes.
    pub node_root: PathBuf,
}

/// A pod of the chart running as a lab process.
#[derive(Debug)]
pub struct Pod {
    name: String,
    namespace: String,
    object: Value,
    netns: String,
    address: IpAddr,
    command: Vec<String>,
    mounts: Vec<Mount>,
    container_line: Vec<String>,
    env: Vec<(String, String)>,
    grace: Duration,
    readiness: Option<(u16, String)>,
    log: PathBuf,
    process: Option<DaemonProcess>,
    /// What it was made from, to make it again when its Pod object is deleted.
    origin: Origin,
}

/// The workload template, placement and work directory a pod was created from.
#[derive(Clone, Debug)]
struct Origin {
    template: Value,
    placement: Placement,
    workdir: PathBuf,
}

fn container_of(pod: &Value, name: &str) -> Result<Value, ClusterError> {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ClusterError::pod(
            name,
            "init containers are not supported by the lab",
        ));
    }
    match containers {
        [one] => Ok(one.clone()),
        _ => Err(ClusterError::pod(
            name,
            format!(
                "the lab runs pods of exactly one container, not {}",
                containers.len()
            ),
        )),
    }
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The readiness probe's port and path (httpGet only); a named port is looked up among the
/// container's ports.
fn readiness(container: &Value, pod: &str) -> Result<Option<(u16, String)>, ClusterError> {
    let Some(probe) = container.get("readinessProbe") else {
        return Ok(None);
    };
    let get = probe.get("httpGet").ok_or_else(|| {
        ClusterError::pod(
            pod,
            "only httpGet readiness probes are supported by the lab",
        )
    })?;
    let path = get
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let port = match get.get("port") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(name)) => container
            .get("ports")
            .and_then(Value::as_array)
            .and_then(|ports| {
                ports
                    .iter()
                    .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
            })
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok()),
        _ => None,
    }
    .ok_or_else(|| ClusterError::pod(pod, format!("readiness probe port not found: {get}")))?;
    Ok(Some((port, path)))
}

impl Pod {
    /// Creates Pod `name` in `namespace` from a workload's pod `template` (as the DaemonSet or
    /// Deployment controller would, plus `spec.nodeName` when placed on a node; it stays
    /// Pending, as no kubelet reports on it), prepares its volumes and works out its command
    /// line and environment. Nothing runs until [`Pod::start`].
    pub fn create(
        runtime: &Runtime,
        template: &Value,
        name: &str,
        namespace: &str,
        placement: &Placement,
        workdir: &Path,
    ) -> Result<Self, ClusterError> {
        let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        if let (Some((node, _)), Some(obj)) = (&placement.node, spec.as_object_mut()) {
            obj.insert("nodeName".into(), json!(node));
        }
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
                "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
            },
            "spec": spec,
        });
        let object = runtime
            .api
            .json_with_input(&["create", "-f", "-", "-o", "json"], &manifest.to_string())?;
        let container = container_of(&object, name)?;
        let facts = PodFacts {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: object
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            node_name: placement
                .node
                .as_ref()
                .map(|(n, _)| n.clone())
                .unwrap_or_default(),
            service_account: object
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned(),
            host_ip: placement
                .node
                .as_ref()
                .map(|(_, ip)| ip.to_string())
                .unwrap_or_default(),
            pod_ip: placement.pod_ip.to_string(),
            labels: string_map(object.pointer("/metadata/labels")),
            annotations: string_map(object.pointer("/metadata/annotations")),
        };
        let dir = workdir.join("pods").join(name);
        let roots = VolumeRoots {
            pod: dir.clone(),
            node: placement.node_root.clone(),
        };
        let mounts = volumes::prepare(&object, &container, &facts, &roots, &runtime.api)?;
        let privileges =
            security::privileges(object.get("spec").unwrap_or(&Value::Null), &container)
                .map_err(|m| ClusterError::pod(name, m))?;
        let container_env =
            env::environment(&container, &facts).map_err(|m| ClusterError::pod(name, m))?;
        let line = env::command_line(&container, &container_env)
            .map_err(|m| ClusterError::pod(name, m))?;
        let command = launch_command(runtime, &line, &mounts, &privileges)
            .map_err(|m| ClusterError::pod(name, m))?;
        let hostname = if facts.node_name.is_empty() {
            name.to_owned()
        } else {
            facts.node_name.clone()
        };
        let mut process_env = vec![
            ("PATH".to_owned(), CONTAINER_PATH.to_owned()),
            ("HOSTNAME".to_owned(), hostname),
            ("HOME".to_owned(), "/".to_owned()),
        ];
        process_env.extend(service_env(runtime.apiserver));
        process_env.extend(container_env);
        let grace = object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        std::fs::create_dir_all(&dir)
            .map_err(ClusterError::io(format!("create {}", dir.display())))?;
        Ok(Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            readiness: readiness(&container, name)?,
            object,
            netns: placement.netns.clone(),
            address: placement.pod_ip,
            command,
            mounts,
            container_line: line,
            env: process_env,
            grace: Duration::from_secs(grace),
            log: dir.join("container.log"),
            process: None,
            origin: Origin {
                template: template.clone(),
                placement: placement.clone(),
                workdir: workdir.to_owned(),
            },
        })
    }

    /// What the kubelet and the workload's controller do when a user deletes the Pod object:
    /// the container is stopped (SIGTERM, grace period), the object removed, and a new Pod of
    /// the same name created from the same template and started.
    pub fn replace(&mut self, runtime: &Runtime) -> Result<(), ClusterError> {
        self.terminate()?;
        runtime.api.run(&[
            "delete",
            "pod",
            &self.name,
            "-n",
            &self.namespace,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
        ])?;
        let origin = self.origin.clone();
        let mut fresh = Self::create(
            runtime,
            &origin.template,
            &self.name,
            &self.namespace,
            &origin.placement,
            &origin.workdir,
        )?;
        fresh.start()?;
        *self = fresh;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Pod object as the API server stored it.
    pub fn object(&self) -> &Value {
        &self.object
    }

    /// The container's command line after `lab-pod` and `setpriv`: exactly the rendered
    /// command and args.
    pub fn container_command(&self) -> &[String] {
        &self.container_line
    }

    /// The host directory mounted at `target` in the container.
    pub fn mount_source(&self, target: &str) -> Option<&Path> {
        self.mounts
            .iter()
            .find(|m| m.target == target)
            .map(|m| m.source.as_path())
    }

    /// The container's environment (after the kubelet's own variables).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Starts (or restarts) the container; its output is appended to the pod's log.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        if self.process.as_mut().is_some_and(DaemonProcess::is_running) {
            return Err(ClusterError::pod(&self.name, "already running"));
        }
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns])
            .args(&self.command)
            .env_clear();
        for (key, value) in &self.env {
            command.env(key, value);
        }
        self.process = Some(DaemonProcess::spawn_command(
            "container",
            &self.name,
            command,
            &self.log,
        )?);
        Ok(())
    }

    /// Whether the container process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(DaemonProcess::is_running)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(DaemonProcess::pid)
    }

    /// Everything the container printed, across restarts.
    pub fn log(&self) -> String {
        std::fs::read(&self.log).map_or_else(
            |e| format!("(cannot read {}: {e})", self.log.display()),
            |bytes| String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits until the readiness probe answers 2xx/3xx (or, without a probe, until the process
    /// has run for a moment), failing early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.process.as_mut() {
                Some(p) => p.ensure_running()?,
                None => return Err(ClusterError::pod(&self.name, "not started")),
            }
            if self.probe_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("pod {} ready; log:\n{}", self.name, self.log()),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One readiness probe (true without a probe).
    pub fn probe_ready(&self) -> bool {
        let Some((port, path)) = self.readiness.clone() else {
            return true;
        };
        let addr = SocketAddr::new(self.address, port);
        crate::netns::run_in_named(&self.netns, move || {
            http::get(addr, &path, Duration::from_secs(1))
        })
        .ok()
        .and_then(Result::ok)
        .is_some_and(|r| (200..400).contains(&r.status))
    }

    /// The container's port named `name` (e.g. "metrics"), as the chart declares it.
    pub fn named_port(&self, name: &str) -> Option<u16> {
        self.object
            .pointer("/spec/containers/0/ports")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    }

    /// The network namespace and address the container's port `port` is reached at (for
    /// threads that probe it on their own).
    pub fn endpoint(&self, port: u16) -> (String, SocketAddr) {
        (self.netns.clone(), SocketAddr::new(self.address, port))
    }

    /// GETs `path` from the container's port `port` (e.g. its metrics).
    pub fn get(&self, port: u16, path: &str) -> Result<http::Response, ClusterError> {
        let (addr, path) = (SocketAddr::new(self.address, port), path.to_owned());
        crate::netns::run_in_named(&self.netns, move || {
            http::get(addr, &path, Duration::from_secs(2))
        })?
        .map_err(|e| ClusterError::pod(&self.name, format!("GET :{port}: {e}")))
    }

    /// Stops the container as the kubelet does: SIGTERM, then SIGKILL after the grace period.
    pub fn terminate(&mut self) -> Result<(), ClusterError> {
        let grace = self.grace;
        if let Some(process) = self.process.as_mut() {
            process.signal(Signal::SIGTERM)?;
            if process.wait(grace).is_err() {
                process.kill()?;
            }
        }
        Ok(())
    }

    /// Sends `signal` to the container without waiting (SIGSTOP/SIGCONT freeze and thaw it).
    pub fn signal(&mut self, signal: Signal) -> Result<(), ClusterError> {
        if let Some(process) = self.process.as_mut() {
            process.signal(signal)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the container to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        if let Some(process) = self.process.as_mut() {
            process.wait(timeout)?;
        }
        Ok(())
    }

    /// SIGKILL (a crash, or a node dying).
    pub fn kill(&mut self) -> Result<(), ClusterError> {
        if let Some(process) = self.process.as_mut() {
            process.kill()?;
        }
        Ok(())
    }
}

/// The variables the kubelet gives every container for the `kubernetes` Service. In the lab
/// they name the API server's own address (no kube-proxy translates a ClusterIP).
fn service_env(apiserver: SocketAddr) -> Vec<(String, String)> {
    let (host, port) = (apiserver.ip().to_string(), apiserver.port().to_string());
    let url = format!("tcp://{apiserver}");
    vec![
        ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
        ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
        ("KUBERNETES_PORT".into(), url.clone()),
        (format!("KUBERNETES_PORT_{port}_TCP"), url),
        (format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
        (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.clone()),
        (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host),
    ]
}

/// Where the image holds its binaries; the lab mounts the workspace's there, read-only, so a
/// pod volume mounted over a parent of the checkout (an emptyDir at /tmp over a checkout in
/// /tmp) cannot hide them.
const IMAGE_BIN: &str = "/usr/local/bin";

/// `lab-pod [mounts] -- setpriv [privileges] -- /usr/local/bin/BINARY ARGS`: the image
/// command's first word is looked up among the lab's binaries, whose directory lab-pod mounts
/// at [`IMAGE_BIN`] before the pod's volumes.
fn launch_command(
    runtime: &Runtime,
    line: &[String],
    mounts: &[Mount],
    privileges: &Privileges,
) -> Result<Vec<String>, String> {
    let (program, args) = line.split_first().ok_or("empty command")?;
    let binary = runtime
        .binaries
        .get(program)
        .ok_or_else(|| format!("the lab has no binary for the image command {program}"))?;
    let (Some(dir), Some(name)) = (binary.parent(), binary.file_name()) else {
        return Err(format!("{}: not a file path", binary.display()));
    };
    let mut command = vec![runtime.lab_pod.display().to_string()];
    command.push("--mount".into());
    command.push(format!("{}:{IMAGE_BIN}:ro", dir.display()));
    for mount in mounts {
        command.push("--mount".into());
        command.push(mount.as_arg());
    }
    if privileges.read_only_root {
        command.push("--read-only-root".into());
    }
    command.push("--".into());
    command.push(runtime.setpriv.display().to_string());
    command.extend(privileges.setpriv_args());
    command.push("--".into());
    command.push(format!("{IMAGE_BIN}/{}", name.to_string_lossy()));
    command.extend(args.iter().cloned());
    Ok(command)
}
