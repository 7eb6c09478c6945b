//! Trackers built from a `VrrpNode` instance's `track`, followed (endpoints, VirtualServer
//! quorum) trackers, and the checker statuses reported back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube_vrrp_agent::check::real_server::{HealthSnapshot, Quorum, VirtualServerHealth};
use kube_vrrp_agent::check::{
    EndpointReadiness, FileProbe, Followed, Probe, QuorumFeed, ScriptProbe, TrackState, Tracker,
    TrackerSet,
};
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_crds::{
    CheckerKind, DurationString, ResolvedVirtualServer, ServiceRef, Track, TrackEndpoints,
    TrackFile, TrackInterface, TrackScript, TrackVirtualServer,
};

fn script(name: &str, command: &[&str], interval: &str, weight: Option<i32>) -> TrackScript {
    TrackScript {
        name: name.into(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        interval: DurationString::new(interval),
        timeout: DurationString::new("2s"),
        rise: 2,
        fall: 3,
        weight,
    }
}

fn endpoints(namespace: &str, name: &str, weight: Option<i32>) -> TrackEndpoints {
    TrackEndpoints {
        service: ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        },
        weight,
    }
}

#[test]
fn track_spec_becomes_kind_prefixed_trackers_with_weight_zero_by_default() {
    let track = Track {
        interfaces: vec![TrackInterface {
            name: "eth1".into(),
            weight: None,
        }],
        files: vec![TrackFile {
            path: "/run/kube-vrrp/maint".into(),
            weight: Some(-5),
        }],
        scripts: vec![script(
            "haproxy",
            &["/usr/bin/pgrep", "haproxy"],
            "100ms",
            Some(-20),
        )],
        endpoints: vec![endpoints("web", "frontend", Some(10))],
        virtual_servers: Vec::new(),
    };
    assert_eq!(
        Tracker::from_spec(&track),
        vec![
            Tracker {
                name: "interface:eth1".into(),
                weight: 0,
                probe: Probe::Interface {
                    interface: "eth1".into()
                },
            },
            Tracker {
                name: "file:/run/kube-vrrp/maint".into(),
                weight: -5,
                probe: Probe::File(FileProbe {
                    path: PathBuf::from("/run/kube-vrrp/maint"),
                    interval: kube_vrrp_agent::check::FILE_INTERVAL,
                }),
            },
            Tracker {
                name: "script:haproxy".into(),
                weight: -20,
                probe: Probe::Script(ScriptProbe {
                    argv: vec!["/usr/bin/pgrep".into(), "haproxy".into()],
                    interval: Duration::from_millis(100),
                    timeout: Duration::from_secs(2),
                    rise: 2,
                    fall: 3,
                }),
            },
            Tracker {
                name: "endpoints:web/frontend".into(),
                weight: 10,
                probe: Probe::Endpoints(ServiceRef {
                    namespace: "web".into(),
                    name: "frontend".into(),
                }),
            },
        ]
    );
}

#[test]
fn unparseable_script_durations_fall_back_to_one_second() {
    let track = Track {
        scripts: vec![script("odd", &["true"], "soon", None)],
        ..Track::default()
    };
    let trackers = Tracker::from_spec(&track);
    let Probe::Script(probe) = &trackers[0].probe else {
        panic!("not a script: {trackers:?}");
    };
    assert_eq!(
        probe.interval,
        kube_vrrp_agent::check::DEFAULT_SCRIPT_PERIOD
    );
}

#[tokio::test]
async fn endpoints_trackers_follow_the_readiness_feed_and_are_reported_as_checkers() {
    let track = Track {
        scripts: vec![script("ok", &["true"], "50ms", None)],
        endpoints: vec![endpoints("web", "frontend", None)],
        ..Track::default()
    };
    let frontend = ServiceRef {
        namespace: "web".into(),
        name: "frontend".into(),
    };
    let readiness = EndpointReadiness::new();
    let followed = Followed {
        endpoints: readiness.clone(),
        ..Followed::default()
    };
    let (set, mut rx) = TrackerSet::spawn(&track, Metrics::new(), &followed);
    assert_eq!(
        *rx.borrow_and_update(),
        TrackState {
            weight_delta: 0,
            fault: true
        },
        "nothing has reported yet: weight-0 trackers count as down"
    );
    assert_eq!(Tracker::endpoints_name(&frontend), "endpoints:web/frontend");
    // Another Service's readiness moves nothing.
    readiness.publish(
        [(
            ServiceRef {
                namespace: "web".into(),
                name: "other".into(),
            },
            true,
        )]
        .into(),
    );
    tokio::time::timeout(Duration::from_millis(300), set.settled())
        .await
        .expect_err("the endpoints tracker is still pending");
    readiness.publish([(frontend.clone(), true)].into());
    tokio::time::timeout(Duration::from_secs(5), set.settled())
        .await
        .expect("the script never ran or the endpoints tracker never reported");
    let state = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| !s.fault))
        .await
        .expect("no recovery")
        .map(|s| *s)
        .unwrap();
    assert_eq!(state, TrackState::default());

    let statuses = set.checker_statuses("web");
    assert_eq!(statuses.len(), 2);
    assert_eq!(statuses[0].kind, CheckerKind::Script);
    assert_eq!(statuses[0].target, "ok");
    assert_eq!(statuses[1].kind, CheckerKind::Endpoints);
    assert_eq!(statuses[1].target, "web/frontend");
    for status in &statuses {
        assert_eq!(status.owner, "web");
        assert!(status.healthy, "{status:?}");
        assert!(status.last_transition_time.is_some(), "{status:?}");
        assert_eq!(status.message, None);
    }

    readiness.publish([(frontend, false)].into());
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.fault))
        .await
        .expect("no ready endpoint on this node: FAULT")
        .unwrap();
    let statuses = set.checker_statuses("web");
    assert!(!statuses[1].healthy);
    assert_eq!(statuses[1].message.as_deref(), Some("down or failing"));
}

fn quorum_snapshot(name: &str, up: Option<bool>, refused: bool) -> HealthSnapshot {
    let mut snapshot = HealthSnapshot::default();
    if let Some(up) = up {
        let config: ResolvedVirtualServer = serde_json::from_value(serde_json::json!({
            "name": name, "virtualIP": "web", "addresses": ["192.0.2.100"], "port": 80,
            "protocol": "TCP", "scheduler": "wlc", "forwarding": "NAT",
            "realServers": [{"address": "198.51.100.1", "port": 80, "weight": 1}]
        }))
        .expect("a VirtualServer");
        snapshot.virtual_servers.insert(
            name.to_owned(),
            VirtualServerHealth {
                config,
                refused: refused.then(|| "healthCheck.script: outside".to_owned()),
                real_servers: std::collections::BTreeMap::new(),
                quorum: Quorum {
                    up,
                    healthy_weight: u64::from(up),
                    threshold: 1,
                    sorry_server_active: false,
                },
                quorum_since: None,
            },
        );
    }
    snapshot
}

#[tokio::test]
async fn a_virtual_server_tracker_follows_the_quorum_the_health_checks_publish() {
    let track = Track {
        virtual_servers: vec![TrackVirtualServer {
            name: "web-80".into(),
            weight: Some(-50),
        }],
        ..Track::default()
    };
    assert_eq!(
        Tracker::from_spec(&track),
        vec![Tracker {
            name: "virtualserver:web-80".into(),
            weight: -50,
            probe: Probe::Quorum {
                virtual_server: "web-80".into()
            },
        }]
    );
    let (publish, snapshots) =
        tokio::sync::watch::channel(Arc::new(quorum_snapshot("web-80", None, false)));
    let followed = Followed {
        quorums: QuorumFeed::new(snapshots),
        ..Followed::default()
    };
    let (set, mut rx) = TrackerSet::spawn(&track, Metrics::new(), &followed);
    tokio::time::timeout(Duration::from_millis(300), set.settled())
        .await
        .expect_err("the checks do not run web-80 yet: pending");
    assert_eq!(
        rx.borrow_and_update().weight_delta,
        -50,
        "pending counts as down"
    );

    publish.send_replace(Arc::new(quorum_snapshot("web-80", Some(true), false)));
    let up = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.weight_delta == 0))
        .await
        .expect("quorum up: no weight")
        .map(|s| *s)
        .unwrap();
    assert!(!up.fault);
    let status = &set.checker_statuses("web")[0];
    assert_eq!(
        (status.kind, status.target.as_str(), status.healthy),
        (CheckerKind::VirtualServer, "web-80", true)
    );

    publish.send_replace(Arc::new(quorum_snapshot("web-80", Some(false), false)));
    tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.weight_delta == -50),
    )
    .await
    .expect("quorum lost: the weight applies")
    .unwrap();

    publish.send_replace(Arc::new(quorum_snapshot("web-80", Some(true), false)));
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.weight_delta == 0))
        .await
        .expect("quorum back")
        .unwrap();
    publish.send_replace(Arc::new(quorum_snapshot("web-80", Some(true), true)));
    tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|s| s.weight_delta == -50),
    )
    .await
    .expect("refused checks: the VirtualServer is not programmed, so its quorum is down")
    .unwrap();
}
