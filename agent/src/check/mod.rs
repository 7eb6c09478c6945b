//! Trackers (keepalived `track_interface`, `track_file`, `track_script`): each runs in its own
//! tokio task and feeds one instance's [`TrackState`] through a watch channel.
//!
//! A slow or hung script only delays its own task: the VRRP tasks read the latest
//! [`TrackState`] from the watch channel and never wait on a tracker.

pub mod aggregate;
pub mod file;
pub mod interface;
pub mod rise_fall;
pub mod script;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use aggregate::{Observation, TrackState, aggregate};
pub use file::FileProbe;
pub use script::{ScriptOutcome, ScriptProbe};

use crate::report::Metrics;

/// One tracker of one instance, in the form the agent runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    /// The `tracker` label of `kube_vrrp_check_*` and the name in logs.
    pub name: String,
    /// keepalived weight: see [`aggregate::contribution`].
    pub weight: i32,
    /// What to probe.
    pub probe: Probe,
}

/// What a tracker probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A network interface's IFF_UP and IFF_RUNNING flags.
    Interface { interface: String },
    /// A file holding an integer.
    File(FileProbe),
    /// A command's exit status.
    Script(ScriptProbe),
}

impl Probe {
    /// The tracker kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Interface { .. } => "interface",
            Self::File(_) => "file",
            Self::Script(_) => "script",
        }
    }
}

/// What every tracker of a set last saw, and where the aggregate goes.
struct Shared {
    trackers: Vec<(String, i32)>,
    observations: Mutex<Vec<Observation>>,
    state: watch::Sender<TrackState>,
    pending: watch::Sender<usize>,
    metrics: Metrics,
}

impl Shared {
    fn weighted(&self, observations: &[Observation]) -> Vec<(i32, Observation)> {
        self.trackers
            .iter()
            .zip(observations)
            .map(|((_, weight), observation)| (*weight, *observation))
            .collect()
    }
}

/// One tracker's handle on its set: report observations, count failures.
#[derive(Clone)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
    index: usize,
}

impl Slot {
    pub(crate) fn name(&self) -> &str {
        &self.shared.trackers[self.index].0
    }

    fn weight(&self) -> i32 {
        self.shared.trackers[self.index].1
    }

    /// Records the tracker's current observation and republishes the aggregate if it changed.
    /// Returns the previous observation.
    pub(crate) fn report(&self, observation: Observation) -> Observation {
        let shared = &self.shared;
        let (previous, state, pending) = {
            let mut observations = shared
                .observations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let previous = std::mem::replace(&mut observations[self.index], observation);
            let pending = observations
                .iter()
                .filter(|o| **o == Observation::Pending)
                .count();
            (
                previous,
                aggregate(&shared.weighted(&observations)),
                pending,
            )
        };
        if previous != observation {
            tracing::info!(
                tracker = self.name(),
                from = previous.as_str(),
                to = observation.as_str(),
                value = ?observation,
                "tracker changed"
            );
        }
        shared.metrics.check_state(self.name(), aggregate::is_up(self.weight(), observation));
        shared.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        shared.pending.send_if_modified(|current| {
            let changed = *current != pending;
            *current = pending;
            changed
        });
        previous
    }

    /// [`Slot::report`], counting a failure when the tracker turns bad (from up or pending).
    /// For trackers that poll a state (files, interfaces) rather than run probes.
    pub(crate) fn report_counting_failure_on_change(&self, observation: Observation) {
        let previous = self.report(observation);
        let weight = self.weight();
        let was_bad = previous != Observation::Pending && !aggregate::is_up(weight, previous);
        if !aggregate::is_up(weight, observation) && !was_bad {
            self.count_failure();
        }
    }

    /// Counts one failed probe in `kube_vrrp_check_failures_total`.
    pub(crate) fn count_failure(&self) {
        self.shared.metrics.check_failed(self.name());
    }
}

/// The running trackers of one instance. Dropping it stops every tracker task (and kills any
/// script still running).
pub struct TrackerSet {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TrackerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackerSet")
            .field("trackers", &self.shared.trackers)
            .finish_non_exhaustive()
    }
}

impl TrackerSet {
    /// Starts one task per tracker and returns the set with a receiver of the aggregate
    /// [`TrackState`]. Must be called inside a tokio runtime. Netlink sockets for interface
    /// trackers are opened on the calling thread (so in its network namespace); scripts inherit
    /// the namespace of the runtime thread that starts them.
    ///
    /// The first value counts every tracker as [`Observation::Pending`] (down), except file
    /// trackers, which are read before this returns; [`TrackerSet::settled`] waits for the rest.
    pub fn start(trackers: Vec<Tracker>, metrics: Metrics) -> (Self, watch::Receiver<TrackState>) {
        let initial: Vec<Observation> = vec![Observation::Pending; trackers.len()];
        let names: Vec<(String, i32)> = trackers
            .iter()
            .map(|t| (t.name.clone(), t.weight))
            .collect();
        let first = aggregate(
            &names
                .iter()
                .map(|(_, weight)| (*weight, Observation::Pending))
                .collect::<Vec<_>>(),
        );
        let (state, receiver) = watch::channel(first);
        let (pending, _) = watch::channel(trackers.len());
        let shared = Arc::new(Shared {
            trackers: names,
            observations: Mutex::new(initial),
            state,
            pending,
            metrics,
        });
        let mut tasks = Vec::with_capacity(trackers.len());
        for (index, tracker) in trackers.into_iter().enumerate() {
            let slot = Slot {
                shared: Arc::clone(&shared),
                index,
            };
            tracing::debug!(tracker = %tracker.name, kind = tracker.probe.kind(), weight = tracker.weight, "starting tracker");
            let task = match tracker.probe {
                Probe::Interface { interface } => {
                    let watch = interface::LinkWatch::open()
                        .inspect_err(|error| {
                            tracing::warn!(%interface, %error, "cannot open a netlink link watch yet; the tracker task retries");
                        })
                        .ok();
                    tokio::spawn(interface::track(interface, watch, slot))
                }
                Probe::File(probe) => {
                    slot.report_counting_failure_on_change(file::read_now(&probe.path));
                    tokio::spawn(file::track(probe, slot))
                }
                Probe::Script(probe) => tokio::spawn(script::track(probe, slot)),
            };
            tasks.push(task);
        }
        (Self { shared, tasks }, receiver)
    }

    /// Each tracker's name and last observation, in configuration order.
    pub fn observations(&self) -> Vec<(String, Observation)> {
        let observations = self
            .shared
            .observations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.shared
            .trackers
            .iter()
            .map(|(name, _)| name.clone())
            .zip(observations)
            .collect()
    }

    /// Resolves once every tracker has reported at least once.
    pub async fn settled(&self) {
        let mut pending = self.shared.pending.subscribe();
        // The sender lives in `self.shared`, so this cannot fail while `self` is borrowed.
        let _ = pending.wait_for(|count| *count == 0).await;
    }
}

impl Drop for TrackerSet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
