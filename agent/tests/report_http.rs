//! The agent's HTTP endpoints over a real loopback listener, and the `status` client.

#![allow(clippy::unwrap_used)] // fixture helpers parse literals

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kube_vrrp_agent::report::{InstanceStatus, Metrics, ReportError, StatusBoard, http, table};
use kube_vrrp_agent::vrrp::instance::State;
use tokio::net::TcpListener;

fn web() -> InstanceStatus {
    InstanceStatus {
        name: "web".into(),
        vrid: 51,
        interface: "eth0".into(),
        version: 3,
        state: State::Master,
        priority: 150,
        effective_priority: 140,
        master_address: Some("10.0.0.11".parse().unwrap()),
        vips: vec![
            "10.0.0.50/24".parse().unwrap(),
            "10.0.0.51/24".parse().unwrap(),
        ],
        transitions: 2,
        last_transition: Some("2026-11-22T03:00:00Z".parse().unwrap()),
        message: None,
        holder_conflict: None,
    }
}

fn db() -> InstanceStatus {
    InstanceStatus {
        name: "db".into(),
        vrid: 7,
        interface: "eth1".into(),
        version: 2,
        state: State::Initialize,
        priority: 100,
        effective_priority: 100,
        master_address: None,
        vips: vec!["fd00::7/64".parse().unwrap()],
        transitions: 0,
        last_transition: None,
        message: None,
        holder_conflict: None,
    }
}

/// Starts the endpoints on 127.0.0.1 with an ephemeral port; the server task is aborted on drop.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(board: StatusBoard, metrics: Metrics) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind a loopback listener");
        let addr = listener.local_addr().expect("listener has no address");
        let task = tokio::spawn(http::serve(listener, board, metrics));
        Self { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A blocking raw GET: (status, content-type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, Option<String>, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let head = String::from_utf8_lossy(&raw).into_owned();
    let content_type = head.split("\r\n\r\n").next().and_then(|h| {
        h.lines()
            .find_map(|l| l.strip_prefix("content-type: ").map(str::to_owned))
    });
    let (status, body) = table::parse_response(&raw).expect("malformed response");
    (
        status,
        content_type,
        String::from_utf8(body).expect("body is not UTF-8"),
    )
}

async fn get_async(addr: SocketAddr, path: &'static str) -> (u16, Option<String>, String) {
    tokio::task::spawn_blocking(move || get(addr, path))
        .await
        .expect("request thread panicked")
}

#[tokio::test]
async fn status_round_trips_through_the_endpoint_and_the_client() {
    let board = StatusBoard::new();
    board.set(web());
    board.set(db());
    let server = Server::start(board.clone(), Metrics::new()).await;
    let addr = server.addr;
    let fetched = tokio::task::spawn_blocking(move || table::fetch(addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        fetched,
        vec![db(), web()],
        "sorted by name, every field intact"
    );
    assert_eq!(fetched, board.snapshot());
}

#[tokio::test]
async fn status_json_uses_camel_case_and_keepalived_state_words() {
    let board = StatusBoard::new();
    board.set(web());
    let server = Server::start(board, Metrics::new()).await;
    let (status, content_type, body) = get_async(server.addr, "/status").await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"instances": [{
            "name": "web",
            "vrid": 51,
            "interface": "eth0",
            "version": 3,
            "state": "MASTER",
            "priority": 150,
            "effectivePriority": 140,
            "masterAddress": "10.0.0.11",
            "vips": ["10.0.0.50/24", "10.0.0.51/24"],
            "transitions": 2,
            "lastTransition": "2026-11-22T03:00:00Z"
        }]})
    );
}

#[tokio::test]
async fn board_changes_show_in_the_next_status() {
    let board = StatusBoard::new();
    board.set(web());
    let server = Server::start(board.clone(), Metrics::new()).await;
    let addr = server.addr;
    let mut moved = web();
    moved.state = State::Backup;
    board.set(moved.clone());
    board.set(db());
    board.remove("db");
    let fetched = tokio::task::spawn_blocking(move || table::fetch(addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched, vec![moved]);
}

#[tokio::test]
async fn readyz_is_503_until_the_board_is_marked_ready_and_healthz_always_200() {
    let board = StatusBoard::new();
    let server = Server::start(board.clone(), Metrics::new()).await;
    let (status, _, _) = get_async(server.addr, "/readyz").await;
    assert_eq!(status, 503);
    let (status, _, body) = get_async(server.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    board.mark_ready();
    let (status, _, _) = get_async(server.addr, "/readyz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn metrics_endpoint_serves_openmetrics_text() {
    let metrics = Metrics::new();
    metrics.transition("web", 51, "eth0", State::Master);
    let server = Server::start(StatusBoard::new(), metrics).await;
    let (status, content_type, body) = get_async(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type.as_deref(),
        Some(http::OPENMETRICS_CONTENT_TYPE)
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains(
            "kube_vrrp_instance_state{vrrp_instance=\"web\",vrid=\"51\",interface=\"eth0\",state=\"MASTER\"} 1\n"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = Server::start(StatusBoard::new(), Metrics::new()).await;
    let (status, _, _) = get_async(server.addr, "/nope").await;
    assert_eq!(status, 404);
}

#[test]
fn fetch_from_a_closed_port_is_a_connect_error() {
    // Bind then drop to get a loopback port that nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = table::fetch(addr).unwrap_err();
    assert!(matches!(error, ReportError::Connect { .. }), "{error}");
}

#[test]
fn status_state_words_round_trip_and_unknown_words_are_rejected() {
    for state in [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ] {
        let mut status = db();
        status.state = state;
        let json = serde_json::to_string(&status).unwrap();
        assert!(
            json.contains(&format!("\"state\":\"{}\"", state.as_str())),
            "{json}"
        );
        let back: InstanceStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, status);
    }
    let bad = serde_json::to_string(&db())
        .unwrap()
        .replace("\"INIT\"", "\"Master\"");
    let error = serde_json::from_str::<InstanceStatus>(&bad).unwrap_err();
    assert!(error.to_string().contains("unknown VRRP state"), "{error}");
}

#[tokio::test]
async fn serve_until_returns_when_shutdown_resolves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve_until(
        listener,
        StatusBoard::new(),
        Metrics::new(),
        async move {
            let _ = stopped.await;
        },
    ));
    let (status, _, _) = get_async(addr, "/healthz").await;
    assert_eq!(status, 200);
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server did not stop")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn status_lists_the_rejected_instances_and_the_generation_applied() {
    use kube_vrrp_agent::report::Applied;
    use kube_vrrp_crds::{RejectReason, RejectedInstance};
    let board = StatusBoard::new();
    board.set(web());
    let rejected = RejectedInstance {
        name: "legacy".into(),
        reason: RejectReason::SecretUnavailable,
        message: "Secret kube-vrrp/vrrp-auth not found".into(),
        running_previous: false,
    };
    board.set_applied(Applied {
        generation: Some(7),
        rejected: vec![rejected.clone()],
    });
    let server = Server::start(board, Metrics::new()).await;
    let addr = server.addr;
    let document = tokio::task::spawn_blocking(move || table::fetch_document(addr))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(document.instances, vec![web()]);
    assert_eq!(document.rejected, vec![rejected]);
    assert_eq!(document.generation, Some(7));
}
