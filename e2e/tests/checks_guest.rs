//! Real-server health checks in the guest lab (`make e2e-ipvs`): what the agent's checks do to
//! real IPVS when real servers die, come back, answer 503 or leave a VirtualServer below its
//! quorum; what clients see meanwhile; and the same real-server behaviour under Debian's
//! keepalived (`virtual_server` with `TCP_CHECK` and `HTTP_GET`, the same timers), whose IPVS
//! changes must be the same, phase by phase. A watcher in the guest stamps every change of
//! `/proc/net/ip_vs`; the timings of both daemons are printed side by side (and written to
//! `target/checks-interop.txt`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::guest::lab::{HTTP_PORT, IpvsLab, SORRY_SERVER, VIP, node_and_vip};
use kube_vrrp_e2e::guest::proc_ip_vs::Pools;
use kube_vrrp_e2e::guest::timeline::{Attempt, Change, changes};

const TCP_SERVICE: &str = "TCP 192.0.2.100:80";
const HTTP_SERVICE: &str = "TCP 192.0.2.100:81";

fn rs(name: &str) -> String {
    let last = match name {
        "rs1" => 11,
        "rs2" => 12,
        "rs3" => 13,
        _ => 14,
    };
    format!("198.51.100.{last}:8080")
}

/// The agent's manifests: `web-tcp` (port 80, TCP checks, quorum 2, the sorry server) and
/// `web-http` (port 81, HTTP checks of /healthz on 8081, inhibitOnFailure), with `timers`
/// (YAML lines of the healthCheck).
fn manifests(timers: &str) -> String {
    let servers = "  realServers:
    - {address: 198.51.100.11, port: 8080, weight: 1}
    - {address: 198.51.100.12, port: 8080, weight: 1}
    - {address: 198.51.100.13, port: 8080, weight: 1}
";
    format!(
        "{}---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata:
  name: web-tcp
spec:
  virtualIPRef: web
  port: 80
  scheduler: rr
  quorum: 2
  sorryServer: {{address: {sorry}, port: 8080}}
{servers}  healthCheck:
    tcp: {{}}
{timers}---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata:
  name: web-http
spec:
  virtualIPRef: web
  port: 81
  scheduler: rr
  inhibitOnFailure: true
{servers}  healthCheck:
    http: {{path: /healthz, port: {HTTP_PORT}, expectedStatus: [200]}}
{timers}",
        node_and_vip(),
        sorry = SORRY_SERVER.1,
    )
}

/// keepalived's equivalent of [`manifests`] with keepalived's timers (no rise/fall: 1/1).
fn keepalived_conf() -> String {
    let real = |check: &str| -> String {
        let mut out = String::new();
        for a in ["198.51.100.11", "198.51.100.12", "198.51.100.13"] {
            let _ = writeln!(out, "  real_server {a} 8080 {{\n    weight 1\n{check}  }}");
        }
        out
    };
    let tcp = "    TCP_CHECK {\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }\n";
    let http = format!(
        "    inhibit_on_failure\n    HTTP_GET {{\n      url {{\n        path /healthz\n        status_code 200\n      }}\n      connect_port {HTTP_PORT}\n      connect_timeout 1\n      retry 1\n      delay_before_retry 1\n    }}\n"
    );
    format!(
        "global_defs {{\n  router_id guest\n}}\n\
virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  quorum 2\n  sorry_server {} 8080\n{}}}\n\
virtual_server {VIP} 81 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n{}}}\n",
        SORRY_SERVER.1,
        real(tcp),
        real(&http),
    )
}

/// The healthCheck timers equal to keepalived's above: `delay_loop 1` → interval 1s,
/// `connect_timeout 1` → timeout 1s, `retry 1` → retries 2, `delay_before_retry 1`.
const KEEPALIVED_TIMERS: &str = "    interval: 1s
    timeout: 1s
    retries: 2
    delayBeforeRetry: 1s
";

/// The pool of `service` in `pools`: destination → weight.
fn pool<'a>(pools: &'a Pools, service: &str) -> Option<&'a BTreeMap<String, u32>> {
    pools.get(service)
}

fn pool_is(pools: &Pools, service: &str, want: &[(&str, u32)]) -> bool {
    let want: BTreeMap<String, u32> = want.iter().map(|(n, w)| (rs(n), *w)).collect();
    pool(pools, service) == Some(&want)
}

/// Waits until an observation at or after `since` satisfies `pred`; returns its time.
fn wait_observed(
    lab: &mut IpvsLab,
    since: f64,
    what: &str,
    within: Duration,
    pred: impl Fn(&Pools) -> bool,
) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let observed = lab.watched().unwrap();
        // The state in force at `since` counts too (an observation before it, still current).
        let current_at_since = observed.iter().rev().find(|o| o.t <= since);
        if let Some(o) = current_at_since
            && pred(&o.pools)
        {
            return since;
        }
        if let Some(o) = observed.iter().find(|o| o.t >= since && pred(&o.pools)) {
            return o.t;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {within:?}; last pools: {:#?}\nagent/keepalived logs:\n{}",
            observed.last().map(|o| &o.pools),
            lab.guest
                .ok("tail -n 30 /tmp/agent.log /tmp/keepalived.log 2>/dev/null")
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One step of the scenario: what was done, when, when IPVS had followed, and the changes.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    /// When the step's command was issued: its IPVS changes are those from here to the next
    /// step's. A restarted real server's checks may pass before it reports itself ready.
    issued: f64,
    started: f64,
    settled: f64,
    changes: Vec<String>,
}

impl Phase {
    fn took(&self) -> f64 {
        self.settled - self.started
    }
}

/// The scenario run against whichever daemon programs IPVS; every phase waits for IPVS to
/// follow before the next.
/// How long each step's end state stays before the next step.
const HOLD: Duration = Duration::from_secs(1);

fn scenario(lab: &mut IpvsLab) -> Vec<Phase> {
    // Each step waits for both services to be as they must end up (a real server killed
    // fails its TCP and its HTTP checks).
    const ALL: &[(&str, u32)] = &[("rs1", 1), ("rs2", 1), ("rs3", 1)];
    type Until = fn(&Pools) -> bool;
    let within = Duration::from_secs(30);
    let steps: [(&'static str, &str, Until); 7] = [
        (
            "rs2 killed: out of :80, weight 0 on :81",
            "kill -KILL $(cat /tmp/rs2.pid)",
            |p| {
                pool_is(p, TCP_SERVICE, &[("rs1", 1), ("rs3", 1)])
                    && pool_is(p, HTTP_SERVICE, &[("rs1", 1), ("rs2", 0), ("rs3", 1)])
            },
        ),
        ("rs2 back: into :80, weight 1 on :81", "START rs2", |p| {
            pool_is(p, TCP_SERVICE, ALL) && pool_is(p, HTTP_SERVICE, ALL)
        }),
        (
            "rs3 answers 503: weight 0 on :81",
            "echo 503 > /tmp/rs3.status",
            |p| {
                pool_is(p, TCP_SERVICE, ALL)
                    && pool_is(p, HTTP_SERVICE, &[("rs1", 1), ("rs2", 1), ("rs3", 0)])
            },
        ),
        (
            "rs3 answers 200: weight 1 on :81",
            "echo 200 > /tmp/rs3.status",
            |p| pool_is(p, TCP_SERVICE, ALL) && pool_is(p, HTTP_SERVICE, ALL),
        ),
        (
            "rs1 and rs2 killed: quorum lost, sorry server on :80",
            "kill -KILL $(cat /tmp/rs1.pid) $(cat /tmp/rs2.pid)",
            |p| {
                pool_is(p, TCP_SERVICE, &[("sorry", 1)])
                    && pool_is(p, HTTP_SERVICE, &[("rs1", 0), ("rs2", 0), ("rs3", 1)])
            },
        ),
        (
            "rs1 back: quorum regained, sorry server gone",
            "START rs1",
            |p| {
                pool_is(p, TCP_SERVICE, &[("rs1", 1), ("rs3", 1)])
                    && pool_is(p, HTTP_SERVICE, &[("rs1", 1), ("rs2", 0), ("rs3", 1)])
            },
        ),
        ("rs2 back: all three everywhere", "START rs2", |p| {
            pool_is(p, TCP_SERVICE, ALL) && pool_is(p, HTTP_SERVICE, ALL)
        }),
    ];
    let mut phases = Vec::new();
    for (name, command, until) in steps {
        let (issued, started) = if let Some(server) = command.strip_prefix("START ") {
            // From the moment it answers (its start-up under emulation is not the checks').
            let issued = lab.now().unwrap();
            (issued, lab.start_real_server(server).unwrap())
        } else {
            let at = lab.at(command).unwrap();
            (at, at)
        };
        let settled = wait_observed(lab, started, name, within, until);
        // Hold the state a while, so that clients meet it and the checks after it see it
        // (without this, the next step could follow within a few client attempts).
        std::thread::sleep(HOLD);
        phases.push(Phase {
            name,
            issued,
            started,
            settled,
            changes: Vec::new(),
        });
    }
    // Give the last phase's stragglers a moment, then split the changes by phase.
    std::thread::sleep(Duration::from_millis(500));
    let all = changes(&lab.watched().unwrap());
    let issues: Vec<f64> = phases.iter().map(|p| p.issued).collect();
    for (i, phase) in phases.iter_mut().enumerate() {
        let end = issues.get(i + 1).copied().unwrap_or(f64::INFINITY);
        let mut here: Vec<String> = all
            .iter()
            .filter(|c| c.t >= phase.issued && c.t < end)
            .map(|c: &Change| c.to_string())
            .collect();
        here.sort();
        phase.changes = here;
    }
    phases
}

/// Waits for both pools to be complete, then three check intervals more, so the scenario
/// meets checks in their steady state (their first results decide at once, without retries,
/// in keepalived and in the agent alike).
fn wait_initial_pools(lab: &mut IpvsLab) {
    let t = lab.now().unwrap();
    wait_observed(lab, t, "the initial pools", Duration::from_secs(90), |p| {
        pool_is(p, TCP_SERVICE, &[("rs1", 1), ("rs2", 1), ("rs3", 1)])
            && pool_is(p, HTTP_SERVICE, &[("rs1", 1), ("rs2", 1), ("rs3", 1)])
    });
    std::thread::sleep(Duration::from_secs(3));
}

/// Client attempts started in `[from, to)` (guest seconds) that failed.
fn failures_between(attempts: &[Attempt], from: f64, to: f64) -> Vec<u64> {
    let (from, to) = ((from * 1000.0) as u64, (to * 1000.0) as u64);
    attempts
        .iter()
        .filter(|a| a.answer.is_none() && a.t >= from && a.t < to)
        .map(|a| a.t)
        .collect()
}

fn answers_between(attempts: &[Attempt], from: f64, to: f64) -> BTreeMap<String, u32> {
    let (from, to) = ((from * 1000.0) as u64, (to * 1000.0) as u64);
    let mut out = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.t >= from && a.t < to) {
        *out.entry(a.answer.clone().unwrap_or_else(|| "error".into()))
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn guest_checks_take_dead_backends_out_within_fall_intervals_and_clients_only_lose_what_reached_them()
 {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-checks.log"));
    lab.start_watcher().unwrap();
    // fall 2 / rise 2, one attempt per check: out within fall × interval + timeout = 3 s,
    // back within rise × interval = 2 s.
    let timers = "    interval: 1s\n    timeout: 1s\n    retries: 1\n    fall: 2\n    rise: 2\n";
    lab.write_manifest("web.yaml", &manifests(timers)).unwrap();
    lab.start_agent("").unwrap();
    wait_initial_pools(&mut lab);
    // The agent holds the VIP as MASTER once the services exist; clients need it.
    lab.wait_until("the VIP answers", Duration::from_secs(60), |lab| {
        Ok(lab.client(false, 80, 1)?.keys().all(|k| k != "error"))
    })
    .unwrap();
    lab.start_client_log(80, 50, 45.0).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let phases = scenario(&mut lab);
    let attempts = lab.client_attempts().unwrap();
    let status = lab.status().unwrap();
    lab.stop_agent("TERM").unwrap();

    // The client's log must cover the whole scenario, or the checks below would see nothing.
    let last_attempt = attempts.last().map_or(0.0, |a| a.t as f64 / 1000.0);
    let last_settled = phases.last().map_or(0.0, |p| p.settled);
    assert!(
        last_attempt >= last_settled + 0.5,
        "the client stopped at {last_attempt:.2} s, before the scenario ended ({last_settled:.2} s)"
    );
    let (killed, back) = (&phases[0], &phases[1]);
    assert!(
        killed.took() <= 3.0 + 0.5,
        "rs2 left :80 {:.2} s after it died (bound fall × interval + timeout = 3 s)",
        killed.took()
    );
    assert!(
        back.took() <= 2.0 + 0.5,
        "rs2 came back {:.2} s after it restarted (bound rise × interval = 2 s)",
        back.took()
    );
    // Clients: failures only while a dead real server was still in the pool (the phases
    // that kill), none while every real server in the pool was alive.
    for (i, phase) in phases.iter().enumerate() {
        let end = phases.get(i + 1).map_or(f64::INFINITY, |p| p.started);
        let during = failures_between(&attempts, phase.started, phase.settled + 0.05);
        let after = failures_between(&attempts, phase.settled + 0.05, end);
        assert!(
            after.is_empty(),
            "{}: {} connections failed after IPVS followed: {after:?}",
            phase.name,
            after.len()
        );
        if !phase.name.contains("killed") {
            assert!(
                during.is_empty(),
                "{}: connections failed although no real server in the pool was dead: {during:?}",
                phase.name
            );
        }
    }
    let sorry = &phases[4];
    let sorry_answers = answers_between(&attempts, sorry.settled + 0.05, phases[5].started);
    assert!(
        sorry_answers.keys().all(|k| k == "sorry")
            && sorry_answers.get("sorry").copied().unwrap_or(0) > 3,
        "below the quorum the sorry server answers everything: {sorry_answers:?}"
    );
    let after_quorum = answers_between(&attempts, phases[5].settled + 0.05, phases[6].started);
    assert!(
        after_quorum.keys().all(|k| k == "rs1" || k == "rs3"),
        "quorum back: rs1 and rs3 answer, the sorry server no longer: {after_quorum:?}"
    );
    // The status says what the checks saw.
    let checkers = status["checkers"].as_array().unwrap();
    assert_eq!(checkers.len(), 6, "{checkers:?}");
    assert!(
        checkers.iter().all(|c| c["lastResult"].is_string()),
        "{checkers:?}"
    );
    let quorums = status["quorums"].as_array().unwrap();
    assert!(
        quorums
            .iter()
            .any(|q| q["virtualServer"] == "web-tcp" && q["up"] == true),
        "{quorums:?}"
    );

    let mut report = String::from("agent, fall 2 / rise 2, interval 1 s, timeout 1 s:\n");
    for phase in &phases {
        let _ = writeln!(report, "  {:<55} {:>6.2} s", phase.name, phase.took());
    }
    println!("{report}");
}

#[test]
fn guest_keepalived_and_the_agent_make_the_same_ipvs_changes_for_the_same_real_server_behaviour() {
    let mut lab = IpvsLab::boot_carrying("debug", &["keepalived"]).unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-interop.log"));
    lab.start_watcher().unwrap();

    // keepalived's checker, with the VIP put on the node by hand (no VRRP here).
    lab.guest
        .ok(&format!("/sbin/ip addr add {VIP}/24 dev lab0"))
        .unwrap();
    lab.start_keepalived(&keepalived_conf()).unwrap();
    wait_initial_pools(&mut lab);
    let keepalived = scenario(&mut lab);
    let keepalived_log = lab.guest.ok("cat /tmp/keepalived.log").unwrap_or_default();
    lab.stop_keepalived().unwrap();
    lab.guest
        .ok(&format!("/sbin/ip addr del {VIP}/24 dev lab0"))
        .unwrap();
    lab.wait_until(
        "keepalived's services gone",
        Duration::from_secs(10),
        |lab| Ok(lab.services()?.is_empty()),
    )
    .unwrap();

    // The agent, same timers, fresh: a new watcher log so the phases start clean.
    lab.start_watcher().unwrap();
    lab.write_manifest("web.yaml", &manifests(KEEPALIVED_TIMERS))
        .unwrap();
    lab.start_agent("").unwrap();
    wait_initial_pools(&mut lab);
    let agent = scenario(&mut lab);
    lab.stop_agent("TERM").unwrap();

    let mut report = String::from(
        "IPVS changes after each step (guest, TCG), keepalived 2.2.7 checker vs kube-vrrp agent\n\
         timers: interval/delay_loop 1 s, timeout/connect_timeout 1 s, retries 2/retry 1, delay before retry 1 s\n\n",
    );
    let _ = writeln!(
        report,
        "{:<55} {:>11} {:>11}",
        "step", "keepalived", "agent"
    );
    for (k, a) in keepalived.iter().zip(&agent) {
        let _ = writeln!(
            report,
            "{:<55} {:>9.2} s {:>9.2} s",
            k.name,
            k.took(),
            a.took()
        );
    }
    let _ = writeln!(report, "\nchanges per step (the same for both):");
    for (k, a) in keepalived.iter().zip(&agent) {
        let _ = writeln!(report, "  {}: {}", k.name, k.changes.join(", "));
        if k.changes != a.changes {
            let _ = writeln!(
                report,
                "    DIFFERENT for the agent: {}",
                a.changes.join(", ")
            );
        }
    }
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/checks-interop.txt");
    let _ = std::fs::write(
        &out,
        format!("{report}\nkeepalived's log:\n{keepalived_log}\n"),
    );
    for (k, a) in keepalived.iter().zip(&agent) {
        assert_eq!(
            k.changes, a.changes,
            "{}: the IPVS changes differ\n{report}",
            k.name
        );
        assert!(
            !k.changes.is_empty(),
            "{}: nothing changed\n{report}",
            k.name
        );
    }
}
