//! kube-vrrp-operator binary entry point: subcommands parsed with clap.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kube_vrrp_plan::output::{conflict_line, render_yaml};
use kube_vrrp_plan::{ManifestError, load_manifests};
use kube_vrrp_plan::{PlanInput, plan};

/// kube-vrrp operator: turns VirtualIP and VirtualServer resources into VrrpNode objects.
#[derive(Debug, Parser)]
#[command(name = "kube-vrrp-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Plan a manifests directory offline and print the VrrpNode objects it would apply.
    ///
    /// Reads VirtualIP, VirtualServer and Node YAML from the directory, prints one VrrpNode
    /// document per node, then the conflicts as comments (also on stderr). Exit status: 0
    /// without conflicts, 1 with conflicts or invalid objects, 2 when the input cannot be
    /// read.
    Plan {
        /// Directory of YAML manifests (several documents per file allowed).
        #[arg(long, value_name = "DIR")]
        manifests: PathBuf,
    },
    /// Run the operator against a cluster: watch, plan, apply VrrpNodes, fold statuses.
    ///
    /// Only the replica holding the Lease writes. Serves /metrics, /healthz and /readyz.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, default_value = "[::]:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Keep cordoned nodes in the plan. By default a cordoned node (like a NotReady one or
    /// one labelled node.kubernetes.io/exclude-from-external-load-balancers) holds no VIP,
    /// and its MASTERs hand over with priority 0.
    #[arg(long)]
    keep_cordoned_nodes: bool,
    /// Namespace of the leader election Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader election Lease.
    #[arg(long, default_value = kube_vrrp_operator::lease::DEFAULT_LEASE_NAME)]
    lease_name: String,
    /// Seconds a leader's Lease stays valid without renewal (a standby takes over after).
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds before expiry at which the leader renews.
    #[arg(long, default_value_t = 5)]
    lease_grace_seconds: u64,
    /// This replica's identity in the Lease and in Events (default: random).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Kubeconfig file (default: in-cluster configuration).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// A VrrpNode report older than this many seconds is stale (about 3 agent heartbeats).
    #[arg(long, default_value_t = 30)]
    staleness_seconds: u64,
    /// Seconds between passes without changes (notices stale reports).
    #[arg(long, default_value_t = 10)]
    resync_seconds: u64,
    /// Serve Services of type LoadBalancer of class kubevrrp.io/vrrp: addresses from
    /// VirtualIPPools, one VirtualIP per address (`--load-balancers=false`: Services are not
    /// written and pools are not read).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    load_balancers: bool,
    /// Also serve LoadBalancer Services that name no loadBalancerClass: be the cluster's
    /// default load balancer.
    #[arg(long)]
    default_load_balancer_class: bool,
    /// Writes of one kind a pass makes at once (VirtualIPs for Services, Service statuses,
    /// Events, pool statuses).
    #[arg(long, default_value_t = 16)]
    write_concurrency: usize,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Exit status of `plan`: the manifests are fine.
const EXIT_CLEAN: u8 = 0;
/// Exit status of `plan`: conflicts or invalid objects.
const EXIT_CONFLICTS: u8 = 1;
/// Exit status of `plan`: the input could not be read.
const EXIT_UNREADABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan { manifests } => ExitCode::from(plan_command(&manifests)),
        Command::Run(args) => match run_command(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kube-vrrp-operator: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The in-cluster namespace of this pod, if it runs in one.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn run_command(args: RunArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster()
            .context("loading the in-cluster configuration (or pass --kubeconfig)")?,
    };
    kube::Client::try_from(config).context("building the API client")
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use anyhow::Context as _;
    use kube_vrrp_operator::controller::{self, Config, Context};
    use kube_vrrp_operator::fold::FoldConfig;
    use kube_vrrp_operator::http::{self, HttpState};
    use kube_vrrp_operator::lease::{self, LeaseConfig};
    use kube_vrrp_operator::load_balancer::LbConfig;
    use kube_vrrp_operator::metrics::Metrics;

    let client = client(args.kubeconfig.as_deref()).await?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        },
    ));

    let namespace = args
        .lease_namespace
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let lease_config = LeaseConfig {
        namespace,
        name: args.lease_name,
        identity: args.identity.clone(),
        duration_seconds: args.lease_duration_seconds,
        grace_seconds: args.lease_grace_seconds,
    };
    let election = lease::elect(client.clone(), &lease_config, metrics.clone())
        .context("starting leader election")?;
    tracing::info!(lease = %format!("{}/{}", lease_config.namespace, lease_config.name), "campaigning for the Lease");

    let staleness = i64::try_from(args.staleness_seconds).context("--staleness-seconds")?;
    let ctx = Arc::new(Context::new(
        client,
        controller::reporter(args.identity),
        metrics,
        Config {
            fold: FoldConfig {
                staleness: jiff::SignedDuration::from_secs(staleness),
                ..FoldConfig::default()
            },
            resync: Duration::from_secs(args.resync_seconds),
            load_balancers: args.load_balancers.then_some(LbConfig {
                default_class: args.default_load_balancer_class,
            }),
            write_concurrency: args.write_concurrency.max(1),
            nodes: kube_vrrp_plan::NodePolicy {
                keep_cordoned: args.keep_cordoned_nodes,
            },
            ..Config::default()
        },
        election.leadership(),
    ));

    let outcome = tokio::select! {
        r = controller::run(ctx.clone(), ready) => r.context("controller stopped"),
        r = server => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("serving on {}", args.metrics_addr))),
            Err(e) => Err(anyhow::Error::new(e).context("the HTTP server task failed")),
        },
        r = shutdown_signal() => r.map(|()| tracing::info!("shutting down")),
    };
    // Release the Lease so a standby takes over at its next read (within 2 s), not a lease
    // duration later.
    drop(ctx);
    if let Err(e) = election.stop().await {
        tracing::warn!(error = %e, "releasing the Lease failed; a standby takes over when it expires");
    }
    outcome
}

fn plan_command(dir: &std::path::Path) -> u8 {
    let manifests = match load_manifests(dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            // Objects that parse but break validation rules are the user's to fix, like
            // conflicts; anything else means the input could not be read.
            let only_invalid = e
                .problems()
                .iter()
                .all(|p| matches!(p, ManifestError::Invalid { .. }));
            return if only_invalid {
                EXIT_CONFLICTS
            } else {
                EXIT_UNREADABLE
            };
        }
    };
    let planned = plan(&PlanInput::from(manifests));
    let text = match render_yaml(&planned) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_UNREADABLE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("writing the plan: {e}");
        return EXIT_UNREADABLE;
    }
    for c in &planned.conflicts {
        eprintln!("conflict: {}", conflict_line(c));
    }
    if planned.conflicts.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_CONFLICTS
    }
}
