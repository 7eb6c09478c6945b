//! The agent's reports: Prometheus metrics, the live status board, `/metrics` `/status`
//! `/healthz` `/readyz`, and the `status` table.

pub mod board;
pub mod http;
pub mod metrics;
pub mod table;

pub use board::{Applied, InstanceStatus, IpvsReport, StatusBoard, StatusDocument};
pub use metrics::Metrics;

/// What went wrong serving or fetching a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot reach the agent at {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("talking to the agent at {addr}: {source}")]
    Io {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the agent at {addr} answered {status}: {body}")]
    Status {
        addr: std::net::SocketAddr,
        status: u16,
        body: String,
    },
    #[error("malformed HTTP response from {addr}: {reason}")]
    Malformed {
        addr: std::net::SocketAddr,
        reason: &'static str,
    },
    #[error("the agent at {addr} sent a status that is not valid JSON: {source}")]
    Json {
        addr: std::net::SocketAddr,
        source: serde_json::Error,
    },
}
