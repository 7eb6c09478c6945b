//! Address blocks of a `VirtualIPPool`: a CIDR naming a network (`192.168.10.0/24`,
//! `fd00:10::/120`) or an inclusive range (`192.168.10.100-192.168.10.150`), parsed, and the
//! span of addresses a block may hand out.
//!
//! Which addresses of a CIDR are held back unless the pool asks for them: IPv4's network and
//! broadcast addresses (prefixes up to /30; a /31 or /32 has neither, RFC 3021), and IPv6's
//! Subnet-Router anycast address, the first of the prefix (RFC 4291 §2.6.1; prefixes up to
//! /126, RFC 6164 for /127). A range is taken as written: its ends are chosen addresses.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// One entry of `VirtualIPPool.spec.addresses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressBlock {
    /// A network, e.g. `192.168.10.0/24`.
    Cidr(IpNet),
    /// Every address from `first` to `last`, both included, one family, `first <= last`.
    Range {
        /// The lowest address.
        first: IpAddr,
        /// The highest address.
        last: IpAddr,
    },
}

/// Why a string is not an address block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Neither a CIDR nor two addresses joined by `-`.
    #[error(
        "{0:?} is neither a CIDR (192.168.10.0/24) nor a range of two addresses \
         (192.168.10.100-192.168.10.150)"
    )]
    Malformed(String),
    /// A CIDR with host bits set: an address in a network, not the network.
    #[error(
        "{written:?} names an address inside a network; write the network {network}, or \
         {address}/{host} for that one address"
    )]
    HostBits {
        /// As written.
        written: String,
        /// The network it lies in.
        network: IpNet,
        /// The address written.
        address: IpAddr,
        /// The host prefix length (32 or 128).
        host: u8,
    },
    /// A range whose ends are of different families.
    #[error("{0:?} mixes an IPv4 and an IPv6 address; a range is of one family")]
    MixedFamilies(String),
    /// A range whose first address is above its last.
    #[error("{0:?} starts above its end; write the lower address first")]
    Reversed(String),
}

/// The addresses from `first` to `last` (both included) of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The lowest address.
    pub first: IpAddr,
    /// The highest address.
    pub last: IpAddr,
}

impl Span {
    /// Whether the span holds IPv4 addresses.
    pub fn is_ipv4(&self) -> bool {
        self.first.is_ipv4()
    }

    /// Whether `ip` lies in the span.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4()
            && ordinal(self.first) <= ordinal(ip)
            && ordinal(ip) <= ordinal(self.last)
    }

    /// Whether the two spans share an address.
    pub fn overlaps(&self, other: &Span) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && ordinal(self.first) <= ordinal(other.last)
            && ordinal(other.first) <= ordinal(self.last)
    }

    /// The number of addresses in the span.
    pub fn len(&self) -> u128 {
        // A span is never empty, and the full IPv6 space (2^128) saturates.
        (ordinal(self.last) - ordinal(self.first)).saturating_add(1)
    }

    /// Never true: a span holds at least one address (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// An address as a number (IPv4 in the low 32 bits), for ordering within one family.
pub fn ordinal(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` (IPv4 when `ipv4`) with number `n`; `None` when out of range.
pub fn from_ordinal(ipv4: bool, n: u128) -> Option<IpAddr> {
    if ipv4 {
        u32::try_from(n)
            .ok()
            .map(|v| IpAddr::V4(std::net::Ipv4Addr::from(v)))
    } else {
        Some(IpAddr::V6(std::net::Ipv6Addr::from(n)))
    }
}

/// Parses an address the way Kubernetes' CEL `isIP` does: no IPv4-mapped IPv6, no zone.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        _ => Some(ip),
    }
}

impl AddressBlock {
    /// Parses a CIDR or a `first-last` range.
    pub fn parse(s: &str) -> Result<Self, BlockError> {
        if let Some((first, last)) = s.split_once('-') {
            let (Some(first), Some(last)) = (parse_ip(first), parse_ip(last)) else {
                return Err(BlockError::Malformed(s.to_owned()));
            };
            if first.is_ipv4() != last.is_ipv4() {
                return Err(BlockError::MixedFamilies(s.to_owned()));
            }
            if ordinal(first) > ordinal(last) {
                return Err(BlockError::Reversed(s.to_owned()));
            }
            return Ok(Self::Range { first, last });
        }
        let net = crate::validation::parse_cidr(s)
            .filter(|n| parse_ip(&n.addr().to_string()).is_some())
            .ok_or_else(|| BlockError::Malformed(s.to_owned()))?;
        if net.trunc() != net {
            return Err(BlockError::HostBits {
                written: s.to_owned(),
                network: net.trunc(),
                address: net.addr(),
                host: net.max_prefix_len(),
            });
        }
        Ok(Self::Cidr(net))
    }

    /// Every address of the block.
    pub fn whole(&self) -> Span {
        match *self {
            Self::Cidr(net) => Span {
                first: net.network(),
                last: net.broadcast(),
            },
            Self::Range { first, last } => Span { first, last },
        }
    }

    /// The addresses the block hands out: all of them with `include_network_and_broadcast`,
    /// else without the ones the module doc names. `None` when nothing is left (never for
    /// the blocks [`AddressBlock::parse`] accepts: a CIDR that loses addresses has four or
    /// more).
    pub fn usable(&self, include_network_and_broadcast: bool) -> Option<Span> {
        let whole = self.whole();
        let Self::Cidr(net) = *self else {
            return Some(whole);
        };
        if include_network_and_broadcast {
            return Some(whole);
        }
        let ipv4 = whole.is_ipv4();
        let (mut first, mut last) = (ordinal(whole.first), ordinal(whole.last));
        match net {
            IpNet::V4(v4) if v4.prefix_len() <= 30 => {
                first += 1;
                last -= 1;
            }
            IpNet::V6(v6) if v6.prefix_len() <= 126 => first += 1,
            _ => {}
        }
        (first <= last).then(|| Span {
            first: from_ordinal(ipv4, first).unwrap_or(whole.first),
            last: from_ordinal(ipv4, last).unwrap_or(whole.last),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str) -> Span {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        Span {
            first: a.parse().unwrap(),
            last: b.parse().unwrap(),
        }
    }

    #[test]
    fn cidrs_and_ranges_parse_and_everything_else_is_refused_with_a_reason() {
        assert_eq!(
            AddressBlock::parse("192.168.10.0/24").unwrap().whole(),
            span("192.168.10.0-192.168.10.255")
        );
        assert_eq!(
            AddressBlock::parse("10.0.0.5-10.0.0.9").unwrap().whole(),
            span("10.0.0.5-10.0.0.9")
        );
        assert_eq!(
            AddressBlock::parse("fd00::1-fd00::1").unwrap().whole(),
            span("fd00::1")
        );
        assert!(matches!(
            AddressBlock::parse("10.0.0.5"),
            Err(BlockError::Malformed(_))
        ));
        assert!(matches!(
            AddressBlock::parse("10.0.0.5 - 10.0.0.9"),
            Err(BlockError::Malformed(_))
        ));
        assert!(matches!(
            AddressBlock::parse("::ffff:10.0.0.1/128"),
            Err(BlockError::Malformed(_))
        ));
        assert!(matches!(
            AddressBlock::parse("10.0.0.9-10.0.0.5"),
            Err(BlockError::Reversed(_))
        ));
        assert!(matches!(
            AddressBlock::parse("10.0.0.1-fd00::1"),
            Err(BlockError::MixedFamilies(_))
        ));
        let err = AddressBlock::parse("10.0.0.5/24").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"10.0.0.5/24\" names an address inside a network; write the network \
             10.0.0.0/24, or 10.0.0.5/32 for that one address"
        );
    }

    #[test]
    fn network_and_broadcast_are_held_back_unless_asked_for() {
        let b = AddressBlock::parse("10.0.0.0/24").unwrap();
        assert_eq!(b.usable(false), Some(span("10.0.0.1-10.0.0.254")));
        assert_eq!(b.usable(true), Some(span("10.0.0.0-10.0.0.255")));
        let b = AddressBlock::parse("10.0.0.0/30").unwrap();
        assert_eq!(b.usable(false), Some(span("10.0.0.1-10.0.0.2")));
        // RFC 3021: a /31 and a /32 have no network or broadcast address.
        let b = AddressBlock::parse("10.0.0.0/31").unwrap();
        assert_eq!(b.usable(false), Some(span("10.0.0.0-10.0.0.1")));
        let b = AddressBlock::parse("10.0.0.7/32").unwrap();
        assert_eq!(b.usable(false), Some(span("10.0.0.7")));
        // IPv6: only the Subnet-Router anycast address (the first) is held back.
        let b = AddressBlock::parse("fd00::/120").unwrap();
        assert_eq!(b.usable(false), Some(span("fd00::1-fd00::ff")));
        let b = AddressBlock::parse("fd00::/127").unwrap();
        assert_eq!(b.usable(false), Some(span("fd00::-fd00::1")));
        // A range's ends are chosen addresses.
        let b = AddressBlock::parse("10.0.0.0-10.0.0.255").unwrap();
        assert_eq!(b.usable(false), Some(span("10.0.0.0-10.0.0.255")));
    }

    #[test]
    fn spans_overlap_only_within_one_family() {
        assert!(span("10.0.0.1-10.0.0.5").overlaps(&span("10.0.0.5-10.0.0.9")));
        assert!(!span("10.0.0.1-10.0.0.4").overlaps(&span("10.0.0.5-10.0.0.9")));
        assert!(!span("0.0.0.1-0.0.0.5").overlaps(&span("::1-::5")));
        assert!(span("10.0.0.0-10.0.0.255").contains("10.0.0.7".parse().unwrap()));
        assert!(!span("0.0.0.0-0.0.0.255").contains("::7".parse().unwrap()));
        assert_eq!(span("10.0.0.0-10.0.0.255").len(), 256);
        assert_eq!(
            span("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").len(),
            u128::MAX
        );
    }
}
