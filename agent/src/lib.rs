//! kube-vrrp agent: the pure VRRP core (`vrrp`), the node-side edges (`net`), trackers
//! (`check`), reports (`report`), configuration sources (`source`), process tuning (`process`),
//! memory released after configuration changes (`memory`) and the runtime that ties them
//! together (`driver`).

pub mod check;
pub mod checksum;
pub mod cluster;
pub mod decode;
pub mod driver;
pub mod ipvs;
pub mod memory;
pub mod net;
pub mod process;
pub mod report;
pub mod source;
pub mod vrrp;
