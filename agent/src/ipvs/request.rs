//! Requests to the IPVS family: which command, attributes and netlink flags each operation
//! sends. Pure; [`super::client`] sends them.

use std::fmt;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_generic::GenlMessage;

use super::model::{Destination, Service, ServiceKey};
use super::packet::{IpvsAttribute, IpvsCmd, IpvsMessage};

/// The global connection timeouts (`ipvsadm --set TCP TCPFIN UDP`), seconds; 0 leaves one
/// unchanged when set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// One request to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// IPVS version and connection table size.
    GetInfo,
    /// The global timeouts.
    GetConfig,
    SetConfig(Timeouts),
    /// Every service.
    DumpServices,
    GetService(ServiceKey),
    /// Every destination of a service.
    DumpDestinations(ServiceKey),
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    NewDest(ServiceKey, Destination),
    SetDest(ServiceKey, Destination),
    DelDest {
        service: ServiceKey,
        address: IpAddr,
        port: u16,
    },
}

impl Request {
    /// The generic-netlink payload.
    pub fn message(&self) -> IpvsMessage {
        use IpvsAttribute as A;
        let service = |key: &ServiceKey| A::Service(key.attributes());
        let (cmd, attributes) = match self {
            Self::GetInfo => (IpvsCmd::GetInfo, Vec::new()),
            Self::GetConfig => (IpvsCmd::GetConfig, Vec::new()),
            Self::SetConfig(t) => (
                IpvsCmd::SetConfig,
                vec![
                    A::TimeoutTcp(t.tcp),
                    A::TimeoutTcpFin(t.tcp_fin),
                    A::TimeoutUdp(t.udp),
                ],
            ),
            Self::DumpServices => (IpvsCmd::GetService, Vec::new()),
            Self::GetService(key) => (IpvsCmd::GetService, vec![service(key)]),
            Self::DumpDestinations(key) => (IpvsCmd::GetDest, vec![service(key)]),
            Self::NewService(s) => (IpvsCmd::NewService, vec![A::Service(s.attributes())]),
            Self::SetService(s) => (IpvsCmd::SetService, vec![A::Service(s.attributes())]),
            Self::DelService(key) => (IpvsCmd::DelService, vec![service(key)]),
            Self::NewDest(key, d) => (
                IpvsCmd::NewDest,
                vec![service(key), A::Dest(d.attributes())],
            ),
            Self::SetDest(key, d) => (
                IpvsCmd::SetDest,
                vec![service(key), A::Dest(d.attributes())],
            ),
            Self::DelDest {
                service: key,
                address,
                port,
            } => (
                IpvsCmd::DelDest,
                vec![
                    service(key),
                    A::Dest(Destination::key_attributes(*address, *port)),
                ],
            ),
        };
        IpvsMessage::new(cmd, attributes)
    }

    /// Whether the answer is a dump (many messages, then `NLMSG_DONE`).
    pub fn is_dump(&self) -> bool {
        matches!(self, Self::DumpServices | Self::DumpDestinations(_))
    }

    /// The netlink flags: every request asks for an acknowledgement, as ipvsadm's do.
    pub fn flags(&self) -> u16 {
        if self.is_dump() {
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        }
    }

    /// The whole netlink message for the family numbered `family_id` (sequence number and
    /// port are the transport's to fill).
    pub fn netlink(&self, family_id: u16) -> NetlinkMessage<GenlMessage<IpvsMessage>> {
        let mut genl = GenlMessage::from_payload(self.message());
        genl.set_resolved_family_id(family_id);
        let mut header = NetlinkHeader::default();
        header.flags = self.flags();
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(genl));
        message.finalize();
        message
    }
}

impl fmt::Display for Request {
    /// In ipvsadm's terms, for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GetInfo => write!(f, "get IPVS info"),
            Self::GetConfig => write!(f, "get timeouts"),
            Self::SetConfig(t) => write!(f, "set timeouts {} {} {}", t.tcp, t.tcp_fin, t.udp),
            Self::DumpServices => write!(f, "list services"),
            Self::GetService(key) => write!(f, "get service {key}"),
            Self::DumpDestinations(key) => write!(f, "list real servers of {key}"),
            Self::NewService(s) => {
                write!(f, "add service {} ({})", s.key, s.settings.scheduler.name())
            }
            Self::SetService(s) => write!(
                f,
                "edit service {} ({})",
                s.key,
                s.settings.scheduler.name()
            ),
            Self::DelService(key) => write!(f, "delete service {key}"),
            Self::NewDest(key, d) => write!(
                f,
                "add real server {} to {key} (weight {})",
                display_address(d.address, d.port),
                d.settings.weight
            ),
            Self::SetDest(key, d) => write!(
                f,
                "edit real server {} of {key} (weight {})",
                display_address(d.address, d.port),
                d.settings.weight
            ),
            Self::DelDest {
                service,
                address,
                port,
            } => write!(
                f,
                "delete real server {} of {service}",
                display_address(*address, *port)
            ),
        }
    }
}

/// `192.0.2.1:80` or `[2001:db8::1]:80`.
pub fn display_address(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}
