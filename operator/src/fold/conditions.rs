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
    /// Ready=False: every selected node's agent rejected the VirtualIP.
    Rejected,
    /// SplitBrain=True.
    MultipleMasters,
    /// SplitBrain=False.
    AtMostOneMaster,
    /// Degraded=True: only FAULT nodes.
    NodeFault,
    /// Degraded=True: only nodes without a fresh report.
    NodeNotReporting,
    /// Degraded=True: only nodes whose MASTER report a later transition superseded (they
    /// said nothing since another node took over).
    NodeSuperseded,
    /// Degraded=True: only nodes whose agent rejected the VirtualIP.
    NodeRejected,
    /// Degraded=True: only nodes whose agent has not applied its latest spec.
    SpecNotApplied,
    /// Degraded=True: only nodes whose VrrpNode the API refused to take from the operator.
    VrrpNodeNotWritten,
    /// Ready=False, and Degraded=True with no other trouble: a node is MASTER of the
    /// VirtualIP's virtual router without holding the VirtualIP's addresses (its agent has not
    /// added them yet).
    AddressNotHeld,
    /// Degraded=True: nodes with different troubles.
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
            Self::Rejected => "Rejected",
            Self::MultipleMasters => "MultipleMasters",
            Self::AtMostOneMaster => "AtMostOneMaster",
            Self::NodeFault => "NodeFault",
            Self::NodeNotReporting => "NodeNotReporting",
            Self::NodeSuperseded => "NodeSuperseded",
            Self::NodeRejected => "NodeRejected",
            Self::SpecNotApplied => "SpecNotApplied",
            Self::VrrpNodeNotWritten => "VrrpNodeNotWritten",
            Self::AddressNotHeld => "AddressNotHeld",
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
    /// The instance nodes report (the VirtualIP's own or its virtual router's).
    pub instance: &'a str,
    /// Nodes MASTER of the instance that do not hold the VirtualIP's addresses yet.
    pub adding: &'a [String],
    pub rejected_everywhere: bool,
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
            } else if facts.rejected_everywhere {
                (
                    false,
                    ConditionReason::Rejected.as_str(),
                    format!(
                        "no node runs VirtualIP {}: every selected node rejected it (see Degraded)",
                        facts.virtual_ip
                    ),
                )
            } else if !facts.adding.is_empty() {
                (
                    false,
                    ConditionReason::AddressNotHeld.as_str(),
                    format!(
                        "{} {} MASTER of {} but has not added the addresses of VirtualIP {} yet",
                        join_names(facts.adding),
                        if facts.adding.len() == 1 { "is" } else { "are" },
                        facts.instance,
                        facts.virtual_ip
                    ),
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
        let mut kinds = facts.troubled.values().map(trouble_reason);
        let first = kinds.next();
        let reason = match first {
            Some(first) if kinds.all(|k| k == first) => first,
            _ => ConditionReason::NodesUnhealthy,
        };
        let parts: Vec<String> = facts
            .troubled
            .iter()
            .map(|(node, t)| describe(node, t))
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

/// The Degraded reason of one kind of trouble (stale and missing nodes are both "not
/// reporting").
fn trouble_reason(trouble: &NodeTrouble) -> ConditionReason {
    match trouble {
        NodeTrouble::Fault => ConditionReason::NodeFault,
        NodeTrouble::Stale(_) | NodeTrouble::Missing => ConditionReason::NodeNotReporting,
        NodeTrouble::Superseded { .. } => ConditionReason::NodeSuperseded,
        NodeTrouble::Rejected { .. } => ConditionReason::NodeRejected,
        NodeTrouble::NotApplied { .. } => ConditionReason::SpecNotApplied,
        NodeTrouble::NotWritten { .. } => ConditionReason::VrrpNodeNotWritten,
        NodeTrouble::NotHolding { .. } => ConditionReason::AddressNotHeld,
    }
}

fn clock(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One node's trouble as a clause of the Degraded message.
fn describe(node: &str, trouble: &NodeTrouble) -> String {
    match trouble {
        NodeTrouble::Fault => format!("{node} is in FAULT"),
        NodeTrouble::Stale(h) => format!("{node} has not reported since {}", clock(*h)),
        NodeTrouble::Superseded { by, since } => format!(
            "{node} has not reported since {} and {by} became MASTER after that",
            clock(*since)
        ),
        NodeTrouble::Missing => format!("{node} has not reported this VirtualIP"),
        NodeTrouble::NotHolding { instance, missing } => {
            let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
            format!(
                "{node} is MASTER of {instance} but does not hold {} yet",
                join_names(&missing)
            )
        }
        NodeTrouble::Rejected {
            reason,
            message,
            running_previous,
        } => format!(
            "{node} rejected this VirtualIP ({reason}: {message}) and {}",
            if *running_previous {
                "runs its previous configuration"
            } else {
                "does not run it"
            }
        ),
        NodeTrouble::NotApplied {
            generation,
            observed,
        } => match observed {
            Some(o) => format!(
                "{node} has not applied its latest spec (VrrpNode generation {generation}; it \
                 runs {o})"
            ),
            None => {
                format!("{node} has not applied any spec yet (VrrpNode generation {generation})")
            }
        },
        NodeTrouble::NotWritten { message } => format!(
            "the operator could not write {node}'s VrrpNode, so its agent runs an older spec or \
             none: {message}"
        ),
    }
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
