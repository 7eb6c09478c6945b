//! IPVS: the kernel's generic-netlink family `IPVS` ([`packet`], pure), the typed services and
//! destinations built from it ([`model`]), the requests that change them ([`request`]), and the
//! socket that sends them ([`client`]).

pub mod client;
pub mod desired;
pub mod model;
pub mod owner;
pub mod packet;
pub mod plan;
pub mod request;

pub use client::{IpvsClient, IpvsError, IpvsInfo};
pub use model::{
    Destination, DestinationEntry, DestinationSettings, Service, ServiceEntry, ServiceKey,
    ServiceSettings, Tunnel,
};
pub use request::{Request, Timeouts};
