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

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use kube_vrrp_crds::CheckResult;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::OwnedSemaphorePermit;

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

enum Command {
    Add(u64, Box<Check>),
    Remove(u64),
    Stop,
}

/// The running loop. Dropping it stops the loop (every attempt is abandoned).
pub struct Poller {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    next_id: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

/// A check the loop runs; dropping it removes the check (an attempt in flight is abandoned).
pub struct Polled {
    id: u64,
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl Drop for Polled {
    fn drop(&mut self) {
        if self.commands.send(Command::Remove(self.id)).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl Poller {
    /// Starts the loop's thread (in the calling thread's network namespace).
    pub fn start() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, received) = channel();
        let thread = std::thread::Builder::new()
            .name("health-io".to_owned())
            .spawn(move || Loop::new(poll, received).run())?;
        Ok(Self {
            commands,
            waker,
            next_id: 0,
            thread: Some(thread),
        })
    }

    /// Runs `check` (whose probe is [`Plain`]) from its machine's next deadline on.
    pub(super) fn add(&mut self, check: Check) -> Polled {
        self.next_id += 1;
        let id = self.next_id;
        if self
            .commands
            .send(Command::Add(id, Box::new(check)))
            .is_ok()
        {
            let _ = self.waker.wake();
        }
        Polled {
            id,
            commands: self.commands.clone(),
            waker: Arc::clone(&self.waker),
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if self.commands.send(Command::Stop).is_ok() {
            let _ = self.waker.wake();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        // The clock of the last wake-up: the next timeout counts from it (later by the time
        // the wake-up took, some microseconds), so that the clock is read once per wake-up.
        let mut now = Instant::now();
        loop {
            let timeout = self.timeout(now);
            if let Err(error) = self.poll.poll(&mut events, timeout)
                && error.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(%error, "the health checks' poll failed; TCP and HTTP checks stop");
                return;
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
                return;
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
