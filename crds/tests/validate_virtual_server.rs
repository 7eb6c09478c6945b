//! `VirtualServerSpec::validate()`: every rule, failing and passing.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use kube_vrrp_crds::{
    Forwarding, HealthCheck, Protocol, Scheduler, Violation, ViolationKind, VirtualServerSpec,
};

const BASE: &str = r"
virtualIPRef: web
port: 443
protocol: TCP
scheduler: wrr
forwarding: DR
persistenceTimeout: 300s
quorum: 2
sorryServer: {address: 10.0.1.99, port: 8443}
inhibitOnFailure: true
realServers:
  - {address: 10.0.1.10, port: 8443, weight: 2}
  - {address: 10.0.1.11}
backendRef:
  namespace: web
  name: web-backend
  port: https
healthCheck:
  http:
    path: /healthz
    expectedStatus: [200, 204]
    bodyDigest: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    https: true
  interval: 2s
  timeout: 1s
  retries: 3
  delayBeforeRetry: 500ms
  rise: 2
  fall: 3
";

fn base() -> VirtualServerSpec {
    serde_saphyr::from_str(BASE).unwrap()
}

fn found(violations: &[Violation]) -> Vec<(&str, ViolationKind)> {
    violations
        .iter()
        .map(|v| (v.field.as_str(), v.kind))
        .collect()
}

fn assert_only(spec: &VirtualServerSpec, field: &str, kind: ViolationKind) {
    let v = spec.validate();
    assert_eq!(found(&v), vec![(field, kind)], "violations: {v:?}");
}

fn assert_valid(spec: &VirtualServerSpec) {
    let v = spec.validate();
    assert!(v.is_empty(), "expected no violations, got {v:?}");
}

fn check_of(yaml: &str) -> HealthCheck {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn base_spec_is_valid_and_decodes_every_field() {
    let s = base();
    assert_valid(&s);
    assert_eq!(s.scheduler, Scheduler::Wrr);
    assert_eq!(s.forwarding, Forwarding::Dr);
    assert_eq!(s.real_servers[1].weight, 1);
    assert_eq!(s.real_servers[1].port, None);
}

#[test]
fn minimal_spec_gets_tcp_wlc_nat_defaults() {
    let s: VirtualServerSpec =
        serde_saphyr::from_str("virtualIPRef: web\nport: 80\nrealServers: [{address: 10.0.1.10}]")
            .unwrap();
    assert_valid(&s);
    assert_eq!(
        (s.protocol, s.scheduler, s.forwarding),
        (Protocol::Tcp, Scheduler::Wlc, Forwarding::Nat)
    );
}

#[test]
fn every_scheduler_name_decodes() {
    for name in [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh",
    ] {
        let s: Scheduler = serde_json::from_value(serde_json::json!(name)).unwrap();
        assert_eq!(s.as_str(), name);
    }
    assert!(serde_json::from_value::<Scheduler>(serde_json::json!("fo")).is_err());
}

#[test]
fn empty_virtual_ip_ref_is_required() {
    let mut s = base();
    s.virtual_ip_ref.clear();
    assert_only(&s, "spec.virtualIPRef", ViolationKind::Required);
}

#[test]
fn port_zero_is_out_of_range() {
    let mut s = base();
    s.port = 0;
    assert_only(&s, "spec.port", ViolationKind::OutOfRange);
}

#[test]
fn no_real_servers_and_no_backend_ref_leaves_nothing_to_balance() {
    let mut s = base();
    s.real_servers.clear();
    s.backend_ref = None;
    assert_only(&s, "spec", ViolationKind::Required);
}

#[test]
fn backend_ref_alone_or_real_servers_alone_are_valid() {
    let mut s = base();
    s.real_servers.clear();
    assert_valid(&s);
    let mut s = base();
    s.backend_ref = None;
    assert_valid(&s);
}

#[test]
fn real_server_address_must_be_an_ip() {
    let mut s = base();
    s.real_servers[1].address = "backend.example".into();
    assert_only(&s, "spec.realServers[1].address", ViolationKind::InvalidIp);
    s.real_servers[1].address = "2001:db8::10".into();
    assert_valid(&s);
}

#[test]
fn real_server_address_with_prefix_is_not_an_ip() {
    let mut s = base();
    s.real_servers[0].address = "10.0.1.10/24".into();
    assert_only(&s, "spec.realServers[0].address", ViolationKind::InvalidIp);
}

#[test]
fn real_server_weight_above_65535_is_out_of_range() {
    let mut s = base();
    s.real_servers[0].weight = 65_536;
    assert_only(&s, "spec.realServers[0].weight", ViolationKind::OutOfRange);
    s.real_servers[0].weight = 0;
    assert_valid(&s);
}

#[test]
fn sorry_server_address_must_be_an_ip() {
    let mut s = base();
    if let Some(sorry) = s.sorry_server.as_mut() {
        sorry.address = "sorry".into();
    }
    assert_only(&s, "spec.sorryServer.address", ViolationKind::InvalidIp);
}

#[test]
fn persistence_timeout_must_be_whole_seconds() {
    let mut s = base();
    s.persistence_timeout = Some("1500ms".into());
    assert_only(
        &s,
        "spec.persistenceTimeout",
        ViolationKind::NotWholeSeconds,
    );
    s.persistence_timeout = Some("5m".into());
    assert_valid(&s);
}

#[test]
fn persistence_timeout_must_parse() {
    let mut s = base();
    s.persistence_timeout = Some("long".into());
    assert_only(
        &s,
        "spec.persistenceTimeout",
        ViolationKind::InvalidDuration,
    );
}

#[test]
fn quorum_zero_is_out_of_range() {
    let mut s = base();
    s.quorum = Some(0);
    assert_only(&s, "spec.quorum", ViolationKind::OutOfRange);
}

#[test]
fn health_check_with_no_kind_is_ambiguous() {
    let mut s = base();
    s.health_check = Some(check_of("interval: 1s"));
    assert_only(&s, "spec.healthCheck", ViolationKind::ExactlyOneOf);
}

#[test]
fn health_check_with_two_kinds_is_ambiguous() {
    let mut s = base();
    s.health_check = Some(check_of("tcp: {}\nscript: {command: [/bin/true]}"));
    assert_only(&s, "spec.healthCheck", ViolationKind::ExactlyOneOf);
}

#[test]
fn tcp_or_script_health_check_alone_is_valid() {
    for yaml in [
        "tcp: {port: 8080}",
        "script: {command: [/usr/local/bin/check]}",
    ] {
        let mut s = base();
        s.health_check = Some(check_of(yaml));
        assert_valid(&s);
    }
}

#[test]
fn script_health_check_needs_a_command() {
    let mut s = base();
    s.health_check = Some(check_of("script: {command: []}"));
    assert_only(
        &s,
        "spec.healthCheck.script.command",
        ViolationKind::Required,
    );
}

#[test]
fn http_path_must_start_with_a_slash() {
    let mut s = base();
    s.health_check = Some(check_of("http: {path: healthz}"));
    assert_only(
        &s,
        "spec.healthCheck.http.path",
        ViolationKind::InvalidFormat,
    );
}

#[test]
fn http_body_digest_must_be_lowercase_sha256_hex() {
    let mut s = base();
    s.health_check = Some(check_of("http: {bodyDigest: E3B0C442}"));
    assert_only(
        &s,
        "spec.healthCheck.http.bodyDigest",
        ViolationKind::InvalidFormat,
    );
}

#[test]
fn http_expected_status_must_be_a_status_code() {
    let mut s = base();
    s.health_check = Some(check_of("http: {expectedStatus: [200, 600]}"));
    assert_only(
        &s,
        "spec.healthCheck.http.expectedStatus[1]",
        ViolationKind::OutOfRange,
    );
    s.health_check = Some(check_of("http: {expectedStatus: []}"));
    assert_only(
        &s,
        "spec.healthCheck.http.expectedStatus",
        ViolationKind::Required,
    );
}

#[test]
fn http_check_defaults_to_get_slash_expecting_200() {
    let hc = check_of("http: {}");
    let http = hc.http.unwrap();
    assert_eq!(http.path, "/");
    assert_eq!(http.expected_status, vec![200]);
    assert_eq!(hc.interval.as_str(), "5s");
}

#[test]
fn health_check_retries_must_be_1_to_10() {
    let mut s = base();
    s.health_check = Some(check_of("tcp: {}\nretries: 0"));
    assert_only(&s, "spec.healthCheck.retries", ViolationKind::OutOfRange);
}

#[test]
fn health_check_durations_must_parse() {
    let mut s = base();
    s.health_check = Some(check_of("tcp: {}\ndelayBeforeRetry: later"));
    assert_only(
        &s,
        "spec.healthCheck.delayBeforeRetry",
        ViolationKind::InvalidDuration,
    );
}
