//! The IPVS lab inside the guest: the node's NIC `lab0` (a dummy link on 192.0.2.0/24, where
//! the VIP goes), a `backends` network namespace holding the real servers (198.51.100.11–13,
//! TCP 8080 and UDP 5353, each answering with its name, and HTTP on 8081 answering with the
//! status in `/tmp/<name>.status`, 200 without it) and a sorry server (198.51.100.14, the
//! same ports), and a `client` namespace (203.0.113.2) routed through the node, so client
//! traffic crosses IPVS the way it does on a director: NAT in, un-NAT out. The agent runs in
//! standalone mode on `/lab/manifests`; keepalived, when carried, from a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::image::{self, Initramfs};
use super::ipvsadm::{ListedService, Stats, parse_list, parse_stats};
use super::vm::target_binary;
use super::{Guest, GuestError, GuestKernel, GuestSpec, tools_dir};

/// The node's own address.
pub const NODE_IP: &str = "192.0.2.10";
/// The VirtualIP of the lab manifests.
pub const VIP: &str = "192.0.2.100";
/// The real servers in the `backends` namespace: (name, address).
pub const REAL_SERVERS: [(&str, &str); 3] = [
    ("rs1", "198.51.100.11"),
    ("rs2", "198.51.100.12"),
    ("rs3", "198.51.100.13"),
];
/// The sorry server in the `backends` namespace: (name, address).
pub const SORRY_SERVER: (&str, &str) = ("sorry", "198.51.100.14");
/// The HTTP port of every real server.
pub const HTTP_PORT: u16 = 8081;
/// Where the IPVS change watcher writes.
pub const WATCH_LOG: &str = "/tmp/ipvs-watch.jsonl";
/// Where keepalived's configuration goes.
pub const KEEPALIVED_CONF: &str = "/lab/keepalived.conf";
/// Where the agent's manifests live in the guest.
pub const MANIFESTS: &str = "/lab/manifests";
/// The agent's `--listen` in the guest.
pub const LISTEN: &str = "127.0.0.1:9180";

/// The node, VirtualIP `web` on `lab0`, for the lab's VirtualServers.
pub fn node_and_vip() -> String {
    format!(
        "apiVersion: v1
kind: Node
metadata:
  name: guest
status:
  addresses: [{{type: InternalIP, address: {NODE_IP}}}]
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
  addresses: [\"{VIP}/24\"]
  virtualRouterID: 51
  interface: lab0
  advertInterval: 100ms
"
    )
}

/// A booted guest with the lab's links, namespaces and real servers.
pub struct IpvsLab {
    pub guest: Guest,
    agent_pid: Option<u32>,
}

impl std::fmt::Debug for IpvsLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpvsLab")
            .field("agent_pid", &self.agent_pid)
            .finish_non_exhaustive()
    }
}

impl IpvsLab {
    /// Boots the guest with the agent (`profile`: `debug` or `release`) and the lab peer, and
    /// builds the topology. `extra`: more host programs to carry.
    pub fn boot(profile: &str) -> Result<Self, GuestError> {
        Self::boot_carrying(profile, &[])
    }

    /// [`IpvsLab::boot`], carrying host programs `extra` (e.g. `keepalived`) with their
    /// libraries into `/usr/bin`.
    pub fn boot_carrying(profile: &str, extra: &[&str]) -> Result<Self, GuestError> {
        Self::boot_with_archives(profile, extra, &[])
    }

    /// [`IpvsLab::boot_carrying`], with more archives unpacked after the lab's (e.g.
    /// [`super::callgrind::archive`]).
    pub fn boot_with_archives(
        profile: &str,
        extra: &[&str],
        archives: &[Vec<u8>],
    ) -> Result<Self, GuestError> {
        let kernel = GuestKernel::prepare(&tools_dir())?;
        let base = image::base(&kernel, extra)?;
        let mut payload = Initramfs::new();
        for name in ["kube-vrrp-agent", "ipvs-lab-peer"] {
            let path = target_binary(name, profile);
            if !path.exists() {
                return Err(GuestError::Invalid(format!(
                    "{} is not built: run `cargo build --bins` (profile {profile})",
                    path.display()
                )));
            }
            payload.program(&format!("/opt/kv/{name}"), &path, true)?;
        }
        let payload = payload.finish();
        let mut all: Vec<&[u8]> = vec![&base, &payload];
        all.extend(archives.iter().map(Vec::as_slice));
        let guest = Guest::boot(&kernel, &all, &GuestSpec::default())?;
        let mut lab = Self {
            guest,
            agent_pid: None,
        };
        lab.topology()?;
        Ok(lab)
    }

    fn topology(&mut self) -> Result<(), GuestError> {
        let mut script = String::from(
            "set -e
/sbin/ip link add lab0 type dummy
/sbin/ip addr add 192.0.2.10/24 dev lab0
/sbin/ip link set lab0 up
echo 1 > /proc/sys/net/ipv4/ip_forward
/sbin/ip netns add backends
/sbin/ip link add rs0 type veth peer name eth0 netns backends
/sbin/ip addr add 198.51.100.1/24 dev rs0
/sbin/ip link set rs0 up
/sbin/ip -n backends link set lo up
/sbin/ip -n backends link set eth0 up
/sbin/ip netns add client
/sbin/ip link add cl0 type veth peer name eth0 netns client
/sbin/ip addr add 203.0.113.1/24 dev cl0
/sbin/ip link set cl0 up
/sbin/ip -n client addr add 203.0.113.2/24 dev eth0
/sbin/ip -n client link set lo up
/sbin/ip -n client link set eth0 up
/sbin/ip -n client route add default via 203.0.113.1
",
        );
        for (_, address) in REAL_SERVERS {
            let _ = writeln!(
                script,
                "/sbin/ip -n backends addr add {address}/24 dev eth0"
            );
        }
        let _ = writeln!(
            script,
            "/sbin/ip -n backends addr add {}/24 dev eth0",
            SORRY_SERVER.1
        );
        script.push_str("/sbin/ip -n backends route add default via 198.51.100.1\n");
        self.guest.ok(&script)?;
        for (name, _) in REAL_SERVERS.iter().chain([&SORRY_SERVER]) {
            self.start_real_server(name)?;
        }
        self.guest.ok("mkdir -p /lab/manifests /run/kube-vrrp")?;
        Ok(())
    }

    fn address_of(name: &str) -> Result<&'static str, GuestError> {
        REAL_SERVERS
            .iter()
            .chain([&SORRY_SERVER])
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| GuestError::Invalid(format!("no real server {name}")))
    }

    /// Starts real server `name` (TCP 8080, UDP 5353, HTTP 8081), its pid in `/tmp/<name>.pid`;
    /// returns the guest's time when its listeners were bound.
    pub fn start_real_server(&mut self, name: &str) -> Result<f64, GuestError> {
        let address = Self::address_of(name)?;
        let text = self.guest.ok(&format!(
            "rm -f /tmp/{name}.ready
/sbin/ip netns exec backends /opt/kv/ipvs-lab-peer serve --name {name} --tcp {address}:8080 --udp {address}:5353 --http {address}:{HTTP_PORT} --status-file /tmp/{name}.status --ready-file /tmp/{name}.ready >> /tmp/{name}.log 2>&1 &
echo $! > /tmp/{name}.pid
for i in $(seq 200); do [ -s /tmp/{name}.ready ] && break; sleep 0.05; done; cat /tmp/{name}.ready"
        ))?;
        text.trim()
            .parse()
            .map_err(|e| GuestError::Invalid(format!("`now` printed {text:?}: {e}")))
    }

    /// Kills real server `name` (its listeners go away: connections are refused).
    pub fn stop_real_server(&mut self, name: &str) -> Result<(), GuestError> {
        Self::address_of(name)?;
        self.guest.ok(&format!(
            "kill -KILL $(cat /tmp/{name}.pid); rm -f /tmp/{name}.pid"
        ))?;
        Ok(())
    }

    /// Makes real server `name` answer HTTP with `status` (200: healthy again).
    pub fn set_http_status(&mut self, name: &str, status: u16) -> Result<(), GuestError> {
        Self::address_of(name)?;
        self.guest
            .ok(&format!("echo {status} > /tmp/{name}.status"))?;
        Ok(())
    }

    /// The guest's clock, as the watcher and the client stamp their lines.
    pub fn now(&mut self) -> Result<f64, GuestError> {
        let text = self.guest.ok("/opt/kv/ipvs-lab-peer now")?;
        text.trim()
            .parse()
            .map_err(|e| GuestError::Invalid(format!("`now` printed {text:?}: {e}")))
    }

    /// Runs `command` and returns the guest's clock just before it.
    pub fn at(&mut self, command: &str) -> Result<f64, GuestError> {
        let text = self
            .guest
            .ok(&format!("/opt/kv/ipvs-lab-peer now; {command}"))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| GuestError::Invalid(format!("no time before {command:?}: {text}")))
    }

    /// Starts the IPVS change watcher (every 20 ms) into [`WATCH_LOG`], from scratch.
    pub fn start_watcher(&mut self) -> Result<(), GuestError> {
        self.guest.ok(&format!(
            "kill $(cat /tmp/watch.pid 2>/dev/null) 2>/dev/null; rm -f {WATCH_LOG}
/opt/kv/ipvs-lab-peer watch --interval-ms 20 > {WATCH_LOG} 2>/tmp/watch.err &
echo $! > /tmp/watch.pid"
        ))?;
        Ok(())
    }

    /// What the watcher saw so far.
    pub fn watched(&mut self) -> Result<Vec<super::timeline::Observed>, GuestError> {
        Ok(super::timeline::observed(
            &self.guest.ok(&format!("cat {WATCH_LOG}"))?,
        ))
    }

    /// Starts a client in the `client` namespace: a TCP connection to `VIP:port` every
    /// `interval_ms` for `seconds`, one JSON line each into `/tmp/client.jsonl`.
    pub fn start_client_log(
        &mut self,
        port: u16,
        interval_ms: u64,
        seconds: f64,
    ) -> Result<(), GuestError> {
        self.guest.ok(&format!(
            "rm -f /tmp/client.jsonl; /sbin/ip netns exec client /opt/kv/ipvs-lab-peer client --tcp {VIP}:{port} --jsonl --interval-ms {interval_ms} --seconds {seconds} > /tmp/client.jsonl 2>&1 &
echo $! > /tmp/client.pid"
        ))?;
        Ok(())
    }

    /// Waits for the client of [`IpvsLab::start_client_log`] to finish; its attempts.
    pub fn client_attempts(&mut self) -> Result<Vec<super::timeline::Attempt>, GuestError> {
        self.guest
            .ok("while kill -0 $(cat /tmp/client.pid) 2>/dev/null; do sleep 0.2; done")?;
        Ok(super::timeline::attempts(
            &self.guest.ok("cat /tmp/client.jsonl")?,
        ))
    }

    /// Starts keepalived's checker (`-C`) on [`KEEPALIVED_CONF`], logging through a busybox
    /// syslogd to `/tmp/keepalived.log` (keepalived's `-l` would write on the console the lab
    /// talks over).
    pub fn start_keepalived(&mut self, conf: &str) -> Result<(), GuestError> {
        self.start_keepalived_under(conf, "")
    }

    /// [`IpvsLab::start_keepalived`] with `prefix` before its command line (e.g.
    /// [`super::callgrind::prefix`]).
    pub fn start_keepalived_under(&mut self, conf: &str, prefix: &str) -> Result<(), GuestError> {
        self.guest.write_file(KEEPALIVED_CONF, conf)?;
        self.guest.ok(&format!(
            "mkdir -p /run/keepalived /var/run
[ -S /dev/log ] || {{ /bin/busybox syslogd -O /tmp/keepalived.log; sleep 0.2; }}
{prefix} /usr/bin/keepalived -n -D -C -f {KEEPALIVED_CONF} -p /run/keepalived/k.pid -c /run/keepalived/c.pid > /tmp/keepalived.out 2>&1 &
echo $! > /tmp/keepalived.pid"
        ))?;
        Ok(())
    }

    /// Stops keepalived (SIGTERM: it removes its services) and waits for it to exit.
    pub fn stop_keepalived(&mut self) -> Result<(), GuestError> {
        self.guest.ok(
            "pid=$(cat /tmp/keepalived.pid); kill -TERM $pid; for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; ! kill -0 $pid 2>/dev/null",
        )?;
        Ok(())
    }

    /// Writes manifest file `name` (write then rename, so the agent never reads half a file).
    pub fn write_manifest(&mut self, name: &str, yaml: &str) -> Result<(), GuestError> {
        self.guest.write_file(&format!("/lab/.{name}.tmp"), yaml)?;
        self.guest
            .ok(&format!("mv /lab/.{name}.tmp {MANIFESTS}/{name}"))?;
        Ok(())
    }

    /// Removes manifest file `name`.
    pub fn remove_manifest(&mut self, name: &str) -> Result<(), GuestError> {
        self.guest.ok(&format!("rm -f {MANIFESTS}/{name}"))?;
        Ok(())
    }

    /// Starts the agent in standalone mode as node `guest` (logs to /tmp/agent.log, appended).
    pub fn start_agent(&mut self, extra: &str) -> Result<(), GuestError> {
        self.start_agent_as("guest", extra)
    }

    /// Starts the agent in standalone mode as node `node`, re-reading IPVS every second (the
    /// labs look at repairs; the agent's default is 10 s).
    pub fn start_agent_as(&mut self, node: &str, extra: &str) -> Result<(), GuestError> {
        self.start_agent_resyncing(node, Duration::from_secs(1), extra)
    }

    /// Starts the agent in standalone mode as node `node`, re-reading IPVS every `resync`.
    pub fn start_agent_resyncing(
        &mut self,
        node: &str,
        resync: Duration,
        extra: &str,
    ) -> Result<(), GuestError> {
        self.start_agent_under(node, resync, "", extra)
    }

    /// [`IpvsLab::start_agent_resyncing`] with `prefix` before its command line (e.g.
    /// [`super::callgrind::prefix`]).
    pub fn start_agent_under(
        &mut self,
        node: &str,
        resync: Duration,
        prefix: &str,
        extra: &str,
    ) -> Result<(), GuestError> {
        let out = self.guest.ok(&format!(
            "RUST_LOG=info {prefix} /opt/kv/kube-vrrp-agent run --node {node} --manifests {MANIFESTS} --listen {LISTEN} --log-format json --poll-ms 200 --runtime-dir /run/kube-vrrp --ipvs-resync-ms {} {extra} >> /tmp/agent.log 2>&1 &
echo $!",
            resync.as_millis()
        ))?;
        self.agent_pid = out.trim().parse().ok();
        Ok(())
    }

    /// Stops the agent with `signal` (`TERM`, `KILL`) and waits for it to exit.
    pub fn stop_agent(&mut self, signal: &str) -> Result<(), GuestError> {
        if let Some(pid) = self.agent_pid.take() {
            self.guest.ok(&format!(
                "kill -{signal} {pid}; for i in $(seq 100); do kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; ! kill -0 {pid} 2>/dev/null"
            ))?;
        }
        Ok(())
    }

    /// The agent's log so far.
    pub fn agent_log(&mut self) -> Result<String, GuestError> {
        self.guest.ok("cat /tmp/agent.log")
    }

    /// The agent's `/status` document as JSON text.
    pub fn status(&mut self) -> Result<serde_json::Value, GuestError> {
        let text = self
            .guest
            .ok(&format!("wget -q -O - http://{LISTEN}/status"))?;
        serde_json::from_str(text.trim())
            .map_err(|e| GuestError::Invalid(format!("/status is not JSON ({e}): {text}")))
    }

    /// `ipvsadm -Ln`, read.
    pub fn services(&mut self) -> Result<Vec<ListedService>, GuestError> {
        Ok(parse_list(&self.guest.ok("ipvsadm -Ln")?))
    }

    /// The service `key` (`TCP 192.0.2.100:80`) as listed, if present.
    pub fn service(&mut self, key: &str) -> Result<Option<ListedService>, GuestError> {
        Ok(self.services()?.into_iter().find(|s| s.key() == key))
    }

    /// `ipvsadm -Ln --stats --exact`, read: service key → counters.
    pub fn stats(&mut self) -> Result<BTreeMap<String, Stats>, GuestError> {
        Ok(parse_stats(&self.guest.ok("ipvsadm -Ln --stats --exact")?)
            .into_iter()
            .collect())
    }

    /// `count` TCP connections (or UDP queries) from the client namespace to `vip:port`;
    /// answers by real server name.
    pub fn client(
        &mut self,
        udp: bool,
        port: u16,
        count: u32,
    ) -> Result<BTreeMap<String, u32>, GuestError> {
        let proto = if udp { "--udp" } else { "--tcp" };
        let text = self.guest.ok(&format!(
            "/sbin/ip netns exec client /opt/kv/ipvs-lab-peer client {proto} {VIP}:{port} --count {count}"
        ))?;
        serde_json::from_str(text.trim())
            .map_err(|e| GuestError::Invalid(format!("client output is not JSON ({e}): {text}")))
    }

    /// Polls `check` until it holds or `timeout` passes.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut Self) -> Result<bool, GuestError>,
    ) -> Result<(), GuestError> {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.agent_log().unwrap_or_default();
                let list = self.guest.ok("ipvsadm -Ln").unwrap_or_default();
                return Err(GuestError::Timeout {
                    what: what.to_owned(),
                    timeout,
                    tail: format!("ipvsadm -Ln:\n{list}\nagent log:\n{log}"),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
