//! The allocation itself (see the module above for the rules): read back what Services hold,
//! keep what is still valid, give the others addresses, and say what the VirtualIPs and
//! pools should be.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube_vrrp_crds::address_block::{from_ordinal, ordinal};
use kube_vrrp_crds::validation::parse_cidr;
use kube_vrrp_crds::{ServiceRef, Track, TrackEndpoints, VirtualIp, VirtualIpSpec};
use kube_vrrp_plan::{Family, MasterForecast, NodePolicy};

use super::naming::{shard_name, shard_number, virtual_ip_name};
use super::pools::{PoolView, evaluate};
use super::request::{Request, is_ours, read, service_ref};
use super::spread::{ROUTER_NUMBERS, Routers};
use super::{
    Assigned, DesiredVirtualIp, Failure, FailureReason, LOAD_BALANCER_CLASS, LbConfig, LbInput,
    LbPlan, POOL_ANNOTATION, PoolReport, Release, SERVICES_ANNOTATION, SHARING_ANNOTATION,
    ServiceOutcome, is_managed, service_key,
};
use kube_vrrp_crds::validation::MAX_ADDRESSES;

/// Most pools named in a "no pool serves it" message.
const MAX_POOLS_EXPLAINED: usize = 5;

/// An address in use by Services.
#[derive(Debug)]
struct Slot {
    pool: String,
    family: Family,
    /// Owners: indices into the requests, in the order they joined.
    owners: Vec<usize>,
    /// Owners whose Service cannot be read now: their allocation is frozen as it was.
    frozen: Vec<ServiceRef>,
    /// The VirtualIP that carried it, if any.
    existing: Option<usize>,
    new: BTreeSet<usize>,
}

/// A managed VirtualIP read back.
struct Existing<'a> {
    vip: &'a VirtualIp,
    address: IpAddr,
    owners: Vec<ServiceRef>,
    pool: Option<String>,
}

/// Everything a pass of allocation works on.
struct Book<'a> {
    requests: Vec<Request>,
    index: HashMap<ServiceRef, usize>,
    pools: Vec<PoolView<'a>>,
    namespaces: HashMap<&'a str, std::collections::BTreeMap<String, String>>,
    node_addresses: BTreeMap<IpAddr, String>,
    /// Addresses of VirtualIPs the operator does not manage, and their names.
    foreign: BTreeMap<IpAddr, String>,
    foreign_names: HashSet<String>,
    held: HashSet<IpAddr>,
    slots: BTreeMap<IpAddr, Slot>,
    /// Per request: its address of each family.
    have: Vec<BTreeMap<Family, IpAddr>>,
    failures: Vec<Vec<Failure>>,
    releases: Vec<Release>,
    /// Per (pool index, span index): nothing below this ordinal is free (taken only grows).
    cursors: HashMap<(usize, usize), u128>,
}

fn empty_labels() -> &'static std::collections::BTreeMap<String, String> {
    static EMPTY: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
        std::sync::OnceLock::new();
    EMPTY.get_or_init(Default::default)
}

fn parse_owners(vip: &VirtualIp) -> Vec<ServiceRef> {
    vip.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SERVICES_ANNOTATION))
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|s| {
            let (namespace, name) = s.trim().split_once('/')?;
            (!namespace.is_empty() && !name.is_empty()).then(|| ServiceRef {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        })
        .collect()
}

fn family_word(f: Family) -> &'static str {
    f.as_str()
}

/// Why a Service we no longer serve lost its address.
fn not_ours_why(service: &Service) -> String {
    let spec = service.spec.as_ref();
    if service.metadata.deletion_timestamp.is_some() {
        "the Service is being deleted".to_owned()
    } else if spec.and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        "the Service is no longer of type LoadBalancer".to_owned()
    } else {
        match spec.and_then(|s| s.load_balancer_class.as_deref()) {
            Some(class) => {
                format!("the Service's loadBalancerClass is {class}, not {LOAD_BALANCER_CLASS}")
            }
            None => format!(
                "the Service names no loadBalancerClass, and kube-vrrp is not the default \
                 load balancer (it serves class {LOAD_BALANCER_CLASS})"
            ),
        }
    }
}

impl<'a> Book<'a> {
    fn namespace_labels(&self, r: &Request) -> &std::collections::BTreeMap<String, String> {
        self.namespaces
            .get(r.service.namespace.as_str())
            .unwrap_or_else(|| empty_labels())
    }

    /// Whether `ip` is free for a new allocation.
    fn is_free(&self, ip: IpAddr) -> bool {
        !self.slots.contains_key(&ip)
            && !self.foreign.contains_key(&ip)
            && !self.node_addresses.contains_key(&ip)
            && !self.held.contains(&ip)
            && !self.foreign_names.contains(&virtual_ip_name(ip))
    }

    /// Whether owner `r` can join the owners of `slot`: every one shares its sharing key
    /// and no ports collide. `Err` says why not.
    fn compatible(&self, r: usize, slot: &Slot, ip: IpAddr) -> Result<(), Failure> {
        let req = &self.requests[r];
        let others: Vec<&Request> = slot.owners.iter().map(|&o| &self.requests[o]).collect();
        if others.is_empty() && slot.frozen.is_empty() {
            return Ok(());
        }
        let family = Some(Family::of(ip));
        let names = |rs: &[&Request]| {
            rs.iter()
                .map(|o| service_key(&o.service))
                .chain(slot.frozen.iter().map(service_key))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !slot.frozen.is_empty()
            || req.sharing_key.is_none()
            || others.iter().any(|o| o.sharing_key != req.sharing_key)
        {
            return Err(Failure {
                family,
                reason: FailureReason::AddressInUse,
                message: format!(
                    "{ip} is taken by Service {}; to share it, give the Services the \
                     annotation {SHARING_ANNOTATION} with one value, and ports that differ",
                    names(&others)
                ),
            });
        }
        let collide: Vec<String> = others
            .iter()
            .flat_map(|o| o.ports.intersection(&req.ports))
            .map(|(proto, port)| format!("{proto}/{port}"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if collide.is_empty() {
            Ok(())
        } else {
            Err(Failure {
                family,
                reason: FailureReason::PortsCollide,
                message: format!(
                    "{ip} is shared with Service {} under key {:?}, and ports {} collide; \
                     change the ports or the sharing key",
                    names(&others),
                    req.sharing_key.as_deref().unwrap_or_default(),
                    collide.join(", ")
                ),
            })
        }
    }

    /// The index of a pool that holds `ip` and serves request `r` (`open`: that also hands
    /// out new addresses).
    fn pool_serving(&self, r: usize, ip: IpAddr, open: bool) -> Option<usize> {
        let req = &self.requests[r];
        let ns = self.namespace_labels(req);
        self.pools
            .iter()
            .position(|p| p.holds() && (!open || p.open()) && p.contains(ip) && p.serves(req, ns))
    }

    fn join(&mut self, r: usize, ip: IpAddr, pool: usize, new: bool) {
        let family = Family::of(ip);
        let pool_name = self.pools[pool].name.to_owned();
        let slot = self.slots.entry(ip).or_insert_with(|| Slot {
            pool: pool_name,
            family,
            owners: Vec::new(),
            frozen: Vec::new(),
            existing: None,
            new: BTreeSet::new(),
        });
        slot.owners.push(r);
        if new {
            slot.new.insert(r);
        }
        self.have[r].insert(family, ip);
    }

    fn fail(&mut self, r: usize, failure: Failure) {
        self.failures[r].push(failure);
    }

    /// Step 1: what the VirtualIPs say each Service holds, kept where still valid.
    fn read_back(&mut self, existing: &[Existing<'a>], services: &HashMap<ServiceRef, &Service>) {
        // Owners whose Service cannot be read were frozen before, and are not listed here.
        // (address, owner) pairs of Services that can be read, the older Service first.
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        for (e, ex) in existing.iter().enumerate() {
            for owner in &ex.owners {
                match self.index.get(owner) {
                    Some(&r) => pairs.push((e, r)),
                    None => self.releases.push(Release {
                        service: owner.clone(),
                        address: ex.address,
                        why: services
                            .get(owner)
                            .map_or_else(|| "the Service is gone".to_owned(), |s| not_ours_why(s)),
                    }),
                }
            }
        }
        pairs.sort_by(|a, b| {
            (existing[a.0].address, self.requests[a.1].seniority())
                .cmp(&(existing[b.0].address, self.requests[b.1].seniority()))
        });
        for (e, r) in pairs {
            let ip = existing[e].address;
            match self.keep(r, ip, existing[e].pool.as_deref()) {
                Ok(pool) => {
                    self.join(r, ip, pool, false);
                    if let Some(slot) = self.slots.get_mut(&ip) {
                        slot.existing = Some(e);
                    }
                }
                Err(why) => self.releases.push(Release {
                    service: self.requests[r].service.clone(),
                    address: ip,
                    why,
                }),
            }
        }
    }

    /// Keeps the allocation of a Service whose request cannot be read as it is (bad input
    /// never takes an address away).
    fn freeze(&mut self, ex: &Existing<'a>, e: usize, owner: ServiceRef) {
        let family = Family::of(ex.address);
        let pool = ex
            .pool
            .clone()
            .or_else(|| {
                self.pools
                    .iter()
                    .find(|p| p.contains(ex.address))
                    .map(|p| p.name.to_owned())
            })
            .unwrap_or_default();
        let slot = self.slots.entry(ex.address).or_insert_with(|| Slot {
            pool,
            family,
            owners: Vec::new(),
            frozen: Vec::new(),
            existing: Some(e),
            new: BTreeSet::new(),
        });
        slot.frozen.push(owner);
        slot.existing = Some(e);
    }

    /// Whether request `r` keeps `ip`: the pool that serves it, or why not.
    fn keep(&self, r: usize, ip: IpAddr, recorded: Option<&str>) -> Result<usize, String> {
        let req = &self.requests[r];
        let family = Family::of(ip);
        if !req.families.contains(&family) {
            return Err(format!(
                "the Service no longer has the {} family",
                family_word(family)
            ));
        }
        if let Some(&other) = self.have[r].get(&family) {
            return Err(format!(
                "the Service already has {other}, and gets one address per family"
            ));
        }
        if let Some(&asked) = req.requested.get(&family)
            && asked != ip
        {
            return Err(format!("the Service now asks for {asked}"));
        }
        // The pool the VirtualIP names, while it serves the Service (two overlapping pools
        // may both hold the address), else the first that does.
        let ns = self.namespace_labels(req);
        let serving = |p: &PoolView<'_>| p.holds() && p.contains(ip) && p.serves(req, ns);
        let pool = recorded
            .and_then(|name| self.pools.iter().position(|p| p.name == name && serving(p)))
            .or_else(|| self.pools.iter().position(serving));
        let Some(pool) = pool else {
            return Err(
                match self.pools.iter().find(|p| p.holds() && p.contains(ip)) {
                    Some(p) => format!(
                        "VirtualIPPool '{}' no longer serves the Service (its selectors, or the \
                     Service's {POOL_ANNOTATION} annotation)",
                        p.name
                    ),
                    None => format!("{ip} is no longer in any VirtualIPPool"),
                },
            );
        };
        if let Some(slot) = self.slots.get(&ip) {
            self.compatible(r, slot, ip).map_err(|f| f.message)?;
        }
        Ok(pool)
    }

    /// Step 2: a new address of `family` for request `r`.
    fn assign(&mut self, r: usize, family: Family) {
        if let Some(&ip) = self.requests[r].requested.get(&family) {
            match self.requested(r, ip) {
                Ok(pool) => self.join(r, ip, pool, true),
                Err(f) => self.fail(r, f),
            }
            return;
        }
        let req = &self.requests[r];
        let ns = self.namespace_labels(req);
        let allowed: Vec<usize> = (0..self.pools.len())
            .filter(|&p| {
                let pool = &self.pools[p];
                pool.open()
                    && pool.serves(req, ns)
                    && pool.assigns_to(req)
                    && pool.spans_of(family).next().is_some()
            })
            .collect();
        if allowed.is_empty() {
            let failure = self.no_pool(r, family);
            self.fail(r, failure);
            return;
        }
        // Share an address under the Service's key.
        if self.requests[r].sharing_key.is_some() {
            let shared = self
                .slots
                .iter()
                .filter(|(ip, slot)| {
                    slot.family == family
                        && allowed.iter().any(|&p| self.pools[p].contains(**ip))
                        && self.compatible(r, slot, **ip).is_ok()
                })
                .map(|(ip, _)| *ip)
                .next();
            if let Some(ip) = shared {
                let pool = allowed
                    .iter()
                    .copied()
                    .find(|&p| self.pools[p].contains(ip))
                    .unwrap_or(allowed[0]);
                self.join(r, ip, pool, true);
                return;
            }
        }
        // The address the Service shows now, if it is free.
        let preferred = self.requests[r]
            .ingress
            .iter()
            .copied()
            .filter(|ip| Family::of(*ip) == family && self.is_free(*ip))
            .find_map(|ip| {
                allowed
                    .iter()
                    .copied()
                    .find(|&p| self.pools[p].contains(ip))
                    .map(|p| (ip, p))
            });
        if let Some((ip, pool)) = preferred {
            self.join(r, ip, pool, true);
            return;
        }
        for &p in &allowed {
            if let Some(ip) = self.lowest_free(p, family) {
                self.join(r, ip, p, true);
                return;
            }
        }
        let names: Vec<&str> = allowed.iter().map(|&p| self.pools[p].name).collect();
        self.fail(
            r,
            Failure {
                family: Some(family),
                reason: FailureReason::PoolExhausted,
                message: format!(
                    "no free {} address in VirtualIPPool {}; retried when an address is \
                     released or the pool grows",
                    family_word(family),
                    names
                        .iter()
                        .map(|n| format!("'{n}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        );
    }

    /// The lowest free address of `family` in pool `p`.
    fn lowest_free(&mut self, p: usize, family: Family) -> Option<IpAddr> {
        let ipv4 = family == Family::Ipv4;
        let spans: Vec<(usize, kube_vrrp_crds::Span)> = self.pools[p]
            .spans
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, s)| s.is_ipv4() == ipv4)
            .collect();
        for (i, span) in spans {
            let start = ordinal(span.first).max(self.cursors.get(&(p, i)).copied().unwrap_or(0));
            let end = ordinal(span.last);
            let mut n = start;
            while n <= end {
                if let Some(ip) = from_ordinal(ipv4, n)
                    && self.is_free(ip)
                {
                    self.cursors.insert((p, i), n);
                    return Some(ip);
                }
                if n == u128::MAX {
                    break;
                }
                n += 1;
            }
            self.cursors.insert((p, i), end.saturating_add(1));
        }
        None
    }

    /// Whether request `r` gets the address it asks for: the pool, or why not.
    fn requested(&self, r: usize, ip: IpAddr) -> Result<usize, Failure> {
        let family = Some(Family::of(ip));
        let failure = |reason, message| Failure {
            family,
            reason,
            message,
        };
        let req = &self.requests[r];
        // Only a pool that hands out addresses gives one, even an address already shared.
        let Some(pool) = self.pool_serving(r, ip, true) else {
            if let Some(p) = self
                .pools
                .iter()
                .find(|p| p.holds() && p.contains(ip) && p.serves(req, self.namespace_labels(req)))
            {
                let problem = p.problem.as_ref().map(super::PoolProblem::message);
                return Err(failure(
                    FailureReason::NoPool,
                    format!(
                        "VirtualIPPool '{}' hands out no new address: {}",
                        p.name,
                        problem.unwrap_or_default()
                    ),
                ));
            }
            let message = match self.pools.iter().find(|p| p.holds() && p.contains(ip)) {
                Some(p) => format!(
                    "{ip} is in VirtualIPPool '{}', which does not serve Service {} (its \
                     namespaceSelector or serviceSelector, or the Service's {POOL_ANNOTATION} \
                     annotation)",
                    p.name,
                    service_key(&req.service)
                ),
                None => format!(
                    "{ip} is in no VirtualIPPool; ask for an address of a pool, or add one \
                     that holds it"
                ),
            };
            return Err(failure(FailureReason::AddressNotInPool, message));
        };
        if let Some(slot) = self.slots.get(&ip) {
            self.compatible(r, slot, ip)?;
            return Ok(pool);
        }
        if let Some(node) = self.node_addresses.get(&ip) {
            return Err(failure(
                FailureReason::AddressInUse,
                format!("{ip} is node {node}'s address"),
            ));
        }
        if let Some(vip) = self.foreign.get(&ip) {
            return Err(failure(
                FailureReason::AddressInUse,
                format!("{ip} is an address of VirtualIP '{vip}'"),
            ));
        }
        let name = virtual_ip_name(ip);
        if self.foreign_names.contains(&name) {
            return Err(failure(
                FailureReason::AddressInUse,
                format!(
                    "a VirtualIP named '{name}' exists that kube-vrrp did not make for a \
                     Service; rename or delete it"
                ),
            ));
        }
        if self.held.contains(&ip) {
            return Err(failure(
                FailureReason::AddressReleasing,
                format!(
                    "{ip} was released and a node still holds it; it is assigned once no node \
                     does"
                ),
            ));
        }
        Ok(pool)
    }

    /// Why no pool gives request `r` an address of `family`.
    fn no_pool(&self, r: usize, family: Family) -> Failure {
        let req = &self.requests[r];
        let ns = self.namespace_labels(req);
        if let Some(named) = &req.pools {
            let missing: Vec<&str> = named
                .iter()
                .map(String::as_str)
                .filter(|n| !self.pools.iter().any(|p| p.name == *n))
                .collect();
            if missing.len() == named.len() {
                return Failure {
                    family: None,
                    reason: FailureReason::PoolNotFound,
                    message: format!(
                        "annotation {POOL_ANNOTATION} names VirtualIPPool {}, which does not \
                         exist",
                        missing.join(", ")
                    ),
                };
            }
        }
        let mut why = String::new();
        for p in self.pools.iter().take(MAX_POOLS_EXPLAINED) {
            let reason = if let Some(refused) = p.refuses(req, ns) {
                refused
            } else if let Some(problem) = &p.problem {
                problem.message()
            } else if p.spans_of(family).next().is_none() {
                format!("no {} addresses", family_word(family))
            } else {
                "autoAssign is false and the Service does not name it or ask for one of its \
                 addresses"
                    .to_owned()
            };
            let sep = if why.is_empty() { "" } else { "; " };
            let _ = write!(why, "{sep}'{}': {reason}", p.name);
        }
        if self.pools.len() > MAX_POOLS_EXPLAINED {
            let _ = write!(why, "; and {} more", self.pools.len() - MAX_POOLS_EXPLAINED);
        }
        Failure {
            family: Some(family),
            reason: FailureReason::NoPool,
            message: if self.pools.is_empty() {
                "there is no VirtualIPPool; create one".to_owned()
            } else {
                format!(
                    "no VirtualIPPool gives Service {} an {} address ({why})",
                    service_key(&req.service),
                    family_word(family)
                )
            },
        }
    }
}

/// Allocates addresses to every Service of ours (see the module for the rules). Pure and
/// deterministic.
pub fn allocate(input: &LbInput<'_>, config: &LbConfig) -> LbPlan {
    let namespaces = input
        .namespaces
        .iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                n.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect();
    let mut node_addresses = BTreeMap::new();
    for node in &input.nodes {
        let Some(name) = node.metadata.name.as_deref() else {
            continue;
        };
        for a in node
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
        {
            if matches!(a.type_.as_str(), "InternalIP" | "ExternalIP")
                && let Ok(ip) = a.address.trim().parse::<IpAddr>()
            {
                node_addresses.entry(ip).or_insert_with(|| name.to_owned());
            }
        }
    }
    let pools = evaluate(&input.pools, &node_addresses);

    // The VirtualIPs: ours carry the allocation; the others hold addresses and names.
    let mut existing: Vec<Existing<'_>> = Vec::new();
    let mut foreign = BTreeMap::new();
    let mut foreign_names = HashSet::new();
    for vip in &input.virtual_ips {
        let name = vip.metadata.name.clone().unwrap_or_default();
        if is_managed(vip) {
            let address = vip
                .spec
                .addresses
                .first()
                .and_then(|a| parse_cidr(a))
                .map(|n| n.addr());
            if let Some(address) = address {
                existing.push(Existing {
                    vip,
                    address,
                    owners: parse_owners(vip),
                    pool: vip
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(POOL_ANNOTATION))
                        .cloned(),
                });
            }
        } else {
            for a in &vip.spec.addresses {
                if let Some(net) = parse_cidr(a) {
                    foreign.entry(net.addr()).or_insert_with(|| name.clone());
                }
            }
            foreign_names.insert(name);
        }
    }
    existing.sort_by(|a, b| {
        (a.address, a.vip.metadata.name.as_deref())
            .cmp(&(b.address, b.vip.metadata.name.as_deref()))
    });
    // Two VirtualIPs of ours for one address (edited by hand): the first by name counts.
    existing.dedup_by(|later, earlier| later.address == earlier.address);

    // The Services.
    let mut services: HashMap<ServiceRef, &Service> = HashMap::new();
    let mut requests = Vec::new();
    let mut invalid: Vec<(ServiceRef, Failure)> = Vec::new();
    let mut sorted: Vec<&Service> = input.services.clone();
    sorted.sort_by_key(|s| service_ref(s));
    for service in sorted {
        let key = service_ref(service);
        if key.name.is_empty() || services.contains_key(&key) {
            continue;
        }
        services.insert(key.clone(), service);
        if !is_ours(service, config) {
            continue;
        }
        match read(service) {
            Ok(r) => requests.push(r),
            Err(f) => invalid.push((key, f)),
        }
    }
    requests.sort_by(|a, b| a.seniority().cmp(&b.seniority()));
    let index = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (r.service.clone(), i))
        .collect();
    let count = requests.len();
    let mut book = Book {
        requests,
        index,
        pools,
        namespaces,
        node_addresses,
        foreign,
        foreign_names,
        held: input.held.iter().copied().collect(),
        slots: BTreeMap::new(),
        have: vec![BTreeMap::new(); count],
        failures: vec![Vec::new(); count],
        releases: Vec::new(),
        cursors: HashMap::new(),
    };
    let unreadable: HashSet<ServiceRef> = invalid.iter().map(|(k, _)| k.clone()).collect();

    // Step 1: read back; a Service whose request cannot be read keeps what it has.
    for (e, ex) in existing.iter().enumerate() {
        for owner in &ex.owners {
            if unreadable.contains(owner) {
                book.freeze(ex, e, owner.clone());
            }
        }
    }
    let readable: Vec<Existing<'_>> = existing
        .iter()
        .map(|ex| Existing {
            vip: ex.vip,
            address: ex.address,
            owners: ex
                .owners
                .iter()
                .filter(|o| !unreadable.contains(*o))
                .cloned()
                .collect(),
            pool: ex.pool.clone(),
        })
        .collect();
    book.read_back(&readable, &services);

    // Step 2: new addresses, the older Service first: requested addresses before any
    // automatic choice, so that no automatic choice takes an address a Service asked for,
    // and a Service sharing under a key finds the address its partner asked for.
    for explicit in [true, false] {
        for r in 0..count {
            let families = book.requests[r].families.clone();
            for family in families {
                let asked = book.requests[r].requested.contains_key(&family);
                if asked == explicit && !book.have[r].contains_key(&family) {
                    book.assign(r, family);
                }
            }
        }
    }

    // Step 3: the VirtualIPs.
    let virtual_ips = desired(&book, &existing, &input.nodes, input.node_policy);

    // Step 4: what each Service and pool got.
    let mut plan = LbPlan {
        releases: std::mem::take(&mut book.releases),
        ..LbPlan::default()
    };
    for (r, req) in book.requests.iter().enumerate() {
        let mut outcome = ServiceOutcome {
            failures: std::mem::take(&mut book.failures[r]),
            ..ServiceOutcome::default()
        };
        for family in &req.families {
            if let Some(&ip) = book.have[r].get(family) {
                let slot = &book.slots[&ip];
                outcome.addresses.push(Assigned {
                    address: ip,
                    virtual_ip: virtual_ip_name(ip),
                    pool: slot.pool.clone(),
                    new: slot.new.contains(&r),
                });
            }
        }
        plan.services.insert(req.service.clone(), outcome);
    }
    for (key, failure) in invalid {
        let addresses = book
            .slots
            .iter()
            .filter(|(_, s)| s.frozen.contains(&key))
            .map(|(ip, s)| Assigned {
                address: *ip,
                virtual_ip: virtual_ip_name(*ip),
                pool: s.pool.clone(),
                new: false,
            })
            .collect();
        plan.services.insert(
            key,
            ServiceOutcome {
                addresses,
                failures: vec![failure],
            },
        );
    }
    plan.pools = pool_reports(&book);
    plan.virtual_ips = virtual_ips;
    plan
}

/// The VirtualIP of every slot, with the pool's VRRP settings, its Services, and its
/// virtual router (Cluster) or endpoint trackers (Local).
fn desired(
    book: &Book<'_>,
    existing: &[Existing<'_>],
    nodes: &[&k8s_openapi::api::core::v1::Node],
    node_policy: NodePolicy,
) -> BTreeMap<String, DesiredVirtualIp> {
    let mut out = BTreeMap::new();
    // Shared routers: members per (pool, family, router number).
    let mut shards: BTreeMap<(&str, Family), BTreeMap<usize, usize>> = BTreeMap::new();
    let mut unsharded: BTreeMap<(&str, Family), Vec<IpAddr>> = BTreeMap::new();
    let mut routers: HashMap<IpAddr, String> = HashMap::new();
    for (ip, slot) in &book.slots {
        let owners: Vec<&Request> = slot.owners.iter().map(|&o| &book.requests[o]).collect();
        let local = owners.iter().any(|o| o.local);
        if local || !slot.frozen.is_empty() {
            continue;
        }
        let counts = shards.entry((slot.pool.as_str(), slot.family)).or_default();
        let kept = slot
            .existing
            .and_then(|e| existing[e].vip.spec.virtual_router.as_deref())
            .and_then(|r| shard_number(r, &slot.pool, slot.family))
            .filter(|n| counts.get(n).copied().unwrap_or(0) < MAX_ADDRESSES);
        match kept {
            Some(n) => {
                *counts.entry(n).or_default() += 1;
                routers.insert(*ip, shard_name(&slot.pool, slot.family, n));
            }
            None => unsharded
                .entry((slot.pool.as_str(), slot.family))
                .or_default()
                .push(*ip),
        }
    }
    // New addresses: on the router whose expected MASTER carries the fewest (see `spread`).
    let node_infos = if unsharded.is_empty() {
        Vec::new()
    } else {
        kube_vrrp_plan::nodes::index(nodes)
    };
    for ((pool_name, family), ips) in unsharded {
        let counts = shards.remove(&(pool_name, family)).unwrap_or_default();
        let sample = book
            .pools
            .iter()
            .find(|p| p.name == pool_name)
            .zip(ips.first())
            .map(|(pool, &ip)| {
                VirtualIp::new(
                    &virtual_ip_name(ip),
                    spec_for(pool, ip, Some(shard_name(pool_name, family, 0)), &[]),
                )
            });
        let forecast = sample
            .as_ref()
            .and_then(|vip| MasterForecast::new(vip, &node_infos, node_policy));
        let masters: Vec<Option<&str>> = forecast.as_ref().map_or_else(Vec::new, |f| {
            (0..ROUTER_NUMBERS)
                .map(|n| f.master(&shard_name(pool_name, family, n)))
                .collect()
        });
        let mut spread = Routers::new(counts, masters);
        for ip in ips {
            routers.insert(ip, shard_name(pool_name, family, spread.place()));
        }
    }

    for (ip, slot) in &book.slots {
        let name = virtual_ip_name(*ip);
        let mut services: Vec<ServiceRef> = slot
            .owners
            .iter()
            .map(|&o| book.requests[o].service.clone())
            .chain(slot.frozen.iter().cloned())
            .collect();
        services.sort();
        services.dedup();
        let frozen_spec = (!slot.frozen.is_empty())
            .then(|| slot.existing.map(|e| existing[e].vip.spec.clone()))
            .flatten();
        let spec = if let Some(spec) = frozen_spec {
            spec
        } else {
            let Some(pool) = book.pools.iter().find(|p| p.name == slot.pool) else {
                continue;
            };
            let mut locals: Vec<&Request> = slot
                .owners
                .iter()
                .map(|&o| &book.requests[o])
                .filter(|o| o.local)
                .collect();
            locals.sort_by(|a, b| a.service.cmp(&b.service));
            spec_for(pool, *ip, routers.get(ip).cloned(), &locals)
        };
        out.insert(
            name.clone(),
            DesiredVirtualIp {
                name,
                address: *ip,
                pool: slot.pool.clone(),
                services,
                spec,
            },
        );
    }
    out
}

/// The VirtualIP spec of address `ip` of `pool`: the pool's VRRP settings, the address as a
/// host route, and a virtual router (Cluster) or the Local Services' endpoint trackers.
fn spec_for(
    pool: &PoolView<'_>,
    ip: IpAddr,
    router: Option<String>,
    locals: &[&Request],
) -> VirtualIpSpec {
    let vrrp = &pool.pool.spec.vrrp;
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    let track = (!locals.is_empty()).then(|| Track {
        endpoints: locals
            .iter()
            .map(|r| TrackEndpoints {
                service: r.service.clone(),
                weight: None,
            })
            .collect(),
        ..Track::default()
    });
    VirtualIpSpec {
        addresses: vec![format!("{ip}/{prefix}")],
        interface: vrrp.interface.clone(),
        node_selector: vrrp.node_selector.clone(),
        priorities: vrrp.priorities.clone(),
        version: vrrp.version,
        advert_interval: vrrp.advert_interval_or_default(),
        unicast: vrrp.unicast,
        track,
        virtual_router: if locals.is_empty() { router } else { None },
        ..VirtualIpSpec::default()
    }
}

/// Assigned and available addresses per pool.
fn pool_reports(book: &Book<'_>) -> BTreeMap<String, PoolReport> {
    let mut out = BTreeMap::new();
    let taken: BTreeSet<IpAddr> = book
        .slots
        .keys()
        .chain(book.foreign.keys())
        .chain(book.node_addresses.keys())
        .chain(book.held.iter())
        .copied()
        .collect();
    for pool in &book.pools {
        let total: u128 = pool
            .spans
            .iter()
            .fold(0u128, |sum, s| sum.saturating_add(s.len()));
        let used = taken.iter().filter(|ip| pool.contains(**ip)).count() as u128;
        let assigned = book.slots.values().filter(|s| s.pool == pool.name).count();
        out.insert(
            pool.name.to_owned(),
            PoolReport {
                assigned: u32::try_from(assigned).unwrap_or(u32::MAX),
                available: if pool.open() {
                    total.saturating_sub(used)
                } else {
                    0
                },
                problem: pool.problem.clone(),
                node_addresses: pool.node_addresses.clone(),
            },
        );
    }
    out
}
