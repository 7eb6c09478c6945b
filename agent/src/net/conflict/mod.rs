//! Asking the segment who else holds a VIP: ARP probes / DAD-style Neighbor Solicitations
//! out, and every ARP frame / Neighbor Advertisement another node sends in, on one AF_PACKET
//! socket per probing instance (open only while it is MASTER).
//!
//! A classic BPF filter in the kernel passes only frames that arrive from the wire (never the
//! node's own outgoing frames, so neither our probes nor our own kernel's answers for the VIP
//! are seen) and, for IPv6, only ICMPv6 Neighbor Advertisements: the socket wakes the agent
//! for nothing else.

pub mod frame;

use std::net::IpAddr;

use socket2::SockFilter;

use self::frame::{Claim, arp_probe, claim, multicast_mac, neighbor_solicitation_probe};
use super::NetError;
use super::announce::{BROADCAST_MAC, ETH_P_ARP, ETH_P_IPV6};
use super::frame_socket::FrameSocket;
use crate::vrrp::Family;

// Classic BPF opcodes (linux/filter.h) and the ancillary offset of the packet type.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SKF_AD_PKTTYPE: u32 = 0xffff_f000 + 4;
const PACKET_OUTGOING: u32 = 4;
const ACCEPT: u32 = 0xffff;

/// Passes every frame not sent by this host.
fn arp_filter() -> [SockFilter; 4] {
    [
        SockFilter::new(BPF_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        SockFilter::new(BPF_JEQ_K, 0, 1, PACKET_OUTGOING),
        SockFilter::new(BPF_RET_K, 0, 0, 0),
        SockFilter::new(BPF_RET_K, 0, 0, ACCEPT),
    ]
}

/// Passes ICMPv6 Neighbor Advertisements (next header 58 at offset 20, type 136 at 54) not
/// sent by this host.
fn advertisement_filter() -> [SockFilter; 8] {
    [
        SockFilter::new(BPF_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE),
        SockFilter::new(BPF_JEQ_K, 5, 0, PACKET_OUTGOING),
        SockFilter::new(BPF_LD_B_ABS, 0, 0, 20),
        SockFilter::new(BPF_JEQ_K, 0, 3, 58),
        SockFilter::new(BPF_LD_B_ABS, 0, 0, 54),
        SockFilter::new(BPF_JEQ_K, 0, 1, 136),
        SockFilter::new(BPF_RET_K, 0, 0, ACCEPT),
        SockFilter::new(BPF_RET_K, 0, 0, 0),
    ]
}

/// Probes for one family's VIPs on one interface and hears the answers.
#[derive(Debug)]
pub struct ProbeSocket {
    socket: FrameSocket,
    mac: [u8; 6],
    family: Family,
}

impl ProbeSocket {
    /// Opens a probe socket for `family` on interface `ifindex`, probing from `mac` (the
    /// interface's). Must be called inside a tokio runtime, in the interface's namespace.
    pub fn open(ifindex: u32, mac: [u8; 6], family: Family) -> Result<Self, NetError> {
        let socket = match family {
            Family::Ipv4 => FrameSocket::filtered(ifindex, ETH_P_ARP, &arp_filter()),
            Family::Ipv6 => FrameSocket::filtered(ifindex, ETH_P_IPV6, &advertisement_filter()),
        }?;
        Ok(Self {
            socket,
            mac,
            family,
        })
    }

    /// Sends one probe for `vip` (of the socket's family; others are skipped).
    pub async fn probe(&self, vip: IpAddr) -> Result<(), NetError> {
        let (frame, ethertype, destination) = match (vip, self.family) {
            (IpAddr::V4(vip), Family::Ipv4) => (arp_probe(self.mac, vip), ETH_P_ARP, BROADCAST_MAC),
            (IpAddr::V6(vip), Family::Ipv6) => (
                neighbor_solicitation_probe(self.mac, vip),
                ETH_P_IPV6,
                multicast_mac(frame::solicited_node(vip)),
            ),
            _ => return Ok(()),
        };
        self.socket.send(&frame, ethertype, destination).await
    }

    /// Waits for the next frame from another host and returns the claim it makes, if any.
    pub async fn next_claim(&self, buffer: &mut [u8]) -> Result<Option<Claim>, NetError> {
        let len = self.socket.recv(buffer).await?;
        Ok(buffer.get(..len).and_then(claim))
    }
}
