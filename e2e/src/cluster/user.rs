//! What a user does and sees with kubectl: apply and delete manifests, `kubectl get vip`,
//! `kubectl describe vip`, the VirtualIP as the API server returns it, its conditions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::ClusterError;
use super::kubectl::Tool;
use super::view::{self, DescribedEvent};

/// One condition of an object's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// The conditions in `object.status.conditions`.
pub fn conditions(object: &Value) -> Vec<Condition> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| {
                    let text = |k: &str| {
                        c.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    Condition {
                        kind: text("type"),
                        status: text("status"),
                        reason: text("reason"),
                        message: text("message"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether condition `kind` is "True" in `object`.
pub fn condition_true(object: &Value, kind: &str) -> bool {
    conditions(object)
        .iter()
        .any(|c| c.kind == kind && c.status == "True")
}

/// `status.master` of a VirtualIP ("" when none).
pub fn master(object: &Value) -> &str {
    object
        .pointer("/status/master")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// kubectl as one user, with the commands the scenarios use.
#[derive(Clone, Debug)]
pub struct User {
    kubectl: Tool,
}

impl User {
    pub fn new(kubectl: Tool) -> Self {
        Self { kubectl }
    }

    pub fn kubectl(&self) -> &Tool {
        &self.kubectl
    }

    /// `kubectl apply -f -` with `manifest` (YAML or JSON).
    pub fn apply(&self, manifest: &str) -> Result<String, ClusterError> {
        self.kubectl.run_with_input(&["apply", "-f", "-"], manifest)
    }

    /// `kubectl delete KIND NAME`.
    pub fn delete(&self, kind: &str, name: &str) -> Result<String, ClusterError> {
        self.kubectl.run(&["delete", kind, name, "--wait=false"])
    }

    /// `kubectl get vip` as rows keyed by column.
    pub fn get_vips(&self) -> Result<Vec<BTreeMap<String, String>>, ClusterError> {
        Ok(view::table(&self.kubectl.run(&["get", "vip"])?))
    }

    /// The `kubectl get vip` row of `name`.
    pub fn get_vip_row(&self, name: &str) -> Result<BTreeMap<String, String>, ClusterError> {
        self.get_vips()?
            .into_iter()
            .find(|row| row.get("NAME").map(String::as_str) == Some(name))
            .ok_or_else(|| ClusterError::Decode {
                what: "kubectl get vip".into(),
                message: format!("no row for {name}"),
            })
    }

    /// `kubectl get vip NAME -o json`.
    pub fn vip(&self, name: &str) -> Result<Value, ClusterError> {
        self.kubectl.json(&["get", "vip", name, "-o", "json"])
    }

    /// `kubectl get KIND NAME -o json` (cluster-scoped or with `-n` in `extra`).
    pub fn get(&self, kind: &str, name: &str, extra: &[&str]) -> Result<Value, ClusterError> {
        let mut args = vec!["get", kind, name, "-o", "json"];
        args.extend_from_slice(extra);
        self.kubectl.json(&args)
    }

    /// `kubectl describe vip NAME`.
    pub fn describe_vip(&self, name: &str) -> Result<String, ClusterError> {
        self.kubectl.run(&["describe", "vip", name])
    }

    /// The Events `kubectl describe vip NAME` shows.
    pub fn vip_events(&self, name: &str) -> Result<Vec<DescribedEvent>, ClusterError> {
        Ok(view::described_events(&self.describe_vip(name)?))
    }
}

/// Calls `f` every `every` until it returns `Some`, or fails naming `what` after `timeout`
/// with the last error or value description `f` gave.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>, ClusterError>,
) -> Result<T, ClusterError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            let what = if last.is_empty() {
                what.to_owned()
            } else {
                format!("{what} (last error: {last})")
            };
            return Err(ClusterError::Timeout { what, timeout });
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_and_master_are_read_from_status() {
        let vip = json!({"status": {"master": "n2", "conditions": [
            {"type": "Ready", "status": "True", "reason": "MasterElected", "message": "n2 is MASTER"},
            {"type": "SplitBrain", "status": "False", "reason": "OneMaster", "message": ""},
        ]}});
        assert_eq!(master(&vip), "n2");
        assert!(condition_true(&vip, "Ready"));
        assert!(!condition_true(&vip, "SplitBrain"));
        assert_eq!(conditions(&vip)[0].reason, "MasterElected");
        assert_eq!(master(&json!({})), "");
    }
}
