//! Ownership of addresses, for real: an administrator's address that a VirtualIP also names is
//! never touched by the agent — not at election, not as BACKUP, not in FAULT, not on SIGTERM —
//! on the node that would be MASTER and on the one that would be BACKUP; the instance stays in
//! FAULT and says why, naming both owners.
#![allow(clippy::unwrap_used)]

mod lab;

use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use lab::{Agent, address_line, config, holds, holds_for, spec, wait_for};

const VIP: &str = "192.0.2.50";

/// The administrator's own address (no IFA_PROTO, label eth0) is on eth0, untouched.
fn admin_address_intact(ns: &kube_vrrp_e2e::netns::Netns) -> bool {
    address_line(ns, VIP).is_some_and(|line| {
        line.contains("192.0.2.50/24") && !line.contains("eth0:vrrp") && !line.contains("proto")
    })
}

fn conflict_reported(agent: &Agent) -> bool {
    let Some(web) = agent.status("web") else {
        return false;
    };
    let message = web.message.unwrap_or_default();
    web.state == State::Fault
        && web.vips.is_empty()
        && message.contains("address conflict")
        && message.contains("192.0.2.50/24 (owner: unknown (no IFA_PROTO), label eth0)")
        && agent.metric("kube_vrrp_vip_conflicts", &[("vrrp_instance", "web")]) == 1
}

#[test]
fn an_administrators_address_on_the_would_be_master_survives_election_and_sigterm() {
    let lab = lab::lab("kvow");
    lab.n1
        .exec(&["ip", "addr", "add", "192.0.2.50/24", "dev", "eth0"])
        .unwrap();
    let mut a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    let a2 = Agent::start(&lab.n2, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    wait_for("n1 in FAULT reporting the conflict", || {
        conflict_reported(&a1)
    });
    // n1 stays out of the election: n2 is MASTER (and the segment has the address twice, which
    // is what n1 reports).
    wait_for("n2 MASTER", || a2.state("web") == Some(State::Master));
    holds_for(
        Duration::from_secs(1),
        "n1 in FAULT, its address intact",
        || a1.state("web") == Some(State::Fault) && admin_address_intact(&lab.n1),
    );
    // SIGTERM: the instance leaves; the administrator's address stays.
    a1.stop();
    assert!(
        admin_address_intact(&lab.n1),
        "the administrator's address was removed on SIGTERM: {:?}",
        address_line(&lab.n1, VIP)
    );
}

#[test]
fn an_administrators_address_on_the_would_be_backup_survives_failover_preemption_and_sigterm() {
    let lab = lab::lab("kvow");
    lab.n2
        .exec(&["ip", "addr", "add", "192.0.2.50/24", "dev", "eth0"])
        .unwrap();
    let mut a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    let mut a2 = Agent::start(&lab.n2, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    wait_for("n1 MASTER", || a1.state("web") == Some(State::Master));
    wait_for("n2 in FAULT reporting the conflict", || {
        conflict_reported(&a2)
    });
    // The MASTER leaves: n2 does not take over an address it cannot own.
    a1.stop();
    assert!(!holds(&lab.n1, VIP));
    holds_for(
        Duration::from_secs(1),
        "n2 in FAULT, its address intact",
        || a2.state("web") == Some(State::Fault) && admin_address_intact(&lab.n2),
    );
    // The MASTER comes back and preempts nothing on n2.
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    wait_for("n1 MASTER again", || a1.state("web") == Some(State::Master));
    holds_for(Duration::from_millis(500), "n2's address intact", || {
        admin_address_intact(&lab.n2)
    });
    a2.stop();
    assert!(
        admin_address_intact(&lab.n2),
        "the administrator's address was removed on SIGTERM: {:?}",
        address_line(&lab.n2, VIP)
    );
}

#[test]
fn an_address_added_by_hand_while_backup_is_a_conflict_that_clears_when_it_goes() {
    let lab = lab::lab("kvow");
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    let a2 = Agent::start(&lab.n2, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    wait_for("n1 MASTER, n2 BACKUP", || {
        a1.state("web") == Some(State::Master) && a2.state("web") == Some(State::Backup)
    });
    lab.n2
        .exec(&["ip", "addr", "add", "192.0.2.50/24", "dev", "eth0"])
        .unwrap();
    wait_for("n2 in FAULT reporting the conflict", || {
        conflict_reported(&a2)
    });
    assert_eq!(a1.state("web"), Some(State::Master));
    lab.n2
        .exec(&["ip", "addr", "del", "192.0.2.50/24", "dev", "eth0"])
        .unwrap();
    wait_for("n2 BACKUP again, no conflict", || {
        a2.status("web")
            .is_some_and(|web| web.state == State::Backup && web.message.is_none())
            && a2.metric("kube_vrrp_vip_conflicts", &[("vrrp_instance", "web")]) == 0
    });
}

#[test]
fn removing_an_instance_from_the_configuration_removes_only_its_own_vip() {
    let lab = lab::lab("kvow");
    // The administrator's address is another one of the instance's VIPs.
    lab.n1
        .exec(&["ip", "addr", "add", "192.0.2.51/24", "dev", "eth0"])
        .unwrap();
    let mut web = spec("web", 51, "192.0.2.50/24", 150);
    let a1 = Agent::start(&lab.n1, config(vec![web.clone()]));
    wait_for("n1 MASTER holding its VIP", || {
        a1.state("web") == Some(State::Master) && holds(&lab.n1, VIP)
    });
    web.addresses.push("192.0.2.51/24".parse().unwrap());
    a1.apply(config(vec![web]));
    wait_for("n1 in FAULT: the new VIP is the administrator's", || {
        a1.state("web") == Some(State::Fault)
    });
    assert!(!holds(&lab.n1, VIP), "FAULT kept the VIP");
    a1.apply(config(Vec::new()));
    wait_for("the instance gone", || a1.status("web").is_none());
    assert!(
        address_line(&lab.n1, "192.0.2.51").is_some_and(|line| !line.contains("eth0:vrrp")),
        "the administrator's address was removed with the instance"
    );
}
