//! The nodes as the planner sees them: name, labels, addresses and whether they may hold a
//! VIP (Ready, not cordoned, not excluded), sorted by name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;

use super::segment::Family;

/// One node's facts that matter for planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `status.addresses` of type InternalIP that parse, in the order given.
    pub internal_ips: Vec<IpAddr>,
    /// Every `status.addresses` entry that parses as an IP address (InternalIP, ExternalIP,
    /// ...), with its type: the node's own addresses, which no VirtualIP may take.
    pub addresses: Vec<(String, IpAddr)>,
    /// Why the node should not hold a VIP, if it should not.
    pub unavailable: Option<Unavailable>,
}

/// The label with which an administrator takes a node out of load balancing (as for the
/// cloud and MetalLB's and kube-vip's load balancers).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Why a node is left out of planning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unavailable {
    /// Labelled [`EXCLUDE_LABEL`].
    Excluded,
    /// Its `Ready` condition is `False` or `Unknown` (a node that has not reported any
    /// conditions yet counts as ready: nothing says otherwise).
    NotReady,
    /// `spec.unschedulable` (`kubectl cordon`, a drain in progress).
    Cordoned,
}

impl Unavailable {
    /// The word used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excluded => "excluded by label",
            Self::NotReady => "NotReady",
            Self::Cordoned => "cordoned",
        }
    }
}

/// Which unhealthy nodes planning leaves out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodePolicy {
    /// Keep cordoned nodes (a cordon stops new pods, not necessarily VIPs).
    pub keep_cordoned: bool,
}

impl NodePolicy {
    /// Whether `node` should hold no VIP under this policy.
    pub fn leaves_out(self, node: &NodeInfo) -> bool {
        match node.unavailable {
            None => false,
            Some(Unavailable::Cordoned) => !self.keep_cordoned,
            Some(Unavailable::Excluded | Unavailable::NotReady) => true,
        }
    }
}

impl NodeInfo {
    /// Reads a Node; `None` when it has no name.
    pub fn from_node(node: &Node) -> Option<Self> {
        let name = node.metadata.name.clone().filter(|n| !n.is_empty())?;
        let addresses: Vec<(String, IpAddr)> = node
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .filter_map(|a| Some((a.type_.clone(), a.address.trim().parse().ok()?)))
            .collect();
        let internal_ips = addresses
            .iter()
            .filter(|(kind, _)| kind == "InternalIP")
            .map(|(_, ip)| *ip)
            .collect();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let ready = node
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status == "True");
        let unavailable = if labels.contains_key(EXCLUDE_LABEL) {
            Some(Unavailable::Excluded)
        } else if ready == Some(false) {
            Some(Unavailable::NotReady)
        } else if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            Some(Unavailable::Cordoned)
        } else {
            None
        };
        Some(Self {
            name,
            labels,
            internal_ips,
            addresses,
            unavailable,
        })
    }

    /// The first InternalIP of `family` (the unicast peer address of this node).
    pub fn internal_ip(&self, family: Family) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|ip| Family::of(*ip) == family)
    }
}

/// Nodes sorted by name; of two nodes with one name (impossible in a cluster) the first
/// given is kept.
pub fn index(nodes: &[&Node]) -> Vec<NodeInfo> {
    let mut out: Vec<NodeInfo> = nodes
        .iter()
        .filter_map(|n| NodeInfo::from_node(n))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|later, earlier| later.name == earlier.name);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};
    use kube::api::ObjectMeta;

    use super::*;

    fn node(name: &str, addresses: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                addresses: Some(
                    addresses
                        .iter()
                        .map(|(t, a)| NodeAddress {
                            type_: (*t).to_owned(),
                            address: (*a).to_owned(),
                        })
                        .collect(),
                ),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    #[test]
    fn only_internal_ips_that_parse_are_kept_per_family() {
        let n = NodeInfo::from_node(&node(
            "a",
            &[
                ("Hostname", "a"),
                ("ExternalIP", "192.0.2.1"),
                ("InternalIP", "not-an-ip"),
                ("InternalIP", "fd00::1"),
                ("InternalIP", "10.0.0.1"),
            ],
        ))
        .unwrap();
        assert_eq!(
            n.internal_ip(Family::Ipv4),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            n.internal_ip(Family::Ipv6),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(n.internal_ips.len(), 2);
    }

    #[test]
    fn index_sorts_by_name_and_drops_nameless_and_repeated_nodes() {
        let mut nameless = node("x", &[]);
        nameless.metadata.name = None;
        let nodes = [
            node("b", &[("InternalIP", "10.0.0.2")]),
            nameless,
            node("a", &[]),
            node("b", &[("InternalIP", "10.0.0.3")]),
        ];
        let idx = index(&nodes.iter().collect::<Vec<_>>());
        let names: Vec<&str> = idx.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(idx[1].internal_ips, ["10.0.0.2".parse::<IpAddr>().unwrap()]);
    }
}
