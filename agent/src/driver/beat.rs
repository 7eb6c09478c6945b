//! A MASTER's routine adverts: the same encoded advert, once per advert interval, while
//! nothing changes. The agent's ticker thread ([`super::ticker`]) sends them at their deadlines
//! without waking the unit tasks: before a unit sleeps it hands its MASTER member's
//! Adver_Timer over ([`Beat::hand_over`]), and first thing when it wakes it takes it back
//! ([`Beat::take_back`]) and replays into its machine the adverts the ticker sent, so the
//! machine re-arms exactly as if it had sent them itself. Everything that can change an advert
//! (priority, interval, source, state, shutdown) reaches the unit through its wake-ups, so it
//! has taken the timer back before it changes anything. [`Schedule`] holds every member's
//! beat as the ticker runs it.
//!
//! Adverts due within a small window of one another go at the same wake-up (each at most a
//! 32nd of its interval early, see [`GATHER_DIVISOR`]), so members whose deadlines drifted a
//! few microseconds apart share the thread's wake-ups instead of each waking it.
//!
//! A send the kernel refuses (or would block) stops the beat and wakes the unit, whose own
//! path then sends (waiting for the socket), counts and logs as it always does. A MASTER's
//! node so wakes no task per advert.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use super::ticker::Ticker;
use crate::net::socket::VrrpSocket;

/// The encoded adverts of one member, each with its destination.
pub type Payloads = Arc<[(IpAddr, Vec<u8>)]>;

/// What the ticker needs to send one member's routine adverts.
pub struct Handover {
    pub socket: Arc<VrrpSocket>,
    pub source: IpAddr,
    pub payloads: Payloads,
    /// The Adver_Timer's deadline as the machine armed it.
    pub due: Instant,
    pub interval: Duration,
    /// The member's count of adverts sent.
    pub sent: Counter,
    /// Wakes the unit (called from the ticker's thread) when a send failed and the beat
    /// stopped.
    pub wake: Box<dyn Fn() + Send>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover")
            .field("source", &self.source)
            .field("due", &self.due)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// What the ticker did with a beat while it held it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TakenBack {
    /// The Adver_Timer's next deadline after the last advert the ticker sent; `None`: it sent
    /// none.
    pub next_due: Option<Instant>,
    /// A send failed: the beat stopped there (that advert is not sent).
    pub failed: bool,
}

/// Every member's beat as the ticker runs it.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Deadlines as (when, slot, generation); an entry whose generation is not its slot's any
    /// more is stale and skipped.
    queue: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Changes whenever `held` does (a hand-over, a take-back, a failed send, the beat's end),
    /// so a deadline queued with another generation is stale.
    generation: u64,
    held: Option<Held>,
    taken: TakenBack,
}

#[derive(Debug)]
struct Held {
    handover: Handover,
    due: Instant,
}

impl Ticker {
    /// A beat for one member, holding nothing.
    pub fn beat(&self) -> Beat {
        let mut work = self.lock();
        let schedule = &mut work.adverts;
        let slot = schedule.free.pop().unwrap_or_else(|| {
            schedule.slots.push(Slot::default());
            schedule.slots.len() - 1
        });
        Beat {
            ticker: self.clone(),
            slot,
        }
    }
}

/// One member's place in the ticker; dropping it stops its adverts.
#[derive(Debug)]
pub struct Beat {
    ticker: Ticker,
    slot: usize,
}

impl Beat {
    /// Hands the member's Adver_Timer over: from `handover.due` on, the ticker sends
    /// `handover.payloads` every `handover.interval` until [`Self::take_back`]. False when the
    /// ticker cannot run: the unit keeps its timer.
    pub fn hand_over(&self, handover: Handover) -> bool {
        if self.ticker.ensure_started().is_err() {
            return false;
        }
        let mut work = self.ticker.lock();
        let schedule = &mut work.adverts;
        let due = handover.due;
        let Some(slot) = schedule.slots.get_mut(self.slot) else {
            return false;
        };
        slot.generation += 1;
        slot.held = Some(Held { handover, due });
        slot.taken = TakenBack::default();
        let generation = slot.generation;
        let earliest = schedule
            .queue
            .peek()
            .is_none_or(|Reverse((first, ..))| due < *first);
        schedule.queue.push(Reverse((due, self.slot, generation)));
        schedule.drop_stale();
        drop(work);
        if earliest {
            self.ticker.wake();
        }
        true
    }

    /// Takes the Adver_Timer back (nothing is sent for this member until the next hand-over)
    /// and says what the ticker did with it.
    pub fn take_back(&self) -> TakenBack {
        let mut work = self.ticker.lock();
        let Some(slot) = work.adverts.slots.get_mut(self.slot) else {
            return TakenBack::default();
        };
        if slot.held.is_some() {
            slot.generation += 1;
            slot.held = None;
        }
        std::mem::take(&mut slot.taken)
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        let mut work = self.ticker.lock();
        let schedule = &mut work.adverts;
        if let Some(slot) = schedule.slots.get_mut(self.slot) {
            slot.generation += 1;
            slot.held = None;
            slot.taken = TakenBack::default();
            schedule.free.push(self.slot);
        }
    }
}

impl Schedule {
    /// Whether a deadline queued for `index` at `generation` still stands (its slot holds the
    /// beat that queued it).
    fn current(&self, index: usize, generation: u64) -> bool {
        self.slots
            .get(index)
            .is_some_and(|slot| slot.generation == generation)
    }

    /// Drops the stale deadlines once they outnumber the slots twice over, and the room they
    /// took: a start-up or a reconfiguration hands every member over several times, and a
    /// stale entry would otherwise wait for its time to come (255 members left 8,192 entries'
    /// room, 256 KiB, behind them).
    fn drop_stale(&mut self) {
        if self.queue.len() <= 2 * self.slots.len() + 16 {
            return;
        }
        let mut queue = std::mem::take(&mut self.queue).into_vec();
        queue.retain(|&Reverse((_, index, generation))| self.current(index, generation));
        queue.shrink_to_fit();
        self.queue = BinaryHeap::from(queue);
    }

    /// Sends every held beat's adverts that go now by `clock` (due, or due within its gather
    /// window: [`goes_now`]; the clock is read again before each, so adverts that came due
    /// while others were sent go at the same wake-up), drops stale deadlines, and returns the
    /// next deadline.
    pub(super) fn serve(&mut self, clock: impl Fn() -> Instant) -> Option<Instant> {
        while let Some(&Reverse((due, index, generation))) = self.queue.peek() {
            if !self.current(index, generation) {
                self.queue.pop();
                continue;
            }
            let Some(slot) = self.slots.get_mut(index) else {
                self.queue.pop();
                continue;
            };
            let Some(held) = slot.held.as_mut() else {
                self.queue.pop();
                continue;
            };
            let now = clock();
            if !goes_now(due, now, held.handover.interval) {
                return Some(due);
            }
            self.queue.pop();
            if send(&held.handover) {
                let next = next_advert(held.due, now, held.handover.interval);
                held.due = next;
                slot.taken.next_due = Some(next);
                self.queue.push(Reverse((next, index, generation)));
            } else {
                slot.taken.failed = true;
                slot.generation += 1;
                if let Some(held) = slot.held.take() {
                    (held.handover.wake)();
                }
            }
        }
        None
    }
}

/// Sends one advert to each destination without waiting; false when one could not be sent.
fn send(handover: &Handover) -> bool {
    for (destination, payload) in handover.payloads.iter() {
        if handover
            .socket
            .try_send_from(payload, handover.source, *destination)
            .is_err()
        {
            return false;
        }
        handover.sent.inc();
    }
    true
}

/// How early an advert may go to share a wake-up with one due before it: a 32nd of its
/// interval, at most a millisecond (312 µs at 10 ms, 1 ms at 1 s). Its deadlines keep their
/// phase (the next is still one interval on from this one), so its spacing stays the interval
/// and a BACKUP's Master_Down timer only ever sees it early, never late. Without it, the
/// adverts of members that became MASTER a few microseconds apart each wake the thread: 255
/// members at 10 ms woke it 16,800 times a second, against one wake-up per interval for
/// deadlines that fell together.
const GATHER_DIVISOR: u32 = 32;
const MAX_GATHER: Duration = Duration::from_millis(1);

/// Whether an advert due at `due` goes at a wake-up at `now`: due already, or within its
/// gather window ([`GATHER_DIVISOR`]).
fn goes_now(due: Instant, now: Instant, interval: Duration) -> bool {
    due <= now + (interval / GATHER_DIVISOR).min(MAX_GATHER)
}

/// The Adver_Timer's next deadline after serving `due` at `now`: the machine's own rule (one
/// interval on from the deadline, or from `now` when a whole interval was missed).
fn next_advert(due: Instant, now: Instant, interval: Duration) -> Instant {
    let next = due + interval;
    if next > now { next } else { now + interval }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::vrrp::Version;
    use crate::vrrp::instance::{Action, Config, Event, Instance, State};

    const INTERVAL: Duration = Duration::from_secs(1);

    #[test]
    fn an_advert_goes_early_only_within_a_32nd_of_its_interval_and_at_most_a_millisecond() {
        let now = Instant::now();
        let ten_ms = Duration::from_millis(10);
        assert!(goes_now(now, now, ten_ms), "due now");
        assert!(goes_now(now, now + ten_ms, ten_ms), "late");
        assert!(goes_now(now + Duration::from_micros(312), now, ten_ms));
        assert!(!goes_now(now + Duration::from_micros(313), now, ten_ms));
        assert!(goes_now(now + Duration::from_millis(1), now, INTERVAL));
        assert!(
            !goes_now(now + Duration::from_micros(1_001), now, INTERVAL),
            "a 32nd of a second would be 31 ms: capped at 1 ms"
        );
    }

    #[test]
    fn stale_deadlines_and_their_room_go_once_they_outnumber_the_slots() {
        let t0 = Instant::now();
        let mut schedule = Schedule::default();
        for generation in [7, 1] {
            schedule.slots.push(Slot {
                generation,
                ..Slot::default()
            });
        }
        let queue = |schedule: &Schedule| {
            let mut entries: Vec<_> = schedule.queue.iter().map(|Reverse(e)| *e).collect();
            entries.sort();
            entries
        };
        // Slot 0 handed over 7 times at the same deadline, slot 1 once: 8 entries, 6 stale,
        // under the bound (2 × 2 slots + 16): kept.
        for generation in 1..=7 {
            schedule.queue.push(Reverse((t0 + INTERVAL, 0, generation)));
        }
        schedule.queue.push(Reverse((t0 + 2 * INTERVAL, 1, 1)));
        schedule.drop_stale();
        assert_eq!(schedule.queue.len(), 8);
        // A start-up's churn: 1,000 more stale entries of slot 0.
        for _ in 0..1_000 {
            schedule.queue.push(Reverse((t0 + 3 * INTERVAL, 0, 6)));
        }
        schedule.drop_stale();
        assert_eq!(
            queue(&schedule),
            [(t0 + INTERVAL, 0, 7), (t0 + 2 * INTERVAL, 1, 1)],
            "only each slot's current deadline is left"
        );
        assert!(
            schedule.queue.capacity() < 16,
            "the room went with them: {}",
            schedule.queue.capacity()
        );
    }

    fn master(t0: Instant) -> Instance {
        let mut instance = Instance::new(Config {
            vrid: 51,
            priority: 150,
            advert_interval: INTERVAL,
            version: Version::V3,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        });
        instance.handle(t0, Event::Startup);
        let down = instance.next_deadline().unwrap();
        instance.handle(down, Event::Timeout);
        assert_eq!(instance.state(), State::Master);
        instance
    }

    /// What the unit does with a beat taken back: one timeout at `next_due − interval`.
    fn replay(instance: &mut Instance, next_due: Instant) -> Vec<Action> {
        instance.handle(next_due.checked_sub(INTERVAL).unwrap(), Event::Timeout)
    }

    #[test]
    fn a_replayed_beat_re_arms_the_machine_where_the_ticker_left_it_on_time_or_late() {
        // Served on time, late by a little, and late by more than an interval: the machine
        // replaying the last one must land on the ticker's next deadline each time.
        for lateness in [Duration::ZERO, Duration::from_millis(3), INTERVAL * 2] {
            for served in 1..4u32 {
                let mut instance = master(Instant::now());
                let mut due = instance.next_deadline().unwrap();
                for _ in 0..served {
                    due = next_advert(due, due + lateness, INTERVAL);
                }
                assert_eq!(
                    replay(&mut instance, due),
                    [Action::SendAdvert {
                        priority: 150,
                        max_advert_interval: INTERVAL
                    }],
                    "one advert replayed, the one the ticker sent"
                );
                assert_eq!(
                    instance.next_deadline(),
                    Some(due),
                    "{served} served {lateness:?} late"
                );
            }
        }
    }
}
