//! The agent runtime: turns a [`DesiredConfig`] into running VRRP instances and keeps them in
//! line with every new version of it.
//!
//! One receive thread per (interface, family) owns the raw socket's receive side and hands
//! admitted adverts to the instance tasks by VRID ([`receive`]); one task per unit (a lone
//! instance, or a sync group) owns the pure machine and performs its actions ([`unit`](mod@unit)).
//! Applying a new configuration diffs it per unit ([`plan_apply`]): unchanged units keep their
//! task, state and VIPs; changed ones get their new settings in place; removed ones shut down
//! gracefully; new ones start after the start-up cleanup of leftover VIPs.
//!
//! The node changes under the driver: one watch follows every interface and its addresses
//! ([`interfaces`]). Instances follow their interface by NAME: addresses feed their sources and
//! VIP books, and an interface that comes back with a new index (a bond or a driver reloaded)
//! has its units started again on it.

pub mod admissions;
pub mod beat;
pub mod config;
pub mod conflict;
pub mod endpoint;
pub mod failover;
pub mod interfaces;
pub mod machine;
mod member;
mod outgoing;
pub mod probes;
pub mod receive;
pub mod routine;
mod streak;
mod thread;
pub mod ticker;
pub mod unit;
mod view_feed;
pub mod vips;
pub mod virtual_mac;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kube_vrrp_crds::backoff::doubling;
use kube_vrrp_crds::{RejectReason, RejectedInstance};
use tokio::sync::{mpsc, watch};

pub use config::{DesiredConfig, InstanceDiff, InstanceSpec};
use endpoint::Endpoint;
use interfaces::InterfaceWatch;
use receive::{AdvertFilter, Route};
use routine::Routine;
use unit::{Control, MemberSetup, Services, UnitHandle};
use virtual_mac::{VirtualMacs, VmacBinding};

use crate::check::{EndpointReadiness, Followed, QuorumFeed};
use crate::net::accept::AcceptFilter;
use crate::net::address::Addresses;
use crate::net::link::{Link, Links, link_for_address};
use crate::net::vmac::Vmacs;
use crate::net::{NetError, rtnetlink_connect};
use crate::report::{Applied, Metrics, StatusBoard};
use crate::vrrp::Family;
use crate::vrrp::instance::handover_timeout;

/// How long one unit may take to leave gracefully (priority 0 sent, VIPs removed), on top of
/// the handover of its MASTERs ([`crate::vrrp::instance::handover_timeout`]).
pub const UNIT_STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the unit running `specs` may take to stop: the longest handover of its members
/// plus [`UNIT_STOP_TIMEOUT`].
pub fn unit_stop_limit(specs: &[InstanceSpec]) -> Duration {
    specs
        .iter()
        .map(|spec| handover_timeout(spec.advert_interval))
        .max()
        .unwrap_or_default()
        + UNIT_STOP_TIMEOUT
}
/// The first wait before instances that could not start are tried again (e.g. an IPv6
/// link-local address still tentative, an interface not created yet); it doubles on every
/// failed retry up to [`START_RETRY_MAX`] and starts over with each new configuration.
pub const START_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two start retries.
pub const START_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait after `failures` consecutive failed attempts: [`START_RETRY`] after the first
/// (and for `0`), doubled after each further one, capped at [`START_RETRY_MAX`].
pub fn retry_delay(failures: u32) -> Duration {
    doubling(START_RETRY, START_RETRY_MAX, failures.saturating_sub(1))
}

/// Why the driver could not start or run an instance.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(
        "instance {instance}: no interface given, none has a subnet holding {address}, and none holds the node's InternalIP"
    )]
    NoInterface { instance: String, address: IpAddr },
    #[error("instance {instance}: VRID {vrid} on {interface} is already run by instance {holder}")]
    VridInUse {
        instance: String,
        vrid: u8,
        interface: String,
        holder: String,
    },
}

/// What identifies a unit: its sync group, or the name of its lone instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitKey {
    Instance(String),
    SyncGroup(String),
}

impl UnitKey {
    fn of(spec: &InstanceSpec) -> Self {
        match &spec.sync_group {
            Some(group) => Self::SyncGroup(group.clone()),
            None => Self::Instance(spec.name.clone()),
        }
    }

    /// A name for logs.
    pub fn label(&self) -> String {
        match self {
            Self::Instance(name) => name.clone(),
            Self::SyncGroup(name) => format!("sync-group/{name}"),
        }
    }
}

/// The instances of a configuration grouped into units, members sorted by name.
pub fn units_of(instances: &[InstanceSpec]) -> BTreeMap<UnitKey, Vec<InstanceSpec>> {
    let mut units: BTreeMap<UnitKey, Vec<InstanceSpec>> = BTreeMap::new();
    for spec in instances {
        units
            .entry(UnitKey::of(spec))
            .or_default()
            .push(spec.clone());
    }
    for members in units.values_mut() {
        members.sort_by(|a, b| a.name.cmp(&b.name));
    }
    units
}

/// What applying a configuration does to each unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyPlan {
    /// Units to shut down (removed, or about to be restarted).
    pub stop: Vec<UnitKey>,
    /// Units that keep running and get new settings in place.
    pub update: Vec<UnitKey>,
    /// Units to start (new, or restarted), after the stops.
    pub start: Vec<UnitKey>,
}

/// Decides, unit by unit, how to go from the `running` configuration to the `desired` one.
/// A unit restarts when its member set changes or a member changes interface, VRID, version
/// or family; it is updated in place when anything else changed; untouched otherwise.
pub fn plan_apply(
    running: &BTreeMap<UnitKey, Vec<InstanceSpec>>,
    desired: &BTreeMap<UnitKey, Vec<InstanceSpec>>,
) -> ApplyPlan {
    let mut plan = ApplyPlan::default();
    for (key, old) in running {
        let Some(new) = desired.get(key) else {
            plan.stop.push(key.clone());
            continue;
        };
        let same_members =
            old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.name == b.name);
        let diffs: Vec<InstanceDiff> = old
            .iter()
            .zip(new)
            .map(|(a, b)| InstanceDiff::between(a, b))
            .collect();
        if !same_members || diffs.iter().any(|diff| diff.restart) {
            plan.stop.push(key.clone());
            plan.start.push(key.clone());
        } else if diffs.iter().any(|diff| !diff.is_empty()) {
            plan.update.push(key.clone());
        }
    }
    for key in desired.keys() {
        if !running.contains_key(key) {
            plan.start.push(key.clone());
        }
    }
    plan
}

fn filter_of(spec: &InstanceSpec) -> AdvertFilter {
    AdvertFilter {
        version: spec.version,
        authentication: spec.authentication,
        advert_interval_cs: spec.advert_interval_cs(),
        unicast_peers: spec.unicast_peers.clone(),
    }
}

struct RunningUnit {
    specs: Vec<InstanceSpec>,
    endpoints: Vec<Arc<Endpoint>>,
    /// The virtual MAC interfaces of the members that have one.
    vmacs: Vec<VmacBinding>,
    handle: UnitHandle,
}

impl RunningUnit {
    /// Whether a member's interface now has another index than the one it was bound to
    /// (re-created), or its virtual MAC interface is gone while its parent is still there,
    /// per `indexes` (every interface's name → index).
    fn needs_rebind(&self, indexes: &BTreeMap<String, u32>) -> bool {
        let moved = |name: &str, ifindex: u32| indexes.get(name).is_some_and(|now| *now != ifindex);
        self.endpoints
            .iter()
            .any(|endpoint| moved(&endpoint.interface, endpoint.ifindex))
            || self.vmacs.iter().any(|vmac| {
                moved(&vmac.parent, vmac.parent_index)
                    || (!indexes.contains_key(&vmac.name)
                        && indexes.get(&vmac.parent) == Some(&vmac.parent_index))
            })
    }
}

/// The runtime of every VRRP instance of this node.
pub struct Driver {
    links: Links,
    services: Services,
    endpoints: HashMap<(u32, Family), Arc<Endpoint>>,
    units: BTreeMap<UnitKey, RunningUnit>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("units", &self.units.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Opens rtnetlink and the interface watch in the calling thread's network namespace.
    /// Must be called inside a tokio runtime.
    pub async fn new(board: StatusBoard, metrics: Metrics) -> Result<Self, DriverError> {
        let handle = rtnetlink_connect()?;
        let links = Links::new(handle.clone());
        let interfaces = InterfaceWatch::start(links.clone()).await?;
        Ok(Self {
            links,
            services: Services {
                addresses: Addresses::new(handle.clone()),
                accept: AcceptFilter::new(),
                vmacs: VirtualMacs::new(Vmacs::new(handle)),
                board,
                metrics,
                interfaces,
                followed: Followed::default(),
                ticker: ticker::Ticker::default(),
            },
            endpoints: HashMap::new(),
            units: BTreeMap::new(),
        })
    }

    /// Endpoint trackers follow `readiness` (fed by cluster mode's EndpointSlice watch);
    /// without it they stay pending.
    #[must_use]
    pub fn follow_endpoints(mut self, readiness: EndpointReadiness) -> Self {
        self.services.followed.endpoints = readiness;
        self
    }

    /// VirtualServer quorum trackers follow `quorums` (the health checks); without it they
    /// stay pending.
    #[must_use]
    pub fn follow_quorums(mut self, quorums: QuorumFeed) -> Self {
        self.services.followed.quorums = quorums;
        self
    }

    /// The names of the running instances.
    pub fn instances(&self) -> Vec<String> {
        self.units
            .values()
            .flat_map(|unit| unit.specs.iter().map(|spec| spec.name.clone()))
            .collect()
    }

    /// Brings the running instances in line with `config`. An instance that cannot start (no
    /// interface yet, no source address yet, VRID taken) is logged and left out; [`run`] tries
    /// again with a growing delay ([`retry_delay`]). Returns the instances that could not
    /// start, each with why (reason `StartFailed`).
    pub async fn apply(&mut self, config: &DesiredConfig) -> Vec<RejectedInstance> {
        let desired = units_of(&config.instances);
        let running: BTreeMap<UnitKey, Vec<InstanceSpec>> = self
            .units
            .iter()
            .map(|(key, unit)| (key.clone(), unit.specs.clone()))
            .collect();
        let plan = plan_apply(&running, &desired);
        if plan != ApplyPlan::default() {
            tracing::info!(
                stop = ?plan.stop.iter().map(UnitKey::label).collect::<Vec<_>>(),
                update = ?plan.update.iter().map(UnitKey::label).collect::<Vec<_>>(),
                start = ?plan.start.iter().map(UnitKey::label).collect::<Vec<_>>(),
                "applying configuration"
            );
        }
        let stops: Vec<RunningUnit> = plan
            .stop
            .iter()
            .filter_map(|key| self.units.remove(key))
            .collect();
        self.stop_units(stops).await;
        for key in &plan.update {
            if let (Some(unit), Some(specs)) = (self.units.get_mut(key), desired.get(key)) {
                for (spec, endpoint) in specs.iter().zip(&unit.endpoints) {
                    endpoint
                        .routes
                        .set_filter(spec.vrid, &spec.name, filter_of(spec));
                }
                if unit
                    .handle
                    .control
                    .send(Control::Update(specs.clone()))
                    .is_err()
                {
                    tracing::error!(unit = %key.label(), "unit task is gone");
                }
                unit.specs.clone_from(specs);
            }
        }
        let mut failed = Vec::new();
        for key in &plan.start {
            let Some(specs) = desired.get(key) else {
                continue;
            };
            match self.start_unit(key, specs, &config.node_addresses).await {
                Ok(unit) => {
                    self.units.insert(key.clone(), unit);
                }
                Err(error) => {
                    tracing::error!(unit = %key.label(), %error, "cannot start instance; will retry");
                    failed.extend(specs.iter().map(|spec| RejectedInstance {
                        name: spec.name.clone(),
                        reason: RejectReason::StartFailed,
                        message: format!("{error}; retrying"),
                        running_previous: false,
                    }));
                }
            }
        }
        failed
    }

    /// Starts again, on the interface's new index, every unit bound to an interface that was
    /// re-created. Returns the instances that could not start again (retried later).
    pub async fn rebind(
        &mut self,
        indexes: &BTreeMap<String, u32>,
        node_addresses: &[IpAddr],
    ) -> Vec<RejectedInstance> {
        let keys: Vec<UnitKey> = self
            .units
            .iter()
            .filter(|(_, unit)| unit.needs_rebind(indexes))
            .map(|(key, _)| key.clone())
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        tracing::info!(units = ?keys.iter().map(UnitKey::label).collect::<Vec<_>>(), "interfaces re-created with a new index: starting their instances again");
        let stopped: Vec<RunningUnit> = keys
            .iter()
            .filter_map(|key| self.units.remove(key))
            .collect();
        let specs: Vec<(UnitKey, Vec<InstanceSpec>)> = keys
            .into_iter()
            .zip(stopped.iter().map(|unit| unit.specs.clone()))
            .collect();
        self.stop_units(stopped).await;
        let mut failed = Vec::new();
        for (key, specs) in specs {
            match self.start_unit(&key, &specs, node_addresses).await {
                Ok(unit) => {
                    self.units.insert(key, unit);
                }
                Err(error) => {
                    tracing::error!(unit = %key.label(), %error, "cannot start instance again; will retry");
                    failed.extend(specs.iter().map(|spec| RejectedInstance {
                        name: spec.name.clone(),
                        reason: RejectReason::StartFailed,
                        message: format!("{error}; retrying"),
                        running_previous: false,
                    }));
                }
            }
        }
        failed
    }

    /// Stops every instance gracefully (each MASTER sends priority 0 and removes its VIPs).
    pub async fn shutdown(&mut self) {
        let all: Vec<RunningUnit> = std::mem::take(&mut self.units).into_values().collect();
        self.stop_units(all).await;
    }

    async fn stop_units(&mut self, units: Vec<RunningUnit>) {
        let mut waits = Vec::with_capacity(units.len());
        for unit in units {
            let _ = unit.handle.control.send(Control::Shutdown);
            let limit = unit_stop_limit(&unit.specs);
            let RunningUnit {
                specs,
                endpoints,
                handle,
                ..
            } = unit;
            let mut task = handle.task;
            waits.push(async move {
                if tokio::time::timeout(limit, &mut task).await.is_err() {
                    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
                    tracing::error!(instances = ?names, "instance did not stop in time; aborted");
                    task.abort();
                }
                // A MASTER handing over hears adverts until it stops: its route goes last.
                for (spec, endpoint) in specs.iter().zip(&endpoints) {
                    endpoint.routes.remove(spec.vrid, &spec.name);
                }
            });
        }
        futures::future::join_all(waits).await;
        self.endpoints
            .retain(|_, endpoint| !endpoint.routes.is_empty());
    }

    async fn start_unit(
        &mut self,
        key: &UnitKey,
        specs: &[InstanceSpec],
        node_addresses: &[IpAddr],
    ) -> Result<RunningUnit, DriverError> {
        let mut setups = Vec::with_capacity(specs.len());
        let mut vmacs = Vec::new();
        let outcome = self
            .setup_members(specs, node_addresses, &mut setups, &mut vmacs)
            .await;
        if let Err(error) = outcome {
            for vmac in &vmacs {
                self.services.vmacs.detach(vmac).await;
            }
            return Err(error);
        }
        let (sender, adverts) = mpsc::channel(unit::ADVERT_QUEUE);
        let mut routed: Vec<(Arc<Endpoint>, &InstanceSpec)> = Vec::new();
        for (member, setup) in setups.iter().enumerate() {
            let spec = &specs[member];
            let route = Route {
                instance: spec.name.clone(),
                filter: filter_of(spec),
                member,
                sender: sender.clone(),
                received: self.services.metrics.adverts_received_counter(&spec.name),
                routine: setup.routine.clone(),
            };
            if let Err(holder) = setup.endpoint.routes.insert(spec.vrid, route) {
                for (endpoint, spec) in routed {
                    endpoint.routes.remove(spec.vrid, &spec.name);
                }
                for vmac in &vmacs {
                    self.services.vmacs.detach(vmac).await;
                }
                return Err(DriverError::VridInUse {
                    instance: spec.name.clone(),
                    vrid: spec.vrid,
                    interface: setup.endpoint.interface.clone(),
                    holder,
                });
            }
            routed.push((Arc::clone(&setup.endpoint), spec));
        }
        let endpoints = setups
            .iter()
            .map(|setup| Arc::clone(&setup.endpoint))
            .collect();
        let handle = unit::spawn(
            key.label(),
            setups,
            matches!(key, UnitKey::SyncGroup(_)),
            adverts,
            self.services.clone(),
        );
        Ok(RunningUnit {
            specs: specs.to_vec(),
            endpoints,
            vmacs,
            handle,
        })
    }

    /// Resolves each member's edge: its interface (or virtual MAC interface on it), endpoint,
    /// interface follows and start-up cleanup. Virtual MACs created are pushed to `vmacs` as
    /// they are, so that the caller removes them if a later step fails.
    async fn setup_members(
        &mut self,
        specs: &[InstanceSpec],
        node_addresses: &[IpAddr],
        setups: &mut Vec<MemberSetup>,
        vmacs: &mut Vec<VmacBinding>,
    ) -> Result<(), DriverError> {
        for spec in specs {
            let parent = self.pick_link(spec, node_addresses).await?;
            let (link, vmac) = if spec.use_virtual_mac {
                let vmac = self
                    .services
                    .vmacs
                    .attach(&parent, spec.family(), spec.vrid)
                    .await?;
                vmacs.push(vmac.clone());
                (self.links.by_index(vmac.ifindex).await?, Some(vmac))
            } else {
                (parent.clone(), None)
            };
            let endpoint = self.endpoint(&link, spec.family(), &parent.name)?;
            let view = self.services.interfaces.follow(&link.name);
            let sources = vmac
                .is_some()
                .then(|| self.services.interfaces.follow(&parent.name));
            let cleanup = self
                .services
                .addresses
                .remove_leftovers(link.ifindex, &spec.addresses)
                .await?;
            if !cleanup.removed.is_empty() {
                tracing::warn!(instance = %spec.name, interface = %link.name, removed = ?cleanup.removed, "removed leftover VIPs before joining");
            }
            for foreign in &cleanup.foreign {
                tracing::warn!(instance = %spec.name, interface = %link.name, address = %foreign.address, "a configured VIP is on the interface but was not installed by kube-vrrp; left alone");
            }
            setups.push(MemberSetup {
                spec: spec.clone(),
                endpoint,
                view,
                sources,
                vmac,
                routine: Routine::new(self.services.metrics.adverts_heard_late_counter(&spec.name)),
            });
        }
        Ok(())
    }

    /// The interface hint; else the interface whose subnet holds the first VIP; else the one
    /// holding one of the node's addresses.
    async fn pick_link(
        &self,
        spec: &InstanceSpec,
        node_addresses: &[IpAddr],
    ) -> Result<Link, DriverError> {
        if let Some(name) = &spec.interface {
            return Ok(self.links.by_name(name).await?);
        }
        let links = self.links.all().await?;
        let first = spec.vip_addresses().first().copied();
        let by_subnet = first.and_then(|vip| link_for_address(&links, vip));
        let by_node = || {
            links.iter().find(|link| {
                link.addresses
                    .iter()
                    .any(|entry| node_addresses.contains(&entry.address.addr()))
            })
        };
        by_subnet
            .or_else(by_node)
            .cloned()
            .ok_or_else(|| DriverError::NoInterface {
                instance: spec.name.clone(),
                address: first.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            })
    }

    /// The endpoint of `family` on `link`; its own-address filter follows `own_interface`
    /// (the link itself, or the parent of a virtual MAC interface).
    fn endpoint(
        &mut self,
        link: &Link,
        family: Family,
        own_interface: &str,
    ) -> Result<Arc<Endpoint>, DriverError> {
        if let Some(endpoint) = self.endpoints.get(&(link.ifindex, family)) {
            return Ok(Arc::clone(endpoint));
        }
        let endpoint = Arc::new(Endpoint::open(
            &link.name,
            link.ifindex,
            link.mac,
            family,
            self.services.interfaces.follow(own_interface),
            &self.services.metrics,
        )?);
        self.endpoints
            .insert((link.ifindex, family), Arc::clone(&endpoint));
        Ok(endpoint)
    }
}

/// Runs the driver: applies every configuration `updates` yields (`None`: nothing loaded yet)
/// until `shutdown` resolves, then stops every instance gracefully.
pub async fn run(
    mut driver: Driver,
    mut updates: watch::Receiver<Option<Arc<DesiredConfig>>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut source_open = true;
    let mut indexes = driver.services.interfaces.indexes();
    // Consecutive applies of one configuration that left units unstarted.
    let mut failures: u32 = 0;
    loop {
        let current = updates.borrow_and_update().clone();
        if let Some(config) = current {
            let now = indexes.borrow_and_update().clone();
            let mut not_started = driver.apply(&config).await;
            not_started.extend(driver.rebind(&now, &config.node_addresses).await);
            failures = if not_started.is_empty() {
                0
            } else {
                failures.saturating_add(1)
            };
            let mut rejected = config.rejected.clone();
            rejected.extend(not_started);
            rejected.sort_by(|a, b| a.name.cmp(&b.name));
            driver.services.board.set_applied(Applied {
                generation: config.generation,
                rejected,
            });
            driver.services.board.mark_ready();
        }
        tokio::select! {
            () = &mut shutdown => break,
            changed = updates.changed(), if source_open => {
                failures = 0;
                if changed.is_err() {
                    tracing::warn!("the configuration source ended; running with the last configuration");
                    source_open = false;
                }
            }
            // An interface came, went or came back: re-bind, and retry what could not start.
            Ok(()) = indexes.changed() => failures = 0,
            () = tokio::time::sleep(retry_delay(failures)), if failures > 0 => {}
        }
    }
    tracing::info!("shutting down: every MASTER sends priority 0 and removes its VIPs");
    driver.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::config::tests::spec;
    use super::*;

    fn units(specs: &[InstanceSpec]) -> BTreeMap<UnitKey, Vec<InstanceSpec>> {
        units_of(specs)
    }

    #[test]
    fn start_retries_back_off_from_one_second_to_thirty() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(retry_delay(u32::MAX), START_RETRY_MAX);
    }

    #[test]
    fn an_unchanged_configuration_touches_no_unit() {
        let running = units(&[
            spec("web", 51, "10.0.0.50/24"),
            spec("db", 52, "10.0.0.51/24"),
        ]);
        assert_eq!(plan_apply(&running, &running.clone()), ApplyPlan::default());
    }

    #[test]
    fn a_priority_change_updates_only_that_unit_in_place() {
        let web = spec("web", 51, "10.0.0.50/24");
        let db = spec("db", 52, "10.0.0.51/24");
        let mut web2 = web.clone();
        web2.priority = 200;
        let plan = plan_apply(&units(&[web, db.clone()]), &units(&[web2, db]));
        assert_eq!(plan.update, vec![UnitKey::Instance("web".into())]);
        assert!(plan.stop.is_empty() && plan.start.is_empty());
    }

    #[test]
    fn a_removed_instance_stops_and_a_new_one_starts() {
        let plan = plan_apply(
            &units(&[spec("web", 51, "10.0.0.50/24")]),
            &units(&[spec("db", 52, "10.0.0.51/24")]),
        );
        assert_eq!(plan.stop, vec![UnitKey::Instance("web".into())]);
        assert_eq!(plan.start, vec![UnitKey::Instance("db".into())]);
        assert!(plan.update.is_empty());
    }

    #[test]
    fn a_vrid_change_restarts_the_unit() {
        let web = spec("web", 51, "10.0.0.50/24");
        let mut moved = web.clone();
        moved.vrid = 60;
        let plan = plan_apply(&units(&[web]), &units(&[moved]));
        let key = UnitKey::Instance("web".into());
        assert_eq!(plan.stop, vec![key.clone()]);
        assert_eq!(plan.start, vec![key]);
    }

    #[test]
    fn sync_group_members_form_one_unit_and_a_new_member_restarts_it() {
        let mut a = spec("a", 51, "10.0.0.50/24");
        let mut b = spec("b", 52, "10.0.0.51/24");
        a.sync_group = Some("edge".into());
        b.sync_group = Some("edge".into());
        let one = units(&[a.clone()]);
        let two = units(&[b, a]);
        assert_eq!(two.len(), 1);
        let members: Vec<&str> = two[&UnitKey::SyncGroup("edge".into())]
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(members, ["a", "b"]);
        let plan = plan_apply(&one, &two);
        assert_eq!(plan.stop, vec![UnitKey::SyncGroup("edge".into())]);
        assert_eq!(plan.start, vec![UnitKey::SyncGroup("edge".into())]);
    }
}
