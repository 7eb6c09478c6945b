//! One node's keepalived configuration as keepalived runs it: every value effective (defaults
//! applied, global settings inherited, keepalived's own corrections made, references to
//! `vrrp_script` and `track_file` blocks resolved), each with the line it comes from.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use kube_vrrp_crds::{VirtualServerSpec, VrrpVersion};

use crate::position::{Located, Position};

/// What one node's files configure.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// The node's name (`--node`).
    pub node: String,
    /// The main file, as given.
    pub file: String,
    /// `router_id` from `global_defs`.
    pub router_id: Option<String>,
    /// The `vrrp_instance` blocks that keepalived would run.
    pub instances: Vec<Instance>,
    /// The `virtual_server` blocks that translate.
    pub virtual_servers: Vec<VirtualServerDef>,
}

/// A `vrrp_instance` as keepalived runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The instance name as written.
    pub name: String,
    /// The `vrrp_instance` line.
    pub at: Position,
    /// `state MASTER`: where it is written (a start hint only).
    pub start_master: Option<Position>,
    /// `interface`.
    pub interface: Option<Located<String>>,
    /// `virtual_router_id`.
    pub vrid: Located<u8>,
    /// `priority` (1..=255; 100 when not written).
    pub priority: Located<u8>,
    /// The VRRP version in effect (instance `version`, else `vrrp_version`, else 2; 3 for
    /// IPv6).
    pub version: Located<VrrpVersion>,
    /// `advert_int` as keepalived rounds it for the version.
    pub advert_interval: Located<Duration>,
    /// Whether this node preempts (after keepalived clears `nopreempt` for `state MASTER` or
    /// priority 255).
    pub preempt: Located<bool>,
    /// `preempt_delay` in effect (cleared by keepalived with `state MASTER`, `nopreempt` or
    /// strict mode).
    pub preempt_delay: Located<Duration>,
    /// Accept mode in effect (`accept` / `no_accept`, else off in strict mode, else on).
    pub accept: Located<bool>,
    /// `auth_pass` of `auth_type PASS` (VRRPv2 only).
    pub password: Option<Located<String>>,
    /// `unicast_src_ip`.
    pub unicast_src: Option<Located<IpAddr>>,
    /// `unicast_peer` entries; empty: multicast.
    pub unicast_peers: Vec<Located<IpAddr>>,
    /// The `virtual_ipaddress` entries that translate, one family, with their prefix length.
    pub addresses: Vec<Located<IpNet>>,
    /// GARP / NA settings in effect.
    pub garp: Garp,
    /// `use_vmac`.
    pub use_vmac: Option<Position>,
    /// The `vrrp_sync_group` naming this instance.
    pub sync_group: Option<Located<String>>,
    /// Trackers in effect (sync-group rules applied).
    pub trackers: Vec<Located<Tracker>>,
}

/// Gratuitous ARP / NA settings in effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Garp {
    /// `garp_master_delay` (0: no second burst).
    pub delay: Located<Duration>,
    /// `garp_master_repeat`.
    pub repeat: Located<u32>,
    /// `garp_master_refresh` (0: none).
    pub refresh: Located<Duration>,
}

/// Something an instance tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracker {
    /// `track_interface`: the interface and its weight (`None`: FAULT when down).
    Interface { name: String, weight: Option<i32> },
    /// `track_file`: the file and the multiplier of its value (`None`: non-zero is FAULT).
    File { path: String, weight: Option<i32> },
    /// `track_script` of a `vrrp_script`.
    Script(Script),
}

/// A `vrrp_script` as an instance tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The `vrrp_script` name.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Time between runs.
    pub interval: Duration,
    /// Time a run may take (keepalived: the interval when not set).
    pub timeout: Duration,
    /// Successes to become healthy.
    pub rise: u32,
    /// Failures to become failed.
    pub fall: u32,
    /// Priority change (`None`: FAULT when failing).
    pub weight: Option<i32>,
}

/// A `virtual_server` block, translated but for the VirtualIP it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServerDef {
    /// The `virtual_server` line.
    pub at: Position,
    /// Its address (the VirtualIP carrying it is found when the nodes are merged).
    pub address: IpAddr,
    /// The spec, `virtual_ip_ref` left empty.
    pub spec: VirtualServerSpec,
}
