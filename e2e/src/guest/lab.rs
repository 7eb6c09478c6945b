//! The IPVS lab inside the guest: the node's NIC `lab0` (a dummy link on 192.0.2.0/24, where
//! the VIP goes), a `backends` network namespace holding the real servers (198.51.100.11–13,
//! TCP 8080 and UDP 5353, each answering with its name), and a `client` namespace
//! (203.0.113.2) routed through the node, so client traffic crosses IPVS the way it does on a
//! director: NAT in, un-NAT out. The agent runs in standalone mode on `/lab/manifests`.

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
        let kernel = GuestKernel::prepare(&tools_dir())?;
        let base = image::base(&kernel, &[])?;
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
        let guest = Guest::boot(&kernel, &[&base, &payload], &GuestSpec::default())?;
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
        script.push_str("/sbin/ip -n backends route add default via 198.51.100.1\n");
        for (name, address) in REAL_SERVERS {
            let _ = writeln!(
                script,
                "/sbin/ip netns exec backends /opt/kv/ipvs-lab-peer serve --name {name} --tcp {address}:8080 --udp {address}:5353 > /tmp/{name}.log 2>&1 &"
            );
        }
        script.push_str("mkdir -p /lab/manifests /run/kube-vrrp\n");
        self.guest.ok(&script)?;
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

    /// Starts the agent in standalone mode as node `node`.
    pub fn start_agent_as(&mut self, node: &str, extra: &str) -> Result<(), GuestError> {
        let out = self.guest.ok(&format!(
            "RUST_LOG=info /opt/kv/kube-vrrp-agent run --node {node} --manifests {MANIFESTS} --listen {LISTEN} --log-format json --poll-ms 200 --runtime-dir /run/kube-vrrp --ipvs-resync-ms 1000 {extra} >> /tmp/agent.log 2>&1 &
echo $!"
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
