//! The namespace lab the driver's scenarios share: nodes n1 and n2 and a client on a bridge in
//! a switch namespace (192.0.2.0/24, 2001:db8::/64), the driver running in-process in a node's
//! namespace, and Debian's keepalived as a peer. Everything is removed on drop.

// Each scenario file uses a part of this module.
#![allow(dead_code)]
// Test support: a failed setup step fails the test right there.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};

use kube_vrrp_agent::driver::{self, DesiredConfig, Driver, InstanceSpec};
use kube_vrrp_agent::net::announce::GarpSettings;
use kube_vrrp_agent::report::{InstanceStatus, Metrics, StatusBoard};
use kube_vrrp_agent::source::{self, ConfigSender};
use kube_vrrp_agent::vrrp::Version;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::Authentication;
use kube_vrrp_crds::Track;
use kube_vrrp_e2e::exposition;
use kube_vrrp_e2e::netns::{Netns, require_root, veth};
use kube_vrrp_e2e::process::DaemonProcess;

/// Generous bound for anything the protocol does in well under a second at a 100 ms interval.
pub const SETTLE: Duration = Duration::from_secs(5);

/// A driver running on its own thread inside a namespace, as `kube-vrrp-agent run` runs it
/// (a 2-worker runtime). Stopped gracefully (the SIGTERM path) on drop.
pub struct Agent {
    pub board: StatusBoard,
    pub metrics: Metrics,
    config: ConfigSender,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    pub fn start(ns: &Netns, config: DesiredConfig) -> Self {
        let board = StatusBoard::new();
        let metrics = Metrics::new();
        let (sender, updates) = source::channel();
        source::publish(&sender, config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let path = format!("/run/netns/{}", ns.name());
        let (b, m) = (board.clone(), metrics.clone());
        let thread = std::thread::spawn(move || {
            let file = fs::File::open(&path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // Worker threads are spawned from this one and inherit its namespace.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let driver = Driver::new(b, m).await.unwrap();
                driver::run(driver, updates, async move {
                    let _ = stopped.await;
                })
                .await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        Self {
            board,
            metrics,
            config: sender,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn status(&self, name: &str) -> Option<InstanceStatus> {
        self.board
            .snapshot()
            .into_iter()
            .find(|status| status.name == name)
    }

    pub fn state(&self, name: &str) -> Option<State> {
        self.status(name).map(|status| status.state)
    }

    pub fn apply(&self, config: DesiredConfig) {
        source::publish(&self.config, config);
    }

    /// The value of a sample of the metrics text (a counter or an integer gauge), by name and
    /// labels; 0 when absent.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        exposition::value(&self.metrics.encode(), name, labels).map_or(0, |v| v as u64)
    }

    /// `kube_vrrp_packets_dropped_total` on eth0 for `reason`.
    pub fn dropped(&self, reason: &str) -> u64 {
        self.metric(
            "kube_vrrp_packets_dropped_total",
            &[("interface", "eth0"), ("reason", reason)],
        )
    }

    /// Every drop on eth0, all reasons together.
    pub fn dropped_total(&self) -> u64 {
        exposition::samples(&self.metrics.encode())
            .iter()
            .filter(|sample| {
                sample.name == "kube_vrrp_packets_dropped_total"
                    && sample.label("interface") == Some("eth0")
            })
            .map(|sample| sample.value as u64)
            .sum()
    }

    /// Stops the driver gracefully, as SIGTERM does.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two nodes and a client on a bridge in a switch namespace, so one node's link going down
/// leaves the others' carrier up.
pub struct Lab {
    pub n1: Netns,
    pub n2: Netns,
    pub client: Netns,
    pub switch: Netns,
    pub workdir: PathBuf,
}

/// Node addresses: n1 .1, n2 .2, client .100.
pub const N1: &str = "192.0.2.1";
pub const N2: &str = "192.0.2.2";
pub const CLIENT: &str = "192.0.2.100";

pub fn lab(prefix: &str) -> Lab {
    require_root();
    let n1 = Netns::create(prefix).unwrap();
    let n2 = Netns::create(prefix).unwrap();
    let client = Netns::create(prefix).unwrap();
    let switch = Netns::create(prefix).unwrap();
    switch
        .exec(&[
            "ip",
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])
        .unwrap();
    switch.exec(&["ip", "link", "set", "br0", "up"]).unwrap();
    for (ns, port, v4, v6) in [
        (&n1, "p1", "192.0.2.1/24", "2001:db8::1/64"),
        (&n2, "p2", "192.0.2.2/24", "2001:db8::2/64"),
        (&client, "pc", "192.0.2.100/24", "2001:db8::100/64"),
    ] {
        for key in [
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
            // Debian's default (systemd's sysctl.d): removing a primary address promotes a
            // secondary instead of removing them all.
            "net.ipv4.conf.default.promote_secondaries=1",
            "net.ipv4.conf.all.promote_secondaries=1",
        ] {
            ns.exec(&["sysctl", "-qw", key]).unwrap();
        }
        wire(ns, &switch, port, v4, v6);
    }
    let workdir = std::env::temp_dir().join(format!("{}-{}", n1.name(), std::process::id()));
    fs::create_dir_all(&workdir).unwrap();
    Lab {
        n1,
        n2,
        client,
        switch,
        workdir,
    }
}

/// Plugs `ns` into the switch: a veth `eth0` ↔ `port` on the bridge, addresses on `eth0`.
pub fn wire(ns: &Netns, switch: &Netns, port: &str, v4: &str, v6: &str) {
    veth(ns, "eth0", switch, port).unwrap();
    switch
        .exec(&["ip", "link", "set", port, "master", "br0"])
        .unwrap();
    ns.exec(&["ip", "addr", "add", v4, "dev", "eth0"]).unwrap();
    ns.exec(&["ip", "-6", "addr", "add", v6, "dev", "eth0", "nodad"])
        .unwrap();
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.workdir);
    }
}

/// Whether `ns` has `address` on eth0 (any prefix length, any owner).
pub fn holds(ns: &Netns, address: &str) -> bool {
    address_line(ns, address).is_some()
}

/// The `ip -d addr` line of `address` on eth0 of `ns`, if it is there: shows its label and
/// `proto`.
pub fn address_line(ns: &Netns, address: &str) -> Option<String> {
    let out = ns
        .exec(&["ip", "-d", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    out.lines()
        .find(|line| {
            line.split_whitespace()
                .any(|word| word.split('/').next() == Some(address))
        })
        .map(str::to_owned)
}

pub fn spec(name: &str, vrid: u8, vip: &str, priority: u8) -> InstanceSpec {
    InstanceSpec {
        name: name.to_owned(),
        interface: Some("eth0".to_owned()),
        vrid,
        version: Version::V3,
        addresses: vec![vip.parse().unwrap()],
        priority,
        advert_interval: Duration::from_millis(100),
        preempt: true,
        preempt_delay: Duration::ZERO,
        accept_mode: true,
        unicast_peers: Vec::new(),
        authentication: Authentication::None,
        garp: GarpSettings::default(),
        sync_group: None,
        use_virtual_mac: false,
        track: Track::default(),
    }
}

pub fn config(instances: Vec<InstanceSpec>) -> DesiredConfig {
    DesiredConfig {
        instances,
        ..DesiredConfig::default()
    }
}

/// Polls `check` every 10 ms until it holds; panics after [`SETTLE`].
pub fn wait_for(what: &str, check: impl FnMut() -> bool) -> Duration {
    wait_for_within(SETTLE, what, check)
}

pub fn wait_for_within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// Asserts `check` holds at every poll (10 ms) for `period`.
pub fn holds_for(period: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(
            check(),
            "{what} stopped holding after {:?}",
            start.elapsed()
        );
        sleep(Duration::from_millis(10));
    }
}

/// Debian's keepalived in `ns` with `config` (one `vrrp_instance`); killed on drop.
pub struct Keepalived {
    process: DaemonProcess,
    pub dir: PathBuf,
}

impl Keepalived {
    pub fn start(ns: &Netns, workdir: &Path, name: &str, config: &str) -> Self {
        let dir = workdir.join(format!("keepalived-{name}"));
        fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("keepalived.conf");
        fs::write(&conf, config).unwrap();
        let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
        let (conf, pid, vrrp, check) = (
            conf.to_string_lossy().into_owned(),
            path("keepalived.pid"),
            path("vrrp.pid"),
            path("checkers.pid"),
        );
        let args = [
            "/usr/sbin/keepalived",
            "-n",
            "-l",
            "-D",
            "-f",
            &conf,
            "-p",
            &pid,
            "-r",
            &vrrp,
            "-c",
            &check,
        ];
        let mut process =
            DaemonProcess::spawn("keepalived", name, ns, &args, &[], &dir.join("log")).unwrap();
        sleep(Duration::from_millis(150));
        process.ensure_running().unwrap();
        Self { process, dir }
    }

    /// A v3 instance on eth0, advert 100 ms, without GARP repeats.
    pub fn config(vrid: u8, priority: u8, vip: &str) -> String {
        format!(
            "global_defs {{
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
}}
vrrp_instance web {{
    state BACKUP
    interface eth0
    virtual_router_id {vrid}
    version 3
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {vip} dev eth0
    }}
}}
"
        )
    }

    /// Dies without a goodbye (no priority-0 advert reaches anyone: the caller cuts the port
    /// first, as the lab notes ask).
    pub fn kill(&mut self) {
        let _ = self.process.kill();
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// keepalived has started and its instance is BACKUP (it logs the state it enters).
    pub fn entered_backup(&self) -> bool {
        self.log().contains("Entering BACKUP STATE")
    }
}

/// `kube-vrrp-agent run` in standalone mode inside a node's namespace, from a manifests
/// directory, optionally behind a command prefix (e.g. `setpriv` to drop a capability). Killed
/// on drop.
pub struct BinaryAgent {
    process: DaemonProcess,
    ns_name: String,
}

/// Where a [`BinaryAgent`] serves `/status` and `/metrics`, inside its namespace.
pub const LISTEN: &str = "127.0.0.1:9650";

impl BinaryAgent {
    pub fn start(ns: &Netns, workdir: &Path, node: &str, manifests: &str, prefix: &[&str]) -> Self {
        let dir = workdir.join(format!("manifests-{node}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("lab.yaml"), manifests).unwrap();
        let dir = dir.to_string_lossy().into_owned();
        let mut args: Vec<&str> = prefix.to_vec();
        args.extend([
            env!("CARGO_BIN_EXE_kube-vrrp-agent"),
            "run",
            "--node",
            node,
            "--manifests",
            &dir,
            "--listen",
            LISTEN,
            "--poll-ms",
            "100",
        ]);
        let log = workdir.join(format!("agent-{node}.log"));
        let mut process =
            DaemonProcess::spawn("kube-vrrp-agent", node, ns, &args, &[], &log).unwrap();
        sleep(Duration::from_millis(100));
        process.ensure_running().unwrap();
        Self {
            process,
            ns_name: ns.name().to_owned(),
        }
    }

    fn get(&self, path: &'static str) -> Option<Vec<u8>> {
        let addr = LISTEN.parse().unwrap();
        in_netns(&self.ns_name, move || {
            kube_vrrp_e2e::http::get(addr, path, Duration::from_secs(2))
                .ok()
                .map(|response| response.body)
        })
    }

    pub fn status(&self, name: &str) -> Option<InstanceStatus> {
        let body = self.get("/status")?;
        let document: kube_vrrp_agent::report::StatusDocument =
            serde_json::from_slice(&body).ok()?;
        document.instances.into_iter().find(|i| i.name == name)
    }

    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get("/metrics")
            .and_then(|body| exposition::value(&String::from_utf8_lossy(&body), name, labels))
            .map_or(0, |v| v as u64)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// SIGTERM; panics unless the agent exits within `limit`.
    pub fn terminate(&mut self, limit: Duration) {
        let status = self.process.terminate(limit).unwrap();
        assert!(status.success(), "the agent exited with {status}");
    }
}

/// Runs `f` on a thread inside the namespace named `name`.
pub fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// The standalone manifests of the lab: VirtualIP `web` (VRID 51, advert 100 ms, 192.0.2.50/24,
/// n1 at 150, n2 at 100, `extra` lines added to its spec) and Nodes n1 and n2.
pub fn manifests(extra: &str) -> String {
    format!(
        "apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
  addresses: [\"192.0.2.50/24\"]
  virtualRouterID: 51
  advertInterval: 100ms
  interface: eth0
{extra}  priorities:
    - nodeName: n1
      priority: 150
    - nodeName: n2
      priority: 100
---
apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{{type: InternalIP, address: 192.0.2.1}}]
---
apiVersion: v1
kind: Node
metadata:
  name: n2
status:
  addresses: [{{type: InternalIP, address: 192.0.2.2}}]
"
    )
}

pub mod flood;

impl BinaryAgent {
    /// The agent's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.process.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    }
}
