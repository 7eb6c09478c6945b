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
/// read when the monotonic clock said `now` and the wall clock `wall_now`. Pure.
pub fn arrival(now: Instant, wall_now: Duration, stamp: Option<Duration>) -> Instant {
    stamp
        .and_then(|stamp| wall_now.checked_sub(stamp))
        .filter(|age| *age <= BELIEVABLE_AGE)
        .and_then(|age| now.checked_sub(age))
        .unwrap_or(now)
}

/// [`arrival`] of a datagram read when the monotonic clock said `read`, with the wall clock
/// read now. The wall clock is read as the kernel's `timespec` (not through `SystemTime`, whose
/// checked difference from the epoch costs more than the read on this path of every advert).
pub fn arrived(read: Instant, stamp: Option<Duration>) -> Instant {
    let wall_now = clock_gettime(ClockId::CLOCK_REALTIME).map_or(Duration::ZERO, Duration::from);
    arrival(read, wall_now, stamp)
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
            arrival(now, WALL, stamped_before(ms(6))),
            earlier(now, ms(6))
        );
        assert_eq!(arrival(now, WALL, Some(WALL)), now, "read as it arrived");
        assert_eq!(
            arrival(now, WALL, stamped_before(BELIEVABLE_AGE)),
            earlier(now, BELIEVABLE_AGE),
            "the oldest believed"
        );
    }

    #[test]
    fn a_missing_future_or_too_old_stamp_means_the_datagram_arrived_when_it_was_read() {
        let now = Instant::now();
        assert_eq!(arrival(now, WALL, None), now, "no stamp");
        assert_eq!(arrival(now, WALL, Some(WALL + ms(1))), now, "in the future");
        assert_eq!(
            arrival(now, WALL, stamped_before(BELIEVABLE_AGE + ms(1))),
            now,
            "older than believable"
        );
        assert_eq!(
            arrival(now, WALL, Some(Duration::ZERO)),
            now,
            "never stamped"
        );
        let stepped = WALL + Duration::from_secs(3600);
        assert_eq!(
            arrival(now, stepped, Some(WALL)),
            now,
            "the wall clock stepped an hour"
        );
    }

    #[test]
    fn a_stamp_of_the_real_wall_clock_is_carried_onto_the_monotonic_clock() {
        let before = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let at = arrived(Instant::now(), wall.checked_sub(ms(50)));
        // 50 ms before the read, give or take the time between the two readings of the clocks.
        assert!(at + ms(50) <= Instant::now(), "{at:?}");
        assert!(at + ms(50) + ms(500) >= before, "{at:?} vs {before:?}");
    }
}
