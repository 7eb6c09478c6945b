//! The one formula behind every growing wait of the operator and the agent: a first wait,
//! doubled per step, never longer than a ceiling (start retries, status write retries,
//! rejected-configuration retries, health-io loop restarts, failed sync passes, watches).

use std::time::Duration;

/// `first` doubled `steps` times, never more than `max` (and `max` when `first` is longer).
/// Saturating: no step count overflows, and a zero `first` stays zero.
pub fn doubling(first: Duration, max: Duration, steps: u32) -> Duration {
    let mut wait = first.min(max);
    // A non-zero wait reaches `max` within about 95 doublings (`Duration::MAX` is below
    // 2^95 ns), so the loop is short whatever `steps` is.
    for _ in 0..steps {
        if wait.is_zero() || wait == max {
            break;
        }
        wait = wait.saturating_mul(2).min(max);
    }
    wait
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn no_step_is_the_first_wait() {
        assert_eq!(doubling(SECOND, 30 * SECOND, 0), SECOND);
    }

    #[test]
    fn each_step_doubles_the_wait_until_the_ceiling() {
        let waits: Vec<u64> = (0..8)
            .map(|steps| doubling(SECOND, 30 * SECOND, steps).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_first_wait_above_the_ceiling_is_the_ceiling() {
        assert_eq!(doubling(10 * SECOND, SECOND, 0), SECOND);
        assert_eq!(doubling(10 * SECOND, SECOND, 3), SECOND);
    }

    #[test]
    fn huge_step_counts_stop_at_the_ceiling_without_overflow() {
        assert_eq!(doubling(SECOND, 300 * SECOND, u32::MAX), 300 * SECOND);
        assert_eq!(
            doubling(Duration::from_nanos(1), Duration::MAX, u32::MAX),
            Duration::MAX
        );
        assert_eq!(
            doubling(Duration::MAX, Duration::MAX, u32::MAX),
            Duration::MAX
        );
    }

    #[test]
    fn a_tiny_first_wait_still_reaches_a_far_ceiling() {
        let first = Duration::from_nanos(1);
        assert_eq!(
            doubling(first, Duration::from_secs(3600), 64),
            Duration::from_secs(3600)
        );
        assert_eq!(
            doubling(first, Duration::MAX, 40),
            Duration::from_nanos(1 << 40)
        );
    }

    #[test]
    fn a_zero_first_wait_stays_zero() {
        assert_eq!(doubling(Duration::ZERO, SECOND, u32::MAX), Duration::ZERO);
    }
}
