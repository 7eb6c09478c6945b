//! One VRRP instance as the lab describes it, independent of which daemon runs it: keepalived
//! renders it as a `vrrp_instance`, the agent as a `VirtualIP` manifest.

use std::time::Duration;

use ipnet::IpNet;

use crate::addressing::{self, Family};

/// The VRRP version an instance speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// RFC 3768: advert interval in whole seconds, optional PASS authentication, IPv4 only.
    V2,
    /// RFC 5798: advert interval in centiseconds, IPv4 and IPv6.
    V3,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "2",
            Self::V3 => "3",
        }
    }
}

/// A VRRP instance spread over the lab's nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSpec {
    /// Instance name (the VirtualIP's metadata.name, keepalived's vrrp_instance name).
    pub name: String,
    pub vrid: u8,
    pub version: Version,
    pub advert_interval: Duration,
    /// Priority of lab node `n` at index `n - 1`; nodes past the end get 100.
    pub priorities: Vec<u8>,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// v2 PASS authentication password (at most 8 bytes are used on the wire).
    pub password: Option<String>,
    /// Send adverts to the other lab nodes' addresses instead of the multicast group.
    pub unicast: bool,
    /// The virtual addresses, all of one family.
    pub vips: Vec<IpNet>,
    /// A tracked file per node (`track.files` of the VirtualIP; the agent only): each node's
    /// agent watches its own file, see [`crate::agent::track_file_path`].
    pub track_file: Option<TrackFile>,
}

/// A file tracker: the file holds an integer; with a weight, value × weight is added to the
/// priority, without one any value but 0 puts the instance in FAULT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackFile {
    pub weight: Option<i32>,
}

impl InstanceSpec {
    /// A v3 instance with a 1 s advert interval, preempting, owning `vips`.
    pub fn new(name: &str, vrid: u8, vips: Vec<IpNet>) -> Self {
        Self {
            name: name.to_owned(),
            vrid,
            version: Version::V3,
            advert_interval: Duration::from_secs(1),
            priorities: Vec::new(),
            preempt: true,
            preempt_delay: Duration::ZERO,
            password: None,
            unicast: false,
            vips,
            track_file: None,
        }
    }

    /// The priority of lab node `node` (numbered from 1).
    pub fn priority(&self, node: usize) -> u8 {
        node.checked_sub(1)
            .and_then(|i| self.priorities.get(i))
            .copied()
            .unwrap_or(100)
    }

    /// The family of the instance's addresses (IPv4 when it has none).
    pub fn family(&self) -> Family {
        self.vips
            .first()
            .map_or(Family::V4, |net| Family::of(net.addr()))
    }

    /// The first VIP's address, the one probes ask for.
    pub fn first_vip(&self) -> Option<std::net::IpAddr> {
        self.vips.first().map(IpNet::addr)
    }

    /// Skew_Time of a backup with `priority`: RFC 3768 §6.1 (v2: (256 − priority) / 256 s) or
    /// RFC 5798 §6.1 (v3: scaled by Master_Adver_Interval).
    pub fn skew_time(&self, priority: u8) -> Duration {
        let weight = 256 - u64::from(priority);
        match self.version {
            Version::V2 => Duration::from_nanos(weight * 1_000_000_000 / 256),
            Version::V3 => {
                let interval = u64::try_from(self.advert_interval.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(weight * interval / 256)
            }
        }
    }

    /// Master_Down_Interval of a backup with `priority`: 3 × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self, priority: u8) -> Duration {
        self.advert_interval * 3 + self.skew_time(priority)
    }

    /// Checks what keepalived and the agent both require.
    pub fn validate(&self) -> Result<(), String> {
        if self.vrid == 0 {
            return Err("VRID must be 1..255".into());
        }
        if self.vips.is_empty() {
            return Err("an instance needs at least one VIP".into());
        }
        let family = self.family();
        if self.vips.iter().any(|v| Family::of(v.addr()) != family) {
            return Err("all VIPs of an instance must be of one family".into());
        }
        match self.version {
            Version::V2 => {
                if family == Family::V6 {
                    return Err("VRRPv2 is IPv4 only".into());
                }
                if self.advert_interval.subsec_nanos() != 0 || self.advert_interval.is_zero() {
                    return Err("a v2 advert interval is whole seconds".into());
                }
            }
            Version::V3 => {
                if self.password.is_some() {
                    return Err("v3 has no authentication".into());
                }
                let ms = self.advert_interval.as_millis();
                if ms == 0
                    || !ms.is_multiple_of(10)
                    || !self
                        .advert_interval
                        .subsec_nanos()
                        .is_multiple_of(1_000_000)
                {
                    return Err("a v3 advert interval is a multiple of 10 ms".into());
                }
            }
        }
        Ok(())
    }

    /// The unicast peers of `node`: the other lab nodes' addresses of the instance's family.
    pub fn unicast_peers(&self, node: usize, nodes: usize) -> Vec<std::net::IpAddr> {
        (1..=nodes)
            .filter(|&n| n != node)
            .map(|n| addressing::node_ip(n, self.family()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_follow_rfc_5798_for_v3_and_rfc_3768_for_v2() {
        let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
        assert_eq!(spec.skew_time(100), Duration::from_micros(609_375));
        assert_eq!(
            spec.master_down_interval(100),
            Duration::from_micros(3_609_375)
        );
        spec.advert_interval = Duration::from_millis(10);
        assert_eq!(spec.skew_time(100), Duration::from_nanos(6_093_750));
        assert_eq!(
            spec.master_down_interval(100),
            Duration::from_nanos(36_093_750)
        );
        spec.version = Version::V2;
        spec.advert_interval = Duration::from_secs(2);
        assert_eq!(spec.skew_time(100), Duration::from_micros(609_375));
        assert_eq!(
            spec.master_down_interval(100),
            Duration::from_micros(6_609_375)
        );
    }

    #[test]
    fn validation_rejects_what_neither_daemon_can_run() {
        let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V6, 0)]);
        assert!(spec.validate().is_ok());
        spec.version = Version::V2;
        assert!(spec.validate().is_err(), "v2 over IPv6");
        let mut spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
        spec.advert_interval = Duration::from_millis(15);
        assert!(spec.validate().is_err(), "15 ms");
        spec.advert_interval = Duration::from_millis(10);
        spec.vips.push(addressing::vip(Family::V6, 0));
        assert!(spec.validate().is_err(), "mixed families");
    }

    #[test]
    fn unicast_peers_are_the_other_nodes() {
        let spec = InstanceSpec::new("web", 51, vec![addressing::vip(Family::V4, 0)]);
        let peers: Vec<String> = spec
            .unicast_peers(2, 3)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(peers, ["192.168.77.11", "192.168.77.13"]);
    }
}
