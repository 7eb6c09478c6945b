//! Cluster mode for real: two `kube-vrrp-agent run` in two lab namespaces, each reading its
//! `VrrpNode` from a minimal fake API server listening on loopback inside its own namespace.
//!
//! - The API server is not in the data path: once one agent is MASTER the fake API servers are
//!   stopped (their ports now closed); the MASTER keeps its VIP and keeps advertising, nothing
//!   transitions for many Master_Down_Intervals, and both agents log their retries, with backoff.
//! - The watch drives the data path: a new priority on the watch moves the VIP, and a deleted
//!   `VrrpNode` releases it gracefully (priority 0, the other node takes over at once).

// The helpers below are test code too: a failed setup step should fail the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use kube_vrrp_agent::report::InstanceStatus;
use kube_vrrp_agent::report::table::fetch;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::netns::{Netns, require_root};
use kube_vrrp_e2e::process::DaemonProcess;
use kube_vrrp_e2e::{Lab, LabSpec};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp-agent");
const LISTEN: &str = "127.0.0.1:9650";
/// The advert interval (`advertInterval: 200ms` in the VrrpNodes): short enough for a quick
/// test, long enough that a loaded 2-core machine running debug builds does not flap.
const ADVERT: Duration = Duration::from_millis(200);
/// Master_Down_Interval of the BACKUP (priority 100) at a 200 ms advert: 3 × 200 ms + 122 ms.
const MASTER_DOWN_INTERVAL: Duration = Duration::from_millis(722);
/// How long the API stays away while we watch: about 8 Master_Down_Intervals.
const OUTAGE: Duration = Duration::from_secs(6);
const SETTLE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the fake API server

/// What one fake API server saw.
#[derive(Debug, Default)]
struct Seen {
    /// `METHOD path?query` of every request.
    requests: Vec<String>,
    /// The bodies of the status applies.
    applies: Vec<Value>,
}

#[derive(Clone)]
struct Served {
    node: Value,
    seen: Arc<Mutex<Seen>>,
    /// Watch event lines pushed by the test to every open watch.
    events: tokio::sync::broadcast::Sender<Bytes>,
}

impl Served {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers just what the agent asks: the list and watch of `vrrpnodes` (the watch stays open
/// and carries the events the test pushes) and the status apply (echoed back).
async fn handle(AxumState(served): AxumState<Served>, request: Request) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let query = uri.query().unwrap_or_default().to_owned();
    let record = format!("{method} {}?{query}", uri.path());
    let watch_events = query
        .contains("watch=true")
        .then(|| served.events.subscribe());
    served.seen().requests.push(record);
    let json_response = |value: &Value| {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            serde_json::to_vec(value).unwrap(),
        )
            .into_response()
    };
    if let Some(events) = watch_events {
        return watch_response(events);
    }
    match (method, uri.path()) {
        (Method::GET, "/apis/kubevrrp.io/v1alpha1/vrrpnodes") => json_response(&json!({
            "apiVersion": "kubevrrp.io/v1alpha1",
            "kind": "VrrpNodeList",
            "metadata": {"resourceVersion": "10"},
            "items": [served.node.clone()],
        })),
        (Method::PATCH, path) if path.ends_with("/status") => {
            let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            let mut object = served.node.clone();
            object["status"] = body["status"].clone();
            served.seen().applies.push(body);
            json_response(&object)
        }
        _ => (StatusCode::NOT_FOUND, "not served by the fake API").into_response(),
    }
}

/// A watch response: open until the server stops, carrying whatever the test pushes.
fn watch_response(events: tokio::sync::broadcast::Receiver<Bytes>) -> Response {
    let lines = futures::stream::unfold(events, |mut events| async {
        loop {
            match events.recv().await {
                Ok(line) => return Some((Ok::<_, std::io::Error>(line), events)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(lines))
        .unwrap()
}

/// A fake API server on 127.0.0.1 inside one namespace, on its own runtime so that stopping
/// it closes the listener and every open connection at once.
struct FakeApi {
    addr: SocketAddr,
    served: Served,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeApi {
    fn start(ns: &Netns, node: Value) -> Self {
        let listener = ns
            .run_in(|| std::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Served {
            node,
            seen: Arc::default(),
            events: tokio::sync::broadcast::channel(16).0,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = Router::new().fallback(handle).with_state(served.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            served,
            runtime: Some(runtime),
        }
    }

    /// Closes the port and every connection: from now on the agent gets "connection refused".
    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Sends a watch event (`ADDED`, `MODIFIED`, `DELETED`) to every open watch.
    fn push(&self, kind: &str, object: &Value) {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
        line.push(b'\n');
        let receivers = self.served.events.send(Bytes::from(line)).unwrap_or(0);
        assert!(receivers > 0, "no open watch to send {kind} to");
    }

    /// Waits until the agent has a watch open.
    fn wait_for_watch(&self) {
        wait_for("the agent's watch", SETTLE, || {
            self.served.events.receiver_count() > 0
        });
    }

    fn requests(&self) -> Vec<String> {
        self.served.seen().requests.clone()
    }

    fn applies(&self) -> Vec<Value> {
        self.served.seen().applies.clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- the lab

fn vrrp_node(name: &str, priority: u8, vip: &str) -> Value {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VrrpNode",
        "metadata": {"name": name, "generation": 1, "resourceVersion": "10", "uid": format!("uid-{name}")},
        "spec": {"instances": [{
            "name": "web",
            "interface": "eth0",
            "virtualRouterID": 51,
            "version": 3,
            "addresses": [vip],
            "priority": priority,
            "advertInterval": "200ms",
            "preempt": true,
            "preemptDelay": "0s",
        }]},
    })
}

fn write_kubeconfig(path: &Path, api: SocketAddr) {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: {{server: \"http://{api}\"}}
users:
  - name: agent
    user: {{token: lab}}
contexts:
  - name: fake
    context: {{cluster: fake, user: agent}}
current-context: fake
"
    );
    std::fs::write(path, text).unwrap();
}

/// One agent in cluster mode in a lab node, its kubeconfig pointing at `api`, keeping its
/// configuration in `<dir>/<node>.state/`.
fn start_agent(lab: &Lab, node: usize, api: SocketAddr, dir: &Path) -> DaemonProcess {
    start_agent_logging_to(lab, node, api, dir, "")
}

/// [`start_agent`], the log file name carrying `suffix` (a restarted agent's own log).
fn start_agent_logging_to(
    lab: &Lab,
    node: usize,
    api: SocketAddr,
    dir: &Path,
    suffix: &str,
) -> DaemonProcess {
    let name = lab.node_name(node).unwrap().to_owned();
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    write_kubeconfig(&kubeconfig, api);
    let kubeconfig = kubeconfig.to_str().unwrap().to_owned();
    let state = dir.join(format!("{name}.state"));
    let state = state.to_str().unwrap().to_owned();
    DaemonProcess::spawn(
        "kube-vrrp-agent",
        &name,
        lab.node_ns(node).unwrap(),
        &[
            BIN,
            "run",
            "--node",
            &name,
            "--kubeconfig",
            &kubeconfig,
            "--heartbeat",
            "1",
            "--state-dir",
            &state,
            "--listen",
            LISTEN,
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "info")],
        &dir.join(format!("{name}{suffix}.log")),
    )
    .unwrap()
}

fn status(lab: &Lab, node: usize) -> Vec<InstanceStatus> {
    let addr: SocketAddr = LISTEN.parse().unwrap();
    lab.node_ns(node)
        .unwrap()
        .run_in(move || fetch(addr))
        .unwrap()
        .unwrap_or_default()
}

fn web(lab: &Lab, node: usize) -> Option<InstanceStatus> {
    status(lab, node).into_iter().find(|s| s.name == "web")
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Log lines of `log` (JSON, one object a line) whose message is `message`.
fn count_messages(log: &str, message: &str) -> usize {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == message)
        .count()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const WATCH_RETRY: &str =
    "cannot watch the VrrpNode; the last configuration stays in force, retrying with backoff";
const WRITE_RETRY: &str = "cannot write the VrrpNode status; VRRP is unaffected, retrying";

/// Two agents in cluster mode, each with its own fake API server serving its `VrrpNode`
/// (`web`, VRID 51, advert 200 ms, n1 at 150, n2 at 100). Field order is drop order.
struct Cluster {
    dir: PathBuf,
    agent1: DaemonProcess,
    agent2: DaemonProcess,
    api1: FakeApi,
    api2: FakeApi,
    vip_net: ipnet::IpNet,
    lab: Lab,
    _scratch: Scratch,
}

impl Cluster {
    fn start(test: &str) -> Self {
        require_root();
        let lab = Lab::new(LabSpec {
            nodes: 2,
            ipv6: false,
        })
        .unwrap();
        let scratch = Scratch(
            std::env::temp_dir().join(format!("kube-vrrp-cluster-{test}-{}", std::process::id())),
        );
        std::fs::create_dir_all(&scratch.0).unwrap();
        let vip_net = addressing::vip(Family::V4, 0);
        let api1 = FakeApi::start(
            lab.node_ns(1).unwrap(),
            vrrp_node("n1", 150, &vip_net.to_string()),
        );
        let api2 = FakeApi::start(
            lab.node_ns(2).unwrap(),
            vrrp_node("n2", 100, &vip_net.to_string()),
        );
        let agent1 = start_agent(&lab, 1, api1.addr, &scratch.0);
        let agent2 = start_agent(&lab, 2, api2.addr, &scratch.0);
        Self {
            dir: scratch.0.clone(),
            agent1,
            agent2,
            api1,
            api2,
            vip_net,
            lab,
            _scratch: scratch,
        }
    }

    fn vip(&self) -> IpAddr {
        self.vip_net.addr()
    }

    /// Waits for `master` MASTER holding the VIP alone (whatever the other node runs).
    fn wait_for_master_alone(&self, master: usize) {
        wait_for(&format!("n{master} MASTER"), SETTLE, || {
            web(&self.lab, master).is_some_and(|s| s.state == State::Master)
        });
        wait_for(&format!("the VIP on n{master} only"), SETTLE, || {
            self.lab.holders(self.vip()).unwrap() == [master]
        });
    }

    /// Waits for `master` MASTER holding the VIP alone and the other node BACKUP.
    fn wait_for_master(&self, master: usize) {
        let backup = 3 - master;
        wait_for(
            &format!("n{master} MASTER and n{backup} BACKUP"),
            SETTLE,
            || {
                web(&self.lab, master).is_some_and(|s| s.state == State::Master)
                    && web(&self.lab, backup).is_some_and(|s| s.state == State::Backup)
            },
        );
        wait_for(&format!("the VIP on n{master} only"), SETTLE, || {
            self.lab.holders(self.vip()).unwrap() == [master]
        });
    }
}

#[test]
fn with_the_api_server_gone_the_master_keeps_its_vip_and_keeps_advertising() {
    let mut c = Cluster::start("unreachable");
    c.wait_for_master(1);
    let (lab, vip, vip_net) = (&c.lab, c.vip(), c.vip_net);
    // The API edge worked: each agent listed and watched only its own VrrpNode, and reported.
    for (api, node) in [(&c.api1, "n1"), (&c.api2, "n2")] {
        let selector = format!("fieldSelector=metadata.name%3D{node}");
        let requests = api.requests();
        assert!(
            requests.iter().any(|r| r.starts_with("GET ")
                && r.contains(&selector)
                && !r.contains("watch=true")),
            "{node}: no list with {selector}: {requests:?}"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.contains(&selector) && r.contains("watch=true")),
            "{node}: no watch with {selector}: {requests:?}"
        );
    }
    wait_for("n1's status apply showing MASTER", SETTLE, || {
        c.api1
            .applies()
            .iter()
            .any(|a| a["status"]["instances"][0]["state"] == "Master")
    });
    let apply = c.api1.applies().last().cloned().unwrap();
    assert_eq!(apply["metadata"]["name"], "n1");
    assert_eq!(apply["status"]["observedGeneration"], 1);
    assert_eq!(
        apply["status"]["instances"][0]["vipsHeld"],
        json!([vip_net.to_string()])
    );
    assert!(
        c.api1.requests().iter().any(|r| r.starts_with("PATCH ")
            && r.contains("fieldManager=kube-vrrp-agent")
            && r.contains("force=true")),
        "no forced apply by kube-vrrp-agent: {:?}",
        c.api1.requests()
    );

    let before = (web(lab, 1).unwrap(), web(lab, 2).unwrap());
    let sniffer = lab.sniff().unwrap();
    c.api1.stop();
    c.api2.stop();
    let stopped = Instant::now();

    // Hold: the VIP never moves, and nothing else holds it.
    while stopped.elapsed() < OUTAGE {
        assert_eq!(
            lab.holders(vip).unwrap(),
            [1],
            "the VIP moved {:?} after the API server went away",
            stopped.elapsed()
        );
        sleep(Duration::from_millis(50));
    }
    c.agent1.ensure_running().unwrap();
    c.agent2.ensure_running().unwrap();

    // No transition on either node: same state, same transition count.
    let after = (web(lab, 1).unwrap(), web(lab, 2).unwrap());
    assert_eq!(after.0.state, State::Master);
    assert_eq!(after.1.state, State::Backup);
    assert_eq!(
        (after.0.transitions, after.1.transitions),
        (before.0.transitions, before.1.transitions),
        "a transition happened while the API server was gone; n2's log:\n{}",
        c.agent2.log()
    );

    // The MASTER kept advertising at its interval; the BACKUP never did.
    let adverts = sniffer.adverts();
    let from_n1: Vec<Instant> = adverts
        .iter()
        .filter(|a| a.node == 1 && a.at >= stopped)
        .map(|a| a.at)
        .collect();
    let expected = OUTAGE.as_millis() / ADVERT.as_millis();
    assert!(
        from_n1.len() as u128 >= expected * 8 / 10,
        "n1 sent {} adverts in {OUTAGE:?}, expected about {expected}",
        from_n1.len()
    );
    let longest_gap = from_n1
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(OUTAGE);
    assert!(
        longest_gap < MASTER_DOWN_INTERVAL,
        "a gap of {longest_gap:?} between n1's adverts would let the BACKUP take over"
    );
    eprintln!(
        "during {OUTAGE:?} without API: n1 sent {} adverts, longest gap {longest_gap:?}",
        from_n1.len()
    );
    assert!(
        !adverts.iter().any(|a| a.node == 2),
        "n2 advertised while the API server was gone"
    );

    // Both agents noticed, and retried with backoff rather than in a tight loop: kube's
    // backoff starts at 0.8 s and doubles (with jitter), so a handful of attempts in 6 s.
    for (agent, node) in [(&c.agent1, "n1"), (&c.agent2, "n2")] {
        let log = agent.log();
        let watch_retries = count_messages(&log, WATCH_RETRY);
        assert!(
            (2..=10).contains(&watch_retries),
            "{node}: {watch_retries} logged watch retries in {OUTAGE:?}:\n{log}"
        );
        let write_retries = count_messages(&log, WRITE_RETRY);
        eprintln!(
            "{node}: {watch_retries} watch retries, {write_retries} status write retries logged"
        );
        assert!(
            (1..=15).contains(&write_retries),
            "{node}: {write_retries} logged status write retries in {OUTAGE:?}:\n{log}"
        );
    }
    c.agent1.terminate(SETTLE).unwrap();
    c.agent2.terminate(SETTLE).unwrap();
}

#[test]
fn a_new_priority_on_the_watch_moves_the_vip_and_a_deleted_vrrp_node_releases_it() {
    let mut c = Cluster::start("watch");
    c.wait_for_master(1);
    c.api2.wait_for_watch();

    // The operator raises n2 above n1: n2 preempts.
    let mut raised = vrrp_node("n2", 200, &c.vip_net.to_string());
    raised["metadata"]["generation"] = json!(2);
    raised["metadata"]["resourceVersion"] = json!("11");
    c.api2.push("MODIFIED", &raised);
    c.wait_for_master(2);
    assert_eq!(web(&c.lab, 2).unwrap().priority, 200);
    wait_for(
        "n2's status apply at generation 2 showing MASTER",
        SETTLE,
        || {
            c.api2.applies().iter().any(|a| {
                a["status"]["observedGeneration"] == 2
                    && a["status"]["instances"][0]["state"] == "Master"
            })
        },
    );

    // The operator deletes n2's VrrpNode: n2 leaves gracefully, n1 takes over at once.
    let mut deleted = raised;
    deleted["metadata"]["resourceVersion"] = json!("12");
    c.api2.push("DELETED", &deleted);
    c.wait_for_master_alone(1);
    wait_for("n2 running no instance", SETTLE, || {
        status(&c.lab, 2).is_empty()
    });
    let log = c.agent1.log();
    assert!(
        log.contains("\"reason\":\"master_stopped\""),
        "n1 did not take over because of n2's priority-0 advert:\n{log}"
    );
    c.agent1.ensure_running().unwrap();
    c.agent2.ensure_running().unwrap();
}

#[test]
fn an_agent_restarted_while_the_api_server_is_down_runs_the_configuration_kept_on_disk() {
    let mut c = Cluster::start("restart");
    c.wait_for_master(1);
    let kept = c.dir.join("n1.state").join("last-config-n1.json");
    wait_for("n1's configuration on disk", SETTLE, || kept.exists());
    c.api1.stop();
    c.api2.stop();
    // n1 dies without a word while the API server is away: n2 takes over (n1's address stays
    // on its interface until an agent cleans it up).
    c.agent1.kill().unwrap();
    wait_for("n2 MASTER", SETTLE, || {
        web(&c.lab, 2).is_some_and(|s| s.state == State::Master)
    });
    // n1 comes back with the API server still away: it runs what it kept (priority 150,
    // preempt) and takes the VIP back.
    let api1 = c.api1.addr;
    c.agent1 = start_agent_logging_to(&c.lab, 1, api1, &c.dir, "-restarted");
    c.wait_for_master(1);
    let log = c.agent1.log();
    assert!(
        log.contains("running the configuration kept on disk until it answers"),
        "n1 did not say where its configuration came from:\n{log}"
    );
    assert_eq!(web(&c.lab, 1).unwrap().priority, 150);
    c.agent1.ensure_running().unwrap();
    c.agent2.ensure_running().unwrap();
}

#[test]
fn on_sigterm_the_master_hands_over_then_reports_that_it_runs_nothing() {
    let mut c = Cluster::start("sigterm");
    c.wait_for_master(1);
    wait_for("n1's status apply showing MASTER", SETTLE, || {
        c.api1
            .applies()
            .iter()
            .any(|a| a["status"]["instances"][0]["state"] == "Master")
    });
    c.agent1.terminate(SETTLE).unwrap();
    c.wait_for_master_alone(2);
    let last = c.api1.applies().last().cloned().unwrap();
    assert_eq!(
        last["status"]["instanceCount"], 0,
        "the last status says n1 runs nothing: {last}"
    );
    assert!(last["status"].get("instances").is_none(), "{last}");
    let log = c.agent1.log();
    assert!(
        log.contains("final VrrpNode status written"),
        "no final write logged:\n{log}"
    );
    c.agent2.ensure_running().unwrap();
}
