//! What the kubelet computes for a container before it starts it, as pure functions: the
//! environment (literal values, `$(VAR)` references to earlier variables, downward-API field
//! references) and the `$(VAR)` expansion of command and args.

use std::collections::BTreeMap;

use serde_json::Value;

/// The facts about a pod that downward-API field references read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node_name: String,
    pub service_account: String,
    pub host_ip: String,
    pub pod_ip: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl PodFacts {
    /// The value of a `fieldRef.fieldPath`, as the kubelet resolves it; `None` for a path the
    /// lab does not provide.
    pub fn field(&self, path: &str) -> Option<String> {
        let keyed = |prefix: &str, map: &BTreeMap<String, String>| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("']"))
                .map(|key| map.get(key).cloned().unwrap_or_default())
        };
        match path {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            "metadata.uid" => Some(self.uid.clone()),
            "spec.nodeName" => Some(self.node_name.clone()),
            "spec.serviceAccountName" => Some(self.service_account.clone()),
            "status.hostIP" | "status.hostIPs" => Some(self.host_ip.clone()),
            "status.podIP" | "status.podIPs" => Some(self.pod_ip.clone()),
            _ => keyed("metadata.labels['", &self.labels)
                .or_else(|| keyed("metadata.annotations['", &self.annotations)),
        }
    }
}

/// Expands `$(NAME)` with `vars` as Kubernetes does: `$$` is a literal `$`, and a reference
/// to an undefined name (or an unterminated one) stays as written.
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(open) = after.strip_prefix('(')
            && let Some(close) = open.find(')')
        {
            let name = &open[..close];
            if let Some(value) = vars.get(name) {
                out.push_str(value);
            } else {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
            rest = &open[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A container's environment in order: each `env` entry's `value` (expanded with the entries
/// before it) or `valueFrom.fieldRef`. Any other source is an error naming it: the lab has no
/// ConfigMaps or Secrets wired into environments.
pub fn environment(container: &Value, pod: &PodFacts) -> Result<Vec<(String, String)>, String> {
    let mut vars = BTreeMap::new();
    let mut out = Vec::new();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("env entry without a name: {entry}"))?;
        let value = if let Some(value) = entry.get("value").and_then(Value::as_str) {
            expand(value, &vars)
        } else if let Some(from) = entry.get("valueFrom") {
            let path = from
                .pointer("/fieldRef/fieldPath")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    format!("env {name}: only valueFrom.fieldRef is supported, got {from}")
                })?;
            pod.field(path)
                .ok_or_else(|| format!("env {name}: unsupported fieldPath {path}"))?
        } else {
            String::new()
        };
        vars.insert(name.to_owned(), value.clone());
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// The container's command line: `command` then `args`, each expanded with `env`.
pub fn command_line(container: &Value, env: &[(String, String)]) -> Result<Vec<String>, String> {
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let list = |key: &str| -> Vec<String> {
        container
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| expand(s, &vars))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut line = list("command");
    if line.is_empty() {
        return Err("no command: the lab has no image to take an entrypoint from".into());
    }
    line.extend(list("args"));
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes_rules_for_references_escapes_and_unknown_names() {
        let v = vars(&[("NODE_NAME", "n1")]);
        assert_eq!(expand("$(NODE_NAME)", &v), "n1");
        assert_eq!(expand("--node=$(NODE_NAME)!", &v), "--node=n1!");
        assert_eq!(expand("$$(NODE_NAME)", &v), "$(NODE_NAME)");
        assert_eq!(expand("$(OTHER)", &v), "$(OTHER)");
        assert_eq!(expand("$(NODE_NAME", &v), "$(NODE_NAME");
        assert_eq!(expand("cost $5", &v), "cost $5");
    }

    #[test]
    fn environment_resolves_field_refs_and_earlier_variables_in_order() {
        let pod = PodFacts {
            name: "agent-n1".into(),
            namespace: "kube-vrrp".into(),
            node_name: "n1".into(),
            host_ip: "192.168.77.11".into(),
            labels: [("app".to_owned(), "kv".to_owned())].into(),
            ..PodFacts::default()
        };
        let container = json!({"env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "GREETING", "value": "hello $(NODE_NAME)"},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ]});
        let env = environment(&container, &pod).unwrap();
        assert_eq!(
            env,
            [
                ("NODE_NAME", "n1"),
                ("NODE_IP", "192.168.77.11"),
                ("GREETING", "hello n1"),
                ("APP", "kv")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn environment_refuses_sources_the_lab_does_not_provide() {
        let container = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
        let error = environment(&container, &PodFacts::default()).unwrap_err();
        assert!(error.contains("only valueFrom.fieldRef"), "{error}");
    }

    #[test]
    fn command_line_joins_command_and_expanded_args() {
        let container =
            json!({"command": ["kube-vrrp-agent"], "args": ["run", "--node", "$(NODE_NAME)"]});
        let env = vec![("NODE_NAME".to_owned(), "n2".to_owned())];
        assert_eq!(
            command_line(&container, &env).unwrap(),
            ["kube-vrrp-agent", "run", "--node", "n2"]
        );
        assert!(command_line(&json!({"args": ["run"]}), &env).is_err());
    }
}
