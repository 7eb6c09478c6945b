//! The status writer: server-side applies `VrrpNode.status` from the status board, on every
//! change and as a heartbeat. It only reads snapshots; the VRRP tasks never wait on it.

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_vrrp_crds::VrrpNode;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::status::{build_status, status_patch};
use super::{ClusterError, DEFAULT_HEARTBEAT, DEFAULT_STATUS_POLL, FIELD_MANAGER};
use crate::report::{InstanceStatus, IpvsReport, StatusBoard};

/// What a write carries apart from its heartbeat time: a write is due when this changes.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    instances: Vec<InstanceStatus>,
    ipvs: Option<IpvsReport>,
    observed_generation: Option<i64>,
}

/// Writes this node's `VrrpNode.status`. At most one write is in flight (the loop awaits it),
/// and each write carries the snapshot taken just before it, so the latest state wins.
#[derive(Debug)]
pub struct StatusWriter {
    api: Api<VrrpNode>,
    node: String,
    board: StatusBoard,
    generation: watch::Receiver<Option<i64>>,
    heartbeat: Duration,
    poll: Duration,
}

impl StatusWriter {
    /// A writer for the `VrrpNode` named `node`; `generation` is the spec generation in force
    /// (from [`super::SpecWatch::new`]).
    pub fn new(
        client: Client,
        node: String,
        board: StatusBoard,
        generation: watch::Receiver<Option<i64>>,
    ) -> Self {
        Self {
            api: Api::all(client),
            node,
            board,
            generation,
            heartbeat: DEFAULT_HEARTBEAT,
            poll: DEFAULT_STATUS_POLL,
        }
    }

    /// Rewrites the status at least this often even when nothing changed.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// Compares the board with the last write this often.
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// Writes until the task is aborted. Nothing is written before the driver has applied a
    /// first configuration (the board is ready), so a restarting agent never reports an empty
    /// node it has not configured yet, nor while the node has no `VrrpNode` (no generation). A failed write is retried with backoff (doubling from
    /// the poll period up to the heartbeat), logged once per attempt.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut written: Option<Content> = None;
        let mut last_write: Option<Instant> = None;
        let mut failures: u32 = 0;
        let mut retry_at: Option<Instant> = None;
        loop {
            ticker.tick().await;
            if !self.board.is_ready() {
                continue;
            }
            let now = Instant::now();
            if retry_at.is_some_and(|at| now < at) {
                continue;
            }
            let observed_generation = *self.generation.borrow();
            if observed_generation.is_none() {
                // No VrrpNode (not created yet, or deleted): there is no object to report into.
                continue;
            }
            let content = Content {
                instances: self.board.snapshot(),
                ipvs: self.board.ipvs(),
                observed_generation,
            };
            let changed = written.as_ref() != Some(&content);
            let heartbeat_due =
                last_write.is_none_or(|at| now.duration_since(at) >= self.heartbeat);
            if !changed && !heartbeat_due {
                continue;
            }
            match self.write(&content).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(node = %self.node, failures, "VrrpNode status written again");
                    }
                    tracing::debug!(node = %self.node, changed, "VrrpNode status written");
                    written = Some(content);
                    last_write = Some(now);
                    failures = 0;
                    retry_at = None;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay(self.poll, self.heartbeat, failures);
                    tracing::warn!(node = %self.node, %error, attempt = failures, retry_in = ?delay, "cannot write the VrrpNode status; VRRP is unaffected, retrying");
                    retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    async fn write(&self, content: &Content) -> Result<(), ClusterError> {
        let status = build_status(
            &content.instances,
            content.ipvs.as_ref(),
            content.observed_generation,
            Timestamp::now(),
        );
        let patch = Patch::Apply(status_patch(&self.node, &status));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let limit = self.heartbeat.max(Duration::from_secs(1));
        match tokio::time::timeout(limit, self.api.patch_status(&self.node, &params, &patch)).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(ClusterError::WriteStatus {
                node: self.node.clone(),
                source,
            }),
            Err(_) => Err(ClusterError::WriteTimeout {
                node: self.node.clone(),
                timeout: limit,
            }),
        }
    }
}

/// The wait after the `failures`-th failed write in a row: the poll period doubled per
/// failure, never longer than the heartbeat.
pub fn retry_delay(poll: Duration, heartbeat: Duration, failures: u32) -> Duration {
    let doubled = poll.saturating_mul(1_u32 << failures.min(20));
    doubled.min(heartbeat.max(poll))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_failure_and_stops_at_the_heartbeat() {
        let poll = Duration::from_millis(100);
        let heartbeat = Duration::from_secs(10);
        let delays: Vec<Duration> = (1..=8).map(|n| retry_delay(poll, heartbeat, n)).collect();
        assert_eq!(delays[0], Duration::from_millis(200));
        assert_eq!(delays[1], Duration::from_millis(400));
        assert_eq!(delays[5], Duration::from_millis(6400));
        assert_eq!(delays[6], heartbeat);
        assert_eq!(retry_delay(poll, heartbeat, u32::MAX), heartbeat);
    }
}
