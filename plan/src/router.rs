//! Virtual routers: which VirtualIPs share one VRRP instance.
//!
//! A VirtualIP without `spec.virtualRouter` is an instance of its own, named after it.
//! VirtualIPs naming the same virtual router are one instance named after the router: one
//! VRID, one MASTER for all their addresses. Rules, for each router:
//! 1. Members are taken in precedence order (one holding a VRID first, then the older, then
//!    the first by name); the first is the **leader**, whose settings the instance runs.
//! 2. A member whose family or any setting but `addresses` differs from the leader's is
//!    [`ConflictReason::VirtualRouterMismatch`] (the message names the fields): a field that
//!    would be ignored is refused instead.
//! 3. A member whose addresses would take the instance past [`MAX_ADDRESSES`] is
//!    [`ConflictReason::VirtualRouterFull`].
//! 4. A router named like a VirtualIP that is an instance of its own would give two instances
//!    one name: every member is [`ConflictReason::InstanceNameTaken`].
//! 5. The instance asks for the VRID most of its members' statuses hold (ties: the member
//!    first in precedence), so a VirtualIP that moves between routers does not take its old
//!    router's VRID along.

use std::collections::{BTreeMap, HashSet};

use kube_vrrp_crds::VirtualIpSpec;
use kube_vrrp_crds::validation::MAX_ADDRESSES;

use super::{Candidate, Conflict, ConflictReason};

/// One VRRP instance to plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    /// The instance's name: the router's, or the lone VirtualIP's.
    pub instance: &'a str,
    /// Whether the instance is a named virtual router (its name is not a VirtualIP's).
    pub router: bool,
    /// Indices of the member candidates, leader first.
    pub members: Vec<usize>,
    /// The VRID to ask for as held (rule 5), and how many members hold it.
    pub held: Option<u8>,
    pub holders: usize,
}

/// The settings of `a` that differ from `b`'s, by field name (all but `addresses` and
/// `virtualRouter`, which are equal by construction among members).
pub(crate) fn differing_fields(a: &VirtualIpSpec, b: &VirtualIpSpec) -> Vec<&'static str> {
    // Destructured so that a new field cannot be forgotten here.
    let VirtualIpSpec {
        addresses: _,
        virtual_router_id,
        interface,
        node_selector,
        priorities,
        version,
        advert_interval,
        preempt,
        preempt_delay,
        accept_mode,
        authentication,
        unicast,
        garp,
        sync_group,
        use_virtual_mac,
        track,
        virtual_router: _,
    } = a;
    let mut out = Vec::new();
    let mut differs = |name, same: bool| {
        if !same {
            out.push(name);
        }
    };
    differs("virtualRouterID", *virtual_router_id == b.virtual_router_id);
    differs("interface", *interface == b.interface);
    differs("nodeSelector", *node_selector == b.node_selector);
    differs("priorities", *priorities == b.priorities);
    differs("version", *version == b.version);
    differs("advertInterval", *advert_interval == b.advert_interval);
    differs("preempt", *preempt == b.preempt);
    differs("preemptDelay", *preempt_delay == b.preempt_delay);
    differs("acceptMode", *accept_mode == b.accept_mode);
    differs("authentication", *authentication == b.authentication);
    differs("unicast", *unicast == b.unicast);
    differs("garp", *garp == b.garp);
    differs("syncGroup", *sync_group == b.sync_group);
    differs("useVirtualMAC", *use_virtual_mac == b.use_virtual_mac);
    differs("track", *track == b.track);
    out
}

fn member_conflict(c: &Candidate<'_>, reason: ConflictReason, message: String) -> Conflict {
    Conflict {
        virtual_ip: c.name.to_owned(),
        virtual_server: None,
        reason,
        message,
    }
}

/// The instances of `candidates`, in name order; members refused by the rules above are left
/// out, with their conflicts.
pub(crate) fn group<'a>(
    candidates: &[Candidate<'a>],
    conflicts: &mut Vec<Conflict>,
) -> Vec<Group<'a>> {
    let mut precedence: Vec<usize> = (0..candidates.len()).collect();
    precedence.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        (a.held.is_none(), a.seniority).cmp(&(b.held.is_none(), b.seniority))
    });
    let lone: HashSet<&str> = candidates
        .iter()
        .filter(|c| c.vip.spec.virtual_router.is_none())
        .map(|c| c.name)
        .collect();
    let mut routers: BTreeMap<&'a str, Vec<usize>> = BTreeMap::new();
    let mut out = Vec::new();
    for &i in &precedence {
        let c = &candidates[i];
        match c.vip.spec.virtual_router.as_deref() {
            Some(router) => routers.entry(router).or_default().push(i),
            None => out.push(Group {
                instance: c.name,
                router: false,
                members: vec![i],
                held: c.held,
                holders: usize::from(c.held.is_some()),
            }),
        }
    }
    for (router, members) in routers {
        if lone.contains(router) {
            for &m in &members {
                conflicts.push(member_conflict(
                    &candidates[m],
                    ConflictReason::InstanceNameTaken,
                    format!(
                        "virtualRouter '{router}' is also the name of VirtualIP '{router}', \
                         which is an instance of its own; rename the virtual router"
                    ),
                ));
            }
            continue;
        }
        let leader = &candidates[members[0]];
        let mut kept = vec![members[0]];
        let mut addresses = leader.nets.len();
        for &m in &members[1..] {
            let c = &candidates[m];
            let fields = differing_fields(&c.vip.spec, &leader.vip.spec);
            if c.family != leader.family || !fields.is_empty() {
                let what = if c.family == leader.family {
                    format!("its {} differ", fields.join(", "))
                } else {
                    format!(
                        "its addresses are {} while the router's are {}",
                        c.family.as_str(),
                        leader.family.as_str()
                    )
                };
                conflicts.push(member_conflict(
                    c,
                    ConflictReason::VirtualRouterMismatch,
                    format!(
                        "virtualRouter '{router}' runs with the settings of VirtualIP '{}', \
                         and {what}; make them equal or use another virtual router",
                        leader.name
                    ),
                ));
                continue;
            }
            if addresses + c.nets.len() > MAX_ADDRESSES {
                conflicts.push(member_conflict(
                    c,
                    ConflictReason::VirtualRouterFull,
                    format!(
                        "virtualRouter '{router}' already carries {addresses} addresses and \
                         one instance carries at most {MAX_ADDRESSES}; use another virtual \
                         router"
                    ),
                ));
                continue;
            }
            addresses += c.nets.len();
            kept.push(m);
        }
        let (held, holders) = majority_vrid(kept.iter().map(|&m| candidates[m].held));
        out.push(Group {
            instance: router,
            router: true,
            members: kept,
            held,
            holders,
        });
    }
    out.sort_by(|a, b| a.instance.cmp(b.instance));
    out
}

/// The VRID held by most of `held` (in precedence order; ties: the first), and its count.
fn majority_vrid(held: impl Iterator<Item = Option<u8>>) -> (Option<u8>, usize) {
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for v in held.flatten() {
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    // max_by_key keeps the last of equals: scan in reverse so the first wins.
    counts
        .iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map_or((None, 0), |&(v, n)| (Some(v), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_vrid_wins_and_ties_go_to_the_first() {
        assert_eq!(majority_vrid([None, None].into_iter()), (None, 0));
        assert_eq!(
            majority_vrid([Some(3), Some(5), Some(5)].into_iter()),
            (Some(5), 2)
        );
        assert_eq!(
            majority_vrid([Some(3), None, Some(5)].into_iter()),
            (Some(3), 1)
        );
    }

    #[test]
    fn differing_fields_names_each_setting_that_differs() {
        let a = VirtualIpSpec {
            addresses: vec!["10.0.0.1/32".into()],
            ..VirtualIpSpec::default()
        };
        let mut b = VirtualIpSpec {
            addresses: vec!["10.0.0.2/32".into()],
            virtual_router: Some("r".into()),
            ..VirtualIpSpec::default()
        };
        assert!(differing_fields(&a, &b).is_empty());
        b.advert_interval = "100ms".into();
        b.unicast = true;
        assert_eq!(differing_fields(&a, &b), ["advertInterval", "unicast"]);
    }
}
