//! Raw link state of the interfaces instances run on: one rtnetlink subscription, fanned out
//! to instance tasks through one watch channel per interface. Debouncing is the instance
//! task's (each has its own [`crate::net::link::LinkDebounce`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::net::NetError;
use crate::net::link::{LinkEvent, LinkEvents, LinkState, Links};

type Watchers = Arc<Mutex<HashMap<u32, watch::Sender<LinkState>>>>;

/// The running link watch. Cheap to clone; the watch task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct LinkMonitor {
    watchers: Watchers,
    _task: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LinkMonitor {
    /// Subscribes to link notifications in the calling thread's namespace and starts the task
    /// that publishes them. Must be called inside a tokio runtime.
    pub fn start(links: Links) -> Result<Self, NetError> {
        let events = LinkEvents::subscribe()?;
        let watchers: Watchers = Arc::default();
        let task = tokio::spawn(watch_links(events, links, Arc::clone(&watchers)));
        Ok(Self {
            watchers,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The raw state of interface `ifindex`, starting from `current` (read by the caller after
    /// the subscription, so no change falls in between) when nobody watches it yet.
    pub fn watch(&self, ifindex: u32, current: LinkState) -> watch::Receiver<LinkState> {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers
            .entry(ifindex)
            .or_insert_with(|| watch::channel(current).0)
            .subscribe()
    }
}

fn publish(watchers: &Watchers, ifindex: u32, state: LinkState) {
    let watchers = watchers.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(sender) = watchers.get(&ifindex) {
        sender.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }
}

async fn watch_links(mut events: LinkEvents, links: Links, watchers: Watchers) {
    while let Some(event) = events.next().await {
        match event {
            LinkEvent::Changed { ifindex, state, .. } => publish(&watchers, ifindex, state),
            LinkEvent::Removed { ifindex, name } => {
                tracing::warn!(interface = %name, "interface removed");
                publish(&watchers, ifindex, LinkState::Down);
            }
            LinkEvent::Overrun => match links.all().await {
                Ok(all) => {
                    for link in all {
                        publish(&watchers, link.ifindex, link.state);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "re-reading links after a netlink overrun failed");
                }
            },
        }
    }
    tracing::error!("the link notification socket closed; link changes are no longer seen");
}
