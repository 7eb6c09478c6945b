//! Our agent as a lab peer, in standalone mode: writes the manifests directory (VirtualIP, Node
//! and Secret objects), runs `kube-vrrp-agent run` in a node namespace, and reads `/status`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::addressing::{self, Family};
use crate::error::LabError;
use crate::http;
use crate::instance::{InstanceSpec, Version};
use crate::lab::{LAB_IF, Lab};
use crate::process::DaemonProcess;

/// Environment variable naming the agent binary.
pub const AGENT_ENV: &str = "KUBE_VRRP_AGENT";
/// The label every lab node carries and every lab VirtualIP selects.
pub const LAB_NODE_LABEL: &str = "kubevrrp.io/lab";
/// Where a v2 password Secret lives.
pub const SECRET_NAMESPACE: &str = "kube-vrrp";
/// The agent's HTTP port inside its node namespace (on loopback).
pub const STATUS_PORT: u16 = 9180;

/// How long a started agent has to answer on `/status`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The same under a wrapper such as valgrind, which runs it tens of times slower.
pub const WRAPPED_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The agents' `RUST_LOG` in the lab unless [`set_log_filter`] chose another.
pub const DEFAULT_LOG_FILTER: &str = "debug";

static LOG_FILTER: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Sets the `RUST_LOG` of every agent started from now on (once per process; benchmarks use
/// "info" so that debug logging is not what they measure). Returns false when already set.
pub fn set_log_filter(filter: &'static str) -> bool {
    LOG_FILTER.set(filter).is_ok()
}

fn log_filter() -> &'static str {
    LOG_FILTER.get().copied().unwrap_or(DEFAULT_LOG_FILTER)
}

/// The agent binary: `$KUBE_VRRP_AGENT`, else `target/debug/kube-vrrp-agent` of this workspace
/// (or of `$CARGO_TARGET_DIR`). An error says so when it has not been built.
pub fn binary() -> Result<PathBuf, LabError> {
    binary_from(
        std::env::var_os(AGENT_ENV).map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
    )
}

/// [`binary`] for a benchmark: refused when it is a debug build (its `--version` says so), whose
/// costs say nothing of the release build's.
pub fn release_binary() -> Result<PathBuf, LabError> {
    let path = binary()?;
    let version = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .map_err(LabError::io(format!("{} --version", path.display())))?;
    let line = String::from_utf8_lossy(&version.stdout);
    if !version.status.success() || !line.starts_with("kube-vrrp-agent ") {
        return Err(LabError::Invalid(format!(
            "{} --version did not name a kube-vrrp-agent ({}): {line}",
            path.display(),
            version.status
        )));
    }
    if is_debug_build(&line) {
        return Err(LabError::DebugAgent {
            path: path.display().to_string(),
        });
    }
    Ok(path)
}

/// Whether an agent's `--version` line names a debug build.
pub fn is_debug_build(version: &str) -> bool {
    version.contains("(debug build)")
}

/// [`binary`] with its two environment variables passed in.
pub fn binary_from(
    agent: Option<PathBuf>,
    target_dir: Option<PathBuf>,
) -> Result<PathBuf, LabError> {
    let path = agent.unwrap_or_else(|| {
        target_dir
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target")
            })
            .join("debug")
            .join("kube-vrrp-agent")
    });
    if path.is_file() {
        Ok(path)
    } else {
        Err(LabError::AgentNotBuilt {
            path: path.display().to_string(),
        })
    }
}

/// A duration as the manifests spell it: "1s", "100ms", "10ms".
pub fn duration_string(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, for Secret `data`.
fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn secret_name(spec: &InstanceSpec) -> String {
    format!("{}-auth", spec.name)
}

/// The file node `node`'s agent tracks for instances with a [`crate::TrackFile`] (each node its
/// own, in the lab's work directory). The agent starts with it holding `0` unless a test wrote it
/// first.
pub fn track_file_path(lab: &Lab, node: usize) -> PathBuf {
    lab.workdir().join(format!("track-n{node}"))
}

/// The manifests (DESIGN.md §8) describing `instances` on a lab of `nodes` nodes: one VirtualIP
/// per instance, one v1 Node per lab node, one v1 Secret per v2 password. Instances with a
/// tracked file watch `track_file` (the reading node's own file).
pub fn manifests(
    nodes: usize,
    ipv6: bool,
    instances: &[InstanceSpec],
    track_file: &Path,
) -> Vec<Value> {
    let mut docs = Vec::new();
    for spec in instances {
        let priorities: Vec<Value> = (1..=nodes)
            .map(|n| json!({"nodeName": format!("n{n}"), "priority": spec.priority(n)}))
            .collect();
        let mut vip_spec = json!({
            "addresses": spec.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "virtualRouterID": spec.vrid,
            "interface": LAB_IF,
            "version": match spec.version { Version::V2 => 2, Version::V3 => 3 },
            "advertInterval": duration_string(spec.advert_interval),
            "preempt": spec.preempt,
            "preemptDelay": duration_string(spec.preempt_delay),
            "unicast": spec.unicast,
            "nodeSelector": {"matchLabels": {LAB_NODE_LABEL: "true"}},
            "priorities": priorities,
        });
        if let (Version::V2, Some(_), Some(obj)) =
            (spec.version, &spec.password, vip_spec.as_object_mut())
        {
            obj.insert(
                "authentication".into(),
                json!({
                    "type": "PASS",
                    "passwordSecretRef": {
                        "namespace": SECRET_NAMESPACE,
                        "name": secret_name(spec),
                        "key": "password",
                    },
                }),
            );
        }
        if let (Some(track), Some(obj)) = (spec.track_file, vip_spec.as_object_mut()) {
            let mut file = json!({"path": track_file.to_string_lossy()});
            if let (Some(weight), Some(file)) = (track.weight, file.as_object_mut()) {
                file.insert("weight".into(), json!(weight));
            }
            obj.insert("track".into(), json!({"files": [file]}));
        }
        docs.push(json!({
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VirtualIP",
            "metadata": {"name": spec.name},
            "spec": vip_spec,
        }));
        if let (Version::V2, Some(password)) = (spec.version, &spec.password) {
            docs.push(json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name(spec), "namespace": SECRET_NAMESPACE},
                "type": "Opaque",
                "data": {"password": base64(password.as_bytes())},
            }));
        }
    }
    for n in 1..=nodes {
        let mut addresses = vec![
            json!({"type": "InternalIP", "address": addressing::node_ip(n, Family::V4).to_string()}),
        ];
        if ipv6 {
            addresses.push(json!({"type": "InternalIP", "address": addressing::node_ip(n, Family::V6).to_string()}));
        }
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": format!("n{n}"),
                "labels": {LAB_NODE_LABEL: "true", "kubernetes.io/hostname": format!("n{n}")},
            },
            "status": {"addresses": addresses},
        }));
    }
    docs
}

/// The manifests as one multi-document YAML file.
pub fn manifests_yaml(
    nodes: usize,
    ipv6: bool,
    instances: &[InstanceSpec],
    track_file: &Path,
) -> Result<String, LabError> {
    serde_saphyr::to_string_multiple(&manifests(nodes, ipv6, instances, track_file))
        .map_err(|e| LabError::Render(e.to_string()))
}

/// One instance as the agent reports it on `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    pub name: String,
    pub vrid: Option<u8>,
    pub interface: Option<String>,
    /// VRRP version as reported (e.g. 3 or "v3"), as text.
    pub version: Option<String>,
    /// "INIT", "BACKUP", "MASTER" or "FAULT".
    pub state: String,
    pub priority: Option<u8>,
    pub effective_priority: Option<u8>,
    pub master_address: Option<String>,
    pub vips: Vec<String>,
    pub transitions: Option<u64>,
}

impl InstanceStatus {
    pub fn is_master(&self) -> bool {
        self.state == "MASTER"
    }

    pub fn is_backup(&self) -> bool {
        self.state == "BACKUP"
    }

    pub fn is_fault(&self) -> bool {
        self.state == "FAULT"
    }
}

fn instance_status(value: &Value) -> InstanceStatus {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let small = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u8::try_from(v).ok())
    };
    InstanceStatus {
        name: text("name").unwrap_or_default(),
        vrid: small("vrid"),
        interface: text("interface"),
        version: value.get("version").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        state: text("state").unwrap_or_default(),
        priority: small("priority"),
        effective_priority: small("effectivePriority"),
        master_address: text("masterAddress").filter(|s| !s.is_empty()),
        vips: value
            .get("vips")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        transitions: value.get("transitions").and_then(Value::as_u64),
    }
}

/// Reads `/status`: `{"instances": [{"name", "vrid", "interface", "version", "state",
/// "priority", "effectivePriority", "masterAddress", "vips", "transitions", ...}]}`, sorted by
/// name. Anything else is an error, and so is an instance without a name or a state.
pub fn parse_status(body: &[u8]) -> Result<Vec<InstanceStatus>, LabError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| LabError::Status(format!("not JSON: {e}")))?;
    let Some(list) = value.get("instances").and_then(Value::as_array) else {
        return Err(LabError::Status(format!(
            "no \"instances\" list in /status: {value}"
        )));
    };
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let status = instance_status(item);
        if status.name.is_empty() || status.state.is_empty() {
            return Err(LabError::Status(format!(
                "instance without name or state in /status: {item}"
            )));
        }
        out.push(status);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Our agent running in a lab node. Killed when dropped.
#[derive(Debug)]
pub struct Agent {
    node: usize,
    process: DaemonProcess,
    listen: SocketAddr,
    manifests: PathBuf,
    binary: PathBuf,
}

/// What goes around the agent's own arguments: a wrapper before the binary (valgrind), extra
/// arguments after the lab's, and extra environment.
#[derive(Clone, Copy, Debug, Default)]
struct Command<'a> {
    prefix: &'a [String],
    extra: &'a [String],
    env: &'a [(&'a str, &'a str)],
}

impl Agent {
    /// Writes the manifests for `instances`, starts the agent in node `node`'s namespace and waits
    /// until `/status` answers.
    pub fn start(lab: &Lab, node: usize, instances: &[InstanceSpec]) -> Result<Self, LabError> {
        Self::start_binary(&binary()?, lab, node, instances)
    }

    /// [`Agent::start`] with an explicit binary.
    pub fn start_binary(
        binary: &Path,
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
    ) -> Result<Self, LabError> {
        let manifests = Self::write_manifests(lab, node, instances)?;
        Self::start_with_manifests(binary, lab, node, &manifests)
    }

    /// [`Agent::start`] under a wrapper command (`prefix`, e.g. valgrind), which may make the
    /// agent much slower to start: `/status` is given [`WRAPPED_READY_TIMEOUT`] to answer.
    pub fn start_wrapped(
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
        prefix: &[String],
    ) -> Result<Self, LabError> {
        Self::start_command(
            lab,
            node,
            instances,
            &Command {
                prefix,
                ..Command::default()
            },
            WRAPPED_READY_TIMEOUT,
        )
    }

    /// [`Agent::start`] with `extra` arguments after the lab's own (e.g. `--realtime-priority`).
    pub fn start_with_args(
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
        extra: &[String],
    ) -> Result<Self, LabError> {
        Self::start_command(
            lab,
            node,
            instances,
            &Command {
                extra,
                ..Command::default()
            },
            READY_TIMEOUT,
        )
    }

    fn start_command(
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
        command: &Command<'_>,
        ready_timeout: Duration,
    ) -> Result<Self, LabError> {
        let manifests = Self::write_manifests(lab, node, instances)?;
        Self::spawn(&binary()?, lab, node, &manifests, command, ready_timeout)
    }

    /// Writes node `node`'s manifests directory for `instances`; returns it.
    fn write_manifests(
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
    ) -> Result<PathBuf, LabError> {
        for spec in instances {
            spec.validate().map_err(LabError::Invalid)?;
        }
        let name = lab.node_name(node)?.to_owned();
        let dir = lab.workdir().join(format!("agent-{name}"));
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests)
            .map_err(LabError::io(format!("create {}", manifests.display())))?;
        let track_file = track_file_path(lab, node);
        if instances.iter().any(|s| s.track_file.is_some()) && !track_file.exists() {
            std::fs::write(&track_file, "0\n")
                .map_err(LabError::io(format!("write {}", track_file.display())))?;
        }
        let yaml = manifests_yaml(lab.node_count(), lab.spec().ipv6, instances, &track_file)?;
        let file = manifests.join("lab.yaml");
        std::fs::write(&file, yaml).map_err(LabError::io(format!("write {}", file.display())))?;
        Ok(manifests)
    }

    /// Starts the agent in node `node`'s namespace on an existing manifests directory (e.g.
    /// `deploy/examples/lab/`) and waits until `/status` answers.
    pub fn start_with_manifests(
        binary: &Path,
        lab: &Lab,
        node: usize,
        manifests: &Path,
    ) -> Result<Self, LabError> {
        Self::start_with_manifests_and_env(binary, lab, node, manifests, &[])
    }

    /// [`Agent::start_with_manifests`] with `env` added to the agent's environment (e.g.
    /// `LD_PRELOAD` of libfaketime).
    pub fn start_with_manifests_and_env(
        binary: &Path,
        lab: &Lab,
        node: usize,
        manifests: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, LabError> {
        let command = Command {
            env,
            ..Command::default()
        };
        Self::spawn(binary, lab, node, manifests, &command, READY_TIMEOUT)
    }

    /// [`Agent::start_with_manifests`] with `extra` arguments after the lab's own (e.g.
    /// `--realtime-priority`).
    pub fn start_with_manifests_and_args(
        binary: &Path,
        lab: &Lab,
        node: usize,
        manifests: &Path,
        extra: &[String],
    ) -> Result<Self, LabError> {
        let command = Command {
            extra,
            ..Command::default()
        };
        Self::spawn(binary, lab, node, manifests, &command, READY_TIMEOUT)
    }

    /// [`Agent::start_with_manifests`] under a wrapper command (`prefix`, e.g. valgrind):
    /// `/status` is given [`WRAPPED_READY_TIMEOUT`] to answer.
    pub fn start_with_manifests_wrapped(
        binary: &Path,
        lab: &Lab,
        node: usize,
        manifests: &Path,
        prefix: &[String],
    ) -> Result<Self, LabError> {
        Self::spawn(
            binary,
            lab,
            node,
            manifests,
            &Command {
                prefix,
                ..Command::default()
            },
            WRAPPED_READY_TIMEOUT,
        )
    }

    fn spawn(
        binary: &Path,
        lab: &Lab,
        node: usize,
        manifests: &Path,
        command: &Command<'_>,
        ready_timeout: Duration,
    ) -> Result<Self, LabError> {
        let name = lab.node_name(node)?.to_owned();
        let dir = lab.workdir().join(format!("agent-{name}"));
        std::fs::create_dir_all(&dir).map_err(LabError::io(format!("create {}", dir.display())))?;
        let manifests = manifests.to_owned();
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), STATUS_PORT);
        // Runtime state (the IPVS record, real-server verdicts) stays in the lab's work
        // directory, removed with the lab, instead of the host's /run/kube-vrrp.
        let runtime = dir.join("run");
        let (binary, manifests_arg, listen_arg, runtime_arg) = (
            binary.to_string_lossy().into_owned(),
            manifests.to_string_lossy().into_owned(),
            listen.to_string(),
            runtime.to_string_lossy().into_owned(),
        );
        let mut args: Vec<&str> = command.prefix.iter().map(String::as_str).collect();
        args.extend([
            binary.as_str(),
            "run",
            "--node",
            &name,
            "--manifests",
            &manifests_arg,
            "--listen",
            &listen_arg,
            "--runtime-dir",
            &runtime_arg,
        ]);
        args.extend(command.extra.iter().map(String::as_str));
        let mut env = vec![("RUST_LOG", log_filter())];
        env.extend_from_slice(command.env);
        let process = DaemonProcess::spawn(
            "kube-vrrp-agent",
            &name,
            lab.node_ns(node)?,
            &args,
            &env,
            &dir.join("agent.log"),
        )?;
        let mut agent = Self {
            node,
            process,
            listen,
            manifests,
            binary: PathBuf::from(&binary),
        };
        agent.wait_ready(lab, ready_timeout)?;
        Ok(agent)
    }

    fn wait_ready(&mut self, lab: &Lab, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.process.ensure_running()?;
            if let Ok(response) = self.get(lab, "/status")
                && response.status == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "agent /status answering on n{}; log:\n{}",
                        self.node,
                        self.process.log()
                    ),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, lab: &Lab, path: &str) -> Result<http::Response, LabError> {
        let (listen, path) = (self.listen, path.to_owned());
        lab.node_ns(self.node)?
            .run_in(move || http::get(listen, &path, Duration::from_secs(2)))?
            .map_err(|e| LabError::Status(e.to_string()))
    }

    pub fn node(&self) -> usize {
        self.node
    }

    /// The agent's wall clock as its HTTP server stamps a `/healthz` answer (the `Date`
    /// header, whole seconds); `None` when it sends none.
    pub fn date(&self, lab: &Lab) -> Result<Option<String>, LabError> {
        Ok(self.get(lab, "/healthz")?.date)
    }

    /// The agent's whole `/status` document.
    pub fn status_document(&self, lab: &Lab) -> Result<Value, LabError> {
        let response = self.get(lab, "/status")?;
        serde_json::from_slice(&response.body)
            .map_err(|e| LabError::Status(format!("/status is not JSON: {e}")))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The table `kube-vrrp-agent status --agent ADDR` prints, run inside the node's namespace.
    pub fn status_table(&self, lab: &Lab) -> Result<String, LabError> {
        let (binary, listen) = (
            self.binary.to_string_lossy().into_owned(),
            self.listen.to_string(),
        );
        Ok(lab
            .node_ns(self.node)?
            .exec(&[&binary, "status", "--agent", &listen])?)
    }

    /// The instance `name` on `/status`.
    pub fn instance(&self, lab: &Lab, name: &str) -> Result<InstanceStatus, LabError> {
        self.status(lab)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| LabError::Status(format!("no instance {name} on n{}", self.node)))
    }

    /// Polls `/status` until instance `name` satisfies `done`; returns that status.
    pub fn wait_for_instance(
        &self,
        lab: &Lab,
        name: &str,
        timeout: Duration,
        done: impl Fn(&InstanceStatus) -> bool,
    ) -> Result<InstanceStatus, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.instance(lab, name);
            if let Ok(status) = &last
                && done(status)
            {
                return Ok(status.clone());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "instance {name} on n{} reaching the expected status (last: {last:?})",
                        self.node
                    ),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn manifests_dir(&self) -> &Path {
        &self.manifests
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The agent's `/status`.
    pub fn status(&self, lab: &Lab) -> Result<Vec<InstanceStatus>, LabError> {
        let response = self.get(lab, "/status")?;
        if response.status != 200 {
            return Err(LabError::Status(format!(
                "/status answered {}",
                response.status
            )));
        }
        parse_status(&response.body)
    }

    /// The agent's `/metrics` text.
    pub fn metrics(&self, lab: &Lab) -> Result<String, LabError> {
        let response = self.get(lab, "/metrics")?;
        Ok(String::from_utf8_lossy(&response.body).into_owned())
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Graceful stop: SIGTERM and wait.
    pub fn terminate(&mut self) -> Result<(), LabError> {
        self.process.terminate(Duration::from_secs(10))?;
        Ok(())
    }

    /// Node death: cut the node's switch port, then SIGKILL.
    pub fn die(&mut self, lab: &Lab) -> Result<(), LabError> {
        lab.cut(self.node)?;
        self.process.kill()?;
        Ok(())
    }

    /// SIGKILL without cutting the link.
    pub fn kill(&mut self) -> Result<(), LabError> {
        self.process.kill()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addressing::vip;

    #[test]
    fn a_missing_agent_binary_is_reported_as_not_built() {
        let err = binary_from(Some("/nonexistent/kube-vrrp-agent".into()), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("agent binary not built: /nonexistent/kube-vrrp-agent"),
            "{err}"
        );
        let err = binary_from(None, Some("/nonexistent-target".into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent-target/debug/kube-vrrp-agent"),
            "{err}"
        );
        assert_eq!(
            binary_from(Some("/bin/sh".into()), None).unwrap(),
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn a_debug_build_is_known_by_its_version_line() {
        assert!(is_debug_build("kube-vrrp-agent 0.1.0 (debug build)\n"));
        assert!(!is_debug_build("kube-vrrp-agent 0.1.0\n"));
    }

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn manifests_hold_a_virtual_ip_its_secret_and_every_lab_node() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V4, 0)]);
        spec.version = Version::V2;
        spec.priorities = vec![150, 100];
        spec.password = Some("secret".into());
        let yaml = manifests_yaml(2, true, &[spec], Path::new("/lab/track-n1")).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
        assert_eq!(docs.len(), 4, "{yaml}");
        let vip_doc = &docs[0];
        assert_eq!(vip_doc["kind"], "VirtualIP");
        assert_eq!(vip_doc["apiVersion"], "kubevrrp.io/v1alpha1");
        assert_eq!(vip_doc["spec"]["addresses"][0], "192.168.77.50/24");
        assert_eq!(vip_doc["spec"]["virtualRouterID"], 51);
        assert_eq!(vip_doc["spec"]["version"], 2);
        assert_eq!(vip_doc["spec"]["advertInterval"], "1s");
        assert_eq!(vip_doc["spec"]["priorities"][1]["nodeName"], "n2");
        assert_eq!(vip_doc["spec"]["priorities"][1]["priority"], 100);
        assert_eq!(
            vip_doc["spec"]["nodeSelector"]["matchLabels"][LAB_NODE_LABEL],
            "true"
        );
        assert_eq!(
            vip_doc["spec"]["authentication"]["passwordSecretRef"]["name"],
            "web-auth"
        );
        assert_eq!(docs[1]["kind"], "Secret");
        assert_eq!(docs[1]["data"]["password"], "c2VjcmV0");
        assert_eq!(docs[2]["kind"], "Node");
        assert_eq!(docs[2]["metadata"]["name"], "n1");
        assert_eq!(docs[2]["metadata"]["labels"][LAB_NODE_LABEL], "true");
        assert_eq!(
            docs[3]["status"]["addresses"][0]["address"],
            "192.168.77.12"
        );
        assert_eq!(docs[3]["status"]["addresses"][1]["address"], "fd00:77::c");
        assert!(vip_doc["spec"].get("track").is_none(), "{yaml}");
    }

    #[test]
    fn a_tracked_file_becomes_the_virtual_ips_track_files_entry() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V4, 0)]);
        spec.track_file = Some(crate::TrackFile { weight: Some(-60) });
        let docs = manifests(1, false, std::slice::from_ref(&spec), Path::new("/lab/t"));
        let files = &docs[0]["spec"]["track"]["files"];
        assert_eq!(files[0]["path"], "/lab/t");
        assert_eq!(files[0]["weight"], -60);
        spec.track_file = Some(crate::TrackFile { weight: None });
        let docs = manifests(1, false, &[spec], Path::new("/lab/t"));
        assert!(docs[0]["spec"]["track"]["files"][0].get("weight").is_none());
    }

    #[test]
    fn durations_are_spelled_like_the_manifests() {
        assert_eq!(duration_string(Duration::from_secs(1)), "1s");
        assert_eq!(duration_string(Duration::from_millis(100)), "100ms");
        assert_eq!(duration_string(Duration::from_millis(10)), "10ms");
        assert_eq!(duration_string(Duration::ZERO), "0s");
    }

    #[test]
    fn status_is_read_from_the_instances_list_of_the_agent() {
        let body = br#"{"instances": [
            {"name": "web", "vrid": 51, "interface": "eth0", "version": 3, "state": "MASTER",
             "priority": 150, "effectivePriority": 140, "masterAddress": "192.168.77.11",
             "vips": ["192.168.77.50/24"], "transitions": 2, "lastTransition": "2026-11-22T04:00:00Z"},
            {"name": "api", "vrid": 52, "interface": "eth0", "version": "v2", "state": "BACKUP",
             "priority": 100, "effectivePriority": 100, "masterAddress": "",
             "vips": [], "transitions": 1, "lastTransition": null}]}"#;
        let status = parse_status(body).unwrap();
        assert_eq!(
            status.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["api", "web"]
        );
        let web = &status[1];
        assert!(web.is_master());
        assert_eq!(
            (web.vrid, web.interface.as_deref(), web.version.as_deref()),
            (Some(51), Some("eth0"), Some("3"))
        );
        assert_eq!(
            (web.priority, web.effective_priority),
            (Some(150), Some(140))
        );
        assert_eq!(web.master_address.as_deref(), Some("192.168.77.11"));
        assert_eq!(web.vips, ["192.168.77.50/24"]);
        assert_eq!(web.transitions, Some(2));
        assert!(status[0].is_backup());
        assert_eq!(status[0].master_address, None);
        assert_eq!(status[0].version.as_deref(), Some("v2"));
    }

    #[test]
    fn status_without_an_instances_list_or_with_a_nameless_instance_is_an_error() {
        assert!(parse_status(b"42").is_err());
        assert!(parse_status(br#"{"web": {"state": "MASTER"}}"#).is_err());
        assert!(parse_status(br#"{"instances": [{"state": "MASTER"}]}"#).is_err());
        assert!(parse_status(br#"{"instances": [{"name": "web"}]}"#).is_err());
        assert!(parse_status(br#"{"instances": []}"#).unwrap().is_empty());
    }
}
