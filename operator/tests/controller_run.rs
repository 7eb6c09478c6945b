//! The running controller and the leader election against an in-memory API server: a
//! `tower_test` mock answered by a small fake that keeps objects, resource versions and a
//! watch event log, merges patches, and refuses a replace naming an outdated
//! `resourceVersion` (the optimistic concurrency that makes a Lease exclusive).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube_vrrp_operator::controller::{Config, Context, reporter, run};
use kube_vrrp_operator::lease::Leadership;
use kube_vrrp_operator::lease::{LeaseConfig, elect};
use kube_vrrp_operator::metrics::Metrics;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock::{Handle, SendResponse};

type Responder = SendResponse<Response<Body>>;

const PLURALS: [&str; 8] = [
    "virtualips",
    "virtualservers",
    "vrrpnodes",
    "nodes",
    "endpointslices",
    "services",
    "events",
    "leases",
];

/// One write the fake saw: method, path, field manager.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Write {
    method: Method,
    path: String,
    field_manager: Option<String>,
}

#[derive(Default)]
struct Fake {
    /// collection path -> name -> object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// collection path -> (resourceVersion, watch event line)
    log: BTreeMap<String, Vec<(u64, String)>>,
    /// pending watches: collection path, from resourceVersion, responder
    watches: Vec<(String, u64, Responder)>,
    rv: u64,
    writes: Vec<Write>,
    /// `path?query` of every GET.
    reads: Vec<String>,
}

fn respond(send: Responder, status: StatusCode, body: &Value) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn status_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// (collection, name, subresource) of a path.
fn split(path: &str) -> (String, Option<String>, Option<String>) {
    let segs: Vec<&str> = path.split('/').collect();
    let i = segs
        .iter()
        .position(|s| PLURALS.contains(s))
        .unwrap_or_else(|| panic!("unknown path {path}"));
    (
        segs[..=i].join("/"),
        segs.get(i + 1).map(|s| (*s).to_owned()),
        segs.get(i + 2).map(|s| (*s).to_owned()),
    )
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl Fake {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores `obj` (or removes it) and wakes the collection's watches.
    fn commit(&mut self, collection: &str, name: &str, obj: Option<Value>, kind: &str) -> Value {
        let rv = self.next_rv();
        let stored = match obj {
            Some(mut o) => {
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                o["metadata"]["name"] = json!(name);
                if o["metadata"].get("uid").is_none() {
                    o["metadata"]["uid"] = json!(format!("uid-{name}"));
                }
                self.objects
                    .entry(collection.to_owned())
                    .or_default()
                    .insert(name.to_owned(), o.clone());
                o
            }
            None => self
                .objects
                .get_mut(collection)
                .and_then(|m| m.remove(name))
                .unwrap_or(Value::Null),
        };
        let line = json!({"type": kind, "object": stored}).to_string();
        self.log
            .entry(collection.to_owned())
            .or_default()
            .push((rv, line));
        let pending = std::mem::take(&mut self.watches);
        for (c, from, send) in pending {
            if c == collection {
                self.answer_watch(&c, from, send);
            } else {
                self.watches.push((c, from, send));
            }
        }
        stored
    }

    /// Answers a watch from `from` with the newer events, or parks it.
    fn answer_watch(&mut self, collection: &str, from: u64, send: Responder) {
        let lines: Vec<&String> = self
            .log
            .get(collection)
            .into_iter()
            .flatten()
            .filter(|(rv, _)| *rv > from)
            .map(|(_, l)| l)
            .collect();
        if lines.is_empty() {
            self.watches.push((collection.to_owned(), from, send));
        } else {
            let mut body = String::new();
            for l in lines {
                body.push_str(l);
                body.push('\n');
            }
            send.send_response(
                Response::builder()
                    .body(Body::from(body.into_bytes()))
                    .unwrap(),
            );
        }
    }

    fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.objects.get(collection)?.get(name).cloned()
    }

    fn handle(&mut self, req: &Request<()>, body: &Value, send: Responder) {
        let (collection, name, sub) = split(req.uri().path());
        let q = query(req.uri());
        let method = req.method().clone();
        if method == Method::GET {
            self.reads.push(format!(
                "{}?{}",
                req.uri().path(),
                req.uri().query().unwrap_or_default()
            ));
        }
        if method != Method::GET {
            self.writes.push(Write {
                method: method.clone(),
                path: req.uri().path().to_owned(),
                field_manager: q.get("fieldManager").cloned(),
            });
        }
        match (method, name) {
            (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true") => {
                let from = q
                    .get("resourceVersion")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.answer_watch(&collection, from, send);
            }
            (Method::GET, None) => {
                let items: Vec<Value> = self
                    .objects
                    .get(&collection)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                respond(
                    send,
                    StatusCode::OK,
                    &json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
                );
            }
            (Method::GET, Some(name)) => match self.get(&collection, &name) {
                Some(o) => respond(send, StatusCode::OK, &o),
                None => respond(send, StatusCode::NOT_FOUND, &status_error(404, "NotFound")),
            },
            (Method::POST, None) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("generated")
                    .to_owned();
                if self.get(&collection, &name).is_some() {
                    respond(
                        send,
                        StatusCode::CONFLICT,
                        &status_error(409, "AlreadyExists"),
                    );
                    return;
                }
                let o = self.commit(&collection, &name, Some(body.clone()), "ADDED");
                respond(send, StatusCode::CREATED, &o);
            }
            (Method::PATCH, Some(name)) => {
                let content_type = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let apply = content_type.contains("apply-patch");
                let existing = self.get(&collection, &name);
                let Some(mut obj) = existing.or_else(|| {
                    apply.then(|| {
                        json!({"apiVersion": body["apiVersion"], "kind": body["kind"],
                               "metadata": {"name": name}})
                    })
                }) else {
                    respond(send, StatusCode::NOT_FOUND, &status_error(404, "NotFound"));
                    return;
                };
                if apply {
                    // We own the whole part we apply: replace it (SSA drops omitted fields).
                    let part = if sub.as_deref() == Some("status") {
                        "status"
                    } else {
                        "spec"
                    };
                    obj[part] = body[part].clone();
                    // Annotations the applier sets are its fields too.
                    if part == "spec" && body["metadata"]["annotations"].is_object() {
                        merge(
                            &mut obj["metadata"]["annotations"],
                            &body["metadata"]["annotations"],
                        );
                    }
                } else if sub.as_deref() == Some("status") {
                    merge(&mut obj["status"], &body["status"]);
                } else {
                    let mut patch = body.clone();
                    if let Some(p) = patch.as_object_mut() {
                        p.remove("metadata");
                    }
                    merge(&mut obj, &patch);
                    if body["metadata"]["annotations"].is_object() {
                        merge(
                            &mut obj["metadata"]["annotations"],
                            &body["metadata"]["annotations"],
                        );
                    }
                }
                let o = self.commit(&collection, &name, Some(obj), "MODIFIED");
                respond(send, StatusCode::OK, &o);
            }
            // A replace, guarded by the resourceVersion it names, as the API server does.
            (Method::PUT, Some(name)) => {
                let Some(existing) = self.get(&collection, &name) else {
                    respond(send, StatusCode::NOT_FOUND, &status_error(404, "NotFound"));
                    return;
                };
                if body["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"] {
                    respond(send, StatusCode::CONFLICT, &status_error(409, "Conflict"));
                    return;
                }
                let o = self.commit(&collection, &name, Some(body.clone()), "MODIFIED");
                respond(send, StatusCode::OK, &o);
            }
            (Method::DELETE, Some(name)) => {
                if self.get(&collection, &name).is_none() {
                    respond(send, StatusCode::NOT_FOUND, &status_error(404, "NotFound"));
                    return;
                }
                let o = self.commit(&collection, &name, None, "DELETED");
                respond(send, StatusCode::OK, &o);
            }
            (m, n) => panic!("fake API: unsupported {m} {collection} {n:?}"),
        }
    }
}

type Shared = Arc<Mutex<Fake>>;

/// A client whose requests the fake answers, and the serving task.
fn client(fake: &Shared) -> (Client, tokio::task::JoinHandle<()>) {
    let (service, mut handle): (_, Handle<Request<Body>, Response<Body>>) =
        tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let fake = fake.clone();
    let task = tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let req = Request::from_parts(parts, ());
            fake.lock().unwrap().handle(&req, &body, send);
        }
    });
    (Client::new(service, "default"), task)
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const VIPS: &str = "/apis/kubevrrp.io/v1alpha1/virtualips";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
const VRRP_NODES: &str = "/apis/kubevrrp.io/v1alpha1/vrrpnodes";
const NODES: &str = "/api/v1/nodes";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn seed(fake: &Shared) {
    let mut f = fake.lock().unwrap();
    for (name, ip) in [("n1", "192.168.1.1"), ("n2", "192.168.1.2")] {
        f.commit(
            NODES,
            name,
            Some(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
            ),
            "ADDED",
        );
    }
    f.commit(
        VIPS,
        "web",
        Some(
            json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP",
                    "metadata": {"name": "web", "generation": 1},
                    "spec": {"addresses": ["10.0.0.50/24"]}}),
        ),
        "ADDED",
    );
}

fn vip_status(fake: &Shared) -> Value {
    fake.lock().unwrap().get(VIPS, "web").unwrap()["status"].clone()
}

#[tokio::test]
async fn the_running_controller_applies_folds_reports_and_cleans_up() {
    let fake: Shared = Arc::default();
    seed(&fake);
    let (c, server) = client(&fake);
    let (_leader_tx, leader) = watch::channel(true);
    let leader = Leadership::unfenced(leader);
    let ctx = Arc::new(Context::new(
        c,
        reporter(None),
        Arc::new(Metrics::new()),
        Config {
            resync: Duration::from_millis(200),
            debounce: Duration::from_millis(20),
            ..Config::default()
        },
        leader,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let controller = tokio::spawn(run(ctx.clone(), ready.clone()));
    let t = Duration::from_secs(5);

    eventually("readiness", t, || ready.load(Ordering::Relaxed)).await;
    eventually("both VrrpNodes applied", t, || {
        let f = fake.lock().unwrap();
        f.get(VRRP_NODES, "n1").is_some() && f.get(VRRP_NODES, "n2").is_some()
    })
    .await;
    eventually("a Pending status", t, || {
        vip_status(&fake)["state"] == "Pending"
    })
    .await;
    {
        let f = fake.lock().unwrap();
        let vn = f.get(VRRP_NODES, "n1").unwrap();
        assert_eq!(vn["spec"]["instances"][0]["name"], "web");
        assert_eq!(vn["spec"]["instances"][0]["virtualRouterID"], 1);
        assert!(f.writes.iter().all(|w| w.method != Method::PATCH
            || w.field_manager.as_deref() == Some("kube-vrrp-operator")));
    }

    // The agent on n1 reports MASTER, the one on n2 BACKUP.
    for (node, state) in [("n1", "Master"), ("n2", "Backup")] {
        let mut f = fake.lock().unwrap();
        let mut vn = f.get(VRRP_NODES, node).unwrap();
        vn["status"] = json!({
            "heartbeatTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "instances": [{"name": "web", "state": state, "priority": 100,
                           "effectivePriority": 100, "transitions": 1,
                           "vipsHeld": if state == "Master" { json!(["10.0.0.50/24"]) } else { json!([]) }}],
        });
        f.commit(VRRP_NODES, node, Some(vn), "MODIFIED");
    }
    eventually("n1 as master", t, || vip_status(&fake)["master"] == "n1").await;
    eventually("a MasterChanged event", t, || {
        let f = fake.lock().unwrap();
        f.objects
            .get(EVENTS)
            .into_iter()
            .flat_map(|m| m.values())
            .any(|e| {
                e["reason"] == "MasterChanged"
                    && e["note"] == "n1 became MASTER of 10.0.0.50/24 (VRID 1)"
            })
    })
    .await;

    // Several resyncs with nothing new write nothing.
    let before = fake.lock().unwrap().writes.len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = fake.lock().unwrap().writes.clone();
    assert_eq!(
        after.len(),
        before,
        "writes on idle resyncs: {:?}",
        &after[before..]
    );

    // Node n2 leaves the cluster: its VrrpNode goes.
    fake.lock().unwrap().commit(NODES, "n2", None, "DELETED");
    eventually("n2's VrrpNode deleted", t, || {
        fake.lock().unwrap().get(VRRP_NODES, "n2").is_none()
    })
    .await;
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_masters{virtualip=\"web\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kube_vrrp_reconcile_total{controller=\"sync\"}"),
        "{text}"
    );

    controller.abort();
    server.abort();
}

#[tokio::test]
async fn a_standby_controller_writes_nothing_until_it_becomes_leader() {
    let fake: Shared = Arc::default();
    seed(&fake);
    let (c, server) = client(&fake);
    let (leader_tx, leader) = watch::channel(false);
    let leader = Leadership::unfenced(leader);
    let ctx = Arc::new(Context::new(
        c,
        reporter(None),
        Arc::new(Metrics::new()),
        Config {
            resync: Duration::from_millis(100),
            debounce: Duration::from_millis(10),
            ..Config::default()
        },
        leader,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let controller = tokio::spawn(run(ctx, ready.clone()));
    eventually("readiness", Duration::from_secs(5), || {
        ready.load(Ordering::Relaxed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.lock().unwrap().writes.is_empty(), "a standby wrote");

    leader_tx.send(true).unwrap();
    eventually(
        "the new leader's first apply",
        Duration::from_secs(2),
        || fake.lock().unwrap().get(VRRP_NODES, "n1").is_some(),
    )
    .await;
    controller.abort();
    server.abort();
}

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "default".to_owned(),
        name: "kube-vrrp-operator".to_owned(),
        identity: Some(identity.to_owned()),
        duration_seconds: 2,
        grace_seconds: 1,
    }
}

#[tokio::test]
async fn one_replica_leads_and_a_standby_takes_over_when_it_releases() {
    let fake: Shared = Arc::default();
    let (ca, sa) = client(&fake);
    let (cb, sb) = client(&fake);
    let a = elect(ca, &lease_config("a"), Arc::new(Metrics::new())).unwrap();
    let b = elect(cb, &lease_config("b"), Arc::new(Metrics::new())).unwrap();
    let (la, lb) = (a.leadership(), b.leadership());
    eventually("a leader", Duration::from_secs(5), || {
        la.holds() || lb.holds()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(la.holds() != lb.holds(), "exactly one leader");
    let (leader, standby) = if la.holds() { (a, b) } else { (b, a) };
    let standby_role = standby.leadership();
    let released = tokio::time::Instant::now();
    leader.stop().await.unwrap();
    let lease = fake
        .lock()
        .unwrap()
        .get(LEASES, "kube-vrrp-operator")
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "not released: {lease}"
    );
    eventually("the standby takes over", Duration::from_secs(5), || {
        standby_role.holds()
    })
    .await;
    // At its next read (every 2 s), not after a lease duration.
    assert!(released.elapsed() < Duration::from_millis(2_500));
    drop(standby);
    sa.abort();
    sb.abort();
}

#[tokio::test]
async fn a_standby_takes_over_within_the_lease_duration_when_the_leader_vanishes() {
    let fake: Shared = Arc::default();
    let (ca, sa) = client(&fake);
    let a_metrics = Arc::new(Metrics::new());
    let a = elect(ca, &lease_config("a"), Arc::clone(&a_metrics)).unwrap();
    let la = a.leadership();
    eventually("a leads", Duration::from_secs(5), || la.holds()).await;

    let (cb, sb) = client(&fake);
    let b = elect(cb, &lease_config("b"), Arc::new(Metrics::new())).unwrap();
    let lb = b.leadership();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(!lb.holds(), "b must not lead while a renews");
    assert!(la.holds(), "a must keep leading while it renews");

    // a's API connection dies: it can neither renew nor release. Its own term ends first
    // (1.5 s after its last renewal), then b takes over (2 s after it last saw a change,
    // read every 2 s).
    sa.abort();
    let lost = tokio::time::Instant::now();
    eventually("a stops writing", Duration::from_secs(3), || !la.holds()).await;
    let stopped = lost.elapsed();
    assert!(!lb.holds(), "b led while a still could write");
    eventually("b takes over", Duration::from_secs(6), || lb.holds()).await;
    let waited = lost.elapsed();
    assert!(
        stopped < waited,
        "a stopped after {stopped:?}, b took over after {waited:?}"
    );
    assert!(
        waited <= Duration::from_secs(2 + 2 + 1),
        "took {waited:?}, lease duration is 2s (plus one read period and a renewal period)"
    );
    // a counted its failed renewals: an operator cut off from the API server shows it.
    let rendered = a_metrics.render().unwrap();
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with("kube_vrrp_reconcile_errors_total{controller=\"lease\"")),
        "{rendered}"
    );
    drop((a, b));
    sb.abort();
}

#[tokio::test]
async fn a_periodic_resync_notices_a_silent_agent_without_any_watch_event() {
    let fake: Shared = Arc::default();
    seed(&fake);
    let (c, server) = client(&fake);
    let (_leader_tx, leader) = watch::channel(true);
    let leader = Leadership::unfenced(leader);
    let ctx = Arc::new(Context::new(
        c,
        reporter(None),
        Arc::new(Metrics::new()),
        Config {
            fold: kube_vrrp_operator::fold::FoldConfig {
                staleness: jiff::SignedDuration::from_secs(2),
                ..kube_vrrp_operator::fold::FoldConfig::default()
            },
            resync: Duration::from_millis(200),
            debounce: Duration::from_millis(20),
            ..Config::default()
        },
        leader,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let controller = tokio::spawn(run(ctx, ready));
    let t = Duration::from_secs(5);
    eventually("n1's VrrpNode", t, || {
        fake.lock().unwrap().get(VRRP_NODES, "n1").is_some()
    })
    .await;
    {
        let mut f = fake.lock().unwrap();
        let mut vn = f.get(VRRP_NODES, "n1").unwrap();
        vn["status"] = json!({
            "heartbeatTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "instances": [{"name": "web", "state": "Master", "priority": 100,
                           "effectivePriority": 100, "transitions": 1,
                           "vipsHeld": ["10.0.0.50/24"]}],
        });
        f.commit(VRRP_NODES, "n1", Some(vn), "MODIFIED");
    }
    eventually("n1 as master", t, || vip_status(&fake)["master"] == "n1").await;
    // The agent falls silent: no further event reaches the operator.
    eventually("the stale master dropped", t, || {
        let s = vip_status(&fake);
        s.get("master").is_none() && s["state"] == "Pending"
    })
    .await;
    controller.abort();
    server.abort();
}

const ENDPOINT_SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";
const VIRTUAL_SERVERS: &str = "/apis/kubevrrp.io/v1alpha1/virtualservers";

fn slice_reads(fake: &Shared) -> Vec<String> {
    fake.lock()
        .unwrap()
        .reads
        .iter()
        .filter(|r| r.starts_with(ENDPOINT_SLICES))
        .cloned()
        .collect()
}

#[tokio::test]
async fn only_the_endpoint_slices_of_backend_services_are_watched() {
    let fake: Shared = Arc::default();
    seed(&fake);
    let (c, server) = client(&fake);
    let (_leader_tx, leader) = watch::channel(true);
    let leader = Leadership::unfenced(leader);
    let ctx = Arc::new(Context::new(
        c,
        reporter(None),
        Arc::new(Metrics::new()),
        Config {
            resync: Duration::from_millis(200),
            debounce: Duration::from_millis(20),
            ..Config::default()
        },
        leader,
    ));
    let ready = Arc::new(AtomicBool::new(false));
    let controller = tokio::spawn(run(ctx.clone(), ready.clone()));
    let t = Duration::from_secs(5);
    eventually("readiness", t, || ready.load(Ordering::Relaxed)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        slice_reads(&fake).is_empty(),
        "no VirtualServer names a Service, yet EndpointSlices were read: {:?}",
        slice_reads(&fake)
    );
    fake.lock().unwrap().commit(
        VIRTUAL_SERVERS,
        "shop",
        Some(
            json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualServer",
                    "metadata": {"name": "shop"},
                    "spec": {"virtualIPRef": "web", "port": 80,
                             "backendRef": {"namespace": "shop", "name": "frontend"}}}),
        ),
        "ADDED",
    );
    eventually("a list of the backend's slices", t, || {
        !slice_reads(&fake).is_empty()
    })
    .await;
    for read in slice_reads(&fake) {
        assert!(
            read.contains("labelSelector=kubernetes.io%2Fservice-name+in+%28frontend%29"),
            "an EndpointSlice read not limited to the backend Service: {read}"
        );
    }
    controller.abort();
    server.abort();
}
