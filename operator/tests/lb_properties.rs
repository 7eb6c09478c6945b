//! Properties of LoadBalancer allocation over random small clusters: deterministic and
//! independent of input order; no address is two Services' unless they may share it; every
//! address lies in a pool, none is a node's; one address per family; and a second pass over
//! the VirtualIPs the first one wanted changes nothing (allocations are read back).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use kube_vrrp_crds::{AddressBlock, ServiceRef, VirtualIp, VirtualIpPool};
use kube_vrrp_operator::load_balancer::{
    ADDRESSES_ANNOTATION, LOAD_BALANCER_CLASS, LbConfig, LbInput, LbPlan, SHARING_ANNOTATION,
    allocate, is_managed,
};
use kube_vrrp_plan::Family;
use proptest::prelude::*;
use serde_json::json;

const BLOCKS: &[&str] = &[
    "10.0.0.0/29",
    "10.0.0.4-10.0.0.12",
    "10.0.1.0/30",
    "fd00::/126",
    "fd00::2-fd00::5",
];
const ASKED: &[&str] = &["10.0.0.2", "10.0.0.9", "10.0.1.1", "10.9.9.9", "fd00::3"];
const NODE_IPS: &[&str] = &["10.0.0.3", "10.0.5.1", "fd00::1"];
const HELD: &[&str] = &["10.0.0.1", "10.0.0.5", "fd00::2"];

prop_compose! {
    fn arb_pool(i: usize)(
        blocks in prop::sample::subsequence(BLOCKS, 1..3),
        auto in prop::bool::weighted(0.8),
        tiered in prop::bool::weighted(0.2),
        day in 1u8..4,
    ) -> VirtualIpPool {
        let mut spec = json!({"addresses": blocks, "autoAssign": auto});
        if tiered {
            spec["serviceSelector"] = json!({"matchLabels": {"tier": "web"}});
        }
        serde_json::from_value(json!({
            "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
            "metadata": {"name": format!("p{i}"), "creationTimestamp": format!("2026-01-0{day}T00:00:00Z")},
            "spec": spec,
        })).unwrap()
    }
}

prop_compose! {
    fn arb_service(i: usize)(
        families in prop::sample::select(vec![vec!["IPv4"], vec!["IPv6"], vec!["IPv4", "IPv6"]]),
        asked in prop::option::weighted(0.4, prop::sample::select(ASKED)),
        shared in prop::bool::weighted(0.4),
        ports in prop::sample::subsequence(vec![80, 53, 443], 1..3),
        local in prop::bool::weighted(0.3),
        web in any::<bool>(),
        kind in prop::sample::select(vec!["ours", "ours", "ours", "other", "classless", "clusterip"]),
        second in 0u8..60,
    ) -> Service {
        let mut annotations = json!({});
        if let Some(a) = asked { annotations[ADDRESSES_ANNOTATION] = json!(a); }
        if shared { annotations[SHARING_ANNOTATION] = json!("k"); }
        let (type_, class) = match kind {
            "ours" => ("LoadBalancer", Some(LOAD_BALANCER_CLASS)),
            "other" => ("LoadBalancer", Some("example.com/lb")),
            "classless" => ("LoadBalancer", None),
            _ => ("ClusterIP", None),
        };
        serde_json::from_value(json!({
            "metadata": {"name": format!("s{i}"), "namespace": "ns", "annotations": annotations,
                         "labels": if web { json!({"tier": "web"}) } else { json!({}) },
                         "creationTimestamp": format!("2026-02-01T00:00:{second:02}Z")},
            "spec": {"type": type_, "loadBalancerClass": class, "ipFamilies": families,
                     "externalTrafficPolicy": if local { "Local" } else { "Cluster" },
                     "ports": ports.iter().map(|p| json!({"port": p, "protocol": "TCP"})).collect::<Vec<_>>()},
        })).unwrap()
    }
}

#[derive(Clone, Debug)]
struct World {
    pools: Vec<VirtualIpPool>,
    services: Vec<Service>,
    nodes: Vec<Node>,
    held: Vec<IpAddr>,
    default_class: bool,
}

fn arb_world() -> impl Strategy<Value = World> {
    (1usize..4, 0usize..9)
        .prop_flat_map(|(np, ns)| {
            (
                (0..np).map(arb_pool).collect::<Vec<_>>(),
                (0..ns).map(arb_service).collect::<Vec<_>>(),
                prop::sample::subsequence(NODE_IPS, 0..3),
                prop::sample::subsequence(HELD, 0..3),
                any::<bool>(),
            )
        })
        .prop_map(|(pools, services, node_ips, held, default_class)| World {
            pools,
            services,
            nodes: node_ips
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    serde_json::from_value(json!({
                        "metadata": {"name": format!("n{i}")},
                        "status": {"addresses": [{"type": "InternalIP", "address": a}]},
                    }))
                    .unwrap()
                })
                .collect(),
            held: held.iter().map(|h| h.parse().unwrap()).collect(),
            default_class,
        })
}

fn run(w: &World, virtual_ips: &[VirtualIp]) -> LbPlan {
    allocate(
        &LbInput {
            pools: w.pools.iter().collect(),
            services: w.services.iter().collect(),
            namespaces: Vec::new(),
            nodes: w.nodes.iter().collect(),
            virtual_ips: virtual_ips.iter().collect(),
            held: w.held.clone(),
            node_policy: kube_vrrp_plan::NodePolicy::default(),
        },
        &LbConfig {
            default_class: w.default_class,
        },
    )
}

fn reversed(w: &World) -> World {
    let mut r = w.clone();
    r.pools.reverse();
    r.services.reverse();
    r.nodes.reverse();
    r.held.reverse();
    r
}

fn objects(plan: &LbPlan) -> Vec<VirtualIp> {
    plan.virtual_ips
        .values()
        .map(kube_vrrp_operator::load_balancer::DesiredVirtualIp::object)
        .collect()
}

fn assignments(plan: &LbPlan) -> BTreeMap<ServiceRef, Vec<IpAddr>> {
    plan.services
        .iter()
        .map(|(k, o)| (k.clone(), o.addresses.iter().map(|a| a.address).collect()))
        .collect()
}

fn sharing_key(s: &Service) -> Option<&str> {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SHARING_ANNOTATION))
        .map(String::as_str)
}

fn ports(s: &Service) -> BTreeSet<i32> {
    s.spec
        .iter()
        .flat_map(|sp| sp.ports.iter().flatten())
        .map(|p| p.port)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn allocation_is_deterministic_and_independent_of_input_order(w in arb_world()) {
        let first = run(&w, &[]);
        prop_assert_eq!(&first, &run(&w, &[]));
        prop_assert_eq!(assignments(&first), assignments(&run(&reversed(&w), &[])));
        prop_assert_eq!(&first.virtual_ips, &run(&reversed(&w), &[]).virtual_ips);
    }

    #[test]
    fn allocation_keeps_its_invariants(w in arb_world()) {
        let plan = run(&w, &[]);
        let by_ref: BTreeMap<ServiceRef, &Service> = w.services.iter().map(|s| (ServiceRef {
            namespace: "ns".into(), name: s.metadata.name.clone().unwrap() }, s)).collect();
        let node_ips: BTreeSet<IpAddr> = w.nodes.iter()
            .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
            .map(|a| a.address.parse().unwrap()).collect();
        let pool_blocks: Vec<AddressBlock> = w.pools.iter()
            .flat_map(|p| p.spec.addresses.iter().filter_map(|a| AddressBlock::parse(a).ok()))
            .collect();
        let mut holders: BTreeMap<IpAddr, Vec<&ServiceRef>> = BTreeMap::new();
        for (key, outcome) in &plan.services {
            let families: BTreeSet<Family> = outcome.addresses.iter().map(|a| Family::of(a.address)).collect();
            prop_assert_eq!(families.len(), outcome.addresses.len(), "one address per family");
            for a in &outcome.addresses {
                holders.entry(a.address).or_default().push(key);
                prop_assert!(!node_ips.contains(&a.address), "node address {} assigned", a.address);
                prop_assert!(pool_blocks.iter().any(|b| b.whole().contains(a.address)), "{} in no pool", a.address);
                // Newly assigned addresses were not held by a node, unless asked for explicitly
                // and joined as a shared address.
                let vip = &plan.virtual_ips[&a.virtual_ip];
                prop_assert!(vip.services.contains(key));
                prop_assert_eq!(vip.address, a.address);
            }
        }
        for (ip, owners) in &holders {
            if owners.len() > 1 {
                let keys: BTreeSet<Option<&str>> = owners.iter().map(|o| sharing_key(by_ref[*o])).collect();
                prop_assert_eq!(keys.len(), 1, "{} shared across keys", ip);
                prop_assert!(keys.iter().next().unwrap().is_some(), "{} shared without a key", ip);
                let mut seen = BTreeSet::new();
                for o in owners {
                    for p in ports(by_ref[*o]) {
                        prop_assert!(seen.insert(p), "{} shared with colliding port {}", ip, p);
                    }
                }
            }
        }
        for vip in plan.virtual_ips.values() {
            prop_assert_eq!(vip.spec.addresses.len(), 1);
            prop_assert!(vip.spec.validate().is_empty(), "{:?}", vip.spec.validate());
        }
    }

    #[test]
    fn a_second_pass_over_the_first_ones_virtual_ips_changes_nothing(w in arb_world()) {
        let first = run(&w, &[]);
        let second = run(&w, &objects(&first));
        prop_assert_eq!(assignments(&first), assignments(&second));
        prop_assert_eq!(&first.virtual_ips, &second.virtual_ips);
        prop_assert!(second.services.values().all(|o| o.addresses.iter().all(|a| !a.new)));
        prop_assert!(second.releases.is_empty(), "{:?}", second.releases);
        prop_assert!(objects(&second).iter().all(is_managed));
    }
}
