//! The pools as allocation sees them: validated, their blocks as spans, their selectors
//! compiled, overlaps with older pools and node addresses found.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use kube_vrrp_crds::{AddressBlock, Span, VirtualIpPool};
use kube_vrrp_plan::Family;
use kube_vrrp_plan::selector::Selector;

use super::POOL_ANNOTATION;
use super::request::Request;

/// Why a pool hands out no new addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolProblem {
    /// The pool breaks a validation rule; it holds nothing either.
    Invalid(String),
    /// Its blocks overlap an older pool's; its Services keep their addresses.
    Overlap {
        /// The older pool.
        other: String,
        /// Addresses the two share (the first overlapping stretch).
        shared: Span,
    },
}

impl PoolProblem {
    /// A sentence a person can act on.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(m) => m.clone(),
            Self::Overlap { other, shared } => format!(
                "its addresses {shared} are also in the older VirtualIPPool '{other}'; it hands \
                 out no new address until the overlap is removed"
            ),
        }
    }
}

/// One pool, ready for allocation.
#[derive(Debug)]
pub(crate) struct PoolView<'a> {
    pub name: &'a str,
    pub pool: &'a VirtualIpPool,
    /// The addresses it hands out, by block.
    pub spans: Vec<Span>,
    namespace_selector: Option<Selector>,
    service_selector: Option<Selector>,
    pub problem: Option<PoolProblem>,
    /// Node addresses inside its spans: (address, node).
    pub node_addresses: Vec<(IpAddr, String)>,
}

impl PoolView<'_> {
    /// Hands out new addresses.
    pub fn open(&self) -> bool {
        self.problem.is_none()
    }

    /// Holds the addresses it has (an invalid pool holds none).
    pub fn holds(&self) -> bool {
        !matches!(self.problem, Some(PoolProblem::Invalid(_)))
    }

    /// Whether `ip` is one of its addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.spans.iter().any(|s| s.contains(ip))
    }

    /// Its spans of `family`.
    pub fn spans_of(&self, family: Family) -> impl Iterator<Item = &Span> {
        self.spans
            .iter()
            .filter(move |s| s.is_ipv4() == (family == Family::Ipv4))
    }

    /// Whether its selectors serve `request` (in a namespace labelled `namespace_labels`),
    /// and, when the Service names pools, whether it is one of them.
    pub fn serves(&self, request: &Request, namespace_labels: &BTreeMap<String, String>) -> bool {
        self.refuses(request, namespace_labels).is_none()
    }

    /// Why it does not serve `request`, if it does not.
    pub fn refuses(
        &self,
        request: &Request,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Option<String> {
        if request
            .pools
            .as_ref()
            .is_some_and(|named| !named.iter().any(|n| n == self.name))
        {
            Some(format!("not named by annotation {POOL_ANNOTATION}"))
        } else if self
            .namespace_selector
            .as_ref()
            .is_some_and(|s| !s.matches(namespace_labels))
        {
            Some(format!(
                "its namespaceSelector does not match namespace {}",
                request.service.namespace
            ))
        } else if self
            .service_selector
            .as_ref()
            .is_some_and(|s| !s.matches(&request.labels))
        {
            Some("its serviceSelector does not match the Service's labels".to_owned())
        } else {
            None
        }
    }

    /// Whether it hands out addresses to `request` without being asked for one.
    pub fn assigns_to(&self, request: &Request) -> bool {
        self.pool.spec.auto_assign || request.pools.is_some()
    }
}

fn seniority(pool: &VirtualIpPool) -> (bool, Option<Timestamp>, &str) {
    let created = pool.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        created.is_none(),
        created,
        pool.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Evaluates `pools` against the nodes' addresses (address → node): every pool with a name,
/// in name order.
pub(crate) fn evaluate<'a>(
    pools: &[&'a VirtualIpPool],
    node_addresses: &BTreeMap<IpAddr, String>,
) -> Vec<PoolView<'a>> {
    let mut ordered: Vec<&'a VirtualIpPool> = pools
        .iter()
        .copied()
        .filter(|p| p.metadata.name.as_deref().is_some_and(|n| !n.is_empty()))
        .collect();
    ordered.sort_by(|a, b| seniority(a).cmp(&seniority(b)));
    ordered.dedup_by(|later, earlier| later.metadata.name == earlier.metadata.name);
    // Whole blocks of the pools accepted so far, for the overlap check.
    let mut accepted: Vec<(&'a str, Vec<Span>)> = Vec::new();
    let mut out = Vec::new();
    for pool in ordered {
        let name = pool.metadata.name.as_deref().unwrap_or_default();
        let mut view = PoolView {
            name,
            pool,
            spans: Vec::new(),
            namespace_selector: None,
            service_selector: None,
            problem: None,
            node_addresses: Vec::new(),
        };
        match compile(pool) {
            Err(message) => view.problem = Some(PoolProblem::Invalid(message)),
            Ok((blocks, ns, svc)) => {
                view.namespace_selector = ns;
                view.service_selector = svc;
                let include = pool.spec.include_network_and_broadcast;
                view.spans = blocks.iter().filter_map(|b| b.usable(include)).collect();
                let whole: Vec<Span> = blocks.iter().map(AddressBlock::whole).collect();
                let overlap = accepted.iter().find_map(|(other, theirs)| {
                    whole.iter().find_map(|mine| {
                        theirs
                            .iter()
                            .find(|t| t.overlaps(mine))
                            .map(|t| (*other, shared(mine, t)))
                    })
                });
                match overlap {
                    Some((other, shared)) => {
                        view.problem = Some(PoolProblem::Overlap {
                            other: other.to_owned(),
                            shared,
                        });
                    }
                    None => accepted.push((name, whole)),
                }
                view.node_addresses = node_addresses
                    .iter()
                    .filter(|(ip, _)| view.contains(**ip))
                    .map(|(ip, node)| (*ip, node.clone()))
                    .collect();
            }
        }
        out.push(view);
    }
    out.sort_by(|a, b| a.name.cmp(b.name));
    out
}

type Compiled = (Vec<AddressBlock>, Option<Selector>, Option<Selector>);

fn compile(pool: &VirtualIpPool) -> Result<Compiled, String> {
    let violations = pool.spec.validate();
    if !violations.is_empty() {
        let all: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(format!("VirtualIPPool is invalid: {}", all.join("; ")));
    }
    let blocks = pool
        .spec
        .blocks()
        .ok_or_else(|| "VirtualIPPool is invalid: spec.addresses".to_owned())?;
    let selector = |s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
                    field: &str| {
        s.map(Selector::compile)
            .transpose()
            .map_err(|e| format!("VirtualIPPool is invalid: {field}: {e}"))
    };
    let ns = selector(
        pool.spec.namespace_selector.as_ref(),
        "spec.namespaceSelector",
    )?;
    let svc = selector(pool.spec.service_selector.as_ref(), "spec.serviceSelector")?;
    Ok((blocks, ns, svc))
}

/// The addresses two overlapping spans share.
fn shared(a: &Span, b: &Span) -> Span {
    use kube_vrrp_crds::address_block::ordinal;
    Span {
        first: if ordinal(a.first) >= ordinal(b.first) {
            a.first
        } else {
            b.first
        },
        last: if ordinal(a.last) <= ordinal(b.last) {
            a.last
        } else {
            b.last
        },
    }
}
