//! When a datagram reached this node: the kernel's receive stamp (`SO_TIMESTAMPNS`, taken as
//! the packet entered the stack, on the wall clock) carried over to the monotonic clock the
//! agent's timers run on. A receiver that is scheduled late (a busy node) still times the
//! Master_Down_Timer, and the failover histogram, from the advert's arrival, not from its read.
//!
//! The stamp is on the wall clock because that is the only clock the kernel stamps received
//! packets with; its age is the wall clock now minus the stamp, both read from the same kernel
//! clock, so a wall-clock step between the arrival and the read (microseconds apart) is the
//! only way for it to be wrong. A stamp that is absent, in the future or older than
//! [`BELIEVABLE_AGE`] (a step, or a clock faked for the process) is not believed: the datagram
//! then arrived when it was read, as it did before stamps.

use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

/// The oldest stamp believed. A datagram waits in the socket for as long as its reader was not
/// scheduled: milliseconds on a busy node, a second only on a stalled one, where treating it as
/// just arrived is the cautious answer (it can only postpone a BACKUP's takeover).
pub const BELIEVABLE_AGE: Duration = Duration::from_secs(1);

/// The monotonic instant of a datagram stamped `stamp` (the wall clock's time since the epoch),
/// read when the monotonic clock said `now` and the wall clock `wall_now`. `queued_after`: when
/// its queue was last seen empty, if the reader knows (it then arrived after that, and a stamp
/// is believed back to it, or to [`BELIEVABLE_AGE`] when that is older: a reader that lets
/// datagrams wait on purpose reads them older than a second). Pure.
pub fn arrival(
    now: Instant,
    wall_now: Duration,
    stamp: Option<Duration>,
    queued_after: Option<Instant>,
) -> Instant {
    let oldest = queued_after
        .map_or(BELIEVABLE_AGE, |empty| now.saturating_duration_since(empty))
        .max(BELIEVABLE_AGE);
    stamp
        .and_then(|stamp| wall_now.checked_sub(stamp))
        .filter(|age| *age <= oldest)
        .and_then(|age| now.checked_sub(age))
        .unwrap_or(now)
}

/// The two clocks a reader times its datagrams by, read together: once for the datagrams of
/// a drain that arrived before that reading (their stamps are not later than its wall clock),
/// again for one stamped after it (it arrived while the drain ran) or not stamped at all. A
/// drain of hundreds of datagrams so reads the clocks once or twice, not twice per datagram,
/// and times each one from its stamp exactly as a reading of its own would.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clocks {
    /// The monotonic clock, then the wall clock (the kernel's `timespec`, not `SystemTime`,
    /// whose checked difference from the epoch costs more than the read).
    reading: Option<(Instant, Duration)>,
}

impl Clocks {
    /// When a datagram stamped `stamp` arrived (see [`arrival`]), and when it was read: the
    /// reading of the clocks it was timed by, taken after it arrived.
    pub fn time(
        &mut self,
        stamp: Option<Duration>,
        queued_after: Option<Instant>,
    ) -> (Instant, Instant) {
        let (now, wall_now) = match self.reading {
            Some((now, wall_now)) if stamp.is_some_and(|stamp| stamp <= wall_now) => {
                (now, wall_now)
            }
            _ => {
                let now = Instant::now();
                let wall_now =
                    clock_gettime(ClockId::CLOCK_REALTIME).map_or(Duration::ZERO, Duration::from);
                self.reading = Some((now, wall_now));
                (now, wall_now)
            }
        };
        (arrival(now, wall_now, stamp, queued_after), now)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    const WALL: Duration = Duration::from_secs(1_800_000_000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The wall clock `by` before [`WALL`].
    fn stamped_before(by: Duration) -> Option<Duration> {
        WALL.checked_sub(by)
    }

    fn earlier(now: Instant, by: Duration) -> Instant {
        now.checked_sub(by).unwrap()
    }

    #[test]
    fn a_datagram_read_late_arrived_as_long_ago_as_its_stamp_says() {
        let now = Instant::now();
        assert_eq!(
            arrival(now, WALL, stamped_before(ms(6)), None),
            earlier(now, ms(6))
        );
        assert_eq!(
            arrival(now, WALL, Some(WALL), None),
            now,
            "read as it arrived"
        );
        assert_eq!(
            arrival(now, WALL, stamped_before(BELIEVABLE_AGE), None),
            earlier(now, BELIEVABLE_AGE),
            "the oldest believed"
        );
    }

    #[test]
    fn a_missing_future_or_too_old_stamp_means_the_datagram_arrived_when_it_was_read() {
        let now = Instant::now();
        assert_eq!(arrival(now, WALL, None, None), now, "no stamp");
        assert_eq!(
            arrival(now, WALL, Some(WALL + ms(1)), None),
            now,
            "in the future"
        );
        assert_eq!(
            arrival(now, WALL, stamped_before(BELIEVABLE_AGE + ms(1)), None),
            now,
            "older than believable"
        );
        assert_eq!(
            arrival(now, WALL, Some(Duration::ZERO), None),
            now,
            "never stamped"
        );
        let stepped = WALL + Duration::from_secs(3600);
        assert_eq!(
            arrival(now, stepped, Some(WALL), None),
            now,
            "the wall clock stepped an hour"
        );
    }

    #[test]
    fn a_datagram_left_waiting_is_believed_back_to_when_its_queue_was_empty() {
        let now = Instant::now();
        let emptied = Some(earlier(now, ms(2_500)));
        assert_eq!(
            arrival(now, WALL, stamped_before(ms(2_400)), emptied),
            earlier(now, ms(2_400)),
            "queued after the queue was empty: believed"
        );
        assert_eq!(
            arrival(now, WALL, stamped_before(ms(2_600)), emptied),
            now,
            "older than the empty queue: a clock step"
        );
        assert_eq!(
            arrival(
                now,
                WALL,
                stamped_before(ms(900)),
                Some(earlier(now, ms(10)))
            ),
            earlier(now, ms(900)),
            "a second is believed whatever the queue"
        );
    }

    fn wall_clock() -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
    }

    #[test]
    fn a_stamp_of_the_real_wall_clock_is_carried_onto_the_monotonic_clock() {
        let before = Instant::now();
        let (at, read) = Clocks::default().time(wall_clock().checked_sub(ms(50)), None);
        // 50 ms before the read, give or take the time between the two readings of the clocks.
        assert!(at + ms(50) <= read, "{at:?} vs {read:?}");
        assert!(read <= Instant::now() && read >= before);
        assert!(at + ms(50) + ms(500) >= before, "{at:?} vs {before:?}");
    }

    #[test]
    fn a_drain_reads_the_clocks_again_only_for_a_datagram_stamped_after_its_reading() {
        let mut clocks = Clocks::default();
        let stamp = wall_clock().checked_sub(ms(20));
        let (first, read) = clocks.time(stamp, None);
        std::thread::sleep(ms(2));
        let (second, again) = clocks.time(stamp, None);
        assert_eq!(
            (second, again),
            (first, read),
            "arrived before the reading: kept"
        );
        let (at, later) = clocks.time(Some(wall_clock()), None);
        assert!(later > read, "stamped after the reading: read again");
        assert!(at <= later && at + ms(500) >= later, "{at:?} vs {later:?}");
        let (unstamped, last) = clocks.time(None, None);
        assert!(last > later, "no stamp: read again");
        assert_eq!(unstamped, last, "no stamp: arrived when read");
    }
}
