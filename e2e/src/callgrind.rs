//! Instructions a daemon executes, counted by valgrind's callgrind: the command prefix that runs
//! it under callgrind, and the count over a window. A window opens with a dump (which zeroes the
//! counters) and closes with another; the second dump holds the instructions executed in
//! between, summed over the daemon's processes (keepalived forks its VRRP child).
//!
//! Callgrind counts user-space instructions of the program and its libraries, not the kernel's
//! work in its system calls; the same input gives the same count within a fraction of a
//! percent, which is what makes a regression visible in one commit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::LabError;
use crate::netns;

/// The valgrind binary (Debian's package `valgrind`).
pub const VALGRIND: &str = "valgrind";
/// Sends commands to a running callgrind (part of the same package).
pub const CALLGRIND_CONTROL: &str = "callgrind_control";

/// Where one daemon's callgrind dumps go.
#[derive(Clone, Debug)]
pub struct Callgrind {
    dir: PathBuf,
}

impl Callgrind {
    /// Dumps go to `dir` (created).
    pub fn new(dir: &Path) -> Result<Self, LabError> {
        std::fs::create_dir_all(dir).map_err(LabError::io(format!("create {}", dir.display())))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The words before the daemon's own command line. Forked children are followed by
    /// valgrind itself; `--trace-children` also follows an exec. Valgrind runs one thread at a
    /// time; `--fair-sched` hands the CPU over in turn, so a thread woken by its deadline (the
    /// agent's ticker) is not left waiting behind a busy one (by default the lock goes to
    /// whichever thread grabs it first).
    pub fn prefix(&self) -> Vec<String> {
        vec![
            VALGRIND.to_owned(),
            "--tool=callgrind".to_owned(),
            "--fair-sched=yes".to_owned(),
            "--trace-children=yes".to_owned(),
            "--quiet".to_owned(),
            format!("--callgrind-out-file={}/callgrind.%p", self.dir.display()),
        ]
    }

    /// Dumps the counters of each of `pids` (which zeroes them) and returns the instructions
    /// each dump holds, summed: what the processes executed since their previous dump (or
    /// since they started).
    pub fn dump(&self, pids: &[u32]) -> Result<u64, LabError> {
        let mut total = 0;
        for &pid in pids {
            let before = self.latest_dump(pid);
            let pid_text = pid.to_string();
            netns::run(&[CALLGRIND_CONTROL, "--dump", &pid_text])?;
            total += self.wait_for_dump(pid, before.as_ref().map(|(n, _)| *n))?;
        }
        Ok(total)
    }

    /// Copies the latest dump of each of `pids` into `into` (created) as
    /// `LABEL.PID.callgrind`, for `callgrind_annotate`.
    pub fn keep_latest(&self, pids: &[u32], into: &Path, label: &str) -> Result<(), LabError> {
        std::fs::create_dir_all(into)
            .map_err(LabError::io(format!("create {}", into.display())))?;
        for &pid in pids {
            if let Some((_, path)) = self.latest_dump(pid) {
                let kept = into.join(format!("{label}.{pid}.callgrind"));
                std::fs::copy(&path, &kept).map_err(LabError::io(format!(
                    "copy {} to {}",
                    path.display(),
                    kept.display()
                )))?;
            }
        }
        Ok(())
    }

    /// The highest-numbered dump of `pid` (`callgrind.PID.N`), if any.
    fn latest_dump(&self, pid: u32) -> Option<(u32, PathBuf)> {
        let prefix = format!("callgrind.{pid}.");
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let n = name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, entry.path()))
            })
            .max_by_key(|(n, _)| *n)
    }

    fn wait_for_dump(&self, pid: u32, before: Option<u32>) -> Result<u64, LabError> {
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((n, path)) = self.latest_dump(pid)
                && Some(n) != before
                && let Some(total) = std::fs::read_to_string(&path)
                    .ok()
                    .as_deref()
                    .and_then(parse_total)
            {
                return Ok(total);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("a callgrind dump of process {pid}"),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The instruction count of a callgrind dump: its `totals:` line (else `summary:`), whose first
/// number is the event `Ir` (callgrind's default and only event without cache simulation).
/// `None` for a dump not yet complete.
pub fn parse_total(text: &str) -> Option<u64> {
    let number = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    number("totals:").or_else(|| number("summary:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_totals_line_else_the_summary() {
        let dump = "# callgrind format\nversion: 1\ncmd: sleep 4\nevents: Ir\nsummary: 302291\nfn=main\n5 3\ntotals: 302291\n";
        assert_eq!(parse_total(dump), Some(302_291));
        assert_eq!(parse_total("events: Ir\nsummary: 17\n"), Some(17));
        assert_eq!(parse_total("events: Ir\nfn=main\n"), None);
    }

    #[test]
    fn the_prefix_runs_callgrind_with_one_file_per_process() {
        let callgrind = Callgrind {
            dir: PathBuf::from("/lab/cg"),
        };
        let prefix = callgrind.prefix();
        assert_eq!(prefix[0], VALGRIND);
        assert!(prefix.contains(&"--tool=callgrind".to_owned()));
        assert!(prefix.contains(&"--callgrind-out-file=/lab/cg/callgrind.%p".to_owned()));
    }
}
