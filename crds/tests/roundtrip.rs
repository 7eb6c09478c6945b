//! Serialise → deserialise round trips (JSON and YAML), and the JSON field names.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube_vrrp_crds::{
    CheckResult, CheckerKind, CheckerStatus, InstanceStatus, IpvsStatus, QuorumStatus,
    RejectReason, RejectedInstance, ResolvedRealServer, ResolvedVirtualServer, State, VirtualIp,
    VirtualIpNodeStatus, VirtualIpPhase, VirtualIpStatus, VirtualServer, VirtualServerStatus,
    VrrpInstance, VrrpNode, VrrpNodeSpec, VrrpNodeStatus, VrrpVersion, condition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const VIP: &str = r#"
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: web}
spec:
  addresses: ["10.0.0.50/24"]
  virtualRouterID: 51
  interface: eth0
  version: 2
  advertInterval: 1s
  preempt: false
  preemptDelay: 30s
  unicast: true
  useVirtualMAC: true
  syncGroup: edge
  garp: {delay: 2s, repeat: 3, refresh: 60s}
  nodeSelector:
    matchExpressions:
      - {key: node-role.kubernetes.io/edge, operator: Exists}
  priorities:
    - {nodeName: node-a, priority: 150}
  authentication:
    type: PASS
    passwordSecretRef: {namespace: kube-vrrp, name: vrrp-auth, key: password}
  track:
    interfaces: [{name: eth1}]
    files: [{path: /run/maint, weight: -50}]
    scripts: [{name: haproxy, command: [/usr/bin/pgrep, haproxy], weight: 5}]
    endpoints: [{service: {namespace: ingress, name: nginx}, weight: -40}]
    virtualServers: [{name: web-https, weight: -60}]
"#;

const VS: &str = r"
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata: {name: web-https}
spec:
  virtualIPRef: web
  port: 443
  protocol: SCTP
  scheduler: mh
  forwarding: TUN
  persistenceTimeout: 300s
  quorum: 2
  sorryServer: {address: 10.0.1.99}
  inhibitOnFailure: true
  realServers: [{address: 10.0.1.10, port: 8443, weight: 3}]
  backendRef: {namespace: web, name: web, port: 8443, weight: 2}
  healthCheck:
    http:
      path: /healthz
      port: 8080
      host: web.example
      https: true
      verifyCertificate: true
      caBundle: |
        -----BEGIN CERTIFICATE-----
        MIIB
        -----END CERTIFICATE-----
      expectedStatus: [200]
      maxBodyBytes: 4096
    retries: 2
    sourceAddress: 10.0.1.1
";

fn time(s: &str) -> Time {
    Time(s.parse::<Timestamp>().unwrap())
}

fn micro_time(s: &str) -> MicroTime {
    MicroTime(s.parse::<Timestamp>().unwrap())
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_string(value).unwrap();
    let from_json: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&from_json, value, "JSON round trip");
    let yaml = serde_saphyr::to_string(value).unwrap();
    let from_yaml: T = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(&from_yaml, value, "YAML round trip:\n{yaml}");
}

fn conditions() -> Vec<Condition> {
    vec![Condition {
        type_: condition::READY.to_owned(),
        status: "True".to_owned(),
        reason: "OneMaster".to_owned(),
        message: "node-a is MASTER".to_owned(),
        last_transition_time: time("2026-11-22T03:00:00Z"),
        observed_generation: Some(4),
    }]
}

#[test]
fn virtual_ip_with_every_field_and_status_round_trips() {
    let mut vip: VirtualIp = serde_saphyr::from_str(VIP).unwrap();
    assert!(vip.spec.validate().is_empty(), "{:?}", vip.spec.validate());
    vip.status = Some(VirtualIpStatus {
        master: Some("node-a".into()),
        state: Some(VirtualIpPhase::Ready),
        nodes_summary: Some("2/2".into()),
        virtual_router_id: Some(51),
        nodes: vec![VirtualIpNodeStatus {
            name: "node-a".into(),
            state: State::Master,
            priority: 150,
            effective_priority: 145,
            last_transition_time: Some(micro_time("2026-11-22T03:00:00.999999Z")),
        }],
        conditions: conditions(),
        observed_generation: Some(4),
    });
    round_trip(&vip);
}

#[test]
fn virtual_server_with_every_field_and_status_round_trips() {
    let mut vs: VirtualServer = serde_saphyr::from_str(VS).unwrap();
    assert!(vs.spec.validate().is_empty(), "{:?}", vs.spec.validate());
    vs.status = Some(VirtualServerStatus {
        healthy_summary: Some("1/1".into()),
        real_servers: vec![kube_vrrp_crds::RealServerStatus {
            address: "10.0.1.10".into(),
            port: 8443,
            programmed: true,
            draining: false,
            weight: 3,
            healthy: true,
            last_transition_time: None,
            message: Some("status 200 (5 bytes)".into()),
            last_result: Some(CheckResult::Passed),
        }],
        sorry_server_active: true,
        conditions: conditions(),
        observed_generation: Some(1),
    });
    round_trip(&vs);
}

fn vrrp_node() -> VrrpNode {
    let vip: VirtualIp = serde_saphyr::from_str(VIP).unwrap();
    let vs: VirtualServer = serde_saphyr::from_str(VS).unwrap();
    let mut node = VrrpNode::new(
        "node-a",
        VrrpNodeSpec {
            instances: vec![VrrpInstance {
                name: "web".into(),
                interface: Some("eth0".into()),
                virtual_router_id: 51,
                version: VrrpVersion::V2,
                addresses: vip.spec.addresses.clone(),
                priority: 150,
                advert_interval: "1s".into(),
                preempt: true,
                preempt_delay: "0s".into(),
                accept_mode: false,
                unicast_peers: vec!["10.0.0.12".into()],
                authentication: vip.spec.authentication.clone(),
                garp: kube_vrrp_crds::Garp::default(),
                sync_group: None,
                use_virtual_mac: false,
                track: vip.spec.track.clone().unwrap_or_default(),
            }],
            virtual_servers: vec![ResolvedVirtualServer {
                name: "web-https".into(),
                virtual_ip: "web".into(),
                addresses: vec!["10.0.0.50".into()],
                port: 443,
                protocol: vs.spec.protocol,
                scheduler: vs.spec.scheduler,
                scheduler_flags: vs.spec.scheduler_flags.clone(),
                forwarding: vs.spec.forwarding,
                tunnel: vs.spec.tunnel.clone(),
                persistence_timeout: vs.spec.persistence_timeout.clone(),
                persistence_granularity: vs.spec.persistence_granularity,
                quorum: vs.spec.quorum,
                sorry_server: vs.spec.sorry_server.clone(),
                inhibit_on_failure: true,
                real_servers: vec![ResolvedRealServer {
                    address: "10.0.1.10".into(),
                    port: 8443,
                    weight: 3,
                    upper_threshold: Some(100),
                    lower_threshold: None,
                    draining: false,
                }],
                health_check: vs.spec.health_check.clone(),
            }],
        },
    );
    node.status = Some(VrrpNodeStatus {
        instance_count: Some(1),
        master_count: Some(1),
        instances: vec![InstanceStatus {
            name: "web".into(),
            state: State::Master,
            priority: 150,
            effective_priority: 150,
            master_address: Some("10.0.0.11".into()),
            transitions: 3,
            last_transition_time: Some(micro_time("2026-11-22T03:00:00.250001Z")),
            vips_held: vec!["10.0.0.50/24".into()],
            message: None,
            holder_conflict: None,
        }],
        ipvs: Some(IpvsStatus {
            available: false,
            services: 0,
            real_servers: 0,
            message: Some("ip_vs module not loaded".into()),
            virtual_services: vec![kube_vrrp_crds::IpvsServiceStatus {
                virtual_server: "web-https".into(),
                address: "10.0.0.50".into(),
                port: 443,
                protocol: kube_vrrp_crds::Protocol::Tcp,
                programmed: false,
                message: Some("IPVS is not available on this node".into()),
                real_servers: Vec::new(),
            }],
        }),
        checkers: vec![
            CheckerStatus {
                kind: CheckerKind::Interface,
                owner: "web".into(),
                target: "eth1".into(),
                healthy: true,
                last_transition_time: None,
                message: None,
                last_result: None,
            },
            CheckerStatus {
                kind: CheckerKind::RealServer,
                owner: "web-443".into(),
                target: "10.0.1.10:8443".into(),
                healthy: false,
                last_transition_time: Some(time("2026-11-22T03:00:30Z")),
                message: Some("status 503 (expected 200)".into()),
                last_result: Some(CheckResult::UnexpectedStatus),
            },
        ],
        quorums: vec![QuorumStatus {
            virtual_server: "web-443".into(),
            up: false,
            healthy_weight: 0,
            quorum: 1,
            sorry_server_active: true,
            last_transition_time: Some(time("2026-11-22T03:00:30Z")),
        }],
        heartbeat_time: Some(micro_time("2026-11-22T03:01:00.5Z")),
        conditions: conditions(),
        observed_generation: Some(7),
        rejected: vec![RejectedInstance {
            name: "legacy".into(),
            reason: RejectReason::SecretUnavailable,
            message: "Secret kube-vrrp/vrrp-auth: not found".into(),
            running_previous: true,
        }],
        roll_call: Some("2026-11-22T03:00:30Z".into()),
    });
    node
}

#[test]
fn vrrp_node_with_instances_servers_and_status_round_trips() {
    round_trip(&vrrp_node());
}

#[test]
fn json_uses_the_api_field_names() {
    let vip: VirtualIp = serde_saphyr::from_str(VIP).unwrap();
    let v = serde_json::to_value(&vip).unwrap();
    for key in [
        "virtualRouterID",
        "advertInterval",
        "preemptDelay",
        "useVirtualMAC",
        "syncGroup",
        "nodeSelector",
    ] {
        assert!(v["spec"].get(key).is_some(), "spec.{key} missing in {v}");
    }
    assert_eq!(v["spec"]["version"], 2);
    assert_eq!(v["spec"]["authentication"]["type"], "PASS");

    let node = serde_json::to_value(vrrp_node()).unwrap();
    assert_eq!(node["apiVersion"], "kubevrrp.io/v1alpha1");
    assert_eq!(node["kind"], "VrrpNode");
    assert_eq!(node["spec"]["instances"][0]["virtualRouterID"], 51);
    assert_eq!(node["spec"]["virtualServers"][0]["virtualIP"], "web");
    assert_eq!(
        node["status"]["instances"][0]["vipsHeld"][0],
        "10.0.0.50/24"
    );
    assert_eq!(node["status"]["instances"][0]["state"], "Master");
    assert_eq!(
        node["status"]["heartbeatTime"],
        "2026-11-22T03:01:00.500000Z"
    );
    assert_eq!(
        node["status"]["instances"][0]["lastTransitionTime"],
        "2026-11-22T03:00:00.250001Z"
    );
    assert!(
        node["spec"]["instances"][0]["authentication"]
            .get("password")
            .is_none()
    );
}

#[test]
fn report_times_keep_microseconds_so_two_transitions_within_one_second_stay_ordered() {
    let elected = "2026-11-22T03:00:00.100000001Z"
        .parse::<Timestamp>()
        .unwrap();
    let took_over = "2026-11-22T03:00:00.700000Z".parse::<Timestamp>().unwrap();
    let json = |at: Timestamp| {
        serde_json::to_value(VrrpNodeStatus {
            heartbeat_time: Some(MicroTime(at)),
            ..VrrpNodeStatus::default()
        })
        .unwrap()
    };
    assert_eq!(
        json(elected)["heartbeatTime"],
        "2026-11-22T03:00:00.100000Z"
    );
    let read = |v: serde_json::Value| {
        serde_json::from_value::<VrrpNodeStatus>(v)
            .unwrap()
            .heartbeat_time
            .unwrap()
            .0
    };
    assert!(read(json(elected)) < read(json(took_over)));
}

#[test]
fn a_status_written_by_an_earlier_agent_in_whole_seconds_still_reads() {
    let status: VrrpNodeStatus = serde_json::from_value(serde_json::json!({
        "heartbeatTime": "2026-11-22T03:01:00Z",
        "instances": [{"name": "web", "state": "Master", "priority": 150,
            "effectivePriority": 150, "lastTransitionTime": "2026-11-22T03:00:00Z"}],
    }))
    .unwrap();
    assert_eq!(
        status.heartbeat_time,
        Some(micro_time("2026-11-22T03:01:00Z"))
    );
    assert_eq!(
        status.instances[0].last_transition_time,
        Some(micro_time("2026-11-22T03:00:00Z"))
    );
}

#[test]
fn unset_optional_fields_are_left_out() {
    let vip: VirtualIp =
        serde_saphyr::from_str("apiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: a}\nspec: {addresses: [\"10.0.0.1/24\"]}")
            .unwrap();
    let v = serde_json::to_value(&vip).unwrap();
    let keys: Vec<&String> = v["spec"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "addresses",
            "advertInterval",
            "preempt",
            "preemptDelay",
            "version"
        ]
    );
    assert!(v.get("status").is_none());
}

#[test]
fn phase_and_checker_kind_names_match_their_serialised_form() {
    for phase in [
        VirtualIpPhase::Pending,
        VirtualIpPhase::Ready,
        VirtualIpPhase::NoMaster,
        VirtualIpPhase::SplitBrain,
        VirtualIpPhase::Conflict,
    ] {
        assert_eq!(serde_json::to_value(phase).unwrap(), phase.as_str());
    }
    for kind in [
        CheckerKind::Interface,
        CheckerKind::File,
        CheckerKind::Script,
        CheckerKind::Endpoints,
        CheckerKind::RealServer,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}
