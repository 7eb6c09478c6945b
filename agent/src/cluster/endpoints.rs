//! `track.endpoints` in cluster mode: watches the EndpointSlices of exactly the Services the
//! node's trackers name (label selector `kubernetes.io/service-name in (...)`, in the one
//! namespace they share, else cluster-wide and filtered by namespace) and publishes, per
//! Service, whether it has a Ready endpoint on this node into the trackers'
//! [`EndpointReadiness`].
//!
//! Only one boolean per slice is kept, never the slices. A Service is known once its slices
//! are listed (a Service without slices has no endpoint: down). When the set of Services
//! changes the watch restarts with the new selector; until it has listed, the Services it
//! already knew keep their readiness and new ones stay unknown (their trackers pending). When
//! the API server is unreachable the last readiness stays, and the watch retries with kube's
//! default backoff.
//!
//! RBAC: list and watch of `discovery.k8s.io` EndpointSlices, cluster-wide. RBAC cannot narrow
//! a list or watch by label selector, and the Services can live in any namespace; the agent
//! itself only ever asks for the named Services' slices. EndpointSlices carry endpoint
//! addresses, ports and node names, no secrets.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use kube_vrrp_crds::ServiceRef;
use tokio::sync::watch;

use crate::check::EndpointReadiness;

/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The label selector for the slices of `services` (names only: namespaces are filtered
/// after, or narrowed by a namespaced watch).
pub fn label_selector(services: &BTreeSet<ServiceRef>) -> String {
    let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    format!(
        "{SERVICE_NAME_LABEL} in ({})",
        names.into_iter().collect::<Vec<_>>().join(",")
    )
}

/// The one namespace all `services` share, if they do.
pub fn shared_namespace(services: &BTreeSet<ServiceRef>) -> Option<&str> {
    let mut namespaces = services.iter().map(|s| s.namespace.as_str());
    let first = namespaces.next()?;
    namespaces.all(|n| n == first).then_some(first)
}

/// The Service a slice belongs to, and whether it has a Ready endpoint on `node` (an endpoint
/// whose `nodeName` is `node` and whose `ready` condition is not false: unknown counts as
/// ready, as the EndpointSlice API says). Pure.
pub fn slice_readiness(slice: &EndpointSlice, node: &str) -> Option<(ServiceRef, bool)> {
    let service = ServiceRef {
        namespace: slice.namespace()?,
        name: slice.labels().get(SERVICE_NAME_LABEL)?.clone(),
    };
    let ready = slice.endpoints.iter().any(|endpoint| {
        endpoint.node_name.as_deref() == Some(node)
            && endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false)
    });
    Some((service, ready))
}

/// Per wanted Service: ready when any of its slices is. Pure.
pub fn readiness_of(
    wanted: &BTreeSet<ServiceRef>,
    slices: &BTreeMap<(String, String), (ServiceRef, bool)>,
) -> BTreeMap<ServiceRef, bool> {
    wanted
        .iter()
        .map(|service| {
            let ready = slices
                .values()
                .any(|(owner, ready)| owner == service && *ready);
            (service.clone(), ready)
        })
        .collect()
}

/// Follows the EndpointSlices of the Services named by the node's trackers.
pub struct EndpointWatch {
    client: Client,
    node: String,
    services: watch::Receiver<BTreeSet<ServiceRef>>,
    readiness: EndpointReadiness,
}

impl std::fmt::Debug for EndpointWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointWatch")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl EndpointWatch {
    /// A watch for `node` of the Services `services` names, publishing into `readiness`.
    pub fn new(
        client: Client,
        node: String,
        services: watch::Receiver<BTreeSet<ServiceRef>>,
        readiness: EndpointReadiness,
    ) -> Self {
        Self {
            client,
            node,
            services,
            readiness,
        }
    }

    /// Watches until the sender of the Service set is gone.
    pub async fn run(mut self) {
        loop {
            let wanted = self.services.borrow_and_update().clone();
            if wanted.is_empty() {
                self.readiness.publish(BTreeMap::new());
            } else if self.follow(&wanted).await {
                // The wanted set changed: start over with the new selector.
                continue;
            }
            if self.services.changed().await.is_err() {
                return;
            }
        }
    }

    /// Watches the slices of `wanted` until the wanted set changes (true) or the watch ends
    /// for good (false).
    async fn follow(&mut self, wanted: &BTreeSet<ServiceRef>) -> bool {
        let api: Api<EndpointSlice> = match shared_namespace(wanted) {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        let selector = label_selector(wanted);
        tracing::info!(node = %self.node, %selector, "watching the EndpointSlices of tracked Services");
        let stream = watcher::watcher(api, watcher::Config::default().labels(&selector))
            .backoff(kube_vrrp_crds::watch_backoff::WatchBackoff::default());
        tokio::pin!(stream);
        let mut slices: BTreeMap<(String, String), (ServiceRef, bool)> = BTreeMap::new();
        let mut listing: BTreeMap<(String, String), (ServiceRef, bool)> = BTreeMap::new();
        let mut listed = false;
        let mut failures: u32 = 0;
        loop {
            let event = tokio::select! {
                changed = self.services.changed() => return changed.is_ok(),
                event = stream.next() => event,
            };
            let Some(event) = event else {
                tracing::error!(node = %self.node, "the EndpointSlice watch ended; endpoint trackers keep their last state");
                return false;
            };
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(node = %self.node, %error, attempt = failures, "cannot watch EndpointSlices; endpoint trackers keep their last state, retrying with backoff");
                    continue;
                }
            };
            failures = 0;
            let key =
                |slice: &EndpointSlice| (slice.namespace().unwrap_or_default(), slice.name_any());
            match event {
                Event::Init => listing.clear(),
                Event::InitApply(slice) => {
                    if let Some(entry) = slice_readiness(&slice, &self.node) {
                        listing.insert(key(&slice), entry);
                    }
                }
                Event::InitDone => {
                    slices = std::mem::take(&mut listing);
                    listed = true;
                }
                Event::Apply(slice) => match slice_readiness(&slice, &self.node) {
                    Some(entry) => {
                        slices.insert(key(&slice), entry);
                    }
                    None => {
                        slices.remove(&key(&slice));
                    }
                },
                Event::Delete(slice) => {
                    slices.remove(&key(&slice));
                }
            }
            if listed {
                self.readiness.publish(readiness_of(wanted, &slices));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(namespace: &str, name: &str) -> ServiceRef {
        ServiceRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn slice(name: &str, service: &str, endpoints: &serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "shop",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn the_selector_names_each_service_once_in_order() {
        let services = [
            service("shop", "web"),
            service("ops", "api"),
            service("ops", "web"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            label_selector(&services),
            "kubernetes.io/service-name in (api,web)"
        );
        assert_eq!(shared_namespace(&services), None);
        let one = [service("shop", "web"), service("shop", "api")]
            .into_iter()
            .collect();
        assert_eq!(shared_namespace(&one), Some("shop"));
    }

    #[test]
    fn a_service_is_ready_here_with_a_ready_or_unknown_endpoint_on_this_node() {
        let cases = [
            (
                json!([{"addresses": ["10.1.0.5"], "nodeName": "n1", "conditions": {"ready": true}}]),
                true,
            ),
            (json!([{"addresses": ["10.1.0.5"], "nodeName": "n1"}]), true),
            (
                json!([{"addresses": ["10.1.0.5"], "nodeName": "n1", "conditions": {"ready": false}}]),
                false,
            ),
            (
                json!([{"addresses": ["10.1.0.6"], "nodeName": "n2", "conditions": {"ready": true}}]),
                false,
            ),
            (json!([]), false),
        ];
        for (endpoints, ready) in cases {
            let s = slice("web-abc", "web", &endpoints);
            assert_eq!(
                slice_readiness(&s, "n1"),
                Some((service("shop", "web"), ready)),
                "{endpoints}"
            );
        }
    }

    #[test]
    fn a_wanted_service_is_ready_when_any_of_its_slices_is_and_down_without_slices() {
        let wanted = [service("shop", "web"), service("shop", "api")]
            .into_iter()
            .collect();
        let slices = [
            (
                ("shop".to_owned(), "web-1".to_owned()),
                (service("shop", "web"), false),
            ),
            (
                ("shop".to_owned(), "web-2".to_owned()),
                (service("shop", "web"), true),
            ),
            (
                ("ops".to_owned(), "api-1".to_owned()),
                (service("ops", "api"), true),
            ),
        ]
        .into_iter()
        .collect();
        let readiness = readiness_of(&wanted, &slices);
        assert_eq!(readiness.get(&service("shop", "web")), Some(&true));
        assert_eq!(
            readiness.get(&service("shop", "api")),
            Some(&false),
            "another namespace's api does not count"
        );
    }
}
