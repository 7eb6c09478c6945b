//! The driver's input: this node's VRRP instances fully resolved (addresses parsed, timers as
//! durations, password read), and the pure comparison of two versions of one instance.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use kube_vrrp_crds::{RejectedInstance, Track};

use crate::net::announce::GarpSettings;
use crate::vrrp::instance::Config;
use crate::vrrp::packet::Authentication;
use crate::vrrp::{Family, Version};

/// Everything the driver runs on this node, and what the source could not give it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredConfig {
    /// The instances, sorted by name; names are unique.
    pub instances: Vec<InstanceSpec>,
    /// The node's own addresses (its InternalIPs): the last resort when picking an interface.
    pub node_addresses: Vec<IpAddr>,
    /// The source's generation (the `VrrpNode`'s in cluster mode), reported once applied.
    pub generation: Option<i64>,
    /// Instances of the source that are not run as given, and why (reported once applied).
    pub rejected: Vec<RejectedInstance>,
    /// The node's VirtualServers, for the IPVS task (the VRRP units do not read them).
    pub virtual_servers: Vec<kube_vrrp_crds::ResolvedVirtualServer>,
}

/// One VRRP instance, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// The VirtualIP's name: the instance's name in logs, status and metrics.
    pub name: String,
    /// Interface to run on; `None`: by subnet, then the one holding the node's InternalIP.
    pub interface: Option<String>,
    pub vrid: u8,
    pub version: Version,
    /// The virtual addresses, all of one family, never empty.
    pub addresses: Vec<IpNet>,
    /// This node's configured priority.
    pub priority: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub accept_mode: bool,
    /// Unicast peers; empty: multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// v2 authentication ([`Authentication::None`] for v3).
    pub authentication: Authentication,
    pub garp: GarpSettings,
    /// Instances with the same sync group fail over together.
    pub sync_group: Option<String>,
    /// Speak and hold the VIPs on a macvlan with the RFC virtual MAC.
    pub use_virtual_mac: bool,
    pub track: Track,
}

impl InstanceSpec {
    /// The address family of the virtual addresses (and so of the VRRP socket).
    pub fn family(&self) -> Family {
        self.addresses
            .first()
            .map_or(Family::Ipv4, |vip| Family::of(vip.addr()))
    }

    /// The state machine's configuration, with our source address on the interface.
    pub fn machine_config(&self, primary_address: IpAddr) -> Config {
        Config {
            vrid: self.vrid,
            priority: self.priority,
            advert_interval: self.advert_interval,
            version: self.version,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            accept_mode: self.accept_mode,
            primary_address,
        }
    }

    /// The advert interval as carried in adverts, in centiseconds (v2: whole seconds × 100).
    pub fn advert_interval_cs(&self) -> u16 {
        duration_to_cs(self.advert_interval)
    }

    /// The VIPs without prefix length, as adverts and announcements carry them.
    pub fn vip_addresses(&self) -> Vec<IpAddr> {
        self.addresses.iter().map(IpNet::addr).collect()
    }
}

/// A duration in centiseconds, saturating at `u16::MAX`.
pub fn duration_to_cs(duration: Duration) -> u16 {
    u16::try_from(duration.as_millis() / 10).unwrap_or(u16::MAX)
}

/// What changed between two versions of one instance, and so what applying it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // one flag per independent kind of change
pub struct InstanceDiff {
    /// The instance must be stopped and started again (interface, VRID, version, family).
    pub restart: bool,
    /// Priority or timers changed: the state machine gets `ConfigChanged`, state kept.
    pub protocol: bool,
    /// The virtual addresses changed: a MASTER swaps them in place.
    pub addresses: bool,
    /// The trackers changed: they are restarted.
    pub track: bool,
    /// Only edge settings changed (peers, authentication, GARP): nothing to tell the machine.
    pub edge: bool,
}

impl InstanceDiff {
    /// Compares the running `old` with the desired `new` version of one instance.
    pub fn between(old: &InstanceSpec, new: &InstanceSpec) -> Self {
        Self {
            restart: old.interface != new.interface
                || old.vrid != new.vrid
                || old.version != new.version
                || old.family() != new.family()
                || old.sync_group != new.sync_group
                || old.use_virtual_mac != new.use_virtual_mac,
            protocol: old.priority != new.priority
                || old.advert_interval != new.advert_interval
                || old.preempt != new.preempt
                || old.preempt_delay != new.preempt_delay
                || old.accept_mode != new.accept_mode,
            addresses: old.addresses != new.addresses,
            track: old.track != new.track,
            edge: old.unicast_peers != new.unicast_peers
                || old.authentication != new.authentication
                || old.garp != new.garp,
        }
    }

    /// Nothing changed at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn spec(name: &str, vrid: u8, vip: &str) -> InstanceSpec {
        InstanceSpec {
            name: name.to_owned(),
            interface: None,
            vrid,
            version: Version::V3,
            addresses: vec![vip.parse().unwrap()],
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            unicast_peers: Vec::new(),
            authentication: Authentication::None,
            garp: GarpSettings::default(),
            sync_group: None,
            use_virtual_mac: false,
            track: Track::default(),
        }
    }

    #[test]
    fn identical_specs_differ_in_nothing() {
        let a = spec("web", 51, "10.0.0.50/24");
        assert!(InstanceDiff::between(&a, &a.clone()).is_empty());
    }

    #[test]
    fn a_new_priority_is_a_protocol_change_without_restart() {
        let a = spec("web", 51, "10.0.0.50/24");
        let mut b = a.clone();
        b.priority = 150;
        let diff = InstanceDiff::between(&a, &b);
        assert!(diff.protocol);
        assert!(!diff.restart);
        assert!(!diff.addresses);
    }

    #[test]
    fn a_new_vrid_or_interface_or_family_restarts_the_instance() {
        let a = spec("web", 51, "10.0.0.50/24");
        let mut vrid = a.clone();
        vrid.vrid = 52;
        let mut interface = a.clone();
        interface.interface = Some("eth1".into());
        let family = spec("web", 51, "2001:db8::50/64");
        for b in [vrid, interface, family] {
            assert!(InstanceDiff::between(&a, &b).restart, "{b:?}");
        }
    }

    #[test]
    fn new_addresses_and_peers_are_applied_in_place() {
        let a = spec("web", 51, "10.0.0.50/24");
        let mut b = spec("web", 51, "10.0.0.51/24");
        b.unicast_peers = vec!["10.0.0.3".parse().unwrap()];
        let diff = InstanceDiff::between(&a, &b);
        assert!(diff.addresses && diff.edge);
        assert!(!diff.restart && !diff.protocol);
    }

    #[test]
    fn v2_interval_is_carried_as_whole_seconds_in_centiseconds() {
        let mut a = spec("web", 51, "10.0.0.50/24");
        a.version = Version::V2;
        a.advert_interval = Duration::from_secs(3);
        assert_eq!(a.advert_interval_cs(), 300);
        a.advert_interval = Duration::from_millis(10);
        assert_eq!(a.advert_interval_cs(), 1);
    }
}
