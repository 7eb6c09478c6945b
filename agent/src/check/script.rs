//! Script trackers: run a command with a timeout; exit 0 is a success. A command that outlives
//! its timeout is killed with its whole process group.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::time::MissedTickBehavior;

use super::Slot;
use super::rise_fall::RiseFall;

/// How a script tracker runs its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptProbe {
    /// Program and arguments (no shell unless the program is one).
    pub argv: Vec<String>,
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// A run still going after this is killed and counts as a failure.
    pub timeout: Duration,
    /// Consecutive successes that turn a failed script up.
    pub rise: u32,
    /// Consecutive failures that turn a good script down.
    pub fall: u32,
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOutcome {
    /// Exit status 0.
    Success,
    /// Non-zero exit (the code) or killed by a signal (`None`).
    Failed(Option<i32>),
    /// Still running at the timeout: killed.
    TimedOut,
    /// The command could not be started (missing program, empty argv, ...).
    NotStarted(String),
}

impl ScriptOutcome {
    /// Exit 0, and nothing else, is a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// A sentence for `CheckerStatus.message`; `None` for a success.
    pub fn describe(&self, timeout: Duration) -> Option<String> {
        match self {
            Self::Success => None,
            Self::Failed(Some(code)) => Some(format!("exited with status {code}")),
            Self::Failed(None) => Some("killed by a signal".to_owned()),
            Self::TimedOut => Some(format!("still running after {timeout:?}: killed")),
            Self::NotStarted(why) => Some(format!("could not start: {why}")),
        }
    }

    /// The short word used in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed(_) => "failed",
            Self::TimedOut => "timeout",
            Self::NotStarted(_) => "not_started",
        }
    }
}

/// Kills a script's process group when dropped, unless disarmed after the script was reaped.
/// This covers a timeout and a tracker task aborted mid-run: nothing the script started survives.
struct GroupKiller {
    group: Option<Pid>,
}

impl GroupKiller {
    fn kill(&mut self) {
        if let Some(group) = self.group.take() {
            // ESRCH (already gone) is fine.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `argv` once, in its own process group, with stdio closed, and waits at most `timeout`.
pub async fn run_once(argv: &[String], timeout: Duration) -> ScriptOutcome {
    run_with_env(argv, &[], timeout).await
}

/// [`run_once`] with `env` added to the agent's environment. The child is reaped before this
/// returns, also after a timeout (it is killed with its whole process group first).
pub async fn run_with_env(
    argv: &[String],
    env: &[(&str, String)],
    timeout: Duration,
) -> ScriptOutcome {
    let Some((program, args)) = argv.split_first() else {
        return ScriptOutcome::NotStarted("empty command".to_owned());
    };
    let mut child = match Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return ScriptOutcome::NotStarted(format!("{program}: {error}")),
    };
    // With process_group(0) the child leads a group whose id is its pid.
    let mut killer = GroupKiller {
        group: child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            killer.group = None;
            if status.success() {
                ScriptOutcome::Success
            } else {
                ScriptOutcome::Failed(status.code())
            }
        }
        Ok(Err(error)) => {
            killer.kill();
            ScriptOutcome::NotStarted(format!("{program}: wait: {error}"))
        }
        Err(_elapsed) => {
            killer.kill();
            // Reap the leader; it got SIGKILL so this is quick.
            let _ = child.wait().await;
            ScriptOutcome::TimedOut
        }
    }
}

/// The tracker task: run every `interval` (a run longer than the interval delays the next one),
/// debounce with rise/fall, report each change of the debounced state.
pub(crate) async fn track(probe: ScriptProbe, slot: Slot) {
    let mut rise_fall = RiseFall::new(probe.rise, probe.fall);
    let mut ticker = tokio::time::interval(probe.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = run_once(&probe.argv, probe.timeout).await;
        let success = outcome.is_success();
        if !success {
            tracing::debug!(tracker = slot.name(), outcome = outcome.as_str(), detail = ?outcome, "script failed");
            slot.count_failure();
        }
        slot.note(outcome.describe(probe.timeout));
        slot.report(rise_fall.observe(success));
    }
}
