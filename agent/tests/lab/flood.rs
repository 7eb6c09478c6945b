//! A VRRP flood generator: forged IPv4 protocol-112 packets of several kinds sent round-robin
//! from a namespace at a fixed rate, each kind counted as it leaves, so a receiver's drop
//! counters can be checked packet for packet.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::in_netns;

/// One kind of forged packet: its name (the drop reason it should be counted under, or
/// `garbage`), the TTL it is sent with, and the VRRP payloads to cycle through.
#[derive(Debug, Clone)]
pub struct Forged {
    pub kind: &'static str,
    pub ttl: u8,
    pub payloads: Vec<Vec<u8>>,
}

/// A running flood; [`Flood::stop`] ends it and says how many packets of each kind left.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<BTreeMap<&'static str, u64>>,
    started: Instant,
}

impl Flood {
    /// Starts sending `forged` round-robin from namespace `ns_name` out of `interface` to
    /// `destination` at `rate` packets per second (all kinds together), until stopped or, with
    /// `limit`, until that many have been sent.
    pub fn start(
        ns_name: &str,
        interface: &str,
        destination: Ipv4Addr,
        rate: u64,
        limit: Option<u64>,
        forged: Vec<Forged>,
    ) -> Self {
        let interface = interface.to_owned();
        let ttls: Vec<u8> = forged.iter().map(|f| f.ttl).collect();
        // Sockets belong to the namespace they are created in, whatever thread uses them.
        let sockets: Vec<Socket> = in_netns(ns_name, move || {
            ttls.iter()
                .map(|ttl| {
                    let socket =
                        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
                    socket.bind_device(Some(interface.as_bytes())).unwrap();
                    socket.set_multicast_ttl_v4(u32::from(*ttl)).unwrap();
                    socket.set_ttl_v4(u32::from(*ttl)).unwrap();
                    socket.set_multicast_loop_v4(false).unwrap();
                    socket
                })
                .collect()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let to = SocketAddrV4::new(destination, 0).into();
            let mut sent: BTreeMap<&'static str, u64> =
                forged.iter().map(|f| (f.kind, 0)).collect();
            let start = Instant::now();
            let mut total: u64 = 0;
            let mut turn: usize = 0;
            while !stopped.load(Ordering::Relaxed) && limit.is_none_or(|limit| total < limit) {
                let due = u64::try_from(start.elapsed().as_micros() * u128::from(rate) / 1_000_000)
                    .unwrap_or(u64::MAX)
                    .min(limit.unwrap_or(u64::MAX));
                while total < due {
                    let kind = &forged[turn % forged.len()];
                    let payload = &kind.payloads[(turn / forged.len()) % kind.payloads.len()];
                    if sockets[turn % forged.len()].send_to(payload, &to).is_ok() {
                        *sent.entry(kind.kind).or_default() += 1;
                    }
                    total += 1;
                    turn = turn.wrapping_add(1);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            sent
        });
        Self {
            stop,
            thread,
            started: Instant::now(),
        }
    }

    /// Whether a flood with a limit has sent it all.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Stops the flood; returns the packets sent, by kind, and how long it ran.
    pub fn stop(self) -> (BTreeMap<&'static str, u64>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.thread.join().unwrap();
        (sent, self.started.elapsed())
    }
}

/// `count` payloads of pseudo-random bytes and lengths (1 to 60), the same every run.
pub fn garbage(count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = usize::try_from(next() % 60).unwrap_or(0) + 1;
            (0..len).map(|_| next().to_le_bytes()[0]).collect()
        })
        .collect()
}
