//! The deadlines of the [`poller`](super::poller)'s checks, earliest first: at most one live
//! per slot (its next attempt, or the end of the attempt it runs). Arming a slot again makes
//! its older deadline stale; stale ones are dropped as they come to the top, so nothing is
//! searched or removed from the middle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Which arming of a slot a deadline belongs to (0: none).
pub type Arming = u64;

/// The deadlines, by slot.
#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, usize, Arming)>>,
    /// The live arming of each slot.
    live: Vec<Arming>,
    armings: Arming,
}

impl Deadlines {
    /// Sets `slot`'s deadline to `at` (its older one no longer counts); its arming.
    pub fn arm(&mut self, slot: usize, at: Instant) -> Arming {
        self.armings += 1;
        if self.live.len() <= slot {
            self.live.resize(slot + 1, 0);
        }
        self.live[slot] = self.armings;
        self.heap.push(Reverse((at, slot, self.armings)));
        self.armings
    }

    /// `slot` has no deadline any more.
    pub fn disarm(&mut self, slot: usize) {
        if let Some(live) = self.live.get_mut(slot) {
            *live = 0;
        }
    }

    /// Whether `arming` is `slot`'s live one.
    pub fn is_live(&self, slot: usize, arming: Arming) -> bool {
        arming != 0 && self.live.get(slot) == Some(&arming)
    }

    /// The earliest live deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, slot, arming))) = self.heap.peek() {
            if self.is_live(slot, arming) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// A slot whose live deadline is at or before `now`, with that arming (which stays live
    /// until the slot is armed again or disarmed); `None` once there is none.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, Arming)> {
        while self.earliest().is_some_and(|at| at <= now) {
            if let Some(Reverse((_, slot, arming))) = self.heap.pop() {
                return Some((slot, arming));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_due_earliest_first_and_only_once() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut deadlines = Deadlines::default();
        deadlines.arm(2, at(30));
        deadlines.arm(0, at(10));
        deadlines.arm(1, at(20));
        assert_eq!(deadlines.earliest(), Some(at(10)));
        assert_eq!(deadlines.pop_due(at(5)), None);
        let due: Vec<usize> = std::iter::from_fn(|| deadlines.pop_due(at(25)))
            .map(|(slot, _)| slot)
            .collect();
        assert_eq!(due, [0, 1]);
        assert_eq!(deadlines.earliest(), Some(at(30)));
    }

    #[test]
    fn a_slot_armed_again_or_disarmed_forgets_its_older_deadline() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut deadlines = Deadlines::default();
        let first = deadlines.arm(0, at(10));
        let second = deadlines.arm(0, at(50));
        assert!(!deadlines.is_live(0, first));
        assert!(deadlines.is_live(0, second));
        deadlines.arm(1, at(20));
        deadlines.disarm(1);
        assert_eq!(deadlines.earliest(), Some(at(50)));
        assert_eq!(deadlines.pop_due(at(40)), None);
        assert_eq!(deadlines.pop_due(at(50)), Some((0, second)));
        assert_eq!(deadlines.earliest(), None);
    }

    #[test]
    fn a_due_arming_stays_live_until_the_slot_is_armed_again() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        let arming = deadlines.arm(3, start);
        assert_eq!(deadlines.pop_due(start), Some((3, arming)));
        assert!(
            deadlines.is_live(3, arming),
            "waiting for a permit, still due"
        );
        deadlines.arm(3, start + Duration::from_secs(1));
        assert!(!deadlines.is_live(3, arming));
        assert!(!deadlines.is_live(7, 0), "an unknown slot has nothing live");
    }
}
