//! LoadBalancer allocation, pure: pools, requests, sharing, exhaustion, lifecycle, stability
//! across passes and restarts, traffic policy, shared virtual routers.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube_vrrp_crds::{ServiceRef, VirtualIp, VirtualIpPool, VirtualIpSpec};
use kube_vrrp_operator::load_balancer::{
    ADDRESSES_ANNOTATION, FailureReason, LOAD_BALANCER_CLASS, LbConfig, LbInput, LbPlan,
    POOL_ANNOTATION, PoolProblem, SHARING_ANNOTATION, allocate,
};
use serde_json::{Value, json};

#[allow(clippy::needless_pass_by_value)] // json! literals read best passed by value
fn pool(name: &str, created: &str, spec: Value) -> VirtualIpPool {
    serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

fn lan() -> VirtualIpPool {
    pool(
        "lan",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["192.168.77.0/24"]}),
    )
}

/// A LoadBalancer Service of our class in `ns`, created at second `t`; `extra` is merged
/// into the object (`metadata` and `spec` keys merge one level deep).
fn svc(ns: &str, name: &str, t: u32, extra: &Value) -> Service {
    let mut v = json!({
        "metadata": {"name": name, "namespace": ns,
                     "creationTimestamp": format!("2026-02-01T00:00:{:02}Z", t % 60)},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                 "ipFamilies": ["IPv4"], "ports": [{"port": 80}]},
    });
    for (k, val) in extra.as_object().unwrap() {
        match (v.get_mut(k), val) {
            (Some(Value::Object(have)), Value::Object(add)) => {
                for (k2, v2) in add {
                    have.insert(k2.clone(), v2.clone());
                }
            }
            _ => {
                v[k] = val.clone();
            }
        }
    }
    serde_json::from_value(v).unwrap()
}

fn plain(ns: &str, name: &str, t: u32) -> Service {
    svc(ns, name, t, &json!({}))
}

fn annotated(ns: &str, name: &str, t: u32, annotations: &Value) -> Service {
    svc(
        ns,
        name,
        t,
        &json!({"metadata": {"annotations": annotations}}),
    )
}

fn namespace(name: &str, labels: &Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn node(name: &str, ip: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubevrrp.io/vip": "true"}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }))
    .unwrap()
}

fn key(ns: &str, name: &str) -> ServiceRef {
    ServiceRef {
        namespace: ns.to_owned(),
        name: name.to_owned(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One pass's objects, and passes over them.
#[derive(Default, Clone)]
struct World {
    pools: Vec<VirtualIpPool>,
    services: Vec<Service>,
    namespaces: Vec<Namespace>,
    nodes: Vec<Node>,
    virtual_ips: Vec<VirtualIp>,
    held: Vec<IpAddr>,
    default_class: bool,
}

impl World {
    fn with(pools: Vec<VirtualIpPool>, services: Vec<Service>) -> Self {
        Self {
            pools,
            services,
            nodes: vec![node("n1", "10.0.0.11")],
            ..Self::default()
        }
    }

    fn plan(&self) -> LbPlan {
        allocate(
            &LbInput {
                pools: self.pools.iter().collect(),
                services: self.services.iter().collect(),
                namespaces: self.namespaces.iter().collect(),
                nodes: self.nodes.iter().collect(),
                virtual_ips: self.virtual_ips.iter().collect(),
                held: self.held.clone(),
                node_policy: kube_vrrp_plan::NodePolicy::default(),
            },
            &LbConfig {
                default_class: self.default_class,
            },
        )
    }

    /// Runs a pass and stores the VirtualIPs it wants, as the controller does.
    fn pass(&mut self) -> LbPlan {
        let plan = self.plan();
        self.virtual_ips
            .retain(|v| !kube_vrrp_operator::load_balancer::is_managed(v));
        self.virtual_ips.extend(
            plan.virtual_ips
                .values()
                .map(kube_vrrp_operator::load_balancer::DesiredVirtualIp::object),
        );
        plan
    }
}

/// Three equal nodes, n1..n3.
fn three_nodes() -> Vec<Node> {
    vec![
        node("n1", "10.0.0.11"),
        node("n2", "10.0.0.12"),
        node("n3", "10.0.0.13"),
    ]
}

/// Addresses per shared virtual router.
fn per_router(plan: &LbPlan) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for v in plan.virtual_ips.values() {
        *out.entry(v.spec.virtual_router.clone().unwrap())
            .or_default() += 1;
    }
    out
}

fn addresses(plan: &LbPlan, ns: &str, name: &str) -> Vec<IpAddr> {
    plan.services[&key(ns, name)]
        .addresses
        .iter()
        .map(|a| a.address)
        .collect()
}

fn failure(plan: &LbPlan, ns: &str, name: &str) -> (FailureReason, String) {
    let f = &plan.services[&key(ns, name)].failures;
    assert_eq!(f.len(), 1, "{f:?}");
    (f[0].reason, f[0].message.clone())
}

#[test]
fn a_service_gets_the_lowest_host_address_of_the_pool_and_a_virtual_ip_with_the_pools_settings() {
    let mut p = pool(
        "lan",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["192.168.77.0/24"],
               "vrrp": {"interface": "eth0", "nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}},
                        "priorities": [{"nodeName": "n1", "priority": 150}], "unicast": true}}),
    );
    p.spec.vrrp.version = kube_vrrp_crds::VrrpVersion::V3;
    let mut w = World::with(vec![p], vec![plain("shop", "web", 1)]);
    let plan = w.pass();
    assert_eq!(addresses(&plan, "shop", "web"), [ip("192.168.77.1")]);
    assert!(plan.services[&key("shop", "web")].addresses[0].new);
    let vip = &plan.virtual_ips["lb-192-168-77-1"];
    assert_eq!(vip.services, [key("shop", "web")]);
    assert_eq!(vip.pool, "lan");
    assert_eq!(
        vip.spec,
        serde_json::from_value::<VirtualIpSpec>(json!({
            "addresses": ["192.168.77.1/32"], "interface": "eth0",
            "nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}},
            "priorities": [{"nodeName": "n1", "priority": 150}], "unicast": true,
            "advertInterval": "100ms", "virtualRouter": "lan-ipv4-0"}))
        .unwrap()
    );
    let object = vip.object();
    let annotations = object.metadata.annotations.unwrap();
    assert_eq!(annotations["kubevrrp.io/services"], "shop/web");
    assert_eq!(annotations[POOL_ANNOTATION], "lan");
    assert_eq!(plan.pools["lan"].assigned, 1);
    assert_eq!(plan.pools["lan"].available, 253);
    // The next pass reads it back: same address, nothing new.
    let again = w.pass();
    assert_eq!(addresses(&again, "shop", "web"), [ip("192.168.77.1")]);
    assert!(!again.services[&key("shop", "web")].addresses[0].new);
    assert_eq!(again.virtual_ips, plan.virtual_ips);
}

#[test]
fn services_of_another_class_or_type_or_without_class_unless_default_are_left_alone() {
    let other = svc(
        "shop",
        "other",
        1,
        &json!({"spec": {"loadBalancerClass": "example.com/lb"}}),
    );
    let classless = svc(
        "shop",
        "classless",
        2,
        &json!({"spec": {"loadBalancerClass": null}}),
    );
    let node_port = svc("shop", "np", 3, &json!({"spec": {"type": "NodePort"}}));
    let mut w = World::with(vec![lan()], vec![other, classless, node_port]);
    let plan = w.plan();
    assert!(plan.services.is_empty());
    assert!(plan.virtual_ips.is_empty());
    w.default_class = true;
    let plan = w.plan();
    assert_eq!(
        plan.services.keys().cloned().collect::<Vec<_>>(),
        [key("shop", "classless")]
    );
}

#[test]
fn a_requested_address_is_honoured_by_annotation_or_load_balancer_ip() {
    let by_annotation = annotated(
        "shop",
        "a",
        1,
        &json!({ADDRESSES_ANNOTATION: "192.168.77.50"}),
    );
    let by_field = svc(
        "shop",
        "b",
        2,
        &json!({"spec": {"loadBalancerIP": "192.168.77.60"}}),
    );
    let plan = World::with(vec![lan()], vec![by_annotation, by_field]).plan();
    assert_eq!(addresses(&plan, "shop", "a"), [ip("192.168.77.50")]);
    assert_eq!(addresses(&plan, "shop", "b"), [ip("192.168.77.60")]);
}

#[test]
fn a_requested_address_that_is_taken_or_outside_every_pool_is_refused_with_the_reason() {
    let mut user_vip = VirtualIp::new(
        "office",
        VirtualIpSpec {
            addresses: vec!["192.168.77.70/24".into()],
            ..VirtualIpSpec::default()
        },
    );
    user_vip.metadata.labels = None;
    let ask = |name: &str, t: u32, address: &str| {
        annotated("shop", name, t, &json!({ADDRESSES_ANNOTATION: address}))
    };
    let mut w = World::with(
        vec![lan()],
        vec![
            ask("first", 1, "192.168.77.50"),
            ask("second", 2, "192.168.77.50"),
            ask("outside", 3, "10.9.9.9"),
            ask("vip", 4, "192.168.77.70"),
            ask("node", 5, "192.168.77.11"),
        ],
    );
    w.nodes = vec![node("n1", "192.168.77.11")];
    w.virtual_ips = vec![user_vip];
    let plan = w.plan();
    assert_eq!(addresses(&plan, "shop", "first"), [ip("192.168.77.50")]);
    let (reason, message) = failure(&plan, "shop", "second");
    assert_eq!(reason, FailureReason::AddressInUse);
    assert!(message.contains("shop/first") && message.contains(SHARING_ANNOTATION));
    assert_eq!(
        failure(&plan, "shop", "outside").0,
        FailureReason::AddressNotInPool
    );
    let (reason, message) = failure(&plan, "shop", "vip");
    assert_eq!(reason, FailureReason::AddressInUse);
    assert!(message.contains("VirtualIP 'office'"), "{message}");
    let (reason, message) = failure(&plan, "shop", "node");
    assert_eq!(reason, FailureReason::AddressInUse);
    assert!(message.contains("node n1"), "{message}");
    // Node addresses are never handed out automatically either, and the pool says so.
    assert_eq!(
        plan.pools["lan"].node_addresses,
        [(ip("192.168.77.11"), "n1".to_owned())]
    );
}

#[test]
fn a_dual_stack_service_gets_one_address_per_family_in_its_family_order() {
    let p = pool(
        "lan",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["192.168.77.0/24", "fd00:77::/120"]}),
    );
    let s = svc(
        "shop",
        "web",
        1,
        &json!({"spec": {"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}}),
    );
    let plan = World::with(vec![p], vec![s]).plan();
    // IPv6: the Subnet-Router anycast address (the first) is held back.
    assert_eq!(
        addresses(&plan, "shop", "web"),
        [ip("fd00:77::1"), ip("192.168.77.1")]
    );
    let v6 = &plan.virtual_ips["lb-fd00-77-0-0-0-0-0-1"];
    assert_eq!(v6.spec.addresses, ["fd00:77::1/128"]);
    assert_eq!(v6.spec.virtual_router.as_deref(), Some("lan-ipv6-0"));
}

#[test]
fn services_with_one_sharing_key_share_an_address_unless_their_ports_collide() {
    let shared = |name: &str, t: u32, port: i32, address: Option<&str>| {
        let mut annotations = json!({SHARING_ANNOTATION: "dns"});
        if let Some(a) = address {
            annotations[ADDRESSES_ANNOTATION] = json!(a);
        }
        svc(
            "infra",
            name,
            t,
            &json!({"metadata": {"annotations": annotations},
                    "spec": {"ports": [{"port": port, "protocol": "UDP"}]}}),
        )
    };
    let plan = World::with(
        vec![lan()],
        vec![
            shared("dns-udp", 1, 53, Some("192.168.77.1")),
            svc(
                "infra",
                "dns-tcp",
                2,
                &json!({"metadata": {"annotations": {SHARING_ANNOTATION: "dns"}},
                        "spec": {"ports": [{"port": 53, "protocol": "TCP"}]}}),
            ),
            shared("clash", 3, 53, Some("192.168.77.1")),
            annotated(
                "infra",
                "keyless",
                4,
                &json!({ADDRESSES_ANNOTATION: "192.168.77.1"}),
            ),
        ],
    )
    .plan();
    assert_eq!(addresses(&plan, "infra", "dns-udp"), [ip("192.168.77.1")]);
    assert_eq!(addresses(&plan, "infra", "dns-tcp"), [ip("192.168.77.1")]);
    let (reason, message) = failure(&plan, "infra", "clash");
    assert_eq!(reason, FailureReason::PortsCollide);
    assert!(message.contains("UDP/53"), "{message}");
    assert_eq!(
        failure(&plan, "infra", "keyless").0,
        FailureReason::AddressInUse
    );
    let vip = &plan.virtual_ips["lb-192-168-77-1"];
    assert_eq!(
        vip.services,
        [key("infra", "dns-tcp"), key("infra", "dns-udp")]
    );
    assert_eq!(plan.virtual_ips.len(), 1);
}

#[test]
fn an_exhausted_pool_refuses_and_a_released_address_is_reused_once_no_node_holds_it() {
    let small = pool(
        "small",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["192.168.77.10-192.168.77.11"]}),
    );
    let mut w = World::with(
        vec![small],
        vec![
            plain("shop", "a", 1),
            plain("shop", "b", 2),
            plain("shop", "c", 3),
        ],
    );
    let plan = w.pass();
    assert_eq!(addresses(&plan, "shop", "a"), [ip("192.168.77.10")]);
    assert_eq!(addresses(&plan, "shop", "b"), [ip("192.168.77.11")]);
    let (reason, message) = failure(&plan, "shop", "c");
    assert_eq!(reason, FailureReason::PoolExhausted);
    assert!(message.contains("'small'"), "{message}");
    assert_eq!(plan.pools["small"].available, 0);
    // a is deleted; a node still reports holding its address: c waits.
    w.services
        .retain(|s| s.metadata.name.as_deref() != Some("a"));
    w.held = vec![ip("192.168.77.10")];
    let plan = w.pass();
    assert_eq!(
        plan.releases
            .iter()
            .map(|r| (r.service.clone(), r.address, r.why.as_str()))
            .collect::<Vec<_>>(),
        [(key("shop", "a"), ip("192.168.77.10"), "the Service is gone")]
    );
    assert_eq!(failure(&plan, "shop", "c").0, FailureReason::PoolExhausted);
    assert!(!plan.virtual_ips.contains_key("lb-192-168-77-10"));
    // No node holds it any more: c gets it.
    w.held.clear();
    let plan = w.pass();
    assert_eq!(addresses(&plan, "shop", "c"), [ip("192.168.77.10")]);
}

#[test]
fn allocations_survive_a_restart_from_the_virtual_ips_and_else_from_the_service_status() {
    let mut w = World::with(
        vec![lan()],
        vec![
            plain("shop", "a", 1),
            plain("shop", "b", 2),
            plain("shop", "c", 3),
        ],
    );
    let first = w.pass();
    // A restarted operator sees the same VirtualIPs, and Services listed in another order,
    // plus a new older Service: nobody moves.
    w.services.reverse();
    w.services.push(plain("aaa", "older", 0));
    let again = w.pass();
    for name in ["a", "b", "c"] {
        assert_eq!(
            addresses(&again, "shop", name),
            addresses(&first, "shop", name)
        );
    }
    assert_eq!(addresses(&again, "aaa", "older"), [ip("192.168.77.4")]);
    // The VirtualIPs are gone (deleted by hand), but b's status shows its address: b gets it
    // back although lower addresses are free.
    w.virtual_ips.clear();
    let b = w
        .services
        .iter_mut()
        .find(|s| s.metadata.name.as_deref() == Some("b"))
        .unwrap();
    b.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.168.77.2"}]}}))
            .unwrap(),
    );
    w.services
        .retain(|s| s.metadata.name.as_deref() != Some("a"));
    let restored = w.pass();
    assert_eq!(addresses(&restored, "shop", "b"), [ip("192.168.77.2")]);
}

#[test]
fn a_service_leaving_type_or_class_or_its_pool_loses_its_address_and_says_why() {
    let mut w = World::with(
        vec![
            lan(),
            pool(
                "spare",
                "2026-01-02T00:00:00Z",
                json!({"addresses": ["10.1.0.0/24"], "autoAssign": false}),
            ),
        ],
        vec![
            plain("shop", "typed", 1),
            plain("shop", "classed", 2),
            plain("shop", "pooled", 3),
        ],
    );
    w.pass();
    for s in &mut w.services {
        let spec = s.spec.as_mut().unwrap();
        match s.metadata.name.as_deref() {
            Some("typed") => spec.type_ = Some("ClusterIP".into()),
            Some("classed") => spec.load_balancer_class = Some("example.com/lb".into()),
            _ => {}
        }
    }
    w.pools
        .retain(|p| p.metadata.name.as_deref() != Some("lan"));
    let plan = w.pass();
    let why: BTreeMap<String, String> = plan
        .releases
        .iter()
        .map(|r| (r.service.name.clone(), r.why.clone()))
        .collect();
    assert_eq!(
        why["typed"],
        "the Service is no longer of type LoadBalancer"
    );
    assert!(
        why["classed"].contains("example.com/lb"),
        "{}",
        why["classed"]
    );
    assert_eq!(
        why["pooled"],
        "192.168.77.3 is no longer in any VirtualIPPool"
    );
    // The remaining pool does not assign without being asked.
    let (reason, message) = failure(&plan, "shop", "pooled");
    assert_eq!(reason, FailureReason::NoPool);
    assert!(message.contains("autoAssign is false"), "{message}");
    assert!(plan.virtual_ips.is_empty());
}

#[test]
fn a_pool_without_auto_assign_serves_services_that_name_it_or_ask_for_its_addresses() {
    let spare = pool(
        "spare",
        "2026-01-02T00:00:00Z",
        json!({"addresses": ["10.1.0.0/24"], "autoAssign": false}),
    );
    let plan = World::with(
        vec![lan(), spare],
        vec![
            plain("shop", "auto", 1),
            annotated("shop", "named", 2, &json!({POOL_ANNOTATION: "spare"})),
            annotated(
                "shop",
                "asked",
                3,
                &json!({ADDRESSES_ANNOTATION: "10.1.0.77"}),
            ),
            annotated("shop", "missing", 4, &json!({POOL_ANNOTATION: "nope"})),
        ],
    )
    .plan();
    assert_eq!(addresses(&plan, "shop", "auto"), [ip("192.168.77.1")]);
    assert_eq!(addresses(&plan, "shop", "named"), [ip("10.1.0.1")]);
    assert_eq!(addresses(&plan, "shop", "asked"), [ip("10.1.0.77")]);
    assert_eq!(
        failure(&plan, "shop", "missing").0,
        FailureReason::PoolNotFound
    );
}

#[test]
fn namespace_and_service_selectors_pick_which_services_a_pool_serves() {
    let team = pool(
        "team",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["10.2.0.0/24"],
               "namespaceSelector": {"matchLabels": {"team": "shop"}},
               "serviceSelector": {"matchExpressions": [{"key": "expose", "operator": "Exists"}]}}),
    );
    let mut w = World::with(
        vec![team],
        vec![
            svc(
                "shop",
                "yes",
                1,
                &json!({"metadata": {"labels": {"expose": "1"}}}),
            ),
            plain("shop", "unlabelled", 2),
            svc(
                "other",
                "wrong-ns",
                3,
                &json!({"metadata": {"labels": {"expose": "1"}}}),
            ),
        ],
    );
    w.namespaces = vec![
        namespace("shop", &json!({"team": "shop"})),
        namespace("other", &json!({})),
    ];
    let plan = w.plan();
    assert_eq!(addresses(&plan, "shop", "yes"), [ip("10.2.0.1")]);
    for (ns, name, says) in [
        ("shop", "unlabelled", "serviceSelector does not match"),
        (
            "other",
            "wrong-ns",
            "namespaceSelector does not match namespace other",
        ),
    ] {
        let (reason, message) = failure(&plan, ns, name);
        assert_eq!(reason, FailureReason::NoPool);
        assert!(message.contains(says), "{message}");
    }
}

#[test]
fn external_traffic_policy_local_gives_an_instance_of_its_own_that_tracks_the_endpoints() {
    let local = svc(
        "shop",
        "web",
        1,
        &json!({"spec": {"externalTrafficPolicy": "Local"}}),
    );
    let plan = World::with(vec![lan()], vec![local]).plan();
    let vip = &plan.virtual_ips["lb-192-168-77-1"];
    assert_eq!(vip.spec.virtual_router, None);
    let track = vip.spec.track.as_ref().unwrap();
    assert_eq!(track.endpoints.len(), 1);
    assert_eq!(track.endpoints[0].service, key("shop", "web"));
    assert_eq!(
        track.endpoints[0].weight, None,
        "no weight: FAULT without endpoint"
    );
}

#[test]
fn an_overlapping_younger_pool_hands_out_nothing_new_but_keeps_what_it_gave() {
    let young = pool(
        "young",
        "2026-01-05T00:00:00Z",
        json!({"addresses": ["10.3.0.0/24"]}),
    );
    let mut w = World::with(vec![young], vec![plain("shop", "a", 1)]);
    assert_eq!(addresses(&w.pass(), "shop", "a"), [ip("10.3.0.1")]);
    // An older pool turns up overlapping it (created earlier, restored from a backup).
    w.pools.push(pool(
        "old",
        "2026-01-01T00:00:00Z",
        json!({"addresses": ["10.3.0.128/25"]}),
    ));
    w.services.push(annotated(
        "shop",
        "b",
        2,
        &json!({POOL_ANNOTATION: "young"}),
    ));
    let plan = w.pass();
    assert_eq!(addresses(&plan, "shop", "a"), [ip("10.3.0.1")]);
    match &plan.pools["young"].problem {
        Some(PoolProblem::Overlap { other, shared }) => {
            assert_eq!(other, "old");
            assert_eq!(shared.to_string(), "10.3.0.128-10.3.0.255");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(failure(&plan, "shop", "b").0, FailureReason::NoPool);
    assert_eq!(plan.pools["old"].problem, None);
}

#[test]
fn an_invalid_pool_holds_nothing_and_a_services_unreadable_edit_keeps_its_address() {
    let mut w = World::with(
        vec![lan()],
        vec![plain("shop", "a", 1), plain("shop", "b", 2)],
    );
    w.pass();
    // a's annotation becomes unreadable: a keeps its address, with the reason.
    w.services[0]
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ADDRESSES_ANNOTATION.to_owned(), "not-an-address".to_owned());
    let plan = w.pass();
    assert_eq!(addresses(&plan, "shop", "a"), [ip("192.168.77.1")]);
    assert_eq!(failure(&plan, "shop", "a").0, FailureReason::InvalidRequest);
    assert!(plan.virtual_ips.contains_key("lb-192-168-77-1"));
    // The pool becomes invalid (a reversed range, which only the operator can refuse).
    w.pools[0].spec.addresses = vec!["192.168.77.200-192.168.77.1".into()];
    let plan = w.pass();
    assert!(matches!(
        plan.pools["lan"].problem,
        Some(PoolProblem::Invalid(_))
    ));
    assert_eq!(failure(&plan, "shop", "b").0, FailureReason::NoPool);
}

#[test]
fn cluster_services_share_routers_of_at_most_sixty_four_addresses_spread_evenly_by_master() {
    let services: Vec<Service> = (0..200)
        .map(|i| plain("bulk", &format!("s{i:03}"), i))
        .collect();
    let mut w = World::with(
        vec![pool(
            "big",
            "2026-01-01T00:00:00Z",
            json!({"addresses": ["10.4.0.0/16"]}),
        )],
        services,
    );
    w.nodes = three_nodes();
    let plan = w.pass();
    let per_router = per_router(&plan);
    assert!(per_router.values().all(|&n| n <= 64), "{per_router:?}");
    // Each node leads one full router and one with the rest: 67, 67 and 66 addresses.
    assert_eq!(per_router.len(), 6, "{per_router:?}");
    let mut masters: Vec<usize> = masters_by_node(&w.virtual_ips, &w.nodes)
        .into_values()
        .collect();
    masters.sort_unstable();
    assert_eq!(masters, [66, 67, 67]);
    // Stable: the next pass keeps every router.
    let again = w.pass();
    assert_eq!(again.virtual_ips, plan.virtual_ips);
}

#[test]
fn a_pool_spreads_over_at_most_sixteen_shared_routers_however_many_nodes_it_has() {
    let services: Vec<Service> = (0..40)
        .map(|i| plain("bulk", &format!("s{i:02}"), i))
        .collect();
    let mut w = World::with(vec![lan()], services);
    w.nodes = (0..40)
        .map(|i| node(&format!("n{i:02}"), &format!("10.0.1.{i}")))
        .collect();
    let plan = w.plan();
    let routers: std::collections::BTreeSet<String> = plan
        .virtual_ips
        .values()
        .map(|v| v.spec.virtual_router.clone().unwrap())
        .collect();
    assert_eq!(
        routers.len(),
        kube_vrrp_operator::load_balancer::MAX_SPREAD_ROUTERS
    );
}

/// The MASTER of each planned VirtualIP (the node the planner gives the highest priority),
/// counted per node.
fn masters_by_node(virtual_ips: &[VirtualIp], nodes: &[Node]) -> BTreeMap<String, usize> {
    let plan = kube_vrrp_plan::plan(&kube_vrrp_plan::PlanInput {
        virtual_ips: virtual_ips.to_vec(),
        nodes: nodes.to_vec(),
        ..kube_vrrp_plan::PlanInput::default()
    });
    assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
    let mut out = BTreeMap::new();
    for allocation in plan.allocations.values() {
        let (node, _) = allocation
            .priorities
            .iter()
            .max_by_key(|&(_, p)| *p)
            .unwrap();
        *out.entry(node.clone()).or_default() += 1;
    }
    out
}

#[test]
fn the_masters_of_a_thousand_cluster_services_spread_evenly_over_three_equal_nodes() {
    // The benchmark's shape: one pool, chart defaults (no priorities), three nodes.
    let services: Vec<Service> = (0..1000)
        .map(|i| plain("bench", &format!("lb-{i:04}"), i))
        .collect();
    let mut w = World::with(
        vec![pool(
            "bench",
            "2026-01-01T00:00:00Z",
            json!({"addresses": ["10.200.0.0/22"]}),
        )],
        services,
    );
    w.nodes = three_nodes();
    let plan = w.pass();
    assert_eq!(plan.virtual_ips.len(), 1000);
    let masters = masters_by_node(&w.virtual_ips, &w.nodes);
    assert_eq!(masters.values().sum::<usize>(), 1000, "{masters:?}");
    eprintln!("1,000 Services at once, MASTERs by node: {masters:?}");
    // Within ±10 % of an equal share (333).
    assert!(
        masters.len() == 3 && masters.values().all(|&m| (300..=367).contains(&m)),
        "MASTERs by node: {masters:?}"
    );
    // No router carries more than 64 addresses, and the next pass moves nothing.
    let per_router = per_router(&plan);
    assert!(per_router.values().all(|&n| n <= 64), "{per_router:?}");
    assert_eq!(w.pass().virtual_ips, plan.virtual_ips);

    // Services created one pass at a time spread as evenly.
    let mut grown = World {
        services: Vec::new(),
        ..w.clone()
    };
    grown.virtual_ips.clear();
    for chunk in w.services.chunks(37) {
        grown.services.extend(chunk.iter().cloned());
        grown.pass();
    }
    let masters = masters_by_node(&grown.virtual_ips, &grown.nodes);
    eprintln!("1,000 Services in passes of 37, MASTERs by node: {masters:?}");
    assert!(
        masters.values().all(|&m| (300..=367).contains(&m)),
        "MASTERs by node, Services added in passes: {masters:?}"
    );
}

#[test]
fn with_explicit_priorities_every_address_fills_one_router_of_the_preferred_master() {
    let services: Vec<Service> = (0..100)
        .map(|i| plain("bulk", &format!("s{i:03}"), i))
        .collect();
    let mut w = World::with(
        vec![pool(
            "lan",
            "2026-01-01T00:00:00Z",
            json!({"addresses": ["192.168.77.0/24"],
                   "vrrp": {"priorities": [{"nodeName": "n2", "priority": 150}]}}),
        )],
        services,
    );
    w.nodes = three_nodes();
    let plan = w.pass();
    let per_router = per_router(&plan);
    // n2 is every router's MASTER: spreading would only spend VRIDs.
    assert_eq!(
        per_router,
        BTreeMap::from([("lan-ipv4-0".to_owned(), 64), ("lan-ipv4-1".to_owned(), 36)])
    );
    assert_eq!(
        masters_by_node(&w.virtual_ips, &w.nodes),
        BTreeMap::from([("n2".to_owned(), 100)])
    );
}
