//! kube-vrrp agent: the pure VRRP core (`vrrp`) and the node-side edges (`net`).

pub mod check;
pub mod decode;
pub mod net;
pub mod report;
pub mod vrrp;
