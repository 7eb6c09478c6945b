//! Scenario 1: the CRDs are accepted and established, every example under `deploy/examples/`
//! is accepted, and one table of manifests gets the same verdict from the real API server
//! (`kubectl apply --dry-run=server`) and from the standalone validator
//! (`kube_vrrp_plan::parse_manifests`), each naming the field when it refuses.

use std::path::{Path, PathBuf};

use kube_vrrp_e2e::cluster::binaries::repo_root;
use serde_json::{Value, json};

/// What both paths must say about a manifest.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    Accepted,
    /// Refused, with this field named in the message.
    Refused(&'static str),
}

struct Case {
    what: &'static str,
    spec: Value,
    verdict: Verdict,
}

fn base() -> Value {
    json!({"addresses": ["192.168.77.60/24"], "virtualRouterID": 60, "interface": "eth0"})
}

fn with(extra: &Value) -> Value {
    let mut spec = base();
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn auth() -> Value {
    json!({"type": "PASS", "passwordSecretRef": {"namespace": "kube-vrrp", "name": "vrrp-auth", "key": "password"}})
}

fn cases() -> Vec<Case> {
    use Verdict::{Accepted, Refused};
    let case = |what, spec, verdict| Case {
        what,
        spec,
        verdict,
    };
    vec![
        case("v3 with the defaults", base(), Accepted),
        case(
            "v3 at 10ms",
            with(&json!({"advertInterval": "10ms"})),
            Accepted,
        ),
        case(
            "v3 at 40.95s",
            with(&json!({"advertInterval": "40950ms"})),
            Accepted,
        ),
        case(
            "v2 at 2s with a password",
            with(&json!({"version": 2, "advertInterval": "2s", "authentication": auth()})),
            Accepted,
        ),
        case(
            "v2 at 1000ms (whole seconds)",
            with(&json!({"version": 2, "advertInterval": "1000ms"})),
            Accepted,
        ),
        case(
            "v3 with authentication",
            with(&json!({"version": 3, "authentication": auth()})),
            Refused("spec.authentication"),
        ),
        case(
            "v2 with acceptMode (keepalived's accept holds for both versions)",
            with(&json!({"version": 2, "advertInterval": "1s", "acceptMode": true})),
            Accepted,
        ),
        case(
            "v2 at 500ms",
            with(&json!({"version": 2, "advertInterval": "500ms"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "v2 at 1.0005s (sub-millisecond)",
            with(&json!({"version": 2, "advertInterval": "1000500us"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "v2 at 256s",
            with(&json!({"version": 2, "advertInterval": "256s"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "v3 at 15ms",
            with(&json!({"advertInterval": "15ms"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "v3 at 10.5ms (sub-millisecond)",
            with(&json!({"advertInterval": "10500us"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "v3 at 41s",
            with(&json!({"advertInterval": "41s"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "a duration typo: 1sec",
            with(&json!({"advertInterval": "1sec"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "a duration typo: 100 ms",
            with(&json!({"advertInterval": "100 ms"})),
            Refused("spec.advertInterval"),
        ),
        case(
            "mixed families",
            with(&json!({"addresses": ["192.168.77.60/24", "fd00:77::60/64"]})),
            Refused("spec.addresses"),
        ),
        case(
            "an address without a prefix length",
            with(&json!({"addresses": ["192.168.77.60"]})),
            Refused("spec.addresses"),
        ),
        case(
            "no address",
            with(&json!({"addresses": []})),
            Refused("spec.addresses"),
        ),
        case(
            "priority 255",
            with(&json!({"priorities": [{"nodeName": "n1", "priority": 255}]})),
            Refused("spec.priorities[0].priority"),
        ),
        case(
            "priority 0",
            with(&json!({"priorities": [{"nodeName": "n1", "priority": 0}]})),
            Refused("spec.priorities[0].priority"),
        ),
        case(
            "a priority entry with both nodeName and nodeSelector",
            with(
                &json!({"priorities": [{"nodeName": "n1", "nodeSelector": {"matchLabels": {"a": "b"}}, "priority": 100}]}),
            ),
            Refused("spec.priorities[0]"),
        ),
        case(
            "VRID 0",
            with(&json!({"virtualRouterID": 0})),
            Refused("spec.virtualRouterID"),
        ),
        case(
            "VRID 256",
            with(&json!({"virtualRouterID": 256})),
            Refused("spec.virtualRouterID"),
        ),
        case(
            "a nodeSelector In without values (matches nothing)",
            with(
                &json!({"nodeSelector": {"matchExpressions": [{"key": "kubevrrp.io/vip", "operator": "In", "values": []}]}}),
            ),
            Refused("spec.nodeSelector.matchExpressions[0].values"),
        ),
        case(
            "a nodeSelector with an unknown operator",
            with(
                &json!({"nodeSelector": {"matchExpressions": [{"key": "kubevrrp.io/vip", "operator": "Equals", "values": ["true"]}]}}),
            ),
            Refused("spec.nodeSelector.matchExpressions[0].operator"),
        ),
        case(
            "a misspelt field",
            with(&json!({"advertIntervall": "1s"})),
            Refused("advertIntervall"),
        ),
    ]
}

fn manifest(name: &str, spec: &Value) -> Value {
    json!({"apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": name}, "spec": spec})
}

/// The API server's verdict: `kubectl apply --dry-run=server` (schema, CEL, unknown fields
/// with kubectl's strict field validation), nothing stored.
fn api_server_verdict(
    cluster: &kube_vrrp_e2e::cluster::Cluster,
    object: &Value,
) -> Result<(), String> {
    let out = cluster
        .kubectl()
        .output(
            &["apply", "--dry-run=server", "-f", "-"],
            &object.to_string(),
        )
        .unwrap();
    if out.success { Ok(()) } else { Err(out.stderr) }
}

/// The standalone validator's verdict on the same object as a YAML file.
fn validator_verdict(object: &Value) -> Result<(), String> {
    let yaml = serde_saphyr::to_string(object).unwrap();
    kube_vrrp_plan::parse_manifests(Path::new("case.yaml"), &yaml)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn example_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            example_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

pub fn run() {
    let cluster = super::up();
    let kubectl = cluster.kubectl();

    // The chart's CRDs are established.
    let crds = kubectl.json(&["get", "crd", "-o", "json"]).unwrap();
    for name in [
        "virtualips.kubevrrp.io",
        "virtualservers.kubevrrp.io",
        "vrrpnodes.kubevrrp.io",
    ] {
        let crd = crds["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("CRD {name} not installed by helm"));
        let established = crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "CRD {name} not established: {}", crd["status"]);
    }

    // Every example is accepted.
    let mut examples = Vec::new();
    example_files(&repo_root().join("deploy/examples"), &mut examples);
    assert!(examples.len() >= 5, "examples found: {examples:?}");
    for file in &examples {
        let path = file.display().to_string();
        let out = kubectl
            .output(&["apply", "--dry-run=server", "-f", &path], "")
            .unwrap();
        assert!(
            out.success,
            "{path} refused by the API server: {}",
            out.stderr
        );
    }

    // One table, both paths.
    let mut disagreements = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let object = manifest(&format!("case-{i}"), &case.spec);
        let api = api_server_verdict(&cluster, &object);
        let standalone = validator_verdict(&object);
        let verdicts = match case.verdict {
            Verdict::Accepted => [("API server", &api), ("validator", &standalone)]
                .iter()
                .filter_map(|(who, v)| v.as_ref().err().map(|e| format!("{who} refused it: {e}")))
                .collect::<Vec<_>>(),
            Verdict::Refused(field) => [("API server", &api), ("validator", &standalone)]
                .iter()
                .filter_map(|(who, v)| match v {
                    Ok(()) => Some(format!("{who} accepted it")),
                    Err(e) if !e.contains(field) => {
                        Some(format!("{who} refused it without naming {field}: {e}"))
                    }
                    Err(_) => None,
                })
                .collect(),
        };
        if !verdicts.is_empty() {
            disagreements.push(format!(
                "{} ({:?}): {}",
                case.what,
                case.verdict,
                verdicts.join("; ")
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases wrong:\n  {}",
        disagreements.len(),
        cases().len(),
        disagreements.join("\n  ")
    );
}
