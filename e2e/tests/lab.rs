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
    assert!(lab.wait_reachable(n2, Duration::from_secs(5)));
    lab.cut(2).unwrap();
    assert!(!lab.ping(n2), "n2 still answers after its port was cut");
    assert!(
        lab.wait_reachable(addressing::node_ip(1, Family::V4), Duration::from_secs(5)),
        "cutting n2 cut n1 too"
    );
    lab.heal(2).unwrap();
    // The port needs a moment to forward again after coming up.
    assert!(
        lab.wait_reachable(n2, Duration::from_secs(10)),
        "n2 unreachable after heal"
    );
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
    assert!((0..5).any(|_| ping_n2_from_n1()), "n1 cannot reach n2");
    lab.partition().unwrap();
    assert!(!ping_n2_from_n1(), "n1 reaches n2 across the partition");
    for n in lab.node_numbers() {
        assert!(
            lab.wait_reachable(addressing::node_ip(n, Family::V4), Duration::from_secs(5)),
            "client lost n{n}"
        );
    }
    lab.heal_partition().unwrap();
    assert!((0..5).any(|_| ping_n2_from_n1()), "partition not healed");
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

#[test]
fn agent_runner_reports_an_agent_that_exits_at_start_with_its_output() {
    require_root();
    let lab = Lab::new(LabSpec {
        nodes: 1,
        ipv6: false,
    })
    .unwrap();
    let spec = kube_vrrp_e2e::InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
    // `sh run --node n1 ...` fails at once trying to open a script named "run": a stand-in for
    // an agent that dies during start-up.
    let err = kube_vrrp_e2e::agent::Agent::start_binary(
        std::path::Path::new("/bin/sh"),
        &lab,
        1,
        &[spec],
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("kube-vrrp-agent on n1 exited early"),
        "{text}"
    );
    assert!(
        text.contains("run"),
        "the agent's output is missing from: {text}"
    );
    let manifests = lab.workdir().join("agent-n1/manifests/lab.yaml");
    let yaml = std::fs::read_to_string(&manifests).unwrap();
    assert!(
        yaml.contains("kind: VirtualIP") && yaml.contains("kind: Node"),
        "{yaml}"
    );
}

#[test]
fn a_panic_inside_a_lab_leaves_no_namespace_workdir_or_process_behind() {
    require_root();
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let lab = Lab::new(LabSpec {
            nodes: 1,
            ipv6: false,
        })
        .unwrap();
        let spec =
            kube_vrrp_e2e::InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
        let keepalived = kube_vrrp_e2e::keepalived::Keepalived::start(&lab, 1, &[spec]).unwrap();
        let pids = netns::run(&["ip", "netns", "pids", lab.node_ns(1).unwrap().name()]).unwrap();
        tx.send((
            vec![
                lab.node_ns(1).unwrap().name().to_owned(),
                lab.client().name().to_owned(),
                lab.switch().name().to_owned(),
            ],
            lab.workdir().to_owned(),
            pids,
        ))
        .unwrap();
        let _keep = keepalived;
        panic!("a scenario fails while keepalived runs");
    })
    .join();
    assert!(outcome.is_err(), "the scenario thread should have panicked");
    let (names, workdir, pids) = rx.recv().unwrap();
    assert!(
        !pids.trim().is_empty(),
        "keepalived was not running inside the node"
    );
    let listed = namespaces();
    assert!(
        names.iter().all(|n| !listed.contains(n.as_str())),
        "left behind: {listed}"
    );
    assert!(!workdir.exists(), "{} left behind", workdir.display());
    // SIGKILLed processes vanish once reaped; give that a moment. A zombie is dead already.
    for pid in pids.split_whitespace() {
        let stat = format!("/proc/{pid}/stat");
        let gone = || std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            gone(),
            "process {pid} survived: {:?}",
            std::fs::read_to_string(&stat)
        );
    }
}

#[test]
fn the_wake_floor_readers_wake_as_their_daemons_do_and_leave_no_namespace() {
    use kube_vrrp_e2e::wake_cost::{self, Reader};
    require_root();
    let interval = Duration::from_millis(100);
    let costs = wake_cost::measure(&Reader::ALL, interval, Duration::from_secs(2)).unwrap();
    let of = |reader| *costs.iter().find(|cost| cost.reader == reader).unwrap();
    let (each, deadline, bare) = (
        of(Reader::EachDatagram),
        of(Reader::AtDeadline),
        of(Reader::BareDeadline),
    );
    // Twenty datagrams in two seconds: keepalived's loop wakes for each one and reads it.
    assert!(
        (18..=22).contains(&each.datagrams),
        "datagrams read: {each:?}"
    );
    assert!(each.wakes.abs_diff(each.datagrams) <= 1, "{each:?}");
    // The agent's loop sleeps 311 ms at a time and takes three at a wake-up.
    let per_wake = deadline.datagrams as f64 / deadline.wakes as f64;
    assert!((2.5..=4.0).contains(&per_wake), "{deadline:?}");
    assert!((6..=8).contains(&deadline.wakes), "{deadline:?}");
    assert_eq!(bare.datagrams, 0, "{bare:?}");
    assert!(
        bare.wakes.abs_diff(deadline.wakes) <= 1,
        "{bare:?} against {deadline:?}"
    );
    for cost in [each, deadline, bare] {
        assert!(cost.run > Duration::ZERO, "{cost:?}");
        assert!(cost.window >= Duration::from_secs(2), "{cost:?}");
    }
    let ours = format!("kvwake{}x", std::process::id());
    assert!(!namespaces().contains(&ours), "{}", namespaces());
}
