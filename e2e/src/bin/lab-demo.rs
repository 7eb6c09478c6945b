//! `lab-demo` (`make demo`): a three-node namespace lab running our agent on the VirtualIP of
//! `deploy/examples/lab/`; shows each node's `kube-vrrp-agent status`, kills the MASTER's node,
//! and shows who took over and how long it took next to Master_Down_Interval. Everything it
//! built is removed at the end, on an error, on a panic, and on Ctrl-C / SIGTERM / SIGHUP.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{self, Agent, InstanceStatus};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::probe::measure_failover;
use kube_vrrp_e2e::{Lab, LabSpec};
use nix::sys::signal::{SigSet, Signal};
use serde_json::Value;

#[derive(Debug, Parser)]
#[command(
    about = "kube-vrrp in a three-node namespace lab: election, MASTER death, failover (needs root)"
)]
struct Args {
    /// Directory of VirtualIP and Node manifests the agents read (standalone mode).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/lab"))]
    manifests: PathBuf,
}

/// What the demo needs from the first VirtualIP of the manifests.
#[derive(Debug)]
struct VirtualIp {
    name: String,
    vip: IpAddr,
    version: u64,
    advert_interval: Duration,
}

/// "100ms", "1s", "2.5s" → Duration.
fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The first VirtualIP in the YAML files of `dir`.
fn read_virtual_ip(dir: &Path) -> anyhow::Result<VirtualIp> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in files {
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        if let Some(doc) = docs.iter().find(|d| d["kind"] == "VirtualIP") {
            let spec = &doc["spec"];
            let address = spec["addresses"][0]
                .as_str()
                .ok_or_else(|| anyhow!("{}: VirtualIP without addresses", file.display()))?;
            let vip = address
                .split('/')
                .next()
                .unwrap_or(address)
                .parse()
                .with_context(|| format!("{}: address {address}", file.display()))?;
            let advert = spec["advertInterval"].as_str().unwrap_or("1s");
            return Ok(VirtualIp {
                name: doc["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                vip,
                version: spec["version"].as_u64().unwrap_or(3),
                advert_interval: parse_duration(advert)
                    .ok_or_else(|| anyhow!("advertInterval {advert}"))?,
            });
        }
    }
    bail!("no VirtualIP in {}", dir.display())
}

impl VirtualIp {
    /// RFC 5798 §6.1 (v3) / RFC 3768 §6.1 (v2) for a backup with `priority`.
    fn master_down_interval(&self, priority: u8) -> Duration {
        let weight = 256 - u32::from(priority);
        let skew = if self.version == 2 {
            Duration::from_secs(1) * weight / 256
        } else {
            self.advert_interval * weight / 256
        };
        self.advert_interval * 3 + skew
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in every thread (call before any thread starts) and waits
/// for them on one: the flag it returns goes up on the first. Children get a clean signal mask
/// (std resets it when it spawns a process).
fn watch_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().context("block signals")?;
    let flag = Arc::new(AtomicBool::new(false));
    let raised = Arc::clone(&flag);
    std::thread::spawn(move || {
        while let Ok(signal) = set.wait() {
            if !raised.swap(true, Ordering::SeqCst) {
                eprintln!("\n{signal} received: cleaning up the lab ...");
            }
        }
    });
    Ok(flag)
}

/// Stops the demo when a signal came in.
fn check(interrupted: &AtomicBool) -> anyhow::Result<()> {
    if interrupted.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Polls `f` every 20 ms until it yields, `timeout` passes, or a signal comes in.
fn wait_for<T>(
    interrupted: &AtomicBool,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        check(interrupted)?;
        if let Some(value) = f() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("{what}: nothing after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn instance(agent: &Agent, lab: &Lab, name: &str) -> Option<InstanceStatus> {
    agent.instance(lab, name).ok()
}

fn print_tables(lab: &Lab, agents: &[Option<Agent>], gone: &str) {
    for (i, slot) in agents.iter().enumerate() {
        let node = i + 1;
        let ip = addressing::node_ip(node, Family::V4);
        println!("── n{node} ({ip}) ─ kube-vrrp-agent status");
        match slot {
            Some(agent) => match agent.status_table(lab) {
                Ok(table) => println!("{}", table.trim_end()),
                Err(e) => println!("  (status failed: {e})"),
            },
            None => println!("  {gone}"),
        }
    }
    println!();
}

fn demo(args: &Args, interrupted: &AtomicBool) -> anyhow::Result<()> {
    let binary = agent::binary()?;
    let vip = read_virtual_ip(&args.manifests)?;
    let manifests = args
        .manifests
        .canonicalize()
        .with_context(|| format!("{}", args.manifests.display()))?;
    println!(
        "kube-vrrp lab demo: VirtualIP {} = {} (VRRPv{}, advert {})",
        vip.name,
        vip.vip,
        vip.version,
        ms(vip.advert_interval)
    );
    println!("manifests: {}", manifests.display());
    println!("agent:     {}\n", binary.display());

    let lab = Lab::new(LabSpec {
        nodes: 3,
        ipv6: Family::of(vip.vip) == Family::V6,
    })?;
    let sniffer = lab.sniff()?;
    let prober = lab.probe(vip.vip, Duration::from_millis(1))?;
    println!("lab up: n1..n3 and a client on one bridge (192.168.77.0/24)");
    let mut agents: Vec<Option<Agent>> = Vec::new();
    for node in lab.node_numbers() {
        check(interrupted)?;
        agents.push(Some(Agent::start_with_manifests(
            &binary, &lab, node, &manifests,
        )?));
        println!("  n{node}: kube-vrrp-agent run --node n{node} --manifests <dir>");
    }

    // Election: one MASTER holding the VIP, the other two BACKUP.
    let started = Instant::now();
    let master = wait_for(interrupted, "one MASTER", Duration::from_secs(15), || {
        let holder = match lab.holders(vip.vip).ok()?.as_slice() {
            [one] => *one,
            _ => return None,
        };
        let states: Vec<InstanceStatus> = agents
            .iter()
            .flatten()
            .map(|a| instance(a, &lab, &vip.name))
            .collect::<Option<_>>()?;
        let masters = states.iter().filter(|s| s.is_master()).count();
        let backups = states.iter().filter(|s| s.is_backup()).count();
        (masters == 1 && backups == 2).then_some(holder)
    })?;
    println!(
        "\nelected in {}: n{master} is MASTER and holds {}\n",
        ms(started.elapsed()),
        vip.vip
    );
    print_tables(&lab, &agents, "");

    // Death: cut the MASTER's switch port (no goodbye advert), then SIGKILL its agent.
    check(interrupted)?;
    let old_mac = lab.node_mac(master)?;
    let vrid = agents[master - 1]
        .as_ref()
        .and_then(|a| instance(a, &lab, &vip.name))
        .and_then(|s| s.vrid)
        .ok_or_else(|| anyhow!("n{master} reports no VRID"))?;
    let since = Instant::now();
    if let Some(mut dead) = agents[master - 1].take() {
        dead.die(&lab)?;
    }
    println!("killed n{master}: switch port cut, agent SIGKILLed (a node dying, no goodbye)");
    wait_for(
        interrupted,
        "another node answering for the VIP",
        Duration::from_secs(10),
        || prober.wait_for_reply(since, Duration::ZERO, |m| m != old_mac),
    )?;
    let failover = measure_failover(&sniffer.adverts(), &prober.replies(), vrid, old_mac, since)
        .map_err(|e| anyhow!("failover not measurable: {e}"))?;
    let new_master = lab
        .node_with_mac(failover.new_mac)
        .ok_or_else(|| anyhow!("VIP answered by unknown MAC {}", failover.new_mac))?;
    let status = wait_for(
        interrupted,
        "the new MASTER's /status",
        Duration::from_secs(3),
        || {
            agents[new_master - 1]
                .as_ref()
                .and_then(|a| instance(a, &lab, &vip.name))
                .filter(InstanceStatus::is_master)
        },
    )?;
    let priority = status.priority.unwrap_or(100);
    let mdi = vip.master_down_interval(priority);
    let measured = failover.duration();
    println!(
        "\nnew MASTER: n{new_master} (priority {priority}), answering for {} from {}",
        vip.vip, failover.new_mac
    );
    println!("failover (last advert of n{master} → first answer from n{new_master}):");
    println!("  measured              {:>10}", ms(measured));
    println!(
        "  Master_Down_Interval  {:>10}   (3 × {} + Skew_Time at priority {priority})",
        ms(mdi),
        ms(vip.advert_interval)
    );
    let delta = measured.as_secs_f64() - mdi.as_secs_f64();
    println!("  difference            {:>+8.1} ms\n", delta * 1000.0);

    // Let the other backup hear the new MASTER before showing the tables again.
    std::thread::sleep(vip.advert_interval * 2);
    check(interrupted)?;
    print_tables(&lab, &agents, "agent killed, node cut off");
    println!("cleaning up the lab ...");
    drop(prober);
    drop(sniffer);
    drop(agents);
    drop(lab);
    println!("done.");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let interrupted = watch_signals()?;
    require_root();
    // The lab (namespaces, agents, work directory) is dropped when `demo` returns, fails or
    // panics, and when a signal makes it return early.
    let result = demo(&args, &interrupted);
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("lab removed.");
        std::process::exit(130);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_the_manifests_are_read() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("2.5s"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_duration("fast"), None);
    }

    #[test]
    fn the_lab_example_is_a_v3_virtual_ip_on_the_lab_subnet() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/lab");
        let vip = read_virtual_ip(&dir).unwrap();
        assert_eq!(vip.name, "web");
        assert_eq!(vip.vip, addressing::vip(Family::V4, 0).addr());
        assert_eq!(vip.version, 3);
        assert_eq!(vip.advert_interval, Duration::from_millis(100));
        // 3 × 100 ms + (256 − 120) × 100 ms / 256
        assert_eq!(
            vip.master_down_interval(120),
            Duration::from_micros(353_125)
        );
    }
}
