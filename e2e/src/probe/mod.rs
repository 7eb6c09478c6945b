//! Measurement probes: a VIP prober and a VRRP sniffer running in lab namespaces, and the
//! failover measurement over what they recorded.

pub mod failover;
pub mod frame;
pub mod neighbor;
mod packet_socket;
pub mod recording;
pub mod sniffer;

pub use failover::{Failover, MeasureError, measure_failover};
pub use neighbor::{NeighborProber, NeighborReply};
pub use sniffer::{Advert, AdvertSniffer};
