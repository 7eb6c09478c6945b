//! One (interface, family) the agent speaks VRRP on: its raw socket, its announcer, the VRIDs
//! served there and the receive task.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::receive::{Routes, receive_loop};
use crate::net::NetError;
use crate::net::announce::Announcer;
use crate::net::link::Link;
use crate::net::socket::VrrpSocket;
use crate::report::Metrics;
use crate::vrrp::Family;

/// A VRRP socket on one interface with its receive task; the task stops when this is dropped.
#[derive(Debug)]
pub struct Endpoint {
    pub ifindex: u32,
    pub interface: String,
    pub family: Family,
    pub socket: Arc<VrrpSocket>,
    /// The source of unicast adverts: the interface's first routable address of the family
    /// (peers list nodes by their InternalIPs; an IPv6 link-local source would not match).
    pub unicast_source: IpAddr,
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
        let unicast_source = link
            .addresses
            .iter()
            .filter(|entry| !entry.is_vip())
            .map(|entry| entry.address.addr())
            .find(|address| Family::of(*address) == family && is_routable(*address))
            .unwrap_or_else(|| socket.local_address());
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
            unicast_source,
            announcer,
            routes,
            receiver,
        })
    }
}

impl Endpoint {
    /// Where an instance's adverts come from: the socket's address (primary IPv4, IPv6
    /// link-local) for multicast, [`Self::unicast_source`] for unicast peers. The state machine
    /// uses the same address for the equal-priority tie-break.
    pub fn source_for(&self, unicast: bool) -> IpAddr {
        if unicast {
            self.unicast_source
        } else {
            self.socket.local_address()
        }
    }
}

/// Not loopback, not link-local: an address a unicast peer can know this node by.
fn is_routable(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::is_routable;

    #[test]
    fn unicast_sources_skip_link_local_and_loopback_addresses() {
        for address in ["192.168.77.11", "fd00:77::b", "2001:db8::1"] {
            assert!(is_routable(address.parse().unwrap()), "{address}");
        }
        for address in ["127.0.0.1", "169.254.1.1", "fe80::1", "::1"] {
            assert!(!is_routable(address.parse().unwrap()), "{address}");
        }
    }
}
