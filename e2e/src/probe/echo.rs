//! The ping prober: ICMP echo requests to an IPv4 address every period from a lab namespace,
//! through the namespace's own neighbour cache (as any client's traffic goes), recording when
//! each request left and when its reply came back. What was lost, and when, is read from the
//! recording by [`Pings::lost`].

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sockopt,
};

use super::recording::Recording;
use crate::error::LabError;
use crate::netns::Netns;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
/// Bytes of payload after the 8-byte ICMP header (like ping's default 56).
const PAYLOAD: usize = 56;

/// One echo request and, if it came, its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    pub seq: u16,
    pub sent: Instant,
    pub answered: Option<Instant>,
}

/// What a ping run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pings {
    pub pings: Vec<Ping>,
}

impl Pings {
    /// The requests sent between `from` and `to` that got no reply, oldest first. Stop the
    /// window well before the recording ends: a reply may still be on its way.
    pub fn lost(&self, from: Instant, to: Instant) -> Vec<Ping> {
        self.pings
            .iter()
            .filter(|p| p.sent >= from && p.sent <= to && p.answered.is_none())
            .copied()
            .collect()
    }

    /// The requests sent between `from` and `to`.
    pub fn sent(&self, from: Instant, to: Instant) -> usize {
        self.pings
            .iter()
            .filter(|p| p.sent >= from && p.sent <= to)
            .count()
    }

    /// The longest run of consecutive unanswered requests, as the time from the first lost
    /// request to the first answered one after it (zero when nothing was lost).
    pub fn longest_outage(&self, from: Instant, to: Instant) -> Duration {
        let window: Vec<&Ping> = self
            .pings
            .iter()
            .filter(|p| p.sent >= from && p.sent <= to)
            .collect();
        let mut longest = Duration::ZERO;
        let mut start: Option<Instant> = None;
        for ping in window {
            match (ping.answered, start) {
                (None, None) => start = Some(ping.sent),
                (Some(_), Some(began)) => {
                    longest = longest.max(ping.sent.saturating_duration_since(began));
                    start = None;
                }
                _ => {}
            }
        }
        longest
    }
}

/// A running prober; stops its threads when dropped.
#[derive(Debug)]
pub struct EchoProber {
    target: Ipv4Addr,
    sent: Recording<(u16, Instant)>,
    replies: Recording<(u16, Instant)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// The RFC 1071 checksum of `data`.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request with `id` and `seq`.
pub fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut message = vec![0_u8; 8 + PAYLOAD];
    message[0] = ICMP_ECHO_REQUEST;
    message[4..6].copy_from_slice(&id.to_be_bytes());
    message[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, byte) in message[8..].iter_mut().enumerate() {
        *byte = i as u8;
    }
    let checksum = internet_checksum(&message);
    message[2..4].copy_from_slice(&checksum.to_be_bytes());
    message
}

/// The sequence number of an echo reply with `id` from `from` in an IPv4 datagram (a raw
/// ICMP socket hands over the IP header too).
pub fn echo_reply_seq(datagram: &[u8], id: u16, from: Ipv4Addr) -> Option<u16> {
    let header = usize::from(datagram.first()? & 0x0f) * 4;
    if datagram.len() < header + 8 || datagram.get(12..16)? != from.octets() {
        return None;
    }
    let icmp = &datagram[header..];
    (icmp[0] == ICMP_ECHO_REPLY && u16::from_be_bytes([icmp[4], icmp[5]]) == id)
        .then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

impl EchoProber {
    /// Pings `target` from `ns` every `period`. The identifier is this process's pid, as
    /// ping's is, so that two probers in one namespace do not read each other's replies.
    pub fn start(ns: &Netns, target: IpAddr, period: Duration) -> Result<Self, LabError> {
        let IpAddr::V4(target) = target else {
            return Err(LabError::Invalid(format!(
                "the echo prober pings IPv4 only, not {target}"
            )));
        };
        let fd: OwnedFd = ns
            .run_in(|| {
                socket::socket(
                    AddressFamily::Inet,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    SockProtocol::Icmp,
                )
            })?
            .map_err(|e| LabError::io(format!("raw ICMP socket in {}", ns.name()))(e.into()))?;
        let timeout = nix::sys::time::TimeVal::new(0, 20_000);
        socket::setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| LabError::io("ICMP socket timeout")(e.into()))?;
        socket::setsockopt(&fd, sockopt::RcvBuf, &(1 << 20))
            .map_err(|e| LabError::io("ICMP socket buffer")(e.into()))?;
        let fd = Arc::new(fd);
        let id = (std::process::id() & 0xffff) as u16;
        let stop = Arc::new(AtomicBool::new(false));
        let (sent, replies) = (Recording::default(), Recording::default());
        let sender = {
            let (fd, stop, sent) = (Arc::clone(&fd), Arc::clone(&stop), sent.clone());
            let to = SockaddrIn::from(SocketAddrV4::new(target, 0));
            std::thread::spawn(move || {
                let mut next = Instant::now();
                let mut seq: u16 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let request = echo_request(id, seq);
                    let at = Instant::now();
                    // A refused send (no route for a moment) is a lost ping like any other.
                    let _ = socket::sendto(fd.as_raw_fd(), &request, &to, MsgFlags::empty());
                    sent.push((seq, at));
                    seq = seq.wrapping_add(1);
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
            let (fd, stop, replies) = (Arc::clone(&fd), Arc::clone(&stop), replies.clone());
            std::thread::spawn(move || {
                let mut buf = [0_u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) else {
                        continue;
                    };
                    let at = Instant::now();
                    if let Some(seq) = echo_reply_seq(&buf[..len], id, target) {
                        replies.push((seq, at));
                    }
                }
            })
        };
        Ok(Self {
            target,
            sent,
            replies,
            stop,
            threads: vec![sender, receiver],
        })
    }

    pub fn target(&self) -> Ipv4Addr {
        self.target
    }

    /// Every request so far with its reply, if any. Sequence numbers wrap after 65,536
    /// requests (11 minutes at 10 ms); a reply is matched to the latest request with its
    /// number sent before it.
    pub fn pings(&self) -> Pings {
        let sent = self.sent.snapshot();
        let mut pings: Vec<Ping> = sent
            .iter()
            .map(|&(seq, sent)| Ping {
                seq,
                sent,
                answered: None,
            })
            .collect();
        for (seq, at) in self.replies.snapshot() {
            if let Some(ping) = pings
                .iter_mut()
                .rev()
                .find(|p| p.seq == seq && p.sent <= at && p.answered.is_none())
            {
                ping.answered = Some(at);
            }
        }
        Pings { pings }
    }
}

impl Drop for EchoProber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_carries_id_seq_and_a_valid_checksum() {
        let request = echo_request(0x1234, 7);
        assert_eq!(request[0], ICMP_ECHO_REQUEST);
        assert_eq!(&request[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(internet_checksum(&request), 0);
        assert_eq!(request.len(), 64);
    }

    #[test]
    fn only_our_replies_from_the_target_are_read() {
        let from = Ipv4Addr::new(192, 168, 77, 50);
        let mut datagram = vec![0x45, 0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0];
        datagram.extend_from_slice(&from.octets());
        datagram.extend_from_slice(&[192, 168, 77, 100]);
        let mut reply = echo_request(0x1234, 9);
        reply[0] = ICMP_ECHO_REPLY;
        datagram.extend_from_slice(&reply);
        assert_eq!(echo_reply_seq(&datagram, 0x1234, from), Some(9));
        assert_eq!(echo_reply_seq(&datagram, 0x4321, from), None);
        assert_eq!(
            echo_reply_seq(&datagram, 0x1234, Ipv4Addr::new(10, 0, 0, 1)),
            None
        );
        datagram[20] = ICMP_ECHO_REQUEST;
        assert_eq!(echo_reply_seq(&datagram, 0x1234, from), None);
        assert_eq!(echo_reply_seq(&datagram[..24], 0x1234, from), None);
    }

    #[test]
    fn lost_pings_and_the_longest_outage_are_read_from_the_recording() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let ping = |seq: u16, sent: u64, answered: Option<u64>| Ping {
            seq,
            sent: ms(sent),
            answered: answered.map(ms),
        };
        let pings = Pings {
            pings: vec![
                ping(0, 0, Some(1)),
                ping(1, 10, None),
                ping(2, 20, None),
                ping(3, 30, Some(31)),
                ping(4, 40, None),
                ping(5, 50, Some(51)),
            ],
        };
        assert_eq!(pings.lost(ms(0), ms(50)).len(), 3);
        assert_eq!(pings.lost(ms(25), ms(50)).len(), 1);
        assert_eq!(pings.sent(ms(0), ms(50)), 6);
        assert_eq!(
            pings.longest_outage(ms(0), ms(50)),
            Duration::from_millis(20)
        );
        assert_eq!(
            Pings::default().longest_outage(ms(0), ms(50)),
            Duration::ZERO
        );
    }
}
