//! What one wake-up of a reader costs this machine, apart from any daemon: a thread woken by
//! each datagram (keepalived's BACKUP loop: `epoll_wait`, `recvmsg` until EAGAIN, a timer
//! re-armed) against one woken at a deadline that then takes what queued meanwhile in one
//! `recvmmsg` and re-arms a timer (the agent's routine BACKUP, `driver::receive`), and one
//! woken at that deadline that does nothing at all. Each runs on its own thread with its own
//! raw socket in a namespace of its own, fed by one sender at the advert interval; the cost is
//! the thread's own run time (`/proc/thread-self/schedstat`). It tells the floor under
//! `lab-bench`'s CPU column at 1 s adverts, where both daemons run a few thousand instructions
//! of their own per wake-up and the kernel's wake-up is most of the bill.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{self, MsgFlags, MultiHeaders, SockaddrStorage, sockopt};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::instance::InstanceSpec;
use crate::netns::Netns;

/// VRRP's IP protocol number: the readers' raw sockets take what the sender sends and nothing
/// the namespace's loopback carries otherwise.
const VRRP: i32 = 112;
/// The sender's datagram: the size of a VRRP v2 advert for one IPv4 address, after its IP header.
const DATAGRAM: [u8; 20] = [0; 20];
/// Datagrams one `recvmmsg` may take, as the agent's drain.
const BATCH: usize = 16;
/// The priority the deadline readers wait as: its Skew_Time sets how long they sleep.
const PRIORITY: u8 = 100;

/// How a reader waits for, and takes, the sender's datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// Woken by each datagram as it arrives: keepalived's BACKUP.
    EachDatagram,
    /// Woken at half an interval before Master_Down, then takes what queued: the agent's
    /// routine BACKUP.
    AtDeadline,
    /// Woken at the same deadline, takes nothing and re-arms nothing: what the wake-up alone
    /// costs.
    BareDeadline,
}

impl Reader {
    pub const ALL: [Reader; 3] = [
        Reader::EachDatagram,
        Reader::AtDeadline,
        Reader::BareDeadline,
    ];

    /// The row's name in the bench's table.
    pub fn describe(self) -> &'static str {
        match self {
            Reader::EachDatagram => {
                "woken by each datagram; recvmsg until EAGAIN, timer re-armed (keepalived's BACKUP)"
            }
            Reader::AtDeadline => {
                "woken at a deadline; one recvmmsg takes what queued, timer re-armed (the agent's BACKUP)"
            }
            Reader::BareDeadline => "woken at the same deadline, nothing read or re-armed",
        }
    }
}

/// What one reader's thread did over the window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReaderCost {
    pub reader: Reader,
    pub wakes: u64,
    pub datagrams: u64,
    /// The thread's run time over the window.
    pub run: Duration,
    pub window: Duration,
}

impl ReaderCost {
    /// Microseconds of CPU per wake-up.
    pub fn micros_per_wake(&self) -> f64 {
        self.run.as_secs_f64() * 1e6 / (self.wakes.max(1) as f64)
    }

    /// Microseconds of CPU per second of the window.
    pub fn micros_per_second(&self) -> f64 {
        self.run.as_secs_f64() * 1e6 / self.window.as_secs_f64()
    }

    pub fn wakes_per_second(&self) -> f64 {
        self.wakes as f64 / self.window.as_secs_f64()
    }
}

/// Master_Down_Interval of a v3 BACKUP at [`PRIORITY`] whose MASTER sends every `interval`.
fn master_down(interval: Duration) -> Duration {
    InstanceSpec {
        advert_interval: interval,
        ..InstanceSpec::new("wake-floor", 1, Vec::new())
    }
    .master_down_interval(PRIORITY)
}

/// How long a deadline reader sleeps after a read: Master_Down_Interval less half an interval,
/// the agent's margin (`driver::receive` counts it from the newest advert's arrival, this model
/// from its last read: the same three adverts a wake-up at a steady interval).
pub fn deadline_sleep(interval: Duration) -> Duration {
    master_down(interval).saturating_sub(interval / 2)
}

/// Runs every reader of `readers` for `window` on its own thread in a fresh namespace, one
/// sender sending a datagram each `interval` to all of them; returns what each did.
pub fn measure(
    readers: &[Reader],
    interval: Duration,
    window: Duration,
) -> anyhow::Result<Vec<ReaderCost>> {
    let netns = Netns::create("kvwake")?;
    let sockets = netns.run_in({
        let count = readers.len() + 1;
        move || {
            (0..count)
                .map(|_| raw_socket())
                .collect::<std::io::Result<Vec<_>>>()
        }
    })??;
    let mut sockets = sockets.into_iter();
    let sending = sockets
        .next()
        .expect("one socket per reader and the sender's");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || send_until(&sending, interval, &stop)
    });
    let threads: Vec<_> = readers
        .iter()
        .zip(sockets)
        .map(|(&reader, socket)| {
            std::thread::spawn(move || read(reader, &socket, interval, window))
        })
        .collect();
    let costs = threads
        .into_iter()
        .map(|thread| thread.join().expect("a reader thread panicked"))
        .collect::<anyhow::Result<Vec<_>>>();
    stop.store(true, Ordering::SeqCst);
    sender.join().expect("the sender thread panicked")?;
    drop(netns);
    costs
}

/// A non-blocking raw socket of [`VRRP`] in the calling thread's namespace, the kernel
/// stamping each datagram's arrival (as the agent's socket asks).
fn raw_socket() -> std::io::Result<OwnedFd> {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(VRRP)),
    )?;
    socket.set_nonblocking(true)?;
    let fd = OwnedFd::from(socket);
    socket::setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    Ok(fd)
}

/// Sends [`DATAGRAM`] to the loopback address every `interval` until `stop`.
fn send_until(socket: &OwnedFd, interval: Duration, stop: &AtomicBool) -> anyhow::Result<()> {
    let to = SockaddrStorage::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        socket::sendto(socket.as_raw_fd(), &DATAGRAM, &to, MsgFlags::empty())?;
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// The calling thread's run time so far.
fn thread_run_time() -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos = crate::resources::parse_schedstat_ns(&text)
        .ok_or_else(|| anyhow::anyhow!("unreadable /proc/thread-self/schedstat: {text:?}"))?;
    Ok(Duration::from_nanos(nanos))
}

/// One reader's loop over `window`, measured from its first wake-up on.
fn read(
    reader: Reader,
    socket: &OwnedFd,
    interval: Duration,
    window: Duration,
) -> anyhow::Result<ReaderCost> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let timer = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )?;
    let master_down = master_down(interval);
    let rearm = || {
        timer.set(
            Expiration::OneShot(TimeSpec::from_duration(master_down)),
            TimerSetTimeFlags::empty(),
        )
    };
    epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, 0))?;
    if reader == Reader::EachDatagram {
        epoll.add(socket.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
    }
    let sleep = match reader {
        Reader::EachDatagram => EpollTimeout::NONE,
        Reader::AtDeadline | Reader::BareDeadline => {
            EpollTimeout::try_from(deadline_sleep(interval))?
        }
    };
    let mut headers =
        MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)));
    let mut buffers = [[0u8; 64]; BATCH];
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut events = [EpollEvent::empty(); 4];
    // The queue is emptied and the clock started at a wake-up, so that every wake-up counted
    // is a whole one.
    epoll.wait(&mut events, sleep)?;
    drain(socket, &mut headers, &mut buffers)?;
    let (start, started) = (thread_run_time()?, Instant::now());
    let (mut wakes, mut datagrams) = (0, 0);
    while started.elapsed() < window {
        let ready = epoll.wait(&mut events, sleep)?;
        if events[..ready].iter().any(|event| event.data() == 0) {
            anyhow::bail!(
                "{reader:?}: no datagram for a Master_Down_Interval; the sender fell silent"
            );
        }
        wakes += 1;
        match reader {
            Reader::EachDatagram => {
                while recv_one(socket, &mut buffers[0], &mut control)? {
                    datagrams += 1;
                }
                rearm()?;
            }
            Reader::AtDeadline => {
                datagrams += recv_batch(socket, &mut headers, &mut buffers)?;
                rearm()?;
            }
            Reader::BareDeadline => {}
        }
    }
    let run = thread_run_time()?.saturating_sub(start);
    Ok(ReaderCost {
        reader,
        wakes,
        datagrams,
        run,
        window: started.elapsed(),
    })
}

/// Takes every queued datagram (before the window opens).
fn drain(
    socket: &OwnedFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    buffers: &mut [[u8; 64]; BATCH],
) -> anyhow::Result<()> {
    while recv_batch(socket, headers, buffers)? == BATCH as u64 {}
    Ok(())
}

/// One `recvmsg` into buffers made once (no allocation on the measured path); false when the
/// queue was empty.
#[allow(clippy::ptr_arg)] // nix's `recvmsg` takes its control buffer as a `Vec`
fn recv_one(
    socket: &OwnedFd,
    buffer: &mut [u8; 64],
    control: &mut Vec<u8>,
) -> anyhow::Result<bool> {
    let mut iov = [IoSliceMut::new(buffer)];
    match socket::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// One `recvmmsg` of up to [`BATCH`] (its slices on the stack: no allocation on the measured
/// path); how many it took.
fn recv_batch(
    socket: &OwnedFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    buffers: &mut [[u8; 64]; BATCH],
) -> anyhow::Result<u64> {
    let mut slices = buffers.each_mut().map(|buffer| [IoSliceMut::new(buffer)]);
    match socket::recvmmsg(
        socket.as_raw_fd(),
        headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    ) {
        Ok(taken) => Ok(taken.count() as u64),
        Err(Errno::EAGAIN) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_reader_sleeps_half_an_interval_short_of_master_down() {
        // Master_Down at priority 100 and 1 s: 3 s + 156/256 s = 3.609375 s.
        assert_eq!(
            deadline_sleep(Duration::from_secs(1)),
            Duration::from_micros(3_109_375)
        );
        assert_eq!(
            deadline_sleep(Duration::from_millis(100)),
            Duration::from_nanos(310_937_500)
        );
    }

    #[test]
    fn costs_are_per_wake_up_and_per_second_of_the_window() {
        let cost = ReaderCost {
            reader: Reader::AtDeadline,
            wakes: 20,
            datagrams: 60,
            run: Duration::from_micros(1_800),
            window: Duration::from_secs(60),
        };
        assert!((cost.micros_per_wake() - 90.0).abs() < 1e-9);
        assert!((cost.micros_per_second() - 30.0).abs() < 1e-9);
        assert!((cost.wakes_per_second() - 1.0 / 3.0).abs() < 1e-9);
    }
}
