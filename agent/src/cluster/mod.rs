//! Cluster mode: this node's configuration comes from its own `VrrpNode` through the API
//! server ([`spec`]), is kept on disk for restarts during an API outage ([`last_config`]),
//! the EndpointSlices of the Services its trackers name are followed ([`endpoints`]), and the
//! live state goes back into `VrrpNode.status` ([`writer`], built by the pure [`status`]).
//!
//! The API server is never in the VRRP path: the watches only publish into channels the
//! driver and the trackers read, and the writer only reads status snapshots. When the API
//! server is unreachable the last configuration stays in force, VRRP keeps running, and every
//! side retries with backoff.

pub mod endpoints;
pub mod last_config;
pub mod spec;
pub mod status;
pub mod writer;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use endpoints::EndpointWatch;
pub use spec::{SpecOutputs, SpecWatch};
pub use status::{build_status, status_patch};
pub use writer::StatusWriter;

use crate::check::EndpointReadiness;
use crate::report::StatusBoard;
use crate::source::ConfigSender;

/// The server-side apply field manager of everything the agent writes.
pub const FIELD_MANAGER: &str = "kube-vrrp-agent";

/// How often the status is rewritten when nothing changed, by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// What went wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
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

/// Settings of cluster mode.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// This node's name: the `VrrpNode` watched and written.
    pub node: String,
    /// The node's own addresses: the last resort when an instance's interface is picked.
    pub node_addresses: Vec<IpAddr>,
    /// Status rewritten at least this often.
    pub heartbeat: Duration,
    /// Where the last applied configuration is kept; `None`: nowhere.
    pub state_dir: Option<PathBuf>,
    /// Where track scripts may run from and tracked files be read.
    pub host: crate::check::host_dirs::HostAccess,
}

impl ClusterOptions {
    /// Defaults for `node`: no node addresses, [`DEFAULT_HEARTBEAT`], no state directory.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            node_addresses: Vec::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            state_dir: None,
            host: crate::check::host_dirs::HostAccess::default(),
        }
    }
}

/// The background tasks of cluster mode. Call [`ClusterTasks::finish`] at exit, after the
/// driver has shut down.
#[derive(Debug)]
pub struct ClusterTasks {
    pub spec: JoinHandle<()>,
    pub endpoints: JoinHandle<()>,
    pub status: JoinHandle<()>,
    leaving: watch::Sender<bool>,
}

impl ClusterTasks {
    /// Has the status writer make its last write (bounded by
    /// [`writer::FINAL_WRITE_LIMIT`]), then stops every task.
    pub async fn finish(mut self) {
        self.spec.abort();
        self.endpoints.abort();
        self.leaving.send_replace(true);
        let limit = writer::FINAL_WRITE_LIMIT + Duration::from_millis(200);
        if tokio::time::timeout(limit, &mut self.status).await.is_err() {
            self.status.abort();
        }
    }

    /// Stops every task at once, without a last write.
    pub fn abort(&self) {
        self.spec.abort();
        self.endpoints.abort();
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

/// Starts the `VrrpNode` watch (publishing into `sender`), the EndpointSlice watch (feeding
/// `readiness`) and the status writer (reading `board`). Must be called inside a tokio runtime.
pub fn spawn(
    client: Client,
    options: &ClusterOptions,
    sender: ConfigSender,
    board: StatusBoard,
    readiness: EndpointReadiness,
) -> ClusterTasks {
    let (watch, outputs) = SpecWatch::new(
        client.clone(),
        options.node.clone(),
        options.node_addresses.clone(),
    );
    let watch = watch
        .state_dir(options.state_dir.clone())
        .host_access(options.host.clone());
    let endpoints = EndpointWatch::new(
        client.clone(),
        options.node.clone(),
        outputs.tracked_services,
        readiness,
    );
    let (leaving, leaving_rx) = watch::channel(false);
    let writer = StatusWriter::new(
        client,
        options.node.clone(),
        board,
        outputs.roll_call,
        leaving_rx,
    )
    .heartbeat(options.heartbeat);
    ClusterTasks {
        spec: tokio::spawn(watch.run(sender)),
        endpoints: tokio::spawn(endpoints.run()),
        status: tokio::spawn(writer.run()),
        leaving,
    }
}
