//! `lab-bench`: repeated failover measurements in the namespace lab, for keepalived, our agent,
//! or both (then the ratio ours ÷ keepalived's).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Disruption, run_failover};
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};

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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_root();
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
        "{:<16} {:<16} {:>5} {:>10} {:>10} {:>10} {:>10} {:>6} {:>6}",
        "case", "daemon", "runs", "min ms", "median ms", "max ms", "rfc ms", "fail", "other"
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
                "{:<16} {:<16} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6} {:>6}",
                case.name,
                kind.as_str(),
                args.runs,
                min,
                median,
                max,
                ms(result.expected),
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
}
