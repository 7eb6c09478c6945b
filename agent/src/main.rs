//! kube-vrrp-agent binary: the command line. Subcommands only parse arguments and print; the
//! work lives in the library.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kube_vrrp_agent::cluster::{self, ClusterOptions};
use kube_vrrp_agent::decode;
use kube_vrrp_agent::driver::{self, Driver};
use kube_vrrp_agent::report::{self, Metrics, StatusBoard};
use kube_vrrp_agent::source::{self, standalone::Standalone};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "kube-vrrp-agent",
    version,
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

/// The longest a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How long blocking reads (tracked files, manifests) may hold the exit after the shutdown.
const BLOCKING_EXIT_LIMIT: Duration = Duration::from_secs(1);

/// Logs go through a lossy background writer: a slow or blocked stderr drops log lines
/// instead of stalling a VRRP task. Keep the guard until exit (it flushes on drop).
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let outcome = runtime.block_on(async move {
        let shutdown = termination()?;
        let board = StatusBoard::new();
        let metrics = Metrics::new();
        if let Some(addr) = args.listen {
            let listener = tokio::net::TcpListener::bind(addr)
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
        let cluster_tasks = if let Some(dir) = args.manifests {
            let standalone = Standalone::new(dir, args.node);
            tokio::spawn(standalone.watch(sender, Duration::from_millis(args.poll_ms.max(10))));
            None
        } else {
            let client = cluster::client(args.kubeconfig.as_deref()).await?;
            let options = ClusterOptions {
                node_addresses: args.node_ip,
                heartbeat: Duration::from_secs(args.heartbeat.max(1)),
                ..ClusterOptions::new(args.node)
            };
            tracing::info!(node = %options.node, heartbeat = ?options.heartbeat, "cluster mode: watching this node's VrrpNode");
            // SIGHUP re-reads manifests in standalone mode; here the watch is always current,
            // and the default action (exit) would drop every VIP without a goodbye.
            let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP ignored: cluster mode follows the VrrpNode watch");
                }
            });
            Some(cluster::spawn(client, &options, sender, board.clone()))
        };
        let driver = Driver::new(board, metrics)
            .await
            .context("opening rtnetlink")?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(driver::run(driver, updates, async move {
            let _ = stop_rx.await;
        }));
        shutdown.await;
        let _ = stop_tx.send(());
        if tokio::time::timeout(SHUTDOWN_LIMIT, run).await.is_err() {
            tracing::error!("graceful shutdown took longer than {SHUTDOWN_LIMIT:?}; exiting");
        }
        if let Some(tasks) = cluster_tasks {
            tasks.abort();
        }
        Ok(ExitCode::SUCCESS)
    });
    // A blocking read stuck on a tracked file (a hung mount) must not keep the process alive.
    runtime.shutdown_timeout(BLOCKING_EXIT_LIMIT);
    outcome
}

fn status_command(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let instances = report::table::fetch(args.agent)?;
    if args.json {
        let document = report::StatusDocument { instances };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        print!("{}", report::table::render(&instances));
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
    }
}
