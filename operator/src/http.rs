//! The operator's HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (the process
//! serves) and `/readyz` (every watch has listed its objects once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// OpenMetrics text content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// The metrics to render.
    pub metrics: Arc<Metrics>,
    /// Set once the stores are filled.
    pub ready: Arc<AtomicBool>,
}

/// The router with the three endpoints.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet").into_response()
    }
}

/// Linux's "address family not supported": what binding `[::]` gives without IPv6.
const EAFNOSUPPORT: i32 = 97;

/// Serves the router on `addr` until the task is dropped or the listener fails.
/// `[::]:PORT` serves IPv4 and IPv6 (dual-stack and IPv6-only pod networks); where the kernel
/// has no IPv6 at all, binding it fails and `0.0.0.0:PORT` is used instead; any other
/// failure (the port taken) is the error it is.
pub async fn serve(addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Err(error)
            if addr.is_ipv6()
                && addr.ip().is_unspecified()
                && error.raw_os_error() == Some(EAFNOSUPPORT) =>
        {
            let fallback = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            tracing::warn!(%addr, %fallback, %error, "no IPv6 here: listening on IPv4 only");
            tokio::net::TcpListener::bind(fallback).await?
        }
        bound => bound?,
    };
    serve_on(listener, state).await
}

/// Serves the router on a bound listener (tests bind port 0 on loopback).
pub async fn serve_on(listener: tokio::net::TcpListener, state: HttpState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_path(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints_answer_on_loopback() {
        let metrics = Arc::new(Metrics::new());
        metrics.reconcile_duration_seconds.observe(0.5);
        let ready = Arc::new(AtomicBool::new(false));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_on(
            listener,
            HttpState {
                metrics,
                ready: ready.clone(),
            },
        ));

        assert!(get_path(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        let not_ready = get_path(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        ready.store(true, Ordering::Relaxed);
        assert!(get_path(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get_path(addr, "/metrics").await;
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains(OPENMETRICS), "{m}");
        assert!(
            m.contains("kube_vrrp_reconcile_duration_seconds_count 1"),
            "{m}"
        );
        server.abort();
    }
}
