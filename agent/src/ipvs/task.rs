//! The IPVS task: its own task, apart from the VRRP units, that follows the node's
//! configuration. Each new configuration is synchronised into IPVS first and then handed on
//! to the VRRP driver, so a VirtualIP never starts (and so never becomes MASTER) before its
//! services exist. Services are kept whatever the VRRP state (as keepalived does): a BACKUP
//! already has them when it takes over, and a handover changes nothing in IPVS. The kernel is
//! re-read every `resync` (every second while a drain or a retry is pending) for the status
//! (connection counts) and to repair drift.
//!
//! The real servers' health checks ([`HealthChecks`]) follow the same configuration, and
//! every change of their verdicts re-synchronises IPVS: a failing real server leaves the pool
//! (or drops to weight 0 with `inhibitOnFailure`), a VirtualServer below its quorum hands its
//! traffic to its sorry server. This node's checks change this node's IPVS only, whatever its
//! VRRP state, as keepalived's checkers do: a BACKUP's services are kept (see above), so its
//! pool is already what its checks say when it takes over, and its checks also feed its
//! quorum trackers, so a node whose backends are dead does not take the VIP.
//!
//! IPVS missing (no `ip_vs` module, as on hosts that cannot load it) is reported as
//! `IPVSAvailable=False` with the reason, logged once; the configuration goes on to VRRP at
//! once, unaffected. IPVS is looked for at start (to clear what an earlier run left and for
//! the status) and, while missing, again every [`CONNECT_RETRY`] only while the configuration
//! has VirtualServers to program: an agent with VRRP alone does no IPVS work in its steady
//! state; the first VirtualServer makes it look at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube_vrrp_crds::{IpvsServiceStatus, IpvsStatus};
use tokio::task::JoinHandle;

use super::client::{IpvsClient, IpvsError};
use super::desired::{desired_services, with_health};
use super::owner::RECORD_FILE;
use super::sync::{SyncOptions, Syncer};
use crate::check::real_server::{HealthChecks, HealthSnapshot};
use crate::driver::DesiredConfig;
use crate::report::{IpvsReport, StatusBoard};
use crate::source::{ConfigSender, ConfigUpdates, publish};

/// How often a missing IPVS is looked for again.
pub const CONNECT_RETRY: Duration = Duration::from_secs(30);
/// How soon the kernel is looked at again while a drain or a retry is pending.
pub const BUSY_RESYNC: Duration = Duration::from_secs(1);

/// Settings of the IPVS task.
#[derive(Clone, Debug)]
pub struct IpvsOptions {
    /// Where the ownership record lives (on the node, e.g. `/run/kube-vrrp`).
    pub runtime_dir: PathBuf,
    /// The longest a terminating real server keeps its connections.
    pub drain_timeout: Duration,
    /// How often the kernel is re-read.
    pub resync: Duration,
}

impl Default for IpvsOptions {
    fn default() -> Self {
        Self {
            runtime_dir: PathBuf::from("/run/kube-vrrp"),
            drain_timeout: Duration::from_secs(30),
            resync: Duration::from_secs(10),
        }
    }
}

/// Starts the task: it reads `source`, configures the health checks, programs IPVS with
/// their verdicts, and publishes each configuration into `driver` after that. The task owns
/// `health`: aborting the task stops the checks.
pub fn spawn(
    options: IpvsOptions,
    source: ConfigUpdates,
    driver: ConfigSender,
    board: StatusBoard,
    health: HealthChecks,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let verdicts = health.subscribe();
        let task = Task {
            options,
            board,
            syncer: None,
            unavailable: None,
            available: None,
            since: Timestamp::now(),
            next_connect: Instant::now(),
            config: None,
            health,
            verdicts,
            applied_revision: None,
            report_due: true,
        };
        task.run(source, driver).await;
    })
}

struct Task {
    options: IpvsOptions,
    board: StatusBoard,
    syncer: Option<Syncer>,
    /// Why IPVS cannot be used, while it cannot.
    unavailable: Option<String>,
    available: Option<bool>,
    since: Timestamp,
    next_connect: Instant,
    config: Option<Arc<DesiredConfig>>,
    health: HealthChecks,
    verdicts: tokio::sync::watch::Receiver<Arc<HealthSnapshot>>,
    /// The [`HealthSnapshot::revision`] IPVS was last synchronised with.
    applied_revision: Option<u64>,
    /// Something the report is made of may have changed since it was last made.
    report_due: bool,
}

impl Task {
    async fn run(mut self, mut source: ConfigUpdates, driver: ConfigSender) {
        let mut source_open = true;
        let mut verdicts_open = true;
        // The resync runs this long after the last one, however often notices wake the task.
        let mut last_resync = Instant::now();
        loop {
            if self.looks_for_ipvs() && Instant::now() >= self.next_connect {
                self.connect().await;
                last_resync = Instant::now();
            }
            let current = source.borrow_and_update().clone();
            if current.as_ref().map(Arc::as_ptr) != self.config.as_ref().map(Arc::as_ptr) {
                self.config = current;
                self.report_due = true;
                if let Some(config) = self.config.clone() {
                    self.health.configure(config.virtual_servers.clone());
                    self.apply(&config).await;
                    publish(&driver, (*config).clone());
                }
            }
            if std::mem::take(&mut self.report_due) {
                self.report();
            }
            let due = match &self.syncer {
                Some(s) if s.busy() => Some(last_resync + BUSY_RESYNC),
                Some(_) => Some(last_resync + self.options.resync),
                None => self.looks_for_ipvs().then_some(self.next_connect),
            };
            tokio::select! {
                changed = source.changed(), if source_open => {
                    if changed.is_err() {
                        source_open = false;
                    }
                }
                changed = self.verdicts.changed(), if verdicts_open => {
                    match (changed, self.config.clone()) {
                        (Err(_), _) => verdicts_open = false,
                        // Last results alone changed: the pools did not.
                        (Ok(()), Some(config)) => {
                            if Some(self.verdicts.borrow().revision) != self.applied_revision {
                                self.apply(&config).await;
                            }
                        }
                        (Ok(()), None) => {}
                    }
                }
                () = sleep_until(due) => {
                    self.resync().await;
                    last_resync = Instant::now();
                }
            }
        }
    }

    /// Whether IPVS is to be looked for: not connected, and never looked for or needed by a
    /// VirtualServer of the configuration.
    fn looks_for_ipvs(&self) -> bool {
        self.syncer.is_none()
            && (self.unavailable.is_none()
                || self
                    .config
                    .as_ref()
                    .is_some_and(|config| !config.virtual_servers.is_empty()))
    }

    async fn connect(&mut self) {
        self.report_due = true;
        let options = SyncOptions {
            record: self.options.runtime_dir.join(RECORD_FILE),
            drain_timeout: self.options.drain_timeout,
        };
        let connected = async {
            let client = IpvsClient::connect().await?;
            let info = client.info().await?;
            let syncer = Syncer::start(client, options).await?;
            Ok::<_, IpvsError>((syncer, info))
        }
        .await;
        match connected {
            Ok((syncer, info)) => {
                tracing::info!(version = %info.version_string(), connection_table = info.connection_table_size, "IPVS available");
                self.syncer = Some(syncer);
                self.unavailable = None;
                if let Some(config) = self.config.clone() {
                    self.apply(&config).await;
                }
            }
            Err(error) => {
                let reason = error.to_string();
                if self.unavailable.as_deref() == Some(reason.as_str()) {
                    tracing::debug!(%reason, "IPVS still unavailable");
                } else {
                    tracing::warn!(%reason, retry_in = ?CONNECT_RETRY, "IPVS unavailable: VirtualServers are not programmed; VRRP is unaffected");
                }
                self.unavailable = Some(reason);
                self.next_connect = Instant::now() + CONNECT_RETRY;
            }
        }
    }

    async fn apply(&mut self, config: &DesiredConfig) {
        self.report_due = true;
        let Some(syncer) = self.syncer.as_mut() else {
            return;
        };
        let verdicts = Arc::clone(&self.verdicts.borrow_and_update());
        self.applied_revision = Some(verdicts.revision);
        let (pooled, refused_by_health) = with_health(&config.virtual_servers, &verdicts);
        let (desired, mut refused) = desired_services(&pooled);
        refused.extend(refused_by_health);
        for r in &refused {
            tracing::warn!(virtual_server = %r.virtual_server, address = %r.address, reason = %r.message, "VirtualServer not programmed");
        }
        let started = Instant::now();
        let report = syncer.apply(desired, refused, Instant::now()).await;
        if report.requests > 0 {
            tracing::info!(requests = report.requests, failed = report.failed, took = ?started.elapsed(), "IPVS synchronised");
        }
    }

    async fn resync(&mut self) {
        self.report_due = true;
        let Some(syncer) = self.syncer.as_mut() else {
            return;
        };
        match syncer.reconcile(Instant::now()).await {
            Ok(report) if report.requests > report.failed => {
                tracing::info!(
                    requests = report.requests,
                    failed = report.failed,
                    "IPVS repaired or drained"
                );
            }
            Ok(report) if report.requests > 0 => {
                tracing::debug!(requests = report.requests, "IPVS retries refused again");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "reading IPVS failed; reconnecting");
                self.syncer = None;
                self.unavailable = Some(error.to_string());
                self.next_connect = Instant::now() + BUSY_RESYNC;
            }
        }
    }

    fn report(&mut self) {
        let status = match &self.syncer {
            Some(syncer) => syncer.status(),
            None => self.unavailable_status(),
        };
        if self.available != Some(status.available) {
            self.available = Some(status.available);
            self.since = Timestamp::now();
        }
        self.board.set_ipvs(IpvsReport {
            status,
            since: self.since,
        });
    }

    fn unavailable_status(&self) -> IpvsStatus {
        let reason = self
            .unavailable
            .clone()
            .unwrap_or_else(|| "IPVS not looked for yet".to_owned());
        let servers = self
            .config
            .as_ref()
            .map(|c| c.virtual_servers.as_slice())
            .unwrap_or_default();
        let virtual_services = servers
            .iter()
            .flat_map(|s| {
                s.addresses.iter().map(|address| IpvsServiceStatus {
                    virtual_server: s.name.clone(),
                    address: address.clone(),
                    port: s.port,
                    protocol: s.protocol,
                    programmed: false,
                    message: Some(format!("IPVS is not available on this node: {reason}")),
                    real_servers: Vec::new(),
                })
            })
            .collect();
        IpvsStatus {
            available: false,
            services: 0,
            real_servers: 0,
            message: Some(reason),
            virtual_services,
        }
    }
}

/// Resolves at `due`; never without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
