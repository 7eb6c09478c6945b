//! Status folding, pure: one VirtualIP's planned placement plus every node's `VrrpNode`
//! report, at a given instant, become the VirtualIP's whole `status` and the Events that
//! tell a person what changed since the previous status ([`virtual_server`] does the same
//! for a VirtualServer, from its VirtualIP's MASTER).
//!
//! Rules:
//! - A report is **fresh** when its `heartbeatTime` is at most [`FoldConfig::staleness`] old
//!   (a heartbeat from the future, i.e. clock skew, counts as fresh). A stale report never
//!   counts as MASTER and its node is not listed in `status.nodes`.
//! - **Supersede.** A fresh MASTER report of node A is *superseded* when another node B
//!   reports MASTER with a `lastTransitionTime` later than A's last word: later than A's
//!   `heartbeatTime` minus [`FoldConfig::clock_skew`], later than the roll call A last
//!   answered (`status.rollCall`), and later than A's own transition. B became MASTER after
//!   A last said anything, which is what an ordinary failover looks like: A died without a
//!   last word (SIGKILL, power, a cut switch port) and its last report stays fresh for up to
//!   `staleness`. A superseded report does not count as MASTER and is not listed; its node
//!   is troubled ([`NodeTrouble::Superseded`]). Only a later transition supersedes, so two
//!   reports never supersede each other and the latest MASTER transition always stands.
//! - **Precision.** Agents write both times with microseconds (`metav1.MicroTime`), so a
//!   MASTER killed within the second it was elected is still ordered before the backup that
//!   took over; a whole-second time (an earlier agent's, during an upgrade) reads as the
//!   start of its second.
//! - **Ties.** Equal transition times cannot say who became MASTER last (two earlier agents
//!   in one second, or a coincidence). The node that spoke last settles it: B's tied claim
//!   supersedes A's when B's `heartbeatTime` is later than A's (B was alive after A's last
//!   word), under the same heartbeat and roll call conditions as a later transition, so a
//!   live A answers its roll call and counts again. Equal heartbeats too supersede nothing:
//!   both count, undecidable is reported.
//! - **Clocks.** `heartbeatTime` and `lastTransitionTime` are written by different nodes'
//!   clocks. `clock_skew` (1 s by default) absorbs ordinary skew in the direction that would
//!   page someone: B's transition up to that much *before* A's heartbeat still supersedes A.
//!   The roll call needs no allowance: A echoes a timestamp B wrote.
//! - **Roll call.** A superseded MASTER might be alive behind a partition, not dead. The
//!   fold asks for a roll call of A ([`Folded::roll_calls`]): the controller sets the
//!   annotation `kubevrrp.io/roll-call` on A's VrrpNode to B's transition time, a live agent
//!   answers with a status write echoing it in `status.rollCall` within one round trip, and
//!   from then on A's claim stands beside B's: `SplitBrain=True`. A dead agent never answers,
//!   so a failover never shows a split brain, while a real partition (both keep reporting
//!   MASTER, neither supersedes) shows one once B is MASTER (Master_Down_Interval after the
//!   cut) plus the roll call's round trip (B's write, the annotation, A's answer), without
//!   waiting for A's next heartbeat.
//! - **Held addresses.** A MASTER report counts for this VirtualIP only when it says the node
//!   holds every address of the VirtualIP (`vipsHeld`). Several VirtualIPs can share one
//!   virtual router: a node that is MASTER of the router before its agent applied the spec
//!   that adds this VirtualIP's address does not answer for that address yet. Such a report
//!   is not listed and counts as no MASTER: `kubectl get vip` shows the VirtualIP `Pending`
//!   with no MASTER (`Ready=False`, reason `AddressNotHeld`), a LoadBalancer Service gets no
//!   ingress from it, and the node is troubled ([`NodeTrouble::NotHolding`]) until its agent
//!   adds the address.
//! - Every fresh, unsuperseded report that carries an instance of this VirtualIP is listed,
//!   selected or not: a node that still runs the VirtualIP after leaving the selection can
//!   still cause a split brain.
//! - `Ready` is True with exactly one counted MASTER, `SplitBrain` with more than one,
//!   `Degraded` when a selected node is in FAULT, has no fresh report of the VirtualIP, was
//!   superseded, rejected the VirtualIP (`status.rejected`), or has not applied its latest
//!   spec for longer than [`FoldConfig::apply_grace`] (`status.observedGeneration` below
//!   `metadata.generation`), and `Conflict` when the planner refused the VirtualIP.
//! - A condition's `lastTransitionTime` moves only when its `status` flips. Messages hold no
//!   durations that grow with time, so an unchanged world folds to an equal status and the
//!   controller writes nothing.

pub mod conditions;
pub mod events;
pub mod server_events;
pub mod virtual_server;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube_vrrp_crds::{
    InstanceStatus, RejectedInstance, State, VirtualIp, VirtualIpNodeStatus, VirtualIpPhase,
    VirtualIpStatus, VrrpNode, condition,
};

pub use conditions::ConditionReason;
pub use events::{EventReason, EventSeverity, FoldEvent};
pub use server_events::EventBudget;
pub use virtual_server::{ServerConditionReason, ServerView, fold_virtual_server};

/// Default staleness bound: three heartbeats of the agent's default 10 s period.
pub const DEFAULT_STALENESS: SignedDuration = SignedDuration::from_secs(30);

/// Default allowance for the skew between two nodes' clocks when one node's transition is
/// compared with another's heartbeat.
pub const DEFAULT_CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(1);

/// Default time an agent has to apply a new spec before its node counts as lagging.
pub const DEFAULT_APPLY_GRACE: SignedDuration = SignedDuration::from_secs(10);

/// How folding judges reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldConfig {
    /// A report whose heartbeat is older than this is stale.
    pub staleness: SignedDuration,
    /// Allowance for clock skew between nodes (see the module's supersede rule).
    pub clock_skew: SignedDuration,
    /// A node whose `observedGeneration` trails its spec's generation for longer than this
    /// (since the spec was written) has not applied its latest spec.
    pub apply_grace: SignedDuration,
}

impl Default for FoldConfig {
    fn default() -> Self {
        Self {
            staleness: DEFAULT_STALENESS,
            clock_skew: DEFAULT_CLOCK_SKEW,
            apply_grace: DEFAULT_APPLY_GRACE,
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
    /// The virtual router whose instance carries the VirtualIP; `None`: the VirtualIP is an
    /// instance of its own (nodes report it under its own name).
    pub instance: Option<String>,
    /// Selected nodes whose VrrpNode the operator could not write in this pass (the API's
    /// refusal: forbidden, too large for etcd, invalid, ...), so their agents run an older
    /// spec or none.
    pub unwritten: BTreeMap<String, String>,
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
    /// The node's MASTER report was superseded: `by` became MASTER after the node's last
    /// heartbeat (`since`).
    Superseded {
        /// The node whose later transition superseded it.
        by: String,
        /// The superseded node's last heartbeat.
        since: Timestamp,
    },
    /// The node has no report at all, or its report lacks this VirtualIP.
    Missing,
    /// The node reports MASTER of the VirtualIP's instance (a shared virtual router) but
    /// does not hold these addresses of the VirtualIP (yet).
    NotHolding {
        /// The instance the node is MASTER of.
        instance: String,
        /// The VirtualIP's addresses the node does not hold.
        missing: Vec<IpAddr>,
    },
    /// The node's agent rejected the VirtualIP's instance.
    Rejected {
        /// `RejectReason::as_str()`.
        reason: &'static str,
        /// The agent's message.
        message: String,
        /// The agent still runs the instance as it applied it before.
        running_previous: bool,
    },
    /// The operator could not write the node's VrrpNode: the API refused it (`message`).
    NotWritten {
        /// The API's answer.
        message: String,
    },
    /// The node's agent has not applied the latest spec of its VrrpNode.
    NotApplied {
        /// `metadata.generation` of the VrrpNode.
        generation: i64,
        /// `status.observedGeneration` (none: the agent has applied no spec yet).
        observed: Option<i64>,
    },
}

/// The result of folding one VirtualIP.
#[derive(Clone, Debug, PartialEq)]
pub struct Folded {
    /// The whole new status.
    pub status: VirtualIpStatus,
    /// Events to publish on the VirtualIP, oldest concern first.
    pub events: Vec<FoldEvent>,
    /// Nodes with a fresh MASTER report that no later transition supersedes, by name: the
    /// MASTERs that count.
    pub fresh_masters: Vec<String>,
    /// Selected nodes in trouble, by name.
    pub troubled: BTreeMap<String, NodeTrouble>,
    /// Roll calls to make: node name → the superseding transition time its agent should
    /// echo (see the module's roll call rule).
    pub roll_calls: BTreeMap<String, Timestamp>,
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
    /// The node's last word in its own clock.
    heartbeat: Timestamp,
    /// The roll call the node last answered (a timestamp another node wrote).
    answered: Option<Timestamp>,
}

impl Seen<'_> {
    /// When this node last became what it reports.
    fn transition(&self) -> Option<Timestamp> {
        self.instance.last_transition_time.as_ref().map(|t| t.0)
    }

    /// When `other`'s MASTER report supersedes this node's MASTER report, its transition
    /// time: it is later than this node's own transition (or equal to it, and `other` spoke
    /// after this node's last word), than this node's last heartbeat (less the skew
    /// allowance) and than the roll call it answered.
    fn superseded_by(&self, other: &Seen<'_>, skew: SignedDuration) -> Option<Timestamp> {
        let at = other.transition()?;
        let later = self
            .transition()
            .is_none_or(|own| at > own || (at == own && other.heartbeat > self.heartbeat));
        (later && at > self.heartbeat - skew && self.answered.is_none_or(|answered| at > answered))
            .then_some(at)
    }
}

/// Whether a heartbeat at `heartbeat` is fresh at `now`.
pub fn is_fresh(now: Timestamp, heartbeat: Option<&MicroTime>, staleness: SignedDuration) -> bool {
    heartbeat.is_some_and(|h| now.duration_since(h.0) <= staleness)
}

/// When the spec of `node` was last written: the newest `managedFields` entry that is not
/// about the status subresource (only the operator writes the spec). `None` when the server
/// sent no managed fields.
pub fn spec_written_at(node: &VrrpNode) -> Option<Timestamp> {
    node.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().is_none_or(str::is_empty))
        .filter_map(|entry| entry.time.as_ref().map(|t| t.0))
        .max()
}

/// Whether `node`'s agent has not applied its latest spec at `now`: its observed generation
/// trails the spec's, and the spec was written more than `grace` ago (or when unknown).
fn lagging(now: Timestamp, node: &VrrpNode, grace: SignedDuration) -> Option<NodeTrouble> {
    let generation = node.metadata.generation?;
    let observed = node.status.as_ref().and_then(|s| s.observed_generation);
    if observed.is_some_and(|o| o >= generation) {
        return None;
    }
    let written = spec_written_at(node);
    if written.is_some_and(|at| now.duration_since(at) <= grace) {
        return None;
    }
    Some(NodeTrouble::NotApplied {
        generation,
        observed,
    })
}

/// One node's fresh report, indexed by instance name.
struct NodeReport<'a> {
    node: &'a str,
    heartbeat: Timestamp,
    answered: Option<Timestamp>,
    instances: HashMap<&'a str, &'a InstanceStatus>,
    /// The addresses each MASTER instance holds, by instance name.
    held: HashMap<&'a str, HashSet<IpAddr>>,
    rejected: HashMap<&'a str, &'a RejectedInstance>,
    lagging: Option<NodeTrouble>,
}

/// The addresses an instance's report says its node holds (`vipsHeld`, CIDRs or plain
/// addresses; entries that do not parse are skipped).
pub fn held_addresses(instance: &InstanceStatus) -> impl Iterator<Item = IpAddr> + '_ {
    instance
        .vips_held
        .iter()
        .filter_map(|held| address_of(held))
}

/// The address of `cidr` (`10.0.0.5/32` or `10.0.0.5`), if it parses.
fn address_of(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next().unwrap_or(cidr).trim().parse().ok()
}

/// Every node's report at one instant, judged (fresh or stale, lagging or not) and indexed
/// once, so folding each VirtualIP looks its instance up instead of scanning every report.
pub struct Reports<'a> {
    now: Timestamp,
    config: FoldConfig,
    /// Fresh reports, by node name (the first of two reports with one name wins).
    fresh: Vec<NodeReport<'a>>,
    /// Last heartbeat of each stale report.
    stale: BTreeMap<&'a str, Timestamp>,
}

impl<'a> Reports<'a> {
    /// Judges and indexes `vrrp_nodes` at `now`.
    pub fn new<N: Borrow<VrrpNode>>(
        now: Timestamp,
        config: &FoldConfig,
        vrrp_nodes: &'a [N],
    ) -> Self {
        let mut fresh: Vec<NodeReport<'a>> = Vec::new();
        let mut stale = BTreeMap::new();
        for vn in vrrp_nodes {
            let vn: &'a VrrpNode = vn.borrow();
            let (Some(node), Some(status)) = (vn.metadata.name.as_deref(), vn.status.as_ref())
            else {
                continue;
            };
            let Some(heartbeat) = status
                .heartbeat_time
                .as_ref()
                .filter(|h| is_fresh(now, Some(h), config.staleness))
            else {
                if let Some(h) = &status.heartbeat_time {
                    stale.insert(node, h.0);
                }
                continue;
            };
            fresh.push(NodeReport {
                node,
                heartbeat: heartbeat.0,
                answered: status
                    .roll_call
                    .as_deref()
                    .and_then(|r| r.parse::<Timestamp>().ok()),
                instances: status
                    .instances
                    .iter()
                    .map(|i| (i.name.as_str(), i))
                    .collect(),
                held: status
                    .instances
                    .iter()
                    .filter(|i| i.state == State::Master)
                    .map(|i| (i.name.as_str(), held_addresses(i).collect()))
                    .collect(),
                rejected: status
                    .rejected
                    .iter()
                    .map(|r| (r.name.as_str(), r))
                    .collect(),
                lagging: lagging(now, vn, config.apply_grace),
            });
        }
        fresh.sort_by(|a, b| a.node.cmp(b.node));
        fresh.dedup_by(|later, earlier| later.node == earlier.node);
        Self {
            now,
            config: *config,
            fresh,
            stale,
        }
    }
}

/// Folds the reports of `vrrp_nodes` about `vip` at `now` into its new status, and the
/// Events that its change from `vip.status` calls for ([`fold_reports`] over
/// [`Reports::new`]; a pass over many VirtualIPs indexes the reports once instead).
pub fn fold<N: Borrow<VrrpNode>>(
    now: Timestamp,
    config: &FoldConfig,
    vip: &VirtualIp,
    placement: &Placement,
    vrrp_nodes: &[N],
) -> Folded {
    fold_reports(vip, placement, &Reports::new(now, config, vrrp_nodes))
}

/// Folds the indexed `reports` about `vip` into its new status and Events.
pub fn fold_reports(vip: &VirtualIp, placement: &Placement, reports: &Reports<'_>) -> Folded {
    let (now, config) = (reports.now, &reports.config);
    let name = vip.metadata.name.as_deref().unwrap_or_default();
    // Conditions carry whole seconds, as the API stores them; keeps re-folds equal.
    let now_s = Timestamp::from_second(now.as_second()).unwrap_or(now);

    let mut seen: Vec<Seen<'_>> = Vec::new();
    let stale = &reports.stale;
    let mut rejected: BTreeMap<&str, &RejectedInstance> = BTreeMap::new();
    let mut lagging_nodes: BTreeMap<&str, NodeTrouble> = BTreeMap::new();
    let mut not_holding: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    // Nodes report the instance, which is the VirtualIP's own or its virtual router's.
    let instance = placement.instance.as_deref().unwrap_or(name);
    let addresses: Vec<IpAddr> = vip
        .spec
        .addresses
        .iter()
        .filter_map(|a| address_of(a))
        .collect();
    for report in &reports.fresh {
        let node = report.node;
        if let Some(r) = report.rejected.get(instance) {
            rejected.insert(node, r);
        }
        if let Some(trouble) = &report.lagging {
            lagging_nodes.insert(node, trouble.clone());
        }
        if let Some(instance) = report.instances.get(instance) {
            if instance.state == State::Master {
                let held = report.held.get(instance.name.as_str());
                let missing: Vec<IpAddr> = addresses
                    .iter()
                    .filter(|a| held.is_none_or(|h| !h.contains(a)))
                    .copied()
                    .collect();
                if !missing.is_empty() {
                    not_holding.insert(node, missing);
                    continue;
                }
            }
            seen.push(Seen {
                node,
                instance,
                heartbeat: report.heartbeat,
                answered: report.answered,
            });
        }
    }

    // Supersede: each MASTER report against every later MASTER transition of another node.
    let mut superseded: BTreeMap<&str, (&str, Timestamp)> = BTreeMap::new();
    for a in seen.iter().filter(|s| s.instance.state == State::Master) {
        let latest = seen
            .iter()
            .filter(|b| b.node != a.node && b.instance.state == State::Master)
            .filter_map(|b| a.superseded_by(b, config.clock_skew).map(|at| (b.node, at)))
            .max_by_key(|&(_, at)| at);
        if let Some(by) = latest {
            superseded.insert(a.node, by);
        }
    }
    let roll_calls: BTreeMap<String, Timestamp> = superseded
        .iter()
        .map(|(node, (_, at))| ((*node).to_owned(), *at))
        .collect();
    let superseded_since: BTreeMap<&str, (&str, Timestamp)> = seen
        .iter()
        .filter_map(|s| {
            superseded
                .get(s.node)
                .map(|&(by, _)| (s.node, (by, s.heartbeat)))
        })
        .collect();
    seen.retain(|s| !superseded.contains_key(s.node));

    let fresh_masters: Vec<String> = seen
        .iter()
        .filter(|s| s.instance.state == State::Master)
        .map(|s| s.node.to_owned())
        .collect();

    let mut troubled = BTreeMap::new();
    for node in &placement.selected {
        let node_str = node.as_str();
        let trouble = if let Some(message) = placement.unwritten.get(node_str) {
            Some(NodeTrouble::NotWritten {
                message: message.clone(),
            })
        } else if let Some(r) = rejected.get(node_str) {
            Some(NodeTrouble::Rejected {
                reason: r.reason.as_str(),
                message: r.message.clone(),
                running_previous: r.running_previous,
            })
        } else if let Some(&(by, since)) = superseded_since.get(node_str) {
            Some(NodeTrouble::Superseded {
                by: by.to_owned(),
                since,
            })
        } else if let Some(missing) = not_holding.get(node_str) {
            Some(NodeTrouble::NotHolding {
                instance: instance.to_owned(),
                missing: missing.clone(),
            })
        } else {
            match seen.iter().find(|s| s.node == node_str) {
                Some(s) if s.instance.state == State::Fault => Some(NodeTrouble::Fault),
                Some(_) => lagging_nodes.get(node_str).cloned(),
                None => Some(stale.get(node_str).map_or_else(
                    || {
                        lagging_nodes
                            .get(node_str)
                            .cloned()
                            .unwrap_or(NodeTrouble::Missing)
                    },
                    |&h| NodeTrouble::Stale(h),
                )),
            }
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

    let rejected_everywhere = seen.is_empty()
        && !placement.selected.is_empty()
        && placement
            .selected
            .iter()
            .all(|n| matches!(troubled.get(n), Some(NodeTrouble::Rejected { .. })));
    let phase = if placement.conflict.is_some() {
        VirtualIpPhase::Conflict
    } else if fresh_masters.len() > 1 {
        VirtualIpPhase::SplitBrain
    } else if fresh_masters.len() == 1 {
        VirtualIpPhase::Ready
    } else if rejected_everywhere {
        VirtualIpPhase::Rejected
    } else if seen.is_empty() || !not_holding.is_empty() {
        // Nothing runs yet, or the MASTER has not added the addresses yet.
        VirtualIpPhase::Pending
    } else {
        VirtualIpPhase::NoMaster
    };

    let previous = vip.status.as_ref();
    let virtual_router_id = placement
        .virtual_router_id
        .or_else(|| previous.and_then(|p| p.virtual_router_id));
    let adding: Vec<String> = not_holding.keys().map(|n| (*n).to_owned()).collect();
    let facts = conditions::Facts {
        virtual_ip: name,
        virtual_router_id,
        fresh_masters: &fresh_masters,
        any_fresh: !seen.is_empty(),
        instance,
        adding: &adding,
        rejected_everywhere,
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
        roll_calls,
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
