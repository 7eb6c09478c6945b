//! `chaos` (`make chaos`): four chaos runs against three standalone agents in the namespace lab
//! (four VirtualIPs, one of them IPv6, 100 ms adverts, every node MASTER of something), each
//! on a fresh lab, each printing what it did and what it found; any loss fails the run (exit
//! status 1). Random choices come from a seeded generator whose seed is printed
//! (`--seed` replays a run).
//!
//! 1. kills: SIGKILL of a random agent at a random moment, restarted after a random pause,
//!    until the lab settles (one holder per VIP, in every namespace and by ARP/NDP, the
//!    expected MASTER; node addresses apart from VIPs as before), again and again.
//! 2. flaps: a MASTER's switch port set down and up many times in a few seconds; the lab must
//!    settle within 1 s of the last flap, the agent must live and hold no more descriptors,
//!    sockets or threads than before.
//! 3. churn: random valid edits of the manifests directories while a client pings an untouched
//!    VIP: untouched instances never transition, no ping is lost, RSS comes back.
//! 4. clock: one agent's wall clock (libfaketime) stepped 1 h forward and back: no transition
//!    anywhere, that agent's adverts keep their interval (monotonic timers), and its reported
//!    times follow the step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{self, Agent};
use kube_vrrp_e2e::chaos::Rng;
use kube_vrrp_e2e::chaos::churn::{self, Churn};
use kube_vrrp_e2e::chaos::faketime::{self, FakeClock};
use kube_vrrp_e2e::chaos::footprint::{self, Footprint};
use kube_vrrp_e2e::chaos::settle::{self, Answers, Expected, Observation};
use kube_vrrp_e2e::probe::{AdvertSniffer, EchoProber, NeighborProber};
use kube_vrrp_e2e::{InstanceSpec, Lab, LabSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Run {
    Kills,
    Flaps,
    Churn,
    Clock,
}

#[derive(Debug, Parser)]
#[command(about = "Chaos runs against three agents in the namespace lab (needs root)")]
struct Args {
    /// Seed of the random choices (printed; default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Which runs, in order (default: all four).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Run>,
    /// SIGKILLs in the kill run.
    #[arg(long, default_value_t = 100)]
    kills: usize,
    /// Port flaps in the flap run.
    #[arg(long, default_value_t = 100)]
    flaps: u32,
    /// Seconds the flaps are spread over.
    #[arg(long, default_value_t = 10)]
    flap_seconds: u64,
    /// How long the port stays down in each flap, in ms (default: half of each flap's period).
    #[arg(long)]
    flap_down_ms: Option<u64>,
    /// Manifest edits in the churn run.
    #[arg(long, default_value_t = 1000)]
    edits: u32,
    /// Seconds the edits are spread over.
    #[arg(long, default_value_t = 60)]
    churn_seconds: u64,
}

const NODES: usize = 3;
const ADVERT: Duration = Duration::from_millis(100);
/// How long a step may take to settle before the run fails.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The window in which only the MASTER may answer for each VIP.
const ANSWER_WINDOW: Duration = Duration::from_millis(150);
/// The flap run's bound: settled this soon after the last flap.
const FLAP_SETTLE_BOUND: Duration = Duration::from_secs(1);
/// How long descriptors and threads may take to come back after the storm (tokio's blocking
/// threads live 10 s after their last job).
const FOOTPRINT_GRACE: Duration = Duration::from_secs(15);
/// When the churn run reads RSS again after its last edit.
const RSS_SETTLE: Duration = Duration::from_secs(10);
/// "Back to baseline": RSS at most this much above it (MiB), or 10 %, whichever is more.
const RSS_MARGIN_MIB: f64 = 2.0;
/// The clock run's step.
const CLOCK_STEP: i64 = 3600;
/// The clock run's witness instance: a VRID and VIP no other instance uses.
const WITNESS_VRID: u8 = 99;
const WITNESS_VIP_INDEX: u8 = 20;
/// How long the clock run stays at each offset.
const CLOCK_DWELL: Duration = Duration::from_secs(3);

/// The lab's instances: every node MASTER of at least one, one instance with two VIPs, one IPv6.
fn instances() -> Vec<InstanceSpec> {
    let make = |name: &str, vrid: u8, vips: Vec<ipnet::IpNet>, priorities: [u8; 3]| {
        let mut spec = InstanceSpec::new(name, vrid, vips);
        spec.priorities = priorities.to_vec();
        spec.advert_interval = ADVERT;
        spec
    };
    vec![
        make(
            "web",
            51,
            vec![addressing::vip(Family::V4, 0)],
            [150, 100, 50],
        ),
        make(
            "api",
            52,
            vec![
                addressing::vip(Family::V4, 1),
                addressing::vip(Family::V4, 2),
            ],
            [100, 150, 50],
        ),
        make(
            "web6",
            53,
            vec![addressing::vip(Family::V6, 0)],
            [50, 100, 150],
        ),
        make(
            "db",
            54,
            vec![addressing::vip(Family::V4, 3)],
            [150, 50, 100],
        ),
    ]
}

fn expected(specs: &[InstanceSpec]) -> Vec<Expected> {
    specs
        .iter()
        .map(|spec| Expected {
            instance: spec.name.clone(),
            vips: spec.vips.iter().map(ipnet::IpNet::addr).collect(),
            master: (1..=NODES).max_by_key(|&n| spec.priority(n)).unwrap_or(1),
        })
        .collect()
}

/// Three agents on a fresh lab, a prober per VIP, and what the nodes held before any chaos.
struct Cluster {
    // Field order is drop order: agents and probes before the lab.
    agents: Vec<Option<Agent>>,
    probers: BTreeMap<IpAddr, NeighborProber>,
    expected: Vec<Expected>,
    /// Every address that is some VIP (the lab's and the churn run's).
    vips: BTreeSet<IpAddr>,
    /// Each node's addresses apart from VIPs, at the start.
    baseline: Vec<BTreeSet<String>>,
    manifests: Vec<PathBuf>,
    binary: PathBuf,
    lab: Lab,
}

impl Cluster {
    fn start() -> anyhow::Result<Self> {
        let binary = agent::binary()?;
        let lab = Lab::new(LabSpec {
            nodes: NODES,
            ipv6: true,
        })?;
        let specs = instances();
        let mut agents = Vec::new();
        let mut manifests = Vec::new();
        for node in 1..=NODES {
            let agent = Agent::start_binary(&binary, &lab, node, &specs)?;
            manifests.push(agent.manifests_dir().to_owned());
            agents.push(Some(agent));
        }
        let expected = expected(&specs);
        let mut probers = BTreeMap::new();
        for vip in expected.iter().flat_map(|e| e.vips.iter().copied()) {
            probers.insert(vip, lab.probe(vip, Duration::from_millis(20))?);
        }
        let mut vips: BTreeSet<IpAddr> = expected.iter().flat_map(|e| e.vips.clone()).collect();
        vips.extend(churn::addresses());
        let mut cluster = Self {
            agents,
            probers,
            expected,
            vips,
            baseline: Vec::new(),
            manifests,
            binary,
            lab,
        };
        for node in 1..=NODES {
            let apart = settle::apart_from(&cluster.addresses(node)?, &cluster.vips);
            cluster.baseline.push(apart);
        }
        cluster
            .wait_settled(SETTLE_TIMEOUT)
            .map_err(|problems| anyhow::anyhow!("the fresh lab did not settle: {problems}"))?;
        Ok(cluster)
    }

    fn addresses(&self, node: usize) -> anyhow::Result<Vec<settle::NodeAddress>> {
        let json = self
            .lab
            .node_ns(node)?
            .exec(&["ip", "-j", "addr", "show"])?;
        settle::parse_addresses(&json).map_err(anyhow::Error::msg)
    }

    fn agent(&self, node: usize) -> anyhow::Result<&Agent> {
        self.agents
            .get(node - 1)
            .and_then(Option::as_ref)
            .with_context(|| format!("no agent running on n{node}"))
    }

    fn observe(&self) -> anyhow::Result<(Observation, Vec<String>)> {
        let mut seen = Observation::default();
        let mut problems = Vec::new();
        for node in 1..=NODES {
            let addresses = self.addresses(node)?;
            for address in &addresses {
                if self.vips.contains(&address.address) {
                    seen.holders
                        .entry(address.address)
                        .or_default()
                        .insert(node);
                }
            }
            let apart = settle::apart_from(&addresses, &self.vips);
            if apart != self.baseline[node - 1] {
                problems.push(format!(
                    "n{node}'s addresses apart from VIPs changed: {:?} → {:?}",
                    self.baseline[node - 1],
                    apart
                ));
            }
            for status in self.agent(node)?.status(&self.lab)? {
                if status.is_master() {
                    seen.masters.entry(status.name).or_default().insert(node);
                }
            }
        }
        Ok((seen, problems))
    }

    fn answers(&self, since: Instant) -> BTreeMap<IpAddr, Answers> {
        self.probers
            .iter()
            .map(|(vip, prober)| {
                let mut answers = Answers::default();
                for reply in prober.replies().into_iter().filter(|r| r.at >= since) {
                    match self.lab.node_with_mac(reply.mac) {
                        Some(node) => answers.nodes.insert(node),
                        None => answers.strangers.insert(reply.mac.to_string()),
                    };
                }
                (*vip, answers)
            })
            .collect()
    }

    /// Waits until the lab is settled; returns how long until the addresses and `/status`
    /// were right (the ARP/NDP window follows), or the last problems seen.
    fn wait_settled(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let problems = match self.observe() {
                Ok((seen, mut problems)) => {
                    problems.extend(settle::holder_problems(&self.expected, &seen));
                    if problems.is_empty() {
                        let held = start.elapsed();
                        let since = Instant::now();
                        std::thread::sleep(ANSWER_WINDOW);
                        let problems =
                            settle::answer_problems(&self.expected, &self.answers(since));
                        if problems.is_empty() {
                            return Ok(held);
                        }
                        problems
                    } else {
                        problems
                    }
                }
                Err(error) => vec![format!("{error:#}")],
            };
            if start.elapsed() > timeout {
                return Err(problems.join("; "));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Transitions counted by every agent, by (node, instance).
    fn transitions(&self) -> anyhow::Result<BTreeMap<(usize, String), u64>> {
        let mut out = BTreeMap::new();
        for node in 1..=NODES {
            for status in self.agent(node)?.status(&self.lab)? {
                out.insert((node, status.name), status.transitions.unwrap_or(0));
            }
        }
        Ok(out)
    }

    /// Copies every agent's log out of the lab (which is removed on drop) into a directory of
    /// its own under the system's temporary directory; returns it.
    fn keep_logs(&self, run: &str) -> anyhow::Result<PathBuf> {
        let dir =
            std::env::temp_dir().join(format!("kube-vrrp-chaos-{run}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        for node in 1..=NODES {
            if let Ok(agent) = self.agent(node) {
                std::fs::write(dir.join(format!("n{node}.log")), agent.log())?;
            }
        }
        Ok(dir)
    }

    fn log_lines(&self, node: usize, needle: &str) -> anyhow::Result<usize> {
        Ok(self
            .agent(node)?
            .log()
            .lines()
            .filter(|l| l.contains(needle))
            .count())
    }
}

/// Percentiles of durations in ms: (p50, p99, max).
fn spread(values: &mut [Duration]) -> (f64, f64, f64) {
    values.sort();
    let at = |q: f64| {
        values
            .get(((values.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    (at(0.5), at(0.99), at(1.0))
}

/// What a run found: its failures (empty: passed).
type Findings = Vec<String>;

fn run_kills(args: &Args, rng: &mut Rng) -> anyhow::Result<Findings> {
    let mut cluster = Cluster::start()?;
    println!(
        "kills: {} SIGKILLs of a random agent at a random moment (0–1000 ms after the lab settled), each restarted after 0–500 ms",
        args.kills
    );
    let mut findings = Vec::new();
    let (mut settle_times, mut downtime_held, mut masters_killed) = (Vec::new(), 0_usize, 0_usize);
    let (mut removed_at_restart, mut left_for_vips) = (0_usize, 0_usize);
    let mut per_node = [0_usize; NODES];
    for kill in 1..=args.kills {
        std::thread::sleep(rng.duration(Duration::from_secs(1)));
        let node = 1 + rng.index(NODES);
        per_node[node - 1] += 1;
        let held: Vec<IpAddr> = cluster
            .addresses(node)?
            .into_iter()
            .map(|a| a.address)
            .filter(|a| cluster.vips.contains(a))
            .collect();
        let mut agent = cluster.agents[node - 1].take().context("agent missing")?;
        agent.kill()?;
        drop(agent);
        std::thread::sleep(rng.duration(Duration::from_millis(500)));
        if !held.is_empty() {
            masters_killed += 1;
            let now: BTreeSet<IpAddr> = cluster
                .addresses(node)?
                .into_iter()
                .map(|a| a.address)
                .collect();
            let still = held.iter().filter(|v| now.contains(v)).count();
            downtime_held += still;
            left_for_vips += held.len();
        }
        let removals_before = cluster
            .log_lines(node, "removed leftover VIPs before joining")
            .unwrap_or(0);
        let restarted = Agent::start_with_manifests(
            &cluster.binary,
            &cluster.lab,
            node,
            &cluster.manifests[node - 1],
        )?;
        cluster.agents[node - 1] = Some(restarted);
        match cluster.wait_settled(SETTLE_TIMEOUT) {
            Ok(took) => settle_times.push(took),
            Err(problems) => {
                findings.push(format!(
                    "kill {kill} (n{node}): not settled within {SETTLE_TIMEOUT:?}: {problems}; agents' logs kept in {}",
                    cluster.keep_logs("kills")?.display()
                ));
                break;
            }
        }
        let removals =
            cluster.log_lines(node, "removed leftover VIPs before joining")? - removals_before;
        if !held.is_empty() && removals > 0 {
            removed_at_restart += 1;
        }
    }
    let (p50, p99, max) = spread(&mut settle_times);
    println!(
        "kills: {} done (n1/n2/n3: {}/{}/{}), {} of a node holding VIPs; settled after each restart in p50 {p50:.0} / p99 {p99:.0} / max {max:.0} ms (from the restarted agent's first /status answer)",
        settle_times.len(),
        per_node[0],
        per_node[1],
        per_node[2],
        masters_killed
    );
    println!(
        "kills: a SIGKILLed MASTER's VIPs stay on its interface while it is down ({downtime_held} of {left_for_vips} still there just before the restart); the restarted agent removed them before joining (its log: \"removed leftover VIPs before joining\") after {removed_at_restart} of {masters_killed} such kills, and takes them back only as MASTER"
    );
    if findings.is_empty() {
        println!(
            "kills: after every kill exactly one holder per VIP (addresses in every node namespace, ARP/NDP answers from its MAC alone), the expected MASTER, 0 orphan VIPs, node addresses apart from VIPs unchanged"
        );
    }
    Ok(findings)
}

fn run_flaps(args: &Args) -> anyhow::Result<Findings> {
    let cluster = Cluster::start()?;
    let node = cluster.expected[0].master;
    let pid = cluster.agent(node)?.pid();
    let before = footprint::read(pid)?;
    let transitions_before = cluster.transitions()?;
    let period = Duration::from_secs(args.flap_seconds) / args.flaps.max(1);
    let down = args
        .flap_down_ms
        .map_or(period / 2, Duration::from_millis)
        .min(period);
    println!(
        "flaps: n{node} (MASTER of {}) has its switch port set down and up {} times in {} s (down {:?}, up {:?}); agent before: {before}",
        cluster
            .expected
            .iter()
            .filter(|e| e.master == node)
            .map(|e| e.instance.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.flaps,
        args.flap_seconds,
        down,
        period.saturating_sub(down)
    );
    let start = Instant::now();
    let mut next = start;
    for _ in 0..args.flaps {
        cluster.lab.cut(node)?;
        next += down;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        cluster.lab.heal(node)?;
        next += period.saturating_sub(down);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let last_flap = Instant::now();
    let last_flap_wall = jiff::Timestamp::now();
    let storm = last_flap - start;
    let mut findings = Vec::new();
    match cluster.wait_settled(SETTLE_TIMEOUT) {
        Ok(_) => {
            // Measured from the last flap to the settled observation that passed.
            let took = last_flap.elapsed().saturating_sub(ANSWER_WINDOW);
            println!(
                "flaps: storm took {:.2} s; settled {:.0} ms after the last flap (bound {FLAP_SETTLE_BOUND:?}), one holder per VIP",
                storm.as_secs_f64(),
                took.as_secs_f64() * 1e3
            );
            // The agent's own stamp of its return to MASTER (same wall clock, no faking here).
            let own = last_transitions(&cluster, node)?
                .into_iter()
                .find(|(name, _)| *name == cluster.expected[0].instance)
                .and_then(|(_, at)| at.trim_matches('"').parse::<jiff::Timestamp>().ok())
                .map(|at| at.duration_since(last_flap_wall));
            let web = &cluster.expected[0].instance;
            match own {
                Some(d) if d.is_negative() => println!(
                    "flaps: n{node}'s last transition of {web} is {:.1} s before the last flap (its /status lastTransition): it stayed MASTER of it through the storm's end",
                    -d.as_secs_f64()
                ),
                Some(d) => println!(
                    "flaps: n{node} stamped its return to MASTER of {web} {:.0} ms after the last flap (its /status lastTransition); the rest is this run's polling",
                    d.as_secs_f64() * 1e3
                ),
                None => println!("flaps: n{node} reports no lastTransition for {web}"),
            }
            if took > FLAP_SETTLE_BOUND {
                findings.push(format!(
                    "flaps: settled {took:?} after the last flap, over {FLAP_SETTLE_BOUND:?}"
                ));
            }
        }
        Err(problems) => findings.push(format!("flaps: not settled: {problems}")),
    }
    let transitions_after = cluster.transitions()?;
    let moved: u64 = transitions_after
        .iter()
        .filter(|((n, _), _)| *n == node)
        .map(|(k, v)| v - transitions_before.get(k).copied().unwrap_or(0))
        .sum();
    println!("flaps: n{node}'s agent counted {moved} transitions during the storm");
    for n in 1..=NODES {
        let log = cluster.agent(n)?.log();
        if log.contains("panicked") {
            findings.push(format!("flaps: n{n}'s agent panicked"));
        }
    }
    let mut agent_alive = true;
    if let Some(Some(agent)) = cluster.agents.get(node - 1) {
        // `is_running` needs `&mut`; the pid's /proc entry says the same.
        agent_alive = std::path::Path::new(&format!("/proc/{}", agent.pid())).exists();
    }
    if !agent_alive {
        findings.push(format!("flaps: n{node}'s agent is gone"));
        return Ok(findings);
    }
    let right_after = footprint::read(pid)?;
    let deadline = Instant::now() + FOOTPRINT_GRACE;
    let mut after = right_after;
    while !after.within(before) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = footprint::read(pid)?;
    }
    println!(
        "flaps: agent right after settling: {right_after}; {:.1} s later: {after} (the agent exports no task gauge: threads are counted in /proc)",
        FOOTPRINT_GRACE
            .saturating_sub(deadline.saturating_duration_since(Instant::now()))
            .as_secs_f64()
    );
    if !after.within(before) {
        findings.push(format!(
            "flaps: n{node}'s agent holds more than before the storm {FOOTPRINT_GRACE:?} after it: before {before}, after {after}"
        ));
    }
    Ok(findings)
}

fn run_churn(args: &Args, rng: &mut Rng) -> anyhow::Result<Findings> {
    let cluster = Cluster::start()?;
    let pinged = cluster.expected[0].vips[0];
    let dirs: Vec<&std::path::Path> = cluster.manifests.iter().map(PathBuf::as_path).collect();
    let staging = cluster.lab.workdir().to_owned();
    let untouched: BTreeSet<String> = cluster
        .expected
        .iter()
        .map(|e| e.instance.clone())
        .collect();
    let pids: Vec<u32> = (1..=NODES)
        .map(|n| cluster.agent(n).map(Agent::pid))
        .collect::<anyhow::Result<_>>()?;
    let rss_before: Vec<Footprint> = pids
        .iter()
        .map(|p| footprint::read(*p))
        .collect::<Result<_, _>>()?;
    let transitions_before = cluster.transitions()?;
    let loads_before: Vec<usize> = (1..=NODES)
        .map(|n| cluster.log_lines(n, "configuration loaded"))
        .collect::<anyhow::Result<_>>()?;
    println!(
        "churn: {} random valid edits in {} s, each to all three manifests directories, while the client pings {pinged} (web, untouched) every 10 ms; RSS before: {}",
        args.edits,
        args.churn_seconds,
        rss_before
            .iter()
            .enumerate()
            .map(|(i, f)| format!("n{} {:.1} MiB", i + 1, f.rss_kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let pings = EchoProber::start(cluster.lab.client(), pinged, Duration::from_millis(10))?;
    let mut churn = Churn::new(NODES);
    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut most_instances, mut samples) = (0_usize, 0_usize);
    let start = Instant::now();
    let period = Duration::from_secs(args.churn_seconds) / args.edits.max(1);
    let mut next = start;
    for i in 0..args.edits {
        let edit = churn.next(rng);
        *kinds.entry(edit.kind()).or_default() += 1;
        edit.apply(&dirs, &staging)?;
        if i % 16 == 0 {
            let count = cluster.agent(1)?.status(&cluster.lab)?.len();
            most_instances = most_instances.max(count);
            samples += 1;
        }
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    for edit in churn.cleanup() {
        edit.apply(&dirs, &staging)?;
    }
    let churned = start.elapsed();
    let loads_during: Vec<usize> = (1..=NODES)
        .map(|n| {
            cluster
                .log_lines(n, "configuration loaded")
                .map(|c| c - loads_before[n - 1])
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "churn: {} edits in {:.1} s ({}), then the churn files removed; the agents loaded a new configuration {} times (n1/n2/n3: {}); n1 ran up to {most_instances} instances ({samples} samples)",
        args.edits,
        churned.as_secs_f64(),
        kinds
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        loads_during.iter().sum::<usize>(),
        loads_during
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("/")
    );
    let mut findings = Vec::new();
    if let Err(problems) = cluster.wait_settled(SETTLE_TIMEOUT) {
        findings.push(format!("churn: not settled after the churn: {problems}"));
    }
    let window_end = Instant::now();
    let record = pings.pings();
    let (sent, lost) = (
        record.sent(start, window_end),
        record.lost(start, window_end).len(),
    );
    println!("churn: pings to {pinged}: {sent} sent, {lost} lost");
    if lost > 0 || sent == 0 {
        findings.push(format!("churn: {lost} of {sent} pings to {pinged} lost"));
    }
    let transitions_after = cluster.transitions()?;
    let mut moved = Vec::new();
    for ((node, name), count) in &transitions_before {
        if untouched.contains(name) && transitions_after.get(&(*node, name.clone())) != Some(count)
        {
            moved.push(format!("{name} on n{node}"));
        }
    }
    // The agents read the directory back to its first state: only the untouched instances.
    let running_now = || -> anyhow::Result<BTreeSet<String>> {
        Ok(cluster
            .agent(1)?
            .status(&cluster.lab)?
            .into_iter()
            .map(|s| s.name)
            .collect())
    };
    let mut running = running_now()?;
    let back_deadline = Instant::now() + Duration::from_secs(5);
    while running != untouched && Instant::now() < back_deadline {
        std::thread::sleep(Duration::from_millis(50));
        running = running_now()?;
    }
    let back_after = start.elapsed().saturating_sub(churned);
    println!(
        "churn: untouched instances that transitioned: {}; n1 runs {:?} {:.1} s after the cleanup",
        if moved.is_empty() {
            "none".to_owned()
        } else {
            moved.join(", ")
        },
        running,
        back_after.as_secs_f64()
    );
    if !moved.is_empty() {
        findings.push(format!(
            "churn: untouched instances transitioned: {}",
            moved.join(", ")
        ));
    }
    if running != untouched {
        findings.push(format!(
            "churn: n1 runs {running:?} after the cleanup, expected {untouched:?}"
        ));
    }
    if loads_during.iter().any(|&c| c < 2) {
        findings.push(format!(
            "churn: an agent loaded the changing directory fewer than twice during {:.0} s of edits (n1/n2/n3: {loads_during:?})",
            churned.as_secs_f64()
        ));
    }
    std::thread::sleep(RSS_SETTLE.saturating_sub(start.elapsed().saturating_sub(churned)));
    for (i, pid) in pids.iter().enumerate() {
        let now = footprint::read(*pid)?;
        let base = rss_before[i].rss_kib as f64 / 1024.0;
        let after = now.rss_kib as f64 / 1024.0;
        let limit = base + RSS_MARGIN_MIB.max(base * 0.1);
        let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kib| kib / 1024.0);
        println!(
            "churn: n{} RSS {base:.1} MiB before, peak {peak:.1}, {after:.1} MiB {RSS_SETTLE:?} after the last edit (back: at most {limit:.1} MiB)",
            i + 1
        );
        if after > limit {
            findings.push(format!(
                "churn: n{}'s RSS {after:.1} MiB is not back to {base:.1} MiB (limit {limit:.1})",
                i + 1
            ));
        }
    }
    Ok(findings)
}

fn run_clock() -> anyhow::Result<Findings> {
    let mut cluster = Cluster::start()?;
    let node = 1;
    let clock = FakeClock::new(&cluster.lab.workdir().join("faketime"))?;
    let env_owned = clock.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // n1's agent again, on a clock of its own: SIGTERM (a planned exit), restart under libfaketime.
    let mut old = cluster.agents[node - 1].take().context("agent missing")?;
    old.terminate()?;
    drop(old);
    cluster.agents[node - 1] = Some(Agent::start_with_manifests_and_env(
        &cluster.binary,
        &cluster.lab,
        node,
        &cluster.manifests[node - 1],
        &env,
    )?);
    cluster
        .wait_settled(SETTLE_TIMEOUT)
        .map_err(|p| anyhow::anyhow!("clock: not settled under libfaketime: {p}"))?;
    let sniffer: AdvertSniffer = cluster.lab.sniff()?;
    let transitions_before = cluster.transitions()?;
    let stamps_before = last_transitions(&cluster, node)?;
    let mut findings = Vec::new();
    println!(
        "clock: n{node}'s agent restarted under libfaketime ({}, FAKETIME_NO_CACHE=1, FAKETIME_DONT_FAKE_MONOTONIC=1); its wall clock steps +1 h, back to 0, −1 h, back to 0, {CLOCK_DWELL:?} at each; the host's clock is not touched",
        faketime::LIBRARY
    );
    let started = Instant::now();
    let witness_vip = addressing::vip(Family::V4, WITNESS_VIP_INDEX);
    cluster.vips.insert(witness_vip.addr());
    for (step, offset) in [CLOCK_STEP, 0, -CLOCK_STEP, 0].into_iter().enumerate() {
        clock.set_offset(offset)?;
        std::thread::sleep(CLOCK_DWELL);
        // A timestamp the agent takes from its wall clock: the lastTransition of an instance
        // that only n1 runs, added now (INIT → BACKUP is its first transition).
        let name = format!("witness-{step}");
        let at = witness_transition(&cluster, node, &name, witness_vip)?;
        let real = jiff::Timestamp::now();
        let off = at.map(|t| t.as_second() - real.as_second());
        let ok = off.is_some_and(|o| (o - offset).abs() <= 3);
        let date = cluster.agent(node)?.date(&cluster.lab)?;
        println!(
            "clock: offset {offset:+} s: n{node}'s new instance {name} stamped its first transition {} (real {}; {}), its HTTP Date header says {}{}",
            at.map_or_else(
                || "-".to_owned(),
                |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string()
            ),
            real.round(jiff::Unit::Second).unwrap_or(real),
            off.map_or_else(|| "no transition seen".to_owned(), |o| format!("{o:+} s")),
            date.as_deref().unwrap_or("nothing"),
            if ok {
                ""
            } else {
                "  <-- its clock did not follow"
            }
        );
        if !ok {
            findings.push(format!(
                "clock: n{node}'s wall clock is {off:?} s off, expected {offset:+} s"
            ));
        }
        let other = cluster
            .agent(2)?
            .date(&cluster.lab)?
            .as_deref()
            .and_then(faketime::parse_http_date);
        if let Some(other) = other
            && (other.as_second() - real.as_second()).abs() > 2
        {
            findings.push(format!("clock: n2's agent's clock moved too ({other})"));
        }
    }
    let window = started.elapsed();
    if let Err(problems) = cluster.wait_settled(SETTLE_TIMEOUT) {
        findings.push(format!("clock: not settled after the steps: {problems}"));
    }
    let transitions_after = cluster.transitions()?;
    let moved: Vec<String> = transitions_before
        .iter()
        .filter(|(k, v)| transitions_after.get(*k) != Some(*v))
        .map(|((n, name), _)| format!("{name} on n{n}"))
        .collect();
    println!(
        "clock: transitions during the steps: {}",
        if moved.is_empty() {
            "none".to_owned()
        } else {
            moved.join(", ")
        }
    );
    if !moved.is_empty() {
        findings.push(format!("clock: false failover: {}", moved.join(", ")));
    }
    let stamps_after = last_transitions(&cluster, node)?;
    println!(
        "clock: n{node}'s lastTransition times before and after: {stamps_before:?} / {stamps_after:?}"
    );
    if stamps_after != stamps_before {
        findings.push(format!(
            "clock: n{node}'s lastTransition times changed without a transition"
        ));
    }
    // Monotonic timers: n1's adverts (MASTER of web and db) keep their interval through the steps.
    let web = cluster.expected[0].clone();
    let spec_vrid = 51;
    let mut gaps: Vec<Duration> = sniffer
        .adverts()
        .iter()
        .filter(|a| a.node == web.master && a.wire.vrid == spec_vrid)
        .map(|a| a.at)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let count = gaps.len() + 1;
    let (p50, p99, max) = spread(&mut gaps);
    println!(
        "clock: n{node}'s adverts for web over {:.1} s: {count}, interval p50 {p50:.1} / p99 {p99:.1} / max {max:.1} ms (advert {ADVERT:?}: CLOCK_MONOTONIC did not move)",
        window.as_secs_f64()
    );
    let bound = instances()[0].master_down_interval(100).as_secs_f64() * 1e3;
    if count < 10 || max > bound {
        findings.push(format!(
            "clock: n{node}'s advert intervals reached {max:.1} ms (Master_Down_Interval {bound:.1} ms), {count} adverts"
        ));
    }
    Ok(findings)
}

/// Adds instance `name` (one VIP, only in node `node`'s manifests) and returns the time the
/// agent stamped on its first transition; removes it again and waits until it is gone.
fn witness_transition(
    cluster: &Cluster,
    node: usize,
    name: &str,
    vip: ipnet::IpNet,
) -> anyhow::Result<Option<jiff::Timestamp>> {
    let mut spec = InstanceSpec::new(name, WITNESS_VRID, vec![vip]);
    spec.advert_interval = ADVERT;
    let docs = agent::manifests(
        NODES,
        true,
        std::slice::from_ref(&spec),
        std::path::Path::new("/"),
    );
    let file = cluster.manifests[node - 1].join("clock-witness.yaml");
    std::fs::write(&file, serde_saphyr::to_string(&docs[0])?)?;
    let agent = cluster.agent(node)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stamp = None;
    while stamp.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        stamp = last_transitions(cluster, node)?
            .into_iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, at)| at.trim_matches('"').parse::<jiff::Timestamp>().ok());
    }
    std::fs::remove_file(&file)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.instance(&cluster.lab, name).is_ok() {
        if Instant::now() > deadline {
            bail!("n{node} still runs {name} 5 s after its file was removed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(stamp)
}

fn last_transitions(cluster: &Cluster, node: usize) -> anyhow::Result<Vec<(String, String)>> {
    let doc = cluster.agent(node)?.status_document(&cluster.lab)?;
    Ok(doc
        .get("instances")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i.get("name")
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_owned(),
                i.get("lastTransition")
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            )
        })
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "chaos builds network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run it as root, e.g. `sudo make chaos`"
        );
    }
    agent::set_log_filter("info");
    let seed = args.seed.unwrap_or_else(Rng::fresh_seed);
    println!(
        "chaos: seed {seed} (replay with --seed {seed}); agent {}",
        agent::binary()?.display()
    );
    let mut rng = Rng::new(seed);
    let runs = if args.only.is_empty() {
        vec![Run::Kills, Run::Flaps, Run::Churn, Run::Clock]
    } else {
        args.only.clone()
    };
    let mut failures = Vec::new();
    for run in runs {
        let started = Instant::now();
        let outcome = match run {
            Run::Kills => run_kills(&args, &mut rng),
            Run::Flaps => run_flaps(&args),
            Run::Churn => run_churn(&args, &mut rng),
            Run::Clock => run_clock(),
        };
        let findings = outcome.unwrap_or_else(|e| vec![format!("{run:?}: could not run: {e:#}")]);
        println!(
            "chaos: {run:?} {} in {:.1} s",
            if findings.is_empty() {
                "passed"
            } else {
                "FAILED"
            },
            started.elapsed().as_secs_f64()
        );
        for finding in &findings {
            println!("  FAILED: {finding}");
        }
        failures.extend(findings);
    }
    if failures.is_empty() {
        println!("chaos: all runs passed (seed {seed})");
        Ok(())
    } else {
        bail!(
            "{} chaos finding(s); replay with --seed {seed}",
            failures.len()
        )
    }
}
