//! The only `unsafe` of the agent: building a `sockaddr_ll` for AF_PACKET sockets,
//! registering owned sockets, timerfds and inotify instances with tokio's reactor, receiving
//! datagrams with their control messages into slots whose headers are built once
//! (`recvmmsg`, [`Batch`]), the two process knobs no safe crate offers (a thread's real-time
//! policy, memory locked on fault),
//! handing freed heap pages back to the kernel (glibc's `malloc_trim`) and unmapping the
//! program's code (`madvise`).
//!
//! Neither socket2 nor nix offers a safe constructor for a link-layer socket address, so it is
//! written here, field by field, into socket2's zeroed storage. tokio's `AsyncFd::register` is
//! `unsafe` because it cannot know that the descriptor stays open; a `socket2::Socket` moved into
//! it guarantees that.
//!
//! The calls on the path of every advert (`recvmmsg`, and the waits of the plain threads) go
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

/// What one datagram of a [`Batch`] read filled in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    /// The datagram, as far as its slot held it.
    pub(crate) datagram: &'a [u8],
    /// The datagram was longer than its slot (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// The sender's address (empty when not asked for).
    pub(crate) name: &'a [u8],
    /// The control messages (empty when they did not fit: `MSG_CTRUNC`, none is read).
    pub(crate) control: &'a [u8],
}

/// Where each slot's datagram begins: its first [`DATAGRAM_HEAD`] bytes, packed beside the
/// other slots' in one page-aligned block, so that the datagrams of a read (short ones, such as
/// every advert of a few addresses) lie on one page instead of one page each. A longer datagram
/// goes on into its slot's tail, a buffer of its own that is touched only then.
pub(crate) const DATAGRAM_HEAD: usize = 128;
const PAGE: usize = 4096;
const _: () = assert!(PAGE.is_multiple_of(DATAGRAM_HEAD));

/// One page of datagram heads, aligned to a page.
#[derive(Clone)]
#[repr(C, align(4096))]
struct HeadPage([u8; PAGE]);

/// Slots for up to `len` datagrams and the `recvmmsg(2)` headers that point into them, built
/// once: a read only resets the two lengths the kernel overwrote in each header it will use.
/// Each slot holds a datagram (two `iovec`s: its head, packed with the other slots' heads, and
/// its tail; see [`DATAGRAM_HEAD`]), the sender's address (`name_slot` bytes; none when 0) and
/// control messages (`control_slot` bytes).
pub(crate) struct Batch {
    heads: Box<[HeadPage]>,
    tails: Box<[u8]>,
    /// A datagram longer than its head, made whole again ([`Self::message`]).
    joined: Box<[u8]>,
    names: Box<[u8]>,
    controls: Box<[u8]>,
    iovs: Box<[[libc::iovec; 2]]>,
    headers: Box<[libc::mmsghdr]>,
    head_slot: usize,
    tail_slot: usize,
    name_slot: usize,
    control_slot: usize,
}

// SAFETY: the raw pointers in `iovs` and `headers` point only into the batch's own boxed slices
// (and `headers` into `iovs`), which never move or change size once built and are reached only
// through `&mut self` while the kernel writes them; sending the batch to another thread moves
// the owner of all of it, nothing it points to.
unsafe impl Send for Batch {}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.headers.len())
            .field("datagram_slot", &(self.head_slot + self.tail_slot))
            .finish_non_exhaustive()
    }
}

impl Batch {
    /// Slots for `len` datagrams of up to `datagram_slot` bytes each, with `name_slot` bytes
    /// for the sender's address and `control_slot` for control messages.
    pub(crate) fn new(
        len: usize,
        datagram_slot: usize,
        name_slot: usize,
        control_slot: usize,
    ) -> Self {
        let len = len.max(1);
        let head_slot = datagram_slot.min(DATAGRAM_HEAD);
        let tail_slot = datagram_slot - head_slot;
        let mut batch = Self {
            heads: vec![HeadPage([0; PAGE]); (len * DATAGRAM_HEAD).div_ceil(PAGE)]
                .into_boxed_slice(),
            // Zeroed, so the allocator may hand over fresh pages, resident only once written.
            tails: vec![0; len * tail_slot].into_boxed_slice(),
            joined: vec![0; datagram_slot].into_boxed_slice(),
            names: vec![0; len * name_slot].into_boxed_slice(),
            controls: vec![0; len * control_slot].into_boxed_slice(),
            // SAFETY: all-zero iovecs and mmsghdrs are valid ones (null pointers, zero
            // lengths); it is the one portable way to build a msghdr, since some C libraries
            // give it private padding fields.
            iovs: (0..len).map(|_| unsafe { std::mem::zeroed() }).collect(),
            headers: (0..len).map(|_| unsafe { std::mem::zeroed() }).collect(),
            head_slot,
            tail_slot,
            name_slot,
            control_slot,
        };
        for index in 0..len {
            let (page, offset) = head_of(index);
            let head = batch.heads[page].0[offset..].as_mut_ptr();
            let tail = batch.tails[index * tail_slot..].as_mut_ptr();
            batch.iovs[index] = [
                libc::iovec {
                    iov_base: head.cast(),
                    iov_len: head_slot,
                },
                libc::iovec {
                    iov_base: tail.cast(),
                    iov_len: tail_slot,
                },
            ];
            let iovs = batch.iovs[index].as_mut_ptr();
            let header = &mut batch.headers[index].msg_hdr;
            header.msg_iov = iovs;
            header.msg_iovlen = if tail_slot > 0 { 2 } else { 1 };
            if name_slot > 0 {
                header.msg_name = batch.names[index * name_slot..].as_mut_ptr().cast();
            }
            if control_slot > 0 {
                header.msg_control = batch.controls[index * control_slot..].as_mut_ptr().cast();
            }
        }
        batch
    }

    /// How many datagrams one read may take.
    pub(crate) fn len(&self) -> usize {
        self.headers.len()
    }

    /// One non-blocking `recvmmsg(2)` on `fd` for up to `count` datagrams (at most
    /// [`Self::len`]): how many it took into the first slots. Fewer than asked means the queue
    /// was empty when the kernel looked (it stops at the first datagram it would wait for). An
    /// error only when it took none.
    pub(crate) fn receive(&mut self, fd: BorrowedFd<'_>, count: usize) -> std::io::Result<usize> {
        let count = count.clamp(1, self.len());
        let name_len = libc::socklen_t::try_from(self.name_slot).unwrap_or(0);
        for header in &mut self.headers[..count] {
            header.msg_hdr.msg_namelen = name_len;
            header.msg_hdr.msg_controllen = self.control_slot as _;
        }
        // SAFETY: the first `count` headers point (through their iovecs, and their name and
        // control pointers when given) into disjoint slots of the batch's own live buffers,
        // with the slots' lengths (see `Self::new`); the kernel writes only within them and
        // into those headers during the call (a null timeout: none), and `fd` is a borrowed,
        // open descriptor. Made through `syscall(2)`: see the module's documentation.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                fd.as_raw_fd(),
                self.headers.as_mut_ptr(),
                libc::c_uint::try_from(count).unwrap_or(1),
                libc::MSG_DONTWAIT,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        usize::try_from(rc).map_err(|_| std::io::Error::last_os_error())
    }

    /// What the last [`Self::receive`] put in slot `index` (one it took). A datagram longer
    /// than its head is copied whole into one buffer first.
    pub(crate) fn message(&mut self, index: usize) -> Message<'_> {
        let header = &self.headers[index];
        let flags = header.msg_hdr.msg_flags;
        let bytes = usize::try_from(header.msg_len)
            .unwrap_or(0)
            .min(self.head_slot + self.tail_slot);
        let name_len = usize::try_from(header.msg_hdr.msg_namelen).unwrap_or(0);
        // `msg_controllen` is a size_t in glibc and a socklen_t in musl.
        #[allow(clippy::useless_conversion)]
        let control_len = if flags & libc::MSG_CTRUNC == 0 {
            usize::try_from(header.msg_hdr.msg_controllen).unwrap_or(0)
        } else {
            0
        };
        let (page, offset) = head_of(index);
        let head = &self.heads[page].0[offset..offset + self.head_slot];
        let datagram = if bytes <= self.head_slot {
            &head[..bytes]
        } else {
            let tail = slot(&self.tails, index, self.tail_slot, bytes - self.head_slot);
            let (first, rest) = self.joined.split_at_mut(self.head_slot);
            first.copy_from_slice(head);
            rest[..tail.len()].copy_from_slice(tail);
            &self.joined[..bytes]
        };
        Message {
            datagram,
            truncated: flags & libc::MSG_TRUNC != 0,
            name: slot(&self.names, index, self.name_slot, name_len),
            control: slot(&self.controls, index, self.control_slot, control_len),
        }
    }
}

/// Where the head of slot `index` is: its page of heads and its offset in that page.
fn head_of(index: usize) -> (usize, usize) {
    let at = index * DATAGRAM_HEAD;
    (at / PAGE, at % PAGE)
}

/// The first `len` bytes (at most `size`) of slot `index` of `buffer`, cut into slots of `size`.
fn slot(buffer: &[u8], index: usize, size: usize, len: usize) -> &[u8] {
    buffer
        .get(index * size..)
        .and_then(|rest| rest.get(..len.min(size)))
        .unwrap_or_default()
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

    #[test]
    fn a_batch_takes_what_is_queued_into_its_slots_in_order_and_flags_one_too_long() {
        let (sender, receiver) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut batch = Batch::new(4, 8, 0, 0);
        assert_eq!(batch.len(), 4);
        let empty = batch.receive(receiver.as_fd(), 4).unwrap_err();
        assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock, "none queued");
        for datagram in [&b"one"[..], b"two", b"ten bytes!"] {
            sender.send(datagram).unwrap();
        }
        assert_eq!(
            batch.receive(receiver.as_fd(), 4).unwrap(),
            3,
            "fewer than asked"
        );
        let first = batch.message(0);
        assert_eq!((first.datagram, first.truncated), (&b"one"[..], false));
        assert!(first.name.is_empty() && first.control.is_empty());
        let second = batch.message(1);
        assert_eq!((second.datagram, second.truncated), (&b"two"[..], false));
        let long = batch.message(2);
        assert_eq!((long.datagram, long.truncated), (&b"ten byte"[..], true));
        for datagram in [&b"a"[..], b"b", b"c"] {
            sender.send(datagram).unwrap();
        }
        assert_eq!(
            batch.receive(receiver.as_fd(), 2).unwrap(),
            2,
            "as many as asked"
        );
        assert_eq!(batch.message(1).datagram, b"b");
        assert_eq!(
            batch.receive(receiver.as_fd(), 9).unwrap(),
            1,
            "at most its slots"
        );
        assert_eq!(batch.message(0).datagram, b"c");
    }

    #[test]
    fn a_datagram_longer_than_its_head_is_read_whole_and_short_ones_share_a_page() {
        let (sender, receiver) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let slot = DATAGRAM_HEAD + 72;
        let mut batch = Batch::new(4, slot, 0, 0);
        let long: Vec<u8> = (0..=u8::MAX).cycle().take(DATAGRAM_HEAD + 22).collect();
        let too_long: Vec<u8> = (0..=u8::MAX).rev().cycle().take(slot + 1).collect();
        for datagram in [&b"short"[..], &long, &too_long, b"end"] {
            sender.send(datagram).unwrap();
        }
        assert_eq!(batch.receive(receiver.as_fd(), 4).unwrap(), 4);
        let short = batch.message(0).datagram.as_ptr() as usize;
        let end = batch.message(3).datagram.as_ptr() as usize;
        assert_eq!(
            short / PAGE,
            end / PAGE,
            "the heads of short datagrams share a page"
        );
        assert_eq!(end - short, 3 * DATAGRAM_HEAD, "and lie side by side");
        let second = batch.message(1);
        assert_eq!((second.datagram, second.truncated), (&long[..], false));
        let third = batch.message(2);
        assert_eq!((third.datagram, third.truncated), (&too_long[..slot], true));
        assert_eq!(batch.message(0).datagram, b"short");
        assert_eq!(batch.message(3).datagram, b"end");
    }
}
