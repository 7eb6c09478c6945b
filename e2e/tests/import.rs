//! Migration in the lab (needs root and the agent binary): the golden two-node keepalived pair
//! (`import/tests/data/golden/pair-master-backup`: VRRPv2, PASS, n1 priority 150 with
//! `state MASTER`, n2 100) is imported with `kube-vrrp-agent import`; keepalived keeps running
//! n1 with its own file while the agent runs n2 from the imported manifests. Election, failover
//! when n1 dies and preemption when it comes back must go exactly as they go with keepalived on
//! both nodes, which the same test runs first as the baseline.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{self, Agent};
use kube_vrrp_e2e::daemon::Daemon;
use kube_vrrp_e2e::keepalived::Keepalived;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Disruption, PROBE_PERIOD, Running};
use kube_vrrp_e2e::{InstanceSpec, Lab, LabSpec, Version};

/// How long the agent's published state may trail what the client already saw.
const STATE_SETTLES: Duration = Duration::from_secs(2);

fn pair_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../import/tests/data/golden/pair-master-backup")
}

fn conf(node: &str) -> String {
    std::fs::read_to_string(pair_dir().join(format!("{node}.conf"))).unwrap()
}

/// The instance the pair's files describe, as the lab's probes need it.
fn instance() -> InstanceSpec {
    let mut spec = InstanceSpec::new("VI_1", 51, vec![addressing::vip(Family::V4, 0)]);
    spec.version = Version::V2;
    spec.priorities = vec![150, 100];
    spec.password = Some("labpass".into());
    spec
}

/// What runs on n2.
enum Second<'a> {
    /// keepalived with n2's own file (the baseline).
    Keepalived,
    /// The agent with the imported manifests.
    Agent(&'a str),
}

/// What the client saw.
#[derive(Debug)]
struct Outcome {
    master: usize,
    elected_after: Duration,
    new_master: usize,
    failover: Duration,
    back_after: Duration,
}

fn agent_state(running: &Running) -> Option<(String, Option<String>)> {
    match running.daemons.get(1) {
        Some(Some(Daemon::Agent(a))) => {
            let s = a.instance(&running.lab, "vi-1").unwrap();
            Some((s.state.clone(), s.master_address.clone()))
        }
        _ => None,
    }
}

/// The agent's published state and master once it reads `want` (`None` when n2 is keepalived).
/// The agent publishes a transition a moment after it acts on it (the VIP, the adverts), so a
/// state read right after the client saw the change may still show the one before.
fn agent_settles_on(
    running: &Running,
    want: &str,
    within: Duration,
) -> Option<(String, Option<String>)> {
    let deadline = Instant::now() + within;
    loop {
        let (state, master_address) = agent_state(running)?;
        if state == want {
            return Some((state, master_address));
        }
        assert!(
            Instant::now() < deadline,
            "the agent still reports {state}, not {want}, {within:?} later"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(second: &Second<'_>) -> Outcome {
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: false,
    })
    .unwrap();
    let spec = instance();
    let vip = spec.first_vip().unwrap();
    let sniffer = lab.sniff().unwrap();
    let prober = lab.probe(vip, PROBE_PERIOD).unwrap();
    let started = Instant::now();
    let n1 = Keepalived::start_with_config(&lab, 1, &conf("n1")).unwrap();
    let n2 = match second {
        Second::Keepalived => {
            Daemon::Keepalived(Keepalived::start_with_config(&lab, 2, &conf("n2")).unwrap())
        }
        Second::Agent(yaml) => {
            let dir = lab.workdir().join("imported");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("imported.yaml"), yaml).unwrap();
            Daemon::Agent(
                Agent::start_with_manifests(&agent::binary().unwrap(), &lab, 2, &dir).unwrap(),
            )
        }
    };
    let mut running = Running {
        prober,
        sniffer,
        daemons: vec![Some(Daemon::Keepalived(n1)), Some(n2)],
        instance: spec,
        lab,
    };

    // Election: n1 (150, state MASTER) holds the VIP; the agent, if any, follows it.
    let master = running.wait_for_master(Duration::from_secs(20)).unwrap();
    let mac = running.lab.node_mac(master).unwrap();
    let elected = running
        .prober
        .wait_for_reply(started, Duration::from_secs(1), |m| m == mac)
        .unwrap();
    if let Some((_, master_address)) = agent_settles_on(&running, "BACKUP", STATE_SETTLES) {
        assert_eq!(
            master_address.as_deref(),
            Some(addressing::node_ip(1, Family::V4).to_string().as_str())
        );
    }

    // n1 dies without a word: n2 takes over after its Master_Down_Interval.
    let (failover, new_master) = running
        .fail_over(master, Disruption::Death, Duration::from_secs(10))
        .unwrap();
    agent_settles_on(&running, "MASTER", STATE_SETTLES);

    // n1 comes back (without a VIP left from before, as after a reboot) and preempts.
    if running.lab.holds(1, vip).unwrap() {
        running.lab.remove_address(1, vip).unwrap();
    }
    running.lab.heal(1).unwrap();
    let restarted = Instant::now();
    running.daemons[0] = Some(Daemon::Keepalived(
        Keepalived::start_with_config(&running.lab, 1, &conf("n1")).unwrap(),
    ));
    let mac1 = running.lab.node_mac(1).unwrap();
    let back = running
        .prober
        .wait_for_reply(restarted, Duration::from_secs(10), |m| m == mac1)
        .expect("n1 never took the VIP back");
    assert_eq!(
        running
            .lab
            .wait_for_single_holder(vip, Duration::from_secs(5))
            .unwrap(),
        1
    );
    // keepalived checked n2's adverts (password, addresses, interval) and took them for what
    // they are: a lower priority it may preempt; it refused none.
    if let Some(Some(Daemon::Keepalived(k))) = running.daemons.first() {
        let log = k.log();
        let heard = format!(
            "(VI_1) received lower priority (100) advert from {}",
            addressing::node_ip(2, Family::V4)
        );
        assert!(log.contains(&heard), "keepalived never heard n2:\n{log}");
        let refused: Vec<&str> = log
            .lines()
            .filter(|l| {
                ["invalid", "mismatch", "not present", "bad ", "wrong"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .collect();
        assert!(
            refused.is_empty(),
            "keepalived refused adverts: {refused:?}"
        );
    }
    agent_settles_on(&running, "BACKUP", Duration::from_secs(5));
    Outcome {
        master,
        elected_after: elected.at.duration_since(started),
        new_master,
        failover: failover.duration(),
        back_after: back.at.duration_since(restarted),
    }
}

/// `kube-vrrp-agent import` of the pair, as a user runs it: the manifests it prints.
fn import_pair() -> String {
    let output = Command::new(agent::binary().unwrap())
        .args([
            "import", "--node", "n1", "--node", "n2", "n1.conf", "n2.conf",
        ])
        .current_dir(pair_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "import reported items:\n{stderr}"
    );
    assert!(
        stderr.contains(
            "import: 1 VirtualIP, 0 VirtualServers, 2 Nodes, 1 Secret; report: 0 errors, 0 warnings"
        ),
        "{stderr}"
    );
    String::from_utf8(output.stdout).unwrap()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[test]
fn an_imported_agent_next_to_keepalived_elects_fails_over_and_yields_like_keepalived() {
    require_root();
    let yaml = import_pair();
    let baseline = run(&Second::Keepalived);
    let mixed = run(&Second::Agent(&yaml));
    let expected = instance().master_down_interval(100);
    eprintln!("                 keepalived+keepalived   keepalived+agent");
    eprintln!(
        "elected (n{} / n{})    {:>12}   {:>12}",
        baseline.master,
        mixed.master,
        ms(baseline.elected_after),
        ms(mixed.elected_after)
    );
    eprintln!(
        "failover to n{} / n{} {:>12}   {:>12}   (Master_Down_Interval {})",
        baseline.new_master,
        mixed.new_master,
        ms(baseline.failover),
        ms(mixed.failover),
        ms(expected)
    );
    eprintln!(
        "n1 back after        {:>12}   {:>12}",
        ms(baseline.back_after),
        ms(mixed.back_after)
    );

    for (what, o) in [
        ("keepalived+keepalived", &baseline),
        ("keepalived+agent", &mixed),
    ] {
        assert_eq!(o.master, 1, "{what}: n1 (150) must win the election: {o:?}");
        assert_eq!(o.new_master, 2, "{what}: n2 must take over: {o:?}");
        assert!(
            o.failover + Duration::from_millis(40) >= expected
                && o.failover <= expected + Duration::from_millis(300),
            "{what}: failover took {:?}, Master_Down_Interval is {expected:?}",
            o.failover
        );
        assert!(
            o.back_after <= Duration::from_secs(5),
            "{what}: n1 took {:?} to come back",
            o.back_after
        );
    }
    let apart = |a: Duration, b: Duration| a.abs_diff(b);
    assert!(
        apart(baseline.failover, mixed.failover) <= Duration::from_millis(300),
        "failover: {baseline:?} vs {mixed:?}"
    );
    assert!(
        apart(baseline.back_after, mixed.back_after) <= Duration::from_millis(500),
        "preempt back: {baseline:?} vs {mixed:?}"
    );
}
