//! The `VirtualIPPool` resource: addresses that LoadBalancer Services get, which Services may
//! use them, and the VRRP settings of the VirtualIPs made for them; its status and
//! `validate()`.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::address_block::{AddressBlock, BlockError};
use crate::duration::DurationString;
use crate::validation::{Violation, ViolationKind, Violations};
use crate::version::VrrpVersion;
use crate::virtual_ip::{PriorityRule, check_priorities, default_true};

/// Most entries in `spec.addresses` (schema `maxItems`).
pub const MAX_BLOCKS: usize = 64;
/// Longest entry of `spec.addresses` (schema `maxLength`): two IPv6 addresses and a dash.
pub const MAX_BLOCK_LENGTH: usize = 100;
/// The advert interval of a pool's VirtualIPs when the pool gives none, with VRRPv3:
/// a backup takes over within Master_Down_Interval, about 0.36 s at priority 100.
pub const DEFAULT_V3_ADVERT_INTERVAL: Duration = Duration::from_millis(100);
/// The same with VRRPv2, whose adverts count whole seconds.
pub const DEFAULT_V2_ADVERT_INTERVAL: Duration = Duration::from_secs(1);

/// Addresses for Services of type LoadBalancer, and how they are kept alive with VRRP.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubevrrp.io",
    version = "v1alpha1",
    category = "kube-vrrp",
    kind = "VirtualIPPool",
    root = "VirtualIpPool",
    plural = "virtualippools",
    singular = "virtualippool",
    shortname = "vippool",
    status = "VirtualIpPoolStatus",
    derive = "PartialEq",
    doc = "Addresses for Services of type LoadBalancer, kept alive with VRRP."
)]
#[kube(
    printcolumn = r#"{"name":"Addresses", "type":"string", "description":"The first address block", "jsonPath":".spec.addresses[0]"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Assigned", "type":"integer", "description":"Addresses assigned to Services", "jsonPath":".status.assigned"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Available", "type":"string", "description":"Addresses still free", "jsonPath":".status.available"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Ready", "type":"string", "description":"The pool hands out addresses", "jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[kube(printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::virtual_ip_pool_spec)]
pub struct VirtualIpPoolSpec {
    /// Address blocks, IPv4 and IPv6 alike: CIDRs naming a network (`192.168.10.0/24`,
    /// `fd00:10::/120`) or inclusive ranges (`192.168.10.100-192.168.10.150`). A Service gets
    /// the lowest free address of its family. Blocks may not overlap another pool's.
    #[schemars(length(min = 1, max = 64), inner(length(max = 100)))]
    pub addresses: Vec<String>,

    /// Also hand out the addresses of a CIDR that are usually not hosts: IPv4's network and
    /// broadcast addresses (prefixes up to /30) and IPv6's Subnet-Router anycast address (the
    /// first, prefixes up to /126). Ranges are always handed out as written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_network_and_broadcast: bool,

    /// Services pick this pool without asking. false: only Services that name the pool (annotation
    /// `kubevrrp.io/pool`) or ask for one of its addresses get addresses from it.
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Namespaces (by their labels) whose Services may use the pool. Omitted: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Services (by their labels) that may use the pool. Omitted: every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,

    /// The VRRP settings every VirtualIP made for a Service of this pool inherits.
    #[serde(default)]
    pub vrrp: PoolVrrp,
}

/// VRRP settings of a pool's VirtualIPs (the fields of a VirtualIP with the same names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::cel::pool_vrrp)]
pub struct PoolVrrp {
    /// Interface to run on. Omitted: the interface whose subnet contains the address, else the
    /// one holding the node's InternalIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub interface: Option<String>,

    /// VRRP version: 3 (default) or 2 (IPv4 only, whole-second adverts).
    #[serde(default)]
    pub version: VrrpVersion,

    /// Time between adverts. Version 3: multiples of 10ms from 10ms to 40.95s; omitted: 100ms,
    /// so a backup takes over in about 0.36 s. Version 2: whole seconds; omitted: 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<DurationString>,

    /// Nodes that may hold the pool's addresses. Omitted: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Priorities by node name or label selector; the first matching entry wins. Nodes that
    /// match none are ranked by the operator below the lowest given priority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub priorities: Vec<PriorityRule>,

    /// Send adverts by unicast to the other selected nodes' InternalIPs instead of multicast.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unicast: bool,
}

impl PoolVrrp {
    /// The advert interval the pool's VirtualIPs get: the one given, else the version's
    /// default ([`DEFAULT_V3_ADVERT_INTERVAL`], [`DEFAULT_V2_ADVERT_INTERVAL`]).
    pub fn advert_interval_or_default(&self) -> DurationString {
        self.advert_interval.clone().unwrap_or_else(|| {
            DurationString::from_duration(match self.version {
                VrrpVersion::V3 => DEFAULT_V3_ADVERT_INTERVAL,
                VrrpVersion::V2 => DEFAULT_V2_ADVERT_INTERVAL,
            })
        })
    }
}

/// What the operator observed about a pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualIpPoolStatus {
    /// Addresses of the pool assigned to Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned: Option<u32>,
    /// Addresses still free, in decimal (a string: an IPv6 pool can hold more than 2^63).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// Ready (the pool hands out addresses) and Conflict (it overlaps another pool, or holds
    /// node addresses, which it never hands out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl VirtualIpPoolSpec {
    /// Checks every rule the schema and its CEL rules enforce, plus one the API server
    /// cannot (a range must start at its lower address: CEL cannot order IP addresses), and
    /// returns all violations (empty when valid). Field paths start at the object root.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Violations::default();
        let field = "spec.addresses";
        if self.addresses.is_empty() {
            out.push(
                field,
                ViolationKind::Required,
                "needs at least one address block, e.g. 192.168.10.0/24".to_owned(),
            );
        }
        out.max_items(field, &self.addresses, MAX_BLOCKS);
        let mut ipv6 = false;
        for (i, a) in self.addresses.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if a.len() > MAX_BLOCK_LENGTH {
                out.push(
                    at,
                    ViolationKind::InvalidFormat,
                    format!("is {} characters long; at most {MAX_BLOCK_LENGTH}", a.len()),
                );
                continue;
            }
            match AddressBlock::parse(a) {
                Ok(block) => ipv6 |= !block.whole().is_ipv4(),
                Err(e) => {
                    let kind = match e {
                        BlockError::Malformed(_) | BlockError::HostBits { .. } => {
                            ViolationKind::InvalidCidr
                        }
                        BlockError::MixedFamilies(_) => ViolationKind::MixedFamilies,
                        BlockError::Reversed(_) => ViolationKind::InvalidRange,
                    };
                    out.push(at, kind, e.to_string());
                }
            }
        }
        if let Some(selector) = &self.namespace_selector {
            out.label_selector("spec.namespaceSelector", selector);
        }
        if let Some(selector) = &self.service_selector {
            out.label_selector("spec.serviceSelector", selector);
        }
        let vrrp = &self.vrrp;
        if ipv6 && vrrp.version == VrrpVersion::V2 {
            out.push(
                "spec.vrrp.version",
                ViolationKind::RequiresVersion3,
                "VRRPv2 carries IPv4 addresses only, and the pool has IPv6 blocks; use \
                 version 3, or a second pool for IPv6"
                    .to_owned(),
            );
        }
        if let Some(interface) = &vrrp.interface {
            out.required("spec.vrrp.interface", interface);
        }
        if let Some(interval) = &vrrp.advert_interval {
            out.advert_interval("spec.vrrp.advertInterval", vrrp.version, interval);
        }
        if let Some(selector) = &vrrp.node_selector {
            out.label_selector("spec.vrrp.nodeSelector", selector);
        }
        check_priorities(&mut out, "spec.vrrp.priorities", &vrrp.priorities);
        out.into_vec()
    }

    /// The address blocks, parsed; `None` if any is invalid.
    pub fn blocks(&self) -> Option<Vec<AddressBlock>> {
        self.addresses
            .iter()
            .map(|a| AddressBlock::parse(a).ok())
            .collect()
    }
}
