//! The agent's HTTP endpoints: `/metrics` (OpenMetrics text), `/status` (JSON), `/healthz`
//! (process alive) and `/readyz` (instances configured).

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::board::StatusBoard;
use super::metrics::Metrics;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
struct Shared {
    board: StatusBoard,
    metrics: Metrics,
}

/// The router, for callers that compose it or test it without a socket.
pub fn router(board: StatusBoard, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Shared { board, metrics })
}

/// Binds the report listener. `[::]:PORT` serves IPv4 and IPv6 alike (dual-stack and
/// IPv6-only nodes); on a node whose kernel has no IPv6 at all (`ipv6.disable=1`) it falls
/// back to `0.0.0.0:PORT` and says so.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Err(error)
            if addr.ip().is_unspecified()
                && addr.is_ipv6()
                && error.raw_os_error() == Some(nix::errno::Errno::EAFNOSUPPORT as i32) =>
        {
            let fallback = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!(%addr, %fallback, "this kernel has no IPv6: listening on IPv4 only");
            TcpListener::bind(fallback).await
        }
        bound => bound,
    }
}

/// Serves the endpoints on `listener` until the listener fails.
pub async fn serve(listener: TcpListener, board: StatusBoard, metrics: Metrics) -> io::Result<()> {
    axum::serve(listener, router(board, metrics)).await
}

/// Like [`serve`], returning once `shutdown` resolves and in-flight requests are answered.
pub async fn serve_until(
    listener: TcpListener,
    board: StatusBoard,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(board, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(shared): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        shared.metrics.encode(),
    )
        .into_response()
}

async fn status(State(shared): State<Shared>) -> Response {
    axum::Json(shared.board.document()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Shared>) -> Response {
    if shared.board.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: instances not configured yet\n",
        )
            .into_response()
    }
}
