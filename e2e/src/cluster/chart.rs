//! The chart, as a user installs it: `helm install` from `charts/kube-vrrp`, then the
//! workloads it created (the agent DaemonSet, the operator Deployment) read back from the API
//! server, which is what a cluster's controllers and kubelets work from.

use std::path::Path;

use serde_json::Value;

use super::error::ClusterError;
use super::kubectl::Tool;

/// The chart's two workloads as the API server stores them.
#[derive(Clone, Debug)]
pub struct Workloads {
    /// The agent DaemonSet.
    pub agent: Value,
    /// The operator Deployment.
    pub operator: Value,
}

/// `helm install RELEASE CHART -n NAMESPACE --create-namespace --set namespace.create=true
/// [--set VALUE]...` (the README's install: the chart labels the namespace it lands in for
/// Pod Security); returns Helm's output (its NOTES included).
pub fn install(
    helm: &Tool,
    chart: &Path,
    release: &str,
    namespace: &str,
    values: &[String],
) -> Result<String, ClusterError> {
    let chart = chart.display().to_string();
    let mut args = vec![
        "install",
        release,
        &chart,
        "-n",
        namespace,
        "--create-namespace",
        "--set",
        "namespace.create=true",
    ];
    for value in values {
        args.extend(["--set", value.as_str()]);
    }
    helm.run(&args)
}

fn component(item: &Value) -> Option<&str> {
    item.pointer("/metadata/labels/app.kubernetes.io~1component")
        .and_then(Value::as_str)
}

/// The release's agent DaemonSet and operator Deployment.
pub fn workloads(
    kubectl: &Tool,
    release: &str,
    namespace: &str,
) -> Result<Workloads, ClusterError> {
    let selector = format!("app.kubernetes.io/instance={release}");
    let list = kubectl.json(&[
        "get",
        "daemonsets,deployments",
        "-n",
        namespace,
        "-l",
        &selector,
        "-o",
        "json",
    ])?;
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let find = |kind: &str, name: &str| {
        items
            .iter()
            .find(|i| {
                i.get("kind").and_then(Value::as_str) == Some(kind) && component(i) == Some(name)
            })
            .cloned()
            .ok_or_else(|| ClusterError::Decode {
                what: format!("release {release} in {namespace}"),
                message: format!("no {kind} with app.kubernetes.io/component={name}"),
            })
    };
    Ok(Workloads {
        agent: find("DaemonSet", "agent")?,
        operator: find("Deployment", "operator")?,
    })
}

/// Whether a node with `labels` matches a pod template's `nodeSelector` (as the DaemonSet
/// controller places its pods).
pub fn selects(template: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    template
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_daemonset_lands_only_on_nodes_its_node_selector_matches() {
        let template = json!({"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}});
        let linux = json!({"kubernetes.io/os": "linux", "x": "y"});
        let windows = json!({"kubernetes.io/os": "windows"});
        assert!(selects(&template, linux.as_object().unwrap()));
        assert!(!selects(&template, windows.as_object().unwrap()));
        assert!(selects(&json!({"spec": {}}), windows.as_object().unwrap()));
    }
}
