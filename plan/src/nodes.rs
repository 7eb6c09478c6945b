//! The nodes as the planner sees them: name, labels and InternalIPs, sorted by name.

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
        Some(Self {
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            internal_ips,
            addresses,
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
