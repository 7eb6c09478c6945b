//! The configuration source of cluster mode: watches only this node's `VrrpNode` (field
//! selector `metadata.name=<node>`), reads the v2 passwords from the Secrets its spec names,
//! and publishes the resolved configuration exactly like the standalone source does.
//!
//! A deleted (or absent) `VrrpNode` publishes an empty configuration: every instance leaves
//! gracefully. When the API server cannot be reached the watch retries with kube's default
//! backoff (0.8 s doubling to 30 s), logging each failed attempt once, and the last
//! configuration stays in force.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use kube_vrrp_crds::{SecretKeyRef, VrrpNode, VrrpNodeSpec, VrrpVersion};
use tokio::sync::watch;

use super::ClusterError;
use crate::driver::DesiredConfig;
use crate::source::resolve::desired_config;
use crate::source::{ConfigSender, publish};

/// The first wait before a configuration that could not be resolved (e.g. a Secret read
/// failed) is tried again; doubled per failure up to [`RESOLVE_RETRY_MAX`].
pub const RESOLVE_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to resolve the same configuration.
pub const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(30);

/// The field selector that narrows the list/watch to one node's `VrrpNode`.
pub fn field_selector(node: &str) -> String {
    format!("metadata.name={node}")
}

/// Secret values by (namespace, name, key).
type SecretValues = BTreeMap<(String, String, String), Vec<u8>>;

/// What the watch last saw of the node's object.
#[derive(Debug, Clone)]
enum Seen {
    Present(Box<VrrpNode>),
    Absent,
}

/// Watches one node's `VrrpNode` and publishes its resolved configuration.
pub struct SpecWatch {
    client: Client,
    node: String,
    node_addresses: Vec<IpAddr>,
    generation: watch::Sender<Option<i64>>,
    /// The last spec published (to skip re-resolving on status-only updates).
    resolved: Option<VrrpNodeSpec>,
}

impl std::fmt::Debug for SpecWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWatch")
            .field("node", &self.node)
            .field("node_addresses", &self.node_addresses)
            .finish_non_exhaustive()
    }
}

impl SpecWatch {
    /// A watch of the `VrrpNode` named `node`, and the receiver of the spec generation in
    /// force (`None` until a spec was published, and after the object is deleted).
    pub fn new(
        client: Client,
        node: String,
        node_addresses: Vec<IpAddr>,
    ) -> (Self, watch::Receiver<Option<i64>>) {
        let (generation, receiver) = watch::channel(None);
        let watch = Self {
            client,
            node,
            node_addresses,
            generation,
            resolved: None,
        };
        (watch, receiver)
    }

    /// Watches and publishes into `sender` until the receiving side is gone.
    pub async fn run(mut self, sender: ConfigSender) {
        let api: Api<VrrpNode> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&field_selector(&self.node));
        let stream = watcher::watcher(api, config).default_backoff();
        tokio::pin!(stream);
        let mut listed: Option<VrrpNode> = None;
        let mut failures: u32 = 0;
        let mut pending: Option<(Seen, tokio::time::Instant, u32)> = None;
        loop {
            let retry = async {
                match &pending {
                    Some((_, at, _)) => tokio::time::sleep_until(*at).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                () = sender.closed() => return,
                () = retry => {
                    if let Some((seen, _, attempts)) = pending.take() {
                        pending = self.apply(&sender, seen, attempts).await;
                    }
                    continue;
                }
                event = stream.next() => event,
            };
            let Some(event) = event else {
                tracing::error!(node = %self.node, "the VrrpNode watch ended; running with the last configuration");
                return;
            };
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(node = %self.node, %error, attempt = failures, "cannot watch the VrrpNode; the last configuration stays in force, retrying with backoff");
                    continue;
                }
            };
            if failures > 0 {
                tracing::info!(node = %self.node, failures, "VrrpNode watch restored");
                failures = 0;
            }
            let seen = match event {
                Event::Init => {
                    listed = None;
                    continue;
                }
                Event::InitApply(object) => {
                    if object.name_any() == self.node {
                        listed = Some(object);
                    }
                    continue;
                }
                Event::InitDone => {
                    // A relist: resolve again even if the spec is unchanged (a Secret may have
                    // been rotated).
                    self.resolved = None;
                    listed
                        .take()
                        .map_or(Seen::Absent, |o| Seen::Present(Box::new(o)))
                }
                Event::Apply(object) => {
                    if object.name_any() != self.node {
                        continue;
                    }
                    Seen::Present(Box::new(object))
                }
                Event::Delete(object) => {
                    if object.name_any() != self.node {
                        continue;
                    }
                    Seen::Absent
                }
            };
            pending = self.apply(&sender, seen, 0).await;
        }
    }

    /// Resolves and publishes what was seen. On failure returns the retry to schedule (the
    /// last good configuration stays in force meanwhile).
    async fn apply(
        &mut self,
        sender: &ConfigSender,
        seen: Seen,
        attempts: u32,
    ) -> Option<(Seen, tokio::time::Instant, u32)> {
        let object = match &seen {
            Seen::Absent => {
                self.resolved = None;
                self.generation.send_replace(None);
                let empty = DesiredConfig {
                    instances: Vec::new(),
                    node_addresses: self.node_addresses.clone(),
                    virtual_servers: Vec::new(),
                };
                if publish(sender, empty) {
                    tracing::info!(node = %self.node, "no VrrpNode for this node: every instance leaves");
                }
                return None;
            }
            Seen::Present(object) => object,
        };
        let generation = object.metadata.generation;
        if self.resolved.as_ref() == Some(&object.spec) {
            self.generation.send_replace(generation);
            return None;
        }
        match self.resolve(&object.spec).await {
            Ok(config) => {
                let count = config.instances.len();
                self.resolved = Some(object.spec.clone());
                self.generation.send_replace(generation);
                if publish(sender, config) {
                    tracing::info!(node = %self.node, ?generation, instances = count, "configuration loaded from the VrrpNode");
                }
                None
            }
            Err(error) => {
                let attempts = attempts.saturating_add(1);
                let delay = resolve_retry_delay(attempts);
                tracing::error!(node = %self.node, ?generation, %error, attempt = attempts, retry_in = ?delay, "VrrpNode spec rejected; the last good configuration stays in force");
                Some((seen, tokio::time::Instant::now() + delay, attempts))
            }
        }
    }

    async fn resolve(&self, spec: &VrrpNodeSpec) -> Result<DesiredConfig, ClusterError> {
        let secrets = self.read_secrets(spec).await?;
        let config = desired_config(spec, self.node_addresses.clone(), |key| {
            secrets
                .get(&(key.namespace.clone(), key.name.clone(), key.key.clone()))
                .map(Vec::as_slice)
        })
        .map_err(ClusterError::Instances)?;
        Ok(crate::source::without_endpoint_trackers(config))
    }

    /// Gets every Secret a v2 instance of `spec` names, once each. A missing Secret or key is
    /// left out (resolution then names the instance); an API error fails the whole read.
    async fn read_secrets(&self, spec: &VrrpNodeSpec) -> Result<SecretValues, ClusterError> {
        let mut values = SecretValues::new();
        let mut fetched: BTreeMap<(String, String), Option<Secret>> = BTreeMap::new();
        for key in secret_refs(spec) {
            let id = (key.namespace.clone(), key.name.clone());
            if !fetched.contains_key(&id) {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
                let secret =
                    api.get_opt(&key.name)
                        .await
                        .map_err(|source| ClusterError::Secret {
                            namespace: key.namespace.clone(),
                            name: key.name.clone(),
                            source,
                        })?;
                fetched.insert(id.clone(), secret);
            }
            let value = fetched
                .get(&id)
                .and_then(Option::as_ref)
                .and_then(|secret| secret.data.as_ref())
                .and_then(|data| data.get(&key.key));
            if let Some(value) = value {
                values.insert((id.0, id.1, key.key.clone()), value.0.clone());
            }
        }
        Ok(values)
    }
}

/// The Secret keys the v2 instances of `spec` need (v3 carries no authentication).
pub fn secret_refs(spec: &VrrpNodeSpec) -> Vec<&SecretKeyRef> {
    spec.instances
        .iter()
        .filter(|instance| instance.version == VrrpVersion::V2)
        .filter_map(|instance| instance.authentication.as_ref())
        .map(|auth| &auth.password_secret_ref)
        .collect()
}

/// The wait before the `attempts`-th retry of a rejected configuration.
pub fn resolve_retry_delay(attempts: u32) -> Duration {
    RESOLVE_RETRY_MIN
        .saturating_mul(1_u32 << attempts.saturating_sub(1).min(16))
        .min(RESOLVE_RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use kube_vrrp_crds::{AuthType, Authentication, DurationString, Garp, Track, VrrpInstance};

    use super::*;

    fn instance(name: &str, version: VrrpVersion, secret: Option<&str>) -> VrrpInstance {
        VrrpInstance {
            name: name.into(),
            interface: None,
            virtual_router_id: 51,
            version,
            addresses: vec!["10.0.0.50/24".into()],
            priority: 100,
            advert_interval: DurationString::new("1s"),
            preempt: true,
            preempt_delay: DurationString::new("0s"),
            accept_mode: false,
            unicast_peers: Vec::new(),
            authentication: secret.map(|name| Authentication {
                auth_type: AuthType::Pass,
                password_secret_ref: SecretKeyRef {
                    namespace: "kube-vrrp".into(),
                    name: name.into(),
                    key: "password".into(),
                },
            }),
            garp: Garp::default(),
            sync_group: None,
            use_virtual_mac: false,
            track: Track::default(),
        }
    }

    #[test]
    fn the_field_selector_names_only_this_node() {
        assert_eq!(field_selector("node-a"), "metadata.name=node-a");
    }

    #[test]
    fn only_v2_instances_with_authentication_need_a_secret() {
        let spec = VrrpNodeSpec {
            instances: vec![
                instance("v2-auth", VrrpVersion::V2, Some("auth")),
                instance("v2-open", VrrpVersion::V2, None),
                instance("v3", VrrpVersion::V3, Some("ignored")),
            ],
            virtual_servers: Vec::new(),
        };
        let names: Vec<&str> = secret_refs(&spec).iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["auth"]);
    }

    #[test]
    fn the_resolve_retry_doubles_from_one_second_to_thirty() {
        let delays: Vec<u64> = (1..=7).map(|n| resolve_retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(resolve_retry_delay(u32::MAX), RESOLVE_RETRY_MAX);
    }
}
