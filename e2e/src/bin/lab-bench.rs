//! `lab-bench`: the namespace lab's benchmarks, keepalived beside our agent. Repeated failovers
//! (the ratio ours ÷ keepalived's), and the steady state of a MASTER/BACKUP pair at 1 and 255
//! instances with adverts every 1 s and every 10 ms: instructions per second and per advert
//! (callgrind: one daemon under valgrind, its peer native), and CPU, memory and wakeups (both
//! native). Prints each result as it comes and, at the end, the markdown tables the README shows.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::bench_record::{self, Measure, Record, RunInfo};
use kube_vrrp_e2e::bench_table;
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Disruption, run_held_failover};
use kube_vrrp_e2e::steady::{self, Cost, NativeUsage, Role, Steady};
use kube_vrrp_e2e::summary::{Summary, range_cell, summarize, thousands};
use kube_vrrp_e2e::{InstanceSpec, LabSpec, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Which {
    Keepalived,
    Agent,
    Both,
}

#[derive(Debug, Parser)]
#[command(
    about = "Benchmarks in the kube-vrrp namespace lab, keepalived beside the agent (needs root)"
)]
struct Args {
    /// Runs per failover case.
    #[arg(long, default_value_t = 8)]
    runs: usize,
    /// Which daemon to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    daemon: Which,
    /// Only cases whose name contains this (failover: death-v2-1s, death-v3-10ms,
    /// sigterm-v3-1s; steady state: steady-1x1s, steady-1x10ms, steady-255x1s, steady-255x10ms).
    #[arg(long)]
    only: Option<String>,
    /// Also print one JSON object per result.
    #[arg(long)]
    json: bool,
    /// Runs per steady-state case (each a fresh lab), for the spread.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Measuring window of the native steady-state runs (CPU, memory, wakeups), in seconds.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// Measuring window of the instruction counts, in seconds.
    #[arg(long, default_value_t = 20)]
    cost_window: u64,
    /// Skip the failover cases.
    #[arg(long)]
    no_failover: bool,
    /// Seconds each failover case keeps its elected MASTER before the disruption: the
    /// failover of daemons that have run that long (25: past the agent's memory release).
    /// Not recorded (the record's failover cases are disrupted right after the election).
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// Skip the instruction counts (valgrind).
    #[arg(long)]
    no_cost: bool,
    /// Skip the native steady-state runs (CPU, memory, wakeups).
    #[arg(long, alias = "no-resources")]
    no_native: bool,
    /// Keep each measuring window's callgrind dump in this directory (for
    /// `callgrind_annotate`: where the instructions go).
    #[arg(long, value_name = "DIR")]
    keep_profiles: Option<std::path::PathBuf>,
    /// Append every measured value to this record of runs (JSON lines; `make bench`:
    /// bench/lab-bench.jsonl).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Regenerate the table between this README's lab-bench markers from the record of runs
    /// (needs --record).
    #[arg(long, value_name = "FILE", requires = "record")]
    readme: Option<PathBuf>,
    /// Measure nothing: only regenerate the README's table from the record.
    #[arg(long, requires = "readme")]
    table_only: bool,
}

/// One failover case: an instance and how its MASTER goes away.
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

/// The steady-state cases: 1 and 255 instances, adverts every 1 s and every 10 ms.
fn steady_cases() -> Vec<Steady> {
    let mut out = Vec::new();
    for instances in [1, 255] {
        for advert in [Duration::from_secs(1), Duration::from_millis(10)] {
            out.push(Steady { instances, advert });
        }
    }
    out
}

const ROLES: [Role; 2] = [Role::Master, Role::Backup];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether `failures` runs of `kind` fail the bench: the agent's do; keepalived's are a result
/// about keepalived (on this 2-core machine it cannot always hold 255 instances at 10 ms), shown
/// as the runs its cells lack, and the bench goes on (said so by [`say_keepalived_failed`]).
fn fails_the_bench(kind: DaemonKind, failures: usize) -> bool {
    failures > 0 && kind == DaemonKind::Agent
}

/// Says that keepalived's failed runs do not fail the bench.
fn say_keepalived_failed(kind: DaemonKind, failures: usize) {
    if failures > 0 && kind == DaemonKind::Keepalived {
        eprintln!(
            "  keepalived: {failures} run(s) failed; a result about keepalived, not a failure of the bench"
        );
    }
}

fn selected(only: Option<&str>, name: &str) -> bool {
    only.is_none_or(|only| name.contains(only))
}

/// The 1-minute load average now.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// What ran the benchmark: the CPU model, its cores, the kernel.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned());
    format!("{model}, {cores} cores, Linux {kernel}")
}

/// Today's date and time in UTC, as `date` prints it.
fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown date".into(), |d| d.trim().to_owned())
}

/// The commit of the checkout the bench runs in (`git describe --always --dirty`).
fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown".into(), |c| c.trim().to_owned())
}

/// Every value this invocation measured, for the record of runs.
fn records(run: &RunInfo, failovers: &[FailoverResult], steadies: &[SteadyResult]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut push =
        |case: &str, kind: DaemonKind, load: f64, role: Option<(Role, usize)>, measure, value| {
            out.push(Record {
                run: run.clone(),
                load,
                case: case.to_owned(),
                daemon: kind.as_str().to_owned(),
                role: role.map(|(r, _)| r.as_str().to_owned()),
                measure,
                value,
                repeat: role.and_then(|(_, repeat)| u32::try_from(repeat).ok()),
            });
        };
    for f in failovers {
        for sample in &f.samples {
            push(
                f.case,
                f.kind,
                f.load,
                None,
                Measure::FailoverOverRfcMs,
                ms(*sample) - ms(f.expected),
            );
        }
    }
    for r in steadies {
        let case = format!("steady-{}", r.steady.name());
        for role in ROLES {
            for (repeat, cost) in r.costs(role).0 {
                let at = Some((role, *repeat));
                push(
                    &case,
                    r.kind,
                    r.load,
                    at,
                    Measure::InstructionsPerSecond,
                    cost.per_second(),
                );
                if let Some(per_advert) = cost.per_advert(role) {
                    push(
                        &case,
                        r.kind,
                        r.load,
                        at,
                        Measure::InstructionsPerAdvert,
                        per_advert,
                    );
                }
            }
            for (repeat, native) in &r.natives {
                let (usage, at) = (native.of(role), Some((role, *repeat)));
                push(
                    &case,
                    r.kind,
                    r.load,
                    at,
                    Measure::CpuPercent,
                    usage.cpu_percent,
                );
                push(
                    &case,
                    r.kind,
                    r.load,
                    at,
                    Measure::RssMib,
                    usage.rss_kib as f64 / 1024.0,
                );
                push(
                    &case,
                    r.kind,
                    r.load,
                    at,
                    Measure::WakeupsPerSecond,
                    usage.wakeups_per_second,
                );
            }
        }
    }
    out
}

/// Regenerates `readme`'s lab-bench table from the record of runs at `record`.
fn regenerate_table(record: &std::path::Path, readme: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(record)
        .with_context(|| format!("reading the record of runs {}", record.display()))?;
    let records =
        bench_record::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", record.display()))?;
    let old =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let new = bench_table::splice(&old, &bench_table::render(&records))
        .map_err(|e| anyhow::anyhow!("{}: {e}", readme.display()))?;
    std::fs::write(readme, new).with_context(|| format!("writing {}", readme.display()))?;
    eprintln!(
        "{}: lab-bench table regenerated from {} records",
        readme.display(),
        records.len()
    );
    Ok(())
}

struct FailoverResult {
    case: &'static str,
    kind: DaemonKind,
    /// The 1-minute load average when the case began.
    load: f64,
    samples: Vec<Duration>,
    summary: Option<Summary<Duration>>,
    expected: Duration,
    failures: usize,
    wrong_successor: usize,
}

fn run_case(kind: DaemonKind, case: &Case, runs: usize, hold: Duration) -> FailoverResult {
    let lab = LabSpec {
        nodes: 3,
        ipv6: false,
    };
    let load = load_average();
    let mut samples = Vec::with_capacity(runs);
    let (mut failures, mut wrong_successor) = (0, 0);
    let expected = case
        .disruption
        .expected(&case.instance, case.instance.priority(2));
    for i in 1..=runs {
        match run_held_failover(kind, lab, &case.instance, case.disruption, hold) {
            Ok(run) => {
                eprintln!(
                    "  {} {} run {i}/{runs}: {:.1} ms (n{} -> n{})",
                    kind.as_str(),
                    case.name,
                    ms(run.measured()),
                    run.old_master,
                    run.new_master
                );
                // Where the time went: on the wire (the VIP's first answer and the new
                // MASTER's first advert, against Master_Down_Interval after the old MASTER's
                // last advert), and the new MASTER's own trace.
                let late = |at: Instant| {
                    ms(at.saturating_duration_since(run.failover.last_old_advert))
                        - ms(run.expected)
                };
                eprintln!(
                    "    wire: VIP answered {:+.1} ms, first advert {} (after the RFC value)",
                    late(run.failover.first_new_reply),
                    run.first_new_advert
                        .map_or("not seen".into(), |at| format!("{:+.1} ms", late(at))),
                );
                if let Some(trace) = &run.trace {
                    eprintln!("    new MASTER: {}", trace.trim());
                }
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
    FailoverResult {
        case: case.name,
        kind,
        load,
        summary: summarize(samples.clone()),
        samples,
        expected,
        failures,
        wrong_successor,
    }
}

/// What one repeat of a steady-state case measured, with the repeat's number (from 1).
type Repeated<T> = (usize, T);

/// Every measurement of one steady-state case for one daemon.
struct SteadyResult {
    steady: Steady,
    kind: DaemonKind,
    /// The 1-minute load average when the case began.
    load: f64,
    /// Per role: the instruction counts of the runs that kept up (each with its repeat, from
    /// 1), and how many did not.
    costs: Vec<(Role, Vec<Repeated<Cost>>, usize)>,
    /// The native measurements that succeeded, each with its repeat (from 1).
    natives: Vec<Repeated<NativeUsage>>,
    failures: usize,
}

impl SteadyResult {
    fn costs(&self, role: Role) -> (&[Repeated<Cost>], usize) {
        self.costs
            .iter()
            .find(|(r, _, _)| *r == role)
            .map_or((&[][..], 0), |(_, costs, lagging)| {
                (costs.as_slice(), *lagging)
            })
    }

    fn per_second(&self, role: Role) -> Option<Summary<f64>> {
        summarize(
            self.costs(role)
                .0
                .iter()
                .map(|(_, cost)| cost.per_second())
                .collect(),
        )
    }

    fn per_advert(&self, role: Role) -> Option<Summary<f64>> {
        summarize(
            self.costs(role)
                .0
                .iter()
                .filter_map(|(_, cost)| cost.per_advert(role))
                .collect(),
        )
    }

    fn native(&self, value: impl Fn(&NativeUsage) -> f64) -> Option<Summary<f64>> {
        summarize(
            self.natives
                .iter()
                .map(|(_, native)| value(native))
                .collect(),
        )
    }
}

/// Every repeat of one steady-state case for each of `kinds`, interleaved: repeat 1 runs the
/// daemons in the given order, repeat 2 in the reverse, and so on, so that a drift of the
/// machine during the case (a neighbour on the host, thermal state) falls on both daemons alike
/// instead of on whichever ran last.
fn run_steady(
    kinds: &[DaemonKind],
    steady: Steady,
    args: &Args,
    loads: &mut Vec<f64>,
) -> Vec<SteadyResult> {
    let mut results: Vec<SteadyResult> = kinds
        .iter()
        .map(|&kind| SteadyResult {
            steady,
            kind,
            load: load_average(),
            costs: ROLES.iter().map(|&r| (r, Vec::new(), 0)).collect(),
            natives: Vec::new(),
            failures: 0,
        })
        .collect();
    for run in 1..=args.repeat {
        for index in interleaved(results.len(), run) {
            measure_steady_once(&mut results[index], run, args, loads);
        }
    }
    results
}

/// The order of `count` daemons in repeat `run` (from 1): as given in odd repeats, reversed in
/// even ones.
fn interleaved(count: usize, run: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if run.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// Repeat `run` of one daemon's steady-state case: the native window, then the instruction
/// counts of each role, each in a fresh lab, folded into `result`.
fn measure_steady_once(result: &mut SteadyResult, run: usize, args: &Args, loads: &mut Vec<f64>) {
    let (kind, steady) = (result.kind, result.steady);
    let name = format!("steady-{}", steady.name());
    if !args.no_native {
        loads.push(load_average());
        match steady::measure_native(kind, steady, Duration::from_secs(args.window)) {
            Ok(native) => {
                for role in ROLES {
                    let usage = native.of(role);
                    eprintln!(
                        "  {} {name} {} run {run}/{}: {:.3} % of a core{}, {:.1} MiB ({:.1} anonymous), {:.1} wakeups/s",
                        kind.as_str(),
                        role.as_str(),
                        args.repeat,
                        usage.cpu_percent,
                        if usage.precise { "" } else { " (ticks)" },
                        usage.rss_kib as f64 / 1024.0,
                        usage.rss_anon_kib as f64 / 1024.0,
                        usage.wakeups_per_second,
                    );
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "case": name, "daemon": kind.as_str(), "role": role.as_str(),
                                "run": run, "window_s": usage.window.as_secs_f64(),
                                "cpu_percent": usage.cpu_percent, "rss_kib": usage.rss_kib,
                                "rss_anon_kib": usage.rss_anon_kib,
                                "wakeups_per_s": usage.wakeups_per_second,
                                "adverts": native.wire.adverts(role),
                                "backup_sent": native.wire.backup_sent,
                            })
                        );
                    }
                }
                result.natives.push((run, native));
            }
            Err(e) => {
                eprintln!("  {} {name} native run {run} failed: {e}", kind.as_str());
                result.failures += 1;
            }
        }
    }
    if !args.no_cost {
        for (role, costs, lagging) in &mut result.costs {
            match steady::measure_cost(
                kind,
                steady,
                *role,
                Duration::from_secs(args.cost_window),
                args.keep_profiles.as_deref(),
            ) {
                Ok(cost) => {
                    eprintln!(
                        "  {} {name} {} run {run}/{} (callgrind): {} instructions in {:.1} s, {:.0}/s, {} adverts ({:.0} expected), {}/advert{}",
                        kind.as_str(),
                        role.as_str(),
                        args.repeat,
                        cost.instructions,
                        cost.window.as_secs_f64(),
                        cost.per_second(),
                        cost.wire.adverts(*role),
                        cost.expected_adverts,
                        cost.per_advert(*role)
                            .map_or("-".into(), |v| format!("{v:.0}")),
                        if cost.kept_up() {
                            ""
                        } else {
                            " — NOT KEPT UP, left out"
                        },
                    );
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({
                                "case": name, "daemon": kind.as_str(), "role": role.as_str(),
                                "run": run, "instructions": cost.instructions,
                                "window_s": cost.window.as_secs_f64(),
                                "adverts": cost.wire.adverts(*role),
                                "expected_adverts": cost.expected_adverts,
                                "kept_up": cost.kept_up(),
                            })
                        );
                    }
                    if cost.kept_up() {
                        costs.push((run, cost));
                    } else {
                        *lagging += 1;
                    }
                }
                Err(e) => {
                    eprintln!(
                        "  {} {name} {} callgrind run {run} failed: {e}",
                        kind.as_str(),
                        role.as_str()
                    );
                    *lagging += 1;
                }
            }
        }
    }
}

/// A median with its spread over the runs: `12,345 (±0.3 %)`.
fn count_cell(summary: Option<Summary<f64>>) -> String {
    summary.map_or("–".into(), |s| {
        format!(
            "{} (spread {:.1} %)",
            thousands(s.median),
            s.spread_percent()
        )
    })
}

fn failover_markdown(results: &[FailoverResult], runs: usize) -> String {
    let mut out = format!(
        "Failover, three nodes (priorities 150/100/50), {runs} runs each, measured from the client \
         namespace: from the old MASTER's last advert to the first answer for the VIP from another MAC.\n\n\
         | case | daemon | median (min–max) | RFC 5798 value | median − RFC | failed runs |\n\
         | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in results {
        let (cell, minus) = r.summary.map_or(("–".into(), "–".into()), |s| {
            (
                format!("{:.1} ms ({:.1}–{:.1})", ms(s.median), ms(s.min), ms(s.max)),
                format!("{:+.1} ms", ms(s.median) - ms(r.expected)),
            )
        });
        let _ = writeln!(
            out,
            "| {} | {} | {cell} | {:.1} ms | {minus} | {} |",
            r.case,
            r.kind.as_str(),
            ms(r.expected),
            r.failures
        );
    }
    out
}

fn cost_markdown(results: &[SteadyResult], args: &Args) -> String {
    let mut out = format!(
        "Instructions (valgrind's callgrind: user-space instructions of the daemon and its \
         libraries, not the kernel's; the measured daemon under valgrind, its peer native; \
         {} s of steady state: the count of a window that long plus a quarter, minus that of \
         the quarter-length window just before it, which cancels the work each callgrind dump \
         itself causes; median of {} runs, spread = (max − min) ÷ median). Per advert: \
         instructions ÷ adverts the MASTER sent or the BACKUP received, counted on the wire.\n\n\
         | instances × advert | role | keepalived /s | kube-vrrp /s | keepalived /advert | kube-vrrp /advert | ours ÷ keepalived (per advert) |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
        args.cost_window, args.repeat
    );
    for steady in steady_cases() {
        for role in ROLES {
            let of = |kind| {
                results
                    .iter()
                    .find(|r| r.steady == steady && r.kind == kind)
            };
            let (k, a) = (of(DaemonKind::Keepalived), of(DaemonKind::Agent));
            if k.is_none() && a.is_none() {
                continue;
            }
            let cell = |r: Option<&SteadyResult>,
                        f: &dyn Fn(&SteadyResult) -> Option<Summary<f64>>| {
                let Some(r) = r else { return "–".to_owned() };
                let (_, lagging) = r.costs(role);
                let mut text = count_cell(f(r));
                if lagging > 0 {
                    let _ = write!(text, "; {lagging} run(s) did not keep up under valgrind");
                }
                text
            };
            let ratio = match (
                k.and_then(|r| r.per_advert(role)),
                a.and_then(|r| r.per_advert(role)),
            ) {
                (Some(k), Some(a)) if k.median > 0.0 => format!("{:.2}", a.median / k.median),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} × {} | {} | {} | {} | {} | {} | {ratio} |",
                steady.instances,
                kube_vrrp_e2e::agent::duration_string(steady.advert),
                role.as_str(),
                cell(k, &|r| r.per_second(role)),
                cell(a, &|r| r.per_second(role)),
                cell(k, &|r| r.per_advert(role)),
                cell(a, &|r| r.per_advert(role)),
            );
        }
    }
    out
}

fn native_markdown(results: &[SteadyResult], args: &Args, loads: &[f64]) -> String {
    let max_load = loads.iter().copied().fold(f64::NAN, f64::max);
    let mut out = format!(
        "CPU (percent of one core), resident memory and wakeups (context switches per second, \
         all threads) of both daemons of a native pair over {} s; median (min–max) of {} runs, \
         each in a fresh lab, the daemons taking turns (which goes first alternates per run); \
         load average at the start of a run: up to {max_load:.2}.\n\n\
         | instances × advert | role | keepalived CPU % | kube-vrrp CPU % | keepalived RSS MiB | kube-vrrp RSS MiB | keepalived wakeups/s | kube-vrrp wakeups/s |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        args.window, args.repeat
    );
    for steady in steady_cases() {
        for role in ROLES {
            let of = |kind| {
                results
                    .iter()
                    .find(|r| r.steady == steady && r.kind == kind && !r.natives.is_empty())
            };
            let (k, a) = (of(DaemonKind::Keepalived), of(DaemonKind::Agent));
            if k.is_none() && a.is_none() {
                continue;
            }
            let cell = |r: Option<&SteadyResult>, value: &dyn Fn(&NativeUsage) -> f64, decimals| {
                r.map_or("–".into(), |r| range_cell(r.native(value), decimals))
            };
            let _ = writeln!(
                out,
                "| {} × {} | {} | {} | {} | {} | {} | {} | {} |",
                steady.instances,
                kube_vrrp_e2e::agent::duration_string(steady.advert),
                role.as_str(),
                cell(k, &|n| n.of(role).cpu_percent, 3),
                cell(a, &|n| n.of(role).cpu_percent, 3),
                cell(k, &|n| n.of(role).rss_kib as f64 / 1024.0, 1),
                cell(a, &|n| n.of(role).rss_kib as f64 / 1024.0, 1),
                cell(k, &|n| n.of(role).wakeups_per_second, 1),
                cell(a, &|n| n.of(role).wakeups_per_second, 1),
            );
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (true, Some(record), Some(readme)) = (args.table_only, &args.record, &args.readme) {
        return regenerate_table(record, readme);
    }
    require_root();
    // Debug logging of every packet is not what the benchmark measures.
    kube_vrrp_e2e::agent::set_log_filter("info");
    if args.runs == 0 || args.repeat == 0 {
        bail!("--runs and --repeat must be at least 1");
    }
    if args.hold > 0 && args.record.is_some() {
        bail!("--hold is not recorded: the record's failover cases are disrupted at once");
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
    let (started, start_load) = (now_utc(), load_average());
    let began = Instant::now();
    let mut loads = Vec::new();
    let mut any_failed = false;
    let mut failovers = Vec::new();
    if !args.no_failover {
        for case in cases() {
            if !selected(args.only.as_deref(), case.name) {
                continue;
            }
            for &kind in kinds {
                loads.push(load_average());
                let result = run_case(kind, &case, args.runs, Duration::from_secs(args.hold));
                say_keepalived_failed(kind, result.failures);
                any_failed |= fails_the_bench(kind, result.failures);
                if let Some(s) = result.summary {
                    eprintln!(
                        "{} {}: median {:.1} ms ({:.1}–{:.1}), RFC {:.1} ms, {:+.1} ms",
                        case.name,
                        kind.as_str(),
                        ms(s.median),
                        ms(s.min),
                        ms(s.max),
                        ms(result.expected),
                        ms(s.median) - ms(result.expected)
                    );
                }
                if args.json {
                    let s = result.summary;
                    println!(
                        "{}",
                        serde_json::json!({
                            "case": case.name, "daemon": kind.as_str(), "runs": args.runs,
                            "min_ms": s.map(|s| ms(s.min)), "median_ms": s.map(|s| ms(s.median)),
                            "max_ms": s.map(|s| ms(s.max)), "rfc_ms": ms(result.expected),
                            "failures": result.failures, "wrong_successor": result.wrong_successor,
                        })
                    );
                }
                failovers.push(result);
            }
        }
    }
    let mut steadies = Vec::new();
    if !(args.no_cost && args.no_native) {
        for steady in steady_cases() {
            if !selected(args.only.as_deref(), &format!("steady-{}", steady.name())) {
                continue;
            }
            for result in run_steady(kinds, steady, &args, &mut loads) {
                say_keepalived_failed(result.kind, result.failures);
                any_failed |= fails_the_bench(result.kind, result.failures);
                steadies.push(result);
            }
        }
    }
    println!(
        "\n## Measured with `make bench` ({started}, {}; load average {start_load:.2} at the start; {:.0} min)\n",
        machine(),
        began.elapsed().as_secs_f64() / 60.0
    );
    if !failovers.is_empty() {
        println!("{}", failover_markdown(&failovers, args.runs));
    }
    if !steadies.is_empty() && !args.no_cost {
        println!("{}", cost_markdown(&steadies, &args));
    }
    if !steadies.is_empty() && !args.no_native {
        println!("{}", native_markdown(&steadies, &args, &loads));
    }
    if let Some(record) = &args.record {
        let run = RunInfo {
            started: started.clone(),
            machine: machine(),
            commit: commit(),
        };
        let measured = records(&run, &failovers, &steadies);
        bench_record::append(record, &measured)
            .with_context(|| format!("appending to {}", record.display()))?;
        eprintln!("{}: {} values recorded", record.display(), measured.len());
        if let Some(readme) = &args.readme {
            regenerate_table(record, readme)?;
        }
    }
    if any_failed {
        bail!("some of the agent's runs failed (see above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_four_steady_cases_and_each_has_its_own_name() {
        let names: Vec<String> = steady_cases().iter().map(Steady::name).collect();
        assert_eq!(names, ["1x1s", "1x10ms", "255x1s", "255x10ms"]);
    }

    #[test]
    fn repeats_alternate_which_daemon_goes_first() {
        assert_eq!(interleaved(2, 1), [0, 1]);
        assert_eq!(interleaved(2, 2), [1, 0]);
        assert_eq!(interleaved(2, 3), [0, 1]);
        assert_eq!(interleaved(1, 2), [0]);
    }
}
