//! Trackers (`track`): interfaces, files, scripts and Kubernetes endpoints that move an
//! instance's effective priority or put it in FAULT. Shared by VirtualIP and VrrpNode.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::DurationString;
use crate::validation::{MAX_TRACKERS, Violations};

/// What an instance watches besides VRRP itself.
///
/// Weights follow keepalived: a positive weight is added to the priority while the
/// tracked thing is healthy, a negative weight is added while it is failing, and no weight
/// (or 0) puts the instance in FAULT while it is failing. Weights lie in -253..=253 and the
/// effective priority is clamped to 1..=254.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    /// Interfaces that must be up (operationally, with carrier).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub interfaces: Vec<TrackInterface>,
    /// Files holding an integer: with a weight, value × weight is added to the priority;
    /// without one, any value other than 0 puts the instance in FAULT. A missing, unreadable or
    /// non-integer file puts the instance in FAULT whatever the weight (an empty file reads as 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub files: Vec<TrackFile>,
    /// Commands run periodically; exit status 0 is success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub scripts: Vec<TrackScript>,
    /// Services that must have a Ready endpoint on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub endpoints: Vec<TrackEndpoints>,
}

/// An interface whose link state is tracked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackInterface {
    /// Interface name on the node, e.g. `eth1`.
    #[schemars(length(min = 1, max = 15))]
    pub name: String,
    /// Priority change while the interface is down (see `Track`); omitted: FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -253, max = 253))]
    pub weight: Option<i32>,
}

/// A file whose integer content is tracked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackFile {
    /// Absolute path on the node.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// Multiplier for the file's value (see `Track`); omitted: non-zero means FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -253, max = 253))]
    pub weight: Option<i32>,
}

fn default_script_interval() -> DurationString {
    DurationString::new("1s")
}

fn default_one() -> u32 {
    1
}

/// A command run periodically on the node (without a shell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackScript {
    /// Name used in status and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Program and arguments, e.g. `["/usr/local/bin/check-haproxy", "--quick"]`.
    #[schemars(length(min = 1, max = 64))]
    pub command: Vec<String>,
    /// Time between runs.
    #[serde(default = "default_script_interval")]
    pub interval: DurationString,
    /// A run taking longer than this is killed and counts as a failure.
    #[serde(default = "default_script_interval")]
    pub timeout: DurationString,
    /// Consecutive successes needed to count as healthy again.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 255))]
    pub rise: u32,
    /// Consecutive failures needed to count as failing.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 255))]
    pub fall: u32,
    /// Priority change (see `Track`); omitted: failing means FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -253, max = 253))]
    pub weight: Option<i32>,
}

/// A namespaced reference to a Service.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Namespace of the Service.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Service.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Service that must have a Ready endpoint on this node (from its EndpointSlices).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackEndpoints {
    /// The Service whose endpoints are watched.
    pub service: ServiceRef,
    /// Priority change while the node has no Ready endpoint (see `Track`); omitted: FAULT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -253, max = 253))]
    pub weight: Option<i32>,
}

impl Track {
    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty()
            && self.files.is_empty()
            && self.scripts.is_empty()
            && self.endpoints.is_empty()
    }

    pub(crate) fn check(&self, field: &str, out: &mut Violations) {
        out.max_items(
            &format!("{field}.interfaces"),
            &self.interfaces,
            MAX_TRACKERS,
        );
        out.max_items(&format!("{field}.files"), &self.files, MAX_TRACKERS);
        out.max_items(&format!("{field}.scripts"), &self.scripts, MAX_TRACKERS);
        out.max_items(&format!("{field}.endpoints"), &self.endpoints, MAX_TRACKERS);
        for (i, t) in self.interfaces.iter().enumerate() {
            let f = format!("{field}.interfaces[{i}]");
            out.required(&format!("{f}.name"), &t.name);
            out.weight(&format!("{f}.weight"), t.weight);
        }
        for (i, t) in self.files.iter().enumerate() {
            let f = format!("{field}.files[{i}]");
            out.required(&format!("{f}.path"), &t.path);
            out.weight(&format!("{f}.weight"), t.weight);
        }
        for (i, t) in self.scripts.iter().enumerate() {
            let f = format!("{field}.scripts[{i}]");
            out.required(&format!("{f}.name"), &t.name);
            if t.command.first().is_none_or(String::is_empty) {
                out.push(
                    format!("{f}.command"),
                    crate::validation::ViolationKind::Required,
                    "needs a program to run, e.g. [\"/usr/bin/pgrep\", \"haproxy\"]".to_owned(),
                );
            }
            out.duration(&format!("{f}.interval"), &t.interval);
            out.duration(&format!("{f}.timeout"), &t.timeout);
            out.range(&format!("{f}.rise"), i64::from(t.rise), 1, 255);
            out.range(&format!("{f}.fall"), i64::from(t.fall), 1, 255);
            out.weight(&format!("{f}.weight"), t.weight);
        }
        for (i, t) in self.endpoints.iter().enumerate() {
            let f = format!("{field}.endpoints[{i}]");
            out.required(&format!("{f}.service.namespace"), &t.service.namespace);
            out.required(&format!("{f}.service.name"), &t.service.name);
            out.weight(&format!("{f}.weight"), t.weight);
        }
    }
}
