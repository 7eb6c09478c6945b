//! Announcing VIPs on the wire after a transition to MASTER: gratuitous ARP (IPv4) and
//! unsolicited Neighbor Advertisements (IPv6), sent as whole Ethernet frames on an AF_PACKET
//! socket; plus the pure schedule of when to send them.

pub(crate) mod frame;
mod schedule;

pub use frame::{
    ALL_NODES, ALL_NODES_MAC, BROADCAST_MAC, ETH_P_ARP, ETH_P_IPV6, GARP_LEN, NA_LEN,
    gratuitous_arp, unsolicited_neighbor_advertisement,
};
pub use schedule::{GarpSchedule, GarpSettings};

use std::net::IpAddr;

use super::NetError;
use super::frame_socket::FrameSocket;

/// Sends GARP / NA frames out of one interface.
#[derive(Debug)]
pub struct Announcer {
    socket: FrameSocket,
    mac: [u8; 6],
    router: bool,
}

impl Announcer {
    /// Opens an announcer on interface `ifindex` claiming the VIPs for `mac` (the interface's
    /// MAC, or the virtual MAC 00-00-5E-00-01-{VRID} / 00-00-5E-00-02-{VRID}). The socket is
    /// bound with protocol 0, so it never receives. Must be called inside a tokio runtime.
    pub fn open(ifindex: u32, mac: [u8; 6]) -> Result<Self, NetError> {
        Ok(Self {
            socket: FrameSocket::send_only(ifindex)?,
            mac,
            router: false,
        })
    }

    /// Sets the Router flag of the Neighbor Advertisements (set it when the node forwards
    /// IPv6, as keepalived does).
    #[must_use]
    pub fn with_router_flag(mut self, router: bool) -> Self {
        self.router = router;
        self
    }

    /// The hardware address the VIPs are announced at.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The interface the frames leave from.
    pub fn ifindex(&self) -> u32 {
        self.socket.ifindex()
    }

    /// Sends one GARP per IPv4 and one unsolicited NA per IPv6 address. Every address is tried;
    /// the first failure is returned.
    pub async fn announce(&self, addresses: &[IpAddr]) -> Result<(), NetError> {
        let mut first_error = None;
        for address in addresses {
            let (frame, ethertype, destination) = match address {
                IpAddr::V4(vip) => (gratuitous_arp(self.mac, *vip), ETH_P_ARP, BROADCAST_MAC),
                IpAddr::V6(vip) => (
                    unsolicited_neighbor_advertisement(self.mac, *vip, *vip, self.router),
                    ETH_P_IPV6,
                    ALL_NODES_MAC,
                ),
            };
            if let Err(error) = self.send_frame(&frame, ethertype, destination).await {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends one whole Ethernet frame.
    pub async fn send_frame(
        &self,
        frame: &[u8],
        ethertype: u16,
        destination: [u8; 6],
    ) -> Result<(), NetError> {
        self.socket.send(frame, ethertype, destination).await
    }
}
