//! kube-vrrp-operator binary entry point: subcommands parsed with clap.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kube_vrrp_crds::{ManifestError, load_manifests};
use kube_vrrp_operator::plan::output::{conflict_line, render_yaml};
use kube_vrrp_operator::plan::{PlanInput, plan};

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
    }
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
