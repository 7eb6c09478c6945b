//! The nested service attributes (`IPVS_SVC_ATTR_*`) and their values: address family,
//! protocol, scheduler, service flags and the 16-byte address the kernel carries for both
//! families.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, parse_string, parse_u16,
    parse_u16_be, parse_u32,
};

use super::stats::StatsAttribute;
use super::{nested_len, parse_nested, put};

pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u16 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u16 = 17;
/// `IPPROTO_SCTP`.
pub const IPPROTO_SCTP: u16 = 132;

/// The longest scheduler or persistence-engine name, without its NUL.
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 15;

/// An address family (`AF_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    Inet,
    Inet6,
    Other(u16),
}

impl AddressFamily {
    /// The family of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Inet,
            IpAddr::V6(_) => Self::Inet6,
        }
    }
}

impl From<u16> for AddressFamily {
    fn from(value: u16) -> Self {
        match value {
            AF_INET => Self::Inet,
            AF_INET6 => Self::Inet6,
            other => Self::Other(other),
        }
    }
}

impl From<AddressFamily> for u16 {
    fn from(value: AddressFamily) -> Self {
        match value {
            AddressFamily::Inet => AF_INET,
            AddressFamily::Inet6 => AF_INET6,
            AddressFamily::Other(other) => other,
        }
    }
}

/// A virtual service's transport protocol (`IPPROTO_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Other(u16),
}

impl Protocol {
    /// The name ipvsadm prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
            Self::Other(_) => "other",
        }
    }
}

impl From<u16> for Protocol {
    fn from(value: u16) -> Self {
        match value {
            IPPROTO_TCP => Self::Tcp,
            IPPROTO_UDP => Self::Udp,
            IPPROTO_SCTP => Self::Sctp,
            other => Self::Other(other),
        }
    }
}

impl From<Protocol> for u16 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
            Protocol::Other(other) => other,
        }
    }
}

/// A scheduler, by its kernel name (`ip_vs_<name>` modules).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheduler {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnection,
    WeightedLeastConnection,
    LocalityBasedLeastConnection,
    LocalityBasedLeastConnectionWithReplication,
    DestinationHashing,
    SourceHashing,
    ShortestExpectedDelay,
    NeverQueue,
    MaglevHashing,
    WeightedFailover,
    WeightedOverflow,
    /// Any other scheduler name, kept as the kernel spelled it.
    Other(String),
}

impl Scheduler {
    /// The kernel's name for the scheduler.
    pub fn name(&self) -> &str {
        match self {
            Self::RoundRobin => "rr",
            Self::WeightedRoundRobin => "wrr",
            Self::LeastConnection => "lc",
            Self::WeightedLeastConnection => "wlc",
            Self::LocalityBasedLeastConnection => "lblc",
            Self::LocalityBasedLeastConnectionWithReplication => "lblcr",
            Self::DestinationHashing => "dh",
            Self::SourceHashing => "sh",
            Self::ShortestExpectedDelay => "sed",
            Self::NeverQueue => "nq",
            Self::MaglevHashing => "mh",
            Self::WeightedFailover => "fo",
            Self::WeightedOverflow => "ovf",
            Self::Other(name) => name,
        }
    }

    /// The scheduler of kernel name `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "rr" => Self::RoundRobin,
            "wrr" => Self::WeightedRoundRobin,
            "lc" => Self::LeastConnection,
            "wlc" => Self::WeightedLeastConnection,
            "lblc" => Self::LocalityBasedLeastConnection,
            "lblcr" => Self::LocalityBasedLeastConnectionWithReplication,
            "dh" => Self::DestinationHashing,
            "sh" => Self::SourceHashing,
            "sed" => Self::ShortestExpectedDelay,
            "nq" => Self::NeverQueue,
            "mh" => Self::MaglevHashing,
            "fo" => Self::WeightedFailover,
            "ovf" => Self::WeightedOverflow,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The module that provides the scheduler.
    pub fn module(&self) -> String {
        format!("ip_vs_{}", self.name())
    }
}

/// Virtual service flags (`IP_VS_SVC_F_*`), as the `struct ip_vs_flags` value of
/// `IPVS_SVC_ATTR_FLAGS` carries them: `flags`, and the `mask` of bits to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceFlags {
    pub flags: u32,
    pub mask: u32,
}

impl ServiceFlags {
    /// `IP_VS_SVC_F_PERSISTENT`: persistent port.
    pub const PERSISTENT: u32 = 0x0001;
    /// `IP_VS_SVC_F_HASHED`: hashed entry (kernel-internal, set on every service).
    pub const HASHED: u32 = 0x0002;
    /// `IP_VS_SVC_F_ONEPACKET`: one-packet scheduling.
    pub const ONEPACKET: u32 = 0x0004;
    /// `IP_VS_SVC_F_SCHED1`: scheduler flag 1 (sh-fallback, mh-fallback).
    pub const SCHED1: u32 = 0x0008;
    /// `IP_VS_SVC_F_SCHED2`: scheduler flag 2 (sh-port, mh-port).
    pub const SCHED2: u32 = 0x0010;
    /// `IP_VS_SVC_F_SCHED3`: scheduler flag 3.
    pub const SCHED3: u32 = 0x0020;

    /// `flags`, every bit of them to be set (mask all ones), as ipvsadm sends them.
    pub fn all(flags: u32) -> Self {
        Self { flags, mask: !0 }
    }
}

/// An address as `IPVS_SVC_ATTR_ADDR` and `IPVS_DEST_ATTR_ADDR` carry it: the 16 bytes of
/// `union nf_inet_addr` (an IPv4 address in the first 4, zeros after). Which family it holds is
/// told by a sibling attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InetAddr(pub [u8; 16]);

impl InetAddr {
    /// The bytes of `address`.
    pub fn from_ip(address: IpAddr) -> Self {
        let mut bytes = [0; 16];
        match address {
            IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes = v6.octets(),
        }
        Self(bytes)
    }

    /// The address, read as `family` (none for a family other than IPv4 or IPv6).
    pub fn to_ip(self, family: AddressFamily) -> Option<IpAddr> {
        match family {
            AddressFamily::Inet => Some(IpAddr::V4(Ipv4Addr::new(
                self.0[0], self.0[1], self.0[2], self.0[3],
            ))),
            AddressFamily::Inet6 => Some(IpAddr::V6(Ipv6Addr::from(self.0))),
            AddressFamily::Other(_) => None,
        }
    }

    /// Parses up to 16 bytes (the kernel copies at most that many, padding with zeros).
    pub fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        let mut bytes = [0; 16];
        bytes
            .get_mut(..value.len())
            .ok_or_else(|| DecodeError::from(format!("address of {} bytes", value.len())))?
            .copy_from_slice(value);
        Ok(Self(bytes))
    }
}

/// One nested service attribute (`IPVS_SVC_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAttribute {
    Af(AddressFamily),
    Protocol(Protocol),
    Addr(InetAddr),
    /// Carried in network byte order.
    Port(u16),
    Fwmark(u32),
    SchedName(Scheduler),
    Flags(ServiceFlags),
    /// Persistence timeout, seconds.
    Timeout(u32),
    /// Persistence granularity: an IPv4 netmask (the four bytes as they go on the wire, read
    /// native-endian), or an IPv6 prefix length.
    Netmask(u32),
    Stats(Vec<StatsAttribute>),
    /// Persistence engine name (e.g. `sip`).
    PeName(String),
    Stats64(Vec<StatsAttribute>),
    Other(DefaultNla),
}

impl Nla for ServiceAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Af(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Addr(_) => 16,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::SchedName(s) => s.name().len() + 1,
            Self::PeName(s) => s.len() + 1,
            Self::Flags(_) => 8,
            Self::Stats(s) | Self::Stats64(s) => nested_len(s),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Af(_) => IPVS_SVC_ATTR_AF,
            Self::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Self::Addr(_) => IPVS_SVC_ATTR_ADDR,
            Self::Port(_) => IPVS_SVC_ATTR_PORT,
            Self::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            Self::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Self::Flags(_) => IPVS_SVC_ATTR_FLAGS,
            Self::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Self::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            Self::Stats(_) => IPVS_SVC_ATTR_STATS | netlink_packet_core::NLA_F_NESTED,
            Self::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Self::Stats64(_) => IPVS_SVC_ATTR_STATS64 | netlink_packet_core::NLA_F_NESTED,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Af(af) => put(buffer, &u16::from(*af).to_ne_bytes()),
            Self::Protocol(p) => put(buffer, &u16::from(*p).to_ne_bytes()),
            Self::Addr(a) => put(buffer, &a.0),
            Self::Port(p) => put(buffer, &p.to_be_bytes()),
            Self::Fwmark(v) | Self::Timeout(v) | Self::Netmask(v) => put(buffer, &v.to_ne_bytes()),
            Self::SchedName(s) => put_string(buffer, s.name()),
            Self::PeName(s) => put_string(buffer, s),
            Self::Flags(f) => {
                put(buffer, &f.flags.to_ne_bytes());
                if let Some(rest) = buffer.get_mut(4..) {
                    put(rest, &f.mask.to_ne_bytes());
                }
            }
            Self::Stats(s) | Self::Stats64(s) => {
                netlink_packet_core::Emitable::emit(&s.as_slice(), buffer);
            }
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

/// Writes `text` and its terminating NUL.
pub(crate) fn put_string(buffer: &mut [u8], text: &str) {
    put(buffer, text.as_bytes());
    if let Some(nul) = buffer.get_mut(text.len()) {
        *nul = 0;
    }
}

impl ServiceAttribute {
    /// Parses one nested service attribute.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let value = buf.value();
        Ok(match buf.kind() {
            IPVS_SVC_ATTR_AF => Self::Af(parse_u16(value).context("IPVS_SVC_ATTR_AF")?.into()),
            IPVS_SVC_ATTR_PROTOCOL => {
                Self::Protocol(parse_u16(value).context("IPVS_SVC_ATTR_PROTOCOL")?.into())
            }
            IPVS_SVC_ATTR_ADDR => Self::Addr(InetAddr::parse(value).context("IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => Self::Port(parse_u16_be(value).context("IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => Self::Fwmark(parse_u32(value).context("IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => Self::SchedName(Scheduler::from_name(
                &parse_string(value).context("IPVS_SVC_ATTR_SCHED_NAME")?,
            )),
            IPVS_SVC_ATTR_FLAGS => {
                let (flags, mask) = value
                    .get(..4)
                    .zip(value.get(4..8))
                    .filter(|_| value.len() == 8)
                    .ok_or_else(|| DecodeError::from("IPVS_SVC_ATTR_FLAGS is not 8 bytes"))?;
                Self::Flags(ServiceFlags {
                    flags: parse_u32(flags)?,
                    mask: parse_u32(mask)?,
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => {
                Self::Timeout(parse_u32(value).context("IPVS_SVC_ATTR_TIMEOUT")?)
            }
            IPVS_SVC_ATTR_NETMASK => {
                Self::Netmask(parse_u32(value).context("IPVS_SVC_ATTR_NETMASK")?)
            }
            IPVS_SVC_ATTR_STATS => Self::Stats(
                parse_nested(value, StatsAttribute::parse).context("IPVS_SVC_ATTR_STATS")?,
            ),
            IPVS_SVC_ATTR_PE_NAME => {
                Self::PeName(parse_string(value).context("IPVS_SVC_ATTR_PE_NAME")?)
            }
            IPVS_SVC_ATTR_STATS64 => Self::Stats64(
                parse_nested(value, StatsAttribute::parse).context("IPVS_SVC_ATTR_STATS64")?,
            ),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
