//! The operator's Prometheus metrics. Their names are a contract with the chart's alert
//! rules (`charts/kube-vrrp/rules/`): do not rename them.
//!
//! Only the leader exports the per-VirtualIP and per-node gauges (a standby clears them), so
//! a standby with a frozen view can never hide the leader's numbers in `max by` / `min by`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `controller` label of the one global sync pass.
pub const SYNC_CONTROLLER: &str = "sync";
/// The leader election's controller label: failed reads and writes of the Lease.
pub const LEASE_CONTROLLER: &str = "lease";

/// Labels `{virtualip}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VirtualIpLabels {
    /// VirtualIP name.
    pub virtualip: String,
}

/// Labels `{virtualip, condition}`: one series per condition type of the VirtualIP's status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VirtualIpConditionLabels {
    /// VirtualIP name.
    pub virtualip: String,
    /// Condition type (`Ready`, `SplitBrain`, `Degraded`, `Conflict`).
    pub condition: String,
}

/// Labels `{node}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// Node (and VrrpNode) name.
    pub node: String,
}

/// Labels `{controller}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Controller name.
    pub controller: &'static str,
}

/// Labels `{controller, reason}`; `reason` is an `ErrorReason::as_str()`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller name.
    pub controller: &'static str,
    /// Static error reason.
    pub reason: &'static str,
}

/// Every operator metric, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    /// `kube_vrrp_virtualip_masters{virtualip}`: fresh MASTER reports.
    pub virtualip_masters: Family<VirtualIpLabels, Gauge>,
    /// `kube_vrrp_virtualip_ready{virtualip}`: 1 with exactly one fresh MASTER.
    pub virtualip_ready: Family<VirtualIpLabels, Gauge>,
    /// `kube_vrrp_virtualip_condition{virtualip,condition}`: 1 while the condition is True.
    pub virtualip_condition: Family<VirtualIpConditionLabels, Gauge>,
    /// `kube_vrrp_reconcile_total{controller}`.
    pub reconcile_total: Family<ControllerLabels, Counter>,
    /// `kube_vrrp_reconcile_errors_total{controller,reason}`.
    pub reconcile_errors_total: Family<ErrorLabels, Counter>,
    /// `kube_vrrp_reconcile_duration_seconds`.
    pub reconcile_duration_seconds: Histogram,
    /// `kube_vrrp_vrrpnode_heartbeat_age_seconds{node}`.
    pub vrrpnode_heartbeat_age_seconds: Family<NodeLabels, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let virtualip_masters = Family::<VirtualIpLabels, Gauge>::default();
        let virtualip_ready = Family::<VirtualIpLabels, Gauge>::default();
        let virtualip_condition = Family::<VirtualIpConditionLabels, Gauge>::default();
        let reconcile_total = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors_total = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let vrrpnode_heartbeat_age_seconds = Family::<NodeLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "kube_vrrp_virtualip_masters",
            "Nodes with a fresh MASTER report for the VirtualIP",
            virtualip_masters.clone(),
        );
        registry.register(
            "kube_vrrp_virtualip_ready",
            "1 when exactly one node is MASTER of the VirtualIP",
            virtualip_ready.clone(),
        );
        registry.register(
            "kube_vrrp_virtualip_condition",
            "1 while the VirtualIP's status condition of this type is True, else 0",
            virtualip_condition.clone(),
        );
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "kube_vrrp_reconcile",
            "Sync passes run",
            reconcile_total.clone(),
        );
        registry.register(
            "kube_vrrp_reconcile_errors",
            "Sync passes that failed, by reason",
            reconcile_errors_total.clone(),
        );
        registry.register(
            "kube_vrrp_reconcile_duration_seconds",
            "Duration of a sync pass",
            reconcile_duration_seconds.clone(),
        );
        registry.register(
            "kube_vrrp_vrrpnode_heartbeat_age_seconds",
            "Seconds since the node's agent last wrote its VrrpNode status",
            vrrpnode_heartbeat_age_seconds.clone(),
        );
        Self {
            registry,
            virtualip_masters,
            virtualip_ready,
            virtualip_condition,
            reconcile_total,
            reconcile_errors_total,
            reconcile_duration_seconds,
            vrrpnode_heartbeat_age_seconds,
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Forgets every per-VirtualIP and per-node series (a standby exports none).
    pub fn clear_views(&self) {
        self.virtualip_masters.clear();
        self.virtualip_ready.clear();
        self.virtualip_condition.clear();
        self.vrrpnode_heartbeat_age_seconds.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_the_names_the_alert_rules_expect() {
        let m = Metrics::new();
        let vip = VirtualIpLabels {
            virtualip: "web".into(),
        };
        m.virtualip_masters.get_or_create(&vip).set(2);
        m.virtualip_ready.get_or_create(&vip).set(0);
        m.virtualip_condition
            .get_or_create(&VirtualIpConditionLabels {
                virtualip: "web".into(),
                condition: "Degraded".into(),
            })
            .set(1);
        m.reconcile_total
            .get_or_create(&ControllerLabels {
                controller: SYNC_CONTROLLER,
            })
            .inc();
        m.reconcile_errors_total
            .get_or_create(&ErrorLabels {
                controller: SYNC_CONTROLLER,
                reason: "ApplyVrrpNode",
            })
            .inc();
        m.reconcile_duration_seconds.observe(0.01);
        m.vrrpnode_heartbeat_age_seconds
            .get_or_create(&NodeLabels { node: "n1".into() })
            .set(12.5);
        let text = m.render().unwrap();
        for line in [
            "kube_vrrp_virtualip_masters{virtualip=\"web\"} 2",
            "kube_vrrp_virtualip_ready{virtualip=\"web\"} 0",
            "kube_vrrp_virtualip_condition{virtualip=\"web\",condition=\"Degraded\"} 1",
            "kube_vrrp_reconcile_total{controller=\"sync\"} 1",
            "kube_vrrp_reconcile_errors_total{controller=\"sync\",reason=\"ApplyVrrpNode\"} 1",
            "kube_vrrp_reconcile_duration_seconds_count 1",
            "kube_vrrp_vrrpnode_heartbeat_age_seconds{node=\"n1\"} 12.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn clearing_views_drops_vip_and_node_series_but_keeps_counters() {
        let m = Metrics::new();
        m.virtualip_masters
            .get_or_create(&VirtualIpLabels {
                virtualip: "web".into(),
            })
            .set(1);
        m.vrrpnode_heartbeat_age_seconds
            .get_or_create(&NodeLabels { node: "n1".into() })
            .set(1.0);
        m.reconcile_total
            .get_or_create(&ControllerLabels {
                controller: SYNC_CONTROLLER,
            })
            .inc();
        m.clear_views();
        let text = m.render().unwrap();
        assert!(!text.contains("virtualip=\"web\""), "{text}");
        assert!(!text.contains("node=\"n1\""), "{text}");
        assert!(
            text.contains("kube_vrrp_reconcile_total{controller=\"sync\"} 1"),
            "{text}"
        );
    }
}
