//! kube-vrrp-agent binary: the command line. Subcommands only parse arguments and print; the
//! work lives in the library.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kube_vrrp_agent::check::host_dirs::{HostAccess, HostDirs};
use kube_vrrp_agent::check::real_server::{HealthChecks, HealthOptions, Memory};
use kube_vrrp_agent::check::{EndpointReadiness, QuorumFeed};
use kube_vrrp_agent::cluster::{self, ClusterOptions};
use kube_vrrp_agent::decode;
use kube_vrrp_agent::driver::{self, Driver};
use kube_vrrp_agent::ipvs;
use kube_vrrp_agent::memory::{self, Release};
use kube_vrrp_agent::process::ProcessTuning;
use kube_vrrp_agent::report::{self, Metrics, StatusBoard};
use kube_vrrp_agent::source::{self, standalone::Standalone};
use tokio::signal::unix::{SignalKind, signal};

/// `--version`: the crate's version, and whether this is a debug build (the lab's benchmarks
/// refuse one: its costs say nothing of the release build's).
#[cfg(not(debug_assertions))]
const VERSION: &str = env!("CARGO_PKG_VERSION");
#[cfg(debug_assertions)]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (debug build)");

#[derive(Debug, Parser)]
#[command(
    name = "kube-vrrp-agent",
    version = VERSION,
    about = "kube-vrrp node agent: VRRP, VIPs, trackers, reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode VRRP packets to JSON lines (one object per packet; errors as objects with `error`).
    ///
    /// Exit status: 0 when every VRRP packet decoded, 1 when any error line was printed.
    Decode(DecodeArgs),
    /// Run VRRP for this node: elect, own the VIPs, report. SIGTERM/SIGINT leave gracefully
    /// (a MASTER sends priority 0 and removes its VIPs); SIGHUP re-reads the manifests.
    Run(RunArgs),
    /// Print the instances of a running agent as a table (from its `/status`).
    Status(StatusArgs),
    /// Translate keepalived.conf files (one per node) into VirtualIP, VirtualServer, Node and
    /// Secret manifests.
    ///
    /// The manifests go to stdout (for `kubectl apply -f -` or a standalone manifests
    /// directory), the report of what does not carry over to stderr, each item with file and
    /// line. Exit status: 0 when everything was translated as written, 1 when the report has
    /// items, 2 when the input cannot be read.
    Import(ImportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// This node's name: its Node (standalone mode) or its VrrpNode (cluster mode).
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// Standalone mode: a directory of VirtualIP, VirtualServer, Node and Secret manifests.
    /// Without it the agent runs in cluster mode: it watches its own VrrpNode and writes its
    /// status.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// Cluster mode: the kubeconfig to use (default: in-cluster, then KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, value_name = "PATH", conflicts_with = "manifests")]
    kubeconfig: Option<PathBuf>,
    /// Cluster mode: VrrpNode.status is rewritten at least this often, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        conflicts_with = "manifests"
    )]
    heartbeat: u64,
    /// Cluster mode: a directory on the node where the last applied configuration is kept
    /// (`last-config-<node>.json`, mode 0600, v2 passwords included), so an agent restarted while the
    /// API server is down runs it. Omitted: nothing is kept.
    #[arg(
        long,
        env = "STATE_DIR",
        value_name = "DIR",
        conflicts_with = "manifests"
    )]
    state_dir: Option<PathBuf>,
    /// Cluster mode: this node's own addresses (comma-separated), used to pick an instance's
    /// interface when neither a hint nor a subnet decides (e.g. from status.hostIP).
    #[arg(long, env = "NODE_IP", value_name = "IP", value_delimiter = ',')]
    node_ip: Vec<IpAddr>,
    /// Serve /metrics, /status, /healthz and /readyz on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// How often the manifests directory is checked for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    poll_ms: u64,
    /// Where the agent keeps what lives as long as the kernel's own tables (the record of the
    /// IPVS services it owns): a tmpfs such as /run, so a rebooted node starts clean.
    #[arg(long, value_name = "DIR", default_value = "/run/kube-vrrp")]
    runtime_dir: PathBuf,
    /// How long a terminating real server may keep its connections before it is removed, in
    /// seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    ipvs_drain_timeout: u64,
    /// How often IPVS is re-read (status, connection counts, drift), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    ipvs_resync_ms: u64,
    /// A host directory scripts may run from (track scripts and script health checks), as an
    /// absolute path; repeat for several. A VirtualIP or VirtualServer naming a program
    /// elsewhere is refused with its reason. None given: no script runs.
    #[arg(long = "script-dir", value_name = "DIR")]
    script_dirs: Vec<PathBuf>,
    /// A host directory `track.files` may name files in, as an absolute path; repeat for
    /// several. A VirtualIP naming a file elsewhere is refused with its reason. None given:
    /// any absolute path (the agent runs on the host; in a pod the chart mounts one directory
    /// from the node and names it here).
    #[arg(long = "track-file-dir", value_name = "DIR")]
    track_file_dirs: Vec<PathBuf>,
    /// Health check attempts in flight at most (more wait for their turn).
    #[arg(long, value_name = "N", default_value_t = kube_vrrp_agent::check::real_server::runner::DEFAULT_CONCURRENCY)]
    check_concurrency: usize,
    /// Run the agent's threads under SCHED_RR at this priority (1-99; keepalived's
    /// vrrp_rt_priority), so adverts leave on time on a busy node. Needs CAP_SYS_NICE. The
    /// scripts the agent starts run under the normal scheduler. Omitted: the normal scheduler.
    #[arg(long, value_name = "PRIORITY", value_parser = clap::value_parser!(u8).range(1..=99))]
    realtime_priority: Option<u8>,
    /// Lock the agent's memory as it is touched (mlockall; keepalived's vrrp_no_swap), so it is
    /// never swapped out. Needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK.
    #[arg(long)]
    lock_memory: bool,
}

/// The `--script-dir` and `--track-file-dir` directories, which must be absolute paths.
fn host_access(args: &RunArgs) -> anyhow::Result<HostAccess> {
    for (flag, dirs) in [
        ("--script-dir", &args.script_dirs),
        ("--track-file-dir", &args.track_file_dirs),
    ] {
        for dir in dirs {
            anyhow::ensure!(
                dir.is_absolute(),
                "{flag} {}: give an absolute path",
                dir.display()
            );
            if !dir.is_dir() {
                tracing::warn!(dir = %dir.display(), "{flag} is not a directory on this host: nothing in it can be used");
            }
        }
    }
    Ok(HostAccess {
        scripts: HostDirs::scripts(args.script_dirs.iter().cloned()),
        track_files: (!args.track_file_dirs.is_empty())
            .then(|| HostDirs::track_files(args.track_file_dirs.iter().cloned())),
    })
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The node of each file, in the order of the files (--node n1 --node n2 n1.conf n2.conf).
    /// With one file and no --node: this machine's host name.
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// keepalived's config id for `@name` lines (its -i), one per file in order. Default: the
    /// first label of each node name, as keepalived defaults to the host name's.
    #[arg(long = "config-id", value_name = "ID")]
    config_ids: Vec<String>,
    /// A copy of each node's root directory, one per file in order: absolute `include` paths
    /// are read under it. Default: this machine's `/`.
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Namespace of the Secrets that hold VRRPv2 passwords.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-vrrp")]
    secret_namespace: String,
    /// Print for a cluster: no Node objects (the VirtualIPs select the cluster's own Nodes by
    /// their kubernetes.io/hostname label and use their InternalIPs as unicast peers).
    #[arg(long)]
    cluster: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    report_json: bool,
    /// The keepalived.conf files (includes are read from there).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Exit status of `import` when the input cannot be read.
const EXIT_UNREADABLE: u8 = 2;

fn import_command(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let nodes = if args.nodes.is_empty() && args.files.len() == 1 {
        match std::fs::read_to_string("/proc/sys/kernel/hostname") {
            Ok(host) => vec![host.trim().to_ascii_lowercase()],
            Err(e) => {
                eprintln!(
                    "import: reading this machine's host name: {e}; name the node with --node"
                );
                return Ok(ExitCode::from(EXIT_UNREADABLE));
            }
        }
    } else {
        args.nodes
    };
    if nodes.len() != args.files.len() {
        eprintln!(
            "import: {} files but {} --node names; name each file's node, in order",
            args.files.len(),
            nodes.len()
        );
        return Ok(ExitCode::from(EXIT_UNREADABLE));
    }
    for (flag, count) in [
        ("--config-id", args.config_ids.len()),
        ("--root", args.roots.len()),
    ] {
        if count != 0 && count != args.files.len() {
            eprintln!("import: give one {flag} per file, in order, or none");
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    }
    let inputs: Vec<kube_vrrp_import::Input> = nodes
        .iter()
        .zip(&args.files)
        .enumerate()
        .map(|(i, (node, file))| kube_vrrp_import::Input {
            config_id: args
                .config_ids
                .get(i)
                .cloned()
                .unwrap_or_else(|| kube_vrrp_import::default_config_id(node)),
            root: args.roots.get(i).cloned(),
            ..kube_vrrp_import::Input::new(node, file)
        })
        .collect();
    let options = kube_vrrp_import::Options {
        secret_namespace: args.secret_namespace,
        nodes: !args.cluster,
    };
    let mut files = kube_vrrp_import::FileSystem::new(".");
    let outcome = match kube_vrrp_import::import(&inputs, &mut files, &options) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_UNREADABLE));
        }
    };
    let mut stdout = std::io::stdout().lock();
    let sources: Vec<String> = inputs
        .iter()
        .map(|i| format!("{} (node {})", i.file.display(), i.node))
        .collect();
    writeln!(stdout, "# kube-vrrp-agent import of {}", sources.join(", "))?;
    writeln!(
        stdout,
        "# Review the report on stderr before applying these objects."
    )?;
    stdout.write_all(outcome.yaml.as_bytes())?;
    stdout.flush()?;
    if args.report_json {
        eprintln!("{}", serde_json::to_string_pretty(&outcome.report)?);
    } else {
        eprint!("{}", outcome.report.render());
    }
    eprintln!("{}", outcome.summary());
    Ok(ExitCode::from(outcome.exit_status()))
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The agent's --listen address.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9650")]
    agent: SocketAddr,
    /// Print the JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// The longest a graceful shutdown may take before the process exits anyway: the longest
/// handover a MASTER makes (it keeps its VIPs until the new MASTER speaks), the units' own
/// stop time, and a margin. The chart's terminationGracePeriodSeconds (30 s) covers it.
const SHUTDOWN_LIMIT: Duration = kube_vrrp_agent::vrrp::instance::HANDOVER_LIMIT
    .saturating_add(driver::UNIT_STOP_TIMEOUT)
    .saturating_add(Duration::from_secs(2));
/// How long blocking reads (tracked files, manifests) may hold the exit after the shutdown.
const BLOCKING_EXIT_LIMIT: Duration = Duration::from_secs(1);

/// Log lines the background writer may hold before it drops new ones. The queue's slots are
/// allocated and touched up front (32 bytes each): tracing-appender's default of 128,000 lines
/// is 4 MiB resident for the agent's lifetime. 8,192 lines hold a start of 255 instances with
/// their first transitions, and a stalled stderr drops lines either way.
const LOG_BUFFERED_LINES: usize = 8_192;

/// Logs go through a lossy background writer: a slow or blocked stderr drops log lines
/// instead of stalling a VRRP task. Keep the guard until exit (it flushes on drop).
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFERED_LINES)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// Resolves on the first SIGTERM or SIGINT.
fn termination() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "termination requested");
    })
}

fn run_command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _log_guard = init_logging(args.log_format);
    // Before any runtime thread exists; the log writer's thread stays under the normal
    // scheduler.
    let tuning = ProcessTuning {
        realtime_priority: args.realtime_priority,
        lock_memory: args.lock_memory,
    };
    tuning.apply()?;
    if tuning != ProcessTuning::default() {
        tracing::info!(
            realtime_priority = ?tuning.realtime_priority,
            lock_memory = tuning.lock_memory,
            "process tuning applied"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Blocking threads (file reads, rare) exit a second after their last job instead of
        // ten: no idle thread holds a stack and cache in the steady state.
        .thread_keep_alive(Duration::from_secs(1))
        .enable_all()
        .on_thread_start(move || tuning.on_thread_start())
        .build()
        .context("starting the tokio runtime")?;
    let outcome = runtime.block_on(async move {
        let shutdown = termination()?;
        let board = StatusBoard::new();
        let metrics = Metrics::new();
        if let Some(addr) = args.listen {
            let listener = report::http::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?;
            let (board, metrics) = (board.clone(), metrics.clone());
            tokio::spawn(async move {
                if let Err(error) = report::http::serve(listener, board, metrics).await {
                    tracing::error!(%error, "the HTTP report server stopped");
                }
            });
        }
        let (sender, updates) = source::channel();
        let readiness = EndpointReadiness::new();
        let host = host_access(&args)?;
        let node = args.node.clone();
        if !host.scripts.dirs().is_empty() && std::process::id() == 1 {
            tracing::warn!("running as PID 1: processes a killed script leaves behind are reaped only by an init (the chart shares the pod's process namespace for this)");
        }
        let cluster_tasks = if let Some(dir) = args.manifests {
            let standalone = Standalone::new(dir, args.node).host_access(host.clone());
            tokio::spawn(standalone.watch(sender, Duration::from_millis(args.poll_ms.max(10))));
            None
        } else {
            let client = cluster::client(args.kubeconfig.as_deref()).await?;
            let options = ClusterOptions {
                node_addresses: args.node_ip,
                heartbeat: Duration::from_secs(args.heartbeat.max(1)),
                state_dir: args.state_dir,
                host: host.clone(),
                ..ClusterOptions::new(args.node)
            };
            tracing::info!(node = %options.node, heartbeat = ?options.heartbeat, state_dir = ?options.state_dir, "cluster mode: watching this node's VrrpNode");
            // SIGHUP re-reads manifests in standalone mode; here the watch is always current,
            // and the default action (exit) would drop every VIP without a goodbye.
            let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP ignored: cluster mode follows the VrrpNode watch");
                }
            });
            Some(cluster::spawn(
                client,
                &options,
                sender,
                board.clone(),
                readiness.clone(),
            ))
        };
        // IPVS follows the configuration first and hands it on to VRRP (see ipvs::task).
        let (to_driver, driver_updates) = source::channel();
        // Health checks run on a thread of their own; IPVS and quorum trackers follow them.
        let health_options = HealthOptions {
            script_dirs: host.scripts,
            concurrency: args.check_concurrency.max(1),
            memory: Some(Memory::in_dir(&args.runtime_dir, &node)),
        };
        let health = HealthChecks::start(health_options, metrics.clone())
            .context("starting the health checks' thread")?;
        let quorums = QuorumFeed::new(health.subscribe());
        tokio::spawn(board.clone().follow_health(health.subscribe()));
        let ipvs_options = ipvs::task::IpvsOptions {
            runtime_dir: args.runtime_dir,
            drain_timeout: Duration::from_secs(args.ipvs_drain_timeout),
            resync: Duration::from_millis(args.ipvs_resync_ms.max(100)),
        };
        // What a configuration change freed goes back to the kernel once it has settled.
        let release = if tuning.lock_memory {
            Release::HeapOnly
        } else {
            Release::HeapAndCode
        };
        tokio::spawn(memory::release_after_changes(
            driver_updates.clone(),
            release,
        ));
        let ipvs_task =
            ipvs::task::spawn(ipvs_options, updates, to_driver, board.clone(), health);
        let driver = Driver::new(board, metrics)
            .await
            .context("opening rtnetlink")?
            .follow_endpoints(readiness)
            .follow_quorums(quorums);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(driver::run(driver, driver_updates, async move {
            let _ = stop_rx.await;
        }));
        shutdown.await;
        let _ = stop_tx.send(());
        if tokio::time::timeout(SHUTDOWN_LIMIT, run).await.is_err() {
            tracing::error!("graceful shutdown took longer than {SHUTDOWN_LIMIT:?}; exiting");
        }
        if let Some(tasks) = cluster_tasks {
            // After the handover: the last status says what still runs (nothing), so the
            // operator does not wait for this node's report to go stale.
            tasks.finish().await;
        }
        // Services stay in the kernel: a restarted agent adopts them without a gap.
        ipvs_task.abort();
        Ok(ExitCode::SUCCESS)
    });
    // A blocking read stuck on a tracked file (a hung mount) must not keep the process alive.
    runtime.shutdown_timeout(BLOCKING_EXIT_LIMIT);
    outcome
}

fn status_command(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let document = report::table::fetch_document(args.agent)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", report::table::render(&document.instances));
        let rejected = report::table::render_rejected(&document.rejected);
        if !rejected.is_empty() {
            print!("\n{rejected}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct DecodeArgs {
    /// A whole IPv4/IPv6 packet or a bare VRRP message, in hex (spaces, `:` and `-` allowed).
    #[arg(long, value_name = "BYTES")]
    hex: Option<String>,
    /// A classic pcap file (Ethernet, Linux SLL/SLL2 or raw IP); non-VRRP frames are skipped and
    /// a summary goes to stderr. `index` in the output counts frames from 0.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

fn decode_command(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let records = match (args.hex, args.pcap) {
        (Some(text), _) => vec![decode::hex_record(&text)],
        (None, Some(path)) => {
            let (records, summary) = decode::pcap_file_records(&path);
            decode::write_records(&mut stdout, &records)?;
            stdout.flush()?;
            eprintln!("{}", serde_json::json!({ "summary": summary }));
            return Ok(exit_code(&records));
        }
        (None, None) => anyhow::bail!("one of --hex or --pcap is required"),
    };
    decode::write_records(&mut stdout, &records)?;
    Ok(exit_code(&records))
}

fn exit_code(records: &[decode::Record]) -> ExitCode {
    if records.iter().any(decode::Record::is_error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Decode(args) => decode_command(args),
        Command::Run(args) => run_command(args),
        Command::Status(args) => status_command(&args),
        Command::Import(args) => import_command(args),
    }
}
