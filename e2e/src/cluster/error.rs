//! The cluster harness's error type: everything that can go wrong bringing up the control
//! plane, installing the chart and running the chart's pods as lab processes.

use std::time::Duration;

use crate::error::LabError;

/// What went wrong in the cluster lab.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Tool { command: String, stderr: String },
    #[error("{what} not found at {path}: {hint}")]
    NotBuilt {
        what: &'static str,
        path: String,
        hint: &'static str,
    },
    #[error("{what} did not happen within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: {message}")]
    Decode { what: String, message: String },
    #[error("creating the lab's certificates: {0}")]
    Pki(#[from] rcgen::Error),
    #[error("pod {pod}: {message}")]
    Pod { pod: String, message: String },
    #[error("{process} exited early ({status}); log:\n{log}")]
    Exited {
        process: String,
        status: String,
        log: String,
    },
}

impl ClusterError {
    /// Wraps an I/O error with what the harness was doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// An error about pod `pod`.
    pub fn pod(pod: &str, message: impl Into<String>) -> Self {
        Self::Pod {
            pod: pod.to_owned(),
            message: message.into(),
        }
    }
}

impl From<crate::netns::NetnsError> for ClusterError {
    fn from(e: crate::netns::NetnsError) -> Self {
        Self::Lab(e.into())
    }
}
