//! A VIP the kernel refuses to add, for real: the agent on n1 runs without CAP_NET_ADMIN (a
//! DaemonSet missing the capability), so every add fails with EPERM. The would-be MASTER does
//! not advertise as if it held the VIP: it goes to FAULT at once (its priority-0 advert lets n2
//! take over), says so in status and metrics, and retries with backoff without preempting the
//! working MASTER; when that one leaves, the retry runs and fails again, counted.
#![allow(clippy::unwrap_used)]

mod lab;

use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use lab::{Agent, BinaryAgent, config, holds, holds_for, manifests, spec, wait_for_within};

const VIP: &str = "192.0.2.50";
const WITHOUT_NET_ADMIN: [&str; 6] = [
    "setpriv",
    "--bounding-set",
    "-net_admin",
    "--inh-caps",
    "-net_admin",
    "--",
];

fn add_failures(agent: &BinaryAgent) -> u64 {
    agent.metric(
        "kube_vrrp_vip_add_failures_total",
        &[("vrrp_instance", "web")],
    )
}

#[test]
fn a_vip_that_cannot_be_added_puts_the_instance_in_fault_reported_and_retried() {
    let lab = lab::lab("kvad");
    let n1 = BinaryAgent::start(
        &lab.n1,
        &lab.workdir,
        "n1",
        &manifests(""),
        &WITHOUT_NET_ADMIN,
    );
    let mut a2 = Agent::start(&lab.n2, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    let limit = Duration::from_secs(10);
    wait_for_within(limit, "n1 in FAULT after a failed add, reported", || {
        n1.status("web").is_some_and(|web| {
            web.state == State::Fault
                && web.vips.is_empty()
                && web
                    .message
                    .is_some_and(|message| message.contains("adding the VIPs failed 1 time(s)"))
        }) && add_failures(&n1) >= 1
    });
    wait_for_within(limit, "n2 MASTER holding the VIP", || {
        a2.state("web") == Some(State::Master) && holds(&lab.n2, VIP)
    });
    assert!(!holds(&lab.n1, VIP));
    // The retry is due after 1 s: n1 rejoins as BACKUP and leaves the working MASTER alone.
    holds_for(
        Duration::from_secs(3),
        "n2 the only holder, n1 not MASTER",
        || {
            holds(&lab.n2, VIP)
                && !holds(&lab.n1, VIP)
                && a2.state("web") == Some(State::Master)
                && n1
                    .status("web")
                    .is_some_and(|web| web.state != State::Master)
        },
    );
    wait_for_within(limit, "n1 BACKUP again after its retry was due", || {
        n1.status("web")
            .is_some_and(|web| web.state == State::Backup)
    });
    // The MASTER leaves: n1 takes over, tries again, fails again, and says so.
    a2.stop();
    wait_for_within(limit, "a second failed add, counted and reported", || {
        add_failures(&n1) >= 2
            && n1.status("web").is_some_and(|web| {
                web.state == State::Fault
                    && web
                        .message
                        .is_some_and(|message| message.contains("failed 2 time(s)"))
            })
    });
    assert!(
        n1.log().contains("Operation not permitted"),
        "the log does not say why: {}",
        n1.log()
    );
}
