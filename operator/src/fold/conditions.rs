//! The four VirtualIP conditions (`Ready`, `SplitBrain`, `Degraded`, `Conflict`) built from
//! folded facts, keeping each `lastTransitionTime` until its status flips.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_vrrp_crds::condition;

use super::{ConflictNote, NodeTrouble};

/// Why a condition has its status; the `reason` field of the condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionReason {
    /// Ready=True: exactly one fresh MASTER.
    MasterElected,
    /// Ready=False: nodes report, none is MASTER.
    NoMaster,
    /// Ready=False: no node has a fresh report of the VirtualIP.
    NotReporting,
    /// Ready=False: more than one MASTER.
    SplitBrain,
    /// Ready=False: the planner refused the VirtualIP.
    Conflict,
    /// SplitBrain=True.
    MultipleMasters,
    /// SplitBrain=False.
    AtMostOneMaster,
    /// Degraded=True: only FAULT nodes.
    NodeFault,
    /// Degraded=True: only nodes without a fresh report.
    NodeNotReporting,
    /// Degraded=True: nodes in FAULT and nodes without a fresh report.
    NodesUnhealthy,
    /// Degraded=False.
    AllNodesHealthy,
    /// Conflict=False.
    NoConflict,
}

impl ConditionReason {
    /// The name written to `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MasterElected => "MasterElected",
            Self::NoMaster => "NoMaster",
            Self::NotReporting => "NotReporting",
            Self::SplitBrain => "SplitBrain",
            Self::Conflict => "Conflict",
            Self::MultipleMasters => "MultipleMasters",
            Self::AtMostOneMaster => "AtMostOneMaster",
            Self::NodeFault => "NodeFault",
            Self::NodeNotReporting => "NodeNotReporting",
            Self::NodesUnhealthy => "NodesUnhealthy",
            Self::AllNodesHealthy => "AllNodesHealthy",
            Self::NoConflict => "NoConflict",
        }
    }
}

/// What the conditions are computed from.
pub(crate) struct Facts<'a> {
    pub virtual_ip: &'a str,
    pub virtual_router_id: Option<u8>,
    pub fresh_masters: &'a [String],
    pub any_fresh: bool,
    pub troubled: &'a BTreeMap<String, NodeTrouble>,
    pub conflict: Option<&'a ConflictNote>,
}

/// "a", "a and b", "a, b and c".
pub fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn vrid_text(vrid: Option<u8>) -> String {
    vrid.map_or_else(String::new, |v| format!(" (VRID {v})"))
}

/// Builds the conditions in a fixed order: Ready, SplitBrain, Degraded, Conflict.
pub(crate) fn build(
    facts: &Facts<'_>,
    previous: &[Condition],
    now: Timestamp,
    generation: Option<i64>,
) -> Vec<Condition> {
    let vrid = vrid_text(facts.virtual_router_id);
    let masters = facts.fresh_masters;

    let ready = match masters {
        [only] => (
            true,
            ConditionReason::MasterElected.as_str(),
            format!("{only} is MASTER{vrid}"),
        ),
        _ if masters.len() > 1 => (
            false,
            ConditionReason::SplitBrain.as_str(),
            format!("no single MASTER: {} report MASTER", join_names(masters)),
        ),
        _ => {
            if let Some(c) = facts.conflict {
                (
                    false,
                    ConditionReason::Conflict.as_str(),
                    format!("not deployed: {}", c.message),
                )
            } else if facts.any_fresh {
                (
                    false,
                    ConditionReason::NoMaster.as_str(),
                    format!("no node is MASTER of VirtualIP {}{vrid}", facts.virtual_ip),
                )
            } else {
                (
                    false,
                    ConditionReason::NotReporting.as_str(),
                    format!("no node has reported VirtualIP {} yet", facts.virtual_ip),
                )
            }
        }
    };

    let split = if masters.len() > 1 {
        (
            true,
            ConditionReason::MultipleMasters.as_str(),
            format!(
                "{} {} report MASTER for VirtualIP {}{vrid}",
                join_names(masters),
                if masters.len() == 2 { "both" } else { "all" },
                facts.virtual_ip
            ),
        )
    } else {
        (
            false,
            ConditionReason::AtMostOneMaster.as_str(),
            String::new(),
        )
    };

    let degraded = if facts.troubled.is_empty() {
        (
            false,
            ConditionReason::AllNodesHealthy.as_str(),
            String::new(),
        )
    } else {
        let faults = facts
            .troubled
            .values()
            .filter(|t| matches!(t, NodeTrouble::Fault))
            .count();
        let reason = if faults == facts.troubled.len() {
            ConditionReason::NodeFault
        } else if faults == 0 {
            ConditionReason::NodeNotReporting
        } else {
            ConditionReason::NodesUnhealthy
        };
        let parts: Vec<String> = facts
            .troubled
            .iter()
            .map(|(node, t)| match t {
                NodeTrouble::Fault => format!("{node} is in FAULT"),
                NodeTrouble::Stale(h) => format!(
                    "{node} has not reported since {}",
                    h.strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
                NodeTrouble::Missing => format!("{node} has not reported this VirtualIP"),
            })
            .collect();
        (true, reason.as_str(), parts.join("; "))
    };

    let conflict = match facts.conflict {
        Some(c) => (true, c.reason, c.message.clone()),
        None => (false, ConditionReason::NoConflict.as_str(), String::new()),
    };

    [
        (condition::READY, ready),
        (condition::SPLIT_BRAIN, split),
        (condition::DEGRADED, degraded),
        (condition::CONFLICT, conflict),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        carry(previous, type_, status, reason, message, now, generation)
    })
    .collect()
}

/// A condition whose `lastTransitionTime` is the previous one's while `status` is unchanged,
/// else `now`.
pub(crate) fn carry(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}
