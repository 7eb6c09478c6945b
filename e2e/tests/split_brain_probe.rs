//! Split brain seen by the agents themselves, with no API server at all: two standalone agents
//! in the namespace lab, then VRRP (IP protocol 112, and only it) dropped by nftables in n2's
//! namespace, the realistic cause (a firewall, or a switch filtering the VRRP multicast group)
//! while ARP / NDP still pass. Both become MASTER; each must report the other as a holder of
//! the VIP (on `/status` and as `kube_vrrp_instance_conflict`) within 2 × Master_Down_Interval
//! of the cut, naming the other's MAC; after healing one MASTER remains and the conflict clears.
//!
//! Needs root, `nft` and the agent binary (`cargo build -p kube-vrrp-agent`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::Agent;
use kube_vrrp_e2e::daemon::{Daemon, DaemonKind};
use kube_vrrp_e2e::exposition;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::Running;
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};
use serde_json::Value;

const ADVERT: Duration = Duration::from_millis(100);
/// Priorities of n1 and n2.
const PRIORITIES: [u8; 2] = [150, 100];

fn require_tools() {
    require_root();
    if let Err(e) = kube_vrrp_e2e::agent::binary() {
        panic!("{e}");
    }
    assert!(
        std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "nft (Debian package nftables) is needed to drop VRRP only"
    );
}

fn agent(running: &Running, node: usize) -> &Agent {
    match running.daemons.get(node - 1) {
        Some(Some(Daemon::Agent(agent))) => agent,
        _ => panic!("node {node} runs no agent"),
    }
}

/// Instance "web" on node `node`'s `/status`, as JSON.
fn web(running: &Running, node: usize) -> Value {
    let document = agent(running, node).status_document(&running.lab).unwrap();
    document["instances"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["name"] == "web"))
        .cloned()
        .unwrap_or_else(|| panic!("no instance web on n{node}: {document}"))
}

/// `name{vrrp_instance="web"}` on node `node`.
fn web_metric(running: &Running, node: usize, name: &str) -> f64 {
    let text = agent(running, node).metrics(&running.lab).unwrap();
    exposition::value(&text, name, &[("vrrp_instance", "web")])
        .unwrap_or_else(|| panic!("no {name}{{vrrp_instance=\"web\"}} on n{node}:\n{text}"))
}

/// `kube_vrrp_instance_conflict{vrrp_instance="web"}` on node `node`: 1 (true) or 0 (false).
fn conflict_gauge(running: &Running, node: usize) -> bool {
    let value = web_metric(running, node, "kube_vrrp_instance_conflict");
    assert!(
        value == 0.0 || (value - 1.0).abs() < f64::EPSILON,
        "n{node}: {value}"
    );
    value > 0.5
}

/// Drops VRRP, and nothing else, to and from node `node` (an nftables table in its namespace,
/// removed with the namespace).
fn drop_vrrp(running: &Running, node: usize) {
    let rules = running.lab.workdir().join(format!("cut-vrrp-n{node}.nft"));
    std::fs::write(
        &rules,
        "table inet kvcut {\n\
         \tchain input { type filter hook input priority -10; meta l4proto 112 drop; }\n\
         \tchain output { type filter hook output priority -10; meta l4proto 112 drop; }\n\
         }\n",
    )
    .unwrap();
    running
        .lab
        .node_ns(node)
        .unwrap()
        .exec(&["nft", "-f", &rules.to_string_lossy()])
        .unwrap();
}

fn allow_vrrp(running: &Running, node: usize) {
    running
        .lab
        .node_ns(node)
        .unwrap()
        .exec(&["nft", "delete", "table", "inet", "kvcut"])
        .unwrap();
}

fn state(status: &Value) -> &str {
    status["state"].as_str().unwrap_or_default()
}

/// The other MAC `status` reports, if it reports a conflict.
fn other_mac(status: &Value) -> Option<String> {
    status["holderConflict"]["otherMac"]
        .as_str()
        .map(str::to_owned)
}

fn both_masters_see_each_other(family: Family) {
    require_tools();
    let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(family, 0)]);
    spec.version = Version::V3;
    spec.advert_interval = ADVERT;
    spec.priorities = PRIORITIES.to_vec();
    let lab = LabSpec {
        nodes: 2,
        ipv6: family == Family::V6,
    };
    let running = Running::start(DaemonKind::Agent, lab, spec).unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    agent(&running, 2)
        .wait_for_instance(&running.lab, "web", Duration::from_secs(5), |s| {
            s.is_backup()
        })
        .unwrap();
    let macs = [
        running.lab.node_mac(1).unwrap().to_string(),
        running.lab.node_mac(2).unwrap().to_string(),
    ];
    for node in [1, 2] {
        assert_eq!(
            other_mac(&web(&running, node)),
            None,
            "n{node} before the cut"
        );
        assert!(!conflict_gauge(&running, node), "n{node} before the cut");
    }

    // The BACKUP's Master_Down_Interval bounds when it becomes MASTER after the cut.
    let mdi = running.instance.master_down_interval(PRIORITIES[1]);
    let limit = mdi * 2;
    let cut = Instant::now();
    drop_vrrp(&running, 2);
    let mut detected: [Option<Duration>; 2] = [None, None];
    while detected.iter().any(Option::is_none) {
        let elapsed = cut.elapsed();
        assert!(
            elapsed <= limit + Duration::from_millis(500),
            "{family:?}: conflict not reported by every node {elapsed:?} after the cut (goal {limit:?}): n1 {} n2 {}",
            web(&running, 1),
            web(&running, 2)
        );
        for node in [1, 2] {
            if detected[node - 1].is_none() && other_mac(&web(&running, node)).is_some() {
                detected[node - 1] = Some(cut.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{family:?} advert {ADVERT:?}: Master_Down_Interval {mdi:?}, goal 2 × MDI = {limit:?}; conflict on /status after the cut: n1 {:?}, n2 {:?} (loadavg {})",
        detected[0].unwrap(),
        detected[1].unwrap(),
        load.trim()
    );
    for node in [1, 2] {
        let took = detected[node - 1].unwrap();
        assert!(
            took <= limit,
            "{family:?}: n{node} reported the conflict {took:?} after the cut, over 2 × MDI = {limit:?}"
        );
        let status = web(&running, node);
        assert_eq!(state(&status), "MASTER", "n{node}: {status}");
        let other = macs[2 - node].clone();
        assert_eq!(
            other_mac(&status),
            Some(other),
            "n{node} names the other: {status}"
        );
        assert_eq!(
            status["holderConflict"]["address"].as_str(),
            Some(addressing::vip(family, 0).addr().to_string().as_str()),
            "{status}"
        );
        assert!(status["holderConflict"]["since"].is_string(), "{status}");
        assert!(conflict_gauge(&running, node), "n{node}");
        assert!(
            web_metric(
                &running,
                node,
                "kube_vrrp_instance_conflict_detections_total"
            ) >= 1.0,
            "n{node}"
        );
    }

    let healed = Instant::now();
    allow_vrrp(&running, 2);
    // n2 hears n1's higher priority and steps down (its conflict goes with MASTER); n1's
    // probes go unanswered three times in a row (steady interval 300 ms at 100 ms adverts).
    let clear_limit = Duration::from_secs(5);
    let mut cleared: [Option<Duration>; 2] = [None, None];
    while cleared.iter().any(Option::is_none) {
        let elapsed = healed.elapsed();
        assert!(
            elapsed <= clear_limit,
            "{family:?}: conflict not cleared {elapsed:?} after healing: n1 {} n2 {}",
            web(&running, 1),
            web(&running, 2)
        );
        for node in [1, 2] {
            if cleared[node - 1].is_none()
                && other_mac(&web(&running, node)).is_none()
                && !conflict_gauge(&running, node)
            {
                cleared[node - 1] = Some(healed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "{family:?}: conflict cleared after healing: n1 {:?}, n2 {:?}",
        cleared[0].unwrap(),
        cleared[1].unwrap()
    );
    assert_eq!(state(&web(&running, 1)), "MASTER");
    assert_eq!(state(&web(&running, 2)), "BACKUP");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(running.vip(), Duration::from_secs(2))
            .unwrap(),
        1
    );
}

#[test]
fn agents_cut_off_from_each_others_ipv4_adverts_both_report_the_other_holder_and_clear_after_healing()
 {
    both_masters_see_each_other(Family::V4);
}

#[test]
fn agents_cut_off_from_each_others_ipv6_adverts_both_report_the_other_holder_and_clear_after_healing()
 {
    both_masters_see_each_other(Family::V6);
}
