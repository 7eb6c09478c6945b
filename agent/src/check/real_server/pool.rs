//! What IPVS should hold for a VirtualServer given its real servers' health, and whether the
//! VirtualServer has its quorum: keepalived's effects of checkers, pure.
//!
//! - A healthy real server is in the pool with its configured weight. A failing one is left
//!   out, or kept with weight 0 under `inhibitOnFailure` (keepalived turns the removal into a
//!   weight-0 edit), and comes back with its configured weight when it rises.
//! - Quorum: the sum of the healthy real servers' configured weights must reach `quorum`
//!   (keepalived's default, 1, when omitted; a sum of 0 never does). keepalived's
//!   `hysteresis` has no field here, so the quorum is a plain threshold.
//! - Quorum lost with a `sorryServer`: the real servers leave the pool (weight 0 with
//!   `inhibitOnFailure`), and the sorry server takes all traffic with weight 1, until the
//!   quorum is back; then the sorry server goes and the healthy real servers return.
//! - A draining real server (a terminating endpoint) is passed on as it is, to be drained by
//!   the IPVS sync; it counts towards no quorum.

use kube_vrrp_crds::{ResolvedRealServer, ResolvedVirtualServer};

/// The weight the sorry server gets (keepalived's default real-server weight).
pub const SORRY_SERVER_WEIGHT: u32 = 1;

/// A VirtualServer's quorum as the health checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    /// The healthy weight reaches the threshold.
    pub up: bool,
    /// Sum of the configured weights of the healthy real servers.
    pub healthy_weight: u64,
    /// The quorum in force: `quorum`, else 1.
    pub threshold: u32,
    /// The sorry server takes all traffic.
    pub sorry_server_active: bool,
}

/// What IPVS should hold for one VirtualServer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The destinations with their weights (real servers, or the sorry server).
    pub members: Vec<ResolvedRealServer>,
    pub quorum: Quorum,
}

/// The pool of `server` when `healthy` says which real servers pass their checks.
pub fn pool(server: &ResolvedVirtualServer, healthy: impl Fn(&ResolvedRealServer) -> bool) -> Pool {
    let verdicts: Vec<bool> = server
        .real_servers
        .iter()
        .map(|rs| !rs.draining && healthy(rs))
        .collect();
    let healthy_weight: u64 = server
        .real_servers
        .iter()
        .zip(&verdicts)
        .filter(|(_, up)| **up)
        .map(|(rs, _)| u64::from(rs.weight))
        .sum();
    let threshold = server.quorum.unwrap_or(1).max(1);
    let up = healthy_weight >= u64::from(threshold);
    let sorry = server.sorry_server.as_ref().filter(|_| !up);
    let quorum = Quorum {
        up,
        healthy_weight,
        threshold,
        sorry_server_active: sorry.is_some(),
    };
    let mut members: Vec<ResolvedRealServer> = server
        .real_servers
        .iter()
        .zip(&verdicts)
        .filter_map(|(rs, up)| {
            if rs.draining {
                return Some(rs.clone());
            }
            let weight = if *up && sorry.is_none() {
                rs.weight
            } else if server.inhibit_on_failure {
                0
            } else {
                return None;
            };
            Some(ResolvedRealServer {
                weight,
                ..rs.clone()
            })
        })
        .collect();
    if let Some(sorry) = sorry {
        let port = sorry.port.unwrap_or(server.port);
        members.retain(|m| !(m.address == sorry.address && m.port == port));
        members.push(ResolvedRealServer {
            address: sorry.address.clone(),
            port,
            weight: SORRY_SERVER_WEIGHT,
            ..ResolvedRealServer::default()
        });
    }
    Pool { members, quorum }
}

#[cfg(test)]
mod tests {
    use kube_vrrp_crds::{Forwarding, Protocol, Scheduler, SorryServer};

    use super::*;

    fn server(
        weights: &[u32],
        quorum: Option<u32>,
        sorry: bool,
        inhibit: bool,
    ) -> ResolvedVirtualServer {
        ResolvedVirtualServer {
            name: "web".into(),
            virtual_ip: "vip".into(),
            addresses: vec!["192.0.2.100".into()],
            port: 80,
            protocol: Protocol::Tcp,
            scheduler: Scheduler::Wrr,
            scheduler_flags: Vec::new(),
            forwarding: Forwarding::Nat,
            tunnel: None,
            persistence_timeout: None,
            persistence_granularity: None,
            quorum,
            sorry_server: sorry.then(|| SorryServer {
                address: "198.51.100.99".into(),
                port: Some(8080),
            }),
            inhibit_on_failure: inhibit,
            real_servers: weights
                .iter()
                .enumerate()
                .map(|(i, w)| ResolvedRealServer {
                    address: format!("198.51.100.{}", i + 1),
                    port: 8080,
                    weight: *w,
                    ..ResolvedRealServer::default()
                })
                .collect(),
            health_check: None,
        }
    }

    /// The pool as (last address octet, weight) pairs; the sorry server is 99.
    fn members(pool: &Pool) -> Vec<(u8, u32)> {
        pool.members
            .iter()
            .map(|m| {
                let last = m.address.rsplit('.').next().unwrap_or("0");
                (last.parse().unwrap_or(0), m.weight)
            })
            .collect()
    }

    struct Case {
        name: &'static str,
        weights: &'static [u32],
        healthy: &'static [bool],
        quorum: Option<u32>,
        sorry: bool,
        inhibit: bool,
        want: &'static [(u8, u32)],
        want_up: bool,
        want_weight: u64,
    }

    #[test]
    fn table_of_weights_quorum_sorry_server_and_inhibit() {
        let cases = [
            Case {
                name: "all healthy: configured weights",
                weights: &[3, 2, 1],
                healthy: &[true, true, true],
                quorum: None,
                sorry: true,
                inhibit: false,
                want: &[(1, 3), (2, 2), (3, 1)],
                want_up: true,
                want_weight: 6,
            },
            Case {
                name: "a failing server is removed",
                weights: &[3, 2, 1],
                healthy: &[true, false, true],
                quorum: None,
                sorry: false,
                inhibit: false,
                want: &[(1, 3), (3, 1)],
                want_up: true,
                want_weight: 4,
            },
            Case {
                name: "inhibitOnFailure keeps a failing server at weight 0",
                weights: &[3, 2, 1],
                healthy: &[true, false, true],
                quorum: None,
                sorry: false,
                inhibit: true,
                want: &[(1, 3), (2, 0), (3, 1)],
                want_up: true,
                want_weight: 4,
            },
            Case {
                name: "below the quorum without a sorry server: the healthy ones stay",
                weights: &[3, 2, 1],
                healthy: &[false, true, true],
                quorum: Some(4),
                sorry: false,
                inhibit: false,
                want: &[(2, 2), (3, 1)],
                want_up: false,
                want_weight: 3,
            },
            Case {
                name: "below the quorum with a sorry server: it takes all traffic",
                weights: &[3, 2, 1],
                healthy: &[false, true, true],
                quorum: Some(4),
                sorry: true,
                inhibit: false,
                want: &[(99, 1)],
                want_up: false,
                want_weight: 3,
            },
            Case {
                name: "sorry server with inhibit: real servers at 0 beside it",
                weights: &[3, 2],
                healthy: &[false, true],
                quorum: Some(4),
                sorry: true,
                inhibit: true,
                want: &[(1, 0), (2, 0), (99, 1)],
                want_up: false,
                want_weight: 2,
            },
            Case {
                name: "no healthy server: the default quorum of 1 is lost",
                weights: &[1, 1],
                healthy: &[false, false],
                quorum: None,
                sorry: true,
                inhibit: false,
                want: &[(99, 1)],
                want_up: false,
                want_weight: 0,
            },
            Case {
                name: "healthy servers of weight 0 do not make a quorum",
                weights: &[0, 0],
                healthy: &[true, true],
                quorum: None,
                sorry: true,
                inhibit: false,
                want: &[(99, 1)],
                want_up: false,
                want_weight: 0,
            },
            Case {
                name: "quorum reached exactly: the sorry server goes",
                weights: &[3, 2, 1],
                healthy: &[true, false, true],
                quorum: Some(4),
                sorry: true,
                inhibit: false,
                want: &[(1, 3), (3, 1)],
                want_up: true,
                want_weight: 4,
            },
        ];
        for case in cases {
            let vs = server(case.weights, case.quorum, case.sorry, case.inhibit);
            let healthy = |rs: &ResolvedRealServer| {
                let i = vs.real_servers.iter().position(|r| r == rs).unwrap_or(0);
                case.healthy[i]
            };
            let pool = pool(&vs, healthy);
            assert_eq!(members(&pool), case.want, "{}", case.name);
            assert_eq!(pool.quorum.up, case.want_up, "{}", case.name);
            assert_eq!(
                pool.quorum.healthy_weight, case.want_weight,
                "{}",
                case.name
            );
            assert_eq!(
                pool.quorum.sorry_server_active,
                case.sorry && !case.want_up,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_draining_real_server_passes_through_and_counts_towards_no_quorum() {
        let mut vs = server(&[2, 2], Some(2), true, false);
        vs.real_servers[1].draining = true;
        let all_up = pool(&vs, |_| true);
        assert_eq!(members(&all_up), [(1, 2), (2, 2)]);
        assert!(all_up.members[1].draining, "the sync drains it");
        assert_eq!(all_up.quorum.healthy_weight, 2);
        let first_down = pool(&vs, |rs| rs.address.ends_with(".2"));
        assert!(first_down.quorum.sorry_server_active);
        assert_eq!(members(&first_down), [(2, 2), (99, 1)]);
    }

    #[test]
    fn a_sorry_server_that_is_also_a_real_server_is_listed_once() {
        let mut vs = server(&[2, 2], Some(3), true, true);
        vs.sorry_server = Some(SorryServer {
            address: "198.51.100.2".into(),
            port: None,
        });
        vs.real_servers[1].port = 80;
        let pool = pool(&vs, |rs| rs.address.ends_with(".2"));
        assert_eq!(members(&pool), [(1, 0), (2, 1)]);
        assert_eq!(
            pool.members[1].port, 80,
            "the sorry server's port defaults to the service's"
        );
    }
}
