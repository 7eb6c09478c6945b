//! IPVS: the kernel's generic-netlink family `IPVS` ([`packet`], pure), the typed services and
//! destinations built from it ([`model`]), the requests that change them ([`request`]), the
//! socket that sends them ([`client`]); what the node's VirtualServers want ([`desired`]),
//! which services are ours ([`owner`]), the diff between wanted and present ([`plan`], pure),
//! the synchroniser that applies it ([`sync`]), and the task that runs it beside VRRP
//! ([`task`]).

pub mod client;
pub mod desired;
pub mod model;
pub mod owner;
pub mod packet;
pub mod plan;
pub mod request;
pub mod sync;
pub mod task;

pub use client::{IpvsClient, IpvsError, IpvsInfo};
pub use model::{
    Destination, DestinationEntry, DestinationSettings, Service, ServiceEntry, ServiceKey,
    ServiceSettings, Tunnel,
};
pub use request::{Request, Timeouts};
