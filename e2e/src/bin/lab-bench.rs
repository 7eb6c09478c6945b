//! `lab-bench`: repeated failover measurements in the namespace lab, for keepalived, our agent,
//! or both (then the ratio ours ÷ keepalived's), and the CPU and memory of one daemon running 1
//! and 255 instances.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::{Daemon, DaemonKind};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::resources::{self, Usage};
use kube_vrrp_e2e::scenario::{Disruption, run_failover};
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};
use kube_vrrp_e2e::{Lab, LabError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Keepalived,
    Agent,
    Both,
}

#[derive(Debug, Parser)]
#[command(about = "Failover benchmarks in the kube-vrrp namespace lab (needs root)")]
struct Args {
    /// Runs per case.
    #[arg(long, default_value_t = 8)]
    runs: usize,
    /// Which daemon to measure.
    #[arg(long, value_enum, default_value_t = Which::Keepalived)]
    daemon: Which,
    /// Only cases whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Also print one JSON object per case.
    #[arg(long)]
    json: bool,
    /// Measuring window of the CPU / RSS cases, in seconds.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// Skip the CPU / RSS cases.
    #[arg(long)]
    no_resources: bool,
}

/// One benchmark case: an instance and how its MASTER goes away.
struct Case {
    name: &'static str,
    instance: InstanceSpec,
    disruption: Disruption,
}

fn instance(version: Version, advert: Duration) -> InstanceSpec {
    let mut spec = InstanceSpec::new("bench", 51, vec![addressing::vip(Family::V4, 0)]);
    spec.version = version;
    spec.advert_interval = advert;
    spec.priorities = vec![150, 100, 50];
    spec
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "death-v2-1s",
            instance: instance(Version::V2, Duration::from_secs(1)),
            disruption: Disruption::Death,
        },
        Case {
            name: "death-v3-10ms",
            instance: instance(Version::V3, Duration::from_millis(10)),
            disruption: Disruption::Death,
        },
        Case {
            name: "sigterm-v3-1s",
            instance: instance(Version::V3, Duration::from_secs(1)),
            disruption: Disruption::Terminate,
        },
    ]
}

/// Min, median and max of a non-empty sample.
#[derive(Clone, Copy, Debug)]
struct Summary {
    min: Duration,
    median: Duration,
    max: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Option<Summary> {
    samples.sort();
    let (min, max) = (*samples.first()?, *samples.last()?);
    let mid = samples.len() / 2;
    let median = if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    };
    Some(Summary { min, median, max })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct CaseResult {
    summary: Option<Summary>,
    expected: Duration,
    failures: usize,
    wrong_successor: usize,
}

fn run_case(kind: DaemonKind, case: &Case, runs: usize) -> CaseResult {
    let lab = LabSpec {
        nodes: 3,
        ipv6: false,
    };
    let mut samples = Vec::with_capacity(runs);
    let (mut failures, mut wrong_successor) = (0, 0);
    let expected = case
        .disruption
        .expected(&case.instance, case.instance.priority(2));
    for i in 1..=runs {
        match run_failover(kind, lab, &case.instance, case.disruption) {
            Ok(run) => {
                eprintln!(
                    "  {} {} run {i}/{runs}: {:.1} ms (n{} -> n{})",
                    kind.as_str(),
                    case.name,
                    ms(run.measured()),
                    run.old_master,
                    run.new_master
                );
                if run.new_master != run.expected_new_master {
                    wrong_successor += 1;
                }
                samples.push(run.measured());
            }
            Err(e) => {
                eprintln!(
                    "  {} {} run {i}/{runs} failed: {e}",
                    kind.as_str(),
                    case.name
                );
                failures += 1;
            }
        }
    }
    CaseResult {
        summary: summarize(samples),
        expected,
        failures,
        wrong_successor,
    }
}

/// The CPU / RSS cases: this many instances at advert 1 s.
const RESOURCE_CASES: [usize; 2] = [1, 255];

/// `count` v3 instances at 1 s, VRIDs 1..=count, one VIP each (172.16.1.VRID/16), n1 preferred.
fn resource_instances(count: usize) -> Vec<InstanceSpec> {
    (1..=count)
        .filter_map(|vrid| u8::try_from(vrid).ok())
        .map(|vrid| {
            let vip = format!("172.16.1.{vrid}/16")
                .parse()
                .unwrap_or_else(|_| addressing::vip(Family::V4, 0));
            let mut spec = InstanceSpec::new(&format!("vip-{vrid}"), vrid, vec![vip]);
            spec.priorities = vec![150, 100];
            spec
        })
        .collect()
}

/// One daemon per node of a two-node lab running `count` instances; once n1 is MASTER of all of
/// them and n2 BACKUP, measures both over `window`. Returns (MASTER usage, BACKUP usage).
fn run_resources(
    kind: DaemonKind,
    count: usize,
    window: Duration,
) -> Result<(Usage, Usage), LabError> {
    let instances = resource_instances(count);
    let lab = Lab::new(LabSpec {
        nodes: 2,
        ipv6: false,
    })?;
    let master = Daemon::start(kind, &lab, 1, &instances)?;
    let backup = Daemon::start(kind, &lab, 2, &instances)?;
    let last = instances
        .last()
        .and_then(InstanceSpec::first_vip)
        .ok_or_else(|| LabError::Invalid("no instance".into()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lab.holders(last)? != [1] {
        if std::time::Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("n1 alone holding {last}"),
                timeout: Duration::from_secs(60),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past start-up: elections done, GARPs sent, allocations settled.
    std::thread::sleep(Duration::from_secs(5));
    let (master_pid, backup_pid) = (master.pid(), backup.pid());
    let on_backup = std::thread::spawn(move || resources::measure(backup_pid, window));
    let master_usage = resources::measure(master_pid, window)?;
    let backup_usage = on_backup
        .join()
        .map_err(|_| LabError::Invalid("measuring thread panicked".into()))??;
    drop((master, backup));
    Ok((master_usage, backup_usage))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_root();
    // Debug logging of every packet is not what the benchmark measures.
    kube_vrrp_e2e::agent::set_log_filter("info");
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let kinds: &[DaemonKind] = match args.daemon {
        Which::Keepalived => &[DaemonKind::Keepalived],
        Which::Agent => &[DaemonKind::Agent],
        Which::Both => &[DaemonKind::Keepalived, DaemonKind::Agent],
    };
    if kinds.contains(&DaemonKind::Agent) {
        kube_vrrp_e2e::agent::binary().context("the agent benchmark needs the agent binary")?;
    }
    println!(
        "{:<16} {:<16} {:>5} {:>10} {:>10} {:>10} {:>10} {:>9} {:>6} {:>6}",
        "case",
        "daemon",
        "runs",
        "min ms",
        "median ms",
        "max ms",
        "rfc ms",
        "med-rfc",
        "fail",
        "other"
    );
    let mut any_failed = false;
    for case in cases() {
        if args
            .only
            .as_deref()
            .is_some_and(|only| !case.name.contains(only))
        {
            continue;
        }
        let mut medians = Vec::new();
        for &kind in kinds {
            let result = run_case(kind, &case, args.runs);
            any_failed |= result.failures > 0;
            let (min, median, max) = result.summary.map_or((f64::NAN, f64::NAN, f64::NAN), |s| {
                (ms(s.min), ms(s.median), ms(s.max))
            });
            println!(
                "{:<16} {:<16} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>+9.1} {:>6} {:>6}",
                case.name,
                kind.as_str(),
                args.runs,
                min,
                median,
                max,
                ms(result.expected),
                median - ms(result.expected),
                result.failures,
                result.wrong_successor
            );
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "case": case.name, "daemon": kind.as_str(), "runs": args.runs,
                        "min_ms": min, "median_ms": median, "max_ms": max,
                        "rfc_ms": ms(result.expected), "failures": result.failures,
                        "wrong_successor": result.wrong_successor,
                    })
                );
            }
            medians.push(median);
        }
        if let [keepalived, agent] = medians.as_slice() {
            println!(
                "{:<16} ratio agent/keepalived (median): {:.3}",
                case.name,
                agent / keepalived
            );
        }
    }
    if !args.no_resources {
        let window = Duration::from_secs(args.window);
        println!(
            "\n{:<16} {:<16} {:<7} {:>9} {:>10} {:>9}",
            "case", "daemon", "role", "window s", "cpu %core", "rss MiB"
        );
        for count in RESOURCE_CASES {
            let name = format!("resources-{count}");
            if args
                .only
                .as_deref()
                .is_some_and(|only| !name.contains(only))
            {
                continue;
            }
            for &kind in kinds {
                match run_resources(kind, count, window) {
                    Ok((master, backup)) => {
                        for (role, usage) in [("master", master), ("backup", backup)] {
                            println!(
                                "{:<16} {:<16} {:<7} {:>9.1} {:>10.3} {:>9.1}",
                                name,
                                kind.as_str(),
                                role,
                                usage.window.as_secs_f64(),
                                usage.cpu_percent,
                                usage.rss_kib as f64 / 1024.0
                            );
                            if args.json {
                                println!(
                                    "{}",
                                    serde_json::json!({
                                        "case": name, "daemon": kind.as_str(), "role": role,
                                        "instances": count, "window_s": usage.window.as_secs_f64(),
                                        "cpu_percent": usage.cpu_percent, "rss_kib": usage.rss_kib,
                                    })
                                );
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("  {} {name} failed: {e}", kind.as_str());
                        any_failed = true;
                    }
                }
            }
        }
    }
    if any_failed {
        bail!("some runs failed (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_min_median_and_max_of_odd_and_even_samples() {
        let ms = |v: u64| Duration::from_millis(v);
        let odd = summarize(vec![ms(30), ms(10), ms(20)]).unwrap();
        assert_eq!((odd.min, odd.median, odd.max), (ms(10), ms(20), ms(30)));
        let even = summarize(vec![ms(40), ms(10), ms(20), ms(30)]).unwrap();
        assert_eq!((even.min, even.median, even.max), (ms(10), ms(25), ms(40)));
        assert!(summarize(Vec::new()).is_none());
    }

    #[test]
    fn the_255_resource_instances_have_distinct_vrids_and_addresses() {
        let instances = resource_instances(255);
        assert_eq!(instances.len(), 255);
        let vrids: std::collections::BTreeSet<u8> = instances.iter().map(|i| i.vrid).collect();
        let vips: std::collections::BTreeSet<_> = instances
            .iter()
            .filter_map(InstanceSpec::first_vip)
            .collect();
        assert_eq!((vrids.len(), vips.len()), (255, 255));
        assert!(instances.iter().all(|i| i.validate().is_ok()));
        assert_eq!(
            instances[254].first_vip().unwrap().to_string(),
            "172.16.1.255"
        );
    }
}
