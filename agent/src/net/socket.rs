//! Raw VRRP sockets (IP protocol 112), one per (interface, family): send with TTL / hop limit
//! 255 from the source the caller names, receive with TTL / hop limit, destination, the time the
//! datagram arrived and the kernel's count of datagrams it dropped for a full receive queue.
//!
//! The socket is bound to its device (SO_BINDTODEVICE) but deliberately NOT bound to a source
//! address: a raw socket bound to a local address only receives datagrams whose destination is
//! that address (the kernel's `raw_v4_match` / `raw_v6_match`), which would hide the adverts sent
//! to 224.0.0.18 / ff02::12. Instead every datagram names its source itself, so the source is
//! known up front (the v3 checksum pseudo-header needs it), never left to route lookup, and
//! free to follow the node's addresses as they change: nothing about the socket depends on
//! them. IPv4 datagrams leave through a send-only companion socket with the IP header written
//! here (the cheapest send the kernel offers a raw socket); IPv6 ones (whose header a raw
//! socket cannot write) with an IPV6_PKTINFO control message.
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
use super::sys::{Batch, register_writable};
use crate::vrrp::packet::IpPacket;
use crate::vrrp::{Family, IPPROTO_VRRP, VRRP_MULTICAST_IPV4, VRRP_MULTICAST_IPV6, VRRP_TTL};

/// Room for the IPV6_PKTINFO control message an IPv6 send carries (CMSG_SPACE of an
/// in6_pktinfo is 40 bytes on 64-bit Linux).
const CONTROL_ROOM: usize = 64;

/// Room for one received datagram: more than the longest VRRP datagram can be (a v3 advert of
/// 255 IPv6 addresses is 4,088 bytes, a v2 one of 255 IPv4 addresses with a 60-byte IP header
/// 1,096), so a longer one is no advert and is dropped by its length (truncated). Only a
/// datagram's first [`super::sys::DATAGRAM_HEAD`] bytes go where the other slots' do (an IPv4
/// advert of up to 23 addresses, 25 in v3; an IPv6 one of up to 7): a drain of short adverts
/// touches one page of them, not one page each.
const RECV_BUFFER: usize = 8_192;
/// The most datagrams a drain reads with one system call.
const DRAIN_BATCH: usize = 16;
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
    /// When this process read it (the monotonic clock after the read; in a drain, read once
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
    /// IPv4 sends through a socket of its own that takes each datagram with its IP header
    /// ([`ipv4_header`]; IPPROTO_RAW: it receives nothing, so arriving adverts are not copied
    /// to it): the kernel then neither reads a packet-info message nor assembles the datagram
    /// piece by piece, which was most of a MASTER's own share of sending. `None` for IPv6.
    ipv4_sender: Option<Socket>,
    ifindex: u32,
    family: Family,
    buffers: Mutex<RecvBuffers>,
}

/// What reading fills, kept between reads so that receiving allocates nothing: slots for a
/// drain's batch of [`DRAIN_BATCH`] datagrams (a datagram read alone takes the first), and
/// where the last read stands.
#[derive(Debug)]
struct RecvBuffers {
    batch: Batch,
    /// The last read: how many datagrams it asked for, took (the first `taken` slots), and
    /// has handed over.
    asked: usize,
    taken: usize,
    handed: usize,
}

impl RecvBuffers {
    fn new(family: Family) -> Self {
        let name_slot = match family {
            // IPv4 reads the source from the IP header.
            Family::Ipv4 => 0,
            Family::Ipv6 => std::mem::size_of::<libc::sockaddr_in6>(),
        };
        // The receive stamp and queue drops; for IPv6 also the packet info and hop limit.
        let control_slot = match family {
            Family::Ipv4 => nix::cmsg_space!(libc::timespec, u32),
            Family::Ipv6 => nix::cmsg_space!(libc::timespec, libc::in6_pktinfo, libc::c_int, u32),
        }
        .len();
        Self {
            batch: Batch::new(DRAIN_BATCH, RECV_BUFFER, name_slot, control_slot),
            asked: 0,
            taken: 0,
            handed: 0,
        }
    }

    /// The next datagram of the last read not yet handed over, as its slot; `None` when all
    /// are.
    fn next_held(&mut self) -> Option<usize> {
        (self.handed < self.taken).then(|| {
            self.handed += 1;
            self.handed - 1
        })
    }

    /// Whether the last read, all handed over, found the queue empty: it took fewer datagrams
    /// than it asked for (the kernel stops at the first it would wait for). Forgets that read.
    fn found_empty(&mut self) -> bool {
        let empty = self.taken < self.asked;
        (self.asked, self.taken, self.handed) = (0, 0, 0);
        empty
    }

    /// The slot of the next datagram: one the last read took and has not handed over, else one
    /// of up to `count` a read of `socket` takes now. WouldBlock when none is queued, without a
    /// read when the last one found the queue empty.
    fn next(&mut self, socket: BorrowedFd<'_>, count: usize) -> io::Result<usize> {
        match self.next_held() {
            Some(index) => Ok(index),
            None if self.found_empty() => Err(io::ErrorKind::WouldBlock.into()),
            None => {
                self.read(socket, count)?;
                self.next_held()
                    .ok_or(io::Error::from(io::ErrorKind::WouldBlock))
            }
        }
    }

    /// Reads up to `count` datagrams from `socket` into the slots (how many it took).
    fn read(&mut self, socket: BorrowedFd<'_>, count: usize) -> io::Result<usize> {
        let count = count.clamp(1, self.batch.len());
        let taken = self.batch.receive(socket, count)?;
        (self.asked, self.taken, self.handed) = (count, taken, 0);
        Ok(taken)
    }
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
        let ipv4_sender = match family {
            Family::Ipv4 => Some(open_ipv4_sender(ifname)?),
            Family::Ipv6 => None,
        };
        Ok(Self {
            socket,
            ipv4_sender,
            ifindex,
            family,
            buffers: Mutex::new(RecvBuffers::new(family)),
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
        self.try_recv_next(into, queued_after, clocks, 1)
    }

    /// [`Self::try_recv_into`] for one datagram of a drain, which goes on until this returns
    /// `None`: the socket is read up to [`DRAIN_BATCH`] datagrams per system call, and a
    /// read that took fewer than that found the queue empty, so its last datagram handed over
    /// ends the drain without another call.
    pub fn drain_into(
        &self,
        into: &mut Received,
        queued_after: Option<Instant>,
        clocks: &mut Clocks,
    ) -> Option<Result<(), NetError>> {
        self.try_recv_next(into, queued_after, clocks, DRAIN_BATCH)
    }

    fn try_recv_next(
        &self,
        into: &mut Received,
        queued_after: Option<Instant>,
        clocks: &mut Clocks,
        batch: usize,
    ) -> Option<Result<(), NetError>> {
        match self.recv_next(into, queued_after, clocks, batch) {
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
        match self.send_now(self.sending(), payload, source, destination) {
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
            .sending()
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
        self.send_now(self.sending(), payload, source, destination)
            .map(|_| ())
    }

    /// The socket datagrams leave by: the IPv4 sender, else the socket itself.
    fn sending(&self) -> &Socket {
        self.ipv4_sender.as_ref().unwrap_or(&self.socket)
    }

    /// One non-blocking send through `socket` ([`Self::sending`] or a copy of it).
    fn send_now(
        &self,
        socket: &Socket,
        payload: &[u8],
        source: IpAddr,
        destination: IpAddr,
    ) -> io::Result<usize> {
        match (source, destination) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                let header = ipv4_header(source, destination);
                let iov = [IoSlice::new(&header), IoSlice::new(payload)];
                let to = SockAddr::from(SocketAddrV4::new(destination, 0));
                let message = MsgHdr::new().with_addr(&to).with_buffers(&iov);
                socket.sendmsg(&message, libc::MSG_DONTWAIT)
            }
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                // The control message is laid out here, on the stack: nix's `sendmsg`
                // allocates a buffer for it on every call, which a MASTER's advert path does
                // not need. struct in6_pktinfo: the source, then the ifindex.
                let mut control = [0u8; CONTROL_ROOM];
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
                let iov = [IoSlice::new(payload)];
                let message = MsgHdr::new()
                    .with_addr(&to)
                    .with_buffers(&iov)
                    .with_control(&control[..len]);
                socket.sendmsg(&message, libc::MSG_DONTWAIT)
            }
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }

    /// The next datagram: one the last read took and has not handed over, else one of up to
    /// `batch` a non-blocking read takes now. The outer error is the system call's
    /// (WouldBlock: none queued); the inner one is about the datagram.
    fn recv_next(
        &self,
        into: &mut Received,
        queued_after: Option<Instant>,
        clocks: &mut Clocks,
        batch: usize,
    ) -> io::Result<Result<(), NetError>> {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let index = buffers.next(self.socket.as_fd(), batch)?;
        let message = buffers.batch.message(index);
        if message.truncated {
            return Ok(Err(NetError::Truncated(RECV_BUFFER)));
        }
        let received = message.datagram;
        let mut queue_drops = None;
        let mut stamp = None;
        let mut destination = None;
        let mut hop_limit = None;
        for (level, kind, data) in control::read(message.control) {
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
                let Some(source) = ipv6_source(message.name) else {
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

/// The send-only IPv4 socket of the interface named `ifname`: raw with protocol IPPROTO_RAW
/// (each datagram brings its IP header; nothing is ever delivered to it), bound to the device
/// (which routes multicast out of it), multicast loop off (our adverts do not come back to this
/// node's sockets), non-blocking.
fn open_ipv4_sender(ifname: &str) -> Result<Socket, NetError> {
    let sender = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )
    .map_err(NetError::io("open the IPv4 VRRP sending socket"))?;
    sender
        .bind_device(Some(ifname.as_bytes()))
        .map_err(NetError::io("bind the IPv4 VRRP sending socket to device"))?;
    sender
        .set_multicast_loop_v4(false)
        .map_err(NetError::io("clear IP_MULTICAST_LOOP"))?;
    sender.set_nonblocking(true).map_err(NetError::io(
        "make the IPv4 VRRP sending socket non-blocking",
    ))?;
    Ok(sender)
}

/// The IPv4 header a VRRP datagram from `source` to `destination` is sent with: version 4, no
/// options, TOS 0, Don't Fragment, TTL 255, protocol 112. Total length, identification and
/// checksum are left 0: the kernel fills them in for a header-including socket (it chooses the
/// identification as it would for a header of its own). Pure.
fn ipv4_header(source: Ipv4Addr, destination: Ipv4Addr) -> [u8; 20] {
    const DONT_FRAGMENT: [u8; 2] = [0x40, 0];
    let mut header = [0u8; 20];
    header[0] = 0x45;
    header[6..8].copy_from_slice(&DONT_FRAGMENT);
    header[8] = VRRP_TTL;
    header[9] = IPPROTO_VRRP;
    header[12..16].copy_from_slice(&source.octets());
    header[16..20].copy_from_slice(&destination.octets());
    header
}

/// The address of a `struct sockaddr_in6` as `recvmmsg` wrote it (family, port, flow info, the
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

    /// What a drain takes: datagrams until `next` says none is queued.
    fn drain(buffers: &mut RecvBuffers, fd: BorrowedFd<'_>) -> Vec<Vec<u8>> {
        let mut taken = Vec::new();
        loop {
            match buffers.next(fd, DRAIN_BATCH) {
                Ok(index) => taken.push(buffers.batch.message(index).datagram.to_vec()),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return taken,
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn a_drain_ends_at_a_short_read_without_another_and_the_next_drain_reads_afresh() {
        let (sender, receiver) = std::os::unix::net::UnixDatagram::pair().unwrap();
        receiver.set_nonblocking(true).unwrap();
        let mut buffers = RecvBuffers::new(Family::Ipv4);
        let send = |count: u8| (0..count).for_each(|n| assert_eq!(sender.send(&[n]).unwrap(), 1));
        send(3);
        assert_eq!(drain(&mut buffers, receiver.as_fd()).len(), 3);
        assert_eq!(
            (buffers.asked, buffers.taken),
            (0, 0),
            "the short read is forgotten"
        );
        send(1);
        assert_eq!(
            drain(&mut buffers, receiver.as_fd()),
            [vec![0]],
            "the next drain reads"
        );
        // A full read cannot tell an empty queue: the drain reads once more, to hear EAGAIN.
        send(u8::try_from(DRAIN_BATCH).unwrap() + 2);
        let taken = drain(&mut buffers, receiver.as_fd());
        assert_eq!(taken.len(), DRAIN_BATCH + 2);
        assert_eq!(
            taken.last(),
            Some(&vec![u8::try_from(DRAIN_BATCH).unwrap() + 1])
        );
        send(u8::try_from(DRAIN_BATCH).unwrap());
        assert_eq!(drain(&mut buffers, receiver.as_fd()).len(), DRAIN_BATCH);
        assert!(
            drain(&mut buffers, receiver.as_fd()).is_empty(),
            "nothing queued"
        );
    }

    #[test]
    fn an_ipv4_header_names_source_destination_ttl_255_and_protocol_112_and_leaves_the_rest_to_the_kernel()
     {
        let header = ipv4_header(Ipv4Addr::new(192, 0, 2, 1), VRRP_MULTICAST_IPV4);
        assert_eq!(
            header,
            [
                0x45, 0, 0, 0, 0, 0, 0x40, 0, 255, 112, 0, 0, 192, 0, 2, 1, 224, 0, 0, 18
            ]
        );
    }

    #[test]
    fn link_local_and_link_scope_multicast_need_a_scope_id_but_global_unicast_does_not() {
        assert!(needs_scope("fe80::1".parse().unwrap()));
        assert!(needs_scope(VRRP_MULTICAST_IPV6));
        assert!(!needs_scope("2001:db8::1".parse().unwrap()));
        assert!(!needs_scope("ff05::2".parse().unwrap()));
    }
}
