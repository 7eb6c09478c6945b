//! The nodes' configurations into one set of objects: a VirtualIP per `vrrp_instance` name
//! (see [`virtual_ip`]), a VirtualServer per virtual service (see [`virtual_server`]), a Node per
//! file (its name, a `kubernetes.io/hostname` label the VirtualIPs select on, and the unicast
//! source addresses as InternalIPs) and a Secret per v2 password.

mod virtual_ip;
mod virtual_server;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_vrrp_plan::Manifests;

use crate::model::NodeConfig;
use crate::names::{Names, object_name};
use crate::position::{Located, Position};
use crate::report::{ItemKind, Report};

/// The label imported VirtualIPs select their nodes by (every Kubernetes node has it).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
/// The annotation naming the keepalived block an object comes from.
pub const ORIGIN_ANNOTATION: &str = "kubevrrp.io/imported-from";

/// Choices the keepalived files do not make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Namespace of the Secrets holding v2 passwords.
    pub secret_namespace: String,
    /// Print the Node objects (standalone mode needs them; a cluster has its own Nodes, with
    /// the `kubernetes.io/hostname` label and InternalIPs the VirtualIPs use).
    pub nodes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            secret_namespace: "kube-vrrp".to_owned(),
            nodes: true,
        }
    }
}

/// The objects, and where each VirtualIP and VirtualServer came from.
#[derive(Clone, Debug, Default)]
pub struct Translated {
    /// The objects, each list in name order.
    pub manifests: Manifests,
    /// The keepalived lines of each VirtualIP and VirtualServer, by object name.
    pub origins: BTreeMap<String, Vec<Position>>,
}

/// Object metadata with the origin annotation.
fn meta(name: &str, namespace: Option<&str>, origin: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        annotations: Some(BTreeMap::from([(
            ORIGIN_ANNOTATION.to_owned(),
            origin.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// Translates the nodes' configurations (one per node, in the order given).
pub fn translate(nodes: &[NodeConfig], options: &Options, report: &mut Report) -> Translated {
    let mut out = Translated::default();
    let mut names = Names::default();

    // Instances by name, in the order they are first met.
    let mut order: Vec<&str> = Vec::new();
    let mut members: BTreeMap<&str, Vec<virtual_ip::Member<'_>>> = BTreeMap::new();
    for node in nodes {
        for instance in &node.instances {
            if !members.contains_key(instance.name.as_str()) {
                order.push(&instance.name);
            }
            members
                .entry(&instance.name)
                .or_default()
                .push((node, instance));
        }
    }
    let mut merged = Vec::new();
    let mut addresses: BTreeMap<String, Vec<(String, Located<IpAddr>)>> = BTreeMap::new();
    for keepalived_name in order {
        let name = names.claim(&object_name(keepalived_name));
        let Some(m) = virtual_ip::merge(
            keepalived_name,
            &name,
            &members[keepalived_name],
            options,
            report,
        ) else {
            continue;
        };
        for (node, address) in &m.unicast_addresses {
            addresses
                .entry(node.clone())
                .or_default()
                .push((keepalived_name.to_owned(), address.clone()));
        }
        out.origins.insert(name, m.positions.clone());
        merged.push(m);
    }

    let servers = virtual_server::translate(nodes, &merged, &mut names, report);
    for (server, positions) in servers {
        if let Some(name) = &server.metadata.name {
            out.origins.insert(name.clone(), positions);
        }
        out.manifests.virtual_servers.push(server);
    }
    for m in merged {
        out.manifests.virtual_ips.push(m.vip);
        if let Some(secret) = m.secret {
            out.manifests.secrets.push(secret);
        }
    }
    out.manifests.nodes = nodes
        .iter()
        .map(|n| node(n, addresses.get(&n.node).map_or(&[], Vec::as_slice), report))
        .collect();
    let by_name = |a: &Option<String>, b: &Option<String>| a.cmp(b);
    out.manifests
        .virtual_ips
        .sort_by(|a, b| by_name(&a.metadata.name, &b.metadata.name));
    out.manifests
        .virtual_servers
        .sort_by(|a, b| by_name(&a.metadata.name, &b.metadata.name));
    out.manifests
        .nodes
        .sort_by(|a, b| by_name(&a.metadata.name, &b.metadata.name));
    out.manifests
        .secrets
        .sort_by(|a, b| by_name(&a.metadata.name, &b.metadata.name));
    out
}

/// The Node of one file: its InternalIPs are its unicast source addresses, one per family
/// (the planner uses a node's first InternalIP of a family as its peer address).
fn node(config: &NodeConfig, addresses: &[(String, Located<IpAddr>)], report: &mut Report) -> Node {
    let mut chosen: Vec<&(String, Located<IpAddr>)> = Vec::new();
    for entry in addresses {
        let (instance, address) = entry;
        match chosen
            .iter()
            .find(|(_, c)| c.value.is_ipv4() == address.value.is_ipv4())
        {
            None => chosen.push(entry),
            Some((first_instance, first)) if first.value != address.value => {
                report.push(
                    crate::report::Severity::Warning,
                    ItemKind::Changed,
                    vec![first.at.clone(), address.at.clone()],
                    format!(
                        "{} uses unicast address {} for vrrp_instance {first_instance} and {} for \
                         vrrp_instance {instance}; a node has one peer address per family (its \
                         first InternalIP), so {} is used for both",
                        config.node, first.value, address.value, first.value
                    ),
                    Some("use one source address per node and family"),
                );
            }
            Some(_) => {}
        }
    }
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some(config.node.clone()),
            labels: Some(BTreeMap::from([(
                HOSTNAME_LABEL.to_owned(),
                config.node.clone(),
            )])),
            annotations: Some(BTreeMap::from([(
                ORIGIN_ANNOTATION.to_owned(),
                config.file.clone(),
            )])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    if !chosen.is_empty() {
        node.status = Some(NodeStatus {
            addresses: Some(
                chosen
                    .iter()
                    .map(|(_, a)| NodeAddress {
                        type_: "InternalIP".to_owned(),
                        address: a.value.to_string(),
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        });
    }
    node
}
