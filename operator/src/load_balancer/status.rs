//! What users see of load balancing, pure: a pool's status, and the ingress addresses of a
//! Service (an address is shown once a node has been MASTER of it).

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::LoadBalancerIngress;
use kube_vrrp_crds::{VirtualIpPoolStatus, condition};

use super::{PoolProblem, PoolReport, ServiceOutcome};
use crate::fold::conditions::carry;

/// The `ipMode` of every ingress address: traffic arrives with the address as its
/// destination (the node holding it answers for it), as kube-proxy expects of a VIP.
pub const IP_MODE: &str = "VIP";

/// Reasons of a pool's conditions.
pub mod reason {
    /// Ready=True.
    pub const ASSIGNING: &str = "Assigning";
    /// Ready=False / Conflict=True: the pool breaks a validation rule.
    pub const INVALID: &str = "Invalid";
    /// Ready=False / Conflict=True: the pool overlaps an older one.
    pub const OVERLAPS_POOL: &str = "OverlapsPool";
    /// Conflict=True: node addresses lie inside the pool.
    pub const NODE_ADDRESSES: &str = "NodeAddresses";
    /// Conflict=False.
    pub const NO_CONFLICT: &str = "NoConflict";
}

/// A pool's whole status from its report; condition times move only when a status flips.
pub fn pool_status(
    report: &PoolReport,
    previous: Option<&VirtualIpPoolStatus>,
    now: Timestamp,
    generation: Option<i64>,
) -> VirtualIpPoolStatus {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let previous = previous.map_or(&[][..], |p| p.conditions.as_slice());
    let problem_reason = |p: &PoolProblem| match p {
        PoolProblem::Invalid(_) => reason::INVALID,
        PoolProblem::Overlap { .. } => reason::OVERLAPS_POOL,
    };
    let ready = match &report.problem {
        None => (
            true,
            reason::ASSIGNING,
            format!(
                "hands out addresses to Services: {} assigned, {} free",
                report.assigned, report.available
            ),
        ),
        Some(p) => (false, problem_reason(p), p.message()),
    };
    let nodes: Vec<String> = report
        .node_addresses
        .iter()
        .map(|(ip, node)| format!("{ip} (node {node})"))
        .collect();
    let conflict = match (&report.problem, nodes.is_empty()) {
        (Some(p), _) => (true, problem_reason(p), p.message()),
        (None, false) => (
            true,
            reason::NODE_ADDRESSES,
            format!(
                "node addresses {} lie in the pool; they are never handed out",
                nodes.join(", ")
            ),
        ),
        (None, true) => (false, reason::NO_CONFLICT, String::new()),
    };
    VirtualIpPoolStatus {
        assigned: Some(report.assigned),
        available: Some(report.available.to_string()),
        conditions: [(condition::READY, ready), (condition::CONFLICT, conflict)]
            .into_iter()
            .map(|(type_, (status, reason, message))| {
                carry(previous, type_, status, reason, message, now, generation)
            })
            .collect(),
        observed_generation: generation,
    }
}

/// The ingress of a Service: each of its addresses, in its families' order, whose VirtualIP
/// `answering` (a node is MASTER of it), or that `current` already shows and whose VirtualIP
/// is still `deployed` (a failover does not take an address off the Service).
pub fn ingress(
    outcome: &ServiceOutcome,
    answering: impl Fn(&str) -> bool,
    deployed: impl Fn(&str) -> bool,
    current: &[IpAddr],
) -> Vec<LoadBalancerIngress> {
    outcome
        .addresses
        .iter()
        .filter(|a| {
            answering(&a.virtual_ip) || (current.contains(&a.address) && deployed(&a.virtual_ip))
        })
        .map(|a| LoadBalancerIngress {
            ip: Some(a.address.to_string()),
            ip_mode: Some(IP_MODE.to_owned()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Assigned;
    use super::*;

    fn outcome(addresses: &[&str]) -> ServiceOutcome {
        ServiceOutcome {
            addresses: addresses
                .iter()
                .map(|a| {
                    let address: IpAddr = a.parse().unwrap();
                    Assigned {
                        address,
                        virtual_ip: super::super::virtual_ip_name(address),
                        pool: "lan".to_owned(),
                        new: false,
                    }
                })
                .collect(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn an_address_is_shown_once_a_node_is_master_and_stays_through_a_failover() {
        let o = outcome(&["10.0.0.5", "fd00::5"]);
        let none = ingress(&o, |_| false, |_| true, &[]);
        assert!(none.is_empty());
        let v4 = ingress(&o, |v| v == "lb-10-0-0-5", |_| true, &[]);
        assert_eq!(v4.len(), 1);
        assert_eq!(v4[0].ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(v4[0].ip_mode.as_deref(), Some("VIP"));
        // No MASTER for a moment, but shown already and still deployed: it stays.
        let current = ["10.0.0.5".parse().unwrap()];
        assert_eq!(ingress(&o, |_| false, |_| true, &current).len(), 1);
        // Not deployed any more (a conflict): it goes.
        assert!(ingress(&o, |_| false, |_| false, &current).is_empty());
    }

    #[test]
    fn pool_conditions_say_why_it_hands_out_nothing_and_which_node_addresses_it_skips() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let ok = pool_status(
            &PoolReport {
                assigned: 2,
                available: 251,
                problem: None,
                node_addresses: vec![("10.0.0.11".parse().unwrap(), "n1".to_owned())],
            },
            None,
            now,
            Some(1),
        );
        assert_eq!(ok.available.as_deref(), Some("251"));
        assert_eq!(ok.conditions[0].status, "True");
        assert_eq!(ok.conditions[1].reason, reason::NODE_ADDRESSES);
        assert!(ok.conditions[1].message.contains("10.0.0.11 (node n1)"));
        let later = now + jiff::SignedDuration::from_secs(60);
        let overlap = pool_status(
            &PoolReport {
                problem: Some(PoolProblem::Overlap {
                    other: "old".to_owned(),
                    shared: kube_vrrp_crds::Span {
                        first: "10.0.0.1".parse().unwrap(),
                        last: "10.0.0.9".parse().unwrap(),
                    },
                }),
                ..PoolReport::default()
            },
            Some(&ok),
            later,
            Some(2),
        );
        assert_eq!(overlap.conditions[0].status, "False");
        assert_eq!(overlap.conditions[0].reason, reason::OVERLAPS_POOL);
        assert!(overlap.conditions[0].message.contains("10.0.0.1-10.0.0.9"));
        // Conflict stayed True: its time did not move.
        assert_eq!(
            overlap.conditions[1].last_transition_time,
            ok.conditions[1].last_transition_time
        );
        assert_ne!(
            overlap.conditions[0].last_transition_time,
            ok.conditions[0].last_transition_time
        );
    }
}
