//! Running the checks: a thread of their own with its own tokio runtime, so that no burst of
//! checks (1,000 TLS handshakes, a script fork storm) ever takes a worker thread that sends VRRP
//! adverts (keepalived keeps its checkers in a process apart for the same reason). Each
//! checked real server has a [`Check`] driving its [`CheckMachine`]: TCP and plain-HTTP checks
//! run on the [`Poller`]'s loop (one more thread, its own epoll and deadlines), HTTPS and
//! scripts as one task each on this runtime; one semaphore bounds the attempts in flight of
//! both; each first check starts at its [`phase`] in the interval. Results go to one board
//! and to the metrics (their series resolved once per real server). The board publishes a
//! [`HealthSnapshot`] when a verdict, a quorum or a first result changes it (what the IPVS
//! task and the trackers act on): at once after a quiet spell, else [`PUBLISH_SPACING`] after
//! the last publication, so that a burst (the first results of 1,000 real servers, a switch
//! taking hundreds down together) is a few snapshots rather than one per real server, each of
//! which every reader recomputes in full. A change of the last result or its detail alone is
//! published with the next such change or within [`PUBLISH_DELAY`]. The verdicts kept for a
//! restart are written with the publication that carries their change.
//!
//! Should the [`Poller`]'s loop end (a panic, a failed poll), its thread notifies the
//! supervisor, which logs why, starts a new loop and gives it every TCP and plain-HTTP check
//! again (rebuilt: their state died with the thread), counted in
//! `kube_vrrp_health_io_restarts_total` and stamped in
//! `kube_vrrp_health_io_last_restart_timestamp_seconds`. A loop that ends soon after its
//! start is started again only after [`restart_delay`], its checks on the async path
//! meanwhile, so a panic on every start neither spins nor freezes a verdict. A loop that
//! cannot start (its epoll, its waker or its thread refused), whether at the agent's start or
//! at a restart, is tried again after the same growing delays, its checks on the async path
//! meanwhile; the counter and the stamp count only restarts that succeeded, and a first start
//! that succeeds only at a retry is not one.

use jiff::Timestamp;
use kube_vrrp_crds::ResolvedVirtualServer;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::attempt::Plain;
use super::health::{
    Endpoint, HealthSnapshot, RealServerHealth, VirtualServerHealth, real_server_key, target,
};
use super::machine::{CheckMachine, CheckTimers, Step};
use super::memory::Memory;
use super::outcome::Outcome;
use super::poller::{Polled, Poller, RESTART_QUIET, restart_delay};
use super::pool::Quorum;
use super::probe::{HealthProbe, checks};
use super::spread::phase;
use crate::check::host_dirs::HostDirs;
use crate::report::Metrics;
use crate::report::health_metrics::RealServerCheckSeries;

/// Attempts in flight at most, by default.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// The longest a change of a last result or its detail waits to be published.
pub const PUBLISH_DELAY: Duration = Duration::from_secs(1);

/// The least time between two publications of verdict changes (a lone change is published
/// at once).
pub const PUBLISH_SPACING: Duration = Duration::from_millis(100);

/// How the checks run.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Where script checks may run from.
    pub script_dirs: HostDirs,
    /// Attempts in flight at most (at least 1).
    pub concurrency: usize,
    /// Where verdicts are kept across restarts; `None`: nowhere.
    pub memory: Option<Memory>,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            script_dirs: HostDirs::default(),
            concurrency: DEFAULT_CONCURRENCY,
            memory: None,
        }
    }
}

/// The running health checks. Dropping it stops every check (and kills a script still
/// running).
pub struct HealthChecks {
    config: watch::Sender<Arc<Vec<ResolvedVirtualServer>>>,
    snapshot: watch::Receiver<Arc<HealthSnapshot>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthChecks").finish_non_exhaustive()
    }
}

impl HealthChecks {
    /// Starts the checks' thread (in the calling thread's network namespace) with nothing to
    /// check yet.
    pub fn start(options: HealthOptions, metrics: Metrics) -> std::io::Result<Self> {
        let (board, snapshot) = Board::new(options.memory.clone(), metrics.clone());
        let (config, config_rx) = watch::channel(Arc::new(Vec::new()));
        let thread = std::thread::Builder::new()
            .name("health-checks".to_owned())
            .spawn(move || {
                let mut supervisor = Supervisor::new(options, board, metrics);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start the health checks' runtime; no real server is checked");
                        return;
                    }
                };
                runtime.block_on(async {
                    tokio::spawn(Arc::clone(&supervisor.board).publish_changes());
                    supervisor.run(config_rx).await;
                });
            })?;
        Ok(Self {
            config,
            snapshot,
            thread: Some(thread),
        })
    }

    /// Checks the real servers of `servers` from now on (unchanged checks keep running).
    pub fn configure(&self, servers: Vec<ResolvedVirtualServer>) {
        self.config.send_if_modified(|current| {
            if **current == servers {
                false
            } else {
                *current = Arc::new(servers);
                true
            }
        });
    }

    /// Follows the snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<HealthSnapshot>> {
        self.snapshot.clone()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<HealthSnapshot> {
        Arc::clone(&self.snapshot.borrow())
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        // Closing the configuration channel ends the supervisor; dropping its runtime aborts
        // every check (a running script is killed with its group).
        let (closed, _) = watch::channel(Arc::new(Vec::new()));
        drop(std::mem::replace(&mut self.config, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Aborts a check task when dropped.
struct Aborting(JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running check, on the async path or the loop's; dropping it stops it.
enum Running {
    Task {
        _aborting: Aborting,
        /// A TCP or plain-HTTP check, which the loop would run.
        plain: bool,
    },
    Polled {
        _removing: Polled,
    },
}

impl Running {
    /// Whether this is a TCP or plain-HTTP check, wherever it runs.
    fn is_plain(&self) -> bool {
        match self {
            Running::Task { plain, .. } => *plain,
            Running::Polled { .. } => true,
        }
    }
}

/// The checks of one VirtualServer as they run.
struct RunningServer {
    config: ResolvedVirtualServer,
    tasks: HashMap<Endpoint, Running>,
}

struct Supervisor {
    options: HealthOptions,
    board: Arc<Board>,
    metrics: Metrics,
    permits: Arc<Semaphore>,
    running: BTreeMap<String, RunningServer>,
    /// The loop of the TCP and plain-HTTP checks (`None`: it could not start, or it waits for
    /// `restart_at`, and they run on the async path).
    poller: Option<Poller>,
    /// Notified by the loop's thread as it ends.
    poller_ended: Arc<Notify>,
    /// Whether a loop has started: the next start is then a restart (counted), else the
    /// first start (after failed ones).
    poller_has_run: bool,
    /// When the running loop was started again (`None`: it is the first).
    poller_restarted: Option<Instant>,
    /// Ends in a row of restarted loops, each soon after its start, and failed starts (see
    /// [`restart_delay`]).
    quick_ends: u32,
    /// When the loop starts again, having ended soon after its start or failed to start.
    restart_at: Option<Instant>,
    /// Starts of the loop still to fail, as a test asks ([`Supervisor::with_failing_starts`]).
    #[cfg(test)]
    failing_starts: u32,
}

impl Supervisor {
    /// A supervisor with nothing to check yet, its loop started (or, if it cannot start, to be
    /// tried again after [`restart_delay`]).
    fn new(options: HealthOptions, board: Arc<Board>, metrics: Metrics) -> Self {
        let mut supervisor = Self::without_loop(options, board, metrics);
        supervisor.start_first_poller();
        supervisor
    }

    /// A supervisor whose first `failing_starts` starts of the loop fail (as a refused epoll
    /// or thread would), otherwise as [`Supervisor::new`].
    #[cfg(test)]
    fn with_failing_starts(
        options: HealthOptions,
        board: Arc<Board>,
        metrics: Metrics,
        failing_starts: u32,
    ) -> Self {
        let mut supervisor = Self::without_loop(options, board, metrics);
        supervisor.failing_starts = failing_starts;
        supervisor.start_first_poller();
        supervisor
    }

    fn without_loop(options: HealthOptions, board: Arc<Board>, metrics: Metrics) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            options,
            board,
            metrics,
            running: BTreeMap::new(),
            poller: None,
            poller_ended: Arc::new(Notify::new()),
            poller_has_run: false,
            poller_restarted: None,
            quick_ends: 0,
            restart_at: None,
            #[cfg(test)]
            failing_starts: 0,
        }
    }

    /// Starts the first loop; one that cannot start is tried again at `restart_at`.
    fn start_first_poller(&mut self) {
        let now = Instant::now();
        if let Err(error) = self.start_poller(now) {
            let retry_in = self.restart_at.map(|at| at - now);
            tracing::warn!(%error, ?retry_in, "cannot start the TCP and HTTP checks' loop; they run on the async path until it starts");
        }
    }

    async fn run(&mut self, mut config: watch::Receiver<Arc<Vec<ResolvedVirtualServer>>>) {
        let poller_ended = Arc::clone(&self.poller_ended);
        let servers = Arc::clone(&config.borrow_and_update());
        self.apply(&servers);
        loop {
            let restart_at = self.restart_at;
            tokio::select! {
                changed = config.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let servers = Arc::clone(&config.borrow_and_update());
                    self.apply(&servers);
                }
                () = poller_ended.notified() => self.tend_poller(),
                () = tokio::time::sleep_until(restart_at.unwrap_or_else(Instant::now)),
                    if restart_at.is_some() => self.tend_poller(),
            }
        }
        self.running.clear();
    }

    /// Starts the loop again if it has ended, or if its delayed start is due.
    fn tend_poller(&mut self) {
        let now = Instant::now();
        if let Some(ended) = self.poller.take_if(|p| p.has_ended()) {
            let why = ended.why_ended();
            if self
                .poller_restarted
                .is_some_and(|at| now.duration_since(at) < RESTART_QUIET)
            {
                self.quick_ends += 1;
            } else {
                self.quick_ends = 0;
            }
            let delay = restart_delay(self.quick_ends);
            if !delay.is_zero() {
                tracing::error!(%why, restart_in = ?delay, "the TCP and HTTP checks' loop ended soon after its restart; its checks run on the async path until it is restarted");
                self.restart_at = Some(now + delay);
            } else if let Err(error) = self.start_poller(now) {
                let retry_in = self.restart_at.map(|at| at - now);
                tracing::error!(%why, %error, ?retry_in, "the TCP and HTTP checks' loop ended and cannot restart; its checks run on the async path meanwhile");
            } else {
                tracing::error!(%why, "the TCP and HTTP checks' loop ended; restarted, its checks start afresh");
            }
        } else if self.restart_at.is_some_and(|at| at <= now) {
            let first = !self.poller_has_run;
            match self.start_poller(now) {
                Err(error) => {
                    let retry_in = self.restart_at.map(|at| at - now);
                    if first {
                        tracing::warn!(%error, ?retry_in, "still cannot start the TCP and HTTP checks' loop; its checks stay on the async path");
                    } else {
                        tracing::error!(%error, ?retry_in, "cannot restart the TCP and HTTP checks' loop; its checks stay on the async path");
                    }
                }
                Ok(()) if first => tracing::info!(
                    "the TCP and HTTP checks' loop started at last; its checks leave the async path"
                ),
                Ok(()) => tracing::warn!(
                    "the TCP and HTTP checks' loop restarted; its checks leave the async path"
                ),
            }
        } else {
            return;
        }
        self.restart_plain_checks();
    }

    /// Starts a new loop: a restart (counted in `kube_vrrp_health_io_restarts_total`, its wall
    /// clock time in `kube_vrrp_health_io_last_restart_timestamp_seconds`) once a loop has
    /// run, else the first start. One that cannot start is tried again at
    /// `restart_at`, after [`restart_delay`] of one more quick end.
    fn start_poller(&mut self, now: Instant) -> std::io::Result<()> {
        self.restart_at = None;
        match self.start_loop() {
            Ok(poller) => {
                self.poller = Some(poller);
                if self.poller_has_run {
                    self.poller_restarted = Some(now);
                    self.metrics.health_io_restarted(SystemTime::now());
                }
                self.poller_has_run = true;
                Ok(())
            }
            Err(error) => {
                self.quick_ends += 1;
                self.restart_at = Some(now + restart_delay(self.quick_ends));
                Err(error)
            }
        }
    }

    /// Starts the loop's thread; in a test, fails while `Supervisor::with_failing_starts`
    /// says so.
    fn start_loop(&mut self) -> std::io::Result<Poller> {
        #[cfg(test)]
        if self.failing_starts > 0 {
            self.failing_starts -= 1;
            return Err(std::io::Error::other("a start failed by the test"));
        }
        Poller::start(Arc::clone(&self.poller_ended))
    }

    /// Starts every TCP and plain-HTTP check again, on the loop if it runs, else on the async
    /// path. Their state (each [`Check`] and its machine) is gone with the loop's thread, or
    /// with the task stopped here, so each is rebuilt from the configuration as a fresh add:
    /// its verdict until its first result is the one last published, which that first result
    /// then decides at once (as after an agent restart); rise/fall streaks and retries in
    /// progress start over.
    fn restart_plain_checks(&mut self) {
        let servers: Vec<ResolvedVirtualServer> = self
            .running
            .values_mut()
            .map(|running| {
                running.tasks.retain(|_, task| !task.is_plain());
                running.config.clone()
            })
            .collect();
        for server in &servers {
            self.apply_server(server);
        }
    }

    fn apply(&mut self, servers: &[ResolvedVirtualServer]) {
        self.tend_poller();
        let wanted: BTreeMap<&str, &ResolvedVirtualServer> =
            servers.iter().map(|s| (s.name.as_str(), s)).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = self.running.remove(&name) {
                tracing::info!(virtual_server = %name, "VirtualServer removed: its checks stop");
                for endpoint in old.tasks.keys() {
                    self.metrics.forget_real_server(&name, &target(*endpoint));
                }
            }
            self.board.remove(&name);
            self.metrics.forget_virtual_server(&name);
        }
        for server in servers {
            self.apply_server(server);
        }
    }

    fn apply_server(&mut self, server: &ResolvedVirtualServer) {
        let name = server.name.clone();
        let checks = match checks(server, &self.options.script_dirs) {
            Ok(checks) => checks,
            Err(why) => {
                tracing::warn!(virtual_server = %name, reason = %why, "health check refused: the VirtualServer is not programmed");
                self.stop_all(&name);
                self.board.set_server(server, Some(why), &[]);
                return;
            }
        };
        let Some(checks) = checks else {
            self.stop_all(&name);
            self.board.set_server(server, None, &[]);
            return;
        };
        let same_check = self
            .running
            .get(&name)
            .is_some_and(|r| r.config.health_check == server.health_check);
        if !same_check {
            self.stop_all(&name);
        }
        let endpoints: Vec<Endpoint> = checks.probes.iter().map(|(e, _)| *e).collect();
        self.board.set_server(server, None, &endpoints);
        let running = self
            .running
            .entry(name.clone())
            .or_insert_with(|| RunningServer {
                config: server.clone(),
                tasks: HashMap::new(),
            });
        running.config = server.clone();
        let removed: Vec<Endpoint> = running
            .tasks
            .keys()
            .filter(|e| !endpoints.contains(e))
            .copied()
            .collect();
        for endpoint in removed {
            running.tasks.remove(&endpoint);
            self.metrics.forget_real_server(&name, &target(endpoint));
        }
        let now = Instant::now();
        for (endpoint, probe) in checks.probes {
            if running.tasks.contains_key(&endpoint) {
                continue;
            }
            let key = real_server_key(&name, endpoint);
            let assumed = self.board.assumed(&key);
            let first_due = now + phase(&key, checks.timers.interval);
            let machine = CheckMachine::new(checks.timers, first_due.into_std(), assumed);
            let series =
                self.metrics
                    .real_server_check_series(&name, &target(endpoint), probe.kind());
            let check = Check {
                virtual_server: name.clone(),
                endpoint,
                machine,
                probe,
                permits: Arc::clone(&self.permits),
                board: Arc::clone(&self.board),
                series,
                buffer: Vec::new(),
            };
            let plain = Plain::of(&check.probe).is_some();
            let task = match &mut self.poller {
                Some(poller) if plain => Running::Polled {
                    _removing: poller.add(check),
                },
                _ => Running::Task {
                    _aborting: Aborting(tokio::spawn(check.run())),
                    plain,
                },
            };
            running.tasks.insert(endpoint, task);
        }
    }

    fn stop_all(&mut self, name: &str) {
        if let Some(old) = self.running.remove(name) {
            for endpoint in old.tasks.keys() {
                self.metrics.forget_real_server(name, &target(*endpoint));
            }
        }
    }
}

/// One real server's check.
pub(super) struct Check {
    virtual_server: String,
    endpoint: Endpoint,
    pub(super) machine: CheckMachine,
    pub(super) probe: Arc<HealthProbe>,
    pub(super) permits: Arc<Semaphore>,
    board: Arc<Board>,
    series: RealServerCheckSeries,
    /// Where answers are read, kept from one attempt to the next.
    pub(super) buffer: Vec<u8>,
}

impl Check {
    async fn run(mut self) {
        let timers: CheckTimers = *self.machine.timers();
        let permits = Arc::clone(&self.permits);
        // One timer for the whole task, moved to each due time (a new one per check cost its
        // registration and removal every time).
        let Some(first) = self.machine.next_deadline() else {
            return;
        };
        let wait = tokio::time::sleep_until(first.into());
        tokio::pin!(wait);
        loop {
            let Some(due) = self.machine.next_deadline() else {
                return;
            };
            wait.as_mut().reset(due.into());
            wait.as_mut().await;
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let started = Instant::now();
            self.machine.begin(started.into_std());
            let outcome = self
                .probe
                .attempt_reading_into(timers.timeout, &mut self.buffer)
                .await;
            self.conclude(started.into_std(), std::time::Instant::now(), outcome);
        }
    }

    /// The attempt begun at `started` ended at `ended` with `outcome`: the machine, the
    /// metrics and the board take it.
    pub(super) fn conclude(
        &mut self,
        started: std::time::Instant,
        ended: std::time::Instant,
        outcome: Outcome,
    ) {
        let step = self.machine.finish(ended, outcome.is_pass());
        self.series
            .record(outcome.result.label(), ended.duration_since(started));
        self.board.record(
            &self.virtual_server,
            self.endpoint,
            step,
            self.machine.checked(),
            outcome,
        );
    }
}

/// The shared state of every check, and where it is published.
struct Board {
    state: Mutex<HealthSnapshot>,
    publish: watch::Sender<Arc<HealthSnapshot>>,
    /// The state holds a change of a last result or its detail not published yet.
    unpublished: AtomicBool,
    /// The state holds a change of a verdict, a quorum or a first result not published yet.
    urgent: AtomicBool,
    /// Wakes [`Board::publish_changes`] for an urgent change.
    wake: Notify,
    /// Wakes [`Board::publish_changes`] for a change that may wait [`PUBLISH_DELAY`]: without
    /// one, nothing wakes (no tick while nothing is pending, so an agent without real servers
    /// costs no wakeups here).
    pending: Notify,
    /// The remembered verdicts changed since they were last written.
    unsaved: AtomicBool,
    memory: Option<Memory>,
    metrics: Metrics,
}

impl Board {
    /// A board whose first snapshot holds the verdicts kept in `memory`, and its readers.
    fn new(
        memory: Option<Memory>,
        metrics: Metrics,
    ) -> (Arc<Self>, watch::Receiver<Arc<HealthSnapshot>>) {
        let remembered = memory.as_ref().map(Memory::load).unwrap_or_default();
        let first = HealthSnapshot {
            remembered,
            ..HealthSnapshot::default()
        };
        let (publish, snapshot) = watch::channel(Arc::new(first.clone()));
        let board = Arc::new(Board {
            state: Mutex::new(first),
            publish,
            unpublished: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            wake: Notify::new(),
            pending: Notify::new(),
            unsaved: AtomicBool::new(false),
            memory,
            metrics,
        });
        (board, snapshot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthSnapshot> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn assumed(&self, key: &str) -> bool {
        self.lock().remembered.get(key).copied().unwrap_or(true)
    }

    /// Publishes `state` now (the caller holds the lock), with everything pending in it.
    fn publish(&self, state: &HealthSnapshot) {
        self.unpublished.store(false, Ordering::Relaxed);
        self.urgent.store(false, Ordering::Relaxed);
        self.publish.send_replace(Arc::new(state.clone()));
    }

    /// Marks an urgent change of `state` (the caller holds the lock): the pools may differ.
    fn publish_soon(&self, state: &mut HealthSnapshot) {
        state.revision = state.revision.wrapping_add(1);
        self.urgent.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Publishes urgent changes at once, or [`PUBLISH_SPACING`] after the last publication,
    /// and the others within [`PUBLISH_DELAY`]; writes the remembered verdicts with them.
    async fn publish_changes(self: Arc<Self>) {
        let mut last: Option<Instant> = None;
        loop {
            let urgent = tokio::select! {
                () = self.wake.notified() => true,
                () = self.pending.notified() => {
                    // It may wait, unless an urgent change comes meanwhile.
                    tokio::select! {
                        () = self.wake.notified() => true,
                        () = tokio::time::sleep(PUBLISH_DELAY) => false,
                    }
                }
            };
            if let Some(last) = last.filter(|_| urgent) {
                tokio::time::sleep_until(last + PUBLISH_SPACING).await;
            }
            let state = self.lock();
            if self.unsaved.swap(false, Ordering::Relaxed) {
                self.save(&state);
            }
            let urgent = self.urgent.load(Ordering::Relaxed);
            if urgent || self.unpublished.load(Ordering::Relaxed) {
                self.publish(&state);
                if urgent {
                    last = Some(Instant::now());
                }
            }
        }
    }

    fn remove(&self, name: &str) {
        let mut state = self.lock();
        if state.virtual_servers.remove(name).is_some() {
            let prefix = format!("{name}/");
            state.remembered.retain(|k, _| !k.starts_with(&prefix));
            state.revision = state.revision.wrapping_add(1);
            self.save(&state);
            self.publish(&state);
        }
    }

    /// Takes `server`'s configuration (weights, quorum, its checked real servers).
    fn set_server(
        &self,
        server: &ResolvedVirtualServer,
        refused: Option<String>,
        checked: &[Endpoint],
    ) {
        let mut state = self.lock();
        let HealthSnapshot {
            virtual_servers,
            remembered,
            ..
        } = &mut *state;
        let name = server.name.clone();
        let mut real_servers: BTreeMap<Endpoint, RealServerHealth> = BTreeMap::new();
        let old = virtual_servers.get(&name);
        for endpoint in checked {
            let kept = old
                .filter(|o| o.config.health_check == server.health_check)
                .and_then(|o| o.real_servers.get(endpoint))
                .cloned();
            let entry = kept.unwrap_or_else(|| RealServerHealth {
                healthy: remembered
                    .get(&real_server_key(&name, *endpoint))
                    .copied()
                    .unwrap_or(true),
                checked: false,
                last_result: None,
                detail: None,
                since: None,
            });
            real_servers.insert(*endpoint, entry);
        }
        let prefix = format!("{name}/");
        remembered.retain(|k, _| {
            !k.starts_with(&prefix) || checked.iter().any(|e| *k == real_server_key(&name, *e))
        });
        let (previous, since) = old.map_or((None, None), |o| (Some(o.quorum), o.quorum_since));
        let mut entry = VirtualServerHealth {
            config: server.clone(),
            refused,
            real_servers,
            quorum: Quorum {
                up: true,
                healthy_weight: 0,
                threshold: 1,
                sorry_server_active: false,
            },
            quorum_since: since,
        };
        entry.quorum = quorum_of(&entry);
        self.quorum_changed(&name, previous, &mut entry);
        if old != Some(&entry) {
            virtual_servers.insert(name, entry);
            state.revision = state.revision.wrapping_add(1);
            self.publish(&state);
        }
    }

    /// Takes the result of an attempt: published soon when it changes a verdict (or is the
    /// first), else with the next publication.
    fn record(&self, name: &str, endpoint: Endpoint, step: Step, checked: bool, outcome: Outcome) {
        let mut state = self.lock();
        let HealthSnapshot {
            virtual_servers,
            remembered,
            ..
        } = &mut *state;
        let Some(server) = virtual_servers.get_mut(name) else {
            return;
        };
        let Some(health) = server.real_servers.get_mut(&endpoint) else {
            return;
        };
        let first = checked && !health.checked;
        let since = if step.changed || (health.since.is_none() && checked) {
            Some(Timestamp::now())
        } else {
            health.since
        };
        let same = health.healthy == step.healthy
            && health.checked == checked
            && health.last_result == Some(outcome.result)
            && health.detail.as_deref() == Some(outcome.detail.as_str())
            && health.since == since;
        if same {
            return;
        }
        let real_server = target(endpoint);
        if step.changed || !health.checked {
            self.metrics
                .real_server_up(name, &real_server, step.healthy);
        }
        if step.changed {
            let config = &server.config;
            let weight = config
                .real_servers
                .iter()
                .find(|rs| rs.port == endpoint.1 && rs.address.parse() == Ok(endpoint.0))
                .map_or(0, |rs| rs.weight);
            let effect = if step.healthy {
                format!("back in the pool with weight {weight}")
            } else if config.inhibit_on_failure {
                "kept with weight 0 (inhibitOnFailure)".to_owned()
            } else {
                "removed from the pool".to_owned()
            };
            tracing::info!(
                virtual_server = %name,
                real_server = %real_server,
                healthy = step.healthy,
                result = outcome.result.as_str(),
                detail = %outcome.detail,
                "real server {}: {effect}",
                if step.healthy { "rose" } else { "fell" },
            );
        }
        *health = RealServerHealth {
            healthy: step.healthy,
            checked,
            last_result: Some(outcome.result),
            detail: Some(outcome.detail),
            since,
        };
        if !step.changed && !first {
            if !self.unpublished.swap(true, Ordering::Relaxed) {
                self.pending.notify_one();
            }
            return;
        }
        let key = real_server_key(name, endpoint);
        let verdict_changed = step.changed || remembered.get(&key) != Some(&step.healthy);
        remembered.insert(key, step.healthy);
        let previous = Some(server.quorum);
        server.quorum = quorum_of(server);
        self.quorum_changed(name, previous, server);
        if verdict_changed {
            self.unsaved.store(true, Ordering::Relaxed);
        }
        self.publish_soon(&mut state);
    }

    /// Logs, stamps and measures a change of `server`'s quorum.
    fn quorum_changed(
        &self,
        name: &str,
        previous: Option<Quorum>,
        server: &mut VirtualServerHealth,
    ) {
        let quorum = server.quorum;
        if previous.is_none_or(|p| p.up != quorum.up) {
            server.quorum_since = Some(Timestamp::now());
            if previous.is_some() {
                tracing::info!(
                    virtual_server = %name,
                    healthy_weight = quorum.healthy_weight,
                    quorum = quorum.threshold,
                    sorry_server = quorum.sorry_server_active,
                    "{}",
                    if quorum.up { "gained quorum" } else { "lost quorum" }
                );
            }
        }
        self.metrics.quorum(name, &quorum);
    }

    fn save(&self, state: &HealthSnapshot) {
        if let Some(memory) = &self.memory
            && let Err(error) = memory.save(&state.remembered)
        {
            tracing::warn!(path = %memory.path().display(), %error, "cannot keep the real-server verdicts for a restart");
        }
    }
}

fn quorum_of(server: &VirtualServerHealth) -> Quorum {
    super::pool::pool(&server.config, |rs| {
        server.config.health_check.is_none() || server.healthy(rs, true)
    })
    .quorum
}

#[cfg(test)]
mod tests {
    use super::super::poller::RESTART_DELAY;
    use super::*;
    use crate::report::metrics::unix_seconds;
    use std::net::{Ipv4Addr, SocketAddr, TcpListener};

    /// A VirtualServer whose one real server, at `address`, is TCP-checked every 100 ms.
    fn tcp_checked(address: SocketAddr) -> ResolvedVirtualServer {
        serde_json::from_value(serde_json::json!({
            "name": "web-80", "virtualIP": "web", "addresses": ["192.0.2.100"], "port": 80,
            "protocol": "TCP", "scheduler": "wlc", "forwarding": "NAT",
            "realServers": [{"address": address.ip().to_string(), "port": address.port(),
                             "weight": 1}],
            "healthCheck": {"tcp": {}, "interval": "100ms", "timeout": "80ms"}
        }))
        .expect("a resolved VirtualServer")
    }

    /// A real server on 127.0.0.1 (the kernel completes the check's connections; nothing
    /// accepts them), and its address.
    fn real_server() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind on 127.0.0.1");
        let address = listener.local_addr().expect("the listener's address");
        (listener, address)
    }

    /// A supervisor with its board publishing (on the current runtime), and the snapshots.
    fn supervisor(metrics: &Metrics) -> (Supervisor, watch::Receiver<Arc<HealthSnapshot>>) {
        let (board, snapshots) = Board::new(None, metrics.clone());
        tokio::spawn(Arc::clone(&board).publish_changes());
        let supervisor = Supervisor::new(HealthOptions::default(), board, metrics.clone());
        assert!(supervisor.poller.is_some(), "the loop starts");
        (supervisor, snapshots)
    }

    /// Waits (5 s at most) until the real server at `address` has been checked `healthy`.
    async fn wait_for_verdict(
        snapshots: &mut watch::Receiver<Arc<HealthSnapshot>>,
        address: SocketAddr,
        healthy: bool,
    ) {
        let verdict = |snapshot: &Arc<HealthSnapshot>| {
            snapshot
                .virtual_servers
                .get("web-80")
                .and_then(|s| s.real_servers.get(&(address.ip(), address.port())))
                .filter(|h| h.checked)
                .map(|h| h.healthy)
        };
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            snapshots.wait_for(|s| verdict(s) == Some(healthy)),
        )
        .await
        .is_ok_and(|waited| waited.is_ok());
        assert!(
            seen,
            "no verdict healthy={healthy} within 5 s; last {:?}",
            verdict(&snapshots.borrow())
        );
    }

    /// The value of the unlabelled series `name`.
    fn sample<T: std::str::FromStr>(metrics: &Metrics, name: &str) -> Option<T> {
        metrics
            .encode()
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    fn restarts(metrics: &Metrics) -> Option<u64> {
        sample(metrics, "kube_vrrp_health_io_restarts_total")
    }

    /// The last restart's Unix time, as exported.
    fn last_restart(metrics: &Metrics) -> Option<f64> {
        sample(
            metrics,
            "kube_vrrp_health_io_last_restart_timestamp_seconds",
        )
    }

    /// Whether the real server's check runs on the loop (else on the async path).
    fn polled(supervisor: &Supervisor) -> bool {
        let tasks = &supervisor.running["web-80"].tasks;
        assert_eq!(tasks.len(), 1);
        tasks
            .values()
            .all(|task| matches!(task, Running::Polled { .. }))
    }

    /// Makes the loop panic, and lets the supervisor see it end.
    async fn panic_the_loop(supervisor: &mut Supervisor) {
        let poller = supervisor.poller.as_ref().expect("a loop runs");
        poller.panic_switch().flip();
        let ended =
            tokio::time::timeout(Duration::from_secs(5), supervisor.poller_ended.notified()).await;
        assert!(ended.is_ok(), "the loop's thread says it ended");
        supervisor.tend_poller();
    }

    #[tokio::test]
    async fn a_loop_that_panics_is_restarted_at_once_and_a_check_added_before_gives_fresh_verdicts()
    {
        let (listener, address) = real_server();
        let metrics = Metrics::new();
        let (mut supervisor, mut snapshots) = supervisor(&metrics);
        let panic_switch = supervisor
            .poller
            .as_ref()
            .expect("a loop runs")
            .panic_switch();
        let (config, config_rx) = watch::channel(Arc::new(vec![tcp_checked(address)]));
        let scenario = {
            let metrics = metrics.clone();
            async move {
                wait_for_verdict(&mut snapshots, address, true).await;
                assert_eq!(restarts(&metrics), Some(0));
                assert_eq!(
                    last_restart(&metrics),
                    Some(0.0),
                    "exported before a restart"
                );
                let before = unix_seconds(SystemTime::now());
                panic_switch.flip();
                let restarted = tokio::time::timeout(Duration::from_secs(5), async {
                    while restarts(&metrics) == Some(0) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
                let after = unix_seconds(SystemTime::now());
                assert!(
                    restarted.is_ok(),
                    "the supervisor restarts the loop by itself"
                );
                let stamp = last_restart(&metrics).expect("the last restart's time is exported");
                assert!(
                    (before..=after).contains(&stamp),
                    "last restart at {stamp}, not within [{before}, {after}]"
                );
                // The verdict frozen by a dead loop would stay healthy.
                drop(listener);
                wait_for_verdict(&mut snapshots, address, false).await;
                drop(config);
            }
        };
        tokio::join!(supervisor.run(config_rx), scenario);
        assert_eq!(restarts(&metrics), Some(1));
        assert!(
            supervisor.poller.as_ref().is_some_and(|p| !p.has_ended()),
            "a loop runs again"
        );
    }

    #[tokio::test]
    async fn a_loop_that_ends_again_soon_after_its_restart_waits_with_its_checks_on_the_async_path()
    {
        let (listener, address) = real_server();
        let metrics = Metrics::new();
        let (mut supervisor, mut snapshots) = supervisor(&metrics);
        supervisor.apply(&[tcp_checked(address)]);
        wait_for_verdict(&mut snapshots, address, true).await;

        panic_the_loop(&mut supervisor).await;
        assert!(
            supervisor.poller.is_some() && polled(&supervisor),
            "restarted at once"
        );
        panic_the_loop(&mut supervisor).await;
        assert!(supervisor.poller.is_none() && !polled(&supervisor));
        let restart_at = supervisor.restart_at.expect("a restart later");
        assert!(restart_at > Instant::now() + RESTART_DELAY / 2);
        drop(listener);
        wait_for_verdict(&mut snapshots, address, false).await;

        tokio::time::sleep_until(restart_at).await;
        supervisor.tend_poller();
        assert!(
            supervisor.poller.is_some() && polled(&supervisor),
            "restarted after the wait"
        );
        assert_eq!(restarts(&metrics), Some(2));
    }

    #[tokio::test]
    async fn a_loop_that_fails_to_start_is_tried_again_after_growing_delays_and_its_late_start_is_no_restart()
     {
        let (listener, address) = real_server();
        let metrics = Metrics::new();
        let (board, mut snapshots) = Board::new(None, metrics.clone());
        tokio::spawn(Arc::clone(&board).publish_changes());
        let mut supervisor =
            Supervisor::with_failing_starts(HealthOptions::default(), board, metrics.clone(), 2);
        let started = Instant::now();
        assert!(supervisor.poller.is_none(), "the first start fails");
        let first_retry = supervisor.restart_at.expect("a first retry");
        assert!(
            first_retry > started + RESTART_DELAY / 2 && first_retry <= started + RESTART_DELAY
        );
        supervisor.apply(&[tcp_checked(address)]);
        assert!(!polled(&supervisor), "its check runs on the async path");
        wait_for_verdict(&mut snapshots, address, true).await;

        tokio::time::sleep_until(first_retry).await;
        supervisor.tend_poller();
        assert!(supervisor.poller.is_none(), "the second start fails too");
        let second_retry = supervisor.restart_at.expect("a second retry");
        assert!(second_retry >= first_retry + RESTART_DELAY * 2);
        assert!(!polled(&supervisor));

        tokio::time::sleep_until(second_retry).await;
        supervisor.tend_poller();
        assert!(
            supervisor.poller.is_some() && polled(&supervisor),
            "the third start runs the check on the loop"
        );
        assert_eq!(restarts(&metrics), Some(0), "a first start is no restart");
        drop(listener);
        wait_for_verdict(&mut snapshots, address, false).await;

        panic_the_loop(&mut supervisor).await;
        assert!(
            supervisor.poller.is_some() && polled(&supervisor),
            "the first loop to run is restarted at once"
        );
        assert_eq!(restarts(&metrics), Some(1));
    }
}
