//! `VirtualIPPool`: `validate()` and the schema's CEL rules give one verdict (but for the one
//! rule CEL cannot express), defaults, the schema's columns; and `VirtualIP.spec.virtualRouter`.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kube::CustomResourceExt;
use kube_vrrp_crds::cel::{self, CelRule};
use kube_vrrp_crds::{
    ViolationKind, VirtualIp, VirtualIpPool, VirtualIpPoolSpec, VirtualIpSpec, VrrpVersion,
};
use serde_json::{Value, json};

fn crd_json<K: CustomResourceExt>() -> Value {
    let name = K::crd_name();
    let (_, crd) = kube_vrrp_crds::crd_yaml::crds()
        .unwrap()
        .into_iter()
        .find(|(_, crd)| crd.metadata.name.as_deref() == Some(name))
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

/// kube-cel lacks cel-go's `int(duration)` (nanoseconds), which the interval rules use (the
/// API server's cost estimator refuses `duration()` over computed strings); here it becomes
/// `getMilliseconds() * 1000000`, the same verdict for the whole-millisecond intervals these
/// tests use. The cluster lab runs the rules on the real API server.
fn with_millisecond_int_duration(rule: &str) -> String {
    let mut out = String::new();
    let mut rest = rule;
    while let Some(start) = rest.find("int(duration(") {
        out.push_str(&rest[..start]);
        let inner = &rest[start + "int(duration(".len()..];
        let end = inner.find("))").unwrap();
        out.push_str("(duration(");
        out.push_str(&inner[..end]);
        out.push_str(").getMilliseconds() * 1000000)");
        rest = &inner[end + 2..];
    }
    out.push_str(rest);
    out
}

fn rewrite_rules(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(rule) if key == "rule" => {
                        *rule = with_millisecond_int_duration(rule);
                    }
                    _ => rewrite_rules(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_rules),
        _ => {}
    }
}

fn cel_messages<K: CustomResourceExt>(kind: &str, spec: &Value) -> Vec<String> {
    let mut crd = crd_json::<K>();
    rewrite_rules(&mut crd);
    let object = json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": kind,
                        "metadata": {"name": "lan"}, "spec": spec});
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    match kube_cel::validate(schema, &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn pool(spec: &Value) -> VirtualIpPoolSpec {
    serde_json::from_value(spec.clone()).unwrap()
}

/// Runs a pool spec through the CEL rules and `validate()`: `None` means both accept it;
/// `Some((rule, kind))` that exactly that CEL rule fails and `validate()` reports `kind`.
fn pool_case(spec: &Value, expect: Option<(&CelRule, ViolationKind)>) {
    let messages = cel_messages::<VirtualIpPool>("VirtualIPPool", spec);
    let violations = pool(spec).validate();
    match expect {
        None => {
            assert!(messages.is_empty(), "{spec}: CEL failed: {messages:?}");
            assert!(
                violations.is_empty(),
                "{spec}: validate() failed: {violations:?}"
            );
        }
        Some((rule, kind)) => {
            assert_eq!(messages, vec![rule.message.to_owned()], "{spec}");
            assert!(
                violations.iter().any(|v| v.kind == kind),
                "{spec}: validate() gave {violations:?}, not {kind:?}"
            );
        }
    }
}

const BLOCK_FORM: &CelRule = &cel::VIRTUAL_IP_POOL_SPEC[0];
const CIDR_IS_NETWORK: &CelRule = &cel::VIRTUAL_IP_POOL_SPEC[1];
const RANGE_ONE_FAMILY: &CelRule = &cel::VIRTUAL_IP_POOL_SPEC[2];
const V2_IPV4_ONLY: &CelRule = &cel::VIRTUAL_IP_POOL_SPEC[3];
const V2_INTERVAL: &CelRule = &cel::POOL_VRRP[0];
const V3_INTERVAL: &CelRule = &cel::POOL_VRRP[1];

#[test]
fn a_pool_of_cidrs_and_ranges_of_both_families_is_valid_and_gets_its_defaults() {
    let spec = json!({"addresses": ["192.168.77.0/24", "192.168.78.10-192.168.78.20",
                                    "fd00:77::/120", "fd00:78::5-fd00:78::9"]});
    pool_case(&spec, None);
    let p = pool(&spec);
    assert!(p.auto_assign);
    assert!(!p.include_network_and_broadcast);
    assert_eq!(p.vrrp.version, VrrpVersion::V3);
    assert_eq!(
        p.vrrp.advert_interval_or_default().parse().unwrap(),
        Duration::from_millis(100)
    );
    let v2 = pool(&json!({"addresses": ["10.0.0.0/24"], "vrrp": {"version": 2}}));
    assert_eq!(
        v2.vrrp.advert_interval_or_default().parse().unwrap(),
        Duration::from_secs(1)
    );
}

#[test]
fn every_vrrp_setting_a_pool_passes_on_is_valid_together() {
    pool_case(
        &json!({"addresses": ["10.0.0.0/24"], "autoAssign": false,
                "includeNetworkAndBroadcast": true,
                "namespaceSelector": {"matchLabels": {"team": "shop"}},
                "serviceSelector": {"matchExpressions": [{"key": "lb", "operator": "Exists"}]},
                "vrrp": {"interface": "eth0", "version": 2, "advertInterval": "2s",
                         "nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}},
                         "priorities": [{"nodeName": "n1", "priority": 150}],
                         "unicast": true}}),
        None,
    );
}

#[test]
fn an_entry_that_is_neither_a_cidr_nor_a_range_is_refused() {
    for bad in [
        "10.0.0.5",
        "10.0.0.1 - 10.0.0.5",
        "10.0.0.1-10.0.0.2-10.0.0.3",
        "lan",
        "10.0.0.0/33",
    ] {
        pool_case(
            &json!({"addresses": ["10.0.1.0/24", bad]}),
            Some((BLOCK_FORM, ViolationKind::InvalidCidr)),
        );
    }
}

#[test]
fn a_cidr_with_host_bits_is_refused_with_the_network_it_meant() {
    pool_case(
        &json!({"addresses": ["10.0.0.5/24"]}),
        Some((CIDR_IS_NETWORK, ViolationKind::InvalidCidr)),
    );
    pool_case(
        &json!({"addresses": ["fd00::5/120"]}),
        Some((CIDR_IS_NETWORK, ViolationKind::InvalidCidr)),
    );
    let v = pool(&json!({"addresses": ["10.0.0.5/24"]})).validate();
    assert!(v[0].message.contains("10.0.0.0/24"), "{v:?}");
    pool_case(&json!({"addresses": ["10.0.0.5/32", "fd00::5/128"]}), None);
}

#[test]
fn a_range_of_two_families_is_refused() {
    pool_case(
        &json!({"addresses": ["10.0.0.1-fd00::1"]}),
        Some((RANGE_ONE_FAMILY, ViolationKind::MixedFamilies)),
    );
}

#[test]
fn a_reversed_range_is_refused_by_validate_while_cel_cannot_order_addresses() {
    // The one rule without a CEL twin: the operator refuses such a pool at run time.
    let spec = json!({"addresses": ["10.0.0.9-10.0.0.5"]});
    assert!(cel_messages::<VirtualIpPool>("VirtualIPPool", &spec).is_empty());
    let v = pool(&spec).validate();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, ViolationKind::InvalidRange);
    assert_eq!(v[0].field, "spec.addresses[0]");
}

#[test]
fn vrrp_version_2_is_refused_for_a_pool_with_ipv6_blocks() {
    pool_case(
        &json!({"addresses": ["10.0.0.0/24", "fd00::/120"], "vrrp": {"version": 2}}),
        Some((V2_IPV4_ONLY, ViolationKind::RequiresVersion3)),
    );
}

#[test]
fn advert_intervals_follow_the_versions_rules() {
    pool_case(
        &json!({"addresses": ["10.0.0.0/24"], "vrrp": {"version": 2, "advertInterval": "1500ms"}}),
        Some((V2_INTERVAL, ViolationKind::NotWholeSeconds)),
    );
    pool_case(
        &json!({"addresses": ["10.0.0.0/24"], "vrrp": {"advertInterval": "15ms"}}),
        Some((V3_INTERVAL, ViolationKind::NotCentiseconds)),
    );
    pool_case(
        &json!({"addresses": ["10.0.0.0/24"], "vrrp": {"advertInterval": "20ms"}}),
        None,
    );
}

#[test]
fn pool_priorities_need_exactly_one_of_node_name_or_selector() {
    pool_case(
        &json!({"addresses": ["10.0.0.0/24"], "vrrp": {"priorities": [{"priority": 150}]}}),
        Some((&cel::PRIORITY_RULE[0], ViolationKind::ExactlyOneOf)),
    );
}

#[test]
fn pool_selectors_are_checked_like_built_in_ones() {
    let spec = pool(&json!({"addresses": ["10.0.0.0/24"],
        "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}}));
    let v = spec.validate();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        v[0].field,
        "spec.namespaceSelector.matchExpressions[0].operator"
    );
}

#[test]
fn kubectl_get_vippool_shows_addresses_assigned_available_ready_age() {
    let crd = crd_json::<VirtualIpPool>();
    let columns: Vec<(&str, &str)> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Addresses", ".spec.addresses[0]"),
            ("Assigned", ".status.assigned"),
            ("Available", ".status.available"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    let blocks = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["addresses"];
    assert_eq!(blocks["maxItems"], json!(64));
    assert_eq!(blocks["items"]["maxLength"], json!(100));
}

#[test]
fn a_virtual_router_name_is_a_dns_subdomain_for_cel_and_validate() {
    for (router, ok) in [
        ("lan-ipv4-0", true),
        ("pool.lan.0", true),
        ("a", true),
        ("Lan", false),
        ("lan_0", false),
        ("-lan", false),
        ("lan.", false),
    ] {
        let spec = json!({"addresses": ["10.0.0.50/32"], "virtualRouter": router});
        let messages = cel_messages::<VirtualIp>("VirtualIP", &spec);
        let parsed: VirtualIpSpec = serde_json::from_value(spec.clone()).unwrap();
        let violations = parsed.validate();
        if ok {
            assert!(
                messages.is_empty() && violations.is_empty(),
                "{router}: {messages:?} {violations:?}"
            );
        } else {
            assert_eq!(
                messages,
                vec![cel::VIRTUAL_ROUTER[0].message.to_owned()],
                "{router}"
            );
            assert_eq!(violations.len(), 1, "{router}: {violations:?}");
            assert_eq!(violations[0].field, "spec.virtualRouter");
        }
    }
}
