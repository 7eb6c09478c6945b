//! The nested statistics attributes (`IPVS_STATS_ATTR_*`) of services and destinations:
//! 32-bit counters in `*_ATTR_STATS`, 64-bit ones in `*_ATTR_STATS64`.

use netlink_packet_core::{
    DecodeError, DefaultNla, Nla, NlaBuffer, Parseable, parse_u32, parse_u64,
};

use super::put;

pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
pub const IPVS_STATS_ATTR_CPS: u16 = 6;
pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
pub const IPVS_STATS_ATTR_PAD: u16 = 11;

/// A counter as carried: 4 or 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    U32(u32),
    U64(u64),
}

impl Stat {
    /// The value, whatever its width.
    pub fn value(self) -> u64 {
        match self {
            Self::U32(v) => u64::from(v),
            Self::U64(v) => v,
        }
    }

    fn parse(value: &[u8]) -> Result<Self, DecodeError> {
        match value.len() {
            4 => Ok(Self::U32(parse_u32(value)?)),
            8 => Ok(Self::U64(parse_u64(value)?)),
            n => Err(DecodeError::from(format!("a counter of {n} bytes"))),
        }
    }
}

/// One statistics attribute (`IPVS_STATS_ATTR_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatsAttribute {
    /// Connections scheduled.
    Conns(Stat),
    InPkts(Stat),
    OutPkts(Stat),
    InBytes(Stat),
    OutBytes(Stat),
    /// Current connection rate.
    Cps(Stat),
    InPps(Stat),
    OutPps(Stat),
    InBps(Stat),
    OutBps(Stat),
    /// Alignment padding.
    Pad(Vec<u8>),
    Other(DefaultNla),
}

impl StatsAttribute {
    fn stat(&self) -> Option<Stat> {
        match self {
            Self::Conns(s)
            | Self::InPkts(s)
            | Self::OutPkts(s)
            | Self::InBytes(s)
            | Self::OutBytes(s)
            | Self::Cps(s)
            | Self::InPps(s)
            | Self::OutPps(s)
            | Self::InBps(s)
            | Self::OutBps(s) => Some(*s),
            Self::Pad(_) | Self::Other(_) => None,
        }
    }

    /// Parses one statistics attribute.
    pub fn parse(buf: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        let value = buf.value();
        let stat = || Stat::parse(value);
        Ok(match buf.kind() {
            IPVS_STATS_ATTR_CONNS => Self::Conns(stat()?),
            IPVS_STATS_ATTR_INPKTS => Self::InPkts(stat()?),
            IPVS_STATS_ATTR_OUTPKTS => Self::OutPkts(stat()?),
            IPVS_STATS_ATTR_INBYTES => Self::InBytes(stat()?),
            IPVS_STATS_ATTR_OUTBYTES => Self::OutBytes(stat()?),
            IPVS_STATS_ATTR_CPS => Self::Cps(stat()?),
            IPVS_STATS_ATTR_INPPS => Self::InPps(stat()?),
            IPVS_STATS_ATTR_OUTPPS => Self::OutPps(stat()?),
            IPVS_STATS_ATTR_INBPS => Self::InBps(stat()?),
            IPVS_STATS_ATTR_OUTBPS => Self::OutBps(stat()?),
            IPVS_STATS_ATTR_PAD => Self::Pad(value.to_vec()),
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

impl Nla for StatsAttribute {
    fn value_len(&self) -> usize {
        match (self, self.stat()) {
            (_, Some(Stat::U32(_))) => 4,
            (_, Some(Stat::U64(_))) => 8,
            (Self::Pad(bytes), None) => bytes.len(),
            (Self::Other(nla), None) => nla.value_len(),
            _ => 0,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Conns(_) => IPVS_STATS_ATTR_CONNS,
            Self::InPkts(_) => IPVS_STATS_ATTR_INPKTS,
            Self::OutPkts(_) => IPVS_STATS_ATTR_OUTPKTS,
            Self::InBytes(_) => IPVS_STATS_ATTR_INBYTES,
            Self::OutBytes(_) => IPVS_STATS_ATTR_OUTBYTES,
            Self::Cps(_) => IPVS_STATS_ATTR_CPS,
            Self::InPps(_) => IPVS_STATS_ATTR_INPPS,
            Self::OutPps(_) => IPVS_STATS_ATTR_OUTPPS,
            Self::InBps(_) => IPVS_STATS_ATTR_INBPS,
            Self::OutBps(_) => IPVS_STATS_ATTR_OUTBPS,
            Self::Pad(_) => IPVS_STATS_ATTR_PAD,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match (self, self.stat()) {
            (_, Some(Stat::U32(v))) => put(buffer, &v.to_ne_bytes()),
            (_, Some(Stat::U64(v))) => put(buffer, &v.to_ne_bytes()),
            (Self::Pad(bytes), None) => put(buffer, bytes),
            (Self::Other(nla), None) => nla.emit_value(buffer),
            _ => {}
        }
    }
}

/// The counters of a service or destination, summed up from its statistics attributes
/// (the 64-bit set when present).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Counters {
    /// Reads the counters of `attributes`.
    pub fn of(attributes: &[StatsAttribute]) -> Self {
        let mut out = Self::default();
        for a in attributes {
            match a {
                StatsAttribute::Conns(s) => out.conns = s.value(),
                StatsAttribute::InPkts(s) => out.in_packets = s.value(),
                StatsAttribute::OutPkts(s) => out.out_packets = s.value(),
                StatsAttribute::InBytes(s) => out.in_bytes = s.value(),
                StatsAttribute::OutBytes(s) => out.out_bytes = s.value(),
                _ => {}
            }
        }
        out
    }
}
