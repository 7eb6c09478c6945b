//! Running the user's tools, kubectl and helm, against the lab's API server with one
//! kubeconfig, as a user would type them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::error::ClusterError;

/// A command-line tool (kubectl or helm) bound to one kubeconfig.
#[derive(Clone, Debug)]
pub struct Tool {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

/// What a finished command printed and how it ended.
#[derive(Clone, Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Tool {
    pub fn new(binary: &Path, kubeconfig: &Path) -> Self {
        Self {
            binary: binary.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The same tool as another user.
    #[must_use]
    pub fn with_kubeconfig(&self, kubeconfig: &Path) -> Self {
        Self::new(&self.binary, kubeconfig)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn describe(&self, args: &[&str]) -> String {
        let name = self.binary.file_name().map_or_else(
            || self.binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        format!("{name} {}", args.join(" "))
    }

    /// Runs the tool with `input` on stdin and returns what it printed, whatever its exit
    /// status (for asserting on refusals).
    pub fn output(&self, args: &[&str], input: &str) -> Result<Output, ClusterError> {
        let mut child = self
            .command(args)
            .spawn()
            .map_err(ClusterError::io(format!("run {}", self.describe(args))))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .map_err(ClusterError::io(format!(
                    "write to {}",
                    self.describe(args)
                )))?;
        }
        let out = child
            .wait_with_output()
            .map_err(ClusterError::io(format!("run {}", self.describe(args))))?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs the tool and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, ClusterError> {
        self.run_with_input(args, "")
    }

    /// [`Tool::run`] with `input` on stdin (e.g. `apply -f -`).
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Result<String, ClusterError> {
        let out = self.output(args, input)?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(ClusterError::Tool {
                command: self.describe(args),
                stderr: out.stderr.trim().to_owned(),
            })
        }
    }

    /// Runs the tool (with `-o json` among `args`) and parses its output.
    pub fn json(&self, args: &[&str]) -> Result<Value, ClusterError> {
        self.json_with_input(args, "")
    }

    /// [`Tool::json`] with `input` on stdin.
    pub fn json_with_input(&self, args: &[&str], input: &str) -> Result<Value, ClusterError> {
        let text = self.run_with_input(args, input)?;
        serde_json::from_str(&text).map_err(|e| ClusterError::Decode {
            what: self.describe(args),
            message: e.to_string(),
        })
    }
}
