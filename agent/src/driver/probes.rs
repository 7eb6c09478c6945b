//! The agent's probe thread: every MASTER member's split-brain probes ([`super::conflict`]),
//! run off the tokio runtime so that a steady MASTER's probes wake no task. One thread for the
//! agent (beside the advert [`super::ticker`], which waits on a condition variable, where this
//! one waits on sockets) holds each probing member's [`ConflictBook`] and deadline in one
//! schedule, sends its probes at their deadlines, and hears the answers on one probe socket per
//! interface and family, shared by the members probing there (each claim is offered to every
//! member on that socket; a member's book keeps only claims for its own VIPs). Only a change
//! of verdict (a conflict seen, another holder, over) crosses back, through the member's
//! callback, after its log line and metrics.
//!
//! A member probes while its [`Probing`] lives: dropping it takes the member out of the
//! schedule at once (no report from it follows), and the last member of a socket closes it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube_vrrp_crds::HolderConflict;

use super::conflict::{Change, ConflictBook, ProbeTarget};
use crate::net::NetError;
use crate::net::conflict::ProbeSocket;
use crate::net::conflict::frame::Claim;
use crate::net::sys::PollSet;
use crate::report::Metrics;
use crate::vrrp::Family;

/// Called with the conflict as it stands after each change of verdict.
pub type Report = Box<dyn Fn(Option<HolderConflict>) + Send>;

/// The agent's probe thread; clones share it. It starts with the first member and stops when
/// the last clone (each [`Probing`] holds one) is dropped.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    shared: Arc<Shared>,
    /// The thread's wake-up line, once started (or why it could not start).
    waker: Mutex<Option<Result<UnixDatagram, String>>>,
}

#[derive(Debug, Default)]
struct Shared {
    board: Mutex<Board>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which socket a member probes on: one per interface, family and hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SocketKey {
    ifindex: u32,
    family: Family,
    mac: [u8; 6],
}

#[derive(Debug)]
struct SharedSocket {
    key: SocketKey,
    socket: ProbeSocket,
    members: usize,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    member: Option<Probed>,
}

/// One probing member as the thread runs it.
struct Probed {
    instance: String,
    socket: usize,
    book: ConflictBook,
    metrics: Metrics,
    report: Report,
}

impl std::fmt::Debug for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probed")
            .field("instance", &self.instance)
            .field("socket", &self.socket)
            .field("book", &self.book)
            .finish_non_exhaustive()
    }
}

/// Everything the thread runs: the shared sockets, the members, and their deadlines.
#[derive(Debug, Default)]
struct Board {
    sockets: Vec<Option<SharedSocket>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Probe deadlines as (when, slot, generation); an entry is stale (skipped) when its
    /// generation is not its slot's any more or its member's next probe is not `when`.
    queue: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    stopping: bool,
}

/// A member's place in the probe thread; dropping it stops the member's probes.
#[derive(Debug)]
pub struct Probing {
    probes: Probes,
    slot: usize,
    generation: u64,
}

impl Probes {
    /// Starts probing for `target` now (its first probe half an advert interval on). Fails
    /// when the interface's probe socket cannot be opened (call in its namespace) or the
    /// thread cannot start.
    pub fn start(
        &self,
        target: &ProbeTarget,
        metrics: Metrics,
        report: Report,
    ) -> Result<Probing, NetError> {
        self.ensure_started()?;
        let key = SocketKey {
            ifindex: target.ifindex,
            family: target.family,
            mac: target.mac,
        };
        let mut board = self.inner.shared.lock();
        let socket = board.socket_for(key)?;
        let book = ConflictBook::new(
            Instant::now(),
            target.vips.clone(),
            vec![target.mac],
            target.advert_interval,
        );
        let due = book.next_probe();
        let slot = board.free.pop().unwrap_or_else(|| {
            board.slots.push(Slot::default());
            board.slots.len() - 1
        });
        let entry = &mut board.slots[slot];
        entry.generation += 1;
        let generation = entry.generation;
        entry.member = Some(Probed {
            instance: target.instance.clone(),
            socket,
            book,
            metrics,
            report,
        });
        board.queue.push(Reverse((due, slot, generation)));
        drop(board);
        self.wake();
        Ok(Probing {
            probes: self.clone(),
            slot,
            generation,
        })
    }

    /// Starts the thread once; the error (logged by the caller) stays for later calls.
    fn ensure_started(&self) -> Result<(), NetError> {
        let mut waker = self
            .inner
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let started = waker.get_or_insert_with(|| {
            let shared = Arc::clone(&self.inner.shared);
            let start = || {
                let (waker, wakee) = UnixDatagram::pair()?;
                waker.set_nonblocking(true)?;
                wakee.set_nonblocking(true)?;
                std::thread::Builder::new()
                    .name("vrrp-probes".to_owned())
                    .spawn(move || run(&shared, &wakee))?;
                Ok::<_, std::io::Error>(waker)
            };
            start().map_err(|error| error.to_string())
        });
        match started {
            Ok(_) => Ok(()),
            Err(error) => Err(NetError::io("start the probe thread")(
                std::io::Error::other(error.clone()),
            )),
        }
    }

    /// Wakes the thread to look at the board again (a new deadline, a socket gone).
    fn wake(&self) {
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
        self.shared.lock().stopping = true;
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

impl Drop for Probing {
    fn drop(&mut self) {
        let mut board = self.probes.inner.shared.lock();
        let Some(slot) = board.slots.get_mut(self.slot) else {
            return;
        };
        if slot.generation != self.generation {
            return;
        }
        slot.generation += 1;
        let member = slot.member.take();
        board.free.push(self.slot);
        if let Some(member) = member {
            board.release_socket(member.socket);
        }
        drop(board);
        self.probes.wake();
    }
}

impl Board {
    /// The socket for `key`, opened on first use; counts one more member on it.
    fn socket_for(&mut self, key: SocketKey) -> Result<usize, NetError> {
        let found = self
            .sockets
            .iter()
            .position(|socket| socket.as_ref().is_some_and(|socket| socket.key == key));
        let index = if let Some(index) = found {
            index
        } else {
            let socket = SharedSocket {
                key,
                socket: ProbeSocket::open(key.ifindex, key.mac, key.family)?,
                members: 0,
            };
            if let Some(index) = self.sockets.iter().position(Option::is_none) {
                self.sockets[index] = Some(socket);
                index
            } else {
                self.sockets.push(Some(socket));
                self.sockets.len() - 1
            }
        };
        if let Some(socket) = self.sockets[index].as_mut() {
            socket.members += 1;
        }
        Ok(index)
    }

    /// One member less on socket `index`; the last one closes it.
    fn release_socket(&mut self, index: usize) {
        let Some(entry) = self.sockets.get_mut(index) else {
            return;
        };
        if let Some(socket) = entry.as_mut() {
            socket.members = socket.members.saturating_sub(1);
            if socket.members == 0 {
                *entry = None;
            }
        }
    }

    fn live(&self, when: Instant, slot: usize, generation: u64) -> bool {
        self.slots.get(slot).is_some_and(|slot| {
            slot.generation == generation
                && slot
                    .member
                    .as_ref()
                    .is_some_and(|member| member.book.next_probe() == when)
        })
    }

    /// Runs every probe round due at `now`, drops stale deadlines, and returns the next
    /// deadline.
    fn probe_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&Reverse((when, index, generation))) = self.queue.peek() {
            if !self.live(when, index, generation) {
                self.queue.pop();
                continue;
            }
            if when > now {
                return Some(when);
            }
            self.queue.pop();
            let Some(member) = self
                .slots
                .get_mut(index)
                .and_then(|slot| slot.member.as_mut())
            else {
                continue;
            };
            let change = member.book.on_probe(now);
            if let Some(shared) = self.sockets.get(member.socket).and_then(Option::as_ref) {
                for vip in member.book.vips() {
                    if let Err(error) = shared.socket.probe(*vip) {
                        tracing::debug!(instance = %member.instance, %vip, %error, "sending a probe failed");
                    }
                }
            }
            self.queue
                .push(Reverse((member.book.next_probe(), index, generation)));
            if let Some(change) = change {
                member.tell(&change);
            }
        }
        None
    }

    /// Reads what socket `index` has queued and offers each claim to its members.
    fn hear(&mut self, index: usize, buffer: &mut [u8]) {
        let Self {
            sockets,
            slots,
            queue,
            ..
        } = self;
        let Some(shared) = sockets.get(index).and_then(Option::as_ref) else {
            return;
        };
        let heard = shared.socket.drain(buffer, |claim| {
            offer(slots, queue, index, claim, Instant::now(), Timestamp::now());
        });
        if let Err(error) = heard {
            tracing::debug!(ifindex = shared.key.ifindex, %error, "receiving a probe answer failed");
        }
    }
}

/// Offers `claim`, heard on socket `socket` at `now` (`wall`), to the members probing there;
/// a claim that pulls a member's next probe in gets that deadline queued.
fn offer(
    slots: &mut [Slot],
    queue: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    socket: usize,
    claim: Claim,
    now: Instant,
    wall: Timestamp,
) {
    for (index, slot) in slots.iter_mut().enumerate() {
        let Some(member) = slot
            .member
            .as_mut()
            .filter(|member| member.socket == socket)
        else {
            continue;
        };
        let before = member.book.next_probe();
        let change = member.book.on_claim(now, wall, claim);
        let after = member.book.next_probe();
        if after != before {
            queue.push(Reverse((after, index, slot.generation)));
        }
        if let Some(change) = change {
            member.tell(&change);
        }
    }
}

impl Probed {
    /// Logs a change of verdict, updates the metrics, then reports it.
    fn tell(&self, change: &Change) {
        match change {
            Change::Detected(conflict) | Change::OtherHolder(conflict) => {
                tracing::error!(instance = %self.instance, vip = %conflict.address, other_mac = %conflict.other_mac, "split brain: another node answers for a VIP this MASTER holds (VRRP adverts between them are lost: a firewall dropping IP protocol 112, or multicast filtered?)");
                if matches!(change, Change::Detected(_)) {
                    self.metrics.holder_conflict_detected(&self.instance);
                }
                self.metrics.holder_conflict(&self.instance, true);
            }
            Change::Cleared => {
                tracing::info!(instance = %self.instance, "split brain over: no other node answers for the VIPs");
                self.metrics.holder_conflict(&self.instance, false);
            }
        }
        (self.report)(self.book.conflict().cloned());
    }
}

/// The thread: runs the due probe rounds, then sleeps until the next deadline, an answer on a
/// socket, or a wake-up (a member added or gone).
fn run(shared: &Shared, wakee: &UnixDatagram) {
    let mut polled = PollSet::default();
    // The socket index behind each polled descriptor after the wake-up line (first).
    let mut listed: Vec<usize> = Vec::new();
    let mut buffer = vec![0u8; 1536];
    loop {
        let timeout = {
            let mut board = shared.lock();
            if board.stopping {
                return;
            }
            let next = board.probe_due(Instant::now());
            polled.clear();
            listed.clear();
            polled.push(wakee.as_fd());
            for (index, socket) in board.sockets.iter().enumerate() {
                if let Some(socket) = socket {
                    polled.push(socket.socket.fd());
                    listed.push(index);
                }
            }
            next.map(|next| next.saturating_duration_since(Instant::now()))
        };
        if let Err(error) = polled.wait(timeout) {
            tracing::warn!(%error, "the probe thread cannot wait on its sockets; retrying in a second");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        if polled.ready(0) {
            while wakee.recv(&mut [0u8; 8]).is_ok() {}
        }
        let mut board = shared.lock();
        for (entry, &index) in listed.iter().enumerate() {
            if polled.ready(entry + 1) {
                board.hear(index, &mut buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    const OWN: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const OTHER: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const ADVERT: Duration = Duration::from_secs(1);

    fn vip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// A board with one member per VIP, all on socket 0 (no socket opened: the members' books
    /// and the schedule only), reporting into `reports`.
    fn board(start: Instant, vips: &[IpAddr], reports: &Arc<Mutex<Vec<(String, bool)>>>) -> Board {
        let mut board = Board::default();
        for (index, vip) in vips.iter().enumerate() {
            let name = format!("m{index}");
            let reports = Arc::clone(reports);
            let reported = name.clone();
            let book = ConflictBook::new(start, vec![*vip], vec![OWN], ADVERT);
            board.queue.push(Reverse((book.next_probe(), index, 1)));
            board.slots.push(Slot {
                generation: 1,
                member: Some(Probed {
                    instance: name,
                    socket: 0,
                    book,
                    metrics: Metrics::new(),
                    report: Box::new(move |found: Option<HolderConflict>| {
                        reports
                            .lock()
                            .unwrap()
                            .push((reported.clone(), found.is_some()));
                    }),
                }),
            });
        }
        board
    }

    fn claim(board: &mut Board, address: IpAddr, at: Instant) {
        let Board { slots, queue, .. } = board;
        offer(
            slots,
            queue,
            0,
            Claim {
                address,
                mac: OTHER,
            },
            at,
            Timestamp::now(),
        );
    }

    #[test]
    fn a_claim_heard_on_a_shared_socket_counts_only_for_the_member_holding_that_vip() {
        let start = Instant::now();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut board = board(start, &[vip(1), vip(2)], &reports);
        // Both members' first rounds, half an advert after MASTER.
        assert_eq!(
            board.probe_due(start + ADVERT / 2),
            Some(start + ADVERT / 2 + 3 * ADVERT)
        );
        // Another holder answers for m1's VIP twice, a round apart: m1's conflict alone.
        claim(&mut board, vip(2), start + ADVERT);
        let confirm = start + ADVERT + ADVERT / 2;
        assert_eq!(
            board.probe_due(confirm.checked_sub(Duration::from_millis(1)).unwrap()),
            Some(confirm),
            "the claim pulled m1's next probe in to half an advert"
        );
        board.probe_due(confirm);
        claim(&mut board, vip(2), confirm + Duration::from_millis(1));
        assert_eq!(*reports.lock().unwrap(), [("m1".to_owned(), true)]);
    }

    #[test]
    fn a_member_taken_off_the_board_is_neither_probed_nor_reported() {
        let start = Instant::now();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut board = board(start, &[vip(1)], &reports);
        board.probe_due(start + ADVERT / 2);
        claim(&mut board, vip(1), start + ADVERT);
        // What dropping its Probing does: a new generation, no member.
        board.slots[0].generation += 1;
        board.slots[0].member = None;
        assert_eq!(
            board.probe_due(start + 10 * ADVERT),
            None,
            "no deadline left"
        );
        claim(&mut board, vip(1), start + 10 * ADVERT);
        assert!(reports.lock().unwrap().is_empty());
    }

    #[test]
    fn deadlines_come_out_earliest_first_across_members_started_at_different_times() {
        let start = Instant::now();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut board = board(start, &[vip(1)], &reports);
        let later = start + Duration::from_millis(300);
        let book = ConflictBook::new(later, vec![vip(2)], vec![OWN], ADVERT);
        board.queue.push(Reverse((book.next_probe(), 1, 1)));
        board.slots.push(Slot {
            generation: 1,
            member: Some(Probed {
                instance: "m1".to_owned(),
                socket: 0,
                book,
                metrics: Metrics::new(),
                report: Box::new(|_| {}),
            }),
        });
        assert_eq!(board.probe_due(start), Some(start + ADVERT / 2));
        assert_eq!(
            board.probe_due(start + ADVERT / 2),
            Some(later + ADVERT / 2),
            "m0 served, m1 next"
        );
        assert_eq!(
            board.probe_due(later + ADVERT / 2),
            Some(start + ADVERT / 2 + 3 * ADVERT)
        );
    }
}
