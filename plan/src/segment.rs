//! Network segments: the scope inside which a VRID must be unique (address family plus the
//! VirtualIP's interface hint).

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// An IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    /// IPv4 (VRRP to 224.0.0.18).
    #[serde(rename = "IPv4")]
    Ipv4,
    /// IPv6 (VRRP to ff02::12).
    #[serde(rename = "IPv6")]
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// The name used in messages, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "IPv4",
            Self::Ipv6 => "IPv6",
        }
    }
}

/// Where a VRID must be unique.
///
/// RFC 5798 scopes a VRID to a LAN and an address family: IPv4 VRID 51 and IPv6 VRID 51 on
/// one link are different routers. The planner cannot see links, so it uses the VirtualIP's
/// `interface` hint as the link: VirtualIPs naming `eth0` share one segment per family, and
/// all VirtualIPs without an interface (the agent picks one by subnet) share the `(auto)`
/// segment of their family. To keep an `(auto)` VirtualIP from colliding with one that names
/// the interface the agent ends up picking, allocation prefers VRIDs that are free in every
/// segment of the family (see `vrid`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Segment {
    /// Address family of the VirtualIP's addresses.
    pub family: Family,
    /// The VirtualIP's interface hint; `None`: chosen by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.interface {
            Some(i) => write!(f, "{i}/{}", self.family.as_str()),
            None => write!(f, "(auto)/{}", self.family.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_displays_interface_and_family() {
        let named = Segment {
            family: Family::Ipv4,
            interface: Some("eth0".to_owned()),
        };
        let auto = Segment {
            family: Family::Ipv6,
            interface: None,
        };
        assert_eq!(named.to_string(), "eth0/IPv4");
        assert_eq!(auto.to_string(), "(auto)/IPv6");
    }

    #[test]
    fn family_follows_the_address() {
        assert_eq!(Family::of("10.0.0.1".parse().unwrap()), Family::Ipv4);
        assert_eq!(Family::of("2001:db8::1".parse().unwrap()), Family::Ipv6);
    }
}
