//! A precise one-shot timer for the VRRP tasks: a `timerfd` on CLOCK_MONOTONIC, awaited
//! through tokio's reactor. tokio's own timer rounds every deadline up to the next millisecond,
//! which at a 10 ms advert interval is a tenth of the interval; a timerfd fires at the
//! nanosecond it was set for.
//!
//! Another thread may push an armed deadline later through a [`Postpone`] handle (a BACKUP's
//! receive thread, for each routine advert of its MASTER), so the task is not woken for a
//! deadline that has moved.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::clock_gettime;
use tokio::io::unix::AsyncFd;

use super::NetError;
use super::sys::{OwnedTimer, register_timer};

/// One deadline at a time; [`Deadline::wait`] resolves when it has passed.
pub struct Deadline {
    fd: Arc<AsyncFd<OwnedTimer>>,
    armed: Option<Instant>,
    /// Set by a [`Postpone`]: the timer may no longer be at `armed`.
    postponed: Arc<AtomicBool>,
}

/// Moves a [`Deadline`]'s timer from another thread.
#[derive(Clone)]
pub struct Postpone {
    fd: Arc<AsyncFd<OwnedTimer>>,
    postponed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Postpone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postpone").finish_non_exhaustive()
    }
}

impl Postpone {
    /// Re-arms the timer to fire at `deadline`. The caller makes sure that this is no earlier
    /// than what the task armed, and that the task learns why (else it wakes and finds nothing
    /// due, and sleeps again).
    pub fn to(&self, deadline: Instant) -> Result<(), NetError> {
        self.postponed.store(true, Ordering::Release);
        arm_once(self.fd.get_ref().timer(), Some(deadline))
            .map_err(NetError::errno("arm a timerfd"))
    }
}

/// Arms `timer` to fire once at `deadline`, or disarms it (`None`); re-arming also clears an
/// expiry not yet read. Shared by [`Deadline`] and the plain threads' waits (`net::waiter`).
/// The deadline is set as an absolute time on CLOCK_MONOTONIC, so arming reads no clock (a
/// BACKUP re-arms at every other advert of its MASTER).
pub(crate) fn arm_once(timer: &TimerFd, deadline: Option<Instant>) -> nix::Result<()> {
    match deadline {
        None => timer.unset(),
        Some(at) => timer.set(
            Expiration::OneShot(TimeSpec::from_duration(monotonic_time(at))),
            TimerSetTimeFlags::TFD_TIMER_ABSTIME,
        ),
    }
}

/// `at` as CLOCK_MONOTONIC's time since boot, the clock `Instant` reads on Linux (std does not
/// expose it). One pair of readings, taken once, relates the two: the `Instant` first, so the
/// clock's reading is the later one and a deadline converts at most the gap between the two
/// reads (tens of nanoseconds) late, never early. Never zero, which would disarm the timer.
fn monotonic_time(at: Instant) -> Duration {
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (base_instant, base_time) = *BASE.get_or_init(|| {
        let instant = Instant::now();
        let time = clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map_or(Duration::ZERO, Duration::from);
        (instant, time)
    });
    let time = match at.checked_duration_since(base_instant) {
        Some(after) => base_time.saturating_add(after),
        None => base_time.saturating_sub(base_instant.duration_since(at)),
    };
    time.max(Duration::from_nanos(1))
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline")
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

impl Deadline {
    /// A timer with nothing armed. Must be called inside a tokio runtime.
    pub fn new() -> Result<Self, NetError> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(NetError::errno("create a timerfd"))?;
        let fd = register_timer(timer).map_err(NetError::io("register a timerfd"))?;
        Ok(Self {
            fd: Arc::new(fd),
            armed: None,
            postponed: Arc::default(),
        })
    }

    /// Arms the timer for `deadline` (`None`: disarms it). Re-arming for the deadline already
    /// armed costs nothing, unless a [`Postpone`] may have moved it.
    pub fn set(&mut self, deadline: Option<Instant>) -> Result<(), NetError> {
        if !self.postponed.swap(false, Ordering::Acquire) && deadline == self.armed {
            return Ok(());
        }
        let op = if deadline.is_some() {
            "arm a timerfd"
        } else {
            "disarm a timerfd"
        };
        arm_once(self.fd.get_ref().timer(), deadline).map_err(NetError::errno(op))?;
        self.armed = deadline;
        Ok(())
    }

    /// A handle that moves this timer later from another thread.
    pub fn postpone(&self) -> Postpone {
        Postpone {
            fd: Arc::clone(&self.fd),
            postponed: Arc::clone(&self.postponed),
        }
    }

    /// The deadline armed, if any.
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Resolves once the armed deadline has passed; never while nothing is armed. Cancel-safe:
    /// dropping the future loses nothing, the expiry stays readable.
    pub async fn wait(&self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let expired = guard.try_io(|fd| {
                let mut count = [0u8; 8];
                match nix::unistd::read(fd.get_ref().timer().as_fd(), &mut count) {
                    Ok(_) => Ok(()),
                    Err(Errno::EAGAIN) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
                    Err(errno) => Err(io::Error::from(errno)),
                }
            });
            // Otherwise re-armed since the expiry was seen (WouldBlock cleared the readiness),
            // or a read error on a timerfd, which cannot happen for an 8-byte buffer.
            if let Ok(Ok(())) = expired {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_fires_on_time_and_a_disarmed_one_never_does() {
        let mut deadline = Deadline::new().unwrap();
        let at = Instant::now() + Duration::from_millis(20);
        deadline.set(Some(at)).unwrap();
        deadline.wait().await;
        assert!(Instant::now() >= at, "fired before its deadline");
        deadline.set(None).unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(30), deadline.wait()).await;
        assert!(waited.is_err(), "a disarmed timer fired");
    }

    #[tokio::test]
    async fn re_arming_later_moves_the_expiry() {
        let mut deadline = Deadline::new().unwrap();
        deadline
            .set(Some(Instant::now() + Duration::from_millis(5)))
            .unwrap();
        let later = Instant::now() + Duration::from_millis(40);
        deadline.set(Some(later)).unwrap();
        deadline.wait().await;
        assert!(Instant::now() >= later);
        assert_eq!(deadline.armed(), Some(later));
    }

    #[tokio::test]
    async fn a_postponed_deadline_fires_later_and_setting_it_back_is_not_skipped() {
        let mut deadline = Deadline::new().unwrap();
        let at = Instant::now() + Duration::from_millis(10);
        deadline.set(Some(at)).unwrap();
        let postponed = Instant::now() + Duration::from_millis(60);
        deadline.postpone().to(postponed).unwrap();
        deadline.wait().await;
        assert!(
            Instant::now() >= postponed,
            "fired at the deadline it was moved from"
        );
        let again = Instant::now() + Duration::from_millis(10);
        deadline.set(Some(again)).unwrap();
        deadline
            .postpone()
            .to(Instant::now() + Duration::from_secs(60))
            .unwrap();
        deadline.set(Some(again)).unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(5), deadline.wait()).await;
        assert!(
            waited.is_ok(),
            "setting the armed deadline again after a postponement was skipped"
        );
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_fires_at_once() {
        let mut deadline = Deadline::new().unwrap();
        deadline
            .set(Some(
                Instant::now()
                    .checked_sub(Duration::from_millis(5))
                    .unwrap(),
            ))
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), deadline.wait())
            .await
            .unwrap();
    }

    #[test]
    fn an_instant_converts_to_the_monotonic_clocks_reading_of_that_moment() {
        let read = || {
            clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map(Duration::from)
                .unwrap()
        };
        for _ in 0..3 {
            let before = read();
            let now = Instant::now();
            let after = read();
            let converted = monotonic_time(now);
            // Never early; late by at most the two reads of the calibration (far below 1 ms).
            assert!(before <= converted, "{converted:?} before {before:?}");
            assert!(
                converted <= after + Duration::from_millis(1),
                "{converted:?} after {after:?}"
            );
            let later = now + Duration::from_secs(3);
            assert_eq!(
                monotonic_time(later).checked_sub(converted),
                Some(Duration::from_secs(3))
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
