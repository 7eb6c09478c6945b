//! The vocabulary of VRRP that every layer shares: the protocol version, the address family of
//! a virtual router, and the numbers RFC 3768 / RFC 5798 fix (IP protocol, TTL, groups). The
//! codec, the state machine and the kernel edges all take them from here; the API's
//! `VrrpVersion` is converted once, where a configuration is resolved.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IANA's IP protocol number for VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The TTL / hop limit every VRRP packet is sent with and must be received with
/// (RFC 5798 §5.1.1.3, §5.1.2.3, §7.1).
pub const VRRP_TTL: u8 = 255;
/// The IPv4 multicast group adverts are sent to (RFC 5798 §5.1.1.2).
pub const VRRP_MULTICAST_IPV4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group adverts are sent to (RFC 5798 §5.1.2.2).
pub const VRRP_MULTICAST_IPV6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, whole-second intervals, optional simple-text password, no interval
    /// learning.
    V2,
    /// RFC 5798: IPv4 and IPv6, centisecond intervals, checksum over a pseudo-header, Backups
    /// learn Master_Adver_Interval from adverts.
    V3,
}

impl Version {
    /// The value of the 4-bit Version field (and of `version` in status).
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
        }
    }
}

/// The address family of a virtual router: of its source, destination and virtual addresses,
/// and so of the raw socket it speaks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// The family of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// Length of one address of this family on the wire.
    pub fn address_len(self) -> usize {
        match self {
            Self::Ipv4 => 4,
            Self::Ipv6 => 16,
        }
    }

    /// The VRRP multicast group of this family.
    pub fn vrrp_multicast(self) -> IpAddr {
        match self {
            Self::Ipv4 => IpAddr::V4(VRRP_MULTICAST_IPV4),
            Self::Ipv6 => IpAddr::V6(VRRP_MULTICAST_IPV6),
        }
    }

    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_knows_its_vrrp_group_and_address_length() {
        assert_eq!(Family::Ipv4.vrrp_multicast().to_string(), "224.0.0.18");
        assert_eq!(Family::Ipv6.vrrp_multicast().to_string(), "ff02::12");
        assert_eq!(Family::Ipv4.address_len(), 4);
        assert_eq!(Family::Ipv6.address_len(), 16);
    }

    #[test]
    fn the_family_of_an_address_follows_its_type() {
        assert_eq!(Family::of("10.0.0.1".parse().unwrap()), Family::Ipv4);
        assert_eq!(Family::of("fe80::1".parse().unwrap()), Family::Ipv6);
    }

    #[test]
    fn versions_carry_their_field_value_and_log_name() {
        assert_eq!(Version::V2.number(), 2);
        assert_eq!(Version::V3.number(), 3);
        assert_eq!(Version::V2.as_str(), "v2");
        assert_eq!(Version::V3.as_str(), "v3");
    }
}
