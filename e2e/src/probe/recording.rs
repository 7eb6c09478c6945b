//! A time-ordered log that a probe thread appends to and a test reads or waits on.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Shared, append-only list of observations, in the order they were made.
#[derive(Debug)]
pub struct Recording<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Recording<T> {
    fn clone(&self) -> Self {
        Self {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T> Default for Recording<T> {
    fn default() -> Self {
        Self {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<T: Clone> Recording<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A panicking writer cannot leave a half-pushed Vec: keep reading.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, item: T) {
        self.lock().push(item);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Polls every millisecond until `done` holds for the recording; returns whether it did
    /// before `timeout`.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&[T]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lock()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
