//! The only `unsafe` of the agent: building a `sockaddr_ll` for AF_PACKET sockets,
//! registering owned sockets, timerfds and inotify instances with tokio's reactor, receiving a
//! datagram with its control messages into the caller's buffers
//! (`recvmsg`), the two process knobs no safe crate offers (a thread's real-time policy, memory
//! locked on fault),
//! handing freed heap pages back to the kernel (glibc's `malloc_trim`) and unmapping the
//! program's code (`madvise`).
//!
//! Neither socket2 nor nix offers a safe constructor for a link-layer socket address, so it is
//! written here, field by field, into socket2's zeroed storage. tokio's `AsyncFd::register` is
//! `unsafe` because it cannot know that the descriptor stays open; a `socket2::Socket` moved into
//! it guarantees that.
//!
//! The calls on the path of every advert (`recvmsg`, and the waits of the plain threads) go
//! through `syscall(2)`, not their C library wrappers: those are cancellation points, and in a
//! process with threads each call turns asynchronous cancellation on and off around the system
//! call, about 30 instructions a call and 60 of an advert's 1,150 at 255 instances. Nothing in
//! the agent cancels a thread.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::sys::epoll::EpollEvent;
use nix::sys::inotify::Inotify;
use nix::sys::timerfd::TimerFd;
use socket2::{SockAddr, SockAddrStorage, Socket, socklen_t};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Hands `socket` to tokio's reactor (must be called inside a tokio runtime).
pub(crate) fn register(socket: Socket) -> std::io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor (an `OwnedFd`), so it is valid and open, and
    // `as_raw_fd` returns that same descriptor for as long as the `Socket` lives. The socket is
    // moved into the `AsyncFd`, which deregisters it before dropping (and closing) it; nothing
    // else can close or replace the descriptor in between.
    unsafe { AsyncFd::register(socket) }.map_err(std::io::Error::from)
}

/// Hands `socket` to tokio's reactor for writability only (must be called inside a tokio
/// runtime): datagrams arriving on it wake no runtime thread.
pub(crate) fn register_writable(socket: Socket) -> std::io::Result<AsyncFd<Socket>> {
    // SAFETY: as in `register`: the `Socket` owns its descriptor and is moved into the
    // `AsyncFd`, which deregisters it before dropping (and closing) it.
    unsafe { AsyncFd::register_with_interest(socket, Interest::WRITABLE) }
        .map_err(std::io::Error::from)
}

/// What one [`receive_message`] filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// Bytes of the datagram written into the caller's buffer.
    pub(crate) bytes: usize,
    /// The datagram was longer than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// Bytes of the sender's address written into `name`.
    pub(crate) name_len: usize,
    /// Bytes of control messages written into `control` (0 when they did not fit:
    /// `MSG_CTRUNC`, none is read).
    pub(crate) control_len: usize,
}

/// One non-blocking `recvmsg(2)` on `fd`: the datagram into `datagram`, the sender's socket
/// address into `name` (empty: not asked for) and control messages into `control`, all of
/// them the caller's reused buffers (nothing allocated).
pub(crate) fn receive_message(
    fd: BorrowedFd<'_>,
    datagram: &mut [u8],
    name: &mut [u8],
    control: &mut [u8],
) -> std::io::Result<Message> {
    let mut iov = libc::iovec {
        iov_base: datagram.as_mut_ptr().cast(),
        iov_len: datagram.len(),
    };
    // SAFETY: an all-zero msghdr is a valid one (null pointers, zero lengths); it is the one
    // portable way to build it, since some C libraries give it private padding fields.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    if !name.is_empty() {
        header.msg_name = name.as_mut_ptr().cast();
        header.msg_namelen = libc::socklen_t::try_from(name.len()).unwrap_or(0);
    }
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    if !control.is_empty() {
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = control.len() as _;
    }
    // SAFETY: every pointer in `header` (the iovec, and the name and control buffers when
    // given) points into the caller's live, initialised, exclusively borrowed slices, whose
    // lengths are the ones given; the kernel writes only within them during the call, and
    // `fd` is a borrowed, open descriptor. Made through `syscall(2)`: see the module's
    // documentation.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_recvmsg,
            fd.as_raw_fd(),
            &raw mut header,
            libc::MSG_DONTWAIT,
        )
    };
    let bytes = usize::try_from(rc).map_err(|_| std::io::Error::last_os_error())?;
    // `msg_controllen` is a size_t in glibc and a socklen_t in musl.
    #[allow(clippy::useless_conversion)]
    let control_len = if header.msg_flags & libc::MSG_CTRUNC == 0 {
        usize::try_from(header.msg_controllen).unwrap_or(0)
    } else {
        0
    };
    Ok(Message {
        bytes: bytes.min(datagram.len()),
        truncated: header.msg_flags & libc::MSG_TRUNC != 0,
        name_len: usize::try_from(header.msg_namelen)
            .unwrap_or(0)
            .min(name.len()),
        control_len: control_len.min(control.len()),
    })
}

// nix declares `EpollEvent` `#[repr(transparent)]` over `libc::epoll_event`; these hold the
// cast in `epoll_wait_for` to that.
const _: () = assert!(size_of::<EpollEvent>() == size_of::<libc::epoll_event>());
const _: () = assert!(align_of::<EpollEvent>() == align_of::<libc::epoll_event>());

/// One `epoll_pwait(2)` on the epoll instance `epoll` without a time limit (the signal mask
/// left alone): sleeps until one of its descriptors is ready, fills the start of `events` and
/// returns how many it filled. Made through `syscall(2)`: see the module's documentation.
pub(crate) fn epoll_wait_ready(
    epoll: BorrowedFd<'_>,
    events: &mut [EpollEvent],
) -> Result<usize, Errno> {
    let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: as in `epoll_wait_for`: `events` is an exclusively borrowed slice of `capacity`
    // (or more) `EpollEvent`s laid out as `libc::epoll_event`s, of which the kernel writes at
    // most `capacity`; a null signal mask leaves the thread's mask alone; `epoll` is open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            epoll.as_raw_fd(),
            events.as_mut_ptr().cast::<libc::epoll_event>(),
            capacity,
            -1 as libc::c_int,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    };
    usize::try_from(rc).map_err(|_| Errno::last())
}

/// One `epoll_pwait2(2)` on the epoll instance `epoll`: sleeps until one of its descriptors is
/// ready or `timeout` has passed (`None`: no limit; zero: does not sleep), at nanosecond
/// precision (plus the thread's timer slack, none under a real-time policy), and fills the
/// start of `events`; returns how many it filled. Made through `syscall(2)`, so that it does
/// not depend on the C library's version: kernels before 5.11 answer `ENOSYS`, and a seccomp
/// filter that does not know the call `ENOSYS` or `EPERM`.
pub(crate) fn epoll_wait_for(
    epoll: BorrowedFd<'_>,
    events: &mut [EpollEvent],
    timeout: Option<Duration>,
) -> Result<usize, Errno> {
    let timeout = timeout.map(|after| libc::timespec {
        tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(after.subsec_nanos().cast_signed()),
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), std::ptr::from_ref);
    let capacity = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `events` is an exclusively borrowed slice of `capacity` (or more) `EpollEvent`s,
    // each laid out as a `libc::epoll_event` (asserted above), and the kernel writes at most
    // `capacity` of them during the call; `timeout_ptr` is null or points at a timespec that
    // outlives the call; a null signal mask leaves the thread's mask alone; `epoll` is a
    // borrowed, open descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epoll.as_raw_fd(),
            events.as_mut_ptr().cast::<libc::epoll_event>(),
            capacity,
            timeout_ptr,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    };
    usize::try_from(rc).map_err(|_| Errno::last())
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

/// Puts the calling thread under `SCHED_RR` at `priority`, with `SCHED_RESET_ON_FORK` so
/// that processes it starts (scripts) run under the normal scheduler.
pub(crate) fn set_round_robin(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0 names
    // the calling thread.
    let rc = unsafe {
        libc::sched_setscheduler(
            0,
            libc::SCHED_RR | libc::SCHED_RESET_ON_FORK,
            &raw const param,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's scheduling policy (without the reset-on-fork flag) and priority.
pub(crate) fn scheduler() -> std::io::Result<(i32, i32)> {
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both calls only read the calling thread's (pid 0) settings; `param` is a valid
    // out-pointer for the duration of the call.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 || unsafe { libc::sched_getparam(0, &raw mut param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((policy & !libc::SCHED_RESET_ON_FORK, param.sched_priority))
}

/// Locks every page of the process in memory as it is first touched, now and later
/// (`MCL_ONFAULT`: no prefaulting of reserved stacks and arenas), so it is never swapped out.
pub(crate) fn lock_memory_on_fault() -> std::io::Result<()> {
    // SAFETY: mlockall takes only flags and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Returns the free pages of every malloc arena to the kernel (glibc's `malloc_trim(0)`: the
/// whole pages inside free chunks are released with `MADV_DONTNEED`, the arenas' tops cut
/// back). Only memory already freed is released; a later allocation faults fresh zero pages in.
/// Returns whether any memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_heap() -> bool {
    // SAFETY: malloc_trim takes a size and walks glibc's own arenas under their locks; it is
    // safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries keep no such arenas here: nothing to release.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_heap() -> bool {
    false
}

/// Unmaps the pages of `code`, a private executable mapping of the program file, with
/// `MADV_DONTNEED`; the next use of each page maps it again from the page cache (or the file).
/// Fails (`EINVAL`) where the pages are locked.
pub(crate) fn unmap_program_code(code: std::ops::Range<usize>) -> std::io::Result<()> {
    // SAFETY: `code` is an executable, private mapping of the unmodified program file (its
    // caller reads it from /proc/self/maps: `r-xp`, the program's path). Such pages are never
    // written, so none is an anonymous copy: dropping them loses nothing, and the kernel maps
    // the same bytes again on the next access, as it does after reclaiming them under memory
    // pressure. Code running in this range, this call's caller included, faults its page in.
    let rc = unsafe {
        libc::madvise(
            code.start as *mut libc::c_void,
            code.len(),
            libc::MADV_DONTNEED,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
