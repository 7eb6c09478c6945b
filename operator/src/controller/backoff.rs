//! Delays between failed sync passes: doubling from a base up to a ceiling, reset by a
//! pass that succeeds.

use std::time::Duration;

use kube_vrrp_crds::backoff::doubling;

/// Exponential backoff for failed passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBackoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    failures: u32,
}

impl Default for ErrorBackoff {
    /// Up to 8 s: after an API server outage the first pass that can write comes within
    /// seconds of its return (a failing pass costs one pass, no list).
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(8))
    }
}

impl ErrorBackoff {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// Records a failure and returns how long to wait before the next pass.
    pub fn next_delay(&mut self) -> Duration {
        let delay = doubling(self.base, self.max, self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Records a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_reset_after_success() {
        let mut b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        assert_eq!(b.failures(), 5);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
