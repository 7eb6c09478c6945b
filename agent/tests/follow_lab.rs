//! The node changes under the agent, for real: a MASTER renumbered (new address added, old one
//! removed) keeps sending and stays the only holder, with keepalived as its BACKUP; a VIP
//! removed by hand is put back and reported; an interface deleted and created again (new index)
//! is followed, and its node can take over afterwards; an IPv6 link-local source that changes
//! is followed too.
#![allow(clippy::unwrap_used)]

mod lab;

use std::net::IpAddr;
use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use lab::{Agent, Keepalived, config, holds, holds_for, spec, wait_for, wire};

const VIP: &str = "192.0.2.50";

#[test]
fn a_renumbered_master_keeps_advertising_from_its_new_address_and_stays_the_only_holder() {
    let lab = lab::lab("kvfo");
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    // keepalived starts once n1 is MASTER: started together, both may reach Master_Down
    // before hearing each other and hold the VIP for an advert.
    wait_for("n1 MASTER holding the VIP", || {
        a1.state("web") == Some(State::Master) && holds(&lab.n1, VIP)
    });
    let k2 = Keepalived::start(
        &lab.n2,
        &lab.workdir,
        "n2",
        &Keepalived::config(51, 100, "192.0.2.50/24"),
    );
    wait_for("keepalived on n2 in BACKUP", || k2.entered_backup());
    holds_for(
        Duration::from_millis(500),
        "keepalived on n2 BACKUP",
        || !holds(&lab.n2, VIP),
    );
    // DHCP-style renumbering: the new address first, then the old one goes.
    lab.n1
        .exec(&["ip", "addr", "add", "192.0.2.11/24", "dev", "eth0"])
        .unwrap();
    lab.n1
        .exec(&["ip", "addr", "del", "192.0.2.1/24", "dev", "eth0"])
        .unwrap();
    let new: IpAddr = "192.0.2.11".parse().unwrap();
    wait_for("n1 speaking from its new address", || {
        a1.status("web")
            .is_some_and(|web| web.master_address == Some(new))
    });
    // Ten Master_Down_Intervals of keepalived: it keeps hearing n1 and never takes the VIP.
    holds_for(
        Duration::from_secs(4),
        "one holder of the VIP (n1), n1 MASTER",
        || holds(&lab.n1, VIP) && !holds(&lab.n2, VIP) && a1.state("web") == Some(State::Master),
    );
    assert!(
        a1.metric("kube_vrrp_adverts_sent_total", &[("vrrp_instance", "web")]) > 40,
        "n1 did not keep advertising"
    );
}

#[test]
fn a_vip_removed_by_hand_from_the_master_is_put_back_and_reported() {
    let lab = lab::lab("kvfo");
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    wait_for("n1 MASTER holding the VIP", || {
        a1.state("web") == Some(State::Master) && holds(&lab.n1, VIP)
    });
    lab.n1
        .exec(&["ip", "addr", "del", "192.0.2.50/24", "dev", "eth0"])
        .unwrap();
    wait_for("the VIP back, reported", || {
        holds(&lab.n1, VIP)
            && a1.metric("kube_vrrp_vip_restored_total", &[("vrrp_instance", "web")]) == 1
            && a1.status("web").is_some_and(|web| {
                web.message
                    .is_some_and(|message| message.contains("removed by something else"))
            })
    });
    assert_eq!(a1.state("web"), Some(State::Master));
    assert_eq!(
        a1.status("web").unwrap().vips,
        vec!["192.0.2.50/24".parse::<ipnet::IpNet>().unwrap()]
    );
}

#[test]
fn an_interface_created_again_with_a_new_index_is_followed_and_its_node_can_take_over() {
    let lab = lab::lab("kvfo");
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    let mut k2 = Keepalived::start(
        &lab.n2,
        &lab.workdir,
        "n2",
        &Keepalived::config(51, 150, "192.0.2.50/24"),
    );
    wait_for("n1 BACKUP behind keepalived", || {
        a1.state("web") == Some(State::Backup) && holds(&lab.n2, VIP)
    });
    let old_index = lab
        .n1
        .exec(&["cat", "/sys/class/net/eth0/ifindex"])
        .unwrap();
    // A bond or a driver reloaded: eth0 goes away and comes back under the same name.
    lab.n1.exec(&["ip", "link", "del", "eth0"]).unwrap();
    wait_for("n1 in FAULT without its interface", || {
        a1.state("web") == Some(State::Fault)
    });
    wire(&lab.n1, &lab.switch, "p1", "192.0.2.1/24", "2001:db8::1/64");
    let new_index = lab
        .n1
        .exec(&["cat", "/sys/class/net/eth0/ifindex"])
        .unwrap();
    assert_ne!(
        old_index, new_index,
        "the lab did not give eth0 a new index"
    );
    wait_for("n1 BACKUP again on the new eth0", || {
        a1.state("web") == Some(State::Backup)
    });
    // keepalived's node dies (its port cut first: no goodbye): n1 takes over.
    lab.switch
        .exec(&["ip", "link", "set", "p2", "down"])
        .unwrap();
    k2.kill();
    wait_for("n1 MASTER holding the VIP", || {
        a1.state("web") == Some(State::Master) && holds(&lab.n1, VIP)
    });
}

#[test]
fn an_ipv6_master_follows_a_new_link_local_address_and_its_backup_hears_it() {
    let lab = lab::lab("kvfo");
    let a1 = Agent::start(
        &lab.n1,
        config(vec![spec("web6", 61, "2001:db8::50/64", 150)]),
    );
    let a2 = Agent::start(
        &lab.n2,
        config(vec![spec("web6", 61, "2001:db8::50/64", 100)]),
    );
    wait_for("n1 MASTER, n2 BACKUP following it", || {
        a1.state("web6") == Some(State::Master)
            && a2.state("web6") == Some(State::Backup)
            && a2
                .status("web6")
                .is_some_and(|s| s.master_address.is_some())
    });
    let old = a2.status("web6").unwrap().master_address.unwrap();
    lab.n1
        .exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fe80::99/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .unwrap();
    lab.n1
        .exec(&[
            "ip",
            "-6",
            "addr",
            "del",
            &format!("{old}/64"),
            "dev",
            "eth0",
        ])
        .unwrap();
    let new: IpAddr = "fe80::99".parse().unwrap();
    wait_for("n2 hearing n1 from its new link-local address", || {
        a2.status("web6")
            .is_some_and(|web| web.master_address == Some(new))
    });
    holds_for(Duration::from_secs(1), "n1 MASTER, n2 BACKUP", || {
        a1.state("web6") == Some(State::Master) && a2.state("web6") == Some(State::Backup)
    });
}
