//! How the agent's plain (non-tokio) threads sleep: an epoll interest list kept across waits,
//! with a timerfd in it for a deadline at nanosecond precision. A thread that wakes once per
//! advert pays for one `epoll_wait` per wake-up, and re-arms its timer only when the deadline
//! moved; `ppoll(2)` would register and unregister every descriptor at every wake-up, which at
//! one advert per 10 ms was most of what a MASTER's sleeping cost in the kernel.
//!
//! Readiness is level-triggered: a descriptor that still has something to read is reported
//! again at the next wait, so a reader may take one datagram per wake-up. Each watched
//! descriptor carries the caller's token; the timer's wake-up is not reported as a token (the
//! caller knows its own deadline). A descriptor closed while watched leaves the list by itself
//! (when its last copy closes); one reused under the same number must be watched again.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};

use super::timer::arm_once;

/// The timer's token; callers' tokens are below it.
const TIMER: u64 = u64::MAX;
/// Events taken per wait; more ready descriptors are reported at the next wait.
const EVENTS_PER_WAIT: usize = 32;

/// One thread's interest list and deadline timer.
#[derive(Debug)]
pub(crate) struct Waiter {
    epoll: Epoll,
    timer: TimerFd,
    /// The deadline the timer is armed for (`None`: disarmed).
    armed: Option<Instant>,
    /// The timer has fired since it was last armed: it stays readable until re-armed.
    fired: bool,
    events: Vec<EpollEvent>,
    /// How many of `events` the last wait filled.
    filled: usize,
}

impl Waiter {
    /// An empty interest list with a disarmed timer.
    pub(crate) fn new() -> io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
        Ok(Self {
            epoll,
            timer,
            armed: None,
            fired: false,
            events: vec![EpollEvent::empty(); EVENTS_PER_WAIT],
            filled: 0,
        })
    }

    /// Wakes the thread when `fd` is readable or hung up, reported as `token` (below
    /// `u64::MAX`). Watching a descriptor already watched changes its token.
    pub(crate) fn watch(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        debug_assert_ne!(token, TIMER, "the timer's token");
        let mut event = EpollEvent::new(EpollFlags::EPOLLIN, token);
        match self.epoll.add(fd, event) {
            Err(Errno::EEXIST) => Ok(self.epoll.modify(fd, &mut event)?),
            done => Ok(done?),
        }
    }

    /// Sleeps until a watched descriptor is ready or `deadline` passes (`None`: no limit; one
    /// already passed returns at once). A signal ends the wait early, with nothing ready.
    pub(crate) fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.filled = 0;
        if self.fired || deadline != self.armed {
            self.arm(deadline)?;
        }
        match self.epoll.wait(&mut self.events, EpollTimeout::NONE) {
            Ok(filled) => self.filled = filled,
            Err(Errno::EINTR) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        if self.fired_now() {
            self.fired = true;
        }
        Ok(())
    }

    /// The tokens of the descriptors the last wait found ready.
    pub(crate) fn ready(&self) -> impl Iterator<Item = u64> + '_ {
        self.reported().filter(|&token| token != TIMER)
    }

    fn reported(&self) -> impl Iterator<Item = u64> + '_ {
        self.events.iter().take(self.filled).map(EpollEvent::data)
    }

    fn fired_now(&self) -> bool {
        self.reported().any(|token| token == TIMER)
    }

    /// Arms the timer for `deadline` (re-arming also clears an expiry not yet read).
    fn arm(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        arm_once(&self.timer, deadline)?;
        self.armed = deadline;
        self.fired = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    use super::*;

    fn ready(waiter: &Waiter) -> Vec<u64> {
        waiter.ready().collect()
    }

    #[test]
    fn a_wait_reports_the_readable_descriptor_by_its_token_until_it_is_read() {
        let (quiet, quiet_tx) = std::io::pipe().unwrap();
        let (loud_tx, loud) = UnixDatagram::pair().unwrap();
        loud.set_nonblocking(true).unwrap();
        let mut waiter = Waiter::new().unwrap();
        waiter.watch(quiet.as_fd(), 1).unwrap();
        waiter.watch(loud.as_fd(), 2).unwrap();
        loud_tx.send(&[1]).unwrap();
        loud_tx.send(&[2]).unwrap();
        waiter.wait(None).unwrap();
        assert_eq!(ready(&waiter), [2]);
        loud.recv(&mut [0; 4]).unwrap();
        waiter.wait(None).unwrap();
        assert_eq!(ready(&waiter), [2], "one datagram is still queued");
        loud.recv(&mut [0; 4]).unwrap();
        waiter.wait(Some(Instant::now())).unwrap();
        assert_eq!(
            ready(&waiter),
            [] as [u64; 0],
            "both read: only the deadline wakes it"
        );
        drop(quiet_tx);
        waiter.wait(None).unwrap();
        assert_eq!(ready(&waiter), [1], "a hung-up pipe is ready");
    }

    #[test]
    fn a_deadline_wakes_the_wait_at_its_time_and_not_before() {
        let mut waiter = Waiter::new().unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(20);
        waiter.wait(Some(deadline)).unwrap();
        assert!(Instant::now() >= deadline, "woke before the deadline");
        assert_eq!(ready(&waiter), [] as [u64; 0]);
        // The same deadline again, now passed: the wait returns at once rather than sleeping
        // on a timer that already fired.
        waiter.wait(Some(deadline)).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_later_deadline_or_none_leaves_no_stale_expiry_behind() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        let mut waiter = Waiter::new().unwrap();
        waiter.watch(rx.as_fd(), 7).unwrap();
        waiter.wait(Some(Instant::now())).unwrap();
        // Disarmed after firing: only the datagram may end this wait.
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(&[1]).unwrap();
            tx
        });
        let before = Instant::now();
        waiter.wait(None).unwrap();
        assert_eq!(ready(&waiter), [7]);
        assert!(
            before.elapsed() >= Duration::from_millis(40),
            "the fired timer woke the wait: {:?}",
            before.elapsed()
        );
        drop(sender.join().unwrap());
    }

    #[test]
    fn watching_a_watched_descriptor_again_changes_its_token() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        let mut waiter = Waiter::new().unwrap();
        waiter.watch(rx.as_fd(), 4).unwrap();
        waiter.watch(rx.as_fd(), 5).unwrap();
        tx.send(&[1]).unwrap();
        waiter.wait(None).unwrap();
        assert_eq!(ready(&waiter), [5]);
    }
}
