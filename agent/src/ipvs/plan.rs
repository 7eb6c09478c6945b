//! Desired services against the kernel's view of them → the smallest list of requests. Pure:
//! the time is passed in, and draining destinations keep their start in a [`DrainBook`].
//!
//! Per service:
//! - absent → add it, then its destinations (draining ones are never added);
//! - settings differ (scheduler, flags, persistence) → edit it in place: its connections and
//!   destinations stay;
//! - a destination absent → add; settings differ → edit; in the kernel but no longer wanted →
//!   delete; draining → weight 0 first, deleted once its connections ended (TCP/SCTP: no
//!   active one; UDP: none at all) or the drain timed out.
//!
//! A wanted service that the kernel has but that is not ours is a conflict, left untouched
//! (and so are its destinations); an owned service no longer wanted is deleted (its
//! destinations go with it).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::desired::DesiredService;
use super::model::{DestinationEntry, ServiceEntry, ServiceKey};
use super::request::Request;

/// What the kernel has of one service: the service and its destinations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub service: ServiceEntry,
    pub destinations: Vec<DestinationEntry>,
    /// When the destinations' connection counts were read from the kernel (a read that began
    /// then); `None` for a service this agent created and has not read back since.
    pub counted_at: Option<Instant>,
}

/// When each draining destination began draining.
#[derive(Clone, Debug, Default)]
pub struct DrainBook {
    started: HashMap<(ServiceKey, IpAddr, u16), Instant>,
}

impl DrainBook {
    fn start(&mut self, key: (ServiceKey, IpAddr, u16), now: Instant) -> Instant {
        *self.started.entry(key).or_insert(now)
    }

    fn forget(&mut self, key: &(ServiceKey, IpAddr, u16)) {
        self.started.remove(key);
    }

    /// Whether any destination is draining (the caller then looks again soon).
    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
    }

    /// Forgets drains of services no longer looked at.
    pub fn retain_services(&mut self, keys: &BTreeSet<ServiceKey>) {
        self.started
            .retain(|(service, ..), _| keys.contains(service));
    }
}

/// The requests that bring one service from `observed` (absent: `None`) to `desired`.
pub fn diff_service(
    desired: &DesiredService,
    observed: Option<&Observed>,
    now: Instant,
    drain_timeout: Duration,
    drains: &mut DrainBook,
) -> Vec<Request> {
    let key = desired.service.key;
    let mut out = Vec::new();
    let Some(observed) = observed else {
        out.push(Request::NewService(desired.service.clone()));
        for d in desired.destinations.iter().filter(|d| !d.draining) {
            out.push(Request::NewDest(key, d.destination));
        }
        return out;
    };
    if observed.service.service.settings != desired.service.settings {
        out.push(Request::SetService(desired.service.clone()));
    }
    let present: BTreeMap<(IpAddr, u16), &DestinationEntry> = observed
        .destinations
        .iter()
        .map(|d| ((d.destination.address, d.destination.port), d))
        .collect();
    for wanted in &desired.destinations {
        let d = wanted.destination;
        let id = (key, d.address, d.port);
        match (present.get(&(d.address, d.port)), wanted.draining) {
            (None, true) => drains.forget(&id),
            (None, false) => out.push(Request::NewDest(key, d)),
            (Some(have), false) => {
                drains.forget(&id);
                if have.destination.settings.normalized() != d.settings {
                    out.push(Request::SetDest(key, d));
                }
            }
            (Some(have), true) => {
                let since = drains.start(id, now);
                if have.destination.settings.normalized() != d.settings {
                    // First step of a drain (or a settings change while draining): weight 0.
                    out.push(Request::SetDest(key, d));
                } else if (counted_since(observed, since) && connections_ended(key, have))
                    || now.saturating_duration_since(since) >= drain_timeout
                {
                    drains.forget(&id);
                    out.push(Request::DelDest {
                        service: key,
                        address: d.address,
                        port: d.port,
                    });
                }
            }
        }
    }
    let wanted: HashSet<(IpAddr, u16)> = desired
        .destinations
        .iter()
        .map(|w| (w.destination.address, w.destination.port))
        .collect();
    for (address, port) in present.keys() {
        if !wanted.contains(&(*address, *port)) {
            out.push(Request::DelDest {
                service: key,
                address: *address,
                port: *port,
            });
        }
    }
    out
}

/// Whether `observed`'s connection counts were read after `since` (a drain's start): counts
/// read before it may predate the connections the drain waits for.
fn counted_since(observed: &Observed, since: Instant) -> bool {
    observed.counted_at.is_some_and(|at| at >= since)
}

/// Whether a draining destination has no connection left: for TCP and SCTP, none active
/// (inactive ones are closing, e.g. in TIME_WAIT); for UDP, whose flows IPVS counts as
/// inactive, none at all.
fn connections_ended(key: ServiceKey, have: &DestinationEntry) -> bool {
    match key {
        ServiceKey::Address {
            protocol: super::packet::Protocol::Udp,
            ..
        } => have.active_connections == 0 && have.inactive_connections == 0,
        _ => have.active_connections == 0,
    }
}

/// The plan for a set of services.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<Request>,
    /// Wanted services that the kernel has but that are not ours, left untouched.
    pub conflicts: BTreeSet<ServiceKey>,
    /// Services to add to the record before the requests are sent.
    pub adds: BTreeSet<ServiceKey>,
    /// Services to take out of the record once their deletion went through.
    pub deletes: BTreeSet<ServiceKey>,
}

/// What the kernel has, as far as planning needs it.
#[derive(Clone, Copy, Debug)]
pub struct KernelView<'a> {
    /// Every service key in the kernel, whoever owns it.
    pub present: &'a BTreeSet<ServiceKey>,
    /// The services that are ours.
    pub ours: &'a BTreeSet<ServiceKey>,
    /// What the kernel has of ours (service and destinations).
    pub observed: &'a BTreeMap<ServiceKey, Observed>,
}

/// Plans `keys` (the services to look at): `desired` by key against the kernel's `view`.
pub fn plan(
    keys: &BTreeSet<ServiceKey>,
    desired: &BTreeMap<ServiceKey, DesiredService>,
    view: KernelView<'_>,
    now: Instant,
    drain_timeout: Duration,
    drains: &mut DrainBook,
) -> Plan {
    let mut out = Plan::default();
    for key in keys {
        let owned = view.ours.contains(key);
        if view.present.contains(key) && !owned {
            if desired.contains_key(key) {
                out.conflicts.insert(*key);
            }
            continue;
        }
        let observed = view.observed.get(key).filter(|_| owned);
        match desired.get(key) {
            Some(wanted) => {
                if observed.is_none() {
                    out.adds.insert(*key);
                }
                out.requests
                    .extend(diff_service(wanted, observed, now, drain_timeout, drains));
            }
            None if owned && observed.is_some() => {
                out.requests.push(Request::DelService(*key));
                out.deletes.insert(*key);
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::desired::DesiredDestination;
    use crate::ipvs::model::{Destination, DestinationSettings, Service, ServiceSettings, Tunnel};
    use crate::ipvs::owner::OWNER_MARK;
    use crate::ipvs::packet::stats::Counters;
    use crate::ipvs::packet::{ForwardingMethod, Protocol, Scheduler};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: "192.0.2.1".parse().unwrap(),
            port,
        }
    }

    fn settings(scheduler: Scheduler) -> ServiceSettings {
        ServiceSettings {
            scheduler,
            flags: OWNER_MARK,
            timeout: 0,
            netmask: u32::MAX,
            persistence_engine: None,
        }
    }

    fn dest(last: u8, weight: u32) -> Destination {
        Destination {
            address: format!("198.51.100.{last}").parse().unwrap(),
            port: 8080,
            settings: DestinationSettings {
                forwarding: ForwardingMethod::Masq,
                weight,
                upper_threshold: 0,
                lower_threshold: 0,
                tunnel: Tunnel::default(),
            },
        }
    }

    fn desired(port: u16, scheduler: Scheduler, dests: &[(u8, u32, bool)]) -> DesiredService {
        DesiredService {
            virtual_server: "web".into(),
            service: Service {
                key: key(port),
                settings: settings(scheduler),
            },
            destinations: dests
                .iter()
                .map(|&(last, weight, draining)| DesiredDestination {
                    destination: dest(last, weight),
                    draining,
                })
                .collect(),
        }
    }

    fn observed(port: u16, scheduler: Scheduler, dests: &[(u8, u32, u32)]) -> Observed {
        Observed {
            service: ServiceEntry {
                service: Service {
                    key: key(port),
                    settings: settings(scheduler),
                },
                counters: Counters::default(),
            },
            destinations: dests
                .iter()
                .map(|&(last, weight, connections)| DestinationEntry {
                    destination: dest(last, weight),
                    active_connections: connections,
                    inactive_connections: 0,
                    persistent_connections: 0,
                    counters: Counters::default(),
                })
                .collect(),
            counted_at: Some(at(0)),
        }
    }

    fn at(s: u64) -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now) + Duration::from_secs(s)
    }

    const DRAIN: Duration = Duration::from_secs(30);

    #[test]
    fn a_new_service_is_added_with_its_destinations_but_not_draining_ones() {
        let want = desired(80, Scheduler::RoundRobin, &[(1, 1, false), (2, 0, true)]);
        let out = diff_service(&want, None, at(0), DRAIN, &mut DrainBook::default());
        assert_eq!(
            out,
            [
                Request::NewService(want.service.clone()),
                Request::NewDest(key(80), dest(1, 1))
            ]
        );
    }

    #[test]
    fn an_unchanged_service_needs_no_request() {
        let want = desired(80, Scheduler::RoundRobin, &[(1, 1, false)]);
        let have = observed(80, Scheduler::RoundRobin, &[(1, 1, 5)]);
        assert!(
            diff_service(&want, Some(&have), at(0), DRAIN, &mut DrainBook::default()).is_empty()
        );
    }

    #[test]
    fn a_weight_a_scheduler_and_a_real_server_swap_take_one_request_each() {
        let want = desired(
            80,
            Scheduler::WeightedRoundRobin,
            &[(1, 5, false), (3, 1, false)],
        );
        let have = observed(80, Scheduler::RoundRobin, &[(1, 1, 0), (2, 1, 0)]);
        let out = diff_service(&want, Some(&have), at(0), DRAIN, &mut DrainBook::default());
        assert_eq!(
            out,
            [
                Request::SetService(want.service.clone()),
                Request::SetDest(key(80), dest(1, 5)),
                Request::NewDest(key(80), dest(3, 1)),
                Request::DelDest {
                    service: key(80),
                    address: "198.51.100.2".parse().unwrap(),
                    port: 8080
                },
            ]
        );
    }

    #[test]
    fn a_draining_destination_goes_to_weight_zero_then_leaves_when_its_connections_end() {
        let mut drains = DrainBook::default();
        let want = desired(80, Scheduler::RoundRobin, &[(1, 1, false), (2, 0, true)]);
        let first = diff_service(
            &want,
            Some(&observed(
                80,
                Scheduler::RoundRobin,
                &[(1, 1, 0), (2, 1, 4)],
            )),
            at(0),
            DRAIN,
            &mut drains,
        );
        assert_eq!(first, [Request::SetDest(key(80), dest(2, 0))]);
        let busy = diff_service(
            &want,
            Some(&observed(
                80,
                Scheduler::RoundRobin,
                &[(1, 1, 0), (2, 0, 4)],
            )),
            at(10),
            DRAIN,
            &mut drains,
        );
        assert!(busy.is_empty(), "still has connections: {busy:?}");
        assert!(!drains.is_empty());
        let idle = diff_service(
            &want,
            Some(&observed(
                80,
                Scheduler::RoundRobin,
                &[(1, 1, 0), (2, 0, 0)],
            )),
            at(11),
            DRAIN,
            &mut drains,
        );
        assert_eq!(
            idle,
            [Request::DelDest {
                service: key(80),
                address: "198.51.100.2".parse().unwrap(),
                port: 8080
            }]
        );
        assert!(drains.is_empty());
    }

    #[test]
    fn a_drain_ends_only_on_connection_counts_read_after_it_began() {
        let mut drains = DrainBook::default();
        let want = desired(80, Scheduler::RoundRobin, &[(1, 1, false), (2, 0, true)]);
        let counted = |at_s: Option<u64>, weight: u32| Observed {
            counted_at: at_s.map(at),
            ..observed(80, Scheduler::RoundRobin, &[(1, 1, 0), (2, weight, 0)])
        };
        // Counts read at 0 show no connection to 2 (one may have opened since); the drain
        // starts at 5.
        assert_eq!(
            diff_service(&want, Some(&counted(Some(0), 1)), at(5), DRAIN, &mut drains),
            [Request::SetDest(key(80), dest(2, 0))]
        );
        // Weight 0 acknowledged, the counts still those read at 0: the drain goes on.
        let stale = diff_service(&want, Some(&counted(Some(0), 0)), at(5), DRAIN, &mut drains);
        assert!(
            stale.is_empty(),
            "ended on counts from before it began: {stale:?}"
        );
        // Counts never read back (a service this agent created) end no drain either.
        let unread = diff_service(&want, Some(&counted(None, 0)), at(6), DRAIN, &mut drains);
        assert!(unread.is_empty(), "ended without counts: {unread:?}");
        // Counts read at 6, after the start, show none left: it leaves.
        assert_eq!(
            diff_service(&want, Some(&counted(Some(6), 0)), at(6), DRAIN, &mut drains),
            [Request::DelDest {
                service: key(80),
                address: "198.51.100.2".parse().unwrap(),
                port: 8080
            }]
        );
        assert!(drains.is_empty());
    }

    #[test]
    fn a_drain_that_outlives_its_timeout_is_cut() {
        let mut drains = DrainBook::default();
        let want = desired(80, Scheduler::RoundRobin, &[(2, 0, true)]);
        let have = observed(80, Scheduler::RoundRobin, &[(2, 0, 4)]);
        assert!(diff_service(&want, Some(&have), at(0), DRAIN, &mut drains).is_empty());
        assert!(diff_service(&want, Some(&have), at(29), DRAIN, &mut drains).is_empty());
        assert_eq!(
            diff_service(&want, Some(&have), at(30), DRAIN, &mut drains).len(),
            1
        );
    }

    #[test]
    fn a_service_that_is_not_ours_is_a_conflict_and_an_owned_unwanted_one_is_deleted() {
        let keys: BTreeSet<ServiceKey> = [key(80), key(81), key(82)].into();
        let desired_map: BTreeMap<ServiceKey, DesiredService> = [(
            key(80),
            desired(80, Scheduler::RoundRobin, &[(1, 1, false)]),
        )]
        .into();
        let view: BTreeMap<ServiceKey, Observed> = [
            (
                key(80),
                observed(80, Scheduler::WeightedLeastConnection, &[]),
            ),
            (key(81), observed(81, Scheduler::RoundRobin, &[])),
            (key(82), observed(82, Scheduler::RoundRobin, &[])),
        ]
        .into();
        let ours: BTreeSet<ServiceKey> = [key(81)].into();
        let present: BTreeSet<ServiceKey> = view.keys().copied().collect();
        let kernel = KernelView {
            present: &present,
            ours: &ours,
            observed: &view,
        };
        let p = plan(
            &keys,
            &desired_map,
            kernel,
            at(0),
            DRAIN,
            &mut DrainBook::default(),
        );
        assert_eq!(p.conflicts, [key(80)].into(), "kube-proxy's or an admin's");
        assert_eq!(p.requests, [Request::DelService(key(81))]);
        assert_eq!(p.deletes, [key(81)].into());
        assert!(
            p.adds.is_empty(),
            "82 is neither ours nor wanted: untouched"
        );
    }
}
