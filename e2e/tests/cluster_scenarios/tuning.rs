//! Scenario 12: keepalived's process knobs through the chart. With `agent.realtimePriority`
//! and `agent.lockMemory` set, the chart adds SYS_NICE and IPC_LOCK to the agent container
//! (the lab runs each pod with exactly the capabilities its securityContext grants): every
//! agent's runtime threads run under SCHED_RR at that priority, its memory is locked, and a
//! VirtualIP still elects and hands over when its MASTER's agent stops.

use std::time::Duration;

use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec};
use kube_vrrp_e2e::netns;

use super::{apply_web, wait_master};

const PRIORITY: i64 = 20;

/// `(thread name, policy, priority)` of every thread of `pid`, from /proc (field 41 of
/// `stat` is the policy: 0 SCHED_OTHER, 2 SCHED_RR; field 40 the real-time priority).
fn threads(pid: u32) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        let (head, tail) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        // Fields after the name start at field 3.
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let field = |n: usize| fields[n - 3].parse::<i64>().unwrap();
        out.push((name, field(41), field(40)));
    }
    out
}

fn locked_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

pub fn run() {
    netns::require_root();
    let mut cluster = Cluster::up(&ClusterSpec {
        values: vec![
            format!("agent.realtimePriority={PRIORITY}"),
            "agent.lockMemory=true".to_owned(),
        ],
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("cluster lab: {e}"));
    apply_web(&cluster);
    for agent in cluster.agents() {
        let command = agent.container_command().join(" ");
        assert!(
            command.contains(&format!("--realtime-priority {PRIORITY}"))
                && command.contains("--lock-memory"),
            "{command}"
        );
        let pid = agent.pid().expect("agent running");
        let threads = threads(pid);
        let workers: Vec<_> = threads
            .iter()
            .filter(|(name, ..)| name == "tokio-rt-worker")
            .collect();
        assert!(!workers.is_empty(), "no runtime worker: {threads:?}");
        for (name, policy, priority) in &workers {
            assert_eq!(
                (*policy, *priority),
                (2, PRIORITY),
                "{} thread {name} not SCHED_RR {PRIORITY}: {threads:?}",
                agent.name()
            );
        }
        let locked = locked_kib(pid);
        assert!(locked > 0, "{}: no memory locked", agent.name());
        eprintln!(
            "{}: {} runtime threads SCHED_RR {PRIORITY}, {} other threads, VmLck {locked} kB",
            agent.name(),
            workers.len(),
            threads.len() - workers.len()
        );
    }
    // A planned exit under SCHED_RR: the MASTER hands over with priority 0.
    cluster.agent(1).unwrap().terminate().unwrap();
    wait_master(&cluster, "web", "n2", Duration::from_secs(20));
}
