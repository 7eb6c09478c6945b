//! A daemon process started inside a lab namespace: its pid, its log file, and the three ways it
//! ends (SIGTERM, SIGKILL, or the namespace going away). Killed and reaped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::netns::Netns;

/// A process the lab started and must end.
#[derive(Debug)]
pub struct DaemonProcess {
    daemon: &'static str,
    node: String,
    child: Child,
    exited: Option<ExitStatus>,
    log: PathBuf,
}

impl DaemonProcess {
    /// Runs `args` inside `ns` with stdout and stderr appended to `log`. `ip netns exec` execs the
    /// command in place, so the child's pid is the daemon's.
    pub fn spawn(
        daemon: &'static str,
        node: &str,
        ns: &Netns,
        args: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self, LabError> {
        let mut command = ns.command(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn_command(daemon, node, command, log)
    }

    /// Starts a prepared `command` (its stdio is replaced) with stdout and stderr appended to
    /// `log`. The command must exec the daemon in place for [`DaemonProcess::pid`] to be its pid.
    pub fn spawn_command(
        daemon: &'static str,
        node: &str,
        mut command: Command,
        log: &Path,
    ) -> Result<Self, LabError> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(LabError::io(format!("open {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(LabError::io(format!("open {}", log.display())))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command
            .spawn()
            .map_err(LabError::io(format!("start {daemon} on {node}")))?;
        Ok(Self {
            daemon,
            node: node.to_owned(),
            child,
            exited: None,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.poll().is_none()
    }

    /// An error carrying the log when the process has already exited.
    pub fn ensure_running(&mut self) -> Result<(), LabError> {
        match self.poll() {
            None => Ok(()),
            Some(status) => Err(LabError::DaemonExited {
                daemon: self.daemon,
                node: self.node.clone(),
                status: status.to_string(),
                log: self.log(),
            }),
        }
    }

    /// Sends `signal` to the daemon (nothing when it has already exited).
    pub fn signal(&mut self, signal: Signal) -> Result<(), LabError> {
        if self.poll().is_some() {
            return Ok(());
        }
        let pid = i32::try_from(self.child.id())
            .map_err(|_| LabError::Invalid(format!("pid {} out of range", self.child.id())))?;
        signal::kill(Pid::from_raw(pid), signal).map_err(|e| {
            LabError::io(format!("{signal} to {} on {}", self.daemon, self.node))(e.into())
        })
    }

    /// Waits up to `timeout` for the daemon to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{} on {} exiting", self.daemon, self.node),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, LabError> {
        self.signal(Signal::SIGTERM)?;
        self.wait(timeout)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<ExitStatus, LabError> {
        self.signal(Signal::SIGKILL)?;
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.poll().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
