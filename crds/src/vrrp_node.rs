//! The `VrrpNode` resource: one per node, named after it. The operator writes the fully
//! resolved `spec`; the node's agent writes `status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationString;
use crate::state::State;
use crate::track::Track;
use crate::validation::{Violation, Violations};
use crate::version::VrrpVersion;
use crate::virtual_ip::{Authentication, Garp, InstanceRules};
use crate::virtual_server::{
    Forwarding, HealthCheck, Protocol, Scheduler, SchedulerFlag, SorryServer, Tunnel,
};

/// The per-node VRRP and IPVS configuration, and the agent's report.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubevrrp.io",
    version = "v1alpha1",
    category = "kube-vrrp",
    kind = "VrrpNode",
    plural = "vrrpnodes",
    singular = "vrrpnode",
    shortname = "vrn",
    status = "VrrpNodeStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Per-node config from the operator, and the node agent's report."
)]
#[kube(
    printcolumn = r#"{"name":"Instances", "type":"integer", "description":"VRRP instances running", "jsonPath":".status.instanceCount"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Masters", "type":"integer", "description":"Instances in MASTER state", "jsonPath":".status.masterCount"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Generation", "type":"integer", "description":"Spec generation written by the operator", "jsonPath":".metadata.generation"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Observed", "type":"integer", "description":"Spec generation the agent applied", "jsonPath":".status.observedGeneration"}"#
)]
#[kube(printcolumn = r#"{"name":"Heartbeat", "type":"date", "jsonPath":".status.heartbeatTime"}"#)]
#[kube(printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#)]
#[serde(rename_all = "camelCase")]
pub struct VrrpNodeSpec {
    /// VRRP instances this node takes part in, fully resolved.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub instances: Vec<VrrpInstance>,
    /// IPVS services this node programs while MASTER of their VirtualIP.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub virtual_servers: Vec<ResolvedVirtualServer>,
}

/// One VRRP instance on this node: a VirtualIP with everything decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VrrpInstance {
    /// Name of the VirtualIP.
    pub name: String,
    /// Interface to run on; omitted: the agent picks by subnet, then by InternalIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Virtual Router ID.
    #[serde(rename = "virtualRouterID")]
    #[schemars(range(min = 1, max = 255))]
    pub virtual_router_id: u8,
    /// VRRP version.
    pub version: VrrpVersion,
    /// Virtual addresses as CIDRs, one family.
    #[schemars(length(min = 1, max = 64), inner(length(max = 64)))]
    pub addresses: Vec<String>,
    /// This node's priority, 1..254.
    #[schemars(range(min = 1, max = 254))]
    pub priority: u8,
    /// Time between adverts.
    pub advert_interval: DurationString,
    /// Preempt lower-priority masters.
    pub preempt: bool,
    /// Delay before preempting after start-up.
    pub preempt_delay: DurationString,
    /// RFC 5798 Accept_Mode: false drops traffic addressed to the VIPs on this node (absent:
    /// true, the API default).
    #[serde(default = "crate::virtual_ip::default_true")]
    pub accept_mode: bool,
    /// Unicast peers (the other nodes' addresses); empty: multicast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 64)))]
    pub unicast_peers: Vec<String>,
    /// VRRPv2 authentication; the agent reads the password from the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Gratuitous ARP / NA settings.
    #[serde(default)]
    pub garp: Garp,
    /// Sync group name; instances in one group fail over together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_group: Option<String>,
    /// Use the RFC virtual MAC via macvlan.
    #[serde(rename = "useVirtualMAC", default)]
    pub use_virtual_mac: bool,
    /// Trackers.
    #[serde(default, skip_serializing_if = "Track::is_empty")]
    pub track: Track,
}

/// Most unicast peers of one instance (schema `maxItems`).
pub const MAX_UNICAST_PEERS: usize = 256;

/// The annotation by which the operator asks a node's agent to report now: its value is
/// echoed in `status.rollCall` by the next status write of a live agent (see the operator's
/// fold module for when it is set).
pub const ROLL_CALL_ANNOTATION: &str = "kubevrrp.io/roll-call";

impl VrrpInstance {
    /// Checks the instance with the rules of the VirtualIP it was planned from (one rule set:
    /// the same code as `VirtualIpSpec::validate`), plus its own (priority 1..254, unicast
    /// peers are IP addresses). Field paths are relative to the instance (`advertInterval`).
    /// The agent runs this on every instance it is given, from the API or a directory.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Violations::default();
        out.required("name", &self.name);
        let shared = InstanceRules {
            addresses: &self.addresses,
            virtual_router_id: Some(self.virtual_router_id),
            interface: self.interface.as_deref(),
            version: self.version,
            advert_interval: &self.advert_interval,
            preempt_delay: &self.preempt_delay,
            authentication: self.authentication.as_ref(),
            garp: Some(&self.garp),
            sync_group: self.sync_group.as_deref(),
            track: Some(&self.track),
        };
        shared.check("", &mut out);
        out.range("priority", i64::from(self.priority), 1, 254);
        out.max_items("unicastPeers", &self.unicast_peers, MAX_UNICAST_PEERS);
        for (i, peer) in self.unicast_peers.iter().enumerate() {
            out.ip(&format!("unicastPeers[{i}]"), peer);
        }
        out.into_vec()
    }
}

/// An IPVS virtual service with its real servers resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedVirtualServer {
    /// Name of the VirtualServer.
    pub name: String,
    /// Name of the VirtualIP (the instance) it follows.
    #[serde(rename = "virtualIP")]
    pub virtual_ip: String,
    /// IP addresses (without prefix length) of the service: one IPVS service each.
    #[schemars(length(min = 1, max = 64), inner(length(max = 64)))]
    pub addresses: Vec<String>,
    /// Port of the virtual service.
    pub port: u16,
    /// Transport protocol.
    pub protocol: Protocol,
    /// IPVS scheduler.
    pub scheduler: Scheduler,
    /// Flags of the sh and mh schedulers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// Forwarding method.
    pub forwarding: Forwarding,
    /// Encapsulation of TUN forwarding; omitted: IP-in-IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Persistence timeout (whole seconds); omitted: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<DurationString>,
    /// Persistence granularity as a prefix length; omitted: per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128))]
    pub persistence_granularity: Option<u8>,
    /// Minimum healthy weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Server used when no real server is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// Keep failed real servers at weight 0 instead of removing them.
    #[serde(default)]
    pub inhibit_on_failure: bool,
    /// Real servers: static ones plus the backend Service's ready endpoints.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub real_servers: Vec<ResolvedRealServer>,
    /// Health check; omitted: always healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// A real server with its port decided.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedRealServer {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// IPVS weight.
    pub weight: u32,
    /// Upper connection threshold; omitted: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<u32>,
    /// Lower connection threshold; omitted: the kernel's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<u32>,
    /// A terminating endpoint: drained (weight 0, no new connections) and removed once its
    /// connections end or the drain times out; never added.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

/// The agent's report for its node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VrrpNodeStatus {
    /// Number of VRRP instances running (for `kubectl get vrrpnodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Number of instances in MASTER state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_count: Option<u32>,
    /// Each instance's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceStatus>,
    /// IPVS on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<IpvsStatus>,
    /// Trackers and real-server health checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkers: Vec<CheckerStatus>,
    /// Each checked VirtualServer's quorum as this node's health checks see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub quorums: Vec<QuorumStatus>,
    /// When the agent last wrote this status; stale means the agent is down. RFC 3339 with
    /// microseconds (the whole seconds earlier agents wrote read as well): the operator orders
    /// it against other nodes' transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<MicroTime>,
    /// IPVSAvailable and others (see `kube_vrrp_crds::condition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation the agent applied (instances it could not apply are listed in
    /// `rejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Instances of the spec the agent does not run as given, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub rejected: Vec<RejectedInstance>,
    /// The roll call (annotation `kubevrrp.io/roll-call`) this report answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_call: Option<String>,
}

/// Why the agent does not run an instance as its spec says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RejectReason {
    /// The instance breaks a validation rule (the VirtualIP rules, checked again at the agent).
    Invalid,
    /// The v2 password cannot be read: the Secret or its key is missing, reading it is
    /// forbidden, or the API failed.
    SecretUnavailable,
    /// The instance asks for something this agent cannot do in its mode.
    Unsupported,
    /// The instance is valid but could not be started (no interface, VRID taken, ...); the
    /// agent keeps retrying.
    StartFailed,
    /// The instance runs a script from outside the directories the agent allows scripts from
    /// (its `--script-dir`).
    ScriptNotAllowed,
    /// The instance tracks a file outside the directories the agent may read tracked files
    /// from (its `--track-file-dir`).
    TrackFileNotAllowed,
}

impl RejectReason {
    /// The name used in status, conditions, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid",
            Self::SecretUnavailable => "SecretUnavailable",
            Self::Unsupported => "Unsupported",
            Self::StartFailed => "StartFailed",
            Self::ScriptNotAllowed => "ScriptNotAllowed",
            Self::TrackFileNotAllowed => "TrackFileNotAllowed",
        }
    }
}

/// One instance the agent does not run as given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedInstance {
    /// Name of the instance (the VirtualIP).
    pub name: String,
    /// Why, as a word.
    pub reason: RejectReason,
    /// What is wrong and what to do about it.
    pub message: String,
    /// The agent still runs the version of this instance it applied before (the new one was
    /// rejected); false when the instance does not run at all.
    #[serde(default)]
    pub running_previous: bool,
}

/// One VRRP instance as the agent sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Name of the VirtualIP.
    pub name: String,
    /// Current VRRP state.
    pub state: State,
    /// Configured priority.
    pub priority: u8,
    /// Priority after trackers.
    pub effective_priority: u8,
    /// Source address of the last advert heard from the MASTER (this node's own when MASTER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_address: Option<String>,
    /// State changes since the agent started.
    #[serde(default)]
    pub transitions: u64,
    /// When the state last changed, RFC 3339 with microseconds: the operator orders two
    /// nodes' MASTER transitions by it, and a MASTER may die within the second it was elected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<MicroTime>,
    /// Virtual addresses present on the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips_held: Vec<String>,
    /// Why the instance is not running normally, when it is not: a VIP held by another owner
    /// (both named), no address to send from, a failed VIP add and its retry, VIPs removed by
    /// something else, `acceptMode: false` not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Another holder of this instance's VIPs, seen by this node's own ARP / NDP probes while
    /// MASTER (split brain that needs no API server to be seen). Absent when none answers,
    /// when this node is not MASTER, and with a virtual MAC (every holder answers with the same
    /// MAC, so no other holder can be told apart: `message` says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_conflict: Option<HolderConflict>,
}

/// Another node answering for a VIP this node holds as MASTER.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HolderConflict {
    /// The VIP the other holder answered for.
    pub address: String,
    /// The other holder's hardware address, `aa:bb:cc:dd:ee:ff`.
    pub other_mac: String,
    /// When its first answer was seen, RFC 3339 with microseconds.
    pub since: MicroTime,
}

/// IPVS summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpvsStatus {
    /// The kernel can program IPVS.
    pub available: bool,
    /// Virtual services programmed.
    #[serde(default)]
    pub services: u32,
    /// Real servers programmed across all services.
    #[serde(default)]
    pub real_servers: u32,
    /// Why IPVS is unavailable, or the last programming error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The virtual services of this node's VirtualServers (one per VirtualServer address),
    /// as the kernel has them: what the agent programmed, or why it could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub virtual_services: Vec<IpvsServiceStatus>,
}

/// One virtual service of a VirtualServer on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpvsServiceStatus {
    /// Name of the VirtualServer.
    pub virtual_server: String,
    /// The service's address (one of the VirtualIP's).
    pub address: String,
    /// The service's port.
    pub port: u16,
    /// The service's protocol.
    pub protocol: Protocol,
    /// The service is in the kernel with the VirtualServer's settings, owned by this agent.
    pub programmed: bool,
    /// Why it is not programmed (or not completely).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The real servers the kernel has for this service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub real_servers: Vec<IpvsRealServerStatus>,
}

/// One real server as the kernel has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpvsRealServerStatus {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Weight in the kernel (0 while draining).
    pub weight: u32,
    /// Established connections.
    pub active_connections: u32,
    /// Connections in other states (e.g. closing, or UDP).
    pub inactive_connections: u32,
    /// Being drained: no new connections, removed when the last one ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

/// What a checker watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CheckerKind {
    /// A tracked interface.
    Interface,
    /// A tracked file.
    File,
    /// A tracked script.
    Script,
    /// A tracked Service's endpoints.
    Endpoints,
    /// A real server's health check.
    RealServer,
    /// A VirtualServer's quorum (`track.virtualServers`).
    VirtualServer,
}

impl CheckerKind {
    /// The name used in status, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interface => "Interface",
            Self::File => "File",
            Self::Script => "Script",
            Self::Endpoints => "Endpoints",
            Self::RealServer => "RealServer",
            Self::VirtualServer => "VirtualServer",
        }
    }
}

/// One tracker or health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckerStatus {
    /// What is checked.
    pub kind: CheckerKind,
    /// The instance (VirtualIP) or VirtualServer the checker belongs to.
    pub owner: String,
    /// Interface name, file path, script name, `namespace/service`, or `address:port`.
    pub target: String,
    /// Passing.
    pub healthy: bool,
    /// When `healthy` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Why it fails, if it does; for a real server, what its last check saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the last check of a real server ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<CheckResult>,
}

/// How one health check of a real server ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CheckResult {
    /// The check passed.
    Passed,
    /// The connection was refused (nothing listens, or a firewall rejects).
    Refused,
    /// No route, host or network unreachable.
    Unreachable,
    /// No connection or no complete answer within the timeout.
    Timeout,
    /// The connection failed otherwise (reset, closed early, ...).
    ConnectionFailed,
    /// The TLS handshake failed (including an unverified certificate).
    TlsFailed,
    /// The answer is not valid HTTP/1.x.
    InvalidResponse,
    /// The HTTP status is not one of `expectedStatus`.
    UnexpectedStatus,
    /// The body's SHA-256 differs from `bodyDigest`.
    DigestMismatch,
    /// The body is longer than `maxBodyBytes`.
    BodyTooLarge,
    /// The script exited with a status other than 0, or was killed by a signal.
    ScriptFailed,
    /// The script was still running at the timeout and was killed.
    ScriptTimedOut,
    /// The script could not be started.
    ScriptNotStarted,
    /// The check cannot run as configured (e.g. `sourceAddress` is not on this node).
    Misconfigured,
}

impl CheckResult {
    /// The name written to status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "Passed",
            Self::Refused => "Refused",
            Self::Unreachable => "Unreachable",
            Self::Timeout => "Timeout",
            Self::ConnectionFailed => "ConnectionFailed",
            Self::TlsFailed => "TlsFailed",
            Self::InvalidResponse => "InvalidResponse",
            Self::UnexpectedStatus => "UnexpectedStatus",
            Self::DigestMismatch => "DigestMismatch",
            Self::BodyTooLarge => "BodyTooLarge",
            Self::ScriptFailed => "ScriptFailed",
            Self::ScriptTimedOut => "ScriptTimedOut",
            Self::ScriptNotStarted => "ScriptNotStarted",
            Self::Misconfigured => "Misconfigured",
        }
    }

    /// The `result` label of `kube_vrrp_realserver_checks_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Refused => "refused",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::ConnectionFailed => "connection_failed",
            Self::TlsFailed => "tls_failed",
            Self::InvalidResponse => "invalid_response",
            Self::UnexpectedStatus => "unexpected_status",
            Self::DigestMismatch => "digest_mismatch",
            Self::BodyTooLarge => "body_too_large",
            Self::ScriptFailed => "script_failed",
            Self::ScriptTimedOut => "script_timed_out",
            Self::ScriptNotStarted => "script_not_started",
            Self::Misconfigured => "misconfigured",
        }
    }

    /// Every result, for tests and metric documentation.
    pub const ALL: [Self; 14] = [
        Self::Passed,
        Self::Refused,
        Self::Unreachable,
        Self::Timeout,
        Self::ConnectionFailed,
        Self::TlsFailed,
        Self::InvalidResponse,
        Self::UnexpectedStatus,
        Self::DigestMismatch,
        Self::BodyTooLarge,
        Self::ScriptFailed,
        Self::ScriptTimedOut,
        Self::ScriptNotStarted,
        Self::Misconfigured,
    ];
}

/// A VirtualServer's quorum on this node (keepalived's quorum state of a virtual server).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuorumStatus {
    /// Name of the VirtualServer.
    pub virtual_server: String,
    /// The healthy weight reaches the quorum.
    pub up: bool,
    /// Sum of the configured weights of the real servers that pass their checks (or are not
    /// checked yet).
    pub healthy_weight: u64,
    /// The quorum in force (`quorum`, else 1).
    pub quorum: u32,
    /// The sorry server takes all traffic (quorum lost and a sorry server configured).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sorry_server_active: bool,
    /// When `up` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}
