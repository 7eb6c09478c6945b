//! The IPVS sync benchmark's guest side (run inside the guest lab by `make bench`, see
//! e2e/src/bin/ipvs-bench.rs): programs SERVICES × REAL_SERVERS from empty with the agent's
//! synchroniser, then applies a 1 % change (1 % of the services get another scheduler, 1 % of
//! the real servers another weight); then the same two steps with `ipvsadm --restore`. Each
//! step is timed from the start of the program doing it (ipvsadm: process start, family
//! lookup, every request; the agent: socket, family lookup, the kernel read, every request)
//! to its end. Prints one JSON object per run.
//!
//! `ipvs_sync_bench [SERVICES] [REAL_SERVERS] [RUNS]` (default 1000 10 5)

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube_vrrp_agent::ipvs::IpvsClient;
use kube_vrrp_agent::ipvs::desired::desired_services;
use kube_vrrp_agent::ipvs::sync::{SyncOptions, Syncer};
use kube_vrrp_crds::{Forwarding, Protocol, ResolvedRealServer, ResolvedVirtualServer, Scheduler};

/// Service addresses from the benchmarking range 198.18.0.0/15 (RFC 2544); nothing is sent.
fn address(i: usize) -> String {
    format!("198.18.{}.{}", (i / 256) % 256, i % 256)
}

fn servers(count: usize, per: usize, changed: bool) -> Vec<ResolvedVirtualServer> {
    let step = 100; // 1 %
    (0..count)
        .map(|i| ResolvedVirtualServer {
            name: format!("vs-{i}"),
            virtual_ip: "bench".into(),
            addresses: vec![address(i)],
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: if changed && i % step == 0 {
                Scheduler::Rr
            } else {
                Scheduler::Wlc
            },
            scheduler_flags: Vec::new(),
            forwarding: Forwarding::Nat,
            tunnel: None,
            persistence_timeout: None,
            persistence_granularity: None,
            quorum: None,
            sorry_server: None,
            inhibit_on_failure: false,
            real_servers: (0..per)
                .map(|r| ResolvedRealServer {
                    address: format!("198.19.{}.{}", r, (i % 250) + 1),
                    port: 8080 + (i / 250) as u16,
                    // 1 % of the real servers: the first of every tenth service.
                    weight: if changed && r == 0 && i % 10 == 5 {
                        5
                    } else {
                        1
                    },
                    ..ResolvedRealServer::default()
                })
                .collect(),
            health_check: None,
        })
        .collect()
}

/// The same set as ipvsadm --restore lines; `changes_only`: only the lines of the change.
fn restore_file(all: &[ResolvedVirtualServer], changes_only: bool) -> String {
    let mut out = String::new();
    for (i, s) in all.iter().enumerate() {
        let service = format!("-t {}:{}", s.addresses[0], s.port);
        let scheduler = s.scheduler.as_str();
        let service_changed = scheduler != "wlc";
        if !changes_only {
            let _ = writeln!(out, "-A {service} -s {scheduler}");
        } else if service_changed {
            let _ = writeln!(out, "-E {service} -s {scheduler}");
        }
        for r in &s.real_servers {
            let changed = r.weight != 1;
            if !changes_only {
                let _ = writeln!(
                    out,
                    "-a {service} -r {}:{} -m -w {}",
                    r.address, r.port, r.weight
                );
            } else if changed {
                let _ = writeln!(
                    out,
                    "-e {service} -r {}:{} -m -w {}",
                    r.address, r.port, r.weight
                );
            }
        }
        let _ = i;
    }
    out
}

fn ipvsadm(args: &[&str], input: Option<&str>) -> Duration {
    let start = Instant::now();
    let mut child = Command::new("ipvsadm")
        .args(args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("ipvsadm runs");
    if let Some(text) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        stdin.write_all(text.as_bytes()).expect("ipvsadm reads");
    }
    let status = child.wait().expect("ipvsadm ends");
    assert!(status.success(), "ipvsadm {args:?} failed");
    start.elapsed()
}

fn count_listed() -> (usize, usize) {
    let out = Command::new("ipvsadm")
        .arg("-Ln")
        .output()
        .expect("ipvsadm -Ln");
    let text = String::from_utf8_lossy(&out.stdout);
    let services = text.lines().filter(|l| l.starts_with("TCP")).count();
    let dests = text
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .count();
    (services, dests)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let count = args.first().copied().unwrap_or(1000);
    let per = args.get(1).copied().unwrap_or(10);
    let runs = args.get(2).copied().unwrap_or(5);
    let base = servers(count, per, false);
    let changed = servers(count, per, true);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for run in 0..runs {
        ipvsadm(&["-C"], None);
        let state = std::env::temp_dir().join(format!("ipvs-bench-{run}"));
        let _ = std::fs::remove_dir_all(&state);
        let (agent_full, agent_change, requests) = runtime.block_on(async {
            let start = Instant::now();
            let client = IpvsClient::connect().await.expect("IPVS");
            let mut syncer = Syncer::start(
                client,
                SyncOptions {
                    record: state.join("record.json"),
                    drain_timeout: Duration::from_secs(30),
                },
            )
            .await
            .expect("a kernel read");
            let (desired, refused) = desired_services(&base);
            assert!(refused.is_empty());
            let full = syncer.apply(desired, Vec::new(), Instant::now()).await;
            assert_eq!(full.failed, 0, "{full:?}");
            let full_time = start.elapsed();
            let (desired, _) = desired_services(&changed);
            let start = Instant::now();
            let change = syncer.apply(desired, Vec::new(), Instant::now()).await;
            assert_eq!(change.failed, 0);
            (full_time, start.elapsed(), (full.requests, change.requests))
        });
        assert_eq!(
            count_listed(),
            (count, count * per),
            "the agent programmed everything"
        );
        ipvsadm(&["-C"], None);
        let restore_full = ipvsadm(&["-R"], Some(&restore_file(&base, false)));
        assert_eq!(
            count_listed(),
            (count, count * per),
            "ipvsadm restored everything"
        );
        let restore_change = ipvsadm(&["-R"], Some(&restore_file(&changed, true)));
        println!(
            "{{\"run\":{run},\"services\":{count},\"real_servers\":{},\"agent_full_ms\":{:.1},\"agent_change_ms\":{:.1},\"agent_full_requests\":{},\"agent_change_requests\":{},\"ipvsadm_restore_full_ms\":{:.1},\"ipvsadm_restore_change_ms\":{:.1}}}",
            count * per,
            agent_full.as_secs_f64() * 1e3,
            agent_change.as_secs_f64() * 1e3,
            requests.0,
            requests.1,
            restore_full.as_secs_f64() * 1e3,
            restore_change.as_secs_f64() * 1e3,
        );
    }
    ipvsadm(&["-C"], None);
}
