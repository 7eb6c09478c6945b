//! Folding tracker results into one [`TrackState`] (keepalived's `track_*` weight rules). Pure.

/// What a tracker last saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// No result yet (the first probe has not finished). Counts as [`Observation::Down`].
    Pending,
    /// The interface is up and running, or the script exited 0.
    Up,
    /// The interface is down or missing, or the script failed or timed out.
    Down,
    /// A track file held this integer.
    Value(i64),
    /// A track file is missing, unreadable or does not hold an integer.
    Unreadable,
}

impl Observation {
    /// The short word used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Up => "up",
            Self::Down => "down",
            Self::Value(_) => "value",
            Self::Unreadable => "unreadable",
        }
    }
}

/// What one tracker does to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contribution {
    /// Add this much to the configured priority (may be negative or zero).
    Delta(i64),
    /// Put the instance in FAULT.
    Fault,
}

/// The combined effect of every tracker of one instance: the state machine's own input type
/// (`weight_delta` summed, `fault` when any tracker says so), sent as `Event::Tracking`.
pub type TrackState = crate::vrrp::instance::Tracking;

/// A file value times its weight below this puts the instance in FAULT (keepalived: no weight can
/// bring a priority of 254 below 1).
pub const FILE_FAULT_BELOW: i64 = -253;

/// The effect of one tracker with `weight` that observed `observation`.
///
/// - Up/down trackers (interfaces, scripts): weight 0 → FAULT while down; a positive weight is
///   added while up; a negative weight is added while down. [`Observation::Pending`] counts as down.
/// - File trackers: weight 0 → FAULT while the value is non-zero; otherwise `weight × value` is
///   added, and a product below [`FILE_FAULT_BELOW`] is FAULT. A missing, unreadable or
///   non-integer file is FAULT whatever the weight.
pub fn contribution(weight: i32, observation: Observation) -> Contribution {
    let weight = i64::from(weight);
    match observation {
        Observation::Up | Observation::Down | Observation::Pending => {
            let up = observation == Observation::Up;
            if weight == 0 {
                if up {
                    Contribution::Delta(0)
                } else {
                    Contribution::Fault
                }
            } else if (weight > 0) == up {
                // Positive weights count while up, negative ones while down.
                Contribution::Delta(weight)
            } else {
                Contribution::Delta(0)
            }
        }
        Observation::Value(value) if weight == 0 => {
            if value == 0 {
                Contribution::Delta(0)
            } else {
                Contribution::Fault
            }
        }
        Observation::Value(value) => {
            let product = weight.saturating_mul(value);
            if product < FILE_FAULT_BELOW {
                Contribution::Fault
            } else {
                Contribution::Delta(product)
            }
        }
        Observation::Unreadable => Contribution::Fault,
    }
}

/// Whether a tracker counts as healthy for `kube_vrrp_check_up`: up/down trackers while up, file
/// trackers while readable and not putting the instance in FAULT.
pub fn is_up(weight: i32, observation: Observation) -> bool {
    match observation {
        Observation::Up => true,
        Observation::Down | Observation::Pending | Observation::Unreadable => false,
        Observation::Value(_) => contribution(weight, observation) != Contribution::Fault,
    }
}

/// Folds `(weight, observation)` pairs into a [`TrackState`]: FAULT when any tracker says so, and
/// the saturating sum of the others' deltas, clamped into `i32`.
pub fn aggregate(trackers: &[(i32, Observation)]) -> TrackState {
    let mut sum: i64 = 0;
    let mut fault = false;
    for &(weight, observation) in trackers {
        match contribution(weight, observation) {
            Contribution::Delta(delta) => sum = sum.saturating_add(delta),
            Contribution::Fault => fault = true,
        }
    }
    let weight_delta = i32::try_from(sum).unwrap_or(if sum < 0 { i32::MIN } else { i32::MAX });
    TrackState {
        weight_delta,
        fault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSERVATIONS: [Observation; 8] = [
        Observation::Pending,
        Observation::Up,
        Observation::Down,
        Observation::Value(0),
        Observation::Value(1),
        Observation::Value(-1),
        Observation::Value(300),
        Observation::Unreadable,
    ];
    const WEIGHTS: [i32; 7] = [-254, -10, -1, 0, 1, 10, 254];

    /// The rules written out independently of `contribution`, one case per line.
    #[allow(clippy::match_same_arms)] // one line per rule reads better than merged arms
    fn expected(weight: i32, observation: Observation) -> Contribution {
        use Contribution::{Delta, Fault};
        let w = i64::from(weight);
        match (weight.signum(), observation) {
            (1, Observation::Up) => Delta(w),
            (0 | -1, Observation::Up) => Delta(0),
            (0, Observation::Down | Observation::Pending) => Fault,
            (-1, Observation::Down | Observation::Pending) => Delta(w),
            (1, Observation::Down | Observation::Pending) => Delta(0),
            (0, Observation::Value(0)) => Delta(0),
            (0, Observation::Value(_)) | (_, Observation::Unreadable) => Fault,
            (_, Observation::Value(v)) if w * v < -253 => Fault,
            (_, Observation::Value(v)) => Delta(w * v),
            _ => unreachable!("signum is -1, 0 or 1"),
        }
    }

    #[test]
    fn every_weight_class_and_observation_contributes_by_the_keepalived_rules() {
        let mut checked = 0;
        for weight in WEIGHTS {
            for observation in OBSERVATIONS {
                assert_eq!(
                    contribution(weight, observation),
                    expected(weight, observation),
                    "weight {weight}, {observation:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, WEIGHTS.len() * OBSERVATIONS.len());
    }

    #[test]
    fn every_pair_of_trackers_aggregates_to_the_sum_or_fault() {
        for w1 in WEIGHTS {
            for o1 in OBSERVATIONS {
                for w2 in WEIGHTS {
                    for o2 in OBSERVATIONS {
                        let state = aggregate(&[(w1, o1), (w2, o2)]);
                        let (c1, c2) = (expected(w1, o1), expected(w2, o2));
                        let fault = c1 == Contribution::Fault || c2 == Contribution::Fault;
                        assert_eq!(state.fault, fault, "{w1} {o1:?} / {w2} {o2:?}");
                        let delta = [c1, c2]
                            .iter()
                            .map(|c| match c {
                                Contribution::Delta(d) => *d,
                                Contribution::Fault => 0,
                            })
                            .sum::<i64>();
                        assert_eq!(i64::from(state.weight_delta), delta);
                    }
                }
            }
        }
    }

    #[test]
    fn no_trackers_means_no_change_and_no_fault() {
        assert_eq!(
            aggregate(&[]),
            TrackState {
                weight_delta: 0,
                fault: false
            }
        );
    }

    #[test]
    fn pending_tracker_counts_as_down() {
        for weight in WEIGHTS {
            assert_eq!(
                contribution(weight, Observation::Pending),
                contribution(weight, Observation::Down)
            );
        }
    }

    #[test]
    fn file_value_of_254_with_negative_weight_is_fault_but_253_is_not() {
        assert_eq!(
            contribution(-1, Observation::Value(254)),
            Contribution::Fault
        );
        assert_eq!(
            contribution(-1, Observation::Value(253)),
            Contribution::Delta(-253)
        );
    }

    #[test]
    fn huge_file_values_saturate_instead_of_overflowing() {
        let state = aggregate(&[
            (254, Observation::Value(i64::MAX)),
            (254, Observation::Value(i64::MAX)),
        ]);
        assert_eq!(state.weight_delta, i32::MAX);
        assert!(!state.fault);
        let state = aggregate(&[(-254, Observation::Value(i64::MIN))]);
        assert_eq!(state.weight_delta, i32::MAX);
    }

    #[test]
    fn check_up_follows_health_not_weight() {
        assert!(is_up(0, Observation::Up));
        assert!(is_up(-5, Observation::Up));
        assert!(!is_up(10, Observation::Down));
        assert!(!is_up(10, Observation::Pending));
        assert!(!is_up(10, Observation::Unreadable));
        assert!(is_up(0, Observation::Value(0)));
        assert!(!is_up(0, Observation::Value(3)));
        assert!(is_up(-2, Observation::Value(3)));
        assert!(!is_up(-2, Observation::Value(200)));
    }

    fn observation() -> impl proptest::strategy::Strategy<Value = Observation> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Observation::Pending),
            Just(Observation::Up),
            Just(Observation::Down),
            Just(Observation::Unreadable),
            (-400i64..400).prop_map(Observation::Value),
        ]
    }

    proptest::proptest! {
        #[test]
        fn any_list_aggregates_to_the_sum_of_non_fault_contributions(
            trackers in proptest::collection::vec((-253i32..=253, observation()), 0..40)
        ) {
            let state = aggregate(&trackers);
            let fault = trackers.iter().any(|(w, o)| expected(*w, *o) == Contribution::Fault);
            let sum: i64 = trackers
                .iter()
                .map(|(w, o)| match expected(*w, *o) {
                    Contribution::Delta(d) => d,
                    Contribution::Fault => 0,
                })
                .sum();
            proptest::prop_assert_eq!(state.fault, fault);
            proptest::prop_assert_eq!(i64::from(state.weight_delta), sum);
        }
    }
}
