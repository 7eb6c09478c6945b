//! A forged flood, for real: 100,000 packets sent at 50,000 per second at a MASTER and a BACKUP
//! (TTL 64 adverts claiming priority 254, garbage, adverts for a VRID nobody runs) move
//! nothing — same states, same transition counts, the VIP on the MASTER alone throughout — and
//! every packet is counted by reason, packet for packet: each one the kernel delivered to the
//! node, that is, all of them unless the lab's veths dropped some on a loaded machine (their drop
//! counters are read and printed; the rate the generator reached is printed, not asserted). How late adverts are under such a flood
//! is measured by `cargo bench -p kube-vrrp-agent --bench advert_timing`, not asserted here.
#![allow(clippy::unwrap_used)]

mod lab;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::{Advertisement, Authentication};
use kube_vrrp_agent::vrrp::{VRRP_MULTICAST_IPV4, Version};
use kube_vrrp_e2e::netns::Netns;
use lab::flood::{Flood, Forged, garbage};
use lab::{Agent, CLIENT, config, holds, spec, wait_for, wait_for_within};

const VIP: &str = "192.0.2.50";
const RATE: u64 = 50_000;
const PACKETS: u64 = 100_000;

/// Packets the lab's links dropped on the way from the client to node `n` (the veths count a
/// full receive backlog as rx drops on the receiving end, or tx drops on the sending end).
fn path_drops(lab: &lab::Lab, n: usize) -> u64 {
    let dropped = |ns: &Netns, dev: &str, direction: &str| -> u64 {
        let out = ns
            .exec(&["ip", "-j", "-s", "link", "show", "dev", dev])
            .unwrap();
        let links: serde_json::Value = serde_json::from_str(&out).unwrap();
        links[0]["stats64"][direction]["dropped"].as_u64().unwrap()
    };
    let node = if n == 1 { &lab.n1 } else { &lab.n2 };
    dropped(&lab.client, "eth0", "tx")
        + dropped(&lab.switch, "pc", "rx")
        + dropped(&lab.switch, &format!("p{n}"), "tx")
        + dropped(node, "eth0", "rx")
}

fn advert(vrid: u8, priority: u8) -> Vec<u8> {
    Advertisement {
        version: Version::V3,
        vrid,
        priority,
        max_advert_interval_cs: 10,
        addresses: vec!["192.0.2.50".parse().unwrap()],
        auth: Authentication::None,
    }
    .encode(
        CLIENT.parse::<IpAddr>().unwrap(),
        IpAddr::V4(VRRP_MULTICAST_IPV4),
    )
    .unwrap()
}

#[test]
fn a_forged_flood_moves_nothing_and_every_packet_is_counted_by_reason() {
    let lab = lab::lab("kvfl");
    // Adverts every second: what the forged packets could move is what this checks; a machine
    // too loaded to run a 100 ms instance on time under the flood is the benchmark's business.
    let slow = |priority: u8| {
        let mut web = spec("web", 51, "192.0.2.50/24", priority);
        web.advert_interval = Duration::from_secs(1);
        web
    };
    let a1 = Agent::start(&lab.n1, config(vec![slow(150)]));
    let a2 = Agent::start(&lab.n2, config(vec![slow(100)]));
    wait_for("n1 MASTER, n2 BACKUP", || {
        a1.state("web") == Some(State::Master) && a2.state("web") == Some(State::Backup)
    });
    let before: Vec<(u64, u64, u64)> = [&a1, &a2]
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            (
                agent.status("web").unwrap().transitions,
                agent.dropped_total(),
                path_drops(&lab, i + 1),
            )
        })
        .collect();
    let forged = vec![
        Forged {
            kind: "ttl",
            ttl: 64,
            payloads: vec![advert(51, 254)],
        },
        Forged {
            kind: "garbage",
            ttl: 255,
            payloads: garbage(64),
        },
        Forged {
            kind: "vrid",
            ttl: 255,
            payloads: vec![advert(99, 254)],
        },
    ];
    let flood = Flood::start(
        lab.client.name(),
        "eth0",
        Ipv4Addr::new(224, 0, 0, 18),
        RATE,
        Some(PACKETS),
        forged,
    );
    while !flood.is_finished() {
        assert!(
            holds(&lab.n1, VIP) && !holds(&lab.n2, VIP),
            "the VIP moved during the flood"
        );
        assert_eq!(a1.state("web"), Some(State::Master));
        assert_eq!(a2.state("web"), Some(State::Backup));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (sent, took) = flood.stop();
    let total: u64 = sent.values().sum();
    assert_eq!(
        total, PACKETS,
        "the flood could not send everything: {sent:?}"
    );
    eprintln!(
        "flood: {total} packets in {took:?} ({:.0} packets/s)",
        total as f64 / took.as_secs_f64()
    );
    for (node, (agent, (transitions, drops, lost_before))) in
        [&a1, &a2].iter().zip(before).enumerate()
    {
        let node = node + 1;
        let lost = path_drops(&lab, node) - lost_before;
        let delivered = total.saturating_sub(lost);
        // Every packet delivered counted, by some reason (overflow included), once the loop
        // caught up.
        wait_for_within(
            Duration::from_secs(10),
            "every flooded packet counted",
            || agent.dropped_total() - drops >= delivered,
        );
        let counted = agent.dropped_total() - drops;
        let by_reason = agent
            .metrics
            .encode()
            .lines()
            .filter(|line| {
                line.starts_with("kube_vrrp_packets_dropped_total") && !line.ends_with(" 0")
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            (delivered..=total).contains(&counted),
            "n{node} counted {counted} drops for {total} packets sent, {lost} of them dropped by the lab's links: {sent:?}\n{by_reason}"
        );
        let overflow = agent.dropped("overflow");
        for kind in ["ttl", "vrid"] {
            let dropped = agent.dropped(kind);
            let expected = sent[kind];
            assert!(
                dropped <= expected && dropped + overflow + lost >= expected,
                "n{node}: {dropped} {kind} drops for {expected} sent ({overflow} overflowed, {lost} lost on the links)"
            );
        }
        let status = agent.status("web").unwrap();
        assert_eq!(status.transitions, transitions, "n{node} changed state");
        eprintln!(
            "n{node}: {counted} of {total} packets counted ({lost} lost on the lab's links): ttl {}, vrid {}, garbage as length {} / version {} / checksum {} / type {}, overflow {overflow}",
            agent.dropped("ttl"),
            agent.dropped("vrid"),
            agent.dropped("length"),
            agent.dropped("version"),
            agent.dropped("checksum"),
            agent.dropped("type"),
        );
    }
    assert!(holds(&lab.n1, VIP) && !holds(&lab.n2, VIP));
}
