//! VirtualServer quorum trackers (`track.virtualServers`): up while the VirtualServer's quorum
//! holds on this node, as the health checks publish it ([`HealthSnapshot`]), so a node whose
//! backends are dead lowers its priority or goes to FAULT and gives up the VIP. A VirtualServer
//! the checks do not run yet leaves the tracker pending (down); one whose checks are refused
//! counts as down (it is not programmed).

use std::sync::Arc;

use tokio::sync::watch;

use super::Slot;
use super::real_server::HealthSnapshot;

/// The health checks' snapshots, for quorum trackers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QuorumFeed {
    receiver: watch::Receiver<Arc<HealthSnapshot>>,
    /// Keeps a feed with no health checks behind it open (and empty).
    _idle: Option<Arc<watch::Sender<Arc<HealthSnapshot>>>>,
}

impl Default for QuorumFeed {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(Arc::new(HealthSnapshot::default()));
        Self {
            receiver,
            _idle: Some(Arc::new(sender)),
        }
    }
}

impl QuorumFeed {
    /// Follows `receiver` (from [`super::real_server::HealthChecks::subscribe`]).
    pub fn new(receiver: watch::Receiver<Arc<HealthSnapshot>>) -> Self {
        Self {
            receiver,
            _idle: None,
        }
    }

    /// Whether the quorum of `virtual_server` holds, once the checks run it.
    pub fn get(&self, virtual_server: &str) -> Option<bool> {
        up(&self.receiver.borrow(), virtual_server)
    }
}

fn up(snapshot: &HealthSnapshot, virtual_server: &str) -> Option<bool> {
    snapshot
        .virtual_servers
        .get(virtual_server)
        .map(|h| h.refused.is_none() && h.quorum.up)
}

/// Reports the quorum of `virtual_server` into `slot` whenever it is known and changes,
/// until the tracker is dropped.
pub(crate) async fn track(virtual_server: String, feed: QuorumFeed, slot: Slot) {
    slot.follow(feed.receiver.clone(), |snapshot| {
        up(snapshot, &virtual_server)
    })
    .await;
}
