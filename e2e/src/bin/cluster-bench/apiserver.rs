//! Where the API server's time goes, from its own `/metrics` read before and after a step:
//! requests and their summed handling time by verb and resource
//! (`apiserver_request_duration_seconds`), watch events sent by resource
//! (`apiserver_watch_events_total`, `apiserver_watch_events_sizes`), and its CPU
//! (`process_cpu_seconds_total`).

use std::collections::BTreeMap;

/// One sample's labels, by name.
type Labels = BTreeMap<String, String>;

/// The samples of the families this module reads: (family, labels) → value.
#[derive(Debug, Default)]
pub struct Scrape(Vec<(String, Labels, f64)>);

/// The families read, by sample name.
const SAMPLES: [&str; 6] = [
    "apiserver_request_duration_seconds_sum",
    "apiserver_request_duration_seconds_count",
    "apiserver_watch_events_total",
    "apiserver_watch_events_sizes_sum",
    "process_cpu_seconds_total",
    "apiserver_audit_event_total",
];

/// `name{a="x",b="y"} 1.5` → (name, labels, value); `None` for comments, other families and
/// lines that do not parse.
fn sample(line: &str) -> Option<(String, Labels, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    if !SAMPLES.contains(&name) {
        return None;
    }
    let mut out = Labels::new();
    let mut rest = labels;
    while let Some((key, after)) = rest.split_once("=\"") {
        // A value ends at the first quote not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end?;
        out.insert(
            key.trim_start_matches(',').to_owned(),
            after[..end].to_owned(),
        );
        rest = &after[end + 1..];
    }
    Some((name.to_owned(), out, value))
}

impl Scrape {
    /// The samples of `text` (Prometheus text format) this module reads.
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(sample).collect())
    }

    /// The sum of `name`'s samples grouped by `key` of their labels.
    fn by(&self, name: &str, key: impl Fn(&Labels) -> String) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for (n, labels, value) in &self.0 {
            if n == name {
                *out.entry(key(labels)).or_insert(0.0) += value;
            }
        }
        out
    }

    fn total(&self, name: &str) -> f64 {
        self.by(name, |_| String::new()).values().sum()
    }
}

fn request_key(labels: &Labels) -> String {
    let get = |k: &str| labels.get(k).map_or("", String::as_str);
    let resource = match get("subresource") {
        "" => get("resource").to_owned(),
        sub => format!("{}/{sub}", get("resource")),
    };
    format!("{} {resource}", get("verb"))
}

fn watch_key(labels: &Labels) -> String {
    labels
        .get("resource")
        .or_else(|| labels.get("kind"))
        .cloned()
        .unwrap_or_default()
}

/// `after − before` per key of `by`.
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// What the API server did between two scrapes.
#[derive(Debug)]
pub struct Breakdown {
    /// (verb resource, requests, seconds spent handling them), most seconds first.
    pub requests: Vec<(String, f64, f64)>,
    /// (resource, watch events sent, MiB sent), most events first.
    pub watch_events: Vec<(String, f64, f64)>,
    /// CPU seconds of the API server process.
    pub cpu: f64,
    /// Audit events written.
    pub audit_events: f64,
}

impl Breakdown {
    /// The difference between `before` and `after`.
    pub fn between(before: &Scrape, after: &Scrape) -> Self {
        let seconds = delta(
            &before.by("apiserver_request_duration_seconds_sum", request_key),
            &after.by("apiserver_request_duration_seconds_sum", request_key),
        );
        let counts: BTreeMap<String, f64> = delta(
            &before.by("apiserver_request_duration_seconds_count", request_key),
            &after.by("apiserver_request_duration_seconds_count", request_key),
        )
        .into_iter()
        .collect();
        let mut requests: Vec<(String, f64, f64)> = seconds
            .into_iter()
            .map(|(k, s)| (k.clone(), counts.get(&k).copied().unwrap_or(0.0), s))
            .collect();
        requests.sort_by(|a, b| b.2.total_cmp(&a.2));
        let bytes: BTreeMap<String, f64> = delta(
            &before.by("apiserver_watch_events_sizes_sum", watch_key),
            &after.by("apiserver_watch_events_sizes_sum", watch_key),
        )
        .into_iter()
        .collect();
        let mut watch_events: Vec<(String, f64, f64)> = delta(
            &before.by("apiserver_watch_events_total", watch_key),
            &after.by("apiserver_watch_events_total", watch_key),
        )
        .into_iter()
        .map(|(k, n)| {
            let mib = bytes.get(&k).copied().unwrap_or(0.0) / (1024.0 * 1024.0);
            (k, n, mib)
        })
        .collect();
        watch_events.sort_by(|a, b| b.1.total_cmp(&a.1));
        Self {
            requests,
            watch_events,
            cpu: after.total("process_cpu_seconds_total")
                - before.total("process_cpu_seconds_total"),
            audit_events: after.total("apiserver_audit_event_total")
                - before.total("apiserver_audit_event_total"),
        }
    }

    /// Prints the tables (the `top` request kinds by time; watch events by resource).
    pub fn print(&self, top: usize) {
        println!(
            "\nkube-apiserver, from its own /metrics: {:.1} s CPU, {:.0} audit events\n",
            self.cpu, self.audit_events
        );
        println!("| request (verb resource) | requests | handling time, summed | mean |");
        println!("| --- | ---: | ---: | ---: |");
        let total: f64 = self.requests.iter().map(|r| r.2).sum();
        for (what, n, secs) in self.requests.iter().take(top) {
            println!(
                "| {what} | {n:.0} | {secs:.1} s | {:.1} ms |",
                secs * 1e3 / n.max(1.0)
            );
        }
        let others: f64 = self.requests.iter().skip(top).map(|r| r.2).sum();
        println!("| (all others) | | {others:.1} s | |");
        println!("| all | | {total:.1} s | |");
        println!("\n| watch events sent (resource) | events | MiB |");
        println!("| --- | ---: | ---: |");
        for (what, n, mib) in &self.watch_events {
            println!("| {what} | {n:.0} | {mib:.1} |");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# HELP apiserver_request_duration_seconds x
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="APPLY",version="v1"} 1.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="APPLY",version="v1"} 10
apiserver_watch_events_total{group="",resource="services",version="v1"} 5
process_cpu_seconds_total 10
"#;
    const AFTER: &str = r#"apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="APPLY",version="v1"} 4.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="APPLY",version="v1"} 30
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 40
apiserver_request_duration_seconds_bucket{le="0.1",resource="events",verb="POST"} 40
apiserver_watch_events_total{group="",resource="services",version="v1"} 25
apiserver_watch_events_sizes_sum{group="",resource="services",version="v1"} 2097152
process_cpu_seconds_total 34
"#;

    #[test]
    fn the_breakdown_is_the_difference_by_verb_and_resource_most_time_first() {
        let b = Breakdown::between(&Scrape::parse(BEFORE), &Scrape::parse(AFTER));
        assert_eq!(
            b.requests,
            vec![
                ("APPLY services/status".to_owned(), 20.0, 3.0),
                ("POST events".to_owned(), 40.0, 2.0),
            ]
        );
        assert_eq!(b.watch_events, vec![("services".to_owned(), 20.0, 2.0)]);
        assert!((b.cpu - 24.0).abs() < 1e-9);
    }

    #[test]
    fn a_quoted_label_value_may_hold_commas_braces_and_escaped_quotes() {
        let (name, labels, value) =
            sample(r#"apiserver_watch_events_total{resource="a,b}",x="say \"hi\""} 3"#).unwrap();
        assert_eq!(name, "apiserver_watch_events_total");
        assert_eq!(labels["resource"], "a,b}");
        assert_eq!(labels["x"], r#"say \"hi\""#);
        assert!((value - 3.0).abs() < 1e-9);
    }
}
