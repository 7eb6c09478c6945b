//! Scenario 13: the API server refuses one node's VrrpNode (here an admission policy the
//! cluster's admin adds; in life a 403, a webhook, or a spec over etcd's size limit). The
//! VirtualIP placed there says so in `Degraded` (reason `VrrpNodeNotWritten`, with the API's
//! own answer), its MASTER elsewhere keeps answering, and once the refusal is lifted the
//! node's VrrpNode is written and the condition clears.

use std::time::{Duration, Instant};

use kube_vrrp_crds::{VrrpNode, VrrpNodeSpec};
use kube_vrrp_e2e::cluster::user::{self, poll};

use super::{POLL, logs_tail, up, wait_master, web_manifest};

const POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: lab-refuses-n3-vrrpnode
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["kubevrrp.io"]
        apiVersions: ["*"]
        operations: ["CREATE", "UPDATE"]
        resources: ["vrrpnodes"]
  validations:
    - expression: "object.metadata.name != 'n3'"
      message: "the lab refuses n3's VrrpNode"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: lab-refuses-n3-vrrpnode
spec:
  policyName: lab-refuses-n3-vrrpnode
  validationActions: ["Deny"]
"#;

fn degraded(vip: &serde_json::Value) -> Option<user::Condition> {
    user::conditions(vip)
        .into_iter()
        .find(|c| c.kind == "Degraded")
}

/// The VirtualIP's status and the operator's last log lines, for a failure message.
fn last_seen(cluster: &kube_vrrp_e2e::cluster::Cluster) -> String {
    let status = cluster
        .user()
        .vip("web")
        .map(|v| v["status"].to_string())
        .unwrap_or_default();
    format!("last seen: {status}\n{}", logs_tail(cluster, 20))
}

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    user.apply(POLICY).unwrap();
    // The binding takes effect once the API server has loaded it: wait until a server-side
    // dry run of n3's VrrpNode is refused (n3 has none yet: the first VirtualIP makes the
    // operator create it).
    let n3 = serde_json::to_string(&VrrpNode::new("n3", VrrpNodeSpec::default())).unwrap();
    poll(
        "the admission policy refusing n3's VrrpNode in effect",
        Duration::from_secs(20),
        POLL,
        || {
            let out = user
                .kubectl()
                .output(&["create", "--dry-run=server", "-f", "-"], &n3)?;
            Ok(
                (!out.success && out.stderr.contains("the lab refuses n3's VrrpNode"))
                    .then_some(()),
            )
        },
    )
    .unwrap();
    let applied = Instant::now();
    user.apply(&web_manifest()).unwrap();
    let vip = wait_master(&cluster, "web", "n1", Duration::from_secs(30));
    let condition = poll(
        "VirtualIP web: Degraded=True, reason VrrpNodeNotWritten, naming n3 and the policy",
        Duration::from_secs(30),
        POLL,
        || {
            let vip = user.vip("web")?;
            Ok(degraded(&vip).filter(|c| {
                c.status == "True"
                    && c.reason == "VrrpNodeNotWritten"
                    && c.message.contains("n3's VrrpNode")
                    && c.message.contains("the lab refuses n3's VrrpNode")
            }))
        },
    )
    .unwrap_or_else(|e| panic!("{e}; {}", last_seen(&cluster)));
    eprintln!(
        "refused: Degraded {} after {:.1} s: {}",
        condition.reason,
        applied.elapsed().as_secs_f64(),
        condition.message
    );
    assert!(user::condition_true(&vip, "Ready"), "{}", vip["status"]);
    assert!(
        !condition.message.contains("n1") && !condition.message.contains("n2"),
        "only n3 is named: {}",
        condition.message
    );
    // The API server's own answer: no VrrpNode for n3 exists.
    assert!(
        user.get("vrrpnode", "n3", &[]).is_err(),
        "n3's VrrpNode was refused, yet it exists"
    );
    // `kubectl get vip` still reads MASTER n1, Ready.
    let row = user.get_vip_row("web").unwrap();
    assert_eq!(
        (row["MASTER"].as_str(), row["STATE"].as_str()),
        ("n1", "Ready"),
        "{row:?}"
    );

    // The refusal lifted: n3's VrrpNode is written, its agent reports, Degraded clears.
    let lifted = Instant::now();
    user.delete(
        "validatingadmissionpolicybinding",
        "lab-refuses-n3-vrrpnode",
    )
    .unwrap();
    user.delete("validatingadmissionpolicy", "lab-refuses-n3-vrrpnode")
        .unwrap();
    poll(
        "VirtualIP web: Degraded=False and NODES 3/3 after the refusal is lifted",
        Duration::from_secs(40),
        POLL,
        || {
            let vip = user.vip("web")?;
            let row = user.get_vip_row("web")?;
            Ok(degraded(&vip)
                .filter(|c| c.status == "False" && row["NODES"] == "3/3")
                .map(|_| ()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}; {}", last_seen(&cluster)));
    eprintln!(
        "lifted: Degraded=False and NODES 3/3 after {:.1} s",
        lifted.elapsed().as_secs_f64()
    );
    assert!(user.get("vrrpnode", "n3", &[]).is_ok());
}
