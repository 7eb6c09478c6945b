//! The receive side of one (interface, family): the pure admission checks of a received
//! datagram, and the [`Intake`] that reads the socket and hands adverts to instances, from a
//! plain thread of its own blocked in the kernel (no tokio task: an advert wakes no runtime
//! thread) and from a unit's catch-up.
//!
//! The receiver never waits on an instance: adverts go through bounded channels with
//! `try_send`, and a full channel drops the advert (VRRP tolerates a lost advert; a stuck
//! instance must not stall its neighbours). Every datagram that is not handed to an instance is
//! counted by reason, including those the kernel dropped for a full receive queue; an error of
//! one datagram is counted, never waited on.

use std::io::{PipeReader, PipeWriter, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch};

use super::admissions::Admissions;
use super::endpoint::own_addresses;
use super::interfaces::InterfaceView;
use super::routine::{Routine, Settle};
use super::streak::Streak;
use super::thread;
use crate::net::NetError;
use crate::net::arrival::Clocks;
use crate::net::socket::{Received, VrrpSocket};
use crate::net::waiter::Waiter;
use crate::report::Metrics;
use crate::report::metrics::ReceiveCounters;
use crate::vrrp::instance::ReceivedAdvert;
use crate::vrrp::packet::{Advertisement, Authentication, DropReason};
use crate::vrrp::{VRRP_TTL, Version};

/// What the receiver checks for one VRID before handing an advert to its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertFilter {
    pub version: Version,
    /// Expected v2 authentication (ignored for v3).
    pub authentication: Authentication,
    /// Our advert interval in centiseconds: a v2 advert must carry the same (RFC 3768 §7.1).
    pub advert_interval_cs: u16,
    /// Unicast peers; when not empty, adverts from any other source are dropped.
    pub unicast_peers: Vec<IpAddr>,
}

/// One admitted advert, for the instance with its VRID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub vrid: u8,
    pub advert: ReceivedAdvert,
}

/// Decides whether a received datagram is an advert for one of our instances. `own` are this
/// node's addresses on the interface; `filter_of` finds the filter of a VRID we run.
///
/// The checks follow RFC 5798 §7.1 / RFC 3768 §7.1: TTL, then our own source, then the codec
/// (length, version, checksum, type, VRID 0, auth type, interval 0), then the VRID, the
/// unicast peer list, the instance's version, and for v2 the password and the interval.
pub fn admit<'a>(
    received: &Received,
    own: &[IpAddr],
    filter_of: impl Fn(u8) -> Option<&'a AdvertFilter>,
) -> Result<Admitted, DropReason> {
    if received.ttl != VRRP_TTL {
        return Err(DropReason::Ttl);
    }
    if own.contains(&received.source) {
        return Err(DropReason::Source);
    }
    let advert =
        Advertisement::decode_header(&received.payload, received.source, received.destination)
            .map_err(|error| error.drop_reason())?;
    let filter = filter_of(advert.vrid).ok_or(DropReason::Vrid)?;
    if !filter.unicast_peers.is_empty() && !filter.unicast_peers.contains(&received.source) {
        return Err(DropReason::Source);
    }
    if advert.version != filter.version {
        return Err(DropReason::Version);
    }
    if filter.version == Version::V2 {
        if advert.auth != filter.authentication {
            return Err(DropReason::Auth);
        }
        if advert.max_advert_interval_cs != filter.advert_interval_cs {
            return Err(DropReason::Interval);
        }
    }
    Ok(Admitted {
        vrid: advert.vrid,
        advert: ReceivedAdvert {
            source: received.source,
            priority: advert.priority,
            max_advert_interval: Duration::from_millis(
                u64::from(advert.max_advert_interval_cs) * 10,
            ),
        },
    })
}

/// An advert on its way to a unit: for which member, and when it reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedAdvert {
    pub member: usize,
    pub advert: ReceivedAdvert,
    /// The datagram's arrival (its kernel receive stamp): the unit times the advert from it,
    /// however late it reads it.
    pub arrived: Instant,
    /// When the datagram was read from the socket.
    pub read: Instant,
}

/// The sending side of a unit's advert queue.
pub type AdvertSender = mpsc::Sender<QueuedAdvert>;

/// Where the adverts of one VRID go: the instance's task (and the member index inside it).
#[derive(Debug, Clone)]
pub struct Route {
    pub instance: String,
    pub filter: AdvertFilter,
    pub member: usize,
    pub sender: AdvertSender,
    /// The instance's count of adverts received (a handle: counting allocates nothing).
    pub received: Counter,
    /// The adverts of a BACKUP's MASTER that the unit need not be woken for.
    pub routine: Routine,
}

/// The VRIDs served on one (interface, family), shared by the driver (writer) and the
/// receiver (reader). The lock is held only for a lookup or an insert.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    inner: Arc<RwLock<ByVrid>>,
    reader: Arc<ReaderWake>,
}

/// How the routes wake a receive thread that lets routine adverts wait in the socket (see
/// [`Intake`]): it says so before it looks at the routes, and whoever then makes it read
/// earlier writes its pipe.
#[derive(Debug, Default)]
struct ReaderWake {
    holding: AtomicBool,
    pipe: Mutex<Option<PipeWriter>>,
}

impl ReaderWake {
    fn wake(&self) {
        if self.holding.swap(false, Ordering::SeqCst) {
            let pipe = self.pipe.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(mut pipe) = pipe.as_ref()
                && let Err(error) = pipe.write_all(&[1])
            {
                tracing::warn!(%error, "cannot wake the VRRP receive thread");
            }
        }
    }
}

impl Routes {
    /// Adds the route of `vrid`; returns the name of the instance already holding it, if any.
    pub fn insert(&self, vrid: u8, route: Route) -> Result<(), String> {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = map.get(vrid)
            && existing.instance != route.instance
        {
            return Err(existing.instance.clone());
        }
        map.insert(vrid, route);
        drop(map);
        self.wake_reader();
        Ok(())
    }

    /// Makes a receive thread that lets routine adverts wait look at the routes again: one of
    /// them must be read earlier (or at once) from now on.
    pub fn wake_reader(&self) {
        self.reader.wake();
    }

    /// Until when every route's adverts may wait in the socket (the earliest of their
    /// [`Routine::read_by`]), and how many adverts a second they bring; `None` when one of
    /// them must be read at once (or there is none).
    fn read_by(&self) -> Option<(Instant, f64)> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut earliest: Option<Instant> = None;
        let mut per_second = 0.0;
        for route in map.routes() {
            let (by, interval) = route.routine.read_by()?;
            earliest = Some(earliest.map_or(by, |earliest| earliest.min(by)));
            per_second += 1.0 / interval.as_secs_f64().max(f64::MIN_POSITIVE);
        }
        earliest.map(|by| (by, per_second))
    }

    /// Moves each routine's timer to where the adverts a drain heard put its deadline (see
    /// [`Settle::AfterDrain`]).
    fn settle(&self) {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        for route in map.routes() {
            route.routine.settle();
        }
    }

    /// Replaces the filter of `vrid` if `instance` holds it.
    pub fn set_filter(&self, vrid: u8, instance: &str, filter: AdvertFilter) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(route) = map.get_mut(vrid)
            && route.instance == instance
        {
            route.filter = filter;
        }
        drop(map);
        self.wake_reader();
    }

    /// Removes the route of `vrid` if `instance` holds it.
    pub fn remove(&self, vrid: u8, instance: &str) {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(vrid)
            .is_some_and(|route| route.instance == instance)
        {
            map.remove(vrid);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Admits `received` against the current routes and hands the advert to its instance
    /// (counted; dropped when the instance's queue is full); the reason it was not admitted
    /// otherwise. Allocates nothing once `admissions` has seen the advert's VRID: this is the
    /// path of every advert. `settle`: when a routine advert moves its unit's timer.
    pub fn deliver(
        &self,
        received: &Received,
        own: &[IpAddr],
        interface: &str,
        settle: Settle,
        admissions: &mut Admissions,
    ) -> Result<(), DropReason> {
        let map = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let admitted = admissions.admit(map.version, received, own, |vrid| {
            map.get(vrid).map(|route| &route.filter)
        })?;
        let route = map.get(admitted.vrid).ok_or(DropReason::Vrid)?;
        route.received.inc();
        if route
            .routine
            .hear(admitted.advert, received.arrived, received.read, settle)
        {
            return Ok(());
        }
        let queued = QueuedAdvert {
            member: route.member,
            advert: admitted.advert,
            arrived: received.arrived,
            read: received.read,
        };
        if let Err(error) = route.sender.try_send(queued) {
            route.routine.taken();
            tracing::debug!(%interface, instance = %route.instance, %error, "instance queue full or gone, advert dropped");
        }
        Ok(())
    }
}

/// The routes of one (interface, family), one slot per VRID: a lookup is an index. The VRIDs
/// served are also listed, so that a look at every route costs what they number, not 256.
#[derive(Debug, Clone)]
struct ByVrid {
    slots: Vec<Option<Route>>,
    served: Vec<u8>,
    /// Counts the changes of any route (what [`Admissions`] remembers is checked against it).
    version: u64,
}

impl Default for ByVrid {
    fn default() -> Self {
        Self {
            slots: vec![None; usize::from(u8::MAX) + 1],
            served: Vec::new(),
            version: 0,
        }
    }
}

impl ByVrid {
    fn get(&self, vrid: u8) -> Option<&Route> {
        self.slots.get(usize::from(vrid)).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, vrid: u8) -> Option<&mut Route> {
        self.version = self.version.wrapping_add(1);
        self.slots
            .get_mut(usize::from(vrid))
            .and_then(Option::as_mut)
    }

    /// Every route, in the order their VRIDs were first served.
    fn routes(&self) -> impl Iterator<Item = &Route> {
        self.served.iter().filter_map(|vrid| self.get(*vrid))
    }

    fn insert(&mut self, vrid: u8, route: Route) {
        self.version = self.version.wrapping_add(1);
        if let Some(slot) = self.slots.get_mut(usize::from(vrid)) {
            if slot.is_none() {
                self.served.push(vrid);
            }
            *slot = Some(route);
        }
    }

    fn remove(&mut self, vrid: u8) {
        self.version = self.version.wrapping_add(1);
        if let Some(slot) = self.slots.get_mut(usize::from(vrid))
            && slot.take().is_some()
        {
            self.served.retain(|served| *served != vrid);
        }
    }

    fn is_empty(&self) -> bool {
        self.served.is_empty()
    }
}

/// After this many errors of the socket itself in a row (not of one datagram), the thread
/// pauses [`SOCKET_ERROR_PAUSE`] between reads, so that a broken socket does not spin a core.
const SOCKET_ERRORS_BEFORE_PAUSE: u32 = 100;
const SOCKET_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The reading end of one socket: takes its datagrams one at a time, under one lock, so that
/// the receive thread and a unit's catch-up deliver them in the order they arrived.
#[derive(Debug)]
pub struct Intake {
    socket: Arc<VrrpSocket>,
    /// Queues only the adverts of priority 0: while it is open, routine adverts may wait in
    /// `socket` (see [`Self::start`]); `None`: every datagram is read as it arrives.
    priority_zero: Option<VrrpSocket>,
    /// How many datagrams may wait in `socket`'s queue: half of what it holds.
    room: f64,
    interface: String,
    routes: Routes,
    counters: ReceiveCounters,
    reading: Mutex<Reading>,
    socket_errors: Streak,
}

/// What reading one socket keeps between datagrams.
#[derive(Debug)]
struct Reading {
    received: Received,
    /// Follows the interface: its own addresses (as they are now) tell our adverts apart.
    view: watch::Receiver<InterfaceView>,
    own: Vec<IpAddr>,
    queue_drops: QueueDrops,
    /// When a drain last found the queue empty, while datagrams have been read only by drains
    /// since: everything read now arrived after it (see [`crate::net::arrival`]).
    emptied: Option<Instant>,
    /// What the datagrams are timed by: read afresh for each one read alone, once for a drain.
    clocks: Clocks,
    admissions: Admissions,
}

/// What one read of the socket did.
#[derive(Debug)]
enum Taken {
    /// A datagram was delivered or its drop counted.
    Datagram,
    /// Nothing was queued.
    Empty,
    /// The socket itself failed (not one datagram).
    Failed(NetError),
}

/// The tokens of the receive thread's [`Waiter`]: the stop pipe, the socket, the routes' wake
/// pipe and the priority-0 socket.
const STOPPED: u64 = 0;
const DATAGRAM: u64 = 1;
const WOKEN: u64 = 2;
const PRIORITY_ZERO: u64 = 3;

/// The kernel's charge for one small datagram in a receive queue, at most (its buffer and
/// bookkeeping, a page fragment on some NICs): what the room for waiting adverts is counted in.
const QUEUED_DATAGRAM_BYTES: usize = 4096;

/// Stops an [`Intake`]'s thread when dropped.
#[derive(Debug)]
pub struct Stop {
    /// Never written: its closing end wakes the thread.
    _writer: PipeWriter,
}

impl Intake {
    /// Reads `socket` for `routes`; `view` follows the interface named `interface`.
    /// `priority_zero` (see [`VrrpSocket::open_priority_zero`]) lets routine adverts wait.
    pub fn new(
        socket: Arc<VrrpSocket>,
        priority_zero: Option<VrrpSocket>,
        interface: &str,
        mut view: watch::Receiver<InterfaceView>,
        routes: Routes,
        metrics: &Metrics,
    ) -> Self {
        let own = own_addresses(&view.borrow_and_update().addresses);
        let room = socket.receive_queue_bytes() / QUEUED_DATAGRAM_BYTES / 2;
        Self {
            socket,
            priority_zero,
            room: f64::from(u32::try_from(room).unwrap_or(u32::MAX)),
            interface: interface.to_owned(),
            routes,
            counters: metrics.receive_counters(interface),
            reading: Mutex::new(Reading {
                received: Received::empty(),
                view,
                own,
                queue_drops: QueueDrops::default(),
                emptied: None,
                clocks: Clocks::default(),
                admissions: Admissions::default(),
            }),
            socket_errors: Streak::default(),
        }
    }

    /// Starts the thread that delivers each datagram as it arrives, until the returned
    /// [`Stop`] is dropped. It runs under the real-time policy when the calling thread does.
    ///
    /// While every route is a BACKUP's routine (see [`Routine::read_by`]) and the priority-0
    /// socket is open, the thread stops watching the socket and sleeps until the earliest
    /// route must be read (or until half the queue may have filled), then reads everything
    /// queued at once: one wake-up for two to three adverts instead of one for each. What
    /// must not wait wakes it at once: an advert of priority 0 (its own socket), a route that
    /// must now be read earlier (the routes' wake pipe), stopping.
    pub fn start(self: &Arc<Self>) -> std::io::Result<Stop> {
        let (stopped, stop) = std::io::pipe()?;
        let (woken, wake) = std::io::pipe()?;
        let waiter = Waiter::new()?;
        waiter.watch(stopped.as_fd(), STOPPED)?;
        waiter.watch(self.socket.as_fd(), DATAGRAM)?;
        waiter.watch(woken.as_fd(), WOKEN)?;
        if let Some(priority_zero) = &self.priority_zero {
            waiter.watch(priority_zero.as_fd(), PRIORITY_ZERO)?;
        }
        *self
            .routes
            .reader
            .pipe
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(wake);
        let intake = Arc::clone(self);
        thread::spawn("vrrp-receive", move || intake.run(waiter, &stopped, woken))?;
        Ok(Stop { _writer: stop })
    }

    /// The thread: waits in the kernel for a datagram (or, while routine adverts may wait, for
    /// the time to read them), delivers it, until `stopped` reads (the [`Stop`] was dropped; it
    /// is watched in `waiter` with the socket). Read as they arrive, one read per datagram: the
    /// wait says one is queued, and reports the socket again while more are; a drain reads
    /// them in batches (see [`VrrpSocket::drain_into`]).
    fn run(&self, mut waiter: Waiter, _stopped: &PipeReader, mut woken: PipeReader) {
        let mut watching = true;
        let mut last_read = Instant::now();
        // Datagrams a second that the last wait let queue up: a flood shortens the next wait.
        let mut arriving = 0.0;
        let mut discarded = Received::empty();
        loop {
            let until = self.wait_until(last_read, arriving);
            if until.is_some() && watching && self.catch_up() > 0 {
                // About to let datagrams wait: the queue is emptied first, so that what is read
                // at the end of the wait is known to have arrived after now.
                last_read = Instant::now();
                continue;
            }
            if let Err(error) = self.watch_socket(&waiter, &mut watching, until.is_none()) {
                self.socket_failed(&error);
            }
            if let Err(error) = waiter.wait(until) {
                self.socket_failed(&NetError::Io {
                    op: "wait for a VRRP datagram",
                    source: error,
                });
                continue;
            }
            let ready = |token| waiter.ready().any(|ready| ready == token);
            if ready(STOPPED) {
                return;
            }
            if ready(WOKEN) {
                let _ = woken.read(&mut [0; 16]);
            }
            let handover = ready(PRIORITY_ZERO);
            if handover && let Some(priority_zero) = &self.priority_zero {
                let mut clocks = Clocks::default();
                while priority_zero
                    .try_recv_into(&mut discarded, None, &mut clocks)
                    .is_some()
                {}
            }
            if handover || until.is_some_and(|until| Instant::now() >= until) {
                let taken = self.catch_up();
                let now = Instant::now();
                let waited = now.saturating_duration_since(last_read).as_secs_f64();
                arriving = f64::from(u32::try_from(taken).unwrap_or(u32::MAX)) / waited.max(1e-3);
                last_read = now;
            } else if watching && ready(DATAGRAM) {
                match self.take() {
                    Taken::Datagram | Taken::Empty => {
                        if let Some(run) = self.socket_errors.succeeded() {
                            tracing::info!(interface = %self.interface, after = run, "receiving VRRP datagrams works again");
                        }
                    }
                    Taken::Failed(error) => self.socket_failed(&error),
                }
                last_read = Instant::now();
            }
        }
    }

    /// Until when the datagrams may wait in the socket: the earliest route's
    /// [`Routine::read_by`], or when half the queue may have filled since `last_read` (at the
    /// routes' advert rate, or at `arriving` a second when more came); `None`: read each as it
    /// arrives. Says first that the thread may be holding, so that a route changed after it
    /// looked wakes it (see [`Routes::wake_reader`]).
    fn wait_until(&self, last_read: Instant, arriving: f64) -> Option<Instant> {
        self.priority_zero.as_ref()?;
        self.routes.reader.holding.store(true, Ordering::SeqCst);
        let until = self.routes.read_by().and_then(|(by, per_second)| {
            let room = Duration::try_from_secs_f64(self.room / per_second.max(arriving))
                .unwrap_or_default();
            Some(by.min(last_read.checked_add(room)?)).filter(|until| *until > Instant::now())
        });
        if until.is_none() {
            self.routes.reader.holding.store(false, Ordering::SeqCst);
        }
        until
    }

    /// Watches the socket in `waiter` when `read_now`, stops watching it otherwise.
    fn watch_socket(
        &self,
        waiter: &Waiter,
        watching: &mut bool,
        read_now: bool,
    ) -> Result<(), NetError> {
        if *watching == read_now {
            return Ok(());
        }
        let changed = if read_now {
            waiter.watch(self.socket.as_fd(), DATAGRAM)
        } else {
            waiter.unwatch(self.socket.as_fd())
        };
        changed.map_err(|source| NetError::Io {
            op: "watch the VRRP socket",
            source,
        })?;
        *watching = read_now;
        Ok(())
    }

    /// Counts and logs an error of the socket itself; pauses once they run long.
    fn socket_failed(&self, error: &NetError) {
        self.counters.socket_error();
        if let Some(run) = self.socket_errors.failed() {
            tracing::warn!(interface = %self.interface, %error, in_a_row = run, "receiving a VRRP datagram failed");
        }
        if self.socket_errors.len() >= SOCKET_ERRORS_BEFORE_PAUSE {
            std::thread::sleep(SOCKET_ERROR_PAUSE);
        }
    }

    /// Delivers every datagram queued in the socket now (returns how many): a unit that woke
    /// late learns what arrived before it. An error of the socket ends it (the thread's next
    /// read reports it).
    /// The reading lock is taken once for the whole drain, so that the receive thread, reading
    /// the same socket meanwhile, waits for it once rather than at every datagram.
    pub fn catch_up(&self) -> usize {
        let mut reading = self.lock_reading();
        reading.clocks = Clocks::default();
        let mut taken = 0;
        loop {
            match self.take_locked(&mut reading, true) {
                Taken::Datagram => taken += 1,
                Taken::Empty => {
                    reading.emptied = Some(Instant::now());
                    break;
                }
                Taken::Failed(_) => break,
            }
        }
        if taken > 0 {
            self.routes.settle();
        }
        taken
    }

    /// Reads one datagram without waiting and delivers it (or counts its drop).
    fn take(&self) -> Taken {
        let mut reading = self.lock_reading();
        reading.emptied = None;
        reading.clocks = Clocks::default();
        self.take_locked(&mut reading, false)
    }

    fn lock_reading(&self) -> std::sync::MutexGuard<'_, Reading> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Self::take`] under a reading lock already held; `draining`: as part of
    /// [`Self::catch_up`] (the datagram arrived after the queue was last found empty).
    fn take_locked(&self, reading: &mut Reading, draining: bool) -> Taken {
        let Reading {
            received,
            view,
            own,
            queue_drops,
            emptied,
            clocks,
            admissions,
        } = reading;
        if view.has_changed().unwrap_or(false) {
            *own = own_addresses(&view.borrow_and_update().addresses);
        }
        let read = if draining {
            self.socket.drain_into(received, *emptied, clocks)
        } else {
            self.socket.try_recv_into(received, None, clocks)
        };
        match read {
            None => Taken::Empty,
            Some(Ok(())) => {
                let settle = if draining {
                    Settle::AfterDrain
                } else {
                    Settle::Now
                };
                self.deliver(received, own, queue_drops, settle, admissions);
                Taken::Datagram
            }
            Some(Err(error)) => match error.drop_reason() {
                Some(reason) => {
                    self.counters.dropped(reason, 1);
                    tracing::debug!(interface = %self.interface, %error, reason = reason.as_str(), "VRRP datagram dropped");
                    Taken::Datagram
                }
                None => Taken::Failed(error),
            },
        }
    }

    /// Counts the kernel's drops reported with `received`, then routes it or counts its drop.
    fn deliver(
        &self,
        received: &Received,
        own: &[IpAddr],
        queue_drops: &mut QueueDrops,
        settle: Settle,
        admissions: &mut Admissions,
    ) {
        let interface = &self.interface;
        let overflowed = queue_drops.since_last(received.queue_drops);
        if overflowed > 0 {
            self.counters
                .dropped(DropReason::Overflow, u64::from(overflowed));
            tracing::debug!(%interface, dropped = overflowed, "the kernel dropped VRRP datagrams: receive queue full");
        }
        if let Err(reason) = self
            .routes
            .deliver(received, own, interface, settle, admissions)
        {
            self.counters.dropped(reason, 1);
            tracing::debug!(%interface, source = %received.source, reason = reason.as_str(), "VRRP packet dropped");
        }
    }
}

/// The kernel's cumulative count of datagrams dropped on a socket (SO_RXQ_OVFL), turned into
/// increments. Pure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDrops {
    seen: u32,
}

impl QueueDrops {
    /// How many drops `reported` (the count carried by a datagram, absent while it is 0) adds
    /// to what was seen before. The counter wraps at 2^32.
    pub fn since_last(&mut self, reported: Option<u32>) -> u32 {
        let total = reported.unwrap_or(self.seen);
        let new = total.wrapping_sub(self.seen);
        self.seen = total;
        new
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const OWN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    fn filter(version: Version) -> AdvertFilter {
        AdvertFilter {
            version,
            authentication: Authentication::None,
            advert_interval_cs: 100,
            unicast_peers: Vec::new(),
        }
    }

    fn advert(version: Version, vrid: u8, interval_cs: u16, auth: Authentication) -> Advertisement {
        Advertisement {
            version,
            vrid,
            priority: 150,
            max_advert_interval_cs: interval_cs,
            addresses: vec!["192.0.2.50".parse().unwrap()],
            auth,
        }
    }

    fn received(advert: &Advertisement, source: IpAddr, ttl: u8) -> Received {
        Received {
            source,
            destination: GROUP,
            ttl,
            payload: advert.encode(source, GROUP).unwrap(),
            queue_drops: None,
            arrived: Instant::now(),
            read: Instant::now(),
        }
    }

    fn check(received: &Received, filter: &AdvertFilter) -> Result<Admitted, DropReason> {
        admit(received, &[OWN], |vrid| (vrid == 51).then_some(filter))
    }

    #[test]
    fn a_valid_v3_advert_is_admitted_with_its_priority_and_interval() {
        let packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            255,
        );
        let admitted = check(&packet, &filter(Version::V3)).unwrap();
        assert_eq!(admitted.vrid, 51);
        assert_eq!(admitted.advert.source, SOURCE);
        assert_eq!(admitted.advert.priority, 150);
        assert_eq!(admitted.advert.max_advert_interval, Duration::from_secs(1));
    }

    #[test]
    fn a_ttl_other_than_255_is_dropped_as_ttl() {
        let packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            254,
        );
        assert_eq!(check(&packet, &filter(Version::V3)), Err(DropReason::Ttl));
    }

    #[test]
    fn our_own_source_is_dropped_as_source() {
        let packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            OWN,
            255,
        );
        assert_eq!(
            check(&packet, &filter(Version::V3)),
            Err(DropReason::Source)
        );
    }

    #[test]
    fn a_source_outside_the_unicast_peers_is_dropped_as_source() {
        let packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            255,
        );
        let mut unicast = filter(Version::V3);
        unicast.unicast_peers = vec!["192.0.2.3".parse().unwrap()];
        assert_eq!(check(&packet, &unicast), Err(DropReason::Source));
        unicast.unicast_peers.push(SOURCE);
        assert!(check(&packet, &unicast).is_ok());
    }

    #[test]
    fn an_unknown_vrid_is_dropped_as_vrid() {
        let packet = received(
            &advert(Version::V3, 52, 100, Authentication::None),
            SOURCE,
            255,
        );
        assert_eq!(check(&packet, &filter(Version::V3)), Err(DropReason::Vrid));
    }

    #[test]
    fn a_v2_password_mismatch_is_dropped_as_auth() {
        let sent = Authentication::simple_text_password(b"secret").unwrap();
        let packet = received(&advert(Version::V2, 51, 100, sent), SOURCE, 255);
        let mut expected = filter(Version::V2);
        expected.authentication = Authentication::simple_text_password(b"other").unwrap();
        assert_eq!(check(&packet, &expected), Err(DropReason::Auth));
        expected.authentication = sent;
        assert!(check(&packet, &expected).is_ok());
    }

    #[test]
    fn a_v2_interval_mismatch_is_dropped_as_interval() {
        let packet = received(
            &advert(Version::V2, 51, 200, Authentication::None),
            SOURCE,
            255,
        );
        assert_eq!(
            check(&packet, &filter(Version::V2)),
            Err(DropReason::Interval)
        );
    }

    #[test]
    fn a_v3_interval_differing_from_ours_is_admitted_for_learning() {
        let packet = received(
            &advert(Version::V3, 51, 300, Authentication::None),
            SOURCE,
            255,
        );
        assert!(check(&packet, &filter(Version::V3)).is_ok());
    }

    #[test]
    fn a_v2_advert_for_a_v3_instance_is_dropped_as_version() {
        let packet = received(
            &advert(Version::V2, 51, 100, Authentication::None),
            SOURCE,
            255,
        );
        assert_eq!(
            check(&packet, &filter(Version::V3)),
            Err(DropReason::Version)
        );
    }

    #[test]
    fn a_corrupted_checksum_is_dropped_by_its_decode_reason() {
        let mut packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            255,
        );
        packet.payload[6] ^= 0xff;
        assert_eq!(
            check(&packet, &filter(Version::V3)),
            Err(DropReason::Checksum)
        );
    }

    #[test]
    fn a_truncated_packet_is_dropped_as_length() {
        let mut packet = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            255,
        );
        packet.payload.truncate(5);
        assert_eq!(
            check(&packet, &filter(Version::V3)),
            Err(DropReason::Length)
        );
    }

    #[test]
    fn queue_drops_are_counted_once_from_the_kernels_running_total() {
        let mut drops = QueueDrops::default();
        assert_eq!(drops.since_last(None), 0);
        assert_eq!(drops.since_last(Some(3)), 3);
        assert_eq!(drops.since_last(Some(3)), 0);
        assert_eq!(drops.since_last(None), 0);
        assert_eq!(drops.since_last(Some(10)), 7);
        let mut wrapping = QueueDrops { seen: u32::MAX - 1 };
        assert_eq!(wrapping.since_last(Some(2)), 4);
    }

    /// A v3 route of `instance` (member 0) whose adverts go to `sender`.
    fn route(instance: &str, sender: &AdvertSender) -> Route {
        Route {
            instance: instance.to_owned(),
            filter: filter(Version::V3),
            member: 0,
            sender: sender.clone(),
            received: Counter::default(),
            routine: Routine::new(Counter::default()),
        }
    }

    #[test]
    fn routes_refuse_a_vrid_held_by_another_instance() {
        let routes = Routes::default();
        let (sender, _receiver) = mpsc::channel(1);
        let route = |instance: &str| route(instance, &sender);
        routes.insert(51, route("web")).unwrap();
        assert_eq!(routes.insert(51, route("db")), Err("web".to_owned()));
        routes.remove(51, "db");
        assert!(!routes.is_empty());
        routes.remove(51, "web");
        assert!(routes.is_empty());
    }

    #[tokio::test]
    async fn adverts_wait_only_while_every_route_is_routine_until_the_earliest_reading() {
        let routes = Routes::default();
        let (sender, _receiver) = mpsc::channel(1);
        let timer = crate::net::timer::Deadline::new().unwrap();
        let start = Instant::now();
        let route = |instance: &str| route(instance, &sender);
        let expected = |interval_ms: u64| ReceivedAdvert {
            source: SOURCE,
            priority: 150,
            max_advert_interval: Duration::from_millis(interval_ms),
        };
        assert_eq!(routes.read_by(), None, "no route");
        let (web, db) = (route("web"), route("db"));
        routes.insert(51, web.clone()).unwrap();
        routes.insert(52, db.clone()).unwrap();
        let master_down = Some((timer.postpone(), Duration::from_secs(3)));
        web.routine.expect(
            Some(expected(1_000)),
            Some(start + Duration::from_secs(3)),
            master_down.clone(),
        );
        assert_eq!(routes.read_by(), None, "db is read at once");
        db.routine.expect(
            Some(expected(10)),
            Some(start + Duration::from_secs(2)),
            master_down,
        );
        let (by, per_second) = routes.read_by().unwrap();
        assert_eq!(by, start + Duration::from_millis(1_995), "db, 5 ms before");
        assert!((per_second - 101.0).abs() < 1e-9, "{per_second}");
        routes.remove(52, "db");
        assert_eq!(
            routes.read_by(),
            Some((start + Duration::from_millis(2_500), 1.0)),
            "only the routes served count"
        );
    }

    #[test]
    fn the_vrids_served_are_listed_once_each_while_they_are_served() {
        let (sender, _receiver) = mpsc::channel(1);
        let mut map = ByVrid::default();
        let vrids = |map: &ByVrid| {
            map.routes()
                .map(|route| route.instance.clone())
                .collect::<Vec<_>>()
        };
        assert!(map.is_empty());
        map.insert(200, route("b", &sender));
        map.insert(7, route("a", &sender));
        map.insert(200, route("c", &sender));
        assert_eq!(
            vrids(&map),
            ["c", "a"],
            "replaced in place, not listed twice"
        );
        map.remove(200);
        map.remove(9);
        assert_eq!(vrids(&map), ["a"]);
        map.remove(7);
        assert!(map.is_empty());
        assert!(map.slots.iter().all(Option::is_none));
    }

    #[test]
    fn an_advert_reaches_its_unit_with_the_time_its_datagram_arrived() {
        let routes = Routes::default();
        let (sender, mut receiver) = mpsc::channel(1);
        let route = Route {
            instance: "web".to_owned(),
            filter: filter(Version::V3),
            member: 3,
            sender,
            received: Counter::default(),
            routine: Routine::new(Counter::default()),
        };
        routes.insert(51, route).unwrap();
        let mut datagram = received(
            &advert(Version::V3, 51, 100, Authentication::None),
            SOURCE,
            VRRP_TTL,
        );
        datagram.arrived = Instant::now()
            .checked_sub(Duration::from_millis(6))
            .unwrap();
        routes
            .deliver(
                &datagram,
                &[OWN],
                "eth0",
                Settle::Now,
                &mut Admissions::default(),
            )
            .unwrap();
        let queued = receiver.try_recv().unwrap();
        assert_eq!((queued.member, queued.advert.source), (3, SOURCE));
        assert_eq!(
            queued.arrived, datagram.arrived,
            "read late, timed from its arrival"
        );
    }
}
