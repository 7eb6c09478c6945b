//! Memory the agent no longer uses goes back to the kernel once a configuration change has
//! settled. Applying one (255 instances at start-up) allocates and frees in bursts across the
//! runtime's threads, and glibc keeps the freed pages in its arenas; start-up and the change also
//! ran code the steady state never runs again, and the kernel maps a program's code 64 KiB at a
//! time around each page that runs (fault-around), so most of the binary stays mapped. Once the
//! changes have settled, the free heap pages are released and the program's code is unmapped:
//! what runs afterwards is mapped again from the page cache on its first use.

use std::ops::Range;
use std::time::Duration;

use crate::net::sys;
use crate::source::ConfigUpdates;

/// How long after the last configuration change memory is released: past the elections, the
/// VIPs added and the first announcements of instances with a 1 s advert.
pub const SETTLE: Duration = Duration::from_secs(20);

/// What is released after each burst of configuration changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The free heap pages and the mappings of the program's code.
    HeapAndCode,
    /// Only the free heap pages: the process locks its memory (`--lock-memory`), so the code
    /// it has run stays mapped and locked, and the kernel refuses to unmap locked pages.
    HeapOnly,
}

/// Follows `updates` (what the VRRP driver applies) and releases memory [`SETTLE`] after each
/// burst of changes. Ends when the configuration's sender is gone.
pub async fn release_after_changes(updates: ConfigUpdates, release: Release) {
    release_after_changes_with(updates, SETTLE, move || {
        let heap = sys::release_free_heap();
        let code = match release {
            Release::HeapAndCode => unmap_program_code(),
            Release::HeapOnly => 0,
        };
        tracing::debug!(
            heap_released = heap,
            code_unmapped_bytes = code,
            "memory released after the configuration settled"
        );
    })
    .await;
}

async fn release_after_changes_with(
    mut updates: ConfigUpdates,
    settle: Duration,
    mut release: impl FnMut(),
) {
    while updates.changed().await.is_ok() {
        // Each further change restarts the wait: one release per burst.
        loop {
            tokio::select! {
                () = tokio::time::sleep(settle) => break,
                changed = updates.changed() => if changed.is_err() { return },
            }
        }
        release();
    }
}

/// Unmaps the executable mappings of the agent's own program file; returns how many bytes
/// they span (0 when the program or its mappings cannot be read, or the kernel refuses).
fn unmap_program_code() -> usize {
    let (Ok(program), Ok(maps)) = (
        std::env::current_exe(),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return 0;
    };
    let mut unmapped = 0;
    for range in code_ranges(&maps, &program.to_string_lossy()) {
        let len = range.len();
        match sys::unmap_program_code(range) {
            Ok(()) => unmapped += len,
            Err(error) => tracing::debug!(%error, "program code left mapped"),
        }
    }
    unmapped
}

/// The address ranges of the executable mappings of the file `program` in a `/proc/PID/maps`
/// text: private (copy-on-write) and never written, as a program's code is.
fn code_ranges(maps: &str, program: &str) -> Vec<Range<usize>> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode; the path is the rest of the line (it may hold spaces).
            let path = line
                .splitn(6, |c: char| c.is_ascii_whitespace())
                .nth(5)?
                .trim_start();
            if perms != "r-xp" || path != program {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (start < end).then_some(start..end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::driver::DesiredConfig;
    use crate::source;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_releases_once_after_the_last_one_has_settled() {
        let (sender, updates) = source::channel();
        let releases = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&releases);
        let task = tokio::spawn(release_after_changes_with(
            updates,
            Duration::from_secs(20),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        ));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(releases.load(Ordering::SeqCst), 0, "nothing applied yet");
        for _ in 0..5 {
            sender.send_replace(Some(Arc::new(DesiredConfig::default())));
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        assert_eq!(
            releases.load(Ordering::SeqCst),
            0,
            "changes 10 s apart keep postponing the release"
        );
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(releases.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            releases.load(Ordering::SeqCst),
            1,
            "no release without a change"
        );
        drop(sender);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the task ends with the sender")
            .expect("no panic");
    }

    const MAPS: &str = "\
55d0c8a00000-55d0c8c8e000 r--p 00000000 fd:01 4194 /usr/bin/kube-vrrp-agent
55d0c8c8e000-55d0c97f9000 r-xp 0028d000 fd:01 4194 /usr/bin/kube-vrrp-agent
55d0c97f9000-55d0c9852000 r--p 00df7000 fd:01 4194 /usr/bin/kube-vrrp-agent
55d0c9852000-55d0c9853000 rw-p 00e4f000 fd:01 4194 /usr/bin/kube-vrrp-agent
55d0ca000000-55d0ca100000 rw-p 00000000 00:00 0                          [heap]
7f1c2a028000-7f1c2a1ae000 r-xp 00028000 fd:01 2211                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2a400000-7f1c2a401000 r-xp 00000000 fd:01 99                         /opt/my agent/kube-vrrp-agent
7f1c2a500000-7f1c2a501000 r-xp 00000000 fd:01 98                         /usr/bin/kube-vrrp-agent (deleted)
7f1c2a600000-7f1c2a601000 rwxp 00000000 00:00 0
7ffd5a3f0000-7ffd5a3f2000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn only_the_programs_executable_mappings_are_code_ranges() {
        assert_eq!(
            code_ranges(MAPS, "/usr/bin/kube-vrrp-agent"),
            vec![0x55d0_c8c8_e000..0x55d0_c97f_9000],
            "not its read-only data, its relocated data, libc's code or the vDSO"
        );
        assert_eq!(
            code_ranges(MAPS, "/opt/my agent/kube-vrrp-agent"),
            vec![0x7f1c_2a40_0000..0x7f1c_2a40_1000],
            "a path with a space"
        );
        assert_eq!(
            code_ranges(MAPS, "/usr/bin/kube-vrrp-agent (deleted)"),
            vec![0x7f1c_2a50_0000..0x7f1c_2a50_1000],
            "a replaced program file: the kernel names both the same way"
        );
        assert!(code_ranges(MAPS, "/usr/bin/keepalived").is_empty());
        assert!(code_ranges("garbage\nzz-yy r-xp 0 0:0 1 /x\n", "/x").is_empty());
    }

    #[test]
    fn code_unmapped_while_running_is_mapped_again_on_its_next_use() {
        let before = resident_code_kib();
        let unmapped = unmap_program_code();
        assert!(
            unmapped > 1 << 20,
            "the test binary's code spans {unmapped} bytes"
        );
        let after = resident_code_kib();
        assert!(
            after < before,
            "resident code {before} KiB, then {after} KiB"
        );
        // Code runs on after its pages were dropped: the kernel maps them again.
        let sum: u64 = (1..=1000_u64).map(|n| n * n).sum();
        assert_eq!(sum, 333_833_500);
    }

    /// The resident KiB of this process's executable mappings of its own program.
    fn resident_code_kib() -> u64 {
        let program = std::env::current_exe().unwrap();
        let program = program.to_string_lossy();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut ours = false;
        let mut kib = 0;
        for line in smaps.lines() {
            // A mapping's first line starts with its address range; its fields follow.
            let first = line.split_ascii_whitespace().next().unwrap_or_default();
            if first.contains('-') && first.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
                ours = !code_ranges(line, &program).is_empty();
            } else if let Some(rss) = line.strip_prefix("Rss:").filter(|_| ours) {
                kib += rss
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
        kib
    }

    #[test]
    fn releasing_free_heap_pages_leaves_live_allocations_intact() {
        let kept: Vec<Vec<u8>> = (0..64_u8).map(|i| vec![i; 64 * 1024]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![0xa5; 64 * 1024]).collect();
        drop(freed);
        sys::release_free_heap();
        assert!(
            kept.iter()
                .enumerate()
                .all(|(i, block)| block.iter().all(|b| usize::from(*b) == i))
        );
    }
}
