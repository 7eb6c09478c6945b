//! An AF_PACKET socket on one interface: whole Ethernet frames out, and, when opened with a
//! kernel receive filter, the frames the filter passes in. The GARP/NA announcer sends on one;
//! the conflict probes send and receive on another.

use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, recv};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::NetError;
use super::sys::{link_layer_address, register};

/// A link-layer socket bound to one interface.
pub struct FrameSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl std::fmt::Debug for FrameSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSocket")
            .field("ifindex", &self.ifindex)
            .finish_non_exhaustive()
    }
}

impl FrameSocket {
    /// A socket that only sends (bound with protocol 0, so it never receives). Must be called
    /// inside a tokio runtime, in the interface's namespace.
    pub fn send_only(ifindex: u32) -> Result<Self, NetError> {
        Self::open(ifindex, 0, None)
    }

    /// A socket that also receives the frames of `ethertype` that `filter` (classic BPF)
    /// passes. The filter is attached before the bind, so nothing else is ever queued.
    pub fn filtered(ifindex: u32, ethertype: u16, filter: &[SockFilter]) -> Result<Self, NetError> {
        Self::open(ifindex, ethertype, Some(filter))
    }

    fn open(ifindex: u32, ethertype: u16, filter: Option<&[SockFilter]>) -> Result<Self, NetError> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
            .map_err(NetError::io("open AF_PACKET socket"))?;
        if let Some(filter) = filter {
            socket
                .attach_filter(filter)
                .map_err(NetError::io("attach a filter to the AF_PACKET socket"))?;
        }
        socket
            .bind(&link_layer_address(ifindex, ethertype, [0; 6]))
            .map_err(NetError::io("bind AF_PACKET socket to interface"))?;
        socket
            .set_nonblocking(true)
            .map_err(NetError::io("make AF_PACKET socket non-blocking"))?;
        let fd = register(socket).map_err(NetError::io("register AF_PACKET socket"))?;
        Ok(Self { fd, ifindex })
    }

    /// The interface the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one whole Ethernet frame to `destination`.
    pub async fn send(
        &self,
        frame: &[u8],
        ethertype: u16,
        destination: [u8; 6],
    ) -> Result<(), NetError> {
        let to = link_layer_address(self.ifindex, ethertype, destination);
        loop {
            let mut guard = self
                .fd
                .writable()
                .await
                .map_err(NetError::io("wait to send a frame"))?;
            if let Ok(result) = guard.try_io(|fd| fd.get_ref().send_to(frame, &to)) {
                return result.map(|_| ()).map_err(NetError::io("send a frame"));
            }
        }
    }

    /// Waits for the next frame the filter passes and copies it into `buffer`; returns its
    /// length (cut to the buffer's).
    pub async fn recv(&self, buffer: &mut [u8]) -> Result<usize, NetError> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(NetError::io("wait for a frame"))?;
            let received = guard.try_io(|fd| {
                recv(fd.get_ref().as_raw_fd(), buffer, MsgFlags::MSG_DONTWAIT)
                    .map_err(std::io::Error::from)
            });
            if let Ok(result) = received {
                return result.map_err(NetError::io("receive a frame"));
            }
        }
    }
}
