//! Planner rules, table-driven: conflicts, VRIDs, priorities, peers and stability.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod plan_support;

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_vrrp_crds::VirtualIp;
use kube_vrrp_plan::{ConflictReason, Plan, PlanInput, plan};
use plan_support::*;

fn reasons(p: &Plan) -> Vec<(String, ConflictReason)> {
    p.conflicts
        .iter()
        .map(|c| (c.virtual_ip.clone(), c.reason))
        .collect()
}

fn vrids(p: &Plan) -> BTreeMap<String, u8> {
    p.allocations
        .iter()
        .map(|(k, a)| (k.clone(), a.virtual_router_id))
        .collect()
}

fn on(v: VirtualIp, interface: &str) -> VirtualIp {
    let mut v = v;
    v.spec.interface = Some(interface.to_owned());
    v
}

struct ConflictCase {
    name: &'static str,
    vips: Vec<VirtualIp>,
    nodes: usize,
    expected: Vec<(&'static str, ConflictReason)>,
    deployed: Vec<&'static str>,
}

#[test]
fn each_conflict_blocks_only_its_own_virtual_ip() {
    let exhausted: Vec<VirtualIp> = (0..256)
        .map(|i| {
            on(
                vip(
                    &format!("v{i:03}"),
                    &[&format!("10.1.{}.{}/16", i / 250, 1 + i % 250)],
                ),
                "eth0",
            )
        })
        .collect();
    let cases = vec![
        ConflictCase {
            name: "invalid address",
            vips: vec![vip("bad", &["10.0.0.1"]), vip("ok", &["10.0.0.2/24"])],
            nodes: 2,
            expected: vec![("bad", ConflictReason::Invalid)],
            deployed: vec!["ok"],
        },
        ConflictCase {
            name: "same address in two VirtualIPs: the older keeps it",
            vips: vec![
                created(vip("a", &["10.0.0.1/24"]), "2026-02-01T00:00:00Z"),
                created(vip("b", &["10.0.0.1/32"]), "2026-01-01T00:00:00Z"),
            ],
            nodes: 1,
            expected: vec![("a", ConflictReason::DuplicateAddress)],
            deployed: vec!["b"],
        },
        ConflictCase {
            name: "same address: a deployed VirtualIP keeps it against an older newcomer",
            vips: vec![
                with_held(vip("running", &["10.0.0.1/24"]), 3),
                created(vip("older", &["10.0.0.1/24"]), "2020-01-01T00:00:00Z"),
            ],
            nodes: 1,
            expected: vec![("older", ConflictReason::DuplicateAddress)],
            deployed: vec!["running"],
        },
        ConflictCase {
            name: "explicit VRID held by another VirtualIP",
            vips: vec![
                with_held(on(vip("db", &["10.0.0.1/24"]), "eth0"), 51),
                with_vrid(on(vip("web", &["10.0.0.2/24"]), "eth0"), 51),
            ],
            nodes: 1,
            expected: vec![("web", ConflictReason::VridTaken)],
            deployed: vec!["db"],
        },
        ConflictCase {
            name: "two explicit VRIDs on one segment: first by name without timestamps",
            vips: vec![
                with_vrid(on(vip("b", &["10.0.0.1/24"]), "eth0"), 9),
                with_vrid(on(vip("a", &["10.0.0.2/24"]), "eth0"), 9),
            ],
            nodes: 1,
            expected: vec![("b", ConflictReason::DuplicateVrid)],
            deployed: vec!["a"],
        },
        ConflictCase {
            name: "same explicit VRID on two interfaces is fine",
            vips: vec![
                with_vrid(on(vip("a", &["10.0.0.1/24"]), "eth0"), 9),
                with_vrid(on(vip("b", &["10.0.0.2/24"]), "eth1"), 9),
            ],
            nodes: 1,
            expected: vec![],
            deployed: vec!["a", "b"],
        },
        ConflictCase {
            name: "a node's own address as a VIP",
            // nodes(2) are 10.0.0.10 and 10.0.0.11.
            vips: vec![
                vip("takes-node", &["10.0.0.11/24"]),
                vip("ok", &["10.0.0.50/24"]),
            ],
            nodes: 2,
            expected: vec![("takes-node", ConflictReason::NodeAddress)],
            deployed: vec!["ok"],
        },
        ConflictCase {
            name: "no nodes at all",
            vips: vec![vip("a", &["10.0.0.1/24"])],
            nodes: 0,
            expected: vec![("a", ConflictReason::NoEligibleNode)],
            deployed: vec![],
        },
        ConflictCase {
            name: "256 VirtualIPs on one segment: the last finds no VRID",
            vips: exhausted,
            nodes: 1,
            expected: vec![("v255", ConflictReason::VridsExhausted)],
            deployed: vec!["v000", "v254"],
        },
    ];
    for case in cases {
        let p = plan(&input(case.vips, nodes(case.nodes)));
        let expected: Vec<(String, ConflictReason)> = case
            .expected
            .iter()
            .map(|(v, r)| ((*v).to_owned(), *r))
            .collect();
        assert_eq!(reasons(&p), expected, "case: {}", case.name);
        for c in &p.conflicts {
            assert!(
                p.nodes
                    .values()
                    .all(|n| n.instances.iter().all(|i| i.name != c.virtual_ip)),
                "case {}: conflicting {} was pushed",
                case.name,
                c.virtual_ip
            );
        }
        for d in &case.deployed {
            let carried = p
                .nodes
                .values()
                .filter(|n| n.instances.iter().any(|i| i.name == *d))
                .count();
            assert_eq!(
                carried, case.nodes,
                "case {}: {d} not on every node",
                case.name
            );
        }
    }
}

#[test]
fn conflict_messages_name_the_other_virtual_ip_and_what_to_do() {
    let p = plan(&input(
        vec![
            with_held(on(vip("db", &["10.0.0.1/24"]), "eth0"), 51),
            with_vrid(on(vip("web", &["10.0.0.2/24"]), "eth0"), 51),
        ],
        nodes(1),
    ));
    assert_eq!(
        p.conflicts[0].message,
        "VRID 51 on eth0/IPv4 is already used by VirtualIP 'db'; pick another virtualRouterID \
         or omit it to allocate one"
    );
    assert_eq!(ConflictReason::VridTaken.as_str(), "VridTaken");
}

struct VridCase {
    name: &'static str,
    vips: Vec<VirtualIp>,
    expected: &'static [(&'static str, u8)],
}

#[test]
fn vrids_follow_spec_then_status_then_lowest_free() {
    let cases = vec![
        VridCase {
            name: "lowest free in name order",
            vips: vec![vip("b", &["10.0.0.2/24"]), vip("a", &["10.0.0.1/24"])],
            expected: &[("a", 1), ("b", 2)],
        },
        VridCase {
            name: "explicit VRIDs are skipped by allocation",
            vips: vec![
                with_vrid(vip("x", &["10.0.0.1/24"]), 1),
                vip("y", &["10.0.0.2/24"]),
            ],
            expected: &[("x", 1), ("y", 2)],
        },
        VridCase {
            name: "a held VRID is kept although a lower one is free",
            vips: vec![
                with_held(vip("a", &["10.0.0.1/24"]), 200),
                vip("b", &["10.0.0.2/24"]),
            ],
            expected: &[("a", 200), ("b", 1)],
        },
        VridCase {
            name: "IPv4 and IPv6 count separately",
            vips: vec![vip("v4", &["10.0.0.1/24"]), vip("v6", &["fd00::1/64"])],
            expected: &[("v4", 1), ("v6", 1)],
        },
        VridCase {
            name: "an automatic VirtualIP avoids VRIDs named on other interfaces",
            vips: vec![
                with_vrid(on(vip("eth0", &["10.0.0.1/24"]), "eth0"), 1),
                vip("auto", &["10.0.0.2/24"]),
            ],
            expected: &[("auto", 2), ("eth0", 1)],
        },
        VridCase {
            name: "a VirtualIP with no eligible node keeps its held VRID reserved",
            vips: vec![
                with_held(
                    {
                        let mut v = vip("away", &["10.0.0.1/24"]);
                        v.spec.node_selector = Some(LabelSelector {
                            match_labels: Some([("zone".to_owned(), "none".to_owned())].into()),
                            match_expressions: None,
                        });
                        v
                    },
                    1,
                ),
                vip("new", &["10.0.0.2/24"]),
            ],
            expected: &[("away", 1), ("new", 2)],
        },
    ];
    for case in cases {
        let p = plan(&input(case.vips, nodes(2)));
        let expected: BTreeMap<String, u8> = case
            .expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        assert_eq!(vrids(&p), expected, "case: {}", case.name);
    }
}

#[test]
fn vrids_stay_stable_across_replans_when_a_virtual_ip_is_added() {
    let base = vec![vip("m", &["10.0.0.1/24"]), vip("z", &["10.0.0.2/24"])];
    let mut first_input = input(base.clone(), nodes(2));
    let first = plan(&first_input);
    assert_eq!(vrids(&first)["m"], 1);
    assert_eq!(vrids(&first)["z"], 2);

    // "a" sorts first: without memory it would take VRID 1 and shift the others.
    first_input.virtual_ips.push(vip("a", &["10.0.0.3/24"]));
    let forgetful = plan(&first_input);
    assert_eq!(vrids(&forgetful)["a"], 1);

    first_input.carry_over(&first);
    let second = plan(&first_input);
    assert_eq!(vrids(&second)["m"], 1);
    assert_eq!(vrids(&second)["z"], 2);
    assert_eq!(vrids(&second)["a"], 3);
    // And a third plan with the second's allocations changes nothing.
    first_input.carry_over(&second);
    assert_eq!(plan(&first_input), second);
}

#[test]
fn first_matching_priority_entry_wins_and_unlisted_nodes_rank_below_the_lowest() {
    let mut v = vip("web", &["10.0.0.50/24"]);
    v.spec.priorities = vec![
        by_name("node-01", 150),
        by_labels(&[("tier", "edge")], 120),
        by_name("node-02", 90),
    ];
    let ns = vec![
        node("node-00", &[], &["10.0.0.10"]),
        node("node-01", &[("tier", "edge")], &["10.0.0.11"]),
        node("node-02", &[("tier", "edge")], &["10.0.0.12"]),
        node("node-03", &[], &["10.0.0.13"]),
        node("node-04", &[], &["10.0.0.14"]),
    ];
    let p = plan(&input(vec![v], ns));
    let pr = priorities(&p, "web");
    assert_eq!(pr["node-01"], 150, "nodeName entry first");
    assert_eq!(
        pr["node-02"], 120,
        "label entry matches before the later nodeName entry"
    );
    for n in ["node-00", "node-03", "node-04"] {
        assert!((1..90).contains(&pr[n]), "{n} = {} must be below 90", pr[n]);
    }
    let unlisted: std::collections::BTreeSet<u8> = ["node-00", "node-03", "node-04"]
        .iter()
        .map(|n| pr[*n])
        .collect();
    assert_eq!(unlisted.len(), 3, "no ties among ranked nodes");
}

#[test]
fn unlisted_priorities_never_tie_and_stay_in_range_with_a_hundred_nodes() {
    let vips: Vec<VirtualIp> = (0..20)
        .map(|i| vip(&format!("vip-{i}"), &[&format!("10.9.0.{i}/24")]))
        .collect();
    let p = plan(&input(vips, nodes(100)));
    for (name, a) in &p.allocations {
        let distinct: std::collections::BTreeSet<u8> = a.priorities.values().copied().collect();
        assert_eq!(distinct.len(), 100, "{name} has ties");
        assert!(distinct.iter().all(|p| (1..=100).contains(p)));
    }
}

#[test]
fn masters_spread_over_nodes_across_virtual_ips() {
    let vips: Vec<VirtualIp> = (0..60)
        .map(|i| vip(&format!("vip-{i}"), &[&format!("10.9.0.{i}/24")]))
        .collect();
    let p = plan(&input(vips, nodes(3)));
    let mut masters: BTreeMap<String, usize> = BTreeMap::new();
    for a in p.allocations.values() {
        let (top, _) = a.priorities.iter().max_by_key(|(_, p)| **p).unwrap();
        *masters.entry(top.clone()).or_default() += 1;
    }
    assert_eq!(
        masters.len(),
        3,
        "every node is MASTER of some VirtualIP: {masters:?}"
    );
    assert!(masters.values().all(|&n| n >= 10), "{masters:?}");
}

/// Adds one node to `count` and reports, per VirtualIP, whether any existing node's
/// priority changed, and whether the newcomer collided (took a priority another node
/// had, or could not take its preferred one).
#[test]
fn adding_a_node_changes_other_priorities_only_on_a_hash_collision() {
    let vips: Vec<VirtualIp> = (0..200)
        .map(|i| {
            vip(
                &format!("vip-{i}"),
                &[&format!("10.9.{}.{}/16", i / 200, i % 200)],
            )
        })
        .collect();
    let before = plan(&input(vips.clone(), nodes(5)));
    let after = plan(&input(vips, nodes(6)));
    let mut untouched = 0;
    for (name, a) in &after.allocations {
        let old = &before.allocations[name].priorities;
        let newcomer = a.priorities["node-05"];
        let collided = old.values().any(|p| *p == newcomer)
            || newcomer != 100 - (kube_vrrp_plan::priority::score(name, "node-05") % 100) as u8;
        let changed = old.iter().any(|(n, p)| a.priorities[n] != *p);
        assert!(
            !changed || collided,
            "{name}: priorities changed without a collision"
        );
        if !changed {
            untouched += 1;
        }
        assert_eq!(
            a.virtual_router_id,
            before.allocations[name].virtual_router_id
        );
    }
    // With 6 nodes over 100 priorities a collision is rare; most VIPs are untouched.
    assert!(untouched >= 180, "only {untouched} of 200 untouched");
}

#[test]
fn removing_a_node_leaves_the_other_priorities_in_the_golden_case() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan");
    let full = plan(&load_input(&base.join("design-example/input")));
    for (other, changed_node) in [("node-added", "node-e"), ("node-removed", "node-c")] {
        let p = plan(&load_input(&base.join(other).join("input")));
        for (vip_name, a) in &full.allocations {
            let b = &p.allocations[vip_name];
            assert_eq!(a.virtual_router_id, b.virtual_router_id);
            for (n, prio) in &a.priorities {
                if n != changed_node {
                    assert_eq!(b.priorities.get(n), Some(prio), "{other}: {vip_name}/{n}");
                }
            }
        }
    }
}

#[test]
fn unicast_peers_are_the_other_selected_nodes_in_name_order() {
    let mut v = vip("u", &["10.0.0.50/24"]);
    v.spec.unicast = true;
    let ns = vec![
        node("c", &[], &["10.0.0.3"]),
        node("a", &[], &["10.0.0.1", "fd00::1"]),
        node("b", &[], &["fd00::2", "10.0.0.2"]),
    ];
    let p = plan(&input(vec![v], ns));
    let peers = |n: &str| p.nodes[n].instances[0].unicast_peers.clone();
    assert_eq!(peers("a"), ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(peers("b"), ["10.0.0.1", "10.0.0.3"]);
    assert_eq!(peers("c"), ["10.0.0.1", "10.0.0.2"]);
}

#[test]
fn unicast_leaves_out_nodes_without_an_internal_ip_of_the_family_and_says_so() {
    let mut v = vip("u6", &["fd00::50/64"]);
    v.spec.unicast = true;
    let ns = vec![
        node("a", &[], &["10.0.0.1", "fd00::1"]),
        node("b", &[], &["10.0.0.2"]),
        node("c", &[], &["fd00::3"]),
    ];
    let p = plan(&input(vec![v], ns));
    assert!(p.conflicts.is_empty());
    assert_eq!(p.allocations["u6"].unreachable, ["b"]);
    assert_eq!(p.nodes.keys().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(p.nodes["a"].instances[0].unicast_peers, ["fd00::3"]);
    let yaml = kube_vrrp_plan::output::render_yaml(&p).unwrap();
    assert!(yaml.contains("# note: VirtualIP 'u6' leaves out node b: it has no IPv6 InternalIP"));
}

#[test]
fn multicast_instances_have_no_peers() {
    let p = plan(&input(vec![vip("m", &["10.0.0.50/24"])], nodes(3)));
    assert!(
        p.nodes
            .values()
            .all(|n| n.instances[0].unicast_peers.is_empty())
    );
}

#[test]
fn v2_authentication_is_planned_as_a_secret_reference() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan");
    // Through the standalone loader, which does read the Secret.
    let m = kube_vrrp_plan::load_manifests(&base.join("unicast-v2-auth/input")).unwrap();
    assert_eq!(
        m.secret_value("kube-vrrp", "vrrp-auth", "password"),
        Some(&b"s3cret"[..])
    );
    let p = plan(&PlanInput::from(m));
    for spec in p.nodes.values() {
        let auth = spec.instances[0].authentication.as_ref().unwrap();
        assert_eq!(auth.password_secret_ref.name, "vrrp-auth");
        assert_eq!(auth.password_secret_ref.key, "password");
    }
    let yaml = kube_vrrp_plan::output::render_yaml(&p).unwrap();
    assert!(!yaml.contains("s3cret"), "no password in the plan");
}

#[test]
fn virtual_servers_follow_their_virtual_ip_and_skip_conflicting_ones() {
    let ips = vec![
        vip("ok", &["10.0.0.1/24"]),
        vip("xclash", &["10.0.0.1/32"]), // loses the address to "ok" (first by name)
    ];
    let mut pi: PlanInput = input(ips, nodes(2));
    pi.virtual_servers = vec![
        virtual_server("vs-ok", "ok", 80, &["10.1.0.1"]),
        virtual_server("vs-clash", "xclash", 80, &["10.1.0.2"]),
    ];
    let p = plan(&pi);
    assert_eq!(
        reasons(&p),
        [("xclash".to_owned(), ConflictReason::DuplicateAddress)]
    );
    for spec in p.nodes.values() {
        let names: Vec<&str> = spec
            .virtual_servers
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["vs-ok"]);
        assert_eq!(spec.virtual_servers[0].addresses, ["10.0.0.1"]);
    }
}

#[test]
fn standalone_manifests_convert_without_endpoint_slices() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan/design-example/input");
    let m = kube_vrrp_plan::load_manifests(&dir).unwrap();
    let p = plan(&PlanInput::from(m));
    assert!(p.conflicts.is_empty());
    assert_eq!(p.nodes.len(), 4);
}
