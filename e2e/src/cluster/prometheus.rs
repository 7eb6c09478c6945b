//! A real Prometheus server (Debian's `prometheus`) in the cluster lab, configured from the
//! chart as rendered: each ServiceMonitor becomes a scrape config the way the Prometheus
//! Operator would generate it, with static targets standing in for the endpoints discovery
//! the lab lacks (the pods its Service selects, with the `__meta_kubernetes_*` labels
//! discovery would give them), and the PrometheusRule's groups become its rule file. Nothing
//! of the chart's relabelling or rules is written twice: [`scrape_configs`] translates the
//! rendered objects, [`Prometheus::start`] renders them with `helm template`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::error::ClusterError;
use super::kubectl::Tool;
use super::{Cluster, NAMESPACE, RELEASE, binaries};
use crate::netns::Netns;
use crate::process::DaemonProcess;

/// The lab host number of the Prometheus server on the switch (see
/// [`crate::addressing::lab_host_ip`]).
pub const PROMETHEUS_HOST: u8 = 20;
/// Where Prometheus listens inside its namespace.
const PORT: u16 = 9090;
/// Where Debian installs the server.
const SERVER: &str = "/usr/bin/prometheus";
/// The API versions `helm template` is told the cluster serves, so that `auto` turns the
/// ServiceMonitors and the PrometheusRule on.
const MONITORING_APIS: [&str; 2] = [
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
];

/// What the chart renders for monitoring.
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub service_monitors: Vec<Value>,
    pub services: Vec<Value>,
    /// `spec.groups` of the PrometheusRule.
    pub rule_groups: Vec<Value>,
}

/// `helm template` of the chart with `values` and the monitoring APIs present.
pub fn render(helm: &Tool, chart: &Path, values: &[String]) -> Result<Rendered, ClusterError> {
    let chart = chart.display().to_string();
    let mut args = vec!["template", RELEASE, chart.as_str(), "-n", NAMESPACE];
    for api in MONITORING_APIS {
        args.extend(["--api-versions", api]);
    }
    for value in values {
        args.extend(["--set", value.as_str()]);
    }
    let text = helm.run(&args)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| ClusterError::Decode {
            what: "helm template output".into(),
            message: e.to_string(),
        })?;
    let mut rendered = Rendered::default();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        match doc.get("kind").and_then(Value::as_str) {
            Some("ServiceMonitor") => rendered.service_monitors.push(doc),
            Some("Service") => rendered.services.push(doc),
            Some("PrometheusRule") => rendered.rule_groups.extend(
                doc.pointer("/spec/groups")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => {}
        }
    }
    Ok(rendered)
}

/// One pod behind a Service, as endpoints discovery would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub pod: String,
    pub namespace: String,
    pub node: Option<String>,
    pub container: String,
    pub address: IpAddr,
    /// The pod object's labels (what the Service selects on).
    pub labels: Map<String, Value>,
    /// The container's named ports.
    pub ports: Vec<(String, u16)>,
}

impl Target {
    /// Reads a pod object (as the lab's kubelet made it) and the address it answers on.
    pub fn of_pod(object: &Value, address: IpAddr) -> Self {
        let text = |p: &str| object.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let ports = object
            .pointer("/spec/containers/0/ports")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|p| {
                let name = p.get("name")?.as_str()?.to_owned();
                let port = u16::try_from(p.get("containerPort")?.as_u64()?).ok()?;
                Some((name, port))
            })
            .collect();
        Self {
            pod: text("/metadata/name").unwrap_or_default(),
            namespace: text("/metadata/namespace").unwrap_or_default(),
            node: text("/spec/nodeName"),
            container: text("/spec/containers/0/name").unwrap_or_default(),
            address,
            labels: object
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            ports,
        }
    }
}

fn decode(what: &str, message: impl Into<String>) -> ClusterError {
    ClusterError::Decode {
        what: what.to_owned(),
        message: message.into(),
    }
}

/// `__meta_kubernetes_service_label_<name>`: Prometheus' discovery label for a Service label.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn matches(selector: Option<&Value>, labels: &Map<String, Value>) -> bool {
    selector
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// A ServiceMonitor's `relabelings` entry as a Prometheus `relabel_configs` entry. A field
/// this does not know is an error, never dropped.
fn relabel_config(relabeling: &Value, what: &str) -> Result<Value, ClusterError> {
    let fields = relabeling
        .as_object()
        .ok_or_else(|| decode(what, "a relabeling is not an object"))?;
    let mut out = Map::new();
    for (key, value) in fields {
        let key = match key.as_str() {
            "sourceLabels" => "source_labels",
            "targetLabel" => "target_label",
            "action" => {
                let action = value.as_str().unwrap_or_default().to_ascii_lowercase();
                out.insert("action".into(), Value::String(action));
                continue;
            }
            "separator" | "regex" | "modulus" | "replacement" => key.as_str(),
            other => {
                return Err(decode(
                    what,
                    format!("relabeling field {other:?} not translated"),
                ));
            }
        };
        out.insert(key.into(), value.clone());
    }
    Ok(Value::Object(out))
}

/// The scrape configs of one ServiceMonitor: one per endpoint, with the Prometheus
/// Operator's own target labels (namespace, service, pod, container, job from `jobLabel`,
/// endpoint), then the endpoint's `relabelings` as rendered, over static targets: every pod
/// in `targets` that a Service selected by the monitor selects, with the discovery labels.
pub fn scrape_configs(
    monitor: &Value,
    services: &[Value],
    targets: &[Target],
) -> Result<Vec<Value>, ClusterError> {
    let name = monitor
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("servicemonitor");
    let namespace = monitor
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(NAMESPACE);
    let what = format!("ServiceMonitor {namespace}/{name}");
    let spec = monitor
        .get("spec")
        .ok_or_else(|| decode(&what, "no spec"))?;
    let job_label = spec.get("jobLabel").and_then(Value::as_str);
    let selected: Vec<&Value> = services
        .iter()
        .filter(|s| {
            let labels = s
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            matches(spec.pointer("/selector/matchLabels"), &labels)
        })
        .collect();
    if selected.is_empty() {
        return Err(decode(&what, "selects no Service"));
    }
    let endpoints = spec
        .get("endpoints")
        .and_then(Value::as_array)
        .ok_or_else(|| decode(&what, "no endpoints"))?;
    let mut configs = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let ep = endpoint
            .as_object()
            .ok_or_else(|| decode(&what, "an endpoint is not an object"))?;
        for key in ep.keys() {
            if !matches!(
                key.as_str(),
                "port"
                    | "path"
                    | "interval"
                    | "scrapeTimeout"
                    | "honorLabels"
                    | "scheme"
                    | "relabelings"
                    | "metricRelabelings"
            ) {
                return Err(decode(
                    &what,
                    format!("endpoint field {key:?} not translated"),
                ));
            }
        }
        let port_name = ep
            .get("port")
            .and_then(Value::as_str)
            .ok_or_else(|| decode(&what, "an endpoint without a named port"))?;
        let mut static_configs = Vec::new();
        for service in &selected {
            static_configs.extend(service_targets(service, port_name, targets, &what)?);
        }
        let mut relabel = vec![
            json!({"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"}),
            json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"}),
            json!({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}),
            json!({"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"}),
            json!({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job"}),
        ];
        if let Some(label) = job_label {
            relabel.push(json!({
                "source_labels": [format!("__meta_kubernetes_service_label_{}", sanitize(label))],
                "regex": "(.+)",
                "target_label": "job",
            }));
        }
        relabel.push(json!({"target_label": "endpoint", "replacement": port_name}));
        for r in ep
            .get("relabelings")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            relabel.push(relabel_config(r, &what)?);
        }
        let mut config = json!({
            "job_name": format!("serviceMonitor/{namespace}/{name}/{i}"),
            "honor_labels": ep.get("honorLabels").and_then(Value::as_bool).unwrap_or(false),
            "metrics_path": ep.get("path").and_then(Value::as_str).unwrap_or("/metrics"),
            "scheme": ep.get("scheme").and_then(Value::as_str).unwrap_or("http"),
            "static_configs": static_configs,
            "relabel_configs": relabel,
        });
        for (from, to) in [
            ("interval", "scrape_interval"),
            ("scrapeTimeout", "scrape_timeout"),
        ] {
            if let Some(v) = ep
                .get(from)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                config[to] = Value::String(v.to_owned());
            }
        }
        if let Some(m) = ep.get("metricRelabelings").and_then(Value::as_array) {
            config["metric_relabel_configs"] = Value::Array(
                m.iter()
                    .map(|r| relabel_config(r, &what))
                    .collect::<Result<_, _>>()?,
            );
        }
        configs.push(config);
    }
    Ok(configs)
}

/// The static targets of one Service's port `port_name`: the pods it selects, each at the
/// container port its `targetPort` names, with endpoints discovery's labels.
fn service_targets(
    service: &Value,
    port_name: &str,
    targets: &[Target],
    what: &str,
) -> Result<Vec<Value>, ClusterError> {
    let service_name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(port_name))
        })
        .ok_or_else(|| {
            decode(
                what,
                format!("Service {service_name} has no port {port_name:?}"),
            )
        })?;
    let service_labels = service
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for target in targets
        .iter()
        .filter(|t| matches(service.pointer("/spec/selector"), &t.labels))
    {
        let number = match port.get("targetPort") {
            Some(Value::String(named)) => target
                .ports
                .iter()
                .find(|(n, _)| n == named)
                .map(|(_, p)| *p)
                .ok_or_else(|| decode(what, format!("pod {} has no port {named:?}", target.pod)))?,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| decode(what, "bad targetPort"))?,
            _ => port
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| decode(what, "no port"))?,
        };
        let mut labels = Map::new();
        let mut put = |k: String, v: &str| {
            labels.insert(k, Value::String(v.to_owned()));
        };
        put("__meta_kubernetes_namespace".into(), &target.namespace);
        put("__meta_kubernetes_service_name".into(), service_name);
        put("__meta_kubernetes_pod_name".into(), &target.pod);
        put(
            "__meta_kubernetes_pod_container_name".into(),
            &target.container,
        );
        put("__meta_kubernetes_endpoint_port_name".into(), port_name);
        if let Some(node) = &target.node {
            put("__meta_kubernetes_pod_node_name".into(), node);
        }
        for (k, v) in &service_labels {
            if let Some(v) = v.as_str() {
                put(
                    format!("__meta_kubernetes_service_label_{}", sanitize(k)),
                    v,
                );
            }
        }
        out.push(json!({
            "targets": [SocketAddr::new(target.address, number).to_string()],
            "labels": labels,
        }));
    }
    Ok(out)
}

/// One alert as `/api/v1/alerts` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub name: String,
    /// "pending" or "firing".
    pub state: String,
    pub labels: Map<String, Value>,
}

impl Alert {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).and_then(Value::as_str)
    }
}

/// A Prometheus server scraping the lab, in a lab host of its own on the switch (a port a
/// partition of the nodes leaves alone).
#[derive(Debug)]
pub struct Prometheus {
    // Field order is drop order: the process before its namespace.
    process: DaemonProcess,
    host: Netns,
    address: SocketAddr,
    dir: PathBuf,
    rendered: Rendered,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.terminate(Duration::from_secs(5));
    }
}

impl Prometheus {
    /// Renders the chart with `values`, writes the scrape configs of its ServiceMonitors over
    /// the cluster's pods and its PrometheusRule groups, starts the server with `interval` as
    /// its scrape and evaluation interval, and waits until it has loaded the rules and
    /// scraped every target once.
    pub fn start(
        cluster: &Cluster,
        values: &[String],
        interval: &str,
    ) -> Result<Self, ClusterError> {
        let server = Path::new(SERVER);
        if !server.exists() {
            return Err(ClusterError::NotBuilt {
                what: "prometheus",
                path: SERVER.into(),
                hint: "apt-get install prometheus (hack/install-deps.sh installs it)",
            });
        }
        let rendered = render(
            cluster.helm(),
            &binaries::repo_root().join("charts/kube-vrrp"),
            values,
        )?;
        if rendered.service_monitors.is_empty() || rendered.rule_groups.is_empty() {
            return Err(decode(
                "helm template",
                "the chart rendered no ServiceMonitor or no PrometheusRule groups",
            ));
        }
        let targets: Vec<Target> = cluster
            .pods()
            .map(|p| {
                let address = p
                    .named_port("metrics")
                    .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |port| {
                        p.endpoint(port).1.ip()
                    });
                Target::of_pod(p.object(), address)
            })
            .collect();
        let mut scrape = Vec::new();
        for monitor in &rendered.service_monitors {
            scrape.extend(scrape_configs(monitor, &rendered.services, &targets)?);
        }
        let dir = cluster.workdir().join("prometheus");
        std::fs::create_dir_all(dir.join("data"))
            .map_err(ClusterError::io(format!("create {}", dir.display())))?;
        let rules = dir.join("rules.yaml");
        write_json(&rules, &json!({ "groups": rendered.rule_groups }))?;
        let config = dir.join("prometheus.yaml");
        write_json(
            &config,
            &json!({
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "rule_files": [rules.display().to_string()],
                "scrape_configs": scrape,
            }),
        )?;
        let host = cluster.lab().attach("prom", PROMETHEUS_HOST)?;
        let address = SocketAddr::new(
            crate::addressing::lab_host_ip(PROMETHEUS_HOST, crate::addressing::Family::V4),
            PORT,
        );
        let config_arg = format!("--config.file={}", config.display());
        let data_arg = format!("--storage.tsdb.path={}", dir.join("data").display());
        let listen_arg = format!("--web.listen-address={address}");
        let process = DaemonProcess::spawn(
            "prometheus",
            "prom",
            &host,
            &[
                SERVER,
                &config_arg,
                &data_arg,
                &listen_arg,
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            &[],
            &dir.join("prometheus.log"),
        )?;
        let mut prometheus = Self {
            process,
            host,
            address,
            dir,
            rendered,
        };
        prometheus.wait_up(targets.len(), Duration::from_secs(30))?;
        Ok(prometheus)
    }

    fn wait_up(&mut self, targets: usize, timeout: Duration) -> Result<(), ClusterError> {
        let started = std::time::Instant::now();
        loop {
            if !self.process.is_running() {
                return Err(ClusterError::Exited {
                    process: "prometheus".into(),
                    status: "exited".into(),
                    log: self.process.log(),
                });
            }
            let scraped = self
                .api()
                .query("count(up == 1)")
                .ok()
                .and_then(|r| r.first().and_then(sample_value));
            let groups = self.api().get("/api/v1/rules").ok().map_or(0, |r| {
                r.pointer("/data/groups")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            });
            #[allow(clippy::cast_precision_loss)] // a handful of targets
            let all_scraped = scraped.is_some_and(|n| (n - targets as f64).abs() < 0.5);
            if all_scraped && groups == self.rendered.rule_groups.len() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(ClusterError::Timeout {
                    what: format!(
                        "Prometheus scraping {targets} targets and loading {} rule groups (scraped {scraped:?}, groups {groups}); log:\n{}",
                        self.rendered.rule_groups.len(),
                        self.process.log()
                    ),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the chart rendered (its rule groups, ServiceMonitors, Services).
    pub fn rendered(&self) -> &Rendered {
        &self.rendered
    }

    /// The server's work directory (config, rules, data, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// A client of its HTTP API (cheap to clone, usable from other threads).
    pub fn api(&self) -> PrometheusApi {
        PrometheusApi {
            netns: self.host.name().to_owned(),
            address: self.address,
        }
    }
}

/// The HTTP API of the lab's Prometheus, reached from inside its namespace.
#[derive(Clone, Debug)]
pub struct PrometheusApi {
    netns: String,
    address: SocketAddr,
}

impl PrometheusApi {
    /// GETs an API path and returns its JSON, failing unless `status` is "success".
    pub fn get(&self, path_and_query: &str) -> Result<Value, ClusterError> {
        let (addr, path) = (self.address, path_and_query.to_owned());
        let response = crate::netns::run_in_named(&self.netns, move || {
            crate::http::get(addr, &path, Duration::from_secs(5))
        })?
        .map_err(|e| decode("Prometheus API", e.to_string()))?;
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| decode("Prometheus API", e.to_string()))?;
        if body.get("status").and_then(Value::as_str) == Some("success") {
            Ok(body)
        } else {
            Err(decode(
                &format!("Prometheus API {path_and_query}"),
                body.to_string(),
            ))
        }
    }

    /// `/api/v1/query?query=EXPR`: the result vector (each `{metric, value}`).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, ClusterError> {
        let body = self.get(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        Ok(body
            .pointer("/data/result")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// `/api/v1/alerts`: every pending or firing alert.
    pub fn alerts(&self) -> Result<Vec<Alert>, ClusterError> {
        let body = self.get("/api/v1/alerts")?;
        Ok(body
            .pointer("/data/alerts")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|a| {
                let labels = a
                    .get("labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                Alert {
                    name: labels
                        .get("alertname")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    state: a
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    labels,
                }
            })
            .collect())
    }

    /// The firing alerts only.
    pub fn firing(&self) -> Result<Vec<Alert>, ClusterError> {
        Ok(self
            .alerts()?
            .into_iter()
            .filter(|a| a.state == "firing")
            .collect())
    }
}

/// The number in one `/api/v1/query` vector sample (`{"value": [time, "n"]}`).
pub fn sample_value(sample: &Value) -> Option<f64> {
    sample.pointer("/value/1")?.as_str()?.parse().ok()
}

fn write_json(path: &Path, value: &Value) -> Result<(), ClusterError> {
    // JSON is YAML: Prometheus reads both files as written.
    std::fs::write(path, value.to_string())
        .map_err(ClusterError::io(format!("write {}", path.display())))
}

/// Percent-encodes a query parameter.
fn url_encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Value {
        json!({
            "kind": "Service",
            "metadata": {"name": "kv-agent-metrics", "labels": {"app": "kv", "kubevrrp.io/scrape-job": "kube-vrrp-agent"}},
            "spec": {"selector": {"app": "kv"}, "ports": [{"name": "metrics", "port": 9, "targetPort": "metrics"}]},
        })
    }

    fn monitor(relabelings: &Value) -> Value {
        json!({
            "kind": "ServiceMonitor",
            "metadata": {"name": "kv-agent", "namespace": "ns"},
            "spec": {
                "jobLabel": "kubevrrp.io/scrape-job",
                "selector": {"matchLabels": {"kubevrrp.io/scrape-job": "kube-vrrp-agent"}},
                "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "1s", "relabelings": relabelings}],
            },
        })
    }

    fn target(pod: &str, app: &str) -> Target {
        Target {
            pod: pod.into(),
            namespace: "ns".into(),
            node: Some("n1".into()),
            container: "agent".into(),
            address: "192.0.2.1".parse().unwrap(),
            labels: json!({"app": app}).as_object().unwrap().clone(),
            ports: vec![("metrics".into(), 9101)],
        }
    }

    #[test]
    fn a_service_monitor_becomes_a_scrape_config_with_the_operators_labels_then_its_own_relabelings()
     {
        let m = monitor(
            &json!([{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]),
        );
        let configs =
            scrape_configs(&m, &[service()], &[target("a", "kv"), target("other", "x")]).unwrap();
        assert_eq!(configs.len(), 1);
        let c = &configs[0];
        assert_eq!(c["scrape_interval"], "1s");
        assert_eq!(c["honor_labels"], false);
        let statics = c["static_configs"].as_array().unwrap();
        assert_eq!(statics.len(), 1, "only the pod the Service selects");
        assert_eq!(statics[0]["targets"][0], "192.0.2.1:9101");
        assert_eq!(
            statics[0]["labels"]["__meta_kubernetes_service_label_kubevrrp_io_scrape_job"],
            "kube-vrrp-agent"
        );
        let relabel = c["relabel_configs"].as_array().unwrap();
        assert_eq!(
            relabel.last().unwrap(),
            &json!({"action": "replace", "source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"})
        );
        assert!(relabel.iter().any(|r| r["target_label"] == "job"
            && r["source_labels"][0] == "__meta_kubernetes_service_label_kubevrrp_io_scrape_job"));
    }

    #[test]
    fn a_relabeling_or_endpoint_field_that_is_not_translated_is_an_error() {
        let m = monitor(&json!([{"targetLabel": "x", "unknownField": 1}]));
        let e = scrape_configs(&m, &[service()], &[target("a", "kv")]).unwrap_err();
        assert!(e.to_string().contains("unknownField"), "{e}");
        let mut m = monitor(&json!([]));
        m["spec"]["endpoints"][0]["tlsConfig"] = json!({});
        let e = scrape_configs(&m, &[service()], &[target("a", "kv")]).unwrap_err();
        assert!(e.to_string().contains("tlsConfig"), "{e}");
    }

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            url_encode("up{a=\"b\"} > 1"),
            "up%7Ba%3D%22b%22%7D%20%3E%201"
        );
    }
}
