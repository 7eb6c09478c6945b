//! kube-vrrp lab: network namespaces, keepalived peers, measurements.

pub mod netns;
