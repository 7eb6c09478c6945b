//! The `VirtualServer` resource (a keepalived `virtual_server`): spec, status and `validate()`.

use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationString;
use crate::validation::{MAX_REAL_SERVERS, Violation, ViolationKind, Violations};

/// An IPVS virtual service on a VirtualIP's addresses, balancing over real servers.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubevrrp.io",
    version = "v1alpha1",
    category = "kube-vrrp",
    kind = "VirtualServer",
    plural = "virtualservers",
    singular = "virtualserver",
    shortname = "vsvr",
    status = "VirtualServerStatus",
    derive = "PartialEq",
    doc = "An IPVS virtual service on a VirtualIP (a keepalived virtual_server)."
)]
#[kube(printcolumn = r#"{"name":"VirtualIP", "type":"string", "jsonPath":".spec.virtualIPRef"}"#)]
#[kube(printcolumn = r#"{"name":"Port", "type":"integer", "jsonPath":".spec.port"}"#)]
#[kube(printcolumn = r#"{"name":"Protocol", "type":"string", "jsonPath":".spec.protocol"}"#)]
#[kube(
    printcolumn = r#"{"name":"Healthy", "type":"string", "description":"Healthy real servers / real servers", "jsonPath":".status.healthySummary"}"#
)]
#[kube(printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::virtual_server_spec)]
pub struct VirtualServerSpec {
    /// Name of the VirtualIP whose addresses this service listens on.
    #[serde(rename = "virtualIPRef")]
    #[schemars(length(min = 1, max = 253))]
    pub virtual_ip_ref: String,
    /// Port of the virtual service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Transport protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// IPVS scheduler.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// How packets reach real servers.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Flags of the `sh` and `mh` schedulers: `fallback` (pick another real server when the
    /// hashed one is unavailable) and `port` (hash the source port too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub scheduler_flags: Vec<SchedulerFlag>,
    /// Client affinity: connections from one client go to the same real server for this
    /// long (whole seconds). Omitted: no persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<DurationString>,
    /// Persistence granularity as a prefix length: clients in one network of this size share
    /// their real server (IPv4 up to 32, IPv6 up to 128). Omitted: per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128))]
    pub persistence_granularity: Option<u8>,
    /// Encapsulation of `forwarding: TUN`. Omitted: IP-in-IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Minimum total weight of healthy real servers for the service to count as up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quorum: Option<u32>,
    /// Server that takes all traffic when no real server is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// Keep failed real servers with weight 0 instead of removing them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inhibit_on_failure: bool,
    /// Static real servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub real_servers: Vec<RealServer>,
    /// A Service whose ready EndpointSlice endpoints become real servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendRef>,
    /// How real servers are checked. Omitted: they are always considered healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// IPVS transport protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// The name used in manifests, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

/// IPVS scheduler, named as the kernel modules `ip_vs_<name>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Weighted least connections (default).
    #[default]
    Wlc,
    /// Locality-based least connections.
    Lblc,
    /// Locality-based least connections with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Maglev hashing.
    Mh,
}

impl Scheduler {
    /// The kernel's scheduler name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rr => "rr",
            Self::Wrr => "wrr",
            Self::Lc => "lc",
            Self::Wlc => "wlc",
            Self::Lblc => "lblc",
            Self::Lblcr => "lblcr",
            Self::Dh => "dh",
            Self::Sh => "sh",
            Self::Sed => "sed",
            Self::Nq => "nq",
            Self::Mh => "mh",
        }
    }
}

/// IPVS forwarding method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Forwarding {
    /// Masquerading: the node rewrites the destination (default).
    #[default]
    #[serde(rename = "NAT")]
    Nat,
    /// Direct routing: real servers on the same segment answer clients themselves.
    #[serde(rename = "DR")]
    Dr,
    /// IP-in-IP tunnelling.
    #[serde(rename = "TUN")]
    Tun,
}

impl Forwarding {
    /// The name used in manifests, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nat => "NAT",
            Self::Dr => "DR",
            Self::Tun => "TUN",
        }
    }
}

/// A flag of the `sh` and `mh` schedulers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerFlag {
    /// Pick another real server when the hashed one is unavailable (`sh-fallback`, `mh-fallback`).
    Fallback,
    /// Hash the source port as well as the address (`sh-port`, `mh-port`).
    Port,
}

/// Encapsulation of tunnelled (`TUN`) real servers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::tunnel)]
pub struct Tunnel {
    /// Encapsulation type.
    #[serde(default, rename = "type")]
    pub kind: TunnelType,
    /// Destination UDP port of a GUE tunnel (required for GUE, refused for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Checksum of the outer UDP header (GUE, GRE).
    #[serde(default)]
    pub checksum: TunnelChecksum,
}

/// Tunnel encapsulation type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TunnelType {
    /// IP in IP.
    #[default]
    #[serde(rename = "IPIP")]
    Ipip,
    /// Generic UDP Encapsulation.
    #[serde(rename = "GUE")]
    Gue,
    /// Generic Routing Encapsulation.
    #[serde(rename = "GRE")]
    Gre,
}

/// Tunnel checksum option.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum TunnelChecksum {
    /// No checksum.
    #[default]
    None,
    /// Checksum the encapsulation (GUE, GRE).
    Checksum,
    /// Remote checksum offload (GUE only).
    RemoteChecksum,
}

fn default_weight() -> u32 {
    1
}

/// A static real server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::server_address)]
#[schemars(transform = crate::cel::thresholds)]
pub struct RealServer {
    /// IP address of the real server.
    #[schemars(length(min = 1, max = 64))]
    pub address: String,
    /// Port on the real server. Omitted: the virtual service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// IPVS weight, 0..65535 (0 takes no new connections).
    #[serde(default = "default_weight")]
    #[schemars(range(max = 65535))]
    pub weight: u32,
    /// Active connections above which the real server takes no new ones. Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub upper_threshold: Option<u32>,
    /// Active connections below which an overloaded real server takes new ones again (needs
    /// `upperThreshold`, below it). Omitted: the kernel uses 3/4 of `upperThreshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub lower_threshold: Option<u32>,
}

/// The server used when no real server is healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::server_address)]
pub struct SorryServer {
    /// IP address of the sorry server.
    #[schemars(length(min = 1, max = 64))]
    pub address: String,
    /// Port on the sorry server. Omitted: the virtual service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// A Service whose endpoints become real servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::thresholds)]
pub struct BackendRef {
    /// Namespace of the Service.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Service.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The Service port (name or number) whose endpoint port is used. Omitted: the
    /// Service's only port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// IPVS weight of every endpoint.
    #[serde(default = "default_weight")]
    #[schemars(range(max = 65535))]
    pub weight: u32,
    /// Upper connection threshold of every endpoint (see `realServers[].upperThreshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub upper_threshold: Option<u32>,
    /// Lower connection threshold of every endpoint (see `realServers[].lowerThreshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub lower_threshold: Option<u32>,
}

fn default_check_interval() -> DurationString {
    DurationString::new("5s")
}

fn default_check_timeout() -> DurationString {
    DurationString::new("3s")
}

fn default_retry_delay() -> DurationString {
    DurationString::new("1s")
}

fn default_one() -> u32 {
    1
}

/// How real servers are checked: exactly one of `tcp`, `http` or `script`.
///
/// Timers follow keepalived's checkers: a check starts every `interval` (spread over the
/// interval across real servers); one attempt may take `timeout`; a failed attempt of a healthy
/// real server is tried again after `delayBeforeRetry`, up to `retries` attempts in all, and
/// only then does the check fail (a real server already failing, or not checked yet, gets one
/// attempt per check). `fall` failed checks in a row take a healthy real server out, `rise`
/// passed checks in a row bring a failing one back. The first check after the agent starts
/// decides at once, whatever `rise` and `fall` say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::health_check)]
pub struct HealthCheck {
    /// Connect over TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// Send an HTTP(S) GET and check the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// Run a command; exit status 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptCheck>,
    /// Time between checks of one real server (more than 0).
    #[serde(default = "default_check_interval")]
    pub interval: DurationString,
    /// Time a single attempt may take (more than 0): connecting, and for HTTP the whole
    /// answer; a script still running then is killed.
    #[serde(default = "default_check_timeout")]
    pub timeout: DurationString,
    /// Attempts per check before it counts as failed (keepalived's `retry` + 1).
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 10))]
    pub retries: u32,
    /// Wait between attempts of one check.
    #[serde(default = "default_retry_delay")]
    pub delay_before_retry: DurationString,
    /// Consecutive passing checks to become healthy.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 255))]
    pub rise: u32,
    /// Consecutive failing checks to become unhealthy.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 255))]
    pub fall: u32,
    /// Local IP address the tcp and http checks connect from (keepalived's `bindto`), of the
    /// real servers' family. Omitted: the kernel's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub source_address: Option<String>,
}

/// A TCP connect check: healthy when the connection is accepted within the timeout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    /// Port to connect to. Omitted: the real server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_expected_status() -> Vec<u16> {
    vec![200]
}

/// The default of `healthCheck.http.maxBodyBytes`: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u32 = 1 << 20;
/// The largest `healthCheck.http.maxBodyBytes`: 16 MiB.
pub const MAX_MAX_BODY_BYTES: u32 = 16 << 20;

fn default_max_body_bytes() -> u32 {
    DEFAULT_MAX_BODY_BYTES
}

/// An HTTP or HTTPS GET check (HTTP/1.1, one request per connection): healthy when the
/// status is one of `expectedStatus` and, with `bodyDigest`, the body's SHA-256 matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::http_check)]
pub struct HttpCheck {
    /// Request path (with the query, if any).
    #[serde(default = "default_path")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^/"))]
    pub path: String,
    /// Port to connect to. Omitted: the real server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Host name (or IP address) sent as the `Host` header, with `:port` when the port is not
    /// the scheme's default, and with HTTPS as the TLS server name (SNI) and the name the
    /// certificate is verified against. Omitted: the real server's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// Use TLS (HTTPS). The certificate is not verified unless `verifyCertificate` is set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https: bool,
    /// HTTPS: verify the server's certificate chain (against `caBundle`, else the agent's
    /// system trust store) and that it names `host` (else the real server's address).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_certificate: bool,
    /// PEM certificates trusted when `verifyCertificate` is set, instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32768))]
    pub ca_bundle: Option<String>,
    /// Status codes that count as healthy.
    #[serde(default = "default_expected_status")]
    #[schemars(length(min = 1, max = 16), inner(range(min = 100, max = 599)))]
    pub expected_status: Vec<u16>,
    /// Lowercase hex SHA-256 of the expected response body. Omitted: the body is not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub body_digest: Option<String>,
    /// Longest body read (1 to 16777216 bytes): a longer body fails the check. Default 1 MiB.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1, max = 16_777_216))]
    pub max_body_bytes: u32,
}

/// A command check, run on the node with the real server's address and port in the
/// environment variables `REAL_SERVER_ADDRESS` and `REAL_SERVER_PORT`. The program must lie
/// in a directory the agent allows scripts from (its `--script-dir`); a VirtualServer naming
/// another is not programmed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::script_command)]
pub struct ScriptCheck {
    /// Absolute path of the program, then its arguments (no shell).
    #[schemars(length(min = 1, max = 64), inner(length(max = 4096)))]
    pub command: Vec<String>,
}

/// What the operator observed about a VirtualServer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServerStatus {
    /// Healthy real servers, slash, all real servers (as seen by the MASTER): e.g. "2/3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_summary: Option<String>,
    /// Health and weight of each real server, as seen by the MASTER.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<RealServerStatus>,
    /// The MASTER reports its sorry server taking all traffic (the quorum is lost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sorry_server_active: bool,
    /// Programmed, Available, Quorum, Degraded (see `kube_vrrp_crds::condition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One real server: whether the MASTER programmed it, with which weight, and its health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealServerStatus {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// The MASTER reports it in IPVS (on every address of the VirtualServer).
    #[serde(default)]
    pub programmed: bool,
    /// Being drained: a terminating endpoint at weight 0, removed when its connections end.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// Weight in IPVS as the MASTER reports it (0 when not programmed or drained).
    pub weight: u32,
    /// Passing its health check.
    pub healthy: bool,
    /// When health last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// What the MASTER's last check of it saw (why it fails, when it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How the MASTER's last check of it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<crate::vrrp_node::CheckResult>,
}

impl VirtualServerSpec {
    /// Checks every rule the schema and its CEL rules enforce, returning all violations
    /// (empty when valid). Field paths start at the object root (`spec.realServers[0]`).
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Violations::default();
        out.required("spec.virtualIPRef", &self.virtual_ip_ref);
        out.range("spec.port", i64::from(self.port), 1, 65535);
        if let Some(t) = &self.persistence_timeout {
            out.whole_seconds("spec.persistenceTimeout", t);
        }
        if !self.scheduler_flags.is_empty()
            && !matches!(self.scheduler, Scheduler::Sh | Scheduler::Mh)
        {
            out.push(
                "spec.schedulerFlags",
                ViolationKind::InvalidFormat,
                "schedulerFlags apply to the sh and mh schedulers only".to_owned(),
            );
        }
        if let Some(g) = self.persistence_granularity {
            out.range("spec.persistenceGranularity", i64::from(g), 1, 128);
            if self.persistence_timeout.is_none() {
                out.push(
                    "spec.persistenceGranularity",
                    ViolationKind::Required,
                    "persistenceGranularity needs persistenceTimeout".to_owned(),
                );
            }
        }
        if let Some(t) = &self.tunnel {
            if self.forwarding != Forwarding::Tun {
                out.push(
                    "spec.tunnel",
                    ViolationKind::InvalidFormat,
                    "tunnel applies to forwarding: TUN only".to_owned(),
                );
            }
            t.check("spec.tunnel", &mut out);
        }
        if let Some(q) = self.quorum {
            out.range("spec.quorum", i64::from(q), 1, i64::from(u32::MAX));
        }
        if let Some(s) = &self.sorry_server {
            out.ip("spec.sorryServer.address", &s.address);
            if let Some(p) = s.port {
                out.range("spec.sorryServer.port", i64::from(p), 1, 65535);
            }
        }
        if self.real_servers.is_empty() && self.backend_ref.is_none() {
            out.push(
                "spec",
                ViolationKind::Required,
                "a VirtualServer needs realServers, a backendRef, or both".to_owned(),
            );
        }
        out.max_items("spec.realServers", &self.real_servers, MAX_REAL_SERVERS);
        for (i, r) in self.real_servers.iter().enumerate() {
            let f = format!("spec.realServers[{i}]");
            out.ip(&format!("{f}.address"), &r.address);
            if let Some(p) = r.port {
                out.range(&format!("{f}.port"), i64::from(p), 1, 65535);
            }
            out.range(&format!("{f}.weight"), i64::from(r.weight), 0, 65535);
            thresholds(&f, r.upper_threshold, r.lower_threshold, &mut out);
        }
        if let Some(b) = &self.backend_ref {
            out.required("spec.backendRef.namespace", &b.namespace);
            out.required("spec.backendRef.name", &b.name);
            out.range("spec.backendRef.weight", i64::from(b.weight), 0, 65535);
            thresholds(
                "spec.backendRef",
                b.upper_threshold,
                b.lower_threshold,
                &mut out,
            );
        }
        if let Some(hc) = &self.health_check {
            hc.check("spec.healthCheck", &mut out);
            if let Some(v4) = hc.source_is_ipv4() {
                for (i, r) in self.real_servers.iter().enumerate() {
                    if r.address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4() != v4) {
                        out.push(
                            format!("spec.realServers[{i}].address"),
                            ViolationKind::MixedFamilies,
                            "is not of healthCheck.sourceAddress's family: checks connect \
                             from that address"
                                .to_owned(),
                        );
                    }
                }
            }
        }
        out.into_vec()
    }
}

/// A lower threshold needs an upper one above it.
fn thresholds(field: &str, upper: Option<u32>, lower: Option<u32>, out: &mut Violations) {
    if let Some(lower) = lower
        && upper.is_none_or(|upper| lower >= upper)
    {
        out.push(
            format!("{field}.lowerThreshold"),
            ViolationKind::OutOfRange,
            format!("{lower} needs an upperThreshold above it"),
        );
    }
}

impl Tunnel {
    fn check(&self, field: &str, out: &mut Violations) {
        if (self.kind == TunnelType::Gue) != self.port.is_some() {
            out.push(
                format!("{field}.port"),
                ViolationKind::Required,
                "port is required for GUE tunnels and refused for others".to_owned(),
            );
        }
        if self.checksum == TunnelChecksum::RemoteChecksum && self.kind != TunnelType::Gue {
            out.push(
                format!("{field}.checksum"),
                ViolationKind::InvalidFormat,
                "RemoteChecksum is a GUE option".to_owned(),
            );
        }
        if self.checksum == TunnelChecksum::Checksum && self.kind == TunnelType::Ipip {
            out.push(
                format!("{field}.checksum"),
                ViolationKind::InvalidFormat,
                "IPIP has no checksum option".to_owned(),
            );
        }
    }
}

impl HealthCheck {
    /// The address family (true: IPv4) every real server must have when `sourceAddress` is
    /// set, if it is an IP address.
    fn source_is_ipv4(&self) -> Option<bool> {
        self.source_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .map(|a| a.is_ipv4())
    }

    fn check(&self, field: &str, out: &mut Violations) {
        let kinds = usize::from(self.tcp.is_some())
            + usize::from(self.http.is_some())
            + usize::from(self.script.is_some());
        if kinds != 1 {
            out.push(
                field,
                ViolationKind::ExactlyOneOf,
                format!("needs exactly one of tcp, http or script; {kinds} are set"),
            );
        }
        if let Some(tcp) = &self.tcp
            && let Some(p) = tcp.port
        {
            out.range(&format!("{field}.tcp.port"), i64::from(p), 1, 65535);
        }
        if let Some(http) = &self.http {
            http.check(&format!("{field}.http"), out);
        }
        if let Some(script) = &self.script {
            script_command(&format!("{field}.script.command"), &script.command, out);
        }
        if let Some(source) = &self.source_address {
            let f = format!("{field}.sourceAddress");
            out.ip(&f, source);
            if self.script.is_some() {
                out.push(
                    f,
                    ViolationKind::InvalidFormat,
                    "a script check does not connect: sourceAddress applies to tcp and http \
                     checks only"
                        .to_owned(),
                );
            }
        }
        for (name, value) in [("interval", &self.interval), ("timeout", &self.timeout)] {
            let f = format!("{field}.{name}");
            if out.duration(&f, value).is_some_and(|d| d.is_zero()) {
                out.push(
                    f,
                    ViolationKind::OutOfRange,
                    format!("{value} must be more than 0, e.g. \"1s\""),
                );
            }
        }
        out.duration(
            &format!("{field}.delayBeforeRetry"),
            &self.delay_before_retry,
        );
        out.range(&format!("{field}.retries"), i64::from(self.retries), 1, 10);
        out.range(&format!("{field}.rise"), i64::from(self.rise), 1, 255);
        out.range(&format!("{field}.fall"), i64::from(self.fall), 1, 255);
    }
}

impl HttpCheck {
    fn check(&self, f: &str, out: &mut Violations) {
        if !self.path.starts_with('/') {
            out.push(
                format!("{f}.path"),
                ViolationKind::InvalidFormat,
                format!("{:?} must start with '/'", self.path),
            );
        }
        if let Some(p) = self.port {
            out.range(&format!("{f}.port"), i64::from(p), 1, 65535);
        }
        if let Some(host) = &self.host
            && host.parse::<IpAddr>().is_err()
            && !is_host_name(host)
        {
            out.push(
                format!("{f}.host"),
                ViolationKind::InvalidFormat,
                format!(
                    "{host:?} is neither a host name nor an IP address (no port: the check's \
                     port is appended when it is not the scheme's default)"
                ),
            );
        }
        if self.verify_certificate && !self.https {
            out.push(
                format!("{f}.verifyCertificate"),
                ViolationKind::InvalidFormat,
                "verifyCertificate applies to HTTPS: set https: true".to_owned(),
            );
        }
        if let Some(bundle) = &self.ca_bundle {
            if !self.verify_certificate {
                out.push(
                    format!("{f}.caBundle"),
                    ViolationKind::InvalidFormat,
                    "caBundle is used only to verify certificates: set verifyCertificate: true"
                        .to_owned(),
                );
            }
            if !bundle.starts_with(PEM_CERTIFICATE) {
                out.push(
                    format!("{f}.caBundle"),
                    ViolationKind::InvalidFormat,
                    format!("must hold PEM certificates, starting with {PEM_CERTIFICATE}"),
                );
            }
        }
        if self.expected_status.is_empty() {
            out.push(
                format!("{f}.expectedStatus"),
                ViolationKind::Required,
                "needs at least one status code, e.g. [200]".to_owned(),
            );
        }
        for (i, s) in self.expected_status.iter().enumerate() {
            out.range(&format!("{f}.expectedStatus[{i}]"), i64::from(*s), 100, 599);
        }
        if let Some(d) = &self.body_digest
            && !(d.len() == 64
                && d.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            out.push(
                format!("{f}.bodyDigest"),
                ViolationKind::InvalidFormat,
                "must be 64 lowercase hex digits (sha256sum of the expected body)".to_owned(),
            );
        }
        out.range(
            &format!("{f}.maxBodyBytes"),
            i64::from(self.max_body_bytes),
            1,
            i64::from(MAX_MAX_BODY_BYTES),
        );
    }
}

/// The line that starts a PEM certificate.
pub const PEM_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";

/// An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
pub fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A script's command: a program given by its absolute path (scripts run only from
/// directories the agent allows, which a relative path cannot be checked against).
pub(crate) fn script_command(field: &str, command: &[String], out: &mut Violations) {
    match command.first() {
        None => out.push(
            field,
            ViolationKind::Required,
            "needs a program to run, e.g. [\"/etc/kube-vrrp/scripts/check\"]".to_owned(),
        ),
        Some(program) if !program.starts_with('/') => out.push(
            format!("{field}[0]"),
            ViolationKind::InvalidFormat,
            format!(
                "{program:?} is not an absolute path; scripts run only from the directories \
                 the agent allows (its --script-dir), so name the program by its full path"
            ),
        ),
        Some(_) => {}
    }
}
