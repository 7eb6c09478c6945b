//! The sync pass: plan, apply VrrpNodes that differ, delete VrrpNodes without work, write
//! VirtualIP and VirtualServer statuses that changed, publish Events, and update the gauges.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{MutexGuard, PoisonError};

use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use kube_vrrp_crds::condition;
use kube_vrrp_crds::{
    API_VERSION, ROLL_CALL_ANNOTATION, ResolvedVirtualServer, VirtualIp, VirtualIpPhase,
    VirtualIpStatus, VirtualServer, VirtualServerStatus, VrrpNode, VrrpNodeSpec,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::digest::{SPEC_DIGEST_ANNOTATION, spec_digest};
use super::load_balancers::{self, Seen};
use super::{Context, Error, ErrorReason, FIELD_MANAGER, Memory, Snapshot, SyncOutcome};
use crate::fold::{
    ConflictNote, EventBudget, EventReason, EventSeverity, FoldEvent, Placement, Reports,
    ServerView, fold_reports, fold_virtual_server, server_events,
};
use crate::load_balancer::is_managed;
use crate::metrics::{
    ErrorLabels, NodeLabels, SYNC_CONTROLLER, VirtualIpConditionLabels, VirtualIpLabels,
};
use kube_vrrp_plan::{Objects, Plan, plan_objects};

/// What the planner decided for `virtual_ip`, as folding needs it. Only the VirtualIP's own
/// conflicts count (a broken VirtualServer does not make its VirtualIP conflict); several are
/// joined, the first giving the reason.
pub fn placement_of(plan: &Plan, virtual_ip: &str) -> Placement {
    let allocation = plan.allocations.get(virtual_ip);
    let own: Vec<_> = plan
        .conflicts_of(virtual_ip)
        .filter(|c| c.virtual_server.is_none())
        .collect();
    let conflict = own.first().map(|first| ConflictNote {
        reason: first.reason.as_str(),
        message: own
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    });
    let selected = match (allocation, &conflict) {
        (Some(a), None) => a.priorities.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let instance = match (allocation, &conflict) {
        (Some(a), None) => a.instance.clone(),
        _ => None,
    };
    Placement {
        virtual_router_id: allocation.map(|a| a.virtual_router_id),
        selected,
        conflict,
        instance,
        unwritten: BTreeMap::new(),
    }
}

/// What the API answered when it refused a write: its status message (`forbidden: ...`,
/// `etcdserver: request is too large`), or the client's error.
fn refusal(e: &Error) -> String {
    match e {
        Error::Api {
            source: kube::Error::Api(status),
            ..
        } => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// An object for server-side apply: identity plus the one part we own.
#[derive(Debug, Serialize)]
struct Applied<'a, T: Serialize + std::fmt::Debug> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Name<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a T>,
}

#[derive(Debug, Serialize)]
struct Name<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'static str, &'a str>>,
}

pub(super) fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

pub(super) fn memory(ctx: &Context) -> MutexGuard<'_, Memory> {
    ctx.memory.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `seen` with the status this replica last wrote, while the store still lags behind it (a
/// copy only then).
fn status_as_written(ctx: &Context, seen: &mut Seen<'_>) {
    let name = seen.vip.name_any();
    let store_rv = seen.lagging.first().cloned().flatten();
    let mut mem = memory(ctx);
    match mem.statuses.get(&name) {
        Some((lagging, status))
            if lagging.contains(&store_rv) && seen.vip.status.as_ref() != Some(status) =>
        {
            seen.vip.to_mut().status = Some(status.clone());
        }
        Some((lagging, _)) if lagging.contains(&store_rv) => {}
        Some(_) => {
            mem.statuses.remove(&name);
        }
        None => {}
    }
}

/// `vs` with the status this replica last wrote, while the store still lags behind it (a
/// copy only then).
fn server_as_written<'a>(ctx: &Context, vs: &'a VirtualServer) -> Cow<'a, VirtualServer> {
    let name = vs.name_any();
    let mut mem = memory(ctx);
    match mem.server_statuses.get(&name) {
        Some((rv, status)) if *rv == vs.metadata.resource_version => {
            let mut v = vs.clone();
            v.status = Some(status.clone());
            Cow::Owned(v)
        }
        Some(_) => {
            mem.server_statuses.remove(&name);
            Cow::Borrowed(vs)
        }
        None => Cow::Borrowed(vs),
    }
}

/// Whether the VrrpNode `current` holds `planned` (of digest `digest`): its digest annotation
/// says so and nobody edited the spec since this replica applied it, or (a store that keeps
/// specs) its spec is equal.
fn holds(
    current: &VrrpNode,
    planned: &VrrpNodeSpec,
    digest: &str,
    applied: Option<&(Option<String>, String, Option<i64>)>,
) -> bool {
    let annotated = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SPEC_DIGEST_ANNOTATION))
        .is_some_and(|d| d == digest);
    let edited_since = applied.is_some_and(|(_, ours, generation)| {
        ours == digest && generation.is_some() && current.metadata.generation > *generation
    });
    (annotated && !edited_since) || current.spec == *planned
}

/// The planner's conflicts of VirtualServer `name`, joined.
fn server_conflict(plan: &Plan, name: &str) -> Option<ConflictNote> {
    let own: Vec<_> = plan
        .conflicts
        .iter()
        .filter(|c| c.virtual_server.as_deref() == Some(name))
        .collect();
    own.first().map(|first| ConflictNote {
        reason: first.reason.as_str(),
        message: own
            .iter()
            .map(|c| c.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// VirtualServer `name` as planned: on `master`'s node if it carries it, else on any node.
fn resolved_server<'a>(
    plan: &'a Plan,
    name: &str,
    master: Option<&str>,
) -> Option<&'a ResolvedVirtualServer> {
    let on = |spec: &'a VrrpNodeSpec| spec.virtual_servers.iter().find(|r| r.name == name);
    master
        .and_then(|m| plan.nodes.get(m))
        .and_then(on)
        .or_else(|| plan.nodes.values().find_map(on))
}

/// Applies `spec` (and its digest annotation) to VrrpNode `name`; returns the generation the
/// API server gave it.
async fn apply_vrrp_node(
    ctx: &Context,
    name: &str,
    spec: &VrrpNodeSpec,
    digest: &str,
) -> Result<Option<i64>, Error> {
    ctx.fence()?;
    let api: Api<VrrpNode> = Api::all(ctx.client.clone());
    let body = Applied {
        api_version: API_VERSION,
        kind: "VrrpNode",
        metadata: Name {
            name,
            annotations: Some([(SPEC_DIGEST_ANNOTATION, digest)].into()),
        },
        spec: Some(spec),
        status: None,
    };
    api.patch(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(|applied| applied.metadata.generation)
        .map_err(|source| Error::Api {
            reason: ErrorReason::ApplyVrrpNode,
            kind: "VrrpNode",
            name: name.to_owned(),
            source,
        })
}

async fn delete_vrrp_node(ctx: &Context, name: &str) -> Result<(), Error> {
    ctx.fence()?;
    let api: Api<VrrpNode> = Api::all(ctx.client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 404 => Ok(()),
        Err(source) => Err(Error::Api {
            reason: ErrorReason::DeleteVrrpNode,
            kind: "VrrpNode",
            name: name.to_owned(),
            source,
        }),
    }
}

/// The roll calls still to make: of `wanted` (node → superseding transition time), those
/// whose VrrpNode does not already carry that time or a later one in its annotation, and
/// that this replica has not already sent (its store may lag behind its own patch).
fn roll_calls_to_send(
    wanted: &BTreeMap<String, Timestamp>,
    vrrp_nodes: &BTreeMap<&str, &VrrpNode>,
    sent: &std::collections::HashMap<String, Timestamp>,
) -> Vec<(String, Timestamp)> {
    wanted
        .iter()
        .filter(|(node, at)| {
            let annotated = vrrp_nodes
                .get(node.as_str())
                .and_then(|n| n.metadata.annotations.as_ref())
                .and_then(|a| a.get(ROLL_CALL_ANNOTATION))
                .and_then(|v| v.parse::<Timestamp>().ok());
            vrrp_nodes.contains_key(node.as_str())
                && annotated.is_none_or(|a| a < **at)
                && sent.get(*node).is_none_or(|s| s < *at)
        })
        .map(|(node, at)| (node.clone(), *at))
        .collect()
}

/// Asks the agent of `node` to report now, echoing `at` (a metadata-only merge patch: the
/// spec and its generation are untouched).
async fn call_the_roll(ctx: &Context, node: &str, at: Timestamp) -> Result<(), Error> {
    ctx.fence()?;
    let api: Api<VrrpNode> = Api::all(ctx.client.clone());
    let patch = serde_json::json!({
        "metadata": {"annotations": {ROLL_CALL_ANNOTATION: at.to_string()}}
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(node, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| Error::Api {
            reason: ErrorReason::RollCall,
            kind: "VrrpNode",
            name: node.to_owned(),
            source,
        })
}

async fn write_status<K, S>(
    ctx: &Context,
    kind: &'static str,
    name: &str,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + std::fmt::Debug,
{
    ctx.fence()?;
    let api: Api<K> = Api::all(ctx.client.clone());
    let body = Applied {
        api_version: API_VERSION,
        kind,
        metadata: Name {
            name,
            annotations: None,
        },
        spec: None,
        status: Some(status),
    };
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(drop)
        .map_err(|source| Error::Api {
            reason: ErrorReason::WriteStatus,
            kind,
            name: name.to_owned(),
            source,
        })
}

async fn publish<K>(
    ctx: &Context,
    kind: &'static str,
    object: &K,
    event: &FoldEvent,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>,
{
    ctx.fence()?;
    let ev = Event {
        type_: match event.severity() {
            EventSeverity::Normal => EventType::Normal,
            EventSeverity::Warning => EventType::Warning,
        },
        reason: event.reason.as_str().to_owned(),
        note: Some(crate::fold::events::bounded_note(&event.note)),
        action: "UpdateStatus".to_owned(),
        secondary: None,
    };
    ctx.recorder
        .publish(&ev, &object.object_ref(&()))
        .await
        .map_err(|source| Error::Api {
            reason: ErrorReason::PublishEvent,
            kind,
            name: object.meta().name.clone().unwrap_or_default(),
            source,
        })
}

/// Whether `status`, the first of VirtualIP `vip` made for a Service, only says that no node
/// has reported it yet, while nodes still have time to: not written (the Service shows no
/// ingress meanwhile), so a new Service costs one status write, not a "Pending" and then a
/// "Ready". Written as it is once the VirtualIP is older than the apply grace.
fn not_yet_reported(
    ctx: &Context,
    now: Timestamp,
    vip: &VirtualIp,
    status: &VirtualIpStatus,
) -> bool {
    vip.status.is_none()
        && status.state == Some(VirtualIpPhase::Pending)
        && vip
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|created| now.duration_since(created.0) <= ctx.config.fold.apply_grace)
}

/// Whether a VirtualIP made for Services publishes `event` on itself too, not only on its
/// Services: a split brain, which `kubectl describe vip` must show as well.
fn on_both(event: &FoldEvent) -> bool {
    matches!(
        event.reason,
        EventReason::SplitBrain | EventReason::SplitBrainResolved
    )
}

pub(super) fn count_error(ctx: &Context, e: &Error) {
    tracing::warn!(reason = e.reason().as_str(), error = %e, "sync write failed");
    ctx.metrics
        .reconcile_errors_total
        .get_or_create(&ErrorLabels {
            controller: SYNC_CONTROLLER,
            reason: e.reason().as_str(),
        })
        .inc();
}

/// One global pass over `snapshot`. A replica that is not the leader writes nothing and
/// exports no per-VirtualIP or per-node gauges. A failed write does not stop the pass; every
/// failure is logged and counted, and the first one is returned.
pub async fn sync(ctx: &Context, snapshot: &Snapshot) -> Result<SyncOutcome, Error> {
    if !ctx.is_leader() {
        ctx.metrics.clear_views();
        *memory(ctx) = Memory::default();
        return Ok(SyncOutcome::default());
    }
    let mut outcome = SyncOutcome {
        leader: true,
        ..SyncOutcome::default()
    };
    let mut errors: Vec<Error> = Vec::new();

    // The VirtualIPs this pass plans with: the store's, with what this replica wrote where
    // the store lags; first the VirtualIPs of LoadBalancer Services are brought in line.
    let mut seen: Vec<Seen<'_>> = if ctx.config.load_balancers.is_some() {
        load_balancers::overlay(ctx, snapshot)
    } else {
        snapshot
            .virtual_ips
            .iter()
            .map(|v| Seen {
                vip: Cow::Borrowed(v.as_ref()),
                lagging: vec![v.metadata.resource_version.clone()],
            })
            .collect()
    };
    let allocation = match &ctx.config.load_balancers {
        Some(config) => Some(
            load_balancers::allocate_and_apply(
                ctx,
                config,
                snapshot,
                &mut seen,
                &mut outcome,
                &mut errors,
            )
            .await,
        ),
        None => None,
    };
    for s in &mut seen {
        status_as_written(ctx, s);
    }
    let objects = Objects {
        virtual_ips: seen.iter().map(|s| s.vip.as_ref()).collect(),
        virtual_servers: snapshot.virtual_servers.iter().map(AsRef::as_ref).collect(),
        nodes: snapshot.nodes.iter().map(AsRef::as_ref).collect(),
        endpoint_slices: snapshot.endpoint_slices.iter().map(AsRef::as_ref).collect(),
        services: snapshot.services.iter().map(AsRef::as_ref).collect(),
        node_policy: ctx.config.nodes,
    };
    let plan = plan_objects(&objects);
    outcome.conflicts = plan.conflicts.len();

    // VrrpNodes.
    let existing: BTreeMap<&str, &VrrpNode> = snapshot
        .vrrp_nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n.as_ref())))
        .collect();
    let mut unwritten: BTreeMap<String, String> = BTreeMap::new();
    for (name, spec) in &plan.nodes {
        let digest = spec_digest(spec);
        let current = existing.get(name.as_str());
        let applied = memory(ctx).specs.get(name).cloned();
        if current.is_some_and(|c| holds(c, spec, &digest, applied.as_ref())) {
            continue;
        }
        let rv = current.and_then(|c| c.metadata.resource_version.clone());
        if applied
            .as_ref()
            .is_some_and(|(at, ours, _)| *at == rv && *ours == digest)
        {
            continue;
        }
        match apply_vrrp_node(ctx, name, spec, &digest).await {
            Ok(generation) => {
                let mut mem = memory(ctx);
                mem.specs.insert(name.clone(), (rv, digest, generation));
                mem.deleted.remove(name);
                outcome.applied.push(name.clone());
            }
            Err(e) => {
                unwritten.insert(name.clone(), refusal(&e));
                errors.push(e);
            }
        }
    }
    for (name, node) in &existing {
        if plan.nodes.contains_key(*name) {
            continue;
        }
        let rv = node.metadata.resource_version.clone();
        if memory(ctx).deleted.get(*name) == Some(&rv) {
            continue;
        }
        match delete_vrrp_node(ctx, name).await {
            Ok(()) => {
                let mut mem = memory(ctx);
                mem.deleted.insert((*name).to_owned(), rv);
                mem.specs.remove(*name);
                outcome.deleted.push((*name).to_owned());
            }
            Err(e) => errors.push(e),
        }
    }

    // VirtualIP statuses, Events and gauges.
    let mut vip_names = BTreeSet::new();
    let mut masters: BTreeMap<String, String> = BTreeMap::new();
    let mut roll_calls: BTreeMap<String, Timestamp> = BTreeMap::new();
    let reports = Reports::new(snapshot.now, &ctx.config.fold, &snapshot.vrrp_nodes);
    let mut lb_folded: BTreeMap<String, load_balancers::Folded> = BTreeMap::new();
    let mut status_writes = Vec::new();
    for s in &seen {
        let vip = s.vip.as_ref();
        let Some(name) = vip.metadata.name.as_deref() else {
            continue;
        };
        vip_names.insert(name.to_owned());
        let mut placement = placement_of(&plan, name);
        placement.unwritten = unwritten
            .iter()
            .filter(|(node, _)| placement.selected.contains(*node))
            .map(|(node, why)| (node.clone(), why.clone()))
            .collect();
        let folded = fold_reports(vip, &placement, &reports);
        if let [only] = folded.fresh_masters.as_slice() {
            masters.insert(name.to_owned(), only.clone());
        }
        for (node, at) in &folded.roll_calls {
            let latest = roll_calls.entry(node.clone()).or_insert(*at);
            *latest = (*latest).max(*at);
        }
        let labels = VirtualIpLabels {
            virtualip: name.to_owned(),
        };
        ctx.metrics
            .virtualip_masters
            .get_or_create(&labels)
            .set(i64::try_from(folded.fresh_masters.len()).unwrap_or(i64::MAX));
        ctx.metrics
            .virtualip_ready
            .get_or_create(&labels)
            .set(i64::from(folded.ready()));
        for condition in &folded.status.conditions {
            ctx.metrics
                .virtualip_condition
                .get_or_create(&VirtualIpConditionLabels {
                    virtualip: name.to_owned(),
                    condition: condition.type_.clone(),
                })
                .set(i64::from(condition.status == "True"));
        }
        let managed = allocation.is_some() && is_managed(vip);
        if managed {
            lb_folded.insert(
                name.to_owned(),
                load_balancers::Folded {
                    answering: !folded.fresh_masters.is_empty(),
                    conflict: placement.conflict.as_ref().map(|c| c.message.clone()),
                    events: Vec::new(),
                    reference: vip.object_ref(&()),
                },
            );
        }
        if vip.status.as_ref() == Some(&folded.status)
            || (managed && not_yet_reported(ctx, snapshot.now, vip, &folded.status))
        {
            continue;
        }
        status_writes.push((s, name, managed, folded));
    }
    // Written `write_concurrency` at a time, each followed by its Events. The Events of a
    // VirtualIP made for Services are published on its Services instead (with the VirtualIP
    // as the related object): one Event per change, where `kubectl describe svc` shows it.
    let written = load_balancers::concurrently(
        status_writes,
        ctx.config.write_concurrency,
        |(s, name, managed, folded)| async move {
            let result = write_status::<VirtualIp, _>(ctx, "VirtualIP", name, &folded.status).await;
            let mut published = 0;
            if result.is_ok() {
                for event in folded.events.iter().filter(|e| !managed || on_both(e)) {
                    match publish(ctx, "VirtualIP", s.vip.as_ref(), event).await {
                        Ok(()) => published += 1,
                        // An Event is best effort: counted, but the status is written.
                        Err(e) => count_error(ctx, &e),
                    }
                }
            }
            (s, name, folded, result, published)
        },
    )
    .await;
    for (s, name, folded, result, published) in written {
        outcome.events += published;
        match result {
            Ok(()) => {
                memory(ctx)
                    .statuses
                    .insert(name.to_owned(), (s.lagging.clone(), folded.status));
                outcome.statuses.push(name.to_owned());
                if let Some(f) = lb_folded.get_mut(name) {
                    f.events = folded.events;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    outcome.statuses.sort();

    // Roll calls: superseded MASTERs are asked whether they are alive (see `fold`).
    let sent = memory(ctx).roll_calls.clone();
    for (node, at) in roll_calls_to_send(&roll_calls, &existing, &sent) {
        match call_the_roll(ctx, &node, at).await {
            Ok(()) => {
                memory(ctx).roll_calls.insert(node.clone(), at);
                outcome.roll_calls.push(node);
            }
            Err(e) => errors.push(e),
        }
    }

    // LoadBalancer Services: ingress, Events; pools: status.
    if let Some(allocation) = &allocation {
        load_balancers::publish_results(
            ctx,
            snapshot,
            allocation,
            &lb_folded,
            &mut outcome,
            &mut errors,
        )
        .await;
    }

    // VirtualServer statuses, as the MASTER of their VirtualIP sees them.
    for stored in &snapshot.virtual_servers {
        let vs = server_as_written(ctx, stored);
        let Some(name) = vs.metadata.name.as_deref() else {
            continue;
        };
        let master = masters.get(&vs.spec.virtual_ip_ref).map(String::as_str);
        let report = master.and_then(|m| {
            snapshot
                .vrrp_nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(m))
                .and_then(|n| n.status.as_ref())
                .map(|s| (m, s))
        });
        let conflict = server_conflict(&plan, name);
        let status: VirtualServerStatus = fold_virtual_server(
            snapshot.now,
            &vs,
            &ServerView {
                conflict: conflict.as_ref(),
                resolved: resolved_server(&plan, name, master),
                master: report,
            },
        );
        if vs.status.as_ref() == Some(&status) {
            continue;
        }
        match write_status::<VirtualServer, _>(ctx, "VirtualServer", name, &status).await {
            Ok(()) => {
                let events = server_events::diff(name, vs.status.as_ref(), &status);
                let events = memory(ctx)
                    .server_event_budgets
                    .entry(name.to_owned())
                    .or_insert_with(|| EventBudget::new(snapshot.now))
                    .admit(snapshot.now, events);
                memory(ctx).server_statuses.insert(
                    name.to_owned(),
                    (stored.metadata.resource_version.clone(), status),
                );
                outcome.server_statuses.push(name.to_owned());
                for event in &events {
                    match publish(ctx, "VirtualServer", stored.as_ref(), event).await {
                        Ok(()) => outcome.events += 1,
                        // An Event is best effort: counted, but the status is written.
                        Err(e) => count_error(ctx, &e),
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }

    // Heartbeat ages.
    let mut node_names = BTreeSet::new();
    for vn in &snapshot.vrrp_nodes {
        let (Some(name), Some(heartbeat)) = (
            vn.metadata.name.as_deref(),
            vn.status.as_ref().and_then(|s| s.heartbeat_time.as_ref()),
        ) else {
            continue;
        };
        node_names.insert(name.to_owned());
        let age = snapshot
            .now
            .duration_since(heartbeat.0)
            .as_secs_f64()
            .max(0.0);
        ctx.metrics
            .vrrpnode_heartbeat_age_seconds
            .get_or_create(&NodeLabels {
                node: name.to_owned(),
            })
            .set(age);
    }
    {
        let mut mem = memory(ctx);
        for gone in mem.exported_vips.difference(&vip_names) {
            ctx.metrics.virtualip_masters.remove(&VirtualIpLabels {
                virtualip: gone.clone(),
            });
            ctx.metrics.virtualip_ready.remove(&VirtualIpLabels {
                virtualip: gone.clone(),
            });
            for type_ in [
                condition::READY,
                condition::SPLIT_BRAIN,
                condition::DEGRADED,
                condition::CONFLICT,
            ] {
                ctx.metrics
                    .virtualip_condition
                    .remove(&VirtualIpConditionLabels {
                        virtualip: gone.clone(),
                        condition: type_.to_owned(),
                    });
            }
        }
        for gone in mem.exported_nodes.difference(&node_names) {
            ctx.metrics
                .vrrpnode_heartbeat_age_seconds
                .remove(&NodeLabels { node: gone.clone() });
        }
        // Forget writes about objects that are gone.
        mem.statuses.retain(|name, _| vip_names.contains(name));
        let servers: BTreeSet<&str> = snapshot
            .virtual_servers
            .iter()
            .filter_map(|v| v.metadata.name.as_deref())
            .collect();
        mem.server_statuses
            .retain(|name, _| servers.contains(name.as_str()));
        mem.server_event_budgets
            .retain(|name, _| servers.contains(name.as_str()));
        mem.specs.retain(|name, _| plan.nodes.contains_key(name));
        mem.deleted
            .retain(|name, _| existing.contains_key(name.as_str()));
        mem.roll_calls
            .retain(|name, _| existing.contains_key(name.as_str()));
        mem.exported_vips = vip_names;
        mem.exported_nodes = node_names;
    }

    for e in &errors {
        count_error(ctx, e);
    }
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(outcome),
    }
}
