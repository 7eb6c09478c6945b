//! The live status board: what each VRRP instance is doing now, shared by the driver (writer)
//! and the HTTP `/status` endpoint (reader).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

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

/// The `/status` document: `{"instances": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDocument {
    /// Every instance, sorted by name.
    pub instances: Vec<InstanceStatus>,
}

/// Shared, cheap-to-clone status of every instance. The lock is held only to copy an entry in
/// or out, so the VRRP tasks never wait on a reader for long.
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    instances: Mutex<BTreeMap<String, InstanceStatus>>,
    ready: AtomicBool,
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
    }

    /// Removes the entry named `name`, if any.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    /// A copy of every entry, sorted by name.
    pub fn snapshot(&self) -> Vec<InstanceStatus> {
        self.lock().values().cloned().collect()
    }

    /// Marks the board populated (the driver has configured its instances): `/readyz` is 200
    /// from now on.
    pub fn mark_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
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
