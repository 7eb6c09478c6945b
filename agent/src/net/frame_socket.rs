//! AF_PACKET sockets on one interface: whole Ethernet frames out, and, when bound with a
//! kernel receive filter, the frames the filter passes in. The GARP/NA announcer sends on a
//! [`FrameSocket`] (tokio's); the conflict probes send and receive on a plain [`bound`] socket
//! that the agent's ticker thread waits on itself.

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
        let socket = bound(ifindex, 0, None)?;
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
}

/// A non-blocking AF_PACKET socket bound to `ifindex` for `ethertype` (0: it never receives),
/// with `filter` attached before the bind, not handed to tokio (for a thread that waits on it
/// itself). Call in the interface's namespace.
pub fn bound(
    ifindex: u32,
    ethertype: u16,
    filter: Option<&[SockFilter]>,
) -> Result<Socket, NetError> {
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
    Ok(socket)
}
