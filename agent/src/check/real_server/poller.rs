//! The loop that runs the TCP and plain-HTTP checks (the [`Plain`] probes) on a thread of its
//! own, "health-io": it owns their sockets and their deadlines, and nothing else. One
//! `epoll` ([`mio`]) watches every attempt's socket, registered once under its check's slot
//! (no allocation per socket); [`Deadlines`] holds each check's next deadline (its next
//! attempt, or the end of the attempt it runs), and the earliest is the poll's timeout. The
//! clock is read once per wake-up. When a socket is ready the attempt's [`Attempt`] steps go
//! as far as they can; the machine, the metrics and the board then take the outcome as on
//! the async path ([`Check::conclude`]). Attempts take their permits from the runner's
//! semaphore without waiting: a check that finds none waits in line, tried again when one of
//! this loop's attempts ends, and every [`PERMIT_RETRY`] while any waits (the async path's
//! attempts may hold permits too, and do not wake the loop when they free them).
//!
//! The runner adds and removes checks through [`Poller::add`] and the [`Polled`] it returns
//! (a channel, and a [`mio::Waker`] to wake the loop).
//!
//! The loop ends by itself only on a panic (in a check's steps) or a failed poll; its checks
//! (owned by its thread) end with it. Its thread then says so on its way out, a panic
//! included: [`Poller::has_ended`] turns true and the runner's [`Notify`] is notified, so that
//! the runner starts a new loop and gives it the checks again, at once or after
//! [`restart_delay`] when the loop keeps ending soon after its start.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kube_vrrp_crds::CheckResult;
use kube_vrrp_crds::backoff::doubling;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::attempt::{Attempt, Connection, Plain, is_open, polling_failed};
use super::deadlines::{Arming, Deadlines};
use super::outcome::Outcome;
use super::runner::Check;

/// How often a check waiting for a permit tries again while none of this loop's attempts
/// runs (the async path's attempts hold them all).
pub const PERMIT_RETRY: Duration = Duration::from_millis(10);

/// Events taken per wake-up at most.
const EVENTS: usize = 256;

/// The waker's token (slots are numbered from 0).
const WAKE: Token = Token(usize::MAX);

/// A restarted loop that ran this long before it ended (and the first loop, however long it
/// ran) is started again at once.
pub const RESTART_QUIET: Duration = Duration::from_secs(60);

/// The wait before the loop starts again after a restarted one ended sooner than
/// [`RESTART_QUIET`] after its start; it doubles with each such end in a row, up to
/// [`RESTART_DELAY_MAX`].
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The longest wait before the loop starts again.
pub const RESTART_DELAY_MAX: Duration = Duration::from_secs(300);

/// The wait before the loop starts again after `quick_ends` ends in a row of restarted loops,
/// each sooner than [`RESTART_QUIET`] after its start (or failed starts): none at first, then
/// [`RESTART_DELAY`] doubled each time, capped at [`RESTART_DELAY_MAX`]. A loop that panics on
/// every start thus costs a restart every few minutes, not a spin.
pub fn restart_delay(quick_ends: u32) -> Duration {
    match quick_ends {
        0 => Duration::ZERO,
        _ => doubling(RESTART_DELAY, RESTART_DELAY_MAX, quick_ends - 1),
    }
}

enum Command {
    Add(u64, Box<Check>),
    Remove(u64),
    Stop,
    /// Makes the loop panic: how a test ends it.
    #[cfg(test)]
    Panic,
}

/// The way to the loop: its commands, and the waker that makes it read them.
#[derive(Clone)]
struct Mailbox {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl Mailbox {
    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The running loop. Dropping it stops the loop (every attempt is abandoned).
pub struct Poller {
    mailbox: Mailbox,
    next_id: u64,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Set by the loop's thread as it ends, whatever ends it.
    ended: Arc<AtomicBool>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

/// A check the loop runs; dropping it removes the check (an attempt in flight is abandoned).
pub struct Polled {
    id: u64,
    mailbox: Mailbox,
}

impl Drop for Polled {
    fn drop(&mut self) {
        self.mailbox.send(Command::Remove(self.id));
    }
}

/// Says that the loop has ended as its thread leaves, even by a panic.
struct Ending {
    ended: Arc<AtomicBool>,
    runner: Arc<Notify>,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::Release);
        self.runner.notify_one();
    }
}

impl Poller {
    /// Starts the loop's thread (in the calling thread's network namespace); `ended` is
    /// notified when the thread ends, see [`Poller::has_ended`].
    pub fn start(ended: Arc<Notify>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, received) = channel();
        let ending = Ending {
            ended: Arc::new(AtomicBool::new(false)),
            runner: ended,
        };
        let ended = Arc::clone(&ending.ended);
        let thread = std::thread::Builder::new()
            .name("health-io".to_owned())
            .spawn(move || {
                let _ending = ending;
                Loop::new(poll, received).run()
            })?;
        Ok(Self {
            mailbox: Mailbox { commands, waker },
            next_id: 0,
            thread: Some(thread),
            ended,
        })
    }

    /// Runs `check` (whose probe is [`Plain`]) from its machine's next deadline on.
    pub(super) fn add(&mut self, check: Check) -> Polled {
        self.next_id += 1;
        let id = self.next_id;
        self.mailbox.send(Command::Add(id, Box::new(check)));
        Polled {
            id,
            mailbox: self.mailbox.clone(),
        }
    }

    /// Whether the loop has ended by itself (a panic, a failed poll): its checks are gone
    /// with it.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Why the loop ended, once [`Poller::has_ended`] says it did (waits for its thread, then
    /// on its way out).
    pub fn why_ended(mut self) -> String {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => format!("its poll failed: {error}"),
            Some(Err(panic)) => format!("it panicked: {}", panic_message(&*panic)),
            Some(Ok(Ok(()))) | None => "it was stopped".to_owned(),
        }
    }

    /// A switch that makes the loop panic.
    #[cfg(test)]
    pub(super) fn panic_switch(&self) -> PanicSwitch {
        PanicSwitch(self.mailbox.clone())
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.mailbox.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Makes a loop panic, as a bug in a check's steps would.
#[cfg(test)]
pub(super) struct PanicSwitch(Mailbox);

#[cfg(test)]
impl PanicSwitch {
    pub(super) fn flip(&self) {
        self.0.send(Command::Panic);
    }
}

/// What a panic said.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// An attempt in flight.
struct InFlight {
    socket: mio::net::TcpStream,
    steps: Attempt,
    started: Instant,
    _permit: OwnedSemaphorePermit,
}

/// A check the loop runs.
struct Slot {
    check: Box<Check>,
    attempt: Option<InFlight>,
}

struct Loop {
    poll: Poll,
    commands: Receiver<Command>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    ids: HashMap<u64, usize>,
    deadlines: Deadlines,
    /// Checks due that found no permit (slot, arming), first come first served.
    waiting: VecDeque<(usize, Arming)>,
}

impl Loop {
    fn new(poll: Poll, commands: Receiver<Command>) -> Self {
        Self {
            poll,
            commands,
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::new(),
            deadlines: Deadlines::default(),
            waiting: VecDeque::new(),
        }
    }

    /// Runs until the runner stops it (`Ok`) or the poll fails.
    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        // The clock of the last wake-up: the next timeout counts from it (later by the time
        // the wake-up took, some microseconds), so that the clock is read once per wake-up.
        let mut now = Instant::now();
        loop {
            let timeout = self.timeout(now);
            if let Err(error) = self.poll.poll(&mut events, timeout)
                && error.kind() != io::ErrorKind::Interrupted
            {
                return Err(error);
            }
            now = Instant::now();
            let mut woken = false;
            for event in &events {
                if event.token() == WAKE {
                    woken = true;
                } else {
                    let readiness = Readiness {
                        readable: event.is_readable() || event.is_read_closed(),
                        troubled: event.is_error() || event.is_write_closed(),
                    };
                    self.ready(event.token().0, readiness, now);
                }
            }
            if woken && !self.take_commands() {
                return Ok(());
            }
            self.fire(now);
            self.admit_waiting(now);
        }
    }

    /// How long the poll may sleep: until the earliest live deadline, or [`PERMIT_RETRY`]
    /// while checks wait for a permit.
    fn timeout(&mut self, now: Instant) -> Option<Duration> {
        let deadline = self
            .deadlines
            .earliest()
            .map(|at| at.saturating_duration_since(now));
        if self.waiting.is_empty() {
            deadline
        } else {
            Some(deadline.map_or(PERMIT_RETRY, |d| d.min(PERMIT_RETRY)))
        }
    }

    /// Takes the runner's commands; false once it stops.
    fn take_commands(&mut self) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Add(id, check)) => {
                    let Some(due) = check.machine.next_deadline() else {
                        continue;
                    };
                    let slot = Slot {
                        check,
                        attempt: None,
                    };
                    let index = if let Some(index) = self.free.pop() {
                        self.slots[index] = Some(slot);
                        index
                    } else {
                        self.slots.push(Some(slot));
                        self.slots.len() - 1
                    };
                    self.ids.insert(id, index);
                    self.deadlines.arm(index, due);
                }
                Ok(Command::Remove(id)) => {
                    if let Some(index) = self.ids.remove(&id) {
                        // Dropping the socket closes it (leaving the poll's set) with a
                        // reset; dropping the permit frees it.
                        self.slots[index] = None;
                        self.deadlines.disarm(index);
                        self.free.push(index);
                    }
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return false,
                #[cfg(test)]
                Ok(Command::Panic) => panic!("a test made the health-io loop panic"),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Fires the deadlines due at `now`: attempts start, or time out.
    fn fire(&mut self, now: Instant) {
        while let Some((slot, arming)) = self.deadlines.pop_due(now) {
            let Some(Some(s)) = self.slots.get(slot) else {
                continue;
            };
            if s.attempt.is_some() {
                let timeout = s.check.machine.timers().timeout;
                let outcome = Plain::of(&s.check.probe)
                    .map_or_else(not_plain, |plain| plain.timed_out(timeout));
                self.conclude(slot, now, outcome);
            } else {
                self.waiting.push_back((slot, arming));
            }
        }
    }

    /// Starts the attempts of checks due, while permits last.
    fn admit_waiting(&mut self, now: Instant) {
        while let Some(&(slot, arming)) = self.waiting.front() {
            if !self.deadlines.is_live(slot, arming) {
                self.waiting.pop_front();
                continue;
            }
            let Some(Some(s)) = self.slots.get(slot) else {
                self.waiting.pop_front();
                continue;
            };
            let Ok(permit) = Arc::clone(&s.check.permits).try_acquire_owned() else {
                return;
            };
            self.waiting.pop_front();
            self.begin(slot, permit, now);
        }
    }

    /// Starts an attempt of the check in `slot`.
    fn begin(&mut self, slot: usize, permit: OwnedSemaphorePermit, now: Instant) {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        s.check.machine.begin(now);
        let Some(plain) = Plain::of(&s.check.probe) else {
            return self.conclude(slot, now, not_plain());
        };
        let timeout = s.check.machine.timers().timeout;
        let mut socket = match plain.connect().start() {
            Ok(socket) => mio::net::TcpStream::from_std(socket),
            Err(outcome) => return self.conclude(slot, now, outcome),
        };
        // Edge-triggered, both ways, once: the steps read and write until told to wait.
        if let Err(error) = self.poll.registry().register(
            &mut socket,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return self.conclude(slot, now, polling_failed(&error));
        }
        s.attempt = Some(InFlight {
            socket,
            steps: Attempt::default(),
            started: now,
            _permit: permit,
        });
        self.deadlines.arm(slot, now + timeout);
    }

    /// The socket of `slot`'s attempt is ready as `readiness` says: its steps go on.
    /// Edge-triggered, an event is reported once: when the one that completes the request
    /// already says readable (a server that answered or closed without waiting for it), the
    /// answer is read now, for no later event would report it.
    fn ready(&mut self, slot: usize, readiness: Readiness, now: Instant) {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(attempt) = &mut s.attempt else {
            return;
        };
        let Some(plain) = Plain::of(&s.check.probe) else {
            return;
        };
        let was_reading = matches!(attempt.steps, Attempt::Reading(..));
        let mut socket = OnEvent {
            socket: &mut attempt.socket,
            troubled: readiness.troubled,
        };
        let mut outcome = attempt
            .steps
            .advance(plain, &mut socket, &mut s.check.buffer);
        if outcome.is_none()
            && readiness.readable
            && !was_reading
            && matches!(attempt.steps, Attempt::Reading(..))
        {
            outcome = attempt
                .steps
                .advance(plain, &mut socket, &mut s.check.buffer);
        }
        if let Some(outcome) = outcome {
            self.conclude(slot, now, outcome);
        }
    }

    /// `slot`'s attempt ended at `now` with `outcome`: its socket closes, its permit goes back
    /// and the check's next deadline is armed.
    fn conclude(&mut self, slot: usize, now: Instant, outcome: Outcome) {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        let started = s.attempt.take().map_or(now, |a| a.started);
        s.check.conclude(started, now, outcome);
        if let Some(due) = s.check.machine.next_deadline() {
            self.deadlines.arm(slot, due);
        } else {
            self.deadlines.disarm(slot);
        }
    }
}

/// What an event said of an attempt's socket.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    /// There is something to read, or the peer closed its side.
    readable: bool,
    /// An error or a hang-up: the connection failed, or was cut.
    troubled: bool,
}

/// An attempt's socket as its steps see it on one of its events. Edge-triggered, a socket
/// still connecting reports nothing (the kernel's poll of a TCP socket in SYN-SENT is empty
/// unless it failed), so its first event says the connect has ended: without an error or a
/// hang-up it is open, known without a system call; with one, the socket's error says what
/// happened.
struct OnEvent<'a> {
    socket: &'a mut mio::net::TcpStream,
    troubled: bool,
}

impl Read for OnEvent<'_> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        self.socket.read(into)
    }
}

impl Write for OnEvent<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.socket.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for OnEvent<'_> {
    fn connected(&self) -> io::Result<bool> {
        if !self.troubled {
            return Ok(true);
        }
        if let Some(error) = self.socket.take_error()? {
            return Err(error);
        }
        is_open(self.socket.peer_addr())
    }
}

/// The outcome for a probe the loop cannot run (the runner never gives it one).
fn not_plain() -> Outcome {
    Outcome::failed(
        CheckResult::Misconfigured,
        "this check does not run on the TCP and HTTP loop",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_restarts_at_once_then_after_a_delay_doubling_from_one_second_to_five_minutes() {
        let delays: Vec<u64> = (0..=10).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(restart_delay(u32::MAX), RESTART_DELAY_MAX);
    }
}
