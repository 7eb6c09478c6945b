//! The configuration source of cluster mode: watches only this node's `VrrpNode` (field
//! selector `metadata.name=<node>`), reads the v2 passwords from the Secrets its spec names,
//! and publishes the resolved configuration exactly like the standalone source does.
//!
//! - Instance by instance ([`resolve`]): an invalid instance, or one whose Secret cannot be
//!   read (missing, no such key, forbidden, API error), is rejected alone with its reason; the
//!   others follow every change, removals included. A rejected new version of a running
//!   instance leaves the running one in place. Secret problems are retried with backoff
//!   (1 s doubling to 30 s): the Secret may appear or be granted later.
//! - The applied configuration is kept on disk ([`super::last_config`]) when a state
//!   directory is set. At start-up, if the API server has not answered the first list within
//!   [`DISK_FALLBACK_AFTER`] (or answered with an error), the configuration on disk is run
//!   until the API returns; the first list then replaces it (unchanged instances keep running).
//! - A deleted (or absent) `VrrpNode` publishes an empty configuration: every instance leaves
//!   gracefully. When the API server cannot be reached the watch retries with kube's default
//!   backoff (0.8 s doubling to 30 s), logging each failed attempt once, and the last
//!   configuration stays in force.
//! - The roll call annotation is passed to the status writer, which echoes it; the Services
//!   named by `track.endpoints` of the accepted instances are passed to the EndpointSlice watch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use kube_vrrp_crds::backoff::doubling;
use kube_vrrp_crds::{
    ROLL_CALL_ANNOTATION, SecretKeyRef, ServiceRef, VrrpNode, VrrpNodeSpec, VrrpVersion,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::last_config::{self, LastConfig};
use crate::check::host_dirs::HostAccess;
use crate::source::resolve::{Accepted, Mode, Rules, resolve};
use crate::source::{ConfigSender, publish};

/// The first wait before instances rejected for a Secret problem are resolved again; doubled
/// per failure up to [`RESOLVE_RETRY_MAX`].
pub const RESOLVE_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to resolve the same configuration.
pub const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a starting agent waits for the API server's first answer before it runs the
/// configuration kept on disk.
pub const DISK_FALLBACK_AFTER: Duration = Duration::from_secs(2);

/// The field selector that narrows the list/watch to one node's `VrrpNode`.
pub fn field_selector(node: &str) -> String {
    format!("metadata.name={node}")
}

/// Secret values (or why not) by (namespace, name, key).
type SecretValues = BTreeMap<(String, String, String), Result<Vec<u8>, String>>;

/// What the watch last saw of the node's object.
#[derive(Debug, Clone)]
enum Seen {
    Present(Box<VrrpNode>),
    Absent,
}

/// What applying an event did.
enum Outcome {
    /// The spec and generation were those last resolved: nothing to do.
    Unchanged,
    /// Resolved and published; the Secret retry to schedule, if any.
    Resolved(Option<(Instant, u32)>),
}

/// What the spec watch hands to the other cluster tasks.
#[derive(Debug)]
pub struct SpecOutputs {
    /// The roll call annotation of the `VrrpNode`, for the status writer to echo.
    pub roll_call: watch::Receiver<Option<String>>,
    /// The Services named by `track.endpoints` of the instances run, for the EndpointSlice
    /// watch.
    pub tracked_services: watch::Receiver<BTreeSet<ServiceRef>>,
}

/// Watches one node's `VrrpNode` and publishes its resolved configuration.
pub struct SpecWatch {
    client: Client,
    node: String,
    node_addresses: Vec<IpAddr>,
    state_dir: Option<PathBuf>,
    /// Where track scripts may run from and tracked files be read.
    host: HostAccess,
    roll_call: watch::Sender<Option<String>>,
    tracked_services: watch::Sender<BTreeSet<ServiceRef>>,
    /// The spec and generation last resolved (a status-only update resolves nothing).
    resolved: Option<(VrrpNodeSpec, Option<i64>)>,
    /// The instances accepted last, kept when a new version of one is rejected.
    accepted: BTreeMap<String, Accepted>,
    /// Something (disk or API) has been published.
    published: bool,
}

impl std::fmt::Debug for SpecWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecWatch")
            .field("node", &self.node)
            .field("node_addresses", &self.node_addresses)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl SpecWatch {
    /// A watch of the `VrrpNode` named `node`, and the receivers of what it finds besides the
    /// configuration.
    pub fn new(client: Client, node: String, node_addresses: Vec<IpAddr>) -> (Self, SpecOutputs) {
        let (roll_call, roll_call_rx) = watch::channel(None);
        let (tracked_services, tracked_rx) = watch::channel(BTreeSet::new());
        let watch = Self {
            client,
            node,
            node_addresses,
            state_dir: None,
            host: HostAccess::default(),
            roll_call,
            tracked_services,
            resolved: None,
            accepted: BTreeMap::new(),
            published: false,
        };
        let outputs = SpecOutputs {
            roll_call: roll_call_rx,
            tracked_services: tracked_rx,
        };
        (watch, outputs)
    }

    /// Keeps the applied configuration in `dir` and runs it at start-up when the API server
    /// does not answer (see the module).
    #[must_use]
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.state_dir = dir;
        self
    }

    /// Runs track scripts and reads tracked files only where `host` allows (an instance
    /// naming another path is rejected).
    #[must_use]
    pub fn host_access(mut self, host: HostAccess) -> Self {
        self.host = host;
        self
    }

    fn rules(&self) -> Rules {
        Rules {
            mode: Mode::Cluster,
            host: self.host.clone(),
        }
    }

    /// Watches and publishes into `sender` until the receiving side is gone.
    pub async fn run(mut self, sender: ConfigSender) {
        let api: Api<VrrpNode> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&field_selector(&self.node));
        let stream = watcher::watcher(api, config)
            .backoff(kube_vrrp_crds::watch_backoff::WatchBackoff::default());
        tokio::pin!(stream);
        let mut listed: Option<VrrpNode> = None;
        let mut failures: u32 = 0;
        let mut last_seen: Option<Seen> = None;
        let mut retry: Option<(Instant, u32)> = None;
        let mut fallback_at = self
            .state_dir
            .is_some()
            .then(|| Instant::now() + DISK_FALLBACK_AFTER);
        loop {
            let retry_due = async {
                match retry {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let fallback_due = async {
                match fallback_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let event = tokio::select! {
                () = sender.closed() => return,
                () = retry_due => {
                    if let (Some(seen), Some((_, attempts))) = (last_seen.clone(), retry.take()) {
                        self.resolved = None;
                        if let Outcome::Resolved(next) = self.apply(&sender, &seen, attempts).await {
                            retry = next;
                        }
                    }
                    continue;
                }
                () = fallback_due => {
                    fallback_at = None;
                    self.run_from_disk(&sender, "the API server has not answered yet").await;
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
                    if fallback_at.take().is_some() {
                        self.run_from_disk(&sender, "the API server cannot be reached")
                            .await;
                    }
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
                    fallback_at = None;
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
            if let Outcome::Resolved(next) = self.apply(&sender, &seen, 0).await {
                retry = next;
            }
            last_seen = Some(seen);
        }
    }

    /// Runs the configuration kept on disk, if any, unless something was published already.
    async fn run_from_disk(&mut self, sender: &ConfigSender, why: &str) {
        let Some(dir) = self.state_dir.clone() else {
            return;
        };
        if self.published {
            return;
        }
        let node = self.node.clone();
        let loaded = tokio::task::spawn_blocking(move || last_config::load(&dir, &node)).await;
        let stored = match loaded {
            Ok(Ok(Some(stored))) => stored,
            Ok(Ok(None)) => {
                tracing::info!(node = %self.node, "{why}, and no configuration is kept on disk yet: running nothing until it answers");
                return;
            }
            Ok(Err(error)) => {
                tracing::error!(node = %self.node, %error, "{why}, and the configuration kept on disk cannot be used; it is ignored: running nothing until the API answers");
                return;
            }
            Err(error) => {
                tracing::error!(node = %self.node, %error, "reading the configuration kept on disk failed");
                return;
            }
        };
        let resolution = resolve(
            &stored.spec(),
            self.rules(),
            &|key: &SecretKeyRef| stored.password(key),
            &BTreeMap::new(),
        );
        let count = resolution.accepted.len();
        self.accept(&resolution.accepted);
        let config = resolution.into_config(self.node_addresses.clone(), stored.generation);
        publish(sender, config);
        self.published = true;
        tracing::warn!(node = %self.node, generation = ?stored.generation, instances = count, "{why}: running the configuration kept on disk until it answers");
    }

    /// Resolves and publishes what was seen; `attempts` Secret retries were made so far.
    async fn apply(&mut self, sender: &ConfigSender, seen: &Seen, attempts: u32) -> Outcome {
        let object = match seen {
            Seen::Absent => {
                self.resolved = None;
                self.roll_call.send_replace(None);
                self.accept(&[]);
                let empty = crate::driver::DesiredConfig {
                    node_addresses: self.node_addresses.clone(),
                    ..crate::driver::DesiredConfig::default()
                };
                self.published = true;
                if publish(sender, empty) {
                    tracing::info!(node = %self.node, "no VrrpNode for this node: every instance leaves");
                    self.keep_on_disk(None, Vec::new()).await;
                }
                return Outcome::Resolved(None);
            }
            Seen::Present(object) => object,
        };
        let roll_call = object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ROLL_CALL_ANNOTATION))
            .cloned();
        self.roll_call.send_if_modified(|current| {
            let changed = *current != roll_call;
            current.clone_from(&roll_call);
            changed
        });
        let generation = object.metadata.generation;
        let key = (object.spec.clone(), generation);
        if self.resolved.as_ref() == Some(&key) {
            return Outcome::Unchanged;
        }
        let secrets = self.read_secrets(&object.spec).await;
        let lookup = |key: &SecretKeyRef| {
            secrets
                .get(&(key.namespace.clone(), key.name.clone(), key.key.clone()))
                .cloned()
                .unwrap_or_else(|| Err("the Secret was not read".to_owned()))
        };
        let resolution = resolve(&object.spec, self.rules(), &lookup, &self.accepted);
        for rejected in &resolution.rejected {
            tracing::error!(node = %self.node, ?generation, instance = %rejected.name, reason = rejected.reason.as_str(), message = %rejected.message, running_previous = rejected.running_previous, "instance rejected; the others follow the VrrpNode");
        }
        let retry = resolution.needs_secret_retry().then(|| {
            let attempts = attempts.saturating_add(1);
            let delay = resolve_retry_delay(attempts);
            tracing::info!(node = %self.node, retry_in = ?delay, "Secrets will be read again");
            (Instant::now() + delay, attempts)
        });
        let count = resolution.accepted.len();
        self.accept(&resolution.accepted);
        let accepted = resolution.accepted.clone();
        let config = resolution.into_config(self.node_addresses.clone(), generation);
        self.resolved = Some(key);
        self.published = true;
        if publish(sender, config) {
            tracing::info!(node = %self.node, ?generation, instances = count, "configuration loaded from the VrrpNode");
            self.keep_on_disk(generation, accepted).await;
        }
        Outcome::Resolved(retry)
    }

    /// Records the accepted instances and the Services their endpoint trackers name.
    fn accept(&mut self, accepted: &[Accepted]) {
        self.accepted = accepted
            .iter()
            .map(|a| (a.source.name.clone(), a.clone()))
            .collect();
        let services: BTreeSet<ServiceRef> = accepted
            .iter()
            .flat_map(|a| a.source.track.endpoints.iter().map(|e| e.service.clone()))
            .collect();
        self.tracked_services.send_if_modified(|current| {
            let changed = *current != services;
            *current = services;
            changed
        });
    }

    /// Writes what now runs to the state directory (if any), off the runtime.
    async fn keep_on_disk(&self, generation: Option<i64>, accepted: Vec<Accepted>) {
        let Some(dir) = self.state_dir.clone() else {
            return;
        };
        let stored = LastConfig::new(&self.node, generation, &accepted);
        let written = tokio::task::spawn_blocking(move || last_config::store(&dir, &stored)).await;
        match written {
            Ok(Ok(())) => {
                tracing::debug!(node = %self.node, ?generation, "configuration kept on disk");
            }
            Ok(Err(error)) => {
                tracing::error!(node = %self.node, %error, "cannot keep the configuration on disk; a restart during an API outage would run an older one");
            }
            Err(error) => {
                tracing::error!(node = %self.node, %error, "writing the configuration to disk failed");
            }
        }
    }

    /// Gets every Secret a v2 instance of `spec` names, once each: each key's bytes, or a
    /// sentence saying why they cannot be had.
    async fn read_secrets(&self, spec: &VrrpNodeSpec) -> SecretValues {
        let mut values = SecretValues::new();
        let mut fetched: BTreeMap<(String, String), Result<Option<Secret>, String>> =
            BTreeMap::new();
        for key in secret_refs(spec) {
            let id = (key.namespace.clone(), key.name.clone());
            if !fetched.contains_key(&id) {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
                let secret = api
                    .get_opt(&key.name)
                    .await
                    .map_err(|error| secret_error(&key.namespace, &key.name, &error));
                fetched.insert(id.clone(), secret);
            }
            let value = match fetched.get(&id) {
                Some(Ok(Some(secret))) => secret
                    .data
                    .as_ref()
                    .and_then(|data| data.get(&key.key))
                    .map(|value| value.0.clone())
                    .ok_or_else(|| {
                        format!(
                            "Secret {}/{} has no key {:?}: add it, or fix \
                             spec.authentication.passwordSecretRef.key",
                            key.namespace, key.name, key.key
                        )
                    }),
                Some(Ok(None)) => Err(format!(
                    "Secret {}/{} not found: create it, or fix \
                     spec.authentication.passwordSecretRef",
                    key.namespace, key.name
                )),
                Some(Err(message)) => Err(message.clone()),
                None => Err("the Secret was not read".to_owned()),
            };
            values.insert((id.0, id.1, key.key.clone()), value);
        }
        values
    }
}

/// Why a Secret could not be read, in words a person can act on.
fn secret_error(namespace: &str, name: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "the agent may not read Secret {namespace}/{name} (403 Forbidden): keep VRRP \
             password Secrets in the namespace the chart grants (values agent.secrets), or \
             grant get on this Secret to the agent's ServiceAccount"
        ),
        other => format!("reading Secret {namespace}/{name}: {other}; retrying"),
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

/// The wait before the `attempts`-th retry of a rejected configuration: [`RESOLVE_RETRY_MIN`]
/// before the first (and for `0`), doubled before each further one, capped at
/// [`RESOLVE_RETRY_MAX`].
pub fn resolve_retry_delay(attempts: u32) -> Duration {
    doubling(
        RESOLVE_RETRY_MIN,
        RESOLVE_RETRY_MAX,
        attempts.saturating_sub(1),
    )
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
