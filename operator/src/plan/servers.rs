//! VirtualServer backends: static real servers plus the ready endpoints of the backendRef
//! Service, read from its EndpointSlices.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_vrrp_crds::{BackendRef, ResolvedRealServer, VirtualServerSpec};

use super::segment::Family;

/// The label EndpointSlices carry naming their Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// EndpointSlices and Services by (namespace, Service name), in name order.
#[derive(Debug, Default)]
pub struct Backends<'a> {
    slices: BTreeMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    services: BTreeMap<(&'a str, &'a str), &'a Service>,
}

impl<'a> Backends<'a> {
    /// Indexes the slices (by their service-name label) and Services.
    pub fn new(slices: &'a [EndpointSlice], services: &'a [Service]) -> Self {
        let mut out = Self::default();
        for s in slices {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                out.slices.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        for v in out.slices.values_mut() {
            v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        for s in services {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(name) = s.metadata.name.as_deref() {
                out.services.entry((ns, name)).or_insert(s);
            }
        }
        out
    }

    /// The real servers of `spec` for a VirtualIP of `family`: the static ones in spec
    /// order, then the Service's ready endpoints of that family sorted by address and port,
    /// without repeating an (address, port). Errors name what to fix.
    pub fn real_servers(
        &self,
        spec: &VirtualServerSpec,
        family: Family,
    ) -> Result<Vec<ResolvedRealServer>, String> {
        let mut out: Vec<ResolvedRealServer> = Vec::new();
        for r in &spec.real_servers {
            let address = r
                .address
                .parse::<IpAddr>()
                .map_or_else(|_| r.address.clone(), |ip| ip.to_string());
            let server = ResolvedRealServer {
                address,
                port: r.port.unwrap_or(spec.port),
                weight: r.weight,
            };
            if !out
                .iter()
                .any(|o| o.address == server.address && o.port == server.port)
            {
                out.push(server);
            }
        }
        if let Some(backend) = &spec.backend_ref {
            let mut found = self.endpoints(spec, backend, family)?;
            found.sort_unstable();
            found.dedup();
            for (ip, port) in found {
                let address = ip.to_string();
                if !out.iter().any(|o| o.address == address && o.port == port) {
                    out.push(ResolvedRealServer {
                        address,
                        port,
                        weight: backend.weight,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Ready endpoint (address, port) pairs of the backend Service.
    fn endpoints(
        &self,
        spec: &VirtualServerSpec,
        backend: &BackendRef,
        family: Family,
    ) -> Result<Vec<(IpAddr, u16)>, String> {
        let key = (backend.namespace.as_str(), backend.name.as_str());
        let service = self.services.get(&key).copied();
        let protocol = spec.protocol.as_str();
        let svc = format!("Service {}/{}", backend.namespace, backend.name);
        // A numbered backendRef port is a Service port; the slices know only its name.
        let wanted_name: Option<Option<&str>> = match (&backend.port, service) {
            (Some(IntOrString::Int(n)), Some(service)) => {
                let port = service
                    .spec
                    .iter()
                    .flat_map(|s| s.ports.iter().flatten())
                    .find(|p| p.port == *n && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                    .ok_or_else(|| {
                        format!("{svc} has no {protocol} port {n}; fix spec.backendRef.port")
                    })?;
                Some(port.name.as_deref().filter(|n| !n.is_empty()))
            }
            _ => None,
        };
        let mut out = Vec::new();
        for slice in self.slices.get(&key).into_iter().flatten() {
            let slice_family = match slice.address_type.as_str() {
                "IPv4" => Family::Ipv4,
                "IPv6" => Family::Ipv6,
                _ => continue,
            };
            if slice_family != family {
                continue;
            }
            let candidates: Vec<&EndpointPort> = slice
                .ports
                .iter()
                .flatten()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .collect();
            let name_of = |p: &EndpointPort| p.name.clone().filter(|n| !n.is_empty());
            let chosen = match (&backend.port, wanted_name) {
                (_, Some(wanted)) => candidates.iter().find(|p| name_of(p).as_deref() == wanted),
                (Some(IntOrString::String(name)), None) => candidates
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str())),
                // Without the Service, a number is matched against the endpoint port.
                (Some(IntOrString::Int(n)), None) => candidates.iter().find(|p| p.port == Some(*n)),
                (None, None) => match candidates.as_slice() {
                    [only] => Some(only),
                    [] => None,
                    many => {
                        let names: Vec<String> = many
                            .iter()
                            .map(|p| name_of(p).unwrap_or_else(|| "(unnamed)".to_owned()))
                            .collect();
                        return Err(format!(
                            "{svc} has {} {protocol} ports ({}); set spec.backendRef.port to \
                             pick one",
                            many.len(),
                            names.join(", ")
                        ));
                    }
                },
            };
            let Some(port) = chosen
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0)
            else {
                continue;
            };
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                if !ready {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>()
                        && Family::of(ip) == family
                    {
                        out.push((ip, port));
                    }
                }
            }
        }
        Ok(out)
    }
}
