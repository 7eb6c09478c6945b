//! Where the agent's configuration comes from. Every source (the manifests directory of
//! standalone mode, or the node's `VrrpNode` watch in `cluster`) resolves a `VrrpNodeSpec` with
//! [`resolve::resolve`] (instance by instance: a bad one is rejected alone) and publishes the
//! result into one [`ConfigSender`]; the driver reads the matching [`ConfigUpdates`] and never
//! knows which source it runs on.

pub mod dir_changes;
pub mod resolve;
pub mod standalone;

use std::sync::Arc;

use tokio::sync::watch;

use crate::driver::DesiredConfig;

/// The latest good configuration; `None` until a source has loaded one.
pub type ConfigUpdates = watch::Receiver<Option<Arc<DesiredConfig>>>;
/// The publishing side of [`ConfigUpdates`].
pub type ConfigSender = watch::Sender<Option<Arc<DesiredConfig>>>;

/// A new channel with nothing loaded yet.
pub fn channel() -> (ConfigSender, ConfigUpdates) {
    watch::channel(None)
}

/// Publishes `config` unless it equals the current one (so the driver is woken only for a
/// real change). Returns whether it was published.
pub fn publish(sender: &ConfigSender, config: DesiredConfig) -> bool {
    sender.send_if_modified(|current| {
        if current.as_deref() == Some(&config) {
            false
        } else {
            *current = Some(Arc::new(config));
            true
        }
    })
}
