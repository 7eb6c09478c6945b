//! The agents' memory in cluster mode (`cluster-bench`): in a fresh cluster lab, 255
//! VirtualIPs (every VRID of one interface) on the three nodes, n1 preferred; once every one
//! has its MASTER and the agents have settled, each agent's resident memory, split into its
//! own code and data (file pages) and what it allocated (anonymous pages, the heap among
//! them), beside the size of the VrrpNode it watches (the object its watch cache holds).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube_vrrp_e2e::cluster::user::poll;
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec, VIP_NODE_LABEL};
use serde_json::{Value, json};

/// VirtualIPs created: one per VRID of `eth0`.
pub const VIRTUAL_IPS: u16 = 255;
/// How long every VirtualIP may take to show its MASTER.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Past the elections: GARPs sent, status written, start-up allocations settled.
const SETTLE: Duration = Duration::from_secs(30);

/// VirtualIP `vrid` of the benchmark: advert 1 s, n1 > n2 > n3, an address of its own on a
/// range no lab host uses.
fn virtual_ip(vrid: u16) -> Value {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": format!("agent-{vrid:03}")},
        "spec": {
            "addresses": [format!("10.201.{}.{}/16", vrid / 250, 1 + vrid % 250)],
            "interface": "eth0",
            "virtualRouterID": vrid,
            "advertInterval": "1s",
            "nodeSelector": {"matchLabels": {VIP_NODE_LABEL: "true"}},
            "priorities": [{"nodeName": "n1", "priority": 150}, {"nodeName": "n2", "priority": 100}, {"nodeName": "n3", "priority": 50}],
        },
    })
}

/// Resident memory of one process, in KiB, from `/proc/PID/status` and `/proc/PID/smaps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Resident {
    rss: u64,
    hwm: u64,
    /// Anonymous pages: heap, thread stacks, other allocations.
    anon: u64,
    /// File pages: the binary's code and data, shared libraries.
    file: u64,
    /// The `[heap]` mapping (glibc's main arena).
    heap: u64,
    threads: u64,
}

impl Resident {
    fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .with_context(|| format!("{name} in /proc/{pid}/status"))
        };
        Ok(Self {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            heap: heap_rss_kib(&smaps),
            threads: field("Threads:")?,
        })
    }
}

/// The `Rss` of the `[heap]` mapping of a `/proc/PID/smaps` text, in KiB (0 without one).
fn heap_rss_kib(smaps: &str) -> u64 {
    let mut in_heap = false;
    for line in smaps.lines() {
        if is_mapping_header(line) {
            in_heap = line.ends_with("[heap]");
        } else if in_heap && let Some(rss) = line.strip_prefix("Rss:") {
            return rss
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    0
}

/// Whether an smaps line opens a mapping (`start-end perms ...`, addresses in hex).
fn is_mapping_header(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .and_then(|range| range.split_once('-'))
        .is_some_and(|(start, end)| {
            u64::from_str_radix(start, 16).is_ok() && u64::from_str_radix(end, 16).is_ok()
        })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The agents' names and pids.
fn agents(cluster: &mut Cluster) -> anyhow::Result<Vec<(String, u32)>> {
    cluster
        .agents()
        .iter()
        .map(|p| Ok((p.name().to_owned(), p.pid().context("agent not running")?)))
        .collect()
}

/// The node an agent pod runs on: the lab names agent pods after their node.
fn node_of(pod: &str) -> &str {
    pod.rsplit('-').next().unwrap_or(pod)
}

/// Runs the benchmark in a cluster lab of its own and prints its table.
pub fn run() -> anyhow::Result<()> {
    let mut cluster = Cluster::up(&ClusterSpec::default())?;
    let user = cluster.user();
    std::thread::sleep(Duration::from_secs(10));
    let pods = agents(&mut cluster)?;
    let before: Vec<Resident> = pods
        .iter()
        .map(|(_, pid)| Resident::read(*pid))
        .collect::<anyhow::Result<_>>()?;
    let list: Vec<Value> = (1..=VIRTUAL_IPS).map(virtual_ip).collect();
    let started = Instant::now();
    user.apply(&json!({"apiVersion": "v1", "kind": "List", "items": list}).to_string())?;
    let mastered = poll(
        "every VirtualIP MASTER on n1",
        TIMEOUT,
        Duration::from_secs(2),
        || {
            let rows = user.get_vips()?;
            let on_n1 = rows
                .iter()
                .filter(|r| r.get("MASTER").map(String::as_str) == Some("n1"))
                .count();
            Ok((on_n1 == usize::from(VIRTUAL_IPS)).then(|| started.elapsed()))
        },
    )?;
    std::thread::sleep(SETTLE);
    let vrrp_node_bytes = |node: &str| -> anyhow::Result<usize> {
        Ok(user
            .kubectl()
            .run(&["get", "vrrpnode", node, "-o", "json"])?
            .len())
    };
    println!(
        "\nagents in cluster mode, {VIRTUAL_IPS} VirtualIPs (VRIDs 1–255 on eth0, advert 1 s, n1 > n2 > n3), all MASTER on n1 after {:.1} s, read {} s later:\n",
        mastered.as_secs_f64(),
        SETTLE.as_secs()
    );
    println!(
        "| agent | role | VrrpNode (JSON) | RSS before the VirtualIPs | RSS | anonymous (heap) | file (code, libraries) | VmHWM | threads |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for ((name, pid), before) in pods.iter().zip(&before) {
        let now = Resident::read(*pid)?;
        let node = node_of(name);
        let role = if node == "n1" { "MASTER" } else { "BACKUP" };
        println!(
            "| {name} | {role} | {:.0} KiB | {:.1} MiB | {:.1} MiB | {:.1} MiB ({:.1}) | {:.1} MiB | {:.1} MiB | {} |",
            vrrp_node_bytes(node)? as f64 / 1024.0,
            mib(before.rss),
            mib(now.rss),
            mib(now.anon),
            mib(now.heap),
            mib(now.file),
            mib(now.hwm),
            now.threads
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_ips_use_every_vrid_once_with_distinct_addresses() {
        let vips: Vec<Value> = (1..=VIRTUAL_IPS).map(virtual_ip).collect();
        let vrids: std::collections::BTreeSet<u64> = vips
            .iter()
            .filter_map(|v| v["spec"]["virtualRouterID"].as_u64())
            .collect();
        let addresses: std::collections::BTreeSet<&str> = vips
            .iter()
            .filter_map(|v| v["spec"]["addresses"][0].as_str())
            .collect();
        assert_eq!(vrids, (1..=255).collect());
        assert_eq!(addresses.len(), 255);
    }

    #[test]
    fn the_heap_is_read_from_its_own_mapping_only() {
        let smaps = "\
55d0c0000000-55d0c0100000 r-xp 00000000 08:01 123 /usr/bin/agent
Size:               1024 kB
Rss:                 512 kB
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0                          [heap]
Size:               4096 kB
Rss:                3072 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Size:               1024 kB
Rss:                 256 kB
";
        assert_eq!(heap_rss_kib(smaps), 3072);
        assert_eq!(heap_rss_kib("Rss: 5 kB\n"), 0);
    }
}
