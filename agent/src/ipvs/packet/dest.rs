//! The nested destination (real server) attributes (`IPVS_DEST_ATTR_*`) and their values:
//! forwarding method, tunnel type and tunnel flags.

use netlink_packet_core::{
    DecodeError, DefaultNla, ErrorContext, Nla, NlaBuffer, Parseable, parse_u8, parse_u16,
    parse_u16_be, parse_u32,
};

use super::service::{AddressFamily, InetAddr};
use super::stats::StatsAttribute;
use super::{nested_len, parse_nested, put};

pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
pub const IP_VS_CONN_F_BYPASS: u32 = 0x0004;

pub const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;

/// How packets reach a destination (`IP_VS_CONN_F_*` of the forwarding mask).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardingMethod {
    /// NAT (ipvsadm `-m`).
    Masq,
    LocalNode,
    /// IP-in-IP and other tunnels (ipvsadm `-i`).
    Tunnel,
    /// Direct routing (ipvsadm `-g`).
    DirectRoute,
    Bypass,
    Other(u32),
}

impl ForwardingMethod {
    /// The word ipvsadm prints in its `Forward` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Masq => "Masq",
            Self::LocalNode => "Local",
            Self::Tunnel => "Tunnel",
            Self::DirectRoute => "Route",
            Self::Bypass => "Bypass",
            Self::Other(_) => "other",
        }
    }
}

impl From<u32> for ForwardingMethod {
    fn from(value: u32) -> Self {
        match value {
            IP_VS_CONN_F_MASQ => Self::Masq,
            IP_VS_CONN_F_LOCALNODE => Self::LocalNode,
            IP_VS_CONN_F_TUNNEL => Self::Tunnel,
            IP_VS_CONN_F_DROUTE => Self::DirectRoute,
            IP_VS_CONN_F_BYPASS => Self::Bypass,
            other => Self::Other(other),
        }
    }
}

impl From<ForwardingMethod> for u32 {
    fn from(value: ForwardingMethod) -> Self {
        match value {
            ForwardingMethod::Masq => IP_VS_CONN_F_MASQ,
            ForwardingMethod::LocalNode => IP_VS_CONN_F_LOCALNODE,
            ForwardingMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            ForwardingMethod::DirectRoute => IP_VS_CONN_F_DROUTE,
            ForwardingMethod::Bypass => IP_VS_CONN_F_BYPASS,
            ForwardingMethod::Other(other) => other,
        }
    }
}

/// A tunnel destination's encapsulation (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
    Other(u8),
}

impl From<u8> for TunnelType {
    fn from(value: u8) -> Self {
        match value {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Self::Ipip,
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => Self::Gue,
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => Self::Gre,
            other => Self::Other(other),
        }
    }
}

impl From<TunnelType> for u8 {
    fn from(value: TunnelType) -> Self {
        match value {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
            TunnelType::Other(other) => other,
        }
    }
}

/// Tunnel encapsulation flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    /// `IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM`.
    pub const NOCSUM: u16 = 0;
    /// `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`: checksum the outer UDP header.
    pub const CSUM: u16 = 1 << 0;
    /// `IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM`: remote checksum offload.
    pub const REMCSUM: u16 = 1 << 1;
}

/// One nested destination attribute (`IPVS_DEST_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttribute {
    Addr(InetAddr),
    /// Carried in network byte order.
    Port(u16),
    FwdMethod(ForwardingMethod),
    Weight(u32),
    /// Upper connection threshold (0: none).
    UThresh(u32),
    /// Lower connection threshold (0: none).
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsAttribute>),
    AddrFamily(AddressFamily),
    Stats64(Vec<StatsAttribute>),
    TunType(TunnelType),
    /// Carried in network byte order.
    TunPort(u16),
    TunFlags(TunnelFlags),
    Other(DefaultNla),
}

impl Nla for DestAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Addr(_) => 16,
            Self::Port(_) | Self::AddrFamily(_) | Self::TunPort(_) | Self::TunFlags(_) => 2,
            Self::TunType(_) => 1,
            Self::FwdMethod(_)
            | Self::Weight(_)
            | Self::UThresh(_)
            | Self::LThresh(_)
            | Self::ActiveConns(_)
            | Self::InactConns(_)
            | Self::PersistConns(_) => 4,
            Self::Stats(s) | Self::Stats64(s) => nested_len(s),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Addr(_) => IPVS_DEST_ATTR_ADDR,
            Self::Port(_) => IPVS_DEST_ATTR_PORT,
            Self::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Self::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            Self::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            Self::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            Self::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            Self::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            Self::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            Self::Stats(_) => IPVS_DEST_ATTR_STATS | netlink_packet_core::NLA_F_NESTED,
            Self::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            Self::Stats64(_) => IPVS_DEST_ATTR_STATS64 | netlink_packet_core::NLA_F_NESTED,
            Self::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            Self::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            Self::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Addr(a) => put(buffer, &a.0),
            Self::Port(p) | Self::TunPort(p) => put(buffer, &p.to_be_bytes()),
            Self::FwdMethod(m) => put(buffer, &u32::from(*m).to_ne_bytes()),
            Self::Weight(v)
            | Self::UThresh(v)
            | Self::LThresh(v)
            | Self::ActiveConns(v)
            | Self::InactConns(v)
            | Self::PersistConns(v) => put(buffer, &v.to_ne_bytes()),
            Self::Stats(s) | Self::Stats64(s) => {
                netlink_packet_core::Emitable::emit(&s.as_slice(), buffer);
            }
            Self::AddrFamily(af) => put(buffer, &u16::from(*af).to_ne_bytes()),
            Self::TunType(t) => put(buffer, &[u8::from(*t)]),
            Self::TunFlags(f) => put(buffer, &f.0.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl DestAttribute {
    /// Parses one nested destination attribute.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let value = buf.value();
        let u32_of = |name: &'static str| parse_u32(value).context(name);
        Ok(match buf.kind() {
            IPVS_DEST_ATTR_ADDR => {
                Self::Addr(InetAddr::parse(value).context("IPVS_DEST_ATTR_ADDR")?)
            }
            IPVS_DEST_ATTR_PORT => Self::Port(parse_u16_be(value).context("IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => {
                Self::FwdMethod(u32_of("IPVS_DEST_ATTR_FWD_METHOD")?.into())
            }
            IPVS_DEST_ATTR_WEIGHT => Self::Weight(u32_of("IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => Self::UThresh(u32_of("IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => Self::LThresh(u32_of("IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                Self::ActiveConns(u32_of("IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => Self::InactConns(u32_of("IPVS_DEST_ATTR_INACT_CONNS")?),
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                Self::PersistConns(u32_of("IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => Self::Stats(
                parse_nested(value, StatsAttribute::parse).context("IPVS_DEST_ATTR_STATS")?,
            ),
            IPVS_DEST_ATTR_ADDR_FAMILY => Self::AddrFamily(
                parse_u16(value)
                    .context("IPVS_DEST_ATTR_ADDR_FAMILY")?
                    .into(),
            ),
            IPVS_DEST_ATTR_STATS64 => Self::Stats64(
                parse_nested(value, StatsAttribute::parse).context("IPVS_DEST_ATTR_STATS64")?,
            ),
            IPVS_DEST_ATTR_TUN_TYPE => {
                Self::TunType(parse_u8(value).context("IPVS_DEST_ATTR_TUN_TYPE")?.into())
            }
            IPVS_DEST_ATTR_TUN_PORT => {
                Self::TunPort(parse_u16_be(value).context("IPVS_DEST_ATTR_TUN_PORT")?)
            }
            IPVS_DEST_ATTR_TUN_FLAGS => Self::TunFlags(TunnelFlags(
                parse_u16(value).context("IPVS_DEST_ATTR_TUN_FLAGS")?,
            )),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}
