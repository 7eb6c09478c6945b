//! The lab harness itself: wiring, cuts, partitions, and the VIP prober (needs root).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::netns::{self, require_root};
use kube_vrrp_e2e::{Lab, LabSpec};

fn namespaces() -> String {
    netns::run(&["ip", "netns", "list"]).unwrap()
}

#[test]
fn client_reaches_every_node_over_both_families_and_drop_removes_every_namespace() {
    require_root();
    let names: Vec<String>;
    {
        let lab = Lab::new(LabSpec {
            nodes: 3,
            ipv6: true,
        })
        .unwrap();
        names = lab
            .node_numbers()
            .map(|n| lab.node_ns(n).unwrap().name().to_owned())
            .chain([
                lab.client().name().to_owned(),
                lab.switch().name().to_owned(),
            ])
            .collect();
        for n in lab.node_numbers() {
            for family in [Family::V4, Family::V6] {
                let addr = addressing::node_ip(n, family);
                assert!(lab.ping(addr), "client cannot ping n{n} at {addr}");
            }
        }
        assert!(lab.workdir().is_dir());
        let listed = namespaces();
        assert!(
            names.iter().all(|n| listed.contains(n.as_str())),
            "{listed}"
        );
    }
    let listed = namespaces();
    let left: Vec<&String> = names
        .iter()
        .filter(|n| listed.contains(n.as_str()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_cut_node_is_unreachable_until_healed() {
    require_root();
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: false,
    })
    .unwrap();
    let n2 = addressing::node_ip(2, Family::V4);
    assert!(lab.ping(n2));
    lab.cut(2).unwrap();
    assert!(!lab.ping(n2), "n2 still answers after its port was cut");
    assert!(
        lab.ping(addressing::node_ip(1, Family::V4)),
        "cutting n2 cut n1 too"
    );
    lab.heal(2).unwrap();
    // The port needs a moment to forward again after coming up.
    let healed = (0..20).any(|_| lab.ping(n2));
    assert!(healed, "n2 unreachable after heal");
}

#[test]
fn partitioned_nodes_cannot_reach_each_other_but_the_client_reaches_all() {
    require_root();
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: false,
    })
    .unwrap();
    let n1 = lab.node_ns(1).unwrap();
    let n2_ip = addressing::node_ip(2, Family::V4).to_string();
    let ping_n2_from_n1 = || {
        n1.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", &n2_ip])
            .is_ok()
    };
    assert!(ping_n2_from_n1());
    lab.partition().unwrap();
    assert!(!ping_n2_from_n1(), "n1 reaches n2 across the partition");
    for n in lab.node_numbers() {
        assert!(
            lab.ping(addressing::node_ip(n, Family::V4)),
            "client lost n{n}"
        );
    }
    lab.heal_partition().unwrap();
    assert!(ping_n2_from_n1(), "partition not healed");
}

#[test]
fn prober_records_which_mac_answers_for_an_address_as_it_moves() {
    require_root();
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: true,
    })
    .unwrap();
    for family in [Family::V4, Family::V6] {
        let vip: IpAddr = addressing::vip(family, 0).addr();
        let cidr = addressing::vip(family, 0).to_string();
        let prober = lab.probe(vip, Duration::from_millis(1)).unwrap();
        let add = |n: usize| {
            lab.node_ns(n)
                .unwrap()
                .exec(&["ip", "addr", "add", &cidr, "dev", "eth0", "nodad"])
                .unwrap()
        };
        let start = Instant::now();
        add(1);
        let mac1 = lab.node_mac(1).unwrap();
        let first = prober
            .wait_for_reply(start, Duration::from_secs(3), |m| m == mac1)
            .unwrap_or_else(|| panic!("{family:?}: no answer from n1"));
        lab.remove_address(1, vip).unwrap();
        let moved = Instant::now();
        add(2);
        let mac2 = lab.node_mac(2).unwrap();
        let second = prober
            .wait_for_reply(moved, Duration::from_secs(3), |m| m == mac2)
            .unwrap_or_else(|| panic!("{family:?}: no answer from n2"));
        assert!(second.at > first.at);
        // Probing every millisecond: a 100 ms window holds dozens of answers.
        std::thread::sleep(Duration::from_millis(100));
        let recent = prober.replies().iter().filter(|r| r.at > second.at).count();
        assert!(recent >= 20, "{family:?}: only {recent} answers in 100 ms");
        assert_eq!(lab.holders(vip).unwrap(), vec![2]);
        lab.remove_address(2, vip).unwrap();
    }
}
