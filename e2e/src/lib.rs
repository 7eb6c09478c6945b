//! kube-vrrp lab: network namespaces, keepalived and agent peers, probes and measurements.

pub mod addressing;
pub mod error;
pub mod instance;
pub mod lab;
mod mac;
pub mod netns;
pub mod probe;
pub mod process;

pub use error::LabError;
pub use instance::{InstanceSpec, Version};
pub use lab::{Lab, LabSpec};
pub use mac::{Mac, ParseMacError};
