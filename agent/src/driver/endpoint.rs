//! One (interface, family) the agent speaks VRRP on: its raw socket, its announcer, the VRIDs
//! served there and the receive thread; and [`Sources`], the addresses VRRP speaks from there,
//! derived from the interface's addresses as they are now.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::interfaces::InterfaceView;
use super::receive::{Intake, Routes, Stop};
use crate::net::NetError;
use crate::net::address::InterfaceAddress;
use crate::net::announce::Announcer;
use crate::net::link::{ipv6_link_local, primary_ipv4};
use crate::net::socket::VrrpSocket;
use crate::report::Metrics;
use crate::vrrp::Family;

/// Where VRRP speaks from on one interface and family. Pure: derived from the interface's
/// addresses each time they change, so a renumbered node sends from its new address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    /// Source of multicast adverts, and the address of the equal-priority tie-break: the
    /// primary IPv4 address, or the IPv6 link-local address (RFC 5798 §5.1.2.1).
    pub multicast: Option<IpAddr>,
    /// Source of unicast adverts: the first routable own address of the family (peers list
    /// nodes by their InternalIPs; an IPv6 link-local source would not match), else
    /// [`Self::multicast`].
    pub unicast: Option<IpAddr>,
}

impl Sources {
    /// The sources of `family` among `addresses` (an interface's, VIPs included: they are
    /// skipped).
    pub fn of(addresses: &[InterfaceAddress], family: Family) -> Self {
        let multicast = match family {
            Family::Ipv4 => primary_ipv4(addresses).map(IpAddr::V4),
            Family::Ipv6 => ipv6_link_local(addresses).map(IpAddr::V6),
        };
        let unicast = own_addresses(addresses)
            .into_iter()
            .find(|address| Family::of(*address) == family && is_routable(*address))
            .or(multicast);
        Self { multicast, unicast }
    }

    /// The source of an instance's adverts: [`Self::unicast`] when it has unicast peers,
    /// [`Self::multicast`] otherwise. The state machine uses the same address for the
    /// equal-priority tie-break.
    pub fn for_instance(&self, unicast: bool) -> Option<IpAddr> {
        if unicast {
            self.unicast
        } else {
            self.multicast
        }
    }
}

/// The node's own addresses among `addresses` (VIPs left out): an advert from one of them is
/// our own.
pub fn own_addresses(addresses: &[InterfaceAddress]) -> Vec<IpAddr> {
    addresses
        .iter()
        .filter(|entry| !entry.is_vip())
        .map(|entry| entry.address.addr())
        .collect()
}

/// A VRRP socket on one interface with its receive thread; the thread stops when this is
/// dropped.
#[derive(Debug)]
pub struct Endpoint {
    pub ifindex: u32,
    pub interface: String,
    pub family: Family,
    pub socket: Arc<VrrpSocket>,
    /// GARP / NA sender; `None` when the interface has no MAC address.
    pub announcer: Option<Announcer>,
    pub routes: Routes,
    intake: Arc<Intake>,
    _receiving: Stop,
}

impl Endpoint {
    /// Opens the socket and announcer of `family` on interface `interface` (index `ifindex`,
    /// hardware address `mac`) and starts receiving; `view` follows the interface, for the
    /// own-address filter. Must be called inside a tokio runtime, in the interface's namespace.
    pub fn open(
        interface: &str,
        ifindex: u32,
        mac: Option<[u8; 6]>,
        family: Family,
        view: watch::Receiver<InterfaceView>,
        metrics: &Metrics,
    ) -> Result<Self, NetError> {
        let socket = Arc::new(VrrpSocket::open(ifindex, interface, family)?);
        let announcer = match mac {
            Some(mac) => match Announcer::open(ifindex, mac) {
                Ok(announcer) => Some(announcer),
                Err(error) => {
                    tracing::warn!(%interface, %error, "cannot open the GARP/NA socket; VIPs will not be announced");
                    None
                }
            },
            None => None,
        };
        let priority_zero = match VrrpSocket::open_priority_zero(ifindex, interface, family) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(%interface, %error, "cannot open the priority-0 socket; every advert is read as it arrives");
                None
            }
        };
        let routes = Routes::default();
        let intake = Arc::new(Intake::new(
            Arc::clone(&socket),
            priority_zero,
            interface,
            view,
            routes.clone(),
            metrics,
        ));
        let receiving = intake
            .start()
            .map_err(NetError::io("start the VRRP receive thread"))?;
        Ok(Self {
            ifindex,
            interface: interface.to_owned(),
            family,
            socket,
            announcer,
            routes,
            intake,
            _receiving: receiving,
        })
    }

    /// Returns once every datagram queued in the socket now has been delivered to its unit's
    /// queue.
    pub fn catch_up(&self) {
        let _ = self.intake.catch_up();
    }
}

/// Not loopback, not link-local: an address a unicast peer can know this node by.
fn is_routable(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::address::{IFA_F_SECONDARY, IFAPROT_KUBE_VRRP};

    fn entry(address: &str, flags: u32, protocol: u8) -> InterfaceAddress {
        InterfaceAddress {
            ifindex: 2,
            address: address.parse().unwrap(),
            flags,
            label: None,
            protocol,
        }
    }

    #[test]
    fn unicast_sources_skip_link_local_and_loopback_addresses() {
        for address in ["192.168.77.11", "fd00:77::b", "2001:db8::1"] {
            assert!(is_routable(address.parse().unwrap()), "{address}");
        }
        for address in ["127.0.0.1", "169.254.1.1", "fe80::1", "::1"] {
            assert!(!is_routable(address.parse().unwrap()), "{address}");
        }
    }

    #[test]
    fn ipv4_sources_follow_the_primary_address_and_never_a_vip() {
        let addresses = [
            entry("192.0.2.50/24", 0, IFAPROT_KUBE_VRRP),
            entry("192.0.2.11/24", IFA_F_SECONDARY, 0),
        ];
        let sources = Sources::of(&addresses, Family::Ipv4);
        let new: IpAddr = "192.0.2.11".parse().unwrap();
        assert_eq!(sources.multicast, Some(new));
        assert_eq!(sources.unicast, Some(new));
        assert_eq!(own_addresses(&addresses), [new]);
    }

    #[test]
    fn ipv6_multicast_comes_from_the_link_local_and_unicast_from_a_routable_address() {
        let addresses = [entry("fe80::2/64", 0, 3), entry("2001:db8::2/64", 0, 0)];
        let sources = Sources::of(&addresses, Family::Ipv6);
        assert_eq!(
            sources.for_instance(false),
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(
            sources.for_instance(true),
            Some("2001:db8::2".parse().unwrap())
        );
    }

    #[test]
    fn an_interface_without_an_own_address_of_the_family_has_no_source() {
        let addresses = [entry("192.0.2.50/24", 0, IFAPROT_KUBE_VRRP)];
        assert_eq!(Sources::of(&addresses, Family::Ipv4), Sources::default());
        assert_eq!(Sources::of(&addresses, Family::Ipv6), Sources::default());
    }
}
