//! Cluster mode against an in-memory API: a `tower_test` mock whose verifier asserts each
//! call's method, path, query and body, with a short timeout so a missing call fails, and
//! quiet periods so an unexpected call fails too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube_vrrp_agent::cluster::{FIELD_MANAGER, SpecOutputs, SpecWatch, StatusWriter};
use kube_vrrp_agent::driver::DesiredConfig;
use kube_vrrp_agent::report::{Applied, InstanceStatus, StatusBoard};
use kube_vrrp_agent::source::{self, ConfigUpdates};
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::Authentication;
use kube_vrrp_crds::{RejectReason, RejectedInstance, VrrpNode};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock::{Handle, SendResponse};

const NODE: &str = "node-a";
/// The longest a call we expect may take to arrive (kube's watch backoff, with jitter, reaches
/// several seconds by the second failure in a row).
const STEP: Duration = Duration::from_secs(10);
const VRRP_NODES: &str = "/apis/kubevrrp.io/v1alpha1/vrrpnodes";
const SELECTOR: &str = "fieldSelector=metadata.name%3Dnode-a";

type ApiHandle = Handle<Request<Body>, Response<Body>>;
type Responder = SendResponse<Response<Body>>;

// ---------------------------------------------------------------- builders

fn instance(name: &str, vrid: u8, priority: u8) -> Value {
    json!({
        "name": name,
        "virtualRouterID": vrid,
        "version": 3,
        "addresses": [format!("10.0.0.{vrid}/24")],
        "priority": priority,
        "advertInterval": "1s",
        "preempt": true,
        "preemptDelay": "0s",
    })
}

fn v2_instance_with_password(name: &str) -> Value {
    let mut value = instance(name, 60, 100);
    value["version"] = json!(2);
    value["authentication"] = json!({
        "type": "PASS",
        "passwordSecretRef": {"namespace": "kube-vrrp", "name": "vrrp-auth", "key": "password"},
    });
    value
}

fn vrrp_node(generation: i64, resource_version: &str, instances: &[Value]) -> Value {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VrrpNode",
        "metadata": {
            "name": NODE,
            "generation": generation,
            "resourceVersion": resource_version,
            "uid": "uid-node-a",
        },
        "spec": {"instances": instances},
    })
}

fn list_of(items: &[Value], resource_version: &str) -> Value {
    json!({
        "apiVersion": "kubevrrp.io/v1alpha1",
        "kind": "VrrpNodeList",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    })
}

fn watch_event(kind: &str, object: &Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
    line.push(b'\n');
    line
}

fn board_entry(name: &str, state: State) -> InstanceStatus {
    InstanceStatus {
        name: name.into(),
        vrid: 51,
        interface: "eth0".into(),
        version: 3,
        state,
        priority: 150,
        effective_priority: 150,
        master_address: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        vips: vec!["10.0.0.51/24".parse().unwrap()],
        transitions: 1,
        last_transition: Some(Timestamp::from_second(1_800_000_000).unwrap()),
        message: None,
        holder_conflict: None,
    }
}

// ---------------------------------------------------------------- the verifier

fn mock() -> (Client, ApiHandle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// The next call, or a failure naming what was expected.
async fn next_call(handle: &mut ApiHandle, expected: &str) -> (Request<Body>, Responder) {
    tokio::time::timeout(STEP, handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no API call within {STEP:?}; expected {expected}"))
        .unwrap_or_else(|| panic!("the client went away; expected {expected}"))
}

/// Fails if any call arrives within `period`.
async fn assert_quiet(handle: &mut ApiHandle, period: Duration, why: &str) {
    if let Ok(Some((request, _))) = tokio::time::timeout(period, handle.next_request()).await {
        panic!("unexpected {} {} ({why})", request.method(), request.uri());
    }
}

fn query(request: &Request<Body>) -> String {
    request.uri().query().unwrap_or_default().to_owned()
}

fn assert_list(request: &Request<Body>) {
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), VRRP_NODES);
    let query = query(request);
    assert!(
        query.contains(SELECTOR),
        "list without the field selector: {query}"
    );
    assert!(
        !query.contains("watch=true"),
        "expected a list, got a watch: {query}"
    );
}

fn assert_watch(request: &Request<Body>, resource_version: &str) {
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), VRRP_NODES);
    let query = query(request);
    assert!(
        query.contains(SELECTOR),
        "watch without the field selector: {query}"
    );
    assert!(query.contains("watch=true"), "expected a watch: {query}");
    assert!(
        query.contains(&format!("resourceVersion={resource_version}")),
        "watch not from resourceVersion {resource_version}: {query}"
    );
}

fn ok_json(responder: Responder, body: &Value) {
    responder.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn ok_stream(responder: Responder, lines: Vec<u8>) {
    responder.send_response(
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::from(lines))
            .unwrap(),
    );
}

fn error_status(responder: Responder, code: StatusCode) {
    let status = json!({
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": "injected failure", "reason": "InternalError", "code": code.as_u16(),
    });
    responder.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&status).unwrap()))
            .unwrap(),
    );
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Waits until the config channel holds a configuration `accept` likes.
async fn config_where(
    updates: &mut ConfigUpdates,
    what: &str,
    accept: impl Fn(&DesiredConfig) -> bool,
) -> Arc<DesiredConfig> {
    let found = tokio::time::timeout(STEP, async {
        loop {
            if let Some(config) = updates.borrow_and_update().clone()
                && accept(&config)
            {
                return config;
            }
            updates.changed().await.unwrap();
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no configuration with {what} within {STEP:?}; current: {:?}",
            updates.borrow()
        )
    })
}

fn names(config: &DesiredConfig) -> Vec<&str> {
    config.instances.iter().map(|i| i.name.as_str()).collect()
}

struct Watching {
    handle: ApiHandle,
    updates: ConfigUpdates,
    outputs: SpecOutputs,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_watch() -> Watching {
    start_watch_keeping(None)
}

/// A watch that keeps its configuration in `state_dir`.
fn start_watch_keeping(state_dir: Option<PathBuf>) -> Watching {
    let (client, handle) = mock();
    let (watch, outputs) = SpecWatch::new(
        client,
        NODE.into(),
        vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))],
    );
    let (sender, updates) = source::channel();
    let task = tokio::spawn(watch.state_dir(state_dir).run(sender));
    Watching {
        handle,
        updates,
        outputs,
        task,
    }
}

/// Answers the first list with `node` (or nothing) at resourceVersion 10 and checks the watch
/// that follows; returns that watch's responder, held open by the caller.
async fn list_then_watch(w: &mut Watching, node: Option<Value>) -> Responder {
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    ok_json(
        responder,
        &list_of(&node.into_iter().collect::<Vec<_>>(), "10"),
    );
    let (request, responder) = next_call(&mut w.handle, "the watch after the list").await;
    assert_watch(&request, "10");
    responder
}

// ---------------------------------------------------------------- the config watch

#[tokio::test]
async fn the_first_list_and_watch_select_only_this_node_and_its_spec_is_published() {
    let mut w = start_watch();
    let node = vrrp_node(3, "10", &[instance("web", 51, 150)]);
    let _watch = list_then_watch(&mut w, Some(node)).await;
    let config = config_where(&mut w.updates, "instance web", |c| names(c) == ["web"]).await;
    let web = &config.instances[0];
    assert_eq!((web.vrid, web.priority), (51, 150));
    assert_eq!(web.addresses, vec!["10.0.0.51/24".parse().unwrap()]);
    assert_eq!(
        config.node_addresses,
        vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))]
    );
    assert_eq!(config.generation, Some(3));
}

#[tokio::test]
async fn a_spec_update_on_the_watch_reaches_the_config_channel() {
    let mut w = start_watch();
    let watch = list_then_watch(
        &mut w,
        Some(vrrp_node(3, "10", &[instance("web", 51, 150)])),
    )
    .await;
    config_where(&mut w.updates, "the first spec", |c| names(c) == ["web"]).await;
    let updated = vrrp_node(
        4,
        "11",
        &[instance("web", 51, 200), instance("db", 52, 100)],
    );
    ok_stream(watch, watch_event("MODIFIED", &updated));
    let config = config_where(&mut w.updates, "priority 200 and instance db", |c| {
        names(c) == ["db", "web"] && c.instances[1].priority == 200
    })
    .await;
    assert_eq!(config.instances[0].vrid, 52);
    // The stream ended: the watcher resumes from the event's resourceVersion.
    let (request, _held) = next_call(&mut w.handle, "the watch resuming").await;
    assert_watch(&request, "11");
    assert_eq!(config.generation, Some(4));
}

#[tokio::test]
async fn a_v2_password_is_read_from_the_secret_the_spec_names() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    let node = vrrp_node(1, "10", &[v2_instance_with_password("legacy")]);
    ok_json(responder, &list_of(&[node], "10"));
    let (request, responder) = next_call(&mut w.handle, "the Secret get").await;
    assert_eq!(request.method(), Method::GET);
    assert_eq!(
        request.uri().path(),
        "/api/v1/namespaces/kube-vrrp/secrets/vrrp-auth"
    );
    ok_json(
        responder,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "vrrp-auth", "namespace": "kube-vrrp"},
            "data": {"password": "czNjcmV0"}, // base64 of "s3cret"
        }),
    );
    let config = config_where(&mut w.updates, "instance legacy", |c| {
        names(c) == ["legacy"]
    })
    .await;
    assert_eq!(
        config.instances[0].authentication,
        Authentication::simple_text_password(b"s3cret").unwrap()
    );
    let (request, _held) = next_call(&mut w.handle, "the watch").await;
    assert_watch(&request, "10");
}

#[tokio::test]
async fn a_failed_secret_read_rejects_only_its_instance_and_is_retried_after_a_second() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    let node = vrrp_node(
        1,
        "10",
        &[
            instance("web", 51, 150),
            v2_instance_with_password("legacy"),
        ],
    );
    ok_json(responder, &list_of(&[node], "10"));
    let (request, responder) = next_call(&mut w.handle, "the Secret get").await;
    assert_eq!(
        request.uri().path(),
        "/api/v1/namespaces/kube-vrrp/secrets/vrrp-auth"
    );
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    let failed_at = Instant::now();
    let config = config_where(&mut w.updates, "web without legacy", |c| {
        names(c) == ["web"]
    })
    .await;
    assert_eq!(config.rejected.len(), 1, "{:?}", config.rejected);
    assert_eq!(config.rejected[0].name, "legacy");
    assert_eq!(config.rejected[0].reason, RejectReason::SecretUnavailable);
    assert!(
        config.rejected[0]
            .message
            .starts_with("reading Secret kube-vrrp/vrrp-auth: "),
        "{}",
        config.rejected[0].message
    );
    // The watch goes on meanwhile; the Secret is read again after the resolve backoff.
    let (request, _held) = next_call(&mut w.handle, "the watch").await;
    assert_watch(&request, "10");
    let (request, responder) = next_call(&mut w.handle, "the retried Secret get").await;
    assert_eq!(
        request.uri().path(),
        "/api/v1/namespaces/kube-vrrp/secrets/vrrp-auth"
    );
    assert!(
        failed_at.elapsed() >= Duration::from_millis(900),
        "the Secret was read again after {:?}",
        failed_at.elapsed()
    );
    ok_json(
        responder,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp-auth"},
                "data": {"password": "czNjcmV0"}}),
    );
    let config = config_where(&mut w.updates, "legacy and web", |c| {
        names(c) == ["legacy", "web"]
    })
    .await;
    assert_eq!(
        config.instances[0].authentication,
        Authentication::simple_text_password(b"s3cret").unwrap()
    );
    assert!(config.rejected.is_empty());
}

#[tokio::test]
async fn a_status_only_update_reads_no_secret_and_publishes_nothing() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    let node = vrrp_node(1, "10", &[v2_instance_with_password("legacy")]);
    ok_json(responder, &list_of(std::slice::from_ref(&node), "10"));
    let (_, responder) = next_call(&mut w.handle, "the Secret get").await;
    ok_json(
        responder,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp-auth"},
                "data": {"password": "czNjcmV0"}}),
    );
    config_where(&mut w.updates, "instance legacy", |c| {
        names(c) == ["legacy"]
    })
    .await;
    let (request, watch) = next_call(&mut w.handle, "the watch").await;
    assert_watch(&request, "10");
    // Our own status write comes back as a MODIFIED event with the same spec and generation.
    let mut with_status = node;
    with_status["metadata"]["resourceVersion"] = json!("12");
    with_status["status"] = json!({"instanceCount": 1});
    ok_stream(watch, watch_event("MODIFIED", &with_status));
    let (request, _held) = next_call(&mut w.handle, "the watch resuming (no Secret get)").await;
    assert_watch(&request, "12");
    assert!(
        !w.updates.has_changed().unwrap(),
        "an unchanged spec was published again"
    );
}

#[tokio::test]
async fn a_deleted_vrrp_node_publishes_no_instances() {
    let mut w = start_watch();
    let node = vrrp_node(2, "10", &[instance("web", 51, 150)]);
    let watch = list_then_watch(&mut w, Some(node.clone())).await;
    config_where(&mut w.updates, "instance web", |c| names(c) == ["web"]).await;
    let mut deleted = node;
    deleted["metadata"]["resourceVersion"] = json!("13");
    ok_stream(watch, watch_event("DELETED", &deleted));
    let config = config_where(&mut w.updates, "no instance", |c| c.instances.is_empty()).await;
    assert_eq!(config.node_addresses.len(), 1, "node addresses are kept");
    assert_eq!(config.generation, None);
}

#[tokio::test]
async fn an_absent_vrrp_node_publishes_no_instances() {
    let mut w = start_watch();
    let _watch = list_then_watch(&mut w, None).await;
    config_where(&mut w.updates, "no instance", |c| c.instances.is_empty()).await;
}

#[tokio::test]
async fn a_failing_watch_keeps_the_last_config_and_is_retried_after_a_backoff() {
    let mut w = start_watch();
    let watch = list_then_watch(
        &mut w,
        Some(vrrp_node(3, "10", &[instance("web", 51, 150)])),
    )
    .await;
    let before = config_where(&mut w.updates, "instance web", |c| names(c) == ["web"]).await;
    error_status(watch, StatusCode::SERVICE_UNAVAILABLE);
    let failed_at = Instant::now();
    let (request, watch) = next_call(&mut w.handle, "the retried watch").await;
    let waited = failed_at.elapsed();
    assert_watch(&request, "10");
    assert!(
        waited >= kube_vrrp_crds::watch_backoff::FIRST,
        "the watch was retried after {waited:?}, without backoff"
    );
    assert_eq!(
        w.updates.borrow().clone().unwrap(),
        before,
        "the configuration changed while the API failed"
    );
    // The resourceVersion expired meanwhile: the watcher relists and picks up the new spec.
    let expired = json!({"type": "ERROR", "object": {
        "apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410,
    }});
    let mut line = serde_json::to_vec(&expired).unwrap();
    line.push(b'\n');
    ok_stream(watch, line);
    let (request, responder) = next_call(&mut w.handle, "the relist after 410").await;
    assert_list(&request);
    ok_json(
        responder,
        &list_of(&[vrrp_node(4, "20", &[instance("web", 51, 120)])], "20"),
    );
    let config = config_where(&mut w.updates, "priority 120 after the relist", |c| {
        c.instances[0].priority == 120
    })
    .await;
    let (request, _held) = next_call(&mut w.handle, "the watch after the relist").await;
    assert_watch(&request, "20");
    assert_eq!(config.generation, Some(4));
}

#[tokio::test]
async fn a_failing_first_list_publishes_nothing_and_is_retried() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    let (request, responder) = next_call(&mut w.handle, "the retried list").await;
    assert_list(&request);
    assert!(
        w.updates.borrow().is_none(),
        "a configuration was published without the API"
    );
    ok_json(
        responder,
        &list_of(&[vrrp_node(1, "10", &[instance("web", 51, 150)])], "10"),
    );
    config_where(&mut w.updates, "instance web", |c| names(c) == ["web"]).await;
}

// ---------------------------------------------------------------- the status writer

struct Writing {
    handle: ApiHandle,
    board: StatusBoard,
    roll_call: watch::Sender<Option<String>>,
    leaving: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn applied(generation: Option<i64>) -> Applied {
    Applied {
        generation,
        rejected: Vec::new(),
    }
}

fn start_writer(heartbeat: Duration, ready: bool) -> Writing {
    let (client, handle) = mock();
    let board = StatusBoard::new();
    board.set(board_entry("web", State::Backup));
    board.set_applied(applied(Some(5)));
    if ready {
        board.mark_ready();
    }
    let (roll_call, roll_call_rx) = watch::channel(None);
    let (leaving, leaving_rx) = watch::channel(false);
    let writer = StatusWriter::new(client, NODE.into(), board.clone(), roll_call_rx, leaving_rx)
        .heartbeat(heartbeat)
        .min_interval(Duration::from_millis(20));
    Writing {
        handle,
        board,
        roll_call,
        leaving,
        task: tokio::spawn(writer.run()),
    }
}

/// Checks one status apply and answers it; returns its body.
async fn expect_apply(w: &mut Writing, expected: &str) -> Value {
    let (request, responder) = next_call(&mut w.handle, expected).await;
    assert_eq!(request.method(), Method::PATCH);
    assert_eq!(request.uri().path(), format!("{VRRP_NODES}/{NODE}/status"));
    let query = query(&request);
    assert!(
        query.contains(&format!("fieldManager={FIELD_MANAGER}")),
        "no field manager: {query}"
    );
    assert!(query.contains("force=true"), "apply not forced: {query}");
    assert_eq!(
        request.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let body = body_json(request).await;
    assert_eq!(body["apiVersion"], "kubevrrp.io/v1alpha1");
    assert_eq!(body["kind"], "VrrpNode");
    assert_eq!(body["metadata"]["name"], NODE);
    assert!(body.get("spec").is_none(), "the agent wrote the spec");
    let node: VrrpNode = serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
        "metadata": {"name": NODE, "resourceVersion": "30"},
        "spec": {}, "status": body["status"].clone(),
    }))
    .unwrap();
    ok_json(responder, &serde_json::to_value(&node).unwrap());
    body
}

#[tokio::test]
async fn a_transition_is_applied_to_the_status_with_the_field_manager_forced() {
    let mut w = start_writer(Duration::from_secs(30), true);
    let first = expect_apply(&mut w, "the first status").await;
    let status = &first["status"];
    assert_eq!(status["instances"][0]["state"], "Backup");
    assert_eq!(status["instances"][0]["name"], "web");
    assert!(status["instances"][0].get("vipsHeld").is_none());
    assert_eq!(status["observedGeneration"], 5);
    assert_eq!(status["instanceCount"], 1);
    assert_eq!(status["masterCount"], 0);
    assert!(status["heartbeatTime"].is_string());

    let mut master = board_entry("web", State::Master);
    master.transitions = 2;
    w.board.set(master);
    let second = expect_apply(&mut w, "the status after BACKUP → MASTER").await;
    let web = &second["status"]["instances"][0];
    assert_eq!(web["state"], "Master");
    assert_eq!(web["transitions"], 2);
    assert_eq!(web["vipsHeld"], json!(["10.0.0.51/24"]));
    assert_eq!(web["masterAddress"], "10.0.0.1");
    assert_eq!(second["status"]["masterCount"], 1);
}

#[tokio::test]
async fn an_unchanged_snapshot_is_written_only_as_the_heartbeat() {
    let heartbeat = Duration::from_millis(1200);
    let mut w = start_writer(heartbeat, true);
    let first = expect_apply(&mut w, "the first status").await;
    let written_at = Instant::now();
    assert_quiet(
        &mut w.handle,
        Duration::from_millis(800),
        "nothing changed and the heartbeat is not due",
    )
    .await;
    let second = expect_apply(&mut w, "the heartbeat").await;
    assert!(
        written_at.elapsed() >= Duration::from_secs(1),
        "the heartbeat came after {:?}",
        written_at.elapsed()
    );
    let (mut a, mut b) = (first["status"].clone(), second["status"].clone());
    assert_ne!(
        a["heartbeatTime"], b["heartbeatTime"],
        "the heartbeat time moved"
    );
    a.as_object_mut().unwrap().remove("heartbeatTime");
    b.as_object_mut().unwrap().remove("heartbeatTime");
    assert_eq!(a, b, "only the heartbeat time differs");
}

#[tokio::test]
async fn a_new_spec_generation_is_written_as_observed_generation() {
    let mut w = start_writer(Duration::from_secs(30), true);
    expect_apply(&mut w, "the first status").await;
    w.board.set_applied(applied(Some(6)));
    let body = expect_apply(&mut w, "the status after generation 6").await;
    assert_eq!(body["status"]["observedGeneration"], 6);
}

#[tokio::test]
async fn nothing_is_written_before_the_driver_has_applied_a_configuration() {
    let mut w = start_writer(Duration::from_millis(100), false);
    assert_quiet(
        &mut w.handle,
        Duration::from_millis(400),
        "the board is not ready yet",
    )
    .await;
    w.board.mark_ready();
    let body = expect_apply(&mut w, "the first status once ready").await;
    assert_eq!(body["status"]["instanceCount"], 1);
}

#[tokio::test]
async fn nothing_is_written_while_the_node_has_no_vrrp_node() {
    let mut w = start_writer(Duration::from_millis(100), true);
    expect_apply(&mut w, "the first status").await;
    w.board.set_applied(applied(None));
    assert_quiet(
        &mut w.handle,
        Duration::from_millis(400),
        "the VrrpNode was deleted",
    )
    .await;
    w.board.set_applied(applied(Some(1)));
    let body = expect_apply(&mut w, "the status once the VrrpNode is back").await;
    assert_eq!(body["status"]["observedGeneration"], 1);
}

#[tokio::test]
async fn a_failed_write_is_retried_with_the_latest_snapshot() {
    let mut w = start_writer(Duration::from_secs(30), true);
    let (request, responder) = next_call(&mut w.handle, "the first status").await;
    assert_eq!(request.method(), Method::PATCH);
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    w.board.set(board_entry("web", State::Master));
    let body = expect_apply(&mut w, "the retried status").await;
    assert_eq!(body["status"]["instances"][0]["state"], "Master");
}

#[tokio::test]
async fn rejected_instances_are_written_with_their_reasons() {
    let mut w = start_writer(Duration::from_secs(30), true);
    expect_apply(&mut w, "the first status").await;
    w.board.set_applied(Applied {
        generation: Some(6),
        rejected: vec![RejectedInstance {
            name: "legacy".into(),
            reason: RejectReason::SecretUnavailable,
            message: "Secret kube-vrrp/vrrp-auth not found".into(),
            running_previous: false,
        }],
    });
    let body = expect_apply(&mut w, "the status with the rejection").await;
    assert_eq!(body["status"]["observedGeneration"], 6);
    assert_eq!(
        body["status"]["rejected"],
        json!([{"name": "legacy", "reason": "SecretUnavailable",
                "message": "Secret kube-vrrp/vrrp-auth not found", "runningPrevious": false}])
    );
}

#[tokio::test]
async fn a_roll_call_is_answered_at_once_by_a_write_that_echoes_it() {
    let mut w = start_writer(Duration::from_secs(30), true);
    let first = expect_apply(&mut w, "the first status").await;
    assert!(first["status"].get("rollCall").is_none());
    w.roll_call
        .send_replace(Some("2026-11-22T03:00:30.5Z".to_owned()));
    let answer = expect_apply(&mut w, "the answer to the roll call").await;
    assert_eq!(answer["status"]["rollCall"], "2026-11-22T03:00:30.5Z");
}

#[tokio::test]
async fn on_leaving_one_last_status_says_what_still_runs_and_the_writer_returns() {
    let mut w = start_writer(Duration::from_secs(30), true);
    expect_apply(&mut w, "the first status").await;
    // The driver has shut down: its instances left the board.
    w.board.remove("web");
    w.leaving.send_replace(true);
    let mut last = None;
    // The removal and the goodbye may share one write or take two; the last one counts.
    for _ in 0..2 {
        let body = expect_apply(&mut w, "the final status").await;
        let done = body["status"]["instanceCount"] == 0;
        last = Some(body);
        if done {
            break;
        }
    }
    let last = last.unwrap();
    assert_eq!(last["status"]["instanceCount"], 0);
    assert!(last["status"].get("instances").is_none());
    assert_eq!(last["status"]["observedGeneration"], 5);
    tokio::time::timeout(STEP, &mut w.task)
        .await
        .expect("the writer returns after its last write")
        .unwrap();
}

#[tokio::test]
async fn the_last_write_gives_up_after_a_second_when_the_api_does_not_answer() {
    let mut w = start_writer(Duration::from_secs(30), true);
    expect_apply(&mut w, "the first status").await;
    w.board.remove("web");
    w.leaving.send_replace(true);
    let (_request, _unanswered) = next_call(&mut w.handle, "the final status").await;
    let asked = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), &mut w.task)
        .await
        .expect("the writer does not wait for the API for long")
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}

// ---------------------------------------------------------------- one bad instance

fn secret_answer(responder: Responder, code: StatusCode) {
    if code == StatusCode::OK {
        ok_json(
            responder,
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp-auth"},
                    "data": {"password": "czNjcmV0"}}),
        );
    } else {
        let reason = if code == StatusCode::FORBIDDEN {
            "Forbidden"
        } else {
            "NotFound"
        };
        let status = json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "message": format!("secrets \"vrrp-auth\" is {reason}"), "reason": reason,
            "code": code.as_u16(),
        });
        responder.send_response(
            Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&status).unwrap()))
                .unwrap(),
        );
    }
}

#[tokio::test]
async fn a_missing_secret_rejects_its_instance_alone_and_the_others_follow_changes_and_removals() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    let node = vrrp_node(
        1,
        "10",
        &[
            instance("web", 51, 150),
            instance("db", 52, 100),
            v2_instance_with_password("legacy"),
        ],
    );
    ok_json(responder, &list_of(&[node], "10"));
    let (_, responder) = next_call(&mut w.handle, "the Secret get").await;
    secret_answer(responder, StatusCode::NOT_FOUND);
    let config = config_where(&mut w.updates, "db and web", |c| names(c) == ["db", "web"]).await;
    assert_eq!(config.generation, Some(1));
    assert_eq!(
        config.rejected,
        [RejectedInstance {
            name: "legacy".into(),
            reason: RejectReason::SecretUnavailable,
            message: "Secret kube-vrrp/vrrp-auth not found: create it, or fix \
                      spec.authentication.passwordSecretRef"
                .into(),
            running_previous: false,
        }]
    );
    let (request, watch) = next_call(&mut w.handle, "the watch").await;
    assert_watch(&request, "10");
    // db is removed and web changes while legacy's Secret is still missing.
    let changed = vrrp_node(
        2,
        "11",
        &[
            instance("web", 51, 200),
            v2_instance_with_password("legacy"),
        ],
    );
    ok_stream(watch, watch_event("MODIFIED", &changed));
    let (_, responder) = next_call(&mut w.handle, "the Secret get for the new spec").await;
    secret_answer(responder, StatusCode::NOT_FOUND);
    let config = config_where(&mut w.updates, "web at 200 and db gone", |c| {
        names(c) == ["web"] && c.instances[0].priority == 200
    })
    .await;
    assert_eq!(config.generation, Some(2));
    assert_eq!(config.rejected[0].name, "legacy");
}

#[tokio::test]
async fn a_forbidden_secret_says_which_permission_is_missing() {
    let mut w = start_watch();
    let (_, responder) = next_call(&mut w.handle, "the first list").await;
    ok_json(
        responder,
        &list_of(
            &[vrrp_node(1, "10", &[v2_instance_with_password("legacy")])],
            "10",
        ),
    );
    let (_, responder) = next_call(&mut w.handle, "the Secret get").await;
    secret_answer(responder, StatusCode::FORBIDDEN);
    let config = config_where(&mut w.updates, "a rejection", |c| !c.rejected.is_empty()).await;
    assert!(config.instances.is_empty());
    assert!(
        config.rejected[0]
            .message
            .starts_with("the agent may not read Secret kube-vrrp/vrrp-auth (403 Forbidden)"),
        "{}",
        config.rejected[0].message
    );
}

#[tokio::test]
async fn an_invalid_instance_is_rejected_alone_with_the_crd_rule() {
    let mut w = start_watch();
    let mut impossible = instance("legacy", 60, 100);
    impossible["version"] = json!(2);
    impossible["advertInterval"] = json!("1500ms");
    let node = vrrp_node(1, "10", &[instance("web", 51, 150), impossible]);
    let _watch = list_then_watch(&mut w, Some(node)).await;
    let config = config_where(&mut w.updates, "web alone", |c| names(c) == ["web"]).await;
    assert_eq!(config.rejected[0].reason, RejectReason::Invalid);
    assert!(
        config.rejected[0].message.contains("advertInterval"),
        "{}",
        config.rejected[0].message
    );
}

#[tokio::test]
async fn a_bad_new_version_of_a_running_instance_keeps_the_running_one() {
    let mut w = start_watch();
    let watch = list_then_watch(
        &mut w,
        Some(vrrp_node(1, "10", &[instance("web", 51, 150)])),
    )
    .await;
    config_where(&mut w.updates, "web", |c| names(c) == ["web"]).await;
    let mut broken = instance("web", 51, 180);
    broken["advertInterval"] = json!("15ms");
    ok_stream(
        watch,
        watch_event("MODIFIED", &vrrp_node(2, "11", &[broken])),
    );
    let config = config_where(&mut w.updates, "the rejection", |c| !c.rejected.is_empty()).await;
    assert_eq!(names(&config), ["web"], "web keeps running");
    assert_eq!(
        config.instances[0].priority, 150,
        "as it was applied before"
    );
    assert!(config.rejected[0].running_previous);
    assert_eq!(config.generation, Some(2));
}

#[tokio::test]
async fn the_roll_call_annotation_and_the_tracked_services_are_handed_on() {
    let mut w = start_watch();
    let mut node = vrrp_node(
        1,
        "10",
        &[{
            let mut web = instance("web", 51, 150);
            web["track"] = json!({"endpoints": [
                {"service": {"namespace": "shop", "name": "frontend"}, "weight": -30}
            ]});
            web
        }],
    );
    node["metadata"]["annotations"] = json!({"kubevrrp.io/roll-call": "2026-11-22T03:00:30Z"});
    let _watch = list_then_watch(&mut w, Some(node)).await;
    config_where(&mut w.updates, "web", |c| names(c) == ["web"]).await;
    assert_eq!(
        w.outputs.roll_call.borrow().as_deref(),
        Some("2026-11-22T03:00:30Z")
    );
    let tracked: Vec<String> = w
        .outputs
        .tracked_services
        .borrow()
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    assert_eq!(tracked, ["shop/frontend"]);
}

// ---------------------------------------------------------------- the configuration on disk

fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kv-state-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn the_applied_configuration_is_kept_on_disk_with_its_password_in_a_private_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = state_dir("kept");
    let mut w = start_watch_keeping(Some(dir.clone()));
    let (_, responder) = next_call(&mut w.handle, "the first list").await;
    let node = vrrp_node(
        4,
        "10",
        &[
            instance("web", 51, 150),
            v2_instance_with_password("legacy"),
        ],
    );
    ok_json(responder, &list_of(&[node], "10"));
    let (_, responder) = next_call(&mut w.handle, "the Secret get").await;
    secret_answer(responder, StatusCode::OK);
    config_where(&mut w.updates, "both", |c| c.instances.len() == 2).await;
    let path = kube_vrrp_agent::cluster::last_config::path_in(&dir, NODE);
    let kept = tokio::time::timeout(STEP, async {
        loop {
            if let Ok(Some(kept)) = kube_vrrp_agent::cluster::last_config::load(&dir, NODE) {
                return kept;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the configuration is written to disk");
    assert_eq!(kept.generation, Some(4));
    let names: Vec<&str> = kept.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["legacy", "web"]);
    assert_eq!(kept.passwords.len(), 1);
    assert_eq!(kept.passwords[0].value.0, b"s3cret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only root reads the file");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    drop(w);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Waits until the configuration kept in `dir` is that of `generation`.
async fn kept_generation(dir: &std::path::Path, generation: i64) {
    tokio::time::timeout(STEP, async {
        while !matches!(
            kube_vrrp_agent::cluster::last_config::load(dir, NODE),
            Ok(Some(ref kept)) if kept.generation == Some(generation)
        ) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("generation {generation} was not kept on disk"));
}

fn keep_on_disk(dir: &std::path::Path) {
    use kube_vrrp_agent::source::resolve::{Mode, resolve};
    let legacy: kube_vrrp_crds::VrrpInstance =
        serde_json::from_value(v2_instance_with_password("legacy")).unwrap();
    let web: kube_vrrp_crds::VrrpInstance =
        serde_json::from_value(instance("web", 51, 150)).unwrap();
    let spec = kube_vrrp_crds::VrrpNodeSpec {
        instances: vec![web, legacy],
        virtual_servers: Vec::new(),
    };
    let resolution = resolve(
        &spec,
        Mode::Cluster,
        &|_: &kube_vrrp_crds::SecretKeyRef| Ok(b"s3cret".to_vec()),
        &std::collections::BTreeMap::new(),
    );
    let kept =
        kube_vrrp_agent::cluster::last_config::LastConfig::new(NODE, Some(9), &resolution.accepted);
    kube_vrrp_agent::cluster::last_config::store(dir, &kept).unwrap();
}

#[tokio::test]
async fn an_agent_that_cannot_reach_the_api_runs_the_configuration_on_disk_until_it_answers() {
    let dir = state_dir("outage");
    keep_on_disk(&dir);
    let mut w = start_watch_keeping(Some(dir.clone()));
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    let config = config_where(&mut w.updates, "the configuration on disk", |c| {
        c.instances.len() == 2
    })
    .await;
    assert_eq!(config.generation, Some(9));
    assert_eq!(
        config.instances[0].authentication,
        Authentication::simple_text_password(b"s3cret").unwrap(),
        "the v2 instance runs with the password kept on disk"
    );
    // The API returns: its spec replaces the one on disk.
    let (request, responder) = next_call(&mut w.handle, "the retried list").await;
    assert_list(&request);
    ok_json(
        responder,
        &list_of(&[vrrp_node(10, "30", &[instance("web", 51, 120)])], "30"),
    );
    let config = config_where(&mut w.updates, "the API's spec", |c| {
        names(c) == ["web"] && c.instances[0].priority == 120
    })
    .await;
    assert_eq!(config.generation, Some(10));
    kept_generation(&dir, 10).await;
    drop(w);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_api_that_does_not_answer_at_start_up_is_waited_for_two_seconds_then_the_disk_is_used() {
    let dir = state_dir("silent");
    keep_on_disk(&dir);
    let mut w = start_watch_keeping(Some(dir.clone()));
    let started = Instant::now();
    let (request, _unanswered) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    config_where(&mut w.updates, "the configuration on disk", |c| {
        c.instances.len() == 2
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    drop(w);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_corrupt_file_on_disk_is_ignored_and_nothing_runs_until_the_api_answers() {
    let dir = state_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        kube_vrrp_agent::cluster::last_config::path_in(&dir, NODE),
        b"{\"format\": \"kube-vrrp-agent/last-config\", \"version\": 1, \"node\": ",
    )
    .unwrap();
    let mut w = start_watch_keeping(Some(dir.clone()));
    let (_, responder) = next_call(&mut w.handle, "the first list").await;
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    let (_, responder) = next_call(&mut w.handle, "the retried list").await;
    assert!(
        w.updates.borrow().is_none(),
        "nothing was published from a corrupt file"
    );
    ok_json(
        responder,
        &list_of(&[vrrp_node(1, "10", &[instance("web", 51, 150)])], "10"),
    );
    config_where(&mut w.updates, "the API's spec", |c| names(c) == ["web"]).await;
    kept_generation(&dir, 1).await;
    drop(w);
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------- track.endpoints

fn endpoint_slice(name: &str, node: &str, ready: bool, rv: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv,
                     "labels": {"kubernetes.io/service-name": "frontend"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": node,
                       "conditions": {"ready": ready}}],
    })
}

#[tokio::test]
async fn only_the_named_services_slices_are_watched_and_their_readiness_on_this_node_is_published()
{
    use kube_vrrp_agent::check::EndpointReadiness;
    use kube_vrrp_agent::cluster::EndpointWatch;
    use kube_vrrp_crds::ServiceRef;

    let (client, mut handle) = mock();
    let frontend = ServiceRef {
        namespace: "shop".into(),
        name: "frontend".into(),
    };
    let (services, services_rx) = watch::channel(std::collections::BTreeSet::new());
    let readiness = EndpointReadiness::new();
    let task =
        tokio::spawn(EndpointWatch::new(client, NODE.into(), services_rx, readiness.clone()).run());
    assert_quiet(
        &mut handle,
        Duration::from_millis(200),
        "no Service is tracked",
    )
    .await;
    services.send_replace([frontend.clone()].into());
    let (request, responder) = next_call(&mut handle, "the list of the slices").await;
    assert_eq!(request.method(), Method::GET);
    assert_eq!(
        request.uri().path(),
        "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
    );
    let q = query(&request);
    assert!(
        q.contains("labelSelector=kubernetes.io%2Fservice-name+in+%28frontend%29"),
        "{q}"
    );
    ok_json(
        responder,
        &json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                "metadata": {"resourceVersion": "40"},
                "items": [endpoint_slice("frontend-a", NODE, true, "40"),
                          endpoint_slice("frontend-b", "node-b", true, "40")]}),
    );
    let (request, watch) = next_call(&mut handle, "the watch of the slices").await;
    assert!(query(&request).contains("watch=true"));
    tokio::time::timeout(STEP, async {
        while readiness.get(&frontend) != Some(true) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the ready endpoint on this node is published");
    // This node's endpoint turns not ready; the other node's does not count.
    ok_stream(
        watch,
        watch_event("MODIFIED", &endpoint_slice("frontend-a", NODE, false, "41")),
    );
    tokio::time::timeout(STEP, async {
        while readiness.get(&frontend) != Some(false) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("no ready endpoint on this node any more");
    task.abort();
}
