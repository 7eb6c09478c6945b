//! `lab-handover`: planned handovers as a client sees them, keepalived and the agent side by
//! side in the same lab. Three nodes (priorities 150/100/50); the client pings the VIP every
//! 10 ms and streams TCP to a server routed through it; the MASTER n1 is stopped with SIGTERM
//! (its port cut once its daemon has exited: the node may go), then started again and
//! preempts back. Each cycle prints what it cost; the table sums them per daemon. Any failed
//! step is reported and counted; the exit status is 1 if any cycle failed.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::handover::{self, Handover, Move, Traffic};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::Running;
use kube_vrrp_e2e::{InstanceSpec, LabError, LabSpec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Keepalived,
    Agent,
    Both,
}

#[derive(Debug, Parser)]
#[command(about = "Planned handovers seen from a client, keepalived and the agent (needs root)")]
struct Args {
    /// SIGTERM-and-back cycles per daemon.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Advert interval in milliseconds (a multiple of 10).
    #[arg(long, default_value_t = 1000)]
    advert_ms: u64,
    #[arg(long, value_enum, default_value_t = Which::Both)]
    daemon: Which,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn instance(advert: Duration) -> InstanceSpec {
    let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
    spec.advert_interval = advert;
    spec.priorities = vec![150, 100, 50];
    spec
}

/// One lab, `cycles` SIGTERM-and-back cycles.
fn run(kind: DaemonKind, spec: &InstanceSpec, cycles: usize) -> Result<Vec<Handover>, LabError> {
    let mut running = Running::start(kind, LabSpec::default(), spec.clone())?;
    let master = running.wait_for_master(Duration::from_secs(20))?;
    if master != 1 {
        return Err(LabError::Invalid(format!("n{master} elected, not n1")));
    }
    let traffic = Traffic::start(&mut running)?;
    std::thread::sleep(Duration::from_millis(500));
    let settle = spec.advert_interval * 2 + Duration::from_millis(300);
    let mut out = Vec::new();
    for cycle in 1..=cycles {
        for kind_of_move in [Move::Terminate, Move::Preempt] {
            let run = handover::measure(&mut running, &traffic, kind_of_move, 1, kind, settle)?;
            eprintln!(
                "  {} cycle {cycle}/{cycles} {:<12} n{} -> n{}: {}/{} pings lost (outage {:.1} ms), stream stall {:.1} ms, {} retransmitted, two MACs {:.1} ms{}{}",
                kind.as_str(),
                run.kind.as_str(),
                run.from,
                run.to,
                run.pings_lost,
                run.pings_sent,
                ms(run.longest_outage),
                ms(run.stream_stall),
                run.retransmissions,
                ms(run.two_macs),
                run.exit_took.map_or_else(String::new, |took| format!(
                    ", exited {:.1} ms after SIGTERM",
                    ms(took)
                )),
                if run.stream_errors.is_empty() {
                    String::new()
                } else {
                    format!(", stream errors: {:?}", run.stream_errors)
                }
            );
            out.push(run);
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_root();
    kube_vrrp_e2e::agent::set_log_filter("info");
    if args.cycles == 0 || args.advert_ms == 0 || args.advert_ms % 10 != 0 {
        bail!("--cycles must be at least 1 and --advert-ms a positive multiple of 10");
    }
    let kinds: &[DaemonKind] = match args.daemon {
        Which::Keepalived => &[DaemonKind::Keepalived],
        Which::Agent => &[DaemonKind::Agent],
        Which::Both => &[DaemonKind::Keepalived, DaemonKind::Agent],
    };
    if kinds.contains(&DaemonKind::Agent) {
        kube_vrrp_e2e::agent::release_binary()
            .context("the agent benchmark needs the agent binary")?;
    }
    let spec = instance(Duration::from_millis(args.advert_ms));
    let mut rows = Vec::new();
    let mut failed = false;
    for &kind in kinds {
        match run(kind, &spec, args.cycles) {
            Ok(runs) => rows.push((kind, runs)),
            Err(error) => {
                eprintln!("  {}: {error}", kind.as_str());
                failed = true;
            }
        }
    }
    println!(
        "planned handover, v3 advert {} ms, {} cycles per daemon (SIGTERM of n1, port cut when its daemon exits; n1 back, preempts); ping every 10 ms, TCP write every 2 ms",
        args.advert_ms, args.cycles
    );
    println!(
        "| daemon | move | handovers | pings lost (total / sent) | most lost in one | longest outage | longest TCP stall | TCP retransmissions | TCP resets | longest two-MAC overlap |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (kind, runs) in &rows {
        for kind_of_move in [Move::Terminate, Move::Preempt] {
            let these: Vec<&Handover> = runs.iter().filter(|r| r.kind == kind_of_move).collect();
            let lost: usize = these.iter().map(|r| r.pings_lost).sum();
            let sent: usize = these.iter().map(|r| r.pings_sent).sum();
            let most = these.iter().map(|r| r.pings_lost).max().unwrap_or(0);
            let outage = these
                .iter()
                .map(|r| r.longest_outage)
                .max()
                .unwrap_or_default();
            let stall = these
                .iter()
                .map(|r| r.stream_stall)
                .max()
                .unwrap_or_default();
            let retransmitted: u64 = these.iter().map(|r| r.retransmissions).sum();
            let resets = these.iter().filter(|r| !r.stream_errors.is_empty()).count();
            let two_macs = these.iter().map(|r| r.two_macs).max().unwrap_or_default();
            println!(
                "| {} | {} | {} | {lost} / {sent} | {most} | {:.1} ms | {:.1} ms | {retransmitted} | {resets} | {:.1} ms |",
                kind.as_str(),
                kind_of_move.as_str(),
                these.len(),
                ms(outage),
                ms(stall),
                ms(two_macs),
            );
        }
    }
    if failed {
        bail!("a handover cycle failed (see above)");
    }
    Ok(())
}
