//! A pure debounce for link state: a change counts only once it has held for its hold time, so a
//! flapping link is absorbed. Time is passed in; nothing here reads a clock.

use std::time::{Duration, Instant};

use super::LinkState;

/// Debounced link state with separate hold times for going down and coming back up.
#[derive(Debug, Clone)]
pub struct LinkDebounce {
    down_hold: Duration,
    up_hold: Duration,
    stable: LinkState,
    /// The differing state last observed and since when it has held.
    pending: Option<(LinkState, Instant)>,
}

impl LinkDebounce {
    /// Starts at `initial` (the state read from the kernel at start-up).
    pub fn new(initial: LinkState, down_hold: Duration, up_hold: Duration) -> Self {
        Self {
            down_hold,
            up_hold,
            stable: initial,
            pending: None,
        }
    }

    /// The debounced state.
    pub fn state(&self) -> LinkState {
        self.stable
    }

    /// Records the raw state observed at `now`. Returns the new debounced state when it changes
    /// right away (a zero hold time, or a pending change already due).
    pub fn observe(&mut self, now: Instant, state: LinkState) -> Option<LinkState> {
        if state == self.stable {
            self.pending = None;
            return None;
        }
        if !matches!(self.pending, Some((pending, _)) if pending == state) {
            self.pending = Some((state, now));
        }
        self.on_timeout(now)
    }

    /// When the pending change becomes effective, if one is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .map(|(state, since)| since + self.hold_for(state))
    }

    /// Applies a pending change that is due at `now`; returns the new debounced state if any.
    pub fn on_timeout(&mut self, now: Instant) -> Option<LinkState> {
        let deadline = self.next_deadline()?;
        if now < deadline {
            return None;
        }
        let (state, _) = self.pending.take()?;
        self.stable = state;
        Some(state)
    }

    fn hold_for(&self, state: LinkState) -> Duration {
        match state {
            LinkState::Down => self.down_hold,
            LinkState::Up => self.up_hold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn debounce() -> (LinkDebounce, Instant) {
        (
            LinkDebounce::new(LinkState::Up, 100 * MS, 500 * MS),
            Instant::now(),
        )
    }

    #[test]
    fn a_link_that_stays_down_for_the_hold_time_counts_as_down() {
        let (mut link, t0) = debounce();
        assert_eq!(link.observe(t0, LinkState::Down), None);
        assert_eq!(link.next_deadline(), Some(t0 + 100 * MS));
        assert_eq!(link.on_timeout(t0 + 99 * MS), None);
        assert_eq!(link.state(), LinkState::Up);
        assert_eq!(link.on_timeout(t0 + 100 * MS), Some(LinkState::Down));
        assert_eq!(link.state(), LinkState::Down);
        assert_eq!(link.next_deadline(), None);
    }

    #[test]
    fn a_down_flap_shorter_than_the_hold_time_is_absorbed() {
        let (mut link, t0) = debounce();
        link.observe(t0, LinkState::Down);
        assert_eq!(link.observe(t0 + 50 * MS, LinkState::Up), None);
        assert_eq!(link.next_deadline(), None);
        assert_eq!(link.on_timeout(t0 + 200 * MS), None);
        assert_eq!(link.state(), LinkState::Up);
    }

    #[test]
    fn repeated_down_notifications_do_not_restart_the_hold_time() {
        let (mut link, t0) = debounce();
        link.observe(t0, LinkState::Down);
        link.observe(t0 + 60 * MS, LinkState::Down);
        assert_eq!(link.next_deadline(), Some(t0 + 100 * MS));
        assert_eq!(
            link.observe(t0 + 100 * MS, LinkState::Down),
            Some(LinkState::Down)
        );
    }

    #[test]
    fn coming_back_up_uses_the_up_hold_time() {
        let (mut link, t0) = debounce();
        link.observe(t0, LinkState::Down);
        link.on_timeout(t0 + 100 * MS);
        link.observe(t0 + 200 * MS, LinkState::Up);
        assert_eq!(link.next_deadline(), Some(t0 + 700 * MS));
        assert_eq!(link.on_timeout(t0 + 699 * MS), None);
        assert_eq!(link.on_timeout(t0 + 700 * MS), Some(LinkState::Up));
    }

    #[test]
    fn flapping_restarts_the_hold_time_from_the_last_change() {
        let (mut link, t0) = debounce();
        link.observe(t0, LinkState::Down);
        link.observe(t0 + 90 * MS, LinkState::Up);
        link.observe(t0 + 95 * MS, LinkState::Down);
        assert_eq!(link.on_timeout(t0 + 100 * MS), None);
        assert_eq!(link.next_deadline(), Some(t0 + 195 * MS));
        assert_eq!(link.on_timeout(t0 + 195 * MS), Some(LinkState::Down));
    }

    #[test]
    fn a_zero_hold_time_reports_the_change_at_once() {
        let t0 = Instant::now();
        let mut link = LinkDebounce::new(LinkState::Up, Duration::ZERO, Duration::ZERO);
        assert_eq!(link.observe(t0, LinkState::Down), Some(LinkState::Down));
        assert_eq!(link.observe(t0, LinkState::Up), Some(LinkState::Up));
    }
}
