//! kube-vrrp-agent binary entry point.
fn main() {}
