//! cluster-bench (`make bench`): the cluster half's numbers, measured in the cluster lab (a real
//! kube-apiserver, the chart's operator and agents as processes):
//!
//! 1. `kubectl apply` of a VirtualIP → the VIP answering in the client namespace from the
//!    expected MASTER, and → `kubectl get vip` showing that MASTER (goal: < 1 s +
//!    Master_Down_Interval), at advert 1 s and 100 ms;
//! 2. API writes at steady state, counted in the API server's audit log per user (goal: ≤ 1
//!    per node per 10 s);
//! 3. the operator's RSS with 1,000 VirtualIPs, 100 Nodes and 5,000 EndpointSlices in the API
//!    server (goal: ≤ 128 MiB);
//! 4. in a second cluster lab, 1,000 LoadBalancer Services created at once ([`load_balancers`]):
//!    time until every one has an ingress address and a MASTER (goal: 30 s), operator RSS
//!    (goal: ≤ 128 MiB), API writes per Service while assigning and afterwards;
//! 5. in a third cluster lab, the agents' RSS with 255 VirtualIPs on their nodes ([`agents`];
//!    goal: < 20 MiB).
//!
//! Timing figures on a shared 2-core machine: read them as measurements, never as pass/fail.

mod agents;
mod apiserver;
mod load_balancers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::cluster::audit;
use kube_vrrp_e2e::cluster::user::{User, poll};
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "cluster-bench",
    about = "apply-to-answer latency, steady-state API writes, operator RSS at scale and 1,000 LoadBalancer Services in the cluster lab"
)]
struct Cli {
    /// Runs per advert interval for apply → answer.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds of steady state over which API writes are counted.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Skip the 1,000-VirtualIP scale step.
    #[arg(long)]
    no_scale: bool,
    /// Skip the 1,000-LoadBalancer-Service step.
    #[arg(long)]
    no_load_balancers: bool,
    /// Run only the 1,000-LoadBalancer-Service step.
    #[arg(long, conflicts_with_all = ["no_load_balancers", "only_agents"])]
    only_load_balancers: bool,
    /// Skip the step measuring the agents' RSS with 255 VirtualIPs.
    #[arg(long)]
    no_agents: bool,
    /// Run only the step measuring the agents' RSS with 255 VirtualIPs.
    #[arg(long, conflicts_with = "no_agents")]
    only_agents: bool,
}

const AGENT_USER: &str = "system:serviceaccount:kube-vrrp:kube-vrrp-agent";
const OPERATOR_USER: &str = "system:serviceaccount:kube-vrrp:kube-vrrp-operator";

fn vip(name: &str, index: u8, advert: &str) -> String {
    json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": name}, "spec": {
        "addresses": [addressing::vip(Family::V4, index).to_string()],
        "interface": "eth0",
        "advertInterval": advert,
        "nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}},
        "priorities": [{"nodeName": "n1", "priority": 150}, {"nodeName": "n2", "priority": 100}, {"nodeName": "n3", "priority": 50}],
    }})
    .to_string()
}

/// RFC 5798 Master_Down_Interval of a node of `priority` at `advert`.
fn master_down_interval(priority: u32, advert: Duration) -> Duration {
    advert * 3 + advert * (256 - priority) / 256
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One apply → answer run: (to the VIP answering from n1, to `kubectl get vip` showing n1).
fn apply_to_answer(
    cluster: &Cluster,
    user: &User,
    advert: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let vip_addr = addressing::vip(Family::V4, 0).addr();
    let n1 = cluster.lab().node_mac(1)?;
    let prober = cluster.lab().probe(vip_addr, Duration::from_millis(5))?;
    let applied = Instant::now();
    user.apply(&vip("bench", 0, advert))?;
    let shown = poll(
        "kubectl get vip: bench MASTER n1",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((user.get_vip_row("bench")?["MASTER"] == "n1").then(|| applied.elapsed())),
    )?;
    let answered = prober
        .wait_for_reply(applied, Duration::from_secs(10), |m| m == n1)
        .context("the VIP never answered from n1")?
        .at
        .saturating_duration_since(applied);
    user.delete("vip", "bench")?;
    // Gone everywhere before the next run: no node holds the address.
    poll(
        "the VIP released by every node",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            Ok(cluster
                .lab()
                .holders(vip_addr)
                .map_err(kube_vrrp_e2e::cluster::ClusterError::Lab)?
                .is_empty()
                .then_some(()))
        },
    )?;
    std::thread::sleep(Duration::from_secs(1));
    Ok((answered, shown))
}

/// Successful writes per (user, verb, resource) in the audit log between `from` and `to`.
fn writes(
    events: &[audit::AuditEvent],
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for e in events {
        if e.is_write()
            && e.succeeded()
            && e.request_received_timestamp >= from
            && e.request_received_timestamp < to
        {
            let who = match e.user.username.as_str() {
                AGENT_USER => "agent",
                OPERATOR_USER => "operator",
                _ => continue,
            };
            *out.entry((who.to_owned(), format!("{} {}", e.verb, e.resource())))
                .or_insert(0) += 1;
        }
    }
    out
}

/// The scale objects: Nodes b000..b096 in 10 zones, 1,000 VirtualIPs each selecting one zone,
/// 5,000 EndpointSlices of 10 endpoints in namespace `apps`.
fn scale_nodes() -> Vec<Value> {
    (0..97)
        .map(|i| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("b{i:03}"),
            "labels": {"zone": format!("z{}", i / 10), "kubernetes.io/os": "linux", "kubernetes.io/hostname": format!("b{i:03}")}}}))
        .collect()
}

fn scale_vips() -> Vec<Value> {
    (0..1000)
        .map(|i| {
            json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": format!("scale-{i:04}")},
                "spec": {
                    "addresses": [format!("10.{}.{}.{}/16", 100 + i / 60000, (i / 250) % 240, 1 + i % 250)],
                    "interface": format!("eth{}", (i / 10) % 5),
                    "nodeSelector": {"matchLabels": {"zone": format!("z{}", i % 10)}},
                    "priorities": [{"nodeName": format!("b{:03}", i % 97), "priority": 200}],
                }})
        })
        .collect()
}

fn scale_slices() -> Vec<Value> {
    (0..5000)
        .map(|i| {
            let endpoints: Vec<Value> = (0..10)
                .map(|e| json!({"addresses": [format!("10.244.{}.{}", (i * 10 + e) / 250 % 250, 1 + (i * 10 + e) % 250)],
                    "conditions": {"ready": true}, "nodeName": format!("b{:03}", (i + e) % 97)}))
                .collect();
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("svc-{}-{}", i / 4, i % 4), "namespace": "apps",
                    "labels": {"kubernetes.io/service-name": format!("svc-{}", i / 4)}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints})
        })
        .collect()
}

/// Creates `objects` in chunks (one `kubectl create` per chunk of a List).
fn create_all(user: &User, objects: &[Value]) -> anyhow::Result<()> {
    for chunk in objects.chunks(250) {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk});
        user.kubectl()
            .run_with_input(&["create", "-f", "-", "-o", "name"], &list.to_string())?;
    }
    Ok(())
}

/// VmRSS and VmHWM of `pid`, in MiB.
fn rss(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    Ok((
        field("VmRSS:").context("VmRSS")?,
        field("VmHWM:").context("VmHWM")?,
    ))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    kube_vrrp_e2e::agent::release_binary()?;
    if !cli.only_load_balancers && !cli.only_agents {
        vips_and_scale(cli)?;
    }
    if !cli.no_load_balancers && !cli.only_agents {
        load_balancers::run(Duration::from_secs(cli.window))?;
    }
    if !cli.no_agents && !cli.only_load_balancers {
        agents::run()?;
    }
    Ok(())
}

/// Steps 1–3, in one cluster lab.
fn vips_and_scale(cli: &Cli) -> anyhow::Result<()> {
    let cluster = Cluster::up(&ClusterSpec::default())?;
    let user = cluster.user();
    println!(
        "cluster lab: Kubernetes v{}, operator {}, agent {}",
        cluster.control_plane().k8s_version(),
        cluster.binaries().operator.display(),
        cluster.binaries().agent.display()
    );

    // 1. apply → answer.
    println!(
        "\n| advert | Master_Down_Interval (n1, prio 150) | goal (1 s + MDI) | apply → VIP answers, median (min–max) | apply → `kubectl get vip` shows MASTER, median (min–max) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (advert, interval) in [
        ("1s", Duration::from_secs(1)),
        ("100ms", Duration::from_millis(100)),
    ] {
        let mut answered = Vec::new();
        let mut shown = Vec::new();
        for _ in 0..cli.runs {
            let (a, s) = apply_to_answer(&cluster, &user, advert)?;
            answered.push(ms(a));
            shown.push(ms(s));
        }
        let mdi = master_down_interval(150, interval);
        let range = |v: &[f64]| {
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            format!("{:.0} ms ({lo:.0}–{hi:.0})", median(v.to_vec()))
        };
        println!(
            "| {advert} | {:.0} ms | {:.0} ms | {} | {} |",
            ms(mdi),
            ms(mdi + Duration::from_secs(1)),
            range(&answered),
            range(&shown)
        );
    }

    // 2. API writes at steady state: three VirtualIPs on the three nodes.
    for (i, advert) in ["1s", "100ms", "1s"].iter().enumerate() {
        let index = u8::try_from(i + 1)?;
        user.apply(&vip(&format!("steady-{i}"), index, advert))?;
    }
    std::thread::sleep(Duration::from_secs(20));
    let from = jiff::Timestamp::now();
    std::thread::sleep(Duration::from_secs(cli.window));
    let to = jiff::Timestamp::now();
    let counted = writes(
        &audit::read(&cluster.control_plane().audit_log())?,
        from,
        to,
    );
    let per_10s = |n: usize| n as f64 / (cli.window as f64 / 10.0);
    let nodes = cluster.lab().node_count();
    println!(
        "\nAPI writes at steady state over {} s (3 VirtualIPs, {nodes} agents, 2 operators), from the audit log:\n",
        cli.window
    );
    println!("| who | write | count | per 10 s | per node per 10 s |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for ((who, what), n) in &counted {
        let per_node = if who == "agent" {
            format!("{:.2}", per_10s(*n) / nodes as f64)
        } else {
            String::from("–")
        };
        println!("| {who} | {what} | {n} | {:.2} | {per_node} |", per_10s(*n));
    }
    let agent_total: usize = counted
        .iter()
        .filter(|((who, _), _)| who == "agent")
        .map(|(_, n)| n)
        .sum();
    println!(
        "agents: {:.2} writes per node per 10 s (goal ≤ 1)",
        per_10s(agent_total) / nodes as f64
    );

    if cli.no_scale {
        return Ok(());
    }
    // 3. operator RSS at scale.
    let before: Vec<(String, f64, f64)> = cluster
        .pods()
        .take(2)
        .map(|p| {
            p.pid()
                .map_or(Ok((f64::NAN, f64::NAN)), rss)
                .map(|(r, h)| (p.name().to_owned(), r, h))
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    user.kubectl().run(&["create", "namespace", "apps"])?;
    create_all(&user, &scale_nodes())?;
    create_all(&user, &scale_slices())?;
    create_all(&user, &scale_vips())?;
    println!(
        "\ncreated 97 Nodes, 5,000 EndpointSlices and 1,000 VirtualIPs in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Settled: every scale node's VrrpNode exists.
    poll(
        "VrrpNodes for the 97 scale nodes",
        Duration::from_secs(300),
        Duration::from_secs(2),
        || {
            let list = user.kubectl().run(&["get", "vrrpnodes", "-o", "name"])?;
            Ok((list.lines().filter(|l| l.contains("/b")).count() >= 97).then_some(()))
        },
    )?;
    std::thread::sleep(Duration::from_secs(30));
    let leader = cluster.leader()?;
    println!(
        "\n| operator replica | role | RSS before | RSS with 1,000 VIPs, 100 Nodes, 5,000 EndpointSlices | peak RSS (VmHWM) |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    for (i, pod) in cluster.pods().take(2).enumerate() {
        let pid = pod.pid().context("operator not running")?;
        let (now, peak) = rss(pid)?;
        let role = if i == leader { "leader" } else { "standby" };
        println!(
            "| {} | {role} | {:.1} MiB | {now:.1} MiB | {peak:.1} MiB |",
            pod.name(),
            before[i].1
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("cluster-bench: the lab needs root");
        return std::process::ExitCode::FAILURE;
    }
    match run(&Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_objects_are_as_many_as_the_goal_names_and_unique() {
        let (nodes, vips, slices) = (scale_nodes(), scale_vips(), scale_slices());
        assert_eq!(
            (nodes.len() + 3, vips.len(), slices.len()),
            (100, 1000, 5000)
        );
        let names = |v: &[Value]| {
            v.iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert_eq!(
            (names(&nodes), names(&vips), names(&slices)),
            (97, 1000, 5000)
        );
        let addresses: std::collections::BTreeSet<_> = vips
            .iter()
            .map(|v| v["spec"]["addresses"][0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(addresses.len(), 1000);
    }

    #[test]
    fn writes_are_counted_per_user_and_resource_inside_the_window() {
        let line = |user: &str, verb: &str, at: &str, code: u16| {
            format!(
                r#"{{"verb":"{verb}","user":{{"username":"{user}"}},"objectRef":{{"resource":"vrrpnodes","subresource":"status","name":"n1"}},"responseStatus":{{"code":{code}}},"requestReceivedTimestamp":"{at}"}}"#
            )
        };
        let text = [
            line(AGENT_USER, "patch", "2026-01-01T00:00:05Z", 200),
            line(AGENT_USER, "patch", "2026-01-01T00:00:06Z", 409),
            line(AGENT_USER, "get", "2026-01-01T00:00:07Z", 200),
            line(AGENT_USER, "patch", "2026-01-01T00:01:05Z", 200),
            line("admin", "patch", "2026-01-01T00:00:05Z", 200),
        ]
        .join("\n");
        let counted = writes(
            &audit::parse(&text),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "2026-01-01T00:01:00Z".parse().unwrap(),
        );
        assert_eq!(counted.len(), 1);
        assert_eq!(
            counted[&("agent".to_owned(), "patch vrrpnodes/status".to_owned())],
            1
        );
    }
}
