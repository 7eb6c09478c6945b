//! The control plane: etcd and kube-apiserver (built from Go modules) in their own lab
//! namespace on the switch, reachable from every node namespace, plus a forwarder from the
//! host's loopback for kubectl and Helm. The API server authenticates an admin by token and
//! ServiceAccounts by their signed tokens, authorizes with Node and RBAC, and writes an audit
//! log (Metadata level) that the scenarios read to see who did what.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::binaries::Binaries;
use super::error::ClusterError;
use super::forward::Forwarder;
use super::kubeconfig;
use super::kubectl::Tool;
use super::pki::{self, PkiFiles};
use crate::addressing::{self, CONTROL_PLANE_HOST, Family};
use crate::http;
use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::DaemonProcess;

/// The API server's port.
pub const APISERVER_PORT: u16 = 6443;
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
/// The Service ClusterIP ranges: dual-stack (IPv4 first, so single-stack Services are IPv4
/// as before), each with room for the 1,000-Service benchmark (`cluster-bench`) and more.
/// kube-apiserver takes at most one range per family; before the ServiceCIDR allocator an
/// IPv6 range had to be /108 or narrower, which /112 is.
pub const SERVICE_CLUSTER_IP_RANGES: &str = "10.96.0.0/16,fd00:96::/112";
/// How long the API server may take to become ready (a cold start on a busy 2-core machine).
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopping API server may drain before it is killed.
const APISERVER_STOP_GRACE: Duration = Duration::from_secs(5);

/// Every request except the API server's own loopback calls, at Metadata level (who, what,
/// which object, the answer's code): enough to count writes per user and to prove who wrote
/// nothing.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:apiserver"]
  - level: Metadata
"#;

/// etcd and kube-apiserver running in the lab.
#[derive(Debug)]
pub struct ControlPlane {
    // Drop order: the forwarder, the processes, then their namespace.
    forwarder: Forwarder,
    apiserver: Option<DaemonProcess>,
    etcd: DaemonProcess,
    ns: Netns,
    address: IpAddr,
    apiserver_command: Vec<String>,
    dir: PathBuf,
    pki: PkiFiles,
    admin: Tool,
    k8s_version: String,
}

fn random_token() -> Result<String, ClusterError> {
    let mut bytes = [0_u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(ClusterError::io("read /dev/urandom"))?;
    Ok(bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

fn write(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(ClusterError::io(format!("write {}", path.display())))
}

impl ControlPlane {
    /// Starts etcd and the API server in a new lab host (lab host [`CONTROL_PLANE_HOST`]),
    /// writes the admin kubeconfig (through the host's forwarder) and waits until the API
    /// server is ready.
    pub fn start(lab: &Lab, binaries: &Binaries, dir: &Path) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir)
            .map_err(ClusterError::io(format!("create {}", dir.display())))?;
        let ns = lab.attach("cp", CONTROL_PLANE_HOST)?;
        let address = addressing::lab_host_ip(CONTROL_PLANE_HOST, Family::V4);
        let pki = pki::write(dir, &pki::apiserver_names(&[address]))?;

        let etcd_url = |port: u16| format!("http://{address}:{port}");
        let etcd_data = dir.join("etcd");
        let mut etcd = DaemonProcess::spawn(
            "etcd",
            "control plane",
            &ns,
            &[
                &binaries.etcd.display().to_string(),
                "--name=lab",
                &format!("--data-dir={}", etcd_data.display()),
                &format!("--listen-client-urls={}", etcd_url(ETCD_CLIENT_PORT)),
                &format!("--advertise-client-urls={}", etcd_url(ETCD_CLIENT_PORT)),
                &format!("--listen-peer-urls={}", etcd_url(ETCD_PEER_PORT)),
                &format!("--initial-advertise-peer-urls={}", etcd_url(ETCD_PEER_PORT)),
                &format!("--initial-cluster=lab={}", etcd_url(ETCD_PEER_PORT)),
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            &[],
            &dir.join("etcd.log"),
        )?;
        wait_etcd(&ns, SocketAddr::new(address, ETCD_CLIENT_PORT), &mut etcd)?;

        let token = random_token()?;
        let tokens = dir.join("tokens.csv");
        write(
            &tokens,
            &format!("{token},admin,admin,\"system:masters\"\n"),
        )?;
        let audit_policy = dir.join("audit-policy.yaml");
        write(&audit_policy, AUDIT_POLICY)?;
        let apiserver_command = vec![
            binaries.apiserver.display().to_string(),
            format!("--etcd-servers={}", etcd_url(ETCD_CLIENT_PORT)),
            format!("--bind-address={address}"),
            format!("--advertise-address={address}"),
            format!("--secure-port={APISERVER_PORT}"),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=Node,RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                pki.service_account_public_key.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGES}"),
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", dir.join("audit.log").display()),
            "--audit-log-format=json".to_owned(),
            format!("--cert-dir={}", dir.join("certs").display()),
            "--profiling=false".to_owned(),
        ];
        let forwarder = Forwarder::start(ns.name(), SocketAddr::new(address, APISERVER_PORT))?;
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        kubeconfig::write(
            &admin_kubeconfig,
            &format!("https://{}", forwarder.local()),
            &pki.ca_cert,
            "admin",
            &token,
        )?;
        let mut plane = Self {
            forwarder,
            apiserver: None,
            etcd,
            ns,
            address,
            apiserver_command,
            dir: dir.to_owned(),
            pki,
            admin: Tool::new(&binaries.kubectl, &admin_kubeconfig),
            k8s_version: binaries.k8s_version.clone(),
        };
        plane.start_apiserver()?;
        Ok(plane)
    }

    /// Starts the API server (again) and waits until `/readyz` says ok.
    pub fn start_apiserver(&mut self) -> Result<(), ClusterError> {
        let args: Vec<&str> = self.apiserver_command.iter().map(String::as_str).collect();
        let mut process = DaemonProcess::spawn(
            "kube-apiserver",
            "control plane",
            &self.ns,
            &args,
            &[],
            &self.dir.join("kube-apiserver.log"),
        )?;
        let deadline = Instant::now() + APISERVER_READY_TIMEOUT;
        loop {
            process.ensure_running()?;
            if self
                .admin
                .run(&["get", "--raw", "/readyz"])
                .is_ok_and(|body| body.trim() == "ok")
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("kube-apiserver ready; log:\n{}", tail(&process.log(), 40)),
                    timeout: APISERVER_READY_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        self.apiserver = Some(process);
        Ok(())
    }

    /// Stops the API server as a static pod's kubelet would: SIGTERM, and SIGKILL when it has
    /// not finished its graceful shutdown (open watches keep it draining) within
    /// [`APISERVER_STOP_GRACE`]. etcd keeps running.
    pub fn stop_apiserver(&mut self) -> Result<(), ClusterError> {
        if let Some(mut process) = self.apiserver.take()
            && process.terminate(APISERVER_STOP_GRACE).is_err()
        {
            process.kill()?;
        }
        Ok(())
    }

    /// Whether the API server process runs.
    pub fn apiserver_running(&mut self) -> bool {
        self.apiserver
            .as_mut()
            .is_some_and(DaemonProcess::is_running)
    }

    /// kubectl as the admin (through the host's forwarder).
    pub fn admin(&self) -> &Tool {
        &self.admin
    }

    pub fn admin_kubeconfig(&self) -> &Path {
        self.admin.kubeconfig()
    }

    /// The API server as the lab's namespaces reach it.
    pub fn endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.address, APISERVER_PORT)
    }

    /// The API server as the host reaches it (the forwarder).
    pub fn host_endpoint(&self) -> SocketAddr {
        self.forwarder.local()
    }

    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// The control plane's namespace.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The Kubernetes release running.
    pub fn k8s_version(&self) -> &str {
        &self.k8s_version
    }

    /// The audit log (JSON lines).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// The API server's log so far (all its runs).
    pub fn apiserver_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kube-apiserver.log")).unwrap_or_default()
    }

    /// The running API server's pid.
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.as_ref().map(DaemonProcess::pid)
    }

    /// etcd's pid (it must outlive API server restarts).
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.pid()
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_etcd(ns: &Netns, client: SocketAddr, etcd: &mut DaemonProcess) -> Result<(), ClusterError> {
    let timeout = Duration::from_secs(30);
    let deadline = Instant::now() + timeout;
    loop {
        etcd.ensure_running()?;
        let healthy = ns
            .run_in(move || http::get(client, "/health", Duration::from_secs(1)))?
            .is_ok_and(|r| {
                r.status == 200 && String::from_utf8_lossy(&r.body).contains("\"health\":\"true\"")
            });
        if healthy {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Timeout {
                what: format!("etcd healthy; log:\n{}", tail(&etcd.log(), 40)),
                timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
