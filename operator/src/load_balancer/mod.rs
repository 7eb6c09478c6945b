//! LoadBalancer Services, pure: which Services are ours, which address each gets from which
//! `VirtualIPPool`, and the VirtualIP that keeps each address alive. [`allocate`](fn@allocate)
//! is a pure function of the cluster's objects; the sync pass writes what it returns.
//!
//! Rules:
//! - **Ours.** A Service of type LoadBalancer whose `spec.loadBalancerClass` is
//!   [`LOAD_BALANCER_CLASS`], or that names no class when the operator is the cluster's
//!   default load balancer ([`LbConfig::default_class`]). A Service being deleted is not.
//! - **Families.** One address per family of `spec.ipFamilies` (a dual-stack Service gets
//!   two). Requested addresses come from the annotation [`ADDRESSES_ANNOTATION`]
//!   (comma-separated, at most one per family) or `spec.loadBalancerIP`; the annotation
//!   [`POOL_ANNOTATION`] restricts the pools (comma-separated names).
//! - **Pools.** A pool serves a Service when its namespace and Service selectors match; it
//!   hands out addresses without being asked when `autoAssign` is true, else only to Services
//!   that name it or request one of its addresses. A pool that breaks a validation rule hands
//!   out nothing and holds nothing. A pool whose blocks overlap an older pool's hands out
//!   nothing new (its Services keep their addresses). A node's address inside a pool is never
//!   handed out.
//! - **One VirtualIP per address**, named after it ([`virtual_ip_name`]), labelled
//!   [`MANAGED_BY_LABEL`] and annotated with the Services it serves ([`SERVICES_ANNOTATION`])
//!   and its pool ([`POOL_ANNOTATION`]). Its VRRP settings are the pool's `vrrp`. With
//!   `externalTrafficPolicy: Cluster` it joins one of the pool's shared virtual routers
//!   (`<pool>-<family>-<n>`, one VRID for up to 64 addresses): a new address joins the router
//!   whose expected MASTER carries the fewest of the family's addresses (`spread`), so MASTERs
//!   spread evenly over the nodes, with at most [`MAX_SPREAD_ROUTERS`] routers open at a time
//!   to spare the segment's 255 VRIDs; with `Local` it is an instance of its own that tracks
//!   the Service's endpoints without weight, so only a node with a ready endpoint holds it.
//! - **Stability.** The allocation is read back from the VirtualIPs (their Service
//!   annotation) and from the Services' `status.loadBalancer.ingress`, never from memory: an
//!   address stays with its Service while it is still in a pool that serves the Service, of a
//!   family the Service wants, and the one it requests (if any). A Service's current ingress
//!   address is preferred when it needs a new one.
//! - **New addresses** go to Services in creation order (then namespace/name): a requested
//!   address if it is in a pool that serves the Service and free; else the lowest free
//!   address of the first pool by name that serves it. Free means: no other Service's, no
//!   other VirtualIP's, no node's, and not still held by a node after its release (fresh
//!   VrrpNode reports, `vipsHeld`): a released address returns to the pool only once no node
//!   holds it.
//! - **Sharing.** Services with the same [`SHARING_ANNOTATION`] key may share an address when
//!   their ports (protocol and port) do not collide; a shared address's VirtualIP serves them
//!   all (and tracks the endpoints of every `Local` one). Without the key, or with colliding
//!   ports, a requested address that another Service holds is refused.
//! - A Service that gets no address for a family has a [`Failure`] saying why; it is retried
//!   on every pass (any change in the cluster, and the periodic resync).

mod allocate;
mod naming;
mod pools;
mod request;
mod spread;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube_vrrp_crds::{ServiceRef, VirtualIp, VirtualIpPool, VirtualIpSpec};
use kube_vrrp_plan::{Family, NodePolicy};

pub use allocate::allocate;
pub use naming::{shard_name, virtual_ip_name};
pub use pools::PoolProblem;
pub use request::service_ref;
pub use spread::MAX_SPREAD_ROUTERS;

/// The `spec.loadBalancerClass` of Services this operator serves.
pub const LOAD_BALANCER_CLASS: &str = "kubevrrp.io/vrrp";
/// Service annotation: the addresses asked for, comma-separated, at most one per family.
pub const ADDRESSES_ANNOTATION: &str = "kubevrrp.io/load-balancer-ips";
/// Service annotation: the pools to take addresses from, comma-separated; on a VirtualIP:
/// the pool its address belongs to.
pub const POOL_ANNOTATION: &str = "kubevrrp.io/pool";
/// Service annotation: Services with the same value may share an address.
pub const SHARING_ANNOTATION: &str = "kubevrrp.io/allow-shared-ip";
/// VirtualIP annotation: the Services the address serves (`namespace/name`, comma-separated).
pub const SERVICES_ANNOTATION: &str = "kubevrrp.io/services";
/// VirtualIP label marking the ones the operator made for Services (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "kube-vrrp-operator";

/// How the operator takes Services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbConfig {
    /// Also serve LoadBalancer Services that name no `loadBalancerClass`.
    pub default_class: bool,
}

/// What allocation reads.
#[derive(Clone, Debug, Default)]
pub struct LbInput<'a> {
    /// Every VirtualIPPool.
    pub pools: Vec<&'a VirtualIpPool>,
    /// Every Service (those not ours are skipped).
    pub services: Vec<&'a Service>,
    /// Namespaces, for their labels.
    pub namespaces: Vec<&'a Namespace>,
    /// Nodes, for their addresses and labels.
    pub nodes: Vec<&'a Node>,
    /// Every VirtualIP: the operator's own carry the allocation, the others hold addresses.
    pub virtual_ips: Vec<&'a VirtualIp>,
    /// Addresses nodes report holding (`vipsHeld` of fresh VrrpNode reports).
    pub held: Vec<IpAddr>,
    /// Which unhealthy nodes planning leaves out (to foresee each shared router's MASTER).
    pub node_policy: NodePolicy,
}

/// Why a Service has no address (of a family); also the Warning Event's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// An annotation or `spec.loadBalancerIP` cannot be read, or asks for a family the
    /// Service does not have.
    InvalidRequest,
    /// The pool annotation names a pool that does not exist.
    PoolNotFound,
    /// No pool serves the Service.
    NoPool,
    /// Every pool that serves the Service is out of addresses of the family.
    PoolExhausted,
    /// The requested address is in no pool that serves the Service.
    AddressNotInPool,
    /// The requested address is another Service's, a VirtualIP's or a node's.
    AddressInUse,
    /// The requested (or shared) address is another Service's with the same sharing key,
    /// but their ports collide.
    PortsCollide,
    /// The requested address was released and a node still holds it.
    AddressReleasing,
    /// The address's VirtualIP cannot be deployed (a planner conflict).
    NotDeployed,
}

impl FailureReason {
    /// The name used as the Event reason, in logs and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequest",
            Self::PoolNotFound => "PoolNotFound",
            Self::NoPool => "NoPool",
            Self::PoolExhausted => "PoolExhausted",
            Self::AddressNotInPool => "AddressNotInPool",
            Self::AddressInUse => "AddressInUse",
            Self::PortsCollide => "PortsCollide",
            Self::AddressReleasing => "AddressReleasing",
            Self::NotDeployed => "NotDeployed",
        }
    }
}

/// Why a Service has no address of a family, as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Failure {
    /// The family concerned; `None`: the whole Service.
    pub family: Option<Family>,
    /// Why.
    pub reason: FailureReason,
    /// What is wrong and what to do.
    pub message: String,
}

/// One address the Service has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    /// The address.
    pub address: IpAddr,
    /// The VirtualIP that carries it.
    pub virtual_ip: String,
    /// The pool it comes from.
    pub pool: String,
    /// False when the allocation was read back; true when made by this pass.
    pub new: bool,
}

/// What one of our Services gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceOutcome {
    /// Its addresses, in the order of its families.
    pub addresses: Vec<Assigned>,
    /// Why it lacks an address, per family.
    pub failures: Vec<Failure>,
}

/// An address a Service had (a VirtualIP said so) and no longer has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The Service.
    pub service: ServiceRef,
    /// The address.
    pub address: IpAddr,
    /// Why.
    pub why: String,
}

/// A VirtualIP the operator wants for an address.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredVirtualIp {
    /// Its name ([`virtual_ip_name`] of the address).
    pub name: String,
    /// The address.
    pub address: IpAddr,
    /// The pool of the address.
    pub pool: String,
    /// The Services it serves, sorted.
    pub services: Vec<ServiceRef>,
    /// Its spec.
    pub spec: VirtualIpSpec,
}

impl DesiredVirtualIp {
    /// The object to apply: name, the managed-by label, the Services and pool annotations,
    /// and the spec.
    pub fn object(&self) -> VirtualIp {
        let mut vip = VirtualIp::new(&self.name, self.spec.clone());
        vip.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.to_owned(),
        )]));
        let services: Vec<String> = self.services.iter().map(service_key).collect();
        vip.metadata.annotations = Some(BTreeMap::from([
            (SERVICES_ANNOTATION.to_owned(), services.join(",")),
            (POOL_ANNOTATION.to_owned(), self.pool.clone()),
        ]));
        vip
    }
}

/// What a pool holds after allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// Addresses assigned to Services.
    pub assigned: u32,
    /// Addresses still free.
    pub available: u128,
    /// Why it hands out nothing (new), if so.
    pub problem: Option<PoolProblem>,
    /// Node addresses inside it (address, node), never handed out.
    pub node_addresses: Vec<(IpAddr, String)>,
}

/// The result of [`allocate`](fn@allocate).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LbPlan {
    /// The VirtualIPs wanted, by name.
    pub virtual_ips: BTreeMap<String, DesiredVirtualIp>,
    /// Each of our Services.
    pub services: BTreeMap<ServiceRef, ServiceOutcome>,
    /// Addresses that Services lost, with why.
    pub releases: Vec<Release>,
    /// Each pool, by name.
    pub pools: BTreeMap<String, PoolReport>,
}

/// Whether `vip` is one the operator made for Services.
pub fn is_managed(vip: &VirtualIp) -> bool {
    vip.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY)
}

/// `namespace/name`, as Events and annotations write a Service.
pub fn service_key(s: &ServiceRef) -> String {
    format!("{}/{}", s.namespace, s.name)
}
