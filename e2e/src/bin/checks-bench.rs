//! `checks-bench`: 1,000 real servers checked over HTTP every second, against local servers.
//!
//! - Host (real CPU, namespace lab): the agent in node n1 runs a VirtualIP (VRRPv3, adverts
//!   every 100 ms) and 4 VirtualServers × 250 real servers (HTTP checks at 1 s) served by
//!   one process in the client namespace; IPVS is unavailable on this kernel, which the
//!   checks do not need. Measured: the agent's CPU and RSS, and the advert interval jitter
//!   at the lab switch, with the checks running and without them.
//! - Guest (QEMU, software emulation, real IPVS): the same load under keepalived's checker
//!   process and under the agent, one after the other; their CPU and RSS side by side, the
//!   HTTP requests the servers answered per second (the load both really put on them), the
//!   servers' own CPU and the guest's busy time (whether the one vCPU saturates), the real
//!   servers each left in IPVS, and the agent's IPVS syncs, verdict changes and check
//!   results per second (optionally each daemon traced after its window: its system calls or
//!   where its CPU goes, kernel included, `--trace strace|perf`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::Agent;
use kube_vrrp_e2e::callgrind::Callgrind;
use kube_vrrp_e2e::guest::callgrind;
use kube_vrrp_e2e::guest::lab::IpvsLab;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::resources::{self, Usage, parse_stat_split, parse_vm_rss_kib};
use kube_vrrp_e2e::{Lab, LabSpec};

#[derive(Debug, Parser)]
#[command(
    about = "Health check benchmark: 1,000 real servers at 1 s, agent vs keepalived (needs root)"
)]
struct Args {
    /// Measuring window, in seconds.
    #[arg(long, default_value_t = 30)]
    window: u64,
    /// Virtual servers × real servers each.
    #[arg(long, default_value_t = 4)]
    servers: u16,
    #[arg(long, default_value_t = 250)]
    real_servers: u16,
    /// Skip the guest (keepalived) part.
    #[arg(long)]
    host_only: bool,
    /// Skip the host (jitter) part.
    #[arg(long)]
    guest_only: bool,
    /// Host part only, the agent under valgrind's callgrind: instructions per answered check
    /// (the run with checks less the run without, over the checks answered). The dumps are
    /// kept for `callgrind_annotate`.
    #[arg(long)]
    callgrind: bool,
    /// Guest part only, each daemon under valgrind's callgrind in the guest: instructions per
    /// answered check of keepalived's checker process and of the agent (less the agent
    /// without checks). Use a small load (e.g. `--servers 1 --real-servers 20`): the guest
    /// is emulated and callgrind slows it again some 50 times. Known not to work yet: in the
    /// runs of 2026-11-30 no dump of keepalived's forked checker arrived through `vgdb`
    /// within 120 s, and the bench stops with that error.
    #[arg(long)]
    guest_callgrind: bool,
    /// Guest part: how often the agent re-reads IPVS, in milliseconds (its default; the
    /// labs use 1,000).
    #[arg(long, default_value_t = 10_000)]
    ipvs_resync_ms: u64,
    /// Guest part: after each daemon's last window, trace it with the tool carried into the
    /// guest: `strace` counts its system calls over 10 s (`strace -c -f`), `strace-log` lists
    /// those of one second in order, `perf` samples where its CPU goes over 10 s, kernel
    /// included (`perf record -e cpu-clock`: by object, by kernel entry, top symbols).
    #[arg(long, value_enum)]
    trace: Option<Tracer>,
    /// Host part: the agent's `--realtime-priority` (SCHED_FIFO for the threads that send
    /// adverts, as the chart's `agent.realtimePriority` sets it); 0 leaves the default
    /// scheduler.
    #[arg(long, default_value_t = 0)]
    realtime_priority: u8,
    /// Guest part: rounds of one window per daemon, keepalived first in the odd ones and the
    /// agent first in the even ones (the emulated guest's speed drifts; one round is noise).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
}

/// A tool that looks into a daemon in the guest after its window.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Tracer {
    Strace,
    /// Each system call of one second, in order (`strace -f -tt`): the first 80 lines.
    StraceLog,
    Perf,
}

impl Tracer {
    fn program(self) -> &'static str {
        match self {
            Tracer::Strace | Tracer::StraceLog => "strace",
            Tracer::Perf => "perf",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Tracer::Strace => "system calls, strace -c -f",
            Tracer::StraceLog => "system calls in order, strace -f -tt (one second)",
            Tracer::Perf => "CPU by symbol, perf record -e cpu-clock (kernel included)",
        }
    }

    /// What the tool saw of `pid` (all its threads) over `seconds`: the head of its table,
    /// busiest first.
    fn trace(self, lab: &mut IpvsLab, pid: u32, seconds: u64) -> anyhow::Result<String> {
        let command = match self {
            Tracer::Strace => format!(
                "strace -f -c -p {pid} -o /tmp/strace.out & s=$!; sleep {seconds}; kill -INT $s; wait $s; head -14 /tmp/strace.out"
            ),
            Tracer::StraceLog => format!(
                "strace -f -tt -p {pid} -o /tmp/strace.out & s=$!; sleep 1; kill -INT $s; wait $s; sed -n 20,100p /tmp/strace.out"
            ),
            Tracer::Perf => format!(
                "echo 0 > /proc/sys/kernel/kptr_restrict; echo -1 > /proc/sys/kernel/perf_event_paranoid
perf record -q -g -e cpu-clock -F 1000 -p {pid} -o /tmp/perf.data -- sleep {seconds} > /dev/null 2>&1
echo 'by object:'
perf report -i /tmp/perf.data --stdio --no-children --sort dso -g none 2>/dev/null | grep '%'
echo 'kernel entries, inclusive (system calls, faults, interrupts):'
perf report -i /tmp/perf.data --stdio --children --sort sym -g none 2>/dev/null | grep -E '\\] (__x64_sys_|__do_sys_|exc_|asm_exc|asm_sysvec|sysvec_|irq_exit|__irq_exit|do_softirq|entry_SYSCALL)' | head -30
echo 'top symbols, self:'
perf report -i /tmp/perf.data --stdio --no-children --sort dso,sym -g none --percent-limit 1 2>/dev/null | grep '%' | head -25"
            ),
        };
        Ok(lab
            .guest
            .run_for(&command, Duration::from_secs(seconds + 120))?
            .text)
    }
}

const FIRST_PORT: u16 = 10_000;
const ADVERT: Duration = Duration::from_millis(100);

fn virtual_servers(vip_ref: &str, rs_address: &str, servers: u16, per: u16) -> String {
    let mut out = String::new();
    for s in 0..servers {
        let _ = write!(
            out,
            "---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata:
  name: bench-{s}
spec:
  virtualIPRef: {vip_ref}
  port: {port}
  scheduler: rr
  healthCheck:
    http: {{path: /, expectedStatus: [200]}}
    interval: 1s
    timeout: 1s
  realServers:
",
            port = 8000 + s
        );
        for r in 0..per {
            let _ = writeln!(
                out,
                "    - {{address: {rs_address}, port: {}, weight: 1}}",
                FIRST_PORT + s * per + r
            );
        }
    }
    out
}

fn keepalived_conf(vip: &str, rs_address: &str, servers: u16, per: u16) -> String {
    let mut out = String::from("global_defs {\n  router_id bench\n}\n");
    for s in 0..servers {
        let _ = writeln!(
            out,
            "virtual_server {vip} {} {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP",
            8000 + s
        );
        for r in 0..per {
            let port = FIRST_PORT + s * per + r;
            let _ = writeln!(
                out,
                "  real_server {rs_address} {port} {{\n    weight 1\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 1\n    }}\n  }}"
            );
        }
        out.push_str("}\n");
    }
    out
}

/// Advert intervals against the nominal one, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Jitter {
    p50: f64,
    p99: f64,
    max: f64,
    /// Intervals longer than the nominal one by more than 1 ms.
    over_1ms: usize,
    intervals: usize,
}

fn jitter(at: &[Instant]) -> Option<Jitter> {
    let mut late: Vec<f64> = at
        .windows(2)
        .map(|w| (w[1].duration_since(w[0]).as_secs_f64() - ADVERT.as_secs_f64()) * 1000.0)
        .collect();
    if late.is_empty() {
        return None;
    }
    late.sort_by(f64::total_cmp);
    let pick = |q: f64| late[((late.len() - 1) as f64 * q).round() as usize];
    Some(Jitter {
        p50: pick(0.5),
        p99: pick(0.99),
        max: *late.last()?,
        over_1ms: late.iter().filter(|&&ms| ms > 1.0).count(),
        intervals: late.len(),
    })
}

/// What one host run measured: usage natively, instructions under callgrind.
enum Cost {
    Native(Usage, Jitter),
    Instructions(u64),
}

/// One host run: its cost, the checks the servers answered per second, and the real servers
/// the agent saw healthy at the end.
struct HostRun {
    cost: Cost,
    answered_per_second: f64,
    checked: usize,
}

struct HostResult {
    with_checks: HostRun,
    without_checks: HostRun,
}

/// The answers the servers counted so far (their count file, written every second).
fn answered(count_file: &std::path::Path) -> u64 {
    std::fs::read_to_string(count_file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

fn host_part(
    window: Duration,
    servers: u16,
    per: u16,
    realtime_priority: u8,
    callgrind: Option<&Callgrind>,
) -> anyhow::Result<HostResult> {
    let binary = kube_vrrp_e2e::agent::release_binary().context("the agent binary")?;
    let peer = binary.with_file_name("ipvs-lab-peer");
    let lab = Lab::new(LabSpec {
        nodes: 1,
        ipv6: false,
    })?;
    let client_ip = addressing::client_ip(Family::V4);
    let vip = addressing::vip(Family::V4, 0);
    let last = FIRST_PORT + servers * per - 1;
    let dir = lab.workdir().join("checks-bench");
    std::fs::create_dir_all(&dir)?;
    let count_file = dir.join("http-requests");
    let mut backend = lab.client().spawn(&[
        peer.to_str().context("peer path")?,
        "serve-http",
        "--address",
        &client_ip.to_string(),
        "--ports",
        &format!("{FIRST_PORT}-{last}"),
        "--count-file",
        count_file.to_str().context("count file path")?,
    ])?;
    let realtime_args = if realtime_priority > 0 {
        vec![
            "--realtime-priority".to_owned(),
            realtime_priority.to_string(),
        ]
    } else {
        Vec::new()
    };
    let measure = |with_checks: bool| -> anyhow::Result<HostRun> {
        let manifests = dir.join(if with_checks { "with" } else { "without" });
        std::fs::create_dir_all(&manifests)?;
        let mut yaml = format!(
            "apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{{type: InternalIP, address: {}}}]
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: bench
spec:
  addresses: [\"{vip}\"]
  virtualRouterID: 51
  advertInterval: 100ms
",
            addressing::node_ip(1, Family::V4)
        );
        if with_checks {
            yaml.push_str(&virtual_servers(
                "bench",
                &client_ip.to_string(),
                servers,
                per,
            ));
        }
        std::fs::write(manifests.join("bench.yaml"), yaml)?;
        let agent = match callgrind {
            None => {
                Agent::start_with_manifests_and_args(&binary, &lab, 1, &manifests, &realtime_args)?
            }
            Some(callgrind) => Agent::start_with_manifests_wrapped(
                &binary,
                &lab,
                1,
                &manifests,
                &callgrind.prefix(),
            )?,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while lab.holders(vip.addr())? != [1] {
            if Instant::now() >= deadline {
                bail!("n1 never held {vip}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Past start-up: every first check done (they spread over the first second).
        std::thread::sleep(Duration::from_secs(if callgrind.is_some() {
            15
        } else {
            5
        }));
        let answered_before = answered(&count_file);
        let started = Instant::now();
        let cost = match callgrind {
            None => {
                let sniffer = lab.sniff()?;
                let usage = resources::measure(agent.pid(), window)?;
                let adverts: Vec<Instant> = sniffer.adverts().into_iter().map(|a| a.at).collect();
                Cost::Native(usage, jitter(&adverts).context("no adverts seen")?)
            }
            Some(callgrind) => {
                let pids = resources::process_tree(agent.pid());
                callgrind.dump(&pids)?;
                std::thread::sleep(window);
                Cost::Instructions(callgrind.dump(&pids)?)
            }
        };
        let answered_per_second = answered(&count_file).saturating_sub(answered_before) as f64
            / started.elapsed().as_secs_f64();
        let status = agent.status_document(&lab)?;
        let checked = status["checkers"].as_array().map_or(0, |all| {
            all.iter()
                .filter(|c| c["lastResult"] == "Passed" && c["healthy"] == true)
                .count()
        });
        drop(agent);
        Ok(HostRun {
            cost,
            answered_per_second,
            checked,
        })
    };
    let without_checks = measure(false)?;
    let with_checks = measure(true)?;
    let _ = backend.kill();
    let _ = backend.wait();
    Ok(HostResult {
        with_checks,
        without_checks,
    })
}

fn print_host(
    host: &HostResult,
    total: u32,
    window: Duration,
    realtime_priority: u8,
) -> anyhow::Result<()> {
    let (with, without) = (&host.with_checks, &host.without_checks);
    match (&with.cost, &without.cost) {
        (Cost::Native(usage, jitter_with), Cost::Native(_, jitter_without)) => {
            let scheduling = if realtime_priority > 0 {
                format!("SCHED_FIFO {realtime_priority}")
            } else {
                "the default scheduler".to_owned()
            };
            println!(
                "\nhost (namespace lab, real CPU), agent with a VRRPv3 MASTER advertising every 100 ms ({scheduling}):"
            );
            println!(
                "  agent CPU {:.2} % of a core, RSS {:.1} MiB; {:.0} checks answered/s; {} of {total} real servers checked healthy",
                usage.cpu_percent,
                usage.rss_kib as f64 / 1024.0,
                with.answered_per_second,
                with.checked
            );
            for (what, j) in [
                ("without checks", jitter_without),
                ("with checks", jitter_with),
            ] {
                println!(
                    "  advert interval - 100 ms {what:<15}: p50 {:+.3} ms, p99 {:+.3} ms, max {:+.3} ms; {} of {} intervals over +1 ms",
                    j.p50, j.p99, j.max, j.over_1ms, j.intervals
                );
            }
        }
        (Cost::Instructions(with_checks), Cost::Instructions(without_checks)) => {
            let seconds = window.as_secs_f64();
            let checks = with.answered_per_second * seconds;
            println!(
                "\nhost (namespace lab), agent under callgrind (user-space instructions over {seconds:.0} s):"
            );
            println!(
                "  without checks {:.2} M/s; with checks {:.2} M/s, {:.0} checks answered/s, {} of {total} real servers checked healthy",
                *without_checks as f64 / seconds / 1e6,
                *with_checks as f64 / seconds / 1e6,
                with.answered_per_second,
                with.checked
            );
            println!(
                "  per answered check: {:.0} instructions (all of the agent), {:.0} beyond the run without checks",
                *with_checks as f64 / checks.max(1.0),
                with_checks.saturating_sub(*without_checks) as f64 / checks.max(1.0)
            );
        }
        _ => bail!("the two host runs measured different things"),
    }
    if with.checked < total as usize {
        bail!(
            "only {} of {total} real servers were checked healthy",
            with.checked
        );
    }
    Ok(())
}

/// What a guest process has used so far.
#[derive(Debug, Clone, Copy)]
struct GuestSample {
    /// User and system CPU, clock ticks (every thread's).
    user: u64,
    system: u64,
    /// Context switches of the threads alive now.
    switches: u64,
    rss_kib: u64,
}

fn guest_sample(lab: &mut IpvsLab, pid: u32) -> anyhow::Result<GuestSample> {
    let stat = lab.guest.ok(&format!("cat /proc/{pid}/stat"))?;
    let status = lab.guest.ok(&format!("cat /proc/{pid}/status"))?;
    let switches = lab.guest.ok(&format!(
        "awk '/ctxt_switches/ {{s += $2}} END {{print s + 0}}' /proc/{pid}/task/*/status"
    ))?;
    let (user, system, _) = parse_stat_split(&stat).context("guest /proc/PID/stat")?;
    Ok(GuestSample {
        user,
        system,
        switches: switches.trim().parse().context("guest context switches")?,
        rss_kib: parse_vm_rss_kib(&status).unwrap_or(0),
    })
}

/// The guest's CPU ticks: (busy, all), from the first line of `/proc/stat`.
fn guest_cpu(lab: &mut IpvsLab) -> anyhow::Result<(u64, u64)> {
    let text = lab.guest.ok("head -1 /proc/stat")?;
    let ticks: Vec<u64> = text
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let all: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((all.saturating_sub(idle), all))
}

fn guest_requests(lab: &mut IpvsLab) -> anyhow::Result<u64> {
    Ok(lab
        .guest
        .ok("cat /tmp/http-requests 2>/dev/null || echo 0")?
        .trim()
        .parse()
        .unwrap_or(0))
}

/// What one daemon cost in the guest over the window.
#[derive(Debug, Clone, Copy)]
struct GuestUsage {
    /// The daemon's CPU, percent of the one vCPU, and the part of it in the kernel.
    cpu: f64,
    system: f64,
    /// The daemon's context switches per second (all its threads).
    switches: f64,
    rss_mib: f64,
    /// HTTP answers the servers sent per second.
    answered: f64,
    /// The servers' own CPU, percent of the vCPU.
    server_cpu: f64,
    /// The whole guest's busy time, percent of the vCPU.
    busy: f64,
}

/// [`GuestUsage`] of `pid` over `window` (guest clock ticks at 100 Hz), the servers being
/// process `server`.
fn guest_usage(
    lab: &mut IpvsLab,
    pid: u32,
    server: u32,
    window: Duration,
) -> anyhow::Result<GuestUsage> {
    let t0 = lab.now()?;
    let c0 = guest_sample(lab, pid)?;
    let s0 = guest_sample(lab, server)?;
    let (b0, a0) = guest_cpu(lab)?;
    let r0 = guest_requests(lab)?;
    std::thread::sleep(window);
    let t1 = lab.now()?;
    let c1 = guest_sample(lab, pid)?;
    let s1 = guest_sample(lab, server)?;
    let (b1, a1) = guest_cpu(lab)?;
    let r1 = guest_requests(lab)?;
    let elapsed = t1 - t0;
    let percent = |ticks: u64| ticks as f64 / 100.0 / elapsed * 100.0;
    Ok(GuestUsage {
        cpu: percent((c1.user + c1.system).saturating_sub(c0.user + c0.system)),
        system: percent(c1.system.saturating_sub(c0.system)),
        switches: c1.switches.saturating_sub(c0.switches) as f64 / elapsed,
        rss_mib: c1.rss_kib as f64 / 1024.0,
        answered: r1.saturating_sub(r0) as f64 / elapsed,
        server_cpu: percent((s1.user + s1.system).saturating_sub(s0.user + s0.system)),
        busy: b1.saturating_sub(b0) as f64 / a1.saturating_sub(a0).max(1) as f64 * 100.0,
    })
}

/// The agent's counters (its log and `/metrics`): syncs of IPVS that sent requests, real
/// servers that rose or fell, and check attempts by result.
fn agent_counters(lab: &mut IpvsLab) -> anyhow::Result<BTreeMap<String, f64>> {
    let listen = kube_vrrp_e2e::guest::lab::LISTEN;
    let text = lab.guest.ok(&format!(
        "echo ipvs-syncs $(grep -c 'IPVS synchronised' /tmp/agent.log)
echo rose-or-fell $(grep -cE 'real server (rose|fell)' /tmp/agent.log)
wget -q -O - http://{listen}/metrics | awk -F'result=\"' '/^kube_vrrp_realserver_checks_total/ {{split($2, a, \"\\\"\"); n = split($0, f, \" \"); s[a[1]] += f[n]}} END {{for (k in s) printf \"checks-%s %d\\n\", k, s[k]}}'"
    ))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect())
}

fn agent_pid(lab: &mut IpvsLab) -> anyhow::Result<u32> {
    Ok(lab
        .guest
        .ok("pidof kube-vrrp-agent")?
        .split_whitespace()
        .next()
        .context("the agent's pid")?
        .parse()?)
}

/// One round: each daemon's window, in the order given (the guest's state after one daemon,
/// e.g. the servers' TIME_WAIT sockets, meets the next).
struct GuestRound {
    keepalived_first: bool,
    keepalived: GuestUsage,
    agent: GuestUsage,
}

impl GuestRound {
    /// The agent's CPU per answered check over keepalived's: all of it, and less `idle` (its
    /// CPU without checks).
    fn ratios(&self, idle: &GuestUsage) -> (f64, f64) {
        let per_answer = |cpu: f64, u: &GuestUsage| cpu / u.answered.max(f64::MIN_POSITIVE);
        let keepalived = per_answer(self.keepalived.cpu, &self.keepalived).max(f64::MIN_POSITIVE);
        (
            per_answer(self.agent.cpu, &self.agent) / keepalived,
            per_answer(self.agent.cpu - idle.cpu, &self.agent) / keepalived,
        )
    }
}

struct GuestResult {
    rounds: Vec<GuestRound>,
    /// The agent without VirtualServers (VRRP only).
    idle: GuestUsage,
    /// Real servers in IPVS at the end of each daemon's last window.
    in_ipvs: (usize, usize),
    /// The agent's checkers at the end of its last window: how many per last result, and
    /// healthy.
    agent_checkers: (BTreeMap<String, usize>, usize),
    /// The agent's counters over its last window, per second.
    agent_rates: BTreeMap<String, f64>,
    /// What the tracer saw of each daemon after its last window (keepalived's, the agent's).
    traces: Option<(Tracer, String, String)>,
}

/// Real servers in IPVS, over every virtual service.
fn real_servers_in_ipvs(lab: &mut IpvsLab) -> anyhow::Result<usize> {
    Ok(lab.services()?.iter().map(|s| s.real_servers.len()).sum())
}

/// The agent's checkers by last result, and how many are healthy.
fn checker_summary(status: &serde_json::Value) -> (BTreeMap<String, usize>, usize) {
    let mut by_result = BTreeMap::new();
    let mut healthy = 0;
    for checker in status["checkers"].as_array().into_iter().flatten() {
        let result = checker["lastResult"].as_str().unwrap_or("none").to_owned();
        *by_result.entry(result).or_insert(0) += 1;
        healthy += usize::from(checker["healthy"] == true);
    }
    (by_result, healthy)
}

/// The address of the guest's HTTP servers (in the `backends` namespace).
const GUEST_BACKEND: &str = "198.51.100.21";

/// Starts the guest's HTTP servers (one process, `servers × per` ports); their pid.
fn start_guest_servers(lab: &mut IpvsLab, servers: u16, per: u16) -> anyhow::Result<u32> {
    // 1,000 listeners and their connections: past the guest's default of 1,024 open files.
    let last = FIRST_PORT + servers * per - 1;
    lab.guest
        .ok(&format!(
            "/sbin/ip -n backends addr add {GUEST_BACKEND}/24 dev eth0
ulimit -n 8192
/sbin/ip netns exec backends /opt/kv/ipvs-lab-peer serve-http --address {GUEST_BACKEND} --ports {FIRST_PORT}-{last} --count-file /tmp/http-requests > /tmp/serve-http.log 2>&1 &
echo $!"
        ))?
        .trim()
        .parse()
        .context("the servers' pid")
}

/// Instructions of one guest process over a window, with the HTTP answers the servers sent
/// meanwhile.
#[derive(Debug, Clone, Copy)]
struct GuestInstructions {
    instructions: u64,
    answered: u64,
    seconds: f64,
}

impl GuestInstructions {
    fn per_second(&self) -> f64 {
        self.instructions as f64 / self.seconds
    }

    fn answered_per_second(&self) -> f64 {
        self.answered as f64 / self.seconds
    }
}

/// Counts `pid`'s instructions under callgrind over `window`.
fn guest_instructions(
    lab: &mut IpvsLab,
    pid: u32,
    window: Duration,
) -> anyhow::Result<GuestInstructions> {
    callgrind::dump(&mut lab.guest, pid)?;
    let r0 = guest_requests(lab)?;
    let t0 = lab.now()?;
    std::thread::sleep(window);
    let instructions = callgrind::dump(&mut lab.guest, pid)?;
    let t1 = lab.now()?;
    let r1 = guest_requests(lab)?;
    Ok(GuestInstructions {
        instructions,
        answered: r1.saturating_sub(r0),
        seconds: t1 - t0,
    })
}

/// The pid of keepalived's checker process (from its `-c` pid file); when it is missing,
/// the error carries keepalived's output and log.
fn keepalived_checker_pid(lab: &mut IpvsLab) -> anyhow::Result<u32> {
    lab.guest
        .ok("cat /run/keepalived/c.pid || { cat /tmp/keepalived.out; tail -20 /tmp/keepalived.log; false; }")?
        .trim()
        .parse()
        .context("keepalived's checker pid")
}

/// Waits (up to `timeout`) until IPVS holds `want` real servers.
fn wait_for_ipvs(lab: &mut IpvsLab, want: usize, timeout: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = real_servers_in_ipvs(lab)?;
        if now >= want || Instant::now() >= deadline {
            return Ok(now);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// What the guest run under callgrind measured.
struct GuestCallgrindResult {
    keepalived: GuestInstructions,
    agent: GuestInstructions,
    idle: GuestInstructions,
    /// Real servers in IPVS before each daemon's window.
    in_ipvs: (usize, usize),
}

fn guest_callgrind_part(
    window: Duration,
    servers: u16,
    per: u16,
    resync: Duration,
) -> anyhow::Result<GuestCallgrindResult> {
    let total = usize::from(servers) * usize::from(per);
    let mut lab =
        IpvsLab::boot_with_archives("release", &["keepalived"], &[callgrind::archive()?])?;
    start_guest_servers(&mut lab, servers, per)?;
    let warm_up = Duration::from_secs(180);
    let vip = kube_vrrp_e2e::guest::lab::VIP;
    lab.start_keepalived_under(
        &keepalived_conf(vip, GUEST_BACKEND, servers, per),
        &callgrind::prefix(),
    )?;
    let keepalived_in_ipvs = wait_for_ipvs(&mut lab, total, warm_up)?;
    std::thread::sleep(Duration::from_secs(10));
    let checker = keepalived_checker_pid(&mut lab)?;
    let keepalived = guest_instructions(&mut lab, checker, window)?;
    lab.guest.ok(&format!(
        "kill -KILL $(cat /tmp/keepalived.pid) {checker} 2>/dev/null; sleep 1; ipvsadm -C"
    ))?;

    lab.write_manifest("bench.yaml", &kube_vrrp_e2e::guest::lab::node_and_vip())?;
    lab.start_agent_under("guest", resync, &callgrind::prefix(), "")?;
    std::thread::sleep(Duration::from_secs(60));
    let idle_pid = agent_pid(&mut lab)?;
    let idle = guest_instructions(&mut lab, idle_pid, window / 2)?;
    lab.stop_agent("KILL")?;

    let mut yaml = kube_vrrp_e2e::guest::lab::node_and_vip();
    yaml.push_str(&virtual_servers("web", GUEST_BACKEND, servers, per));
    lab.write_manifest("bench.yaml", &yaml)?;
    lab.start_agent_under("guest", resync, &callgrind::prefix(), "")?;
    let agent_in_ipvs = wait_for_ipvs(&mut lab, total, warm_up)?;
    std::thread::sleep(Duration::from_secs(10));
    let pid = agent_pid(&mut lab)?;
    let agent = guest_instructions(&mut lab, pid, window)?;
    lab.stop_agent("KILL")?;
    Ok(GuestCallgrindResult {
        keepalived,
        agent,
        idle,
        in_ipvs: (keepalived_in_ipvs, agent_in_ipvs),
    })
}

fn print_guest_callgrind(result: &GuestCallgrindResult, total: usize) {
    println!(
        "\nguest (QEMU TCG, real IPVS), each daemon under callgrind, user-space instructions:"
    );
    println!(
        "  {:<30} {:>12} {:>15} {:>22} {:>9}",
        "", "M instr/s", "answered req/s", "instr per answered", "in IPVS"
    );
    let idle_rate = result.idle.per_second();
    let agent_checks = (result.agent.per_second() - idle_rate).max(0.0);
    let per = |rate: f64, run: &GuestInstructions| rate / run.answered_per_second().max(1e-9);
    for (name, rate, run, in_ipvs) in [
        (
            "keepalived checker process",
            result.keepalived.per_second(),
            &result.keepalived,
            result.in_ipvs.0.to_string(),
        ),
        (
            "kube-vrrp agent (all of it)",
            result.agent.per_second(),
            &result.agent,
            result.in_ipvs.1.to_string(),
        ),
        (
            "agent less its run w/o checks",
            agent_checks,
            &result.agent,
            String::new(),
        ),
    ] {
        println!(
            "  {name:<30} {:>12.2} {:>15.1} {:>22.0} {:>9}",
            rate / 1e6,
            run.answered_per_second(),
            per(rate, run),
            in_ipvs
        );
    }
    println!(
        "  agent without checks (VRRP): {:.2} M instr/s; of {total} real servers; windows {:.0} s / {:.0} s / {:.0} s",
        idle_rate / 1e6,
        result.keepalived.seconds,
        result.agent.seconds,
        result.idle.seconds
    );
    println!(
        "  agent ÷ keepalived per answered check: {:.2} (checks alone: {:.2})",
        per(result.agent.per_second(), &result.agent)
            / per(result.keepalived.per_second(), &result.keepalived).max(1e-9),
        per(agent_checks, &result.agent)
            / per(result.keepalived.per_second(), &result.keepalived).max(1e-9)
    );
}

/// keepalived's checker over one window: its usage, the real servers in IPVS at the end, and
/// the tracer's view when asked for.
fn keepalived_window(
    lab: &mut IpvsLab,
    server: u32,
    load: (u16, u16),
    window: Duration,
    tracer: Option<Tracer>,
) -> anyhow::Result<(GuestUsage, usize, Option<String>)> {
    let vip = kube_vrrp_e2e::guest::lab::VIP;
    // keepalived's checker (its pid from -c), warmed up.
    lab.start_keepalived(&keepalived_conf(vip, GUEST_BACKEND, load.0, load.1))?;
    std::thread::sleep(Duration::from_secs(15));
    let checker = keepalived_checker_pid(lab)?;
    let usage = guest_usage(lab, checker, server, window)?;
    let in_ipvs = real_servers_in_ipvs(lab)?;
    let trace = match tracer {
        Some(tracer) => Some(tracer.trace(lab, checker, 10)?),
        None => None,
    };
    lab.stop_keepalived()?;
    lab.guest.ok("ipvsadm -C")?;
    Ok((usage, in_ipvs, trace))
}

/// What the agent did over one window with the checks, beside its [`GuestUsage`].
struct AgentWindow {
    usage: GuestUsage,
    rates: BTreeMap<String, f64>,
    in_ipvs: usize,
    checkers: (BTreeMap<String, usize>, usize),
    trace: Option<String>,
}

fn agent_window(
    lab: &mut IpvsLab,
    server: u32,
    load: (u16, u16),
    window: Duration,
    resync: Duration,
    tracer: Option<Tracer>,
) -> anyhow::Result<AgentWindow> {
    let mut yaml = kube_vrrp_e2e::guest::lab::node_and_vip();
    yaml.push_str(&virtual_servers("web", GUEST_BACKEND, load.0, load.1));
    lab.write_manifest("bench.yaml", &yaml)?;
    lab.start_agent_resyncing("guest", resync, "")?;
    std::thread::sleep(Duration::from_secs(15));
    let pid = agent_pid(lab)?;
    let before = agent_counters(lab)?;
    let t0 = lab.now()?;
    let usage = guest_usage(lab, pid, server, window)?;
    let elapsed = lab.now()? - t0;
    let after = agent_counters(lab)?;
    let rates = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v - before.get(k).copied().unwrap_or(0.0)) / elapsed,
            )
        })
        .collect();
    let in_ipvs = real_servers_in_ipvs(lab)?;
    let checkers = checker_summary(&lab.status()?);
    if checkers.0.is_empty() {
        // A window without a single result measures nothing: say why, from the agent's log.
        let log = lab.agent_log()?;
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!(
            "the agent has no check result; the end of its log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let trace = match tracer {
        Some(tracer) => Some(tracer.trace(lab, pid, 10)?),
        None => None,
    };
    lab.stop_agent("TERM")?;
    lab.guest.ok("ipvsadm -C")?;
    Ok(AgentWindow {
        usage,
        rates,
        in_ipvs,
        checkers,
        trace,
    })
}

/// `rounds` rounds in one guest boot, keepalived first in the odd ones and the agent first in
/// the even ones; the tracer looks at each daemon after its window of the last round.
fn guest_part(
    window: Duration,
    load: (u16, u16),
    resync: Duration,
    rounds: u32,
    tracer: Option<Tracer>,
) -> anyhow::Result<GuestResult> {
    let mut carried = vec!["keepalived"];
    carried.extend(tracer.map(Tracer::program));
    let mut lab = IpvsLab::boot_carrying("release", &carried)?;
    let server = start_guest_servers(&mut lab, load.0, load.1)?;

    // The agent without checks: its VRRP MASTER (adverts every 100 ms) and the rest of it,
    // which keepalived's checker process (`-C`) does not run.
    lab.write_manifest("bench.yaml", &kube_vrrp_e2e::guest::lab::node_and_vip())?;
    lab.start_agent_resyncing("guest", resync, "")?;
    std::thread::sleep(Duration::from_secs(10));
    let idle_pid = agent_pid(&mut lab)?;
    let idle = guest_usage(&mut lab, idle_pid, server, window / 2)?;
    lab.stop_agent("TERM")?;

    let mut done = Vec::new();
    let mut last = None;
    for round in 0..rounds.max(1) {
        let keepalived_first = round % 2 == 0;
        let traced = if round + 1 == rounds.max(1) {
            tracer
        } else {
            None
        };
        let (keepalived, agent) = if keepalived_first {
            let k = keepalived_window(&mut lab, server, load, window, traced)?;
            (
                k,
                agent_window(&mut lab, server, load, window, resync, traced)?,
            )
        } else {
            let a = agent_window(&mut lab, server, load, window, resync, traced)?;
            (
                keepalived_window(&mut lab, server, load, window, traced)?,
                a,
            )
        };
        done.push(GuestRound {
            keepalived_first,
            keepalived: keepalived.0,
            agent: agent.usage,
        });
        last = Some((keepalived, agent));
    }
    let ((_, keepalived_in_ipvs, keepalived_trace), agent) =
        last.context("at least one round ran")?;
    let traces = match (tracer, keepalived_trace, agent.trace) {
        (Some(tracer), Some(keepalived), Some(agent)) => Some((tracer, keepalived, agent)),
        _ => None,
    };
    Ok(GuestResult {
        rounds: done,
        idle,
        in_ipvs: (keepalived_in_ipvs, agent.in_ipvs),
        agent_checkers: agent.checkers,
        agent_rates: agent.rates,
        traces,
    })
}

fn print_guest(guest: &GuestResult, total: u32, resync: Duration) {
    println!(
        "\nguest (QEMU TCG, 1 vCPU, real IPVS), the same load, one daemon at a time (the agent re-reads IPVS every {resync:?}):"
    );
    println!(
        "  {:<28} {:>7} {:>10} {:>11} {:>8} {:>15} {:>12} {:>11}",
        "",
        "CPU %",
        "of it sys",
        "switches/s",
        "RSS MiB",
        "answered req/s",
        "servers CPU %",
        "guest busy %"
    );
    let row = |name: &str, usage: &GuestUsage| {
        println!(
            "  {name:<28} {:>7.1} {:>10.1} {:>11.0} {:>8.1} {:>15.0} {:>12.1} {:>11.1}",
            usage.cpu,
            usage.system,
            usage.switches,
            usage.rss_mib,
            usage.answered,
            usage.server_cpu,
            usage.busy,
        );
    };
    // Percent of a core ÷ answers per second = milliseconds per answer × 100.
    let ms = |percent: f64, u: &GuestUsage| percent * 10.0 / u.answered.max(f64::MIN_POSITIVE);
    let mut ratios = Vec::new();
    for (i, round) in guest.rounds.iter().enumerate() {
        println!(
            "  round {} ({} first):",
            i + 1,
            if round.keepalived_first {
                "keepalived"
            } else {
                "the agent"
            }
        );
        row("keepalived checker process", &round.keepalived);
        row("kube-vrrp agent (all of it)", &round.agent);
        let (all, checks) = round.ratios(&guest.idle);
        println!(
            "  agent ÷ keepalived per answered check: {all:.2} (the agent's checks alone, less its CPU without checks: {checks:.2}); CPU per answered check: keepalived {:.2} ms user + {:.2} ms system, agent {:.2} ms user + {:.2} ms system",
            ms(
                round.keepalived.cpu - round.keepalived.system,
                &round.keepalived
            ),
            ms(round.keepalived.system, &round.keepalived),
            ms(round.agent.cpu - round.agent.system, &round.agent),
            ms(round.agent.system, &round.agent),
        );
        ratios.push(all);
    }
    row("agent without checks (VRRP)", &guest.idle);
    if ratios.len() > 1 {
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "  agent ÷ keepalived per answered check over {} rounds: {min:.2}–{max:.2}",
            ratios.len()
        );
    }
    println!(
        "  real servers in IPVS at the end: keepalived {}, agent {} (of {total})",
        guest.in_ipvs.0, guest.in_ipvs.1
    );
    let (by_result, healthy) = &guest.agent_checkers;
    println!("  the agent's checkers at the end: {healthy} healthy; last results {by_result:?}");
    let rates: Vec<String> = guest
        .agent_rates
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect();
    println!(
        "  the agent over its window, per second: {}",
        rates.join(", ")
    );
    if let Some((tracer, keepalived, agent)) = &guest.traces {
        let what = tracer.what();
        println!("\n  keepalived's checker, {what}, after its last window:\n{keepalived}");
        println!("\n  the agent, {what}, after its last window:\n{agent}");
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_root();
    kube_vrrp_e2e::agent::set_log_filter("warn");
    let window = Duration::from_secs(args.window.max(5));
    let total = u32::from(args.servers) * u32::from(args.real_servers);
    println!(
        "health check benchmark: {total} real servers ({} VirtualServers × {}), HTTP GET every 1 s, window {} s",
        args.servers,
        args.real_servers,
        window.as_secs()
    );
    if args.guest_callgrind {
        let resync = Duration::from_millis(args.ipvs_resync_ms);
        let result = guest_callgrind_part(window, args.servers, args.real_servers, resync)?;
        print_guest_callgrind(&result, total as usize);
        return Ok(());
    }
    if args.callgrind {
        let dumps =
            std::env::temp_dir().join(format!("checks-bench-callgrind-{}", std::process::id()));
        let callgrind = Callgrind::new(&dumps)?;
        let host = host_part(window, args.servers, args.real_servers, 0, Some(&callgrind))?;
        print_host(&host, total, window, 0)?;
        println!("  callgrind dumps kept in {}", dumps.display());
        return Ok(());
    }
    if !args.guest_only {
        let host = host_part(
            window,
            args.servers,
            args.real_servers,
            args.realtime_priority,
            None,
        )?;
        print_host(&host, total, window, args.realtime_priority)?;
    }
    if !args.host_only {
        let resync = Duration::from_millis(args.ipvs_resync_ms);
        let guest = guest_part(
            window,
            (args.servers, args.real_servers),
            resync,
            args.rounds,
            args.trace,
        )?;
        print_guest(&guest, total, resync);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_counts_the_intervals_over_one_millisecond() {
        let t0 = Instant::now();
        // Intervals: 100, 101.5 (late), 98.5 (the next on schedule), 100.9, 100.
        let at: Vec<Instant> = [0.0, 100.0, 201.5, 300.0, 400.9, 500.9]
            .iter()
            .map(|ms| t0 + Duration::from_secs_f64(ms / 1000.0))
            .collect();
        let j = jitter(&at).unwrap();
        assert_eq!((j.over_1ms, j.intervals), (1, 5));
        assert!((j.max - 1.5).abs() < 1e-6, "max {}", j.max);
        assert!(j.p50.abs() < 1e-6, "p50 {}", j.p50);
        assert!(jitter(&at[..1]).is_none(), "one advert makes no interval");
    }
}
