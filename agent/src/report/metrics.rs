//! The agent's Prometheus metrics (`kube_vrrp_*`): one registry, bounded label values.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::vrrp::instance::State;
use crate::vrrp::packet::DropReason;

/// Every state, in the order the state series are written.
const STATES: [State; 4] = [
    State::Initialize,
    State::Backup,
    State::Master,
    State::Fault,
];

/// `at` as the value of a `*_timestamp_seconds` gauge: seconds since the Unix epoch, 0 for a
/// clock set before it.
pub(crate) fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

// The VRRP instance's label is `vrrp_instance`, not `instance`: Prometheus sets `instance` on
// every scraped series to the scrape target, and a metric's own `instance` would either replace it
// (honor_labels) or be renamed to `exported_instance`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    vrrp_instance: String,
    vrid: u8,
    interface: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    vrrp_instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    interface: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrackerLabels {
    tracker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceLabels {
    interface: String,
}

/// The buckets of an instance's failover histogram, as fractions of its Master_Down_Interval:
/// a planned handover lands near Skew_Time (well below 1), a MASTER that died just above 1.
pub const FAILOVER_BUCKETS: [f64; 18] = [
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 0.9, 0.95, 0.98, 1.0, 1.01, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0,
    3.0,
];

/// `kube_vrrp_instance_failover_seconds`: one classic histogram per instance, its buckets
/// placed around that instance's own Master_Down_Interval (a `Family` shares one set of
/// buckets between all its series, so this collector keeps its own).
#[derive(Debug, Default)]
struct FailoverHistograms {
    /// By instance: the Master_Down_Interval the buckets were made for, and the histogram.
    by_instance: Mutex<BTreeMap<String, (Duration, Histogram)>>,
}

impl FailoverHistograms {
    fn observe(&self, instance: &str, took: Duration, master_down_interval: Duration) {
        let mut map = self
            .by_instance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(instance.to_owned()).or_insert_with(|| {
            (
                master_down_interval,
                failover_histogram(master_down_interval),
            )
        });
        if entry.0 != master_down_interval {
            // New timers: a new series with buckets around the new interval.
            *entry = (
                master_down_interval,
                failover_histogram(master_down_interval),
            );
        }
        entry.1.observe(took.as_secs_f64());
    }

    fn forget(&self, instance: &str) {
        self.by_instance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance);
    }
}

/// Bucket bounds are whole microseconds (the resolution of the timers), so that their `le`
/// labels read as plain decimals.
fn failover_histogram(master_down_interval: Duration) -> Histogram {
    #[allow(clippy::cast_precision_loss)] // a Master_Down_Interval is far below 2^52 µs
    let micros = master_down_interval.as_micros() as f64;
    Histogram::new(
        FAILOVER_BUCKETS
            .iter()
            .map(move |fraction| (fraction * micros).round() / 1e6),
    )
}

impl Collector for FailoverHistograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let map = self
            .by_instance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut metric = encoder.encode_descriptor(
            "instance_failover",
            "Each BACKUP to MASTER transition of the instance, at the new MASTER: from the last advert heard from the old MASTER to its own first advert. Buckets are fractions of the instance's Master_Down_Interval (0.05 to 3)",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (instance, (_, histogram)) in map.iter() {
            let labels = InstanceLabels {
                vrrp_instance: instance.clone(),
            };
            histogram.encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The counters of one interface's receive loop, resolved once, so that counting a packet
/// takes neither a lock nor an allocation.
#[derive(Clone, Debug)]
pub struct ReceiveCounters {
    dropped: Vec<(DropReason, Counter)>,
    errors: Counter,
}

impl ReceiveCounters {
    /// Counts `count` packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason, count: u64) {
        if let Some((_, counter)) = self.dropped.iter().find(|(r, _)| *r == reason) {
            counter.inc_by(count);
        }
    }

    /// Counts one error of the socket itself (not of one datagram).
    pub fn socket_error(&self) {
        self.errors.inc();
    }
}

/// The agent's metrics. Cheap to clone; every clone updates the same registry.
///
/// Label values are bounded: instance, interface and tracker names come from configuration, and
/// states and drop reasons are static strings. The VRRP instance's label is `vrrp_instance`, so
/// that it never collides with the scrape target's `instance` label.
#[derive(Clone)]
pub struct Metrics {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    registry: Registry,
    /// Real-server checks and quorums (see `health_metrics`).
    pub(super) health: super::health_metrics::HealthFamilies,
    instance_state: Family<StateLabels, Gauge>,
    transitions: Family<InstanceLabels, Counter>,
    effective_priority: Family<InstanceLabels, Gauge>,
    adverts_sent: Family<InstanceLabels, Counter>,
    adverts_received: Family<InstanceLabels, Counter>,
    packets_dropped: Family<DropLabels, Counter>,
    last_transition: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    advert_interval: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    check_up: Family<TrackerLabels, Gauge>,
    check_failures: Family<TrackerLabels, Counter>,
    receive_errors: Family<InterfaceLabels, Counter>,
    vip_conflicts: Family<InstanceLabels, Gauge>,
    vip_add_failures: Family<InstanceLabels, Counter>,
    vips_restored: Family<InstanceLabels, Counter>,
    adverts_heard_late: Family<InstanceLabels, Counter>,
    holder_conflict: Family<InstanceLabels, Gauge>,
    holder_conflict_detections: Family<InstanceLabels, Counter>,
    failovers: Arc<FailoverHistograms>,
    /// The (vrid, interface) labels of each instance's state series, so that they can be removed.
    placements: Mutex<HashMap<String, (u8, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every `kube_vrrp_*` family registered (and no series yet).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kube_vrrp");
        let instance_state = Family::<StateLabels, Gauge>::default();
        let transitions = Family::<InstanceLabels, Counter>::default();
        let effective_priority = Family::<InstanceLabels, Gauge>::default();
        let adverts_sent = Family::<InstanceLabels, Counter>::default();
        let adverts_received = Family::<InstanceLabels, Counter>::default();
        let packets_dropped = Family::<DropLabels, Counter>::default();
        let last_transition = Family::<InstanceLabels, Gauge<f64, AtomicU64>>::default();
        let advert_interval = Family::<InstanceLabels, Gauge<f64, AtomicU64>>::default();
        let check_up = Family::<TrackerLabels, Gauge>::default();
        let check_failures = Family::<TrackerLabels, Counter>::default();
        let receive_errors = Family::<InterfaceLabels, Counter>::default();
        let vip_conflicts = Family::<InstanceLabels, Gauge>::default();
        let vip_add_failures = Family::<InstanceLabels, Counter>::default();
        let vips_restored = Family::<InstanceLabels, Counter>::default();
        let adverts_heard_late = Family::<InstanceLabels, Counter>::default();
        let holder_conflict = Family::<InstanceLabels, Gauge>::default();
        let holder_conflict_detections = Family::<InstanceLabels, Counter>::default();
        registry.register(
            "instance_state",
            "VRRP instance state: 1 for the current state, 0 for the others",
            instance_state.clone(),
        );
        registry.register(
            "instance_transitions",
            "VRRP state transitions of the instance",
            transitions.clone(),
        );
        registry.register(
            "instance_effective_priority",
            "Priority advertised after tracker weights",
            effective_priority.clone(),
        );
        registry.register(
            "adverts_sent",
            "VRRP advertisements sent by the instance",
            adverts_sent.clone(),
        );
        registry.register(
            "adverts_received",
            "Valid VRRP advertisements received by the instance",
            adverts_received.clone(),
        );
        registry.register(
            "packets_dropped",
            "Received VRRP packets dropped, by reason",
            packets_dropped.clone(),
        );
        registry.register_with_unit(
            "instance_last_transition_timestamp",
            "Unix time of the instance's last state transition",
            Unit::Seconds,
            last_transition.clone(),
        );
        registry.register_with_unit(
            "instance_advert_interval",
            "The instance's configured advertisement interval (what a MASTER's adverts_sent should follow)",
            Unit::Seconds,
            advert_interval.clone(),
        );
        let started = Gauge::<f64, AtomicU64>::default();
        started.set(unix_seconds(SystemTime::now()));
        registry.register_with_unit(
            "agent_start_timestamp",
            "Unix time this agent started (a change between scrapes is a restart, whatever its counters did)",
            Unit::Seconds,
            started,
        );
        registry.register("check_up", "Tracker health: 1 up, 0 down", check_up.clone());
        registry.register(
            "check_failures",
            "Failed tracker probes (script runs that failed or timed out, files and interfaces turning bad)",
            check_failures.clone(),
        );
        registry.register(
            "receive_errors",
            "Errors of a VRRP receive socket itself; errors of one datagram are counted in packets_dropped",
            receive_errors.clone(),
        );
        registry.register(
            "vip_conflicts",
            "Virtual addresses of the instance present on its interface but installed by someone else: left alone, the instance stays in FAULT",
            vip_conflicts.clone(),
        );
        registry.register(
            "vip_add_failures",
            "Failed attempts to install the instance's virtual addresses (each puts it in FAULT until a retry)",
            vip_add_failures.clone(),
        );
        registry.register(
            "vip_restored",
            "Virtual addresses re-added after something else removed them while the instance was MASTER",
            vips_restored.clone(),
        );
        registry.register(
            "adverts_heard_late",
            "Adverts a BACKUP read after its Master_Down deadline had passed (found waiting after a stall of this node), heard before the deadline was served",
            adverts_heard_late.clone(),
        );
        registry.register(
            "instance_conflict",
            "1 while another node answers ARP/NDP for a VIP this MASTER holds (split brain seen by this agent's own probes), else 0",
            holder_conflict.clone(),
        );
        registry.register(
            "instance_conflict_detections",
            "Times this agent's probes found another node answering for a VIP it holds as MASTER",
            holder_conflict_detections.clone(),
        );
        let failovers = Arc::new(FailoverHistograms::default());
        registry.register_collector(Box::new(Arc::clone(&failovers)));
        let health = super::health_metrics::HealthFamilies::register(&mut registry);
        Self {
            inner: Arc::new(Inner {
                health,
                registry,
                failovers,
                instance_state,
                transitions,
                effective_priority,
                adverts_sent,
                adverts_received,
                packets_dropped,
                last_transition,
                advert_interval,
                check_up,
                check_failures,
                receive_errors,
                vip_conflicts,
                vip_add_failures,
                vips_restored,
                adverts_heard_late,
                holder_conflict,
                holder_conflict_detections,
                placements: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn instance(instance: &str) -> InstanceLabels {
        InstanceLabels {
            vrrp_instance: instance.to_owned(),
        }
    }

    fn tracker(tracker: &str) -> TrackerLabels {
        TrackerLabels {
            tracker: tracker.to_owned(),
        }
    }

    /// Records a state change of `instance`: sets the state series (1 for `to`, 0 for the other
    /// three), counts the transition and stamps its time.
    pub fn transition(&self, instance: &str, vrid: u8, interface: &str, to: State) {
        self.state(instance, vrid, interface, to);
        let labels = Self::instance(instance);
        self.inner.transitions.get_or_create(&labels).inc();
        let now = unix_seconds(SystemTime::now());
        self.inner.last_transition.get_or_create(&labels).set(now);
    }

    /// Sets the state series of `instance` without counting a transition (an instance just
    /// configured, in Initialize). Also creates its counters at 0 so that they exist from the
    /// start. A new `vrid` or `interface` replaces the old series.
    pub fn state(&self, instance: &str, vrid: u8, interface: &str, state: State) {
        {
            let mut placements = self
                .inner
                .placements
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let placement = (vrid, interface.to_owned());
            if let Some(old) = placements.insert(instance.to_owned(), placement.clone())
                && old != placement
            {
                self.remove_state_series(instance, &old);
            }
        }
        for candidate in STATES {
            self.inner
                .instance_state
                .get_or_create(&StateLabels {
                    vrrp_instance: instance.to_owned(),
                    vrid,
                    interface: interface.to_owned(),
                    state: candidate.as_str(),
                })
                .set(i64::from(candidate == state));
        }
        let labels = Self::instance(instance);
        let _ = self.inner.transitions.get_or_create(&labels);
        let _ = self.inner.adverts_sent.get_or_create(&labels);
        let _ = self.inner.adverts_received.get_or_create(&labels);
        let _ = self.inner.vip_conflicts.get_or_create(&labels);
        let _ = self.inner.vip_add_failures.get_or_create(&labels);
        let _ = self.inner.vips_restored.get_or_create(&labels);
        let _ = self.inner.holder_conflict.get_or_create(&labels);
        let _ = self.inner.holder_conflict_detections.get_or_create(&labels);
    }

    fn remove_state_series(&self, instance: &str, (vrid, interface): &(u8, String)) {
        for state in STATES {
            self.inner.instance_state.remove(&StateLabels {
                vrrp_instance: instance.to_owned(),
                vrid: *vrid,
                interface: interface.clone(),
                state: state.as_str(),
            });
        }
    }

    /// Removes every series of `instance` (when it is deconfigured). Drop counters are per
    /// interface and stay.
    pub fn forget(&self, instance: &str) {
        let placement = self
            .inner
            .placements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(instance);
        if let Some(placement) = placement {
            self.remove_state_series(instance, &placement);
        }
        let labels = Self::instance(instance);
        self.inner.transitions.remove(&labels);
        self.inner.effective_priority.remove(&labels);
        self.inner.adverts_sent.remove(&labels);
        self.inner.adverts_received.remove(&labels);
        self.inner.last_transition.remove(&labels);
        self.inner.advert_interval.remove(&labels);
        self.inner.vip_conflicts.remove(&labels);
        self.inner.vip_add_failures.remove(&labels);
        self.inner.vips_restored.remove(&labels);
        self.inner.adverts_heard_late.remove(&labels);
        self.inner.holder_conflict.remove(&labels);
        self.inner.holder_conflict_detections.remove(&labels);
        self.inner.failovers.forget(instance);
    }

    /// Records one failover of `instance` to this node: `took` from the last advert heard from
    /// the old MASTER to this node's first advert as MASTER, in a histogram with buckets around
    /// `master_down_interval`.
    pub fn failover(&self, instance: &str, took: Duration, master_down_interval: Duration) {
        self.inner
            .failovers
            .observe(instance, took, master_down_interval);
    }

    /// Sets how many of `instance`'s VIPs another owner holds on its interface.
    pub fn vip_conflicts(&self, instance: &str, count: usize) {
        self.inner
            .vip_conflicts
            .get_or_create(&Self::instance(instance))
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets whether another node answers for a VIP `instance` holds as MASTER.
    pub fn holder_conflict(&self, instance: &str, conflict: bool) {
        self.inner
            .holder_conflict
            .get_or_create(&Self::instance(instance))
            .set(i64::from(conflict));
    }

    /// Counts one detection of another holder of `instance`'s VIPs.
    pub fn holder_conflict_detected(&self, instance: &str) {
        self.inner
            .holder_conflict_detections
            .get_or_create(&Self::instance(instance))
            .inc();
    }

    /// Counts one failed attempt to install `instance`'s VIPs.
    pub fn vip_add_failed(&self, instance: &str) {
        self.inner
            .vip_add_failures
            .get_or_create(&Self::instance(instance))
            .inc();
    }

    /// Counts `count` VIPs of `instance` re-added after something else removed them.
    pub fn vips_restored(&self, instance: &str, count: usize) {
        self.inner
            .vips_restored
            .get_or_create(&Self::instance(instance))
            .inc_by(count as u64);
    }

    /// The counter of adverts `instance` read past its Master_Down deadline: the member's
    /// routine keeps it, for the routine adverts the receive path takes and the queued ones
    /// its unit hears (see `driver::routine`).
    pub fn adverts_heard_late_counter(&self, instance: &str) -> Counter {
        self.inner
            .adverts_heard_late
            .get_or_create(&Self::instance(instance))
            .clone()
    }

    /// Counts one advertisement sent by `instance`.
    pub fn advert_sent(&self, instance: &str) {
        self.inner
            .adverts_sent
            .get_or_create(&Self::instance(instance))
            .inc();
    }

    /// The counter of adverts `instance` sent: the unit task keeps it and counts each advert
    /// without a label lookup.
    pub fn adverts_sent_counter(&self, instance: &str) -> Counter {
        self.inner
            .adverts_sent
            .get_or_create(&Self::instance(instance))
            .clone()
    }

    /// Counts one valid advertisement received by `instance`.
    pub fn advert_received(&self, instance: &str) {
        self.inner
            .adverts_received
            .get_or_create(&Self::instance(instance))
            .inc();
    }

    /// The counter of adverts `instance` received: the receive path keeps it and counts
    /// without a lookup (nor the label it would allocate).
    pub fn adverts_received_counter(&self, instance: &str) -> Counter {
        self.inner
            .adverts_received
            .get_or_create(&Self::instance(instance))
            .clone()
    }

    /// Counts one packet dropped on `interface`.
    pub fn dropped(&self, interface: &str, reason: DropReason) {
        self.inner
            .packets_dropped
            .get_or_create(&DropLabels {
                interface: interface.to_owned(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// The counters of `interface`'s receive loop, every one created at 0 (so that `rate()`
    /// sees the first drop).
    pub fn receive_counters(&self, interface: &str) -> ReceiveCounters {
        let dropped = DropReason::ALL
            .into_iter()
            .map(|reason| {
                let counter = self
                    .inner
                    .packets_dropped
                    .get_or_create(&DropLabels {
                        interface: interface.to_owned(),
                        reason: reason.as_str(),
                    })
                    .clone();
                (reason, counter)
            })
            .collect();
        let errors = self
            .inner
            .receive_errors
            .get_or_create(&InterfaceLabels {
                interface: interface.to_owned(),
            })
            .clone();
        ReceiveCounters { dropped, errors }
    }

    /// Sets the priority `instance` advertises after tracker weights.
    /// Sets the advertisement interval `instance` is configured with (alert rules compare a
    /// MASTER's silence with it).
    pub fn advert_interval(&self, instance: &str, interval: std::time::Duration) {
        self.inner
            .advert_interval
            .get_or_create(&Self::instance(instance))
            .set(interval.as_secs_f64());
    }

    pub fn effective_priority(&self, instance: &str, priority: u8) {
        self.inner
            .effective_priority
            .get_or_create(&Self::instance(instance))
            .set(i64::from(priority));
    }

    /// Records one probe of `tracker`: sets `kube_vrrp_check_up` and, when `up` is false, counts a
    /// failure. Same as [`Metrics::check_state`] plus [`Metrics::check_failed`] when down.
    pub fn check(&self, tracker: &str, up: bool) {
        if !up {
            self.check_failed(tracker);
        }
        self.check_state(tracker, up);
    }

    /// Sets `kube_vrrp_check_up{tracker}` without counting anything.
    pub fn check_state(&self, tracker: &str, up: bool) {
        self.inner
            .check_up
            .get_or_create(&Self::tracker(tracker))
            .set(i64::from(up));
    }

    /// Counts one failure of `tracker`.
    pub fn check_failed(&self, tracker: &str) {
        self.inner
            .check_failures
            .get_or_create(&Self::tracker(tracker))
            .inc();
    }

    /// Removes a tracker's series (when it is deconfigured).
    pub fn forget_tracker(&self, tracker: &str) {
        let labels = Self::tracker(tracker);
        self.inner.check_up.remove(&labels);
        self.inner.check_failures.remove(&labels);
    }

    /// The whole registry in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and the registry holds only well-formed families.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}
