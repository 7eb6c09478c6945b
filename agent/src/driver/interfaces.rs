//! The node's interfaces as they change under the agent: one rtnetlink subscription to link and
//! address notifications, kept as a table (pure, [`InterfaceTable`]) and published per
//! interface NAME to whoever follows it (instance tasks, receive threads) and as a name → index
//! map to the driver, which re-binds instances when an interface comes back with a new index.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::net::NetError;
use crate::net::address::InterfaceAddress;
use crate::net::link::{InterfaceEvent, InterfaceEvents, Link, LinkState, Links};

/// One interface as the agent last saw it, looked up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceView {
    /// Its index; `None` while no interface has that name.
    pub ifindex: Option<u32>,
    /// IFF_UP && IFF_RUNNING; `Down` while it does not exist.
    pub state: LinkState,
    /// Its Ethernet address, if it has one.
    pub mac: Option<[u8; 6]>,
    /// Every address on it (both families, ours included), in the kernel's order. Shared: every
    /// unit on the interface holds the view, and a MASTER of 255 instances has 255 addresses
    /// on it (a copy per unit was 255 × 255 addresses).
    pub addresses: Arc<[InterfaceAddress]>,
}

impl InterfaceView {
    /// The view of a name no interface has.
    pub fn absent() -> Self {
        Self {
            ifindex: None,
            state: LinkState::Down,
            mac: None,
            addresses: Arc::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    state: LinkState,
    mac: Option<[u8; 6]>,
    addresses: Vec<InterfaceAddress>,
}

/// Every interface of the namespace by index, folded from a dump and the notifications that
/// follow it. Pure: events in, changed names out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceTable {
    by_index: BTreeMap<u32, Entry>,
}

impl InterfaceTable {
    /// The table of a full dump.
    pub fn from_links(links: &[Link]) -> Self {
        let by_index = links
            .iter()
            .map(|link| {
                (
                    link.ifindex,
                    Entry {
                        name: link.name.clone(),
                        state: link.state,
                        mac: link.mac,
                        addresses: link.addresses.clone(),
                    },
                )
            })
            .collect();
        Self { by_index }
    }

    /// Applies one notification; returns the names whose view it may have changed (an interface
    /// renamed changes both names).
    pub fn apply(&mut self, event: &InterfaceEvent) -> Vec<String> {
        match event {
            InterfaceEvent::Changed {
                ifindex,
                name,
                state,
                mac,
            } => {
                let entry = self.by_index.entry(*ifindex).or_insert_with(|| Entry {
                    name: name.clone(),
                    state: *state,
                    mac: *mac,
                    addresses: Vec::new(),
                });
                let mut changed = vec![name.clone()];
                if entry.name != *name && !name.is_empty() {
                    changed.push(std::mem::replace(&mut entry.name, name.clone()));
                }
                entry.state = *state;
                if mac.is_some() {
                    entry.mac = *mac;
                }
                changed
            }
            InterfaceEvent::Removed { ifindex, name } => {
                let removed = self.by_index.remove(ifindex).map(|entry| entry.name);
                removed.into_iter().chain([name.clone()]).collect()
            }
            InterfaceEvent::AddressAdded(address) => {
                let Some(entry) = self.by_index.get_mut(&address.ifindex) else {
                    return Vec::new();
                };
                match entry
                    .addresses
                    .iter_mut()
                    .find(|present| present.address == address.address)
                {
                    Some(present) => *present = address.clone(),
                    None => entry.addresses.push(address.clone()),
                }
                vec![entry.name.clone()]
            }
            InterfaceEvent::AddressRemoved(address) => {
                let Some(entry) = self.by_index.get_mut(&address.ifindex) else {
                    return Vec::new();
                };
                entry
                    .addresses
                    .retain(|present| present.address != address.address);
                vec![entry.name.clone()]
            }
            InterfaceEvent::Overrun => Vec::new(),
        }
    }

    /// The interface named `name`, or [`InterfaceView::absent`].
    pub fn view(&self, name: &str) -> InterfaceView {
        self.by_index
            .iter()
            .find(|(_, entry)| entry.name == name)
            .map_or_else(InterfaceView::absent, |(ifindex, entry)| InterfaceView {
                ifindex: Some(*ifindex),
                state: entry.state,
                mac: entry.mac,
                addresses: entry.addresses.as_slice().into(),
            })
    }

    /// Every interface's name and index.
    pub fn indexes(&self) -> BTreeMap<String, u32> {
        self.by_index
            .iter()
            .map(|(ifindex, entry)| (entry.name.clone(), *ifindex))
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.by_index
            .values()
            .map(|entry| entry.name.clone())
            .collect()
    }
}

struct Shared {
    table: InterfaceTable,
    followers: HashMap<String, watch::Sender<InterfaceView>>,
}

/// The running interface watch. Cheap to clone; the watch task stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct InterfaceWatch {
    shared: Arc<Mutex<Shared>>,
    indexes: watch::Receiver<BTreeMap<String, u32>>,
    _task: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for InterfaceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceWatch").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl InterfaceWatch {
    /// Subscribes to interface notifications in the calling thread's namespace, reads every
    /// interface, and starts the task that follows them. Must be called inside a tokio runtime.
    pub async fn start(links: Links) -> Result<Self, NetError> {
        let events = InterfaceEvents::subscribe()?;
        // Read after subscribing: notifications queued meanwhile are applied on top of the dump,
        // and each carries its object's state at that moment, so the last one wins.
        let table = InterfaceTable::from_links(&links.all().await?);
        let (indexes_tx, indexes) = watch::channel(table.indexes());
        let shared = Arc::new(Mutex::new(Shared {
            table,
            followers: HashMap::new(),
        }));
        let task = tokio::spawn(follow(events, links, Arc::clone(&shared), indexes_tx));
        Ok(Self {
            shared,
            indexes,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The interface named `name` now and as it changes.
    pub fn follow(&self, name: &str) -> watch::Receiver<InterfaceView> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let view = shared.table.view(name);
        shared
            .followers
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(view).0)
            .subscribe()
    }

    /// The interface named `name` now.
    pub fn view(&self, name: &str) -> InterfaceView {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.table.view(name)
    }

    /// Every interface's name → index, now and as interfaces come, go and are re-created.
    pub fn indexes(&self) -> watch::Receiver<BTreeMap<String, u32>> {
        self.indexes.clone()
    }
}

fn publish(shared: &mut Shared, names: &[String]) {
    shared.followers.retain(|_, sender| !sender.is_closed());
    for name in names {
        if let Some(sender) = shared.followers.get(name) {
            let view = shared.table.view(name);
            sender.send_if_modified(|current| {
                let changed = *current != view;
                *current = view;
                changed
            });
        }
    }
}

async fn follow(
    mut events: InterfaceEvents,
    links: Links,
    shared: Arc<Mutex<Shared>>,
    indexes: watch::Sender<BTreeMap<String, u32>>,
) {
    while let Some(event) = events.next().await {
        let fresh = if event == InterfaceEvent::Overrun {
            match links.all().await {
                Ok(all) => Some(InterfaceTable::from_links(&all)),
                Err(error) => {
                    tracing::warn!(%error, "re-reading interfaces after a netlink overrun failed");
                    None
                }
            }
        } else {
            None
        };
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let names = match fresh {
            Some(table) => {
                let mut names = shared.table.names();
                names.extend(table.names());
                shared.table = table;
                names
            }
            None => shared.table.apply(&event),
        };
        publish(&mut shared, &names);
        let now = shared.table.indexes();
        indexes.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
    }
    tracing::error!(
        "the interface notification socket closed; interface changes are no longer seen"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(ifindex: u32, text: &str) -> InterfaceAddress {
        InterfaceAddress {
            ifindex,
            address: text.parse().unwrap(),
            flags: 0,
            label: None,
            protocol: 0,
        }
    }

    fn link_up(ifindex: u32, name: &str) -> InterfaceEvent {
        InterfaceEvent::Changed {
            ifindex,
            name: name.into(),
            state: LinkState::Up,
            mac: Some([2, 0, 0, 0, 0, 1]),
        }
    }

    #[test]
    fn addresses_come_and_go_on_the_interface_that_carries_them() {
        let mut table = InterfaceTable::default();
        table.apply(&link_up(2, "eth0"));
        let changed = table.apply(&InterfaceEvent::AddressAdded(address(2, "192.0.2.1/24")));
        assert_eq!(changed, ["eth0"]);
        table.apply(&InterfaceEvent::AddressAdded(address(2, "192.0.2.11/24")));
        table.apply(&InterfaceEvent::AddressRemoved(address(2, "192.0.2.1/24")));
        let view = table.view("eth0");
        assert_eq!(view.ifindex, Some(2));
        assert_eq!(*view.addresses, [address(2, "192.0.2.11/24")]);
    }

    #[test]
    fn a_changed_address_replaces_the_old_entry_instead_of_adding_one() {
        let mut table = InterfaceTable::default();
        table.apply(&link_up(2, "eth0"));
        let mut tentative = address(2, "fe80::1/64");
        tentative.flags = 0x40;
        table.apply(&InterfaceEvent::AddressAdded(tentative));
        table.apply(&InterfaceEvent::AddressAdded(address(2, "fe80::1/64")));
        assert_eq!(*table.view("eth0").addresses, [address(2, "fe80::1/64")]);
    }

    #[test]
    fn an_interface_recreated_under_its_name_shows_its_new_index_and_no_old_addresses() {
        let mut table = InterfaceTable::default();
        table.apply(&link_up(2, "eth0"));
        table.apply(&InterfaceEvent::AddressAdded(address(2, "192.0.2.1/24")));
        table.apply(&InterfaceEvent::Removed {
            ifindex: 2,
            name: "eth0".into(),
        });
        assert_eq!(table.view("eth0"), InterfaceView::absent());
        assert!(table.indexes().is_empty());
        table.apply(&link_up(9, "eth0"));
        let view = table.view("eth0");
        assert_eq!(view.ifindex, Some(9));
        assert!(view.addresses.is_empty());
        assert_eq!(table.indexes(), BTreeMap::from([("eth0".to_owned(), 9)]));
    }

    #[test]
    fn a_renamed_interface_changes_both_names() {
        let mut table = InterfaceTable::default();
        table.apply(&link_up(2, "eth0"));
        let changed = table.apply(&link_up(2, "lan0"));
        assert_eq!(changed, ["lan0", "eth0"]);
        assert_eq!(table.view("eth0"), InterfaceView::absent());
        assert_eq!(table.view("lan0").ifindex, Some(2));
    }

    #[test]
    fn addresses_of_an_unknown_interface_change_nothing() {
        let mut table = InterfaceTable::default();
        let changed = table.apply(&InterfaceEvent::AddressAdded(address(7, "10.0.0.1/8")));
        assert!(changed.is_empty());
        assert_eq!(table, InterfaceTable::default());
    }
}
