//! The pure schedule of announcements after becoming MASTER, from keepalived's knobs:
//! `garp_master_repeat` announcements at once, the same again `garp_master_delay` later, and,
//! when `garp_master_refresh` is set, `garp_master_refresh_repeat` announcements every refresh
//! period while MASTER. Announcements of one burst are `interval` apart (keepalived's
//! `garp_interval` / `gna_interval`). Time is passed in; nothing here reads a clock.

use std::time::{Duration, Instant};

/// keepalived's GARP / NA settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpSettings {
    /// Delay of the second burst after the transition (`garp_master_delay`); zero: no second
    /// burst.
    pub delay: Duration,
    /// Announcements per burst (`garp_master_repeat`).
    pub repeat: u32,
    /// Period of refresh bursts while MASTER (`garp_master_refresh`); zero: none.
    pub refresh: Duration,
    /// Announcements per refresh burst (`garp_master_refresh_repeat`).
    pub refresh_repeat: u32,
    /// Gap between the announcements of one burst (`garp_interval`).
    pub interval: Duration,
}

impl Default for GarpSettings {
    /// keepalived's defaults: 5 at once, 5 more after 5 s, no refresh, no gap.
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(5),
            repeat: 5,
            refresh: Duration::ZERO,
            refresh_repeat: 1,
            interval: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    next: Instant,
    left: u32,
    interval: Duration,
}

impl Burst {
    fn head(&self) -> Option<Instant> {
        (self.left > 0).then_some(self.next)
    }

    fn advance(&mut self) {
        self.left = self.left.saturating_sub(1);
        self.next += self.interval;
    }
}

/// The instants at which to announce every VIP, in order, from one transition to MASTER.
/// Finite without refresh, endless with it. Drop it when leaving MASTER.
#[derive(Debug, Clone)]
pub struct GarpSchedule {
    initial: Burst,
    delayed: Burst,
    refresh: Option<Refresh>,
}

#[derive(Debug, Clone, Copy)]
struct Refresh {
    period: Duration,
    repeat: u32,
    started: Instant,
    burst: Burst,
}

impl GarpSchedule {
    /// The schedule for a transition to MASTER at `start`.
    pub fn new(start: Instant, settings: &GarpSettings) -> Self {
        let burst = |at: Instant, left: u32| Burst {
            next: at,
            left,
            interval: settings.interval,
        };
        let delayed_count = if settings.delay.is_zero() {
            0
        } else {
            settings.repeat
        };
        let refresh = (!settings.refresh.is_zero() && settings.refresh_repeat > 0).then(|| {
            let started = start + settings.refresh;
            Refresh {
                period: settings.refresh,
                repeat: settings.refresh_repeat,
                started,
                burst: burst(started, settings.refresh_repeat),
            }
        });
        Self {
            initial: burst(start, settings.repeat),
            delayed: burst(start + settings.delay, delayed_count),
            refresh,
        }
    }

    /// When the next announcement is due, if any remains.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.initial.head(),
            self.delayed.head(),
            self.refresh.and_then(|refresh| refresh.burst.head()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// How many announcements are due at `now`, consuming them (for a driver woken at
    /// [`Self::next_deadline`]).
    pub fn take_due(&mut self, now: Instant) -> usize {
        let mut due = 0;
        while self.next_deadline().is_some_and(|at| at <= now) {
            self.next();
            due += 1;
        }
        due
    }
}

impl Iterator for GarpSchedule {
    type Item = Instant;

    fn next(&mut self) -> Option<Instant> {
        let at = self.next_deadline()?;
        if self.initial.head() == Some(at) {
            self.initial.advance();
        } else if self.delayed.head() == Some(at) {
            self.delayed.advance();
        } else if let Some(refresh) = self.refresh.as_mut() {
            refresh.burst.advance();
            if refresh.burst.left == 0 {
                refresh.started += refresh.period;
                refresh.burst = Burst {
                    next: refresh.started,
                    left: refresh.repeat,
                    interval: refresh.burst.interval,
                };
            }
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn offsets(start: Instant, schedule: impl Iterator<Item = Instant>) -> Vec<Duration> {
        schedule.map(|at| at - start).collect()
    }

    #[test]
    fn keepalived_defaults_send_five_at_once_and_five_more_after_five_seconds() {
        let t0 = Instant::now();
        let times = offsets(t0, GarpSchedule::new(t0, &GarpSettings::default()));
        assert_eq!(times, [vec![Duration::ZERO; 5], vec![5 * S; 5]].concat());
    }

    #[test]
    fn a_zero_delay_means_no_second_burst() {
        let t0 = Instant::now();
        let settings = GarpSettings {
            delay: Duration::ZERO,
            repeat: 2,
            ..GarpSettings::default()
        };
        let times = offsets(t0, GarpSchedule::new(t0, &settings));
        assert_eq!(times, vec![Duration::ZERO; 2]);
    }

    #[test]
    fn an_interval_spaces_the_announcements_of_a_burst() {
        let t0 = Instant::now();
        let settings = GarpSettings {
            delay: 2 * S,
            repeat: 3,
            interval: 10 * MS,
            ..GarpSettings::default()
        };
        let times = offsets(t0, GarpSchedule::new(t0, &settings));
        assert_eq!(
            times,
            [
                Duration::ZERO,
                10 * MS,
                20 * MS,
                2 * S,
                2 * S + 10 * MS,
                2 * S + 20 * MS
            ]
        );
    }

    #[test]
    fn refresh_repeats_forever_every_period_after_the_transition() {
        let t0 = Instant::now();
        let settings = GarpSettings {
            delay: 5 * S,
            repeat: 1,
            refresh: 60 * S,
            refresh_repeat: 2,
            interval: Duration::ZERO,
        };
        let times = offsets(t0, GarpSchedule::new(t0, &settings).take(8));
        assert_eq!(
            times,
            [
                Duration::ZERO,
                5 * S,
                60 * S,
                60 * S,
                120 * S,
                120 * S,
                180 * S,
                180 * S
            ]
        );
    }

    #[test]
    fn a_refresh_shorter_than_the_delay_interleaves_in_time_order() {
        let t0 = Instant::now();
        let settings = GarpSettings {
            delay: 5 * S,
            repeat: 1,
            refresh: 2 * S,
            refresh_repeat: 1,
            interval: Duration::ZERO,
        };
        let times = offsets(t0, GarpSchedule::new(t0, &settings).take(5));
        assert_eq!(times, [Duration::ZERO, 2 * S, 4 * S, 5 * S, 6 * S]);
    }

    #[test]
    fn take_due_consumes_everything_due_and_nothing_later() {
        let t0 = Instant::now();
        let mut schedule = GarpSchedule::new(t0, &GarpSettings::default());
        assert_eq!(schedule.take_due(t0), 5);
        assert_eq!(schedule.next_deadline(), Some(t0 + 5 * S));
        assert_eq!(schedule.take_due(t0 + 4 * S), 0);
        assert_eq!(schedule.take_due(t0 + 6 * S), 5);
        assert_eq!(schedule.next_deadline(), None);
    }

    #[test]
    fn zero_repeats_and_no_refresh_announce_nothing() {
        let t0 = Instant::now();
        let settings = GarpSettings {
            repeat: 0,
            ..GarpSettings::default()
        };
        assert_eq!(GarpSchedule::new(t0, &settings).next(), None);
    }
}
