//! The typed view of IPVS objects: a service (its key and settings), a destination (its
//! address and settings), and what a dump adds to them (connection counts, counters). Each
//! converts to and from the attribute lists of [`super::packet`]; nothing here does I/O.

use std::fmt;
use std::net::IpAddr;

use super::packet::stats::Counters;
use super::packet::{
    AddressFamily, DestAttribute, ForwardingMethod, InetAddr, Protocol, Scheduler,
    ServiceAttribute, ServiceFlags, TunnelFlags, TunnelType,
};

/// Why an attribute list is not a whole service or destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("the {0} attribute is missing")]
    Missing(&'static str),
    #[error("address family {0} is neither IPv4 nor IPv6")]
    Family(u16),
}

/// What identifies a virtual service: protocol, address and port, or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Address {
        protocol: Protocol,
        address: IpAddr,
        port: u16,
    },
    FirewallMark {
        family: AddressFamily,
        mark: u32,
    },
}

impl ServiceKey {
    /// The service's address family.
    pub fn family(&self) -> AddressFamily {
        match self {
            Self::Address { address, .. } => AddressFamily::of(*address),
            Self::FirewallMark { family, .. } => *family,
        }
    }

    /// The identifying attributes, in the order ipvsadm sends them.
    pub fn attributes(&self) -> Vec<ServiceAttribute> {
        let mut out = vec![ServiceAttribute::Af(self.family())];
        match *self {
            Self::Address {
                protocol,
                address,
                port,
            } => {
                out.push(ServiceAttribute::Protocol(protocol));
                out.push(ServiceAttribute::Addr(InetAddr::from_ip(address)));
                out.push(ServiceAttribute::Port(port));
            }
            Self::FirewallMark { mark, .. } => out.push(ServiceAttribute::Fwmark(mark)),
        }
        out
    }

    /// Reads the identifying attributes of `attributes`.
    pub fn from_attributes(attributes: &[ServiceAttribute]) -> Result<Self, ModelError> {
        let mut family = None;
        let (mut protocol, mut address, mut port, mut mark) = (None, None, None, None);
        for a in attributes {
            match a {
                ServiceAttribute::Af(f) => family = Some(*f),
                ServiceAttribute::Protocol(p) => protocol = Some(*p),
                ServiceAttribute::Addr(a) => address = Some(*a),
                ServiceAttribute::Port(p) => port = Some(*p),
                ServiceAttribute::Fwmark(m) => mark = Some(*m),
                _ => {}
            }
        }
        let family = family.ok_or(ModelError::Missing("IPVS_SVC_ATTR_AF"))?;
        if let Some(mark) = mark.filter(|m| *m != 0) {
            return Ok(Self::FirewallMark { family, mark });
        }
        let address = address
            .ok_or(ModelError::Missing("IPVS_SVC_ATTR_ADDR"))?
            .to_ip(family)
            .ok_or(ModelError::Family(family.into()))?;
        Ok(Self::Address {
            protocol: protocol.ok_or(ModelError::Missing("IPVS_SVC_ATTR_PROTOCOL"))?,
            address,
            port: port.ok_or(ModelError::Missing("IPVS_SVC_ATTR_PORT"))?,
        })
    }
}

impl fmt::Display for ServiceKey {
    /// As ipvsadm -Ln prints it: `TCP 192.0.2.1:80`, `UDP [2001:db8::1]:53`, `FWM 7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address {
                protocol,
                address: IpAddr::V4(a),
                port,
            } => write!(f, "{} {a}:{port}", protocol.as_str()),
            Self::Address {
                protocol,
                address: IpAddr::V6(a),
                port,
            } => write!(f, "{} [{a}]:{port}", protocol.as_str()),
            Self::FirewallMark {
                family: AddressFamily::Inet6,
                mark,
            } => write!(f, "FWM {mark} IPv6"),
            Self::FirewallMark { mark, .. } => write!(f, "FWM {mark}"),
        }
    }
}

/// Persistence granularity as `IPVS_SVC_ATTR_NETMASK` carries it for `family`: an IPv4
/// netmask of `prefix` bits (its bytes in network order), or the IPv6 prefix length itself.
pub fn netmask(family: AddressFamily, prefix: u8) -> u32 {
    if family == AddressFamily::Inet6 {
        return u32::from(prefix.min(128));
    }
    let bits = u32::from(prefix.min(32));
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from_ne_bytes(mask.to_be_bytes())
}

/// The prefix length of a netmask carried for `family` (none for an IPv4 mask with holes).
pub fn netmask_prefix(family: AddressFamily, raw: u32) -> Option<u8> {
    if family == AddressFamily::Inet6 {
        return u8::try_from(raw).ok().filter(|p| *p <= 128);
    }
    let mask = u32::from_be_bytes(raw.to_ne_bytes());
    let ones = mask.leading_ones();
    (mask.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// What a service does, all of it editable in place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceSettings {
    pub scheduler: Scheduler,
    /// `IP_VS_SVC_F_*` bits, without the kernel-internal `HASHED`.
    pub flags: u32,
    /// Persistence timeout in seconds (used with `PERSISTENT`).
    pub timeout: u32,
    /// Persistence granularity as carried (see [`netmask`]).
    pub netmask: u32,
    /// Persistence engine (e.g. `sip`).
    pub persistence_engine: Option<String>,
}

/// A virtual service: key and settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Service {
    pub key: ServiceKey,
    pub settings: ServiceSettings,
}

impl Service {
    /// Every attribute a new or edited service needs, in the order ipvsadm sends them.
    pub fn attributes(&self) -> Vec<ServiceAttribute> {
        let mut out = self.key.attributes();
        out.push(ServiceAttribute::SchedName(self.settings.scheduler.clone()));
        if let Some(pe) = &self.settings.persistence_engine {
            out.push(ServiceAttribute::PeName(pe.clone()));
        }
        out.push(ServiceAttribute::Flags(ServiceFlags::all(
            self.settings.flags,
        )));
        out.push(ServiceAttribute::Timeout(self.settings.timeout));
        out.push(ServiceAttribute::Netmask(self.settings.netmask));
        out
    }
}

/// A service as a dump shows it: with its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub counters: Counters,
}

impl ServiceEntry {
    /// Reads a service from the attributes of a `IPVS_CMD_NEW_SERVICE` dump message.
    pub fn from_attributes(attributes: &[ServiceAttribute]) -> Result<Self, ModelError> {
        let key = ServiceKey::from_attributes(attributes)?;
        let mut scheduler = None;
        let (mut flags, mut timeout, mut netmask, mut pe) = (0, 0, 0, None);
        let (mut stats, mut stats64) = (None, None);
        for a in attributes {
            match a {
                ServiceAttribute::SchedName(s) => scheduler = Some(s.clone()),
                ServiceAttribute::Flags(f) => flags = f.flags & !ServiceFlags::HASHED,
                ServiceAttribute::Timeout(t) => timeout = *t,
                ServiceAttribute::Netmask(n) => netmask = *n,
                ServiceAttribute::PeName(p) => pe = Some(p.clone()),
                ServiceAttribute::Stats(s) => stats = Some(Counters::of(s)),
                ServiceAttribute::Stats64(s) => stats64 = Some(Counters::of(s)),
                _ => {}
            }
        }
        Ok(Self {
            service: Service {
                key,
                settings: ServiceSettings {
                    scheduler: scheduler.ok_or(ModelError::Missing("IPVS_SVC_ATTR_SCHED_NAME"))?,
                    flags,
                    timeout,
                    netmask,
                    persistence_engine: pe,
                },
            },
            counters: stats64.or(stats).unwrap_or_default(),
        })
    }
}

/// Tunnel encapsulation of a `Tunnel` destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// UDP port of a GUE tunnel (0 otherwise).
    pub port: u16,
    pub flags: TunnelFlags,
}

/// What a destination does, all of it editable in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestinationSettings {
    pub forwarding: ForwardingMethod,
    /// 0 takes no new connections.
    pub weight: u32,
    /// Upper connection threshold (0: none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0: none).
    pub lower_threshold: u32,
    /// Meaningful with `Tunnel` forwarding; zeros otherwise.
    pub tunnel: Tunnel,
}

impl DestinationSettings {
    /// The settings with the tunnel fields zeroed unless forwarding is `Tunnel`: the kernel
    /// reports them for every destination, but only a tunnel uses them.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        if self.forwarding != ForwardingMethod::Tunnel {
            self.tunnel = Tunnel::default();
        }
        self
    }
}

/// A real server of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Destination {
    pub address: IpAddr,
    pub port: u16,
    pub settings: DestinationSettings,
}

impl Destination {
    /// The identifying attributes (what a delete needs), in ipvsadm's order.
    pub fn key_attributes(address: IpAddr, port: u16) -> Vec<DestAttribute> {
        vec![
            DestAttribute::AddrFamily(AddressFamily::of(address)),
            DestAttribute::Addr(InetAddr::from_ip(address)),
            DestAttribute::Port(port),
        ]
    }

    /// Every attribute a new or edited destination needs, in the order ipvsadm sends them.
    pub fn attributes(&self) -> Vec<DestAttribute> {
        let s = &self.settings;
        let mut out = Self::key_attributes(self.address, self.port);
        out.extend([
            DestAttribute::FwdMethod(s.forwarding),
            DestAttribute::Weight(s.weight),
            DestAttribute::TunType(s.tunnel.kind),
            DestAttribute::TunPort(s.tunnel.port),
            DestAttribute::TunFlags(s.tunnel.flags),
            DestAttribute::UThresh(s.upper_threshold),
            DestAttribute::LThresh(s.lower_threshold),
        ]);
        out
    }
}

/// A destination as a dump shows it: with its connection counts and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationEntry {
    pub destination: Destination,
    pub active_connections: u32,
    pub inactive_connections: u32,
    pub persistent_connections: u32,
    pub counters: Counters,
}

impl DestinationEntry {
    /// Reads a destination of a service of `service_family` from the attributes of a
    /// `IPVS_CMD_NEW_DEST` dump message (its own family attribute wins when present).
    pub fn from_attributes(
        service_family: AddressFamily,
        attributes: &[DestAttribute],
    ) -> Result<Self, ModelError> {
        let mut family = service_family;
        let (mut address, mut port, mut forwarding) = (None, None, None);
        let (mut weight, mut upper, mut lower) = (0, 0, 0);
        let (mut active, mut inactive, mut persistent) = (0, 0, 0);
        let mut tunnel = Tunnel::default();
        let (mut stats, mut stats64) = (None, None);
        for a in attributes {
            match a {
                DestAttribute::AddrFamily(f) => family = *f,
                DestAttribute::Addr(a) => address = Some(*a),
                DestAttribute::Port(p) => port = Some(*p),
                DestAttribute::FwdMethod(m) => forwarding = Some(*m),
                DestAttribute::Weight(w) => weight = *w,
                DestAttribute::UThresh(u) => upper = *u,
                DestAttribute::LThresh(l) => lower = *l,
                DestAttribute::ActiveConns(n) => active = *n,
                DestAttribute::InactConns(n) => inactive = *n,
                DestAttribute::PersistConns(n) => persistent = *n,
                DestAttribute::TunType(t) => tunnel.kind = *t,
                DestAttribute::TunPort(p) => tunnel.port = *p,
                DestAttribute::TunFlags(f) => tunnel.flags = *f,
                DestAttribute::Stats(s) => stats = Some(Counters::of(s)),
                DestAttribute::Stats64(s) => stats64 = Some(Counters::of(s)),
                DestAttribute::Other(_) => {}
            }
        }
        let address = address
            .ok_or(ModelError::Missing("IPVS_DEST_ATTR_ADDR"))?
            .to_ip(family)
            .ok_or(ModelError::Family(family.into()))?;
        Ok(Self {
            destination: Destination {
                address,
                port: port.ok_or(ModelError::Missing("IPVS_DEST_ATTR_PORT"))?,
                settings: DestinationSettings {
                    forwarding: forwarding
                        .ok_or(ModelError::Missing("IPVS_DEST_ATTR_FWD_METHOD"))?,
                    weight,
                    upper_threshold: upper,
                    lower_threshold: lower,
                    tunnel,
                }
                .normalized(),
            },
            active_connections: active,
            inactive_connections: inactive,
            persistent_connections: persistent,
            counters: stats64.or(stats).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_netmask_is_carried_as_its_bytes_and_an_ipv6_one_as_a_prefix_length() {
        let v4 = netmask(AddressFamily::Inet, 24);
        assert_eq!(v4.to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(netmask_prefix(AddressFamily::Inet, v4), Some(24));
        assert_eq!(netmask(AddressFamily::Inet, 32).to_ne_bytes(), [255; 4]);
        assert_eq!(netmask(AddressFamily::Inet, 0), 0);
        assert_eq!(netmask(AddressFamily::Inet6, 64), 64);
        assert_eq!(netmask_prefix(AddressFamily::Inet6, 128), Some(128));
        let holey = u32::from_ne_bytes([255, 0, 255, 0]);
        assert_eq!(netmask_prefix(AddressFamily::Inet, holey), None);
    }

    #[test]
    fn a_service_key_reads_back_from_its_attributes() {
        let keys = [
            ServiceKey::Address {
                protocol: Protocol::Sctp,
                address: "2001:db8::1".parse().unwrap(),
                port: 5000,
            },
            ServiceKey::FirewallMark {
                family: AddressFamily::Inet,
                mark: 7,
            },
        ];
        for key in keys {
            assert_eq!(ServiceKey::from_attributes(&key.attributes()), Ok(key));
        }
    }

    #[test]
    fn a_service_without_a_scheduler_is_not_a_whole_service() {
        let key = ServiceKey::FirewallMark {
            family: AddressFamily::Inet,
            mark: 1,
        };
        assert_eq!(
            ServiceEntry::from_attributes(&key.attributes()),
            Err(ModelError::Missing("IPVS_SVC_ATTR_SCHED_NAME"))
        );
    }

    #[test]
    fn keys_print_as_ipvsadm_lists_them() {
        let v6 = ServiceKey::Address {
            protocol: Protocol::Udp,
            address: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        assert_eq!(v6.to_string(), "UDP [2001:db8::1]:53");
        let fwm = ServiceKey::FirewallMark {
            family: AddressFamily::Inet,
            mark: 7,
        };
        assert_eq!(fwm.to_string(), "FWM 7");
    }
}
