//! `acceptMode`, seen from the client namespace: with the default (accept) the MASTER answers
//! pings to its VIPs; with `acceptMode: false` (RFC 5798 §6.4.3) it drops everything addressed
//! to them — IPv4 and IPv6 — while ARP and Neighbor Discovery for them still work, its own
//! address still answers, and VRRP itself goes on; switched back to accept, the VIPs answer
//! again.
#![allow(clippy::unwrap_used)]

mod lab;

use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_e2e::netns::Netns;
use lab::{Agent, config, holds_for, spec, wait_for};

fn pings(client: &Netns, address: &str) -> bool {
    client
        .exec(&["ping", "-c", "1", "-W", "1", address])
        .is_ok()
}

fn arp_answers(client: &Netns, address: &str) -> bool {
    client
        .exec(&["arping", "-c", "1", "-w", "1", "-I", "eth0", address])
        .is_ok_and(|out| out.contains("reply from"))
}

/// Whether the client resolved `address` by Neighbor Discovery (it has a link-layer address
/// for it).
fn neighbor_resolved(client: &Netns, address: &str) -> bool {
    client
        .exec(&["ip", "-6", "neigh", "show", address, "dev", "eth0"])
        .is_ok_and(|out| out.contains("lladdr"))
}

fn instances(accept: bool, priority: u8) -> Vec<kube_vrrp_agent::driver::InstanceSpec> {
    let mut web = spec("web", 51, "192.0.2.50/24", priority);
    let mut web6 = spec("web6", 61, "2001:db8::50/64", priority);
    web.accept_mode = accept;
    web6.accept_mode = accept;
    vec![web, web6]
}

#[test]
fn accept_mode_false_drops_traffic_to_the_vips_on_the_master_but_not_arp_nd_or_vrrp() {
    let lab = lab::lab("kvac");
    let a1 = Agent::start(&lab.n1, config(instances(true, 150)));
    let a2 = Agent::start(&lab.n2, config(instances(true, 100)));
    wait_for("n1 MASTER of both", || {
        a1.state("web") == Some(State::Master) && a1.state("web6") == Some(State::Master)
    });
    assert!(
        pings(&lab.client, "192.0.2.50"),
        "the default does not accept"
    );
    assert!(
        pings(&lab.client, "2001:db8::50"),
        "the default does not accept (IPv6)"
    );

    a1.apply(config(instances(false, 150)));
    a2.apply(config(instances(false, 100)));
    wait_for("pings to the VIPs dropped", || {
        !pings(&lab.client, "192.0.2.50") && !pings(&lab.client, "2001:db8::50")
    });
    lab.client
        .exec(&["ip", "-6", "neigh", "flush", "dev", "eth0"])
        .unwrap();
    lab.client
        .exec(&["ip", "neigh", "flush", "dev", "eth0"])
        .unwrap();
    assert!(
        arp_answers(&lab.client, "192.0.2.50"),
        "ARP for the VIP is dropped"
    );
    assert!(!pings(&lab.client, "2001:db8::50"));
    assert!(
        neighbor_resolved(&lab.client, "2001:db8::50"),
        "Neighbor Discovery for the VIP is dropped"
    );
    assert!(
        pings(&lab.client, "192.0.2.1"),
        "the node's own address is dropped"
    );
    holds_for(
        Duration::from_secs(1),
        "VRRP goes on: n1 MASTER, n2 BACKUP",
        || a1.state("web") == Some(State::Master) && a2.state("web") == Some(State::Backup),
    );
    assert!(a1.status("web").unwrap().message.is_none());

    a1.apply(config(instances(true, 150)));
    wait_for("the VIPs answer again", || {
        pings(&lab.client, "192.0.2.50") && pings(&lab.client, "2001:db8::50")
    });
}
