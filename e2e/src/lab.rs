//! The lab: node namespaces `n1..nN` and a client, each with an `eth0` on bridge `br0` inside a
//! switch namespace (and, on demand, a server the client reaches through a VIP); link cuts,
//! partitions, VIP ownership, and probes. All removed on drop.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::Mac;
use crate::addressing::{self, Family};
use crate::error::LabError;
use crate::netns::{self, Netns};
use crate::probe::{AdvertSniffer, NeighborProber};

/// The interface name of every lab host (nodes and client).
pub const LAB_IF: &str = "eth0";
/// The bridge in the switch namespace.
pub const BRIDGE: &str = "br0";
/// The switch-side port of the client.
const CLIENT_PORT: &str = "pc";
/// The switch-side port of the server.
const SERVER_PORT: &str = "ps";
/// The server's address on the lab subnet.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 200);
/// The address the server serves on, routed through the nodes (see [`Lab::add_server`]).
pub const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The network of [`SERVICE_IP`].
const SERVICE_NET: &str = "10.77.0.0/24";

/// What to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabSpec {
    /// Number of node namespaces, named n1..nN.
    pub nodes: usize,
    /// Also give every host an fd00:77::/64 address (IPv4 192.168.77.0/24 is always there).
    pub ipv6: bool,
}

impl Default for LabSpec {
    fn default() -> Self {
        Self {
            nodes: 3,
            ipv6: false,
        }
    }
}

#[derive(Debug)]
struct LabNode {
    /// The node's name inside the lab ("n1"), as daemons and manifests know it.
    name: String,
    ns: Netns,
    mac: Mac,
    /// Its switch-side port ("p1").
    port: String,
}

/// A running lab. Dropping it kills every process inside and deletes all namespaces and its
/// work directory.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    // Field order is drop order: hosts first, then the switch.
    nodes: Vec<LabNode>,
    client: Netns,
    server: Option<Netns>,
    switch: Netns,
    workdir: PathBuf,
}

static WORKDIRS: AtomicU32 = AtomicU32::new(0);

fn wire_host(
    switch: &Netns,
    host: &Netns,
    port: &str,
    mac: Mac,
    addrs: &[IpAddr],
) -> Result<(), LabError> {
    netns::run(&[
        "ip",
        "link",
        "add",
        LAB_IF,
        "netns",
        host.name(),
        "address",
        &mac.to_string(),
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        switch.name(),
    ])?;
    switch.exec(&["ip", "link", "set", port, "master", BRIDGE])?;
    switch.exec(&["ip", "link", "set", port, "up"])?;
    for addr in addrs {
        let cidr = format!("{addr}/{}", Family::of(*addr).prefix_len());
        host.exec(&["ip", "addr", "add", &cidr, "dev", LAB_IF, "nodad"])?;
    }
    host.exec(&["ip", "link", "set", LAB_IF, "up"])?;
    Ok(())
}

/// No DAD in lab namespaces: addresses (including VIPs added by daemons) answer at once.
fn disable_dad(ns: &Netns) -> Result<(), LabError> {
    for key in [
        "net.ipv6.conf.all.accept_dad",
        "net.ipv6.conf.default.accept_dad",
    ] {
        ns.exec(&["sysctl", "-qw", &format!("{key}=0")])?;
    }
    Ok(())
}

impl Lab {
    /// Builds the lab. Needs root. Namespaces left by lab processes that no longer exist (a test
    /// binary killed before it could clean up) are removed first.
    pub fn new(spec: LabSpec) -> Result<Self, LabError> {
        if spec.nodes == 0 || spec.nodes > 200 {
            return Err(LabError::Invalid(format!("{} nodes (1..=200)", spec.nodes)));
        }
        sweep_stale();
        let workdir = std::env::temp_dir().join(format!(
            "kube-vrrp-lab-{}-{}",
            std::process::id(),
            WORKDIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&workdir)
            .map_err(LabError::io(format!("create {}", workdir.display())))?;
        // Namespaces are owned right away, so an error below still deletes what exists.
        let switch = Netns::create("kvsw")?;
        let client = Netns::create("kvc")?;
        let mut lab = Self {
            spec,
            nodes: Vec::with_capacity(spec.nodes),
            client,
            server: None,
            switch,
            workdir,
        };
        lab.switch.exec(&[
            "ip",
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
            "stp_state",
            "0",
        ])?;
        lab.switch.exec(&["ip", "link", "set", BRIDGE, "up"])?;
        for n in 1..=spec.nodes {
            let ns = Netns::create(&format!("kvn{n}-"))?;
            lab.nodes.push(LabNode {
                name: format!("n{n}"),
                ns,
                mac: addressing::node_mac(n),
                port: format!("p{n}"),
            });
        }
        let families = lab.families();
        disable_dad(&lab.client)?;
        let client_addrs: Vec<IpAddr> =
            families.iter().map(|&f| addressing::client_ip(f)).collect();
        wire_host(
            &lab.switch,
            &lab.client,
            CLIENT_PORT,
            addressing::client_mac(),
            &client_addrs,
        )?;
        for (i, node) in lab.nodes.iter().enumerate() {
            disable_dad(&node.ns)?;
            let addrs: Vec<IpAddr> = families
                .iter()
                .map(|&f| addressing::node_ip(i + 1, f))
                .collect();
            wire_host(&lab.switch, &node.ns, &node.port, node.mac, &addrs)?;
        }
        // Links come up asynchronously; hand out a lab whose every node answers the client.
        for n in lab.node_numbers() {
            for &family in families {
                let addr = addressing::node_ip(n, family);
                if !lab.wait_reachable(addr, Duration::from_secs(10)) {
                    return Err(LabError::Timeout {
                        what: format!("the client reaching n{n} at {addr}"),
                        timeout: Duration::from_secs(10),
                    });
                }
            }
        }
        Ok(lab)
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node numbers, 1..=N.
    pub fn node_numbers(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.nodes.len()
    }

    fn node(&self, node: usize) -> Result<&LabNode, LabError> {
        node.checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .ok_or(LabError::NoSuchNode(node))
    }

    /// The lab name of node `node` ("n1").
    pub fn node_name(&self, node: usize) -> Result<&str, LabError> {
        Ok(&self.node(node)?.name)
    }

    /// The namespace of node `node`.
    pub fn node_ns(&self, node: usize) -> Result<&Netns, LabError> {
        Ok(&self.node(node)?.ns)
    }

    /// The MAC of node `node`'s eth0.
    pub fn node_mac(&self, node: usize) -> Result<Mac, LabError> {
        Ok(self.node(node)?.mac)
    }

    /// The node owning `mac`, if any.
    pub fn node_with_mac(&self, mac: Mac) -> Option<usize> {
        self.nodes.iter().position(|n| n.mac == mac).map(|i| i + 1)
    }

    pub fn client(&self) -> &Netns {
        &self.client
    }

    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// A directory for config files, logs and pid files; removed with the lab.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Wires one more host to the switch, e.g. the control plane or an operator replica: a new
    /// namespace `kva{role}-...` with `eth0` on a non-isolated port `p{role}` (so a partition of
    /// the nodes still lets every node reach it), addressed as lab host `host` in every family
    /// of the lab (see [`addressing::lab_host_ip`]). The caller owns the namespace; dropping it
    /// removes the host and its port.
    pub fn attach(&self, role: &str, host: u8) -> Result<Netns, LabError> {
        let ns = Netns::create(&format!("kva{role}-"))?;
        disable_dad(&ns)?;
        let addrs: Vec<IpAddr> = self
            .families()
            .iter()
            .map(|&f| addressing::lab_host_ip(host, f))
            .collect();
        wire_host(
            &self.switch,
            &ns,
            &format!("p{role}"),
            addressing::lab_host_mac(host),
            &addrs,
        )?;
        Ok(ns)
    }

    fn families(&self) -> &'static [Family] {
        if self.spec.ipv6 {
            &[Family::V4, Family::V6]
        } else {
            &[Family::V4]
        }
    }

    /// Takes node `node`'s switch port down: it hears nothing and nothing hears it.
    pub fn cut(&self, node: usize) -> Result<(), LabError> {
        self.switch
            .exec(&["ip", "link", "set", &self.node(node)?.port, "down"])?;
        Ok(())
    }

    /// Brings node `node`'s switch port back up.
    pub fn heal(&self, node: usize) -> Result<(), LabError> {
        self.switch
            .exec(&["ip", "link", "set", &self.node(node)?.port, "up"])?;
        Ok(())
    }

    /// Partitions the nodes from each other while the client still reaches every node: every
    /// node port becomes an isolated bridge port (isolated ports forward only to non-isolated
    /// ones, i.e. the client's).
    pub fn partition(&self) -> Result<(), LabError> {
        self.set_isolated(true)
    }

    /// Undoes [`Lab::partition`].
    pub fn heal_partition(&self) -> Result<(), LabError> {
        self.set_isolated(false)
    }

    fn set_isolated(&self, on: bool) -> Result<(), LabError> {
        let value = if on { "on" } else { "off" };
        for node in &self.nodes {
            self.switch.exec(&[
                "bridge", "link", "set", "dev", &node.port, "isolated", value,
            ])?;
        }
        Ok(())
    }

    /// Adds a server namespace on the switch holding [`SERVICE_IP`], which the client reaches
    /// through `gateway` (a VIP): the client routes the service network via the gateway, every
    /// node forwards it to the server (IPv4 forwarding on, no ICMP redirects), and the server
    /// answers the client directly. Only the client → server direction crosses the VIP, so a
    /// stream from the client shows exactly what a move of the VIP costs forwarded traffic.
    /// A node never relays the gateway address itself: a packet for it reaching a node that
    /// does not hold it is dropped (a blackhole route, which the address, when held, overrides
    /// from the local table), so a ping to the VIP is answered by its holder or by nobody.
    pub fn add_server(&mut self, gateway: Ipv4Addr) -> Result<&Netns, LabError> {
        if self.server.is_some() {
            return Err(LabError::Invalid("the lab already has a server".into()));
        }
        let server = Netns::create("kvsv")?;
        wire_host(
            &self.switch,
            &server,
            SERVER_PORT,
            addressing::server_mac(),
            &[IpAddr::V4(SERVER_IP)],
        )?;
        server.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVICE_IP}/32"),
            "dev",
            "lo",
        ])?;
        server.exec(&["ip", "link", "set", "lo", "up"])?;
        let server_ip = SERVER_IP.to_string();
        for node in &self.nodes {
            for key in [
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.send_redirects=0",
                "net.ipv4.conf.eth0.send_redirects=0",
            ] {
                node.ns.exec(&["sysctl", "-qw", key])?;
            }
            node.ns
                .exec(&["ip", "route", "add", SERVICE_NET, "via", &server_ip])?;
            node.ns
                .exec(&["ip", "route", "add", "blackhole", &format!("{gateway}/32")])?;
        }
        self.client
            .exec(&["sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0"])?;
        self.client.exec(&[
            "ip",
            "route",
            "add",
            SERVICE_NET,
            "via",
            &gateway.to_string(),
        ])?;
        Ok(self.server.insert(server))
    }

    /// The server namespace, once [`Lab::add_server`] made it.
    pub fn server(&self) -> Option<&Netns> {
        self.server.as_ref()
    }

    /// Whether node `node` has `addr` on eth0.
    pub fn holds(&self, node: usize, addr: IpAddr) -> Result<bool, LabError> {
        Ok(self.addresses(node)?.contains(&addr))
    }

    /// Every address on node `node`'s eth0 (VIPs included), in the order `ip` lists them.
    pub fn addresses(&self, node: usize) -> Result<Vec<IpAddr>, LabError> {
        let out = self
            .node(node)?
            .ns
            .exec(&["ip", "-o", "addr", "show", "dev", LAB_IF])?;
        Ok(parse_addresses(&out))
    }

    /// The IPv4 multicast packets node `node` has received and sent so far (the kernel's
    /// `IpExt` counters of the node's namespace). VRRP adverts go to 224.0.0.18, so these count
    /// them and leave out ARP (a conflict probe, neighbour resolution) and IPv6 chatter (router
    /// solicitations), which an interface's own counters include.
    pub fn multicast_packets(&self, node: usize) -> Result<MulticastPackets, LabError> {
        let out = self.node(node)?.ns.exec(&["cat", "/proc/net/netstat"])?;
        parse_multicast_packets(&out).ok_or_else(|| {
            LabError::Invalid(format!(
                "no IpExt multicast counters in /proc/net/netstat: {out}"
            ))
        })
    }

    /// The nodes that have `addr` on eth0, ascending.
    pub fn holders(&self, addr: IpAddr) -> Result<Vec<usize>, LabError> {
        let mut out = Vec::new();
        for n in self.node_numbers() {
            if self.holds(n, addr)? {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Waits until exactly one node holds `addr` and returns it.
    pub fn wait_for_single_holder(
        &self,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<usize, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let [one] = self.holders(addr)?.as_slice() {
                return Ok(*one);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "exactly one node holding {addr} (now: {:?})",
                        self.holders(addr)?
                    ),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes `addr` from node `node` (e.g. the VIP a SIGKILLed keepalived leaves behind).
    pub fn remove_address(&self, node: usize, addr: IpAddr) -> Result<(), LabError> {
        let cidr = format!("{addr}/{}", Family::of(addr).prefix_len());
        self.node(node)?
            .ns
            .exec(&["ip", "addr", "del", &cidr, "dev", LAB_IF])?;
        Ok(())
    }

    /// Whether one ping from the client to `addr` is answered within a second.
    pub fn ping(&self, addr: IpAddr) -> bool {
        let addr = addr.to_string();
        self.client
            .exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", &addr])
            .is_ok()
    }

    /// Pings `addr` from the client until it answers or `timeout` passes.
    pub fn wait_reachable(&self, addr: IpAddr, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ping(addr) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts asking "who has `vip`" from the client every `period`.
    pub fn probe(&self, vip: IpAddr, period: Duration) -> Result<NeighborProber, LabError> {
        let family = Family::of(vip);
        if family == Family::V6 && !self.spec.ipv6 {
            return Err(LabError::Invalid(
                "probing an IPv6 VIP in a lab built without ipv6".into(),
            ));
        }
        NeighborProber::start(
            &self.client,
            LAB_IF,
            addressing::client_mac(),
            addressing::client_ip(family),
            vip,
            period,
        )
    }

    /// Starts recording every VRRP advert entering the switch from a node port.
    pub fn sniff(&self) -> Result<AdvertSniffer, LabError> {
        let ports: Vec<String> = self.nodes.iter().map(|n| n.port.clone()).collect();
        let indexes = self.switch.run_in(move || {
            ports
                .iter()
                .map(|p| nix::net::if_::if_nametoindex(p.as_str()))
                .collect::<Result<Vec<u32>, _>>()
        })?;
        let indexes = indexes.map_err(|e| LabError::io("switch port indexes")(e.into()))?;
        let map: HashMap<u32, usize> = indexes.into_iter().zip(1..).collect();
        AdvertSniffer::start(&self.switch, map)
    }
}

/// Namespace name prefixes the lab creates (`Netns::create` appends `{pid}x{n}`).
const PREFIXES: [&str; 5] = ["kvsw", "kvsv", "kvc", "kvn", "kva"];

/// The pid embedded in a lab namespace name, if it is one: `kvn2-1234x7` → 1234.
fn lab_namespace_pid(name: &str) -> Option<u32> {
    let prefix = PREFIXES.iter().find(|p| name.starts_with(**p))?;
    let rest = &name[prefix.len()..];
    // Node and attached-host namespaces carry their number or role and a dash before the pid.
    let rest = if *prefix == "kvn" || *prefix == "kva" {
        rest.split_once('-')?.1
    } else {
        rest
    };
    let (pid, n) = rest.split_once('x')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

/// Deletes lab namespaces whose creating process is gone, killing what still runs inside.
fn sweep_stale() {
    let Ok(list) = netns::run(&["ip", "netns", "list"]) else {
        return;
    };
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = lab_namespace_pid(name) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(pids) = netns::run(&["ip", "netns", "pids", name]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = netns::run(&["ip", "netns", "del", name]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Namespaces (and their processes) go with the fields; the work directory goes here.
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// IPv4 multicast packets a node's namespace received and sent, as the kernel counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticastPackets {
    pub received: u64,
    pub sent: u64,
}

impl MulticastPackets {
    /// What was counted since `earlier`.
    #[must_use]
    pub fn since(self, earlier: Self) -> Self {
        Self {
            received: self.received.saturating_sub(earlier.received),
            sent: self.sent.saturating_sub(earlier.sent),
        }
    }
}

/// The addresses of `ip -o addr show` output (`inet` and `inet6` words).
fn parse_addresses(out: &str) -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if (word == "inet" || word == "inet6")
                && let Some(address) = words
                    .next()
                    .and_then(|cidr| cidr.split('/').next())
                    .and_then(|a| a.parse().ok())
            {
                addresses.push(address);
            }
        }
    }
    addresses
}

/// `InMcastPkts` and `OutMcastPkts` of /proc/net/netstat: a header line of names and a line of
/// values, both starting with `IpExt:`.
fn parse_multicast_packets(out: &str) -> Option<MulticastPackets> {
    let mut lines = out.lines().filter(|line| line.starts_with("IpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let value = |name: &str| {
        let at = names.split_whitespace().position(|n| n == name)?;
        values.split_whitespace().nth(at)?.parse().ok()
    };
    Some(MulticastPackets {
        received: value("InMcastPkts")?,
        sent: value("OutMcastPkts")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_read_from_ip_addr_output() {
        let out = "2: eth0    inet 192.168.77.11/24 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet 172.16.1.7/16 scope global secondary eth0:vrrp\\       valid_lft forever\n\
                   2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n";
        let addresses: Vec<String> = parse_addresses(out)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addresses, ["192.168.77.11", "172.16.1.7", "fe80::1"]);
    }

    #[test]
    fn multicast_counters_are_read_from_the_ipext_lines_of_netstat() {
        let out = "TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 0\n\
                   IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts\n\
                   IpExt: 0 0 7 3 0\n";
        let packets = parse_multicast_packets(out).unwrap();
        assert_eq!(
            packets,
            MulticastPackets {
                received: 7,
                sent: 3
            }
        );
        let later = MulticastPackets {
            received: 10,
            sent: 3,
        };
        assert_eq!(
            later.since(packets),
            MulticastPackets {
                received: 3,
                sent: 0
            }
        );
        assert!(parse_multicast_packets("TcpExt: A\nTcpExt: 1\n").is_none());
        assert!(parse_multicast_packets("IpExt: InMcastPkts\nIpExt: 7\n").is_none());
    }

    use super::*;

    #[test]
    fn only_lab_namespace_names_yield_a_pid() {
        assert_eq!(lab_namespace_pid("kvn2-1234x7"), Some(1234));
        assert_eq!(lab_namespace_pid("kvsw99x0"), Some(99));
        assert_eq!(lab_namespace_pid("kvc5x1"), Some(5));
        assert_eq!(lab_namespace_pid("kvsv8x2"), Some(8));
        assert_eq!(lab_namespace_pid("kvacp-77x3"), Some(77));
        assert_eq!(lab_namespace_pid("kvt5x1"), None);
        assert_eq!(lab_namespace_pid("kvn2-1234"), None);
        assert_eq!(lab_namespace_pid("other"), None);
    }
}
