//! The chart's alerts, proven by a real Prometheus (Debian's server) in the cluster lab: it
//! scrapes the agents and operators with the scrape configs generated from the chart's
//! rendered ServiceMonitors and evaluates the chart's rendered PrometheusRule groups. Each
//! scenario disrupts the lab and reads `/api/v1/alerts` and `/api/v1/query`.
//!
//! Scrape and evaluation interval: 1 s. The rules' `for:` are as rendered; where a scenario
//! would take minutes, it renders the chart with a shorter `for:` through the chart's own
//! `monitoring.prometheusRule.alertOverrides` value (each scenario says which).
//!
//! Needs root, the control plane, kubectl and Helm, `/usr/bin/prometheus` and `nft`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[allow(dead_code)] // shared with tests/cluster.rs; this file uses a part of it
mod cluster_scenarios;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cluster_scenarios as s;
use kube_vrrp_e2e::cluster::prometheus::{Alert, Prometheus, PrometheusApi, sample_value};
use kube_vrrp_e2e::cluster::real_server::TcpRealServer;
use kube_vrrp_e2e::cluster::vrrp_egress::VrrpEgressDrop;
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec};
use kube_vrrp_e2e::netns;
use serde_json::json;

/// Prometheus' scrape and rule evaluation interval in the lab.
const SCRAPE: Duration = Duration::from_secs(1);
const ADVERT: Duration = Duration::from_millis(100);
/// An agent notices a change, patches its VrrpNode, the operator folds it (see partition.rs).
const STATUS_WRITE: Duration = Duration::from_secs(1);
/// `for:` of both dual-MASTER alerts as rendered with the chart's defaults.
const DUAL_MASTER_FOR: Duration = Duration::from_secs(10);

/// The lab and its Prometheus, the chart rendered with `overrides` (alert name, `for:`).
fn lab(overrides: &[(&str, &str)]) -> (Cluster, Prometheus) {
    netns::require_root();
    let mut values = vec!["monitoring.serviceMonitor.interval=1s".to_owned()];
    for (alert, for_) in overrides {
        values.push(format!(
            "monitoring.prometheusRule.alertOverrides.{alert}.for={for_}"
        ));
    }
    let started = Instant::now();
    let cluster = Cluster::up(&ClusterSpec {
        nodes: 3,
        values: values.clone(),
    })
    .unwrap_or_else(|e| panic!("cluster lab: {e}"));
    let prometheus =
        Prometheus::start(&cluster, &values, "1s").unwrap_or_else(|e| panic!("prometheus: {e}"));
    eprintln!(
        "cluster lab and Prometheus up in {:.1} s ({} rule groups, config in {})",
        started.elapsed().as_secs_f64(),
        prometheus.rendered().rule_groups.len(),
        prometheus.dir().display()
    );
    let user = cluster.user();
    user.apply(&s::vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    s::wait_master(&cluster, "web", "n1", Duration::from_secs(20));
    (cluster, prometheus)
}

/// Every alert `/api/v1/alerts` shows as firing, sampled every 250 ms until dropped.
struct AlertWatch {
    firing: Arc<Mutex<BTreeSet<String>>>,
    samples: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AlertWatch {
    fn start(api: PrometheusApi) -> Self {
        let firing = Arc::new(Mutex::new(BTreeSet::new()));
        let samples = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, n, flag) = (firing.clone(), samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(alerts) = api.firing() {
                    let mut seen = f.lock().unwrap();
                    for a in alerts {
                        seen.insert(describe(&a));
                    }
                    *n.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Self {
            firing,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns the alerts seen firing and the number of samples taken.
    fn finish(mut self) -> (BTreeSet<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let firing = self.firing.lock().unwrap().clone();
        let samples = *self.samples.lock().unwrap();
        (firing, samples)
    }
}

fn describe(a: &Alert) -> String {
    let labels: Vec<String> = a
        .labels
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "node"
                    | "virtualip"
                    | "vrrp_instance"
                    | "condition"
                    | "virtualserver"
                    | "real_server"
            )
        })
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    format!("{}{{{}}}", a.name, labels.join(","))
}

/// Watches the alerts for `how_long` and fails if any fired.
fn assert_silent(prometheus: &Prometheus, how_long: Duration, what: &str) {
    let watch = AlertWatch::start(prometheus.api());
    std::thread::sleep(how_long);
    let (firing, samples) = watch.finish();
    assert!(samples > 0, "{what}: /api/v1/alerts was never read");
    assert!(firing.is_empty(), "{what}: alerts fired: {firing:?}");
    eprintln!("{what}: no alert fired in {samples} looks over {how_long:?}");
}

/// Polls until an alert `name` whose labels include `labels` is firing; returns how long it
/// took from `since`.
fn wait_firing(
    prometheus: &Prometheus,
    name: &str,
    labels: &[(&str, &str)],
    since: Instant,
    timeout: Duration,
) -> (Duration, Alert) {
    let api = prometheus.api();
    loop {
        let alerts = api.alerts().unwrap();
        if let Some(a) = alerts.iter().find(|a| {
            a.name == name
                && a.state == "firing"
                && labels.iter().all(|(k, v)| a.label(k) == Some(v))
        }) {
            let took = since.elapsed();
            eprintln!("{} firing after {:.1} s", describe(a), took.as_secs_f64());
            return (took, a.clone());
        }
        assert!(
            since.elapsed() < timeout,
            "{name} {labels:?} not firing within {timeout:?}; alerts: {:?}\nprometheus log:\n{}",
            alerts
                .iter()
                .map(|a| format!("{} {}", describe(a), a.state))
                .collect::<Vec<_>>(),
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls until no alert named in `names` is pending or firing; returns how long it took.
fn wait_resolved(prometheus: &Prometheus, names: &[&str], timeout: Duration) -> Duration {
    let since = Instant::now();
    let api = prometheus.api();
    loop {
        let left: Vec<Alert> = api
            .alerts()
            .unwrap()
            .into_iter()
            .filter(|a| names.contains(&a.name.as_str()))
            .collect();
        if left.is_empty() {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "still active after {timeout:?}: {:?}",
            left.iter().map(describe).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls until `expr` returns at least one sample.
fn wait_query(prometheus: &Prometheus, expr: &str, timeout: Duration) {
    let since = Instant::now();
    while prometheus.api().query(expr).unwrap().is_empty() {
        assert!(
            since.elapsed() < timeout,
            "{expr}: no result within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until Prometheus holds samples of agent `n`'s start time from `restarts + 1` processes
/// since `since`: it scraped the agent before and after each of its `restarts` restarts. (A
/// counter's reset would not do: a restarted agent can count past its predecessor's last
/// scraped value before its first scrape.)
fn wait_restarts_scraped(prometheus: &Prometheus, n: usize, restarts: usize, since: Instant) {
    let timeout = Duration::from_secs(15);
    // Reaches back past `since` for as long as the wait may last.
    let window = (since.elapsed() + timeout).as_secs() + 5;
    wait_query(
        prometheus,
        &format!(
            "changes(kube_vrrp_agent_start_timestamp_seconds{{node=\"n{n}\"}}[{window}s]) >= {restarts}"
        ),
        timeout,
    );
}

/// The value of a query that must return exactly one sample, a whole number (a count).
fn single(prometheus: &Prometheus, expr: &str) -> i64 {
    let result = prometheus.api().query(expr).unwrap();
    assert_eq!(result.len(), 1, "{expr}: {result:?}");
    let value = sample_value(&result[0]).unwrap();
    assert!(
        value.fract().abs() < f64::EPSILON,
        "{expr}: {value} is not whole"
    );
    #[allow(clippy::cast_possible_truncation)] // whole, and a count of a few series
    let whole = value as i64;
    whole
}

/// Alerts named `name` whose `label` is not one of `allowed`, described.
fn alerts_beyond(
    prometheus: &Prometheus,
    name: &str,
    label: &str,
    allowed: &[&str],
) -> Vec<String> {
    prometheus
        .api()
        .alerts()
        .unwrap()
        .iter()
        .filter(|a| a.name == name && !a.label(label).is_some_and(|v| allowed.contains(&v)))
        .map(describe)
        .collect()
}

/// Every metric name a dashboard query uses: identifiers before `{` and every `kube_vrrp_*`.
fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    fn exprs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("expr" | "definition", Some(e)) => out.push(e),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    exprs(dashboard, &mut found);
    assert!(!found.is_empty(), "the dashboard has no queries");
    let mut names = BTreeSet::new();
    for expr in found {
        let chars: Vec<char> = expr.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let preceded_by_dollar = start > 0 && chars[start - 1] == '$';
                if !preceded_by_dollar
                    && (word.starts_with("kube_vrrp_") || chars.get(i) == Some(&'{'))
                {
                    names.insert(word);
                }
            } else {
                i += 1;
            }
        }
    }
    names
}

/// The dashboard in the chart is JSON, and every metric its queries use is in a scrape of the
/// lab's agents or operators (a family with no series yet counts by its `# TYPE` line), or is
/// Prometheus' own `up` with a series for every agent.
fn assert_dashboard_uses_exported_metrics(cluster: &Cluster, prometheus: &Prometheus) {
    let path = kube_vrrp_e2e::cluster::binaries::repo_root()
        .join("charts/kube-vrrp/dashboards/kube-vrrp.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let names = dashboard_metrics(&dashboard);
    let mut exported = BTreeSet::new();
    for pod in cluster.pods() {
        let port = pod.named_port("metrics").unwrap();
        let body = pod.get(port, "/metrics").unwrap().body;
        for line in String::from_utf8_lossy(&body).lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    exported.insert(name.to_owned());
                    match kind {
                        "counter" => {
                            exported.insert(format!("{name}_total"));
                        }
                        "histogram" => {
                            for part in ["bucket", "sum", "count"] {
                                exported.insert(format!("{name}_{part}"));
                            }
                        }
                        _ => {}
                    }
                }
            } else if !line.starts_with('#') {
                let name: String = line
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                exported.insert(name);
            }
        }
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() != "up" && !exported.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics no agent or operator exports: {missing:?}"
    );
    if names.contains("up") {
        assert_eq!(
            single(prometheus, "count(up{job=~\".*kube-vrrp-agent.*\"})"),
            3
        );
    }
    eprintln!(
        "dashboard: {} metric names, each exported: {names:?}",
        names.len()
    );
}

#[test]
fn a_partition_fires_both_dual_master_alerts_within_for_plus_two_scrapes_and_they_resolve_after_healing()
 {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[]);
    assert_dashboard_uses_exported_metrics(&cluster, &prometheus);
    assert_silent(&prometheus, DUAL_MASTER_FOR + 2 * SCRAPE, "healthy lab");

    let partitioned = Instant::now();
    cluster.lab().partition().unwrap();
    // The condition itself takes 2 × Master_Down_Interval and one status write to arise.
    let arise = s::master_down_interval(50, ADVERT) * 2 + STATUS_WRITE;
    let allowed = arise + DUAL_MASTER_FOR + 2 * SCRAPE + SCRAPE;
    let (operator_side, _) = wait_firing(
        &prometheus,
        "KubeVrrpDualMaster",
        &[("virtualip", "web")],
        partitioned,
        Duration::from_secs(40),
    );
    let (agent_side, alert) = wait_firing(
        &prometheus,
        "KubeVrrpInstanceDualMaster",
        &[("vrid", "50")],
        partitioned,
        Duration::from_secs(40),
    );
    eprintln!(
        "partition → KubeVrrpDualMaster {:.1} s, KubeVrrpInstanceDualMaster {:.1} s (allowed {:.1} s: condition {:.1} s + for {:?} + 2 scrapes + 1 evaluation)",
        operator_side.as_secs_f64(),
        agent_side.as_secs_f64(),
        allowed.as_secs_f64(),
        arise.as_secs_f64(),
        DUAL_MASTER_FOR
    );
    assert!(
        operator_side <= allowed,
        "KubeVrrpDualMaster after {operator_side:?}, allowed {allowed:?}"
    );
    assert!(
        agent_side <= allowed,
        "KubeVrrpInstanceDualMaster after {agent_side:?}, allowed {allowed:?}"
    );
    assert_eq!(
        single(
            &prometheus,
            &format!(
                "count(kube_vrrp_instance_state{{vrrp_instance=\"{}\",state=~\"(?i)master\"}} == 1)",
                alert.label("vrrp_instance").unwrap()
            )
        ),
        3,
        "every partitioned node is MASTER"
    );
    assert_eq!(
        single(
            &prometheus,
            "max(kube_vrrp_virtualip_masters{virtualip=\"web\"})"
        ),
        3
    );

    cluster.lab().heal_partition().unwrap();
    let resolved = wait_resolved(
        &prometheus,
        &["KubeVrrpDualMaster", "KubeVrrpInstanceDualMaster"],
        Duration::from_secs(30),
    );
    eprintln!(
        "heal → both dual-MASTER alerts resolved after {:.1} s",
        resolved.as_secs_f64()
    );
    eprintln!(
        "scenario alerts-partition: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_hard_failover_and_a_rolling_restart_of_every_agent_raise_no_alert() {
    let started = Instant::now();
    let (mut cluster, prometheus) = lab(&[]);
    let watch = AlertWatch::start(prometheus.api());
    // Prometheus scrapes every agent before and after each of its restarts (four in all), so
    // the quiet below is Prometheus having watched the disruptions, not having missed them.
    for n in 1..=3 {
        wait_restarts_scraped(&prometheus, n, 0, started);
    }
    // Transition times travel with one-second precision: a MASTER killed within the second of
    // its election ties with its successor's transition, which the fold cannot order (both
    // count until the dead report goes stale). Let the second pass, as a real failover does.
    std::thread::sleep(Duration::from_millis(1500));

    cluster.agent(1).unwrap().kill().unwrap();
    s::wait_master(&cluster, "web", "n2", Duration::from_secs(20));
    // Prometheus sees the failover it is to stay quiet about before n1 comes back.
    wait_query(
        &prometheus,
        "kube_vrrp_instance_state{node=\"n2\",state=~\"(?i)master\"} == 1",
        Duration::from_secs(10),
    );
    let pod = cluster.agent(1).unwrap();
    pod.start().unwrap();
    pod.wait_ready(Duration::from_secs(30)).unwrap();
    wait_restarts_scraped(&prometheus, 1, 1, started);
    s::wait_master(&cluster, "web", "n1", Duration::from_secs(20));

    for n in 1..=3 {
        let pod = cluster.agent(n).unwrap();
        pod.terminate().unwrap();
        pod.start().unwrap();
        pod.wait_ready(Duration::from_secs(30)).unwrap();
        wait_restarts_scraped(&prometheus, n, if n == 1 { 2 } else { 1 }, started);
    }
    s::wait_master(&cluster, "web", "n1", Duration::from_secs(20));
    // Long enough for anything pending during the disruptions to fire.
    std::thread::sleep(DUAL_MASTER_FOR + 3 * SCRAPE);
    let (firing, samples) = watch.finish();
    assert!(samples > 0, "/api/v1/alerts was never read");
    assert!(
        firing.is_empty(),
        "alerts fired during failover and rolling restart: {firing:?}"
    );
    eprintln!(
        "failover + rolling restart: no alert fired in {samples} looks; scenario alerts-failover-rolling: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn with_the_operators_stopped_a_partition_still_fires_the_agent_side_dual_master_alert() {
    let started = Instant::now();
    let (mut cluster, prometheus) = lab(&[("KubeVrrpOperatorAbsent", "5s")]);
    for op in cluster.operators() {
        op.terminate().unwrap();
    }
    let stopped = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpOperatorAbsent",
        &[],
        stopped,
        Duration::from_secs(30),
    );

    let partitioned = Instant::now();
    cluster.lab().partition().unwrap();
    let allowed = s::master_down_interval(50, ADVERT) * 2 + DUAL_MASTER_FOR + 3 * SCRAPE;
    let (took, _) = wait_firing(
        &prometheus,
        "KubeVrrpInstanceDualMaster",
        &[("vrid", "50")],
        partitioned,
        Duration::from_secs(40),
    );
    assert!(
        took <= allowed,
        "KubeVrrpInstanceDualMaster after {took:?}, allowed {allowed:?}"
    );
    let operator_side: Vec<Alert> = prometheus
        .api()
        .alerts()
        .unwrap()
        .into_iter()
        .filter(|a| a.name == "KubeVrrpDualMaster")
        .collect();
    assert!(
        operator_side.is_empty(),
        "the operator-side alert cannot know with no operator: {operator_side:?}"
    );

    cluster.lab().heal_partition().unwrap();
    let resolved = wait_resolved(
        &prometheus,
        &["KubeVrrpInstanceDualMaster"],
        Duration::from_secs(30),
    );
    eprintln!(
        "operators stopped, partition → KubeVrrpInstanceDualMaster after {:.1} s (allowed {:.1} s), resolved {:.1} s after heal; scenario alerts-no-operator: {:.1} s",
        took.as_secs_f64(),
        allowed.as_secs_f64(),
        resolved.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn agents_going_down_raise_agent_down_degraded_heartbeat_stale_no_master_and_absent_naming_the_right_node()
 {
    let started = Instant::now();
    let short = [
        ("KubeVrrpAgentDown", "5s"),
        ("KubeVrrpHeartbeatStale", "5s"),
        ("KubeVrrpVirtualIPNotReady", "5s"),
        ("KubeVrrpNoMaster", "5s"),
        ("KubeVrrpAgentAbsent", "5s"),
    ];
    let (mut cluster, prometheus) = lab(&short);
    assert_silent(
        &prometheus,
        Duration::from_secs(10),
        "healthy lab (short for:)",
    );

    // A BACKUP's agent stops.
    cluster.agent(3).unwrap().terminate().unwrap();
    let down = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpAgentDown",
        &[("node", "n3")],
        down,
        Duration::from_secs(20),
    );
    wait_firing(
        &prometheus,
        "KubeVrrpVirtualIPNotReady",
        &[("virtualip", "web"), ("condition", "Degraded")],
        down,
        Duration::from_secs(90),
    );
    wait_firing(
        &prometheus,
        "KubeVrrpHeartbeatStale",
        &[("node", "n3")],
        down,
        Duration::from_secs(120),
    );
    let api = prometheus.api();
    let wrong: Vec<String> = api
        .alerts()
        .unwrap()
        .iter()
        .filter(|a| {
            matches!(
                a.name.as_str(),
                "KubeVrrpAgentDown" | "KubeVrrpHeartbeatStale"
            ) && a.label("node") != Some("n3")
        })
        .map(describe)
        .collect();
    assert!(
        wrong.is_empty(),
        "alerts naming a node that is up: {wrong:?}"
    );
    assert!(
        api.alerts()
            .unwrap()
            .iter()
            .all(|a| a.name != "KubeVrrpNoMaster"),
        "n1 is still MASTER"
    );

    // Then every agent.
    cluster.agent(1).unwrap().terminate().unwrap();
    cluster.agent(2).unwrap().terminate().unwrap();
    let all_down = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpAgentAbsent",
        &[],
        all_down,
        Duration::from_secs(30),
    );
    wait_firing(
        &prometheus,
        "KubeVrrpNoMaster",
        &[("virtualip", "web")],
        all_down,
        Duration::from_secs(90),
    );
    eprintln!(
        "scenario alerts-agents-down: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn partitions_coming_and_going_raise_flapping_for_the_backups_and_not_for_the_steady_master() {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[("KubeVrrpInstanceFlapping", "5s")]);
    // Each partition makes n2 and n3 MASTER, each heal sends them back to BACKUP: two
    // transitions a cycle on each, n1 MASTER throughout. Shorter than the dual-MASTER `for:`.
    let flapping = Instant::now();
    for _ in 0..6 {
        cluster.lab().partition().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        cluster.lab().heal_partition().unwrap();
        std::thread::sleep(Duration::from_secs(2));
    }
    for node in ["n2", "n3"] {
        wait_firing(
            &prometheus,
            "KubeVrrpInstanceFlapping",
            &[("node", node), ("vrrp_instance", "web")],
            flapping,
            Duration::from_secs(60),
        );
    }
    let steady: Vec<String> = prometheus
        .api()
        .alerts()
        .unwrap()
        .iter()
        .filter(|a| a.name == "KubeVrrpInstanceFlapping" && a.label("node") == Some("n1"))
        .map(describe)
        .collect();
    assert!(steady.is_empty(), "the steady MASTER flaps: {steady:?}");
    let transitions = single(
        &prometheus,
        "sum(kube_vrrp_instance_transitions_total{node=\"n2\",vrrp_instance=\"web\"})",
    );
    eprintln!(
        "6 partition/heal cycles: n2 counted {transitions} transitions; scenario alerts-flapping: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_address_someone_else_put_on_a_backups_interface_raises_instance_fault_for_that_node_until_removed()
 {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[
        ("KubeVrrpInstanceFault", "5s"),
        ("KubeVrrpVirtualIPNotReady", "5s"),
    ]);
    let vip = kube_vrrp_e2e::addressing::vip(kube_vrrp_e2e::addressing::Family::V4, 0).to_string();
    let n3 = cluster.lab().node_ns(3).unwrap();
    n3.exec(&["ip", "addr", "add", &vip, "dev", "eth0"])
        .unwrap();
    let added = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpInstanceFault",
        &[("node", "n3"), ("vrrp_instance", "web")],
        added,
        Duration::from_secs(30),
    );
    let others = alerts_beyond(&prometheus, "KubeVrrpInstanceFault", "node", &["n3"]);
    assert!(others.is_empty(), "FAULT on other nodes: {others:?}");
    assert_eq!(
        single(
            &prometheus,
            "max(kube_vrrp_vip_conflicts{node=\"n3\",vrrp_instance=\"web\"})"
        ),
        1
    );

    n3.exec(&["ip", "addr", "del", &vip, "dev", "eth0"])
        .unwrap();
    let resolved = wait_resolved(
        &prometheus,
        &["KubeVrrpInstanceFault"],
        Duration::from_secs(30),
    );
    eprintln!(
        "conflicting address removed → KubeVrrpInstanceFault resolved after {:.1} s",
        resolved.as_secs_f64()
    );

    // A second VirtualIP on the same VRID and interface: Conflict.
    cluster
        .user()
        .apply(&s::vip_manifest(
            "clash",
            1,
            50,
            "100ms",
            &[("n1", 150), ("n2", 100), ("n3", 50)],
            &json!({}),
        ))
        .unwrap();
    let applied = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpVirtualIPNotReady",
        &[("condition", "Conflict")],
        applied,
        Duration::from_secs(30),
    );
    eprintln!(
        "scenario alerts-fault-conflict: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn vrrp_packets_with_a_wrong_ttl_on_the_segment_raise_packets_dropped_for_every_node() {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[("KubeVrrpPacketsDropped", "5s")]);
    // A host on the switch sends VRRPv3 adverts for VRID 50 with TTL 1 (RFC 5798 requires
    // 255), ten a second for 20 s, with Python's raw socket (the lab has no VRRP sender of
    // its own that can get the TTL wrong).
    let peer = cluster.lab().attach("bad", 21).unwrap();
    let source = kube_vrrp_e2e::addressing::lab_host_ip(21, kube_vrrp_e2e::addressing::Family::V4);
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('{source}'))\n\
         adv = bytes([0x31, 50, 100, 1, 0x00, 10, 0, 0]) + socket.inet_aton('192.168.77.50')\n\
         for _ in range(200):\n    s.sendto(adv, ('224.0.0.18', 0)); time.sleep(0.1)\n"
    );
    let sender = std::thread::spawn(move || peer.exec(&["python3", "-c", &script]));
    let sent = Instant::now();
    let mut nodes = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let (_, alert) = wait_firing(
            &prometheus,
            "KubeVrrpPacketsDropped",
            &[("node", node), ("interface", "eth0")],
            sent,
            Duration::from_secs(30),
        );
        nodes.push(format!(
            "{node}: reason={}",
            alert.label("reason").unwrap_or("?")
        ));
    }
    sender.join().unwrap().unwrap();
    eprintln!(
        "adverts with TTL 1 → KubeVrrpPacketsDropped for {nodes:?}; scenario alerts-drops: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn with_the_api_server_stopped_a_partition_fires_the_agent_side_dual_master_alert_and_reconcile_errors()
 {
    let started = Instant::now();
    let (mut cluster, prometheus) = lab(&[("KubeVrrpReconcileErrors", "5s")]);
    cluster.control_plane_mut().stop_apiserver().unwrap();
    let stopped = Instant::now();
    cluster.lab().partition().unwrap();
    let (took, _) = wait_firing(
        &prometheus,
        "KubeVrrpInstanceDualMaster",
        &[("vrid", "50")],
        stopped,
        Duration::from_secs(40),
    );
    let allowed = s::master_down_interval(50, ADVERT) * 2 + DUAL_MASTER_FOR + 3 * SCRAPE;
    assert!(
        took <= allowed,
        "KubeVrrpInstanceDualMaster after {took:?}, allowed {allowed:?}"
    );
    let (errors, alert) = wait_firing(
        &prometheus,
        "KubeVrrpReconcileErrors",
        &[],
        stopped,
        Duration::from_secs(60),
    );
    cluster.lab().heal_partition().unwrap();
    cluster.control_plane_mut().start_apiserver().unwrap();
    eprintln!(
        "API server stopped, partition → KubeVrrpInstanceDualMaster after {:.1} s, KubeVrrpReconcileErrors ({}) after {:.1} s; scenario alerts-no-apiserver: {:.1} s",
        took.as_secs_f64(),
        alert.label("reason").unwrap_or("?"),
        errors.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_tracked_file_turning_non_zero_on_the_master_raises_tracker_down_for_that_node_until_cleared() {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[("KubeVrrpTrackerDown", "5s")]);
    // keepalived's track_file through the chart's default directory, mounted from each node.
    let file = "/etc/kube-vrrp/track/maintenance";
    let on_node = |n: usize| cluster.node_root(n).join(file.trim_start_matches('/'));
    for n in 1..=3 {
        std::fs::create_dir_all(on_node(n).parent().unwrap()).unwrap();
        std::fs::write(on_node(n), "0\n").unwrap();
    }
    cluster
        .user()
        .apply(&s::vip_manifest(
            "tracked",
            1,
            60,
            "100ms",
            &[("n1", 150), ("n2", 100), ("n3", 50)],
            &json!({"track": {"files": [{"path": file}]}}),
        ))
        .unwrap();
    s::wait_master(&cluster, "tracked", "n1", Duration::from_secs(20));
    assert_silent(
        &prometheus,
        Duration::from_secs(8),
        "every tracked file holds 0",
    );

    // The MASTER's file says 1: FAULT there (no weight), the VIP moves, the tracker is down.
    std::fs::write(on_node(1), "1\n").unwrap();
    let written = Instant::now();
    wait_firing(
        &prometheus,
        "KubeVrrpTrackerDown",
        &[("node", "n1"), ("tracker", &format!("file:{file}"))],
        written,
        Duration::from_secs(30),
    );
    s::wait_master(&cluster, "tracked", "n2", Duration::from_secs(15));
    let others = alerts_beyond(&prometheus, "KubeVrrpTrackerDown", "node", &["n1"]);
    assert!(others.is_empty(), "TrackerDown on other nodes: {others:?}");

    std::fs::write(on_node(1), "0\n").unwrap();
    let resolved = wait_resolved(
        &prometheus,
        &["KubeVrrpTrackerDown"],
        Duration::from_secs(30),
    );
    eprintln!(
        "tracked file back to 0 → KubeVrrpTrackerDown resolved after {:.1} s",
        resolved.as_secs_f64()
    );
    s::wait_master(&cluster, "tracked", "n1", Duration::from_secs(15));
    eprintln!(
        "scenario tracker down: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The VirtualServer `api` on VirtualIP `web`: port 80, quorum 2, real servers `servers` of
/// weight 1, TCP-checked every second (one attempt a check, rise and fall 1).
fn virtual_server_manifest(servers: &[&TcpRealServer]) -> String {
    let real_servers: Vec<serde_json::Value> = servers
        .iter()
        .map(|s| json!({"address": s.address().ip().to_string(), "port": s.address().port(), "weight": 1}))
        .collect();
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VirtualServer",
        "metadata": {"name": "api"},
        "spec": {
            "virtualIPRef": "web",
            "port": 80,
            "quorum": 2,
            "realServers": real_servers,
            "healthCheck": {"tcp": {}, "interval": "1s", "timeout": "1s"},
        },
    })
    .to_string()
}

#[test]
fn a_real_server_refusing_its_checks_raises_real_server_down_and_virtual_server_down_until_it_answers_and_going_down_again_and_again_raises_check_flapping()
 {
    let started = Instant::now();
    let (cluster, prometheus) = lab(&[
        ("KubeVrrpRealServerDown", "5s"),
        ("KubeVrrpVirtualServerDown", "5s"),
        ("KubeVrrpRealServerCheckFlapping", "5s"),
    ]);
    // The real servers listen in the client namespace; every node's agent checks them (the
    // host has no IPVS: the agents run the checks and export their verdicts all the same,
    // and report the VirtualServer as not programmed).
    let client = cluster.lab().client();
    let at = |port| {
        std::net::SocketAddr::new(
            kube_vrrp_e2e::addressing::client_ip(kube_vrrp_e2e::addressing::Family::V4),
            port,
        )
    };
    let steady = TcpRealServer::start(client, at(18_080)).unwrap();
    let mut failing = TcpRealServer::start(client, at(18_081)).unwrap();
    let (steady_rs, failing_rs) = (steady.label(), failing.label());
    cluster
        .user()
        .apply(&virtual_server_manifest(&[&steady, &failing]))
        .unwrap();
    wait_query(
        &prometheus,
        "count(kube_vrrp_realserver_up{virtualserver=\"api\"} == 1) == 6 and count(kube_vrrp_virtualserver_quorum_up{virtualserver=\"api\"} == 1) == 3",
        Duration::from_secs(30),
    );
    assert_silent(
        &prometheus,
        Duration::from_secs(8),
        "VirtualServer api with both real servers answering",
    );
    // This host has no IPVS: every node's status says so and claims no service programmed.
    for node in ["n1", "n2", "n3"] {
        let object = cluster.user().get("vrrpnode", node, &[]).unwrap();
        let ipvs = &object["status"]["ipvs"];
        let api: Vec<&serde_json::Value> = ipvs["virtualServices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["virtualServer"] == "api")
            .collect();
        assert!(
            ipvs["available"] == json!(false)
                && !api.is_empty()
                && api.iter().all(|s| s["programmed"] == json!(false)),
            "{node}: IPVS status {ipvs}"
        );
    }
    assert!(
        steady.accepted() > 0 && failing.accepted() > 0,
        "the real servers were never checked: {} and {} connections",
        steady.accepted(),
        failing.accepted()
    );

    // One real server refuses: it is down on every node, and the quorum (2) is lost.
    failing.stop();
    let stopped = Instant::now();
    let mut took = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let (t, _) = wait_firing(
            &prometheus,
            "KubeVrrpRealServerDown",
            &[
                ("node", node),
                ("virtualserver", "api"),
                ("real_server", &failing_rs),
            ],
            stopped,
            Duration::from_secs(30),
        );
        took.push(t);
    }
    let (quorum_lost, _) = wait_firing(
        &prometheus,
        "KubeVrrpVirtualServerDown",
        &[("virtualserver", "api")],
        stopped,
        Duration::from_secs(30),
    );
    let wrong = alerts_beyond(
        &prometheus,
        "KubeVrrpRealServerDown",
        "real_server",
        &[&failing_rs],
    );
    assert!(
        wrong.is_empty(),
        "RealServerDown for a real server that answers: {wrong:?}"
    );
    eprintln!(
        "{failing_rs} refusing → KubeVrrpRealServerDown on n1..n3 after {:.1?} s, KubeVrrpVirtualServerDown after {:.1} s",
        took.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        quorum_lost.as_secs_f64()
    );

    failing.resume().unwrap();
    let resolved = wait_resolved(
        &prometheus,
        &["KubeVrrpRealServerDown", "KubeVrrpVirtualServerDown"],
        Duration::from_secs(30),
    );
    eprintln!(
        "{failing_rs} answering again → both resolved after {:.1} s",
        resolved.as_secs_f64()
    );
    // One outage, over: RealServerDown's, not flapping (its failed checks are still in the
    // 10-minute window, and the flapping `for:` is 5 s here).
    assert_silent(
        &prometheus,
        Duration::from_secs(8),
        "one outage of a real server, recovered",
    );

    // Two more short outages (shorter than RealServerDown's `for:`): it keeps leaving the pool.
    let flapping = Instant::now();
    for _ in 0..2 {
        failing.stop();
        std::thread::sleep(Duration::from_secs(3));
        failing.resume().unwrap();
        std::thread::sleep(Duration::from_secs(3));
    }
    for node in ["n1", "n2", "n3"] {
        wait_firing(
            &prometheus,
            "KubeVrrpRealServerCheckFlapping",
            &[
                ("node", node),
                ("virtualserver", "api"),
                ("real_server", &failing_rs),
            ],
            flapping,
            Duration::from_secs(30),
        );
    }
    let wrong = alerts_beyond(
        &prometheus,
        "KubeVrrpRealServerCheckFlapping",
        "real_server",
        &[&failing_rs],
    );
    assert!(
        wrong.is_empty(),
        "the steady real server {steady_rs} flaps: {wrong:?}"
    );
    let failed = single(
        &prometheus,
        &format!(
            "sum(kube_vrrp_realserver_checks_total{{node=\"n1\",real_server=\"{failing_rs}\",result!=\"passed\"}})"
        ),
    );
    eprintln!(
        "three outages: n1 counted {failed} failed checks of {failing_rs}; scenario alerts-real-servers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_master_whose_adverts_are_dropped_on_the_way_out_raises_master_not_advertising_for_that_node_until_they_flow_again()
 {
    let started = Instant::now();
    let (mut cluster, prometheus) = lab(&[("KubeVrrpMasterNotAdvertising", "5s")]);
    let n1 = cluster.lab().node_ns(1).unwrap();
    let block = VrrpEgressDrop::start(n1).unwrap();
    let blocked = Instant::now();
    // n1 still hears n2 (priority 100 < 150) and stays MASTER; n2 hears no n1 and takes over.
    wait_query(
        &prometheus,
        "kube_vrrp_instance_state{node=\"n2\",vrrp_instance=\"web\",state=~\"(?i)master\"} == 1",
        Duration::from_secs(15),
    );
    let (dual, _) = wait_firing(
        &prometheus,
        "KubeVrrpInstanceDualMaster",
        &[("vrid", "50")],
        blocked,
        Duration::from_secs(30),
    );
    let (took, _) = wait_firing(
        &prometheus,
        "KubeVrrpMasterNotAdvertising",
        &[("node", "n1"), ("vrrp_instance", "web")],
        blocked,
        Duration::from_secs(180),
    );
    let others = alerts_beyond(&prometheus, "KubeVrrpMasterNotAdvertising", "node", &["n1"]);
    assert!(others.is_empty(), "nodes whose adverts flow: {others:?}");
    assert_eq!(
        single(
            &prometheus,
            "count(kube_vrrp_instance_state{vrrp_instance=\"web\",state=~\"(?i)master\"} == 1)"
        ),
        2,
        "n1 stays MASTER, n2 took over"
    );
    eprintln!(
        "n1's adverts dropped → KubeVrrpMasterNotAdvertising{{node=n1}} after {:.1} s (the rule's 2m window + for 5s), KubeVrrpInstanceDualMaster after {:.1} s",
        took.as_secs_f64(),
        dual.as_secs_f64()
    );

    block.stop().unwrap();
    // The adverts stopped because n1's sends failed, not because n1 stopped sending.
    let log = cluster.agent(1).unwrap().log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sending an advert failed"))
        .collect();
    assert!(
        !failed.is_empty(),
        "n1's agent logged no failed send; its log ends:\n{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "n1's agent logged {} failed sends, e.g. {}",
        failed.len(),
        failed[0]
    );
    let resolved = wait_resolved(
        &prometheus,
        &[
            "KubeVrrpMasterNotAdvertising",
            "KubeVrrpInstanceDualMaster",
            "KubeVrrpDualMaster",
        ],
        Duration::from_secs(30),
    );
    s::wait_master(&cluster, "web", "n1", Duration::from_secs(15));
    eprintln!(
        "adverts flow again → resolved after {:.1} s; scenario alerts-not-advertising: {:.1} s",
        resolved.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
