//! The synchroniser: keeps the kernel's services in line with the desired ones through one
//! [`IpvsClient`]. It holds a view of the kernel for every service it looks at (ours, wanted
//! or in conflict), read in full by [`Syncer::refresh`] and advanced by every acknowledged
//! request, so that a change of configuration costs only the requests it needs; the periodic
//! refresh re-reads the kernel and repairs any drift.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube_vrrp_crds::{IpvsRealServerStatus, IpvsServiceStatus, IpvsStatus};

use super::client::{IpvsClient, IpvsError};
use super::desired::{DesiredService, Refused};
use super::model::{DestinationEntry, ServiceEntry, ServiceKey};
use super::owner::{Record, classify};
use super::packet::stats::Counters;
use super::plan::{DrainBook, KernelView, Observed, plan};
use super::request::Request;

/// How the synchroniser runs.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// The ownership record file.
    pub record: PathBuf,
    /// The longest a terminating real server keeps its connections before it is removed.
    pub drain_timeout: Duration,
}

/// What one synchronisation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Requests sent.
    pub requests: usize,
    /// Requests the kernel refused (or that got no answer).
    pub failed: usize,
}

/// Keeps this agent's IPVS services as desired.
#[derive(Debug)]
pub struct Syncer {
    client: IpvsClient,
    options: SyncOptions,
    record: Record,
    view: BTreeMap<ServiceKey, Observed>,
    /// Every service key the kernel had at the last refresh, changed by our own requests.
    present: BTreeSet<ServiceKey>,
    ours: BTreeSet<ServiceKey>,
    desired: BTreeMap<ServiceKey, DesiredService>,
    refused: Vec<Refused>,
    conflicts: BTreeSet<ServiceKey>,
    failures: BTreeMap<ServiceKey, String>,
    drains: DrainBook,
    /// A desired state was given: until then nothing is changed (an empty desired state
    /// before the configuration is read must not delete what a restarted agent adopts).
    configured: bool,
}

impl Syncer {
    /// Reads the record and the kernel. A record that cannot be read counts as empty (so
    /// nothing is deleted on its word), with a warning.
    pub async fn start(client: IpvsClient, options: SyncOptions) -> Result<Self, IpvsError> {
        let record = Record::load(&options.record).unwrap_or_else(|error| {
            tracing::warn!(path = %options.record.display(), %error, "cannot read the IPVS ownership record; starting from an empty one (nothing is deleted on its word)");
            Record::default()
        });
        let mut syncer = Self {
            client,
            options,
            record,
            view: BTreeMap::new(),
            present: BTreeSet::new(),
            ours: BTreeSet::new(),
            desired: BTreeMap::new(),
            refused: Vec::new(),
            conflicts: BTreeSet::new(),
            failures: BTreeMap::new(),
            drains: DrainBook::default(),
            configured: false,
        };
        syncer.refresh().await?;
        Ok(syncer)
    }

    /// The client (for reads of the caller's own).
    pub fn client(&self) -> &IpvsClient {
        &self.client
    }

    /// Whether something needs another look soon: a drain in progress. (Refused requests are
    /// retried at the normal resync pace, so a lasting refusal does not become a loop.)
    pub fn busy(&self) -> bool {
        !self.drains.is_empty()
    }

    fn save_record(&self) -> bool {
        match self.record.save(&self.options.record) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(path = %self.options.record.display(), %error, "cannot write the IPVS ownership record");
                false
            }
        }
    }

    /// Reads every service of the kernel and the destinations of those looked at, and sorts
    /// them by owner.
    pub async fn refresh(&mut self) -> Result<(), IpvsError> {
        let counted_at = Instant::now();
        let services = self.client.services().await?;
        let wanted: BTreeSet<ServiceKey> = self.desired.keys().copied().collect();
        let ownership = classify(&self.record, &services, &wanted);
        let before = self.record.clone();
        for key in ownership.disowned.iter().chain(&ownership.vanished) {
            self.record.services.remove(key);
        }
        for key in &ownership.disowned {
            tracing::warn!(service = %key, "a recorded IPVS service lost the kube-vrrp mark (replaced or edited outside kube-vrrp); it is no longer ours and is left alone");
        }
        for key in &ownership.adopted {
            tracing::info!(service = %key, "adopting an IPVS service that carries the kube-vrrp mark but was missing from the record");
            self.record.services.insert(*key);
        }
        if self.record != before {
            self.save_record();
        }
        self.ours = ownership.ours();
        self.present = services.iter().map(|s| s.service.key).collect();
        let mut view = BTreeMap::new();
        for entry in services {
            let key = entry.service.key;
            if !self.ours.contains(&key) {
                continue;
            }
            let destinations = self.client.destinations(key).await?;
            view.insert(
                key,
                Observed {
                    service: entry,
                    destinations,
                    counted_at: Some(counted_at),
                },
            );
        }
        self.view = view;
        let looked: BTreeSet<ServiceKey> = self.ours.union(&wanted).copied().collect();
        self.drains.retain_services(&looked);
        Ok(())
    }

    /// Takes a new desired state and sends what changed since the last one (and retries what
    /// failed, and moves drains on).
    pub async fn apply(
        &mut self,
        desired: Vec<DesiredService>,
        refused: Vec<Refused>,
        now: Instant,
    ) -> SyncReport {
        let desired: BTreeMap<ServiceKey, DesiredService> =
            desired.into_iter().map(|d| (d.service.key, d)).collect();
        let mut keys: BTreeSet<ServiceKey> = BTreeSet::new();
        for (key, d) in &desired {
            if self.desired.get(key) != Some(d) {
                keys.insert(*key);
            }
        }
        keys.extend(self.desired.keys().filter(|k| !desired.contains_key(k)));
        keys.extend(self.failures.keys());
        keys.extend(
            desired
                .iter()
                .filter(|(_, d)| d.destinations.iter().any(|x| x.draining))
                .map(|(k, _)| *k),
        );
        if !self.configured {
            // The first desired state: look at every service we own.
            keys.extend(self.ours.iter().copied());
            self.configured = true;
        }
        self.desired = desired;
        self.refused = refused;
        self.sync(&keys, now).await
    }

    /// Re-reads the kernel and brings every service looked at in line (only re-reads before
    /// the first desired state).
    pub async fn reconcile(&mut self, now: Instant) -> Result<SyncReport, IpvsError> {
        self.refresh().await?;
        if !self.configured {
            return Ok(SyncReport::default());
        }
        let keys: BTreeSet<ServiceKey> = self
            .ours
            .union(&self.desired.keys().copied().collect())
            .copied()
            .collect();
        Ok(self.sync(&keys, now).await)
    }

    async fn sync(&mut self, keys: &BTreeSet<ServiceKey>, now: Instant) -> SyncReport {
        let kernel = KernelView {
            present: &self.present,
            ours: &self.ours,
            observed: &self.view,
        };
        let mut planned = plan(
            keys,
            &self.desired,
            kernel,
            now,
            self.options.drain_timeout,
            &mut self.drains,
        );
        let previous_failures = std::mem::take(&mut self.failures);
        for (key, message) in &previous_failures {
            if !keys.contains(key) {
                self.failures.insert(*key, message.clone());
            }
        }
        for key in keys {
            self.conflicts.remove(key);
        }
        self.conflicts.extend(planned.conflicts.iter().copied());
        if !planned.adds.is_empty() {
            let before = self.record.clone();
            self.record.services.extend(planned.adds.iter().copied());
            if self.record != before && !self.save_record() {
                // Never add a service we could not record as ours.
                self.record = before;
                planned
                    .requests
                    .retain(|r| !planned.adds.contains(&request_key(r)));
                for key in &planned.adds {
                    self.failures
                        .insert(*key, "cannot write the IPVS ownership record".into());
                }
            }
        }
        if planned.requests.is_empty() {
            return SyncReport::default();
        }
        // Services first, then destinations, and only of services whose own request went
        // through: a service added by someone else in between (EEXIST) gets none of ours.
        let (services, destinations): (Vec<Request>, Vec<Request>) =
            planned.requests.iter().cloned().partition(|r| {
                matches!(
                    r,
                    Request::NewService(_) | Request::SetService(_) | Request::DelService(_)
                )
            });
        let mut report = SyncReport::default();
        let mut refused: BTreeSet<ServiceKey> = BTreeSet::new();
        for phase in [services, destinations] {
            let phase: Vec<Request> = phase
                .into_iter()
                .filter(|r| !refused.contains(&request_key(r)))
                .collect();
            if phase.is_empty() {
                continue;
            }
            report.requests += phase.len();
            let outcomes = self.client.apply(&phase).await;
            for (request, outcome) in phase.iter().zip(outcomes) {
                let key = request_key(request);
                match outcome {
                    Ok(()) => self.advance(request),
                    Err(error) => {
                        report.failed += 1;
                        refused.insert(key);
                        let message = explain(request, &error);
                        // Said once: a refusal repeated on every retry is logged at debug.
                        if previous_failures.get(&key) == Some(&message) {
                            tracing::debug!(service = %key, error = %message, "IPVS request refused again");
                        } else {
                            tracing::warn!(service = %key, error = %message, "IPVS request refused");
                        }
                        self.failures.entry(key).or_insert(message);
                    }
                }
            }
        }
        // Out of the record: services deleted, and services whose addition was refused (never
        // ours).
        let gone: Vec<ServiceKey> = planned
            .deletes
            .iter()
            .filter(|k| !self.view.contains_key(k))
            .chain(planned.adds.iter().filter(|k| !self.ours.contains(k)))
            .copied()
            .collect();
        if !gone.is_empty() {
            for key in gone {
                self.record.services.remove(&key);
            }
            self.save_record();
        }
        report
    }

    /// Advances the view by one acknowledged request.
    fn advance(&mut self, request: &Request) {
        match request {
            Request::NewService(s) => {
                self.ours.insert(s.key);
                self.present.insert(s.key);
                self.view.insert(
                    s.key,
                    Observed {
                        service: ServiceEntry {
                            service: s.clone(),
                            counters: Counters::default(),
                        },
                        destinations: Vec::new(),
                        counted_at: None,
                    },
                );
            }
            Request::SetService(s) => {
                if let Some(o) = self.view.get_mut(&s.key) {
                    o.service.service.settings = s.settings.clone();
                }
            }
            Request::DelService(key) => {
                self.view.remove(key);
                self.ours.remove(key);
                self.present.remove(key);
            }
            Request::NewDest(key, d) => {
                if let Some(o) = self.view.get_mut(key) {
                    o.destinations.push(DestinationEntry {
                        destination: *d,
                        active_connections: 0,
                        inactive_connections: 0,
                        persistent_connections: 0,
                        counters: Counters::default(),
                    });
                }
            }
            Request::SetDest(key, d) => {
                if let Some(o) = self.view.get_mut(key)
                    && let Some(e) = o.destinations.iter_mut().find(|e| {
                        e.destination.address == d.address && e.destination.port == d.port
                    })
                {
                    e.destination.settings = d.settings;
                }
            }
            Request::DelDest {
                service,
                address,
                port,
            } => {
                if let Some(o) = self.view.get_mut(service) {
                    o.destinations.retain(|e| {
                        !(e.destination.address == *address && e.destination.port == *port)
                    });
                }
            }
            _ => {}
        }
    }

    /// What this node reports about IPVS.
    pub fn status(&self) -> IpvsStatus {
        let mut virtual_services = Vec::new();
        for (key, wanted) in &self.desired {
            let ServiceKey::Address { address, port, .. } = *key else {
                continue;
            };
            let observed = self.view.get(key).filter(|_| self.ours.contains(key));
            let draining: HashSet<(IpAddr, u16)> = wanted
                .destinations
                .iter()
                .filter(|w| w.draining)
                .map(|w| (w.destination.address, w.destination.port))
                .collect();
            let real_servers: Vec<IpvsRealServerStatus> = observed
                .map(|o| {
                    o.destinations
                        .iter()
                        .map(|d| IpvsRealServerStatus {
                            address: d.destination.address.to_string(),
                            port: d.destination.port,
                            weight: d.destination.settings.weight,
                            active_connections: d.active_connections,
                            inactive_connections: d.inactive_connections,
                            draining: draining
                                .contains(&(d.destination.address, d.destination.port)),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let message = if self.conflicts.contains(key) {
                Some(format!(
                    "{key} is in the kernel but was not created by kube-vrrp (kube-proxy or an administrator); left untouched"
                ))
            } else if let Some(failure) = self.failures.get(key) {
                Some(failure.clone())
            } else if observed.is_none() {
                Some(format!("{key} is not programmed yet"))
            } else {
                None
            };
            let complete = observed.is_some_and(|o| {
                let present: HashMap<(IpAddr, u16), &DestinationEntry> = o
                    .destinations
                    .iter()
                    .map(|d| ((d.destination.address, d.destination.port), d))
                    .collect();
                o.service.service.settings == wanted.service.settings
                    && wanted.destinations.iter().filter(|w| !w.draining).all(|w| {
                        present
                            .get(&(w.destination.address, w.destination.port))
                            .is_some_and(|d| {
                                d.destination.settings.normalized() == w.destination.settings
                            })
                    })
            });
            virtual_services.push(IpvsServiceStatus {
                virtual_server: wanted.virtual_server.clone(),
                address: address.to_string(),
                port,
                protocol: crd_protocol(key),
                programmed: complete && message.is_none(),
                message,
                real_servers,
            });
        }
        for r in &self.refused {
            virtual_services.push(IpvsServiceStatus {
                virtual_server: r.virtual_server.clone(),
                address: r.address.clone(),
                port: r.port,
                protocol: r.protocol,
                programmed: false,
                message: Some(r.message.clone()),
                real_servers: Vec::new(),
            });
        }
        let owned: Vec<&Observed> = self.ours.iter().filter_map(|k| self.view.get(k)).collect();
        IpvsStatus {
            available: true,
            services: count(owned.len()),
            real_servers: count(owned.iter().map(|o| o.destinations.len()).sum()),
            message: None,
            virtual_services,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn crd_protocol(key: &ServiceKey) -> kube_vrrp_crds::Protocol {
    use super::packet::Protocol;
    match key {
        ServiceKey::Address {
            protocol: Protocol::Udp,
            ..
        } => kube_vrrp_crds::Protocol::Udp,
        ServiceKey::Address {
            protocol: Protocol::Sctp,
            ..
        } => kube_vrrp_crds::Protocol::Sctp,
        _ => kube_vrrp_crds::Protocol::Tcp,
    }
}

/// The service a request is about.
pub fn request_key(request: &Request) -> ServiceKey {
    match request {
        Request::NewService(s) | Request::SetService(s) => s.key,
        Request::DelService(k)
        | Request::GetService(k)
        | Request::DumpDestinations(k)
        | Request::NewDest(k, _)
        | Request::SetDest(k, _) => *k,
        Request::DelDest { service, .. } => *service,
        Request::GetInfo | Request::GetConfig | Request::SetConfig(_) | Request::DumpServices => {
            ServiceKey::FirewallMark {
                family: super::packet::AddressFamily::Inet,
                mark: 0,
            }
        }
    }
}

/// A refusal in words a person can act on.
fn explain(request: &Request, error: &IpvsError) -> String {
    match (request, error.errno()) {
        (Request::NewService(s) | Request::SetService(s), Some(nix::libc::ENOENT)) => format!(
            "{request}: the kernel has no scheduler {} (module {} not loaded)",
            s.settings.scheduler.name(),
            s.settings.scheduler.module()
        ),
        _ => error.to_string(),
    }
}
