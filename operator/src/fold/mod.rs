//! Status folding, pure: one VirtualIP's planned placement plus every node's `VrrpNode`
//! report, at a given instant, become the VirtualIP's whole `status` and the Events that
//! tell a person what changed since the previous status ([`virtual_server`] does the same
//! for a VirtualServer, from its VirtualIP's MASTER).
//!
//! Rules:
//! - A report is **fresh** when its `heartbeatTime` is at most [`FoldConfig::staleness`] old
//!   (a heartbeat from the future, i.e. clock skew, counts as fresh). A stale report never
//!   counts as MASTER and its node is not listed in `status.nodes`.
//! - Every fresh report that carries an instance of this VirtualIP is listed, selected or not:
//!   a node that still runs the VirtualIP after leaving the selection can still cause a
//!   split brain.
//! - `Ready` is True with exactly one fresh MASTER, `SplitBrain` with more than one,
//!   `Degraded` when a selected node is in FAULT or has no fresh report of the VirtualIP,
//!   `Conflict` when the planner refused the VirtualIP.
//! - A condition's `lastTransitionTime` moves only when its `status` flips. Messages hold no
//!   durations that grow with time, so an unchanged world folds to an equal status and the
//!   controller writes nothing.

pub mod conditions;
pub mod events;
pub mod virtual_server;

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_vrrp_crds::{
    InstanceStatus, State, VirtualIp, VirtualIpNodeStatus, VirtualIpPhase, VirtualIpStatus,
    VrrpNode, condition,
};

pub use conditions::ConditionReason;
pub use events::{EventReason, EventSeverity, FoldEvent};
pub use virtual_server::{ServerConditionReason, ServerView, fold_virtual_server};

/// Default staleness bound: three heartbeats of the agent's default 10 s period.
pub const DEFAULT_STALENESS: SignedDuration = SignedDuration::from_secs(30);

/// How folding judges reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldConfig {
    /// A report whose heartbeat is older than this is stale.
    pub staleness: SignedDuration,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            staleness: DEFAULT_STALENESS,
        }
    }
}

/// What the planner decided for one VirtualIP, in the terms folding needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The VRID allocated (none when the VirtualIP is in conflict without one).
    pub virtual_router_id: Option<u8>,
    /// The nodes selected to run the VirtualIP (empty when not deployed).
    pub selected: BTreeSet<String>,
    /// Why the planner refused the VirtualIP, if it did.
    pub conflict: Option<ConflictNote>,
}

/// A planner conflict: its reason name (`ConflictReason::as_str()`) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictNote {
    /// Reason, a PascalCase word.
    pub reason: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}

/// Why a selected node counts against `Degraded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeTrouble {
    /// The node reports the instance in FAULT.
    Fault,
    /// The node's last heartbeat is older than the staleness bound.
    Stale(Timestamp),
    /// The node has no report at all, or its report lacks this VirtualIP.
    Missing,
}

/// The result of folding one VirtualIP.
#[derive(Clone, Debug, PartialEq)]
pub struct Folded {
    /// The whole new status.
    pub status: VirtualIpStatus,
    /// Events to publish on the VirtualIP, oldest concern first.
    pub events: Vec<FoldEvent>,
    /// Nodes with a fresh MASTER report, by name.
    pub fresh_masters: Vec<String>,
    /// Selected nodes in trouble, by name.
    pub troubled: BTreeMap<String, NodeTrouble>,
}

impl Folded {
    /// Exactly one fresh MASTER.
    pub fn ready(&self) -> bool {
        self.fresh_masters.len() == 1
    }
}

/// One node's fresh view of the VirtualIP.
struct Seen<'a> {
    node: &'a str,
    instance: &'a InstanceStatus,
}

/// Whether a heartbeat at `heartbeat` is fresh at `now`.
pub fn is_fresh(now: Timestamp, heartbeat: Option<&Time>, staleness: SignedDuration) -> bool {
    heartbeat.is_some_and(|h| now.duration_since(h.0) <= staleness)
}

/// Folds the reports of `vrrp_nodes` about `vip` at `now` into its new status, and the
/// Events that its change from `vip.status` calls for.
pub fn fold(
    now: Timestamp,
    config: &FoldConfig,
    vip: &VirtualIp,
    placement: &Placement,
    vrrp_nodes: &[VrrpNode],
) -> Folded {
    let name = vip.metadata.name.as_deref().unwrap_or_default();
    // Conditions carry whole seconds, as the API stores them; keeps re-folds equal.
    let now_s = Timestamp::from_second(now.as_second()).unwrap_or(now);

    let mut seen: Vec<Seen<'_>> = Vec::new();
    let mut stale: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for vn in vrrp_nodes {
        let Some(node) = vn.metadata.name.as_deref() else {
            continue;
        };
        let Some(status) = vn.status.as_ref() else {
            continue;
        };
        if !is_fresh(now, status.heartbeat_time.as_ref(), config.staleness) {
            if let Some(h) = &status.heartbeat_time {
                stale.insert(node, h.0);
            }
            continue;
        }
        if let Some(instance) = status.instances.iter().find(|i| i.name == name) {
            seen.push(Seen { node, instance });
        }
    }
    seen.sort_by(|a, b| a.node.cmp(b.node));
    seen.dedup_by(|a, b| a.node == b.node);

    let fresh_masters: Vec<String> = seen
        .iter()
        .filter(|s| s.instance.state == State::Master)
        .map(|s| s.node.to_owned())
        .collect();

    let mut troubled = BTreeMap::new();
    for node in &placement.selected {
        let trouble = match seen.iter().find(|s| s.node == node) {
            Some(s) if s.instance.state == State::Fault => Some(NodeTrouble::Fault),
            Some(_) => None,
            None => Some(
                stale
                    .get(node.as_str())
                    .map_or(NodeTrouble::Missing, |&h| NodeTrouble::Stale(h)),
            ),
        };
        if let Some(t) = trouble {
            troubled.insert(node.clone(), t);
        }
    }

    let running = placement
        .selected
        .iter()
        .filter(|n| {
            seen.iter().any(|s| {
                s.node == n.as_str() && matches!(s.instance.state, State::Master | State::Backup)
            })
        })
        .count();

    let phase = if placement.conflict.is_some() {
        VirtualIpPhase::Conflict
    } else if fresh_masters.len() > 1 {
        VirtualIpPhase::SplitBrain
    } else if fresh_masters.len() == 1 {
        VirtualIpPhase::Ready
    } else if seen.is_empty() {
        VirtualIpPhase::Pending
    } else {
        VirtualIpPhase::NoMaster
    };

    let previous = vip.status.as_ref();
    let virtual_router_id = placement
        .virtual_router_id
        .or_else(|| previous.and_then(|p| p.virtual_router_id));
    let facts = conditions::Facts {
        virtual_ip: name,
        virtual_router_id,
        fresh_masters: &fresh_masters,
        any_fresh: !seen.is_empty(),
        troubled: &troubled,
        conflict: placement.conflict.as_ref(),
    };
    let generation = vip.metadata.generation;
    let new_conditions = conditions::build(
        &facts,
        previous.map_or(&[][..], |p| &p.conditions),
        now_s,
        generation,
    );

    let status = VirtualIpStatus {
        master: match fresh_masters.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        },
        state: Some(phase),
        nodes_summary: Some(format!("{running}/{}", placement.selected.len())),
        virtual_router_id,
        nodes: seen
            .iter()
            .map(|s| VirtualIpNodeStatus {
                name: s.node.to_owned(),
                state: s.instance.state,
                priority: s.instance.priority,
                effective_priority: s.instance.effective_priority,
                last_transition_time: s.instance.last_transition_time.clone(),
            })
            .collect(),
        conditions: new_conditions,
        observed_generation: generation,
    };
    let events = events::diff(name, previous, &status, &vip.spec.addresses);
    Folded {
        status,
        events,
        fresh_masters,
        troubled,
    }
}

/// The `status` of condition `type_` in `conditions` ("True", "False", "Unknown"), if present.
pub fn condition_status<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// Whether `status` says SplitBrain=True.
pub fn is_split_brain(status: &VirtualIpStatus) -> bool {
    condition_status(&status.conditions, condition::SPLIT_BRAIN) == Some("True")
}
