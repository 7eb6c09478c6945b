//! The `VirtualIP` resource (a keepalived `vrrp_instance`): spec, status and `validate()`.

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, MicroTime};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationString;
use crate::state::State;
use crate::track::Track;
use crate::validation::{MAX_PRIORITIES, Violation, ViolationKind, Violations};
use crate::version::VrrpVersion;

pub(crate) fn default_true() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
pub(crate) fn is_true(value: &bool) -> bool {
    *value
}

pub(crate) fn default_advert_interval() -> DurationString {
    DurationString::new("1s")
}

pub(crate) fn default_zero() -> DurationString {
    DurationString::new("0s")
}

/// A set of virtual addresses that one elected node holds, kept highly available with VRRP.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubevrrp.io",
    version = "v1alpha1",
    category = "kube-vrrp",
    kind = "VirtualIP",
    root = "VirtualIp",
    plural = "virtualips",
    singular = "virtualip",
    shortname = "vip",
    status = "VirtualIpStatus",
    derive = "PartialEq",
    doc = "A set of virtual addresses held by one elected node (a keepalived vrrp_instance)."
)]
#[kube(
    printcolumn = r#"{"name":"Address", "type":"string", "description":"The first virtual address (kubectl would print the whole list as a JSON array)", "jsonPath":".spec.addresses[0]"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Master", "type":"string", "description":"Node holding the addresses", "jsonPath":".status.master"}"#
)]
#[kube(
    printcolumn = r#"{"name":"State", "type":"string", "description":"Ready, NoMaster, SplitBrain, Conflict, Rejected or Pending", "jsonPath":".status.state"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Nodes", "type":"string", "description":"Nodes running VRRP / nodes selected", "jsonPath":".status.nodesSummary"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Service", "type":"string", "description":"LoadBalancer Services served by the address (namespace/name)", "jsonPath":".metadata.annotations.kubevrrp\\.io/services"}"#
)]
#[kube(printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::virtual_ip_spec)]
pub struct VirtualIpSpec {
    /// Virtual addresses as CIDRs, all IPv4 or all IPv6, e.g. `10.0.0.50/24`. The prefix
    /// length is the one the address gets on the interface.
    #[schemars(length(min = 1, max = 64), inner(length(max = 64)))]
    pub addresses: Vec<String>,

    /// VRRP Virtual Router ID (1..255), unique per network segment. Omitted: the operator
    /// allocates one and reports it in `status.virtualRouterID`.
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 255))]
    pub virtual_router_id: Option<u8>,

    /// Interface to run on. Omitted: the interface whose subnet contains the address, else
    /// the one holding the node's InternalIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub interface: Option<String>,

    /// Nodes that take part. Omitted: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Priorities by node name or label selector; the first matching entry wins. Nodes that
    /// match none are ranked by the operator below the lowest given priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub priorities: Vec<PriorityRule>,

    /// VRRP version: 3 (RFC 5798, default) or 2 (RFC 3768, for old peers; IPv4 only).
    #[serde(default)]
    pub version: VrrpVersion,

    /// Time between adverts: "1s", "100ms", "10ms". Version 3: multiples of 10ms from 10ms to
    /// 40.95s. Version 2: whole seconds from 1s to 255s.
    #[serde(default = "default_advert_interval")]
    pub advert_interval: DurationString,

    /// A higher-priority backup takes over from a lower-priority master.
    #[serde(default = "default_true")]
    pub preempt: bool,

    /// How long a higher-priority backup waits after start-up before it preempts.
    #[serde(default = "default_zero")]
    pub preempt_delay: DurationString,

    /// Whether the MASTER accepts packets addressed to the virtual addresses (RFC 5798
    /// Accept_Mode). Default true, as keepalived without `vrrp_strict`: a VIP exists to carry
    /// traffic. false: the MASTER drops everything addressed to the VIPs except IPv6 Neighbor
    /// Discovery (RFC 5798 §6.4.3; RFC 3768 §6.4.3 for version 2), with an nftables table on the
    /// node; services on the VIP, IPVS VirtualServers included, then receive nothing.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub accept_mode: bool,

    /// VRRPv2 simple-text authentication (type PASS); the password comes from a Secret.
    /// Version 2 only; adds no security on a shared segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,

    /// Send adverts by unicast to the other selected nodes' InternalIPs instead of multicast.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unicast: bool,

    /// Gratuitous ARP / unsolicited Neighbour Advertisement settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp: Option<Garp>,

    /// Instances with the same sync group name fail over together on a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub sync_group: Option<String>,

    /// Use the RFC virtual MAC 00-00-5E-00-01-{VRID} (IPv6: 00-00-5E-00-02-{VRID}), as
    /// keepalived's `use_vmac`: the agent creates a macvlan `vrrp.{VRID}` (`vrrp6.{VRID}`) on the
    /// interface, holds the VIPs and sends adverts and gratuitous ARP / NA on it, and sets
    /// `arp_ignore=1` and `arp_filter=1` on the interface while it exists (IPv4), so that only the
    /// virtual MAC answers for the VIPs.
    #[serde(
        rename = "useVirtualMAC",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub use_virtual_mac: bool,

    /// Trackers that lower or raise the effective priority, or put the instance in FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<Track>,

    /// VirtualIPs naming the same virtual router share one VRRP instance (one VRID): one
    /// MASTER holds all their addresses and they fail over together, at the cost of one VRID
    /// instead of one each (a segment has 255). Every other field but `addresses` must be
    /// equal among them. The instance is named after the virtual router, which must not be
    /// another VirtualIP's name. Omitted: the VirtualIP is an instance of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub virtual_router: Option<String>,
}

/// A priority for nodes picked by name or by labels. Exactly one of the two is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::priority_rule)]
pub struct PriorityRule {
    /// The node with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub node_name: Option<String>,
    /// The nodes whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// VRRP priority, 1..254 (255 is reserved for an address owner, 0 for "leaving").
    #[schemars(range(min = 1, max = 254))]
    pub priority: u8,
}

/// The authentication type. Only PASS (RFC 3768 simple text) is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AuthType {
    /// Simple text password, at most 8 bytes, sent in clear in every advert.
    #[serde(rename = "PASS")]
    Pass,
}

impl AuthType {
    /// The name used in manifests and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
        }
    }
}

/// VRRPv2 authentication; the password is read from a Secret by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// Authentication type: PASS.
    #[serde(rename = "type")]
    pub auth_type: AuthType,
    /// Where the password is (at most 8 bytes; longer ones are cut by peers).
    pub password_secret_ref: SecretKeyRef,
}

/// A key of a Secret in a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_garp_delay() -> DurationString {
    DurationString::new("5s")
}

fn default_garp_repeat() -> u32 {
    5
}

/// Gratuitous ARP (IPv4) / unsolicited Neighbour Advertisement (IPv6) after becoming MASTER.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Garp {
    /// Delay before the second burst after becoming MASTER (keepalived garp_master_delay).
    #[serde(default = "default_garp_delay")]
    pub delay: DurationString,
    /// Messages per burst (keepalived garp_master_repeat), 1..100.
    #[serde(default = "default_garp_repeat")]
    #[schemars(range(min = 1, max = 100))]
    pub repeat: u32,
    /// Period of repeated bursts while MASTER; "0s" turns them off (garp_master_refresh).
    #[serde(default = "default_zero")]
    pub refresh: DurationString,
}

impl Default for Garp {
    fn default() -> Self {
        Self {
            delay: default_garp_delay(),
            repeat: default_garp_repeat(),
            refresh: default_zero(),
        }
    }
}

impl Garp {
    pub(crate) fn check(&self, field: &str, out: &mut Violations) {
        out.duration(&format!("{field}.delay"), &self.delay);
        out.range(&format!("{field}.repeat"), i64::from(self.repeat), 1, 100);
        out.duration(&format!("{field}.refresh"), &self.refresh);
    }
}

/// The summary shown in the STATE column of `kubectl get vip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum VirtualIpPhase {
    /// Not planned yet, no node has reported, or the node that is MASTER of its virtual router
    /// has not added its addresses yet (`Degraded`, reason `AddressNotHeld`).
    #[default]
    Pending,
    /// Exactly one MASTER holds the addresses.
    Ready,
    /// Nodes report, but none is MASTER.
    NoMaster,
    /// More than one node reports MASTER.
    SplitBrain,
    /// The VRID or an address clashes with another VirtualIP; not deployed.
    Conflict,
    /// Every selected node's agent rejected it (see the Degraded condition); none runs it.
    Rejected,
}

impl VirtualIpPhase {
    /// The name used in status, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::NoMaster => "NoMaster",
            Self::SplitBrain => "SplitBrain",
            Self::Conflict => "Conflict",
            Self::Rejected => "Rejected",
        }
    }
}

/// What the operator observed about a VirtualIP, folded from the nodes' VrrpNode reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpStatus {
    /// Name of the node that is MASTER; empty when there is none (or more than one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Summary: Ready, NoMaster, SplitBrain, Conflict, Rejected or Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VirtualIpPhase>,
    /// Nodes in Master or Backup, slash, nodes selected: e.g. "3/3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_summary: Option<String>,
    /// The VRID in use (given in the spec, or allocated and then kept stable by the operator).
    #[serde(
        rename = "virtualRouterID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_router_id: Option<u8>,
    /// Each selected node's view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<VirtualIpNodeStatus>,
    /// Ready, SplitBrain, Conflict, Degraded (see `kube_vrrp_crds::condition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One node's state for a VirtualIP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpNodeStatus {
    /// Node name.
    pub name: String,
    /// VRRP state on that node.
    pub state: State,
    /// Configured priority.
    pub priority: u8,
    /// Priority after trackers.
    pub effective_priority: u8,
    /// When the node last changed state (its report's, with microseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<MicroTime>,
}

impl Default for VirtualIpSpec {
    /// No addresses (fill them in) and every other field at its API default.
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            virtual_router_id: None,
            interface: None,
            node_selector: None,
            priorities: Vec::new(),
            version: VrrpVersion::default(),
            advert_interval: default_advert_interval(),
            preempt: default_true(),
            preempt_delay: default_zero(),
            accept_mode: default_true(),
            authentication: None,
            unicast: false,
            garp: None,
            sync_group: None,
            use_virtual_mac: false,
            track: None,
            virtual_router: None,
        }
    }
}

impl VirtualIpSpec {
    /// Checks every rule the schema and its CEL rules enforce, returning all violations
    /// (empty when valid). Field paths start at the object root (`spec.addresses[1]`).
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Violations::default();
        let shared = InstanceRules {
            addresses: &self.addresses,
            virtual_router_id: self.virtual_router_id,
            interface: self.interface.as_deref(),
            version: self.version,
            advert_interval: &self.advert_interval,
            preempt_delay: &self.preempt_delay,
            authentication: self.authentication.as_ref(),
            garp: self.garp.as_ref(),
            sync_group: self.sync_group.as_deref(),
            track: self.track.as_ref(),
        };
        // In the order of the spec's fields, so a person reads the violations top to bottom.
        shared.check_where("spec", &mut out);
        if let Some(selector) = &self.node_selector {
            out.label_selector("spec.nodeSelector", selector);
        }
        check_priorities(&mut out, "spec.priorities", &self.priorities);
        if let Some(router) = &self.virtual_router
            && !is_dns_subdomain(router)
        {
            out.push(
                "spec.virtualRouter",
                ViolationKind::InvalidFormat,
                format!(
                    "{router:?} is not a valid name: lower-case letters, digits, '-' and '.', \
                     starting and ending with a letter or digit, at most 253 characters"
                ),
            );
        }
        shared.check_how("spec", &mut out);
        out.into_vec()
    }

    /// The addresses parsed, or the violations if any address is not a valid CIDR or the
    /// families are mixed.
    pub fn parsed_addresses(&self) -> Result<Vec<IpNet>, Vec<Violation>> {
        let mut out = Violations::default();
        let nets = out.cidrs("spec.addresses", &self.addresses);
        let violations = out.into_vec();
        if violations.is_empty() {
            Ok(nets)
        } else {
            Err(violations)
        }
    }
}

/// Checks a `priorities` list: at most [`MAX_PRIORITIES`] entries, each with exactly one of
/// `nodeName` or `nodeSelector` and a priority from 1 to 254.
pub(crate) fn check_priorities(out: &mut Violations, field: &str, priorities: &[PriorityRule]) {
    out.max_items(field, priorities, MAX_PRIORITIES);
    for (i, p) in priorities.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if p.node_name.is_some() == p.node_selector.is_some() {
            out.push(
                field.clone(),
                ViolationKind::ExactlyOneOf,
                "needs exactly one of nodeName or nodeSelector".to_owned(),
            );
        }
        if let Some(name) = &p.node_name {
            out.required(&format!("{field}.nodeName"), name);
        }
        if let Some(selector) = &p.node_selector {
            out.label_selector(&format!("{field}.nodeSelector"), selector);
        }
        out.range(&format!("{field}.priority"), i64::from(p.priority), 1, 254);
    }
}

/// Whether `s` is a DNS subdomain (RFC 1123), as Kubernetes object names are: at most 253
/// characters, dot-separated labels of lower-case letters, digits and '-', each starting and
/// ending with a letter or digit.
pub fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(&first), Some(&last)) => {
                    alnum(first) && alnum(last) && bytes.iter().all(|&c| alnum(c) || c == b'-')
                }
                _ => false,
            }
        })
}

/// The rules a VirtualIP shares with every instance planned from it: one rule set, checked
/// by [`VirtualIpSpec::validate`] for the API (and standalone manifests) and by
/// `VrrpInstance::validate` at the agent, so the two can never disagree.
pub(crate) struct InstanceRules<'a> {
    pub addresses: &'a [String],
    pub virtual_router_id: Option<u8>,
    pub interface: Option<&'a str>,
    pub version: VrrpVersion,
    pub advert_interval: &'a DurationString,
    pub preempt_delay: &'a DurationString,
    pub authentication: Option<&'a Authentication>,
    pub garp: Option<&'a Garp>,
    pub sync_group: Option<&'a str>,
    pub track: Option<&'a Track>,
}

/// `prefix.field`, or `field` for an empty prefix.
fn path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

impl InstanceRules<'_> {
    /// Checks every shared rule; field paths are `prefix.field` (`field` for an empty prefix).
    pub(crate) fn check(&self, prefix: &str, out: &mut Violations) {
        self.check_where(prefix, out);
        self.check_how(prefix, out);
    }

    /// Where the instance runs: addresses, VRID, interface.
    pub(crate) fn check_where(&self, prefix: &str, out: &mut Violations) {
        out.cidrs(&path(prefix, "addresses"), self.addresses);
        if let Some(vrid) = self.virtual_router_id {
            out.range(&path(prefix, "virtualRouterID"), i64::from(vrid), 1, 255);
        }
        if let Some(interface) = self.interface {
            out.required(&path(prefix, "interface"), interface);
        }
    }

    /// How it runs: version and timers, authentication, GARP, sync group, trackers.
    /// (`acceptMode` holds with either version: no rule.)
    pub(crate) fn check_how(&self, prefix: &str, out: &mut Violations) {
        let at = |field: &str| path(prefix, field);
        out.advert_interval(&at("advertInterval"), self.version, self.advert_interval);
        out.duration(&at("preemptDelay"), self.preempt_delay);
        if let Some(auth) = self.authentication {
            if self.version != VrrpVersion::V2 {
                out.push(
                    at("authentication"),
                    ViolationKind::RequiresVersion2,
                    "authentication exists only in VRRPv2; set version: 2 or remove \
                     authentication"
                        .to_owned(),
                );
            }
            let r = &auth.password_secret_ref;
            let f = at("authentication.passwordSecretRef");
            out.required(&format!("{f}.namespace"), &r.namespace);
            out.required(&format!("{f}.name"), &r.name);
            out.required(&format!("{f}.key"), &r.key);
        }
        if let Some(garp) = self.garp {
            garp.check(&at("garp"), out);
        }
        if let Some(group) = self.sync_group {
            out.required(&at("syncGroup"), group);
        }
        if let Some(track) = self.track {
            track.check(&at("track"), out);
        }
    }
}
