//! The agent's ticker: one thread for every MASTER's periodic work, off the tokio runtime. It
//! sends the routine adverts of the MASTERs whose units sleep ([`super::beat`]) and runs their
//! split-brain probes ([`super::probes`]), and both wake it together: it waits on one poll set
//! (a wake-up line and the probe sockets) until the earliest advert or probe deadline, and a
//! steady probe goes early at an advert's wake-up rather than at one of its own (see
//! [`super::conflict`]'s early probing). A steady MASTER's node so wakes once per advert and
//! no more.
//!
//! The thread starts with the first member handed to it and stops when the last clone of the
//! [`Ticker`] (each [`super::beat::Beat`] and [`super::probes::Probing`] holds one) is dropped.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::beat::Schedule;
use super::probes::Board;
use super::thread;
use crate::net::NetError;
use crate::net::sys::PollSet;

/// The agent's ticker; clones share the thread.
#[derive(Debug, Clone, Default)]
pub struct Ticker {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    work: Arc<Mutex<Work>>,
    /// The thread's wake-up line, once started (or why it could not start).
    waker: Mutex<Option<Result<UnixDatagram, String>>>,
}

/// Everything the thread runs.
#[derive(Debug, Default)]
pub(super) struct Work {
    pub(super) adverts: Schedule,
    pub(super) probes: Board,
    stopping: bool,
}

impl Ticker {
    /// The thread's work, locked.
    pub(super) fn lock(&self) -> MutexGuard<'_, Work> {
        lock(&self.inner.work)
    }

    /// Starts the thread once; the error (logged once) stays for later calls.
    pub(super) fn ensure_started(&self) -> Result<(), NetError> {
        let mut waker = self
            .inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let started = waker.get_or_insert_with(|| {
            let work = Arc::clone(&self.inner.work);
            let start = || {
                let (waker, wakee) = UnixDatagram::pair()?;
                waker.set_nonblocking(true)?;
                wakee.set_nonblocking(true)?;
                // Under the runtime's real-time policy, when it runs under one.
                thread::spawn("vrrp-ticker", move || run(&work, &wakee))?;
                Ok::<_, std::io::Error>(waker)
            };
            start().map_err(|error| {
                tracing::error!(%error, "cannot start the ticker thread: each unit sends its own adverts, and no MASTER probes its VIPs on the wire");
                error.to_string()
            })
        });
        match started {
            Ok(_) => Ok(()),
            Err(error) => Err(NetError::io("start the ticker thread")(
                std::io::Error::other(error.clone()),
            )),
        }
    }

    /// Wakes the thread to look at its work again (an earlier deadline, a socket gone).
    pub(super) fn wake(&self) {
        let waker = self
            .inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(Ok(waker)) = waker.as_ref() {
            // Full means a wake-up is already pending: nothing lost.
            let _ = waker.send(&[1]);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.work).stopping = true;
        if let Some(Ok(waker)) = self
            .waker
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = waker.send(&[1]);
        }
    }
}

fn lock(work: &Mutex<Work>) -> MutexGuard<'_, Work> {
    work.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thread: sends the adverts due, then runs the probes that go at this wake-up (knowing
/// when the next advert wakes it), then sleeps until the earliest deadline, an answer on a
/// probe socket, or a wake-up (a member handed over or gone).
fn run(work: &Mutex<Work>, wakee: &UnixDatagram) {
    let mut polled = PollSet::default();
    // The probe socket behind each polled descriptor after the wake-up line (first).
    let mut listed: Vec<usize> = Vec::new();
    let mut buffer = vec![0u8; 1536];
    loop {
        let timeout = {
            let mut work = lock(work);
            if work.stopping {
                return;
            }
            let now = Instant::now();
            let next_advert = work.adverts.serve(now);
            let next_probe = work.probes.probe_due(now, next_advert);
            polled.clear();
            listed.clear();
            polled.push(wakee.as_fd());
            for (index, fd) in work.probes.sockets() {
                polled.push(fd);
                listed.push(index);
            }
            next_advert
                .into_iter()
                .chain(next_probe)
                .min()
                .map(|next| next.saturating_duration_since(Instant::now()))
        };
        if let Err(error) = polled.wait(timeout) {
            tracing::warn!(%error, "the ticker cannot wait on its sockets; retrying in a second");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if polled.ready(0) {
            while wakee.recv(&mut [0u8; 8]).is_ok() {}
        }
        if listed
            .iter()
            .enumerate()
            .any(|(entry, _)| polled.ready(entry + 1))
        {
            let mut work = lock(work);
            for (entry, &index) in listed.iter().enumerate() {
                if polled.ready(entry + 1) {
                    work.probes.hear(index, &mut buffer);
                }
            }
        }
    }
}
