//! `useVirtualMAC`, seen from the client namespace: the MASTER's VIP answers ARP and Neighbor
//! Discovery from the RFC virtual MAC (00:00:5e:00:01:{VRID}, IPv6 00:00:5e:00:02:{VRID}) and
//! nothing else, its gratuitous ARPs and adverts leave from that MAC, the node's own address
//! keeps its own MAC, and when the agent stops the macvlan goes and the parent's ARP settings
//! are as they were. With keepalived's `use_vmac` as the peer, a failover keeps the same MAC.
#![allow(clippy::unwrap_used)]

mod lab;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_e2e::netns::Netns;
use lab::{Agent, Keepalived, config, holds, spec, wait_for};

const VMAC4: &str = "00:00:5e:00:01:33";
const VMAC6: &str = "00:00:5e:00:02:3d";

/// The MACs that answered `count` ARP requests for `address` from the client. arping's exit
/// status is not read: it is 1 both when nothing answered and when more replies came than
/// probes went out (two holders of the address), and the set of MACs tells those apart.
fn arp_macs(client: &Netns, address: &str, count: &str) -> BTreeSet<String> {
    let out = client
        .command(&["arping", "-c", count, "-w", "3", "-I", "eth0", address])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("reply from"))
        .filter_map(|line| {
            let start = line.find('[')?;
            let end = line.find(']')?;
            Some(line[start + 1..end].to_lowercase())
        })
        .collect()
}

fn neighbor_mac(client: &Netns, address: &str) -> Option<String> {
    let _ = client.exec(&["ping", "-c", "1", "-W", "1", address]);
    let out = client
        .exec(&["ip", "-6", "neigh", "show", address, "dev", "eth0"])
        .ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_lowercase)
}

fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec(&["sysctl", "-n", key]).unwrap().trim().to_owned()
}

#[test]
fn the_vip_answers_from_the_rfc_virtual_mac_and_the_macvlan_goes_with_the_agent() {
    let lab = lab::lab("kvvm");
    let vmac = |mut spec: kube_vrrp_agent::driver::InstanceSpec| {
        spec.use_virtual_mac = true;
        spec
    };
    // Adverts and GARPs seen from the client, with their source MACs.
    let capture = lab
        .client
        .command(&[
            "timeout",
            "6",
            "tcpdump",
            "-l",
            "-nn",
            "-e",
            "-i",
            "eth0",
            "-c",
            "20",
            "ip proto 112 or arp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut a1 = Agent::start(
        &lab.n1,
        config(vec![
            vmac(spec("web", 51, "192.0.2.50/24", 150)),
            vmac(spec("web6", 61, "2001:db8::50/64", 150)),
        ]),
    );
    wait_for("n1 MASTER of both", || {
        a1.state("web") == Some(State::Master) && a1.state("web6") == Some(State::Master)
    });
    let line = lab
        .n1
        .exec(&["ip", "-d", "-o", "link", "show", "vrrp.51"])
        .unwrap();
    assert!(
        line.contains(VMAC4) && line.contains("macvlan mode private"),
        "vrrp.51 is not a private macvlan with the virtual MAC: {line}"
    );
    assert!(
        holds_on(&lab.n1, "vrrp.51", "192.0.2.50"),
        "the VIP is not on the macvlan"
    );
    assert!(!holds(&lab.n1, "192.0.2.50"), "the VIP is on eth0 too");
    assert_eq!(sysctl(&lab.n1, "net.ipv4.conf.eth0.arp_ignore"), "1");

    assert_eq!(
        arp_macs(&lab.client, "192.0.2.50", "3"),
        BTreeSet::from([VMAC4.to_owned()]),
        "the VIP must answer ARP from the virtual MAC alone"
    );
    let own = lab
        .n1
        .exec(&["cat", "/sys/class/net/eth0/address"])
        .unwrap();
    assert_eq!(
        arp_macs(&lab.client, "192.0.2.1", "1"),
        BTreeSet::from([own.trim().to_owned()]),
        "the node's own address must keep its own MAC"
    );
    assert_eq!(
        neighbor_mac(&lab.client, "2001:db8::50").as_deref(),
        Some(VMAC6)
    );
    assert!(
        lab.client
            .exec(&["ping", "-c", "1", "-W", "1", "192.0.2.50"])
            .is_ok()
    );

    let seen = String::from_utf8_lossy(&capture.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        seen.lines()
            .any(|l| l.contains(&format!("{VMAC4} > 01:00:5e:00:00:12")) && l.contains("VRRP")),
        "no advert from {VMAC4} seen: {seen}"
    );
    assert!(
        seen.lines().any(|l| {
            l.contains(&format!("{VMAC4} > ff:ff:ff:ff:ff:ff"))
                && l.contains("ARP")
                && l.contains("192.0.2.50")
        }),
        "no gratuitous ARP from {VMAC4} seen: {seen}"
    );

    a1.stop();
    assert!(
        lab.n1.exec(&["ip", "link", "show", "vrrp.51"]).is_err(),
        "the macvlan outlived the agent"
    );
    assert_eq!(sysctl(&lab.n1, "net.ipv4.conf.eth0.arp_ignore"), "0");
    assert_eq!(sysctl(&lab.n1, "net.ipv4.conf.eth0.arp_filter"), "0");
}

fn holds_on(ns: &Netns, interface: &str, address: &str) -> bool {
    ns.exec(&["ip", "-o", "addr", "show", "dev", interface])
        .is_ok_and(|out| out.contains(&format!("{address}/")))
}

#[test]
fn a_failover_to_keepalived_with_use_vmac_keeps_the_virtual_mac() {
    let lab = lab::lab("kvvm");
    let mut web = spec("web", 51, "192.0.2.50/24", 150);
    web.use_virtual_mac = true;
    let mut a1 = Agent::start(&lab.n1, config(vec![web]));
    // keepalived starts once the agent is MASTER: started together, each may reach its
    // Master_Down timer before hearing the other, and both hold the VIP for an advert.
    wait_for("n1 MASTER", || a1.state("web") == Some(State::Master));
    let config = Keepalived::config(51, 100, "192.0.2.50/24")
        .replace("    advert_int 0.1\n", "    advert_int 0.1\n    use_vmac\n");
    let k2 = Keepalived::start(&lab.n2, &lab.workdir, "n2", &config);
    wait_for("keepalived BACKUP on n2, its vrrp.51 up", || {
        k2.entered_backup() && lab.n2.exec(&["ip", "link", "show", "vrrp.51"]).is_ok()
    });
    assert!(!holds_on(&lab.n2, "vrrp.51", "192.0.2.50"));
    assert_eq!(
        arp_macs(&lab.client, "192.0.2.50", "2"),
        BTreeSet::from([VMAC4.to_owned()])
    );
    a1.stop();
    wait_for("keepalived MASTER on n2", || {
        lab.n2
            .exec(&["ip", "-o", "addr", "show", "dev", "vrrp.51"])
            .is_ok_and(|out| out.contains("192.0.2.50/"))
    });
    lab.client
        .exec(&["ip", "neigh", "flush", "dev", "eth0"])
        .unwrap();
    assert_eq!(
        arp_macs(&lab.client, "192.0.2.50", "2"),
        BTreeSet::from([VMAC4.to_owned()])
    );
}
