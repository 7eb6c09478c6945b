//! What a Service asks for: whether it is ours, its families, requested addresses, named
//! pools, sharing key, ports and traffic policy, and its current ingress addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Service;
use kube_vrrp_crds::ServiceRef;
use kube_vrrp_plan::Family;

use super::{
    ADDRESSES_ANNOTATION, Failure, FailureReason, LOAD_BALANCER_CLASS, LbConfig, POOL_ANNOTATION,
    SHARING_ANNOTATION,
};

/// A Service of ours, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub service: ServiceRef,
    pub created: Option<Timestamp>,
    /// The families wanted, in `spec.ipFamilies` order.
    pub families: Vec<Family>,
    /// Addresses asked for, by family.
    pub requested: BTreeMap<Family, IpAddr>,
    /// Pools named by the annotation.
    pub pools: Option<Vec<String>>,
    pub sharing_key: Option<String>,
    /// (protocol, port) of each Service port.
    pub ports: BTreeSet<(String, i32)>,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    pub labels: BTreeMap<String, String>,
    /// `status.loadBalancer.ingress[].ip` that parse.
    pub ingress: Vec<IpAddr>,
}

impl Request {
    /// Precedence among Services: the older, then by namespace and name.
    pub fn seniority(&self) -> (bool, Option<Timestamp>, &ServiceRef) {
        (self.created.is_none(), self.created, &self.service)
    }
}

/// The Service's identity (namespace "default" when none is given).
pub fn service_ref(service: &Service) -> ServiceRef {
    ServiceRef {
        namespace: service
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        name: service.metadata.name.clone().unwrap_or_default(),
    }
}

/// Whether the operator serves `service`.
pub(crate) fn is_ours(service: &Service, config: &LbConfig) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    service.metadata.deletion_timestamp.is_none()
        && spec.type_.as_deref() == Some("LoadBalancer")
        && match spec.load_balancer_class.as_deref() {
            Some(class) => class == LOAD_BALANCER_CLASS,
            None => config.default_class,
        }
}

fn annotation<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn invalid(message: String) -> Failure {
    Failure {
        family: None,
        reason: FailureReason::InvalidRequest,
        message,
    }
}

/// Reads a Service of ours.
pub(crate) fn read(service: &Service) -> Result<Request, Failure> {
    let spec = service.spec.clone().unwrap_or_default();
    let mut families: Vec<Family> = Vec::new();
    for f in spec.ip_families.iter().flatten() {
        let family = match f.as_str() {
            "IPv4" => Family::Ipv4,
            "IPv6" => Family::Ipv6,
            other => return Err(invalid(format!("spec.ipFamilies has {other:?}"))),
        };
        if !families.contains(&family) {
            families.push(family);
        }
    }
    if families.is_empty() {
        families.push(Family::Ipv4);
    }

    let mut asked: Vec<IpAddr> = Vec::new();
    if let Some(list) = annotation(service, ADDRESSES_ANNOTATION) {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip: IpAddr = item.parse().map_err(|_| {
                invalid(format!(
                    "annotation {ADDRESSES_ANNOTATION}: {item:?} is not an IP address; write \
                     e.g. 192.168.10.5 or 192.168.10.5,fd00:10::5"
                ))
            })?;
            asked.push(ip);
        }
    }
    if let Some(lb_ip) = spec
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let ip: IpAddr = lb_ip.parse().map_err(|_| {
            invalid(format!(
                "spec.loadBalancerIP {lb_ip:?} is not an IP address"
            ))
        })?;
        if asked.is_empty() {
            asked.push(ip);
        } else if !asked.contains(&ip) {
            return Err(invalid(format!(
                "spec.loadBalancerIP {ip} is not among the addresses of annotation \
                 {ADDRESSES_ANNOTATION}; set one of the two"
            )));
        }
    }
    let mut requested = BTreeMap::new();
    for ip in asked {
        let family = Family::of(ip);
        if requested
            .insert(family, ip)
            .is_some_and(|other| other != ip)
        {
            return Err(invalid(format!(
                "more than one {} address is requested; a Service gets one per family",
                family.as_str()
            )));
        }
        if !families.contains(&family) {
            return Err(invalid(format!(
                "{ip} is an {} address, and the Service's spec.ipFamilies has no {}; set \
                 spec.ipFamilyPolicy to PreferDualStack or RequireDualStack",
                family.as_str(),
                family.as_str()
            )));
        }
    }

    let pools = annotation(service, POOL_ANNOTATION).map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                p.port,
            )
        })
        .collect();
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect();
    Ok(Request {
        service: service_ref(service),
        created: service.metadata.creation_timestamp.as_ref().map(|t| t.0),
        families,
        requested,
        pools,
        sharing_key: annotation(service, SHARING_ANNOTATION).map(str::to_owned),
        ports,
        local: spec.external_traffic_policy.as_deref() == Some("Local"),
        labels: service.metadata.labels.clone().unwrap_or_default(),
        ingress,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_load_balancers_of_our_class_or_none_when_default_are_ours() {
        let of = |class: Option<&str>, type_: &str| {
            service(json!({"metadata": {"name": "web", "namespace": "shop"},
                           "spec": {"type": type_, "loadBalancerClass": class}}))
        };
        let default = LbConfig {
            default_class: true,
        };
        let not_default = LbConfig {
            default_class: false,
        };
        assert!(is_ours(
            &of(Some(LOAD_BALANCER_CLASS), "LoadBalancer"),
            &not_default
        ));
        assert!(!is_ours(&of(None, "LoadBalancer"), &not_default));
        assert!(is_ours(&of(None, "LoadBalancer"), &default));
        assert!(!is_ours(
            &of(Some("metallb.io/metallb"), "LoadBalancer"),
            &default
        ));
        assert!(!is_ours(
            &of(Some(LOAD_BALANCER_CLASS), "NodePort"),
            &default
        ));
        let mut deleting = of(Some(LOAD_BALANCER_CLASS), "LoadBalancer");
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert!(!is_ours(&deleting, &default));
    }

    #[test]
    fn a_dual_stack_request_reads_families_addresses_pools_key_and_ports() {
        let r = read(&service(json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": {
                ADDRESSES_ANNOTATION: "fd00::5, 10.0.0.5",
                POOL_ANNOTATION: "lan,backup",
                SHARING_ANNOTATION: "web"}},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6", "IPv4"],
                     "externalTrafficPolicy": "Local",
                     "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}, {"hostname": "x"}]}},
        })))
        .unwrap();
        assert_eq!(r.families, [Family::Ipv6, Family::Ipv4]);
        assert_eq!(
            r.requested[&Family::Ipv4],
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            r.requested[&Family::Ipv6],
            "fd00::5".parse::<IpAddr>().unwrap()
        );
        assert_eq!(r.pools, Some(vec!["lan".to_owned(), "backup".to_owned()]));
        assert_eq!(r.sharing_key.as_deref(), Some("web"));
        assert!(r.local);
        assert_eq!(
            r.ports,
            BTreeSet::from([("TCP".to_owned(), 80), ("UDP".to_owned(), 53)])
        );
        assert_eq!(r.ingress, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn requests_that_cannot_be_served_are_invalid_with_a_reason() {
        let with = |annotations: serde_json::Value, lb_ip: Option<&str>| {
            read(&service(json!({
                "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "loadBalancerIP": lb_ip},
            })))
        };
        for (annotations, lb_ip, says) in [
            (
                json!({ADDRESSES_ANNOTATION: "10.0.0.300"}),
                None,
                "not an IP address",
            ),
            (
                json!({ADDRESSES_ANNOTATION: "10.0.0.5,10.0.0.6"}),
                None,
                "one per family",
            ),
            (json!({ADDRESSES_ANNOTATION: "fd00::5"}), None, "no IPv6"),
            (
                json!({ADDRESSES_ANNOTATION: "10.0.0.5"}),
                Some("10.0.0.6"),
                "set one of the two",
            ),
            (json!({}), Some("ten"), "not an IP address"),
        ] {
            let f = with(annotations, lb_ip).unwrap_err();
            assert_eq!(f.reason, FailureReason::InvalidRequest);
            assert!(f.message.contains(says), "{}", f.message);
        }
        let r = with(json!({}), Some("10.0.0.6")).unwrap();
        assert_eq!(r.requested.len(), 1);
        assert_eq!(r.families, [Family::Ipv4]);
    }
}
