//! A container's security context (pod-level defaults merged with the container's own) and
//! the `setpriv` arguments that apply it to a lab process: user and group, the capability
//! bounding set, no_new_privs. The read-only root filesystem is `lab-pod`'s part.

use serde_json::Value;

/// The capabilities a container runtime (containerd, CRI-O) grants by default.
const RUNTIME_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// What the process may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Privileges {
    pub uid: u32,
    pub gid: u32,
    /// The bounding set, upper-case names without `CAP_`, sorted.
    pub capabilities: Vec<String>,
    pub no_new_privs: bool,
    pub read_only_root: bool,
}

fn id(value: Option<&Value>, what: &str) -> Result<Option<u32>, String> {
    value
        .map(|v| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("{what} is not a user/group id: {v}"))
        })
        .transpose()
}

/// Merges `pod_spec.securityContext` and `container.securityContext` as the kubelet does
/// (the container's fields win). Without `runAsUser` the process runs as root, as an image
/// without a USER would.
pub fn privileges(pod_spec: &Value, container: &Value) -> Result<Privileges, String> {
    let pod = pod_spec.get("securityContext");
    let own = container.get("securityContext");
    let field = |name: &str| {
        own.and_then(|c| c.get(name))
            .or_else(|| pod.and_then(|p| p.get(name)))
    };
    let uid = id(field("runAsUser"), "runAsUser")?.unwrap_or(0);
    let gid = id(field("runAsGroup"), "runAsGroup")?.unwrap_or(uid);
    if field("runAsNonRoot").and_then(Value::as_bool) == Some(true) && uid == 0 {
        return Err("runAsNonRoot is set but the container would run as root".into());
    }
    let names = |key: &str| -> Vec<String> {
        own.and_then(|c| c.pointer(&format!("/capabilities/{key}")))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .collect()
            })
            .unwrap_or_default()
    };
    let privileged = own
        .and_then(|c| c.get("privileged"))
        .and_then(Value::as_bool)
        == Some(true);
    if privileged {
        return Err("privileged containers are not run by the lab".into());
    }
    let (drop, add) = (names("drop"), names("add"));
    let mut capabilities: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        RUNTIME_DEFAULT_CAPABILITIES
            .iter()
            .map(|c| (*c).to_owned())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    capabilities.extend(add);
    capabilities.sort();
    capabilities.dedup();
    Ok(Privileges {
        uid,
        gid,
        capabilities,
        no_new_privs: own
            .and_then(|c| c.get("allowPrivilegeEscalation"))
            .and_then(Value::as_bool)
            == Some(false),
        read_only_root: own
            .and_then(|c| c.get("readOnlyRootFilesystem"))
            .and_then(Value::as_bool)
            == Some(true),
    })
}

impl Privileges {
    /// `setpriv` arguments (before `--` and the command) that drop to these privileges.
    pub fn setpriv_args(&self) -> Vec<String> {
        let mut bounding = String::from("-all");
        for cap in &self.capabilities {
            bounding.push_str(",+");
            bounding.push_str(&cap.to_ascii_lowercase());
        }
        let mut args = vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--clear-groups".to_owned(),
            "--inh-caps=-all".to_owned(),
            format!("--bounding-set={bounding}"),
        ];
        if self.no_new_privs {
            args.push("--no-new-privs".to_owned());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_agent_runs_as_root_with_only_net_admin_and_net_raw() {
        let pod = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}});
        let container = json!({"securityContext": {
            "privileged": false, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsUser": 0, "runAsNonRoot": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        }});
        let p = privileges(&pod, &container).unwrap();
        assert_eq!((p.uid, p.gid), (0, 0));
        assert_eq!(p.capabilities, ["NET_ADMIN", "NET_RAW"]);
        assert!(p.no_new_privs && p.read_only_root);
        assert_eq!(
            p.setpriv_args(),
            [
                "--reuid=0",
                "--regid=0",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all,+net_admin,+net_raw",
                "--no-new-privs"
            ]
        );
    }

    #[test]
    fn the_pod_level_user_applies_when_the_container_sets_none() {
        let pod = json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532}});
        let container = json!({"securityContext": {"capabilities": {"drop": ["ALL"]}}});
        let p = privileges(&pod, &container).unwrap();
        assert_eq!((p.uid, p.gid), (65532, 65532));
        assert!(p.capabilities.is_empty());
        assert!(p.setpriv_args().contains(&"--bounding-set=-all".to_owned()));
    }

    #[test]
    fn run_as_non_root_without_a_user_is_refused_like_the_kubelet_does() {
        let pod = json!({"securityContext": {"runAsNonRoot": true}});
        assert!(privileges(&pod, &json!({})).is_err());
    }

    #[test]
    fn without_a_drop_list_the_runtime_defaults_apply() {
        let p = privileges(
            &json!({}),
            &json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}),
        )
        .unwrap();
        assert!(p.capabilities.contains(&"NET_ADMIN".to_owned()));
        assert!(p.capabilities.contains(&"CHOWN".to_owned()));
        assert!(!p.no_new_privs);
    }
}
