//! Scenario 6: RBAC and the admission policy, enforced by the API server. With the chart's
//! default values: a v2 VirtualIP with a password Secret works; every API call of the
//! operators and agents succeeds (no 403 in their logs or in the audit log); an agent's token
//! cannot write another node's VrrpNode status (the ValidatingAdmissionPolicy's denial), cannot
//! write any spec, cannot read a Secret outside the namespace it was granted nor list Secrets;
//! the agents read no Secret but the one a VirtualIP names.

use std::time::Duration;

use kube_vrrp_e2e::cluster::audit;
use kube_vrrp_e2e::cluster::{NAMESPACE, Tool};
use serde_json::json;

use super::{apply_web, mac_of, up, vip_address, vip_manifest, wait_master};

const AGENT_USER: &str = "system:serviceaccount:kube-vrrp:kube-vrrp-agent";
const OPERATOR_USER: &str = "system:serviceaccount:kube-vrrp:kube-vrrp-operator";
/// A namespace the chart grants agents nothing in (the chart's default grants `get` on the
/// release namespace's Secrets, for v2 passwords).
const OTHER_NAMESPACE: &str = "default";

fn refused(tool: &Tool, args: &[&str], input: &str) -> String {
    let out = tool.output(args, input).unwrap();
    assert!(
        !out.success,
        "`kubectl {}` with an agent's token succeeded: {}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();

    // A v2 VirtualIP with a password, next to a v3 one, with the chart's default values.
    user.apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp-auth", "namespace": NAMESPACE},
                "type": "Opaque", "stringData": {"password": "lab-pass"}})
        .to_string(),
    )
    .unwrap();
    user.apply(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated", "namespace": OTHER_NAMESPACE},
                "type": "Opaque", "stringData": {"token": "not for agents"}})
        .to_string(),
    )
    .unwrap();
    let auth = json!({"type": "PASS", "passwordSecretRef": {"namespace": NAMESPACE, "name": "vrrp-auth", "key": "password"}});
    user.apply(&vip_manifest(
        "legacy",
        1,
        61,
        "1s",
        &[("n2", 150), ("n1", 100), ("n3", 50)],
        &json!({"version": 2, "authentication": auth}),
    ))
    .unwrap();
    apply_web(&cluster);
    let legacy = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_master(&cluster, "legacy", "n2", Duration::from_secs(20))
    }));
    assert!(
        legacy.is_ok(),
        "the v2 VirtualIP with a password does not work with the chart's default values\n{}",
        super::logs_tail(&cluster, 10)
    );
    let prober = cluster
        .lab()
        .probe(vip_address(1), Duration::from_millis(50))
        .unwrap();
    let n2 = mac_of(&cluster, 2);
    assert!(
        prober
            .wait_for_reply(std::time::Instant::now(), Duration::from_secs(5), |m| m
                == n2)
            .is_some(),
        "legacy does not answer from n2"
    );
    user.delete("vip", "web").unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // Everything so far needed only the chart's permissions.
    for pod in cluster.pods() {
        let log = pod.log();
        let denied: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("code: 403") || l.to_lowercase().contains("forbidden"))
            .collect();
        assert!(
            denied.is_empty(),
            "{} was refused by the API server:\n{}",
            pod.name(),
            denied.join("\n")
        );
    }
    let events = audit::read(&cluster.control_plane().audit_log()).unwrap();
    let ours =
        |e: &&audit::AuditEvent| e.user.username == AGENT_USER || e.user.username == OPERATOR_USER;
    let denied: Vec<String> = events
        .iter()
        .filter(ours)
        .filter(|e| e.code() == 403)
        .map(audit::AuditEvent::describe)
        .collect();
    assert!(
        denied.is_empty(),
        "the audit log shows refused calls:\n{}",
        denied.join("\n")
    );
    assert!(
        events.iter().filter(ours).count() > 10,
        "the audit log has hardly any operator/agent requests"
    );

    // Agents wrote only their VrrpNodes' status and Events; they read only the named Secret.
    let agent_writes: Vec<String> = events
        .iter()
        .filter(|e| e.user.username == AGENT_USER && e.is_write())
        .filter(|e| !matches!(e.resource().as_str(), "vrrpnodes/status" | "events"))
        .map(audit::AuditEvent::describe)
        .collect();
    assert!(
        agent_writes.is_empty(),
        "agents wrote beyond their VrrpNode status and Events:\n{}",
        agent_writes.join("\n")
    );
    let status_writes: Vec<&audit::AuditEvent> = events
        .iter()
        .filter(|e| {
            e.user.username == AGENT_USER && e.resource() == "vrrpnodes/status" && e.is_write()
        })
        .collect();
    assert!(!status_writes.is_empty(), "no agent wrote its status");
    for e in &status_writes {
        let node = e
            .pod()
            .and_then(|p| p.strip_prefix("kube-vrrp-agent-"))
            .unwrap_or_default();
        assert_eq!(
            e.name(),
            node,
            "an agent wrote another node's status: {}",
            e.describe()
        );
    }
    let secret_reads: Vec<String> = events
        .iter()
        .filter(|e| e.user.username == AGENT_USER && e.resource() == "secrets")
        .filter(|e| e.name() != "vrrp-auth" || e.verb != "get")
        .map(audit::AuditEvent::describe)
        .collect();
    assert!(
        secret_reads.is_empty(),
        "agents touched Secrets other than the one named: {}",
        secret_reads.join("\n")
    );

    // An agent's own token, used for what it must not do.
    let n1 = cluster.agent(1).unwrap().name().to_owned();
    let as_agent = cluster
        .kubectl()
        .with_kubeconfig(&cluster.kubeconfig_of(&n1).unwrap());
    let other_status = refused(
        &as_agent,
        &[
            "patch",
            "vrrpnode",
            "n2",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"heartbeatTime":"2020-01-01T00:00:00Z"}}"#,
        ],
        "",
    );
    assert!(
        other_status.contains("ValidatingAdmissionPolicy")
            && other_status.contains("may only write the status of its own node"),
        "writing n2's status with n1's token was not refused by the admission policy: {other_status}"
    );
    let own_spec = refused(
        &as_agent,
        &[
            "patch",
            "vrrpnode",
            "n1",
            "--type=merge",
            "-p",
            r#"{"spec":{"instances":[]}}"#,
        ],
        "",
    );
    assert!(
        own_spec.contains("Forbidden") || own_spec.contains("forbidden"),
        "spec write: {own_spec}"
    );
    let vip_write = refused(&as_agent, &["delete", "vip", "legacy"], "");
    assert!(
        vip_write.to_lowercase().contains("forbidden"),
        "VirtualIP delete: {vip_write}"
    );
    let secret = refused(
        &as_agent,
        &["get", "secret", "unrelated", "-n", OTHER_NAMESPACE],
        "",
    );
    assert!(
        secret.to_lowercase().contains("forbidden"),
        "reading an unrelated Secret: {secret}"
    );
    let list = refused(&as_agent, &["get", "secrets", "-n", NAMESPACE], "");
    assert!(
        list.to_lowercase().contains("forbidden"),
        "listing Secrets: {list}"
    );
}
