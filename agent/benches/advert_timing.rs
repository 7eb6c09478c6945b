//! How late a MASTER's adverts leave, at a 10 ms interval: idle, then under a flood of 50,000
//! forged packets per second (TTL 64, garbage, unknown VRID) from another namespace. Adverts are
//! captured on the switch port of the MASTER (tcpdump, kernel timestamps in nanoseconds), and
//! each one's delay is how late it left against the agent's own schedule (see [`timing`]; the
//! least late advert counts as on time). Drift is how far the last advert is from where the
//! first one and the interval put it. Each case runs twice: with the default scheduler, and with the
//! whole process (agent, flood, capture) under SCHED_FIFO 20 (keepalived's `vrrp_rt_priority`),
//! which isolates the agent from the rest of a shared machine. Beside each window, `cyclictest`
//! (rt-tests) runs a trivial timer loop at the same interval and scheduling: how late the
//! machine itself wakes a thread at that moment, the floor under any daemon's advert delays.
//! Needs root; prints a table, asserts nothing about the numbers.
#![allow(clippy::unwrap_used)]

#[path = "../tests/lab/mod.rs"]
mod lab;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::{Advertisement, Authentication};
use kube_vrrp_agent::vrrp::{VRRP_MULTICAST_IPV4, Version};
use lab::flood::{Flood, Forged, garbage};
use lab::{Agent, CLIENT, config, spec, wait_for};

const INTERVAL: Duration = Duration::from_millis(10);
const WINDOW: Duration = Duration::from_secs(10);
const RATE: u64 = 50_000;

fn forged_advert(vrid: u8) -> Vec<u8> {
    Advertisement {
        version: Version::V3,
        vrid,
        priority: 254,
        max_advert_interval_cs: 1,
        addresses: vec!["192.0.2.50".parse().unwrap()],
        auth: Authentication::None,
    }
    .encode(
        CLIENT.parse::<IpAddr>().unwrap(),
        IpAddr::V4(VRRP_MULTICAST_IPV4),
    )
    .unwrap()
}

/// Starts tcpdump on the MASTER's switch port, keeping only its adverts.
fn capture(lab: &lab::Lab, file: &Path) -> Child {
    let child = lab
        .switch
        .command(&[
            "tcpdump",
            "-i",
            "p1",
            "-U",
            "-B",
            "16384",
            "--time-stamp-precision=nano",
            "-w",
            file.to_str().unwrap(),
            "ip proto 112 and src host 192.0.2.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child
}

fn stop(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    child.wait().unwrap();
}

/// The capture times (ns) of a classic pcap file written with nanosecond precision.
fn timestamps(file: &Path) -> Vec<i128> {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(
        &bytes[..4],
        &0xa1b2_3c4d_u32.to_le_bytes(),
        "not a nanosecond pcap"
    );
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        let word = |offset: usize| {
            u32::from_le_bytes(bytes[at + offset..at + offset + 4].try_into().unwrap())
        };
        out.push(i128::from(word(0)) * 1_000_000_000 + i128::from(word(4)));
        at += 16 + usize::try_from(word(8)).unwrap();
    }
    out
}

struct Timing {
    adverts: usize,
    delay: [f64; 3],
    interval_min: f64,
    interval_max: f64,
    drift: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Each advert's lateness follows from the one before: the agent schedules advert k at the
/// deadline of advert k − 1 plus the interval (so lateness is `L(k−1) + gap(k) − interval`),
/// unless advert k − 1 was more than an interval late, when it starts the schedule over from
/// its own send time (`L(k) = gap(k) − interval`). Delays are lateness above the least seen.
fn timing(times: &[i128]) -> Timing {
    let step = INTERVAL.as_nanos().cast_signed();
    let mut lateness = Vec::with_capacity(times.len());
    let mut previous: i128 = 0;
    lateness.push(0);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        let base = if previous >= step { 0 } else { previous };
        previous = base + gap - step;
        lateness.push(previous);
    }
    let least = *lateness.iter().min().unwrap();
    let mut delays: Vec<f64> = lateness.iter().map(|l| (l - least) as f64 / 1e6).collect();
    delays.sort_by(f64::total_cmp);
    let intervals: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect();
    let first = times[0];
    let last = *times.last().unwrap();
    let n = i128::try_from(times.len() - 1).unwrap();
    Timing {
        adverts: times.len(),
        delay: [
            percentile(&delays, 50.0),
            percentile(&delays, 99.0),
            *delays.last().unwrap(),
        ],
        interval_min: intervals.iter().copied().fold(f64::INFINITY, f64::min),
        interval_max: intervals.iter().copied().fold(0.0, f64::max),
        drift: ((last - first) - n * step) as f64 / 1e6,
    }
}

/// The machine's own wake-up lateness over one window: cyclictest's histogram (µs).
struct Baseline {
    wakeups: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// Starts cyclictest for one window: one thread, `INTERVAL`, memory locked, SCHED_FIFO 20 or
/// SCHED_OTHER like the agent in this case.
fn baseline(rt: bool) -> Child {
    let loops = (WINDOW.as_millis() / INTERVAL.as_millis()).to_string();
    let interval = INTERVAL.as_micros().to_string();
    let mut args = vec![
        "-m", "-q", "-t", "1", "-i", &interval, "-l", &loops, "-h", "20000",
    ];
    args.extend(if rt {
        ["-p", "20", "--policy=fifo"]
    } else {
        ["-p", "0", "--policy=other"]
    });
    std::process::Command::new("cyclictest")
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cyclictest (Debian package rt-tests): {e}"))
}

/// Reads cyclictest's histogram (`<µs> <count>` lines, overflows past 20 ms) and its max.
fn baseline_result(child: Child) -> Baseline {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut buckets = Vec::new();
    let mut max_us = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("#"), Some("Max")) => {
                max_us = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            (Some(us), Some(count)) if !us.starts_with('#') => {
                if let (Ok(us), Ok(count)) = (us.parse::<u64>(), count.parse::<u64>()) {
                    buckets.push((us, count));
                }
            }
            _ => {}
        }
    }
    let wakeups: u64 = buckets.iter().map(|(_, c)| c).sum();
    let rank = |p: u64| {
        let wanted = (wakeups * p).div_ceil(100);
        let mut seen = 0;
        for (us, count) in &buckets {
            seen += count;
            if seen >= wanted {
                return *us;
            }
        }
        max_us
    };
    Baseline {
        wakeups,
        p50_us: rank(50),
        p99_us: rank(99),
        max_us,
    }
}

fn measure(lab: &lab::Lab, name: &str, rt: bool) -> (Timing, Baseline) {
    let file = lab.workdir.join(format!("{name}.pcap"));
    let child = capture(lab, &file);
    let machine = baseline(rt);
    std::thread::sleep(WINDOW);
    let machine = baseline_result(machine);
    stop(child);
    (timing(&timestamps(&file)), machine)
}

/// Puts every thread of this process under SCHED_FIFO 20, or back to SCHED_OTHER.
fn real_time(on: bool) {
    let pid = std::process::id().to_string();
    let args: &[&str] = if on {
        &["-a", "-f", "-p", "20", &pid]
    } else {
        &["-a", "-o", "-p", "0", &pid]
    };
    let status = std::process::Command::new("chrt")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "chrt {args:?} failed");
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let lab = lab::lab("kvbt");
    let mut master = spec("web", 51, "192.0.2.50/24", 150);
    master.advert_interval = INTERVAL;
    let agent = Agent::start(&lab.n1, config(vec![master]));
    wait_for("n1 MASTER", || agent.state("web") == Some(State::Master));
    let forged = vec![
        Forged {
            kind: "ttl",
            ttl: 64,
            payloads: vec![forged_advert(51)],
        },
        Forged {
            kind: "garbage",
            ttl: 255,
            payloads: garbage(64),
        },
        Forged {
            kind: "vrid",
            ttl: 255,
            payloads: vec![forged_advert(99)],
        },
    ];
    let mut rows = Vec::new();
    let mut sent: u64 = 0;
    for (scheduling, rt) in [("default", false), ("SCHED_FIFO 20", true)] {
        real_time(rt);
        rows.push((scheduling, "idle", measure(&lab, &format!("idle-{rt}"), rt)));
        let flood = Flood::start(
            lab.client.name(),
            "eth0",
            Ipv4Addr::new(224, 0, 0, 18),
            RATE,
            None,
            forged.clone(),
        );
        let flooded = measure(&lab, &format!("flood-{rt}"), rt);
        sent += flood.stop().0.values().sum::<u64>();
        rows.push((scheduling, "50,000 forged packets/s", flooded));
        assert_eq!(
            agent.state("web"),
            Some(State::Master),
            "the flood moved the MASTER"
        );
    }
    real_time(false);
    println!(
        "advert timing, v3 MASTER at {INTERVAL:?}, {WINDOW:?} captured per case on its switch port"
    );
    println!(
        "| scheduling | case | adverts | delay p50 / p99 / max | interval min–max | drift over the window | machine: cyclictest wake-ups, lateness p50 / p99 / max |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (scheduling, case, (t, m)) in &rows {
        println!(
            "| {scheduling} | {case} | {} | {:.3} / {:.3} / {:.3} ms | {:.3}–{:.3} ms | {:+.3} ms | {}, {:.3} / {:.3} / {:.3} ms |",
            t.adverts,
            t.delay[0],
            t.delay[1],
            t.delay[2],
            t.interval_min,
            t.interval_max,
            t.drift,
            m.wakeups,
            m.p50_us as f64 / 1e3,
            m.p99_us as f64 / 1e3,
            m.max_us as f64 / 1e3,
        );
    }
    // Let the receive loop catch up before counting.
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "flood: {sent} packets sent; counted by the agent: {} (overflow {}); load average: {}",
        agent.dropped_total(),
        agent.dropped("overflow"),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
