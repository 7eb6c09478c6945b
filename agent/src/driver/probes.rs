//! Every MASTER member's split-brain probes ([`super::conflict`]), run by the agent's ticker
//! thread ([`super::ticker`]) off the tokio runtime, beside the routine adverts, so that a
//! steady MASTER's probes wake no task and, going early at the ticker's advert wake-ups (see
//! [`super::conflict`]'s early probing), no thread of their own. [`Board`] holds each probing
//! member's [`ConflictBook`], its probe frames (built once, when it starts probing) and its
//! deadlines, sends its probes when due, and hears the answers on one probe socket per
//! interface and family, shared by the members probing there (each claim is offered to every
//! member on that socket; a member's book keeps only claims for its own VIPs). Only a change
//! of verdict (a conflict seen, another holder, over) crosses back, through the member's
//! callback, after its log line and metrics.
//!
//! A member probes while its [`Probing`] lives: dropping it takes the member out of the
//! schedule at once (no report from it follows), and the last member of a socket closes it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use jiff::Timestamp;
use kube_vrrp_crds::HolderConflict;

use super::conflict::{Change, ConflictBook, ProbeTarget};
use super::ticker::Ticker;
use crate::net::NetError;
use crate::net::conflict::frame::Claim;
use crate::net::conflict::{Probe, ProbeSocket};
use crate::report::Metrics;
use crate::vrrp::Family;

/// Called with the conflict as it stands after each change of verdict.
pub type Report = Box<dyn Fn(Option<HolderConflict>) + Send>;

/// Deadlines as (when, slot, generation).
type Deadlines = BinaryHeap<Reverse<(Instant, usize, u64)>>;

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
    /// The member's probe frames, one per VIP.
    probes: Vec<Probe>,
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

/// Everything the ticker runs for the probes: the shared sockets, the members, and their
/// deadlines.
#[derive(Debug, Default)]
pub(super) struct Board {
    sockets: Vec<Option<SharedSocket>>,
    /// How many times a socket opened or closed: the ticker watches the sockets again when
    /// this moved.
    socket_changes: u64,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Each member's next probe deadline as (when, slot, generation); an entry is stale
    /// (skipped) when its generation is not its slot's any more or its member's deadline is not
    /// `when`.
    queue: Deadlines,
}

/// A member's place in the ticker's probes; dropping it stops the member's probes.
#[derive(Debug)]
pub struct Probing {
    ticker: Ticker,
    slot: usize,
    generation: u64,
}

impl Ticker {
    /// Starts probing for `target` now (its first probe half an advert interval on). Fails
    /// when the interface's probe socket cannot be opened (call in its namespace) or the
    /// thread cannot start.
    pub fn probe(
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
        let mut work = self.lock();
        let board = &mut work.probes;
        let socket = board.socket_for(key)?;
        let probes = board.sockets[socket]
            .as_ref()
            .map(|shared| shared.socket.probes(&target.vips))
            .unwrap_or_default();
        let book = ConflictBook::new(
            Instant::now(),
            target.vips.clone(),
            vec![target.mac],
            target.advert_interval,
        );
        let slot = board.free.pop().unwrap_or_else(|| {
            board.slots.push(Slot::default());
            board.slots.len() - 1
        });
        let entry = &mut board.slots[slot];
        entry.generation += 1;
        let generation = entry.generation;
        board
            .queue
            .push(Reverse((book.next_probe(), slot, generation)));
        board.slots[slot].member = Some(Probed {
            instance: target.instance.clone(),
            socket,
            book,
            probes,
            metrics,
            report,
        });
        drop(work);
        self.wake();
        Ok(Probing {
            ticker: self.clone(),
            slot,
            generation,
        })
    }
}

impl Drop for Probing {
    fn drop(&mut self) {
        let mut work = self.ticker.lock();
        let board = &mut work.probes;
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
        drop(work);
        self.ticker.wake();
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
            self.socket_changes += 1;
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
                self.socket_changes += 1;
            }
        }
    }

    /// How many times a probe socket opened or closed so far.
    pub(super) fn socket_changes(&self) -> u64 {
        self.socket_changes
    }

    /// The open probe sockets, each with its index (for [`Self::hear`]).
    pub(super) fn sockets(&self) -> impl Iterator<Item = (usize, BorrowedFd<'_>)> {
        self.sockets
            .iter()
            .enumerate()
            .filter_map(|(index, socket)| socket.as_ref().map(|socket| (index, socket.socket.fd())))
    }

    /// Runs every probe round that goes at a wake-up at `now`, the ticker's next planned
    /// wake-up being `next_wake` (due, or steady, open and due before `next_wake`: see
    /// [`ConflictBook::probe_now`]), drops stale deadlines, and returns the next deadline: the
    /// latest the ticker wakes for the probes.
    pub(super) fn probe_due(
        &mut self,
        now: Instant,
        next_wake: Option<Instant>,
    ) -> Option<Instant> {
        // Deadlines come out earliest first: when the earliest does not go now, none behind it
        // has to (a later one that may is served at the earliest's wake-up at the latest).
        while let Some(&Reverse((when, index, generation))) = self.queue.peek() {
            let Some(member) = self
                .slots
                .get_mut(index)
                .filter(|slot| slot.generation == generation)
                .and_then(|slot| slot.member.as_mut())
                .filter(|member| member.book.next_probe() == when)
            else {
                self.queue.pop();
                continue;
            };
            if !member.book.probe_now(now, next_wake) {
                return Some(when);
            }
            self.queue.pop();
            let change = member.book.on_probe(now);
            if let Some(shared) = self.sockets.get(member.socket).and_then(Option::as_ref) {
                for probe in &member.probes {
                    if let Err(error) = shared.socket.send(probe) {
                        tracing::debug!(instance = %member.instance, vip = %probe.vip, %error, "sending a probe failed");
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
    pub(super) fn hear(&mut self, index: usize, buffer: &mut [u8]) {
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
    queue: &mut Deadlines,
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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

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
                    probes: Vec::new(),
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
            board.probe_due(start + ADVERT / 2, None),
            Some(start + ADVERT / 2 + 3 * ADVERT)
        );
        // Another holder answers for m1's VIP twice, a round apart: m1's conflict alone.
        claim(&mut board, vip(2), start + ADVERT);
        let confirm = start + ADVERT + ADVERT / 2;
        assert_eq!(
            board.probe_due(confirm.checked_sub(Duration::from_millis(1)).unwrap(), None),
            Some(confirm),
            "the claim pulled m1's next probe in to half an advert"
        );
        board.probe_due(confirm, None);
        claim(&mut board, vip(2), confirm + Duration::from_millis(1));
        assert_eq!(*reports.lock().unwrap(), [("m1".to_owned(), true)]);
    }

    #[test]
    fn a_member_taken_off_the_board_is_neither_probed_nor_reported() {
        let start = Instant::now();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut board = board(start, &[vip(1)], &reports);
        board.probe_due(start + ADVERT / 2, None);
        claim(&mut board, vip(1), start + ADVERT);
        // What dropping its Probing does: a new generation, no member.
        board.slots[0].generation += 1;
        board.slots[0].member = None;
        assert_eq!(
            board.probe_due(start + 10 * ADVERT, None),
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
                probes: Vec::new(),
                metrics: Metrics::new(),
                report: Box::new(|_| {}),
            }),
        });
        assert_eq!(board.probe_due(start, None), Some(start + ADVERT / 2));
        assert_eq!(
            board.probe_due(start + ADVERT / 2, None),
            Some(later + ADVERT / 2),
            "m0 served, m1 next"
        );
        assert_eq!(
            board.probe_due(later + ADVERT / 2, None),
            Some(start + ADVERT / 2 + 3 * ADVERT)
        );
    }

    /// What woke the ticker.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Woke {
        /// An advert deadline of the member (the ticker sends its advert).
        Advert,
        /// A probe deadline and nothing else: a wake-up of the probes' own.
        Probe,
        /// An answer on the probe socket.
        Answer,
    }

    /// The ticker's loop over `board`'s member 0 from `start` to `end`, the member's adverts
    /// due every [`ADVERT`] from `start` (served first at each wake-up, as the ticker does) and
    /// other holders' answers for `vip(1)` heard at `answers`: each wake-up at the earliest of
    /// the next advert, the probes' deadline and the next answer. Returns when each probe round
    /// went and what woke the ticker then.
    fn rounds(
        board: &mut Board,
        start: Instant,
        end: Instant,
        answers: &[Instant],
    ) -> Vec<(Instant, Woke)> {
        let mut rounds = Vec::new();
        let mut advert = start;
        let mut answers = answers.iter().copied().peekable();
        let mut deadline = None;
        loop {
            let (now, woke) = [
                (Some(advert), Woke::Advert),
                (deadline, Woke::Probe),
                (answers.peek().copied(), Woke::Answer),
            ]
            .into_iter()
            .filter_map(|(at, woke)| at.map(|at| (at, woke)))
            .min_by_key(|(at, _)| *at)
            .unwrap();
            if now > end {
                return rounds;
            }
            if woke == Woke::Answer {
                answers.next();
                claim(board, vip(1), now);
            }
            if now == advert {
                advert += ADVERT;
            }
            let before = board.slots[0].member.as_ref().unwrap().book.next_probe();
            deadline = board.probe_due(now, Some(advert));
            let after = board.slots[0].member.as_ref().unwrap().book.next_probe();
            // A claim can move the deadline too, but not within `probe_due`: a move here is a
            // probe round.
            if after != before {
                rounds.push((now, woke));
            }
        }
    }

    #[test]
    fn steady_probes_go_at_advert_wake_ups_and_a_suspect_or_a_conflict_at_half_an_advert() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut steady_board = board(start, &[vip(1)], &reports);
        // Steady: the first probe half an advert after MASTER, then every three adverts, each
        // at an advert's wake-up.
        let steady = rounds(&mut steady_board, start, at(30_000), &[]);
        let mut expected = vec![(at(500), Woke::Probe)];
        expected.extend((1..=10).map(|n| (at(n * 3000), Woke::Advert)));
        assert_eq!(steady, expected, "steady: no wake-up of the probes' own");

        // Another holder answers (at 40.2 s, then to each probe): a suspect round and the
        // conflict's rounds go at half an advert, on wake-ups of their own between the
        // adverts; after the answers stop, three silent rounds clear it and the probes go back
        // to the advert wake-ups.
        let mut board = board(start, &[vip(1)], &reports);
        let answers = [at(40_200), at(40_701), at(41_201), at(41_701)];
        let went = rounds(&mut board, start, at(60_000), &answers);
        let after_claim: Vec<_> = went.iter().filter(|(when, _)| *when > at(40_000)).collect();
        let mut expected = vec![
            (at(40_700), Woke::Probe),
            (at(41_200), Woke::Probe),
            (at(41_700), Woke::Probe),
            (at(42_200), Woke::Probe),
            (at(42_700), Woke::Probe),
            (at(43_200), Woke::Probe),
            (at(43_700), Woke::Probe),
        ];
        // Cleared at 43.7 s (the answer at 41.701 s counts for the round to 42.2 s): the next
        // steady round is due at 46.7 s and goes at the last advert before it, then every three
        // adverts.
        expected.extend((0..5).map(|n| (at(46_000 + n * 3000), Woke::Advert)));
        assert_eq!(
            after_claim.into_iter().copied().collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            *reports.lock().unwrap(),
            [("m0".to_owned(), true), ("m0".to_owned(), false)],
            "detected at the second round's answer, cleared after three silent rounds"
        );
    }
}
