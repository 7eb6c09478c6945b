//! Standalone mode: the configuration of one node from a directory of VirtualIP,
//! VirtualServer, Node and Secret manifests, planned by the operator's own planner. The
//! directory is watched with inotify (polled where it cannot be; re-read at once on SIGHUP). A directory that cannot be read or
//! planned is logged with its reason and the last good configuration stays in force; an
//! instance that cannot run (invalid, its Secret missing, `track.endpoints`) is rejected
//! alone and shown in `/status`, as in cluster mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kube_vrrp_crds::{RejectReason, RejectedInstance};
use kube_vrrp_plan::{ManifestError, load_manifests_setting_aside_invalid};
use kube_vrrp_plan::{Plan, PlanInput, plan};
use tokio::signal::unix::{SignalKind, signal};

use super::dir_changes::{Change, DirChanges};
use super::resolve::{Accepted, Mode, Rules, internal_ips, resolve};
use super::{ConfigSender, publish};
use crate::check::host_dirs::HostAccess;
use crate::driver::DesiredConfig;

/// How often the directory is checked for changes by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long the directory must stay quiet after a change before it is read, so that files
/// written together are applied together.
const EDITS_SETTLE: Duration = Duration::from_millis(200);

/// How long a burst of edits may postpone the read: a directory edited more often than
/// [`EDITS_SETTLE`] without pause is still read this soon after the burst's first change.
const EDITS_MAX_DELAY: Duration = Duration::from_secs(1);

/// How long to wait for more edits, `since_first` after the first change of a burst: the
/// quiet period, cut short so that the read comes [`EDITS_MAX_DELAY`] after the first change
/// at the latest; `None` when the read is due now.
fn quiet_wait(since_first: Duration) -> Option<Duration> {
    let left = EDITS_MAX_DELAY.checked_sub(since_first)?;
    (!left.is_zero()).then(|| left.min(EDITS_SETTLE))
}

/// Why a manifests directory gives no usable configuration for this node.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    #[error(
        "no Node named {0:?} in the manifests: add one (metadata.name, labels, status.addresses) so this node's share can be planned"
    )]
    NoSuchNode(String),
}

/// Reads and plans a manifests directory for one node.
#[derive(Debug)]
pub struct Standalone {
    dir: PathBuf,
    node: String,
    /// The last plan, so allocated VRIDs stay stable across edits.
    previous: Option<Plan>,
    /// The instances last accepted, kept running when a new version of one is rejected.
    accepted: BTreeMap<String, Accepted>,
    /// Where track scripts may run from and tracked files be read.
    host: HostAccess,
}

impl Standalone {
    pub fn new(dir: impl Into<PathBuf>, node: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            node: node.into(),
            previous: None,
            accepted: BTreeMap::new(),
            host: HostAccess::default(),
        }
    }

    /// Runs track scripts and reads tracked files only where `host` allows (a VirtualIP
    /// naming another path is rejected).
    #[must_use]
    pub fn host_access(mut self, host: HostAccess) -> Self {
        self.host = host;
        self
    }

    /// Loads the directory now and resolves this node's configuration.
    pub fn load(&mut self) -> Result<DesiredConfig, SourceError> {
        let (manifests, set_aside) = load_manifests_setting_aside_invalid(&self.dir)?;
        let node = manifests
            .nodes
            .iter()
            .find(|node| node.metadata.name.as_deref() == Some(self.node.as_str()))
            .ok_or_else(|| SourceError::NoSuchNode(self.node.clone()))?;
        let node_addresses = internal_ips(node);
        let secrets = manifests.clone();
        let mut input = PlanInput::from(manifests);
        if let Some(previous) = &self.previous {
            input.carry_over(previous);
        }
        let planned = plan(&input);
        for conflict in &planned.conflicts {
            tracing::warn!(virtual_ip = %conflict.virtual_ip, reason = conflict.reason.as_str(), message = %conflict.message, "not deployed");
        }
        let spec = planned.nodes.get(&self.node).cloned().unwrap_or_default();
        let lookup = |key: &kube_vrrp_crds::SecretKeyRef| {
            secrets
                .secret_value(&key.namespace, &key.name, &key.key)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| {
                    format!(
                        "no Secret {}/{} with key {:?} in the manifests directory: add it, or fix \
                         spec.authentication.passwordSecretRef",
                        key.namespace, key.name, key.key
                    )
                })
        };
        let rules = Rules {
            mode: Mode::Standalone,
            host: self.host.clone(),
        };
        let mut resolution = resolve(&spec, rules, &lookup, &self.accepted);
        self.reject_set_aside(&set_aside, &mut resolution);
        for rejected in &resolution.rejected {
            tracing::error!(instance = %rejected.name, reason = rejected.reason.as_str(), message = %rejected.message, running_previous = rejected.running_previous, "instance rejected; the others run");
        }
        self.accepted = resolution.by_name();
        self.previous = Some(planned);
        Ok(resolution.into_config(node_addresses, None))
    }

    /// Rejects each VirtualIP the loader set aside as invalid, keeping the version that runs
    /// (if one does), as a rejected instance of a VrrpNode would be.
    fn reject_set_aside(
        &self,
        set_aside: &[ManifestError],
        resolution: &mut super::resolve::Resolution,
    ) {
        for problem in set_aside {
            let ManifestError::Invalid { kind, name, .. } = problem else {
                continue;
            };
            if *kind != "VirtualIP" {
                tracing::error!(%problem, "invalid VirtualServer left out");
                continue;
            }
            let kept = self
                .accepted
                .get(name)
                .filter(|_| !resolution.accepted.iter().any(|a| a.source.name == *name));
            if let Some(kept) = kept {
                resolution.accepted.push(kept.clone());
            }
            resolution.rejected.push(RejectedInstance {
                name: name.clone(),
                reason: RejectReason::Invalid,
                message: problem.to_string(),
                running_previous: kept.is_some(),
            });
        }
        resolution
            .accepted
            .sort_by(|a, b| a.source.name.cmp(&b.source.name));
        resolution.rejected.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Loads and publishes when the result differs; a failure is logged and changes nothing.
    pub fn reload(&mut self, sender: &ConfigSender) {
        match self.load() {
            Ok(config) => {
                let count = config.instances.len();
                if publish(sender, config) {
                    tracing::info!(dir = %self.dir.display(), node = %self.node, instances = count, "configuration loaded");
                }
            }
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "manifests rejected; the last good configuration stays in force");
            }
        }
    }

    /// [`Standalone::reload`] on a blocking thread: reading the files and planning them must
    /// not hold one of the runtime's two workers. `None` when the runtime is shutting down.
    async fn reload_off_runtime(mut self, sender: &ConfigSender) -> Option<Self> {
        let sender = sender.clone();
        let done = tokio::task::spawn_blocking(move || {
            self.reload(&sender);
            self
        })
        .await;
        match done {
            Ok(this) => Some(this),
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_cancelled) => None,
            },
        }
    }

    /// Loads now, then reloads whenever the directory changes (told by inotify; checked every
    /// `poll` where inotify cannot watch it) or on
    /// SIGHUP, publishing into `sender`, until the receiving side is gone. Reads and planning
    /// run on blocking threads.
    pub async fn watch(self, sender: ConfigSender, poll: Duration) {
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; relying on polling");
                None
            }
        };
        let dir = self.dir.clone();
        let fingerprint_now = || {
            let dir = dir.clone();
            async move {
                tokio::task::spawn_blocking(move || fingerprint(&dir))
                    .await
                    .unwrap_or_default()
            }
        };
        let mut seen = fingerprint_now().await;
        let Some(mut this) = self.reload_off_runtime(&sender).await else {
            return;
        };
        let mut changes = match DirChanges::watch(&dir) {
            Ok(changes) => Some(changes),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, every = ?poll, "cannot watch the manifests directory with inotify; polling it");
                None
            }
        };
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                () = sender.closed() => return,
                _ = ticker.tick(), if changes.is_none() => false,
                change = async {
                    match changes.as_mut() {
                        Some(changes) => changes.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Edits made together (several files written, an editor's save) are read
                    // together: wait until the directory has been quiet for a moment, but
                    // never longer than EDITS_MAX_DELAY, or edits that never pause would
                    // never be read.
                    let mut change = change;
                    let first = tokio::time::Instant::now();
                    while let (Ok(Change::Entries), Some(watch)) = (&change, changes.as_mut()) {
                        let Some(wait) = quiet_wait(first.elapsed()) else {
                            break;
                        };
                        match tokio::time::timeout(wait, watch.changed()).await {
                            Ok(next) => change = next,
                            Err(_quiet) => break,
                        }
                    }
                    if !matches!(change, Ok(Change::Entries)) {
                        tracing::warn!(dir = %dir.display(), ?change, every = ?poll, "the inotify watch of the manifests directory ended; polling it");
                        changes = None;
                    }
                    false
                }
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(hangup) => hangup.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let now = fingerprint_now().await;
            if forced || now != seen {
                seen = now;
                if forced {
                    tracing::info!("SIGHUP: reloading manifests");
                }
                let Some(reloaded) = this.reload_off_runtime(&sender).await else {
                    return;
                };
                this = reloaded;
            }
        }
    }
}

/// What identifies the directory's current content cheaply: each YAML file's name, size and
/// modification time, sorted. Unreadable entries count as their error text.
pub fn fingerprint(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![("<unreadable>".into(), 0, None)];
    };
    let mut files: Vec<(String, u64, Option<SystemTime>)> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .path()
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml")
        })
        .map(|entry| {
            let metadata = entry.metadata().ok();
            (
                entry.file_name().to_string_lossy().into_owned(),
                metadata.as_ref().map_or(0, std::fs::Metadata::len),
                metadata.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_edit_is_read_after_the_quiet_period() {
        assert_eq!(quiet_wait(Duration::ZERO), Some(EDITS_SETTLE));
    }

    #[test]
    fn edits_that_never_pause_are_read_within_the_max_delay_of_the_first() {
        // One edit every 60 ms (a busy config generator): each arrives before the quiet
        // period ends, so only the bound ends the wait (found by `make chaos`: before it, a
        // directory edited every 60 ms for a minute was not read once during that minute).
        let edit_every = Duration::from_millis(60);
        let mut since_first = Duration::ZERO;
        while let Some(wait) = quiet_wait(since_first) {
            assert!(wait <= EDITS_SETTLE);
            assert!(
                wait > edit_every || since_first + wait == EDITS_MAX_DELAY,
                "{since_first:?}: {wait:?}"
            );
            since_first += edit_every.min(wait);
        }
        assert!(
            since_first <= EDITS_MAX_DELAY,
            "read due only at {since_first:?}"
        );
        assert!(since_first + edit_every > EDITS_MAX_DELAY);
        assert_eq!(quiet_wait(EDITS_MAX_DELAY), None);
        assert_eq!(quiet_wait(EDITS_MAX_DELAY + edit_every), None);
    }

    const NODE_AND_VIP: &str = "apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{type: InternalIP, address: 192.0.2.1}]
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
  addresses: [\"192.0.2.50/24\"]
  virtualRouterID: 51
";

    fn dir(test: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvsrc-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lab.yaml"), text).unwrap();
        dir
    }

    #[test]
    fn a_node_with_a_virtual_ip_gets_its_instance_and_internal_ip() {
        let dir = dir("ok", NODE_AND_VIP);
        let config = Standalone::new(&dir, "n1").load().unwrap();
        assert_eq!(
            config.node_addresses,
            vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(config.instances.len(), 1);
        assert_eq!(config.instances[0].name, "web");
        assert_eq!(config.instances[0].vrid, 51);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_node_missing_from_the_manifests_is_an_error_not_an_empty_config() {
        let dir = dir("missing", NODE_AND_VIP);
        let error = Standalone::new(&dir, "n9").load().unwrap_err();
        assert!(
            matches!(error, SourceError::NoSuchNode(ref name) if name == "n9"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rejected_reload_publishes_nothing_and_keeps_the_last_config() {
        let dir = dir("reload", NODE_AND_VIP);
        let (sender, receiver) = crate::source::channel();
        let mut source = Standalone::new(&dir, "n1");
        source.reload(&sender);
        let first = receiver.borrow().clone().unwrap();
        std::fs::write(dir.join("broken.yaml"), "kind: [\n").unwrap();
        source.reload(&sender);
        assert_eq!(receiver.borrow().as_deref(), Some(&*first));
        std::fs::remove_dir_all(dir).unwrap();
    }

    const LEGACY: &str = "---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: legacy
spec:
  addresses: [\"192.0.2.60/24\"]
  virtualRouterID: 60
  version: 2
  advertInterval: 1s
  authentication:
    type: PASS
    passwordSecretRef: {namespace: kube-vrrp, name: vrrp-auth, key: password}
";

    fn names(config: &DesiredConfig) -> Vec<&str> {
        config.instances.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn a_missing_secret_rejects_only_its_virtual_ip() {
        let dir = dir("secret", &format!("{NODE_AND_VIP}{LEGACY}"));
        let config = Standalone::new(&dir, "n1").load().unwrap();
        assert_eq!(names(&config), ["web"]);
        assert_eq!(config.rejected.len(), 1);
        assert_eq!(config.rejected[0].name, "legacy");
        assert_eq!(config.rejected[0].reason, RejectReason::SecretUnavailable);
        assert!(
            config.rejected[0]
                .message
                .starts_with("no Secret kube-vrrp/vrrp-auth with key \"password\""),
            "{}",
            config.rejected[0].message
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_endpoint_tracker_is_refused_with_its_reason() {
        let tracked = format!(
            "{NODE_AND_VIP}  track:\n    endpoints:\n      - service: {{namespace: shop, name: frontend}}\n"
        );
        let dir = dir("endpoints", &tracked);
        let config = Standalone::new(&dir, "n1").load().unwrap();
        assert!(config.instances.is_empty());
        assert_eq!(config.rejected[0].reason, RejectReason::Unsupported);
        assert!(config.rejected[0].message.contains("track.endpoints"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_invalid_edit_rejects_that_virtual_ip_alone_and_its_running_version_stays() {
        let dir = dir("invalid", NODE_AND_VIP);
        let mut source = Standalone::new(&dir, "n1");
        let first = source.load().unwrap();
        assert_eq!(names(&first), ["web"]);
        // web breaks a CRD rule; a new VirtualIP db is added at the same time.
        let broken = NODE_AND_VIP.replace(
            "virtualRouterID: 51",
            "virtualRouterID: 51\n  advertInterval: 15ms",
        );
        std::fs::write(
            dir.join("lab.yaml"),
            format!(
                "{broken}---\napiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata:\n  name: db\nspec:\n  addresses: [\"192.0.2.51/24\"]\n  virtualRouterID: 52\n"
            ),
        )
        .unwrap();
        let second = source.load().unwrap();
        assert_eq!(
            names(&second),
            ["db", "web"],
            "db follows the edit, web keeps running"
        );
        assert_eq!(
            second.instances[1], first.instances[0],
            "web as it ran before"
        );
        assert_eq!(second.rejected.len(), 1);
        assert_eq!(second.rejected[0].name, "web");
        assert_eq!(second.rejected[0].reason, RejectReason::Invalid);
        assert!(second.rejected[0].running_previous);
        assert!(
            second.rejected[0].message.contains("spec.advertInterval"),
            "{}",
            second.rejected[0].message
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_fingerprint_changes_when_a_yaml_file_changes_and_ignores_others() {
        let dir = dir("fingerprint", NODE_AND_VIP);
        let before = fingerprint(&dir);
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        assert_eq!(fingerprint(&dir), before);
        std::fs::write(dir.join("more.yml"), "").unwrap();
        assert_ne!(fingerprint(&dir), before);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
