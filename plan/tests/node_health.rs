//! Node health in planning: NotReady, cordoned and excluded nodes hold no VIP, unless
//! leaving them out would leave a VirtualIP with no node at all.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod plan_support;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube_vrrp_plan::{NodePolicy, plan};
use plan_support::*;

fn ready(mut n: Node, status: &str) -> Node {
    n.status.get_or_insert_with(Default::default).conditions = Some(vec![NodeCondition {
        type_: "Ready".to_owned(),
        status: status.to_owned(),
        ..NodeCondition::default()
    }]);
    n
}

fn cordoned(mut n: Node) -> Node {
    n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    n
}

fn excluded(n: Node) -> Node {
    let mut n = n;
    n.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".to_owned(),
            String::new(),
        );
    n
}

fn plain(name: &str, last_octet: u8) -> Node {
    node(name, &[], &[&format!("10.0.0.{last_octet}")])
}

fn planned_nodes(nodes: Vec<Node>, policy: NodePolicy) -> Vec<String> {
    let mut input = input(vec![vip("web", &["192.0.2.50/24"])], nodes);
    input.node_policy = policy;
    let p = plan(&input);
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    priorities(&p, "web").into_keys().collect()
}

#[test]
fn not_ready_cordoned_and_excluded_nodes_hold_no_instance() {
    let nodes = vec![
        ready(plain("a", 1), "True"),
        ready(plain("b", 2), "False"),
        ready(plain("c", 3), "Unknown"),
        cordoned(plain("d", 4)),
        excluded(plain("e", 5)),
        plain("f", 6),
    ];
    // "f" has reported no conditions yet: nothing says it is unhealthy.
    assert_eq!(planned_nodes(nodes, NodePolicy::default()), ["a", "f"]);
}

#[test]
fn cordoned_nodes_stay_when_the_policy_keeps_them() {
    let nodes = vec![
        plain("a", 1),
        cordoned(plain("b", 2)),
        excluded(plain("c", 3)),
    ];
    let policy = NodePolicy {
        keep_cordoned: true,
    };
    assert_eq!(planned_nodes(nodes, policy), ["a", "b"]);
}

#[test]
fn a_virtual_ip_whose_every_node_is_unhealthy_keeps_them_rather_than_going_down() {
    let nodes = vec![
        ready(plain("a", 1), "Unknown"),
        ready(plain("b", 2), "Unknown"),
    ];
    assert_eq!(planned_nodes(nodes, NodePolicy::default()), ["a", "b"]);
}

#[test]
fn a_node_turning_not_ready_loses_its_instance_and_the_others_keep_their_priorities() {
    let healthy = vec![plain("a", 1), plain("b", 2), plain("c", 3)];
    let before = plan(&input(
        vec![vip("web", &["192.0.2.50/24"])],
        healthy.clone(),
    ));
    let mut sick = healthy;
    sick[1] = ready(sick[1].clone(), "False");
    let after = plan(&input(vec![vip("web", &["192.0.2.50/24"])], sick));
    assert!(after.nodes.get("b").is_none_or(|s| s.instances.is_empty()));
    let (was, now) = (priorities(&before, "web"), priorities(&after, "web"));
    assert_eq!(now.get("a"), was.get("a"));
    assert_eq!(now.get("c"), was.get("c"));
    assert_eq!(now.len(), 2);
}
