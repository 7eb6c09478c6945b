//! The VRRP protocol core: the shared vocabulary, the wire codec, the per-instance state
//! machine and sync groups. No I/O.

pub mod instance;
pub mod packet;
pub mod protocol;
pub mod sync_group;

pub use protocol::{
    Family, IPPROTO_VRRP, VRRP_MULTICAST_IPV4, VRRP_MULTICAST_IPV6, VRRP_TTL, Version,
};
