//! The `kube_vrrp_*` metrics as Prometheus reads them: the text is parsed, not grepped.

#![allow(clippy::float_cmp)] // sample values are small exact integers

use std::collections::{BTreeMap, BTreeSet};

use kube_vrrp_agent::check::real_server::Quorum;
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::DropReason;

type Labels = BTreeMap<String, String>;

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// Parses OpenMetrics text samples (comment lines skipped; `# EOF` required at the end).
fn parse(text: &str) -> Vec<Sample> {
    assert!(text.ends_with("# EOF\n"), "no # EOF terminator:\n{text}");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample without a value");
            let value: f64 = value.parse().expect("sample value is not a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (
                    name,
                    parse_labels(rest.strip_suffix('}').expect("unclosed label set")),
                ),
                None => (series, Labels::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

fn parse_labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label without =\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label value");
            match c {
                '\\' => value.push(chars.next().expect("dangling escape").1),
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let want = labels(want);
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

const SERIES: [&str; 31] = [
    "kube_vrrp_instance_state",
    "kube_vrrp_instance_transitions_total",
    "kube_vrrp_instance_effective_priority",
    "kube_vrrp_adverts_sent_total",
    "kube_vrrp_adverts_received_total",
    "kube_vrrp_packets_dropped_total",
    "kube_vrrp_instance_last_transition_timestamp_seconds",
    "kube_vrrp_instance_advert_interval_seconds",
    "kube_vrrp_check_up",
    "kube_vrrp_check_failures_total",
    "kube_vrrp_receive_errors_total",
    "kube_vrrp_vip_conflicts",
    "kube_vrrp_vip_add_failures_total",
    "kube_vrrp_vip_restored_total",
    "kube_vrrp_realserver_checks_total",
    "kube_vrrp_realserver_check_duration_seconds_bucket",
    "kube_vrrp_realserver_check_duration_seconds_sum",
    "kube_vrrp_realserver_check_duration_seconds_count",
    "kube_vrrp_realserver_up",
    "kube_vrrp_virtualserver_quorum_up",
    "kube_vrrp_virtualserver_healthy_weight",
    "kube_vrrp_virtualserver_sorry_server_active",
    "kube_vrrp_health_io_restarts_total",
    "kube_vrrp_health_io_last_restart_timestamp_seconds",
    "kube_vrrp_instance_failover_seconds_bucket",
    "kube_vrrp_instance_failover_seconds_sum",
    "kube_vrrp_instance_failover_seconds_count",
    "kube_vrrp_instance_conflict",
    "kube_vrrp_instance_conflict_detections_total",
    "kube_vrrp_adverts_heard_late_total",
    "kube_vrrp_agent_start_timestamp_seconds",
];

fn exercise(metrics: &Metrics) {
    metrics.transition("web", 51, "eth0", State::Backup);
    metrics.transition("web", 51, "eth0", State::Master);
    metrics.advert_sent("web");
    metrics.advert_sent("web");
    metrics.advert_sent("web");
    metrics.advert_received("web");
    metrics.adverts_heard_late_counter("web").inc();
    metrics.effective_priority("web", 140);
    metrics.advert_interval("web", std::time::Duration::from_millis(2_500));
    metrics.dropped("eth0", DropReason::Ttl);
    metrics.dropped("eth0", DropReason::Ttl);
    metrics.dropped("eth0", DropReason::Checksum);
    metrics.receive_counters("eth9").socket_error();
    metrics.vip_conflicts("web", 1);
    metrics.vip_add_failed("web");
    metrics.vips_restored("web", 2);
    metrics.check("script:haproxy", false);
    metrics.check("script:haproxy", false);
    metrics.check("script:haproxy", true);
    let took = std::time::Duration::from_millis(3);
    metrics.real_server_check("web-80", "10.1.0.1:80", "passed", "http", took);
    metrics.real_server_check("web-80", "10.1.0.1:80", "unexpected_status", "http", took);
    metrics.real_server_check("web-80", "10.1.0.1:80", "unexpected_status", "http", took);
    metrics.real_server_up("web-80", "10.1.0.1:80", false);
    metrics.quorum(
        "web-80",
        &Quorum {
            up: false,
            healthy_weight: 0,
            threshold: 1,
            sorry_server_active: true,
        },
    );
    metrics.failover(
        "web",
        std::time::Duration::from_millis(3612),
        std::time::Duration::from_micros(3_609_375),
    );
}

#[test]
fn every_series_is_exported_under_exactly_the_documented_names() {
    let metrics = Metrics::new();
    exercise(&metrics);
    let samples = parse(&metrics.encode());
    let names: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, SERIES.into_iter().collect::<BTreeSet<_>>());
}

/// Labels Prometheus (`instance`, `job`) or the chart's agent ServiceMonitor (`node`, `pod`) put
/// on every scraped series. The agent is scraped without honorLabels, so a metric carrying one of
/// them would see it renamed to `exported_<name>`.
const TARGET_LABELS: [&str; 4] = ["instance", "job", "node", "pod"];

#[test]
fn no_series_carries_a_label_that_the_scrape_sets_on_the_target() {
    let metrics = Metrics::new();
    exercise(&metrics);
    let _ = metrics.receive_counters("eth1");
    let samples = parse(&metrics.encode());
    let names: BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.labels.keys().map(String::as_str))
        .collect();
    for target in TARGET_LABELS {
        assert!(
            !names.contains(target),
            "a series carries the scrape target's label {target:?}: {names:?}"
        );
    }
    assert_eq!(
        names,
        BTreeSet::from([
            "vrrp_instance",
            "vrid",
            "interface",
            "state",
            "reason",
            "tracker",
            "virtualserver",
            "real_server",
            "result",
            "kind",
            "le",
        ])
    );
}

#[test]
fn every_per_instance_series_names_its_instance_in_vrrp_instance() {
    let metrics = Metrics::new();
    exercise(&metrics);
    let samples = parse(&metrics.encode());
    let per_instance: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name.starts_with("kube_vrrp_instance_") || s.name.starts_with("kube_vrrp_adverts_")
        })
        .collect();
    // 4 state series + transitions, priority, timestamp, advert interval, sent, received,
    // heard late, holder conflict and its detections, and the failover histogram's sum, count
    // and 18 + 1 buckets.
    assert_eq!(per_instance.len(), 34, "{per_instance:?}");
    for sample in per_instance {
        assert_eq!(
            sample.labels.get("vrrp_instance").map(String::as_str),
            Some("web"),
            "{sample:?}"
        );
    }
}

#[test]
fn instance_state_is_one_for_the_current_state_and_zero_for_the_other_three() {
    let metrics = Metrics::new();
    exercise(&metrics);
    let samples = parse(&metrics.encode());
    let state = |s: &str| {
        value(
            &samples,
            "kube_vrrp_instance_state",
            &[
                ("vrrp_instance", "web"),
                ("vrid", "51"),
                ("interface", "eth0"),
                ("state", s),
            ],
        )
    };
    assert_eq!(state("MASTER"), Some(1.0));
    assert_eq!(state("BACKUP"), Some(0.0));
    assert_eq!(state("FAULT"), Some(0.0));
    assert_eq!(state("INIT"), Some(0.0));
    assert_eq!(
        samples
            .iter()
            .filter(|s| s.name == "kube_vrrp_instance_state")
            .count(),
        4
    );
}

#[test]
fn the_start_timestamp_is_when_the_registry_was_made_and_differs_for_a_later_one() {
    let before = jiff::Timestamp::now().as_second() as f64;
    let first = Metrics::new();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = Metrics::new();
    let after = jiff::Timestamp::now().as_second() as f64 + 1.0;
    let stamp = |metrics: &Metrics| {
        value(
            &parse(&metrics.encode()),
            "kube_vrrp_agent_start_timestamp_seconds",
            &[],
        )
        .expect("no start timestamp")
    };
    let (first, second) = (stamp(&first), stamp(&second));
    assert!(
        (before..=after).contains(&first),
        "start {first} not within [{before}, {after}]"
    );
    assert!(
        second > first,
        "a restarted agent's start time {second} is not after the first {first}"
    );
}

#[test]
fn counters_and_gauges_hold_what_was_recorded() {
    let metrics = Metrics::new();
    let before = jiff::Timestamp::now().as_second() as f64;
    exercise(&metrics);
    let after = jiff::Timestamp::now().as_second() as f64 + 1.0;
    let samples = parse(&metrics.encode());
    let web = [("vrrp_instance", "web")];
    assert_eq!(
        value(&samples, "kube_vrrp_instance_transitions_total", &web),
        Some(2.0)
    );
    assert_eq!(
        value(&samples, "kube_vrrp_adverts_sent_total", &web),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "kube_vrrp_adverts_received_total", &web),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "kube_vrrp_instance_effective_priority", &web),
        Some(140.0)
    );
    assert_eq!(
        value(&samples, "kube_vrrp_instance_advert_interval_seconds", &web),
        Some(2.5)
    );
    let stamp = value(
        &samples,
        "kube_vrrp_instance_last_transition_timestamp_seconds",
        &web,
    )
    .expect("no last transition timestamp");
    assert!(
        (before..=after).contains(&stamp),
        "timestamp {stamp} not within [{before}, {after}]"
    );
    let drops = |reason: &str| {
        value(
            &samples,
            "kube_vrrp_packets_dropped_total",
            &[("interface", "eth0"), ("reason", reason)],
        )
    };
    assert_eq!(drops("ttl"), Some(2.0));
    assert_eq!(drops("checksum"), Some(1.0));
    assert_eq!(drops("auth"), None, "only drops that happened have series");
    let tracker = [("tracker", "script:haproxy")];
    assert_eq!(value(&samples, "kube_vrrp_check_up", &tracker), Some(1.0));
    assert_eq!(
        value(&samples, "kube_vrrp_check_failures_total", &tracker),
        Some(2.0)
    );
}

#[test]
fn drop_reason_labels_are_the_codec_names() {
    let metrics = Metrics::new();
    let _ = metrics.receive_counters("eth1");
    let samples = parse(&metrics.encode());
    let reasons: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "kube_vrrp_packets_dropped_total")
        .inspect(|s| assert_eq!(s.value, 0.0))
        .map(|s| s.labels["reason"].as_str())
        .collect();
    let want: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(reasons, want);
}

#[test]
fn forget_removes_every_series_of_the_instance_and_keeps_the_others() {
    let metrics = Metrics::new();
    exercise(&metrics);
    metrics.transition("db", 52, "eth1", State::Backup);
    metrics.advert_received("db");
    metrics.forget("web");
    let samples = parse(&metrics.encode());
    let leftovers: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.labels.get("vrrp_instance").is_some_and(|i| i == "web"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "still exported after forget: {leftovers:?}"
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_adverts_received_total",
            &[("vrrp_instance", "db")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_instance_state",
            &[
                ("vrrp_instance", "db"),
                ("vrid", "52"),
                ("interface", "eth1"),
                ("state", "BACKUP")
            ]
        ),
        Some(1.0)
    );
    // Drop counters belong to the interface, tracker series to the tracker.
    assert!(
        value(
            &samples,
            "kube_vrrp_packets_dropped_total",
            &[("interface", "eth0"), ("reason", "ttl")]
        )
        .is_some()
    );
    assert!(
        value(
            &samples,
            "kube_vrrp_check_up",
            &[("tracker", "script:haproxy")]
        )
        .is_some()
    );
}

#[test]
fn moving_an_instance_to_another_interface_replaces_its_state_series() {
    let metrics = Metrics::new();
    metrics.transition("web", 51, "eth0", State::Backup);
    metrics.transition("web", 51, "eth1", State::Master);
    let samples = parse(&metrics.encode());
    let interfaces: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "kube_vrrp_instance_state")
        .map(|s| s.labels["interface"].as_str())
        .collect();
    assert_eq!(interfaces, BTreeSet::from(["eth1"]));
}

#[test]
fn setting_the_state_without_a_transition_counts_nothing_but_creates_the_series() {
    let metrics = Metrics::new();
    metrics.state("web", 51, "eth0", State::Initialize);
    let samples = parse(&metrics.encode());
    let web = [("vrrp_instance", "web")];
    assert_eq!(
        value(&samples, "kube_vrrp_instance_transitions_total", &web),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "kube_vrrp_adverts_sent_total", &web),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_instance_state",
            &[
                ("vrrp_instance", "web"),
                ("vrid", "51"),
                ("interface", "eth0"),
                ("state", "INIT")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_instance_last_transition_timestamp_seconds",
            &web
        ),
        None
    );
}

#[test]
fn forget_tracker_removes_its_series() {
    let metrics = Metrics::new();
    metrics.check("interface:eth1", false);
    metrics.forget_tracker("interface:eth1");
    let samples = parse(&metrics.encode());
    assert!(
        samples.iter().all(|s| !s.labels.contains_key("tracker")),
        "{samples:?}"
    );
}

#[test]
fn real_server_series_count_attempts_by_result_and_carry_the_verdict_and_quorum() {
    let metrics = Metrics::new();
    exercise(&metrics);
    let samples = parse(&metrics.encode());
    let rs = |result: &str| {
        value(
            &samples,
            "kube_vrrp_realserver_checks_total",
            &[
                ("virtualserver", "web-80"),
                ("real_server", "10.1.0.1:80"),
                ("result", result),
            ],
        )
    };
    assert_eq!(rs("passed"), Some(1.0));
    assert_eq!(rs("unexpected_status"), Some(2.0));
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_realserver_check_duration_seconds_count",
            &[("virtualserver", "web-80"), ("kind", "http")]
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_realserver_up",
            &[("virtualserver", "web-80"), ("real_server", "10.1.0.1:80")]
        ),
        Some(0.0)
    );
    let web = [("virtualserver", "web-80")];
    assert_eq!(
        value(&samples, "kube_vrrp_virtualserver_quorum_up", &web),
        Some(0.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_virtualserver_sorry_server_active",
            &web
        ),
        Some(1.0)
    );

    metrics.forget_real_server("web-80", "10.1.0.1:80");
    metrics.forget_virtual_server("web-80");
    let left = parse(&metrics.encode());
    assert!(
        !left.iter().any(|s| s.labels.contains_key("virtualserver")),
        "series of a removed VirtualServer stay: {left:?}"
    );
}

#[test]
fn every_health_check_metric_the_chart_alerts_on_is_exported() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/kube-vrrp/rules/alerts.yaml"),
    )
    .expect("the chart's alert rules");
    let metrics = Metrics::new();
    exercise(&metrics);
    let samples = parse(&metrics.encode());
    // The restart alert reads the time of the last restart, which exists (at 0) before any.
    assert!(rules.contains("kube_vrrp_health_io_last_restart_timestamp_seconds"));
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_health_io_last_restart_timestamp_seconds",
            &[]
        ),
        Some(0.0)
    );
    let exported: BTreeSet<String> = samples.into_iter().map(|s| s.name).collect();
    let mut used = BTreeSet::new();
    for (start, _) in rules.match_indices("kube_vrrp_") {
        let name: String = rules[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `kube_vrrp_check_*` in a comment names a family, not a metric.
        if name.ends_with('_') {
            continue;
        }
        if name.starts_with("kube_vrrp_realserver_")
            || name.starts_with("kube_vrrp_virtualserver_")
            || name.starts_with("kube_vrrp_check_")
            || name.starts_with("kube_vrrp_health_io_")
        {
            used.insert(name);
        }
    }
    assert!(used.len() >= 5, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "the alerts use {name}, which the agent does not export"
        );
    }
}

#[test]
fn a_restart_of_the_health_io_loop_is_counted_and_its_time_stamped() {
    use std::time::{Duration, SystemTime};
    let metrics = Metrics::new();
    let restart =
        |secs| metrics.health_io_restarted(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    restart(1_700_000_000);
    restart(1_700_000_600);
    let samples = parse(&metrics.encode());
    assert_eq!(
        value(&samples, "kube_vrrp_health_io_restarts_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_health_io_last_restart_timestamp_seconds",
            &[]
        ),
        Some(1_700_000_600.0),
        "the last restart's time"
    );
}

#[test]
fn a_failover_lands_in_buckets_around_the_instances_own_master_down_interval() {
    use std::time::Duration;
    let metrics = Metrics::new();
    let mdi = Duration::from_micros(3_609_375);
    // A death just past Master_Down_Interval, and a planned handover at Skew_Time.
    metrics.failover("web", Duration::from_millis(3612), mdi);
    metrics.failover("web", Duration::from_micros(609_375), mdi);
    // Another instance at 10 ms adverts gets its own buckets.
    metrics.failover(
        "db",
        Duration::from_millis(37),
        Duration::from_micros(36_094),
    );
    let samples = parse(&metrics.encode());
    let bucket = |instance: &str, le: &str| {
        value(
            &samples,
            "kube_vrrp_instance_failover_seconds_bucket",
            &[("vrrp_instance", instance), ("le", le)],
        )
    };
    // 1.0 and 1.01 × 3.609375 s (rounded to whole µs): the death falls between them.
    assert_eq!(bucket("web", "3.609375"), Some(1.0));
    assert_eq!(bucket("web", "3.645469"), Some(2.0));
    // 0.2 × Master_Down_Interval holds the handover.
    assert_eq!(bucket("web", "0.721875"), Some(1.0));
    assert_eq!(bucket("web", "+Inf"), Some(2.0));
    assert_eq!(
        value(
            &samples,
            "kube_vrrp_instance_failover_seconds_count",
            &[("vrrp_instance", "web")]
        ),
        Some(2.0)
    );
    // 1.02 and 1.05 × 36.094 ms, rounded to whole microseconds.
    assert_eq!(bucket("db", "0.036094"), Some(0.0));
    assert_eq!(bucket("db", "0.036816"), Some(0.0));
    assert_eq!(bucket("db", "0.037899"), Some(1.0));
    metrics.forget("web");
    let samples = parse(&metrics.encode());
    assert!(
        samples
            .iter()
            .all(|s| s.labels.get("vrrp_instance").map(String::as_str) != Some("web")),
        "{samples:?}"
    );
}
