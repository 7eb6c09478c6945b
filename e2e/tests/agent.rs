//! Lab scenarios with our agent, alone and mixed with keepalived (needs root and the agent
//! binary: `cargo build -p kube-vrrp-agent`, or KUBE_VRRP_AGENT=path; a missing binary fails with
//! "agent binary not built"). Each asserts on what the client sees (who answers for the VIP), on
//! the agents' `/status` and, where it says something, on `/metrics`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod scenarios;

use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{Agent, InstanceStatus, track_file_path};
use kube_vrrp_e2e::daemon::{Daemon, DaemonKind};
use kube_vrrp_e2e::exposition;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Disruption, Running};
use kube_vrrp_e2e::{LabSpec, TrackFile, Version};

use DaemonKind::{Agent as A, Keepalived as K};

fn require_agent() {
    require_root();
    if let Err(e) = kube_vrrp_e2e::agent::binary() {
        panic!("{e}");
    }
}

fn lab(nodes: usize, ipv6: bool) -> LabSpec {
    LabSpec { nodes, ipv6 }
}

/// The agent on node `node`.
fn agent(running: &Running, node: usize) -> &Agent {
    match running.daemons.get(node - 1) {
        Some(Some(Daemon::Agent(agent))) => agent,
        _ => panic!("node {node} runs no agent"),
    }
}

/// Instance "web" on node `node`'s `/status`.
fn web(running: &Running, node: usize) -> InstanceStatus {
    agent(running, node).instance(&running.lab, "web").unwrap()
}

/// Waits until instance "web" on node `node` satisfies `done`.
fn wait_web(
    running: &Running,
    node: usize,
    timeout: Duration,
    done: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    agent(running, node)
        .wait_for_instance(&running.lab, "web", timeout, done)
        .unwrap()
}

/// `kube_vrrp_instance_state{vrrp_instance="web",state=...}` on node `node`.
fn state_metric(running: &Running, node: usize, state: &str) -> Option<f64> {
    let text = agent(running, node).metrics(&running.lab).unwrap();
    exposition::value(
        &text,
        "kube_vrrp_instance_state",
        &[("vrrp_instance", "web"), ("state", state)],
    )
}

/// A counter of instance "web" on node `node` (`_total` suffix included in `name`).
fn web_counter(running: &Running, node: usize, name: &str) -> f64 {
    let text = agent(running, node).metrics(&running.lab).unwrap();
    exposition::value(&text, name, &[("vrrp_instance", "web")])
        .unwrap_or_else(|| panic!("no {name}{{vrrp_instance=\"web\"}} on n{node}:\n{text}"))
}

#[test]
fn three_agents_elect_the_highest_priority_and_only_it_answers_for_the_vip() {
    require_agent();
    scenarios::election(A);
}

#[test]
fn agent_status_and_metrics_name_the_master_and_the_backups_hear_it() {
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(A, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let master_ip = addressing::node_ip(1, Family::V4).to_string();
    for node in 1..=3 {
        let web = web(&running, node);
        assert_eq!(web.vrid, Some(51), "n{node}: {web:?}");
        assert_eq!(web.interface.as_deref(), Some("eth0"), "n{node}: {web:?}");
        assert_eq!(
            web.priority,
            Some(running.instance.priority(node)),
            "n{node}: {web:?}"
        );
        assert_eq!(web.effective_priority, web.priority, "n{node}: {web:?}");
        let (state, other) = if node == 1 {
            assert!(web.is_master(), "n1: {web:?}");
            let mut vips = web.vips.clone();
            vips.sort();
            assert_eq!(
                vips,
                ["192.168.77.50/24", "192.168.77.51/24"],
                "n1: {web:?}"
            );
            ("MASTER", "BACKUP")
        } else {
            assert!(web.is_backup(), "n{node}: {web:?}");
            assert!(
                web.vips.is_empty(),
                "a BACKUP holds no VIP: n{node}: {web:?}"
            );
            assert_eq!(
                web.master_address.as_deref(),
                Some(master_ip.as_str()),
                "n{node}: {web:?}"
            );
            ("BACKUP", "MASTER")
        };
        assert_eq!(state_metric(&running, node, state), Some(1.0), "n{node}");
        assert_eq!(state_metric(&running, node, other), Some(0.0), "n{node}");
    }
    // The MASTER advertises and the backups receive, both counted.
    std::thread::sleep(Duration::from_millis(300));
    assert!(web_counter(&running, 1, "kube_vrrp_adverts_sent_total") >= 3.0);
    for node in [2, 3] {
        assert!(
            web_counter(&running, node, "kube_vrrp_adverts_received_total") >= 3.0,
            "n{node}"
        );
        let sent = web_counter(&running, node, "kube_vrrp_adverts_sent_total");
        assert!(sent < 1.0, "n{node} sent {sent} adverts as BACKUP");
    }
    assert!(web_counter(&running, 1, "kube_vrrp_instance_transitions_total") >= 2.0);
}

#[test]
fn agent_v2_master_death_fails_over_after_master_down_interval() {
    require_agent();
    scenarios::v2_death_fails_over_after_master_down_interval(A);
}

#[test]
fn agent_sigterm_hands_over_after_skew_time() {
    require_agent();
    scenarios::sigterm_hands_over_after_skew_time(A);
}

/// SIGTERM at 100 ms adverts: the priority-0 advert makes n2 MASTER after its Skew_Time (60.9 ms)
/// plus a small margin; the old MASTER has removed its VIPs before it exited, and n2's `/status`
/// and `/metrics` say MASTER.
#[test]
fn agent_sigterm_at_100ms_hands_over_within_skew_time_and_leaves_no_vip_behind() {
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let mut running = Running::start(A, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let (failover, new_master) = running
        .fail_over(1, Disruption::Terminate, Duration::from_secs(3))
        .unwrap();
    assert_eq!(new_master, 2);
    let skew = running.instance.skew_time(100);
    assert!(
        failover.duration() <= skew + Duration::from_millis(30),
        "handover took {:?}, Skew_Time is {skew:?}",
        failover.duration()
    );
    for vip in &running.instance.vips {
        assert!(
            !running.lab.holds(1, vip.addr()).unwrap(),
            "{vip} left on n1"
        );
        assert_eq!(running.lab.holders(vip.addr()).unwrap(), vec![2]);
    }
    wait_web(
        &running,
        2,
        Duration::from_secs(1),
        InstanceStatus::is_master,
    );
    assert_eq!(state_metric(&running, 2, "MASTER"), Some(1.0));
    wait_web(&running, 3, Duration::from_secs(1), |s| {
        s.is_backup()
            && s.master_address.as_deref() == Some(&addressing::node_ip(2, Family::V4).to_string())
    });
}

/// SIGKILL of the MASTER's agent with its node cut off: n2 answers after Master_Down_Interval.
/// The killed agent cannot remove its VIPs; when it starts again (still cut off) it removes the
/// stale ones before joining, goes to FAULT or BACKUP, and once its link is back it preempts.
#[test]
fn a_killed_master_agent_leaves_a_stale_vip_that_its_restart_removes() {
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let mut running = Running::start(A, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let (failover, new_master) = running
        .fail_over(1, Disruption::Death, Duration::from_secs(3))
        .unwrap();
    assert_eq!(new_master, 2);
    let mdi = running.instance.master_down_interval(100);
    assert!(
        failover.duration() + Duration::from_millis(40) >= mdi
            && failover.duration() <= mdi + Duration::from_millis(150),
        "failover took {:?}, Master_Down_Interval is {mdi:?}",
        failover.duration()
    );
    wait_web(
        &running,
        2,
        Duration::from_secs(1),
        InstanceStatus::is_master,
    );
    let vip = running.vip();
    assert!(
        running.lab.holds(1, vip).unwrap(),
        "a SIGKILLed agent cannot have removed its VIP (is the lab measuring a graceful exit?)"
    );
    running.restart(1, A).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while running.lab.holds(1, vip).unwrap() {
        assert!(
            Instant::now() < deadline,
            "the restarted agent kept the stale VIP {vip}; log:\n{}",
            agent(&running, 1).log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let n1 = web(&running, 1);
    assert!(!n1.is_master(), "n1 MASTER while cut off: {n1:?}");
    let healed = Instant::now();
    running.lab.heal(1).unwrap();
    let mac1 = running.lab.node_mac(1).unwrap();
    running
        .prober
        .wait_for_reply(healed, Duration::from_secs(5), |m| m == mac1)
        .expect("n1 did not preempt after its link came back");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(vip, Duration::from_secs(3))
            .unwrap(),
        1
    );
    wait_web(
        &running,
        2,
        Duration::from_secs(2),
        InstanceStatus::is_backup,
    );
}

#[test]
fn agent_ipv6_master_death_fails_over_after_master_down_interval() {
    require_agent();
    scenarios::ipv6_death_fails_over_after_master_down_interval(A);
}

#[test]
fn unicast_agents_fail_over_and_advertise_to_each_other_only() {
    require_agent();
    scenarios::unicast_fails_over_and_advertises_to_peers_only(A);
}

#[test]
fn unicast_ipv6_agents_fail_over_and_advertise_to_each_other_only() {
    require_agent();
    scenarios::unicast_fails_over_and_advertises_to_peers_only_over(A, Family::V6);
}

#[test]
fn agent_preempt_returns_the_vip_to_a_returning_higher_priority() {
    require_agent();
    scenarios::preempt_returns_the_vip_to_a_returning_higher_priority(A);
}

#[test]
fn agent_nopreempt_keeps_the_current_master_when_a_higher_priority_returns() {
    require_agent();
    scenarios::nopreempt_keeps_the_current_master_when_a_higher_priority_returns(A);
}

#[test]
fn agent_preempt_delay_holds_back_a_returning_higher_priority() {
    require_agent();
    scenarios::preempt_delay_holds_back_a_returning_higher_priority(A);
}

/// Link down on the MASTER: its `/status` says FAULT and it releases the VIPs, n2 takes over and
/// says MASTER; link up: n1 preempts back.
#[test]
fn agent_link_down_goes_to_fault_and_hands_over_and_link_up_preempts_back() {
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(A, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let cut = Instant::now();
    running.lab.cut(1).unwrap();
    let mac2 = running.lab.node_mac(2).unwrap();
    running
        .prober
        .wait_for_reply(cut, Duration::from_secs(5), |m| m == mac2)
        .expect("n2 never took over");
    let n1 = wait_web(
        &running,
        1,
        Duration::from_secs(3),
        InstanceStatus::is_fault,
    );
    assert_eq!(n1.master_address, None, "n1 in FAULT: {n1:?}");
    assert_eq!(state_metric(&running, 1, "FAULT"), Some(1.0));
    for vip in &running.instance.vips {
        assert!(
            !running.lab.holds(1, vip.addr()).unwrap(),
            "n1 kept {vip} in FAULT"
        );
    }
    wait_web(
        &running,
        2,
        Duration::from_secs(1),
        InstanceStatus::is_master,
    );
    scenarios::heal_n1_and_expect_it_back(&running);
    wait_web(
        &running,
        1,
        Duration::from_secs(2),
        InstanceStatus::is_master,
    );
    wait_web(
        &running,
        2,
        Duration::from_secs(2),
        InstanceStatus::is_backup,
    );
}

/// A tracked file with weight -60: writing 1 into n1's file lowers its effective priority to 90,
/// below n2's 100, so n2 preempts; writing 0 brings n1 back to 150 and it preempts again.
#[test]
fn a_tracker_weight_hands_the_vip_over_and_back() {
    require_agent();
    let mut spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    spec.track_file = Some(TrackFile { weight: Some(-60) });
    let running = Running::start(A, lab(3, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let track = track_file_path(&running.lab, 1);
    let lowered = Instant::now();
    std::fs::write(&track, "1\n").unwrap();
    let mac2 = running.lab.node_mac(2).unwrap();
    running
        .prober
        .wait_for_reply(lowered, Duration::from_secs(5), |m| m == mac2)
        .expect("n2 never took over from the lowered n1");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(running.vip(), Duration::from_secs(3))
            .unwrap(),
        2
    );
    let n1 = wait_web(
        &running,
        1,
        Duration::from_secs(2),
        InstanceStatus::is_backup,
    );
    assert_eq!(
        (n1.priority, n1.effective_priority),
        (Some(150), Some(90)),
        "{n1:?}"
    );
    let text = agent(&running, 1).metrics(&running.lab).unwrap();
    assert_eq!(
        exposition::value(
            &text,
            "kube_vrrp_instance_effective_priority",
            &[("vrrp_instance", "web")]
        ),
        Some(90.0),
        "{text}"
    );
    let restored = Instant::now();
    std::fs::write(&track, "0\n").unwrap();
    let mac1 = running.lab.node_mac(1).unwrap();
    running
        .prober
        .wait_for_reply(restored, Duration::from_secs(5), |m| m == mac1)
        .expect("n1 did not preempt back once its tracker recovered");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(running.vip(), Duration::from_secs(3))
            .unwrap(),
        1
    );
    let n1 = wait_web(
        &running,
        1,
        Duration::from_secs(2),
        InstanceStatus::is_master,
    );
    assert_eq!(n1.effective_priority, Some(150), "{n1:?}");
}

/// A BACKUP whose process is frozen for three Master_Down_Intervals wakes with its timer
/// expired and the MASTER's adverts waiting in its socket: it hears them first and stays
/// BACKUP (no transition, one holder), as keepalived does, instead of taking over from a live
/// MASTER. Stands for any stall of a node (CPU starvation, a paused VM).
#[test]
fn a_backup_frozen_past_master_down_interval_hears_the_waiting_adverts_and_does_not_take_over() {
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(A, lab(2, false), spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    wait_web(
        &running,
        2,
        Duration::from_secs(2),
        InstanceStatus::is_backup,
    );
    let transitions = web_counter(&running, 2, "kube_vrrp_instance_transitions_total");
    let mdi = running
        .instance
        .master_down_interval(running.instance.priority(2));
    let pid = agent(&running, 2).pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    for _ in 0..3 {
        signal("-STOP");
        std::thread::sleep(mdi * 3);
        signal("-CONT");
        std::thread::sleep(mdi);
        assert_eq!(running.lab.holders(running.vip()).unwrap(), vec![1]);
    }
    let n2 = web(&running, 2);
    assert!(n2.is_backup(), "n2 after its stalls: {n2:?}");
    let after = web_counter(&running, 2, "kube_vrrp_instance_transitions_total");
    assert!(
        after - transitions < 0.5,
        "n2 changed state {} times after its stalls:\n{}",
        after - transitions,
        agent(&running, 2).log()
    );
    let heard = web_counter(&running, 2, "kube_vrrp_adverts_heard_late_total");
    assert!(heard >= 3.0, "n2 heard {heard} adverts late in 3 stalls");
    assert!(web(&running, 1).is_master());
}

/// A partition between two agents gives two MASTERs: the client hears both and each `/status`
/// says MASTER. After healing there is one MASTER again within Master_Down_Interval.
#[test]
fn partitioned_agents_both_report_master_and_one_remains_after_healing() {
    require_agent();
    let running = scenarios::partitioned_pair(A);
    for node in [1, 2] {
        let status = web(&running, node);
        assert!(
            status.is_master(),
            "n{node} during the partition: {status:?}"
        );
        assert_eq!(state_metric(&running, node, "MASTER"), Some(1.0), "n{node}");
    }
    let healed = Instant::now();
    running.lab.heal_partition().unwrap();
    let mdi = running.instance.master_down_interval(100);
    let deadline = healed + mdi;
    while running.lab.holders(running.vip()).unwrap() != vec![1] {
        assert!(
            Instant::now() < deadline,
            "still {:?} holding the VIP {mdi:?} after healing",
            running.lab.holders(running.vip()).unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let resolved = healed.elapsed();
    assert!(web(&running, 1).is_master());
    let n2 = wait_web(
        &running,
        2,
        Duration::from_millis(200),
        InstanceStatus::is_backup,
    );
    assert_eq!(
        n2.master_address.as_deref(),
        Some(addressing::node_ip(1, Family::V4).to_string().as_str()),
        "resolved after {resolved:?}: {n2:?}"
    );
}

// Interop with keepalived: keepalived MASTER with agent backups and the reverse, for v2 (with
// and without PASS) and v3, IPv4 and IPv6.

#[test]
fn keepalived_backups_take_over_from_a_dying_agent_master() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [A, K, K],
        Family::V4,
        Version::V3,
        None,
        Disruption::Death,
    );
}

#[test]
fn an_agent_backup_takes_over_from_a_dying_keepalived_master() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [K, A, K],
        Family::V4,
        Version::V3,
        None,
        Disruption::Death,
    );
}

#[test]
fn v2_pass_interop_hands_over_from_keepalived_to_an_agent_on_sigterm() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [K, A, A],
        Family::V4,
        Version::V2,
        Some("labpass"),
        Disruption::Terminate,
    );
}

#[test]
fn v2_pass_interop_keepalived_takes_over_from_a_dying_agent_master() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [A, K, K],
        Family::V4,
        Version::V2,
        Some("labpass"),
        Disruption::Death,
    );
}

#[test]
fn v2_interop_without_auth_an_agent_takes_over_from_a_dying_keepalived_master() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [K, A, K],
        Family::V4,
        Version::V2,
        None,
        Disruption::Death,
    );
}

#[test]
fn v2_interop_without_auth_keepalived_takes_over_from_an_agent_on_sigterm() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [A, K, A],
        Family::V4,
        Version::V2,
        None,
        Disruption::Terminate,
    );
}

#[test]
fn v3_ipv6_interop_agents_take_over_from_a_dying_keepalived_master() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [K, A, A],
        Family::V6,
        Version::V3,
        None,
        Disruption::Death,
    );
}

#[test]
fn v3_ipv6_interop_keepalived_takes_over_from_an_agent_on_sigterm() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [A, K, K],
        Family::V6,
        Version::V3,
        None,
        Disruption::Terminate,
    );
}

#[test]
fn v3_ipv4_interop_an_agent_takes_over_from_keepalived_on_sigterm() {
    require_agent();
    scenarios::interop_fails_over_on_time(
        [K, A, K],
        Family::V4,
        Version::V3,
        None,
        Disruption::Terminate,
    );
}
