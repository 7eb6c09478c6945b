//! kube-vrrp planning, shared by the operator and the agent's standalone mode: a pure function
//! from (VirtualIPs, VirtualServers, Nodes, EndpointSlices, Services) to one `VrrpNodeSpec` per
//! node, the VRID allocation of each VirtualIP, and the conflicts that keep a VirtualIP or
//! VirtualServer from being deployed; plus [`manifests`], the reader of a directory of such
//! objects that standalone mode and `kube-vrrp-operator plan` share, and [`manifest_writer`],
//! which writes such objects so that the reader reads them back.
//!
//! No I/O, no clock, no API client: the operator's controller and the agent's standalone
//! mode call [`plan`] with what they read, so both always agree. Everything is ordered
//! (maps by name, lists sorted), so equal input gives byte-equal output.
//!
//! How a VirtualIP is planned, in order:
//! 1. **Validity.** `spec.validate()` must pass, a VRRPv2 VirtualIP must carry IPv4
//!    addresses, and every label selector must be well formed; otherwise
//!    [`ConflictReason::Invalid`].
//! 2. **Addresses.** An address (compared without its prefix length) belongs to one
//!    VirtualIP. VirtualIPs claim their addresses in precedence order: one that already
//!    holds a VRID in its status first (it is deployed), then the older, then the first by
//!    name; a later claimant is [`ConflictReason::DuplicateAddress`].
//! 3. **Instances** (see `router`): VirtualIPs naming one `spec.virtualRouter` share one
//!    instance, run with the settings of its first member; a member whose settings differ
//!    ([`ConflictReason::VirtualRouterMismatch`]), that would take it past 64 addresses
//!    ([`ConflictReason::VirtualRouterFull`]), or a router named like a lone VirtualIP
//!    ([`ConflictReason::InstanceNameTaken`]) is refused. Every other VirtualIP is an
//!    instance of its own. The steps below are per instance.
//! 4. **VRID** (see [`vrid`] and [`Segment`]): explicit and held VRIDs are kept, the
//!    others get the lowest free one per segment (family + interface hint).
//!    Clashes are [`ConflictReason::VridTaken`], [`ConflictReason::DuplicateVrid`] or
//!    [`ConflictReason::VridsExhausted`].
//! 5. **Nodes.** `nodeSelector` picks nodes (omitted: all). With `unicast`, a node
//!    without an InternalIP of the VirtualIP's family cannot be a peer and is left out.
//!    No node left: [`ConflictReason::NoEligibleNode`]; an address that is a selected node's
//!    own (any of its `status.addresses`): [`ConflictReason::NodeAddress`] (the agent never
//!    takes or removes a node's address). Either way the VirtualIP keeps its VRID in
//!    [`Plan::allocations`] so it comes back with the same one.
//! 6. **Priorities.** The first matching `priorities[]` entry gives a node its priority;
//!    the other nodes are ranked below the lowest explicit priority (see [`priority`]), by
//!    the instance's name.
//! 7. **Peers.** With `unicast`, each node's peers are the other selected nodes'
//!    InternalIPs of the family, in node-name order.
//!
//! A VirtualIP in conflict is pushed to no node; the others are unaffected. Passwords
//! never enter the plan: a VRRPv2 instance carries the Secret reference and the agent
//! reads the Secret.
//!
//! VirtualServers follow their VirtualIP to every node that carries it, with real servers
//! resolved (see [`servers`]). One that is invalid, names a missing VirtualIP, repeats
//! another's (VirtualIP, port, protocol), or whose backend port cannot be resolved is a
//! conflict naming both the VirtualIP and the VirtualServer; its VirtualIP is unaffected.

pub mod manifest_writer;
pub mod manifests;
pub mod nodes;
pub mod output;
pub mod priority;
mod router;
pub mod segment;
pub mod selector;
pub mod servers;
pub mod vrid;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube_vrrp_crds::{
    ResolvedVirtualServer, VirtualIp, VirtualServer, VrrpInstance, VrrpNode, VrrpNodeSpec,
    VrrpVersion,
};
use serde::Serialize;

pub use manifest_writer::write_manifests;
pub use manifests::{
    DocumentLocation, ManifestError, Manifests, load_manifests,
    load_manifests_setting_aside_invalid, parse_manifests,
};
pub use nodes::{NodePolicy, Unavailable};
pub use segment::{Family, Segment};

use nodes::NodeInfo;
use selector::Selector;
use servers::Backends;
use vrid::{Claim, Outcome, Seniority};

/// Everything planning reads. Order does not matter; names are unique per kind (the first
/// of two objects with one name is used).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanInput {
    /// VirtualIPs, with their status: `status.virtualRouterID` keeps allocations stable.
    pub virtual_ips: Vec<VirtualIp>,
    /// VirtualServers.
    pub virtual_servers: Vec<VirtualServer>,
    /// Nodes (name, labels, InternalIPs).
    pub nodes: Vec<Node>,
    /// EndpointSlices of the Services that VirtualServers name in `backendRef`.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Those Services (to map a numbered `backendRef.port` to the endpoint port; without
    /// the Service the number is matched against the endpoint port itself).
    pub services: Vec<Service>,
    /// Which unhealthy nodes are left out.
    pub node_policy: NodePolicy,
}

impl From<Manifests> for PlanInput {
    /// Standalone mode: the objects of a manifests directory (Secrets are not planned).
    fn from(m: Manifests) -> Self {
        Self {
            virtual_ips: m.virtual_ips,
            virtual_servers: m.virtual_servers,
            nodes: m.nodes,
            endpoint_slices: m.endpoint_slices,
            services: m.services,
            node_policy: NodePolicy::default(),
        }
    }
}

/// Everything planning reads, borrowed: what [`plan_objects`] takes. The operator lends the
/// objects its reflector stores hold (behind `Arc`s) without copying them;
/// [`PlanInput::objects`] lends the owned ones.
#[derive(Clone, Debug, Default)]
pub struct Objects<'a> {
    /// VirtualIPs, with their status.
    pub virtual_ips: Vec<&'a VirtualIp>,
    /// VirtualServers.
    pub virtual_servers: Vec<&'a VirtualServer>,
    /// Nodes.
    pub nodes: Vec<&'a Node>,
    /// EndpointSlices of the Services that VirtualServers name.
    pub endpoint_slices: Vec<&'a EndpointSlice>,
    /// Those Services.
    pub services: Vec<&'a Service>,
    /// Which unhealthy nodes are left out.
    pub node_policy: NodePolicy,
}

impl PlanInput {
    /// The objects, borrowed.
    pub fn objects(&self) -> Objects<'_> {
        Objects {
            virtual_ips: self.virtual_ips.iter().collect(),
            virtual_servers: self.virtual_servers.iter().collect(),
            nodes: self.nodes.iter().collect(),
            endpoint_slices: self.endpoint_slices.iter().collect(),
            services: self.services.iter().collect(),
            node_policy: self.node_policy,
        }
    }

    /// Records `previous` allocations as `status.virtualRouterID` of the VirtualIPs that have
    /// none, as the operator's status writer does. Standalone mode, which has no status, calls
    /// this before re-planning so that allocated VRIDs stay stable across edits.
    pub fn carry_over(&mut self, previous: &Plan) {
        for vip in &mut self.virtual_ips {
            let Some(name) = vip.metadata.name.as_deref() else {
                continue;
            };
            if let Some(a) = previous.allocations.get(name) {
                let status = vip.status.get_or_insert_with(Default::default);
                if status.virtual_router_id.is_none() {
                    status.virtual_router_id = Some(a.virtual_router_id);
                }
            }
        }
    }
}

/// The result of planning.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The spec of each node that has work, by node name.
    pub nodes: BTreeMap<String, VrrpNodeSpec>,
    /// Each VirtualIP that holds a VRID, by name: every deployed one, plus those without an
    /// eligible node (their VRID stays reserved).
    pub allocations: BTreeMap<String, Allocation>,
    /// Why VirtualIPs or VirtualServers are not deployed, sorted by VirtualIP,
    /// VirtualServer and reason.
    pub conflicts: Vec<Conflict>,
}

/// One VirtualIP's VRID and nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    /// The VRID, to be written to `status.virtualRouterID`.
    #[serde(rename = "virtualRouterID")]
    pub virtual_router_id: u8,
    /// Where the VRID is unique.
    pub segment: Segment,
    /// Selected nodes and their priorities (empty with no eligible node).
    pub priorities: BTreeMap<String, u8>,
    /// Nodes the selector matched but that were left out because, with `unicast`, they have
    /// no InternalIP of the VirtualIP's family to be a peer at.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// The virtual router whose instance carries the VirtualIP (`spec.virtualRouter`);
    /// `None`: the VirtualIP is an instance of its own, named after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl Allocation {
    /// The name of the instance that carries VirtualIP `virtual_ip` in the nodes' specs.
    pub fn instance_name<'a>(&'a self, virtual_ip: &'a str) -> &'a str {
        self.instance.as_deref().unwrap_or(virtual_ip)
    }
}

/// Why something is not deployed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ConflictReason {
    /// The spec breaks a validation rule.
    Invalid,
    /// Another VirtualIP already holds the same address.
    DuplicateAddress,
    /// The explicit VRID is held by another VirtualIP on the segment.
    VridTaken,
    /// Another VirtualIP with precedence asks for the same explicit VRID on the segment.
    DuplicateVrid,
    /// Every VRID of the segment is in use.
    VridsExhausted,
    /// No node is selected (or, with unicast, none has an InternalIP of the family).
    NoEligibleNode,
    /// An address of the VirtualIP is a selected node's own address.
    NodeAddress,
    /// A VirtualServer names a VirtualIP that does not exist.
    VirtualIpNotFound,
    /// Another VirtualServer already serves this (VirtualIP, port, protocol).
    DuplicateService,
    /// The backendRef's port cannot be matched to an endpoint port.
    BackendPortUnresolved,
    /// The VirtualIP's settings differ from those of its virtual router's first member.
    VirtualRouterMismatch,
    /// The virtual router already carries as many addresses as one instance can.
    VirtualRouterFull,
    /// The virtual router is named like a VirtualIP that is an instance of its own.
    InstanceNameTaken,
}

impl ConflictReason {
    /// A stable name for status conditions, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "Invalid",
            Self::DuplicateAddress => "DuplicateAddress",
            Self::VridTaken => "VridTaken",
            Self::DuplicateVrid => "DuplicateVrid",
            Self::VridsExhausted => "VridsExhausted",
            Self::NoEligibleNode => "NoEligibleNode",
            Self::NodeAddress => "NodeAddress",
            Self::VirtualIpNotFound => "VirtualIpNotFound",
            Self::DuplicateService => "DuplicateService",
            Self::BackendPortUnresolved => "BackendPortUnresolved",
            Self::VirtualRouterMismatch => "VirtualRouterMismatch",
            Self::VirtualRouterFull => "VirtualRouterFull",
            Self::InstanceNameTaken => "InstanceNameTaken",
        }
    }
}

/// Something not deployed, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The VirtualIP concerned (for a VirtualServer: the one it names).
    #[serde(rename = "virtualIP")]
    pub virtual_ip: String,
    /// The VirtualServer concerned, when the conflict is a VirtualServer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<String>,
    /// Why.
    pub reason: ConflictReason,
    /// A sentence a person can act on.
    pub message: String,
}

impl Plan {
    /// The VrrpNode objects to apply, one per node with work, in node-name order.
    pub fn vrrp_nodes(&self) -> Vec<VrrpNode> {
        self.nodes
            .iter()
            .map(|(name, spec)| VrrpNode::new(name, spec.clone()))
            .collect()
    }

    /// The conflicts of one VirtualIP (its own and its VirtualServers').
    pub fn conflicts_of<'a>(&'a self, virtual_ip: &'a str) -> impl Iterator<Item = &'a Conflict> {
        self.conflicts
            .iter()
            .filter(move |c| c.virtual_ip == virtual_ip)
    }
}

/// A VirtualIP that passed validation.
struct Candidate<'a> {
    vip: &'a VirtualIp,
    name: &'a str,
    nets: Vec<IpNet>,
    family: Family,
    selector: Option<Selector>,
    rules: Vec<(Rule<'a>, u8)>,
    seniority: Seniority<'a>,
    held: Option<u8>,
}

/// A VirtualIP that is deployed: its candidate, the instance carrying it and the nodes
/// (indices) that run that instance.
struct Deployed<'c, 'a> {
    candidate: &'c Candidate<'a>,
    instance: &'a str,
    carriers: Vec<usize>,
}

/// One instance to push to the nodes: its name, members (leader first) and VRID.
struct Instance<'c, 'a> {
    name: &'a str,
    members: &'c [&'c Candidate<'a>],
    vrid: u8,
}

/// How a `priorities[]` entry picks nodes.
enum Rule<'a> {
    Name(&'a str),
    Labels(Selector),
}

/// Who would be MASTER of instances that run with one VirtualIP's settings, as [`plan`]
/// ranks the nodes: the operator uses it to place a Service address on the shared virtual
/// router whose MASTER carries the fewest addresses.
pub struct MasterForecast<'a> {
    candidate: Candidate<'a>,
    nodes: &'a [NodeInfo],
    selected: Vec<usize>,
}

impl<'a> MasterForecast<'a> {
    /// The forecast for instances running with `vip`'s settings on `nodes` (from
    /// [`nodes::index`]) under `policy`; `None` when `vip` is invalid.
    pub fn new(vip: &'a VirtualIp, nodes: &'a [NodeInfo], policy: NodePolicy) -> Option<Self> {
        let candidate = candidate(vip).ok()?;
        let (selected, _) = select(&candidate, nodes, policy);
        Some(Self {
            candidate,
            nodes,
            selected,
        })
    }

    /// The node with the highest priority for the instance named `instance`; `None` when no
    /// node is selected or two share the highest priority (VRRP then prefers the higher
    /// primary address).
    pub fn master(&self, instance: &str) -> Option<&'a str> {
        let priorities = rank(&self.candidate, instance, self.nodes, &self.selected);
        let top = priorities.iter().copied().max()?;
        let mut at_top = self
            .selected
            .iter()
            .zip(&priorities)
            .filter(|&(_, &p)| p == top);
        match (at_top.next(), at_top.next()) {
            (Some((&n, _)), None) => Some(self.nodes[n].name.as_str()),
            _ => None,
        }
    }
}

/// Plans `input`. Pure and deterministic; never panics.
pub fn plan(input: &PlanInput) -> Plan {
    plan_objects(&input.objects())
}

/// Plans borrowed objects (see [`Objects`]); [`plan`] of the same objects gives the same plan.
pub fn plan_objects(input: &Objects<'_>) -> Plan {
    let nodes = nodes::index(&input.nodes);
    let mut conflicts = Vec::new();

    // 1. Validity.
    let mut candidates = Vec::new();
    for vip in unique_by_name(&input.virtual_ips, |v| v.metadata.name.as_deref()) {
        let vip: &VirtualIp = vip;
        match candidate(vip) {
            Ok(c) => candidates.push(c),
            Err(message) => conflicts.push(Conflict {
                virtual_ip: vip.metadata.name.clone().unwrap_or_default(),
                virtual_server: None,
                reason: ConflictReason::Invalid,
                message,
            }),
        }
    }

    // 2. Addresses, in precedence order.
    let mut by_precedence: Vec<usize> = (0..candidates.len()).collect();
    by_precedence.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        (a.held.is_none(), a.seniority).cmp(&(b.held.is_none(), b.seniority))
    });
    let mut owners: HashMap<IpAddr, &str> = HashMap::new();
    let mut alive = vec![true; candidates.len()];
    for &i in &by_precedence {
        let c = &candidates[i];
        if let Some((ip, owner)) = c
            .nets
            .iter()
            .find_map(|n| owners.get(&n.addr()).map(|o| (n.addr(), *o)))
        {
            alive[i] = false;
            conflicts.push(Conflict {
                virtual_ip: c.name.to_owned(),
                virtual_server: None,
                reason: ConflictReason::DuplicateAddress,
                message: format!(
                    "address {ip} is already used by VirtualIP '{owner}'; remove it from one \
                     of the two VirtualIPs"
                ),
            });
            continue;
        }
        for n in &c.nets {
            owners.insert(n.addr(), c.name);
        }
    }
    let candidates: Vec<Candidate<'_>> = candidates
        .into_iter()
        .zip(alive)
        .filter_map(|(c, ok)| ok.then_some(c))
        .collect();

    // 3. Instances: VirtualIPs sharing a virtual router are one.
    let groups = router::group(&candidates, &mut conflicts);

    // 4. VRIDs, one per instance.
    let claims: Vec<Claim<'_>> = groups
        .iter()
        .map(|g| {
            let leader = &candidates[g.members[0]];
            Claim {
                segment: segment_of(leader),
                explicit: leader.vip.spec.virtual_router_id,
                held: g.held,
                holders: g.holders,
                seniority: leader.seniority,
            }
        })
        .collect();
    let outcomes = vrid::allocate(&claims);

    // 5-7. Nodes, priorities, peers; the instances.
    let mut plan = Plan::default();
    // Specs by node index (nodes are in name order); empty ones are dropped at the end.
    let mut specs: Vec<VrrpNodeSpec> = vec![VrrpNodeSpec::default(); nodes.len()];
    let mut deployed: BTreeMap<&str, Deployed<'_, '_>> = BTreeMap::new();
    for ((g, claim), outcome) in groups.iter().zip(&claims).zip(outcomes) {
        let leader = &candidates[g.members[0]];
        let members = || g.members.iter().map(|&m| &candidates[m]);
        let vrid = match outcome {
            Outcome::Allocated(v) => v,
            Outcome::Taken { vrid, holder } => {
                conflicts.extend(members().map(|c| {
                    vrid_conflict(
                        c,
                        ConflictReason::VridTaken,
                        format!(
                            "VRID {vrid} on {} is already used by VirtualIP '{}'; pick \
                             another virtualRouterID or omit it to allocate one",
                            claim.segment, claims[holder].seniority.name
                        ),
                    )
                }));
                continue;
            }
            Outcome::Duplicate { vrid, holder } => {
                conflicts.extend(members().map(|c| {
                    vrid_conflict(
                        c,
                        ConflictReason::DuplicateVrid,
                        format!(
                            "VRID {vrid} on {} is also requested by VirtualIP '{}', which \
                             takes precedence (created earlier, or first by name); pick \
                             another virtualRouterID or omit it to allocate one",
                            claim.segment, claims[holder].seniority.name
                        ),
                    )
                }));
                continue;
            }
            Outcome::Exhausted => {
                conflicts.extend(members().map(|c| {
                    vrid_conflict(
                        c,
                        ConflictReason::VridsExhausted,
                        format!(
                            "all 255 VRIDs on {} are in use; set spec.interface to put this \
                             VirtualIP on another interface, share a VRID with \
                             spec.virtualRouter, or delete an unused VirtualIP",
                            claim.segment
                        ),
                    )
                }));
                continue;
            }
        };
        let (selected, excluded) = select(leader, &nodes, input.node_policy);
        let priorities = rank(leader, g.instance, &nodes, &selected);
        let allocation = Allocation {
            virtual_router_id: vrid,
            segment: claim.segment.clone(),
            priorities: selected
                .iter()
                .zip(&priorities)
                .map(|(&n, p)| (nodes[n].name.clone(), *p))
                .collect(),
            unreachable: excluded.iter().map(|&n| nodes[n].name.clone()).collect(),
            instance: g.router.then(|| g.instance.to_owned()),
        };
        for c in members() {
            plan.allocations
                .insert(c.name.to_owned(), allocation.clone());
        }
        if selected.is_empty() {
            let message = no_node_message(leader, nodes.len(), excluded.len());
            conflicts.extend(
                members()
                    .map(|c| vrid_conflict(c, ConflictReason::NoEligibleNode, message.clone())),
            );
            continue;
        }
        // A member whose address is a selected node's own is refused alone.
        let mut member_list: Vec<&Candidate<'_>> = Vec::new();
        for c in members() {
            match node_address_taken(c, &nodes, &selected) {
                Some(message) => {
                    conflicts.push(vrid_conflict(c, ConflictReason::NodeAddress, message));
                }
                None => member_list.push(c),
            }
        }
        if member_list.is_empty() {
            continue;
        }
        push_instances(
            &mut specs,
            &Instance {
                name: g.instance,
                members: &member_list,
                vrid,
            },
            &nodes,
            &selected,
            &priorities,
        );
        for &c in &member_list {
            deployed.insert(
                c.name,
                Deployed {
                    candidate: c,
                    instance: g.instance,
                    carriers: selected.clone(),
                },
            );
        }
    }

    // VirtualServers.
    let all_vips: BTreeSet<&str> = input
        .virtual_ips
        .iter()
        .filter_map(|v| v.metadata.name.as_deref())
        .collect();
    let backends = Backends::new(&input.endpoint_slices, &input.services);
    let mut services = unique_by_name(&input.virtual_servers, |v| v.metadata.name.as_deref());
    services.sort_by(|a, b| seniority_of(&a.metadata).cmp(&seniority_of(&b.metadata)));
    let mut served: BTreeMap<(&str, u16, &str), &str> = BTreeMap::new();
    let mut resolved: Vec<(&str, ResolvedVirtualServer)> = Vec::new();
    for vs in services {
        let vs_name = vs.metadata.name.as_deref().unwrap_or_default();
        let vip_name = vs.spec.virtual_ip_ref.as_str();
        let server_conflict = |reason, message| Conflict {
            virtual_ip: vip_name.to_owned(),
            virtual_server: Some(vs_name.to_owned()),
            reason,
            message,
        };
        let violations = vs.spec.validate();
        if !violations.is_empty() {
            conflicts.push(server_conflict(
                ConflictReason::Invalid,
                join_violations("VirtualServer", &violations),
            ));
            continue;
        }
        if !all_vips.contains(vip_name) {
            conflicts.push(server_conflict(
                ConflictReason::VirtualIpNotFound,
                format!(
                    "VirtualIP '{vip_name}' does not exist; create it or fix \
                     spec.virtualIPRef"
                ),
            ));
            continue;
        }
        let protocol = vs.spec.protocol.as_str();
        if let Some(first) = served.get(&(vip_name, vs.spec.port, protocol)) {
            conflicts.push(server_conflict(
                ConflictReason::DuplicateService,
                format!(
                    "VirtualServer '{first}' already serves {protocol} port {} on VirtualIP \
                     '{vip_name}'; change spec.port or spec.protocol, or delete one of them",
                    vs.spec.port
                ),
            ));
            continue;
        }
        served.insert((vip_name, vs.spec.port, protocol), vs_name);
        // A VirtualIP in conflict carries nothing; its own conflict says why.
        let Some(d) = deployed.get(vip_name) else {
            continue;
        };
        match backends.real_servers(&vs.spec, d.candidate.family) {
            Ok(real_servers) => {
                resolved.push((vip_name, resolve_server(vs_name, vs, d, real_servers)));
            }
            Err(message) => conflicts.push(server_conflict(
                ConflictReason::BackendPortUnresolved,
                message,
            )),
        }
    }
    resolved.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    for (vip_name, server) in resolved {
        if let Some(d) = deployed.get(vip_name) {
            for &n in &d.carriers {
                specs[n].virtual_servers.push(server.clone());
            }
        }
    }
    plan.nodes = nodes
        .iter()
        .zip(specs)
        .filter(|(_, spec)| !spec.instances.is_empty())
        .map(|(n, spec)| (n.name.clone(), spec))
        .collect();

    conflicts.sort_by(|a, b| {
        (&a.virtual_ip, &a.virtual_server, a.reason).cmp(&(
            &b.virtual_ip,
            &b.virtual_server,
            b.reason,
        ))
    });
    plan.conflicts = conflicts;
    plan
}

/// The objects in name order, each name once (the first given wins); nameless ones dropped.
fn unique_by_name<'a, T>(items: &[&'a T], name: impl Fn(&T) -> Option<&str>) -> Vec<&'a T> {
    let mut out: Vec<&'a T> = items
        .iter()
        .copied()
        .filter(|i| name(i).is_some_and(|n| !n.is_empty()))
        .collect();
    out.sort_by(|a, b| name(a).cmp(&name(b)));
    out.dedup_by(|later, earlier| name(later) == name(earlier));
    out
}

fn seniority_of(meta: &kube::api::ObjectMeta) -> Seniority<'_> {
    Seniority {
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
        name: meta.name.as_deref().unwrap_or_default(),
    }
}

fn join_violations(kind: &str, violations: &[kube_vrrp_crds::Violation]) -> String {
    let all: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!("{kind} is invalid: {}", all.join("; "))
}

/// Checks one VirtualIP (step 1).
fn candidate(vip: &VirtualIp) -> Result<Candidate<'_>, String> {
    let violations = vip.spec.validate();
    if !violations.is_empty() {
        return Err(join_violations("VirtualIP", &violations));
    }
    let nets = vip
        .spec
        .parsed_addresses()
        .map_err(|v| join_violations("VirtualIP", &v))?;
    let Some(first) = nets.first() else {
        return Err("VirtualIP is invalid: spec.addresses: needs at least one address".into());
    };
    let family = Family::of(first.addr());
    if vip.spec.version == VrrpVersion::V2 && family == Family::Ipv6 {
        return Err(
            "VirtualIP is invalid: spec.version: VRRPv2 carries IPv4 addresses only; use \
             version 3 for IPv6"
                .into(),
        );
    }
    let selector = vip
        .spec
        .node_selector
        .as_ref()
        .map(Selector::compile)
        .transpose()
        .map_err(|e| format!("VirtualIP is invalid: spec.nodeSelector: {e}"))?;
    let mut rules = Vec::new();
    for (i, r) in vip.spec.priorities.iter().enumerate() {
        let rule = match (&r.node_name, &r.node_selector) {
            (Some(name), _) => Rule::Name(name),
            (None, Some(sel)) => Rule::Labels(Selector::compile(sel).map_err(|e| {
                format!("VirtualIP is invalid: spec.priorities[{i}].nodeSelector: {e}")
            })?),
            (None, None) => {
                return Err(format!(
                    "VirtualIP is invalid: spec.priorities[{i}]: needs nodeName or nodeSelector"
                ));
            }
        };
        rules.push((rule, r.priority.clamp(1, 254)));
    }
    let seniority = seniority_of(&vip.metadata);
    Ok(Candidate {
        vip,
        name: seniority.name,
        nets,
        family,
        selector,
        rules,
        seniority,
        held: vip
            .status
            .as_ref()
            .and_then(|s| s.virtual_router_id)
            .filter(|&v| v != 0),
    })
}

fn segment_of(c: &Candidate<'_>) -> Segment {
    Segment {
        family: c.family,
        interface: c.vip.spec.interface.clone(),
    }
}

fn vrid_conflict(c: &Candidate<'_>, reason: ConflictReason, message: String) -> Conflict {
    Conflict {
        virtual_ip: c.name.to_owned(),
        virtual_server: None,
        reason,
        message,
    }
}

/// The indices of the eligible nodes (step 4), in name order, and of those that matched
/// the selector but were left out for lack of a unicast address.
///
/// Nodes the policy leaves out (NotReady, cordoned, excluded by label) hold none of the
/// VirtualIP's instances, so an instance on a node that turns unhealthy is removed and its
/// MASTER hands over with priority 0. If that would leave no node at all, the unhealthy
/// ones are kept: a VIP on a doubtful node beats no VIP (a cluster-wide NotReady, as when
/// the API server was unreachable for a while, must not take every VIP down).
fn select(c: &Candidate<'_>, nodes: &[NodeInfo], policy: NodePolicy) -> (Vec<usize>, Vec<usize>) {
    let mut excluded = Vec::new();
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if c.selector.as_ref().is_some_and(|s| !s.matches(&n.labels)) {
            continue;
        }
        if c.vip.spec.unicast && n.internal_ip(c.family).is_none() {
            excluded.push(i);
            continue;
        }
        if policy.leaves_out(n) {
            unhealthy.push(i);
        } else {
            healthy.push(i);
        }
    }
    let selected = if healthy.is_empty() {
        unhealthy
    } else {
        healthy
    };
    (selected, excluded)
}

/// Why the VirtualIP may not be deployed when one of its addresses is a selected node's own.
fn node_address_taken(c: &Candidate<'_>, nodes: &[NodeInfo], selected: &[usize]) -> Option<String> {
    selected.iter().find_map(|&n| {
        let node = &nodes[n];
        c.nets.iter().find_map(|net| {
            let (kind, _) = node.addresses.iter().find(|(_, ip)| *ip == net.addr())?;
            Some(format!(
                "address {} is node '{}''s own address ({kind}); a VirtualIP must not take a \
                 node's address (the agent would refuse it, and its MASTER elsewhere would \
                 duplicate it): use another address",
                net.addr(),
                node.name
            ))
        })
    })
}

fn no_node_message(c: &Candidate<'_>, total: usize, excluded: usize) -> String {
    if total == 0 {
        "there are no nodes to run on; this VirtualIP is deployed once nodes exist".to_owned()
    } else if excluded > 0 {
        format!(
            "{excluded} node(s) match, but none has an {} InternalIP, which unicast needs \
             as the peer address; give the nodes one or set unicast: false",
            c.family.as_str()
        )
    } else if c.selector.is_some() {
        format!(
            "spec.nodeSelector matches none of the {total} node(s); label a node to match \
             it or change spec.nodeSelector"
        )
    } else {
        "no node is eligible".to_owned()
    }
}

/// Priorities of the selected nodes (step 6), in the same order; unlisted nodes are ranked by
/// the instance's name.
fn rank(c: &Candidate<'_>, instance: &str, nodes: &[NodeInfo], selected: &[usize]) -> Vec<u8> {
    let mut out = vec![0; selected.len()];
    let mut unlisted = Vec::new();
    let mut unlisted_at = Vec::new();
    for (i, n) in selected.iter().map(|&n| &nodes[n]).enumerate() {
        let explicit = c.rules.iter().find_map(|(rule, p)| {
            let hit = match rule {
                Rule::Name(name) => *name == n.name,
                Rule::Labels(s) => s.matches(&n.labels),
            };
            hit.then_some(*p)
        });
        if let Some(p) = explicit {
            out[i] = p;
        } else {
            unlisted.push(n.name.as_str());
            unlisted_at.push(i);
        }
    }
    let ceiling = priority::ceiling(c.rules.iter().map(|(_, p)| *p));
    for (i, p) in unlisted_at
        .into_iter()
        .zip(priority::rank_unlisted(instance, ceiling, &unlisted))
    {
        out[i] = p;
    }
    out
}

/// Adds the instance to each selected node (step 7): the leader's settings, every member's
/// addresses.
fn push_instances(
    specs: &mut [VrrpNodeSpec],
    instance: &Instance<'_, '_>,
    nodes: &[NodeInfo],
    selected: &[usize],
    priorities: &[u8],
) {
    let leader = instance.members[0];
    let spec = &leader.vip.spec;
    let template = VrrpInstance {
        name: instance.name.to_owned(),
        interface: spec.interface.clone(),
        virtual_router_id: instance.vrid,
        version: spec.version,
        addresses: instance
            .members
            .iter()
            .flat_map(|m| m.vip.spec.addresses.iter().cloned())
            .collect(),
        priority: 0,
        advert_interval: spec.advert_interval.clone(),
        preempt: spec.preempt,
        preempt_delay: spec.preempt_delay.clone(),
        accept_mode: spec.accept_mode,
        unicast_peers: Vec::new(),
        authentication: spec.authentication.clone(),
        garp: spec.garp.clone().unwrap_or_default(),
        sync_group: spec.sync_group.clone(),
        use_virtual_mac: spec.use_virtual_mac,
        track: spec.track.clone().unwrap_or_default(),
    };
    let peers: Vec<String> = if spec.unicast {
        selected
            .iter()
            .filter_map(|&n| nodes[n].internal_ip(leader.family))
            .map(|ip| ip.to_string())
            .collect()
    } else {
        Vec::new()
    };
    for (i, (&n, p)) in selected.iter().zip(priorities).enumerate() {
        let mut inst = template.clone();
        inst.priority = *p;
        if spec.unicast {
            inst.unicast_peers = peers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect();
        }
        specs[n].instances.push(inst);
    }
}

fn resolve_server(
    name: &str,
    vs: &VirtualServer,
    d: &Deployed<'_, '_>,
    real_servers: Vec<kube_vrrp_crds::ResolvedRealServer>,
) -> ResolvedVirtualServer {
    let s = &vs.spec;
    ResolvedVirtualServer {
        name: name.to_owned(),
        virtual_ip: d.instance.to_owned(),
        addresses: d
            .candidate
            .nets
            .iter()
            .map(|n| n.addr().to_string())
            .collect(),
        port: s.port,
        protocol: s.protocol,
        scheduler: s.scheduler,
        scheduler_flags: s.scheduler_flags.clone(),
        forwarding: s.forwarding,
        tunnel: s.tunnel.clone(),
        persistence_timeout: s.persistence_timeout.clone(),
        persistence_granularity: s.persistence_granularity,
        quorum: s.quorum,
        sorry_server: s.sorry_server.clone(),
        inhibit_on_failure: s.inhibit_on_failure,
        real_servers,
        health_check: s.health_check.clone(),
    }
}
