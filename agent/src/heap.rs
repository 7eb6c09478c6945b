//! Freed heap goes back to the kernel after a configuration change: applying one (255 instances
//! at start-up) allocates and frees in bursts across the runtime's threads, and glibc keeps the
//! freed pages in its arenas. Once the changes have settled, the free pages are released.

use std::time::Duration;

use crate::net::sys;
use crate::source::ConfigUpdates;

/// How long after the last configuration change the free pages are released: past the
/// elections, the VIPs added and the first announcements of instances with a 1 s advert.
pub const SETTLE: Duration = Duration::from_secs(20);

/// Follows `updates` (what the VRRP driver applies) and releases the free heap pages
/// [`SETTLE`] after each burst of changes. Ends when the configuration's sender is gone.
pub async fn release_after_changes(updates: ConfigUpdates) {
    release_after_changes_with(updates, SETTLE, || {
        let released = sys::release_free_heap();
        tracing::debug!(released, "free heap pages returned to the kernel");
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
