//! `VrrpInstance::validate()`: the agent checks every instance it is given with the rules of
//! the VirtualIP it was planned from (one rule set), plus the instance's own.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use kube_vrrp_crds::{Violation, ViolationKind, VirtualIpSpec, VrrpInstance};

/// A valid VirtualIP spec to mutate; every field an instance copies is set.
const BASE: &str = r#"
addresses: ["10.0.0.50/24"]
virtualRouterID: 51
interface: eth0
version: 3
advertInterval: 100ms
preempt: true
preemptDelay: 0s
garp: {delay: 5s, repeat: 5, refresh: 0s}
syncGroup: edge
track:
  interfaces: [{name: eth1, weight: -20}]
"#;

fn base() -> VirtualIpSpec {
    serde_saphyr::from_str(BASE).unwrap()
}

/// The instance the planner would push for `spec` (the fields are copied as `plan` does).
fn planned(spec: &VirtualIpSpec) -> VrrpInstance {
    VrrpInstance {
        name: "web".into(),
        interface: spec.interface.clone(),
        virtual_router_id: spec.virtual_router_id.unwrap_or(1),
        version: spec.version,
        addresses: spec.addresses.clone(),
        priority: 150,
        advert_interval: spec.advert_interval.clone(),
        preempt: spec.preempt,
        preempt_delay: spec.preempt_delay.clone(),
        accept_mode: spec.accept_mode,
        unicast_peers: Vec::new(),
        authentication: spec.authentication.clone(),
        garp: spec.garp.clone().unwrap_or_default(),
        sync_group: spec.sync_group.clone(),
        use_virtual_mac: spec.use_virtual_mac,
        track: spec.track.clone().unwrap_or_default(),
    }
}

/// (field, kind) of each violation.
fn found(violations: &[Violation]) -> Vec<(String, ViolationKind)> {
    violations
        .iter()
        .map(|v| (v.field.clone(), v.kind))
        .collect()
}

#[test]
fn an_instance_planned_from_a_valid_virtual_ip_is_valid() {
    let v = planned(&base()).validate();
    assert!(v.is_empty(), "{v:?}");
}

/// A way to break a valid spec.
type Breaks = fn(&mut VirtualIpSpec);

#[test]
fn an_instance_breaks_exactly_the_rules_its_virtual_ip_breaks() {
    let broken: Vec<(&str, Breaks)> = vec![
        ("v2 with a sub-second interval", |s| {
            s.version = kube_vrrp_crds::VrrpVersion::V2;
            s.advert_interval = "1500ms".into();
        }),
        ("v3 interval not in centiseconds", |s| {
            s.advert_interval = "15ms".into();
        }),
        ("a duration typo", |s| s.preempt_delay = "5 sec".into()),
        ("authentication with v3", |s| {
            s.authentication = serde_saphyr::from_str(
                "{type: PASS, passwordSecretRef: {namespace: ns, name: '', key: k}}",
            )
            .unwrap();
        }),
        ("an address without a prefix", |s| {
            s.addresses = vec!["10.0.0.50".into()];
        }),
        ("mixed families", |s| {
            s.addresses.push("2001:db8::50/64".into());
        }),
        ("an empty interface", |s| s.interface = Some(String::new())),
        ("VRID 0", |s| s.virtual_router_id = Some(0)),
        ("GARP repeat 0", |s| {
            if let Some(g) = s.garp.as_mut() {
                g.repeat = 0;
            }
        }),
        ("an empty sync group", |s| {
            s.sync_group = Some(String::new());
        }),
        ("a tracker weight of 300", |s| {
            if let Some(t) = s.track.as_mut() {
                t.interfaces[0].weight = Some(300);
            }
        }),
    ];
    for (case, breaks) in broken {
        let mut spec = base();
        breaks(&mut spec);
        let from_api: Vec<(String, ViolationKind)> = found(&spec.validate())
            .into_iter()
            .map(|(field, kind)| (field.trim_start_matches("spec.").to_owned(), kind))
            .collect();
        assert!(
            !from_api.is_empty(),
            "{case}: the VirtualIP should be invalid"
        );
        assert_eq!(
            found(&planned(&spec).validate()),
            from_api,
            "{case}: the agent must reject what the API rejects, field for field"
        );
    }
}

#[test]
fn a_priority_of_0_or_255_is_out_of_range() {
    for priority in [0, 255] {
        let mut instance = planned(&base());
        instance.priority = priority;
        assert_eq!(
            found(&instance.validate()),
            [("priority".to_owned(), ViolationKind::OutOfRange)]
        );
    }
}

#[test]
fn a_unicast_peer_must_be_an_ip_address() {
    let mut instance = planned(&base());
    instance.unicast_peers = vec!["10.0.0.2".into(), "node-b".into()];
    assert_eq!(
        found(&instance.validate()),
        [("unicastPeers[1]".to_owned(), ViolationKind::InvalidIp)]
    );
}

#[test]
fn an_instance_without_a_name_is_rejected() {
    let mut instance = planned(&base());
    instance.name = String::new();
    assert_eq!(
        found(&instance.validate()),
        [("name".to_owned(), ViolationKind::Required)]
    );
}
