//! The cluster half of the lab: a real kube-apiserver and etcd ([`controlplane`]) beside the
//! namespace lab, Node objects for the lab's node namespaces, the chart installed with Helm
//! ([`chart`]), and the chart's pods run as processes ([`pod`]): two operator replicas in
//! namespaces of their own, one agent in each node namespace, each with its rendered
//! command, args and environment and a token of the chart's ServiceAccount bound to its Pod.
//! [`Cluster`] owns all of it and removes all of it when dropped.

pub mod audit;
pub mod binaries;
pub mod chart;
pub mod controlplane;
pub mod error;
pub mod forward;
pub mod kubeconfig;
pub mod kubectl;
pub mod pki;
pub mod pod;
pub mod prometheus;
pub mod real_server;
pub mod user;
pub mod view;
pub mod vrrp_egress;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

pub use self::binaries::Binaries;
pub use self::controlplane::ControlPlane;
pub use self::error::ClusterError;
pub use self::kubectl::Tool;
pub use self::pod::Pod;
pub use self::user::User;

use self::pod::{Placement, Runtime};
use crate::addressing::{self, Family, OPERATOR_HOST_BASE};
use crate::lab::{Lab, LabSpec};
use crate::netns::Netns;

/// The Helm release and its namespace, as the README's install command names them.
pub const RELEASE: &str = "kube-vrrp";
pub const NAMESPACE: &str = "kube-vrrp";
/// The label every lab Node carries, as the README tells users to label their VIP nodes.
pub const VIP_NODE_LABEL: &str = "kubevrrp.io/vip";
/// The operator's leader-election Lease (in the release namespace).
pub const OPERATOR_LEASE: &str = "kube-vrrp-operator";
/// Where a ServiceAccount token is mounted in every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long a pod may take to pass its readiness probe.
const POD_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What to bring up.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Node namespaces and Node objects, n1..nN.
    pub nodes: usize,
    /// `helm install --set` values (none: the chart's defaults).
    pub values: Vec<String>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            nodes: 3,
            values: Vec::new(),
        }
    }
}

/// A running cluster lab. Dropping it stops every pod, the API server and etcd, and deletes
/// every namespace and file it made.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: pods first, then their namespaces, the control plane, the lab.
    agents: Vec<Pod>,
    operators: Vec<Pod>,
    operator_hosts: Vec<Netns>,
    control_plane: ControlPlane,
    runtime: Runtime,
    helm: Tool,
    binaries: Binaries,
    install_output: String,
    lab: Lab,
}

impl Cluster {
    /// Builds the namespace lab, starts the control plane, registers the Nodes, installs the
    /// chart with `values` and starts its pods; returns once every pod passes its readiness
    /// probe.
    pub fn up(spec: &ClusterSpec) -> Result<Self, ClusterError> {
        let binaries = Binaries::locate()?;
        // Dual-stack, as the control plane's Service ranges: IPv6 LoadBalancer addresses
        // answer Neighbor Solicitations in the lab.
        let lab = Lab::new(LabSpec {
            nodes: spec.nodes,
            ipv6: true,
        })?;
        let control_plane =
            ControlPlane::start(&lab, &binaries, &lab.workdir().join("control-plane"))?;
        let admin = control_plane.admin().clone();
        let runtime = Runtime {
            lab_pod: binaries.lab_pod.clone(),
            setpriv: binaries.setpriv.clone(),
            binaries: BTreeMap::from([
                ("kube-vrrp-agent".to_owned(), binaries.agent.clone()),
                ("kube-vrrp-operator".to_owned(), binaries.operator.clone()),
            ]),
            apiserver: control_plane.endpoint(),
            api: admin.clone(),
        };
        let helm = Tool::new(&binaries.helm, control_plane.admin_kubeconfig());
        let mut cluster = Self {
            agents: Vec::new(),
            operators: Vec::new(),
            operator_hosts: Vec::new(),
            control_plane,
            runtime,
            helm,
            binaries,
            install_output: String::new(),
            lab,
        };
        for n in cluster.lab.node_numbers() {
            register_node(&admin, &cluster.lab, n)?;
        }
        cluster.install_output = chart::install(
            &cluster.helm,
            &binaries::repo_root().join("charts/kube-vrrp"),
            RELEASE,
            NAMESPACE,
            &spec.values,
        )?;
        publish_root_ca(&admin, NAMESPACE, cluster.control_plane.ca_cert())?;
        let workloads = chart::workloads(&admin, RELEASE, NAMESPACE)?;
        cluster.start_operators(&workloads.operator)?;
        cluster.start_agents(&workloads.agent)?;
        for pod in cluster
            .operators
            .iter_mut()
            .chain(cluster.agents.iter_mut())
        {
            pod.wait_ready(POD_READY_TIMEOUT)?;
        }
        Ok(cluster)
    }

    fn template<'a>(workload: &'a Value, what: &str) -> Result<&'a Value, ClusterError> {
        workload
            .pointer("/spec/template")
            .ok_or_else(|| ClusterError::Decode {
                what: what.to_owned(),
                message: "no spec.template".into(),
            })
    }

    fn name_of(workload: &Value) -> String {
        workload
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("workload")
            .to_owned()
    }

    /// One pod per replica of the operator Deployment, each in a lab host of its own (pods
    /// that are not hostNetwork get their own network namespace).
    fn start_operators(&mut self, deployment: &Value) -> Result<(), ClusterError> {
        let template = Self::template(deployment, "operator Deployment")?;
        let replicas = deployment
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let name = Self::name_of(deployment);
        for i in 0..replicas {
            let host = OPERATOR_HOST_BASE
                + u8::try_from(i).map_err(|_| ClusterError::pod(&name, "too many replicas"))?;
            let ns = self.lab.attach(&format!("op{i}"), host)?;
            let placement = Placement {
                netns: ns.name().to_owned(),
                node: None,
                pod_ip: addressing::lab_host_ip(host, Family::V4),
                node_root: self.lab.workdir().join("unscheduled"),
            };
            self.operator_hosts.push(ns);
            let mut pod = Pod::create(
                &self.runtime,
                template,
                &format!("{name}-{i}"),
                NAMESPACE,
                &placement,
                self.lab.workdir(),
            )?;
            pod.start()?;
            self.operators.push(pod);
        }
        Ok(())
    }

    /// One agent pod on every node the DaemonSet's node selector matches, in the node's
    /// namespace (hostNetwork).
    fn start_agents(&mut self, daemonset: &Value) -> Result<(), ClusterError> {
        let template = Self::template(daemonset, "agent DaemonSet")?;
        let name = Self::name_of(daemonset);
        for n in self.lab.node_numbers() {
            let node = self.lab.node_name(n)?.to_owned();
            let labels = self
                .runtime
                .api
                .json(&["get", "node", &node, "-o", "json"])?;
            let labels = labels
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if !chart::selects(template, &labels) {
                continue;
            }
            let ip = addressing::node_ip(n, Family::V4);
            let placement = Placement {
                netns: self.lab.node_ns(n)?.name().to_owned(),
                node: Some((node.clone(), ip)),
                pod_ip: ip,
                node_root: self.node_root(n),
            };
            let mut pod = Pod::create(
                &self.runtime,
                template,
                &format!("{name}-{node}"),
                NAMESPACE,
                &placement,
                self.lab.workdir(),
            )?;
            pod.start()?;
            self.agents.push(pod);
        }
        Ok(())
    }

    /// Follows what users do to the Pod objects, as kubelets and controllers would: a deleted
    /// (or deleting) pod is stopped and made again from its workload. Returns the pods
    /// replaced. `cluster-lab` calls this every second, so `kubectl delete pod` works there.
    pub fn reconcile_deleted_pods(&mut self) -> Result<Vec<String>, ClusterError> {
        let list = self
            .kubectl()
            .json(&["get", "pods", "-n", NAMESPACE, "-o", "json"])?;
        let alive: std::collections::BTreeSet<String> = list["items"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .filter_map(|p| {
                p.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        let mut replaced = Vec::new();
        for pod in self.operators.iter_mut().chain(self.agents.iter_mut()) {
            if !alive.contains(pod.name()) {
                pod.replace(&self.runtime)?;
                replaced.push(pod.name().to_owned());
            }
        }
        Ok(replaced)
    }

    /// Node `n`'s "root filesystem" for hostPath volumes (the lab's nodes share one host).
    pub fn node_root(&self, n: usize) -> PathBuf {
        self.lab.workdir().join("nodes").join(format!("n{n}"))
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// kubectl as the cluster admin.
    pub fn kubectl(&self) -> &Tool {
        self.control_plane.admin()
    }

    /// The cluster admin at the keyboard: apply, get, describe.
    pub fn user(&self) -> User {
        User::new(self.control_plane.admin().clone())
    }

    /// The index (into [`Cluster::operators`]) of the operator replica holding the Lease.
    pub fn leader(&self) -> Result<usize, ClusterError> {
        let lease = self.kubectl().json(&[
            "get",
            "lease",
            OPERATOR_LEASE,
            "-n",
            NAMESPACE,
            "-o",
            "json",
        ])?;
        let holder = lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.operators
            .iter()
            .position(|p| p.name() == holder)
            .ok_or_else(|| ClusterError::Decode {
                what: format!("Lease {NAMESPACE}/{OPERATOR_LEASE}"),
                message: format!("holder {holder:?} is no operator pod"),
            })
    }

    /// Helm as the cluster admin.
    pub fn helm(&self) -> &Tool {
        &self.helm
    }

    /// What `helm install` printed.
    pub fn install_output(&self) -> &str {
        &self.install_output
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    pub fn control_plane_mut(&mut self) -> &mut ControlPlane {
        &mut self.control_plane
    }

    /// The agent pod on node `n` (numbered from 1).
    pub fn agent(&mut self, n: usize) -> Result<&mut Pod, ClusterError> {
        let node = self.lab.node_name(n)?.to_owned();
        self.agents
            .iter_mut()
            .find(|p| {
                p.object().pointer("/spec/nodeName").and_then(Value::as_str) == Some(node.as_str())
            })
            .ok_or_else(|| ClusterError::pod(&node, "no agent pod on this node"))
    }

    pub fn agents(&mut self) -> &mut [Pod] {
        &mut self.agents
    }

    pub fn operators(&mut self) -> &mut [Pod] {
        &mut self.operators
    }

    /// Every pod: the operator replicas, then the agents.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.operators.iter().chain(&self.agents)
    }

    /// Every pod's log, for failure messages.
    pub fn logs(&self) -> String {
        self.operators
            .iter()
            .chain(&self.agents)
            .map(|p| format!("===== {} =====\n{}", p.name(), p.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes a kubeconfig (through the host's forwarder) that authenticates with the token
    /// mounted in pod `name`: what that pod's ServiceAccount may do, exactly.
    pub fn kubeconfig_of(&self, name: &str) -> Result<PathBuf, ClusterError> {
        let pod = self
            .pods()
            .find(|p| p.name() == name)
            .ok_or_else(|| ClusterError::pod(name, "no such pod"))?;
        let dir = pod
            .mount_source(SERVICE_ACCOUNT_DIR)
            .ok_or_else(|| ClusterError::pod(name, "no ServiceAccount token mounted"))?;
        let token_path = dir.join("token");
        let token = std::fs::read_to_string(&token_path)
            .map_err(ClusterError::io(format!("read {}", token_path.display())))?;
        let path = self.lab.workdir().join(format!("{name}.kubeconfig"));
        kubeconfig::write(
            &path,
            &format!("https://{}", self.control_plane.host_endpoint()),
            self.control_plane.ca_cert(),
            name,
            token.trim(),
        )?;
        Ok(path)
    }

    /// The lab's work directory (logs, control-plane files, pods' volumes).
    pub fn workdir(&self) -> &Path {
        self.lab.workdir()
    }
}

/// Registers lab node `n` as a Node: labels as a kubelet (plus the README's VIP label), and
/// a status with its InternalIP and Ready=True. No kubelet keeps it up to date; nothing in
/// the lab marks it NotReady either (no node lifecycle controller runs).
fn register_node(kubectl: &Tool, lab: &Lab, n: usize) -> Result<(), ClusterError> {
    let name = lab.node_name(n)?;
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                VIP_NODE_LABEL: "true",
            },
        },
    });
    kubectl.run_with_input(&["create", "-f", "-"], &node.to_string())?;
    let now = now();
    let status = json!({"status": {
        "addresses": [
            {"type": "InternalIP", "address": addressing::node_ip(n, Family::V4).to_string()},
            {"type": "Hostname", "address": name},
        ],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "lab node (no kubelet)", "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
    }});
    kubectl.run(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ])?;
    Ok(())
}

/// RFC 3339 UTC now, whole seconds (as the API server writes times).
fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

/// What kube-controller-manager's root-ca-cert-publisher does: the `kube-root-ca.crt`
/// ConfigMap that every pod's projected ServiceAccount volume reads `ca.crt` from.
fn publish_root_ca(kubectl: &Tool, namespace: &str, ca_cert: &Path) -> Result<(), ClusterError> {
    let from = format!("--from-file=ca.crt={}", ca_cert.display());
    kubectl.run(&[
        "create",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        namespace,
        &from,
    ])?;
    Ok(())
}
