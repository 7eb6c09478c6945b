//! Cluster mode: this node's configuration comes from its own `VrrpNode` through the API
//! server ([`spec`]), and the live state goes back into `VrrpNode.status` ([`writer`], built by
//! the pure [`status`]).
//!
//! The API server is never in the VRRP path: the watch only publishes into the driver's
//! configuration channel, and the writer only reads status snapshots. When the API server is
//! unreachable the last configuration stays in force, VRRP keeps running, and both sides
//! retry with backoff.

pub mod spec;
pub mod status;
pub mod writer;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use tokio::task::JoinHandle;

pub use spec::SpecWatch;
pub use status::{build_status, status_patch};
pub use writer::StatusWriter;

use crate::report::StatusBoard;
use crate::source::ConfigSender;
use crate::source::resolve::InstanceProblem;

/// The server-side apply field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "kube-vrrp-agent";

/// How often the status is rewritten when nothing changed, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// How often the status board is compared with what was last written, by default.
pub const DEFAULT_STATUS_POLL: Duration = Duration::from_millis(100);

/// What went wrong talking to the API server or turning the `VrrpNode` into a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("reading Secret {namespace}/{name}: {source}")]
    Secret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the VrrpNode spec cannot be run: {}", join(.0))]
    Instances(Vec<InstanceProblem>),
    #[error("writing the status of VrrpNode {node}: {source}")]
    WriteStatus {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of VrrpNode {node}: no answer within {timeout:?}")]
    WriteTimeout { node: String, timeout: Duration },
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("no Kubernetes client configuration (in-cluster, KUBECONFIG or ~/.kube/config): {0}")]
    InferConfig(#[from] InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

fn join(problems: &[InstanceProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Settings of cluster mode.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This node's name: the `VrrpNode` watched and written.
    pub node: String,
    /// The node's own addresses: the last resort when an instance's interface is picked.
    pub node_addresses: Vec<IpAddr>,
    /// Status rewritten at least this often.
    pub heartbeat: Duration,
    /// Status board compared with the last write this often.
    pub status_poll: Duration,
}

impl ClusterOptions {
    /// Defaults for `node`: no node addresses, [`DEFAULT_HEARTBEAT`], [`DEFAULT_STATUS_POLL`].
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            node_addresses: Vec::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            status_poll: DEFAULT_STATUS_POLL,
        }
    }
}

/// The two background tasks of cluster mode. Dropping this aborts neither; call
/// [`ClusterTasks::abort`] at exit.
#[derive(Debug)]
pub struct ClusterTasks {
    pub spec: JoinHandle<()>,
    pub status: JoinHandle<()>,
}

impl ClusterTasks {
    /// Stops both tasks.
    pub fn abort(&self) {
        self.spec.abort();
        self.status.abort();
    }
}

/// A client from the kubeconfig at `path`, else inferred (in-cluster service account, then
/// `KUBECONFIG` or `~/.kube/config`). Nothing is sent to the API server yet: an unreachable
/// server shows up later, as retries.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClusterError> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig_error = |source| ClusterError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(kubeconfig_error)?
        }
        None => Config::infer().await?,
    };
    Client::try_from(config).map_err(ClusterError::Client)
}

/// Starts the `VrrpNode` watch (publishing into `sender`) and the status writer (reading
/// `board`). Must be called inside a tokio runtime.
pub fn spawn(
    client: Client,
    options: &ClusterOptions,
    sender: ConfigSender,
    board: StatusBoard,
) -> ClusterTasks {
    let (watch, generation) = SpecWatch::new(
        client.clone(),
        options.node.clone(),
        options.node_addresses.clone(),
    );
    let writer = StatusWriter::new(client, options.node.clone(), board, generation)
        .heartbeat(options.heartbeat)
        .poll(options.status_poll);
    ClusterTasks {
        spec: tokio::spawn(watch.run(sender)),
        status: tokio::spawn(writer.run()),
    }
}
