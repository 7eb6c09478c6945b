//! Planned handovers as a client sees them (needs root and the agent binary): a client pinging
//! the VIP every 10 ms and streaming TCP to a server routed through it while the MASTER is
//! stopped with SIGTERM and then takes the VIP back. The agent hands over make-before-break:
//! nothing is lost. keepalived, in the same lab, drops the VIP first: the probes see the gap,
//! which shows that they can.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::handover::{self, Handover, Move, Traffic};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::Running;
use kube_vrrp_e2e::{InstanceSpec, LabSpec};

fn require_agent() {
    require_root();
    if let Err(e) = kube_vrrp_e2e::agent::binary() {
        panic!("{e}");
    }
}

/// "web" at advert 1 s: n1 150, n2 100, n3 50.
fn instance() -> InstanceSpec {
    let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
    spec.priorities = vec![150, 100, 50];
    spec
}

/// A SIGTERM of n1 (n2 takes over), then n1 back (it preempts).
fn sigterm_and_back(kind: DaemonKind) -> (Handover, Handover) {
    let spec = instance();
    let mut running = Running::start(kind, LabSpec::default(), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let traffic = Traffic::start(&mut running).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let settle = Duration::from_millis(500);
    let away = handover::measure(&mut running, &traffic, Move::Terminate, 1, kind, settle).unwrap();
    assert_eq!((away.from, away.to), (1, 2), "{away:?}");
    let back = handover::measure(&mut running, &traffic, Move::Preempt, 1, kind, settle).unwrap();
    assert_eq!((back.from, back.to), (2, 1), "{back:?}");
    (away, back)
}

#[test]
fn an_agent_master_stopped_with_sigterm_hands_over_without_losing_a_ping_or_a_segment() {
    require_agent();
    let (away, back) = sigterm_and_back(DaemonKind::Agent);
    for run in [&away, &back] {
        assert!(run.pings_sent >= 50, "too few pings to judge: {run:?}");
        assert_eq!(run.pings_lost, 0, "pings lost: {run:?}");
        assert!(run.stream_errors.is_empty(), "the stream broke: {run:?}");
        assert_eq!(run.retransmissions, 0, "TCP retransmitted: {run:?}");
        // Two MACs answer at most until the old MASTER hears the new one's first advert.
        assert!(
            run.two_macs <= instance().advert_interval,
            "two MACs answered for longer than an advert interval: {run:?}"
        );
    }
}

#[test]
fn keepalived_drops_the_vip_at_sigterm_and_the_client_loses_pings_until_skew_time() {
    require_root();
    let (away, _back) = sigterm_and_back(DaemonKind::Keepalived);
    // keepalived removes the VIP at once; n2 takes over Skew_Time (609 ms) after priority 0.
    let skew = instance().skew_time(100);
    assert!(away.pings_lost >= 1, "no ping lost: {away:?}");
    assert!(
        away.longest_outage >= skew / 2,
        "outage {:?} shorter than half of Skew_Time {skew:?}: {away:?}",
        away.longest_outage
    );
    assert!(away.stream_errors.is_empty(), "the stream broke: {away:?}");
}
