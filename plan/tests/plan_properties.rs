//! Properties of `plan()` over random small inputs: it never panics, equal input gives equal
//! output, input order does not matter, and the plan keeps its own invariants.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod plan_support;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::ObjectMeta;
use kube_vrrp_crds::{PriorityRule, VirtualIp, VirtualServer, VrrpVersion};
use kube_vrrp_plan::{PlanInput, plan};
use proptest::prelude::*;

const ADDRESSES: &[&str] = &[
    "10.0.0.1/24",
    "10.0.0.2/24",
    "10.0.0.2/32",
    "10.0.0.3/24",
    "fd00::1/64",
    "fd00::2/64",
    "10.0.0.9",
    "bogus",
];
const STAMPS: &[&str] = &["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"];

fn selector(zone: Option<&'static str>) -> Option<LabelSelector> {
    zone.map(|z| LabelSelector {
        match_labels: Some([("zone".to_owned(), z.to_owned())].into()),
        match_expressions: None,
    })
}

fn zone() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["x", "y", "z"]))
}

prop_compose! {
    fn arb_node(i: usize)(zone in zone(), v4 in any::<bool>(), v6 in any::<bool>()) -> k8s_openapi::api::core::v1::Node {
        let mut ips = Vec::new();
        if v4 { ips.push(format!("192.168.0.{}", i + 1)); }
        if v6 { ips.push(format!("fd01::{}", i + 1)); }
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let labels: Vec<(&str, &str)> = zone.map(|z| ("zone", z)).into_iter().collect();
        plan_support::node(&format!("n{i}"), &labels, &ips)
    }
}

prop_compose! {
    fn arb_vip(i: usize)(
        addresses in prop_oneof![
            4 => prop::sample::subsequence(&ADDRESSES[..4], 1..3),
            2 => prop::sample::subsequence(&ADDRESSES[4..6], 1..3),
            1 => prop::sample::subsequence(ADDRESSES, 0..3),
        ],
        vrid in prop::option::weighted(0.3, prop::sample::select(vec![0u8, 1, 2, 3, 255])),
        held in prop::option::of(prop::sample::select(vec![0u8, 1, 2, 7])),
        interface in prop::option::of(prop::sample::select(vec!["eth0", "eth1"])),
        v2 in prop::bool::weighted(0.2),
        unicast in any::<bool>(),
        node_zone in zone(),
        rules in prop::collection::vec((0usize..4, zone(), prop_oneof![9 => 1u8..=254, 1 => Just(0u8), 1 => Just(255u8)]), 0..3),
        stamp in prop::option::of(prop::sample::select(STAMPS)),
        router in prop::option::weighted(0.3, prop::sample::select(vec!["r0", "r1", "vip0"])),
    ) -> VirtualIp {
        let mut v = plan_support::vip(&format!("vip{i}"), &addresses);
        v.spec.virtual_router_id = vrid;
        v.spec.interface = interface.map(str::to_owned);
        if v2 {
            v.spec.version = VrrpVersion::V2;
        }
        v.spec.unicast = unicast;
        v.spec.node_selector = selector(node_zone);
        v.spec.priorities = rules
            .into_iter()
            .map(|(n, z, p)| PriorityRule {
                node_name: if z.is_none() { Some(format!("n{n}")) } else { None },
                node_selector: selector(z),
                priority: p,
            })
            .collect();
        if let Some(h) = held {
            v = plan_support::with_held(v, h);
        }
        v.metadata.creation_timestamp = stamp.map(|s| Time(s.parse().unwrap()));
        v.spec.virtual_router = router.map(str::to_owned);
        v
    }
}

prop_compose! {
    fn arb_server(i: usize)(
        vip in 0usize..5,
        port in prop::sample::select(vec![0u16, 80, 80, 443, 443]),
        real in prop_oneof![
            3 => prop::sample::subsequence(vec!["10.1.0.1", "10.1.0.2", "fd02::1"], 0..3),
            1 => prop::sample::subsequence(vec!["10.1.0.1", "nope"], 0..3),
        ],
        backend in any::<bool>(),
    ) -> VirtualServer {
        let mut vs = plan_support::virtual_server(&format!("vs{i}"), &format!("vip{vip}"), 80, &real);
        vs.spec.port = port;
        if backend {
            vs.spec.backend_ref = Some(serde_json::from_value(serde_json::json!({
                "namespace": "ns", "name": "svc"
            })).unwrap());
        }
        vs
    }
}

prop_compose! {
    fn arb_slice(i: usize)(
        v6 in any::<bool>(),
        ports in prop::collection::vec((prop::option::of(prop::sample::select(vec!["a", "b"])), prop::option::of(0i32..70000)), 0..3),
        ready in prop::collection::vec(prop::option::of(any::<bool>()), 0..4),
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("svc-{i}")),
                namespace: Some("ns".to_owned()),
                labels: Some([("kubernetes.io/service-name".to_owned(), "svc".to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: if v6 { "IPv6" } else { "IPv4" }.to_owned(),
            ports: Some(ports.into_iter().map(|(name, port)| EndpointPort {
                name: name.map(str::to_owned),
                port,
                ..EndpointPort::default()
            }).collect()),
            endpoints: ready.into_iter().enumerate().map(|(j, r)| Endpoint {
                addresses: vec![if v6 { format!("fd03::{j}") } else { format!("10.3.0.{j}") }],
                conditions: Some(EndpointConditions { ready: r, ..EndpointConditions::default() }),
                ..Endpoint::default()
            }).collect(),
        }
    }
}

fn arb_input() -> impl Strategy<Value = PlanInput> {
    (0usize..6, 0usize..6, 0usize..4, 0usize..3)
        .prop_flat_map(|(nn, nv, ns, nsl)| {
            (
                (0..nn).map(arb_node).collect::<Vec<_>>(),
                (0..nv).map(arb_vip).collect::<Vec<_>>(),
                (0..ns).map(arb_server).collect::<Vec<_>>(),
                (0..nsl).map(arb_slice).collect::<Vec<_>>(),
            )
        })
        .prop_map(
            |(nodes, virtual_ips, virtual_servers, endpoint_slices)| PlanInput {
                virtual_ips,
                virtual_servers,
                nodes,
                endpoint_slices,
                ..PlanInput::default()
            },
        )
}

fn reversed(input: &PlanInput) -> PlanInput {
    let mut r = input.clone();
    r.virtual_ips.reverse();
    r.virtual_servers.reverse();
    r.nodes.reverse();
    r.endpoint_slices.reverse();
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_is_deterministic_and_order_independent(input in arb_input()) {
        let first = plan(&input);
        prop_assert_eq!(&first, &plan(&input));
        prop_assert_eq!(&first, &plan(&reversed(&input)));
    }

    #[test]
    fn vrids_do_not_depend_on_nodes(input in arb_input(), keep in any::<prop::sample::Index>()) {
        let vrids = |p: &kube_vrrp_plan::Plan| -> BTreeMap<String, u8> {
            p.allocations.iter().map(|(k, a)| (k.clone(), a.virtual_router_id)).collect()
        };
        let all = plan(&input);
        let mut fewer = input.clone();
        if !fewer.nodes.is_empty() {
            fewer.nodes.remove(keep.index(fewer.nodes.len()));
        }
        prop_assert_eq!(vrids(&all), vrids(&plan(&fewer)));
    }

    #[test]
    fn plan_keeps_its_invariants(input in arb_input()) {
        let p = plan(&input);
        let conflicted: BTreeSet<&str> = p
            .conflicts
            .iter()
            .filter(|c| c.virtual_server.is_none())
            .map(|c| c.virtual_ip.as_str())
            .collect();
        let mut segments: BTreeMap<(String, u8), String> = BTreeMap::new();
        let mut addresses: BTreeMap<String, String> = BTreeMap::new();
        for (name, spec) in &p.nodes {
            let own: BTreeSet<String> = input
                .nodes
                .iter()
                .filter(|n| n.metadata.name.as_deref() == Some(name.as_str()))
                .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
                .map(|a| a.address.clone())
                .collect();
            for inst in &spec.instances {
                // The VirtualIPs the instance carries: none in conflict, at least one.
                let members: Vec<&str> = p
                    .allocations
                    .iter()
                    .filter(|(k, a)| a.instance_name(k) == inst.name && !conflicted.contains(k.as_str()))
                    .map(|(k, _)| k.as_str())
                    .collect();
                prop_assert!(!members.is_empty(), "{} carries no VirtualIP", inst.name);
                for m in &members {
                    prop_assert!(!conflicted.contains(m), "{} pushed", m);
                }
                prop_assert!((1..=254).contains(&inst.priority));
                prop_assert!((1..=255).contains(&inst.virtual_router_id));
                for peer in &inst.unicast_peers {
                    prop_assert!(!own.contains(peer), "{name} peers with itself");
                }
                let alloc = &p.allocations[members[0]];
                let key = (alloc.segment.to_string(), inst.virtual_router_id);
                let holder = segments.entry(key).or_insert_with(|| inst.name.clone());
                prop_assert_eq!(holder.as_str(), inst.name.as_str(), "VRID used twice on a segment");
                for a in &inst.addresses {
                    let ip = a.split('/').next().unwrap().to_owned();
                    let owner = addresses.entry(ip).or_insert_with(|| inst.name.clone());
                    prop_assert_eq!(owner.as_str(), inst.name.as_str(), "address in two VIPs");
                }
            }
            let mut names: Vec<&str> = spec.instances.iter().map(|i| i.name.as_str()).collect();
            let sorted = { let mut s = names.clone(); s.sort_unstable(); s };
            prop_assert_eq!(&names, &sorted);
            names.dedup();
            prop_assert_eq!(names.len(), spec.instances.len());
            for vs in &spec.virtual_servers {
                prop_assert!(spec.instances.iter().any(|i| i.name == vs.virtual_ip));
            }
        }
    }
}
