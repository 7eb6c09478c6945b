//! Virtual routers: VirtualIPs naming one `spec.virtualRouter` share one instance (one VRID,
//! one MASTER); members that differ, overflow or collide are refused alone.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod plan_support;

use kube_vrrp_crds::VirtualIp;
use kube_vrrp_plan::{ConflictReason, PlanInput, plan};
use plan_support::*;

fn routed(name: &str, address: &str, router: &str) -> VirtualIp {
    let mut v = vip(name, &[address]);
    v.spec.virtual_router = Some(router.to_owned());
    v
}

fn input(vips: Vec<VirtualIp>, nodes: usize) -> PlanInput {
    PlanInput {
        virtual_ips: vips,
        nodes: plan_support::nodes(nodes),
        ..PlanInput::default()
    }
}

#[test]
fn members_of_a_virtual_router_share_one_instance_and_one_vrid() {
    let p = plan(&input(
        vec![
            routed("a", "10.0.0.1/32", "shard-0"),
            routed("b", "10.0.0.2/32", "shard-0"),
            routed("c", "10.0.0.3/32", "shard-1"),
            vip("lone", &["10.0.0.9/32"]),
        ],
        3,
    ));
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    for spec in p.nodes.values() {
        let names: Vec<&str> = spec.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lone", "shard-0", "shard-1"]);
        let shard = &spec.instances[1];
        assert_eq!(shard.addresses, ["10.0.0.1/32", "10.0.0.2/32"]);
    }
    let a = &p.allocations["a"];
    let b = &p.allocations["b"];
    assert_eq!(a, b);
    assert_eq!(a.instance.as_deref(), Some("shard-0"));
    assert_eq!(a.instance_name("a"), "shard-0");
    assert_eq!(p.allocations["lone"].instance, None);
    assert_eq!(p.allocations["lone"].instance_name("lone"), "lone");
    let mut vrids: Vec<u8> = ["a", "c", "lone"]
        .iter()
        .map(|n| p.allocations[*n].virtual_router_id)
        .collect();
    vrids.dedup();
    assert_eq!(vrids.len(), 3, "three instances, three VRIDs");
}

#[test]
fn a_member_whose_settings_differ_is_refused_naming_the_fields() {
    let mut odd = routed("b", "10.0.0.2/32", "r");
    odd.spec.advert_interval = "100ms".into();
    odd.spec.preempt = false;
    let p = plan(&input(vec![routed("a", "10.0.0.1/32", "r"), odd], 2));
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    let c = &p.conflicts[0];
    assert_eq!(
        (c.virtual_ip.as_str(), c.reason),
        ("b", ConflictReason::VirtualRouterMismatch)
    );
    assert!(
        c.message.contains("advertInterval, preempt") && c.message.contains("VirtualIP 'a'"),
        "{}",
        c.message
    );
    assert_eq!(p.nodes["node-00"].instances[0].addresses, ["10.0.0.1/32"]);
}

#[test]
fn a_member_of_the_other_family_is_refused() {
    let p = plan(&input(
        vec![
            routed("a", "10.0.0.1/32", "r"),
            routed("b", "fd00::2/128", "r"),
        ],
        2,
    ));
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].reason, ConflictReason::VirtualRouterMismatch);
    assert!(p.conflicts[0].message.contains("IPv6"));
}

#[test]
fn the_older_member_leads_and_members_past_sixty_four_addresses_are_refused() {
    let mut vips: Vec<VirtualIp> = (0..65)
        .map(|i| {
            created(
                routed(&format!("m{i:02}"), &format!("10.0.1.{}/32", i + 1), "r"),
                &format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
            )
        })
        .collect();
    // The newest by creation time is the one left out, whatever its name.
    vips.reverse();
    let p = plan(&input(vips, 1));
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert_eq!(
        (p.conflicts[0].virtual_ip.as_str(), p.conflicts[0].reason),
        ("m64", ConflictReason::VirtualRouterFull)
    );
    assert_eq!(p.nodes["node-00"].instances[0].addresses.len(), 64);
}

#[test]
fn a_router_named_like_a_lone_virtual_ip_is_refused_for_all_its_members() {
    let p = plan(&input(
        vec![
            vip("web", &["10.0.0.1/32"]),
            routed("a", "10.0.0.2/32", "web"),
            routed("b", "10.0.0.3/32", "web"),
        ],
        1,
    ));
    let reasons: Vec<(&str, ConflictReason)> = p
        .conflicts
        .iter()
        .map(|c| (c.virtual_ip.as_str(), c.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("a", ConflictReason::InstanceNameTaken),
            ("b", ConflictReason::InstanceNameTaken)
        ]
    );
    assert_eq!(p.nodes["node-00"].instances.len(), 1);
}

#[test]
fn a_virtual_ip_leaving_a_router_does_not_take_the_routers_vrid_along() {
    // b held VRID 5 with its router; now it is a lone VirtualIP, older than the router's
    // remaining members, but the router's members hold 5 more often.
    let a = with_held(
        created(routed("a", "10.0.0.1/32", "r"), "2026-01-02T00:00:00Z"),
        5,
    );
    let c = with_held(
        created(routed("c", "10.0.0.3/32", "r"), "2026-01-02T00:00:00Z"),
        5,
    );
    let b = with_held(
        created(vip("b", &["10.0.0.2/32"]), "2026-01-01T00:00:00Z"),
        5,
    );
    let p = plan(&input(vec![a, b, c], 1));
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    assert_eq!(p.allocations["a"].virtual_router_id, 5);
    assert_eq!(p.allocations["c"].virtual_router_id, 5);
    assert_ne!(p.allocations["b"].virtual_router_id, 5);
}

#[test]
fn priorities_of_unlisted_nodes_are_ranked_by_the_routers_name() {
    let p = plan(&input(
        vec![
            routed("a", "10.0.0.1/32", "shard-0"),
            vip("shard-0x", &["10.0.0.2/32"]),
        ],
        5,
    ));
    let by_router = plan(&input(vec![vip("shard-0", &["10.0.0.1/32"])], 5));
    assert_eq!(
        p.allocations["a"].priorities,
        by_router.allocations["shard-0"].priorities
    );
}

#[test]
fn virtual_servers_of_a_member_follow_the_shared_instance() {
    let vs = virtual_server("web-http", "a", 80, &["10.1.0.1"]);
    let p = plan(&PlanInput {
        virtual_ips: vec![
            routed("a", "10.0.0.1/32", "r"),
            routed("b", "10.0.0.2/32", "r"),
        ],
        virtual_servers: vec![vs],
        nodes: plan_support::nodes(2),
        ..PlanInput::default()
    });
    assert!(p.conflicts.is_empty(), "{:?}", p.conflicts);
    let server = &p.nodes["node-00"].virtual_servers[0];
    assert_eq!(server.virtual_ip, "r");
    assert_eq!(server.addresses, ["10.0.0.1"]);
}

#[test]
fn a_member_taking_a_nodes_own_address_is_refused_alone_and_the_router_keeps_the_others() {
    // nodes(2) are 10.0.0.10 and 10.0.0.11.
    let p = plan(&input(
        vec![
            routed("a", "10.0.0.1/32", "r"),
            routed("takes-node", "10.0.0.11/32", "r"),
        ],
        2,
    ));
    assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
    assert_eq!(
        (p.conflicts[0].virtual_ip.as_str(), p.conflicts[0].reason),
        ("takes-node", ConflictReason::NodeAddress)
    );
    for spec in p.nodes.values() {
        assert_eq!(spec.instances.len(), 1);
        assert_eq!(spec.instances[0].name, "r");
        assert_eq!(spec.instances[0].addresses, ["10.0.0.1/32"]);
    }
    assert_eq!(
        p.allocations["takes-node"].virtual_router_id, p.allocations["a"].virtual_router_id,
        "the refused member keeps the router's VRID for when it is fixed"
    );
}
