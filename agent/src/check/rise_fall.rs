//! Rise/fall counting: how many consecutive results flip a tracker's state. Pure.

use super::aggregate::Observation;

/// Debounces probe results: `rise` consecutive successes turn a down tracker up, `fall`
/// consecutive failures turn an up tracker down. The very first result decides at once (a
/// tracker that has never run is [`Observation::Pending`], which already counts as down, and an
/// agent starting up should not wait `rise` intervals to learn its checks pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    current: Observation,
    streak: u32,
}

impl RiseFall {
    /// Counts of 0 are treated as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            current: Observation::Pending,
            streak: 0,
        }
    }

    /// The debounced state: Pending, Up or Down.
    pub fn current(&self) -> Observation {
        self.current
    }

    /// Feeds one probe result and returns the (possibly new) debounced state.
    pub fn observe(&mut self, success: bool) -> Observation {
        let target = if success {
            Observation::Up
        } else {
            Observation::Down
        };
        if self.current == Observation::Pending {
            self.current = target;
            self.streak = 0;
        } else if self.current == target {
            self.streak = 0;
        } else {
            self.streak += 1;
            let needed = if success { self.rise } else { self.fall };
            if self.streak >= needed {
                self.current = target;
                self.streak = 0;
            }
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(rf: &mut RiseFall, results: &[bool]) -> Vec<Observation> {
        results.iter().map(|&ok| rf.observe(ok)).collect()
    }

    #[test]
    fn first_result_decides_immediately() {
        let mut up_first = RiseFall::new(3, 3);
        assert_eq!(up_first.current(), Observation::Pending);
        assert_eq!(up_first.observe(true), Observation::Up);
        let mut down_first = RiseFall::new(3, 3);
        assert_eq!(down_first.observe(false), Observation::Down);
    }

    #[test]
    fn fall_consecutive_failures_are_needed_to_go_down() {
        use Observation::{Down, Up};
        let mut rf = RiseFall::new(1, 3);
        assert_eq!(
            feed(&mut rf, &[true, false, false, true, false, false, false]),
            [Up, Up, Up, Up, Up, Up, Down]
        );
    }

    #[test]
    fn rise_consecutive_successes_are_needed_to_come_back_up() {
        use Observation::{Down, Up};
        let mut rf = RiseFall::new(2, 1);
        assert_eq!(
            feed(&mut rf, &[false, true, false, true, true, false]),
            [Down, Down, Down, Down, Up, Down]
        );
    }

    #[test]
    fn zero_counts_behave_as_one() {
        use Observation::{Down, Up};
        let mut rf = RiseFall::new(0, 0);
        assert_eq!(feed(&mut rf, &[true, false, true]), [Up, Down, Up]);
    }

    proptest::proptest! {
        #[test]
        fn state_flips_only_after_rise_or_fall_opposing_results_in_a_row(
            rise in 1u32..5,
            fall in 1u32..5,
            results in proptest::collection::vec(proptest::bool::ANY, 1..60),
        ) {
            let mut rf = RiseFall::new(rise, fall);
            let mut state = None::<bool>;
            let mut run = 0u32;
            for ok in results {
                // Reference model: count opposing results in a row since the last flip.
                match state {
                    None => state = Some(ok),
                    Some(current) if current == ok => run = 0,
                    Some(_) => {
                        run += 1;
                        if run >= if ok { rise } else { fall } {
                            state = Some(ok);
                            run = 0;
                        }
                    }
                }
                let want = if state == Some(true) { Observation::Up } else { Observation::Down };
                proptest::prop_assert_eq!(rf.observe(ok), want);
            }
        }
    }
}
