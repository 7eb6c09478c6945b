//! The stages of one failover as the new MASTER saw them, on its own monotonic clock: the old
//! MASTER's last advert heard in BACKUP, the Master_Down_Timer's expiry, the VIPs in place, the
//! first announcement and the first advert on the wire. Pure bookkeeping: the unit task stamps
//! each stage as it performs it and logs the breakdown once the first advert is sent.

use std::time::{Duration, Instant};

/// The old MASTER's last advert as a BACKUP heard it, and the Master_Down_Timer it left
/// running: Master_Down_Interval after it, Skew_Time after a priority-0 advert, or the deadline
/// it did not reset (a lower priority discarded to preempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastHeard {
    /// When the advert arrived (its kernel receive stamp).
    pub at: Instant,
    /// When the Master_Down_Timer was due once the machine had heard it; `None` if none ran.
    pub timer_due: Option<Instant>,
}

/// One BACKUP to MASTER transition after hearing a MASTER, stamped stage by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverTrace {
    /// When the old MASTER's last advert arrived.
    pub heard: Instant,
    /// When the timer that made this node MASTER was due; `None` when the transition was not
    /// that timer's (a sync group moved the member).
    pub timer_due: Option<Instant>,
    /// When the transition to MASTER was performed (the Master_Down_Timer served).
    pub became_master: Instant,
    /// When the last VIP was in place.
    pub vips_added: Option<Instant>,
    /// When the first gratuitous ARP / unsolicited NA left.
    pub first_announcement: Option<Instant>,
}

/// The share of each stage of one failover, from the old MASTER's last advert heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverStages {
    /// Everything: from the last advert heard to this node's first advert sent.
    pub total: Duration,
    /// From the last advert to when the timer that made this node MASTER was due:
    /// Master_Down_Interval after silence, Skew_Time after a priority-0 advert.
    pub timer: Option<Duration>,
    /// How much later than its timer was due the transition ran (the timer's lateness and the
    /// wake-up of the task); `None` when no timer of the instance's own made it MASTER.
    pub timer_late: Option<Duration>,
    /// From the transition to the VIPs in place (the rtnetlink requests).
    pub vip_add: Option<Duration>,
    /// From the VIPs in place to the first announcement sent.
    pub announce: Option<Duration>,
    /// From the last step before it to the first advert sent.
    pub advert: Duration,
}

impl FailoverTrace {
    /// A trace of a transition at `became_master` after the last advert `heard`, by its
    /// Master_Down_Timer when `by_timer` (otherwise its due time says nothing of it).
    pub fn new(heard: LastHeard, became_master: Instant, by_timer: bool) -> Self {
        Self {
            heard: heard.at,
            timer_due: heard.timer_due.filter(|_| by_timer),
            became_master,
            vips_added: None,
            first_announcement: None,
        }
    }

    /// Stamps the VIPs in place at `at` (the first time only).
    pub fn vips_added(&mut self, at: Instant) {
        self.vips_added.get_or_insert(at);
    }

    /// Stamps the first announcement at `at` (the first time only).
    pub fn announced(&mut self, at: Instant) {
        self.first_announcement.get_or_insert(at);
    }

    /// The breakdown once the first advert was sent at `sent`.
    pub fn stages(&self, sent: Instant) -> FailoverStages {
        let since = |from: Instant, to: Instant| to.saturating_duration_since(from);
        let timer_late = self.timer_due.map(|due| since(due, self.became_master));
        let vip_add = self.vips_added.map(|at| since(self.became_master, at));
        let announce = self
            .first_announcement
            .map(|at| since(self.vips_added.unwrap_or(self.became_master), at));
        let before_advert = self
            .first_announcement
            .or(self.vips_added)
            .unwrap_or(self.became_master);
        FailoverStages {
            total: since(self.heard, sent),
            timer: self.timer_due.map(|due| since(self.heard, due)),
            timer_late,
            vip_add,
            announce,
            advert: since(before_advert, sent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    fn heard(at: Instant, due_after: Option<u64>) -> LastHeard {
        LastHeard {
            at,
            timer_due: due_after.map(|after| at + ms(after)),
        }
    }

    #[test]
    fn each_stage_runs_from_the_end_of_the_one_before() {
        let at = Instant::now();
        let mut trace = FailoverTrace::new(heard(at, Some(3609)), at + ms(3612), true);
        trace.vips_added(at + ms(3614));
        trace.announced(at + ms(3615));
        trace.announced(at + ms(3900));
        let stages = trace.stages(at + ms(3617));
        assert_eq!(
            stages,
            FailoverStages {
                total: ms(3617),
                timer: Some(ms(3609)),
                timer_late: Some(ms(3)),
                vip_add: Some(ms(2)),
                announce: Some(ms(1)),
                advert: ms(2),
            }
        );
    }

    #[test]
    fn a_failover_without_vips_or_announcement_times_the_advert_from_the_transition() {
        let at = Instant::now();
        let trace = FailoverTrace::new(heard(at, Some(3600)), at + ms(3600), true);
        let stages = trace.stages(at + ms(3605));
        assert_eq!(stages.timer_late, Some(Duration::ZERO));
        assert_eq!((stages.vip_add, stages.announce), (None, None));
        assert_eq!(stages.advert, ms(5));
    }

    #[test]
    fn a_handover_is_late_against_skew_time_not_master_down_interval() {
        // A priority-0 advert left Skew_Time (here 1 ms at priority 254 and 100 ms adverts)
        // on the timer: 4 ms late, where Master_Down_Interval (301 ms) would say early.
        let at = Instant::now();
        let trace = FailoverTrace::new(heard(at, Some(1)), at + ms(5), true);
        let stages = trace.stages(at + ms(6));
        assert_eq!(
            (stages.timer, stages.timer_late),
            (Some(ms(1)), Some(ms(4)))
        );
    }

    #[test]
    fn a_transition_the_timer_did_not_make_claims_no_lateness() {
        let at = Instant::now();
        let trace = FailoverTrace::new(heard(at, Some(300)), at + ms(120), false);
        let stages = trace.stages(at + ms(121));
        assert_eq!((stages.timer, stages.timer_late), (None, None));
        let trace = FailoverTrace::new(heard(at, None), at + ms(120), true);
        let stages = trace.stages(at + ms(121));
        assert_eq!((stages.timer, stages.timer_late), (None, None));
    }
}
