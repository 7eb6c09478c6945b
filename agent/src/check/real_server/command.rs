//! Script health checks (keepalived's `MISC_CHECK`): a program from an allowed directory, run
//! without a shell with the real server's address and port in its environment; exit 0
//! passes. A run past the timeout is killed with its whole process group and reaped.

use std::time::Duration;

use kube_vrrp_crds::CheckResult;

use super::outcome::Outcome;
use crate::check::host_dirs::HostDirs;
use crate::check::script::{ScriptOutcome, run_with_env};

/// The environment variable holding the real server's address.
pub const ADDRESS_VARIABLE: &str = "REAL_SERVER_ADDRESS";
/// The environment variable holding the real server's port.
pub const PORT_VARIABLE: &str = "REAL_SERVER_PORT";

/// A script check of one real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandProbe {
    /// Program (absolute, admitted by `dirs`) and arguments.
    pub argv: Vec<String>,
    /// `REAL_SERVER_ADDRESS` and `REAL_SERVER_PORT`.
    pub env: Vec<(&'static str, String)>,
    /// Where the program must still lie when it is run.
    pub dirs: HostDirs,
}

impl CommandProbe {
    /// One run, killed at `timeout`.
    pub async fn attempt(&self, timeout: Duration) -> Outcome {
        let Some((program, args)) = self.argv.split_first() else {
            return Outcome::failed(CheckResult::Misconfigured, "empty command");
        };
        let program = match self.dirs.resolve(program) {
            Ok(path) => path.display().to_string(),
            Err(why) => return Outcome::failed(CheckResult::Misconfigured, why),
        };
        let mut argv = Vec::with_capacity(self.argv.len());
        argv.push(program);
        argv.extend(args.iter().cloned());
        match run_with_env(&argv, &self.env, timeout).await {
            ScriptOutcome::Success => Outcome::passed("exit status 0"),
            ScriptOutcome::Failed(Some(code)) => {
                Outcome::failed(CheckResult::ScriptFailed, format!("exit status {code}"))
            }
            ScriptOutcome::Failed(None) => {
                Outcome::failed(CheckResult::ScriptFailed, "killed by a signal")
            }
            ScriptOutcome::TimedOut => Outcome::failed(
                CheckResult::ScriptTimedOut,
                format!("still running after {timeout:?}: killed with its process group"),
            ),
            ScriptOutcome::NotStarted(why) => Outcome::failed(CheckResult::ScriptNotStarted, why),
        }
    }
}
