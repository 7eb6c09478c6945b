//! kube-vrrp agent: the pure VRRP core (`vrrp`) and the node-side edges (`net`).

pub mod decode;
pub mod net;
pub mod vrrp;
