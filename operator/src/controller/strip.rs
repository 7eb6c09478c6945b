//! What the reflector stores keep of each object: only what a pass reads. Applied to every
//! watch event before it reaches a store (`WatchStreamExt::modify`), so the operator's memory
//! grows with what it plans from, not with what the cluster holds (images and most conditions of
//! Nodes, Service selectors, EndpointSlice topology, managed fields). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Namespace, Node, NodeCondition, NodeSpec, NodeStatus, Service, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{EndpointConditions, EndpointSlice};
use kube::api::ObjectMeta;
use kube_vrrp_crds::{VirtualIp, VirtualIpPool, VirtualServer, VrrpNode, VrrpNodeSpec};

/// kubectl's copy of the whole object, in an annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Annotations of ours on Services (requested addresses, pools, sharing key).
const KUBE_VRRP_PREFIX: &str = "kubevrrp.io/";

/// The identity a store needs (name, namespace, uid, resourceVersion, generation, creation
/// time), plus the labels and annotations `keep` lets through.
fn identity(meta: &ObjectMeta, keep_label: impl Fn(&str) -> bool) -> ObjectMeta {
    let labels: BTreeMap<String, String> = meta
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| keep_label(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        generation: meta.generation,
        creation_timestamp: meta.creation_timestamp.clone(),
        labels: (!labels.is_empty()).then_some(labels),
        ..ObjectMeta::default()
    }
}

/// Drops managed fields and kubectl's last-applied copy; keeps everything else.
fn lighten(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A VirtualIP: spec and status are read; managed fields and kubectl's copy are not.
pub fn virtual_ip(vip: &mut VirtualIp) {
    lighten(&mut vip.metadata);
}

/// A VirtualServer: as a VirtualIP.
pub fn virtual_server(vs: &mut VirtualServer) {
    lighten(&mut vs.metadata);
}

/// A Node: its name, labels, addresses (the node's own addresses, which no VIP may take;
/// InternalIPs are the unicast peers), whether it is cordoned, and the status of its Ready
/// condition without its timestamps (a heartbeat changes nothing the planner reads).
pub fn node(node: &mut Node) {
    let status = node.status.as_ref();
    let addresses = status.and_then(|s| s.addresses.clone());
    let conditions = status.and_then(|s| s.conditions.as_ref()).map(|all| {
        all.iter()
            .filter(|c| c.type_ == "Ready")
            .map(|c| NodeCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                ..NodeCondition::default()
            })
            .collect::<Vec<_>>()
    });
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable);
    node.metadata = identity(&node.metadata, |_| true);
    node.spec = unschedulable.map(|u| NodeSpec {
        unschedulable: Some(u),
        ..NodeSpec::default()
    });
    node.status = Some(NodeStatus {
        addresses,
        conditions,
        ..NodeStatus::default()
    });
}

/// A Service: its name and ports (the planner maps a numbered backendRef port to a port name);
/// a Service of type LoadBalancer also keeps what load balancing reads: its creation time,
/// labels (pool selectors), kube-vrrp annotations, class, requested address, families,
/// traffic policy and its load balancer status.
pub fn service(service: &mut Service) {
    let spec = service.spec.take().unwrap_or_default();
    let load_balancer = spec.type_.as_deref() == Some("LoadBalancer");
    let mut meta = identity(&service.metadata, |_| load_balancer);
    if load_balancer {
        meta.deletion_timestamp
            .clone_from(&service.metadata.deletion_timestamp);
        let ours: BTreeMap<String, String> = service
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(KUBE_VRRP_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        meta.annotations = (!ours.is_empty()).then_some(ours);
    }
    service.metadata = meta;
    service.spec = Some(if load_balancer {
        ServiceSpec {
            ports: spec.ports,
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            load_balancer_ip: spec.load_balancer_ip,
            ip_families: spec.ip_families,
            external_traffic_policy: spec.external_traffic_policy,
            ..ServiceSpec::default()
        }
    } else {
        ServiceSpec {
            ports: spec.ports,
            type_: spec.type_,
            ..ServiceSpec::default()
        }
    });
    if !load_balancer {
        service.status = None;
    } else if let Some(status) = service.status.as_mut() {
        status.conditions = None;
    }
}

/// A Namespace: its name and labels (pools select Services by their namespace's labels).
pub fn namespace(namespace: &mut Namespace) {
    namespace.metadata = identity(&namespace.metadata, |_| true);
    namespace.spec = None;
    namespace.status = None;
}

/// A VirtualIPPool: as a VirtualIP.
pub fn virtual_ip_pool(pool: &mut VirtualIpPool) {
    lighten(&mut pool.metadata);
}

/// An EndpointSlice: its Service label, address type, ports, and each endpoint's addresses
/// and readiness.
pub fn endpoint_slice(slice: &mut EndpointSlice) {
    slice.metadata = identity(&slice.metadata, |k| k == SERVICE_NAME_LABEL);
    for endpoint in &mut slice.endpoints {
        endpoint.conditions = endpoint.conditions.as_ref().map(|c| EndpointConditions {
            ready: c.ready,
            ..EndpointConditions::default()
        });
        endpoint.deprecated_topology = None;
        endpoint.hints = None;
        endpoint.hostname = None;
        endpoint.node_name = None;
        endpoint.target_ref = None;
        endpoint.zone = None;
    }
}

/// A VrrpNode: its status, generation and spec digest, and when each manager last wrote
/// (without the field sets). The spec itself, one resolved instance per VirtualIP on the node,
/// is dropped: the digest annotation says what it holds.
pub fn vrrp_node(node: &mut VrrpNode) {
    node.spec = VrrpNodeSpec::default();
    for entry in node.metadata.managed_fields.iter_mut().flatten() {
        entry.fields_v1 = None;
    }
    if let Some(annotations) = node.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            node.metadata.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::digest::SPEC_DIGEST_ANNOTATION;
    use super::*;

    #[test]
    fn a_node_keeps_its_name_labels_addresses_cordon_and_readiness_only() {
        let mut n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"zone": "a"}, "annotations": {"big": "x"},
                         "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
            "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": true},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "192.0.2.1"},
                              {"type": "ExternalIP", "address": "198.51.100.1"},
                              {"type": "Hostname", "address": "n1"}],
                "images": [{"names": ["registry/app:1"], "sizeBytes": 1}],
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": "2026-11-30T00:00:00Z", "reason": "KubeletReady"},
                               {"type": "MemoryPressure", "status": "False"}],
            },
        }))
        .unwrap();
        node(&mut n);
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"zone": "a"}},
                "spec": {"unschedulable": true},
                "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"},
                                         {"type": "ExternalIP", "address": "198.51.100.1"},
                                         {"type": "Hostname", "address": "n1"}],
                           "conditions": [{"type": "Ready", "status": "True"}]},
            })
        );
    }

    #[test]
    fn a_service_keeps_its_ports_and_type_only() {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"kubevrrp.io/pool": "lan"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "type": "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}},
        }))
        .unwrap();
        service(&mut s);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"type": "ClusterIP",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            })
        );
    }

    #[test]
    fn a_load_balancer_keeps_what_load_balancing_reads() {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                         "creationTimestamp": "2026-11-22T03:00:00Z",
                         "labels": {"app": "web"},
                         "annotations": {"kubevrrp.io/pool": "lan", "team": "x", LAST_APPLIED: "{}"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "kubevrrp.io/vrrp",
                     "loadBalancerIP": "10.0.0.5", "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Local",
                     "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                     "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5", "ipMode": "VIP"}]},
                       "conditions": [{"type": "x", "status": "True", "reason": "r", "message": "",
                                       "lastTransitionTime": "2026-11-22T03:00:00Z"}]},
        }))
        .unwrap();
        service(&mut s);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                             "creationTimestamp": "2026-11-22T03:00:00Z",
                             "labels": {"app": "web"},
                             "annotations": {"kubevrrp.io/pool": "lan"}},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": "kubevrrp.io/vrrp",
                         "loadBalancerIP": "10.0.0.5", "ipFamilies": ["IPv4"],
                         "externalTrafficPolicy": "Local",
                         "ports": [{"port": 80, "nodePort": 30080}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5", "ipMode": "VIP"}]}},
            })
        );
    }

    #[test]
    fn an_endpoint_slice_keeps_its_service_ports_addresses_and_readiness() {
        let mut s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "web", "other": "x"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.1.0.5"], "nodeName": "n1", "zone": "a",
                           "targetRef": {"kind": "Pod", "name": "web-1"},
                           "conditions": {"ready": true, "serving": true, "terminating": false}}],
        }))
        .unwrap();
        endpoint_slice(&mut s);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-abc", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true}}],
            })
        );
    }

    #[test]
    fn a_vrrp_node_keeps_its_status_digest_and_write_times_but_not_its_spec() {
        let mut n: VrrpNode = serde_json::from_value(json!({
            "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VrrpNode",
            "metadata": {"name": "n1", "generation": 3,
                         "annotations": {SPEC_DIGEST_ANNOTATION: "00ff"},
                         "managedFields": [{"manager": "kube-vrrp-operator", "operation": "Apply",
                                            "time": "2026-11-22T03:00:00Z",
                                            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"instances": [{"name": "web", "virtualRouterID": 51, "version": 3,
                                    "addresses": ["10.0.0.50/24"], "priority": 100,
                                    "advertInterval": "1s", "preempt": true, "preemptDelay": "0s"}]},
            "status": {"observedGeneration": 3},
        }))
        .unwrap();
        vrrp_node(&mut n);
        assert!(n.spec.instances.is_empty());
        assert_eq!(n.metadata.generation, Some(3));
        assert_eq!(n.status.as_ref().unwrap().observed_generation, Some(3));
        assert_eq!(
            n.metadata.annotations.as_ref().unwrap()[SPEC_DIGEST_ANNOTATION],
            "00ff"
        );
        let entry = &n.metadata.managed_fields.as_ref().unwrap()[0];
        assert!(entry.fields_v1.is_none());
        assert!(entry.time.is_some(), "when the spec was written is kept");
    }

    #[test]
    fn a_virtual_ip_loses_managed_fields_and_kubectls_copy() {
        let mut v: VirtualIp = serde_json::from_value(json!({
            "apiVersion": "kubevrrp.io/v1alpha1", "kind": "VirtualIP",
            "metadata": {"name": "web", "annotations": {LAST_APPLIED: "{...}", "team": "net"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"addresses": ["10.0.0.50/24"]},
        }))
        .unwrap();
        virtual_ip(&mut v);
        assert!(v.metadata.managed_fields.is_none());
        assert_eq!(
            v.metadata.annotations,
            Some([("team".to_owned(), "net".to_owned())].into())
        );
        assert_eq!(v.spec.addresses, ["10.0.0.50/24"]);
    }
}
