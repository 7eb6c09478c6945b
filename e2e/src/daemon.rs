//! The VRRP daemon under test, keepalived or our agent, behind one interface so scenarios and
//! benchmarks run either by flipping a [`DaemonKind`].

use crate::agent::Agent;
use crate::error::LabError;
use crate::instance::InstanceSpec;
use crate::keepalived::Keepalived;
use crate::lab::Lab;

/// Which daemon to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DaemonKind {
    Keepalived,
    Agent,
}

impl DaemonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keepalived => "keepalived",
            Self::Agent => "kube-vrrp-agent",
        }
    }

    /// The program file this daemon runs from.
    pub fn program(self) -> Result<std::path::PathBuf, LabError> {
        match self {
            Self::Agent => crate::agent::binary(),
            Self::Keepalived => crate::page_cache::resolve(crate::keepalived::KEEPALIVED)
                .ok_or_else(|| LabError::Invalid("keepalived is not on PATH".into())),
        }
    }
}

/// A running daemon on one lab node.
#[derive(Debug)]
pub enum Daemon {
    Keepalived(Keepalived),
    Agent(Agent),
}

impl Daemon {
    /// Starts `kind` on node `node` running `instances`.
    pub fn start(
        kind: DaemonKind,
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
    ) -> Result<Self, LabError> {
        Self::start_wrapped(kind, lab, node, instances, &[])
    }

    /// [`Daemon::start`] under a wrapper command (`prefix`, e.g. valgrind; empty: none).
    pub fn start_wrapped(
        kind: DaemonKind,
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
        prefix: &[String],
    ) -> Result<Self, LabError> {
        Ok(match kind {
            DaemonKind::Keepalived => {
                Self::Keepalived(Keepalived::start_wrapped(lab, node, instances, prefix)?)
            }
            DaemonKind::Agent if prefix.is_empty() => {
                Self::Agent(Agent::start(lab, node, instances)?)
            }
            DaemonKind::Agent => Self::Agent(Agent::start_wrapped(lab, node, instances, prefix)?),
        })
    }

    pub fn kind(&self) -> DaemonKind {
        match self {
            Self::Keepalived(_) => DaemonKind::Keepalived,
            Self::Agent(_) => DaemonKind::Agent,
        }
    }

    pub fn node(&self) -> usize {
        match self {
            Self::Keepalived(k) => k.node(),
            Self::Agent(a) => a.node(),
        }
    }

    /// The daemon's main pid.
    pub fn pid(&self) -> u32 {
        match self {
            Self::Keepalived(k) => k.pid(),
            Self::Agent(a) => a.pid(),
        }
    }

    pub fn log(&self) -> String {
        match self {
            Self::Keepalived(k) => k.log(),
            Self::Agent(a) => a.log(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self {
            Self::Keepalived(k) => k.is_running(),
            Self::Agent(a) => a.is_running(),
        }
    }

    /// Graceful stop (SIGTERM): a MASTER says goodbye with priority 0.
    pub fn terminate(&mut self) -> Result<(), LabError> {
        match self {
            Self::Keepalived(k) => k.terminate(),
            Self::Agent(a) => a.terminate(),
        }
    }

    /// Node death: the switch port is cut, then the daemon is SIGKILLed.
    pub fn die(&mut self, lab: &Lab) -> Result<(), LabError> {
        match self {
            Self::Keepalived(k) => k.die(lab),
            Self::Agent(a) => a.die(lab),
        }
    }
}
