//! kube-vrrp agent: the pure VRRP core (`vrrp`), the node-side edges (`net`), trackers
//! (`check`), reports (`report`), configuration sources (`source`), process tuning (`process`),
//! freed heap returned after configuration changes (`heap`) and the runtime that ties them
//! together (`driver`).

pub mod check;
pub mod checksum;
pub mod cluster;
pub mod decode;
pub mod driver;
pub mod heap;
pub mod ipvs;
pub mod net;
pub mod process;
pub mod report;
pub mod source;
pub mod vrrp;
