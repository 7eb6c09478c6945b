//! keepalived-only lab scenarios: they validate the harness against a known-good VRRP
//! implementation and are the baseline our agent is measured against (needs root).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Disruption, FailoverRun, Running, run_failover};
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};

fn instance(family: Family, version: Version, advert: Duration) -> InstanceSpec {
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

fn lab(ipv6: bool) -> LabSpec {
    LabSpec { nodes: 3, ipv6 }
}

/// Asserts the run handed over to n2 (priority 100) within `[expected - early, expected + late]`.
fn assert_failover(run: &FailoverRun, early: Duration, late: Duration) {
    assert_eq!(run.old_master, 1, "{run:?}");
    assert_eq!(
        run.new_master, 2,
        "the priority-100 node must take over: {run:?}"
    );
    assert_eq!(run.expected_new_master, 2);
    let measured = run.measured();
    assert!(
        measured + early >= run.expected && measured <= run.expected + late,
        "{} failover took {measured:?}, expected {:?} (-{early:?} / +{late:?})",
        run.disruption.as_str(),
        run.expected,
    );
}

#[test]
fn three_keepalived_nodes_elect_the_highest_priority_and_only_it_answers_for_the_vip() {
    require_root();
    let spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(DaemonKind::Keepalived, lab(false), spec).unwrap();
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
        assert_eq!(
            (advert.wire.vrid, advert.wire.priority, advert.wire.version),
            (51, 150, 3)
        );
        assert_eq!(advert.wire.ttl, 255);
        assert_eq!(advert.wire.interval, Duration::from_millis(100));
        assert_eq!(
            advert.wire.destination,
            "224.0.0.18".parse::<IpAddr>().unwrap()
        );
    }
}

#[test]
fn keepalived_v2_master_death_fails_over_after_master_down_interval() {
    require_root();
    let mut spec = instance(Family::V4, Version::V2, Duration::from_secs(1));
    spec.password = Some("labpass".into());
    let run = run_failover(DaemonKind::Keepalived, lab(false), &spec, Disruption::Death).unwrap();
    // Master_Down_Interval of priority 100 at 1 s: 3.609 s.
    assert_failover(&run, Duration::from_millis(25), Duration::from_millis(300));
}

#[test]
fn keepalived_sigterm_hands_over_after_skew_time() {
    require_root();
    let spec = instance(Family::V4, Version::V3, Duration::from_secs(1));
    let run = run_failover(
        DaemonKind::Keepalived,
        lab(false),
        &spec,
        Disruption::Terminate,
    )
    .unwrap();
    // Skew_Time of priority 100 at 1 s: 0.609 s, counted from the priority-0 advert.
    assert_failover(&run, Duration::from_millis(25), Duration::from_millis(300));
}

#[test]
fn keepalived_ipv6_master_death_fails_over_after_master_down_interval() {
    require_root();
    let spec = instance(Family::V6, Version::V3, Duration::from_millis(100));
    let run = run_failover(DaemonKind::Keepalived, lab(true), &spec, Disruption::Death).unwrap();
    // 3 × 100 ms + 60.9 ms.
    assert_failover(&run, Duration::from_millis(25), Duration::from_millis(150));
}

#[test]
fn unicast_keepalived_peers_fail_over_and_advertise_to_each_other_only() {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.unicast = true;
    let mut running = Running::start(DaemonKind::Keepalived, lab(false), spec).unwrap();
    let master = running.wait_for_master(Duration::from_secs(10)).unwrap();
    assert_eq!(master, 1);
    let (failover, new_master) = running
        .fail_over(1, Disruption::Death, Duration::from_secs(5))
        .unwrap();
    assert_eq!(new_master, 2);
    let expected = running.instance.master_down_interval(100);
    let measured = failover.duration();
    assert!(
        measured + Duration::from_millis(25) >= expected
            && measured <= expected + Duration::from_millis(150),
        "unicast failover took {measured:?}, expected {expected:?}"
    );
    let adverts = running.sniffer.adverts();
    let peers: Vec<IpAddr> = (1..=3)
        .map(|n| addressing::node_ip(n, Family::V4))
        .collect();
    assert!(adverts.iter().any(|a| a.node == 1) && adverts.iter().any(|a| a.node == 2));
    for advert in adverts {
        assert!(
            peers.contains(&advert.wire.destination),
            "not unicast to a peer: {advert:?}"
        );
        assert_ne!(
            advert.wire.destination,
            addressing::node_ip(advert.node, Family::V4)
        );
    }
}

#[test]
fn partitioned_keepalived_nodes_both_become_master_and_both_answer_the_client() {
    require_root();
    let mut spec = instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.priorities = vec![150, 100];
    let running = Running::start(
        DaemonKind::Keepalived,
        LabSpec {
            nodes: 2,
            ipv6: false,
        },
        spec,
    )
    .unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let split = Instant::now();
    running.lab.partition().unwrap();
    let mac2 = running.lab.node_mac(2).unwrap();
    let reply = running
        .prober
        .wait_for_reply(split, Duration::from_secs(3), |m| m == mac2)
        .expect("n2 never answered after the partition");
    std::thread::sleep(Duration::from_millis(200));
    let mac1 = running.lab.node_mac(1).unwrap();
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
    running.lab.heal_partition().unwrap();
    // Healed: the higher priority keeps the VIP, the other steps down.
    let deadline = Instant::now() + Duration::from_secs(3);
    while running.lab.holders(running.vip()).unwrap() != vec![1] {
        assert!(
            Instant::now() < deadline,
            "split brain not resolved after healing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
