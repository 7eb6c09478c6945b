//! Split brain seen by the agent itself, without the API: while a member is MASTER it probes
//! its VIPs on the wire ([`crate::net::conflict`]) and any other hardware address claiming
//! one of them means another holder. [`ConflictBook`] is the pure decision (when to probe,
//! when a claim is a conflict, when it is over); the agent's ticker thread
//! ([`super::ticker`], through [`super::probes`]) runs every MASTER member's book off the tokio
//! runtime beside the routine adverts and reports each change through the member's callback;
//! [`ConflictProbe`] is a member's hold on it.
//!
//! The rules, with `A` the member's advert interval:
//! - Probes: the first `A/2` after becoming MASTER (our first advert has by then reached an
//!   old MASTER handing over or being preempted, which drops the VIP on hearing it), then
//!   every `clamp(3A, 100 ms, 10 s)`; every `A/2` while a claim awaits confirmation or a
//!   conflict lasts (so that its end is seen within a few advert intervals too).
//! - Early probing: a steady probe may go early, at a wake-up of the ticker that happens anyway
//!   (an advert deadline, an answer), when its deadline would otherwise take a wake-up of its
//!   own: it comes before the ticker's next planned wake-up
//!   ([`ConflictBook::probe_now`]). It may so go up to half the steady interval before its
//!   deadline, or one advert interval when that is longer (at most the steady interval): the
//!   window always holds one of the member's own advert deadlines, and a steady MASTER's probes
//!   go at the last of its advert wake-ups before their deadline, never waking the thread on
//!   their own. A steady round so lasts between half and the whole steady interval (the whole
//!   one when its deadlines fall on advert deadlines, as they do after the first); the next
//!   round is counted from when the probe went. The rules count rounds, not time, so a round
//!   cut short changes no verdict; the first probe and the `A/2` rounds of a suspect or a
//!   conflict never go early.
//! - A claim counts only for one of the member's VIPs and from a hardware address that is not
//!   this node's (the kernel filter already keeps our own outgoing frames away).
//! - A conflict is declared when claims from other holders are seen in two probe rounds (a
//!   round runs from one probe to the next): one stray answer racing a handover is not one.
//! - It clears after [`CLEAR_AFTER_SILENT_PROBES`] probes in a row go unanswered, or at once
//!   when the member leaves MASTER (its [`Probing`] is dropped).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube_vrrp_crds::HolderConflict;

use super::config::InstanceSpec;
use super::endpoint::Endpoint;
use super::probes::Probing;
use super::ticker::Ticker;
use crate::net::announce::Announcer;
use crate::net::conflict::frame::Claim;
use crate::report::Metrics;
use crate::vrrp::Family;
use crate::vrrp::instance::State;

/// Unanswered probes in a row after which a conflict is over.
pub const CLEAR_AFTER_SILENT_PROBES: u32 = 3;
/// Bounds of the steady probe interval (3 × the advert interval).
pub const STEADY_PROBE_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));

/// What a claim or a probe round changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Another holder, newly seen.
    Detected(HolderConflict),
    /// Still a conflict, now with another holder's MAC.
    OtherHolder(HolderConflict),
    /// No other holder answers any more.
    Cleared,
}

#[derive(Debug, Clone, Copy)]
struct Suspect {
    round: u64,
    since: Timestamp,
}

/// The pure probe schedule and conflict decision of one MASTER member.
#[derive(Debug)]
pub struct ConflictBook {
    own_macs: Vec<[u8; 6]>,
    vips: Vec<IpAddr>,
    quick: Duration,
    steady: Duration,
    /// How long before its deadline a steady probe may go at a wake-up that happens anyway.
    early: Duration,
    next_probe: Instant,
    /// From when the next probe may go at such a wake-up (`next_probe` unless the round is
    /// steady).
    opens: Instant,
    /// Probes sent so far; the current round is the one after the last probe.
    round: u64,
    claimed_this_round: bool,
    silent: u32,
    suspect: Option<Suspect>,
    conflict: Option<HolderConflict>,
}

impl ConflictBook {
    /// A member that became MASTER at `now`, holding `vips`, whose own hardware addresses are
    /// `own_macs`, advertising every `advert_interval`.
    pub fn new(
        now: Instant,
        vips: Vec<IpAddr>,
        own_macs: Vec<[u8; 6]>,
        advert_interval: Duration,
    ) -> Self {
        let quick = advert_interval / 2;
        let (low, high) = STEADY_PROBE_BOUNDS;
        let steady = (advert_interval * 3).clamp(low, high);
        Self {
            own_macs,
            vips,
            quick,
            steady,
            early: (steady / 2).max(advert_interval.min(steady)),
            next_probe: now + quick,
            opens: now + quick,
            round: 0,
            claimed_this_round: false,
            silent: 0,
            suspect: None,
            conflict: None,
        }
    }

    /// When the next probe round is due: the latest it may go (wake up for it).
    pub fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// The earliest the next probe may go, at a wake-up that happens anyway (see the module's
    /// early probing): before [`Self::next_probe`] in a steady round, equal to it otherwise.
    pub fn probe_opens(&self) -> Instant {
        self.opens
    }

    /// Whether to probe at a wake-up at `now`, the ticker's next planned wake-up (this
    /// member's deadline aside) being `next_wake` (`None`: none): when due, or when open and
    /// its deadline comes before `next_wake`, so that it would take a wake-up of its own.
    pub fn probe_now(&self, now: Instant, next_wake: Option<Instant>) -> bool {
        now >= self.next_probe
            || (now >= self.opens && next_wake.is_none_or(|next| self.next_probe < next))
    }

    /// The VIPs to probe.
    pub fn vips(&self) -> &[IpAddr] {
        &self.vips
    }

    /// The conflict as it stands.
    pub fn conflict(&self) -> Option<&HolderConflict> {
        self.conflict.as_ref()
    }

    /// A claim heard at `now` (`wall` on the wall clock).
    pub fn on_claim(&mut self, now: Instant, wall: Timestamp, claim: Claim) -> Option<Change> {
        if !self.vips.contains(&claim.address) || self.own_macs.contains(&claim.mac) {
            return None;
        }
        self.claimed_this_round = true;
        self.silent = 0;
        let other_mac = format_mac(claim.mac);
        if let Some(conflict) = &mut self.conflict {
            if conflict.other_mac == other_mac {
                return None;
            }
            conflict.other_mac = other_mac;
            conflict.address = claim.address.to_string();
            return Some(Change::OtherHolder(conflict.clone()));
        }
        match self.suspect {
            Some(suspect) if suspect.round < self.round => {
                let conflict = HolderConflict {
                    address: claim.address.to_string(),
                    other_mac,
                    since: MicroTime(suspect.since),
                };
                self.suspect = None;
                self.conflict = Some(conflict.clone());
                Some(Change::Detected(conflict))
            }
            Some(_) => None,
            None => {
                self.suspect = Some(Suspect {
                    round: self.round,
                    since: wall,
                });
                self.next_probe = self.next_probe.min(now + self.quick);
                self.opens = self.next_probe;
                None
            }
        }
    }

    /// Ends the current round at `now` (call when [`Self::probe_now`], then send one probe per
    /// VIP).
    pub fn on_probe(&mut self, now: Instant) -> Option<Change> {
        let mut change = None;
        if std::mem::take(&mut self.claimed_this_round) {
            self.silent = 0;
        } else {
            self.silent = self.silent.saturating_add(1);
            self.suspect = None;
            if self.conflict.is_some() && self.silent >= CLEAR_AFTER_SILENT_PROBES {
                self.conflict = None;
                change = Some(Change::Cleared);
            }
        }
        self.round += 1;
        if self.suspect.is_some() || self.conflict.is_some() {
            self.next_probe = now + self.quick;
            self.opens = self.next_probe;
        } else {
            self.next_probe = now + self.steady;
            self.opens = now + self.steady.saturating_sub(self.early);
        }
        change
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}

/// What the ticker needs to know about a member to probe for it.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub instance: String,
    pub ifindex: u32,
    pub family: Family,
    /// The interface's hardware address (probes are sent from it, answers with it are ours).
    pub mac: [u8; 6],
    pub vips: Vec<IpAddr>,
    pub advert_interval: Duration,
}

/// Why a MASTER with a virtual MAC does not probe (said in its status message).
pub const VIRTUAL_MAC_NOTE: &str = "split brain is not probed on the wire: with a virtual MAC every holder answers with the same MAC, so another holder cannot be told apart (the API-side SplitBrain condition still applies)";
/// Why a MASTER on an interface without a hardware address does not probe.
pub const NO_MAC_NOTE: &str =
    "split brain is not probed on the wire: the interface has no hardware address";
/// Why a MASTER whose probe socket could not be opened (or the ticker thread started) does not
/// probe.
pub const NO_SOCKET_NOTE: &str = "split brain is not probed on the wire: the probe socket could not be opened or the ticker thread started (see the agent's log)";

/// A member's probing as its unit holds it: its place in the ticker's probes while MASTER, what
/// it last found, or why there is none.
#[derive(Debug, Default)]
pub struct ConflictProbe {
    probing: Option<Probing>,
    conflict: Option<HolderConflict>,
    note: Option<&'static str>,
}

impl ConflictProbe {
    /// Follows the member's new state `to`: probing (on `ticker`) starts on becoming MASTER
    /// and stops (its conflict cleared) on leaving it. `report` feeds what the probes find back
    /// to the unit.
    pub fn follow(
        &mut self,
        to: State,
        spec: &InstanceSpec,
        endpoint: &Endpoint,
        metrics: &Metrics,
        ticker: &Ticker,
        report: impl Fn(Option<HolderConflict>) + Send + 'static,
    ) {
        if to != State::Master {
            self.probing = None;
            self.note = None;
            if self.conflict.take().is_some() {
                metrics.holder_conflict(&spec.name, false);
            }
            return;
        }
        if self.probing.is_some() || self.note.is_some() {
            return;
        }
        if spec.use_virtual_mac {
            self.note = Some(VIRTUAL_MAC_NOTE);
            return;
        }
        let Some(mac) = endpoint.announcer.as_ref().map(Announcer::mac) else {
            self.note = Some(NO_MAC_NOTE);
            return;
        };
        let target = ProbeTarget {
            instance: spec.name.clone(),
            ifindex: endpoint.ifindex,
            family: endpoint.family,
            mac,
            vips: spec.vip_addresses(),
            advert_interval: spec.advert_interval,
        };
        match ticker.probe(&target, metrics.clone(), Box::new(report)) {
            Ok(probing) => self.probing = Some(probing),
            Err(error) => {
                tracing::warn!(instance = %spec.name, %error, "cannot probe the VIPs for another holder: split brain is seen only through the API");
                self.note = Some(NO_SOCKET_NOTE);
            }
        }
    }

    /// What the probes found (ignored once they are stopped: a late message).
    pub fn found(&mut self, conflict: Option<HolderConflict>) {
        if self.probing.is_some() {
            self.conflict = conflict;
        }
    }

    /// Another holder, while one answers.
    pub fn conflict(&self) -> Option<&HolderConflict> {
        self.conflict.as_ref()
    }

    /// Why this MASTER does not probe, when it does not.
    pub fn note(&self) -> Option<&'static str> {
        self.note
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const OTHER: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const THIRD: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const ADVERT: Duration = Duration::from_millis(100);

    fn vip() -> IpAddr {
        "192.0.2.50".parse().unwrap()
    }

    fn wall(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    /// Steps of a scenario: time in ms since MASTER, and what happens then.
    enum Step {
        Probe,
        Claim(IpAddr, [u8; 6]),
    }

    /// Runs `steps` on a fresh book (MASTER at 0 ms) and returns the changes, in order.
    fn run(steps: &[(u64, Step)]) -> Vec<(u64, Change)> {
        let start = Instant::now();
        let mut book = ConflictBook::new(start, vec![vip()], vec![OWN], ADVERT);
        let mut changes = Vec::new();
        for (ms, step) in steps {
            let now = start + Duration::from_millis(*ms);
            let change = match step {
                Step::Probe => book.on_probe(now),
                Step::Claim(address, mac) => book.on_claim(
                    now,
                    wall(i64::try_from(*ms).unwrap()),
                    Claim {
                        address: *address,
                        mac: *mac,
                    },
                ),
            };
            changes.extend(change.map(|change| (*ms, change)));
        }
        changes
    }

    /// (what, steps, expected changes)
    type Case = (&'static str, Vec<(u64, Step)>, Vec<(u64, Change)>);

    fn detected(mac: [u8; 6], since_ms: i64) -> Change {
        Change::Detected(HolderConflict {
            address: vip().to_string(),
            other_mac: format_mac(mac),
            since: MicroTime(wall(since_ms)),
        })
    }

    #[test]
    fn claims_become_a_conflict_only_when_seen_in_two_rounds_from_another_mac() {
        use Step::{Claim as C, Probe as P};
        let other_vip: IpAddr = "192.0.2.99".parse().unwrap();
        let cases: Vec<Case> = vec![
            (
                "answers to two probes: detected, dated from the first",
                vec![
                    (50, P),
                    (51, C(vip(), OTHER)),
                    (100, P),
                    (101, C(vip(), OTHER)),
                ],
                vec![(101, detected(OTHER, 51))],
            ),
            (
                "a gratuitous ARP, then an answer to the next probe",
                vec![(10, C(vip(), OTHER)), (60, P), (61, C(vip(), OTHER))],
                vec![(61, detected(OTHER, 10))],
            ),
            (
                "two claims in one round: not yet",
                vec![(50, P), (51, C(vip(), OTHER)), (52, C(vip(), OTHER))],
                vec![],
            ),
            (
                "one stray answer (a handover race), then silence: never",
                vec![
                    (50, P),
                    (51, C(vip(), OTHER)),
                    (100, P),
                    (400, P),
                    (401, C(vip(), OTHER)),
                ],
                vec![],
            ),
            (
                "our own MAC: never",
                vec![(50, P), (51, C(vip(), OWN)), (100, P), (101, C(vip(), OWN))],
                vec![],
            ),
            (
                "another address than our VIPs: never",
                vec![
                    (50, P),
                    (51, C(other_vip, OTHER)),
                    (100, P),
                    (101, C(other_vip, OTHER)),
                ],
                vec![],
            ),
            (
                "a third holder replaces the other: reported, not counted again",
                vec![
                    (50, P),
                    (51, C(vip(), OTHER)),
                    (100, P),
                    (101, C(vip(), OTHER)),
                    (400, P),
                    (401, C(vip(), THIRD)),
                ],
                vec![
                    (101, detected(OTHER, 51)),
                    (
                        401,
                        Change::OtherHolder(HolderConflict {
                            address: vip().to_string(),
                            other_mac: format_mac(THIRD),
                            since: MicroTime(wall(51)),
                        }),
                    ),
                ],
            ),
            (
                "cleared after three unanswered probes in a row, not before",
                vec![
                    (50, P),
                    (51, C(vip(), OTHER)),
                    (100, P),
                    (101, C(vip(), OTHER)),
                    (400, P),
                    (700, P),
                    (1000, P),
                    (1300, P),
                ],
                vec![(101, detected(OTHER, 51)), (1300, Change::Cleared)],
            ),
            (
                "an answer between silent probes starts the count again",
                vec![
                    (50, P),
                    (51, C(vip(), OTHER)),
                    (100, P),
                    (101, C(vip(), OTHER)),
                    (400, P),
                    (700, P),
                    (1000, P),
                    (1001, C(vip(), OTHER)),
                    (1300, P),
                    (1600, P),
                    (1900, P),
                    (2200, P),
                ],
                vec![(101, detected(OTHER, 51)), (2200, Change::Cleared)],
            ),
        ];
        for (name, steps, expected) in cases {
            assert_eq!(run(&steps), expected, "{name}");
        }
    }

    #[test]
    fn probes_start_half_an_advert_after_master_then_follow_the_steady_interval() {
        let start = Instant::now();
        let mut book = ConflictBook::new(start, vec![vip()], vec![OWN], ADVERT);
        assert_eq!(book.next_probe(), start + ADVERT / 2);
        book.on_probe(start + ADVERT / 2);
        assert_eq!(book.next_probe(), start + ADVERT / 2 + 3 * ADVERT);
        // A claim pulls the next probe in to half an advert, to confirm quickly.
        let claimed = start + ADVERT;
        book.on_claim(
            claimed,
            wall(100),
            Claim {
                address: vip(),
                mac: OTHER,
            },
        );
        assert_eq!(book.next_probe(), claimed + ADVERT / 2);
    }

    /// A fresh book (MASTER at `start`) and another holder's claim for its VIP.
    fn book_and_claim(start: Instant) -> (ConflictBook, Claim) {
        let book = ConflictBook::new(start, vec![vip()], vec![OWN], ADVERT);
        let claim = Claim {
            address: vip(),
            mac: OTHER,
        };
        (book, claim)
    }

    #[test]
    fn while_a_conflict_lasts_probes_go_every_half_advert_and_back_to_steady_when_it_clears() {
        let start = Instant::now();
        let (mut book, claim) = book_and_claim(start);
        let at = |ms| start + Duration::from_millis(ms);
        book.on_probe(at(50));
        book.on_claim(at(51), wall(51), claim);
        book.on_probe(at(100));
        assert!(matches!(
            book.on_claim(at(101), wall(101), claim),
            Some(Change::Detected(_))
        ));
        book.on_probe(at(150));
        assert_eq!(book.next_probe(), at(200));
        for ms in [200, 250] {
            assert_eq!(book.on_probe(at(ms)), None);
        }
        assert_eq!(book.on_probe(at(300)), Some(Change::Cleared));
        assert_eq!(book.next_probe(), at(300) + 3 * ADVERT);
    }

    #[test]
    fn the_steady_interval_is_three_adverts_within_bounds() {
        let start = Instant::now();
        for (advert, steady) in [
            (Duration::from_millis(10), Duration::from_millis(100)),
            (Duration::from_secs(1), Duration::from_secs(3)),
            (Duration::from_secs(40), Duration::from_secs(10)),
        ] {
            let mut book = ConflictBook::new(start, vec![vip()], vec![OWN], advert);
            book.on_probe(start);
            assert_eq!(book.next_probe(), start + steady, "advert {advert:?}");
        }
    }

    #[test]
    fn a_steady_probe_may_go_early_by_half_its_interval_or_an_advert_and_no_other_ever_does() {
        let start = Instant::now();
        for (advert, early) in [
            (Duration::from_millis(10), Duration::from_millis(50)),
            (Duration::from_secs(1), Duration::from_millis(1500)),
            (Duration::from_secs(5), Duration::from_secs(5)),
            (Duration::from_secs(8), Duration::from_secs(8)),
            (Duration::from_secs(40), Duration::from_secs(10)),
        ] {
            let mut book = ConflictBook::new(start, vec![vip()], vec![OWN], advert);
            assert_eq!(
                book.probe_opens(),
                book.next_probe(),
                "the first probe: on time"
            );
            assert!(!book.probe_now(start + advert / 4, None));
            assert!(book.probe_now(start + advert / 2, Some(start + advert)));
            book.on_probe(start);
            let due = book.next_probe();
            let opens = book.probe_opens();
            assert_eq!(due - opens, early, "advert {advert:?}");
            let before_opening = opens.checked_sub(Duration::from_millis(1)).unwrap();
            assert!(!book.probe_now(before_opening, None), "not open yet");
            assert!(
                book.probe_now(opens, Some(due + Duration::from_millis(1))),
                "open, and the next wake-up comes after the deadline"
            );
            assert!(
                !book.probe_now(opens, Some(due)),
                "open, but a wake-up comes at the deadline"
            );
            assert!(
                book.probe_now(opens, None),
                "open, no other wake-up planned"
            );
            assert!(book.probe_now(due, Some(due)), "due");
        }
        // A suspect round and a conflict's rounds go at half an advert, never early.
        let (mut book, claim) = book_and_claim(start);
        let at = |ms| start + Duration::from_millis(ms);
        book.on_probe(at(50));
        book.on_claim(at(60), wall(60), claim);
        assert_eq!(book.probe_opens(), at(110), "suspect");
        assert_eq!(book.next_probe(), at(110));
        assert!(
            !book.probe_now(at(109), None),
            "a suspect round never goes early"
        );
        book.on_probe(at(110));
        assert_eq!(book.probe_opens(), at(160), "suspect still");
        book.on_claim(at(111), wall(111), claim);
        book.on_probe(at(160));
        assert_eq!(
            (book.probe_opens(), book.next_probe()),
            (at(210), at(210)),
            "conflict"
        );
        assert!(
            !book.probe_now(at(209), None),
            "a conflict's round never goes early"
        );
    }

    #[test]
    fn macs_are_written_as_lower_case_colon_separated_hex() {
        assert_eq!(format_mac([0, 0x5e, 0xab, 1, 2, 0xff]), "00:5e:ab:01:02:ff");
    }
}
