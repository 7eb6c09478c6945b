//! Feeding the sync pass: reflectors over VirtualIP, VirtualServer, Node, Service and
//! VrrpNode (and, with load balancing, VirtualIPPool and Namespace) fill in-memory stores, each object stripped to what a pass reads
//! ([`super::strip`]); the EndpointSlices of the backend Services only are followed by
//! [`BackendSlices`]. Any change, a periodic resync or a change of leadership triggers one
//! debounced pass over `Arc`s shared with the stores (no copies); a failed pass is retried
//! with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use kube_vrrp_crds::{VirtualIp, VirtualIpPool, VirtualServer, VrrpNode};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until};

use super::slices::{BackendSlices, backend_names};
use super::{Context, Error, Snapshot, strip, sync};
use crate::metrics::{ControllerLabels, ErrorLabels, SYNC_CONTROLLER};

/// The stores the pass reads.
struct Stores {
    virtual_ips: Store<VirtualIp>,
    virtual_servers: Store<VirtualServer>,
    nodes: Store<Node>,
    services: Store<Service>,
    vrrp_nodes: Store<VrrpNode>,
    slices: BackendSlices,
    /// Pools and namespaces, with load balancing only.
    load_balancing: Option<(Store<VirtualIpPool>, Store<Namespace>)>,
}

impl Stores {
    fn snapshot(&self) -> Snapshot {
        let virtual_servers = self.virtual_servers.state();
        // The slices of the Services named now; a new set is listed before the next pass.
        self.slices
            .want(backend_names(virtual_servers.iter().map(AsRef::as_ref)));
        Snapshot {
            now: jiff::Timestamp::now(),
            virtual_ips: self.virtual_ips.state(),
            virtual_servers,
            nodes: self.nodes.state(),
            endpoint_slices: self.slices.snapshot(),
            services: self.services.state(),
            virtual_ip_pools: self
                .load_balancing
                .as_ref()
                .map(|(pools, _)| pools.state())
                .unwrap_or_default(),
            namespaces: self
                .load_balancing
                .as_ref()
                .map(|(_, namespaces)| namespaces.state())
                .unwrap_or_default(),
            vrrp_nodes: self.vrrp_nodes.state(),
        }
    }

    async fn wait_until_ready(&self) -> Result<(), Error> {
        let stopped = |kind| move |_| Error::WatchStopped(kind);
        self.virtual_ips
            .wait_until_ready()
            .await
            .map_err(stopped("VirtualIP"))?;
        self.virtual_servers
            .wait_until_ready()
            .await
            .map_err(stopped("VirtualServer"))?;
        self.nodes
            .wait_until_ready()
            .await
            .map_err(stopped("Node"))?;
        self.services
            .wait_until_ready()
            .await
            .map_err(stopped("Service"))?;
        self.vrrp_nodes
            .wait_until_ready()
            .await
            .map_err(stopped("VrrpNode"))?;
        if let Some((pools, namespaces)) = &self.load_balancing {
            pools
                .wait_until_ready()
                .await
                .map_err(stopped("VirtualIPPool"))?;
            namespaces
                .wait_until_ready()
                .await
                .map_err(stopped("Namespace"))?;
        }
        self.slices.want(backend_names(
            self.virtual_servers.state().iter().map(AsRef::as_ref),
        ));
        if !self.slices.wait_until_listed().await {
            return Err(Error::WatchStopped("EndpointSlice"));
        }
        Ok(())
    }
}

type Changes = SelectAll<BoxStream<'static, Result<(), watcher::Error>>>;

/// Objects per page of a list. VrrpNodes are big before they are stripped (one resolved
/// instance per VirtualIP of the node, in spec and status): small pages keep the list's
/// transient memory small.
const LIST_PAGE: u32 = 500;
const VRRP_NODE_LIST_PAGE: u32 = 10;

/// A reflector store of `api`'s objects, listed `page` at a time, each passed through `strip`
/// first.
fn watch<K>(api: Api<K>, page: u32, strip: fn(&mut K), changes: &mut Changes) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default().page_size(page)).modify(strip),
    )
    .backoff(kube_vrrp_crds::watch_backoff::WatchBackoff::default())
    .map_ok(drop)
    .boxed();
    changes.push(stream);
    reader
}

/// Runs the controller until a watch stops for good. `ready` turns true once every store
/// has listed its objects (the `/readyz` answer).
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) -> Result<(), Error> {
    let client: Client = ctx.client.clone();
    let mut changes = Changes::new();
    let (trigger, mut triggered) = mpsc::channel::<()>(1);
    let stores = Stores {
        virtual_ips: watch(
            Api::all(client.clone()),
            LIST_PAGE,
            strip::virtual_ip,
            &mut changes,
        ),
        virtual_servers: watch(
            Api::all(client.clone()),
            LIST_PAGE,
            strip::virtual_server,
            &mut changes,
        ),
        nodes: watch(
            Api::all(client.clone()),
            LIST_PAGE,
            strip::node,
            &mut changes,
        ),
        services: watch(
            Api::all(client.clone()),
            LIST_PAGE,
            strip::service,
            &mut changes,
        ),
        vrrp_nodes: watch(
            Api::all(client.clone()),
            VRRP_NODE_LIST_PAGE,
            strip::vrrp_node,
            &mut changes,
        ),
        load_balancing: ctx.config.load_balancers.as_ref().map(|_| {
            (
                watch(
                    Api::all(client.clone()),
                    LIST_PAGE,
                    strip::virtual_ip_pool,
                    &mut changes,
                ),
                watch(
                    Api::all(client.clone()),
                    LIST_PAGE,
                    strip::namespace,
                    &mut changes,
                ),
            )
        }),
        slices: BackendSlices::start(client, trigger.clone()),
    };

    // Drive the watches; each change becomes one pending trigger.
    let driver = tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            if let Err(e) = change {
                tracing::warn!(error = %e, "watch error; retrying with backoff");
                continue;
            }
            // A full channel already holds a pending pass.
            let _ = trigger.try_send(());
        }
    });

    stores.wait_until_ready().await?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced; controller running");

    let mut leader = ctx.leader.clone();
    let mut backoff = ctx.config.backoff.clone();
    let mut next = tokio::time::Instant::now();
    let stopped = loop {
        tokio::select! {
            change = triggered.recv() => {
                if change.is_none() {
                    break Error::WatchStopped("all");
                }
                sleep(ctx.config.debounce).await;
                while triggered.try_recv().is_ok() {}
            }
            () = sleep_until(next) => {}
            changed = leader.changed() => {
                if changed.is_err() {
                    break Error::LeaseStopped;
                }
                tracing::info!(leader = leader.holds(), "leadership changed");
            }
        }
        let started = Instant::now();
        let result = sync(&ctx, &stores.snapshot()).await;
        ctx.metrics
            .reconcile_duration_seconds
            .observe(started.elapsed().as_secs_f64());
        ctx.metrics
            .reconcile_total
            .get_or_create(&ControllerLabels {
                controller: SYNC_CONTROLLER,
            })
            .inc();
        next = tokio::time::Instant::now()
            + match result {
                Ok(outcome) => {
                    backoff.reset();
                    if !outcome.applied.is_empty()
                        || !outcome.deleted.is_empty()
                        || !outcome.statuses.is_empty()
                        || !outcome.server_statuses.is_empty()
                        || !outcome.roll_calls.is_empty()
                        || !outcome.virtual_ips_applied.is_empty()
                        || !outcome.virtual_ips_deleted.is_empty()
                        || !outcome.service_statuses.is_empty()
                        || !outcome.pool_statuses.is_empty()
                    {
                        tracing::info!(
                            applied = ?outcome.applied,
                            deleted = ?outcome.deleted,
                            statuses = outcome.statuses.len(),
                            server_statuses = ?outcome.server_statuses,
                            roll_calls = ?outcome.roll_calls,
                            virtual_ips_applied = outcome.virtual_ips_applied.len(),
                            virtual_ips_deleted = outcome.virtual_ips_deleted.len(),
                            service_statuses = outcome.service_statuses.len(),
                            pool_statuses = ?outcome.pool_statuses,
                            events = outcome.events,
                            conflicts = outcome.conflicts,
                            "sync pass wrote changes"
                        );
                    }
                    ctx.config.resync
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        reason = e.reason().as_str(),
                        error = %e,
                        retry_in = ?delay,
                        "sync pass failed"
                    );
                    delay
                }
            };
    };
    driver.abort();
    let e = stopped;
    ctx.metrics
        .reconcile_errors_total
        .get_or_create(&ErrorLabels {
            controller: SYNC_CONTROLLER,
            reason: e.reason().as_str(),
        })
        .inc();
    Err(e)
}
