//! One member's feed of an interface's view: the unit is told that the view changed (one
//! notice outstanding at most) and reads the newest view itself, so a burst of address changes
//! (255 instances adding their VIPs at start-up) costs each unit one copy of the newest view, not
//! one copy per change queued for every unit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::interfaces::InterfaceView;
use super::member::Helper;

/// The newest view of one interface, taken by the unit when its notice arrives.
#[derive(Debug)]
pub(super) struct ViewFeed {
    receiver: watch::Receiver<InterfaceView>,
    /// A notice is queued for the unit and not taken yet: no second one is queued meanwhile.
    noticed: Arc<AtomicBool>,
    _forwarder: Helper,
}

impl ViewFeed {
    /// Follows `receiver` (its current view counts as seen); `notify` queues a notice for the
    /// unit and returns false once the unit is gone, which ends the feed.
    pub(super) fn start(
        receiver: watch::Receiver<InterfaceView>,
        notify: impl Fn() -> bool + Send + 'static,
    ) -> Self {
        let noticed = Arc::new(AtomicBool::new(false));
        let mut changes = receiver.clone();
        let flag = Arc::clone(&noticed);
        let forwarder = Helper(tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if !flag.swap(true, Ordering::AcqRel) && !notify() {
                    return;
                }
            }
        }));
        Self {
            receiver,
            noticed,
            _forwarder: forwarder,
        }
    }

    /// The newest view, if it changed since the last one taken (a notice that arrives after its
    /// change was already taken yields none).
    pub(super) fn take(&mut self) -> Option<InterfaceView> {
        self.noticed.store(false, Ordering::Release);
        match self.receiver.has_changed() {
            Ok(false) => None,
            // Changed, or the interface watch is gone: the newest view is still readable.
            Ok(true) | Err(_) => Some(self.receiver.borrow_and_update().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    fn view_with_index(ifindex: u32) -> InterfaceView {
        InterfaceView {
            ifindex: Some(ifindex),
            ..InterfaceView::absent()
        }
    }

    #[tokio::test]
    async fn a_burst_of_changes_queues_one_notice_and_the_newest_view_is_taken() {
        let (sender, receiver) = watch::channel(view_with_index(1));
        let (notices, mut queued) = mpsc::unbounded_channel();
        let mut feed = ViewFeed::start(receiver, move || notices.send(()).is_ok());
        for ifindex in 2..=100 {
            sender.send_replace(view_with_index(ifindex));
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(1), queued.recv())
            .await
            .expect("a notice")
            .expect("the feed is running");
        assert!(queued.try_recv().is_err(), "one notice outstanding at most");
        assert_eq!(feed.take().and_then(|view| view.ifindex), Some(100));
        assert!(
            feed.take().is_none(),
            "nothing new since the last view taken"
        );
        sender.send_replace(view_with_index(101));
        tokio::time::timeout(Duration::from_secs(1), queued.recv())
            .await
            .expect("a new notice once the last one was taken")
            .expect("the feed is running");
        assert_eq!(feed.take().and_then(|view| view.ifindex), Some(101));
    }
}
