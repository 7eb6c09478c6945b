//! kube-vrrp API types (group `kubevrrp.io`, version `v1alpha1`): `VirtualIP`,
//! `VirtualServer`, `VrrpNode` and `VirtualIPPool`, their validation, and the standalone
//! manifest loader.
//!
//! - Types: [`VirtualIp`], [`VirtualServer`], [`VrrpNode`], [`VirtualIpPool`] (kube
//!   `CustomResource`s, all cluster-scoped) with their specs and statuses;
//!   [`DurationString`], [`VrrpVersion`], [`State`], condition types in [`condition`];
//!   [`AddressBlock`], a pool's CIDR or range.
//! - Validation: `VirtualIpSpec::validate()`, `VirtualServerSpec::validate()` and
//!   `VirtualIpPoolSpec::validate()` return every [`Violation`]; the same rules are CEL
//!   `x-kubernetes-validations` in the schema ([`cel`]).
//! - CRD YAML: [`crd_yaml::crds`] / [`crd_yaml::render_all`], written by the `crdgen` binary.
//! - Shared by the operator and the agent beside the types: [`backoff::doubling`], the one
//!   formula of their growing waits, and [`watch_backoff`], how their watches wait after an
//!   error.

pub mod address_block;
pub mod backoff;
pub mod cel;
pub mod crd_yaml;
pub mod duration;
pub mod pruning;
pub mod state;
pub mod track;
pub mod validation;
pub mod version;
pub mod virtual_ip;
pub mod virtual_ip_pool;
pub mod virtual_server;
pub mod vrrp_node;
pub mod watch_backoff;

/// API group of every kube-vrrp resource.
pub const GROUP: &str = "kubevrrp.io";
/// API version of every kube-vrrp resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every kube-vrrp resource.
pub const API_VERSION: &str = "kubevrrp.io/v1alpha1";

pub use address_block::{AddressBlock, BlockError, Span};
pub use duration::{DurationError, DurationString};
pub use state::{State, condition};
pub use track::{
    ServiceRef, Track, TrackEndpoints, TrackFile, TrackInterface, TrackScript, TrackVirtualServer,
};
pub use validation::{Violation, ViolationKind};
pub use version::VrrpVersion;
pub use virtual_ip::{
    AuthType, Authentication, Garp, PriorityRule, SecretKeyRef, VirtualIp, VirtualIpNodeStatus,
    VirtualIpPhase, VirtualIpSpec, VirtualIpStatus,
};
pub use virtual_ip_pool::{PoolVrrp, VirtualIpPool, VirtualIpPoolSpec, VirtualIpPoolStatus};
pub use virtual_server::{
    BackendRef, Forwarding, HealthCheck, HttpCheck, Protocol, RealServer, RealServerStatus,
    Scheduler, SchedulerFlag, ScriptCheck, SorryServer, TcpCheck, Tunnel, TunnelChecksum,
    TunnelType, VirtualServer, VirtualServerSpec, VirtualServerStatus,
};
pub use vrrp_node::{
    CheckResult, CheckerKind, CheckerStatus, HolderConflict, InstanceStatus, IpvsRealServerStatus,
    IpvsServiceStatus, IpvsStatus, QuorumStatus, ROLL_CALL_ANNOTATION, RejectReason,
    RejectedInstance, ResolvedRealServer, ResolvedVirtualServer, VrrpInstance, VrrpNode,
    VrrpNodeSpec, VrrpNodeStatus,
};
