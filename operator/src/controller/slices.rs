//! The EndpointSlices of the Services that VirtualServers name as backends, and no others:
//! one watch with the label selector `kubernetes.io/service-name in (...)`, restarted when the
//! set of names changes, each slice stripped to what the planner reads. Cluster-wide, because
//! the names come from any namespace; a same-named Service in another namespace costs a few
//! stripped slices, and the planner matches the namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as make_watcher};
use kube::{Client, ResourceExt};
use kube_vrrp_crds::VirtualServer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::strip;

/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

type Slices = BTreeMap<(String, String), Arc<EndpointSlice>>;

/// The names of the Services `virtual_servers` use as backends.
pub fn backend_names<'a>(
    virtual_servers: impl IntoIterator<Item = &'a VirtualServer>,
) -> BTreeSet<String> {
    virtual_servers
        .into_iter()
        .filter_map(|vs| vs.spec.backend_ref.as_ref())
        .map(|backend| backend.name.clone())
        .collect()
}

/// The label selector for the slices of the Services named `names`.
pub fn selector(names: &BTreeSet<String>) -> String {
    format!(
        "{SERVICE_NAME_LABEL} in ({})",
        names
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The slices of the backend Services, kept up to date by a background task.
pub(super) struct BackendSlices {
    wanted: watch::Sender<BTreeSet<String>>,
    slices: Arc<Mutex<Slices>>,
    listed: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl BackendSlices {
    /// Starts the task; every change to the slices sends on `changed`. Nothing is watched
    /// until [`BackendSlices::want`] names a Service.
    pub(super) fn start(client: Client, changed: mpsc::Sender<()>) -> Self {
        let (wanted, wanted_rx) = watch::channel(BTreeSet::new());
        let (listed_tx, listed) = watch::channel(false);
        let slices = Arc::new(Mutex::new(Slices::new()));
        let task = tokio::spawn(follow(
            client,
            wanted_rx,
            Arc::clone(&slices),
            listed_tx,
            changed,
        ));
        Self {
            wanted,
            slices,
            listed,
            task,
        }
    }

    /// Follows the slices of exactly `names` from now on (a new set restarts the watch).
    pub(super) fn want(&self, names: BTreeSet<String>) {
        self.wanted.send_if_modified(|current| {
            let changed = *current != names;
            *current = names;
            changed
        });
    }

    /// The slices held now (shared, not copied).
    pub(super) fn snapshot(&self) -> Vec<Arc<EndpointSlice>> {
        lock(&self.slices).values().cloned().collect()
    }

    /// Resolves once the wanted set (as of the last [`BackendSlices::want`]) is listed.
    pub(super) async fn wait_until_listed(&self) -> bool {
        let mut listed = self.listed.clone();
        listed.wait_for(|done| *done).await.is_ok()
    }
}

impl Drop for BackendSlices {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(slices: &Mutex<Slices>) -> std::sync::MutexGuard<'_, Slices> {
    slices.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn follow(
    client: Client,
    mut wanted: watch::Receiver<BTreeSet<String>>,
    slices: Arc<Mutex<Slices>>,
    listed: watch::Sender<bool>,
    changed: mpsc::Sender<()>,
) {
    loop {
        let names = wanted.borrow_and_update().clone();
        listed.send_replace(false);
        if names.is_empty() {
            lock(&slices).clear();
            listed.send_replace(true);
            let _ = changed.try_send(());
            if wanted.changed().await.is_err() {
                return;
            }
            continue;
        }
        let api: Api<EndpointSlice> = Api::all(client.clone());
        let config = watcher::Config::default().labels(&selector(&names));
        let stream = make_watcher(api, config)
            .modify(strip::endpoint_slice)
            .backoff(kube_vrrp_crds::watch_backoff::WatchBackoff::default());
        tokio::pin!(stream);
        let mut listing = Slices::new();
        loop {
            let event = tokio::select! {
                result = wanted.changed() => {
                    if result.is_err() {
                        return;
                    }
                    break;
                }
                event = stream.next() => event,
            };
            let Some(event) = event else {
                return;
            };
            let key =
                |slice: &EndpointSlice| (slice.namespace().unwrap_or_default(), slice.name_any());
            match event {
                Ok(Event::Init) => listing.clear(),
                Ok(Event::InitApply(slice)) => {
                    listing.insert(key(&slice), Arc::new(slice));
                }
                Ok(Event::InitDone) => {
                    *lock(&slices) = std::mem::take(&mut listing);
                    listed.send_replace(true);
                    let _ = changed.try_send(());
                }
                Ok(Event::Apply(slice)) => {
                    lock(&slices).insert(key(&slice), Arc::new(slice));
                    let _ = changed.try_send(());
                }
                Ok(Event::Delete(slice)) => {
                    lock(&slices).remove(&key(&slice));
                    let _ = changed.try_send(());
                }
                Err(error) => {
                    tracing::warn!(%error, "EndpointSlice watch error; retrying with backoff");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_names_every_backend_service_once() {
        let vs = |backend: Option<&str>| -> VirtualServer {
            let mut spec = serde_json::json!({"virtualIPRef": "web", "port": 80,
                                              "realServers": [{"address": "10.0.0.1"}]});
            if let Some(name) = backend {
                spec["backendRef"] = serde_json::json!({"namespace": "shop", "name": name});
            }
            VirtualServer::new("vs", serde_json::from_value(spec).unwrap())
        };
        let servers = [vs(Some("web")), vs(None), vs(Some("api")), vs(Some("web"))];
        let names = backend_names(&servers);
        assert_eq!(selector(&names), "kubernetes.io/service-name in (api,web)");
    }
}
