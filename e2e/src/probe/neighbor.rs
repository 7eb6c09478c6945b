//! The VIP prober: asks "who has VIP" (ARP, or Neighbor Solicitation for IPv6) every period from
//! the client namespace and records every answer with its time and MAC.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::frame;
use super::packet_socket::{self, PACKET_OUTGOING, PacketSocket};
use super::recording::Recording;
use crate::Mac;
use crate::error::LabError;
use crate::netns::Netns;

/// One answer to "who has VIP".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborReply {
    /// When the answer reached the client: its kernel receive stamp, on CLOCK_MONOTONIC.
    pub at: Instant,
    /// The MAC that claims the VIP.
    pub mac: Mac,
}

/// A running prober; stops its threads when dropped.
#[derive(Debug)]
pub struct NeighborProber {
    target: IpAddr,
    replies: Recording<NeighborReply>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NeighborProber {
    /// Starts probing `target` from interface `ifname` of `ns`, whose own addresses are
    /// `own_mac` / `own_ip` (same family as `target`).
    pub fn start(
        ns: &Netns,
        ifname: &str,
        own_mac: Mac,
        own_ip: IpAddr,
        target: IpAddr,
        period: Duration,
    ) -> Result<Self, LabError> {
        let request = frame::who_has(own_mac, own_ip, target).ok_or_else(|| {
            LabError::Invalid(format!(
                "prober address {own_ip} and target {target} differ in family"
            ))
        })?;
        let ifname_owned = ifname.to_owned();
        let socket = ns
            .run_in(move || {
                let index = packet_socket::ifindex(&ifname_owned)?;
                PacketSocket::open(Some(index), Duration::from_millis(20))
            })?
            .map_err(LabError::io(format!(
                "packet socket on {ifname} in {}",
                ns.name()
            )))?;
        let socket = Arc::new(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Recording::default();

        let sender = {
            let (socket, stop) = (Arc::clone(&socket), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // A failed send (e.g. the link is down for a moment) is retried next period.
                    let _ = socket.send(&request);
                    next += period;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
        };
        let receiver = {
            let (stop, replies) = (Arc::clone(&stop), replies.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0_u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(got)) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let at = got.arrived;
                    if got.pkttype == PACKET_OUTGOING {
                        continue;
                    }
                    if let Some(mac) = frame::neighbor_reply_mac(&buf[..got.len], target) {
                        replies.push(NeighborReply { at, mac });
                    }
                }
            })
        };
        Ok(Self {
            target,
            replies,
            stop,
            threads: vec![sender, receiver],
        })
    }

    /// The address being probed.
    pub fn target(&self) -> IpAddr {
        self.target
    }

    /// Every answer so far, oldest first.
    pub fn replies(&self) -> Vec<NeighborReply> {
        self.replies.snapshot()
    }

    /// Waits until some answer at or after `since` came from a MAC for which `wanted` holds;
    /// returns that answer.
    pub fn wait_for_reply(
        &self,
        since: Instant,
        timeout: Duration,
        wanted: impl Fn(Mac) -> bool,
    ) -> Option<NeighborReply> {
        let mut found = None;
        self.replies.wait_until(timeout, |replies| {
            found = replies
                .iter()
                .find(|r| r.at >= since && wanted(r.mac))
                .copied();
            found.is_some()
        });
        found
    }
}

impl Drop for NeighborProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
