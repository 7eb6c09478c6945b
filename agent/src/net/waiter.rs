//! How the agent's plain (non-tokio) threads sleep: an epoll interest list kept across waits,
//! with a deadline at nanosecond precision. A thread that wakes once per advert pays for one
//! system call per wake-up: `epoll_pwait2(2)` takes the deadline as its timeout (Linux 5.11 and
//! later). Where the kernel (or a seccomp filter, or valgrind 3.19, which `make bench` counts
//! instructions under) refuses that call, a timerfd in the interest list keeps the deadline
//! instead, re-armed only when the deadline moved: one `epoll_pwait` without a timeout per
//! wake-up plus a `timerfd_settime` per new deadline. `ppoll(2)` would register and
//! unregister every descriptor at every wake-up, which at one advert per 10 ms was most of
//! what a MASTER's sleeping cost in the kernel.
//!
//! Readiness is level-triggered: a descriptor that still has something to read is reported
//! again at the next wait, so a reader may take one datagram per wake-up. Each watched
//! descriptor carries the caller's token; the deadline's wake-up is not reported as a token
//! (the caller knows its own deadline). A descriptor closed while watched leaves the list by
//! itself (when its last copy closes); one reused under the same number must be watched again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};

use super::sys::{epoll_wait_for, epoll_wait_ready};
use super::timer::arm_once;

/// The timer's token; callers' tokens are below it.
const TIMER: u64 = u64::MAX;
/// Events taken per wait; more ready descriptors are reported at the next wait.
const EVENTS_PER_WAIT: usize = 32;

/// One thread's interest list and deadline.
#[derive(Debug)]
pub(crate) struct Waiter {
    epoll: Epoll,
    deadline: DeadlineKeeper,
    events: Vec<EpollEvent>,
    /// How many of `events` the last wait filled.
    filled: usize,
}

/// What ends a [`Waiter`]'s wait at its deadline.
#[derive(Debug)]
enum DeadlineKeeper {
    /// The wait's own timeout (`epoll_pwait2`): nothing to arm.
    Timeout,
    /// A timerfd in the interest list, where the kernel or a seccomp filter refuses
    /// `epoll_pwait2`.
    Timer {
        timer: TimerFd,
        /// The deadline the timer is armed for (`None`: disarmed).
        armed: Option<Instant>,
        /// The timer has fired since it was last armed: it stays readable until re-armed.
        fired: bool,
    },
}

impl Waiter {
    /// An empty interest list; its waits keep their deadlines with `epoll_pwait2` where the
    /// kernel offers it, else with a timerfd.
    pub(crate) fn new() -> io::Result<Self> {
        let mut waiter = Self::with_timeout()?;
        match epoll_wait_for(
            waiter.epoll.0.as_fd(),
            &mut waiter.events,
            Some(Duration::ZERO),
        ) {
            Ok(_) => Ok(waiter),
            Err(Errno::ENOSYS | Errno::EPERM) => Self::with_timer(),
            Err(error) => Err(error.into()),
        }
    }

    /// An empty interest list whose waits take their deadline as `epoll_pwait2`'s timeout.
    fn with_timeout() -> io::Result<Self> {
        Ok(Self {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            deadline: DeadlineKeeper::Timeout,
            events: vec![EpollEvent::empty(); EVENTS_PER_WAIT],
            filled: 0,
        })
    }

    /// An empty interest list with a disarmed timerfd in it for the deadlines.
    fn with_timer() -> io::Result<Self> {
        let mut waiter = Self::with_timeout()?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        waiter
            .epoll
            .add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
        waiter.deadline = DeadlineKeeper::Timer {
            timer,
            armed: None,
            fired: false,
        };
        Ok(waiter)
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

    /// Stops watching `fd` (watched or not).
    pub(crate) fn unwatch(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self.epoll.delete(fd) {
            Err(Errno::ENOENT) => Ok(()),
            done => Ok(done?),
        }
    }

    /// Sleeps until a watched descriptor is ready or `deadline` passes (`None`: no limit; one
    /// already passed returns at once). A signal ends the wait early, with nothing ready.
    pub(crate) fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.filled = 0;
        let waited = match &mut self.deadline {
            DeadlineKeeper::Timeout => {
                let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
                epoll_wait_for(self.epoll.0.as_fd(), &mut self.events, timeout)
            }
            DeadlineKeeper::Timer {
                timer,
                armed,
                fired,
            } => {
                if *fired || deadline != *armed {
                    arm_once(timer, deadline)?;
                    *armed = deadline;
                    *fired = false;
                }
                epoll_wait_ready(self.epoll.0.as_fd(), &mut self.events)
            }
        };
        match waited {
            Ok(filled) => self.filled = filled,
            Err(Errno::EINTR) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        let timer_fired = self.reported().any(|token| token == TIMER);
        if let DeadlineKeeper::Timer { fired, .. } = &mut self.deadline
            && timer_fired
        {
            *fired = true;
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
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use super::*;

    fn ready(waiter: &Waiter) -> Vec<u64> {
        waiter.ready().collect()
    }

    /// A waiter of each kind: `epoll_pwait2`'s timeout, and the timerfd kept for where that is
    /// refused.
    fn both_kinds() -> [Waiter; 2] {
        [
            Waiter::with_timeout().unwrap(),
            Waiter::with_timer().unwrap(),
        ]
    }

    #[test]
    fn a_new_waiter_keeps_its_deadlines_with_the_wait_where_the_kernel_can() {
        let probe = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let kernel_waits_with_a_timeout = epoll_wait_for(
            probe.0.as_fd(),
            &mut [EpollEvent::empty()],
            Some(Duration::ZERO),
        )
        .is_ok();
        let waiter = Waiter::new().unwrap();
        assert_eq!(
            matches!(waiter.deadline, DeadlineKeeper::Timeout),
            kernel_waits_with_a_timeout,
            "{:?}",
            waiter.deadline
        );
    }

    #[test]
    fn a_wait_reports_the_readable_descriptor_by_its_token_until_it_is_read() {
        for mut waiter in both_kinds() {
            let kind = format!("{:?}", waiter.deadline);
            let (quiet, quiet_tx) = std::io::pipe().unwrap();
            let (loud_tx, loud) = UnixDatagram::pair().unwrap();
            loud.set_nonblocking(true).unwrap();
            waiter.watch(quiet.as_fd(), 1).unwrap();
            waiter.watch(loud.as_fd(), 2).unwrap();
            loud_tx.send(&[1]).unwrap();
            loud_tx.send(&[2]).unwrap();
            waiter.wait(None).unwrap();
            assert_eq!(ready(&waiter), [2], "{kind}");
            loud.recv(&mut [0; 4]).unwrap();
            waiter.wait(None).unwrap();
            assert_eq!(ready(&waiter), [2], "{kind}: one datagram is still queued");
            loud.recv(&mut [0; 4]).unwrap();
            waiter.wait(Some(Instant::now())).unwrap();
            assert_eq!(
                ready(&waiter),
                [] as [u64; 0],
                "{kind}: both read: only the deadline wakes it"
            );
            drop(quiet_tx);
            waiter.wait(None).unwrap();
            assert_eq!(ready(&waiter), [1], "{kind}: a hung-up pipe is ready");
        }
    }

    #[test]
    fn a_deadline_wakes_the_wait_at_its_time_and_not_before() {
        for mut waiter in both_kinds() {
            let kind = format!("{:?}", waiter.deadline);
            let start = Instant::now();
            let deadline = start + Duration::from_millis(20);
            waiter.wait(Some(deadline)).unwrap();
            assert!(
                Instant::now() >= deadline,
                "{kind}: woke before the deadline"
            );
            assert_eq!(ready(&waiter), [] as [u64; 0], "{kind}");
            // The same deadline again, now passed: the wait returns at once rather than
            // sleeping on a timer that already fired.
            waiter.wait(Some(deadline)).unwrap();
            assert!(start.elapsed() < Duration::from_secs(5), "{kind}");
        }
    }

    #[test]
    fn a_later_deadline_or_none_leaves_no_stale_expiry_behind() {
        for mut waiter in both_kinds() {
            let kind = format!("{:?}", waiter.deadline);
            let (tx, rx) = UnixDatagram::pair().unwrap();
            waiter.watch(rx.as_fd(), 7).unwrap();
            waiter.wait(Some(Instant::now())).unwrap();
            // The deadline has passed: only the datagram may end this wait.
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                tx.send(&[1]).unwrap();
                tx
            });
            let before = Instant::now();
            waiter.wait(None).unwrap();
            assert_eq!(ready(&waiter), [7], "{kind}");
            assert!(
                before.elapsed() >= Duration::from_millis(40),
                "{kind}: a stale deadline woke the wait: {:?}",
                before.elapsed()
            );
            drop(sender.join().unwrap());
        }
    }

    #[test]
    fn watching_a_watched_descriptor_again_changes_its_token() {
        for mut waiter in both_kinds() {
            let kind = format!("{:?}", waiter.deadline);
            let (tx, rx) = UnixDatagram::pair().unwrap();
            waiter.watch(rx.as_fd(), 4).unwrap();
            waiter.watch(rx.as_fd(), 5).unwrap();
            tx.send(&[1]).unwrap();
            waiter.wait(None).unwrap();
            assert_eq!(ready(&waiter), [5], "{kind}");
        }
    }
}
