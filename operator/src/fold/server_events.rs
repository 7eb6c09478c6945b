//! The Events a VirtualServer's status change calls for, found by comparing the previous
//! status with the new one: a real server falling or rising on the MASTER, and the quorum
//! lost or regained (keepalived runs its `quorum_down`/`quorum_up` scripts there; here they
//! are Events). Real-server Events are rate-limited per VirtualServer by an [`EventBudget`]:
//! a backend tier flapping wholesale yields a handful of Events and one summary, not
//! thousands. Pure: time is an argument.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_vrrp_crds::{RealServerStatus, VirtualServerStatus, condition};

use super::events::{EventReason, FoldEvent};
use super::virtual_server::ServerConditionReason;

fn quorum_reported(status: &VirtualServerStatus) -> Option<&Condition> {
    status.conditions.iter().find(|c| {
        c.type_ == condition::QUORUM
            && (c.reason == ServerConditionReason::QuorumReached.as_str()
                || c.reason == ServerConditionReason::QuorumLost.as_str())
    })
}

fn endpoint(rs: &RealServerStatus) -> String {
    if rs.address.contains(':') {
        format!("[{}]:{}", rs.address, rs.port)
    } else {
        format!("{}:{}", rs.address, rs.port)
    }
}

/// The Events for the change from `previous` to `new` of VirtualServer `name`. Only changes
/// seen in both (a MASTER reporting before and after) count: a new MASTER's first report is
/// no flood of falls and rises.
pub fn diff(
    name: &str,
    previous: Option<&VirtualServerStatus>,
    new: &VirtualServerStatus,
) -> Vec<FoldEvent> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let (Some(before), Some(after)) = (quorum_reported(previous), quorum_reported(new))
        && before.status != after.status
    {
        let (reason, verb) = if after.status == "True" {
            (EventReason::QuorumRegained, "regained its quorum")
        } else {
            (EventReason::QuorumLost, "lost its quorum")
        };
        out.push(FoldEvent {
            reason,
            note: format!("VirtualServer {name} {verb}: {}", after.message),
        });
    }
    for rs in &new.real_servers {
        let Some(old) = previous
            .real_servers
            .iter()
            .find(|o| o.address == rs.address && o.port == rs.port)
        else {
            continue;
        };
        if old.healthy == rs.healthy {
            continue;
        }
        let (reason, what) = if rs.healthy {
            (EventReason::RealServerUp, "passes its health check again")
        } else {
            (EventReason::RealServerDown, "fails its health check")
        };
        let seen = rs
            .message
            .as_deref()
            .map_or_else(String::new, |m| format!(" ({m})"));
        out.push(FoldEvent {
            reason,
            note: format!("real server {} {what}{seen}", endpoint(rs)),
        });
    }
    out
}

/// How many real-server Events a VirtualServer may publish at once.
pub const EVENT_BURST: u32 = 10;
/// How long one real-server Event takes to be allowed again.
pub const EVENT_REFILL: SignedDuration = SignedDuration::from_secs(30);

/// A token bucket for one VirtualServer's real-server Events ([`EVENT_BURST`] at once, one
/// more every [`EVENT_REFILL`]). Events beyond it become one `RealServersChanged` summary,
/// at most one per refill period; quorum Events always pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBudget {
    tokens: u32,
    refilled: Timestamp,
    last_summary: Option<Timestamp>,
}

impl EventBudget {
    /// A full budget at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            tokens: EVENT_BURST,
            refilled: now,
            last_summary: None,
        }
    }

    fn refill(&mut self, now: Timestamp) {
        let elapsed = now.duration_since(self.refilled);
        if elapsed < EVENT_REFILL {
            return;
        }
        let periods = elapsed.as_secs() / EVENT_REFILL.as_secs().max(1);
        let added = u32::try_from(periods).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(added).min(EVENT_BURST);
        self.refilled = if self.tokens == EVENT_BURST {
            now
        } else {
            self.refilled + EVENT_REFILL * i32::try_from(added).unwrap_or(i32::MAX)
        };
    }

    /// The Events of `events` to publish at `now`.
    pub fn admit(&mut self, now: Timestamp, events: Vec<FoldEvent>) -> Vec<FoldEvent> {
        self.refill(now);
        let mut out = Vec::with_capacity(events.len());
        let (mut fell, mut rose) = (0u32, 0u32);
        for event in events {
            let per_server = matches!(
                event.reason,
                EventReason::RealServerDown | EventReason::RealServerUp
            );
            if !per_server {
                out.push(event);
            } else if self.tokens > 0 {
                self.tokens -= 1;
                out.push(event);
            } else if event.reason == EventReason::RealServerDown {
                fell += 1;
            } else {
                rose += 1;
            }
        }
        let summary_due = self
            .last_summary
            .is_none_or(|at| now.duration_since(at) >= EVENT_REFILL);
        if fell + rose > 0 && summary_due {
            self.last_summary = Some(now);
            out.push(FoldEvent {
                reason: EventReason::RealServersChanged,
                note: format!(
                    "{fell} more real server(s) fell and {rose} rose than Events are published \
                     for; see the VirtualServer's status"
                ),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn rs(last: u8, healthy: bool) -> RealServerStatus {
        RealServerStatus {
            address: format!("10.1.0.{last}"),
            port: 80,
            programmed: healthy,
            draining: false,
            weight: u32::from(healthy),
            healthy,
            last_transition_time: None,
            message: (!healthy).then(|| "status 503 (expected 200)".to_owned()),
            last_result: None,
        }
    }

    fn status(servers: Vec<RealServerStatus>, quorum: Option<bool>) -> VirtualServerStatus {
        let conditions = quorum
            .map(|up| Condition {
                type_: condition::QUORUM.to_owned(),
                status: if up { "True" } else { "False" }.to_owned(),
                reason: if up {
                    ServerConditionReason::QuorumReached
                } else {
                    ServerConditionReason::QuorumLost
                }
                .as_str()
                .to_owned(),
                message: "healthy weight 0 is below the quorum of 1".to_owned(),
                last_transition_time: Time(at(0)),
                observed_generation: None,
            })
            .into_iter()
            .collect();
        VirtualServerStatus {
            real_servers: servers,
            conditions,
            ..VirtualServerStatus::default()
        }
    }

    fn reasons(events: &[FoldEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn a_fall_a_rise_and_the_quorum_each_give_an_event_and_a_first_report_gives_none() {
        let before = status(vec![rs(1, true), rs(2, false)], Some(true));
        let after = status(vec![rs(1, false), rs(2, true), rs(3, false)], Some(false));
        let events = diff("web-80", Some(&before), &after);
        assert_eq!(
            reasons(&events),
            ["QuorumLost", "RealServerDown", "RealServerUp"]
        );
        assert_eq!(
            events[1].note,
            "real server 10.1.0.1:80 fails its health check (status 503 (expected 200))"
        );
        assert_eq!(
            events[2].note,
            "real server 10.1.0.2:80 passes its health check again"
        );
        assert!(
            events[0]
                .note
                .starts_with("VirtualServer web-80 lost its quorum: ")
        );
        let back = diff("web-80", Some(&after), &status(vec![], Some(true)));
        assert_eq!(reasons(&back), ["QuorumRegained"]);
        assert!(diff("web-80", None, &after).is_empty());
        let unreported = status(vec![rs(1, false)], None);
        assert!(
            diff("web-80", Some(&unreported), &after)
                .iter()
                .all(|e| e.reason != EventReason::QuorumLost)
        );
    }

    #[test]
    fn the_budget_lets_a_burst_through_then_sums_up_and_refills() {
        let mut budget = EventBudget::new(at(0));
        let falls = |n: u8| -> Vec<FoldEvent> {
            (0..n)
                .map(|i| FoldEvent {
                    reason: if i % 2 == 0 {
                        EventReason::RealServerDown
                    } else {
                        EventReason::RealServerUp
                    },
                    note: format!("real server {i}"),
                })
                .collect()
        };
        let first = budget.admit(at(0), falls(14));
        assert_eq!(first.len(), 11, "10 Events and one summary");
        assert_eq!(first[10].reason, EventReason::RealServersChanged);
        assert_eq!(
            first[10].note,
            "2 more real server(s) fell and 2 rose than Events are published for; see the VirtualServer's status"
        );
        let quorum = FoldEvent {
            reason: EventReason::QuorumLost,
            note: "lost".into(),
        };
        let mut more = falls(3);
        more.push(quorum);
        let second = budget.admit(at(10), more);
        assert_eq!(
            reasons(&second),
            ["QuorumLost"],
            "no tokens, and one summary per period"
        );
        let later = budget.admit(at(65), falls(3));
        assert_eq!(
            reasons(&later),
            ["RealServerDown", "RealServerUp", "RealServersChanged"],
            "two refills after 60 s"
        );
        let full = budget.admit(at(3600), falls(10));
        assert_eq!(full.len(), 10, "a full bucket again after a quiet hour");
    }
}
