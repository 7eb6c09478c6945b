//! AF_PACKET sockets for the probes: the one place in the lab that needs `unsafe` (building the
//! `sockaddr_ll` to bind to an interface). Every frame read carries the kernel's receive stamp
//! (SO_TIMESTAMPNS), so a probe scheduled late still knows when the frame was on the wire.
#![allow(unsafe_code)]

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use kube_vrrp_agent::net::arrival;

use nix::libc;
use nix::sys::socket::{
    self, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrLike, sockopt,
};

/// `sll_pkttype` of a frame this host sent (kernel `PACKET_OUTGOING`).
pub const PACKET_OUTGOING: u8 = 4;

/// A frame read from a packet socket.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub len: usize,
    /// The interface the frame was seen on.
    pub ifindex: u32,
    /// Kernel `PACKET_*` type: host, broadcast, multicast, other host, outgoing.
    pub pkttype: u8,
    /// When the frame reached the interface: its kernel receive stamp on the monotonic clock
    /// (the read's time when the kernel gave none).
    pub arrived: Instant,
}

/// A raw `AF_PACKET` socket receiving every protocol (`ETH_P_ALL`), opened in the calling
/// thread's network namespace, optionally bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens the socket; with `ifindex` it receives from and sends on that interface only.
    /// `timeout` bounds each `recv`, so reader loops can notice a stop request.
    pub fn open(ifindex: Option<u32>, timeout: Duration) -> io::Result<Self> {
        let fd = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )?;
        let timeout = nix::sys::time::TimeVal::new(
            i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            i64::from(timeout.subsec_micros()),
        );
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)?;
        socket::setsockopt(&fd, sockopt::RcvBuf, &(4 << 20))?;
        socket::setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        if let Some(ifindex) = ifindex {
            let ifindex = i32::try_from(ifindex)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
            // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex;
            let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the pointer is to a live, fully initialised sockaddr_ll of exactly `len`
            // bytes whose family is AF_PACKET, which is what LinkAddr wraps.
            let addr = unsafe {
                LinkAddr::from_raw(std::ptr::from_ref(&sll).cast::<libc::sockaddr>(), Some(len))
            }
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad sockaddr_ll"))?;
            socket::bind(fd.as_raw_fd(), &addr)?;
        }
        Ok(Self { fd })
    }

    /// Sends one complete Ethernet frame on the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        socket::send(self.fd.as_raw_fd(), frame, MsgFlags::empty())?;
        Ok(())
    }

    /// Receives one frame into `buf`; `None` when the receive timeout passed first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [IoSliceMut::new(buf)];
        let received = socket::recvmsg::<LinkAddr>(
            self.fd.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        );
        match received {
            Ok(message) => {
                let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmTimestampns(at) => Some(Duration::from(at)),
                        _ => None,
                    })
                });
                let (ifindex, pkttype) = message.address.map_or((0, 0), |a| {
                    (u32::try_from(a.ifindex()).unwrap_or(0), a.pkttype())
                });
                Ok(Some(Received {
                    len: message.bytes,
                    ifindex,
                    pkttype,
                    arrived: arrival::Clocks::default().time(stamp, None).0,
                }))
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    Ok(nix::net::if_::if_nametoindex(name)?)
}
