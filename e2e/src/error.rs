//! The lab's error type: everything that can go wrong building the lab, running peers or probing.

use std::time::Duration;

use crate::netns::NetnsError;

/// What went wrong in the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("the lab has no node {0} (nodes are numbered from 1)")]
    NoSuchNode(usize),
    #[error("{what} did not happen within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{daemon} on {node} exited early ({status}); log:\n{log}")]
    DaemonExited {
        daemon: &'static str,
        node: String,
        status: String,
        log: String,
    },
    #[error(
        "agent binary not built: {path} does not exist (run `cargo build -p kube-vrrp-agent` or set KUBE_VRRP_AGENT)"
    )]
    AgentNotBuilt { path: String },
    #[error(
        "{path} is a debug build: benchmarks measure the release build (`cargo build --release -p kube-vrrp-agent`, then KUBE_VRRP_AGENT=target/release/kube-vrrp-agent)"
    )]
    DebugAgent { path: String },
    #[error("agent status: {0}")]
    Status(String),
    #[error("invalid lab setup: {0}")]
    Invalid(String),
    #[error("could not render manifests: {0}")]
    Render(String),
}

impl LabError {
    /// Wraps an I/O error with what the lab was doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}
