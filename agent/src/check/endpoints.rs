//! Endpoint trackers (`track.endpoints`): up while the Service has a Ready endpoint on this
//! node. Which Services do is learnt elsewhere (in cluster mode from an EndpointSlice watch
//! limited to the Services named, `cluster::endpoints`) and published into one
//! [`EndpointReadiness`]; each endpoint tracker task follows its Service there. A Service not
//! known yet (its slices not listed yet) leaves the tracker pending, which counts as down.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube_vrrp_crds::ServiceRef;
use tokio::sync::watch;

use super::Slot;

/// Whether each followed Service has a Ready endpoint on this node. Cheap to clone; every
/// clone shares one state.
#[derive(Debug, Clone)]
pub struct EndpointReadiness {
    sender: Arc<watch::Sender<BTreeMap<ServiceRef, bool>>>,
}

impl Default for EndpointReadiness {
    fn default() -> Self {
        Self {
            sender: Arc::new(watch::Sender::new(BTreeMap::new())),
        }
    }
}

impl EndpointReadiness {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces what is known (Services left out become unknown); wakes the trackers only
    /// when something changed.
    pub fn publish(&self, ready: BTreeMap<ServiceRef, bool>) {
        self.sender.send_if_modified(|current| {
            let changed = *current != ready;
            *current = ready;
            changed
        });
    }

    /// What is known of `service`: `Some(true)` with a Ready endpoint on this node.
    pub fn get(&self, service: &ServiceRef) -> Option<bool> {
        self.sender.borrow().get(service).copied()
    }

    fn subscribe(&self) -> watch::Receiver<BTreeMap<ServiceRef, bool>> {
        self.sender.subscribe()
    }
}

/// Reports `service`'s readiness into `slot` whenever it is known and changes, until the
/// tracker is dropped.
pub(crate) async fn track(service: ServiceRef, readiness: EndpointReadiness, slot: Slot) {
    slot.follow(readiness.subscribe(), |ready| ready.get(&service).copied())
        .await;
}
