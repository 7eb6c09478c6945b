//! A BACKUP's routine adverts: the current MASTER's advert, repeated unchanged, which changes
//! nothing but the Master_Down deadline. The receive path takes them without waking the unit
//! task: the unit says which advert is routine, the receive path stamps when one was last
//! heard, and the unit replays that stamp into its machine before anything else it does (so
//! the machine sees the same adverts in the same order, only later). A routine advert also
//! postpones the unit's timer to where the machine will have its Master_Down deadline once it
//! replays that advert (heard + Master_Down_Interval), when the unit allows it and the timer
//! would otherwise fire before the next advert is due (half an interval of slack): one advert
//! in three re-arms it at priority 128 or less, one in two above (Skew_Time under half an
//! interval). A BACKUP's unit so sleeps while its MASTER speaks, and wakes when the MASTER
//! falls silent (or for anything else). Should an advert not come, the unit wakes at the
//! earlier deadline, replays the latest advert and arms the exact one itself: the Master_Down
//! deadline is never late, only sometimes one wake-up early.
//!
//! Anything else (a new MASTER, another priority or interval, priority 0) goes to the unit
//! through its queue as before, and stops the routine until the unit has heard it: adverts
//! are never heard out of order.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

use crate::net::timer::Postpone;
use crate::vrrp::instance::ReceivedAdvert;

/// When the hearing of a routine advert moves the unit's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// At once, when the timer would fire before the next advert is due: the receive path
    /// reads each advert as it arrives, so the next one is read an interval later.
    Now,
    /// Once the queue has been read to the end ([`Routine::settle`]): adverts read together
    /// after waiting in the socket are heard in a burst, and the next burst comes only at the
    /// member's [`Routine::read_by`], past the timer of any but the latest advert. The latest
    /// one moves it, once (and an earlier one too when the timer would fire within a quarter
    /// interval of its read, before a long drain ends).
    AfterDrain,
}

/// The routine of one member, shared by the receive path and the unit task.
#[derive(Debug, Clone)]
pub struct Routine {
    cell: Arc<Mutex<Cell>>,
    /// The member's count of adverts heard after its Master_Down deadline had passed.
    late: Counter,
}

#[derive(Debug, Default)]
struct Cell {
    /// The advert that is routine now; `None`: every advert goes to the unit.
    expected: Option<ReceivedAdvert>,
    /// The Master_Down deadline the unit's machine has armed, as of its last word.
    due: Option<Instant>,
    /// The latest routine advert not yet replayed, with when it was heard.
    heard: Option<(ReceivedAdvert, Instant)>,
    /// Adverts handed to the unit's queue and not yet taken by it.
    queued: u32,
    /// The unit's timer and the Master_Down_Interval: a routine advert moves the timer to
    /// heard + interval when it would fire before the next advert. `None`: the unit's timer
    /// stays where the unit armed it.
    postpone: Option<(Postpone, Duration)>,
    /// Where the unit's timer fires at the latest, as far as this member knows: where the unit
    /// armed it, or where this path last moved it (another member of a sync group may have
    /// moved it earlier, which only wakes the unit early).
    armed: Option<Instant>,
    /// Until when a routine advert leaves the timer at `armed`: computed when the timer
    /// moves, so that an advert that leaves it where it is costs one comparison.
    kept: Option<Kept>,
}

/// The latest moments at which a routine advert leaves a timer where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kept {
    /// Heard alone ([`Settle::Now`]): the timer outlasts the next advert (see
    /// [`last_hearing_kept`]).
    hearing: Instant,
    /// Read in a drain ([`Settle::AfterDrain`]): the timer fires more than a quarter interval
    /// after the read (the drain's end moves it).
    drain_read: Instant,
}

impl Kept {
    /// For a timer armed at `armed`, adverts every `interval`; `None`: every advert moves it.
    fn of(armed: Instant, interval: Duration) -> Option<Self> {
        Some(Self {
            hearing: last_hearing_kept(armed, interval)?,
            drain_read: armed.checked_sub(interval / 4)?,
        })
    }
}

impl Routine {
    /// A routine that takes nothing until the unit says what to expect; `late` counts the
    /// member's adverts heard past its deadline.
    pub fn new(late: Counter) -> Self {
        Self {
            cell: Arc::new(Mutex::new(Cell::default())),
            late,
        }
    }

    fn cell(&self) -> std::sync::MutexGuard<'_, Cell> {
        self.cell.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Receive path: takes `advert`, which arrived at `now` and was read at `read`, when it is
    /// the routine one (true). False: the caller puts it in the unit's queue (counted as queued
    /// from here on: a failed attempt calls [`Self::taken`]), and nothing is routine until the
    /// unit has heard it. It is timed from its arrival, and counted late when it was read after
    /// the deadline had passed (found waiting by a node that stalled). `settle`: when its
    /// hearing moves the unit's timer.
    pub fn hear(
        &self,
        advert: ReceivedAdvert,
        now: Instant,
        read: Instant,
        settle: Settle,
    ) -> bool {
        let mut cell = self.cell();
        if cell.expected != Some(advert) {
            cell.expected = None;
            cell.queued = cell.queued.saturating_add(1);
            return false;
        }
        if cell.due.is_some_and(|due| read >= due) {
            self.late.inc();
        }
        cell.heard = Some((advert, now));
        if let Some((timer, interval)) = &cell.postpone {
            let due = now + *interval;
            let moves = cell.kept.is_none_or(|kept| match settle {
                Settle::Now => now > kept.hearing,
                // A drain that runs long (a busy node) moves a timer about to fire at once.
                Settle::AfterDrain => read > kept.drain_read,
            });
            if moves {
                if let Err(error) = timer.to(due) {
                    // The unit wakes at the deadline it armed, replays, and arms again.
                    tracing::debug!(%error, "cannot postpone the unit's timer");
                    return true;
                }
                cell.arm(Some(due));
            }
            cell.due = Some(due);
        }
        true
    }

    /// Receive path, once a drain has read the whole queue: moves the unit's timer to the
    /// Master_Down deadline of the latest routine advert heard (see [`Settle::AfterDrain`]),
    /// if it is not there yet.
    pub fn settle(&self) {
        let mut cell = self.cell();
        let (Some((timer, _)), Some(due)) = (&cell.postpone, cell.due) else {
            return;
        };
        if cell.armed.is_some_and(|armed| armed >= due) {
            return;
        }
        if let Err(error) = timer.to(due) {
            // The unit wakes at the deadline it armed, replays, and arms again.
            tracing::debug!(%error, "cannot postpone the unit's timer");
            return;
        }
        cell.arm(Some(due));
    }

    /// Unit: counts an advert from the queue that was read past the member's deadline.
    pub fn count_late(&self) {
        self.late.inc();
    }

    /// Unit: an advert was taken from the queue (receive path: one could not be put there).
    pub fn taken(&self) {
        let mut cell = self.cell();
        cell.queued = cell.queued.saturating_sub(1);
    }

    /// Unit: the latest routine advert heard since the last call, and when.
    pub fn replay(&self) -> Option<(ReceivedAdvert, Instant)> {
        self.cell().heard.take()
    }

    /// Unit: from now on `expected` is routine (`None`: nothing is), with the machine's
    /// deadline `due`; `postpone`: the unit's timer and its Master_Down_Interval, when the
    /// machine's Master_Down deadline is the unit's only deadline (nothing earlier to keep).
    /// An expectation waits while adverts the unit has not heard are queued.
    /// True when the receive path must read this member's adverts earlier than it was told
    /// before (see [`Self::read_by`]): the caller wakes the receive path.
    pub fn expect(
        &self,
        expected: Option<ReceivedAdvert>,
        due: Option<Instant>,
        postpone: Option<(Postpone, Duration)>,
    ) -> bool {
        let mut cell = self.cell();
        let before = cell.read_by().map(|(by, _)| by);
        cell.expected = expected.filter(|_| cell.queued == 0);
        cell.postpone = postpone.filter(|_| cell.expected.is_some());
        cell.due = due;
        cell.arm(due);
        let after = cell.read_by().map(|(by, _)| by);
        before.is_some_and(|before| after.is_none_or(|after| after < before))
    }

    /// Receive path: until when this member's adverts may wait unread in the socket (see
    /// [`Cell::read_by`]), with their interval; `None`: read each one as it arrives.
    pub fn read_by(&self) -> Option<(Instant, Duration)> {
        self.cell().read_by()
    }
}

impl Cell {
    /// The unit's timer fires at `at` now (as far as this member knows).
    fn arm(&mut self, at: Option<Instant>) {
        self.armed = at;
        self.kept = at
            .zip(self.expected)
            .and_then(|(at, expected)| Kept::of(at, expected.max_advert_interval));
    }

    /// While the member's adverts are routine and each one read moves the unit's timer, they
    /// may wait in the socket until half an interval before the Master_Down deadline (or the
    /// unit's timer, when an advert read alone left it earlier): read then, the latest one
    /// postpones the unit before its timer fires, and its kernel receive stamp keeps the
    /// deadline where reading it at once would have put it.
    fn read_by(&self) -> Option<(Instant, Duration)> {
        let interval = self.expected?.max_advert_interval;
        self.postpone.as_ref()?;
        let due = self.due?;
        let fires = self.armed.map_or(due, |armed| armed.min(due));
        let by = fires.checked_sub(interval / 2)?;
        Some((by, interval))
    }
}

/// The latest time at which an advert with `interval` may be heard while a timer firing at
/// `armed` stays where it is: the timer must fire after the next advert is due, half an
/// interval of jitter included. `None`: no hearing keeps it.
fn last_hearing_kept(armed: Instant, interval: Duration) -> Option<Instant> {
    armed.checked_sub(interval + interval / 2)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn advert(priority: u8) -> ReceivedAdvert {
        ReceivedAdvert {
            source: "192.0.2.2".parse().unwrap(),
            priority,
            max_advert_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn only_the_expected_advert_is_taken_and_the_latest_one_is_replayed_once() {
        let routine = Routine::new(Counter::default());
        let start = Instant::now();
        assert!(
            !routine.hear(advert(150), start, start, Settle::Now),
            "nothing expected yet"
        );
        routine.taken();
        routine.expect(
            Some(advert(150)),
            Some(start + Duration::from_secs(3)),
            None,
        );
        let (one, two) = (
            start + Duration::from_secs(1),
            start + Duration::from_secs(2),
        );
        assert!(routine.hear(advert(150), one, one, Settle::Now));
        assert!(routine.hear(advert(150), two, two, Settle::Now));
        assert_eq!(
            routine.replay(),
            Some((advert(150), start + Duration::from_secs(2)))
        );
        assert_eq!(routine.replay(), None);
    }

    #[test]
    fn another_advert_stops_the_routine_until_the_unit_expects_again() {
        let routine = Routine::new(Counter::default());
        let now = Instant::now();
        routine.expect(Some(advert(150)), None, None);
        assert!(!routine.hear(advert(120), now, now, Settle::Now));
        assert!(
            !routine.hear(advert(150), now, now, Settle::Now),
            "heard out of order"
        );
        routine.taken();
        routine.taken();
        routine.expect(Some(advert(150)), None, None);
        assert!(routine.hear(advert(150), now, now, Settle::Now));
    }

    #[test]
    fn an_expectation_waits_for_the_queued_adverts_to_be_taken() {
        let routine = Routine::new(Counter::default());
        let now = Instant::now();
        assert!(!routine.hear(advert(120), now, now, Settle::Now));
        routine.expect(Some(advert(150)), None, None);
        assert!(
            !routine.hear(advert(150), now, now, Settle::Now),
            "an advert is still queued"
        );
        routine.taken();
        routine.taken();
        routine.expect(Some(advert(150)), None, None);
        assert!(routine.hear(advert(150), now, now, Settle::Now));
    }

    /// A BACKUP of priority 100 whose MASTER speaks every 10 ms, its advert routine since
    /// `start`, `timer` postponable.
    struct Backup {
        routine: Routine,
        advert: ReceivedAdvert,
        interval: Duration,
        /// 3 x 10 ms + Skew_Time.
        master_down: Duration,
        start: Instant,
    }

    impl Backup {
        fn at_10ms(timer: &crate::net::timer::Deadline) -> Self {
            let interval = Duration::from_millis(10);
            let master_down = 3 * interval + interval * 156 / 256;
            let advert = ReceivedAdvert {
                max_advert_interval: interval,
                ..advert(150)
            };
            let routine = Routine::new(Counter::default());
            let start = Instant::now();
            routine.expect(
                Some(advert),
                Some(start + master_down),
                Some((timer.postpone(), master_down)),
            );
            Self {
                routine,
                advert,
                interval,
                master_down,
                start,
            }
        }
    }

    #[tokio::test]
    async fn the_timer_moves_only_when_it_would_fire_before_the_next_advert() {
        let timer = crate::net::timer::Deadline::new().unwrap();
        let backup = Backup::at_10ms(&timer);
        let (routine, interval, master_down) =
            (&backup.routine, backup.interval, backup.master_down);
        let mut moves = 0;
        for k in 1..=30 {
            let now = backup.start + interval * k;
            let before = routine.cell().armed;
            assert!(routine.hear(backup.advert, now, now, Settle::Now));
            let cell = routine.cell();
            let armed = cell.armed.unwrap();
            if cell.armed != before {
                moves += 1;
                assert_eq!(
                    armed,
                    now + master_down,
                    "moved to heard + Master_Down_Interval"
                );
            }
            assert_eq!(cell.due, Some(now + master_down), "the machine's deadline");
            assert!(
                armed >= now + interval + interval / 2,
                "advert {k}: the timer fires before the next advert is due"
            );
            assert!(
                armed <= now + master_down,
                "advert {k}: later than Master_Down"
            );
        }
        assert_eq!(moves, 10, "one advert in three moves the timer");
    }

    #[tokio::test]
    async fn adverts_heard_in_a_drain_move_the_timer_once_to_the_latest_deadline() {
        let timer = crate::net::timer::Deadline::new().unwrap();
        let Backup {
            routine,
            advert,
            interval,
            master_down,
            start,
        } = Backup::at_10ms(&timer);
        // Two adverts waited in the socket; a drain reads them both, then settles.
        for k in 1..=2 {
            let arrived = start + interval * k;
            assert!(routine.hear(advert, arrived, start + 3 * interval, Settle::AfterDrain));
            assert_eq!(
                routine.cell().armed,
                Some(start + master_down),
                "the timer waits for the end of the drain"
            );
        }
        routine.settle();
        let latest = start + 2 * interval + master_down;
        assert_eq!(routine.cell().armed, Some(latest));
        assert_eq!(
            routine.read_by(),
            Some((latest.checked_sub(interval / 2).unwrap(), interval)),
            "the next drain comes before the timer fires"
        );
        // A drain that ran long reads the next advert 2 ms before the timer fires: it moves
        // the timer at once, not after the drain.
        let arrived = start + 3 * interval;
        let read = latest.checked_sub(Duration::from_millis(2)).unwrap();
        assert!(routine.hear(advert, arrived, read, Settle::AfterDrain));
        assert_eq!(routine.cell().armed, Some(arrived + master_down));
    }

    #[tokio::test]
    async fn routine_adverts_may_wait_until_half_an_interval_before_the_deadline() {
        let timer = crate::net::timer::Deadline::new().unwrap();
        let routine = Routine::new(Counter::default());
        let start = Instant::now();
        let due = start + Duration::from_secs(3);
        let postpone = || Some((timer.postpone(), Duration::from_millis(3_609)));
        assert_eq!(routine.read_by(), None, "nothing expected: read at once");
        assert!(!routine.expect(Some(advert(150)), Some(due), postpone()));
        assert_eq!(
            routine.read_by(),
            Some((start + Duration::from_millis(2_500), Duration::from_secs(1)))
        );
        let heard = start + Duration::from_secs(1);
        assert!(routine.hear(advert(150), heard, heard, Settle::Now));
        assert_eq!(
            routine.read_by().map(|(by, _)| by),
            Some(start + Duration::from_millis(2_500)),
            "an advert read alone that leaves the timer where it was keeps the reading time \
             before it"
        );
        assert!(routine.hear(advert(150), heard, heard, Settle::AfterDrain));
        routine.settle();
        assert_eq!(
            routine.read_by().map(|(by, _)| by),
            Some(heard + Duration::from_millis(3_109)),
            "a drain moves the timer to the deadline, and the reading time with it"
        );
        assert!(
            routine.expect(Some(advert(150)), Some(due), None),
            "without a timer to postpone, adverts are read at once: the reader is woken"
        );
        assert_eq!(routine.read_by(), None);
        assert!(!routine.expect(Some(advert(150)), Some(due), postpone()));
        assert!(
            routine.expect(
                Some(advert(150)),
                Some(start + Duration::from_millis(2_999)),
                postpone()
            ),
            "an earlier deadline wakes the reader"
        );
        assert!(!routine.expect(Some(advert(150)), Some(due), postpone()));
        assert!(routine.expect(None, Some(due), None), "no longer routine");
    }

    #[test]
    fn a_timer_outlasts_the_next_advert_with_half_an_interval_to_spare() {
        let now = Instant::now();
        let interval = Duration::from_millis(10);
        let armed = now + Duration::from_millis(15);
        assert_eq!(last_hearing_kept(armed, interval), Some(now));
        assert_eq!(
            last_hearing_kept(now + Duration::from_micros(14_999), interval),
            now.checked_sub(Duration::from_micros(1)),
        );
    }

    #[test]
    fn adverts_heard_past_the_deadline_are_counted_late() {
        let late = Counter::default();
        let routine = Routine::new(late.clone());
        let now = Instant::now();
        routine.expect(Some(advert(150)), Some(now), None);
        assert!(routine.hear(advert(150), now, now, Settle::Now));
        let later = now + Duration::from_millis(1);
        assert!(routine.hear(advert(150), later, later, Settle::Now));
        routine.expect(Some(advert(150)), Some(now + Duration::from_secs(3)), None);
        let in_time = now + Duration::from_secs(1);
        assert!(routine.hear(advert(150), in_time, in_time, Settle::Now));
        assert_eq!(late.get(), 2);
    }

    #[test]
    fn an_advert_that_arrived_in_time_and_was_read_past_the_deadline_is_late() {
        let late = Counter::default();
        let routine = Routine::new(late.clone());
        let start = Instant::now();
        let (arrived, due, read) = (
            start + Duration::from_secs(1),
            start + Duration::from_secs(3),
            start + Duration::from_secs(4),
        );
        routine.expect(Some(advert(150)), Some(due), None);
        assert!(routine.hear(advert(150), arrived, read, Settle::Now));
        assert_eq!(late.get(), 1, "found waiting by a node that stalled");
        assert_eq!(
            routine.replay(),
            Some((advert(150), arrived)),
            "timed from its arrival"
        );
    }
}
