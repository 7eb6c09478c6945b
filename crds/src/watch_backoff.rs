//! How every watch of this project's controllers (the operator's and the agents') waits after
//! an error: shared so that both recover from an API server outage alike.
//!
//! kube's default waits up to 30 s and only forgets its history after 2 minutes: after an
//! outage of a minute, the first error once the API server is back (the expired resource
//! version that forces a relist) costs another 30 s of a blind operator. Here the wait doubles
//! from 250 ms to at most 4 s and starts over at the first event that arrives.

use std::time::Duration;

use kube::runtime::utils::Backoff;

use crate::backoff::doubling;

/// The first wait after an error.
pub const FIRST: Duration = Duration::from_millis(250);
/// The longest wait.
pub const LONGEST: Duration = Duration::from_secs(4);

/// Capped doubling waits ([`doubling`] from [`FIRST`] to [`LONGEST`]); reset by the watch
/// stream on every successful event.
#[derive(Clone, Debug, Default)]
pub struct WatchBackoff {
    /// Waits given since the last reset.
    given: u32,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = doubling(FIRST, LONGEST, self.given);
        self.given = self.given.saturating_add(1);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.given = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_four_seconds_and_start_over_after_a_reset() {
        let mut b = WatchBackoff::default();
        let waits: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        b.reset();
        assert_eq!(b.next(), Some(FIRST));
    }
}
