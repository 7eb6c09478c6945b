//! Shared by the planner tests: object builders and a loader for golden input directories
//! (VirtualIP, VirtualServer, Node, EndpointSlice and Service YAML, status included).
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::ObjectMeta;
use kube_vrrp_crds::{
    PriorityRule, VirtualIp, VirtualIpSpec, VirtualIpStatus, VirtualServer, VirtualServerSpec,
};
use kube_vrrp_plan::PlanInput;
use serde_json::Value;

pub fn node(name: &str, labels: &[(&str, &str)], internal_ips: &[&str]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(
                internal_ips
                    .iter()
                    .map(|a| NodeAddress {
                        type_: "InternalIP".to_owned(),
                        address: (*a).to_owned(),
                    })
                    .collect(),
            ),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// `count` nodes `node-00..`, with InternalIPs 10.0.0.(10+i).
pub fn nodes(count: usize) -> Vec<Node> {
    (0..count)
        .map(|i| {
            let ip = format!("10.0.{}.{}", i / 200, 10 + i % 200);
            node(&format!("node-{i:02}"), &[], &[&ip])
        })
        .collect()
}

pub fn vip(name: &str, addresses: &[&str]) -> VirtualIp {
    VirtualIp::new(
        name,
        VirtualIpSpec {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            ..VirtualIpSpec::default()
        },
    )
}

pub fn with_vrid(mut v: VirtualIp, vrid: u8) -> VirtualIp {
    v.spec.virtual_router_id = Some(vrid);
    v
}

pub fn with_held(mut v: VirtualIp, vrid: u8) -> VirtualIp {
    v.status = Some(VirtualIpStatus {
        virtual_router_id: Some(vrid),
        ..VirtualIpStatus::default()
    });
    v
}

pub fn created(mut v: VirtualIp, rfc3339: &str) -> VirtualIp {
    v.metadata.creation_timestamp = Some(Time(rfc3339.parse().unwrap()));
    v
}

pub fn by_name(name: &str, priority: u8) -> PriorityRule {
    PriorityRule {
        node_name: Some(name.to_owned()),
        node_selector: None,
        priority,
    }
}

pub fn by_labels(labels: &[(&str, &str)], priority: u8) -> PriorityRule {
    PriorityRule {
        node_name: None,
        node_selector: Some(LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            match_expressions: None,
        }),
        priority,
    }
}

pub fn virtual_server(name: &str, vip: &str, port: u16, real: &[&str]) -> VirtualServer {
    let spec: VirtualServerSpec = serde_json::from_value(serde_json::json!({
        "virtualIPRef": vip,
        "port": port,
        "realServers": real.iter().map(|a| serde_json::json!({"address": a})).collect::<Vec<_>>(),
    }))
    .unwrap();
    VirtualServer::new(name, spec)
}

pub fn input(virtual_ips: Vec<VirtualIp>, nodes: Vec<Node>) -> PlanInput {
    PlanInput {
        virtual_ips,
        nodes,
        ..PlanInput::default()
    }
}

/// Priorities of one VirtualIP by node, from the plan's allocations.
pub fn priorities(plan: &kube_vrrp_plan::Plan, vip: &str) -> BTreeMap<String, u8> {
    plan.allocations
        .get(vip)
        .map(|a| a.priorities.clone())
        .unwrap_or_default()
}

/// Reads every `*.yaml` in `dir` (name order) into a `PlanInput`, without validating:
/// invalid objects must reach `plan()`, which reports them as conflicts.
pub fn load_input(dir: &Path) -> PlanInput {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut input = PlanInput::default();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let at = format!("{} ({kind})", file.display());
            match kind.as_str() {
                "VirtualIP" => input.virtual_ips.push(decode(&at, doc)),
                "VirtualServer" => input.virtual_servers.push(decode(&at, doc)),
                "Node" => input.nodes.push(decode(&at, doc)),
                "EndpointSlice" => input
                    .endpoint_slices
                    .push(decode::<EndpointSlice>(&at, doc)),
                "Service" => input.services.push(decode::<Service>(&at, doc)),
                // The agent reads Secrets itself; planning never sees them.
                "Secret" => {}
                other => panic!("{at}: unexpected kind {other:?}"),
            }
        }
    }
    input
}

fn decode<T: serde::de::DeserializeOwned>(at: &str, doc: Value) -> T {
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{at}: {e}"))
}
