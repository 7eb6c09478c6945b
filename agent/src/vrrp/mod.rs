//! The VRRP protocol core: wire codec and per-instance state machine. No I/O.

pub mod instance;
pub mod packet;
pub mod sync_group;
