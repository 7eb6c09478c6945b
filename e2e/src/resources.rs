//! CPU time and resident memory of a daemon and its children, read from `/proc` over a window
//! (for the benchmark's "255 instances" rows).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::LabError;

/// utime + stime (fields 14 and 15, clock ticks) and the parent pid (field 4) of a
/// `/proc/PID/stat` line.
pub fn parse_stat(text: &str) -> Option<(u64, u32)> {
    let (user, system, ppid) = parse_stat_split(text)?;
    Some((user + system, ppid))
}

/// utime and stime apart (clock ticks), and the parent pid, of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after its last
/// `)`.
pub fn parse_stat_split(text: &str) -> Option<(u64, u64, u32)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is fields[N - 3].
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime, stime, ppid))
}

/// `VmRSS` of a `/proc/PID/status` text, in KiB.
pub fn parse_vm_rss_kib(text: &str) -> Option<u64> {
    parse_status_kib(text, "VmRSS:")
}

/// The KiB of a `/proc/PID/status` field such as `RssAnon:`.
fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `pid` and every process descending from it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, parse_stat(&read(&format!("/proc/{p}/stat"))?)?.1)))
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&parent) = tree.get(i) {
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

fn ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| parse_stat(&read(&format!("/proc/{p}/stat"))?))
        .map(|(t, _)| t)
        .sum()
}

/// The time a thread has run, in nanoseconds: the first field of `/proc/PID/task/TID/schedstat`.
pub fn parse_schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of a `/proc/PID/task/TID/status`
/// text: how often the thread stopped running (to wait, or preempted).
pub fn parse_context_switches(text: &str) -> Option<u64> {
    let field = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// Per thread of a process tree: (run time in ns, context switches), by thread id.
fn threads(pids: &[u32]) -> HashMap<u32, (u64, u64)> {
    let mut out = HashMap::new();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for tid in tasks
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            let base = format!("/proc/{pid}/task/{tid}");
            let run = read(&format!("{base}/schedstat")).and_then(|t| parse_schedstat_ns(&t));
            let switches = read(&format!("{base}/status")).and_then(|t| parse_context_switches(&t));
            if let (Some(run), Some(switches)) = (run, switches) {
                out.insert(tid, (run, switches));
            }
        }
    }
    out
}

/// What a process tree used over a window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    /// CPU time over wall time, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end of the window, summed over the tree, in KiB.
    pub rss_kib: u64,
    /// The anonymous part of it (`RssAnon`: heap, stacks); the rest is mapped files (the
    /// program's code and data) and shared memory.
    pub rss_anon_kib: u64,
    /// Context switches of all threads over the window, per second: how often the daemon
    /// woke up (or was preempted).
    pub wakeups_per_second: f64,
    /// Whether CPU time comes from the threads' nanosecond run times (`schedstat`), or, when a
    /// thread ended during the window, from the process's clock ticks (10 ms steps).
    pub precise: bool,
    pub window: Duration,
}

/// Measures `pid` and its descendants (as they are when the window opens) over `window`.
pub fn measure(pid: u32, window: Duration) -> Result<Usage, LabError> {
    let tree = process_tree(pid);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&hz| hz > 0)
        .ok_or_else(|| LabError::Invalid("sysconf(CLK_TCK) unavailable".into()))?;
    let (start, t0, before) = (Instant::now(), ticks(&tree), threads(&tree));
    std::thread::sleep(window);
    let (after, t1, elapsed) = (threads(&tree), ticks(&tree), start.elapsed());
    let statuses: Vec<String> = tree
        .iter()
        .filter_map(|p| read(&format!("/proc/{p}/status")))
        .collect();
    let rss_kib = statuses.iter().filter_map(|s| parse_vm_rss_kib(s)).sum();
    let rss_anon_kib = statuses
        .iter()
        .filter_map(|s| parse_status_kib(s, "RssAnon:"))
        .sum();
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(LabError::Invalid(format!(
            "process {pid} exited during the window"
        )));
    }
    // A thread that ended took its counters with it; one that started counts from zero.
    let precise = before.keys().all(|tid| after.contains_key(tid));
    let (run_ns, switches) = after.iter().fold((0, 0), |(run, sw), (tid, (r, s))| {
        let (r0, s0) = before.get(tid).copied().unwrap_or_default();
        (run + r.saturating_sub(r0), sw + s.saturating_sub(s0))
    });
    let seconds = elapsed.as_secs_f64();
    let cpu_seconds = if precise {
        run_ns as f64 / 1e9
    } else {
        t1.saturating_sub(t0) as f64 / hz as f64
    };
    Ok(Usage {
        cpu_percent: cpu_seconds / seconds * 100.0,
        rss_kib,
        rss_anon_kib,
        wakeups_per_second: switches as f64 / seconds,
        precise,
        window: elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (kube vrrp) (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 25 7 0 0 20 0 3 0 \
                    1234 5000000 900 18446744073709551615";
        assert_eq!(parse_stat(line), Some((32, 17)));
        assert_eq!(parse_stat_split(line), Some((25, 7, 17)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tkube-vrrp-agent\nVmPeak:\t  20000 kB\nVmRSS:\t   8123 kB\n\
                      RssAnon:\t    2048 kB\nRssFile:\t    6075 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(8123));
        assert_eq!(parse_status_kib(status, "RssAnon:"), Some(2048));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn thread_run_time_and_context_switches_are_read_from_proc() {
        assert_eq!(parse_schedstat_ns("123456789 5000 42\n"), Some(123_456_789));
        assert_eq!(parse_schedstat_ns(""), None);
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(parse_context_switches(status), Some(42));
        assert_eq!(parse_context_switches("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_uses_cpu_when_it_spins_and_has_resident_memory() {
        let pid = std::process::id();
        assert!(process_tree(pid).contains(&pid));
        let spinner = std::thread::spawn(|| {
            let until = Instant::now() + Duration::from_millis(300);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        let usage = measure(pid, Duration::from_millis(300)).unwrap();
        spinner.join().unwrap();
        assert!(usage.cpu_percent > 0.0, "{usage:?}");
        assert!(usage.wakeups_per_second > 0.0, "{usage:?}");
        assert!(usage.rss_kib > 100, "{usage:?}");
        assert!(
            usage.rss_anon_kib > 0 && usage.rss_anon_kib < usage.rss_kib,
            "{usage:?}"
        );
    }
}
