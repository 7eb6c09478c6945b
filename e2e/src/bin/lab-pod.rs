//! lab-pod: the container runtime's part of running a pod's container as a lab process. In a
//! private mount namespace it mounts the pod's volumes where the container expects them
//! (bind mounts of directories the harness prepared), optionally makes the root filesystem
//! read-only, and then execs the container's command in place (same pid).
//!
//! `lab-pod --mount SRC:DST[:ro]... [--read-only-root] -- COMMAND ARGS...`
//!
//! The command starts with no signal blocked, as a container runtime starts containers (a
//! blocked mask is inherited across fork and exec, and the harness that runs the lab may block
//! SIGTERM to wait for it).
//!
//! A mount target that does not exist is not created on the host: the nearest existing
//! ancestor gets a private tmpfs (as a container image would have its own directories), and
//! the target is made inside it.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Parser;
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "lab-pod",
    about = "mount a pod's volumes in a private mount namespace, then exec its command"
)]
struct Cli {
    /// SRC:DST or SRC:DST:ro, a directory bind-mounted at DST.
    #[arg(long = "mount", value_name = "SRC:DST[:ro]")]
    mounts: Vec<String>,
    /// Remount / read-only (securityContext.readOnlyRootFilesystem).
    #[arg(long)]
    read_only_root: bool,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

#[derive(Debug)]
struct Mount {
    source: OwnedFd,
    source_path: PathBuf,
    target: PathBuf,
    read_only: bool,
}

fn parse_mount(spec: &str) -> anyhow::Result<Mount> {
    let mut parts = spec.split(':');
    let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
        bail!("--mount {spec}: expected SRC:DST[:ro]");
    };
    let read_only = match parts.next() {
        None => false,
        Some("ro") => true,
        Some(other) => bail!("--mount {spec}: unknown option {other:?} (only ro)"),
    };
    let fd = open(
        source,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open mount source {source}"))?;
    Ok(Mount {
        source: fd,
        source_path: PathBuf::from(source),
        target: PathBuf::from(target),
        read_only,
    })
}

/// Makes `target` exist without writing to the host's filesystem: below a tmpfs already
/// mounted by us, or in a new tmpfs on its nearest existing ancestor.
fn make_target(
    target: &Path,
    tmpfs_roots: &mut Vec<PathBuf>,
    program: &Path,
) -> anyhow::Result<()> {
    if target.is_dir() {
        return Ok(());
    }
    let ancestor = target
        .ancestors()
        .find(|a| a.exists())
        .context("no existing ancestor")?
        .canonicalize()?;
    if !tmpfs_roots.iter().any(|root| ancestor.starts_with(root)) {
        if ancestor == Path::new("/") {
            bail!("{}: would need a tmpfs over /", target.display());
        }
        if program.starts_with(&ancestor) {
            bail!(
                "{}: a tmpfs over {} would hide the program {}",
                target.display(),
                ancestor.display(),
                program.display()
            );
        }
        mount(
            Some("tmpfs"),
            &ancestor,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
        .with_context(|| format!("tmpfs on {}", ancestor.display()))?;
        tmpfs_roots.push(ancestor);
    }
    std::fs::create_dir_all(target).with_context(|| format!("mkdir {}", target.display()))
}

fn run(cli: &Cli) -> anyhow::Result<std::convert::Infallible> {
    let (program, args) = cli.command.split_first().context("no command")?;
    let program_path = Path::new(program)
        .canonicalize()
        .with_context(|| format!("the command {program} (give an absolute path)"))?;

    unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    // Nothing mounted here propagates back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("make / private")?;
    // Sources are opened inside the new namespace (a bind mount's source must belong to it)
    // and before anything is mounted, so a tmpfs over a parent cannot hide them.
    let mounts = cli
        .mounts
        .iter()
        .map(|m| parse_mount(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tmpfs_roots = Vec::new();
    for m in &mounts {
        make_target(&m.target, &mut tmpfs_roots, &program_path)?;
        let source = format!("/proc/self/fd/{}", m.source.as_raw_fd());
        mount(
            Some(source.as_str()),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("bind {} on {}", m.source_path.display(), m.target.display()))?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.target,
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("make {} read-only", m.target.display()))?;
        }
    }
    if cli.read_only_root {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .context("make / read-only")?;
    }
    drop(mounts);
    SigSet::all().thread_unblock().context("unblock signals")?;
    let error = std::process::Command::new(&program_path).args(args).exec();
    Err(error).with_context(|| format!("exec {}", program_path.display()))
}

fn main() -> std::process::ExitCode {
    match run(&Cli::parse()) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("lab-pod: {e:#}");
            std::process::ExitCode::from(127)
        }
    }
}
