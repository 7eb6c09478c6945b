//! Asking the segment who else holds a VIP: ARP probes / DAD-style Neighbor Solicitations
//! out, and every ARP frame / Neighbor Advertisement another node sends in, on one AF_PACKET
//! socket per interface and family with a probing MASTER (open only while one is). The socket
//! is not tokio's: the agent's ticker thread ([`crate::driver::ticker`]) waits on it itself, and
//! it never blocks (a probe the kernel cannot queue now is dropped; the next round sends again).
//! A member's probe frames are built once ([`ProbeSocket::probes`]), when it starts probing.
//!
//! A classic BPF filter in the kernel passes only frames that arrive from the wire (never the
//! node's own outgoing frames, so neither our probes nor our own kernel's answers for the VIP
//! are seen) and, for IPv6, only ICMPv6 Neighbor Advertisements: the socket wakes the agent
//! for nothing else.

pub mod frame;

use std::net::IpAddr;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};
use socket2::{SockAddr, SockFilter, Socket};

use self::frame::{Claim, arp_probe, claim, multicast_mac, neighbor_solicitation_probe};
use super::NetError;
use super::announce::{BROADCAST_MAC, ETH_P_ARP, ETH_P_IPV6};
use super::frame_socket::bound;
use super::sys::link_layer_address;
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

/// One VIP's probe, ready to send: the frame and where it goes.
#[derive(Debug, Clone)]
pub struct Probe {
    pub vip: IpAddr,
    frame: Vec<u8>,
    to: SockAddr,
}

/// Probes for one family's VIPs on one interface and hears the answers.
#[derive(Debug)]
pub struct ProbeSocket {
    socket: Socket,
    ifindex: u32,
    mac: [u8; 6],
    family: Family,
}

impl ProbeSocket {
    /// Opens a probe socket for `family` on interface `ifindex`, probing from `mac` (the
    /// interface's). Call in the interface's namespace.
    pub fn open(ifindex: u32, mac: [u8; 6], family: Family) -> Result<Self, NetError> {
        let socket = match family {
            Family::Ipv4 => bound(ifindex, ETH_P_ARP, Some(&arp_filter())),
            Family::Ipv6 => bound(ifindex, ETH_P_IPV6, Some(&advertisement_filter())),
        }?;
        Ok(Self {
            socket,
            ifindex,
            mac,
            family,
        })
    }

    /// The descriptor to wait on for answers.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// The probes for `vips` from this socket, built once: one per VIP of the socket's family
    /// (others are skipped).
    pub fn probes(&self, vips: &[IpAddr]) -> Vec<Probe> {
        vips.iter()
            .filter_map(|&vip| {
                let (frame, ethertype, destination) = match (vip, self.family) {
                    (IpAddr::V4(v4), Family::Ipv4) => {
                        (arp_probe(self.mac, v4), ETH_P_ARP, BROADCAST_MAC)
                    }
                    (IpAddr::V6(v6), Family::Ipv6) => (
                        neighbor_solicitation_probe(self.mac, v6),
                        ETH_P_IPV6,
                        multicast_mac(frame::solicited_node(v6)),
                    ),
                    _ => return None,
                };
                Some(Probe {
                    vip,
                    frame,
                    to: link_layer_address(self.ifindex, ethertype, destination),
                })
            })
            .collect()
    }

    /// Sends `probe` (one of [`Self::probes`]), without waiting.
    pub fn send(&self, probe: &Probe) -> Result<(), NetError> {
        self.socket
            .send_to(&probe.frame, &probe.to)
            .map(drop)
            .map_err(NetError::io("send a probe"))
    }

    /// Reads every frame queued now, without waiting, and hands each claim one makes to
    /// `heard`.
    pub fn drain(&self, buffer: &mut [u8], mut heard: impl FnMut(Claim)) -> Result<(), NetError> {
        loop {
            match recv(self.socket.as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT) {
                Ok(len) => {
                    if let Some(claim) = buffer.get(..len).and_then(claim) {
                        heard(claim);
                    }
                }
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(error) => {
                    return Err(NetError::io("receive a probe answer")(
                        std::io::Error::from(error),
                    ));
                }
            }
        }
    }
}
