//! The cluster scenarios of `tests/cluster.rs`, one module each, and what they share: the lab
//! brought up with the chart's default values, VirtualIP manifests on the lab's addresses,
//! and a watcher that records what `kubectl get vip` and the operator's metrics said
//! throughout a disruption.

pub mod apply;
pub mod failover;
pub mod isolation;
pub mod leader;
pub mod nodes;
pub mod outage;
pub mod partition;
pub mod rbac;
pub mod refused;
pub mod rolling;
pub mod tuning;
pub mod upgrade;
pub mod validation;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{InstanceStatus, parse_status};
use kube_vrrp_e2e::cluster::user::{self, User, poll};
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec, Pod};
use kube_vrrp_e2e::{Mac, exposition, http, netns};
use serde_json::{Value, json};

/// Runs scenario `name` and prints how long it took (the lab's bring-up included).
pub fn timed(name: &str, scenario: fn()) {
    let started = Instant::now();
    scenario();
    eprintln!("scenario {name}: {:.1} s", started.elapsed().as_secs_f64());
}

/// How often watchers and waits look.
pub const POLL: Duration = Duration::from_millis(100);

/// The scenarios' usual VirtualIP: `web` at 192.168.77.50, VRID 50, adverts every 100 ms,
/// priorities n1 150, n2 100, n3 50; returns once n1 is its MASTER.
pub fn apply_web(cluster: &Cluster) {
    cluster.user().apply(&web_manifest()).unwrap();
    wait_master(cluster, "web", "n1", Duration::from_secs(20));
}

/// The manifest of the scenarios' usual VirtualIP `web` (see [`apply_web`]).
pub fn web_manifest() -> String {
    vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &serde_json::json!({}),
    )
}

/// Brings the cluster lab up with the chart's default values (fails clearly without root).
pub fn up() -> Cluster {
    netns::require_root();
    let started = Instant::now();
    let cluster =
        Cluster::up(&ClusterSpec::default()).unwrap_or_else(|e| panic!("cluster lab: {e}"));
    eprintln!(
        "cluster lab up in {:.1} s (Kubernetes v{})",
        started.elapsed().as_secs_f64(),
        cluster.control_plane().k8s_version()
    );
    cluster
}

/// A VirtualIP on the lab's switch: address `192.168.77.(50+index)/24`, VRRPv3 unless
/// `extra` says otherwise, `priorities` by node name; `extra` is merged into the spec.
pub fn vip_manifest(
    name: &str,
    index: u8,
    vrid: u8,
    advert: &str,
    priorities: &[(&str, u8)],
    extra: &Value,
) -> String {
    let mut spec = json!({
        "addresses": [addressing::vip(Family::V4, index).to_string()],
        "virtualRouterID": vrid,
        "interface": "eth0",
        "advertInterval": advert,
        "nodeSelector": {"matchLabels": {"kubevrrp.io/vip": "true"}},
        "priorities": priorities.iter().map(|(n, p)| json!({"nodeName": n, "priority": p})).collect::<Vec<_>>(),
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

/// The address of VIP `index` (what the client probes).
pub fn vip_address(index: u8) -> IpAddr {
    addressing::vip(Family::V4, index).addr()
}

/// RFC 5798 Skew_Time for `priority` at `advert`.
pub fn skew_time(priority: u8, advert: Duration) -> Duration {
    advert * (256 - u32::from(priority)) / 256
}

/// RFC 5798 Master_Down_Interval for `priority` at `advert`.
pub fn master_down_interval(priority: u8, advert: Duration) -> Duration {
    advert * 3 + skew_time(priority, advert)
}

/// Waits until `kubectl get vip NAME -o json` says `master` is MASTER and Ready=True; returns
/// the object. On timeout it fails with the status and the pods' logs.
pub fn wait_master(cluster: &Cluster, name: &str, master: &str, timeout: Duration) -> Value {
    let user = cluster.user();
    poll(
        &format!("VirtualIP {name}: MASTER {master} and Ready=True"),
        timeout,
        POLL,
        || {
            let vip = user.vip(name)?;
            Ok(
                (user::master(&vip) == master && user::condition_true(&vip, "Ready"))
                    .then_some(vip),
            )
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; last seen: {}\n{}",
            user.vip(name)
                .map(|v| v["status"].to_string())
                .unwrap_or_default(),
            logs_tail(cluster, 20)
        )
    })
}

/// Node `n`'s MAC (who answers for a VIP it holds).
pub fn mac_of(cluster: &Cluster, n: usize) -> Mac {
    cluster.lab().node_mac(n).unwrap()
}

/// The agent pod's HTTP port (its "metrics" port: /metrics, /status, /healthz, /readyz).
pub fn agent_port(pod: &Pod) -> u16 {
    pod.named_port("metrics")
        .expect("the agent's container declares a metrics port")
}

/// The agent on node `n`'s `/status` instances.
pub fn agent_instances(cluster: &mut Cluster, n: usize) -> Result<Vec<InstanceStatus>, String> {
    let pod = cluster.agent(n).map_err(|e| e.to_string())?;
    let response = pod
        .get(agent_port(pod), "/status")
        .map_err(|e| e.to_string())?;
    parse_status(&response.body).map_err(|e| e.to_string())
}

/// One look at the cluster during a disruption.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub master: String,
    pub split_brain: bool,
    /// `kube_vrrp_virtualip_masters{virtualip}` on the leading operator (None: not scraped).
    pub masters_metric: Option<f64>,
    pub status: Value,
}

/// Records what the API server says about one VirtualIP, and the leader's masters gauge,
/// every [`POLL`] until dropped.
pub struct Watcher {
    samples: Arc<std::sync::Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start(cluster: &Cluster, name: &str) -> Self {
        let user = cluster.user();
        let leader = cluster.leader().ok();
        let metrics = leader.and_then(|i| {
            let pod = cluster.pods().nth(i)?;
            let port = pod.named_port("metrics")?;
            Some(pod.endpoint(port))
        });
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, flag, name) = (samples.clone(), stop.clone(), name.to_owned());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if let Ok(vip) = user.vip(&name) {
                    let masters_metric = metrics.as_ref().and_then(|(ns, addr)| {
                        let addr = *addr;
                        let body = netns::run_in_named(ns, move || {
                            http::get(addr, "/metrics", Duration::from_secs(1))
                        })
                        .ok()?
                        .ok()?;
                        exposition::value(
                            &String::from_utf8_lossy(&body.body),
                            "kube_vrrp_virtualip_masters",
                            &[("virtualip", name.as_str())],
                        )
                    });
                    let sample = Sample {
                        at: Instant::now(),
                        master: user::master(&vip).to_owned(),
                        split_brain: user::condition_true(&vip, "SplitBrain"),
                        masters_metric,
                        status: vip["status"].clone(),
                    };
                    out.lock().unwrap().push(sample);
                }
                std::thread::sleep(POLL);
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops watching and returns everything seen.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.samples()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fails with the samples in which split brain was shown or the gauge exceeded 1.
pub fn assert_never_split_brain(samples: &[Sample], what: &str) {
    assert!(!samples.is_empty(), "{what}: the watcher saw nothing");
    let bad: Vec<String> = samples
        .iter()
        .filter(|s| s.split_brain || s.masters_metric.is_some_and(|m| m > 1.0))
        .map(|s| {
            format!(
                "+{} ms: master={:?} split_brain={} kube_vrrp_virtualip_masters={:?} status={}",
                (s.at - samples[0].at).as_millis(),
                s.master,
                s.split_brain,
                s.masters_metric,
                s.status
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: split brain shown in {} of {} samples, first: {}",
        bad.len(),
        samples.len(),
        bad[0]
    );
    assert!(
        samples.iter().any(|s| s.masters_metric.is_some()),
        "{what}: the leading operator's kube_vrrp_virtualip_masters was never read"
    );
}

/// No Warning Event about VirtualIP `name`, as `kubectl describe` shows them.
pub fn assert_no_warning_event(user: &User, name: &str) {
    let warnings: Vec<_> = user
        .vip_events(name)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "Warning")
        .collect();
    assert!(
        warnings.is_empty(),
        "Warning events on VirtualIP {name}: {warnings:?}"
    );
}

/// The logs of every pod, for failure messages (the last `lines` lines of each).
pub fn logs_tail(cluster: &Cluster, lines: usize) -> String {
    cluster
        .pods()
        .map(|p| {
            let log = p.log();
            let all: Vec<&str> = log.lines().collect();
            format!(
                "===== {} =====\n{}",
                p.name(),
                all[all.len().saturating_sub(lines)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
