//! How one attempt of a health check ended: the result for status and metrics
//! ([`CheckResult`]) and a sentence for people ("status 503 (expected 200)").

use std::io;
use std::time::Duration;

use kube_vrrp_crds::CheckResult;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: CheckResult,
    /// What was seen, e.g. "connection refused", "status 503 (expected 200)", "exit status 2".
    pub detail: String,
}

impl Outcome {
    /// A passed attempt.
    pub fn passed(detail: impl Into<String>) -> Self {
        Self {
            result: CheckResult::Passed,
            detail: detail.into(),
        }
    }

    /// A failed attempt.
    pub fn failed(result: CheckResult, detail: impl Into<String>) -> Self {
        Self {
            result,
            detail: detail.into(),
        }
    }

    /// Nothing (or nothing complete) within `timeout`.
    pub fn timed_out(timeout: Duration, what: &str) -> Self {
        Self::failed(
            CheckResult::Timeout,
            format!("no {what} within {timeout:?}"),
        )
    }

    /// Whether the attempt passed.
    pub fn is_pass(&self) -> bool {
        self.result == CheckResult::Passed
    }

    /// A failed connection attempt, by the kernel's error.
    pub fn connect_error(error: &io::Error) -> Self {
        let result = match error.kind() {
            io::ErrorKind::ConnectionRefused => CheckResult::Refused,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                CheckResult::Unreachable
            }
            io::ErrorKind::TimedOut => CheckResult::Timeout,
            _ => CheckResult::ConnectionFailed,
        };
        let detail = match result {
            CheckResult::Refused => "connection refused".to_owned(),
            _ => format!("connect: {error}"),
        };
        Self::failed(result, detail)
    }
}
