//! Runs of consecutive failures of one repeated operation (sending adverts, receiving from a
//! socket), so that a failure that repeats at the advert rate is logged at 1, 2, 4, 8, … in a
//! row instead of every time, and its end is logged once.

use std::sync::atomic::{AtomicU32, Ordering};

/// The current run of failures; shared by reference (atomic) so `&self` paths can count.
#[derive(Debug, Default)]
pub struct Streak {
    failures: AtomicU32,
}

impl Streak {
    /// Counts one failure; `Some(n)` (the length of the run) when this one should be logged:
    /// the first and every power of two.
    pub fn failed(&self) -> Option<u32> {
        let run = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        (run == 1 || run.is_power_of_two()).then_some(run)
    }

    /// Ends the run; `Some(n)` when it had `n` failures (to log the recovery once).
    pub fn succeeded(&self) -> Option<u32> {
        match self.failures.swap(0, Ordering::Relaxed) {
            0 => None,
            run => Some(run),
        }
    }

    /// The failures in the current run.
    pub fn len(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failures_is_logged_at_the_first_and_at_powers_of_two_and_its_end_once() {
        let streak = Streak::default();
        let logged: Vec<u32> = (0..20).filter_map(|_| streak.failed()).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        assert_eq!(streak.len(), 20);
        assert_eq!(streak.succeeded(), Some(20));
        assert_eq!(streak.succeeded(), None);
        assert_eq!(streak.failed(), Some(1));
    }
}
