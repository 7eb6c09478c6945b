//! Interface trackers for real: a veth link inside a network namespace going up, down, losing
//! its carrier, away. (This kernel has no `dummy` link type; a veth pair with both ends in the
//! namespace also exercises IFF_RUNNING through the peer's state.)

use std::time::Duration;

use kube_vrrp_agent::check::{Observation, Probe, TrackState, Tracker, TrackerSet};
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_e2e::netns::{Netns, require_root, run};
use tokio::sync::watch;

async fn wait_for_fault(rx: &mut watch::Receiver<TrackState>, fault: bool, what: &str) {
    let outcome = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| s.fault == fault))
        .await
        .map(|waited| waited.map(|_| ()));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(closed)) => panic!("tracker set closed while waiting for {what}: {closed}"),
        Err(elapsed) => panic!("{elapsed}: no {what} within 5s; last {:?}", *rx.borrow()),
    }
}

#[test]
fn interface_tracker_follows_a_veth_link_in_a_namespace() {
    require_root();
    let ns = Netns::create("kvchk").unwrap();
    ns.exec(&[
        "ip", "link", "add", "trk0", "type", "veth", "peer", "name", "trk0p",
    ])
    .unwrap();
    ns.exec(&["ip", "link", "set", "trk0p", "up"]).unwrap();
    let name = ns.name().to_owned();
    let ip = move |args: &[&str]| {
        let mut full = vec!["ip", "-n", name.as_str()];
        full.extend_from_slice(args);
        run(&full).unwrap();
    };
    let metrics = Metrics::new();
    let text = ns
        .run_in(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tracker = Tracker {
                    name: "trk0".into(),
                    weight: 0,
                    probe: Probe::Interface {
                        interface: "trk0".into(),
                    },
                };
                let plus = Tracker {
                    name: "plus".into(),
                    weight: 25,
                    probe: Probe::Interface {
                        interface: "trk0".into(),
                    },
                };
                let (set, mut rx) = TrackerSet::start(vec![tracker, plus], metrics.clone());
                tokio::time::timeout(Duration::from_secs(5), set.settled())
                    .await
                    .expect("the interface tracker never reported");
                assert_eq!(
                    *rx.borrow_and_update(),
                    TrackState {
                        weight_delta: 0,
                        fault: true
                    },
                    "a link that is down is FAULT for weight 0"
                );

                ip(&["link", "set", "trk0", "up"]);
                wait_for_fault(&mut rx, false, "recovery when the link comes up").await;
                assert_eq!(rx.borrow().weight_delta, 25);
                assert_eq!(set.observations()[0].1, Observation::Up);

                ip(&["link", "set", "trk0", "down"]);
                wait_for_fault(&mut rx, true, "FAULT when the link goes down").await;

                ip(&["link", "set", "trk0", "up"]);
                wait_for_fault(&mut rx, false, "recovery").await;
                ip(&["link", "set", "trk0p", "down"]);
                wait_for_fault(&mut rx, true, "FAULT when the link loses its carrier").await;
                ip(&["link", "set", "trk0p", "up"]);
                wait_for_fault(&mut rx, false, "recovery with the carrier").await;
                ip(&["link", "del", "trk0"]);
                wait_for_fault(&mut rx, true, "FAULT when the link is deleted").await;
                assert_eq!(set.observations()[0].1, Observation::Down);

                ip(&[
                    "link", "add", "trk0", "type", "veth", "peer", "name", "trk0p",
                ]);
                ip(&["link", "set", "trk0p", "up"]);
                ip(&["link", "set", "trk0", "up"]);
                wait_for_fault(&mut rx, false, "recovery when the link is re-created").await;
                drop(set);
                metrics.encode()
            })
        })
        .unwrap();
    assert!(
        text.contains("kube_vrrp_check_up{tracker=\"trk0\"} 1\n"),
        "{text}"
    );
    // Down at start, set down, carrier lost, deleted: four turns to bad.
    assert!(
        text.contains("kube_vrrp_check_failures_total{tracker=\"trk0\"} 4\n"),
        "{text}"
    );
}

#[test]
fn interface_tracker_reports_a_missing_link_as_down() {
    require_root();
    let ns = Netns::create("kvchk").unwrap();
    let state = ns
        .run_in(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let tracker = Tracker {
                    name: "ghost".into(),
                    weight: -30,
                    probe: Probe::Interface {
                        interface: "ghost0".into(),
                    },
                };
                let (set, rx) = TrackerSet::start(vec![tracker], Metrics::new());
                tokio::time::timeout(Duration::from_secs(5), set.settled())
                    .await
                    .expect("the interface tracker never reported");
                assert_eq!(set.observations()[0].1, Observation::Down);
                *rx.borrow()
            })
        })
        .unwrap();
    assert_eq!(
        state,
        TrackState {
            weight_delta: -30,
            fault: false
        }
    );
}
