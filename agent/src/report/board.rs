//! The live status board: what each VRRP instance is doing now, and what of the configuration
//! the driver applied (the source's generation, the instances it does not run as given),
//! shared by the driver (writer) and the readers: the HTTP `/status` endpoint and, in cluster
//! mode, the status writer, which is woken by [`StatusBoard::changes`] instead of polling.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use jiff::Timestamp;
use kube_vrrp_crds::RejectedInstance;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::vrrp::instance::State;

/// One VRRP instance as the agent runs it. JSON in camelCase; `state` as
/// `"INIT"`, `"BACKUP"`, `"MASTER"` or `"FAULT"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// Instance name (the VirtualIP's name).
    pub name: String,
    /// Virtual Router ID.
    pub vrid: u8,
    /// Interface VRRP runs on.
    pub interface: String,
    /// VRRP version, 2 or 3.
    pub version: u8,
    /// Current state.
    #[serde(with = "state_name")]
    pub state: State,
    /// Configured priority.
    pub priority: u8,
    /// Priority after trackers.
    pub effective_priority: u8,
    /// Source of the last advert from the MASTER (this node's own address when MASTER).
    pub master_address: Option<IpAddr>,
    /// The virtual addresses this node holds now (empty unless MASTER).
    pub vips: Vec<IpNet>,
    /// State changes since the agent started.
    pub transitions: u64,
    /// When the state last changed.
    pub last_transition: Option<Timestamp>,
    /// Why the instance is not running normally, when it is not: an address conflict (with
    /// both owners), no source address, a failed VIP add and its retry, VIPs removed by
    /// something else. Absent when all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Another holder of the VIPs answering this node's ARP / NDP probes while MASTER: split
    /// brain seen without the API. Absent when none answers or this node is not MASTER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_conflict: Option<kube_vrrp_crds::HolderConflict>,
}

/// `State` as the keepalived-style words of [`State::as_str`].
mod state_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::vrrp::instance::State;

    const STATES: [State; 4] = [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ];

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's `with` passes a reference
    pub fn serialize<S: Serializer>(state: &State, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(state.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<State, D::Error> {
        let word = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STATES
            .into_iter()
            .find(|state| state.as_str() == word)
            .ok_or_else(|| D::Error::custom(format!("unknown VRRP state {word:?}")))
    }
}

/// The `/status` document: `{"instances": [...], "rejected": [...], "generation": N,
/// "ipvs": {...}, "checkers": [...], "quorums": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDocument {
    /// Every instance, sorted by name.
    pub instances: Vec<InstanceStatus>,
    /// Instances of the configuration the agent does not run as given, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedInstance>,
    /// The `VrrpNode` generation the agent applied (cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// IPVS on this node, once the IPVS task has looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<kube_vrrp_crds::IpvsStatus>,
    /// Real servers' health checks, by VirtualServer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkers: Vec<kube_vrrp_crds::CheckerStatus>,
    /// VirtualServers' quorums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quorums: Vec<kube_vrrp_crds::QuorumStatus>,
}

/// What the health checks last published, as reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthReport {
    pub checkers: Vec<kube_vrrp_crds::CheckerStatus>,
    pub quorums: Vec<kube_vrrp_crds::QuorumStatus>,
}

/// What the IPVS task last reported, and since when IPVS has been (un)available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsReport {
    pub status: kube_vrrp_crds::IpvsStatus,
    /// When `status.available` last changed.
    pub since: Timestamp,
}

/// What the driver applied of the configuration it was last given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The source's generation (the `VrrpNode`'s in cluster mode); `None` when the source has
    /// none (standalone mode, or no `VrrpNode` for this node).
    pub generation: Option<i64>,
    /// Instances not run as given, and why, sorted by name.
    pub rejected: Vec<RejectedInstance>,
}

/// Shared, cheap-to-clone status of every instance. The lock is held only to copy an entry in
/// or out, so the VRRP tasks never wait on a reader for long.
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

struct Inner {
    instances: Mutex<BTreeMap<String, InstanceStatus>>,
    applied: Mutex<Applied>,
    ipvs: Mutex<Option<IpvsReport>>,
    health: Mutex<HealthReport>,
    ready: AtomicBool,
    /// Bumped on every change, so readers wait instead of polling.
    changes: watch::Sender<u64>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            instances: Mutex::default(),
            applied: Mutex::default(),
            ipvs: Mutex::default(),
            health: Mutex::default(),
            ready: AtomicBool::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl StatusBoard {
    /// An empty board, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces the entry named `status.name`.
    pub fn set(&self, status: InstanceStatus) {
        self.lock().insert(status.name.clone(), status);
        self.changed();
    }

    /// Removes the entry named `name`, if any.
    pub fn remove(&self, name: &str) {
        if self.lock().remove(name).is_some() {
            self.changed();
        }
    }

    /// Records what the driver applied of its latest configuration.
    pub fn set_applied(&self, applied: Applied) {
        let mut current = self
            .inner
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current != applied {
            *current = applied;
            drop(current);
            self.changed();
        }
    }

    /// What the driver applied of its latest configuration.
    pub fn applied(&self) -> Applied {
        self.inner
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The `/status` document: every instance, the rejected ones, the generation applied.
    pub fn document(&self) -> StatusDocument {
        let applied = self.applied();
        let health = self.health();
        StatusDocument {
            instances: self.snapshot(),
            rejected: applied.rejected,
            generation: applied.generation,
            ipvs: self.ipvs().map(|report| report.status),
            checkers: health.checkers,
            quorums: health.quorums,
        }
    }

    /// A receiver that sees a change whenever an entry, the applied configuration, the IPVS
    /// report or the readiness changes (`changed().await` instead of polling).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A copy of every entry, sorted by name.
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        self.lock().values().cloned().collect()
    }

    /// Puts the IPVS task's report on the board (readers are told only when it changed).
    pub fn set_ipvs(&self, report: IpvsReport) {
        let previous = self
            .inner
            .ipvs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(report);
        if previous.as_ref() != self.ipvs().as_ref() {
            self.changed();
        }
    }

    /// The IPVS task's last report.
    pub fn ipvs(&self) -> Option<IpvsReport> {
        self.inner
            .ipvs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts the health checks' report on the board (readers are told only when it changed).
    pub fn set_health(&self, report: HealthReport) {
        let mut current = self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current != report {
            *current = report;
            drop(current);
            self.changed();
        }
    }

    /// The health checks' last report.
    pub fn health(&self) -> HealthReport {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts every snapshot of the health checks on the board, until they stop.
    pub async fn follow_health(
        self,
        mut snapshots: watch::Receiver<Arc<crate::check::real_server::HealthSnapshot>>,
    ) {
        loop {
            let report = {
                let snapshot = snapshots.borrow_and_update();
                HealthReport {
                    checkers: snapshot.checker_statuses(),
                    quorums: snapshot.quorum_statuses(),
                }
            };
            self.set_health(report);
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    }

    /// Marks the board populated (the driver has configured its instances): `/readyz` is 200
    /// from now on.
    pub fn mark_ready(&self) {
        if !self.inner.ready.swap(true, Ordering::AcqRel) {
            self.changed();
        }
    }

    /// Whether [`StatusBoard::mark_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, InstanceStatus>> {
        self.inner
            .instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
