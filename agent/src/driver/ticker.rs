//! The agent's ticker: one thread for every MASTER's periodic work, off the tokio runtime. It
//! sends the routine adverts of the MASTERs whose units sleep ([`super::beat`]) and runs their
//! split-brain probes ([`super::probes`]), and both wake it together: it sleeps in one
//! [`Waiter`] (a wake-up line and the probe sockets, watched once, and a timer) until the
//! earliest advert or probe deadline, and a steady probe goes early at an advert's wake-up
//! rather than at one of its own (see [`super::conflict`]'s early probing). A steady MASTER's
//! node so wakes once per advert and no more, and each wake-up costs one `epoll_wait` (plus a
//! timer re-arm when the deadline moved).
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
use crate::net::waiter::Waiter;

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
                let waiter = Waiter::new()?;
                waiter.watch(wakee.as_fd(), WAKE_LINE)?;
                // Under the runtime's real-time policy, when it runs under one.
                thread::spawn("vrrp-ticker", move || run(&work, &wakee, waiter))?;
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

/// The wake-up line's token in the thread's [`Waiter`]; probe socket `index` is `index + 1`.
const WAKE_LINE: u64 = 0;

/// The thread: sends the adverts due, then runs the probes that go at this wake-up (knowing
/// when the next advert wakes it), then sleeps until the earliest deadline, an answer on a
/// probe socket, or a wake-up (a member handed over or gone). The probe sockets are watched
/// again whenever one opened or closed since the last wait.
fn run(work: &Mutex<Work>, wakee: &UnixDatagram, mut waiter: Waiter) {
    // The board's count of socket openings and closings the watched set reflects.
    let mut watched = None;
    let mut buffer = vec![0u8; 1536];
    loop {
        let next = {
            let mut work = lock(work);
            if work.stopping {
                return;
            }
            let next_advert = work.adverts.serve(Instant::now);
            let next_probe = work.probes.probe_due(Instant::now(), next_advert);
            let changes = work.probes.socket_changes();
            if watched != Some(changes) {
                watched = watch_probe_sockets(&waiter, &work.probes).then_some(changes);
            }
            next_advert.into_iter().chain(next_probe).min()
        };
        if let Err(error) = waiter.wait(next) {
            tracing::warn!(%error, "the ticker cannot wait on its sockets; retrying in a second");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let mut answered = waiter
            .ready()
            .filter(|&token| token != WAKE_LINE)
            .peekable();
        if answered.peek().is_some() {
            let mut work = lock(work);
            for token in answered {
                if let Some(index) = token.checked_sub(1).and_then(|i| usize::try_from(i).ok()) {
                    work.probes.hear(index, &mut buffer);
                }
            }
        }
        if waiter.ready().any(|token| token == WAKE_LINE) {
            while wakee.recv(&mut [0u8; 8]).is_ok() {}
        }
    }
}

/// Watches every open probe socket under its index's token (a socket closed since left the
/// list by itself; one whose number was reused is watched again). False when one could not be
/// watched: the next wake-up tries again, and until then that socket's answers wait.
fn watch_probe_sockets(waiter: &Waiter, probes: &Board) -> bool {
    let mut all = true;
    for (index, fd) in probes.sockets() {
        let Ok(token) = u64::try_from(index + 1) else {
            continue;
        };
        if let Err(error) = waiter.watch(fd, token) {
            tracing::warn!(%error, "the ticker cannot watch a probe socket; answers on it wait until the next wake-up");
            all = false;
        }
    }
    all
}
