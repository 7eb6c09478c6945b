//! One (interface, family) the agent speaks VRRP on: its raw socket, its announcer, the VRIDs
//! served there and the receive task.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::receive::{Routes, receive_loop};
use crate::net::announce::Announcer;
use crate::net::link::Link;
use crate::net::socket::VrrpSocket;
use crate::net::{Family, NetError};
use crate::report::Metrics;

/// A VRRP socket on one interface with its receive task; the task stops when this is dropped.
#[derive(Debug)]
pub struct Endpoint {
    pub ifindex: u32,
    pub interface: String,
    pub family: Family,
    pub socket: Arc<VrrpSocket>,
    /// GARP / NA sender; `None` when the interface has no MAC address.
    pub announcer: Option<Announcer>,
    pub routes: Routes,
    receiver: JoinHandle<()>,
}

impl Endpoint {
    /// Opens the socket and announcer of `family` on `link` and starts receiving. Must be
    /// called inside a tokio runtime, in the link's namespace.
    pub fn open(link: &Link, family: Family, metrics: &Metrics) -> Result<Self, NetError> {
        let socket = Arc::new(VrrpSocket::open(link, family)?);
        let announcer = match link.mac {
            Some(mac) => match Announcer::open(link.ifindex, mac) {
                Ok(announcer) => Some(announcer),
                Err(error) => {
                    tracing::warn!(interface = %link.name, %error, "cannot open the GARP/NA socket; VIPs will not be announced");
                    None
                }
            },
            None => None,
        };
        let own: Vec<IpAddr> = link
            .addresses
            .iter()
            .filter(|entry| !entry.is_vip())
            .map(|entry| entry.address.addr())
            .chain(std::iter::once(socket.local_address()))
            .collect();
        let routes = Routes::default();
        let receiver = tokio::spawn(receive_loop(
            Arc::clone(&socket),
            link.name.clone(),
            own,
            routes.clone(),
            metrics.clone(),
        ));
        Ok(Self {
            ifindex: link.ifindex,
            interface: link.name.clone(),
            family,
            socket,
            announcer,
            routes,
            receiver,
        })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}
