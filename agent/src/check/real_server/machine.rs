//! One real server's check schedule and verdict, as keepalived's checkers decide them. Pure:
//! the caller owns the clock and the probe; the machine says when the next attempt is due and
//! what each result means.
//!
//! - A check starts every `interval` (fixed rate from its first start), so the spread of
//!   1,000 real servers over the interval does not drift into bursts. A check that ends after
//!   its successor was due (attempts that hung to their timeout, retries, a late start behind
//!   the concurrency bound) is followed `interval` after it ended: keepalived waits
//!   `delay_loop` after every check's end, and in that case so does the agent, so a saturated
//!   real server or host gets an interval of slack instead of the next check at once.
//! - An attempt that fails while the real server is healthy is tried again after
//!   `retry_delay`, up to `attempts` attempts in all (keepalived's `retry` + 1); a real server
//!   already failing, or not checked yet, gets one attempt per check (keepalived: "do not retry
//!   if server is already known as dead", and "one failure is enough initially").
//! - The check's result goes through [`RiseFall`]: `fall` failed checks in a row take a healthy
//!   real server down, `rise` passed ones bring a failing one up. The first result after start
//!   decides at once, as keepalived's first check does.
//! - Until that first result the verdict is the one the machine was started with: healthy
//!   (keepalived's default without `alpha`), or what the agent last knew before a restart.

use std::time::{Duration, Instant};

use crate::check::aggregate::Observation;
use crate::check::rise_fall::RiseFall;

/// The timers of one real server's checks (from `healthCheck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTimers {
    /// Time between the starts of two checks.
    pub interval: Duration,
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// Attempts per check while healthy, at least 1.
    pub attempts: u32,
    /// Wait between two attempts of one check.
    pub retry_delay: Duration,
    /// Passed checks in a row that bring a failing real server up.
    pub rise: u32,
    /// Failed checks in a row that take a healthy real server down.
    pub fall: u32,
}

/// What a finished attempt did to the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The verdict after this attempt.
    pub healthy: bool,
    /// The verdict changed with this attempt.
    pub changed: bool,
    /// This attempt ended its check (it passed, or it was the check's last attempt).
    pub check_ended: bool,
}

/// The check machine of one real server.
#[derive(Debug, Clone)]
pub struct CheckMachine {
    timers: CheckTimers,
    debounce: RiseFall,
    /// The verdict before the first result.
    assumed: bool,
    /// Attempts made in the current check.
    attempts: u32,
    /// When the current (or, between checks, the last) check started.
    check_started: Option<Instant>,
    /// When the next attempt is due; `None` while one runs.
    due: Option<Instant>,
}

impl CheckMachine {
    /// A machine whose first check is due at `first_due`, healthy until that first result says
    /// otherwise when `assumed` is true.
    pub fn new(timers: CheckTimers, first_due: Instant, assumed: bool) -> Self {
        Self {
            timers: CheckTimers {
                attempts: timers.attempts.max(1),
                ..timers
            },
            debounce: RiseFall::new(timers.rise, timers.fall),
            assumed,
            attempts: 0,
            check_started: None,
            due: Some(first_due),
        }
    }

    /// The timers in force.
    pub fn timers(&self) -> &CheckTimers {
        &self.timers
    }

    /// When the next attempt is due; `None` while one runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the real server counts as healthy now.
    pub fn healthy(&self) -> bool {
        match self.debounce.current() {
            Observation::Up => true,
            Observation::Pending => self.assumed,
            _ => false,
        }
    }

    /// Whether a check has ended since the start (the verdict is no longer an assumption).
    pub fn checked(&self) -> bool {
        self.debounce.current() != Observation::Pending
    }

    /// An attempt starts at `now` (the caller runs the probe with [`CheckTimers::timeout`]).
    /// A check's period counts from when it was due, not from when it could start, so a late
    /// wake-up does not push every later check back.
    pub fn begin(&mut self, now: Instant) {
        if self.attempts == 0 {
            self.check_started = Some(self.due.map_or(now, |due| due.min(now)));
        }
        self.attempts += 1;
        self.due = None;
    }

    /// The attempt begun last ended at `now`, passed or not.
    pub fn finish(&mut self, now: Instant, passed: bool) -> Step {
        let before = self.healthy();
        let retry = !passed
            && self.debounce.current() == Observation::Up
            && self.attempts < self.timers.attempts;
        if retry {
            self.due = Some(now + self.timers.retry_delay);
            return Step {
                healthy: before,
                changed: false,
                check_ended: false,
            };
        }
        self.debounce.observe(passed);
        self.attempts = 0;
        let next_slot = self.check_started.unwrap_or(now) + self.timers.interval;
        self.due = Some(if now > next_slot {
            now + self.timers.interval
        } else {
            next_slot
        });
        let healthy = self.healthy();
        Step {
            healthy,
            changed: healthy != before,
            check_ended: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn timers(attempts: u32, rise: u32, fall: u32) -> CheckTimers {
        CheckTimers {
            interval: 5 * S,
            timeout: 2 * S,
            attempts,
            retry_delay: S,
            rise,
            fall,
        }
    }

    /// One attempt as the fake clock sees it: it starts when due and takes `took`.
    #[derive(Debug, Clone, Copy)]
    struct Attempt {
        passed: bool,
        took: Duration,
    }

    fn pass() -> Attempt {
        Attempt {
            passed: true,
            took: Duration::from_millis(10),
        }
    }

    fn fail() -> Attempt {
        Attempt {
            passed: false,
            took: Duration::from_millis(10),
        }
    }

    fn hang() -> Attempt {
        Attempt {
            passed: false,
            took: 2 * S,
        }
    }

    /// What happened at one attempt: (start offset from t0, verdict after it, check ended).
    type Trace = Vec<(Duration, bool, bool)>;

    fn run(machine: &mut CheckMachine, t0: Instant, attempts: &[Attempt]) -> Trace {
        let mut trace = Vec::new();
        for a in attempts {
            let start = machine.next_deadline().expect("an attempt is due");
            machine.begin(start);
            assert_eq!(
                machine.next_deadline(),
                None,
                "nothing is due while an attempt runs"
            );
            let step = machine.finish(start + a.took, a.passed);
            trace.push((start - t0, step.healthy, step.check_ended));
        }
        trace
    }

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    struct Case {
        name: &'static str,
        timers: CheckTimers,
        assumed: bool,
        attempts: Vec<Attempt>,
        want: Trace,
    }

    #[test]
    fn table_of_retries_rise_fall_and_first_results() {
        let cases = [
            Case {
                name: "first failure takes an assumed-healthy server down at once, no retry",
                timers: timers(3, 1, 1),
                assumed: true,
                attempts: vec![fail(), pass()],
                want: vec![(at(0.0), false, true), (at(5.0), true, true)],
            },
            Case {
                name: "first success of a server remembered as failing brings it up at once",
                timers: timers(1, 3, 3),
                assumed: false,
                attempts: vec![pass(), fail(), fail()],
                want: vec![
                    (at(0.0), true, true),
                    (at(5.0), true, true),
                    (at(10.0), true, true),
                ],
            },
            Case {
                name: "a healthy server is retried after the delay, then falls",
                timers: timers(3, 1, 1),
                assumed: true,
                attempts: vec![pass(), fail(), fail(), fail(), fail()],
                want: vec![
                    (at(0.0), true, true),
                    (at(5.0), true, false),
                    (at(6.01), true, false),
                    (at(7.02), false, true),
                    // Failing: one attempt per check, on the fixed-rate schedule.
                    (at(10.0), false, true),
                ],
            },
            Case {
                name: "a retry that passes keeps the server up and ends the check",
                timers: timers(3, 1, 1),
                assumed: true,
                attempts: vec![pass(), fail(), pass(), pass()],
                want: vec![
                    (at(0.0), true, true),
                    (at(5.0), true, false),
                    (at(6.01), true, true),
                    (at(10.0), true, true),
                ],
            },
            Case {
                name: "fall counts failed checks, not attempts",
                timers: timers(2, 1, 2),
                assumed: true,
                attempts: vec![pass(), fail(), fail(), fail(), fail()],
                want: vec![
                    (at(0.0), true, true),
                    (at(5.0), true, false),
                    (at(6.01), true, true),
                    (at(10.0), true, false),
                    (at(11.01), false, true),
                ],
            },
            Case {
                name: "rise needs that many passed checks in a row",
                timers: timers(1, 2, 1),
                assumed: true,
                attempts: vec![fail(), pass(), fail(), pass(), pass()],
                want: vec![
                    (at(0.0), false, true),
                    (at(5.0), false, true),
                    (at(10.0), false, true),
                    (at(15.0), false, true),
                    (at(20.0), true, true),
                ],
            },
            Case {
                name: "an attempt hanging to its timeout pushes the retry, not the schedule",
                timers: timers(2, 1, 1),
                assumed: true,
                attempts: vec![pass(), hang(), hang(), pass()],
                want: vec![
                    (at(0.0), true, true),
                    (at(5.0), true, false),
                    (at(8.0), false, true),
                    (at(10.0), true, true),
                ],
            },
            Case {
                name: "a check overrunning its interval is followed an interval after its end",
                timers: CheckTimers {
                    interval: 2 * S,
                    ..timers(2, 1, 1)
                },
                assumed: true,
                attempts: vec![pass(), hang(), hang(), pass(), pass()],
                want: vec![
                    (at(0.0), true, true),
                    (at(2.0), true, false),
                    // The check began at 2, its retry ended at 7, past its successor's slot (4).
                    (at(5.0), false, true),
                    (at(9.0), true, true),
                    // Back on time: the fixed rate from the last check's start.
                    (at(11.0), true, true),
                ],
            },
            Case {
                name: "hanging checks of a failing server back off as keepalived's do",
                timers: CheckTimers {
                    interval: Duration::from_millis(1_500),
                    ..timers(1, 1, 1)
                },
                assumed: false,
                attempts: vec![hang(), hang(), hang()],
                // Each attempt hangs 2 s, past its successor's slot 1.5 s after its start.
                want: vec![
                    (at(0.0), false, true),
                    (at(3.5), false, true),
                    (at(7.0), false, true),
                ],
            },
        ];
        for case in cases {
            let t0 = Instant::now();
            let mut machine = CheckMachine::new(case.timers, t0, case.assumed);
            assert_eq!(machine.healthy(), case.assumed, "{}", case.name);
            assert!(!machine.checked(), "{}", case.name);
            let trace = run(&mut machine, t0, &case.attempts);
            let round = |t: &Trace| -> Vec<(u128, bool, bool)> {
                t.iter().map(|(d, h, e)| (d.as_millis(), *h, *e)).collect()
            };
            assert_eq!(round(&trace), round(&case.want), "{}", case.name);
            assert!(machine.checked(), "{}", case.name);
        }
    }

    #[test]
    fn a_change_is_reported_only_when_the_verdict_flips() {
        let t0 = Instant::now();
        let mut m = CheckMachine::new(timers(1, 1, 1), t0, true);
        m.begin(t0);
        let first = m.finish(t0, true);
        assert!(!first.changed, "assumed healthy, found healthy");
        let due = m.next_deadline().unwrap();
        m.begin(due);
        assert!(m.finish(due, false).changed);
    }

    #[test]
    fn a_late_start_does_not_push_the_schedule_back() {
        let t0 = Instant::now();
        let mut m = CheckMachine::new(timers(1, 1, 1), t0, true);
        m.begin(t0 + Duration::from_millis(300));
        m.finish(t0 + Duration::from_millis(310), true);
        assert_eq!(
            m.next_deadline(),
            Some(t0 + 5 * S),
            "due at 0 + interval, not 0.3 + interval"
        );
    }

    #[test]
    fn zero_attempts_behave_as_one() {
        let t0 = Instant::now();
        let mut m = CheckMachine::new(timers(0, 1, 1), t0, true);
        m.begin(t0);
        m.finish(t0, true);
        let due = m.next_deadline().unwrap();
        m.begin(due);
        let step = m.finish(due, false);
        assert!(step.check_ended && !step.healthy);
    }

    proptest::proptest! {
        /// Whatever the results, an attempt is always due after one ends, never before it
        /// ended, and a healthy verdict only follows `rise` passed checks (after the first).
        #[test]
        fn the_schedule_never_stalls_and_never_runs_early(
            results in proptest::collection::vec(proptest::bool::ANY, 1..80),
            attempts in 1u32..4,
            rise in 1u32..4,
            fall in 1u32..4,
        ) {
            let t0 = Instant::now();
            let mut m = CheckMachine::new(timers(attempts, rise, fall), t0, true);
            let mut now = t0;
            for passed in results {
                let due = m.next_deadline().expect("due");
                proptest::prop_assert!(due >= now);
                now = due;
                m.begin(now);
                now += Duration::from_millis(300);
                m.finish(now, passed);
            }
        }
    }
}
