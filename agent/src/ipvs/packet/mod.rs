//! The kernel's generic-netlink family `IPVS` (`include/uapi/linux/ip_vs.h`), as packets: the
//! commands, the first-level attributes and the nested service, destination and statistics
//! attributes. Pure: nothing here opens a socket. Every enum keeps the kernel's constant names
//! and has an `Other` catch-all, so an attribute or value this code does not know survives a
//! parse and an emit unchanged.
//!
//! ```text
//!  nlmsghdr | genlmsghdr {cmd, version 1} | attributes
//!                                            IPVS_CMD_ATTR_SERVICE (nested)
//!                                              IPVS_SVC_ATTR_AF, _PROTOCOL, _ADDR, _PORT | _FWMARK,
//!                                              _SCHED_NAME, _PE_NAME, _FLAGS, _TIMEOUT, _NETMASK,
//!                                              _STATS, _STATS64 (nested, in dumps)
//!                                            IPVS_CMD_ATTR_DEST (nested)
//!                                              IPVS_DEST_ATTR_ADDR, _PORT, _FWD_METHOD, _WEIGHT,
//!                                              _U_THRESH, _L_THRESH, _ADDR_FAMILY, _TUN_*,
//!                                              _ACTIVE_CONNS, _INACT_CONNS, _PERSIST_CONNS, _STATS*
//!                                            IPVS_CMD_ATTR_TIMEOUT_TCP, _TCP_FIN, _UDP (u32 s)
//! ```
//!
//! The reply to `IPVS_CMD_GET_INFO` (command `IPVS_CMD_SET_INFO`) numbers its attributes in
//! another space (`IPVS_INFO_ATTR_*`), so first-level attributes are parsed by command.

pub mod dest;
pub mod service;
pub mod stats;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized, parse_u32,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

pub use dest::{DestAttribute, ForwardingMethod, TunnelFlags, TunnelType};
pub use service::{AddressFamily, InetAddr, Protocol, Scheduler, ServiceAttribute, ServiceFlags};
pub use stats::{Stat, StatsAttribute};

/// The family's registered name.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// The family's protocol version.
pub const IPVS_GENL_VERSION: u8 = 0x1;

pub const IPVS_CMD_UNSPEC: u8 = 0;
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
pub const IPVS_CMD_GET_DAEMON: u8 = 11;
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;
pub const IPVS_CMD_ZERO: u8 = 16;
pub const IPVS_CMD_FLUSH: u8 = 17;

pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

/// An IPVS command (`IPVS_CMD_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    Unspec,
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    SetInfo,
    GetInfo,
    Zero,
    Flush,
    Other(u8),
}

impl From<u8> for IpvsCmd {
    fn from(value: u8) -> Self {
        match value {
            IPVS_CMD_UNSPEC => Self::Unspec,
            IPVS_CMD_NEW_SERVICE => Self::NewService,
            IPVS_CMD_SET_SERVICE => Self::SetService,
            IPVS_CMD_DEL_SERVICE => Self::DelService,
            IPVS_CMD_GET_SERVICE => Self::GetService,
            IPVS_CMD_NEW_DEST => Self::NewDest,
            IPVS_CMD_SET_DEST => Self::SetDest,
            IPVS_CMD_DEL_DEST => Self::DelDest,
            IPVS_CMD_GET_DEST => Self::GetDest,
            IPVS_CMD_NEW_DAEMON => Self::NewDaemon,
            IPVS_CMD_DEL_DAEMON => Self::DelDaemon,
            IPVS_CMD_GET_DAEMON => Self::GetDaemon,
            IPVS_CMD_SET_CONFIG => Self::SetConfig,
            IPVS_CMD_GET_CONFIG => Self::GetConfig,
            IPVS_CMD_SET_INFO => Self::SetInfo,
            IPVS_CMD_GET_INFO => Self::GetInfo,
            IPVS_CMD_ZERO => Self::Zero,
            IPVS_CMD_FLUSH => Self::Flush,
            other => Self::Other(other),
        }
    }
}

impl From<IpvsCmd> for u8 {
    fn from(value: IpvsCmd) -> Self {
        match value {
            IpvsCmd::Unspec => IPVS_CMD_UNSPEC,
            IpvsCmd::NewService => IPVS_CMD_NEW_SERVICE,
            IpvsCmd::SetService => IPVS_CMD_SET_SERVICE,
            IpvsCmd::DelService => IPVS_CMD_DEL_SERVICE,
            IpvsCmd::GetService => IPVS_CMD_GET_SERVICE,
            IpvsCmd::NewDest => IPVS_CMD_NEW_DEST,
            IpvsCmd::SetDest => IPVS_CMD_SET_DEST,
            IpvsCmd::DelDest => IPVS_CMD_DEL_DEST,
            IpvsCmd::GetDest => IPVS_CMD_GET_DEST,
            IpvsCmd::NewDaemon => IPVS_CMD_NEW_DAEMON,
            IpvsCmd::DelDaemon => IPVS_CMD_DEL_DAEMON,
            IpvsCmd::GetDaemon => IPVS_CMD_GET_DAEMON,
            IpvsCmd::SetConfig => IPVS_CMD_SET_CONFIG,
            IpvsCmd::GetConfig => IPVS_CMD_GET_CONFIG,
            IpvsCmd::SetInfo => IPVS_CMD_SET_INFO,
            IpvsCmd::GetInfo => IPVS_CMD_GET_INFO,
            IpvsCmd::Zero => IPVS_CMD_ZERO,
            IpvsCmd::Flush => IPVS_CMD_FLUSH,
            IpvsCmd::Other(other) => other,
        }
    }
}

/// A first-level attribute (`IPVS_CMD_ATTR_*`, or `IPVS_INFO_ATTR_*` in a `SET_INFO` reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpvsAttribute {
    Service(Vec<ServiceAttribute>),
    Dest(Vec<DestAttribute>),
    /// The sync daemon's nested attributes, carried as they are.
    Daemon(Vec<DefaultNla>),
    /// TCP connection timeout, seconds.
    TimeoutTcp(u32),
    /// TCP FIN-wait timeout, seconds.
    TimeoutTcpFin(u32),
    /// UDP timeout, seconds.
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION`: the IPVS version code (0x010201 is 1.2.1).
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`: size of the connection hash table.
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

/// The length of nested `attributes`, padding included.
pub(crate) fn nested_len<T: Nla>(attributes: &[T]) -> usize {
    attributes.buffer_len()
}

impl Nla for IpvsAttribute {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(a) => nested_len(a),
            Self::Dest(a) => nested_len(a),
            Self::Daemon(a) => nested_len(a),
            Self::TimeoutTcp(_)
            | Self::TimeoutTcpFin(_)
            | Self::TimeoutUdp(_)
            | Self::InfoVersion(_)
            | Self::InfoConnTabSize(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => IPVS_CMD_ATTR_SERVICE | netlink_packet_core::NLA_F_NESTED,
            Self::Dest(_) => IPVS_CMD_ATTR_DEST | netlink_packet_core::NLA_F_NESTED,
            Self::Daemon(_) => IPVS_CMD_ATTR_DAEMON | netlink_packet_core::NLA_F_NESTED,
            Self::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            Self::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            Self::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            Self::InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            Self::InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Service(a) => a.as_slice().emit(buffer),
            Self::Dest(a) => a.as_slice().emit(buffer),
            Self::Daemon(a) => a.as_slice().emit(buffer),
            Self::TimeoutTcp(v)
            | Self::TimeoutTcpFin(v)
            | Self::TimeoutUdp(v)
            | Self::InfoVersion(v)
            | Self::InfoConnTabSize(v) => put(buffer, &v.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

/// Copies `bytes` to the start of `buffer`, which `emit_value` sized to hold them.
pub(crate) fn put(buffer: &mut [u8], bytes: &[u8]) {
    if let Some(head) = buffer.get_mut(..bytes.len()) {
        head.copy_from_slice(bytes);
    }
}

/// Parses the nested attributes inside `buf`'s value with `parse`.
pub(crate) fn parse_nested<'a, T>(
    value: &'a [u8],
    parse: impl Fn(&NlaBuffer<&'a [u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(value) {
        out.push(parse(&nla?)?);
    }
    Ok(out)
}

impl IpvsAttribute {
    /// Parses one first-level attribute of a message carrying command `cmd`.
    pub fn parse(buf: &NlaBuffer<&[u8]>, cmd: IpvsCmd) -> Result<Self, DecodeError> {
        let value = buf.value();
        let info = cmd == IpvsCmd::SetInfo;
        Ok(match buf.kind() {
            IPVS_INFO_ATTR_VERSION if info => {
                Self::InfoVersion(parse_u32(value).context("IPVS_INFO_ATTR_VERSION")?)
            }
            IPVS_INFO_ATTR_CONN_TAB_SIZE if info => {
                Self::InfoConnTabSize(parse_u32(value).context("IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
            }
            IPVS_CMD_ATTR_SERVICE => Self::Service(
                parse_nested(value, ServiceAttribute::parse).context("IPVS_CMD_ATTR_SERVICE")?,
            ),
            IPVS_CMD_ATTR_DEST => {
                Self::Dest(parse_nested(value, DestAttribute::parse).context("IPVS_CMD_ATTR_DEST")?)
            }
            IPVS_CMD_ATTR_DAEMON => Self::Daemon(
                parse_nested(value, DefaultNla::parse).context("IPVS_CMD_ATTR_DAEMON")?,
            ),
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                Self::TimeoutTcp(parse_u32(value).context("IPVS_CMD_ATTR_TIMEOUT_TCP")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                Self::TimeoutTcpFin(parse_u32(value).context("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                Self::TimeoutUdp(parse_u32(value).context("IPVS_CMD_ATTR_TIMEOUT_UDP")?)
            }
            _ => Self::Other(DefaultNla::parse(buf)?),
        })
    }
}

/// One IPVS generic-netlink message: the command and its first-level attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: IpvsCmd,
    pub attributes: Vec<IpvsAttribute>,
}

impl IpvsMessage {
    /// A message of `cmd` carrying `attributes`.
    pub fn new(cmd: IpvsCmd, attributes: Vec<IpvsAttribute>) -> Self {
        Self { cmd, attributes }
    }

    /// The nested service attributes, if the message carries them.
    pub fn service(&self) -> Option<&[ServiceAttribute]> {
        self.attributes.iter().find_map(|a| match a {
            IpvsAttribute::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    /// The nested destination attributes, if the message carries them.
    pub fn dest(&self) -> Option<&[DestAttribute]> {
        self.attributes.iter().find_map(|a| match a {
            IpvsAttribute::Dest(d) => Some(d.as_slice()),
            _ => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.into()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attributes.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attributes.as_slice().emit(buffer);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from(header.cmd);
        let attributes = parse_nested(buf, |nla| IpvsAttribute::parse(nla, cmd))
            .context("IPVS message attributes")?;
        Ok(Self { cmd, attributes })
    }
}
