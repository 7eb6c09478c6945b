//! `VirtualIpSpec::validate()`: every rule, failing and passing.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use kube_vrrp_crds::{Violation, ViolationKind, VirtualIp, VirtualIpSpec, VrrpVersion};

/// A valid spec to mutate in each test.
const BASE: &str = r#"
addresses: ["10.0.0.50/24"]
virtualRouterID: 51
interface: eth0
version: 3
advertInterval: 100ms
preempt: true
preemptDelay: 0s
nodeSelector:
  matchLabels: {kubevrrp.io/vip: "true"}
priorities:
  - nodeName: node-a
    priority: 150
  - nodeSelector: {matchLabels: {tier: edge}}
    priority: 120
"#;

fn base() -> VirtualIpSpec {
    serde_saphyr::from_str(BASE).unwrap()
}

fn spec(yaml: &str) -> VirtualIpSpec {
    serde_saphyr::from_str(yaml).unwrap()
}

/// (field, kind) of each violation, for compact assertions.
fn found(violations: &[Violation]) -> Vec<(&str, ViolationKind)> {
    violations
        .iter()
        .map(|v| (v.field.as_str(), v.kind))
        .collect()
}

fn assert_only(spec: &VirtualIpSpec, field: &str, kind: ViolationKind) {
    let v = spec.validate();
    assert_eq!(found(&v), vec![(field, kind)], "violations: {v:?}");
    assert!(!v[0].message.is_empty());
}

fn assert_valid(spec: &VirtualIpSpec) {
    let v = spec.validate();
    assert!(v.is_empty(), "expected no violations, got {v:?}");
}

#[test]
fn base_spec_is_valid() {
    assert_valid(&base());
}

#[test]
fn minimal_spec_with_only_addresses_is_valid_and_gets_defaults() {
    let s = spec("addresses: [\"2001:db8::50/64\"]");
    assert_valid(&s);
    assert_eq!(s.version, VrrpVersion::V3);
    assert_eq!(s.advert_interval.as_str(), "1s");
    assert!(s.preempt);
    assert_eq!(s.preempt_delay.as_str(), "0s");
    assert!(
        s.accept_mode,
        "acceptMode defaults to accept, as keepalived without vrrp_strict"
    );
    assert!(!s.unicast && !s.use_virtual_mac);
}

#[test]
fn design_example_parses_but_breaks_only_the_v2_only_authentication_rule() {
    // DESIGN.md §8 shows authentication (marked "v2 only") next to version 3 and a 100ms
    // interval, so as written it cannot be valid under either version.
    let text = include_str!("data/design-example.yaml");
    let vip: VirtualIp = serde_saphyr::from_str(text).unwrap();
    assert_eq!(vip.metadata.name.as_deref(), Some("web"));
    assert_eq!(vip.spec.virtual_router_id, Some(51));
    assert_eq!(vip.spec.priorities.len(), 2);
    assert_only(
        &vip.spec,
        "spec.authentication",
        ViolationKind::RequiresVersion2,
    );
}

#[test]
fn design_example_without_authentication_is_valid() {
    let text = include_str!("data/design-example.yaml");
    let mut vip: VirtualIp = serde_saphyr::from_str(text).unwrap();
    vip.spec.authentication = None;
    assert_valid(&vip.spec);
}

#[test]
fn empty_address_list_is_required() {
    let mut s = base();
    s.addresses.clear();
    assert_only(&s, "spec.addresses", ViolationKind::Required);
}

#[test]
fn address_without_prefix_length_is_not_a_cidr() {
    let mut s = base();
    s.addresses = vec!["10.0.0.50/24".into(), "10.0.0.51".into()];
    assert_only(&s, "spec.addresses[1]", ViolationKind::InvalidCidr);
}

#[test]
fn address_with_a_prefix_too_long_is_not_a_cidr() {
    let mut s = base();
    s.addresses = vec!["10.0.0.50/33".into()];
    assert_only(&s, "spec.addresses[0]", ViolationKind::InvalidCidr);
}

#[test]
fn ipv4_and_ipv6_addresses_cannot_mix() {
    let mut s = base();
    s.addresses = vec!["10.0.0.50/24".into(), "2001:db8::50/64".into()];
    assert_only(&s, "spec.addresses", ViolationKind::MixedFamilies);
}

#[test]
fn several_addresses_of_one_family_are_valid() {
    let mut s = base();
    s.addresses = vec!["2001:db8::50/64".into(), "2001:db8::51/128".into()];
    assert_valid(&s);
}

#[test]
fn more_than_64_addresses_are_too_many() {
    let mut s = base();
    s.addresses = (0..65).map(|i| format!("10.0.1.{i}/24")).collect();
    assert_only(&s, "spec.addresses", ViolationKind::TooMany);
    s.addresses.pop();
    assert_valid(&s);
}

#[test]
fn virtual_router_id_zero_is_out_of_range() {
    let mut s = base();
    s.virtual_router_id = Some(0);
    assert_only(&s, "spec.virtualRouterID", ViolationKind::OutOfRange);
    for vrid in [1, 255] {
        s.virtual_router_id = Some(vrid);
        assert_valid(&s);
    }
}

#[test]
fn virtual_router_id_above_255_does_not_decode() {
    let err = serde_saphyr::from_str::<VirtualIpSpec>(
        "addresses: [\"10.0.0.1/24\"]\nvirtualRouterID: 256",
    )
    .unwrap_err();
    assert!(err.to_string().contains("256"), "{err}");
}

#[test]
fn empty_interface_name_is_rejected() {
    let mut s = base();
    s.interface = Some(String::new());
    assert_only(&s, "spec.interface", ViolationKind::Required);
}

#[test]
fn priority_zero_and_255_are_out_of_range() {
    for bad in [0, 255] {
        let mut s = base();
        s.priorities[1].priority = bad;
        assert_only(&s, "spec.priorities[1].priority", ViolationKind::OutOfRange);
    }
    for good in [1, 254] {
        let mut s = base();
        s.priorities[1].priority = good;
        assert_valid(&s);
    }
}

#[test]
fn priority_entry_with_both_node_name_and_selector_is_ambiguous() {
    let mut s = base();
    s.priorities[0].node_selector = s.priorities[1].node_selector.clone();
    assert_only(&s, "spec.priorities[0]", ViolationKind::ExactlyOneOf);
}

#[test]
fn priority_entry_with_neither_node_name_nor_selector_matches_nothing() {
    let mut s = base();
    s.priorities[1].node_selector = None;
    assert_only(&s, "spec.priorities[1]", ViolationKind::ExactlyOneOf);
}

#[test]
fn v3_interval_below_10ms_is_out_of_range() {
    let mut s = base();
    s.advert_interval = "5ms".into();
    assert_only(&s, "spec.advertInterval", ViolationKind::OutOfRange);
}

#[test]
fn v3_interval_above_40_95s_is_out_of_range() {
    let mut s = base();
    s.advert_interval = "41s".into();
    assert_only(&s, "spec.advertInterval", ViolationKind::OutOfRange);
}

#[test]
fn v3_interval_must_be_whole_centiseconds() {
    let mut s = base();
    s.advert_interval = "15ms".into();
    assert_only(&s, "spec.advertInterval", ViolationKind::NotCentiseconds);
}

#[test]
fn v3_interval_bounds_and_steps_are_valid() {
    for good in ["10ms", "40.95s", "40950ms", "1s", "1.23s", "100ms"] {
        let mut s = base();
        s.advert_interval = good.into();
        assert_valid(&s);
    }
}

#[test]
fn v2_interval_must_be_whole_seconds() {
    let mut s = base();
    s.version = VrrpVersion::V2;
    s.advert_interval = "1500ms".into();
    assert_only(&s, "spec.advertInterval", ViolationKind::NotWholeSeconds);
}

#[test]
fn v2_interval_below_1s_or_above_255s_is_out_of_range() {
    for bad in ["100ms", "256s", "0s"] {
        let mut s = base();
        s.version = VrrpVersion::V2;
        s.advert_interval = bad.into();
        assert_only(&s, "spec.advertInterval", ViolationKind::OutOfRange);
    }
}

#[test]
fn v2_interval_of_whole_seconds_is_valid() {
    for good in ["1s", "255s", "2000ms", "4m"] {
        let mut s = base();
        s.version = VrrpVersion::V2;
        s.advert_interval = good.into();
        assert_valid(&s);
    }
}

#[test]
fn unparsable_interval_is_an_invalid_duration() {
    let mut s = base();
    s.advert_interval = "fast".into();
    assert_only(&s, "spec.advertInterval", ViolationKind::InvalidDuration);
}

#[test]
fn unparsable_preempt_delay_is_an_invalid_duration() {
    let mut s = base();
    s.preempt_delay = "30".into();
    assert_only(&s, "spec.preemptDelay", ViolationKind::InvalidDuration);
    s.preempt_delay = "30s".into();
    assert_valid(&s);
}

#[test]
fn accept_mode_either_way_is_valid_with_either_version() {
    let mut s = base();
    for accept in [true, false] {
        s.accept_mode = accept;
        s.version = VrrpVersion::V2;
        s.advert_interval = "1s".into();
        assert_valid(&s);
        s.version = VrrpVersion::V3;
        assert_valid(&s);
    }
}

const AUTH: &str = r#"
addresses: ["10.0.0.50/24"]
version: 2
advertInterval: 1s
authentication:
  type: PASS
  passwordSecretRef: {namespace: kube-vrrp, name: vrrp-auth, key: password}
"#;

#[test]
fn authentication_with_version_2_is_valid() {
    assert_valid(&spec(AUTH));
}

#[test]
fn authentication_requires_version_2() {
    let mut s = spec(AUTH);
    s.version = VrrpVersion::V3;
    assert_only(&s, "spec.authentication", ViolationKind::RequiresVersion2);
}

#[test]
fn authentication_needs_a_complete_secret_reference() {
    let mut s = spec(AUTH);
    if let Some(a) = s.authentication.as_mut() {
        a.password_secret_ref.key.clear();
    }
    assert_only(
        &s,
        "spec.authentication.passwordSecretRef.key",
        ViolationKind::Required,
    );
}

#[test]
fn unknown_authentication_type_does_not_decode() {
    let yaml = AUTH.replace("type: PASS", "type: AH");
    assert!(serde_saphyr::from_str::<VirtualIpSpec>(&yaml).is_err());
}

#[test]
fn garp_repeat_must_be_1_to_100() {
    let mut s = spec("addresses: [\"10.0.0.50/24\"]\ngarp: {repeat: 0}");
    assert_only(&s, "spec.garp.repeat", ViolationKind::OutOfRange);
    if let Some(g) = s.garp.as_mut() {
        g.repeat = 100;
    }
    assert_valid(&s);
}

#[test]
fn garp_durations_must_parse() {
    let s = spec("addresses: [\"10.0.0.50/24\"]\ngarp: {delay: soon, refresh: 60s}");
    assert_only(&s, "spec.garp.delay", ViolationKind::InvalidDuration);
}

#[test]
fn empty_sync_group_is_rejected() {
    let s = spec("addresses: [\"10.0.0.50/24\"]\nsyncGroup: \"\"");
    assert_only(&s, "spec.syncGroup", ViolationKind::Required);
}

const TRACK: &str = r#"
addresses: ["10.0.0.50/24"]
track:
  interfaces:
    - {name: eth1, weight: -20}
    - {name: eth2}
  files:
    - {path: /run/kube-vrrp/maintenance, weight: -253}
  scripts:
    - name: haproxy
      command: ["/usr/bin/pgrep", "haproxy"]
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
      weight: 10
  endpoints:
    - service: {namespace: ingress, name: ingress-nginx}
      weight: 253
"#;

#[test]
fn trackers_of_every_kind_are_valid() {
    let s = spec(TRACK);
    assert_valid(&s);
    let t = s.track.unwrap();
    assert_eq!(t.interfaces[1].weight, None);
    assert_eq!(t.scripts[0].fall, 3);
}

#[test]
fn tracker_weight_beyond_253_is_out_of_range() {
    let s = spec(&TRACK.replace("weight: 253", "weight: 254"));
    assert_only(
        &s,
        "spec.track.endpoints[0].weight",
        ViolationKind::OutOfRange,
    );
    let s = spec(&TRACK.replace("weight: -20", "weight: -254"));
    assert_only(
        &s,
        "spec.track.interfaces[0].weight",
        ViolationKind::OutOfRange,
    );
}

#[test]
fn tracked_script_needs_a_command() {
    let s = spec(&TRACK.replace(r#"["/usr/bin/pgrep", "haproxy"]"#, "[]"));
    assert_only(&s, "spec.track.scripts[0].command", ViolationKind::Required);
}

#[test]
fn tracked_script_rise_and_fall_start_at_1() {
    let s = spec(&TRACK.replace("rise: 2", "rise: 0"));
    assert_only(&s, "spec.track.scripts[0].rise", ViolationKind::OutOfRange);
}

#[test]
fn tracked_script_timeout_must_parse() {
    let s = spec(&TRACK.replace("timeout: 1s", "timeout: 1 s"));
    assert_only(
        &s,
        "spec.track.scripts[0].timeout",
        ViolationKind::InvalidDuration,
    );
}

#[test]
fn tracked_endpoints_need_a_service_name() {
    let s = spec(&TRACK.replace("name: ingress-nginx", "name: \"\""));
    assert_only(
        &s,
        "spec.track.endpoints[0].service.name",
        ViolationKind::Required,
    );
}

#[test]
fn every_violation_is_reported_at_once() {
    let mut s = base();
    s.addresses = vec!["nonsense".into()];
    s.virtual_router_id = Some(0);
    s.advert_interval = "15ms".into();
    s.priorities[0].priority = 0;
    let v = s.validate();
    assert_eq!(
        found(&v),
        vec![
            ("spec.addresses[0]", ViolationKind::InvalidCidr),
            ("spec.virtualRouterID", ViolationKind::OutOfRange),
            ("spec.priorities[0].priority", ViolationKind::OutOfRange),
            ("spec.advertInterval", ViolationKind::NotCentiseconds),
        ]
    );
}

#[test]
fn parsed_addresses_returns_networks_or_violations() {
    let nets = base().parsed_addresses().unwrap();
    assert_eq!(nets[0].to_string(), "10.0.0.50/24");
    let mut s = base();
    s.addresses.push("2001:db8::1/64".into());
    let err = s.parsed_addresses().unwrap_err();
    assert_eq!(err[0].kind, ViolationKind::MixedFamilies);
}

#[test]
fn version_4_does_not_decode() {
    let err = serde_saphyr::from_str::<VirtualIpSpec>("addresses: [\"10.0.0.1/24\"]\nversion: 4")
        .unwrap_err();
    assert!(
        err.to_string().contains("unsupported VRRP version 4"),
        "{err}"
    );
}

#[test]
fn default_spec_equals_the_api_defaults() {
    let from_api = spec("addresses: []");
    assert_eq!(VirtualIpSpec::default(), from_api);
}

#[test]
fn node_selector_with_an_unknown_operator_is_rejected() {
    let s = spec(
        "addresses: [\"10.0.0.50/24\"]\nnodeSelector:\n  matchExpressions:\n    \
         - {key: tier, operator: Equals, values: [edge]}",
    );
    assert_only(
        &s,
        "spec.nodeSelector.matchExpressions[0].operator",
        ViolationKind::InvalidFormat,
    );
}

#[test]
fn node_selector_in_needs_values_and_exists_takes_none() {
    let s = spec(
        "addresses: [\"10.0.0.50/24\"]\npriorities:\n  - priority: 100\n    nodeSelector:\n      \
         matchExpressions:\n        - {key: tier, operator: In}\n        \
         - {key: zone, operator: Exists, values: [a]}\n        \
         - {key: rack, operator: NotIn, values: [r1]}\n        - {key: gpu, operator: DoesNotExist}",
    );
    let v = s.validate();
    assert_eq!(
        found(&v),
        vec![
            (
                "spec.priorities[0].nodeSelector.matchExpressions[0].values",
                ViolationKind::Required
            ),
            (
                "spec.priorities[0].nodeSelector.matchExpressions[1].values",
                ViolationKind::InvalidFormat
            ),
        ]
    );
}
