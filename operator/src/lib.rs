//! kube-vrrp operator: planning (pure), controllers, status folding.

pub mod controller;
pub mod fold;
pub mod http;
pub mod lease;
pub mod load_balancer;
pub mod metrics;
