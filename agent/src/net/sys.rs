//! The only `unsafe` of the agent: building a `sockaddr_ll` for AF_PACKET sockets, and
//! registering owned sockets, timerfds and inotify instances with tokio's reactor.
//!
//! Neither socket2 nor nix offers a safe constructor for a link-layer socket address, so it is
//! written here, field by field, into socket2's zeroed storage. tokio's `AsyncFd::register` is
//! `unsafe` because it cannot know that the descriptor stays open; a `socket2::Socket` moved into
//! it guarantees that.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::libc;
use nix::sys::inotify::Inotify;
use nix::sys::timerfd::TimerFd;
use socket2::{SockAddr, SockAddrStorage, Socket, socklen_t};
use tokio::io::unix::AsyncFd;

/// Hands `socket` to tokio's reactor (must be called inside a tokio runtime).
pub(crate) fn register(socket: Socket) -> std::io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor (an `OwnedFd`), so it is valid and open, and
    // `as_raw_fd` returns that same descriptor for as long as the `Socket` lives. The socket is
    // moved into the `AsyncFd`, which deregisters it before dropping (and closing) it; nothing
    // else can close or replace the descriptor in between.
    unsafe { AsyncFd::register(socket) }.map_err(std::io::Error::from)
}

/// A timerfd as tokio's reactor holds it.
pub(crate) struct OwnedTimer(TimerFd);

impl OwnedTimer {
    pub(crate) fn timer(&self) -> &TimerFd {
        &self.0
    }
}

impl AsRawFd for OwnedTimer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Hands `timer` to tokio's reactor (must be called inside a tokio runtime).
pub(crate) fn register_timer(timer: TimerFd) -> std::io::Result<AsyncFd<OwnedTimer>> {
    // SAFETY: `TimerFd` owns its descriptor (an `OwnedFd`) and `OwnedTimer::as_raw_fd` returns
    // that same descriptor for as long as it lives. It is moved into the `AsyncFd`, which
    // deregisters it before dropping (and closing) it; nothing else can close or replace it.
    unsafe { AsyncFd::register(OwnedTimer(timer)) }.map_err(std::io::Error::from)
}

/// An inotify instance as tokio's reactor holds it.
pub(crate) struct OwnedInotify(Inotify);

impl OwnedInotify {
    pub(crate) fn inotify(&self) -> &Inotify {
        &self.0
    }
}

impl AsRawFd for OwnedInotify {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Hands `inotify` to tokio's reactor (must be called inside a tokio runtime).
pub(crate) fn register_inotify(inotify: Inotify) -> std::io::Result<AsyncFd<OwnedInotify>> {
    // SAFETY: `Inotify` owns its descriptor (an `OwnedFd`) and `OwnedInotify::as_raw_fd`
    // returns that same descriptor for as long as it lives. It is moved into the `AsyncFd`,
    // which deregisters it before dropping (and closing) it; nothing else can close or replace it.
    unsafe { AsyncFd::register(OwnedInotify(inotify)) }.map_err(std::io::Error::from)
}

/// A link-layer (`AF_PACKET`) socket address: the interface, the EtherType in host order, and
/// the destination hardware address (ignored by `bind`).
pub(crate) fn link_layer_address(ifindex: u32, ethertype: u16, hardware: [u8; 6]) -> SockAddr {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_ll` is a socket address type of this platform and is smaller than
    // `sockaddr_storage` (socket2 asserts it); the storage is zeroed, which is a valid
    // `sockaddr_ll`, and the reference does not outlive this block.
    unsafe {
        let ll = storage.view_as::<libc::sockaddr_ll>();
        ll.sll_family = libc::AF_PACKET as libc::sa_family_t;
        ll.sll_protocol = ethertype.to_be();
        ll.sll_ifindex = ifindex.cast_signed();
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&hardware);
    }
    let len = std::mem::size_of::<libc::sockaddr_ll>() as socklen_t;
    // SAFETY: the storage holds an initialised `sockaddr_ll` (family AF_PACKET) and `len` is
    // exactly that type's size.
    unsafe { SockAddr::new(storage, len) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_layer_address_has_packet_family_and_ll_length() {
        let address = link_layer_address(7, 0x0806, [0xff; 6]);
        assert_eq!(address.family(), libc::AF_PACKET as libc::sa_family_t);
        assert_eq!(
            address.len() as usize,
            std::mem::size_of::<libc::sockaddr_ll>()
        );
    }
}
