//! Trackers (keepalived `track_interface`, `track_file`, `track_script`): each runs in its own
//! tokio task and feeds one instance's [`TrackState`] through a watch channel.
//!
//! A slow or hung script only delays its own task: the VRRP tasks read the latest
//! [`TrackState`] from the watch channel and never wait on a tracker.
//!
//! Semantics (keepalived's, with the choices keepalived leaves open written down):
//! - Weights: weight 0 → FAULT while failing; a positive weight is added while healthy; a
//!   negative weight is added while failing ([`aggregate::contribution`]). A tracker that has not
//!   reported yet is [`Observation::Pending`] and counts as failing; [`TrackerSet::settled`]
//!   waits until every tracker has reported once.
//! - Interfaces: healthy while the link has IFF_UP and IFF_RUNNING; a missing link is down.
//! - Files: the first token is an integer (empty file = 0); `weight × value` is added, weight 0
//!   means FAULT while the value is not 0, a product below -253 is FAULT. A missing, unreadable,
//!   oversized ([`file::MAX_FILE_BYTES`]) or non-integer file is FAULT whatever the weight. Read
//!   on a blocking thread at once and every [`FILE_INTERVAL`]; [`TrackerSet::files_read`]
//!   resolves once every file has been read.
//! - Scripts: argv run without a shell in its own process group, stdio closed; exit 0 is a
//!   success; a run past its timeout is killed (the whole group) and is a failure. The first
//!   result decides at once, then `rise` successes / `fall` failures in a row flip the state.
//! - Endpoints: up while the Service has a Ready endpoint on this node, as published into an
//!   [`EndpointReadiness`] (in cluster mode by the EndpointSlice watch); pending until known.
//! - Metrics: `kube_vrrp_check_up{tracker}` follows each tracker's health;
//!   `kube_vrrp_check_failures_total{tracker}` counts failed script runs, and files, interfaces
//!   and endpoints turning bad.

pub mod aggregate;
pub mod endpoints;
pub mod file;
pub mod host_dirs;
pub mod interface;
pub mod quorum;
pub mod real_server;
pub mod rise_fall;
pub mod script;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use kube_vrrp_crds::{CheckerKind, CheckerStatus, DurationString, ServiceRef, Track};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use aggregate::{Observation, TrackState, aggregate};
pub use endpoints::EndpointReadiness;
pub use file::FileProbe;
pub use quorum::QuorumFeed;
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
    /// A Service having a Ready endpoint on this node (from an [`EndpointReadiness`]).
    Endpoints(ServiceRef),
    /// A VirtualServer's quorum holding on this node (from a [`QuorumFeed`]).
    Quorum { virtual_server: String },
}

impl Probe {
    /// The tracker kind, for status and logs.
    pub fn kind(&self) -> CheckerKind {
        match self {
            Self::Interface { .. } => CheckerKind::Interface,
            Self::File(_) => CheckerKind::File,
            Self::Script(_) => CheckerKind::Script,
            Self::Endpoints(_) => CheckerKind::Endpoints,
            Self::Quorum { .. } => CheckerKind::VirtualServer,
        }
    }
}

/// How often a tracked file is read (the API has no field for it).
pub const FILE_INTERVAL: Duration = Duration::from_secs(1);

/// Used when a script's interval or timeout does not parse (the API server and `validate()`
/// reject such specs; this only guards a spec that bypassed them).
pub const DEFAULT_SCRIPT_PERIOD: Duration = Duration::from_secs(1);

impl Tracker {
    /// The runtime form of every tracker in `track`, in the order interfaces, files, scripts,
    /// endpoints, VirtualServers. Names (the `tracker` metric label) are `interface:<name>`,
    /// `file:<path>`, `script:<name>`, `endpoints:<namespace>/<name>` and
    /// `virtualserver:<name>`; a missing weight is 0 (FAULT when failing).
    pub fn from_spec(track: &Track) -> Vec<Tracker> {
        let mut out = Vec::new();
        for t in &track.interfaces {
            out.push(Tracker {
                name: format!("interface:{}", t.name),
                weight: t.weight.unwrap_or(0),
                probe: Probe::Interface {
                    interface: t.name.clone(),
                },
            });
        }
        for t in &track.files {
            out.push(Tracker {
                name: format!("file:{}", t.path),
                weight: t.weight.unwrap_or(0),
                probe: Probe::File(FileProbe {
                    path: PathBuf::from(&t.path),
                    interval: FILE_INTERVAL,
                }),
            });
        }
        for t in &track.scripts {
            let name = format!("script:{}", t.name);
            let period = |field: &str, value: &DurationString| {
                value.parse().unwrap_or_else(|error| {
                    tracing::error!(tracker = %name, field, %error, "invalid duration; using {DEFAULT_SCRIPT_PERIOD:?}");
                    DEFAULT_SCRIPT_PERIOD
                })
            };
            let probe = ScriptProbe {
                argv: t.command.clone(),
                interval: period("interval", &t.interval),
                timeout: period("timeout", &t.timeout),
                rise: t.rise,
                fall: t.fall,
            };
            out.push(Tracker {
                name,
                weight: t.weight.unwrap_or(0),
                probe: Probe::Script(probe),
            });
        }
        for t in &track.endpoints {
            out.push(Tracker {
                name: Self::endpoints_name(&t.service),
                weight: t.weight.unwrap_or(0),
                probe: Probe::Endpoints(t.service.clone()),
            });
        }
        for t in &track.virtual_servers {
            out.push(Tracker {
                name: format!("virtualserver:{}", t.name),
                weight: t.weight.unwrap_or(0),
                probe: Probe::Quorum {
                    virtual_server: t.name.clone(),
                },
            });
        }
        out
    }

    /// The name of the tracker of a Service's endpoints: `endpoints:<namespace>/<name>`.
    pub fn endpoints_name(service: &ServiceRef) -> String {
        format!("endpoints:{}/{}", service.namespace, service.name)
    }

    /// What the tracker watches, as `CheckerStatus.target` spells it.
    fn target(&self) -> String {
        match &self.probe {
            Probe::Interface { interface } => interface.clone(),
            Probe::File(file) => file.path.display().to_string(),
            Probe::Script(_) => self
                .name
                .strip_prefix("script:")
                .unwrap_or(&self.name)
                .to_owned(),
            Probe::Endpoints(service) => format!("{}/{}", service.namespace, service.name),
            Probe::Quorum { virtual_server } => virtual_server.clone(),
        }
    }
}

/// What one tracker last saw and since when.
#[derive(Debug, Clone)]
struct Entry {
    observation: Observation,
    since: Option<Timestamp>,
    /// How the last probe failed (scripts), for `CheckerStatus.message`.
    detail: Option<String>,
}

/// The fixed facts about one tracker of a set.
#[derive(Debug)]
struct Facts {
    name: String,
    weight: i32,
    kind: CheckerKind,
    target: String,
}

/// What every tracker of a set last saw, and where the aggregate goes.
struct Shared {
    trackers: Vec<Facts>,
    entries: Mutex<Vec<Entry>>,
    state: watch::Sender<TrackState>,
    pending: watch::Sender<usize>,
    /// File trackers that have not reported yet.
    files_pending: watch::Sender<usize>,
    metrics: Metrics,
}

impl Shared {
    fn weighted(&self, entries: &[Entry]) -> Vec<(i32, Observation)> {
        self.trackers
            .iter()
            .zip(entries)
            .map(|(facts, entry)| (facts.weight, entry.observation))
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
        &self.shared.trackers[self.index].name
    }

    fn weight(&self) -> i32 {
        self.shared.trackers[self.index].weight
    }

    /// Records the tracker's current observation and republishes the aggregate if it changed.
    /// Returns the previous observation.
    pub(crate) fn report(&self, observation: Observation) -> Observation {
        let shared = &self.shared;
        // Publish while holding the lock: two trackers reporting at once on different threads
        // must not let an older aggregate overwrite a newer one.
        let previous = {
            let mut entries = shared
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let entry = &mut entries[self.index];
            let previous = entry.observation;
            if previous != observation {
                entry.observation = observation;
                entry.since = Some(Timestamp::now());
            }
            let pending = entries
                .iter()
                .filter(|e| e.observation == Observation::Pending)
                .count();
            let files_pending = entries
                .iter()
                .zip(&shared.trackers)
                .filter(|(e, facts)| {
                    facts.kind == CheckerKind::File && e.observation == Observation::Pending
                })
                .count();
            shared.files_pending.send_if_modified(|current| {
                let changed = *current != files_pending;
                *current = files_pending;
                changed
            });
            let state = aggregate(&shared.weighted(&entries));
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
        };
        if previous != observation {
            tracing::info!(
                tracker = self.name(),
                kind = self.shared.trackers[self.index].kind.as_str(),
                from = previous.as_str(),
                to = observation.as_str(),
                value = ?observation,
                "tracker changed"
            );
        }
        shared
            .metrics
            .check_state(self.name(), aggregate::is_up(self.weight(), observation));
        previous
    }

    /// Reports `up(value)` of every value `receiver` sees (nothing while it is `None`), until
    /// the sender is gone: trackers that follow a state another task keeps (endpoint
    /// readiness, a VirtualServer's quorum).
    pub(crate) async fn follow<T>(
        &self,
        mut receiver: tokio::sync::watch::Receiver<T>,
        up: impl Fn(&T) -> Option<bool>,
    ) {
        loop {
            let known = up(&receiver.borrow_and_update());
            if let Some(up) = known {
                self.report_counting_failure_on_change(if up {
                    aggregate::Observation::Up
                } else {
                    aggregate::Observation::Down
                });
            }
            if receiver.changed().await.is_err() {
                return;
            }
        }
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

    /// Records how the last probe failed (`None` after a success).
    pub(crate) fn note(&self, detail: Option<String>) {
        let mut entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        entries[self.index].detail = detail;
    }

    /// Counts one failed probe in `kube_vrrp_check_failures_total`.
    pub(crate) fn count_failure(&self) {
        self.shared.metrics.check_failed(self.name());
    }
}

/// What trackers follow that the agent learns elsewhere: Services' endpoint readiness (cluster
/// mode's EndpointSlice watch) and VirtualServers' quorums (the health checks). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    pub endpoints: EndpointReadiness,
    pub quorums: QuorumFeed,
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
    /// The first value counts every tracker as [`Observation::Pending`] (down); nothing is read
    /// on the caller's thread. [`TrackerSet::files_read`] waits for the file trackers' first
    /// reads, [`TrackerSet::settled`] for every tracker's first result. Endpoint and quorum
    /// trackers follow nothing and stay pending: see [`TrackerSet::start_following`].
    pub fn start(trackers: Vec<Tracker>, metrics: Metrics) -> (Self, watch::Receiver<TrackState>) {
        Self::start_following(trackers, metrics, &Followed::default())
    }

    /// [`TrackerSet::start`], endpoint and quorum trackers following `followed`.
    pub fn start_following(
        trackers: Vec<Tracker>,
        metrics: Metrics,
        followed: &Followed,
    ) -> (Self, watch::Receiver<TrackState>) {
        let facts: Vec<Facts> = trackers
            .iter()
            .map(|t| Facts {
                name: t.name.clone(),
                weight: t.weight,
                kind: t.probe.kind(),
                target: t.target(),
            })
            .collect();
        let entries = vec![
            Entry {
                observation: Observation::Pending,
                since: None,
                detail: None,
            };
            trackers.len()
        ];
        let first = aggregate(
            &facts
                .iter()
                .map(|f| (f.weight, Observation::Pending))
                .collect::<Vec<_>>(),
        );
        let (state, receiver) = watch::channel(first);
        let (pending, _) = watch::channel(trackers.len());
        let files = trackers
            .iter()
            .filter(|t| matches!(t.probe, Probe::File(_)))
            .count();
        let (files_pending, _) = watch::channel(files);
        let shared = Arc::new(Shared {
            trackers: facts,
            entries: Mutex::new(entries),
            state,
            pending,
            files_pending,
            metrics,
        });
        let mut tasks = Vec::with_capacity(trackers.len());
        for (index, tracker) in trackers.into_iter().enumerate() {
            let slot = Slot {
                shared: Arc::clone(&shared),
                index,
            };
            tracing::debug!(tracker = %tracker.name, kind = tracker.probe.kind().as_str(), weight = tracker.weight, "starting tracker");
            match tracker.probe {
                Probe::Interface { interface } => {
                    let watch = interface::LinkWatch::open()
                        .inspect_err(|error| {
                            tracing::warn!(%interface, %error, "cannot open a netlink link watch yet; the tracker task retries");
                        })
                        .ok();
                    tasks.push(tokio::spawn(interface::track(interface, watch, slot)));
                }
                Probe::File(probe) => tasks.push(tokio::spawn(file::track(probe, slot))),
                Probe::Script(probe) => tasks.push(tokio::spawn(script::track(probe, slot))),
                Probe::Endpoints(service) => tasks.push(tokio::spawn(endpoints::track(
                    service,
                    followed.endpoints.clone(),
                    slot,
                ))),
                Probe::Quorum { virtual_server } => tasks.push(tokio::spawn(quorum::track(
                    virtual_server,
                    followed.quorums.clone(),
                    slot,
                ))),
            }
        }
        (Self { shared, tasks }, receiver)
    }

    /// [`TrackerSet::start`] for the trackers of a `VrrpNode` instance (see
    /// [`Tracker::from_spec`]).
    pub fn spawn(
        track: &Track,
        metrics: Metrics,
        followed: &Followed,
    ) -> (Self, watch::Receiver<TrackState>) {
        Self::start_following(Tracker::from_spec(track), metrics, followed)
    }

    /// The trackers as `VrrpNode.status.checkers` entries owned by `owner` (the instance).
    pub fn checker_statuses(&self, owner: &str) -> Vec<CheckerStatus> {
        let entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.shared
            .trackers
            .iter()
            .zip(entries)
            .map(|(facts, entry)| {
                let healthy = aggregate::is_up(facts.weight, entry.observation);
                CheckerStatus {
                    kind: facts.kind,
                    owner: owner.to_owned(),
                    target: facts.target.clone(),
                    healthy,
                    last_transition_time: entry.since.map(Into::into),
                    message: (!healthy)
                        .then(|| entry.detail.unwrap_or_else(|| describe(entry.observation))),
                    last_result: None,
                }
            })
            .collect()
    }

    /// Each tracker's name and last observation, in configuration order.
    pub fn observations(&self) -> Vec<(String, Observation)> {
        let entries = self
            .shared
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.shared
            .trackers
            .iter()
            .zip(entries)
            .map(|(facts, entry)| (facts.name.clone(), entry.observation))
            .collect()
    }

    /// Resolves once every file tracker has been read once (files are read on blocking threads;
    /// this is the moment the set's state reflects them). Owns what it waits on, so it can be
    /// awaited by another task than the set's owner.
    pub fn files_read(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut pending = self.shared.files_pending.subscribe();
        async move {
            // The sender lives as long as the set; if the set is gone, nothing is pending.
            let _ = pending.wait_for(|count| *count == 0).await;
        }
    }

    /// Resolves once every tracker has reported at least once.
    pub async fn settled(&self) {
        let mut pending = self.shared.pending.subscribe();
        // The sender lives in `self.shared`, so this cannot fail while `self` is borrowed.
        let _ = pending.wait_for(|count| *count == 0).await;
    }
}

/// Why an unhealthy tracker is unhealthy, for `CheckerStatus.message`.
fn describe(observation: Observation) -> String {
    match observation {
        Observation::Pending => "no result yet".to_owned(),
        Observation::Up => "up".to_owned(),
        Observation::Down => "down or failing".to_owned(),
        Observation::Value(value) => format!("file holds {value}"),
        Observation::Unreadable => "file missing, unreadable or not an integer".to_owned(),
    }
}

impl Drop for TrackerSet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
