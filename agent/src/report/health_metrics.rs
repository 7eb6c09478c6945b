//! The metrics of real-server health checks and VirtualServer quorums:
//! `kube_vrrp_realserver_checks_total{virtualserver, real_server, result}` (every attempt,
//! retries included), `kube_vrrp_realserver_check_duration_seconds{virtualserver, kind}`,
//! `kube_vrrp_realserver_up{virtualserver, real_server}` (the verdict: 1 in the pool),
//! `kube_vrrp_virtualserver_quorum_up{virtualserver}`,
//! `kube_vrrp_virtualserver_healthy_weight{virtualserver}`,
//! `kube_vrrp_virtualserver_sorry_server_active{virtualserver}`,
//! `kube_vrrp_health_io_restarts_total` (the loop of the TCP and plain-HTTP checks started
//! again after it ended: a panic, a failed poll) and
//! `kube_vrrp_health_io_last_restart_timestamp_seconds` (the Unix time of the last such
//! restart, 0 before any: what the chart's alert reads, since a counter whose first scrape
//! already holds a restart shows no increase).
//!
//! Label values are bounded by the configuration (VirtualServer names, real servers) and by
//! the static `result` and `kind` words.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use kube_vrrp_crds::CheckResult;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::Metrics;
use super::metrics::unix_seconds;
use crate::check::real_server::Quorum;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    virtualserver: String,
    real_server: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    virtualserver: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RealServerLabels {
    virtualserver: String,
    real_server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    virtualserver: String,
}

/// The series of one real server's checks (see [`Metrics::real_server_check_series`]).
pub struct RealServerCheckSeries {
    checks: Family<CheckLabels, Counter>,
    /// The real server's labels; `result` is set per lookup.
    labels: CheckLabels,
    /// The counters of the results seen so far (a series appears with its first attempt).
    by_result: Vec<(&'static str, Counter)>,
    duration: Histogram,
}

impl std::fmt::Debug for RealServerCheckSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealServerCheckSeries")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl RealServerCheckSeries {
    /// Counts one attempt that ended with `result` after `took`.
    pub fn record(&mut self, result: &'static str, took: Duration) {
        let known = self.by_result.iter().find(|(r, _)| *r == result);
        if let Some((_, counter)) = known {
            counter.inc();
        } else {
            self.labels.result = result;
            let counter = self.checks.get_or_create_owned(&self.labels);
            counter.inc();
            self.by_result.push((result, counter));
        }
        self.duration.observe(took.as_secs_f64());
    }
}

/// Every check kind, for removing a VirtualServer's duration series.
const KINDS: [&str; 4] = ["tcp", "http", "https", "script"];

/// The families, registered once with the agent's registry.
pub(super) struct HealthFamilies {
    checks: Family<CheckLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
    up: Family<RealServerLabels, Gauge>,
    quorum_up: Family<ServerLabels, Gauge>,
    healthy_weight: Family<ServerLabels, Gauge>,
    sorry_server: Family<ServerLabels, Gauge>,
    health_io_restarts: Counter,
    /// Exported at 0 before any restart rather than left out: the series exists from the
    /// agent's first scrape, so a rule reading it never depends on its absence, and 0 reads
    /// as a restart at the epoch, decades old, which no "recent restart" rule takes for one.
    health_io_last_restart: Gauge<f64, AtomicU64>,
}

impl HealthFamilies {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let families = Self {
            checks: Family::default(),
            // 0.5 ms to about 16 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            up: Family::default(),
            quorum_up: Family::default(),
            healthy_weight: Family::default(),
            sorry_server: Family::default(),
            health_io_restarts: Counter::default(),
            health_io_last_restart: Gauge::default(),
        };
        registry.register(
            "realserver_checks",
            "Health check attempts of real servers (retries included), by result",
            families.checks.clone(),
        );
        registry.register_with_unit(
            "realserver_check_duration",
            "Time one health check attempt took",
            Unit::Seconds,
            families.duration.clone(),
        );
        registry.register(
            "realserver_up",
            "Real server health verdict: 1 in the pool (healthy, or not checked yet), 0 failing",
            families.up.clone(),
        );
        registry.register(
            "virtualserver_quorum_up",
            "1 while the healthy real servers' weights reach the VirtualServer's quorum on this node",
            families.quorum_up.clone(),
        );
        registry.register(
            "virtualserver_healthy_weight",
            "Sum of the weights of the VirtualServer's healthy real servers on this node",
            families.healthy_weight.clone(),
        );
        registry.register(
            "virtualserver_sorry_server_active",
            "1 while the sorry server takes all traffic of the VirtualServer on this node",
            families.sorry_server.clone(),
        );
        registry.register(
            "health_io_restarts",
            "Times the loop of the TCP and plain-HTTP checks was started again after it ended (a panic, a failed poll); its checks start afresh",
            families.health_io_restarts.clone(),
        );
        registry.register_with_unit(
            "health_io_last_restart_timestamp",
            "Unix time of the last restart of the loop of the TCP and plain-HTTP checks; 0 before any",
            Unit::Seconds,
            families.health_io_last_restart.clone(),
        );
        families
    }
}

impl Metrics {
    fn health(&self) -> &HealthFamilies {
        &self.inner.health
    }

    /// Counts one attempt of a real server's check and its duration.
    pub fn real_server_check(
        &self,
        virtual_server: &str,
        real_server: &str,
        result: &'static str,
        kind: &'static str,
        took: Duration,
    ) {
        self.real_server_check_series(virtual_server, real_server, kind)
            .record(result, took);
    }

    /// The series the checks of one real server update, resolved now: an attempt then costs
    /// no label lookup. Resolve them again after [`Metrics::forget_real_server`].
    pub fn real_server_check_series(
        &self,
        virtual_server: &str,
        real_server: &str,
        kind: &'static str,
    ) -> RealServerCheckSeries {
        RealServerCheckSeries {
            checks: self.health().checks.clone(),
            labels: CheckLabels {
                virtualserver: virtual_server.to_owned(),
                real_server: real_server.to_owned(),
                result: "",
            },
            by_result: Vec::new(),
            duration: self.health().duration.get_or_create_owned(&DurationLabels {
                virtualserver: virtual_server.to_owned(),
                kind,
            }),
        }
    }

    /// Sets a real server's verdict.
    pub fn real_server_up(&self, virtual_server: &str, real_server: &str, up: bool) {
        self.health()
            .up
            .get_or_create(&RealServerLabels {
                virtualserver: virtual_server.to_owned(),
                real_server: real_server.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Removes a real server's series (no longer checked).
    pub fn forget_real_server(&self, virtual_server: &str, real_server: &str) {
        let health = self.health();
        health.up.remove(&RealServerLabels {
            virtualserver: virtual_server.to_owned(),
            real_server: real_server.to_owned(),
        });
        for result in CheckResult::ALL {
            health.checks.remove(&CheckLabels {
                virtualserver: virtual_server.to_owned(),
                real_server: real_server.to_owned(),
                result: result.label(),
            });
        }
    }

    /// Sets a VirtualServer's quorum series.
    pub fn quorum(&self, virtual_server: &str, quorum: &Quorum) {
        let health = self.health();
        let labels = ServerLabels {
            virtualserver: virtual_server.to_owned(),
        };
        health
            .quorum_up
            .get_or_create(&labels)
            .set(i64::from(quorum.up));
        health
            .healthy_weight
            .get_or_create(&labels)
            .set(i64::try_from(quorum.healthy_weight).unwrap_or(i64::MAX));
        health
            .sorry_server
            .get_or_create(&labels)
            .set(i64::from(quorum.sorry_server_active));
    }

    /// Stamps the time of a restart of the loop of the TCP and plain-HTTP checks, `at` (the
    /// wall clock, taken by the caller), and counts it: stamped first, so that whoever sees
    /// the count rise sees its time.
    pub fn health_io_restarted(&self, at: SystemTime) {
        let health = self.health();
        health.health_io_last_restart.set(unix_seconds(at));
        health.health_io_restarts.inc();
    }

    /// Removes a VirtualServer's series (no longer configured).
    pub fn forget_virtual_server(&self, virtual_server: &str) {
        let health = self.health();
        let labels = ServerLabels {
            virtualserver: virtual_server.to_owned(),
        };
        health.quorum_up.remove(&labels);
        health.healthy_weight.remove(&labels);
        health.sorry_server.remove(&labels);
        for kind in KINDS {
            health.duration.remove(&DurationLabels {
                virtualserver: virtual_server.to_owned(),
                kind,
            });
        }
    }
}
