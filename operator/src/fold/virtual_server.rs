//! VirtualServer status folding, pure: the real servers the planner resolved, as the MASTER of
//! the VirtualIP reports them — programmed in IPVS (`status.ipvs`), and healthy
//! (`status.checkers`) — become `healthySummary`, `realServers[]` and the `Programmed`,
//! `Available` and `Degraded` conditions.
//!
//! Status never claims more than the MASTER reported: `Programmed` needs the MASTER to list
//! every service of the VirtualServer as programmed, and `Available` needs `Programmed` plus
//! enough programmed, healthy, non-draining weight (the quorum, or any without one).
//!
//! A real server's check result is the MASTER's `status.checkers` entry of kind
//! `RealServer`, owned by the VirtualServer, whose target is `address:port`
//! (`[address]:port` for IPv6 is accepted too). Without a health check a real server is
//! healthy; with one but no result yet it is not (the MASTER has not checked it).

use std::net::IpAddr;

use jiff::Timestamp;
use kube_vrrp_crds::{
    CheckerKind, CheckerStatus, IpvsServiceStatus, RealServerStatus, ResolvedRealServer,
    ResolvedVirtualServer, VirtualServer, VirtualServerStatus, VrrpNodeStatus, condition,
};

use super::ConflictNote;
use super::conditions::carry;

/// Why a VirtualServer condition has its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerConditionReason {
    /// Available=True: programmed, and healthy weight reaches the quorum (or, without
    /// quorum, one healthy real server).
    Serving,
    /// Available=False: healthy weight below the quorum.
    BelowQuorum,
    /// Available=False: no healthy real server.
    NoHealthyRealServer,
    /// Available/Programmed=False: the VirtualIP has no single fresh MASTER.
    NoMaster,
    /// Available/Programmed=False: the VirtualIP is not deployed, so neither is the
    /// VirtualServer.
    NotDeployed,
    /// Programmed=True: the MASTER reports every service programmed.
    Programmed,
    /// Programmed/Available=False: the MASTER reports a service missing or incomplete.
    NotProgrammed,
    /// Programmed/Available=False: the MASTER's kernel cannot program IPVS.
    IpvsUnavailable,
    /// Programmed/Available=False: the MASTER has reported nothing about IPVS.
    NotReported,
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
            Self::Programmed => "Programmed",
            Self::NotProgrammed => "NotProgrammed",
            Self::IpvsUnavailable => "IPVSUnavailable",
            Self::NotReported => "NotReported",
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

fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The services the MASTER reports for `resolved`, one per address, or why they are not
/// (all) programmed.
fn programmed<'a>(
    report: &'a VrrpNodeStatus,
    master: &str,
    resolved: &ResolvedVirtualServer,
) -> Result<Vec<&'a IpvsServiceStatus>, (ServerConditionReason, String)> {
    let Some(ipvs) = report.ipvs.as_ref() else {
        return Err((
            ServerConditionReason::NotReported,
            format!("{master} has not reported IPVS"),
        ));
    };
    if !ipvs.available {
        return Err((
            ServerConditionReason::IpvsUnavailable,
            format!(
                "IPVS is not available on {master}: {}",
                ipvs.message.as_deref().unwrap_or("no reason given")
            ),
        ));
    }
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for address in &resolved.addresses {
        let entry = ipvs.virtual_services.iter().find(|s| {
            s.virtual_server == resolved.name
                && s.port == resolved.port
                && s.protocol == resolved.protocol
                && same_address(&s.address, address)
        });
        match entry {
            Some(e) if e.programmed => found.push(e),
            Some(e) => problems.push(
                e.message
                    .clone()
                    .unwrap_or_else(|| format!("{address}:{} is not programmed", resolved.port)),
            ),
            None => problems.push(format!(
                "{master} does not report {address}:{} yet",
                resolved.port
            )),
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err((ServerConditionReason::NotProgrammed, problems.join("; ")))
    }
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
            cond(condition::PROGRAMMED, false, reason, message.clone()),
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
    let services = programmed(report, master, resolved);
    let listed = services.as_deref().unwrap_or_default();

    let real_servers: Vec<RealServerStatus> = resolved
        .real_servers
        .iter()
        .map(|rs| {
            let check = check_of(report, name, rs);
            let healthy = resolved.health_check.is_none() || check.is_some_and(|c| c.healthy);
            let in_kernel: Vec<u32> = listed
                .iter()
                .filter_map(|s| {
                    s.real_servers
                        .iter()
                        .find(|r| same_address(&r.address, &rs.address) && r.port == rs.port)
                        .map(|r| r.weight)
                })
                .collect();
            let is_programmed = !listed.is_empty() && in_kernel.len() == listed.len();
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
                programmed: is_programmed,
                draining: rs.draining,
                weight: if is_programmed {
                    in_kernel.into_iter().min().unwrap_or(0)
                } else {
                    0
                },
                healthy,
                last_transition_time: check.and_then(|c| c.last_transition_time.clone()),
                message,
            }
        })
        .collect();

    let serving: Vec<&RealServerStatus> = real_servers
        .iter()
        .filter(|r| r.healthy && r.programmed && !r.draining && r.weight > 0)
        .collect();
    let serving_weight: u64 = serving.iter().map(|r| u64::from(r.weight)).sum();
    let programmed_condition = match &services {
        Ok(_) => (
            true,
            ServerConditionReason::Programmed,
            format!(
                "{master} programmed {} service(s) with {} real server(s)",
                resolved.addresses.len(),
                real_servers.iter().filter(|r| r.programmed).count()
            ),
        ),
        Err((reason, message)) => (false, *reason, message.clone()),
    };
    let available = match (&services, resolved.quorum) {
        (Err((reason, message)), _) => (false, *reason, message.clone()),
        (Ok(_), Some(q)) if serving_weight < u64::from(q) => (
            false,
            ServerConditionReason::BelowQuorum,
            format!("healthy weight {serving_weight} is below the quorum of {q}"),
        ),
        (Ok(_), _) if serving.is_empty() => (
            false,
            ServerConditionReason::NoHealthyRealServer,
            if real_servers.is_empty() {
                "no real server: add realServers or check the backendRef Service".to_owned()
            } else {
                "no programmed real server with weight passes its health check".to_owned()
            },
        ),
        (Ok(_), _) => (
            true,
            ServerConditionReason::Serving,
            format!(
                "{master} serves {} of {} real servers",
                serving.len(),
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
    let healthy_count = real_servers.iter().filter(|r| r.healthy).count();

    VirtualServerStatus {
        healthy_summary: Some(format!("{healthy_count}/{}", real_servers.len())),
        conditions: vec![
            cond(
                condition::PROGRAMMED,
                programmed_condition.0,
                programmed_condition.1.as_str(),
                programmed_condition.2,
            ),
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
