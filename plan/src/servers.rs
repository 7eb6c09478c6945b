//! VirtualServer backends: static real servers plus the ready endpoints of the backendRef
//! Service, read from its EndpointSlices.

use std::collections::{BTreeMap, HashSet};
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
    pub fn new(slices: &[&'a EndpointSlice], services: &[&'a Service]) -> Self {
        let mut out = Self::default();
        for &s in slices {
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
        for &s in services {
            let ns = s.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(name) = s.metadata.name.as_deref() {
                out.services.entry((ns, name)).or_insert(s);
            }
        }
        out
    }

    /// The real servers of `spec` for a VirtualIP of `family`: the static ones in spec
    /// order, then the Service's ready endpoints of that family sorted by address and port,
    /// without repeating an (address, port), then its terminating ones as `draining` (weight
    /// 0: the agent lets their connections end, then removes them). Errors name what to fix.
    pub fn real_servers(
        &self,
        spec: &VirtualServerSpec,
        family: Family,
    ) -> Result<Vec<ResolvedRealServer>, String> {
        let mut out: Vec<ResolvedRealServer> = Vec::new();
        let mut seen: HashSet<(IpAddr, u16)> = HashSet::new();
        for r in &spec.real_servers {
            let address = r
                .address
                .parse::<IpAddr>()
                .map_or_else(|_| r.address.clone(), |ip| ip.to_string());
            let server = ResolvedRealServer {
                address,
                port: r.port.unwrap_or(spec.port),
                weight: r.weight,
                upper_threshold: r.upper_threshold,
                lower_threshold: r.lower_threshold,
                draining: false,
            };
            let fresh = match r.address.parse::<IpAddr>() {
                Ok(ip) => seen.insert((ip, server.port)),
                Err(_) => !out
                    .iter()
                    .any(|o| o.address == server.address && o.port == server.port),
            };
            if fresh {
                out.push(server);
            }
        }
        if let Some(backend) = &spec.backend_ref {
            let mut found = self.endpoints(spec, backend, family)?;
            // Ready ones first, so that an address both ready and terminating (two slices
            // mid-update) counts as ready.
            found.sort_unstable_by_key(|(ip, port, draining)| (*draining, *ip, *port));
            for (ip, port, draining) in found {
                if seen.insert((ip, port)) {
                    out.push(ResolvedRealServer {
                        address: ip.to_string(),
                        port,
                        weight: if draining { 0 } else { backend.weight },
                        upper_threshold: backend.upper_threshold,
                        lower_threshold: backend.lower_threshold,
                        draining,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Endpoint (address, port, terminating) triples of the backend Service: the ready ones
    /// (readiness unknown counts as ready), and the terminating ones (not ready).
    fn endpoints(
        &self,
        spec: &VirtualServerSpec,
        backend: &BackendRef,
        family: Family,
    ) -> Result<Vec<(IpAddr, u16, bool)>, String> {
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
                let conditions = ep.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready) != Some(false);
                let terminating = conditions.and_then(|c| c.terminating) == Some(true);
                if !ready && !terminating {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>()
                        && Family::of(ip) == family
                    {
                        out.push((ip, port, !ready));
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use kube::api::ObjectMeta;

    use super::*;

    fn slice(
        name: &str,
        family: &str,
        ports: &[(Option<&str>, i32, &str)],
        eps: &[(&str, Option<bool>)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("ns".to_owned()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), "svc".to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: family.to_owned(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| EndpointPort {
                        name: n.map(str::to_owned),
                        port: Some(*p),
                        protocol: Some((*proto).to_owned()),
                        ..EndpointPort::default()
                    })
                    .collect(),
            ),
            endpoints: eps
                .iter()
                .map(|(a, ready)| Endpoint {
                    addresses: vec![(*a).to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        }
    }

    fn spec(port: Option<&IntOrString>) -> VirtualServerSpec {
        serde_json::from_value(serde_json::json!({
            "virtualIPRef": "vip",
            "port": 80,
            "backendRef": {"namespace": "ns", "name": "svc", "port": port},
        }))
        .unwrap()
    }

    fn addresses(out: &[ResolvedRealServer]) -> Vec<String> {
        out.iter()
            .map(|r| format!("{}:{}", r.address, r.port))
            .collect()
    }

    #[test]
    fn only_ready_or_unknown_readiness_endpoints_of_the_family_are_used() {
        let slices = [
            slice(
                "a",
                "IPv4",
                &[(None, 8080, "TCP")],
                &[
                    ("10.0.0.2", Some(true)),
                    ("10.0.0.1", None),
                    ("10.0.0.3", Some(false)),
                ],
            ),
            slice(
                "b",
                "IPv6",
                &[(None, 8080, "TCP")],
                &[("fd00::1", Some(true))],
            ),
        ];
        let b = Backends::new(&slices.iter().collect::<Vec<_>>(), &[]);
        let out = b.real_servers(&spec(None), Family::Ipv4).unwrap();
        assert_eq!(addresses(&out), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        let out = b.real_servers(&spec(None), Family::Ipv6).unwrap();
        assert_eq!(addresses(&out), ["fd00::1:8080"]);
    }

    #[test]
    fn a_terminating_endpoint_is_kept_as_draining_with_weight_zero() {
        let mut slices = [slice(
            "a",
            "IPv4",
            &[(None, 8080, "TCP")],
            &[
                ("10.0.0.1", Some(true)),
                ("10.0.0.2", Some(false)),
                ("10.0.0.3", Some(false)),
            ],
        )];
        for ep in &mut slices[0].endpoints[1..2] {
            if let Some(c) = ep.conditions.as_mut() {
                c.terminating = Some(true);
                c.serving = Some(true);
            }
        }
        let b = Backends::new(&slices.iter().collect::<Vec<_>>(), &[]);
        let out = b.real_servers(&spec(None), Family::Ipv4).unwrap();
        assert_eq!(addresses(&out), ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert!(!out[0].draining && out[0].weight == 1);
        assert!(out[1].draining && out[1].weight == 0, "{:?}", out[1]);
    }

    #[test]
    fn a_numbered_port_without_the_service_matches_the_endpoint_port() {
        let slices = [slice(
            "a",
            "IPv4",
            &[(Some("http"), 8080, "TCP"), (Some("admin"), 9000, "TCP")],
            &[("10.0.0.1", None)],
        )];
        let b = Backends::new(&slices.iter().collect::<Vec<_>>(), &[]);
        let out = b
            .real_servers(&spec(Some(&IntOrString::Int(9000))), Family::Ipv4)
            .unwrap();
        assert_eq!(addresses(&out), ["10.0.0.1:9000"]);
    }

    #[test]
    fn a_named_port_the_slices_lack_yields_no_endpoints() {
        let slices = [slice(
            "a",
            "IPv4",
            &[(Some("http"), 8080, "TCP")],
            &[("10.0.0.1", None)],
        )];
        let b = Backends::new(&slices.iter().collect::<Vec<_>>(), &[]);
        let out = b
            .real_servers(
                &spec(Some(&IntOrString::String("grpc".to_owned()))),
                Family::Ipv4,
            )
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_service_port_number_the_service_lacks_is_an_error() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "svc", "namespace": "ns"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }))
        .unwrap();
        let b = Backends::new(&[], &[&service]);
        let err = b
            .real_servers(&spec(Some(&IntOrString::Int(81))), Family::Ipv4)
            .unwrap_err();
        assert_eq!(
            err,
            "Service ns/svc has no TCP port 81; fix spec.backendRef.port"
        );
    }

    #[test]
    fn only_ports_of_the_virtual_servers_protocol_count_when_none_is_named() {
        let slices = [slice(
            "a",
            "IPv4",
            &[(Some("dns"), 53, "UDP"), (Some("http"), 8080, "TCP")],
            &[("10.0.0.1", None)],
        )];
        let b = Backends::new(&slices.iter().collect::<Vec<_>>(), &[]);
        let out = b.real_servers(&spec(None), Family::Ipv4).unwrap();
        assert_eq!(addresses(&out), ["10.0.0.1:8080"]);
    }
}
