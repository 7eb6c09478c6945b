//! The operator's controller: one global sync pass (VRID allocation is global) that gives
//! LoadBalancer Services their addresses and VirtualIPs (`load_balancers`), plans,
//! server-side applies the VrrpNodes that differ, deletes those of nodes without work,
//! folds every VirtualIP's and VirtualServer's status and writes the ones that changed,
//! writes Services' ingress and pools' status, and emits Events.
//!
//! [`sync`](fn@sync) is the pass, a plain async function over a [`Snapshot`] of the watched
//! objects, so tests drive it against a mocked API. [`run`](fn@run) feeds it from reflectors,
//! debounces changes, resyncs periodically and backs off on errors.

mod backoff;
pub mod digest;
mod load_balancers;
pub mod recorder;
mod run;
mod slices;
pub mod strip;
mod sync;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lease::Leadership;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::runtime::events::Reporter;
use kube_vrrp_crds::{
    ServiceRef, VirtualIp, VirtualIpPool, VirtualIpPoolStatus, VirtualIpStatus, VirtualServer,
    VirtualServerStatus, VrrpNode,
};

pub use backoff::ErrorBackoff;
pub use run::run;
pub use sync::{placement_of, sync};

use crate::fold::FoldConfig;
use crate::load_balancer::{Failure, LbConfig};
use crate::metrics::Metrics;
use kube_vrrp_plan::PlanInput;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "kube-vrrp-operator";

/// How the controller behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Staleness of VrrpNode reports.
    pub fold: FoldConfig,
    /// A pass runs at least this often, so staleness is noticed without events.
    pub resync: Duration,
    /// After a change, wait this long for more changes before the pass.
    pub debounce: Duration,
    /// Delays after failed passes.
    pub backoff: ErrorBackoff,
    /// Serve LoadBalancer Services (`None`: Services, pools and namespaces are not read for
    /// it and nothing is written for them).
    pub load_balancers: Option<LbConfig>,
    /// Writes of one kind a pass makes at once (VirtualIPs for Services, Service statuses,
    /// Events, pool statuses); 1 makes them one by one, in a fixed order.
    pub write_concurrency: usize,
    /// Which unhealthy nodes planning leaves out.
    pub nodes: kube_vrrp_plan::NodePolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            fold: FoldConfig::default(),
            resync: Duration::from_secs(10),
            debounce: Duration::from_millis(200),
            backoff: ErrorBackoff::default(),
            load_balancers: None,
            write_concurrency: 16,
            nodes: kube_vrrp_plan::NodePolicy::default(),
        }
    }
}

/// What a pass needs besides the objects.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes the Events, counting an Event repeated within minutes in its series.
    pub recorder: recorder::EventRecorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Behaviour.
    pub config: Config,
    /// Whether this replica holds the Lease; only then does a pass write.
    pub leader: Leadership,
    memory: Mutex<Memory>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .field("leader", &self.leader.holds())
            .finish_non_exhaustive()
    }
}

/// The reporter name of the operator's Events.
pub fn reporter(instance: Option<String>) -> Reporter {
    Reporter {
        controller: FIELD_MANAGER.to_owned(),
        instance,
    }
}

impl Context {
    /// A context over `client`; `leader` tells whether this replica may write.
    pub fn new(
        client: Client,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        config: Config,
        leader: Leadership,
    ) -> Self {
        Self {
            recorder: recorder::EventRecorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            leader,
            memory: Mutex::default(),
        }
    }

    fn is_leader(&self) -> bool {
        self.leader.holds()
    }

    /// Checked right before each write: a replica whose term ran out mid-pass (frozen, or
    /// unable to renew) writes nothing more.
    fn fence(&self) -> Result<(), Error> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }
}

/// What this replica wrote, with the `resourceVersion` the store held at that time. While
/// the store still holds that version it lags behind the write, and the pass trusts the
/// write instead (so it neither writes twice nor emits an Event twice).
#[derive(Debug, Default)]
struct Memory {
    /// VirtualIPs of Service addresses written (applied or deleted), by name.
    lb_specs: HashMap<String, load_balancers::SpecWrite>,
    /// Service ingress written: the store's resourceVersion then, and the ingress.
    ingress: HashMap<ServiceRef, (Option<String>, Vec<LoadBalancerIngress>)>,
    /// The allocation failures each Service was told of (an Event each).
    failures: HashMap<ServiceRef, BTreeSet<Failure>>,
    /// Pool statuses written: the store's resourceVersion then, and the status.
    pool_statuses: HashMap<String, (Option<String>, VirtualIpPoolStatus)>,
    /// VrrpNode specs applied: the store's resourceVersion then, the spec's digest, and the
    /// generation the apply returned (a later generation with the same digest annotation
    /// means someone else edited the spec).
    specs: HashMap<String, (Option<String>, String, Option<i64>)>,
    deleted: HashMap<String, Option<String>>,
    /// VirtualIP statuses written: the resourceVersions at which the store lags behind the
    /// write (the store's then, and those of spec writes this replica made just before).
    statuses: HashMap<String, (Vec<Option<String>>, VirtualIpStatus)>,
    server_statuses: HashMap<String, (Option<String>, VirtualServerStatus)>,
    /// What each VirtualServer may still publish of real-server Events.
    server_event_budgets: HashMap<String, crate::fold::EventBudget>,
    /// Roll calls sent, by node: the transition time each asked about.
    roll_calls: HashMap<String, Timestamp>,
    exported_vips: BTreeSet<String>,
    exported_nodes: BTreeSet<String>,
}

/// The watched objects at one instant, shared with the reflector stores (no copies).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// When the snapshot was taken (judges heartbeat freshness).
    pub now: Timestamp,
    /// VirtualIPs, with their status.
    pub virtual_ips: Vec<Arc<VirtualIp>>,
    /// VirtualServers.
    pub virtual_servers: Vec<Arc<VirtualServer>>,
    /// Nodes (stripped to what planning reads).
    pub nodes: Vec<Arc<Node>>,
    /// EndpointSlices of the Services VirtualServers name.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Services (stripped to their ports; LoadBalancers to what load balancing reads).
    pub services: Vec<Arc<Service>>,
    /// VirtualIPPools (empty without load balancing).
    pub virtual_ip_pools: Vec<Arc<VirtualIpPool>>,
    /// Namespaces, stripped to their labels (empty without load balancing).
    pub namespaces: Vec<Arc<Namespace>>,
    /// Every VrrpNode, with its status (the spec is stripped in the store; its digest
    /// annotation says what it holds).
    pub vrrp_nodes: Vec<Arc<VrrpNode>>,
}

impl Snapshot {
    /// A snapshot of owned objects (callers without reflector stores, e.g. tests).
    pub fn new(now: Timestamp, input: PlanInput, vrrp_nodes: Vec<VrrpNode>) -> Self {
        fn shared<T>(items: Vec<T>) -> Vec<Arc<T>> {
            items.into_iter().map(Arc::new).collect()
        }
        Self {
            now,
            virtual_ips: shared(input.virtual_ips),
            virtual_servers: shared(input.virtual_servers),
            nodes: shared(input.nodes),
            endpoint_slices: shared(input.endpoint_slices),
            services: shared(input.services),
            virtual_ip_pools: Vec::new(),
            namespaces: Vec::new(),
            vrrp_nodes: shared(vrrp_nodes),
        }
    }
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// False when this replica is not the leader: nothing was written.
    pub leader: bool,
    /// VrrpNodes applied, by name.
    pub applied: Vec<String>,
    /// VrrpNodes deleted, by name.
    pub deleted: Vec<String>,
    /// VirtualIPs whose status was written, by name.
    pub statuses: Vec<String>,
    /// VirtualServers whose status was written, by name.
    pub server_statuses: Vec<String>,
    /// VrrpNodes whose agent was asked to report (roll call), by name.
    pub roll_calls: Vec<String>,
    /// Events published.
    pub events: usize,
    /// Planner conflicts.
    pub conflicts: usize,
    /// VirtualIPs of Service addresses applied, by name.
    pub virtual_ips_applied: Vec<String>,
    /// VirtualIPs of Service addresses deleted, by name.
    pub virtual_ips_deleted: Vec<String>,
    /// Services whose load balancer status was written (`namespace/name`).
    pub service_statuses: Vec<String>,
    /// VirtualIPPools whose status was written, by name.
    pub pool_statuses: Vec<String>,
}

/// Why a pass failed, for logs and the `reason` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// Server-side apply of a VrrpNode failed.
    ApplyVrrpNode,
    /// Deleting a VrrpNode failed.
    DeleteVrrpNode,
    /// Writing a VirtualIP status failed.
    WriteStatus,
    /// Publishing an Event failed.
    PublishEvent,
    /// Setting a VrrpNode's roll call annotation failed.
    RollCall,
    /// The leader election task ended.
    LeaseStopped,
    /// The Lease term ran out during a pass.
    NotLeader,
    /// A watch's store was dropped: the controller cannot see the cluster.
    WatchStopped,
    /// Applying the VirtualIP of a Service address failed.
    ApplyVirtualIp,
    /// Deleting the VirtualIP of a released address failed.
    DeleteVirtualIp,
    /// Writing a Service's load balancer status failed.
    WriteServiceStatus,
    /// Writing a VirtualIPPool status failed.
    WritePoolStatus,
}

impl ErrorReason {
    /// The name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApplyVrrpNode => "ApplyVrrpNode",
            Self::DeleteVrrpNode => "DeleteVrrpNode",
            Self::WriteStatus => "WriteStatus",
            Self::PublishEvent => "PublishEvent",
            Self::RollCall => "RollCall",
            Self::LeaseStopped => "LeaseStopped",
            Self::NotLeader => "NotLeader",
            Self::WatchStopped => "WatchStopped",
            Self::ApplyVirtualIp => "ApplyVirtualIp",
            Self::DeleteVirtualIp => "DeleteVirtualIp",
            Self::WriteServiceStatus => "WriteServiceStatus",
            Self::WritePoolStatus => "WritePoolStatus",
        }
    }
}

/// A failed pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call about one object failed.
    #[error("{}: {kind} {name}: {source}", reason.as_str())]
    Api {
        /// Which write.
        reason: ErrorReason,
        /// Kind of the object.
        kind: &'static str,
        /// Name of the object.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The leader election task ended: this replica can no longer tell if it leads.
    #[error("LeaseStopped: leader election ended")]
    LeaseStopped,
    /// The Lease term ran out during a pass; its remaining writes were not sent.
    #[error("NotLeader: the Lease term ran out; the pass's remaining writes were not sent")]
    NotLeader,
    /// A watch's store is gone.
    #[error("WatchStopped: the {0} watch stopped")]
    WatchStopped(&'static str),
}

impl Error {
    /// The static reason.
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::Api { reason, .. } => *reason,
            Self::LeaseStopped => ErrorReason::LeaseStopped,
            Self::NotLeader => ErrorReason::NotLeader,
            Self::WatchStopped(_) => ErrorReason::WatchStopped,
        }
    }
}
