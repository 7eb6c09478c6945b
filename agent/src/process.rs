//! How the agent's process runs on a busy node: its threads under real-time round-robin
//! scheduling and its memory locked against swapping (keepalived's `vrrp_rt_priority` and
//! `vrrp_no_swap`), both off unless asked for.

use crate::net::sys;

/// The process knobs asked for on the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessTuning {
    /// `SCHED_RR` priority (1–99) for every thread of the agent; `None`: the normal scheduler.
    pub realtime_priority: Option<u8>,
    /// Lock memory (`mlockall`, pages locked as they are touched).
    pub lock_memory: bool,
}

/// A knob that could not be applied; the agent does not start without what it was asked for.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// `sched_setscheduler` failed.
    #[error(
        "real-time priority {priority}: {error} (SCHED_RR needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least {priority}; the chart adds SYS_NICE when agent.realtimePriority is set)"
    )]
    Realtime {
        /// The priority asked for.
        priority: u8,
        /// The system call's error (in the message: the hint follows it).
        error: std::io::Error,
    },
    /// `mlockall` failed.
    #[error(
        "locking memory: {error} (mlockall needs CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK; the chart adds IPC_LOCK when agent.lockMemory is set)"
    )]
    LockMemory {
        /// The system call's error (in the message: the hint follows it).
        error: std::io::Error,
    },
}

impl ProcessTuning {
    /// Applies the knobs to the calling thread and the process. Call it on the main thread
    /// before any runtime thread exists, then [`ProcessTuning::on_thread_start`] in each.
    pub fn apply(self) -> Result<(), TuningError> {
        if self.lock_memory {
            sys::lock_memory_on_fault().map_err(|error| TuningError::LockMemory { error })?;
        }
        if let Some(priority) = self.realtime_priority {
            sys::set_round_robin(priority)
                .map_err(|error| TuningError::Realtime { priority, error })?;
        }
        Ok(())
    }

    /// Puts a new runtime thread under the real-time policy too: the policy is reset on every
    /// fork and clone (so the scripts the agent starts never inherit it), threads included.
    /// [`ProcessTuning::apply`] has proven the permission, so a failure here only logs.
    pub fn on_thread_start(self) {
        if let Some(priority) = self.realtime_priority
            && let Err(error) = sys::set_round_robin(priority)
        {
            tracing::error!(%error, priority, "a runtime thread stays under the normal scheduler");
        }
    }
}

/// The calling thread's scheduling policy name and priority, for logs and tests.
pub fn current_scheduler() -> std::io::Result<(&'static str, i32)> {
    let (policy, priority) = sys::scheduler()?;
    let name = match policy {
        nix::libc::SCHED_OTHER => "SCHED_OTHER",
        nix::libc::SCHED_FIFO => "SCHED_FIFO",
        nix::libc::SCHED_RR => "SCHED_RR",
        nix::libc::SCHED_BATCH => "SCHED_BATCH",
        nix::libc::SCHED_IDLE => "SCHED_IDLE",
        _ => "other",
    };
    Ok((name, priority))
}
