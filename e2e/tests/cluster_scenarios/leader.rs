//! Scenario 7: leader election over a real Lease. The leader freezes (SIGSTOP: a long pause,
//! the case that breaks naive leaders): the standby takes over within the lease duration and
//! writes what changes next; when the old leader thaws, it writes nothing (the audit log shows
//! no successful write by its pod after the takeover). Then the new leader is killed and the
//! old one takes over again.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::audit;
use kube_vrrp_e2e::cluster::user::poll;
use kube_vrrp_e2e::cluster::{Cluster, NAMESPACE, OPERATOR_LEASE};
use nix::sys::signal::Signal;
use serde_json::json;

use super::{POLL, apply_web, up, vip_manifest, wait_master};

/// The chart's lease duration (the operator's default `--lease-duration-seconds`).
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Time to notice the expiry and win the update (the standby retries every few seconds).
const ACQUIRE: Duration = Duration::from_secs(5);

fn wait_leader_change(cluster: &Cluster, from: usize) -> (usize, Duration) {
    let since = Instant::now();
    let leader = poll(
        "another operator replica holding the Lease",
        LEASE_DURATION + ACQUIRE + Duration::from_secs(10),
        POLL,
        || Ok(cluster.leader().ok().filter(|l| *l != from)),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", super::logs_tail(cluster, 10)));
    (leader, since.elapsed())
}

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();
    apply_web(&cluster);
    let old = cluster.leader().unwrap();
    let old_name = cluster.operators()[old].name().to_owned();

    cluster.operators()[old].signal(Signal::SIGSTOP).unwrap();
    let (new, took) = wait_leader_change(&cluster, old);
    let takeover = jiff::Timestamp::now();
    eprintln!(
        "leader {old_name} frozen → {} took over after {:.1} s",
        cluster.operators()[new].name(),
        took.as_secs_f64()
    );
    assert!(
        took <= LEASE_DURATION + ACQUIRE,
        "takeover after {took:?} (lease duration {LEASE_DURATION:?})"
    );

    // The new leader writes what changes now.
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n2", 150), ("n1", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n2", Duration::from_secs(20));

    // The old leader thaws and must stand by.
    cluster.operators()[old].signal(Signal::SIGCONT).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        cluster.leader().unwrap(),
        new,
        "the thawed replica took the Lease back"
    );
    let events = audit::read(&cluster.control_plane().audit_log()).unwrap();
    let stale_writes: Vec<String> = events
        .iter()
        .filter(|e| {
            e.pod() == Some(old_name.as_str())
                && e.is_write()
                && e.succeeded()
                && e.request_received_timestamp > takeover
        })
        .map(audit::AuditEvent::describe)
        .collect();
    assert!(
        stale_writes.is_empty(),
        "{old_name} wrote after losing the Lease:\n{}",
        stale_writes.join("\n")
    );
    let old_writes_before = events
        .iter()
        .filter(|e| e.pod() == Some(old_name.as_str()) && e.is_write() && e.succeeded())
        .count();
    assert!(
        old_writes_before > 0,
        "the audit log shows no write by {old_name} at all (is the pod name in the audit events?)"
    );

    // Killing the new leader hands the Lease back.
    let new_name = cluster.operators()[new].name().to_owned();
    cluster.operators()[new].kill().unwrap();
    let (back, took) = wait_leader_change(&cluster, new);
    assert_eq!(back, old, "the Lease went to neither replica");
    eprintln!(
        "leader {new_name} killed → {old_name} took over after {:.1} s",
        took.as_secs_f64()
    );
    assert!(took <= LEASE_DURATION + ACQUIRE, "takeover after {took:?}");
    let lease = cluster
        .kubectl()
        .json(&[
            "get",
            "lease",
            OPERATOR_LEASE,
            "-n",
            NAMESPACE,
            "-o",
            "json",
        ])
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], old_name.as_str());
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n3", 150), ("n1", 100), ("n2", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n3", Duration::from_secs(20));
}
