//! kube-vrrp operator: planning (pure), controllers, status folding.

pub mod plan;
