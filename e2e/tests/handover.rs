//! Planned handovers as a client sees them (needs root and the agent binary): a client pinging
//! the VIP every 10 ms and streaming TCP to a server routed through it while the MASTER is
//! stopped with SIGTERM and then takes the VIP back. The agent hands over make-before-break:
//! nothing is lost. keepalived, in the same lab, drops the VIP first: the probes see the gap,
//! which shows that they can. The new MASTER's failover histogram is checked against the wire.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(clippy::float_cmp)] // sample counts are small exact integers

use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::{Daemon, DaemonKind};
use kube_vrrp_e2e::exposition;
use kube_vrrp_e2e::handover::{self, Handover, Move, Traffic};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::probe::Advert;
use kube_vrrp_e2e::scenario::{Disruption, Running, trace_duration};
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

/// `kube_vrrp_instance_failover_seconds_{count,sum}` of "web" on node `node` (0 before any).
fn failover_metric(running: &Running, node: usize) -> (f64, f64) {
    let Some(Some(Daemon::Agent(agent))) = running.daemons.get(node - 1) else {
        panic!("node {node} runs no agent");
    };
    let text = agent.metrics(&running.lab).unwrap();
    let read =
        |name: &str| exposition::value(&text, name, &[("vrrp_instance", "web")]).unwrap_or(0.0);
    (
        read("kube_vrrp_instance_failover_seconds_count"),
        read("kube_vrrp_instance_failover_seconds_sum"),
    )
}

/// On the wire: from node `old`'s last advert for `vrid` to node `new`'s first advert as
/// MASTER (a priority above 0) after `since`.
fn wire_failover(adverts: &[Advert], vrid: u8, old: usize, new: usize, since: Instant) -> Duration {
    let first_new = adverts
        .iter()
        .filter(|a| a.at >= since && a.node == new && a.wire.vrid == vrid && a.wire.priority > 0)
        .map(|a| a.at)
        .min()
        .expect("no advert from the new MASTER");
    let last_old = adverts
        .iter()
        .filter(|a| a.node == old && a.wire.vrid == vrid && a.at < first_new)
        .map(|a| a.at)
        .max()
        .expect("no advert from the old MASTER before the new one's first");
    first_new - last_old
}

/// n1 disrupted, n2 takes over: its histogram gains one failover, within 2 ms of the wire's.
fn failover_histogram_matches_the_wire(disruption: Disruption) {
    require_agent();
    let mut running = Running::start(DaemonKind::Agent, LabSpec::default(), instance()).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let (count_before, sum_before) = failover_metric(&running, 2);
    let since = Instant::now();
    let (_, new_master) = running
        .fail_over(1, disruption, Duration::from_secs(15))
        .unwrap();
    assert_eq!(new_master, 2);
    // The histogram is written right after the first advert: wait for it to be sent and seen.
    let deadline = Instant::now() + Duration::from_secs(3);
    let (count, sum) = loop {
        let (count, sum) = failover_metric(&running, 2);
        if count > count_before || Instant::now() > deadline {
            break (count, sum);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(count, count_before + 1.0, "one failover recorded on n2");
    let recorded = Duration::from_secs_f64(sum - sum_before);
    let wire = wire_failover(&running.sniffer.adverts(), 51, 1, 2, since);
    let gap = recorded.abs_diff(wire);
    eprintln!(
        "{}: the agent recorded {recorded:?}, the wire shows {wire:?} (off by {gap:?})",
        disruption.as_str()
    );
    assert!(
        gap <= Duration::from_millis(2),
        "recorded {recorded:?} vs {wire:?} on the wire"
    );
    // The agent's own account names the timer that made it MASTER (Skew_Time after a
    // priority-0 advert, Master_Down_Interval after silence) and how late it was served.
    let trace = running.failover_trace(2).expect("n2 logged its failover");
    eprintln!("n2's trace: {trace}");
    let timer = disruption.expected(&instance(), 100);
    let near = |logged: Option<Duration>| logged.is_some_and(|l| l.abs_diff(timer).as_nanos() <= 1);
    assert!(
        near(trace_duration(&trace, "timer")),
        "expected timer={timer:?}: {trace}"
    );
    assert!(trace_duration(&trace, "timer_late").is_some(), "{trace}");
}

#[test]
fn the_failover_histogram_of_a_master_that_died_matches_the_wire_within_2_ms() {
    failover_histogram_matches_the_wire(Disruption::Death);
}

#[test]
fn the_failover_histogram_of_a_sigterm_handover_matches_the_wire_within_2_ms() {
    failover_histogram_matches_the_wire(Disruption::Terminate);
}
