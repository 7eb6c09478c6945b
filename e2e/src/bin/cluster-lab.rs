//! cluster-lab (`make cluster-lab`, `make cluster-lab-down`): the cluster half of kube-vrrp on
//! one machine, left running for a person. `up` starts a background process that owns the
//! lab (namespaces, etcd, kube-apiserver, the chart's operator and agent pods), waits until
//! it is ready and prints how to use it; `down` stops that process, which removes everything
//! it made.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::cluster::{Cluster, ClusterSpec, NAMESPACE, RELEASE};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Parser)]
#[command(
    name = "cluster-lab",
    about = "a kube-apiserver, etcd, the chart and its pods in network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Bring the cluster lab up in the background and print how to use it.
    Up {
        /// Node namespaces (n1..nN).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// `helm install --set` values (repeatable); none: the chart's defaults.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        values: Vec<String>,
        /// Stay in the foreground (what the background process runs).
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the cluster lab and remove everything it made.
    Down,
}

/// Where the running lab is recorded: its pid, its log, and the summary printed by `up`.
fn state_dir() -> PathBuf {
    std::env::temp_dir().join("kube-vrrp-cluster-lab")
}

fn pid_file() -> PathBuf {
    state_dir().join("pid")
}

fn summary_file() -> PathBuf {
    state_dir().join("summary")
}

fn running_pid() -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}"))
        .exists()
        .then(|| Pid::from_raw(pid))
}

fn summary(cluster: &Cluster) -> String {
    let (lab, plane) = (cluster.lab(), cluster.control_plane());
    let tools = cluster
        .binaries()
        .kubectl
        .parent()
        .map_or_else(String::new, |p| p.display().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kube-vrrp cluster lab is up: Kubernetes v{} (kube-apiserver and etcd built from Go modules)\n",
        plane.k8s_version()
    );
    let _ = writeln!(
        out,
        "  export KUBECONFIG={}",
        plane.admin_kubeconfig().display()
    );
    let _ = writeln!(out, "  export PATH={tools}:$PATH   # kubectl and helm\n");
    let _ = writeln!(out, "Network namespaces (ip netns exec NAME ...):");
    let _ = writeln!(out, "  switch          {}", lab.switch().name());
    let _ = writeln!(
        out,
        "  client          {}   ({}: VIPs in 192.168.77.0/24 answer here)",
        lab.client().name(),
        addressing::client_ip(Family::V4)
    );
    let _ = writeln!(
        out,
        "  control plane   {}   (kube-apiserver {}, etcd)",
        plane.netns().name(),
        plane.endpoint()
    );
    for n in lab.node_numbers() {
        if let (Ok(name), Ok(ns)) = (lab.node_name(n), lab.node_ns(n)) {
            let _ = writeln!(
                out,
                "  node {name:<10} {}   ({})",
                ns.name(),
                addressing::node_ip(n, Family::V4)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nHelm release {RELEASE} in namespace {NAMESPACE}; its pods run as processes, logs:"
    );
    for pod in cluster.pods() {
        let _ = writeln!(out, "  {:<28} {}", pod.name(), pod.log_path().display());
    }
    let _ = writeln!(
        out,
        "\nTry: kubectl apply -f deploy/examples/lab/virtualip.yaml && kubectl get vip -w"
    );
    let _ = writeln!(out, "Stop and remove everything: make cluster-lab-down");
    out
}

/// The background process: owns the lab until SIGTERM/SIGINT/SIGHUP.
fn foreground(nodes: usize, values: Vec<String>) -> anyhow::Result<()> {
    // Signals are blocked in every thread and taken by one watcher, so the lab is removed
    // whichever arrives, even during bring-up.
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set.thread_block().context("block signals")?;
    let stop = Arc::new(Mutex::new(None));
    let raised = Arc::clone(&stop);
    std::thread::spawn(move || {
        if let Ok(signal) = set.wait() {
            *raised
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(signal);
        }
    });
    let stopped = || {
        *stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut cluster =
        Cluster::up(&ClusterSpec { nodes, values }).context("bringing the cluster lab up")?;
    if stopped().is_none() {
        let text = summary(&cluster);
        std::fs::create_dir_all(state_dir()).context("create the state directory")?;
        std::fs::write(summary_file(), &text).context("write the summary")?;
        println!("{text}");
    }
    // Play kubelet and controllers for deleted Pods until told to stop.
    let signal = loop {
        if let Some(signal) = stopped() {
            break signal;
        }
        match cluster.reconcile_deleted_pods() {
            Ok(replaced) if !replaced.is_empty() => {
                println!("pods deleted by a user, made again: {replaced:?}");
            }
            Ok(_) => {}
            Err(e) => println!("following Pod deletions: {e}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    println!("{signal}: removing the cluster lab");
    drop(cluster);
    let _ = std::fs::remove_file(summary_file());
    let _ = std::fs::remove_file(pid_file());
    Ok(())
}

fn up(nodes: usize, values: &[String]) -> anyhow::Result<()> {
    if let Some(pid) = running_pid() {
        bail!("a cluster lab is already running (pid {pid}); `make cluster-lab-down` first");
    }
    std::fs::create_dir_all(state_dir()).context("create the state directory")?;
    let _ = std::fs::remove_file(summary_file());
    let log_path = state_dir().join("log");
    let log = std::fs::File::create(&log_path).context("create the log")?;
    let mut command = Command::new(std::env::current_exe().context("own path")?);
    command.args(["up", "--foreground", "--nodes", &nodes.to_string()]);
    for value in values {
        command.args(["--set", value]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start the background process")?;
    std::fs::write(pid_file(), child.id().to_string()).context("write the pid file")?;
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(summary_file()) {
            print!("{text}");
            println!(
                "(brought up in {:.0} s; its log: {})",
                started.elapsed().as_secs_f64(),
                log_path.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let _ = std::fs::remove_file(pid_file());
            bail!(
                "the cluster lab did not come up ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn down() -> anyhow::Result<()> {
    let Some(pid) = running_pid() else {
        println!("no cluster lab is running");
        let _ = std::fs::remove_file(pid_file());
        return Ok(());
    };
    kill(pid, Signal::SIGTERM).context("signal the cluster lab")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() >= deadline {
            bail!("the cluster lab (pid {pid}) did not stop within 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(pid_file());
    println!("cluster lab stopped and removed");
    std::io::stdout().flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Up {
            nodes,
            values,
            foreground: true,
        } => foreground(nodes, values),
        Cmd::Up {
            nodes,
            values,
            foreground: false,
        } => up(nodes, &values),
        Cmd::Down => down(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
