//! Lab scenarios written once over [`DaemonKind`]: `keepalived.rs` runs them with keepalived on
//! every node (the baseline), and an agent test file runs the same functions with our agent.
#![allow(dead_code)] // each test file runs its own subset of these scenarios

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::probe::Advert;
use kube_vrrp_e2e::scenario::{Disruption, FailoverRun, Running, run_failover};
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};

/// Instance "web", VRID 51, two VIPs, priorities n1 150, n2 100, n3 50.
pub fn instance(family: Family, version: Version, advert: Duration) -> InstanceSpec {
    let mut spec = InstanceSpec::new(
        "web",
        51,
        vec![addressing::vip(family, 0), addressing::vip(family, 1)],
    );
    spec.version = version;
    spec.advert_interval = advert;
    spec.priorities = vec![150, 100, 50];
    spec
}

fn lab(nodes: usize, ipv6: bool) -> LabSpec {
    LabSpec { nodes, ipv6 }
}

/// `measured` lies within `[expected - early, expected + late]`.
fn assert_close(
    what: &str,
    measured: Duration,
    expected: Duration,
    early: Duration,
    late: Duration,
) {
    assert!(
        measured + early >= expected && measured <= expected + late,
        "{what} took {measured:?}, expected {expected:?} (-{early:?} / +{late:?})",
    );
}

/// The run handed over from n1 to n2 (priority 100) within `[expected - early, expected + late]`.
fn assert_failover(run: &FailoverRun, early: Duration, late: Duration) {
    assert_eq!(run.old_master, 1, "{run:?}");
    assert_eq!(
        run.new_master, 2,
        "the priority-100 node must take over: {run:?}"
    );
    assert_eq!(run.expected_new_master, 2);
    assert_close(
        run.disruption.as_str(),
        run.measured(),
        run.expected,
        early,
        late,
    );
}

/// Three nodes elect the highest priority; only it holds the VIPs, answers the client and
/// advertises (v3, 100 ms, multicast, TTL 255).
pub fn election(kind: DaemonKind) {
    require_root();
    let spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(kind, lab(3, false), spec).unwrap();
    let master = running.wait_for_master(Duration::from_secs(10)).unwrap();
    assert_eq!(master, 1, "priority 150 must win");
    for vip in &running.instance.vips {
        assert_eq!(
            running.lab.holders(vip.addr()).unwrap(),
            vec![1],
            "holders of {vip}"
        );
    }
    let from = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let replies: Vec<_> = running
        .prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= from)
        .collect();
    let mac1 = running.lab.node_mac(1).unwrap();
    assert!(
        replies.len() >= 100,
        "only {} answers in 500 ms",
        replies.len()
    );
    assert!(
        replies.iter().all(|r| r.mac == mac1),
        "another MAC answered: {replies:?}"
    );
    let adverts: Vec<_> = running
        .sniffer
        .adverts()
        .into_iter()
        .filter(|a| a.at >= from)
        .collect();
    assert!(
        (3..=7).contains(&adverts.len()),
        "{} adverts in 500 ms at 100 ms",
        adverts.len()
    );
    for advert in &adverts {
        assert_eq!(advert.node, 1, "a backup advertised: {advert:?}");
        let wire = &advert.wire;
        assert_eq!((wire.vrid, wire.priority, wire.version), (51, 150, 3));
        assert_eq!(wire.ttl, 255);
        assert_eq!(wire.interval, Duration::from_millis(100));
        assert_eq!(wire.destination, "224.0.0.18".parse::<IpAddr>().unwrap());
    }
}

/// v2 with PASS auth at 1 s: the MASTER's node dies; n2 answers after Master_Down_Interval
/// (3.609 s).
pub fn v2_death_fails_over_after_master_down_interval(kind: DaemonKind) {
    require_root();
    let mut spec = instance(Family::V4, Version::V2, Duration::from_secs(1));
    spec.password = Some("labpass".into());
    let run = run_failover(kind, lab(3, false), &spec, Disruption::Death).unwrap();
    assert_failover(&run, Duration::from_millis(40), Duration::from_millis(300));
}

/// v3 at 1 s: SIGTERM on the MASTER; n2 answers Skew_Time (0.609 s) after the priority-0
/// advert.
pub fn sigterm_hands_over_after_skew_time(kind: DaemonKind) {
    require_root();
    let spec = instance(Family::V4, Version::V3, Duration::from_secs(1));
    let run = run_failover(kind, lab(3, false), &spec, Disruption::Terminate).unwrap();
    assert_failover(&run, Duration::from_millis(40), Duration::from_millis(300));
}

/// IPv6, v3 at 100 ms: death; n2 answers Neighbor Solicitations after 360.9 ms.
pub fn ipv6_death_fails_over_after_master_down_interval(kind: DaemonKind) {
    require_root();
    let spec = instance(Family::V6, Version::V3, Duration::from_millis(100));
    let run = run_failover(kind, lab(3, true), &spec, Disruption::Death).unwrap();
    assert_failover(&run, Duration::from_millis(40), Duration::from_millis(150));
}

/// Unicast peers: adverts go only to the other nodes' addresses; death still fails over on
/// time.
pub fn unicast_fails_over_and_advertises_to_peers_only(kind: DaemonKind) {
    unicast_fails_over_and_advertises_to_peers_only_over(kind, Family::V4);
}

/// [`unicast_fails_over_and_advertises_to_peers_only`] over `family`.
pub fn unicast_fails_over_and_advertises_to_peers_only_over(kind: DaemonKind, family: Family) {
    require_root();
    let mut spec = instance(family, Version::V3, Duration::from_millis(100));
    spec.unicast = true;
    let mut running = Running::start(kind, lab(3, family == Family::V6), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let (failover, new_master) = running
        .fail_over(1, Disruption::Death, Duration::from_secs(5))
        .unwrap();
    assert_eq!(new_master, 2);
    let expected = running.instance.master_down_interval(100);
    assert_close(
        "unicast failover",
        failover.duration(),
        expected,
        Duration::from_millis(40),
        Duration::from_millis(150),
    );
    // The new MASTER's first unicast advert may wait for neighbour resolution of its peer and
    // reach the switch after its VIP answers the client.
    let both_advertised = |adverts: &[Advert]| {
        adverts.iter().any(|a| a.node == 1) && adverts.iter().any(|a| a.node == 2)
    };
    assert!(
        running
            .sniffer
            .wait_until(Duration::from_secs(2), both_advertised),
        "adverts from both MASTERs in turn: {:?}",
        running.sniffer.adverts()
    );
    let adverts = running.sniffer.adverts();
    let peers: Vec<IpAddr> = (1..=3).map(|n| addressing::node_ip(n, family)).collect();
    for advert in adverts {
        assert!(
            peers.contains(&advert.wire.destination),
            "not unicast to a peer: {advert:?}"
        );
        assert_ne!(
            advert.wire.destination,
            addressing::node_ip(advert.node, family)
        );
    }
}

/// A partition makes both nodes MASTER (the client hears both); healing it leaves the higher
/// priority alone.
pub fn partition_makes_both_master_until_healed(kind: DaemonKind) {
    let running = partitioned_pair(kind);
    running.lab.heal_partition().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while running.lab.holders(running.vip()).unwrap() != vec![1] {
        assert!(
            Instant::now() < deadline,
            "split brain not resolved after healing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two nodes (priorities 150 and 100, v3, 100 ms) running `kind`, elected, then partitioned:
/// returns once the client hears both answer for the VIP and both hold it.
pub fn partitioned_pair(kind: DaemonKind) -> Running {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.priorities = vec![150, 100];
    let running = Running::start(kind, lab(2, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let split = Instant::now();
    running.lab.partition().unwrap();
    let (mac1, mac2) = (
        running.lab.node_mac(1).unwrap(),
        running.lab.node_mac(2).unwrap(),
    );
    let reply = running
        .prober
        .wait_for_reply(split, Duration::from_secs(3), |m| m == mac2)
        .expect("n2 never answered after the partition");
    std::thread::sleep(Duration::from_millis(200));
    let after: Vec<_> = running
        .prober
        .replies()
        .into_iter()
        .filter(|r| r.at > reply.at)
        .collect();
    assert!(after.iter().any(|r| r.mac == mac1), "n1 stopped answering");
    assert!(after.iter().any(|r| r.mac == mac2), "n2 stopped answering");
    assert_eq!(
        running.lab.holders(running.vip()).unwrap(),
        vec![1, 2],
        "both should be MASTER"
    );
    running
}

/// Gets n2 to be MASTER with n1 stopped, restarts n1 and returns the time of the restart. (Under
/// load n2 can win the first election when n1's daemon starts slowly: with nopreempt or a
/// preempt delay that outcome stands for a while, so both cases are handled.)
fn hand_to_n2_and_restart_n1(kind: DaemonKind, running: &mut Running) -> Instant {
    let first = running.wait_for_master(Duration::from_secs(10)).unwrap();
    if first == 1 {
        running
            .fail_over(1, Disruption::Terminate, Duration::from_secs(5))
            .unwrap();
    } else {
        running.daemon(1).unwrap().terminate().unwrap();
    }
    assert_eq!(running.wait_for_master(Duration::from_secs(5)).unwrap(), 2);
    let restarted = Instant::now();
    running.restart(1, kind).unwrap();
    restarted
}

/// preempt (no delay): a higher-priority node that comes back takes the VIP over after about
/// its Master_Down_Interval (it starts as BACKUP, hears the lower priority, and preempts).
pub fn preempt_returns_the_vip_to_a_returning_higher_priority(kind: DaemonKind) {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.priorities = vec![150, 100];
    let mut running = Running::start(kind, lab(2, false), spec).unwrap();
    let restarted = hand_to_n2_and_restart_n1(kind, &mut running);
    let mac1 = running.lab.node_mac(1).unwrap();
    let back = running
        .prober
        .wait_for_reply(restarted, Duration::from_secs(5), |m| m == mac1)
        .expect("n1 never took the VIP back");
    let after = back.at.duration_since(restarted);
    assert!(
        after <= Duration::from_secs(2),
        "n1 preempted only after {after:?}"
    );
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(running.vip(), Duration::from_secs(3))
            .unwrap(),
        1
    );
}

/// nopreempt: a higher-priority node that comes back stays BACKUP.
pub fn nopreempt_keeps_the_current_master_when_a_higher_priority_returns(kind: DaemonKind) {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.priorities = vec![150, 100];
    spec.preempt = false;
    let mut running = Running::start(kind, lab(2, false), spec).unwrap();
    let restarted = hand_to_n2_and_restart_n1(kind, &mut running);
    // Ten advert intervals: far past n1's Master_Down_Interval (341 ms).
    std::thread::sleep(Duration::from_secs(1));
    let mac1 = running.lab.node_mac(1).unwrap();
    let n1_answers = running
        .prober
        .replies()
        .iter()
        .filter(|r| r.at >= restarted && r.mac == mac1)
        .count();
    assert_eq!(n1_answers, 0, "n1 took the VIP back despite nopreempt");
    assert_eq!(running.lab.holders(running.vip()).unwrap(), vec![2]);
    let n1_adverts = running
        .sniffer
        .adverts()
        .iter()
        .filter(|a| a.at >= restarted && a.node == 1)
        .count();
    assert_eq!(n1_adverts, 0, "n1 advertised as BACKUP");
}

/// preempt with preempt_delay 1 s: the returning higher-priority node takes over, but not before
/// the delay.
pub fn preempt_delay_holds_back_a_returning_higher_priority(kind: DaemonKind) {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.priorities = vec![150, 100];
    spec.preempt_delay = Duration::from_secs(1);
    let mut running = Running::start(kind, lab(2, false), spec).unwrap();
    let restarted = hand_to_n2_and_restart_n1(kind, &mut running);
    let mac1 = running.lab.node_mac(1).unwrap();
    let back = running
        .prober
        .wait_for_reply(restarted, Duration::from_secs(5), |m| m == mac1)
        .expect("n1 never took the VIP back");
    let after = back.at.duration_since(restarted);
    assert!(
        after >= Duration::from_secs(1),
        "n1 preempted after {after:?}, before its 1 s delay"
    );
    assert!(
        after <= Duration::from_secs(3),
        "n1 preempted only after {after:?}"
    );
    running
        .lab
        .wait_for_single_holder(running.vip(), Duration::from_secs(3))
        .unwrap();
}

/// Link down on the MASTER (its switch port, so eth0 loses carrier): it goes to FAULT and
/// releases the VIPs, n2 takes over; once the link is back the priority-150 n1 preempts again.
pub fn link_down_releases_the_vips_and_link_up_preempts_back(kind: DaemonKind) {
    require_root();
    let spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(kind, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    running.lab.cut(1).unwrap();
    let mac2 = running.lab.node_mac(2).unwrap();
    running
        .prober
        .wait_for_reply(Instant::now(), Duration::from_secs(5), |m| m == mac2)
        .expect("n2 never took over");
    let deadline = Instant::now() + Duration::from_secs(3);
    for vip in &running.instance.vips {
        while running.lab.holds(1, vip.addr()).unwrap() {
            assert!(
                Instant::now() < deadline,
                "n1 kept {vip} with its link down"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    heal_n1_and_expect_it_back(&running);
}

/// Interop: node `n` runs `kinds[n - 1]`, over `family` and `version` (v3 at 100 ms, v2 at 1 s),
/// with a v2 PASS `password` when given. The priority-150 n1 is elected, `disruption` takes it
/// away, n2 answers on time, and afterwards exactly one node that is still on the wire holds
/// the VIP (a dead node keeps its address on its cut-off interface, as after a crash).
pub fn interop_fails_over_on_time(
    kinds: [DaemonKind; 3],
    family: Family,
    version: Version,
    password: Option<&str>,
    disruption: Disruption,
) {
    require_root();
    let advert = match version {
        Version::V2 => Duration::from_secs(1),
        Version::V3 => Duration::from_millis(100),
    };
    let mut spec = instance(family, version, advert);
    spec.password = password.map(str::to_owned);
    let mut running = Running::start_mixed(&kinds, lab(3, family == Family::V6), spec).unwrap();
    let election = running.instance.master_down_interval(1) * 3 + Duration::from_secs(10);
    assert_eq!(running.wait_for_master(election).unwrap(), 1);
    let expected = disruption.expected(&running.instance, 100);
    let (failover, new_master) = running
        .fail_over(1, disruption, expected * 3 + Duration::from_secs(5))
        .unwrap();
    assert_eq!(new_master, 2, "the priority-100 node must take over");
    let late = match version {
        Version::V2 => Duration::from_millis(300),
        Version::V3 => Duration::from_millis(150),
    };
    assert_close(
        disruption.as_str(),
        failover.duration(),
        expected,
        Duration::from_millis(40),
        late,
    );
    // Let a wrong second claimant show itself: three more advert intervals.
    std::thread::sleep(advert * 3);
    for vip in &running.instance.vips {
        let on_wire: Vec<usize> = running
            .lab
            .holders(vip.addr())
            .unwrap()
            .into_iter()
            .filter(|&n| n != 1 || disruption == Disruption::Terminate)
            .collect();
        assert_eq!(on_wire, vec![2], "holders of {vip} after the failover");
    }
}

/// Brings n1's link back up and waits until the client hears n1 answer for the VIP again and n1
/// alone holds it (preempt as the highest priority).
pub fn heal_n1_and_expect_it_back(running: &Running) {
    let healed = Instant::now();
    running.lab.heal(1).unwrap();
    let mac1 = running.lab.node_mac(1).unwrap();
    running
        .prober
        .wait_for_reply(healed, Duration::from_secs(5), |m| m == mac1)
        .expect("n1 did not take the VIP back after its link came up");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(running.vip(), Duration::from_secs(3))
            .unwrap(),
        1
    );
}
