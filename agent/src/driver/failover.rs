//! The stages of one failover as the new MASTER saw them, on its own monotonic clock: the old
//! MASTER's last advert heard in BACKUP, the Master_Down_Timer's expiry, the VIPs in place, the
//! first announcement and the first advert on the wire. Pure bookkeeping: the unit task stamps
//! each stage as it performs it and logs the breakdown once the first advert is sent.

use std::time::{Duration, Instant};

/// One BACKUP to MASTER transition after hearing a MASTER, stamped stage by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverTrace {
    /// When the old MASTER's last advert reached the unit task.
    pub heard: Instant,
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
    /// How much later than Master_Down_Interval after the last advert the transition ran
    /// (the timer's lateness and the wake-up of the task).
    pub timer_late: Duration,
    /// From the transition to the VIPs in place (the rtnetlink requests).
    pub vip_add: Option<Duration>,
    /// From the VIPs in place to the first announcement sent.
    pub announce: Option<Duration>,
    /// From the last step before it to the first advert sent.
    pub advert: Duration,
}

impl FailoverTrace {
    /// A trace of a transition at `became_master` after the last advert `heard`.
    pub fn new(heard: Instant, became_master: Instant) -> Self {
        Self {
            heard,
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

    /// The breakdown once the first advert was sent at `sent`, against the instance's
    /// `master_down_interval`.
    pub fn stages(&self, sent: Instant, master_down_interval: Duration) -> FailoverStages {
        let since = |from: Instant, to: Instant| to.saturating_duration_since(from);
        let timer_late = since(self.heard + master_down_interval, self.became_master);
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

    #[test]
    fn each_stage_runs_from_the_end_of_the_one_before() {
        let heard = Instant::now();
        let mut trace = FailoverTrace::new(heard, heard + ms(3612));
        trace.vips_added(heard + ms(3614));
        trace.announced(heard + ms(3615));
        trace.announced(heard + ms(3900));
        let stages = trace.stages(heard + ms(3617), ms(3609));
        assert_eq!(
            stages,
            FailoverStages {
                total: ms(3617),
                timer_late: ms(3),
                vip_add: Some(ms(2)),
                announce: Some(ms(1)),
                advert: ms(2),
            }
        );
    }

    #[test]
    fn a_failover_without_vips_or_announcement_times_the_advert_from_the_transition() {
        let heard = Instant::now();
        let trace = FailoverTrace::new(heard, heard + ms(3600));
        let stages = trace.stages(heard + ms(3605), ms(3609));
        assert_eq!(stages.timer_late, Duration::ZERO);
        assert_eq!((stages.vip_add, stages.announce), (None, None));
        assert_eq!(stages.advert, ms(5));
    }
}
