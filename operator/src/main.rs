//! kube-vrrp-operator binary entry point.
fn main() {}
