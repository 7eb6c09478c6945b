//! The API server's audit log (JSON lines, Metadata level): who did what to which object and
//! what the answer was. Scenarios read it to count writes and to prove that somebody wrote
//! nothing.

use std::path::Path;

use serde::Deserialize;

use super::error::ClusterError;

/// The audit extra carrying the pod a ServiceAccount token is bound to.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";

/// One audit event (the fields the scenarios use).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub verb: String,
    pub user: AuditUser,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(default)]
    pub user_agent: String,
    /// When the request arrived (RFC 3339, microseconds).
    pub request_received_timestamp: jiff::Timestamp,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuditUser {
    pub username: String,
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_group: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl AuditEvent {
    /// create, update, patch, delete or deletecollection.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// The HTTP status of the answer (0 when the log has none).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }

    /// Whether the API server carried the request out.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.code())
    }

    /// The pod whose bound token made the request, if any.
    pub fn pod(&self) -> Option<&str> {
        self.user
            .extra
            .get(POD_NAME_EXTRA)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// "resource" or "resource/subresource".
    pub fn resource(&self) -> String {
        match &self.object_ref {
            Some(r) if r.subresource.is_empty() => r.resource.clone(),
            Some(r) => format!("{}/{}", r.resource, r.subresource),
            None => String::new(),
        }
    }

    /// The object's name ("" for collections).
    pub fn name(&self) -> &str {
        self.object_ref.as_ref().map_or("", |r| r.name.as_str())
    }

    /// One line for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} {} {}/{} -> {}",
            self.request_received_timestamp,
            self.user.username,
            self.pod().unwrap_or("-"),
            self.verb,
            self.resource(),
            self.name(),
            self.code()
        )
    }
}

/// Parses audit JSON lines (lines that do not parse are skipped: the log may be read while
/// the API server is writing its last line).
pub fn parse(text: &str) -> Vec<AuditEvent> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Reads and parses the audit log at `path`.
pub fn read(path: &Path) -> Result<Vec<AuditEvent>, ClusterError> {
    let text = std::fs::read_to_string(path)
        .map_err(ClusterError::io(format!("read {}", path.display())))?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_give_user_pod_verb_object_and_answer() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/apis/kubevrrp.io/v1alpha1/vrrpnodes/n2/status","verb":"patch","user":{"username":"system:serviceaccount:kube-vrrp:kube-vrrp-agent","groups":["system:serviceaccounts"],"extra":{"authentication.kubernetes.io/pod-name":["kube-vrrp-agent-n1"]}},"sourceIPs":["192.168.77.11"],"userAgent":"kube-vrrp-agent","objectRef":{"resource":"vrrpnodes","name":"n2","apiGroup":"kubevrrp.io","apiVersion":"v1alpha1","subresource":"status"},"responseStatus":{"metadata":{},"status":"Failure","reason":"Forbidden","code":403},"requestReceivedTimestamp":"2026-11-30T02:26:31.123456Z","stageTimestamp":"2026-11-30T02:26:31.124456Z"}"#;
        let events = parse(&format!("{line}\n{{not json\n"));
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert!(e.is_write() && !e.succeeded());
        assert_eq!(e.code(), 403);
        assert_eq!(e.pod(), Some("kube-vrrp-agent-n1"));
        assert_eq!(e.resource(), "vrrpnodes/status");
        assert_eq!(e.name(), "n2");
    }
}
