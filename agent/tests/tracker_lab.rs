//! Tracked files never stall the agent or blow up its memory, for real: three instances track
//! a named pipe nobody writes (opening it blocks, like a file on a hung mount), one tracks a
//! 1 GiB file; the agent stays responsive, an untracked instance is elected and keeps its VIP,
//! the stuck and oversized trackers hold their instances in FAULT, and the agent's peak memory
//! stays small; SIGTERM still ends it.
#![allow(clippy::unwrap_used)]

mod lab;

use std::fmt::Write as _;
use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use lab::{BinaryAgent, holds, wait_for_within};

fn virtual_ip(name: &str, vrid: u8, vip: &str, track: &str) -> String {
    format!(
        "apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: {name}
spec:
  addresses: [\"{vip}/24\"]
  virtualRouterID: {vrid}
  advertInterval: 100ms
  interface: eth0
{track}---
"
    )
}

#[test]
fn a_stuck_or_huge_tracked_file_faults_its_own_instance_and_nothing_else() {
    let lab = lab::lab("kvtr");
    let fifo = lab.workdir.join("stuck");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let huge = lab.workdir.join("huge");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut manifests = String::new();
    for (name, vrid, vip) in [
        ("s1", 61, "192.0.2.61"),
        ("s2", 62, "192.0.2.62"),
        ("s3", 63, "192.0.2.63"),
    ] {
        let track = format!(
            "  track:\n    files: [{{path: {}, weight: 0}}]\n",
            fifo.display()
        );
        manifests.push_str(&virtual_ip(name, vrid, vip, &track));
    }
    let track = format!("  track:\n    files: [{{path: {}}}]\n", huge.display());
    manifests.push_str(&virtual_ip("big", 64, "192.0.2.64", &track));
    manifests.push_str(&virtual_ip("web", 51, "192.0.2.50", ""));
    write!(
        manifests,
        "apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{{type: InternalIP, address: 192.0.2.1}}]
"
    )
    .unwrap();
    let mut agent = BinaryAgent::start(&lab.n1, &lab.workdir, "n1", &manifests, &[]);
    let limit = Duration::from_secs(10);
    wait_for_within(limit, "web MASTER holding its VIP", || {
        agent
            .status("web")
            .is_some_and(|web| web.state == State::Master)
            && holds(&lab.n1, "192.0.2.50")
    });
    wait_for_within(
        limit,
        "the stuck and huge trackers' instances in FAULT",
        || {
            ["s1", "s2", "s3", "big"].iter().all(|name| {
                agent
                    .status(name)
                    .is_some_and(|status| status.state == State::Fault)
            })
        },
    );
    // Three more seconds: web keeps advertising (the runtime is not stuck), files are re-read
    // every second.
    let sent = || agent.metric("kube_vrrp_adverts_sent_total", &[("vrrp_instance", "web")]);
    let before = sent();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        sent() >= before + 25,
        "web stopped advertising: {before} -> {}",
        sent()
    );
    let peak = agent.peak_rss_kib();
    assert!(
        peak > 0 && peak < 128 * 1024,
        "the agent's peak RSS is {peak} KiB: a tracked file was read whole"
    );
    eprintln!("agent peak RSS with a 1 GiB tracked file: {peak} KiB");
    // Reads stuck on the pipe do not keep the agent from leaving.
    agent.terminate(Duration::from_secs(8));
    assert!(!holds(&lab.n1, "192.0.2.50"), "SIGTERM left the VIP behind");
}
