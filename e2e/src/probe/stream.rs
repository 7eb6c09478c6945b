//! The TCP stream probe: a connection from one lab namespace to a server in another, carrying a
//! small write every period, with the arrival time of every read at the server and every error
//! on either side (a reset is an error). Routed through a VIP, it shows what a handover costs a
//! long-lived connection: a stall (the longest gap between arrivals) and retransmissions
//! ([`tcp_retransmissions`]), or a reset.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::recording::Recording;
use crate::error::LabError;
use crate::netns::Netns;

/// Bytes written each period.
pub const CHUNK: usize = 100;

/// One read at the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub at: Instant,
    pub bytes: usize,
}

/// A running stream; stops its threads when dropped.
#[derive(Debug)]
pub struct TcpStreamProbe {
    arrivals: Recording<Arrival>,
    errors: Recording<String>,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TcpStreamProbe {
    /// Listens on `server_addr` in `server`, connects from `client` and starts writing
    /// [`CHUNK`] bytes every `period`.
    pub fn start(
        client: &Netns,
        server: &Netns,
        server_addr: SocketAddr,
        period: Duration,
    ) -> Result<Self, LabError> {
        let listener = server
            .run_in(move || TcpListener::bind(server_addr))?
            .map_err(LabError::io(format!("listen on {server_addr}")))?;
        let stream = client
            .run_in(move || TcpStream::connect_timeout(&server_addr, Duration::from_secs(5)))?
            .map_err(LabError::io(format!("connect to {server_addr}")))?;
        let (accepted, _) = listener
            .accept()
            .map_err(LabError::io(format!("accept on {server_addr}")))?;
        for socket in [&stream, &accepted] {
            socket
                .set_nodelay(true)
                .map_err(LabError::io("TCP_NODELAY"))?;
        }
        accepted
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(LabError::io("read timeout"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (arrivals, errors) = (Recording::default(), Recording::default());
        let written = Arc::new(AtomicU64::new(0));
        let writer = {
            let (stop, errors, written) = (Arc::clone(&stop), errors.clone(), Arc::clone(&written));
            let mut stream = stream;
            std::thread::spawn(move || {
                let chunk = [0x5a_u8; CHUNK];
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(error) = stream.write_all(&chunk) {
                        errors.push(format!("client write: {error}"));
                        return;
                    }
                    written.fetch_add(CHUNK as u64, Ordering::Relaxed);
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
        let reader = {
            let (stop, arrivals, errors) = (Arc::clone(&stop), arrivals.clone(), errors.clone());
            let mut accepted = accepted;
            std::thread::spawn(move || {
                let mut buf = vec![0_u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    match accepted.read(&mut buf) {
                        Ok(0) => {
                            errors.push("server read: the connection was closed".to_owned());
                            return;
                        }
                        Ok(bytes) => arrivals.push(Arrival {
                            at: Instant::now(),
                            bytes,
                        }),
                        Err(error)
                            if matches!(
                                error.kind(),
                                ErrorKind::WouldBlock | ErrorKind::TimedOut
                            ) => {}
                        Err(error) => {
                            errors.push(format!("server read: {error}"));
                            return;
                        }
                    }
                }
            })
        };
        Ok(Self {
            arrivals,
            errors,
            written,
            stop,
            threads: vec![writer, reader],
        })
    }

    /// Every read at the server so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.snapshot()
    }

    /// Errors on either side (a reset, a closed connection), in order.
    pub fn errors(&self) -> Vec<String> {
        self.errors.snapshot()
    }

    /// Bytes the client has written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Bytes the server has read.
    pub fn received(&self) -> u64 {
        self.arrivals().iter().map(|a| a.bytes as u64).sum()
    }
}

/// The longest time between two reads at the server among `arrivals` inside `[from, to]`
/// (the edges of the window count as reads).
pub fn longest_stall(arrivals: &[Arrival], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for arrival in arrivals.iter().filter(|a| a.at >= from && a.at <= to) {
        longest = longest.max(arrival.at.saturating_duration_since(last));
        last = arrival.at;
    }
    longest.max(to.saturating_duration_since(last))
}

impl Drop for TcpStreamProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// TCP segments retransmitted in `ns` so far (`RetransSegs` of `/proc/net/snmp`, which is per
/// network namespace).
pub fn tcp_retransmissions(ns: &Netns) -> Result<u64, LabError> {
    let text = ns
        .run_in(|| std::fs::read_to_string("/proc/net/snmp"))?
        .map_err(LabError::io("read /proc/net/snmp"))?;
    snmp_value(&text, "Tcp", "RetransSegs")
        .ok_or_else(|| LabError::Status("no Tcp RetransSegs in /proc/net/snmp".into()))
}

/// One counter of `/proc/net/snmp`: a header line of names and a value line, both starting with
/// `group:`.
pub fn snmp_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|line| line.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(index)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_stall_counts_the_window_edges() {
        let t0 = Instant::now();
        let at = |ms: u64| Arrival {
            at: t0 + Duration::from_millis(ms),
            bytes: CHUNK,
        };
        let arrivals = [at(1), at(2), at(40), at(41)];
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(
            longest_stall(&arrivals, ms(0), ms(45)),
            Duration::from_millis(38)
        );
        assert_eq!(
            longest_stall(&arrivals, ms(0), ms(100)),
            Duration::from_millis(59)
        );
        assert_eq!(longest_stall(&[], ms(0), ms(5)), Duration::from_millis(5));
    }

    #[test]
    fn snmp_counters_are_read_by_group_and_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm RtoMin RetransSegs InErrs\nTcp: 1 200 17 0\n";
        assert_eq!(snmp_value(text, "Tcp", "RetransSegs"), Some(17));
        assert_eq!(snmp_value(text, "Ip", "DefaultTTL"), Some(64));
        assert_eq!(snmp_value(text, "Tcp", "OutRsts"), None);
        assert_eq!(snmp_value(text, "Udp", "InDatagrams"), None);
    }
}
