//! Failover measurement from what the network saw: the last advert of the old MASTER to the first
//! answer for the VIP from another MAC. Pure: it reads recordings made by the probes.

use std::time::{Duration, Instant};

use super::neighbor::NeighborReply;
use super::sniffer::Advert;
use crate::Mac;

/// One measured failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    pub old_mac: Mac,
    pub new_mac: Mac,
    /// The old MASTER's last advert for the VRID (a priority-0 goodbye counts).
    pub last_old_advert: Instant,
    /// The first answer for the VIP from a MAC other than the old MASTER's.
    pub first_new_reply: Instant,
}

impl Failover {
    /// How long the VIP had no new owner answering.
    pub fn duration(&self) -> Duration {
        self.first_new_reply
            .saturating_duration_since(self.last_old_advert)
    }
}

/// Why a failover could not be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureError {
    /// No answer for the VIP from another MAC after the disruption.
    NoNewOwner,
    /// The old MASTER sent no advert for the VRID before the new owner answered.
    NoOldAdvert,
}

impl MeasureError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoNewOwner => "no answer for the VIP from another MAC",
            Self::NoOldAdvert => "no advert from the old MASTER before the new owner answered",
        }
    }
}

impl std::fmt::Display for MeasureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Measures the failover of `vrid` away from `old_mac`, disrupted at `since`: the first reply
/// from another MAC at or after `since`, and the old MASTER's last advert before that reply.
pub fn measure_failover(
    adverts: &[Advert],
    replies: &[NeighborReply],
    vrid: u8,
    old_mac: Mac,
    since: Instant,
) -> Result<Failover, MeasureError> {
    let first = replies
        .iter()
        .filter(|r| r.at >= since && r.mac != old_mac)
        .min_by_key(|r| r.at)
        .ok_or(MeasureError::NoNewOwner)?;
    let last = adverts
        .iter()
        .filter(|a| a.wire.vrid == vrid && a.wire.source_mac == old_mac && a.at <= first.at)
        .map(|a| a.at)
        .max()
        .ok_or(MeasureError::NoOldAdvert)?;
    Ok(Failover {
        old_mac,
        new_mac: first.mac,
        last_old_advert: last,
        first_new_reply: first.at,
    })
}

#[cfg(test)]
mod tests {
    use super::super::frame::WireAdvert;
    use super::*;

    const OLD: Mac = Mac([2, 0x77, 0, 0, 0, 1]);
    const NEW: Mac = Mac([2, 0x77, 0, 0, 0, 2]);

    fn advert(at: Instant, mac: Mac, vrid: u8, priority: u8) -> Advert {
        Advert {
            at,
            node: usize::from(mac.0[5]),
            wire: WireAdvert {
                source_mac: mac,
                source: "192.168.77.11".parse().unwrap(),
                destination: "224.0.0.18".parse().unwrap(),
                ttl: 255,
                version: 3,
                vrid,
                priority,
                interval: Duration::from_secs(1),
            },
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn failover_runs_from_the_old_masters_last_advert_to_the_first_answer_from_another_mac() {
        let t0 = Instant::now();
        let adverts = vec![
            advert(ms(t0, 0), OLD, 51, 150),
            advert(ms(t0, 1000), OLD, 51, 150),
            advert(ms(t0, 1500), OLD, 52, 150), // another VRID: ignored
            advert(ms(t0, 4700), NEW, 51, 100),
        ];
        let replies = vec![
            NeighborReply {
                at: ms(t0, 900),
                mac: OLD,
            },
            NeighborReply {
                at: ms(t0, 1200),
                mac: OLD,
            },
            NeighborReply {
                at: ms(t0, 4610),
                mac: NEW,
            },
            NeighborReply {
                at: ms(t0, 4611),
                mac: NEW,
            },
        ];
        let failover = measure_failover(&adverts, &replies, 51, OLD, ms(t0, 1300)).unwrap();
        assert_eq!(failover.new_mac, NEW);
        assert_eq!(failover.duration(), Duration::from_millis(3610));
    }

    #[test]
    fn answers_from_another_mac_before_the_disruption_do_not_count() {
        let t0 = Instant::now();
        let adverts = vec![advert(ms(t0, 100), OLD, 51, 0)];
        let replies = vec![
            NeighborReply {
                at: ms(t0, 50),
                mac: NEW,
            },
            NeighborReply {
                at: ms(t0, 710),
                mac: NEW,
            },
        ];
        let failover = measure_failover(&adverts, &replies, 51, OLD, ms(t0, 90)).unwrap();
        assert_eq!(failover.duration(), Duration::from_millis(610));
    }

    #[test]
    fn a_failover_without_a_new_owner_or_old_advert_is_an_error() {
        let t0 = Instant::now();
        let replies = vec![NeighborReply {
            at: ms(t0, 10),
            mac: OLD,
        }];
        assert_eq!(
            measure_failover(&[], &replies, 51, OLD, t0),
            Err(MeasureError::NoNewOwner)
        );
        let replies = vec![NeighborReply {
            at: ms(t0, 10),
            mac: NEW,
        }];
        assert_eq!(
            measure_failover(&[], &replies, 51, OLD, t0),
            Err(MeasureError::NoOldAdvert)
        );
    }
}
