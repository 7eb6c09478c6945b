//! The load balancing part of a pass, around the pure [`crate::load_balancer`]: before
//! planning, allocate and write the VirtualIPs of Service addresses (create, update, delete;
//! server-side apply) so that the pass plans with them; after folding, write each Service's
//! `status.loadBalancer.ingress`, its Events (address allocated, released, refused, MASTER
//! changed, split brain) and every pool's status.
//!
//! Writes run `Config::write_concurrency` at a time. What this replica wrote is remembered
//! with the `resourceVersion` the store held, so a store that lags behind a write neither
//! causes a second write nor a second Event.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, ObjectReference, Service};
use kube::api::{Api, DeleteParams, Patch};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use kube_vrrp_crds::{ServiceRef, VirtualIp, VirtualIpPool, VirtualIpPoolStatus};
use serde_json::json;

use super::sync::{apply_params, count_error, memory};
use super::{Context, Error, ErrorReason, Snapshot, SyncOutcome};
use crate::fold::{EventReason, EventSeverity, FoldEvent, held_addresses, is_fresh};
use crate::load_balancer::status::{ingress, pool_status};
use crate::load_balancer::{
    Failure, FailureReason, LbConfig, LbInput, LbPlan, allocate, is_managed, service_key,
};

/// One VirtualIP as the pass sees it: the store's object, or what this replica wrote; and
/// the `resourceVersion`s at which the store lags behind this replica's writes.
#[derive(Debug)]
pub(super) struct Seen<'a> {
    pub vip: Cow<'a, VirtualIp>,
    pub lagging: Vec<Option<String>>,
}

/// A VirtualIP spec this replica wrote: the store's `resourceVersion` then (`None`: it did not
/// exist), and the object the API server returned (`None`: deleted).
#[derive(Clone, Debug)]
pub(super) struct SpecWrite {
    before: Option<String>,
    object: Option<Arc<VirtualIp>>,
}

/// What the fold said of one VirtualIP made for Services.
#[derive(Clone, Debug, Default)]
pub(super) struct Folded {
    /// A node is MASTER of it.
    pub answering: bool,
    /// The planner deploys it; else why not.
    pub conflict: Option<String>,
    /// The Events its status change called for this pass (published on its Services).
    pub events: Vec<FoldEvent>,
    /// The VirtualIP, named as the related object of those Events.
    pub reference: ObjectReference,
}

/// The allocation of this pass.
pub(super) struct Allocation {
    pub plan: LbPlan,
}

/// Runs `f` over `items`, at most `limit` at a time; results in completion order. (The
/// futures are boxed: a stream of closures borrowing the pass would not be `Send` for every
/// lifetime, which the spawned controller needs.)
pub(super) async fn concurrently<'a, I, F, Fut, T>(items: I, limit: usize, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T> + Send + 'a,
    T: 'a,
{
    let futures: Vec<BoxFuture<'a, T>> = items.into_iter().map(f).map(FutureExt::boxed).collect();
    futures::stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// The store's VirtualIPs with this replica's spec writes laid over them where the store lags.
pub(super) fn overlay<'a>(ctx: &Context, snapshot: &'a Snapshot) -> Vec<Seen<'a>> {
    let mut mem = memory(ctx);
    let mut out = Vec::with_capacity(snapshot.virtual_ips.len());
    let mut stored = BTreeSet::new();
    for vip in &snapshot.virtual_ips {
        let name = vip.name_any();
        let rv = vip.metadata.resource_version.clone();
        stored.insert(name.clone());
        match mem.lb_specs.get(&name) {
            Some(write) if write.before == rv => {
                if let Some(object) = &write.object {
                    out.push(Seen {
                        vip: Cow::Owned(VirtualIp::clone(object)),
                        lagging: vec![rv, object.metadata.resource_version.clone()],
                    });
                }
            }
            Some(_) => {
                mem.lb_specs.remove(&name);
                out.push(Seen {
                    vip: Cow::Borrowed(vip),
                    lagging: vec![rv],
                });
            }
            None => out.push(Seen {
                vip: Cow::Borrowed(vip),
                lagging: vec![rv],
            }),
        }
    }
    // Created by this replica, not listed yet.
    mem.lb_specs.retain(|name, write| {
        if stored.contains(name) {
            return true;
        }
        match (&write.before, &write.object) {
            (None, Some(object)) => {
                out.push(Seen {
                    vip: Cow::Owned(VirtualIp::clone(object)),
                    lagging: vec![None, object.metadata.resource_version.clone()],
                });
                true
            }
            _ => false,
        }
    });
    out
}

/// Addresses that fresh VrrpNode reports say nodes hold.
fn held(ctx: &Context, snapshot: &Snapshot) -> Vec<IpAddr> {
    let mut out = BTreeSet::new();
    for node in &snapshot.vrrp_nodes {
        let Some(status) = node.status.as_ref() else {
            continue;
        };
        if !is_fresh(
            snapshot.now,
            status.heartbeat_time.as_ref(),
            ctx.config.fold.staleness,
        ) {
            continue;
        }
        for instance in &status.instances {
            out.extend(held_addresses(instance));
        }
    }
    out.into_iter().collect()
}

fn api_error(reason: ErrorReason, kind: &'static str, name: &str, source: kube::Error) -> Error {
    Error::Api {
        reason,
        kind,
        name: name.to_owned(),
        source,
    }
}

/// Allocates addresses, and creates, updates and deletes the VirtualIPs of Service addresses
/// so that `seen` holds what the pass plans with.
pub(super) async fn allocate_and_apply(
    ctx: &Context,
    config: &LbConfig,
    snapshot: &Snapshot,
    seen: &mut Vec<Seen<'_>>,
    outcome: &mut SyncOutcome,
    errors: &mut Vec<Error>,
) -> Allocation {
    let plan = allocate(
        &LbInput {
            pools: snapshot
                .virtual_ip_pools
                .iter()
                .map(AsRef::as_ref)
                .collect(),
            services: snapshot.services.iter().map(AsRef::as_ref).collect(),
            namespaces: snapshot.namespaces.iter().map(AsRef::as_ref).collect(),
            nodes: snapshot.nodes.iter().map(AsRef::as_ref).collect(),
            virtual_ips: seen.iter().map(|s| s.vip.as_ref()).collect(),
            held: held(ctx, snapshot),
            node_policy: ctx.config.nodes,
        },
        config,
    );

    // What differs: VirtualIPs to apply (name, object) and to delete (name).
    let by_name: BTreeMap<String, usize> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| (s.vip.name_any(), i))
        .collect();
    let mut to_apply = Vec::new();
    for (name, desired) in &plan.virtual_ips {
        let object = desired.object();
        let current = by_name.get(name).map(|&i| seen[i].vip.as_ref());
        let up_to_date = current.is_some_and(|c| {
            !is_managed(c)
                || (c.spec == object.spec
                    && ours(c.metadata.annotations.as_ref())
                        == ours(object.metadata.annotations.as_ref()))
        });
        if !up_to_date {
            to_apply.push(object);
        }
    }
    let to_delete: Vec<String> = seen
        .iter()
        .filter(|s| is_managed(&s.vip))
        .map(|s| s.vip.name_any())
        .filter(|name| !plan.virtual_ips.contains_key(name))
        .collect();

    let api: Api<VirtualIp> = Api::all(ctx.client.clone());
    let limit = ctx.config.write_concurrency;
    let applied = concurrently(to_apply, limit, |object| {
        let api = api.clone();
        async move {
            let name = object.name_any();
            if let Err(e) = ctx.fence() {
                return (name, Err(e));
            }
            let result = api
                .patch(&name, &apply_params(), &Patch::Apply(&object))
                .await
                .map_err(|e| api_error(ErrorReason::ApplyVirtualIp, "VirtualIP", &name, e));
            (name, result)
        }
    })
    .await;
    let deleted = concurrently(to_delete, limit, |name| {
        let api = api.clone();
        async move {
            if let Err(e) = ctx.fence() {
                return (name, Err(e));
            }
            let result = match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 404 => {
                    Ok(())
                }
                Err(e) => Err(api_error(
                    ErrorReason::DeleteVirtualIp,
                    "VirtualIP",
                    &name,
                    e,
                )),
            };
            (name, result)
        }
    })
    .await;

    let mut mem = memory(ctx);
    let mut gone = BTreeSet::new();
    for (name, result) in deleted {
        match result {
            Ok(()) => {
                let before = by_name
                    .get(&name)
                    .and_then(|&i| seen[i].lagging.first().cloned())
                    .flatten();
                mem.lb_specs.insert(
                    name.clone(),
                    SpecWrite {
                        before,
                        object: None,
                    },
                );
                outcome.virtual_ips_deleted.push(name.clone());
                gone.insert(name);
            }
            Err(e) => errors.push(e),
        }
    }
    for (name, result) in applied {
        match result {
            Ok(object) => {
                let object = Arc::new(object);
                let (before, lagging) = match by_name.get(&name) {
                    Some(&i) => {
                        let mut lagging = seen[i].lagging.clone();
                        lagging.push(object.metadata.resource_version.clone());
                        (seen[i].lagging.first().cloned().flatten(), lagging)
                    }
                    None => (None, vec![None, object.metadata.resource_version.clone()]),
                };
                mem.lb_specs.insert(
                    name.clone(),
                    SpecWrite {
                        before,
                        object: Some(Arc::clone(&object)),
                    },
                );
                let entry = Seen {
                    vip: Cow::Owned(VirtualIp::clone(&object)),
                    lagging,
                };
                match by_name.get(&name) {
                    Some(&i) => seen[i] = entry,
                    None => seen.push(entry),
                }
                outcome.virtual_ips_applied.push(name);
            }
            Err(e) => errors.push(e),
        }
    }
    drop(mem);
    seen.retain(|s| !gone.contains(&s.vip.name_any()));
    outcome.virtual_ips_applied.sort();
    outcome.virtual_ips_deleted.sort();
    Allocation { plan }
}

/// The annotations of ours on a VirtualIP (what the apply sets).
fn ours(annotations: Option<&BTreeMap<String, String>>) -> BTreeMap<&str, &str> {
    annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("kubevrrp.io/"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn ingress_ips(ingress: &[LoadBalancerIngress]) -> Vec<(Option<&str>, Option<&str>)> {
    ingress
        .iter()
        .map(|i| (i.ip.as_deref(), i.ip_mode.as_deref()))
        .collect()
}

/// `service`'s current ingress, or what this replica last wrote while the store lags.
fn current_ingress(ctx: &Context, service: &Service) -> Vec<LoadBalancerIngress> {
    let key = crate::load_balancer::service_ref(service);
    let stored = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let mut mem = memory(ctx);
    match mem.ingress.get(&key) {
        Some((rv, written)) if *rv == service.metadata.resource_version => written.clone(),
        Some(_) => {
            mem.ingress.remove(&key);
            stored
        }
        None => stored,
    }
}

async fn write_ingress(
    ctx: &Context,
    service: &Service,
    ingress: &[LoadBalancerIngress],
) -> Result<(), Error> {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let load_balancer = if ingress.is_empty() {
        json!({})
    } else {
        json!({ "ingress": ingress })
    };
    let body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"loadBalancer": load_balancer},
    });
    ctx.fence()?;
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map(drop)
        .map_err(|e| api_error(ErrorReason::WriteServiceStatus, "Service", &name, e))
}

/// One Event to publish on a Service.
struct ServiceEvent<'a> {
    service: &'a Service,
    warning: bool,
    reason: &'static str,
    note: String,
    /// The VirtualIP the Event is about, if any.
    related: Option<ObjectReference>,
}

async fn publish(ctx: &Context, event: ServiceEvent<'_>) -> Result<(), Error> {
    ctx.fence()?;
    let ev = Event {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason.to_owned(),
        note: Some(crate::fold::events::bounded_note(&event.note)),
        action: "AllocateAddress".to_owned(),
        secondary: event.related,
    };
    ctx.recorder
        .publish(&ev, &event.service.object_ref(&()))
        .await
        .map_err(|e| {
            api_error(
                ErrorReason::PublishEvent,
                "Service",
                &event.service.name_any(),
                e,
            )
        })
}

/// A pool's status, or what this replica last wrote while the store lags.
fn previous_pool_status(ctx: &Context, pool: &VirtualIpPool) -> Option<VirtualIpPoolStatus> {
    let name = pool.name_any();
    let mut mem = memory(ctx);
    match mem.pool_statuses.get(&name) {
        Some((rv, status)) if *rv == pool.metadata.resource_version => Some(status.clone()),
        Some(_) => {
            mem.pool_statuses.remove(&name);
            pool.status.clone()
        }
        None => pool.status.clone(),
    }
}

/// The Event reason for a fold event shown on a Service.
fn fold_reason(reason: EventReason) -> &'static str {
    reason.as_str()
}

/// After folding: every Service's ingress and Events, and every pool's status.
pub(super) async fn publish_results(
    ctx: &Context,
    snapshot: &Snapshot,
    allocation: &Allocation,
    folded: &BTreeMap<String, Folded>,
    outcome: &mut SyncOutcome,
    errors: &mut Vec<Error>,
) {
    let plan = &allocation.plan;
    let services: BTreeMap<ServiceRef, &Service> = snapshot
        .services
        .iter()
        .map(|s| (crate::load_balancer::service_ref(s), s.as_ref()))
        .collect();
    let limit = ctx.config.write_concurrency;

    // Ingress.
    let mut writes: Vec<(&Service, Vec<LoadBalancerIngress>)> = Vec::new();
    for (key, result) in &plan.services {
        let Some(service) = services.get(key).copied() else {
            continue;
        };
        let current = current_ingress(ctx, service);
        let shown: Vec<IpAddr> = current
            .iter()
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
            .collect();
        let wanted = ingress(
            result,
            |vip| folded.get(vip).is_some_and(|f| f.answering),
            |vip| folded.get(vip).is_some_and(|f| f.conflict.is_none()),
            &shown,
        );
        if ingress_ips(&wanted) != ingress_ips(&current) {
            writes.push((service, wanted));
        }
    }
    // Services we no longer serve lose the addresses of ours they show.
    let released: BTreeMap<&ServiceRef, BTreeSet<IpAddr>> =
        plan.releases.iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(&r.service).or_default().insert(r.address);
            m
        });
    for (key, addresses) in &released {
        if plan.services.contains_key(*key) {
            continue;
        }
        let Some(service) = services.get(*key).copied() else {
            continue;
        };
        let current = current_ingress(ctx, service);
        let kept: Vec<LoadBalancerIngress> = current
            .iter()
            .filter(|i| {
                i.ip.as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .is_none_or(|ip| !addresses.contains(&ip))
            })
            .cloned()
            .collect();
        if kept.len() != current.len() {
            writes.push((service, kept));
        }
    }
    let results = concurrently(writes, limit, |(service, wanted)| async move {
        let result = write_ingress(ctx, service, &wanted).await;
        (service, wanted, result)
    })
    .await;
    for (service, wanted, result) in results {
        match result {
            Ok(()) => {
                let key = crate::load_balancer::service_ref(service);
                memory(ctx).ingress.insert(
                    key.clone(),
                    (service.metadata.resource_version.clone(), wanted),
                );
                outcome.service_statuses.push(service_key(&key));
            }
            Err(e) => errors.push(e),
        }
    }
    outcome.service_statuses.sort();

    // Events.
    let mut events: Vec<ServiceEvent<'_>> = Vec::new();
    for (key, result) in &plan.services {
        let Some(service) = services.get(key).copied() else {
            continue;
        };
        for a in result.addresses.iter().filter(|a| a.new) {
            events.push(ServiceEvent {
                service,
                warning: false,
                reason: "AddressAllocated",
                note: format!(
                    "{} from VirtualIPPool {}, kept alive by VirtualIP {}",
                    a.address, a.pool, a.virtual_ip
                ),
                related: None,
            });
        }
        let mut failures: BTreeSet<Failure> = result.failures.iter().cloned().collect();
        for a in &result.addresses {
            if let Some(conflict) = folded.get(&a.virtual_ip).and_then(|f| f.conflict.clone()) {
                failures.insert(Failure {
                    family: Some(kube_vrrp_plan::Family::of(a.address)),
                    reason: FailureReason::NotDeployed,
                    message: format!("VirtualIP {} is not deployed: {conflict}", a.virtual_ip),
                });
            }
        }
        let known = memory(ctx).failures.get(key).cloned().unwrap_or_default();
        for f in failures.difference(&known) {
            events.push(ServiceEvent {
                service,
                warning: true,
                reason: f.reason.as_str(),
                note: f.message.clone(),
                related: None,
            });
        }
        memory(ctx).failures.insert(key.clone(), failures);
        for a in &result.addresses {
            let Some(f) = folded.get(&a.virtual_ip) else {
                continue;
            };
            for e in &f.events {
                events.push(ServiceEvent {
                    service,
                    warning: e.severity() == EventSeverity::Warning,
                    reason: fold_reason(e.reason),
                    note: e.note.clone(),
                    related: Some(f.reference.clone()),
                });
            }
        }
    }
    for r in &plan.releases {
        if let Some(service) = services.get(&r.service).copied() {
            events.push(ServiceEvent {
                service,
                warning: false,
                reason: "AddressReleased",
                note: format!("{} released: {}", r.address, r.why),
                related: None,
            });
        }
    }
    memory(ctx)
        .failures
        .retain(|key, _| plan.services.contains_key(key));
    let published = concurrently(events, limit, |event| publish(ctx, event)).await;
    for result in published {
        match result {
            Ok(()) => outcome.events += 1,
            // An Event is best effort: counted, but the pass goes on.
            Err(e) => count_error(ctx, &e),
        }
    }

    // Pool statuses.
    let mut pool_writes = Vec::new();
    for pool in &snapshot.virtual_ip_pools {
        let name = pool.name_any();
        let Some(report) = plan.pools.get(&name) else {
            continue;
        };
        let previous = previous_pool_status(ctx, pool);
        let status = pool_status(
            report,
            previous.as_ref(),
            snapshot.now,
            pool.metadata.generation,
        );
        if previous.as_ref() != Some(&status) {
            pool_writes.push((pool.as_ref(), status));
        }
    }
    let api: Api<VirtualIpPool> = Api::all(ctx.client.clone());
    let results = concurrently(pool_writes, limit, |(pool, status)| {
        let api = api.clone();
        async move {
            let name = pool.name_any();
            let body = json!({
                "apiVersion": kube_vrrp_crds::API_VERSION,
                "kind": "VirtualIPPool",
                "metadata": {"name": name},
                "status": status,
            });
            if let Err(e) = ctx.fence() {
                return (pool, status, Err(e));
            }
            let result = api
                .patch_status(&name, &apply_params(), &Patch::Apply(&body))
                .await
                .map(drop)
                .map_err(|e| api_error(ErrorReason::WritePoolStatus, "VirtualIPPool", &name, e));
            (pool, status, result)
        }
    })
    .await;
    for (pool, status, result) in results {
        match result {
            Ok(()) => {
                memory(ctx).pool_statuses.insert(
                    pool.name_any(),
                    (pool.metadata.resource_version.clone(), status),
                );
                outcome.pool_statuses.push(pool.name_any());
            }
            Err(e) => errors.push(e),
        }
    }
    outcome.pool_statuses.sort();
}
