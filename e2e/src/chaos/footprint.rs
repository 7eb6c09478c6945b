//! What one process holds, read from `/proc`: open file descriptors (and how many of them are
//! sockets), threads, resident memory. Counted before and after a chaos run to find leaks.

use std::path::Path;

use crate::error::LabError;
use crate::resources::parse_vm_rss_kib;

/// A process's holdings at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// Those of them that are sockets (`socket:[inode]`).
    pub sockets: usize,
    /// Entries of `/proc/PID/task`: its threads.
    pub tasks: usize,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
}

impl Footprint {
    /// Whether nothing is held beyond `baseline` (memory is not compared: see the churn run).
    pub fn within(self, baseline: Self) -> bool {
        self.fds <= baseline.fds && self.sockets <= baseline.sockets && self.tasks <= baseline.tasks
    }
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fds ({} sockets), {} threads, RSS {:.1} MiB",
            self.fds,
            self.sockets,
            self.tasks,
            self.rss_kib as f64 / 1024.0
        )
    }
}

/// Whether a `/proc/PID/fd/N` link target names a socket.
pub fn is_socket(target: &str) -> bool {
    target.starts_with("socket:[")
}

/// Reads the footprint of process `pid`.
pub fn read(pid: u32) -> Result<Footprint, LabError> {
    let base = format!("/proc/{pid}");
    let fd_dir = format!("{base}/fd");
    let entries: Vec<_> = std::fs::read_dir(&fd_dir)
        .map_err(LabError::io(format!("read {fd_dir}")))?
        .filter_map(Result::ok)
        .collect();
    let sockets = entries
        .iter()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| is_socket(&target.to_string_lossy()))
        .count();
    let task_dir = format!("{base}/task");
    let tasks = std::fs::read_dir(&task_dir)
        .map_err(LabError::io(format!("read {task_dir}")))?
        .count();
    let status = std::fs::read_to_string(Path::new(&base).join("status"))
        .map_err(LabError::io(format!("read {base}/status")))?;
    let rss_kib = parse_vm_rss_kib(&status)
        .ok_or_else(|| LabError::Invalid(format!("no VmRSS in {base}/status")))?;
    Ok(Footprint {
        fds: entries.len(),
        sockets,
        tasks,
        rss_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_are_told_from_files_and_pipes() {
        assert!(is_socket("socket:[123456]"));
        assert!(!is_socket("pipe:[42]"));
        assert!(!is_socket("/dev/null"));
        assert!(!is_socket("anon_inode:[eventfd]"));
    }

    #[test]
    fn this_process_footprint_counts_the_socket_it_holds() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let now = read(std::process::id()).unwrap();
        assert!(now.sockets >= 1 && now.fds > now.sockets, "{now}");
        assert!(now.tasks >= 1 && now.rss_kib > 0, "{now}");
        drop(socket);
    }

    #[test]
    fn a_footprint_is_within_a_baseline_only_when_no_count_grew() {
        let baseline = Footprint {
            fds: 20,
            sockets: 8,
            tasks: 6,
            rss_kib: 9000,
        };
        assert!(baseline.within(baseline));
        let bigger_rss = Footprint {
            rss_kib: 20_000,
            ..baseline
        };
        assert!(bigger_rss.within(baseline));
        for grown in [
            Footprint {
                fds: 21,
                ..baseline
            },
            Footprint {
                sockets: 9,
                ..baseline
            },
            Footprint {
                tasks: 7,
                ..baseline
            },
        ] {
            assert!(!grown.within(baseline), "{grown}");
        }
    }
}
