//! The sync pass with load balancing, against an in-memory API (`tower_test`): the exact
//! calls for a new LoadBalancer Service (VirtualIP applied before the VrrpNodes, its status,
//! the Service's Event, the pool's status), the ingress written only once an agent reports
//! MASTER, nothing written when nothing changed, a refused Service told once, and a deleted
//! Service's VirtualIP deleted. Writes are made one at a time (`write_concurrency: 1`), so
//! the order is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::client::Body;
use kube_vrrp_crds::{
    InstanceStatus, State, VirtualIp, VirtualIpPool, VrrpNode, VrrpNodeSpec, VrrpNodeStatus,
};
use kube_vrrp_operator::controller::{Config, Context, Snapshot, SyncOutcome, reporter, sync};
use kube_vrrp_operator::lease::Leadership;
use kube_vrrp_operator::load_balancer::{LOAD_BALANCER_CLASS, LbConfig};
use kube_vrrp_operator::metrics::Metrics;
use kube_vrrp_plan::PlanInput;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_test::mock::Handle;

const NOW: i64 = 1_800_000_000;
const STEP: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(150);
const VIP: &str = "lb-192-168-77-1";
const ROUTER: &str = "lan-ipv4-0";

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn node(name: &str, ip: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }))
    .unwrap()
}

fn pool() -> VirtualIpPool {
    serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIPPool",
        "metadata": {"name": "lan", "resourceVersion": "10", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"addresses": ["192.168.77.0/24"]},
    }))
    .unwrap()
}

fn service(name: &str, class: Option<&str>) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "resourceVersion": "20", "creationTimestamp": "2026-02-01T00:00:00Z"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": class, "ipFamilies": ["IPv4"],
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }))
    .unwrap()
}

/// What the store holds after the operator applied VirtualIP `VIP` for shop/web.
fn applied_vip() -> VirtualIp {
    serde_json::from_value(json!({
        "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": VIP, "resourceVersion": "31", "generation": 1,
                     "labels": {"app.kubernetes.io/managed-by": "kube-vrrp-operator"},
                     "annotations": {"kubevrrp.io/services": "shop/web", "kubevrrp.io/pool": "lan"}},
        "spec": {"addresses": ["192.168.77.1/32"], "advertInterval": "100ms",
                 "virtualRouter": ROUTER},
    }))
    .unwrap()
}

/// A VrrpNode reporting the shared instance in `state`, holding the address when MASTER.
fn reporting(name: &str, state: State) -> VrrpNode {
    let mut n = VrrpNode::new(name, VrrpNodeSpec::default());
    n.metadata.resource_version = Some("40".to_owned());
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(MicroTime(now() - SignedDuration::from_secs(2))),
        instances: vec![InstanceStatus {
            name: ROUTER.to_owned(),
            state,
            priority: 100,
            effective_priority: 100,
            master_address: None,
            transitions: 1,
            last_transition_time: Some(MicroTime(now() - SignedDuration::from_secs(5))),
            vips_held: if state == State::Master {
                vec!["192.168.77.1/32".to_owned()]
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

fn snapshot(
    services: Vec<Service>,
    virtual_ips: Vec<VirtualIp>,
    vrrp_nodes: Vec<VrrpNode>,
) -> Snapshot {
    let mut snap = Snapshot::new(
        now(),
        PlanInput {
            virtual_ips,
            nodes: vec![node("n1", "10.0.0.11")],
            services,
            ..PlanInput::default()
        },
        vrrp_nodes,
    );
    snap.virtual_ip_pools = vec![Arc::new(pool())];
    snap
}

/// The snapshot after shop/web's address was assigned: its VirtualIP `vip`, the pool's
/// status counting it, and `vrrp_nodes`.
fn assigned(vip: VirtualIp, vrrp_nodes: Vec<VrrpNode>) -> Snapshot {
    let mut pool_status = pool();
    pool_status.status =
        Some(serde_json::from_value(json!({"assigned": 1, "available": "253"})).unwrap());
    let mut snap = snapshot(
        vec![service("web", Some(LOAD_BALANCER_CLASS))],
        vec![vip],
        vrrp_nodes,
    );
    snap.virtual_ip_pools = vec![Arc::new(pool_status)];
    snap
}

// ---------------------------------------------------------------- the verifier

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn context() -> (Context, ApiHandle, watch::Sender<bool>) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (tx, rx) = watch::channel(true);
    let rx = Leadership::unfenced(rx);
    let ctx = Context::new(
        Client::new(svc, "default"),
        reporter(Some("test".to_owned())),
        Arc::new(Metrics::new()),
        Config {
            load_balancers: Some(LbConfig {
                default_class: false,
            }),
            write_concurrency: 1,
            ..Config::default()
        },
        rx,
    );
    (ctx, handle, tx)
}

struct Call {
    method: Method,
    path: String,
    check: Box<dyn Fn(&Value) + Send>,
    answer: Value,
}

fn call(
    method: Method,
    path: &str,
    check: impl Fn(&Value) + Send + 'static,
    answer: Value,
) -> Call {
    Call {
        method,
        path: path.to_owned(),
        check: Box::new(check),
        answer,
    }
}

fn event_in(
    namespace: &str,
    type_: &'static str,
    reason: &'static str,
    note: &'static str,
) -> Call {
    call(
        Method::POST,
        &format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
        move |body| {
            assert_eq!(body["type"], type_);
            assert_eq!(body["reason"], reason);
            assert_eq!(body["note"], note);
        },
        json!({"metadata": {"name": "e"}}),
    )
}

/// The apply of n1's VrrpNode, whatever it carries.
fn apply_n1() -> Call {
    call(
        Method::PATCH,
        "/apis/kubevrrp.io/v1alpha1/vrrpnodes/n1",
        |_| {},
        json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
               "metadata": {"name": "n1", "resourceVersion": "41", "generation": 1},
               "spec": {}}),
    )
}

async fn verify(handle: &mut ApiHandle, calls: Vec<Call>) {
    for (i, call) in calls.into_iter().enumerate() {
        let (request, respond) = tokio::time::timeout(STEP, handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("call {i} ({} {}) never came", call.method, call.path))
            .expect("client dropped");
        assert_eq!(request.method(), call.method, "call {i}");
        assert_eq!(request.uri().path(), call.path, "call {i}");
        if call.method == Method::PATCH {
            let query = request.uri().query().unwrap_or_default().to_owned();
            assert!(
                query.contains("fieldManager=kube-vrrp-operator") && query.contains("force=true"),
                "call {i}: {query}"
            );
        }
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (call.check)(&body);
        respond.send_response(
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from(serde_json::to_vec(&call.answer).unwrap()))
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

async fn pass(
    ctx: &Context,
    handle: ApiHandle,
    snap: &Snapshot,
    calls: Vec<Call>,
) -> (SyncOutcome, ApiHandle) {
    let mut handle = handle;
    let verifier = tokio::spawn(async move {
        verify(&mut handle, calls).await;
        handle
    });
    let outcome = sync(ctx, snap).await.unwrap();
    (outcome, verifier.await.unwrap())
}

// ---------------------------------------------------------------- scenarios

#[tokio::test]
async fn a_new_service_gets_its_virtual_ip_before_the_vrrp_nodes_and_no_ingress_without_a_master() {
    let (ctx, handle, _leader) = context();
    let snap = snapshot(
        vec![service("web", Some(LOAD_BALANCER_CLASS))],
        vec![],
        vec![],
    );
    let mut created = applied_vip();
    created.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let answer = serde_json::to_value(&created).unwrap();
    let (outcome, _) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            call(
                Method::PATCH,
                &format!("/apis/kubevrrp.io/v1alpha1/virtualips/{VIP}"),
                |body| {
                    assert_eq!(
                        body["metadata"]["labels"],
                        json!({"app.kubernetes.io/managed-by": "kube-vrrp-operator"})
                    );
                    assert_eq!(
                        body["metadata"]["annotations"],
                        json!({"kubevrrp.io/services": "shop/web", "kubevrrp.io/pool": "lan"})
                    );
                    assert_eq!(body["spec"]["addresses"], json!(["192.168.77.1/32"]));
                    assert_eq!(body["spec"]["virtualRouter"], ROUTER);
                    assert_eq!(body["spec"]["advertInterval"], "100ms");
                    assert!(body.get("status").is_none());
                },
                answer.clone(),
            ),
            call(
                Method::PATCH,
                "/apis/kubevrrp.io/v1alpha1/vrrpnodes/n1",
                |body| {
                    let instance = &body["spec"]["instances"][0];
                    assert_eq!(instance["name"], ROUTER);
                    assert_eq!(instance["addresses"], json!(["192.168.77.1/32"]));
                },
                json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
                       "metadata": {"name": "n1", "resourceVersion": "41", "generation": 1},
                       "spec": {}}),
            ),
            // No status yet: "Pending" only says what its absence says, while nodes
            // still have time to report it.
            event_in(
                "shop",
                "Normal",
                "AddressAllocated",
                "192.168.77.1 from VirtualIPPool lan, kept alive by VirtualIP lb-192-168-77-1",
            ),
            call(
                Method::PATCH,
                "/apis/kubevrrp.io/v1alpha1/virtualippools/lan/status",
                |body| {
                    assert_eq!(body["status"]["assigned"], 1);
                    assert_eq!(body["status"]["available"], "253");
                    assert_eq!(body["status"]["conditions"][0]["status"], "True");
                },
                serde_json::to_value(pool()).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.virtual_ips_applied, [VIP]);
    assert_eq!(outcome.applied, ["n1"]);
    assert!(outcome.service_statuses.is_empty(), "no MASTER, no ingress");
    assert_eq!(outcome.pool_statuses, ["lan"]);
    assert!(outcome.statuses.is_empty());
}

#[tokio::test]
async fn a_virtual_ip_no_node_reported_within_the_apply_grace_gets_its_pending_status() {
    let (ctx, handle, _leader) = context();
    let mut created = applied_vip();
    created.metadata.creation_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now() - SignedDuration::from_secs(11)),
    );
    let snap = assigned(created.clone(), vec![]);
    let (outcome, _) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            apply_n1(),
            call(
                Method::PATCH,
                &format!("/apis/kubevrrp.io/v1alpha1/virtualips/{VIP}/status"),
                |body| assert_eq!(body["status"]["state"], "Pending"),
                serde_json::to_value(&created).unwrap(),
            ),
            call(
                Method::PATCH,
                "/apis/kubevrrp.io/v1alpha1/virtualippools/lan/status",
                |_| {},
                serde_json::to_value(pool()).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.statuses, [VIP]);
    assert!(outcome.service_statuses.is_empty(), "no MASTER, no ingress");
}

#[tokio::test]
async fn the_ingress_is_written_once_an_agent_reports_master_and_then_nothing_more() {
    let (ctx, handle, _leader) = context();
    let mut vip = applied_vip();
    vip.status = Some(
        serde_json::from_value(json!({"state": "Pending", "virtualRouterID": 1,
                                      "nodesSummary": "0/1", "observedGeneration": 1}))
        .unwrap(),
    );
    let snap = assigned(vip, vec![reporting("n1", State::Master)]);
    let vip_answer = serde_json::to_value(applied_vip()).unwrap();
    let (outcome, handle) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            apply_n1(),
            call(
                Method::PATCH,
                &format!("/apis/kubevrrp.io/v1alpha1/virtualips/{VIP}/status"),
                |body| {
                    assert_eq!(body["status"]["state"], "Ready");
                    assert_eq!(body["status"]["master"], "n1");
                },
                vip_answer,
            ),
            // Published on the Service only, naming the VirtualIP as related.
            call(
                Method::PATCH,
                "/api/v1/namespaces/shop/services/web/status",
                |body| {
                    assert_eq!(body["kind"], "Service");
                    assert_eq!(
                        body["status"]["loadBalancer"]["ingress"],
                        json!([{"ip": "192.168.77.1", "ipMode": "VIP"}])
                    );
                },
                serde_json::to_value(service("web", Some(LOAD_BALANCER_CLASS))).unwrap(),
            ),
            call(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/shop/events",
                |body| {
                    assert_eq!(body["reason"], "MasterChanged");
                    assert_eq!(body["note"], "n1 became MASTER of 192.168.77.1/32 (VRID 1)");
                    assert_eq!(body["regarding"]["kind"], "Service");
                    assert_eq!(body["related"]["kind"], "VirtualIP");
                    assert_eq!(body["related"]["name"], VIP);
                },
                json!({"metadata": {"name": "e"}}),
            ),
            call(
                Method::PATCH,
                "/apis/kubevrrp.io/v1alpha1/virtualippools/lan/status",
                |body| assert_eq!(body["status"]["conditions"][0]["reason"], "Assigning"),
                serde_json::to_value(pool()).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.service_statuses, ["shop/web"]);
    assert!(outcome.virtual_ips_applied.is_empty());
    // The store has not caught up yet: the same snapshot again writes nothing.
    let (outcome, _) = pass(&ctx, handle, &snap, vec![]).await;
    assert!(outcome.service_statuses.is_empty() && outcome.statuses.is_empty());
    assert_eq!(outcome.events, 0);
}

#[tokio::test]
async fn a_service_no_pool_serves_is_told_once_and_services_of_other_classes_are_left_alone() {
    let (ctx, handle, _leader) = context();
    let mut snap = snapshot(
        vec![
            service("web", Some(LOAD_BALANCER_CLASS)),
            service("theirs", Some("example.com/lb")),
        ],
        vec![],
        vec![],
    );
    snap.virtual_ip_pools.clear();
    let (outcome, handle) = pass(
        &ctx,
        handle,
        &snap,
        vec![event_in(
            "shop",
            "Warning",
            "NoPool",
            "there is no VirtualIPPool; create one",
        )],
    )
    .await;
    assert_eq!(outcome.events, 1);
    let (outcome, _) = pass(&ctx, handle, &snap, vec![]).await;
    assert_eq!(outcome.events, 0, "the same failure is not told twice");
}

#[tokio::test]
async fn a_deleted_services_virtual_ip_is_deleted_and_the_pool_counts_it_free() {
    let (ctx, handle, _leader) = context();
    let mut pool_status = pool();
    pool_status.status =
        Some(serde_json::from_value(json!({"assigned": 1, "available": "253"})).unwrap());
    let mut snap = snapshot(vec![], vec![applied_vip()], vec![]);
    snap.virtual_ip_pools = vec![Arc::new(pool_status)];
    let (outcome, _) = pass(
        &ctx,
        handle,
        &snap,
        vec![
            call(
                Method::DELETE,
                &format!("/apis/kubevrrp.io/v1alpha1/virtualips/{VIP}"),
                |_| {},
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            call(
                Method::PATCH,
                "/apis/kubevrrp.io/v1alpha1/virtualippools/lan/status",
                |body| {
                    assert_eq!(body["status"]["assigned"], 0);
                    assert_eq!(body["status"]["available"], "254");
                },
                serde_json::to_value(pool()).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(outcome.virtual_ips_deleted, [VIP]);
}
