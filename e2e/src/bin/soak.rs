//! `soak` (`make soak`): no false failover under CPU starvation. Four two-node pairs run side by
//! side at 10 ms adverts for the same minutes, under the same load: the agent and keepalived,
//! each with the normal scheduler and with its real-time knobs (`--realtime-priority 20
//! --lock-memory`; `vrrp_rt_priority 20` and `vrrp_no_swap`). The load is busy loops (16 by
//! default, under the normal scheduler, on this machine's cores) and a neighbour that keeps
//! rewriting a large block of memory. A false failover is the BACKUP advertising while its
//! MASTER runs: seen on the wire by the lab's sniffer, the same way for either daemon. Also
//! reported: the MASTER's advert intervals (p50 / p99 / max) and how many exceeded the
//! BACKUP's Master_Down_Interval. The daemons start under the normal scheduler; then the
//! sniffers (threads of this process) move to SCHED_FIFO 50, above every daemon, so the wire is
//! read on time, and the load runs as child processes under the normal scheduler. Needs root;
//! prints a table, asserts nothing about the numbers (exit status 1 only if a pair could not be
//! started or run).

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::Agent;
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::keepalived::{Keepalived, NodeView, render_config};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::probe::{Advert, AdvertSniffer};
use kube_vrrp_e2e::{InstanceSpec, Lab, LabSpec};

#[derive(Debug, Parser)]
#[command(about = "False failovers under CPU starvation, the agent and keepalived (needs root)")]
struct Args {
    /// How long the pairs run under load, in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Busy loops under the normal scheduler.
    #[arg(long, default_value_t = 16)]
    busy: usize,
    /// MiB the memory neighbour keeps rewriting (0: none).
    #[arg(long, default_value_t = 2048)]
    memory_mib: usize,
    /// Internal: run one load process (`busy`, or `memory`) until killed.
    #[arg(long, hide = true)]
    load_child: Option<String>,
}

/// The observer's priority: above the daemons' real-time priority.
const SNIFFER_PRIORITY: &str = "50";

const ADVERT: Duration = Duration::from_millis(10);
const PRIORITY_RT: u8 = 20;
/// A BACKUP's advert episodes closer than this are one false failover.
const EPISODE_GAP: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct Case {
    daemon: DaemonKind,
    realtime: bool,
}

impl Case {
    fn describe(self) -> &'static str {
        match (self.daemon, self.realtime) {
            (DaemonKind::Agent, false) => "kube-vrrp-agent",
            (DaemonKind::Agent, true) => "kube-vrrp-agent --realtime-priority 20 --lock-memory",
            (DaemonKind::Keepalived, false) => "keepalived",
            (DaemonKind::Keepalived, true) => "keepalived, vrrp_rt_priority 20, vrrp_no_swap",
        }
    }
}

/// One pair: its lab, the daemons on n1 (MASTER, 150) and n2 (BACKUP, 100), the sniffer.
struct Pair {
    case: Case,
    instance: InstanceSpec,
    sniffer: AdvertSniffer,
    _agents: Vec<Agent>,
    _keepalived: Vec<Keepalived>,
    /// Dropped last: the daemons stop before their namespaces go.
    _lab: Lab,
}

fn start(case: Case) -> anyhow::Result<Pair> {
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: false,
    })?;
    let mut instance = InstanceSpec::new("soak", 51, vec![addressing::vip(Family::V4, 0)]);
    instance.priorities = vec![150, 100];
    instance.advert_interval = ADVERT;
    let sniffer = lab.sniff()?;
    let (mut agents, mut keepalived) = (Vec::new(), Vec::new());
    for node in 1..=2 {
        match case.daemon {
            DaemonKind::Agent => {
                let extra: Vec<String> = if case.realtime {
                    vec![
                        "--realtime-priority".into(),
                        PRIORITY_RT.to_string(),
                        "--lock-memory".into(),
                    ]
                } else {
                    Vec::new()
                };
                agents.push(Agent::start_with_args(
                    &lab,
                    node,
                    std::slice::from_ref(&instance),
                    &extra,
                )?);
            }
            DaemonKind::Keepalived => {
                let view = NodeView {
                    node,
                    name: lab.node_name(node)?.to_owned(),
                    nodes: 2,
                };
                let mut config = render_config(&view, std::slice::from_ref(&instance));
                if case.realtime {
                    config = config.replacen(
                        "global_defs {\n",
                        &format!(
                            "global_defs {{\n    vrrp_rt_priority {PRIORITY_RT}\n    vrrp_no_swap\n"
                        ),
                        1,
                    );
                }
                keepalived.push(Keepalived::start_with_config(&lab, node, &config)?);
            }
        }
    }
    Ok(Pair {
        case,
        instance,
        sniffer,
        _agents: agents,
        _keepalived: keepalived,
        _lab: lab,
    })
}

/// What one pair did under load.
struct Outcome {
    false_failovers: usize,
    backup_adverts: usize,
    master_adverts: usize,
    gaps_ms: [f64; 3],
    gaps_over_master_down: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn outcome(adverts: &[Advert], since: Instant, master_down: Duration) -> Outcome {
    let window: Vec<&Advert> = adverts.iter().filter(|a| a.at >= since).collect();
    let backup: Vec<Instant> = window
        .iter()
        .filter(|a| a.node == 2)
        .map(|a| a.at)
        .collect();
    let false_failovers = backup
        .iter()
        .enumerate()
        .filter(|(i, at)| *i == 0 || at.duration_since(backup[i - 1]) > EPISODE_GAP)
        .count();
    let master: Vec<Instant> = window
        .iter()
        .filter(|a| a.node == 1)
        .map(|a| a.at)
        .collect();
    let mut gaps: Vec<f64> = master
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1e3)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let limit = master_down.as_secs_f64() * 1e3;
    Outcome {
        false_failovers,
        backup_adverts: backup.len(),
        master_adverts: master.len(),
        gaps_over_master_down: gaps.iter().filter(|g| **g > limit).count(),
        gaps_ms: [
            percentile(&gaps, 50.0),
            percentile(&gaps, 99.0),
            gaps.last().copied().unwrap_or(f64::NAN),
        ],
    }
}

/// One load process's work, forever: a busy loop, or rewriting one byte of every page of
/// `memory_mib`.
fn run_load(kind: &str, memory_mib: usize) -> ! {
    if kind == "memory" {
        let mut block = vec![0_u8; memory_mib << 20];
        let mut round: u8 = 0;
        loop {
            round = round.wrapping_add(1);
            for page in block.chunks_mut(4096) {
                page[0] = round;
            }
            std::hint::black_box(&block);
        }
    }
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// Starts the load as child processes of this binary under the normal scheduler (`chrt -o`).
fn load(busy: usize, memory_mib: usize) -> anyhow::Result<Vec<std::process::Child>> {
    let me = std::env::current_exe()?;
    let spawn = |kind: &str| {
        std::process::Command::new("chrt")
            .args(["-o", "0"])
            .arg(&me)
            .args([
                "--load-child",
                kind,
                "--memory-mib",
                &memory_mib.to_string(),
            ])
            .spawn()
            .context("starting a load process under chrt")
    };
    let mut children = (0..busy)
        .map(|_| spawn("busy"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if memory_mib > 0 {
        children.push(spawn("memory")?);
    }
    Ok(children)
}

/// Every thread of this process (the sniffers among them) under SCHED_FIFO at `priority`.
fn observe_in_real_time(priority: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("chrt")
        .args(["-a", "-f", "-p", priority, &std::process::id().to_string()])
        .status()
        .context("chrt")?;
    anyhow::ensure!(status.success(), "chrt -a -f -p {priority} failed");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(kind) = &args.load_child {
        run_load(kind, args.memory_mib);
    }
    require_root();
    kube_vrrp_e2e::agent::release_binary()?;
    let cases = [
        Case {
            daemon: DaemonKind::Agent,
            realtime: false,
        },
        Case {
            daemon: DaemonKind::Agent,
            realtime: true,
        },
        Case {
            daemon: DaemonKind::Keepalived,
            realtime: false,
        },
        Case {
            daemon: DaemonKind::Keepalived,
            realtime: true,
        },
    ];
    let pairs: Vec<Pair> = cases
        .iter()
        .map(|&case| start(case).with_context(|| format!("starting {}", case.describe())))
        .collect::<anyhow::Result<_>>()?;
    // Elected before the load starts: n1 MASTER, n2 silent.
    std::thread::sleep(Duration::from_secs(3));
    for pair in &pairs {
        let recent = pair.sniffer.adverts();
        let last = recent
            .iter()
            .rev()
            .find(|a| a.at.elapsed() < Duration::from_millis(500));
        anyhow::ensure!(
            last.is_some_and(|a| a.node == 1),
            "{}: n1 is not the advertising MASTER before the load: {:?}",
            pair.case.describe(),
            last
        );
    }
    observe_in_real_time(SNIFFER_PRIORITY)?;
    let since = Instant::now();
    let mut children = load(args.busy, args.memory_mib)?;
    eprintln!(
        "soak: {} busy loops and {} MiB rewritten for {} min, 4 pairs at {ADVERT:?}",
        args.busy, args.memory_mib, args.minutes
    );
    std::thread::sleep(Duration::from_secs(args.minutes * 60));
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "soak, {} min, {} busy loops, {} MiB memory neighbour, adverts every {ADVERT:?} (load average at the end: {})",
        args.minutes,
        args.busy,
        args.memory_mib,
        loadavg.trim()
    );
    println!(
        "| daemon | false failovers (BACKUP adverts) | MASTER adverts | MASTER advert interval p50 / p99 / max | intervals over Master_Down_Interval |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for pair in &pairs {
        let master_down = pair.instance.master_down_interval(100);
        let o = outcome(&pair.sniffer.adverts(), since, master_down);
        println!(
            "| {} | {} ({}) | {} | {:.1} / {:.1} / {:.1} ms | {} (> {:.1} ms) |",
            pair.case.describe(),
            o.false_failovers,
            o.backup_adverts,
            o.master_adverts,
            o.gaps_ms[0],
            o.gaps_ms[1],
            o.gaps_ms[2],
            o.gaps_over_master_down,
            master_down.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
