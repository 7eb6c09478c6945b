//! What the kernel should have: the node's resolved VirtualServers turned into IPVS services
//! (one per VirtualServer address) with their destinations. Pure. A VirtualServer that cannot
//! be turned into services (an address that is not an IP, a prefix too long for its family,
//! two VirtualServers on one address, port and protocol) is refused with a reason, alone.
//! The real servers' health decides each pool first ([`with_health`]): weights, removals,
//! the sorry server; a VirtualServer whose checks cannot run here is refused.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kube_vrrp_crds::{
    Forwarding, Protocol as CrdProtocol, ResolvedVirtualServer, Scheduler as CrdScheduler,
    SchedulerFlag, TunnelChecksum, TunnelType as CrdTunnelType,
};

use crate::check::real_server::HealthSnapshot;

use super::model::{
    Destination, DestinationSettings, Service, ServiceKey, ServiceSettings, Tunnel, netmask,
};
use super::owner::OWNER_MARK;
use super::packet::{
    AddressFamily, ForwardingMethod, Protocol, Scheduler, ServiceFlags, TunnelFlags, TunnelType,
};

/// One service the kernel should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// The VirtualServer it comes from.
    pub virtual_server: String,
    /// Key and settings (the settings carry [`OWNER_MARK`]).
    pub service: Service,
    pub destinations: Vec<DesiredDestination>,
}

/// One destination the service should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DesiredDestination {
    pub destination: Destination,
    /// A terminating endpoint: brought to weight 0, removed once its connections end or the
    /// drain times out, and never added.
    pub draining: bool,
}

/// A VirtualServer (address) that cannot be programmed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub virtual_server: String,
    pub address: String,
    pub port: u16,
    pub protocol: CrdProtocol,
    pub message: String,
}

/// Every service of `servers`, and the VirtualServers refused.
pub fn desired_services(servers: &[ResolvedVirtualServer]) -> (Vec<DesiredService>, Vec<Refused>) {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    let mut taken: BTreeSet<ServiceKey> = BTreeSet::new();
    for server in servers {
        for address in &server.addresses {
            let refuse = |message: String| Refused {
                virtual_server: server.name.clone(),
                address: address.clone(),
                port: server.port,
                protocol: server.protocol,
                message,
            };
            match service_of(server, address) {
                Ok(desired) if taken.insert(desired.service.key) => out.push(desired),
                Ok(desired) => refused.push(refuse(format!(
                    "another VirtualServer already uses {}",
                    desired.service.key
                ))),
                Err(message) => refused.push(refuse(message)),
            }
        }
    }
    (out, refused)
}

/// `servers` with their pools as the health checks decide them (see
/// [`crate::check::real_server::pool`](mod@crate::check::real_server::pool)), and the
/// VirtualServers refused because their checks cannot run on this node (one refusal per
/// address, as the kernel would have one service each).
pub fn with_health(
    servers: &[ResolvedVirtualServer],
    health: &HealthSnapshot,
) -> (Vec<ResolvedVirtualServer>, Vec<Refused>) {
    let mut pooled = Vec::with_capacity(servers.len());
    let mut refused = Vec::new();
    for server in servers {
        if let Some(why) = health.refused(&server.name) {
            refused.extend(server.addresses.iter().map(|address| Refused {
                virtual_server: server.name.clone(),
                address: address.clone(),
                port: server.port,
                protocol: server.protocol,
                message: format!("its health check cannot run on this node: {why}"),
            }));
            continue;
        }
        pooled.push(ResolvedVirtualServer {
            real_servers: health.pool(server).members,
            ..server.clone()
        });
    }
    (pooled, refused)
}

/// The kernel's scheduler for the API's.
pub fn scheduler(s: CrdScheduler) -> Scheduler {
    match s {
        CrdScheduler::Rr => Scheduler::RoundRobin,
        CrdScheduler::Wrr => Scheduler::WeightedRoundRobin,
        CrdScheduler::Lc => Scheduler::LeastConnection,
        CrdScheduler::Wlc => Scheduler::WeightedLeastConnection,
        CrdScheduler::Lblc => Scheduler::LocalityBasedLeastConnection,
        CrdScheduler::Lblcr => Scheduler::LocalityBasedLeastConnectionWithReplication,
        CrdScheduler::Dh => Scheduler::DestinationHashing,
        CrdScheduler::Sh => Scheduler::SourceHashing,
        CrdScheduler::Sed => Scheduler::ShortestExpectedDelay,
        CrdScheduler::Nq => Scheduler::NeverQueue,
        CrdScheduler::Mh => Scheduler::MaglevHashing,
    }
}

/// The kernel's protocol for the API's.
pub fn protocol(p: CrdProtocol) -> Protocol {
    match p {
        CrdProtocol::Tcp => Protocol::Tcp,
        CrdProtocol::Udp => Protocol::Udp,
        CrdProtocol::Sctp => Protocol::Sctp,
    }
}

fn service_of(server: &ResolvedVirtualServer, address: &str) -> Result<DesiredService, String> {
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let family = AddressFamily::of(ip);
    let key = ServiceKey::Address {
        protocol: protocol(server.protocol),
        address: ip,
        port: server.port,
    };
    let mut flags = OWNER_MARK;
    for f in &server.scheduler_flags {
        flags |= match f {
            SchedulerFlag::Fallback => ServiceFlags::SCHED1,
            SchedulerFlag::Port => ServiceFlags::SCHED2,
        };
    }
    let timeout = match &server.persistence_timeout {
        Some(t) => {
            let d = t
                .parse()
                .map_err(|e| format!("persistenceTimeout {t}: {e}"))?;
            u32::try_from(d.as_secs()).map_err(|_| format!("persistenceTimeout {t} is too long"))?
        }
        None => 0,
    };
    if timeout > 0 {
        flags |= ServiceFlags::PERSISTENT;
    }
    let max_prefix = if family == AddressFamily::Inet {
        32
    } else {
        128
    };
    let prefix = server.persistence_granularity.unwrap_or(max_prefix);
    if prefix > max_prefix {
        return Err(format!(
            "persistenceGranularity {prefix} is longer than a {} address ({max_prefix} bits)",
            if max_prefix == 32 { "IPv4" } else { "IPv6" }
        ));
    }
    let forwarding = match server.forwarding {
        Forwarding::Nat => ForwardingMethod::Masq,
        Forwarding::Dr => ForwardingMethod::DirectRoute,
        Forwarding::Tun => ForwardingMethod::Tunnel,
    };
    let tunnel = match (&server.tunnel, server.forwarding) {
        (Some(t), Forwarding::Tun) => Tunnel {
            kind: match t.kind {
                CrdTunnelType::Ipip => TunnelType::Ipip,
                CrdTunnelType::Gue => TunnelType::Gue,
                CrdTunnelType::Gre => TunnelType::Gre,
            },
            port: t.port.unwrap_or(0),
            flags: TunnelFlags(match t.checksum {
                TunnelChecksum::None => TunnelFlags::NOCSUM,
                TunnelChecksum::Checksum => TunnelFlags::CSUM,
                TunnelChecksum::RemoteChecksum => TunnelFlags::REMCSUM,
            }),
        },
        _ => Tunnel::default(),
    };
    let mut destinations = Vec::with_capacity(server.real_servers.len());
    for rs in &server.real_servers {
        let address: IpAddr = rs
            .address
            .parse()
            .map_err(|_| format!("real server {:?} is not an IP address", rs.address))?;
        if AddressFamily::of(address) != family && forwarding != ForwardingMethod::Tunnel {
            return Err(format!(
                "real server {address} is not of the service's family (only TUN mixes families)"
            ));
        }
        destinations.push(DesiredDestination {
            destination: Destination {
                address,
                port: rs.port,
                settings: DestinationSettings {
                    forwarding,
                    weight: if rs.draining { 0 } else { rs.weight },
                    upper_threshold: rs.upper_threshold.unwrap_or(0),
                    lower_threshold: rs.lower_threshold.unwrap_or(0),
                    tunnel,
                }
                .normalized(),
            },
            draining: rs.draining,
        });
    }
    Ok(DesiredService {
        virtual_server: server.name.clone(),
        service: Service {
            key,
            settings: ServiceSettings {
                scheduler: scheduler(server.scheduler),
                flags,
                timeout,
                netmask: netmask(family, prefix),
                persistence_engine: None,
            },
        },
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use kube_vrrp_crds::{DurationString, ResolvedRealServer, Tunnel as CrdTunnel};

    use super::*;

    pub(crate) fn server(name: &str, addresses: &[&str], port: u16) -> ResolvedVirtualServer {
        ResolvedVirtualServer {
            name: name.into(),
            virtual_ip: "web".into(),
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            port,
            protocol: CrdProtocol::Tcp,
            scheduler: CrdScheduler::Rr,
            scheduler_flags: Vec::new(),
            forwarding: Forwarding::Nat,
            tunnel: None,
            persistence_timeout: None,
            persistence_granularity: None,
            quorum: None,
            sorry_server: None,
            inhibit_on_failure: false,
            real_servers: vec![ResolvedRealServer {
                address: "198.51.100.11".into(),
                port: 8080,
                weight: 2,
                ..ResolvedRealServer::default()
            }],
            health_check: None,
        }
    }

    #[test]
    fn each_address_becomes_a_marked_service_with_its_real_servers() {
        let (out, refused) = desired_services(&[server("web", &["192.0.2.1", "192.0.2.2"], 80)]);
        assert!(refused.is_empty());
        assert_eq!(out.len(), 2);
        let s = &out[0].service;
        assert_eq!(s.key.to_string(), "TCP 192.0.2.1:80");
        assert_eq!(s.settings.scheduler, Scheduler::RoundRobin);
        assert_eq!(s.settings.flags, OWNER_MARK);
        assert_eq!(s.settings.netmask, u32::MAX, "per client address");
        let d = &out[0].destinations[0];
        assert_eq!(d.destination.settings.weight, 2);
        assert_eq!(d.destination.settings.forwarding, ForwardingMethod::Masq);
    }

    #[test]
    fn persistence_scheduler_flags_and_tunnels_reach_the_kernels_terms() {
        let mut s = server("web", &["2001:db8::1"], 443);
        s.scheduler = CrdScheduler::Mh;
        s.scheduler_flags = vec![SchedulerFlag::Fallback, SchedulerFlag::Port];
        s.persistence_timeout = Some(DurationString::new("300s"));
        s.persistence_granularity = Some(64);
        s.forwarding = Forwarding::Tun;
        s.tunnel = Some(CrdTunnel {
            kind: CrdTunnelType::Gue,
            port: Some(6080),
            checksum: TunnelChecksum::RemoteChecksum,
        });
        s.real_servers[0].address = "2001:db8:1::7".into();
        s.real_servers[0].upper_threshold = Some(100);
        let (out, _) = desired_services(&[s]);
        let settings = &out[0].service.settings;
        assert_eq!(
            settings.flags,
            OWNER_MARK | ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::PERSISTENT
        );
        assert_eq!((settings.timeout, settings.netmask), (300, 64));
        let d = out[0].destinations[0].destination.settings;
        assert_eq!(d.forwarding, ForwardingMethod::Tunnel);
        assert_eq!(d.tunnel.kind, TunnelType::Gue);
        assert_eq!(d.tunnel.port, 6080);
        assert_eq!(d.tunnel.flags, TunnelFlags(TunnelFlags::REMCSUM));
        assert_eq!(d.upper_threshold, 100);
    }

    #[test]
    fn health_decides_the_pool_and_a_server_whose_checks_cannot_run_is_refused() {
        use crate::check::real_server::{Quorum, RealServerHealth, VirtualServerHealth};
        let mut checked = server("checked", &["192.0.2.1"], 80);
        checked.health_check =
            Some(serde_json::from_value(serde_json::json!({"tcp": {}})).expect("a health check"));
        checked.real_servers.push(ResolvedRealServer {
            address: "198.51.100.12".into(),
            port: 8080,
            weight: 3,
            ..ResolvedRealServer::default()
        });
        let refused_one = server("scripted", &["192.0.2.2", "192.0.2.3"], 80);
        let quorum = Quorum {
            up: true,
            healthy_weight: 2,
            threshold: 1,
            sorry_server_active: false,
        };
        let mut health = HealthSnapshot::default();
        let dead = RealServerHealth {
            healthy: false,
            checked: true,
            last_result: Some(kube_vrrp_crds::CheckResult::Refused),
            detail: None,
            since: None,
        };
        health.virtual_servers.insert(
            "checked".into(),
            VirtualServerHealth {
                config: checked.clone(),
                refused: None,
                real_servers: [(("198.51.100.12".parse().expect("ip"), 8080), dead)].into(),
                quorum,
                quorum_since: None,
            },
        );
        health.virtual_servers.insert(
            "scripted".into(),
            VirtualServerHealth {
                config: refused_one.clone(),
                refused: Some("healthCheck.script: /x is outside".into()),
                real_servers: std::collections::BTreeMap::new(),
                quorum,
                quorum_since: None,
            },
        );
        let (pooled, refused) = with_health(&[checked, refused_one], &health);
        assert_eq!(pooled.len(), 1);
        let addresses: Vec<&str> = pooled[0]
            .real_servers
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(addresses, ["198.51.100.11"], "the failing one is out");
        assert_eq!(refused.len(), 2, "one refusal per address");
        assert!(
            refused[0].message.contains("/x is outside"),
            "{:?}",
            refused[0]
        );
    }

    #[test]
    fn a_draining_real_server_is_wanted_at_weight_zero() {
        let mut s = server("web", &["192.0.2.1"], 80);
        s.real_servers[0].draining = true;
        let (out, _) = desired_services(&[s]);
        assert!(out[0].destinations[0].draining);
        assert_eq!(out[0].destinations[0].destination.settings.weight, 0);
    }

    #[test]
    fn a_prefix_too_long_for_ipv4_and_a_second_server_on_one_key_are_refused_alone() {
        let mut long = server("long", &["192.0.2.1"], 80);
        long.persistence_timeout = Some(DurationString::new("60s"));
        long.persistence_granularity = Some(64);
        let first = server("first", &["192.0.2.2"], 80);
        let twin = server("twin", &["192.0.2.2"], 80);
        let (out, refused) = desired_services(&[long, first, twin]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].virtual_server, "first");
        assert_eq!(refused.len(), 2);
        assert!(
            refused[0].message.contains("longer than a IPv4 address")
                || refused[0].message.contains("IPv4"),
            "{:?}",
            refused[0]
        );
        assert_eq!(refused[1].virtual_server, "twin");
    }

    #[test]
    fn a_real_server_of_the_other_family_is_refused_unless_tunnelled() {
        let mut s = server("web", &["192.0.2.1"], 80);
        s.real_servers[0].address = "2001:db8::7".into();
        let (_, refused) = desired_services(std::slice::from_ref(&s));
        assert_eq!(refused.len(), 1);
        s.forwarding = Forwarding::Tun;
        let (out, refused) = desired_services(&[s]);
        assert!(refused.is_empty() && out.len() == 1);
    }
}
