//! The status writer: server-side applies `VrrpNode.status` from the status board when it
//! changes (woken by the board, never polling) and as a heartbeat, and once more when the
//! agent leaves. It only reads snapshots; the VRRP tasks never wait on it.
//!
//! Writes at steady state: one heartbeat per period (10 s by default). Under churn, at most
//! one write per [`DEFAULT_MIN_INTERVAL`]: each write carries the snapshot taken just before
//! it, so the latest state wins and bursts of changes share a write.

use std::time::Duration;

use jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_vrrp_crds::backoff::doubling;
use kube_vrrp_crds::{RejectedInstance, VrrpNode};
use tokio::sync::watch;
use tokio::time::Instant;

use super::status::{build_status, status_patch};
use super::{ClusterError, DEFAULT_HEARTBEAT, FIELD_MANAGER};
use crate::report::{HealthReport, InstanceStatus, IpvsReport, StatusBoard};

/// The shortest time between two writes by default.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The longest the last write on shutdown may take: the pod is going away, and a MASTER has
/// already handed over by then.
pub const FINAL_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// What a write carries apart from its heartbeat time: a write is due when this changes.
#[derive(Debug, Clone, PartialEq)]
struct Content {
    instances: Vec<InstanceStatus>,
    ipvs: Option<IpvsReport>,
    health: HealthReport,
    observed_generation: Option<i64>,
    rejected: Vec<RejectedInstance>,
    roll_call: Option<String>,
}

/// Writes this node's `VrrpNode.status`. At most one write is in flight (the loop awaits it).
#[derive(Debug)]
pub struct StatusWriter {
    api: Api<VrrpNode>,
    node: String,
    board: StatusBoard,
    roll_call: watch::Receiver<Option<String>>,
    leaving: watch::Receiver<bool>,
    heartbeat: Duration,
    min_interval: Duration,
}

impl StatusWriter {
    /// A writer for the `VrrpNode` named `node`. `roll_call` is the annotation to echo (from
    /// [`super::SpecWatch::new`]); once `leaving` turns true the writer makes one last write
    /// (what still runs: nothing after a graceful shutdown) within [`FINAL_WRITE_LIMIT`] and
    /// returns.
    pub fn new(
        client: Client,
        node: String,
        board: StatusBoard,
        roll_call: watch::Receiver<Option<String>>,
        leaving: watch::Receiver<bool>,
    ) -> Self {
        Self {
            api: Api::all(client),
            node,
            board,
            roll_call,
            leaving,
            heartbeat: DEFAULT_HEARTBEAT,
            min_interval: DEFAULT_MIN_INTERVAL,
        }
    }

    /// Rewrites the status at least this often even when nothing changed.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// Leaves at least this much time between two writes.
    #[must_use]
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// What would be written now; `None` when there is nothing to report into: the driver has
    /// not applied a first configuration (a restarting agent never reports an empty node it
    /// has not configured yet), or the configuration came from no `VrrpNode` (none exists).
    fn content(&self) -> Option<Content> {
        if !self.board.is_ready() {
            return None;
        }
        let applied = self.board.applied();
        applied.generation?;
        Some(Content {
            instances: self.board.snapshot(),
            ipvs: self.board.ipvs(),
            health: self.board.health(),
            observed_generation: applied.generation,
            rejected: applied.rejected,
            roll_call: self.roll_call.borrow().clone(),
        })
    }

    /// Writes until `leaving` turns true (then writes once more and returns) or the task is
    /// aborted. A failed write is retried with backoff (doubling from the minimum interval up
    /// to the heartbeat), logged once per attempt.
    pub async fn run(mut self) {
        let mut changes = self.board.changes();
        let mut written: Option<Content> = None;
        let mut last_write: Option<Instant> = None;
        let mut failures: u32 = 0;
        let mut not_before: Option<Instant> = None;
        let (mut roll_call_open, mut leaving_open) = (true, true);
        loop {
            if *self.leaving.borrow() {
                self.say_goodbye().await;
                return;
            }
            let now = Instant::now();
            let mut wake = None;
            if let Some(content) = self.content() {
                let changed = written.as_ref() != Some(&content);
                let wanted = if changed {
                    now
                } else {
                    last_write.map_or(now, |at| at + self.heartbeat)
                };
                let at = not_before.map_or(wanted, |earliest| earliest.max(wanted));
                if at <= now {
                    match self
                        .write(&content, self.heartbeat.max(Duration::from_secs(1)))
                        .await
                    {
                        Ok(()) => {
                            if failures > 0 {
                                tracing::info!(node = %self.node, failures, "VrrpNode status written again");
                            }
                            tracing::debug!(node = %self.node, changed, "VrrpNode status written");
                            written = Some(content);
                            last_write = Some(Instant::now());
                            failures = 0;
                            not_before = Some(Instant::now() + self.min_interval);
                        }
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            let delay = retry_delay(self.min_interval, self.heartbeat, failures);
                            tracing::warn!(node = %self.node, %error, attempt = failures, retry_in = ?delay, "cannot write the VrrpNode status; VRRP is unaffected, retrying");
                            not_before = Some(Instant::now() + delay);
                        }
                    }
                    continue;
                }
                wake = Some(at);
            }
            tokio::select! {
                _ = changes.changed() => {}
                changed = self.roll_call.changed(), if roll_call_open => roll_call_open = changed.is_ok(),
                changed = self.leaving.changed(), if leaving_open => leaving_open = changed.is_ok(),
                () = sleep_until(wake) => {}
            }
        }
    }

    /// The last write: what still runs (nothing after a graceful shutdown), no rejections
    /// (nothing is being applied any more), within [`FINAL_WRITE_LIMIT`].
    async fn say_goodbye(&self) {
        let Some(mut content) = self.content() else {
            return;
        };
        content.rejected.clear();
        match self.write(&content, FINAL_WRITE_LIMIT).await {
            Ok(()) => {
                tracing::info!(node = %self.node, instances = content.instances.len(), "final VrrpNode status written");
            }
            Err(error) => {
                tracing::warn!(node = %self.node, %error, "the final VrrpNode status could not be written; the operator sees this node's last report go stale");
            }
        }
    }

    async fn write(&self, content: &Content, limit: Duration) -> Result<(), ClusterError> {
        let mut status = build_status(
            &content.instances,
            content.ipvs.as_ref(),
            content.observed_generation,
            Timestamp::now(),
        );
        status.rejected.clone_from(&content.rejected);
        status.checkers.clone_from(&content.health.checkers);
        status.quorums.clone_from(&content.health.quorums);
        status.roll_call.clone_from(&content.roll_call);
        let patch = Patch::Apply(status_patch(&self.node, &status));
        let params = PatchParams::apply(FIELD_MANAGER).force();
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The wait after the `failures`-th failed write in a row: the minimum interval doubled per
/// failure, never longer than the heartbeat (nor shorter than the minimum interval).
pub fn retry_delay(min_interval: Duration, heartbeat: Duration, failures: u32) -> Duration {
    doubling(min_interval, heartbeat.max(min_interval), failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_failure_and_stops_at_the_heartbeat() {
        let interval = Duration::from_millis(100);
        let heartbeat = Duration::from_secs(10);
        let delays: Vec<Duration> = (1..=8)
            .map(|n| retry_delay(interval, heartbeat, n))
            .collect();
        assert_eq!(delays[0], Duration::from_millis(200));
        assert_eq!(delays[1], Duration::from_millis(400));
        assert_eq!(delays[5], Duration::from_millis(6400));
        assert_eq!(delays[6], heartbeat);
        assert_eq!(retry_delay(interval, heartbeat, u32::MAX), heartbeat);
    }
}
