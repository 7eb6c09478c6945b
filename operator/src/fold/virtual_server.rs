//! VirtualServer status folding, pure: the real servers the planner resolved, judged by the
//! health checks that the MASTER of the VirtualIP reports (only the MASTER programs IPVS),
//! become `healthySummary`, `realServers[]` and the `Available` and `Degraded` conditions.
//!
//! A real server's check result is the MASTER's `status.checkers` entry of kind
//! `RealServer`, owned by the VirtualServer, whose target is `address:port`
//! (`[address]:port` for IPv6 is accepted too). Without a health check a real server is
//! healthy; with one but no result yet it is not (the MASTER has not checked it).

use jiff::Timestamp;
use kube_vrrp_crds::{
    CheckerKind, CheckerStatus, RealServerStatus, ResolvedRealServer, ResolvedVirtualServer,
    VirtualServer, VirtualServerStatus, VrrpNodeStatus, condition,
};

use super::ConflictNote;
use super::conditions::carry;

/// Why a VirtualServer condition has its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerConditionReason {
    /// Available=True: healthy weight reaches the quorum (or, without quorum, one healthy
    /// real server).
    Serving,
    /// Available=False: healthy weight below the quorum.
    BelowQuorum,
    /// Available=False: no healthy real server.
    NoHealthyRealServer,
    /// Available=False: the VirtualIP has no single fresh MASTER.
    NoMaster,
    /// Available=False: the VirtualIP is not deployed, so neither is the VirtualServer.
    NotDeployed,
    /// Degraded=True: some real servers fail their checks.
    RealServersUnhealthy,
    /// Degraded=False.
    AllRealServersHealthy,
    /// Degraded=False: nothing is served, so nothing is degraded.
    NotServing,
}

impl ServerConditionReason {
    /// The name written to `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serving => "Serving",
            Self::BelowQuorum => "BelowQuorum",
            Self::NoHealthyRealServer => "NoHealthyRealServer",
            Self::NoMaster => "NoMaster",
            Self::NotDeployed => "NotDeployed",
            Self::RealServersUnhealthy => "RealServersUnhealthy",
            Self::AllRealServersHealthy => "AllRealServersHealthy",
            Self::NotServing => "NotServing",
        }
    }
}

/// What the VirtualServer's status is folded from.
#[derive(Clone, Copy, Debug)]
pub struct ServerView<'a> {
    /// The planner's conflict for this VirtualServer, if any.
    pub conflict: Option<&'a ConflictNote>,
    /// The VirtualServer as planned (none when not deployed).
    pub resolved: Option<&'a ResolvedVirtualServer>,
    /// The VirtualIP's single fresh MASTER: its node name and report.
    pub master: Option<(&'a str, &'a VrrpNodeStatus)>,
}

fn target_matches(target: &str, rs: &ResolvedRealServer) -> bool {
    target == format!("{}:{}", rs.address, rs.port)
        || target == format!("[{}]:{}", rs.address, rs.port)
}

fn check_of<'a>(
    report: &'a VrrpNodeStatus,
    server: &str,
    rs: &ResolvedRealServer,
) -> Option<&'a CheckerStatus> {
    report.checkers.iter().find(|c| {
        c.kind == CheckerKind::RealServer && c.owner == server && target_matches(&c.target, rs)
    })
}

/// Folds one VirtualServer's status at `now`.
pub fn fold_virtual_server(
    now: Timestamp,
    vs: &VirtualServer,
    view: &ServerView<'_>,
) -> VirtualServerStatus {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let name = vs.metadata.name.as_deref().unwrap_or_default();
    let vip = vs.spec.virtual_ip_ref.as_str();
    let previous = vs.status.as_ref().map_or(&[][..], |s| &s.conditions[..]);
    let generation = vs.metadata.generation;
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        carry(previous, type_, status, reason, message, now, generation)
    };
    let not_serving = |reason: &str, message: String| VirtualServerStatus {
        healthy_summary: None,
        real_servers: Vec::new(),
        conditions: vec![
            cond(condition::AVAILABLE, false, reason, message),
            cond(
                condition::DEGRADED,
                false,
                ServerConditionReason::NotServing.as_str(),
                String::new(),
            ),
        ],
        observed_generation: generation,
    };

    if let Some(c) = view.conflict {
        return not_serving(c.reason, c.message.clone());
    }
    let Some(resolved) = view.resolved else {
        return not_serving(
            ServerConditionReason::NotDeployed.as_str(),
            format!("VirtualIP {vip} is not deployed; see its Conflict condition"),
        );
    };
    let Some((master, report)) = view.master else {
        return not_serving(
            ServerConditionReason::NoMaster.as_str(),
            format!("VirtualIP {vip} has no single MASTER to program this service"),
        );
    };

    let real_servers: Vec<RealServerStatus> = resolved
        .real_servers
        .iter()
        .map(|rs| {
            let check = check_of(report, name, rs);
            let healthy = resolved.health_check.is_none() || check.is_some_and(|c| c.healthy);
            let message = if healthy {
                None
            } else {
                Some(check.and_then(|c| c.message.clone()).unwrap_or_else(|| {
                    if check.is_some() {
                        "failing its health check".to_owned()
                    } else {
                        format!("no health check result from {master} yet")
                    }
                }))
            };
            RealServerStatus {
                address: rs.address.clone(),
                port: rs.port,
                weight: if healthy { rs.weight } else { 0 },
                healthy,
                last_transition_time: check.and_then(|c| c.last_transition_time.clone()),
                message,
            }
        })
        .collect();

    let healthy: Vec<&RealServerStatus> = real_servers.iter().filter(|r| r.healthy).collect();
    let healthy_weight: u64 = healthy.iter().map(|r| u64::from(r.weight)).sum();
    let available = match resolved.quorum {
        Some(q) if healthy_weight < u64::from(q) => (
            false,
            ServerConditionReason::BelowQuorum,
            format!("healthy weight {healthy_weight} is below the quorum of {q}"),
        ),
        _ if healthy.is_empty() => (
            false,
            ServerConditionReason::NoHealthyRealServer,
            if real_servers.is_empty() {
                "no real server: add realServers or check the backendRef Service".to_owned()
            } else {
                "no real server passes its health check".to_owned()
            },
        ),
        _ => (
            true,
            ServerConditionReason::Serving,
            format!(
                "{master} serves {} of {} real servers",
                healthy.len(),
                real_servers.len()
            ),
        ),
    };
    let failing: Vec<String> = real_servers
        .iter()
        .filter(|r| !r.healthy)
        .map(|r| {
            format!(
                "{}:{} ({})",
                r.address,
                r.port,
                r.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let degraded = if failing.is_empty() {
        (
            false,
            ServerConditionReason::AllRealServersHealthy,
            String::new(),
        )
    } else {
        (
            true,
            ServerConditionReason::RealServersUnhealthy,
            failing.join("; "),
        )
    };

    VirtualServerStatus {
        healthy_summary: Some(format!("{}/{}", healthy.len(), real_servers.len())),
        conditions: vec![
            cond(
                condition::AVAILABLE,
                available.0,
                available.1.as_str(),
                available.2,
            ),
            cond(
                condition::DEGRADED,
                degraded.0,
                degraded.1.as_str(),
                degraded.2,
            ),
        ],
        real_servers,
        observed_generation: generation,
    }
}
