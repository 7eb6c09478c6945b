//! Measurement probes running in lab namespaces: a VIP prober (who answers ARP / NS), a VRRP
//! sniffer, a ping prober and a TCP stream; and the failover measurement over what they
//! recorded.

pub mod echo;
pub mod failover;
pub mod frame;
pub mod neighbor;
mod packet_socket;
pub mod recording;
pub mod sniffer;
pub mod stream;

pub use echo::{EchoProber, Ping, Pings};
pub use failover::{Failover, MeasureError, measure_failover};
pub use neighbor::{NeighborProber, NeighborReply};
pub use sniffer::{Advert, AdvertSniffer};
pub use stream::{Arrival, TcpStreamProbe};
