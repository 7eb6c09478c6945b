//! LoadBalancer allocation benchmark: 1,000 LoadBalancer Services on 100 nodes, two pools
//! (IPv4 and IPv6). `cargo bench -p kube-vrrp-operator --bench allocate` prints the median,
//! minimum and maximum of repeated calls for three steps of a sync pass, and exits 1 when a
//! median misses its target:
//! - `first`: `allocate()` with no VirtualIP yet (every Service gets a new address);
//! - `steady`: `allocate()` reading the 1,000 VirtualIPs back (what every later pass does);
//! - `plan`: `plan_objects()` over those VirtualIPs (their shared virtual routers).
//!
//! The Services: 1 in 10 dual-stack, 1 in 10 asking for an address, 1 in 20 `Local`, pairs
//! sharing an address under a key (1 in 20).

use std::hint::black_box;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use kube_vrrp_crds::{VirtualIp, VirtualIpPool};
use kube_vrrp_operator::load_balancer::{
    ADDRESSES_ANNOTATION, DesiredVirtualIp, LOAD_BALANCER_CLASS, LbConfig, LbInput,
    SHARING_ANNOTATION, allocate,
};
use kube_vrrp_plan::{PlanInput, plan};
use serde_json::json;

const SERVICES: usize = 1000;
const NODES: usize = 100;
const RUNS: usize = 21;
const TARGETS: [(&str, Duration); 3] = [
    ("first", Duration::from_millis(100)),
    ("steady", Duration::from_millis(100)),
    ("plan", Duration::from_millis(100)),
];

fn nodes() -> Vec<Node> {
    (0..NODES)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("node-{i:03}"), "labels": {"kubevrrp.io/vip": "true"}},
                "status": {"addresses": [{"type": "InternalIP",
                                          "address": format!("10.0.{}.{}", i / 250, 1 + i % 250)}]},
            }))
            .expect("node")
        })
        .collect()
}

fn pools() -> Vec<VirtualIpPool> {
    ["lan-a", "lan-b"]
        .iter()
        .zip([
            json!(["192.168.0.0/22", "fd00:77::/116"]),
            json!(["192.168.8.0/22"]),
        ])
        .map(|(name, addresses)| {
            serde_json::from_value(json!({
                "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
                "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"addresses": addresses,
                         "vrrp": {"nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}}}},
            }))
            .expect("pool")
        })
        .collect()
}

fn services() -> Vec<Service> {
    (0..SERVICES)
        .map(|i| {
            let mut annotations = json!({});
            if i % 10 == 3 {
                annotations[ADDRESSES_ANNOTATION] = json!(format!("192.168.2.{}", i / 10));
            }
            if i % 20 == 7 || i % 20 == 8 {
                annotations[SHARING_ANNOTATION] = json!(format!("pair-{}", i / 20));
            }
            let families = if i % 10 == 5 {
                json!(["IPv4", "IPv6"])
            } else {
                json!(["IPv4"])
            };
            serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{i:04}"), "namespace": format!("ns-{}", i % 10),
                             "annotations": annotations,
                             "creationTimestamp": format!("2026-02-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                         "ipFamilies": families,
                         "externalTrafficPolicy": if i % 20 == 11 { "Local" } else { "Cluster" },
                         "ports": [{"port": 80 + i32::from(i % 20 == 8), "protocol": "TCP"}]},
            }))
            .expect("service")
        })
        .collect()
}

fn lb_input<'a>(
    pools: &'a [VirtualIpPool],
    services: &'a [Service],
    nodes: &'a [Node],
    virtual_ips: &'a [VirtualIp],
) -> LbInput<'a> {
    LbInput {
        pools: pools.iter().collect(),
        services: services.iter().collect(),
        namespaces: Vec::new(),
        nodes: nodes.iter().collect(),
        virtual_ips: virtual_ips.iter().collect(),
        held: Vec::new(),
        node_policy: kube_vrrp_plan::NodePolicy::default(),
    }
}

fn measure(name: &str, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "{name:<8} median {:>7.2} ms  (min {:.2}, max {:.2}, {RUNS} runs)",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3
    );
    median
}

fn main() {
    let (nodes, pools, services) = (nodes(), pools(), services());
    let config = LbConfig {
        default_class: false,
    };
    let input = |virtual_ips: &[VirtualIp]| {
        allocate(&lb_input(&pools, &services, &nodes, virtual_ips), &config)
    };
    let first = input(&[]);
    let virtual_ips: Vec<VirtualIp> = first
        .virtual_ips
        .values()
        .map(DesiredVirtualIp::object)
        .collect();
    let assigned = first
        .services
        .values()
        .filter(|o| !o.addresses.is_empty())
        .count();
    let failures: usize = first.services.values().map(|o| o.failures.len()).sum();
    let routers: std::collections::BTreeSet<String> = virtual_ips
        .iter()
        .map(|v| {
            v.spec
                .virtual_router
                .clone()
                .unwrap_or_else(|| v.metadata.name.clone().unwrap_or_default())
        })
        .collect();
    println!(
        "{SERVICES} Services on {NODES} nodes: {} addressed, {failures} refusals, {} VirtualIPs in {} VRRP instances",
        assigned,
        virtual_ips.len(),
        routers.len()
    );
    let planned = plan(&PlanInput {
        virtual_ips: virtual_ips.clone(),
        nodes: nodes.clone(),
        ..PlanInput::default()
    });
    println!("plan: {} conflicts", planned.conflicts.len());
    let mut results = Vec::new();
    results.push(measure("first", || {
        black_box(input(&[]));
    }));
    results.push(measure("steady", || {
        black_box(input(&virtual_ips));
    }));
    let plan_input = PlanInput {
        virtual_ips: virtual_ips.clone(),
        nodes: nodes.clone(),
        ..PlanInput::default()
    };
    results.push(measure("plan", || {
        black_box(plan(&plan_input));
    }));
    let mut missed = false;
    for ((name, target), median) in TARGETS.iter().zip(results) {
        if median > *target {
            println!(
                "{name}: median above the target of {} ms",
                target.as_millis()
            );
            missed = true;
        }
    }
    if missed || !planned.conflicts.is_empty() || failures > 0 {
        std::process::exit(1);
    }
}
