//! Trackers built from a `VrrpNode` instance's `track`, external (endpoints) trackers, and the
//! checker statuses reported back.

use std::path::PathBuf;
use std::time::Duration;

use kube_vrrp_agent::check::{
    EndpointReadiness, FileProbe, Probe, ScriptProbe, TrackState, Tracker, TrackerSet,
};
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_crds::{
    CheckerKind, DurationString, ServiceRef, Track, TrackEndpoints, TrackFile, TrackInterface,
    TrackScript,
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
    let (set, mut rx) = TrackerSet::spawn(&track, Metrics::new(), &readiness);
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
