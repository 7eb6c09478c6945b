//! What the health checks know, as published to their readers (the IPVS task, quorum
//! trackers, status and metrics): per VirtualServer its real servers' verdicts and its
//! quorum. Pure data with the conversions into `VrrpNode.status`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_vrrp_crds::{
    CheckResult, CheckerKind, CheckerStatus, QuorumStatus, ResolvedRealServer,
    ResolvedVirtualServer,
};

use super::pool::{Pool, Quorum, pool};

/// A real server of a VirtualServer: its address and port.
pub type Endpoint = (IpAddr, u16);

/// One real server's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerHealth {
    /// The verdict: in the pool (with its weight) or not.
    pub healthy: bool,
    /// A check has ended since the agent started; until then `healthy` is assumed.
    pub checked: bool,
    /// How the last attempt ended.
    pub last_result: Option<CheckResult>,
    /// What the last attempt saw.
    pub detail: Option<String>,
    /// When `healthy` last changed.
    pub since: Option<Timestamp>,
}

/// One VirtualServer's health.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServerHealth {
    /// The VirtualServer as configured (weights, quorum, sorry server).
    pub config: ResolvedVirtualServer,
    /// Why its checks cannot run here (it must not be programmed then).
    pub refused: Option<String>,
    /// Real servers with a check (none without `healthCheck`).
    pub real_servers: BTreeMap<Endpoint, RealServerHealth>,
    pub quorum: Quorum,
    /// When `quorum.up` last changed.
    pub quorum_since: Option<Timestamp>,
}

impl VirtualServerHealth {
    /// A real server's verdict; `assumed` for one without a check result yet.
    pub fn healthy(&self, rs: &ResolvedRealServer, assumed: bool) -> bool {
        rs.address
            .parse::<IpAddr>()
            .ok()
            .and_then(|a| self.real_servers.get(&(a, rs.port)))
            .map_or(assumed, |h| h.healthy)
    }
}

/// Everything the health checks know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSnapshot {
    pub virtual_servers: BTreeMap<String, VirtualServerHealth>,
    /// Verdicts remembered from the agent's last run, by `virtualServer/address:port`: what a
    /// real server not checked yet is assumed to be (healthy when not remembered).
    pub remembered: BTreeMap<String, bool>,
    /// Changes with every change that can change a pool or a quorum (a verdict, a first
    /// result, a configuration): a reader of pools may skip a snapshot whose revision it has
    /// acted on (the others change only last results and their details).
    pub revision: u64,
}

/// The key a real server is remembered (and its first check phased) by.
pub fn real_server_key(virtual_server: &str, endpoint: Endpoint) -> String {
    format!("{virtual_server}/{}", target(endpoint))
}

/// `address:port`, `[address]:port` for IPv6: the `target` of its `CheckerStatus`.
pub fn target((address, port): Endpoint) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

impl HealthSnapshot {
    fn assumed(&self, server: &str, rs: &ResolvedRealServer) -> bool {
        rs.address
            .parse::<IpAddr>()
            .ok()
            .and_then(|a| {
                self.remembered
                    .get(&real_server_key(server, (a, rs.port)))
                    .copied()
            })
            .unwrap_or(true)
    }

    /// What IPVS should hold for `server` now: its real servers' verdicts applied (a
    /// VirtualServer the checks have not seen yet uses remembered verdicts, else healthy).
    pub fn pool(&self, server: &ResolvedVirtualServer) -> Pool {
        let known = self.virtual_servers.get(&server.name);
        pool(server, |rs| {
            if server.health_check.is_none() {
                return true;
            }
            let assumed = self.assumed(&server.name, rs);
            known.map_or(assumed, |h| h.healthy(rs, assumed))
        })
    }

    /// Why `server`'s checks cannot run here, if they cannot.
    pub fn refused(&self, server: &str) -> Option<&str> {
        self.virtual_servers
            .get(server)
            .and_then(|h| h.refused.as_deref())
    }

    /// The quorum of the VirtualServer named `server`, once the checks run it.
    pub fn quorum(&self, server: &str) -> Option<Quorum> {
        self.virtual_servers.get(server).map(|h| h.quorum)
    }

    /// `VrrpNode.status.checkers` entries for every checked real server, by VirtualServer.
    pub fn checker_statuses(&self) -> Vec<CheckerStatus> {
        let mut out = Vec::new();
        for (name, server) in &self.virtual_servers {
            for (endpoint, health) in &server.real_servers {
                let message = match (&health.detail, health.checked) {
                    (Some(detail), _) => Some(detail.clone()),
                    (None, _) if health.healthy => Some(
                        "not checked yet: in the pool until its first check says otherwise"
                            .to_owned(),
                    ),
                    (None, _) => Some(
                        "not checked yet: out of the pool, as it was when the agent last ran"
                            .to_owned(),
                    ),
                };
                out.push(CheckerStatus {
                    kind: CheckerKind::RealServer,
                    owner: name.clone(),
                    target: target(*endpoint),
                    healthy: health.healthy,
                    last_transition_time: health.since.map(Time),
                    message,
                    last_result: health.last_result,
                });
            }
        }
        out
    }

    /// `VrrpNode.status.quorums`: every VirtualServer's quorum.
    pub fn quorum_statuses(&self) -> Vec<QuorumStatus> {
        self.virtual_servers
            .iter()
            .filter(|(_, h)| h.refused.is_none())
            .map(|(name, h)| QuorumStatus {
                virtual_server: name.clone(),
                up: h.quorum.up,
                healthy_weight: h.quorum.healthy_weight,
                quorum: h.quorum.threshold,
                sorry_server_active: h.quorum.sorry_server_active,
                last_transition_time: h.quorum_since.map(Time),
            })
            .collect()
    }
}
