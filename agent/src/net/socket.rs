//! Raw VRRP sockets (IP protocol 112), one per (interface, family): send with TTL / hop limit
//! 255 from the source the caller names, receive with TTL / hop limit, destination, ifindex and
//! the kernel's count of datagrams it dropped for a full receive queue.
//!
//! The socket is bound to its device (SO_BINDTODEVICE) but deliberately NOT bound to a source
//! address: a raw socket bound to a local address only receives datagrams whose destination is
//! that address (the kernel's `raw_v4_match` / `raw_v6_match`), which would hide the adverts sent
//! to 224.0.0.18 / ff02::12. Instead every datagram pins its source and interface with an
//! IP_PKTINFO / IPV6_PKTINFO control message, so the source is known up front (the v3 checksum
//! pseudo-header needs it), never left to route lookup, and free to follow the node's
//! addresses as they change: nothing about the socket depends on them.
//!
//! Nothing is filtered here beyond what the kernel does: the driver drops by TTL, source and
//! content. IPV6_CHECKSUM is not set; the codec computes and verifies the checksum itself.
//!
//! The socket is not in tokio's reactor: a datagram arriving (or a sent one leaving the send
//! queue) wakes no runtime thread. Its reader is a plain thread blocked in
//! [`VrrpSocket::wait_readable`]; a sender whom the kernel tells to wait is the only one who
//! watches it through the reactor, for as long as it waits.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Mutex, PoisonError};

use nix::libc;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn6, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, MsgHdr, Protocol, SockAddr, Socket, Type};

use super::NetError;
use super::sys::{register_writable, wait_readable};
use crate::vrrp::packet::IpPacket;
use crate::vrrp::{Family, IPPROTO_VRRP, VRRP_MULTICAST_IPV4, VRRP_MULTICAST_IPV6, VRRP_TTL};

/// Room for one IP_PKTINFO / IPV6_PKTINFO control message (CMSG_SPACE of an in6_pktinfo is
/// 40 bytes on 64-bit Linux).
const CONTROL_ROOM: usize = 64;

/// Receive buffer size: the largest IP datagram, so nothing the kernel delivers is truncated.
const RECV_BUFFER: usize = 65_536;
/// The socket's receive queue (SO_RCVBUF, forced past `rmem_max` with CAP_NET_ADMIN): room for a
/// burst of a few thousand adverts, so a flood is read and counted rather than dropped unread.
const RECEIVE_QUEUE_BYTES: usize = 4 << 20;

/// One VRRP datagram as received: the VRRP payload (IP header stripped) plus what the driver
/// needs to validate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// IP source address (for IPv6, a link-local address when the sender follows RFC 5798).
    pub source: IpAddr,
    /// IP destination address: the VRRP group, or this node's address for unicast.
    pub destination: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6) as received; anything but 255 must be dropped.
    pub ttl: u8,
    /// The interface the datagram arrived on.
    pub ifindex: u32,
    /// The VRRP packet (header, addresses, authentication data).
    pub payload: Vec<u8>,
    /// How many datagrams the kernel has dropped on this socket because its receive queue was
    /// full, counted since the socket opened (SO_RXQ_OVFL); absent while none were.
    pub queue_drops: Option<u32>,
}

impl Received {
    /// A datagram to receive into (addresses unspecified, no payload yet).
    pub fn empty() -> Self {
        Self {
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            destination: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ttl: 0,
            ifindex: 0,
            payload: Vec::new(),
            queue_drops: None,
        }
    }

    /// Overwrites every field, copying `payload` into the existing buffer.
    fn fill(
        &mut self,
        (source, destination): (IpAddr, IpAddr),
        ttl: u8,
        ifindex: u32,
        payload: &[u8],
        queue_drops: Option<u32>,
    ) {
        self.source = source;
        self.destination = destination;
        self.ttl = ttl;
        self.ifindex = ifindex;
        self.payload.clear();
        self.payload.extend_from_slice(payload);
        self.queue_drops = queue_drops;
    }
}

/// What [`VrrpSocket::wait_readable`] woke for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A datagram (or an error) waits on the socket.
    Datagram,
    /// The stop descriptor is readable or hung up.
    Stop,
    /// Neither (a spurious wake-up): wait again.
    Nothing,
}

/// A raw VRRP socket on one interface for one address family.
pub struct VrrpSocket {
    socket: Socket,
    ifindex: u32,
    family: Family,
    buffers: Mutex<RecvBuffers>,
}

/// What one `recvmsg` fills, kept between datagrams so that receiving allocates nothing.
struct RecvBuffers {
    datagram: Vec<u8>,
    /// Room for the control messages the socket asks for (its family's packet info, hop
    /// limit, queue drops).
    control: Vec<u8>,
}

impl std::fmt::Debug for VrrpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrrpSocket")
            .field("ifindex", &self.ifindex)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl VrrpSocket {
    /// Opens the socket of `family` on interface `ifindex` (named `ifname`).
    pub fn open(ifindex: u32, ifname: &str, family: Family) -> Result<Self, NetError> {
        let domain = match family {
            Family::Ipv4 => Domain::IPV4,
            Family::Ipv6 => Domain::IPV6,
        };
        let socket = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )
        .map_err(NetError::io("open raw VRRP socket"))?;
        socket
            .bind_device(Some(ifname.as_bytes()))
            .map_err(NetError::io("bind VRRP socket to device"))?;
        // The queue is raised past rmem_max when the agent may (CAP_NET_ADMIN), else as far as
        // rmem_max allows; a smaller queue only means earlier `overflow` drops.
        if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_QUEUE_BYTES).is_err() {
            let _ = socket.set_recv_buffer_size(RECEIVE_QUEUE_BYTES);
        }
        setsockopt(&socket, sockopt::RxqOvfl, &1).map_err(NetError::errno("set SO_RXQ_OVFL"))?;
        match family {
            Family::Ipv4 => {
                socket
                    .join_multicast_v4_n(
                        &VRRP_MULTICAST_IPV4,
                        &InterfaceIndexOrAddress::Index(ifindex),
                    )
                    .map_err(NetError::io("join 224.0.0.18"))?;
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(NetError::io("clear IP_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_ttl_v4(u32::from(VRRP_TTL))
                    .map_err(NetError::io("set IP_MULTICAST_TTL"))?;
                socket
                    .set_ttl_v4(u32::from(VRRP_TTL))
                    .map_err(NetError::io("set IP_TTL"))?;
                setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
                    .map_err(NetError::errno("set IP_PKTINFO"))?;
            }
            Family::Ipv6 => {
                socket
                    .join_multicast_v6(&VRRP_MULTICAST_IPV6, ifindex)
                    .map_err(NetError::io("join ff02::12"))?;
                socket
                    .set_multicast_if_v6(ifindex)
                    .map_err(NetError::io("set IPV6_MULTICAST_IF"))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(NetError::io("clear IPV6_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_hops_v6(u32::from(VRRP_TTL))
                    .map_err(NetError::io("set IPV6_MULTICAST_HOPS"))?;
                socket
                    .set_unicast_hops_v6(u32::from(VRRP_TTL))
                    .map_err(NetError::io("set IPV6_UNICAST_HOPS"))?;
                setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
                    .map_err(NetError::errno("set IPV6_RECVPKTINFO"))?;
                setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)
                    .map_err(NetError::errno("set IPV6_RECVHOPLIMIT"))?;
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(NetError::io("make VRRP socket non-blocking"))?;
        Ok(Self {
            socket,
            ifindex,
            family,
            buffers: Mutex::new(RecvBuffers {
                datagram: vec![0; RECV_BUFFER],
                control: match family {
                    Family::Ipv4 => nix::cmsg_space!(libc::in_pktinfo, u32),
                    Family::Ipv6 => nix::cmsg_space!(libc::in6_pktinfo, libc::c_int, u32),
                },
            }),
        })
    }

    /// The interface this socket sends and receives on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The socket's address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Blocks the calling thread until a datagram (or an error) waits on the socket, or `stop`
    /// is readable or hung up: [`Readiness::Stop`] wins when both are. A signal ends the wait
    /// early with `ErrorKind::Interrupted`.
    pub fn wait_readable(&self, stop: BorrowedFd<'_>) -> io::Result<Readiness> {
        let [stopped, ready] = wait_readable([stop, self.socket.as_fd()])?;
        Ok(if stopped {
            Readiness::Stop
        } else if ready {
            Readiness::Datagram
        } else {
            Readiness::Nothing
        })
    }

    /// Receives one VRRP datagram into `into` without waiting (its payload buffer is reused:
    /// once it has grown to the largest datagram, receiving allocates nothing): `None` when no
    /// datagram is queued. An error for one datagram (truncated, malformed header, missing
    /// control message) does not break the socket: count it and receive again. On an error
    /// `into` is unspecified.
    pub fn try_recv_into(&self, into: &mut Received) -> Option<Result<(), NetError>> {
        match self.recv_now(&self.socket, into) {
            Ok(received) => Some(received),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
            Err(error) => Some(Err(NetError::Io {
                op: "receive a VRRP datagram",
                source: error,
            })),
        }
    }

    /// Sends one VRRP payload from `source` (a local address of the socket's family) to
    /// `destination` (the group or a unicast peer) with TTL / hop limit 255.
    pub async fn send_from(
        &self,
        payload: &[u8],
        source: IpAddr,
        destination: IpAddr,
    ) -> Result<(), NetError> {
        for address in [source, destination] {
            if Family::of(address) != self.family() {
                return Err(NetError::FamilyMismatch { address });
            }
        }
        // The socket is writable nearly always: try at once, and wait for it only when the
        // kernel says it would block.
        match self.send_now(&self.socket, payload, source, destination) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            result => {
                return result
                    .map(|_| ())
                    .map_err(NetError::io("send a VRRP datagram"));
            }
        }
        // The reactor watches a duplicate of the descriptor (the same socket) while this send
        // waits, and forgets it after.
        let watched = self
            .socket
            .try_clone()
            .and_then(register_writable)
            .map_err(NetError::io("wait to send a VRRP datagram"))?;
        loop {
            let mut guard = watched
                .writable()
                .await
                .map_err(NetError::io("wait to send a VRRP datagram"))?;
            match guard.try_io(|fd| self.send_now(fd.get_ref(), payload, source, destination)) {
                Ok(result) => {
                    return result
                        .map(|_| ())
                        .map_err(NetError::io("send a VRRP datagram"));
                }
                Err(_would_block) => {}
            }
        }
    }

    /// [`VrrpSocket::send_from`] without waiting, from any thread: an error (WouldBlock
    /// included) when the datagram was not sent.
    pub fn try_send_from(
        &self,
        payload: &[u8],
        source: IpAddr,
        destination: IpAddr,
    ) -> io::Result<()> {
        self.send_now(&self.socket, payload, source, destination)
            .map(|_| ())
    }

    fn send_now(
        &self,
        socket: &Socket,
        payload: &[u8],
        source: IpAddr,
        destination: IpAddr,
    ) -> io::Result<usize> {
        // The control message is laid out here, on the stack: nix's `sendmsg` allocates a
        // buffer for it on every call, which a MASTER's advert path does not need.
        let mut control = [0u8; CONTROL_ROOM];
        let (to, control_len) = match (source, destination) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                // struct in_pktinfo: ifindex, the source (ipi_spec_dst), ipi_addr unused.
                let mut info = [0u8; 12];
                info[..4].copy_from_slice(&self.ifindex.cast_signed().to_ne_bytes());
                info[4..8].copy_from_slice(&source.octets());
                let len = control_message(&mut control, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
                (SockAddr::from(SocketAddrV4::new(destination, 0)), len)
            }
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                // struct in6_pktinfo: the source, then the ifindex.
                let mut info = [0u8; 20];
                info[..16].copy_from_slice(&source.octets());
                info[16..].copy_from_slice(&self.ifindex.to_ne_bytes());
                let len =
                    control_message(&mut control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
                let scope = if needs_scope(destination) {
                    self.ifindex
                } else {
                    0
                };
                let to = SockAddr::from(SocketAddrV6::new(destination, 0, 0, scope));
                (to, len)
            }
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        };
        let iov = [IoSlice::new(payload)];
        let message = MsgHdr::new()
            .with_addr(&to)
            .with_buffers(&iov)
            .with_control(&control[..control_len]);
        socket.sendmsg(&message, libc::MSG_DONTWAIT)
    }

    /// One non-blocking `recvmsg`. The outer error is the syscall's (WouldBlock re-arms the
    /// readiness); the inner one is about the datagram.
    fn recv_now(&self, socket: &Socket, into: &mut Received) -> io::Result<Result<(), NetError>> {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let RecvBuffers {
            datagram: buffer,
            control,
        } = &mut *buffers;
        let fd = socket.as_raw_fd();
        match self.family {
            Family::Ipv4 => {
                let (bytes, truncated, ifindex, queue_drops) = {
                    let mut iov = [IoSliceMut::new(&mut buffer[..])];
                    // The source is read from the IP header: no socket address asked for.
                    let message =
                        recvmsg::<()>(fd, &mut iov, Some(&mut *control), MsgFlags::MSG_DONTWAIT)
                            .map_err(io::Error::from)?;
                    let mut ifindex = None;
                    let mut queue_drops = None;
                    if let Ok(cmsgs) = message.cmsgs() {
                        for cmsg in cmsgs {
                            match cmsg {
                                ControlMessageOwned::Ipv4PacketInfo(info) => {
                                    ifindex = u32::try_from(info.ipi_ifindex).ok();
                                }
                                ControlMessageOwned::RxqOvfl(count) => queue_drops = Some(count),
                                _ => {}
                            }
                        }
                    }
                    (
                        message.bytes,
                        message.flags.contains(MsgFlags::MSG_TRUNC),
                        ifindex,
                        queue_drops,
                    )
                };
                if truncated {
                    return Ok(Err(NetError::Truncated(RECV_BUFFER)));
                }
                let Some(ifindex) = ifindex else {
                    return Ok(Err(NetError::MissingControlMessage("IP_PKTINFO")));
                };
                Ok(IpPacket::decode_ipv4(&buffer[..bytes])
                    .map(|packet| {
                        into.fill(
                            (packet.source, packet.destination),
                            packet.ttl,
                            ifindex,
                            packet.payload,
                            queue_drops,
                        );
                    })
                    .map_err(NetError::MalformedIp))
            }
            Family::Ipv6 => {
                let (bytes, truncated, source, info, hop_limit, queue_drops) = {
                    let mut iov = [IoSliceMut::new(&mut buffer[..])];
                    let message = recvmsg::<SockaddrStorage>(
                        fd,
                        &mut iov,
                        Some(&mut *control),
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(io::Error::from)?;
                    let mut info = None;
                    let mut hop_limit = None;
                    let mut queue_drops = None;
                    if let Ok(cmsgs) = message.cmsgs() {
                        for cmsg in cmsgs {
                            match cmsg {
                                ControlMessageOwned::Ipv6PacketInfo(pktinfo) => {
                                    info = Some((
                                        Ipv6Addr::from(pktinfo.ipi6_addr.s6_addr),
                                        pktinfo.ipi6_ifindex,
                                    ));
                                }
                                ControlMessageOwned::Ipv6HopLimit(limit) => {
                                    hop_limit = u8::try_from(limit).ok();
                                }
                                ControlMessageOwned::RxqOvfl(count) => queue_drops = Some(count),
                                _ => {}
                            }
                        }
                    }
                    let source = message
                        .address
                        .as_ref()
                        .and_then(SockaddrStorage::as_sockaddr_in6)
                        .map(SockaddrIn6::ip);
                    (
                        message.bytes,
                        message.flags.contains(MsgFlags::MSG_TRUNC),
                        source,
                        info,
                        hop_limit,
                        queue_drops,
                    )
                };
                if truncated {
                    return Ok(Err(NetError::Truncated(RECV_BUFFER)));
                }
                let Some(source) = source else {
                    return Ok(Err(NetError::MissingControlMessage("source address")));
                };
                let Some((destination, ifindex)) = info else {
                    return Ok(Err(NetError::MissingControlMessage("IPV6_PKTINFO")));
                };
                let Some(ttl) = hop_limit else {
                    return Ok(Err(NetError::MissingControlMessage("IPV6_HOPLIMIT")));
                };
                into.fill(
                    (IpAddr::V6(source), IpAddr::V6(destination)),
                    ttl,
                    ifindex,
                    &buffer[..bytes],
                    queue_drops,
                );
                Ok(Ok(()))
            }
        }
    }
}

/// Writes one control message (a `struct cmsghdr`, then `data`) at the start of `room`, laid
/// out as the C library's CMSG_LEN / CMSG_SPACE describe it, and returns its CMSG_SPACE.
fn control_message(room: &mut [u8; CONTROL_ROOM], level: i32, kind: i32, data: &[u8]) -> usize {
    // cmsg_len is a size_t; the data starts at the header's size rounded up to a size_t.
    let word = std::mem::size_of::<usize>();
    let align = |len: usize| len.div_ceil(word) * word;
    let int = std::mem::size_of::<i32>();
    let header = align(word + 2 * int);
    let len = header + data.len();
    room[..word].copy_from_slice(&len.to_ne_bytes());
    room[word..word + int].copy_from_slice(&level.to_ne_bytes());
    room[word + int..word + 2 * int].copy_from_slice(&kind.to_ne_bytes());
    room[header..len].copy_from_slice(data);
    align(len)
}

/// Whether an IPv6 destination needs the interface as its scope id (link-local unicast, or
/// link- or interface-local multicast).
fn needs_scope(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    (first & 0xffc0) == 0xfe80 || (address.is_multicast() && matches!(first & 0x000f, 1 | 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_pktinfo_control_message_is_laid_out_as_cmsg_space_says() {
        let mut room = [0u8; CONTROL_ROOM];
        let info = [7u8; 12];
        let space = control_message(&mut room, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
        assert_eq!(space, 32, "CMSG_SPACE(sizeof(struct in_pktinfo))");
        assert_eq!(room[..8], 28usize.to_ne_bytes(), "cmsg_len: CMSG_LEN(12)");
        assert_eq!(room[8..12], libc::IPPROTO_IP.to_ne_bytes());
        assert_eq!(room[12..16], libc::IP_PKTINFO.to_ne_bytes());
        assert_eq!(room[16..28], info);
        assert_eq!(room[28..32], [0; 4], "padding");
        let space = control_message(&mut room, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &[1; 20]);
        assert_eq!(space, 40, "CMSG_SPACE(sizeof(struct in6_pktinfo))");
        assert_eq!(room[..8], 36usize.to_ne_bytes());
    }

    #[test]
    fn link_local_and_link_scope_multicast_need_a_scope_id_but_global_unicast_does_not() {
        assert!(needs_scope("fe80::1".parse().unwrap()));
        assert!(needs_scope(VRRP_MULTICAST_IPV6));
        assert!(!needs_scope("2001:db8::1".parse().unwrap()));
        assert!(!needs_scope("ff05::2".parse().unwrap()));
    }
}
