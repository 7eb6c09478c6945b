//! Cluster mode against an in-memory API: a `tower_test` mock whose verifier asserts each
//! call's method, path, query and body, with a short timeout so a missing call fails, and
//! quiet periods so an unexpected call fails too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use kube_vrrp_agent::cluster::{FIELD_MANAGER, SpecWatch, StatusWriter};
use kube_vrrp_agent::driver::DesiredConfig;
use kube_vrrp_agent::report::{InstanceStatus, StatusBoard};
use kube_vrrp_agent::source::{self, ConfigUpdates};
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::Authentication;
use kube_vrrp_crds::VrrpNode;
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
    generation: watch::Receiver<Option<i64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_watch() -> Watching {
    let (client, handle) = mock();
    let (watch, generation) = SpecWatch::new(
        client,
        NODE.into(),
        vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10))],
    );
    let (sender, updates) = source::channel();
    let task = tokio::spawn(watch.run(sender));
    Watching {
        handle,
        updates,
        generation,
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
    assert_eq!(*w.generation.borrow(), Some(3));
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
    assert_eq!(*w.generation.borrow(), Some(4));
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
async fn a_failed_secret_read_publishes_nothing_and_is_retried_after_a_second() {
    let mut w = start_watch();
    let (request, responder) = next_call(&mut w.handle, "the first list").await;
    assert_list(&request);
    let node = vrrp_node(1, "10", &[v2_instance_with_password("legacy")]);
    ok_json(responder, &list_of(&[node], "10"));
    let (request, responder) = next_call(&mut w.handle, "the Secret get").await;
    assert_eq!(
        request.uri().path(),
        "/api/v1/namespaces/kube-vrrp/secrets/vrrp-auth"
    );
    error_status(responder, StatusCode::SERVICE_UNAVAILABLE);
    let failed_at = Instant::now();
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
    assert!(
        w.updates.borrow().is_none(),
        "a configuration was published without its password"
    );
    ok_json(
        responder,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp-auth"},
                "data": {"password": "czNjcmV0"}}),
    );
    let config = config_where(&mut w.updates, "instance legacy", |c| {
        names(c) == ["legacy"]
    })
    .await;
    assert_eq!(
        config.instances[0].authentication,
        Authentication::simple_text_password(b"s3cret").unwrap()
    );
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
    assert_eq!(*w.generation.borrow(), None);
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
        waited >= Duration::from_millis(300),
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
    config_where(&mut w.updates, "priority 120 after the relist", |c| {
        c.instances[0].priority == 120
    })
    .await;
    let (request, _held) = next_call(&mut w.handle, "the watch after the relist").await;
    assert_watch(&request, "20");
    assert_eq!(*w.generation.borrow(), Some(4));
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
    generation: watch::Sender<Option<i64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_writer(heartbeat: Duration, ready: bool) -> Writing {
    let (client, handle) = mock();
    let board = StatusBoard::new();
    board.set(board_entry("web", State::Backup));
    if ready {
        board.mark_ready();
    }
    let (generation, receiver) = watch::channel(Some(5));
    let writer = StatusWriter::new(client, NODE.into(), board.clone(), receiver)
        .heartbeat(heartbeat)
        .poll(Duration::from_millis(20));
    Writing {
        handle,
        board,
        generation,
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
    w.generation.send_replace(Some(6));
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
    w.generation.send_replace(None);
    assert_quiet(
        &mut w.handle,
        Duration::from_millis(400),
        "the VrrpNode was deleted",
    )
    .await;
    w.generation.send_replace(Some(1));
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
