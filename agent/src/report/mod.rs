//! The agent's reports: Prometheus metrics, the live status board, `/metrics` `/status`
//! `/healthz` `/readyz`, and the `status` table.

pub mod metrics;

pub use metrics::Metrics;
