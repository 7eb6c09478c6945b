//! kube-vrrp lab: network namespaces, keepalived and agent peers, probes and measurements.

pub mod addressing;
pub mod agent;
pub mod bench_record;
pub mod bench_table;
pub mod callgrind;
pub mod chaos;
pub mod cluster;
pub mod daemon;
pub mod error;
pub mod exposition;
pub mod guest;
pub mod handover;
pub mod http;
pub mod instance;
pub mod keepalived;
pub mod lab;
mod mac;
pub mod netns;
pub mod page_cache;
pub mod probe;
pub mod process;
pub mod resources;
pub mod scenario;
pub mod steady;
pub mod summary;
pub mod wake_cost;

pub use error::LabError;
pub use instance::{InstanceSpec, TrackFile, Version};
pub use lab::{Lab, LabSpec};
pub use mac::{Mac, ParseMacError};
