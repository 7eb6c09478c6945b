//! Simulations of several pure VRRP instances on an in-memory wire with a virtual clock.
//! Every assertion is an exact time, derived from RFC 5798 §6 timers and the link delay.

mod sim;

use std::time::Duration;

use kube_vrrp_agent::vrrp::Version;
use kube_vrrp_agent::vrrp::instance::{Event, State, Tracking, TransitionReason};
use sim::{Sim, config, master_down_interval, micros, skew_time};

const SECOND: Duration = Duration::from_secs(1);
const LINK_DELAY: Duration = Duration::from_millis(1);
const VRID: u8 = 51;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Three nodes a (100), b (150), c (200), all started at 0.
fn three_nodes() -> (Sim, usize, usize, usize) {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 100, "10.0.0.1")]);
    let b = sim.add_node("b", vec![config(VRID, 150, "10.0.0.2")]);
    let c = sim.add_node("c", vec![config(VRID, 200, "10.0.0.3")]);
    for node in [a, b, c] {
        sim.start(node);
    }
    (sim, a, b, c)
}

#[test]
fn highest_priority_wins_the_election_after_its_own_master_down_interval() {
    let (mut sim, a, b, c) = three_nodes();
    sim.run_until(secs(20));
    // c's Master_Down_Timer (3 s + 56/256 s) runs out first; its advert reaches the others
    // 1 ms later, before their own timers.
    let master = sim.entered(c, VRID, State::Master);
    assert_eq!(master.len(), 1);
    assert_eq!(master[0].at, master_down_interval(200, SECOND));
    assert_eq!(master[0].at, micros(3_218_750));
    assert_eq!(master[0].reason, TransitionReason::MasterDownTimer);
    assert!(sim.entered(a, VRID, State::Master).is_empty());
    assert!(sim.entered(b, VRID, State::Master).is_empty());
    assert_eq!(sim.masters(VRID), vec!["c"]);
    assert_eq!(
        sim.master_address(a, VRID),
        Some("10.0.0.3".parse().unwrap())
    );
    sim.check_golden("election");
}

#[test]
fn silent_master_is_replaced_exactly_one_master_down_interval_after_its_last_advert() {
    let (mut sim, a, b, c) = three_nodes();
    sim.run_until(secs(10));
    sim.kill(c);
    sim.run_until(secs(20));
    // c advertised at 3.21875 s + k; the last one reached b at 9.21975 s.
    let last_heard = sim.last_advert_heard(b, VRID, c).unwrap();
    assert_eq!(last_heard, micros(9_219_750));
    let master = sim.entered(b, VRID, State::Master);
    assert_eq!(master.len(), 1);
    assert_eq!(master[0].at, last_heard + master_down_interval(150, SECOND));
    assert_eq!(master[0].at, micros(12_633_812) + Duration::from_nanos(500));
    assert!(sim.entered(a, VRID, State::Master).is_empty());
    assert_eq!(sim.masters(VRID), vec!["b"]);
}

#[test]
fn graceful_shutdown_hands_over_after_skew_time() {
    let (mut sim, a, b, c) = three_nodes();
    sim.run_until(secs(10));
    sim.shutdown(c);
    sim.run_until(secs(20));
    let handover = sim.entered(b, VRID, State::Master);
    assert_eq!(handover.len(), 1);
    // The priority-0 advert leaves at 10 s and arrives at 10.001 s; b waits Skew_Time(150).
    assert_eq!(
        handover[0].at,
        secs(10) + LINK_DELAY + skew_time(150, SECOND)
    );
    assert_eq!(handover[0].reason, TransitionReason::MasterStopped);
    assert!(sim.entered(a, VRID, State::Master).is_empty());
    assert_eq!(sim.state(c, VRID), State::Initialize);
    // Make-before-break: c keeps the VIPs until b's first advert reaches it (one link delay
    // after b took them), so at no moment does nobody hold them.
    let taken = handover[0].at;
    assert_eq!(
        sim.vip_holdings(VRID),
        vec![
            (
                "c",
                master_down_interval(200, SECOND),
                Some(taken + LINK_DELAY)
            ),
            ("b", taken, None),
        ]
    );
    sim.check_golden("graceful_shutdown");
}

#[test]
fn a_planned_exit_with_nobody_to_take_over_lets_go_after_three_intervals() {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 100, "10.0.0.1")]);
    sim.start(a);
    sim.run_until(secs(10));
    sim.shutdown(a);
    sim.run_until(secs(20));
    let became = master_down_interval(100, SECOND);
    // Priority 0 at 10 s, again at 11 s and 12 s; the VIPs go at 13 s.
    assert_eq!(sim.vip_holdings(VRID), vec![("a", became, Some(secs(13)))]);
    assert_eq!(sim.state(a, VRID), State::Initialize);
}

/// a (100) is Master alone; c (200) starts at 5 s with the given preempt settings.
fn late_higher_priority(preempt: bool, preempt_delay: Duration) -> (Sim, usize, usize) {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 100, "10.0.0.1")]);
    let mut late = config(VRID, 200, "10.0.0.3");
    late.preempt = preempt;
    late.preempt_delay = preempt_delay;
    let c = sim.add_node("c", vec![late]);
    sim.start(a);
    sim.run_until(secs(5));
    assert_eq!(sim.masters(VRID), vec!["a"]);
    sim.start(c);
    sim.run_until(secs(40));
    (sim, a, c)
}

#[test]
fn higher_priority_backup_with_preempt_takes_over_from_lower_priority_master() {
    let (sim, a, c) = late_higher_priority(true, Duration::ZERO);
    // c discards a's lower-priority adverts; its startup Master_Down_Timer runs out.
    let takeover = sim.entered(c, VRID, State::Master);
    assert_eq!(takeover.len(), 1);
    assert_eq!(takeover[0].at, secs(5) + master_down_interval(200, SECOND));
    assert_eq!(takeover[0].reason, TransitionReason::PreemptLowerPriority);
    let step_down = sim.entered(a, VRID, State::Backup);
    assert_eq!(step_down.last().unwrap().at, takeover[0].at + LINK_DELAY);
    assert_eq!(
        step_down.last().unwrap().reason,
        TransitionReason::HigherPriorityAdvert
    );
    assert_eq!(sim.masters(VRID), vec!["c"]);
}

#[test]
fn higher_priority_backup_without_preempt_leaves_the_master_alone() {
    let (sim, a, c) = late_higher_priority(false, Duration::ZERO);
    assert!(sim.entered(c, VRID, State::Master).is_empty());
    assert_eq!(sim.entered(a, VRID, State::Master).len(), 1);
    assert_eq!(sim.masters(VRID), vec!["a"]);
}

#[test]
fn preempt_delay_keeps_the_lower_master_until_the_delay_has_passed() {
    let (sim, _a, c) = late_higher_priority(true, secs(5));
    // a advertises at 3.609375 s + k, heard by c 1 ms later. The delay started at c's startup
    // (5 s) and ends at 10 s: the advert heard at 9.610375 s is the last one accepted.
    let takeover = sim.entered(c, VRID, State::Master);
    assert_eq!(takeover.len(), 1);
    assert_eq!(
        takeover[0].at,
        micros(9_610_375) + master_down_interval(200, SECOND)
    );
    assert_eq!(takeover[0].at, micros(12_829_125));
    assert_eq!(sim.masters(VRID), vec!["c"]);
}

#[test]
fn equal_priorities_elect_the_greater_primary_address() {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 100, "10.0.0.1")]);
    let b = sim.add_node("b", vec![config(VRID, 100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(10));
    // Both timers run out together; each hears the other 1 ms later and a, the lesser
    // address, steps down (§6.4.3), while b discards a's advert.
    let mdi = master_down_interval(100, SECOND);
    assert_eq!(sim.entered(a, VRID, State::Master)[0].at, mdi);
    assert_eq!(sim.entered(b, VRID, State::Master)[0].at, mdi);
    let step_down = sim.entered(a, VRID, State::Backup);
    assert_eq!(step_down.last().unwrap().at, mdi + LINK_DELAY);
    assert_eq!(
        step_down.last().unwrap().reason,
        TransitionReason::EqualPriorityHigherAddress
    );
    assert_eq!(sim.entered(b, VRID, State::Backup).len(), 1); // startup only
    assert_eq!(sim.masters(VRID), vec!["b"]);
    sim.check_golden("equal_priority_tie_break");
}

#[test]
fn partition_makes_two_masters_that_converge_within_master_down_interval_of_healing() {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 200, "10.0.0.1")]);
    let b = sim.add_node("b", vec![config(VRID, 100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(10));
    sim.partition(&[&[a], &[b]]);
    sim.run_until(secs(20));
    // b last heard a at 9.21975 s and took over one Master_Down_Interval later.
    let split = sim.entered(b, VRID, State::Master);
    assert_eq!(split.len(), 1);
    assert_eq!(
        split[0].at,
        micros(9_219_750) + master_down_interval(100, SECOND)
    );
    assert_eq!(sim.masters(VRID), vec!["a", "b"]);
    sim.heal();
    sim.run_until(secs(30));
    // a's next advert after healing (20.21875 s) reaches b 1 ms later.
    let converged = sim.entered(b, VRID, State::Backup).last().unwrap().at;
    assert_eq!(converged, micros(20_219_750));
    assert!(converged.checked_sub(secs(20)).unwrap() <= master_down_interval(100, SECOND));
    assert_eq!(sim.masters(VRID), vec!["a"]);
}

#[test]
fn tracker_weight_hands_over_and_back() {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_node("a", vec![config(VRID, 150, "10.0.0.1")]);
    let b = sim.add_node("b", vec![config(VRID, 100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(10));
    assert_eq!(sim.masters(VRID), vec!["a"]);
    let weight = |weight_delta| {
        Event::Tracking(Tracking {
            weight_delta,
            fault: false,
        })
    };
    // a drops to 90. b discards a's next advert (10.4150625 s) and its timer, last reset at
    // 9.4150625 s, runs out.
    sim.deliver(a, VRID, weight(-60));
    sim.run_until(secs(20));
    let handover = sim.entered(b, VRID, State::Master);
    assert_eq!(handover.len(), 1);
    let last_accepted = micros(9_415_062) + Duration::from_nanos(500);
    assert_eq!(
        handover[0].at,
        last_accepted + master_down_interval(100, SECOND)
    );
    assert_eq!(handover[0].reason, TransitionReason::PreemptLowerPriority);
    assert_eq!(
        sim.entered(a, VRID, State::Backup).last().unwrap().at,
        handover[0].at + LINK_DELAY
    );
    // a recovers to 150 at 20 s. Its Master_Down_Timer was armed when it last accepted an
    // advert of b (19.0254375 s), with the Master_Down_Interval of priority 90.
    sim.deliver(a, VRID, weight(0));
    sim.run_until(secs(30));
    let back = sim.entered(a, VRID, State::Master);
    assert_eq!(back.len(), 2);
    let last_accepted = handover[0].at + secs(6) + LINK_DELAY;
    assert_eq!(
        last_accepted,
        micros(19_025_437) + Duration::from_nanos(500)
    );
    assert_eq!(back[1].at, last_accepted + master_down_interval(90, SECOND));
    assert_eq!(back[1].reason, TransitionReason::PreemptLowerPriority);
    assert_eq!(sim.masters(VRID), vec!["a"]);
    sim.check_golden("tracker_weight");
}

#[test]
fn sync_group_fails_over_together_and_comes_back_together() {
    let mut sim = Sim::new(LINK_DELAY);
    let a = sim.add_group_node(
        "a",
        vec![config(1, 200, "10.0.0.1"), config(2, 200, "10.0.0.1")],
    );
    let b = sim.add_group_node(
        "b",
        vec![config(1, 100, "10.0.0.2"), config(2, 90, "10.0.0.2")],
    );
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(10));
    assert_eq!(sim.masters(1), vec!["a"]);
    assert_eq!(sim.masters(2), vec!["a"]);
    // A tracker of a's VRID 1 faults: both of a's instances resign with priority 0.
    let fault = Tracking {
        weight_delta: 0,
        fault: true,
    };
    sim.deliver(a, 1, Event::Tracking(fault));
    assert_eq!(sim.state(a, 1), State::Fault);
    assert_eq!(sim.state(a, 2), State::Fault);
    let forced = sim.entered(a, 2, State::Fault);
    assert_eq!(forced[0].reason, TransitionReason::SyncGroup);
    sim.run_until(secs(20));
    // b's VRID 1 wants Master after Skew_Time(100), VRID 2 after Skew_Time(90); the group
    // waits for both.
    let heard = secs(10) + LINK_DELAY;
    for vrid in [1, 2] {
        let up = sim.entered(b, vrid, State::Master);
        assert_eq!(up.len(), 1, "vrid {vrid}");
        assert_eq!(up[0].at, heard + skew_time(90, SECOND), "vrid {vrid}");
        assert_eq!(up[0].reason, TransitionReason::MasterStopped);
    }
    // a recovers at 20 s: both instances restart as Backup, preempt b together when their
    // Master_Down_Timers (3.21875 s) run out, and b steps down together 1 ms later.
    sim.deliver(a, 1, Event::Tracking(Tracking::default()));
    assert_eq!(
        sim.entered(a, 1, State::Backup).last().unwrap().reason,
        TransitionReason::TrackerRecovered
    );
    assert_eq!(
        sim.entered(a, 2, State::Backup).last().unwrap().reason,
        TransitionReason::SyncGroup
    );
    sim.run_until(secs(30));
    let back = secs(20) + master_down_interval(200, SECOND);
    for vrid in [1, 2] {
        assert_eq!(sim.entered(a, vrid, State::Master)[1].at, back);
        let down = sim.entered(b, vrid, State::Backup);
        assert_eq!(down.last().unwrap().at, back + LINK_DELAY, "vrid {vrid}");
        assert_eq!(sim.masters(vrid), vec!["a"]);
    }
    sim.check_golden("sync_group");
}

#[test]
fn v3_backup_learns_the_master_interval_and_times_out_on_it() {
    let mut sim = Sim::new(LINK_DELAY);
    let mut slow = config(VRID, 200, "10.0.0.1");
    slow.advert_interval = secs(2);
    let a = sim.add_node("a", vec![slow]);
    let b = sim.add_node("b", vec![config(VRID, 100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(20));
    // b (1 s) runs out first at 3.609375 s; a discards b's lower adverts and takes over at
    // 3 × 2 s + 56 × 2 s / 256 = 6.4375 s; b learns the 2 s interval from a.
    assert_eq!(sim.entered(b, VRID, State::Master)[0].at, micros(3_609_375));
    let a_master = sim.entered(a, VRID, State::Master)[0].at;
    assert_eq!(a_master, master_down_interval(200, secs(2)));
    assert_eq!(sim.masters(VRID), vec!["a"]);
    sim.kill(a);
    sim.run_until(secs(40));
    let last_heard = sim.last_advert_heard(b, VRID, a).unwrap();
    assert_eq!(last_heard, a_master + secs(12) + LINK_DELAY);
    // Master_Down_Interval on the learned 2 s: 6 s + 1.21875 s.
    assert_eq!(
        sim.entered(b, VRID, State::Master)[1].at,
        last_heard + master_down_interval(100, secs(2))
    );
}

#[test]
fn v2_failover_uses_the_rfc_3768_skew_in_seconds() {
    let mut sim = Sim::new(LINK_DELAY);
    let v2 = |priority, address| {
        let mut cfg = config(VRID, priority, address);
        cfg.version = Version::V2;
        cfg.advert_interval = secs(2);
        cfg
    };
    let a = sim.add_node("a", vec![v2(200, "10.0.0.1")]);
    let b = sim.add_node("b", vec![v2(100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(secs(15));
    // v2: 3 × 2 s + 56/256 s (the skew is not scaled by the interval).
    let a_master = sim.entered(a, VRID, State::Master)[0].at;
    assert_eq!(a_master, micros(6_218_750));
    sim.kill(a);
    sim.run_until(secs(30));
    let last_heard = sim.last_advert_heard(b, VRID, a).unwrap();
    assert_eq!(last_heard, micros(14_219_750));
    // 3 × 2 s + 156/256 s = 6.609375 s; v3 would wait 7.21875 s.
    assert_eq!(
        sim.entered(b, VRID, State::Master)[0].at,
        last_heard + micros(6_609_375)
    );
    sim.check_golden("v2_failover");
}

#[test]
fn ten_millisecond_adverts_fail_over_in_tens_of_milliseconds() {
    let delay = Duration::from_micros(100);
    let mut sim = Sim::new(delay);
    let fast = |priority, address| {
        let mut cfg = config(VRID, priority, address);
        cfg.advert_interval = Duration::from_millis(10);
        cfg
    };
    let a = sim.add_node("a", vec![fast(200, "10.0.0.1")]);
    let b = sim.add_node("b", vec![fast(100, "10.0.0.2")]);
    sim.start(a);
    sim.start(b);
    sim.run_until(Duration::from_millis(100));
    let a_master = sim.entered(a, VRID, State::Master)[0].at;
    // 30 ms + 56 × 10 ms / 256 = 32.1875 ms.
    assert_eq!(a_master, micros(32_187) + Duration::from_nanos(500));
    sim.kill(a);
    sim.run_for(Duration::from_millis(200));
    // Last advert sent at 92.1875 ms, heard at 92.2875 ms; 36.09375 ms later b is Master.
    let last_heard = sim.last_advert_heard(b, VRID, a).unwrap();
    assert_eq!(last_heard, micros(92_287) + Duration::from_nanos(500));
    let takeover = sim.entered(b, VRID, State::Master)[0].at;
    assert_eq!(takeover, micros(128_381) + Duration::from_nanos(250));
    assert_eq!(
        takeover.checked_sub(last_heard).unwrap(),
        master_down_interval(100, Duration::from_millis(10))
    );
}

#[test]
fn interface_down_on_the_master_fails_over_after_master_down_interval() {
    let (mut sim, _a, b, c) = three_nodes();
    sim.run_until(secs(10));
    sim.deliver_all(c, &Event::InterfaceDown);
    assert_eq!(sim.state(c, VRID), State::Fault);
    sim.run_until(secs(20));
    // No priority 0 on a dead link: b waits the full Master_Down_Interval.
    let last_heard = sim.last_advert_heard(b, VRID, c).unwrap();
    assert_eq!(
        sim.entered(b, VRID, State::Master)[0].at,
        last_heard + master_down_interval(150, SECOND)
    );
    // c comes back as Backup and preempts b after its own Master_Down_Interval.
    sim.deliver_all(c, &Event::InterfaceUp);
    sim.run_until(secs(30));
    let back = sim.entered(c, VRID, State::Master);
    assert_eq!(back.len(), 2);
    assert_eq!(back[1].at, secs(20) + master_down_interval(200, SECOND));
    assert_eq!(sim.masters(VRID), vec!["c"]);
}

#[test]
fn killing_masters_one_after_another_always_elects_the_highest_survivor_on_time() {
    let mut sim = Sim::new(LINK_DELAY);
    let priorities = [100u8, 110, 120, 130, 140];
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let addresses = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];
    let nodes: Vec<usize> = (0..5)
        .map(|i| sim.add_node(names[i], vec![config(VRID, priorities[i], addresses[i])]))
        .collect();
    for &node in &nodes {
        sim.start(node);
    }
    sim.run_until(secs(10));
    assert_eq!(
        sim.entered(nodes[4], VRID, State::Master)[0].at,
        master_down_interval(140, SECOND)
    );
    // Kill the Master every 10 s; the next highest takes over exactly one of its own
    // Master_Down_Intervals after it last heard the dead one.
    for round in 1..=4u64 {
        let dead = 5 - usize::try_from(round).unwrap();
        let successor = dead - 1;
        sim.kill(nodes[dead]);
        sim.run_until(secs(10 * (round + 1)));
        let last_heard = sim
            .last_advert_heard(nodes[successor], VRID, nodes[dead])
            .unwrap();
        let took_over = sim.entered(nodes[successor], VRID, State::Master);
        assert_eq!(took_over.len(), 1, "round {round}");
        assert_eq!(
            took_over[0].at,
            last_heard + master_down_interval(priorities[successor], SECOND),
            "round {round}"
        );
        assert_eq!(sim.masters(VRID), vec![names[successor]], "round {round}");
    }
}
