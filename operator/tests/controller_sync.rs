//! The sync pass against an in-memory API: a `tower_test` mock whose verifier asserts each
//! call's method, path, query (fieldManager, force) and body, in order, with a short timeout
//! so a missing call fails, and then that no further call comes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::ObjectMeta;
use kube::client::Body;
use kube_vrrp_crds::{
    InstanceStatus, State, VirtualIp, VirtualIpSpec, VirtualIpStatus, VirtualServer, VrrpNode,
    VrrpNodeSpec, VrrpNodeStatus, condition,
};
use kube_vrrp_operator::controller::digest::{SPEC_DIGEST_ANNOTATION, spec_digest};
use kube_vrrp_operator::controller::{
    Config, Context, ErrorReason, Snapshot, SyncOutcome, placement_of, reporter, strip, sync,
};
use kube_vrrp_operator::fold::fold;
use kube_vrrp_operator::lease::Leadership;
use kube_vrrp_operator::metrics::Metrics;
use kube_vrrp_plan::{PlanInput, plan};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock::Handle;

const NOW: i64 = 1_800_000_000;
const STEP: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(150);

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

// ---------------------------------------------------------------- builders

fn node(name: &str, ip: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                address: ip.to_owned(),
                type_: "InternalIP".to_owned(),
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn vip(name: &str, address: &str) -> VirtualIp {
    let spec: VirtualIpSpec =
        serde_json::from_value(json!({ "addresses": [address], "virtualRouterID": 51 })).unwrap();
    let mut v = VirtualIp::new(name, spec);
    v.metadata.generation = Some(1);
    v.metadata.uid = Some(format!("uid-{name}"));
    v.metadata.resource_version = Some("100".to_owned());
    v
}

fn input(nodes: &[(&str, &str)], vips: Vec<VirtualIp>) -> PlanInput {
    PlanInput {
        virtual_ips: vips,
        nodes: nodes.iter().map(|(n, ip)| node(n, ip)).collect(),
        ..PlanInput::default()
    }
}

/// The VrrpNodes exactly as planned (what the store holds after a first pass).
fn planned_vrrp_nodes(input: &PlanInput) -> Vec<VrrpNode> {
    plan(input)
        .nodes
        .into_iter()
        .map(|(name, spec)| {
            let mut n = VrrpNode::new(&name, spec);
            n.metadata.resource_version = Some("7".to_owned());
            n
        })
        .collect()
}

/// Adds the agent's report: fresh heartbeat, the VirtualIP `vip` in `state`.
fn report(mut n: VrrpNode, vip: &str, state: State) -> VrrpNode {
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(MicroTime(now() - SignedDuration::from_secs(3))),
        instances: vec![InstanceStatus {
            name: vip.to_owned(),
            state,
            priority: 100,
            effective_priority: 100,
            master_address: None,
            transitions: 1,
            last_transition_time: Some(MicroTime(now() - SignedDuration::from_secs(60))),
            // A MASTER holds the address, as an agent reports it.
            vips_held: if state == State::Master {
                vec!["10.0.0.50/24".to_owned()]
            } else {
                Vec::new()
            },
            message: None,
            holder_conflict: None,
        }],
        ..VrrpNodeStatus::default()
    });
    n
}

/// Gives every VirtualIP of `snap` the status a pass would write now.
fn settle_statuses(snap: &mut Snapshot) {
    let p = plan(&input_of(snap));
    for v in &mut snap.virtual_ips {
        let v = Arc::make_mut(v);
        let name = v.metadata.name.clone().unwrap();
        let f = fold(
            snap.now,
            &Config::default().fold,
            v,
            &placement_of(&p, &name),
            &snap.vrrp_nodes,
        );
        v.status = Some(f.status);
    }
}

// ---------------------------------------------------------------- the verifier

type ApiHandle = Handle<Request<Body>, Response<Body>>;

struct Harness {
    ctx: Context,
    handle: ApiHandle,
    _leader: watch::Sender<bool>,
}

fn harness(leader: bool) -> Harness {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (tx, rx) = watch::channel(leader);
    let rx = Leadership::unfenced(rx);
    let ctx = Context::new(
        client,
        reporter(Some("test".to_owned())),
        Arc::new(Metrics::new()),
        Config::default(),
        rx,
    );
    Harness {
        ctx,
        handle,
        _leader: tx,
    }
}

/// One API call the pass must make next.
struct Call {
    method: Method,
    path: String,
    /// Query pairs that must be present.
    query: Vec<(&'static str, &'static str)>,
    /// Checks the request body (JSON).
    check: Box<dyn Fn(&Value) + Send>,
    /// Status and body of the answer.
    answer: (StatusCode, Value),
}

fn ssa_query() -> Vec<(&'static str, &'static str)> {
    vec![("fieldManager", "kube-vrrp-operator"), ("force", "true")]
}

fn echo_ok() -> Box<dyn Fn(&Value) + Send> {
    Box::new(|_| ())
}

fn apply_vrrp_node(name: &str, check: impl Fn(&Value) + Send + 'static) -> Call {
    let n = name.to_owned();
    Call {
        method: Method::PATCH,
        path: format!("/apis/kubevrrp.io/v1alpha1/vrrpnodes/{name}"),
        query: ssa_query(),
        check: Box::new(move |body| {
            assert_eq!(body["apiVersion"], "kubevrrp.io/v1alpha1");
            assert_eq!(body["kind"], "VrrpNode");
            assert_eq!(body["metadata"]["name"], n.as_str());
            assert!(
                body.get("status").is_none(),
                "an apply of the spec carries no status"
            );
            check(body);
        }),
        answer: (
            StatusCode::OK,
            json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
                   "metadata": {"name": name, "resourceVersion": "8"}, "spec": {}}),
        ),
    }
}

fn write_status(vip: &VirtualIp, check: impl Fn(&Value) + Send + 'static) -> Call {
    let name = vip.metadata.name.clone().unwrap();
    let n = name.clone();
    Call {
        method: Method::PATCH,
        path: format!("/apis/kubevrrp.io/v1alpha1/virtualips/{name}/status"),
        query: ssa_query(),
        check: Box::new(move |body| {
            assert_eq!(body["apiVersion"], "kubevrrp.io/v1alpha1");
            assert_eq!(body["kind"], "VirtualIP");
            assert_eq!(body["metadata"]["name"], n.as_str());
            assert!(body.get("spec").is_none(), "a status apply carries no spec");
            check(&body["status"]);
        }),
        answer: (StatusCode::OK, serde_json::to_value(vip).unwrap()),
    }
}

fn event(type_: &'static str, reason: &'static str, note: &'static str) -> Call {
    Call {
        method: Method::POST,
        path: "/apis/events.k8s.io/v1/namespaces/default/events".to_owned(),
        query: vec![],
        check: Box::new(move |body| {
            assert_eq!(body["type"], type_);
            assert_eq!(body["reason"], reason);
            assert_eq!(body["note"], note);
            assert_eq!(body["regarding"]["kind"], "VirtualIP");
            assert_eq!(body["reportingController"], "kube-vrrp-operator");
        }),
        answer: (StatusCode::CREATED, json!({"metadata": {"name": "e"}})),
    }
}

fn api_error(mut call: Call, code: u16) -> Call {
    let reason = if code == 404 {
        "NotFound"
    } else {
        "InternalError"
    };
    call.answer = (
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "injected", "reason": reason, "code": code}),
    );
    call
}

/// Answers `calls` in order, then asserts that no further call comes.
async fn verify(handle: &mut ApiHandle, calls: Vec<Call>) {
    for (i, call) in calls.into_iter().enumerate() {
        let (request, respond) = tokio::time::timeout(STEP, handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("call {i} ({} {}) never came", call.method, call.path))
            .expect("client dropped");
        assert_eq!(request.method(), call.method, "call {i}");
        assert_eq!(request.uri().path(), call.path, "call {i}");
        let query: Vec<(String, String)> = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for (k, v) in &call.query {
            assert!(
                query.iter().any(|(qk, qv)| qk == k && qv == v),
                "call {i}: {k}={v} missing from {query:?}"
            );
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (call.check)(&body);
        let (status, answer) = call.answer;
        respond.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
    }
    if let Ok(Some((request, _))) = tokio::time::timeout(QUIET, handle.next_request()).await {
        panic!(
            "unexpected call {} {}",
            request.method(),
            request.uri().path()
        );
    }
}

/// Runs one pass on `ctx` while `handle` is verified against `calls`; hands the handle back.
async fn pass(
    ctx: &Context,
    mut handle: ApiHandle,
    snap: &Snapshot,
    calls: Vec<Call>,
) -> (
    Result<SyncOutcome, kube_vrrp_operator::controller::Error>,
    ApiHandle,
) {
    let verifier = tokio::spawn(async move {
        verify(&mut handle, calls).await;
        handle
    });
    let result = sync(ctx, snap).await;
    (result, verifier.await.unwrap())
}

async fn run_pass(
    h: Harness,
    snap: &Snapshot,
    calls: Vec<Call>,
) -> (
    Result<SyncOutcome, kube_vrrp_operator::controller::Error>,
    Context,
) {
    let Harness {
        ctx,
        handle,
        _leader,
    } = h;
    let (result, _) = pass(&ctx, handle, snap, calls).await;
    (result, ctx)
}

fn snapshot(input: PlanInput, vrrp_nodes: Vec<VrrpNode>) -> Snapshot {
    Snapshot::new(now(), input, vrrp_nodes)
}

/// The snapshot's objects as an owned planner input (a copy; tests only).
fn input_of(snap: &Snapshot) -> PlanInput {
    fn owned<T: Clone>(items: &[Arc<T>]) -> Vec<T> {
        items.iter().map(|i| (**i).clone()).collect()
    }
    PlanInput {
        virtual_ips: owned(&snap.virtual_ips),
        virtual_servers: owned(&snap.virtual_servers),
        nodes: owned(&snap.nodes),
        endpoint_slices: owned(&snap.endpoint_slices),
        services: owned(&snap.services),
        ..PlanInput::default()
    }
}

/// `nodes`, shared as a store holds them.
fn shared(nodes: Vec<VrrpNode>) -> Vec<Arc<VrrpNode>> {
    nodes.into_iter().map(Arc::new).collect()
}

const NODES: [(&str, &str); 2] = [("n1", "192.168.1.1"), ("n2", "192.168.1.2")];

// ---------------------------------------------------------------- scenarios

#[tokio::test]
async fn first_pass_applies_every_vrrp_node_and_writes_the_status() {
    let web = vip("web", "10.0.0.50/24");
    let snap = snapshot(input(&NODES, vec![web.clone()]), vec![]);
    let instance_check = |body: &Value| {
        let instances = body["spec"]["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0]["name"], "web");
        assert_eq!(instances[0]["virtualRouterID"], 51);
        assert_eq!(instances[0]["addresses"], json!(["10.0.0.50/24"]));
    };
    let (result, ctx) = run_pass(
        harness(true),
        &snap,
        vec![
            apply_vrrp_node("n1", instance_check),
            apply_vrrp_node("n2", instance_check),
            write_status(&web, |status| {
                assert_eq!(status["state"], "Pending");
                assert_eq!(status["virtualRouterID"], 51);
                assert_eq!(status["nodesSummary"], "0/2");
                assert_eq!(status["observedGeneration"], 1);
                assert!(status.get("master").is_none());
            }),
        ],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(outcome.applied, ["n1", "n2"]);
    assert_eq!(outcome.statuses, ["web"]);
    assert_eq!(outcome.events, 0);
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_masters{virtualip=\"web\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn nothing_is_written_when_nothing_changed() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .zip([State::Master, State::Backup])
        .map(|(n, s)| report(n, "web", s))
        .collect();
    let mut snap = snapshot(input, nodes);
    settle_statuses(&mut snap);
    let (result, ctx) = run_pass(harness(true), &snap, vec![]).await;
    let outcome = result.unwrap();
    assert_eq!(
        outcome,
        SyncOutcome {
            leader: true,
            ..SyncOutcome::default()
        }
    );
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_ready{virtualip=\"web\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kube_vrrp_vrrpnode_heartbeat_age_seconds{node=\"n1\"} 3.0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_node_that_left_loses_its_vrrp_node() {
    let with_three = input(
        &[NODES[0], NODES[1], ("n3", "192.168.1.3")],
        vec![vip("web", "10.0.0.50/24")],
    );
    let vrrp_nodes = planned_vrrp_nodes(&with_three);
    assert_eq!(vrrp_nodes.len(), 3);
    // n3 is gone from the cluster; n1 and n2 keep their priorities (stable ranking).
    let mut snap = snapshot(input(&NODES, vec![vip("web", "10.0.0.50/24")]), vrrp_nodes);
    settle_statuses(&mut snap);
    let delete = Call {
        method: Method::DELETE,
        path: "/apis/kubevrrp.io/v1alpha1/vrrpnodes/n3".to_owned(),
        query: vec![],
        check: echo_ok(),
        answer: (
            StatusCode::OK,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ),
    };
    let (result, _) = run_pass(harness(true), &snap, vec![delete]).await;
    let outcome = result.unwrap();
    assert_eq!(outcome.deleted, ["n3"]);
    assert!(outcome.applied.is_empty(), "{outcome:?}");
}

#[tokio::test]
async fn a_vrrp_node_already_deleted_counts_as_deleted() {
    let input = input(&NODES, vec![]);
    let stray = VrrpNode::new("n1", VrrpNodeSpec::default());
    let snap = snapshot(input, vec![stray]);
    let gone = api_error(
        Call {
            method: Method::DELETE,
            path: "/apis/kubevrrp.io/v1alpha1/vrrpnodes/n1".to_owned(),
            query: vec![],
            check: echo_ok(),
            answer: (StatusCode::OK, Value::Null),
        },
        404,
    );
    let (result, _) = run_pass(harness(true), &snap, vec![gone]).await;
    assert_eq!(result.unwrap().deleted, ["n1"]);
}

#[tokio::test]
async fn split_brain_writes_the_condition_and_a_warning_event() {
    let web = vip("web", "10.0.0.50/24");
    let input = input(&NODES, vec![web.clone()]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .map(|n| report(n, "web", State::Master))
        .collect();
    let snap = snapshot(input, nodes);
    let (result, ctx) = run_pass(
        harness(true),
        &snap,
        vec![
            write_status(&web, |status| {
                assert_eq!(status["state"], "SplitBrain");
                let split = status["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == condition::SPLIT_BRAIN)
                    .unwrap();
                assert_eq!(split["status"], "True");
                assert_eq!(
                    split["message"],
                    "n1 and n2 both report MASTER for VirtualIP web (VRID 51)"
                );
            }),
            event(
                "Warning",
                "SplitBrain",
                "n1 and n2 both claim 10.0.0.50/24 (VRID 51) as MASTER; they cannot hear \
                 each other's adverts: check the network between them",
            ),
        ],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(outcome.events, 1);
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_masters{virtualip=\"web\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("kube_vrrp_virtualip_ready{virtualip=\"web\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_master_change_writes_the_status_and_a_normal_event() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let before = planned_vrrp_nodes(&input)
        .into_iter()
        .zip([State::Master, State::Backup])
        .map(|(n, s)| report(n, "web", s))
        .collect();
    let mut snap = snapshot(input, before);
    settle_statuses(&mut snap);
    assert_eq!(
        snap.virtual_ips[0]
            .status
            .as_ref()
            .unwrap()
            .master
            .as_deref(),
        Some("n1")
    );
    // n1 fails over to n2.
    snap.vrrp_nodes = std::mem::take(&mut snap.vrrp_nodes)
        .into_iter()
        .zip([State::Backup, State::Master])
        .map(|(n, s)| Arc::new(report((*n).clone(), "web", s)))
        .collect();
    let web = (*snap.virtual_ips[0]).clone();
    let (result, _) = run_pass(
        harness(true),
        &snap,
        vec![
            write_status(&web, |status| assert_eq!(status["master"], "n2")),
            event(
                "Normal",
                "MasterChanged",
                "MASTER of 10.0.0.50/24 (VRID 51) moved from n1 to n2",
            ),
        ],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!((outcome.statuses.len(), outcome.events), (1, 1));
}

#[tokio::test]
async fn a_replica_that_is_not_leader_writes_nothing_and_exports_no_vip_gauges() {
    let web = vip("web", "10.0.0.50/24");
    let input = input(&NODES, vec![web]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .map(|n| report(n, "web", State::Master))
        .collect();
    // Everything differs: a split brain, and a stray VrrpNode to delete.
    let mut nodes: Vec<VrrpNode> = nodes;
    nodes.push(VrrpNode::new("gone", VrrpNodeSpec::default()));
    let snap = snapshot(input, nodes);
    let (result, ctx) = run_pass(harness(false), &snap, vec![]).await;
    assert_eq!(result.unwrap(), SyncOutcome::default());
    let text = ctx.metrics.render().unwrap();
    assert!(!text.contains("virtualip=\"web\""), "{text}");
}

#[tokio::test]
async fn a_store_lagging_behind_our_write_causes_no_second_write_or_event() {
    let web = vip("web", "10.0.0.50/24");
    let input = input(&NODES, vec![web.clone()]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .map(|n| report(n, "web", State::Master))
        .collect();
    let snap = snapshot(input, nodes);
    let Harness {
        ctx,
        mut handle,
        _leader,
    } = harness(true);
    let calls = vec![
        write_status(&web, |_| ()),
        event(
            "Warning",
            "SplitBrain",
            "n1 and n2 both claim 10.0.0.50/24 (VRID 51) as MASTER; they cannot hear each other's adverts: check the network between them",
        ),
    ];
    let (first, ()) = tokio::join!(sync(&ctx, &snap), async {
        // Only the two calls; `verify` would also wait for silence, done below.
        let mut calls = calls.into_iter();
        for _ in 0..2 {
            let call = calls.next().unwrap();
            let (request, respond) = tokio::time::timeout(STEP, handle.next_request())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(request.uri().path(), call.path);
            respond.send_response(
                Response::builder()
                    .status(call.answer.0)
                    .body(Body::from(serde_json::to_vec(&call.answer.1).unwrap()))
                    .unwrap(),
            );
        }
    });
    assert_eq!(first.unwrap().statuses, ["web"]);
    // Same snapshot again: the store has not seen the write yet.
    let (second, _) = pass(&ctx, handle, &snap, vec![]).await;
    let second = second.unwrap();
    assert!(
        second.statuses.is_empty() && second.events == 0,
        "{second:?}"
    );
}

#[tokio::test]
async fn a_failed_apply_fails_the_pass_but_the_other_writes_still_happen() {
    let web = vip("web", "10.0.0.50/24");
    let snap = snapshot(input(&NODES, vec![web.clone()]), vec![]);
    let (result, ctx) = run_pass(
        harness(true),
        &snap,
        vec![
            api_error(apply_vrrp_node("n1", |_| ()), 500),
            apply_vrrp_node("n2", |_| ()),
            write_status(&web, |_| ()),
        ],
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), ErrorReason::ApplyVrrpNode);
    assert!(err.to_string().contains("VrrpNode n1"), "{err}");
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains(
            "kube_vrrp_reconcile_errors_total{controller=\"sync\",reason=\"ApplyVrrpNode\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_status_written_by_someone_else_is_rewritten_from_observation() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .zip([State::Master, State::Backup])
        .map(|(n, s)| report(n, "web", s))
        .collect();
    let mut snap = snapshot(input, nodes);
    settle_statuses(&mut snap);
    let web = Arc::make_mut(&mut snap.virtual_ips[0]);
    let mut tampered: VirtualIpStatus = web.status.clone().unwrap();
    tampered.nodes_summary = Some("9/9".to_owned());
    web.status = Some(tampered);
    let web = web.clone();
    let (result, _) = run_pass(
        harness(true),
        &snap,
        vec![write_status(&web, |status| {
            assert_eq!(status["nodesSummary"], "2/2");
            assert_eq!(status["master"], "n1");
        })],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!((outcome.statuses.len(), outcome.events), (1, 0));
}

#[tokio::test]
async fn each_master_change_is_its_own_event_with_its_own_note() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let reports = |states: [State; 2]| -> Vec<VrrpNode> {
        planned_vrrp_nodes(&input)
            .into_iter()
            .zip(states)
            .map(|(n, s)| report(n, "web", s))
            .collect()
    };
    let mut snap = snapshot(input.clone(), reports([State::Master, State::Backup]));
    settle_statuses(&mut snap);
    let Harness {
        ctx,
        mut handle,
        _leader,
    } = harness(true);

    let moves = [
        ([State::Backup, State::Master], "n2", "moved from n1 to n2"),
        ([State::Master, State::Backup], "n1", "moved from n2 to n1"),
    ];
    for (i, (states, master, how)) in moves.into_iter().enumerate() {
        snap.vrrp_nodes = shared(reports(states));
        let web = (*snap.virtual_ips[0]).clone();
        let note: &'static str =
            Box::leak(format!("MASTER of 10.0.0.50/24 (VRID 51) {how}").into_boxed_str());
        let calls = vec![
            write_status(&web, move |s| assert_eq!(s["master"], master)),
            // A POST each time: never a PATCH folding the second into the first's series.
            event("Normal", "MasterChanged", note),
        ];
        let (outcome, back) = pass(&ctx, handle, &snap, calls).await;
        handle = back;
        assert_eq!(outcome.unwrap().events, 1, "move {i}");
        // The store catches up with the write.
        settle_statuses(&mut snap);
        Arc::make_mut(&mut snap.virtual_ips[0])
            .metadata
            .resource_version = Some(format!("{}", 200 + i));
    }
}

#[tokio::test]
async fn a_virtual_server_status_is_written_once_from_the_masters_view() {
    let server: VirtualServer = serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualServer",
        "metadata": {"name": "http", "generation": 1, "resourceVersion": "300"},
        "spec": {"virtualIPRef": "web", "port": 80,
                 "realServers": [{"address": "10.1.0.1", "port": 8080}]}
    }))
    .unwrap();
    let mut input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    input.virtual_servers = vec![server.clone()];
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .zip([State::Master, State::Backup])
        .map(|(n, s)| {
            let mut n = report(n, "web", s);
            // Each node reports the service programmed, as an agent with IPVS does.
            let programmed = kube_vrrp_crds::IpvsStatus {
                available: true,
                services: 1,
                real_servers: 1,
                message: None,
                virtual_services: vec![kube_vrrp_crds::IpvsServiceStatus {
                    virtual_server: "http".into(),
                    address: "10.0.0.50".into(),
                    port: 80,
                    protocol: kube_vrrp_crds::Protocol::Tcp,
                    programmed: true,
                    message: None,
                    real_servers: vec![kube_vrrp_crds::IpvsRealServerStatus {
                        address: "10.1.0.1".into(),
                        port: 8080,
                        weight: 1,
                        active_connections: 0,
                        inactive_connections: 0,
                        draining: false,
                    }],
                }],
            };
            if let Some(status) = n.status.as_mut() {
                status.ipvs = Some(programmed);
            }
            n
        })
        .collect();
    let mut snap = snapshot(input, nodes);
    settle_statuses(&mut snap);
    let Harness {
        ctx,
        handle,
        _leader,
    } = harness(true);
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let keep = written.clone();
    let call = Call {
        method: Method::PATCH,
        path: "/apis/kubevrrp.io/v1alpha1/virtualservers/http/status".to_owned(),
        query: ssa_query(),
        check: Box::new(move |body| {
            assert_eq!(body["kind"], "VirtualServer");
            let status = &body["status"];
            assert_eq!(status["healthySummary"], "1/1");
            assert_eq!(status["realServers"][0]["address"], "10.1.0.1");
            let available = status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == condition::AVAILABLE)
                .unwrap();
            assert_eq!(available["status"], "True");
            assert_eq!(available["message"], "n1 serves 1 of 1 real servers");
            *keep.lock().unwrap() = status.clone();
        }),
        answer: (StatusCode::OK, serde_json::to_value(&server).unwrap()),
    };
    let (first, handle) = pass(&ctx, handle, &snap, vec![call]).await;
    assert_eq!(first.unwrap().server_statuses, ["http"]);

    // The store now holds what was written: the next pass writes nothing.
    let vs = Arc::make_mut(&mut snap.virtual_servers[0]);
    vs.status = Some(serde_json::from_value(written.lock().unwrap().clone()).unwrap());
    vs.metadata.resource_version = Some("301".to_owned());
    let (second, _) = pass(&ctx, handle, &snap, vec![]).await;
    assert!(second.unwrap().server_statuses.is_empty());
}

/// `n` reporting `vip` in `state`, changed `transition` s ago, written `heartbeat` s ago.
fn report_at(n: VrrpNode, vip: &str, state: State, transition: i64, heartbeat: i64) -> VrrpNode {
    let mut n = report(n, vip, state);
    let status = n.status.as_mut().unwrap();
    status.heartbeat_time = Some(MicroTime(now() - SignedDuration::from_secs(heartbeat)));
    status.instances[0].last_transition_time =
        Some(MicroTime(now() - SignedDuration::from_secs(transition)));
    n
}

fn roll_call(node: &str, at: Timestamp) -> Call {
    let expected = at.to_string();
    Call {
        method: Method::PATCH,
        path: format!("/apis/kubevrrp.io/v1alpha1/vrrpnodes/{node}"),
        query: vec![("fieldManager", "kube-vrrp-operator")],
        check: Box::new(move |body| {
            assert_eq!(
                body,
                &json!({"metadata": {"annotations": {"kubevrrp.io/roll-call": expected}}}),
                "a metadata-only merge patch: the spec is untouched"
            );
        }),
        answer: (
            StatusCode::OK,
            json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
                   "metadata": {"name": node, "resourceVersion": "9"}, "spec": {}}),
        ),
    }
}

/// n1 was MASTER, n2 BACKUP; the snapshot's VirtualIP carries that settled status.
fn n1_was_master() -> Snapshot {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let before = planned_vrrp_nodes(&input)
        .into_iter()
        .zip([State::Master, State::Backup])
        .map(|(n, s)| report_at(n, "web", s, 600, 8))
        .collect();
    let mut snap = snapshot(input, before);
    settle_statuses(&mut snap);
    snap
}

#[tokio::test]
async fn an_ordinary_failover_moves_the_master_without_a_warning_and_calls_the_old_masters_roll() {
    let mut snap = n1_was_master();
    // n1 died without a last word 8 s ago; n2 became MASTER 3 s ago.
    snap.vrrp_nodes = std::mem::take(&mut snap.vrrp_nodes)
        .into_iter()
        .zip([(State::Master, 600, 8), (State::Master, 3, 3)])
        .map(|(n, (s, t, h))| Arc::new(report_at((*n).clone(), "web", s, t, h)))
        .collect();
    let web = (*snap.virtual_ips[0]).clone();
    let took_over = now() - SignedDuration::from_secs(3);
    let h = harness(true);
    let Harness {
        ctx,
        handle,
        _leader,
    } = h;
    let (result, handle) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            write_status(&web, |status| {
                assert_eq!(status["master"], "n2");
                assert_eq!(status["state"], "Ready");
                let split = status["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == condition::SPLIT_BRAIN)
                    .unwrap();
                assert_eq!(split["status"], "False");
            }),
            event(
                "Normal",
                "MasterChanged",
                "MASTER of 10.0.0.50/24 (VRID 51) moved from n1 to n2",
            ),
            roll_call("n1", took_over),
        ],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(outcome.roll_calls, ["n1"]);
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_masters{virtualip=\"web\"} 1"),
        "{text}"
    );
    // The store catches up with the status; n1's annotation not yet: no second roll call.
    settle_statuses(&mut snap);
    let (again, handle) = pass(&ctx, handle, &snap, vec![]).await;
    assert!(again.unwrap().roll_calls.is_empty());
    // Once the store shows the annotation, a new leader would not send it either.
    let mut annotated = snap.clone();
    Arc::make_mut(&mut annotated.vrrp_nodes[0])
        .metadata
        .annotations = Some([("kubevrrp.io/roll-call".to_owned(), took_over.to_string())].into());
    let fresh = harness(true);
    drop(handle);
    let (third, _) = run_pass(fresh, &annotated, vec![]).await;
    assert!(third.unwrap().roll_calls.is_empty());
}

#[tokio::test]
async fn a_partitioned_master_that_answers_the_roll_call_is_reported_as_split_brain() {
    let mut snap = n1_was_master();
    let took_over = now() - SignedDuration::from_secs(3);
    snap.vrrp_nodes = std::mem::take(&mut snap.vrrp_nodes)
        .into_iter()
        .zip([(State::Master, 600, 1), (State::Master, 3, 3)])
        .map(|(n, (s, t, h))| Arc::new(report_at((*n).clone(), "web", s, t, h)))
        .collect();
    // n1's answer echoes n2's transition; its heartbeat alone would also prove it alive.
    Arc::make_mut(&mut snap.vrrp_nodes[0])
        .status
        .as_mut()
        .unwrap()
        .roll_call = Some(took_over.to_string());
    let web = (*snap.virtual_ips[0]).clone();
    let (result, ctx) = run_pass(
        harness(true),
        &snap,
        vec![
            write_status(&web, |status| assert_eq!(status["state"], "SplitBrain")),
            event(
                "Warning",
                "SplitBrain",
                "n1 and n2 both claim 10.0.0.50/24 (VRID 51) as MASTER; they cannot hear \
                 each other's adverts: check the network between them",
            ),
        ],
    )
    .await;
    assert!(result.unwrap().roll_calls.is_empty());
    let text = ctx.metrics.render().unwrap();
    assert!(
        text.contains("kube_vrrp_virtualip_masters{virtualip=\"web\"} 2"),
        "{text}"
    );
}

// ---------------------------------------------------------------- spec digests

/// `n` as the operator's store keeps it: spec dropped, the digest of `spec` annotated.
fn as_stored(mut n: VrrpNode) -> VrrpNode {
    let digest = spec_digest(&n.spec);
    n.metadata.annotations = Some([(SPEC_DIGEST_ANNOTATION.to_owned(), digest)].into());
    strip::vrrp_node(&mut n);
    n
}

#[tokio::test]
async fn every_apply_carries_the_digest_of_the_spec_it_applies() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let planned = planned_vrrp_nodes(&input);
    let digests: Vec<String> = planned.iter().map(|n| spec_digest(&n.spec)).collect();
    let snap = snapshot(input, vec![]);
    let check = |expected: String| {
        move |body: &Value| {
            assert_eq!(
                body["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION],
                expected.as_str()
            );
        }
    };
    let web = (*snap.virtual_ips[0]).clone();
    let (result, _) = run_pass(
        harness(true),
        &snap,
        vec![
            apply_vrrp_node("n1", check(digests[0].clone())),
            apply_vrrp_node("n2", check(digests[1].clone())),
            write_status(&web, |_| ()),
        ],
    )
    .await;
    assert_eq!(result.unwrap().applied, ["n1", "n2"]);
}

#[tokio::test]
async fn a_stored_vrrp_node_without_its_spec_but_with_the_planned_digest_is_left_alone() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let nodes = planned_vrrp_nodes(&input)
        .into_iter()
        .map(|n| as_stored(report(n, "web", State::Backup)))
        .collect();
    let mut snap = snapshot(input, nodes);
    assert!(
        snap.vrrp_nodes[0].spec.instances.is_empty(),
        "the store drops specs"
    );
    settle_statuses(&mut snap);
    let (result, _) = run_pass(harness(true), &snap, vec![]).await;
    assert!(result.unwrap().applied.is_empty());
}

#[tokio::test]
async fn a_spec_edited_by_someone_else_after_our_apply_is_applied_again() {
    let input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    let stored: Vec<VrrpNode> = planned_vrrp_nodes(&input)
        .into_iter()
        .map(|n| as_stored(report(n, "web", State::Backup)))
        .collect();
    let mut snap = snapshot(input, vec![]);
    settle_statuses(&mut snap);
    let Harness {
        ctx,
        handle,
        _leader,
    } = harness(true);
    let applied_at_generation_1 = |name: &str| {
        let mut call = apply_vrrp_node(name, |_| ());
        call.answer.1["metadata"]["generation"] = json!(1);
        call
    };
    // First pass: nothing stored yet, both applied (the API gives generation 1).
    let (first, handle) = pass(
        &ctx,
        handle,
        &snap,
        vec![applied_at_generation_1("n1"), applied_at_generation_1("n2")],
    )
    .await;
    assert_eq!(first.unwrap().applied, ["n1", "n2"]);
    // The store now shows them at generation 1; n2 was then edited by hand (generation 2),
    // its digest annotation unchanged.
    snap.vrrp_nodes = shared(
        stored
            .into_iter()
            .map(|mut n| {
                n.metadata.resource_version = Some("20".to_owned());
                n.metadata.generation = Some(if n.metadata.name.as_deref() == Some("n2") {
                    2
                } else {
                    1
                });
                n
            })
            .collect(),
    );
    settle_statuses(&mut snap);
    let (second, _) = pass(&ctx, handle, &snap, vec![applied_at_generation_1("n2")]).await;
    assert_eq!(second.unwrap().applied, ["n2"]);
}

fn server_event(type_: &'static str, reason: &'static str, note: &'static str) -> Call {
    Call {
        method: Method::POST,
        path: "/apis/events.k8s.io/v1/namespaces/default/events".to_owned(),
        query: vec![],
        check: Box::new(move |body| {
            assert_eq!(body["type"], type_);
            assert_eq!(body["reason"], reason);
            assert_eq!(body["note"], note);
            assert_eq!(body["regarding"]["kind"], "VirtualServer");
            assert_eq!(body["regarding"]["name"], "http");
        }),
        answer: (StatusCode::CREATED, json!({"metadata": {"name": "e"}})),
    }
}

#[tokio::test]
async fn a_real_server_falling_on_the_master_writes_the_status_and_warns_with_quorum_events() {
    let server: VirtualServer = serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualServer",
        "metadata": {"name": "http", "generation": 1, "resourceVersion": "300"},
        "spec": {"virtualIPRef": "web", "port": 80, "healthCheck": {"tcp": {}},
                 "sorryServer": {"address": "10.1.0.99"},
                 "realServers": [{"address": "10.1.0.1", "port": 8080}]}
    }))
    .unwrap();
    let mut input = input(&NODES, vec![vip("web", "10.0.0.50/24")]);
    input.virtual_servers = vec![server.clone()];
    let master_reports = |healthy: bool| {
        let programmed = if healthy {
            ("10.1.0.1", 8080)
        } else {
            ("10.1.0.99", 80)
        };
        planned_vrrp_nodes(&input)
            .into_iter()
            .zip([State::Master, State::Backup])
            .map(|(n, s)| {
                let mut n = report(n, "web", s);
                if let Some(status) = n.status.as_mut() {
                    status.ipvs = Some(kube_vrrp_crds::IpvsStatus {
                        available: true,
                        services: 1,
                        real_servers: 1,
                        message: None,
                        virtual_services: vec![kube_vrrp_crds::IpvsServiceStatus {
                            virtual_server: "http".into(),
                            address: "10.0.0.50".into(),
                            port: 80,
                            protocol: kube_vrrp_crds::Protocol::Tcp,
                            programmed: true,
                            message: None,
                            real_servers: vec![kube_vrrp_crds::IpvsRealServerStatus {
                                address: programmed.0.into(),
                                port: programmed.1,
                                weight: 1,
                                active_connections: 0,
                                inactive_connections: 0,
                                draining: false,
                            }],
                        }],
                    });
                    status.checkers = vec![kube_vrrp_crds::CheckerStatus {
                        kind: kube_vrrp_crds::CheckerKind::RealServer,
                        owner: "http".into(),
                        target: "10.1.0.1:8080".into(),
                        healthy,
                        last_transition_time: None,
                        message: Some(
                            if healthy {
                                "connected"
                            } else {
                                "connection refused"
                            }
                            .into(),
                        ),
                        last_result: Some(if healthy {
                            kube_vrrp_crds::CheckResult::Passed
                        } else {
                            kube_vrrp_crds::CheckResult::Refused
                        }),
                    }];
                    status.quorums = vec![kube_vrrp_crds::QuorumStatus {
                        virtual_server: "http".into(),
                        up: healthy,
                        healthy_weight: u64::from(healthy),
                        quorum: 1,
                        sorry_server_active: !healthy,
                        last_transition_time: None,
                    }];
                }
                n
            })
            .collect::<Vec<_>>()
    };
    let Harness {
        ctx,
        handle,
        _leader,
    } = harness(true);
    // First pass: everything healthy; the status is written, no Event (nothing before it).
    let mut snap = snapshot(input.clone(), master_reports(true));
    settle_statuses(&mut snap);
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let keep = written.clone();
    let first_write = Call {
        method: Method::PATCH,
        path: "/apis/kubevrrp.io/v1alpha1/virtualservers/http/status".to_owned(),
        query: ssa_query(),
        check: Box::new(move |body| {
            *keep.lock().unwrap() = body["status"].clone();
        }),
        answer: (StatusCode::OK, serde_json::to_value(&server).unwrap()),
    };
    let (first, handle) = pass(&ctx, handle, &snap, vec![first_write]).await;
    assert_eq!(first.unwrap().events, 0);

    // The MASTER's check fails: the status says so and two Warnings are posted.
    let failing = master_reports(false);
    let mut snap = snapshot(input, failing);
    settle_statuses(&mut snap);
    let vs = Arc::make_mut(&mut snap.virtual_servers[0]);
    vs.status = Some(serde_json::from_value(written.lock().unwrap().clone()).unwrap());
    vs.metadata.resource_version = Some("301".to_owned());
    let second_write = Call {
        method: Method::PATCH,
        path: "/apis/kubevrrp.io/v1alpha1/virtualservers/http/status".to_owned(),
        query: ssa_query(),
        check: Box::new(|body| {
            let status = &body["status"];
            assert_eq!(status["sorryServerActive"], true);
            assert_eq!(status["realServers"][0]["healthy"], false);
            assert_eq!(status["realServers"][0]["lastResult"], "Refused");
        }),
        answer: (StatusCode::OK, serde_json::to_value(&server).unwrap()),
    };
    let (second, _) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            second_write,
            server_event(
                "Warning",
                "QuorumLost",
                "VirtualServer http lost its quorum: healthy weight 0 is below the quorum of 1; the sorry server 10.1.0.99:80 takes all traffic",
            ),
            server_event(
                "Warning",
                "RealServerDown",
                "real server 10.1.0.1:8080 fails its health check (connection refused)",
            ),
        ],
    )
    .await;
    assert_eq!(second.unwrap().events, 2);
}
