//! kube-vrrp lab: network namespaces, keepalived peers, measurements.
