//! Raw VRRP sockets (IP protocol 112), one per (interface, family): send with TTL / hop limit
//! 255 from the source the caller names, receive with TTL / hop limit, destination, the time the
//! datagram arrived and the kernel's count of datagrams it dropped for a full receive queue.
//!
//! The socket is bound to its device (SO_BINDTODEVICE) but deliberately NOT bound to a source
//! address: a raw socket bound to a local address only receives datagrams whose destination is
//! that address (the kernel's `raw_v4_match` / `raw_v6_match`), which would hide the adverts sent
//! to 224.0.0.18 / ff02::12. Instead every datagram pins its source and interface with an
//! IP_PKTINFO / IPV6_PKTINFO control message, so the source is known up front (the v3 checksum
//! pseudo-header needs it), never left to route lookup, and free to follow the node's
//! addresses as they change: nothing about the socket depends on them.
//!
//! Receiving asks the kernel for no more than it must say: the device binding already names
//! the interface of every datagram, an IPv4 datagram carries its destination and TTL in the
//! header a raw socket hands over, and only IPv6 (which strips its header) needs its packet
//! info and hop limit as control messages. Every datagram carries its receive stamp
//! (SO_TIMESTAMPNS, see [`super::arrival`]), and the queue-drop count once the kernel has
//! dropped some.
//!
//! Nothing is filtered here beyond what the kernel does: the driver drops by TTL, source and
//! content. IPV6_CHECKSUM is not set; the codec computes and verifies the checksum itself.
//!
//! The socket is not in tokio's reactor: a datagram arriving (or a sent one leaving the send
//! queue) wakes no runtime thread. Its reader is a plain thread that watches it (it is
//! [`AsFd`]) in its own epoll set; a sender whom the kernel tells to wait is the only one who
//! watches it through the reactor, for as long as it waits.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use nix::libc;
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, MsgHdr, Protocol, SockAddr, Socket, Type};

use super::NetError;
use super::arrival::Clocks;
use super::control;
use super::sys::{receive_message, register_writable};
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
    /// The VRRP packet (header, addresses, authentication data).
    pub payload: Vec<u8>,
    /// How many datagrams the kernel has dropped on this socket because its receive queue was
    /// full, counted since the socket opened (SO_RXQ_OVFL); absent while none were.
    pub queue_drops: Option<u32>,
    /// When the datagram reached this node: its kernel receive stamp, on the monotonic clock
    /// (the read's time when the stamp is missing or not believable).
    pub arrived: Instant,
    /// When this process read it (the monotonic clock after `recvmsg`; in a drain, read once
    /// for every datagram that had arrived by then, see [`Clocks`]): later than
    /// `arrived` by as long as the reader was not scheduled.
    pub read: Instant,
}

impl Received {
    /// A datagram to receive into (addresses unspecified, no payload yet).
    pub fn empty() -> Self {
        Self {
            source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            destination: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ttl: 0,
            payload: Vec::new(),
            queue_drops: None,
            arrived: Instant::now(),
            read: Instant::now(),
        }
    }

    /// Overwrites every field, copying `payload` into the existing buffer.
    fn fill(
        &mut self,
        (source, destination): (IpAddr, IpAddr),
        ttl: u8,
        payload: &[u8],
        (queue_drops, arrived, read): (Option<u32>, Instant, Instant),
    ) {
        self.source = source;
        self.destination = destination;
        self.ttl = ttl;
        self.payload.clear();
        self.payload.extend_from_slice(payload);
        self.queue_drops = queue_drops;
        self.arrived = arrived;
        self.read = read;
    }
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
    /// Room for the sender's `sockaddr_in6` (IPv6; IPv4 reads it from the IP header).
    name: Vec<u8>,
    /// Room for the control messages the socket asks for (the receive stamp, queue drops; for
    /// IPv6 also the packet info and hop limit).
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

/// The socket's descriptor, for a reader's wait (it stays the socket's).
impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
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
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)
            .map_err(NetError::errno("set SO_TIMESTAMPNS"))?;
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
                name: match family {
                    Family::Ipv4 => Vec::new(),
                    Family::Ipv6 => vec![0; std::mem::size_of::<libc::sockaddr_in6>()],
                },
                control: match family {
                    Family::Ipv4 => nix::cmsg_space!(libc::timespec, u32),
                    Family::Ipv6 => {
                        nix::cmsg_space!(libc::timespec, libc::in6_pktinfo, libc::c_int, u32)
                    }
                },
            }),
        })
    }

    /// Opens a socket like [`Self::open`] whose queue the kernel fills only with datagrams whose
    /// VRRP priority is 0 (a MASTER leaving): a BACKUP that reads its main socket in batches
    /// watches this one to hear a handover at once. What it queues is in the main socket too;
    /// its datagrams only wake the reader.
    pub fn open_priority_zero(
        ifindex: u32,
        ifname: &str,
        family: Family,
    ) -> Result<Self, NetError> {
        let opened = Self::open(ifindex, ifname, family)?;
        opened
            .socket
            .attach_filter(&priority_zero_filter(family))
            .map_err(NetError::io("attach the priority-0 filter"))?;
        Ok(opened)
    }

    /// The bytes the kernel lets this socket's receive queue hold (0 when it cannot say).
    pub fn receive_queue_bytes(&self) -> usize {
        self.socket.recv_buffer_size().unwrap_or(0)
    }

    /// The interface this socket sends and receives on.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The socket's address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Receives one VRRP datagram into `into` without waiting (its payload buffer is reused:
    /// once it has grown to the largest datagram, receiving allocates nothing): `None` when no
    /// datagram is queued. An error for one datagram (truncated, malformed header, missing
    /// control message) does not break the socket: count it and receive again. On an error
    /// `into` is unspecified. `queued_after`: when the caller last found the queue empty, if it
    /// knows (see [`super::arrival::arrival`]); `clocks`: what it times datagrams by (kept for a drain).
    pub fn try_recv_into(
        &self,
        into: &mut Received,
        queued_after: Option<Instant>,
        clocks: &mut Clocks,
    ) -> Option<Result<(), NetError>> {
        match self.recv_now(&self.socket, into, queued_after, clocks) {
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
                let len = control::write(&mut control, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
                (SockAddr::from(SocketAddrV4::new(destination, 0)), len)
            }
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                // struct in6_pktinfo: the source, then the ifindex.
                let mut info = [0u8; 20];
                info[..16].copy_from_slice(&source.octets());
                info[16..].copy_from_slice(&self.ifindex.to_ne_bytes());
                let len =
                    control::write(&mut control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
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
    fn recv_now(
        &self,
        socket: &Socket,
        into: &mut Received,
        queued_after: Option<Instant>,
        clocks: &mut Clocks,
    ) -> io::Result<Result<(), NetError>> {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let RecvBuffers {
            datagram,
            name,
            control,
        } = &mut *buffers;
        let message = receive_message(socket.as_fd(), datagram, name, control)?;
        if message.truncated {
            return Ok(Err(NetError::Truncated(RECV_BUFFER)));
        }
        let received = &datagram[..message.bytes];
        let mut queue_drops = None;
        let mut stamp = None;
        let mut destination = None;
        let mut hop_limit = None;
        for (level, kind, data) in control::read(&control[..message.control_len]) {
            match (level, kind) {
                (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => queue_drops = control::u32_of(data),
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => stamp = control::timespec_of(data),
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    // struct in6_pktinfo: the destination, then the ifindex.
                    destination = <[u8; 16]>::try_from(data.get(..16).unwrap_or_default())
                        .ok()
                        .map(Ipv6Addr::from);
                }
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    hop_limit = control::int_of(data).and_then(|limit| u8::try_from(limit).ok());
                }
                _ => {}
            }
        }
        let (arrived, read) = clocks.time(stamp, queued_after);
        match self.family {
            // Source, destination and TTL come from the IP header a raw IPv4 socket hands over.
            Family::Ipv4 => Ok(IpPacket::decode_ipv4(received)
                .map(|packet| {
                    into.fill(
                        (packet.source, packet.destination),
                        packet.ttl,
                        packet.payload,
                        (queue_drops, arrived, read),
                    );
                })
                .map_err(NetError::MalformedIp)),
            Family::Ipv6 => {
                let Some(source) = ipv6_source(&name[..message.name_len]) else {
                    return Ok(Err(NetError::MissingControlMessage("source address")));
                };
                let Some(destination) = destination else {
                    return Ok(Err(NetError::MissingControlMessage("IPV6_PKTINFO")));
                };
                let Some(ttl) = hop_limit else {
                    return Ok(Err(NetError::MissingControlMessage("IPV6_HOPLIMIT")));
                };
                into.fill(
                    (IpAddr::V6(source), IpAddr::V6(destination)),
                    ttl,
                    received,
                    (queue_drops, arrived, read),
                );
                Ok(Ok(()))
            }
        }
    }
}

/// The address of a `struct sockaddr_in6` as `recvmsg` wrote it (family, port, flow info, the
/// address, scope id); `None` for anything else.
fn ipv6_source(name: &[u8]) -> Option<Ipv6Addr> {
    let family = u16::from_ne_bytes(name.get(..2)?.try_into().ok()?);
    if i32::from(family) != libc::AF_INET6 {
        return None;
    }
    <[u8; 16]>::try_from(name.get(8..24)?)
        .ok()
        .map(Ipv6Addr::from)
}

/// Whether an IPv6 destination needs the interface as its scope id (link-local unicast, or
/// link- or interface-local multicast).
fn needs_scope(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    (first & 0xffc0) == 0xfe80 || (address.is_multicast() && matches!(first & 0x000f, 1 | 2))
}

/// A classic BPF program that keeps a datagram when the VRRP priority (the third byte of the
/// VRRP header, RFC 5798 §5.2) is 0 and drops it otherwise. An IPv4 raw socket's filter sees the
/// datagram from its IP header (of IHL × 4 bytes); an IPv6 one sees it from the VRRP header.
fn priority_zero_filter(family: Family) -> Vec<socket2::SockFilter> {
    use libc::{
        BPF_ABS, BPF_B, BPF_IND, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_LDX, BPF_MSH, BPF_RET,
    };
    const PRIORITY: u32 = 2;
    let op = |code: u32| u16::try_from(code).unwrap_or(u16::MAX);
    let load_priority = match family {
        // X = IHL × 4, then the byte at X + 2.
        Family::Ipv4 => vec![
            socket2::SockFilter::new(op(BPF_LDX | BPF_B | BPF_MSH), 0, 0, 0),
            socket2::SockFilter::new(op(BPF_LD | BPF_B | BPF_IND), 0, 0, PRIORITY),
        ],
        Family::Ipv6 => vec![socket2::SockFilter::new(
            op(BPF_LD | BPF_B | BPF_ABS),
            0,
            0,
            PRIORITY,
        )],
    };
    let mut program = load_priority;
    program.extend([
        // Priority 0: keep (next instruction); otherwise drop (the one after).
        socket2::SockFilter::new(op(BPF_JMP | BPF_JEQ | BPF_K), 0, 1, 0),
        socket2::SockFilter::new(op(BPF_RET | BPF_K), 0, 0, u32::MAX),
        socket2::SockFilter::new(op(BPF_RET | BPF_K), 0, 0, 0),
    ]);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_of_an_ipv6_datagram_is_read_from_its_sockaddr_in6_only() {
        let mut name = [0u8; 28];
        name[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        let source: Ipv6Addr = "fe80::1".parse().unwrap();
        name[8..24].copy_from_slice(&source.octets());
        assert_eq!(ipv6_source(&name), Some(source));
        assert_eq!(ipv6_source(&name[..20]), None, "cut short");
        name[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        assert_eq!(ipv6_source(&name), None, "another family");
    }

    #[test]
    fn link_local_and_link_scope_multicast_need_a_scope_id_but_global_unicast_does_not() {
        assert!(needs_scope("fe80::1".parse().unwrap()));
        assert!(needs_scope(VRRP_MULTICAST_IPV6));
        assert!(!needs_scope("2001:db8::1".parse().unwrap()));
        assert!(!needs_scope("ff05::2".parse().unwrap()));
    }
}
