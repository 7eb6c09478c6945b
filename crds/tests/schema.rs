//! The generated CRDs: names, scope, printer columns, ranges and enums, and the CEL rules
//! (present where they belong, compiling, and evaluated with kube-cel against objects).

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use kube::CustomResourceExt;
use kube_vrrp_crds::cel::{self, CelRule};
use kube_vrrp_crds::{VirtualIp, VirtualIpPool, VirtualServer, VrrpNode};
use serde_json::{Value, json};

/// The CRD as shipped (derived, then tidied by `crd_yaml::crds`).
fn crd_json<K: CustomResourceExt>() -> Value {
    let name = K::crd_name();
    let (_, crd) = kube_vrrp_crds::crd_yaml::crds()
        .unwrap()
        .into_iter()
        .find(|(_, crd)| crd.metadata.name.as_deref() == Some(name))
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

fn version(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]
}

fn root_schema(crd: &Value) -> &Value {
    &version(crd)["schema"]["openAPIV3Schema"]
}

/// The schema node at a dotted path of property names under `openAPIV3Schema`; `[]`
/// steps into array items.
fn node<'a>(crd: &'a Value, path: &str) -> &'a Value {
    let mut at = root_schema(crd);
    for step in path.split('.') {
        at = if step == "[]" {
            &at["items"]
        } else {
            &at["properties"][step]
        };
        assert!(!at.is_null(), "no schema node {path} (at {step})");
    }
    at
}

fn rules_at(node: &Value) -> Vec<(String, String, Option<String>)> {
    node["x-kubernetes-validations"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    (
                        r["rule"].as_str().unwrap().to_owned(),
                        r["message"].as_str().unwrap().to_owned(),
                        r["fieldPath"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn assert_rules_at(node: &Value, rules: &[CelRule]) {
    let present = rules_at(node);
    for r in rules {
        let want = (
            r.rule.to_owned(),
            r.message.to_owned(),
            r.field_path.map(str::to_owned),
        );
        assert!(
            present.contains(&want),
            "rule {:?} missing; present: {present:#?}",
            r.rule
        );
    }
}

#[test]
fn every_cel_rule_sits_on_the_schema_node_it_constrains() {
    let vip = crd_json::<VirtualIp>();
    assert_rules_at(node(&vip, "spec"), cel::VIRTUAL_IP_SPEC);
    assert_rules_at(node(&vip, "spec"), cel::VIRTUAL_ROUTER);
    assert_rules_at(node(&vip, "spec.priorities.[]"), cel::PRIORITY_RULE);
    assert_rules_at(
        node(&vip, "spec.nodeSelector.matchExpressions.[]"),
        cel::LABEL_SELECTOR_REQUIREMENT,
    );
    assert_rules_at(
        node(&vip, "spec.priorities.[].nodeSelector.matchExpressions.[]"),
        cel::LABEL_SELECTOR_REQUIREMENT,
    );

    let pool = crd_json::<VirtualIpPool>();
    assert_rules_at(node(&pool, "spec"), cel::VIRTUAL_IP_POOL_SPEC);
    assert_rules_at(node(&pool, "spec.vrrp"), cel::POOL_VRRP);
    assert_rules_at(node(&pool, "spec.vrrp.priorities.[]"), cel::PRIORITY_RULE);

    let vs = crd_json::<VirtualServer>();
    assert_rules_at(node(&vs, "spec"), cel::VIRTUAL_SERVER_SPEC);
    assert_rules_at(node(&vs, "spec.realServers.[]"), cel::SERVER_ADDRESS);
    assert_rules_at(node(&vs, "spec.sorryServer"), cel::SERVER_ADDRESS);
    assert_rules_at(node(&vs, "spec.healthCheck"), cel::HEALTH_CHECK);
    assert_rules_at(node(&vs, "spec.healthCheck.http"), cel::HTTP_CHECK);
    assert_rules_at(node(&vs, "spec.healthCheck.script"), cel::SCRIPT_COMMAND);
    assert_rules_at(node(&vip, "spec.track.scripts.[]"), cel::SCRIPT_COMMAND);

    assert_rules_at(node(&vs, "spec.tunnel"), cel::TUNNEL);
    assert_rules_at(node(&vs, "spec.realServers.[]"), cel::THRESHOLDS);
    assert_rules_at(node(&vs, "spec.backendRef"), cel::THRESHOLDS);

    let total: usize = cel::ALL.iter().map(|set| set.len()).sum();
    assert_eq!(
        total, 35,
        "a rule set changed: update this test and its twins"
    );
}

#[test]
fn every_cel_rule_compiles() {
    for crd in [
        crd_json::<VirtualIp>(),
        crd_json::<VirtualServer>(),
        crd_json::<VrrpNode>(),
        crd_json::<VirtualIpPool>(),
    ] {
        let compiled = kube_cel::compile_schema(root_schema(&crd));
        let mut stack = vec![&compiled];
        let mut count = 0;
        while let Some(n) = stack.pop() {
            for r in &n.validations {
                assert!(r.is_ok(), "{}: {r:?}", crd["metadata"]["name"]);
                count += 1;
            }
            stack.extend(n.properties.values());
            stack.extend(n.items.as_deref());
            stack.extend(n.additional_properties.as_deref());
        }
        assert!(count > 0 || crd["metadata"]["name"] == "vrrpnodes.kubevrrp.io");
    }
}

#[test]
fn every_list_and_string_a_cel_rule_reads_is_bounded() {
    // The apiserver estimates each rule's cost from maxItems/maxLength and rejects a CRD
    // whose rules could exceed the budget, so everything the rules read must be bounded.
    let vip = crd_json::<VirtualIp>();
    let vs = crd_json::<VirtualServer>();
    let node_crd = crd_json::<VrrpNode>();
    let lists = [
        (&vip, "spec.addresses"),
        (&vip, "spec.priorities"),
        (&vs, "spec.realServers"),
        (&node_crd, "spec.virtualServers"),
        (&node_crd, "spec.instances"),
        (&node_crd, "spec.virtualServers.[].realServers"),
        (&vs, "spec.healthCheck.script.command"),
        (&vip, "spec.track.scripts.[].command"),
    ];
    for (crd, path) in lists {
        assert!(
            node(crd, path)["maxItems"].is_u64(),
            "{path} has no maxItems"
        );
    }
    let strings = [
        (&vip, "spec.addresses.[]"),
        (&vip, "spec.advertInterval"),
        (&vs, "spec.persistenceTimeout"),
        (&vs, "spec.realServers.[].address"),
        (&vs, "spec.sorryServer.address"),
        (&node_crd, "spec.virtualServers.[].sorryServer.address"),
        (&vs, "spec.healthCheck.interval"),
        (&vs, "spec.healthCheck.timeout"),
        (&vs, "spec.healthCheck.sourceAddress"),
        (&vs, "spec.healthCheck.http.host"),
        (&vs, "spec.healthCheck.http.caBundle"),
        (&vs, "spec.healthCheck.script.command.[]"),
        (&vip, "spec.track.scripts.[].command.[]"),
    ];
    for (crd, path) in strings {
        assert!(
            node(crd, path)["maxLength"].is_u64(),
            "{path} has no maxLength"
        );
    }
}

#[test]
fn crds_are_cluster_scoped_in_group_kubevrrp_io() {
    for (crd, plural, kind, short) in [
        (crd_json::<VirtualIp>(), "virtualips", "VirtualIP", "vip"),
        (
            crd_json::<VirtualServer>(),
            "virtualservers",
            "VirtualServer",
            "vsvr",
        ),
        (crd_json::<VrrpNode>(), "vrrpnodes", "VrrpNode", "vrn"),
        (
            crd_json::<VirtualIpPool>(),
            "virtualippools",
            "VirtualIPPool",
            "vippool",
        ),
    ] {
        assert_eq!(crd["metadata"]["name"], format!("{plural}.kubevrrp.io"));
        assert_eq!(crd["spec"]["group"], "kubevrrp.io");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["kind"], kind);
        assert_eq!(crd["spec"]["names"]["plural"], plural);
        assert_eq!(crd["spec"]["names"]["shortNames"], json!([short]));
        assert_eq!(crd["spec"]["names"]["categories"], json!(["kube-vrrp"]));
        assert_eq!(version(&crd)["name"], "v1alpha1");
        assert_eq!(version(&crd)["subresources"]["status"], json!({}));
    }
}

#[test]
fn kubectl_get_vip_shows_address_master_state_nodes_service_age() {
    let crd = crd_json::<VirtualIp>();
    let columns: Vec<(&str, &str)> = version(&crd)["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Address", ".spec.addresses[0]"),
            ("Master", ".status.master"),
            ("State", ".status.state"),
            ("Nodes", ".status.nodesSummary"),
            ("Service", ".metadata.annotations.kubevrrp\\.io/services"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
    // Each status column names a field that exists in the status schema.
    for field in ["master", "state", "nodesSummary"] {
        node(&crd, &format!("status.{field}"));
    }
}

#[test]
fn ranges_and_enums_are_in_the_schema() {
    let vip = crd_json::<VirtualIp>();
    let vrid = node(&vip, "spec.virtualRouterID");
    assert_eq!(
        (vrid["minimum"].as_f64(), vrid["maximum"].as_f64()),
        (Some(1.0), Some(255.0))
    );
    let prio = node(&vip, "spec.priorities.[].priority");
    assert_eq!(
        (prio["minimum"].as_f64(), prio["maximum"].as_f64()),
        (Some(1.0), Some(254.0))
    );
    let v = node(&vip, "spec.version");
    assert_eq!((&v["enum"], &v["default"]), (&json!([2, 3]), &json!(3)));
    assert_eq!(
        node(&vip, "spec.authentication.type")["enum"],
        json!(["PASS"])
    );
    assert_eq!(node(&vip, "spec.addresses")["minItems"], json!(1));
    assert_eq!(node(&vip, "spec.addresses")["maxItems"], json!(64));
    let interval = node(&vip, "spec.advertInterval");
    assert_eq!(
        interval["pattern"],
        kube_vrrp_crds::duration::DURATION_PATTERN
    );
    assert_eq!(interval["default"], "1s");
    assert_eq!(node(&vip, "spec.preempt")["default"], json!(true));
    let state = node(&vip, "status.nodes.[].state");
    assert_eq!(
        state["enum"],
        json!(["Initialize", "Backup", "Master", "Fault"])
    );

    let vs = crd_json::<VirtualServer>();
    assert_eq!(
        node(&vs, "spec.scheduler")["enum"],
        json!([
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh"
        ])
    );
    assert_eq!(
        node(&vs, "spec.forwarding")["enum"],
        json!(["NAT", "DR", "TUN"])
    );
    assert_eq!(
        node(&vs, "spec.protocol")["enum"],
        json!(["TCP", "UDP", "SCTP"])
    );
    let weight = node(&vs, "spec.realServers.[].weight");
    assert_eq!(weight["maximum"].as_f64(), Some(65535.0));
}

// ---- CEL evaluation with kube-cel (the apiserver's rules run client-side) ----

/// kube-cel lacks cel-go's `int(duration)` (nanoseconds), which the rules use because the API
/// server's cost estimator refuses `duration()` over computed strings. Here it becomes
/// `getMilliseconds() * 1000000`: the same verdict for every interval these tests use (whole
/// milliseconds). Sub-millisecond values are checked against the real API server by the
/// cluster lab (`e2e/tests/cluster.rs`).
fn with_millisecond_int_duration(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "rule"
                    && let Value::String(rule) = v
                {
                    *rule = rewrite_int_duration(rule);
                } else {
                    with_millisecond_int_duration(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(with_millisecond_int_duration),
        _ => {}
    }
}

fn rewrite_int_duration(rule: &str) -> String {
    let mut out = String::new();
    let mut rest = rule;
    while let Some(start) = rest.find("int(duration(") {
        out.push_str(&rest[..start]);
        let inner = &rest[start + "int(duration(".len()..];
        let end = inner.find("))").expect("int(duration(...)) closes");
        out.push_str("(duration(");
        out.push_str(&inner[..end]);
        out.push_str(").getMilliseconds() * 1000000)");
        rest = &inner[end + 2..];
    }
    out.push_str(rest);
    out
}

fn cel_messages<K: CustomResourceExt>(object: &Value) -> Vec<String> {
    let mut crd = crd_json::<K>();
    with_millisecond_int_duration(&mut crd);
    match kube_cel::validate(root_schema(&crd), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn vip_object(spec: &Value) -> Value {
    json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP",
           "metadata": {"name": "web"}, "spec": spec})
}

fn vs_object(spec: &Value) -> Value {
    json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualServer",
           "metadata": {"name": "web-https"}, "spec": spec})
}

/// Runs a VirtualIP spec through both the CEL rules and `validate()`: both must agree.
/// `expect` is the message of the one CEL rule that must fail, or `None` for valid.
fn vip_case(spec: &Value, expect: Option<&CelRule>) {
    let messages = cel_messages::<VirtualIp>(&vip_object(spec));
    let parsed: kube_vrrp_crds::VirtualIpSpec = serde_json::from_value(spec.clone()).unwrap();
    let violations = parsed.validate();
    match expect {
        None => {
            assert!(messages.is_empty(), "{spec}: CEL failed: {messages:?}");
            assert!(
                violations.is_empty(),
                "{spec}: validate() failed: {violations:?}"
            );
        }
        Some(rule) => {
            assert_eq!(messages, vec![rule.message.to_owned()], "{spec}");
            assert!(
                !violations.is_empty(),
                "{spec}: validate() accepted what CEL rejects"
            );
        }
    }
}

fn vs_case(spec: &Value, expect: Option<&CelRule>) {
    let messages = cel_messages::<VirtualServer>(&vs_object(spec));
    let parsed: kube_vrrp_crds::VirtualServerSpec = serde_json::from_value(spec.clone()).unwrap();
    let violations = parsed.validate();
    match expect {
        None => {
            assert!(messages.is_empty(), "{spec}: CEL failed: {messages:?}");
            assert!(
                violations.is_empty(),
                "{spec}: validate() failed: {violations:?}"
            );
        }
        Some(rule) => {
            assert_eq!(messages, vec![rule.message.to_owned()], "{spec}");
            assert!(
                !violations.is_empty(),
                "{spec}: validate() accepted what CEL rejects"
            );
        }
    }
}

const ADDRESSES_ARE_CIDRS: &CelRule = &cel::VIRTUAL_IP_SPEC[0];
const ONE_FAMILY: &CelRule = &cel::VIRTUAL_IP_SPEC[1];
const V2_INTERVAL: &CelRule = &cel::VIRTUAL_IP_SPEC[2];
const V3_INTERVAL: &CelRule = &cel::VIRTUAL_IP_SPEC[3];
const AUTH_V2: &CelRule = &cel::VIRTUAL_IP_SPEC[4];

#[test]
fn cel_accepts_a_minimal_virtual_ip_with_defaults() {
    vip_case(&json!({"addresses": ["10.0.0.50/24"]}), None);
    vip_case(
        &json!({"addresses": ["2001:db8::50/64", "2001:db8::51/64"]}),
        None,
    );
}

#[test]
fn cel_rejects_an_address_that_is_not_a_cidr() {
    vip_case(
        &json!({"addresses": ["10.0.0.50"]}),
        Some(ADDRESSES_ARE_CIDRS),
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24", "web"]}),
        Some(ADDRESSES_ARE_CIDRS),
    );
}

#[test]
fn cel_rejects_mixed_address_families() {
    vip_case(
        &json!({"addresses": ["10.0.0.50/24", "2001:db8::50/64"]}),
        Some(ONE_FAMILY),
    );
}

#[test]
fn cel_checks_v2_intervals_are_whole_seconds_from_1s_to_255s() {
    for good in ["1s", "255s", "2000ms", "4m"] {
        vip_case(
            &json!({"addresses": ["10.0.0.50/24"], "version": 2, "advertInterval": good}),
            None,
        );
    }
    for bad in ["1500ms", "100ms", "256s", "0s"] {
        vip_case(
            &json!({"addresses": ["10.0.0.50/24"], "version": 2, "advertInterval": bad}),
            Some(V2_INTERVAL),
        );
    }
}

#[test]
fn cel_checks_v3_intervals_are_centiseconds_from_10ms_to_40_95s() {
    for good in ["10ms", "100ms", "1s", "1.23s", "40.95s", "40950ms"] {
        vip_case(
            &json!({"addresses": ["10.0.0.50/24"], "advertInterval": good}),
            None,
        );
    }
    for bad in ["5ms", "15ms", "41s", "0s"] {
        vip_case(
            &json!({"addresses": ["10.0.0.50/24"], "version": 3, "advertInterval": bad}),
            Some(V3_INTERVAL),
        );
    }
}

#[test]
fn cel_allows_accept_mode_with_either_version() {
    for version in [2, 3] {
        for accept in [true, false] {
            vip_case(
                &json!({"addresses": ["10.0.0.50/24"], "version": version, "advertInterval": "1s", "acceptMode": accept}),
                None,
            );
        }
    }
}

#[test]
fn cel_allows_authentication_only_with_version_2() {
    let auth = json!({"type": "PASS",
        "passwordSecretRef": {"namespace": "kube-vrrp", "name": "vrrp-auth", "key": "password"}});
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"], "version": 2, "authentication": auth}),
        None,
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"], "authentication": auth}),
        Some(AUTH_V2),
    );
}

#[test]
fn cel_requires_exactly_one_of_node_name_or_selector_per_priority() {
    let selector = json!({"matchLabels": {"tier": "edge"}});
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"], "priorities": [
            {"nodeName": "node-a", "priority": 150},
            {"nodeSelector": selector, "priority": 120}]}),
        None,
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"], "priorities": [{"priority": 150}]}),
        Some(&cel::PRIORITY_RULE[0]),
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"], "priorities": [
            {"nodeName": "node-a", "nodeSelector": selector, "priority": 150}]}),
        Some(&cel::PRIORITY_RULE[0]),
    );
}

#[test]
fn cel_refuses_selector_requirements_without_values_where_they_need_some_and_with_values_where_they_take_none()
 {
    let requirement = |operator: &str, values: Value| {
        json!({"addresses": ["10.0.0.50/24"], "nodeSelector": {"matchExpressions": [
            {"key": "kubevrrp.io/vip", "operator": operator, "values": values}]}})
    };
    vip_case(&requirement("In", json!(["true"])), None);
    vip_case(&requirement("Exists", json!([])), None);
    vip_case(
        &requirement("In", json!([])),
        Some(&cel::LABEL_SELECTOR_REQUIREMENT[0]),
    );
    vip_case(
        &requirement("NotIn", json!([])),
        Some(&cel::LABEL_SELECTOR_REQUIREMENT[0]),
    );
    vip_case(
        &requirement("DoesNotExist", json!(["x"])),
        Some(&cel::LABEL_SELECTOR_REQUIREMENT[0]),
    );
    let priority = json!({"addresses": ["10.0.0.50/24"], "priorities": [{"priority": 150, "nodeSelector":
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": []}]}}]});
    vip_case(&priority, Some(&cel::LABEL_SELECTOR_REQUIREMENT[0]));
}

#[test]
fn label_selectors_in_the_schema_bound_their_lists_and_name_their_operators() {
    let vip = crd_json::<VirtualIp>();
    for path in ["spec.nodeSelector", "spec.priorities.[].nodeSelector"] {
        let expressions = node(&vip, &format!("{path}.matchExpressions"));
        assert_eq!(expressions["maxItems"], json!(32), "{path}");
        assert_eq!(
            expressions["items"]["properties"]["operator"]["enum"],
            json!(["In", "NotIn", "Exists", "DoesNotExist"]),
            "{path}"
        );
        assert_eq!(
            expressions["items"]["properties"]["values"]["maxItems"],
            json!(64),
            "{path}"
        );
    }
}

#[test]
fn cel_requires_real_servers_or_a_backend_ref() {
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "10.0.1.10"}]}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80,
               "backendRef": {"namespace": "web", "name": "web"}}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80}),
        Some(&cel::VIRTUAL_SERVER_SPEC[0]),
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": []}),
        Some(&cel::VIRTUAL_SERVER_SPEC[0]),
    );
}

#[test]
fn cel_requires_whole_second_persistence_timeouts() {
    let rs = json!([{"address": "10.0.1.10"}]);
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": rs, "persistenceTimeout": "300s"}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": rs, "persistenceTimeout": "1500ms"}),
        Some(&cel::VIRTUAL_SERVER_SPEC[1]),
    );
}

#[test]
fn cel_requires_ip_addresses_for_real_and_sorry_servers() {
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "2001:db8::10"}],
               "sorryServer": {"address": "10.0.1.99"}}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "backend"}]}),
        Some(&cel::SERVER_ADDRESS[0]),
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "10.0.1.10"}],
               "sorryServer": {"address": "10.0.1.99/24"}}),
        Some(&cel::SERVER_ADDRESS[0]),
    );
}

#[test]
fn cel_requires_exactly_one_health_check_kind() {
    let rs = json!([{"address": "10.0.1.10"}]);
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": rs,
               "healthCheck": {"http": {"path": "/healthz"}}}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": rs, "healthCheck": {}}),
        Some(&cel::HEALTH_CHECK[0]),
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": rs,
               "healthCheck": {"tcp": {}, "script": {"command": ["/bin/true"]}}}),
        Some(&cel::HEALTH_CHECK[0]),
    );
}

const SOURCE_IS_IP: &CelRule = &cel::HEALTH_CHECK[1];
const SOURCE_NOT_WITH_SCRIPT: &CelRule = &cel::HEALTH_CHECK[2];
const INTERVAL_POSITIVE: &CelRule = &cel::HEALTH_CHECK[3];
const TIMEOUT_POSITIVE: &CelRule = &cel::HEALTH_CHECK[4];
const SOURCE_FAMILY: &CelRule = &cel::VIRTUAL_SERVER_SPEC[5];

fn with_check(check: &Value) -> Value {
    json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "10.0.1.10"}],
           "healthCheck": check})
}

#[test]
fn cel_and_validate_agree_on_health_check_timers_and_source_address() {
    vs_case(
        &with_check(&json!({"tcp": {}, "sourceAddress": "10.0.1.1"})),
        None,
    );
    vs_case(
        &with_check(&json!({"tcp": {}, "sourceAddress": "node-a"})),
        Some(SOURCE_IS_IP),
    );
    vs_case(
        &with_check(&json!({"script": {"command": ["/s/check"]}, "sourceAddress": "10.0.1.1"})),
        Some(SOURCE_NOT_WITH_SCRIPT),
    );
    vs_case(
        &with_check(&json!({"tcp": {}, "sourceAddress": "2001:db8::1"})),
        Some(SOURCE_FAMILY),
    );
    vs_case(
        &with_check(&json!({"tcp": {}, "interval": "0s"})),
        Some(INTERVAL_POSITIVE),
    );
    vs_case(
        &with_check(&json!({"tcp": {}, "timeout": "0"})),
        Some(TIMEOUT_POSITIVE),
    );
    vs_case(
        &with_check(&json!({"tcp": {}, "interval": "250ms", "timeout": "100ms"})),
        None,
    );
}

#[test]
fn cel_and_validate_agree_on_http_host_and_certificate_verification() {
    let http = |h: Value| with_check(&json!({ "http": h }));
    vs_case(&http(json!({"host": "web.example", "https": true})), None);
    vs_case(&http(json!({"host": "2001:db8::1"})), None);
    vs_case(
        &http(json!({"host": "web.example:8080"})),
        Some(&cel::HTTP_CHECK[0]),
    );
    vs_case(
        &http(json!({"host": "-web.example"})),
        Some(&cel::HTTP_CHECK[0]),
    );
    vs_case(
        &http(json!({"host": format!("{}.example", "a".repeat(64))})),
        Some(&cel::HTTP_CHECK[0]),
    );
    vs_case(
        &http(json!({"verifyCertificate": true})),
        Some(&cel::HTTP_CHECK[1]),
    );
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    vs_case(
        &http(json!({"https": true, "caBundle": pem})),
        Some(&cel::HTTP_CHECK[2]),
    );
    vs_case(
        &http(json!({"https": true, "verifyCertificate": true, "caBundle": "not a pem"})),
        Some(&cel::HTTP_CHECK[3]),
    );
    vs_case(
        &http(json!({"https": true, "verifyCertificate": true, "caBundle": pem})),
        None,
    );
}

#[test]
fn cel_and_validate_refuse_a_script_named_by_a_relative_path() {
    vs_case(
        &with_check(&json!({"script": {"command": ["check.sh", "-q"]}})),
        Some(&cel::SCRIPT_COMMAND[0]),
    );
    vs_case(
        &with_check(&json!({"script": {"command": ["/etc/kube-vrrp/scripts/check.sh"]}})),
        None,
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"],
                "track": {"scripts": [{"name": "ha", "command": ["pgrep", "haproxy"]}]}}),
        Some(&cel::SCRIPT_COMMAND[0]),
    );
    vip_case(
        &json!({"addresses": ["10.0.0.50/24"],
                "track": {"scripts": [{"name": "ha", "command": ["/usr/bin/pgrep", "haproxy"]}],
                          "virtualServers": [{"name": "web-80", "weight": -50}]}}),
        None,
    );
}

/// Collects places where a schema is not structural in the apiserver's sense: a node
/// without a `type` (unless int-or-string or preserve-unknown-fields), or a `$ref`.
fn non_structural(schema: &Value, path: &str, out: &mut Vec<String>) {
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
    if schema.get("$ref").is_some() {
        out.push(format!("{path}: $ref"));
    }
    if schema.get("type").is_none()
        && !flag("x-kubernetes-int-or-string")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.push(format!("{path}: no type"));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            non_structural(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = schema.get("items") {
        non_structural(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = schema.get("additionalProperties")
        && extra.is_object()
    {
        non_structural(extra, &format!("{path}{{}}"), out);
    }
}

#[test]
fn generated_schemas_are_structural() {
    for crd in [
        crd_json::<VirtualIp>(),
        crd_json::<VirtualServer>(),
        crd_json::<VrrpNode>(),
    ] {
        let mut problems = Vec::new();
        non_structural(root_schema(&crd), "", &mut problems);
        assert!(
            problems.is_empty(),
            "{}: {problems:#?}",
            crd["metadata"]["name"]
        );
    }
}

#[test]
fn structural_check_flags_an_untyped_node() {
    let mut problems = Vec::new();
    non_structural(
        &json!({"type": "object", "properties": {"x": {"description": "untyped"}}}),
        "",
        &mut problems,
    );
    assert_eq!(problems, [".x: no type"]);
}

const SCHEDULER_FLAGS: &CelRule = &cel::VIRTUAL_SERVER_SPEC[2];
const GRANULARITY_NEEDS_TIMEOUT: &CelRule = &cel::VIRTUAL_SERVER_SPEC[3];
const TUNNEL_NEEDS_TUN: &CelRule = &cel::VIRTUAL_SERVER_SPEC[4];
const GUE_PORT: &CelRule = &cel::TUNNEL[0];
const REMCSUM_GUE: &CelRule = &cel::TUNNEL[1];
const IPIP_NO_CSUM: &CelRule = &cel::TUNNEL[2];
const LOWER_BELOW_UPPER: &CelRule = &cel::THRESHOLDS[0];

#[test]
fn cel_and_validate_agree_on_scheduler_flags_persistence_granularity_tunnels_and_thresholds() {
    let rs = json!([{"address": "10.0.1.10"}]);
    let base = |extra: Value| {
        let mut spec = json!({"virtualIPRef": "web", "port": 80, "realServers": rs});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        spec
    };
    vs_case(
        &base(json!({"scheduler": "mh", "schedulerFlags": ["fallback", "port"]})),
        None,
    );
    vs_case(
        &base(json!({"scheduler": "rr", "schedulerFlags": ["port"]})),
        Some(SCHEDULER_FLAGS),
    );
    vs_case(
        &base(json!({"persistenceTimeout": "60s", "persistenceGranularity": 24})),
        None,
    );
    vs_case(
        &base(json!({"persistenceGranularity": 24})),
        Some(GRANULARITY_NEEDS_TIMEOUT),
    );
    vs_case(
        &base(json!({"tunnel": {"type": "IPIP"}})),
        Some(TUNNEL_NEEDS_TUN),
    );
    vs_case(
        &base(
            json!({"forwarding": "TUN", "tunnel": {"type": "GUE", "port": 6080, "checksum": "RemoteChecksum"}}),
        ),
        None,
    );
    vs_case(
        &base(json!({"forwarding": "TUN", "tunnel": {"type": "GUE"}})),
        Some(GUE_PORT),
    );
    vs_case(
        &base(
            json!({"forwarding": "TUN", "tunnel": {"type": "GRE", "checksum": "RemoteChecksum"}}),
        ),
        Some(REMCSUM_GUE),
    );
    vs_case(
        &base(json!({"forwarding": "TUN", "tunnel": {"type": "IPIP", "checksum": "Checksum"}})),
        Some(IPIP_NO_CSUM),
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "10.0.1.10", "upperThreshold": 100, "lowerThreshold": 10}]}),
        None,
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "realServers": [{"address": "10.0.1.10", "lowerThreshold": 10}]}),
        Some(LOWER_BELOW_UPPER),
    );
    vs_case(
        &json!({"virtualIPRef": "web", "port": 80, "backendRef": {"namespace": "a", "name": "b", "upperThreshold": 5, "lowerThreshold": 5}}),
        Some(LOWER_BELOW_UPPER),
    );
}
