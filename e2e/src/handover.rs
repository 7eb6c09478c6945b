//! A planned handover as a client sees it: the client pings the VIP every 10 ms and keeps a TCP
//! stream open to a server routed through the VIP ([`Lab::add_server`]), while the MASTER is
//! stopped with SIGTERM (or preempted by a returning higher priority). What it cost: pings
//! lost and the longest outage, the stream's longest stall, its retransmissions and any reset,
//! and how long two MACs answered for the VIP at once. Tests assert on it; `lab-handover`
//! repeats it for keepalived and the agent side by side.
//!
//! A planned exit is over when the daemon's process has exited: from then on the node may go
//! (a drained node is shut down, a pod's network namespace is torn down). So the old MASTER's
//! switch port is cut the moment its daemon exits, for either daemon. Without the cut the old
//! node, still forwarding, would relay traffic it no longer answers for to the new owner, and
//! hide what the daemon did.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::Mac;
use crate::daemon::DaemonKind;
use crate::error::LabError;
use crate::lab::{Lab, SERVICE_IP};
use crate::probe::stream::{longest_stall, tcp_retransmissions};
use crate::probe::{EchoProber, NeighborReply, TcpStreamProbe};
use crate::scenario::Running;

/// How often the client pings the VIP.
pub const PING_PERIOD: Duration = Duration::from_millis(10);
/// How often the client writes to the stream.
pub const STREAM_PERIOD: Duration = Duration::from_millis(2);
/// The server's port.
pub const SERVICE_PORT: u16 = 7_777;

/// How the MASTER gives the VIP away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// SIGTERM of the MASTER (pod deletion, rolling update, drain).
    Terminate,
    /// The old MASTER's daemon starts again with the higher priority and takes the VIP back.
    Preempt,
}

impl Move {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminate => "sigterm",
            Self::Preempt => "preempt back",
        }
    }
}

/// What one move of the VIP cost the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub daemon: DaemonKind,
    pub kind: Move,
    pub from: usize,
    pub to: usize,
    /// Pings sent in the window, and the ones never answered.
    pub pings_sent: usize,
    pub pings_lost: usize,
    /// From the first unanswered ping to the next answered one (zero when none was lost).
    pub longest_outage: Duration,
    /// The longest time the server read nothing from the stream.
    pub stream_stall: Duration,
    /// TCP segments the client retransmitted in the window.
    pub retransmissions: u64,
    /// Errors of the stream (a reset): none is the goal.
    pub stream_errors: Vec<String>,
    /// The longest time two MACs both answered "who has VIP" (the old one's last answer after
    /// the new one's first).
    pub two_macs: Duration,
    /// SIGTERM: how long the daemon took to exit.
    pub exit_took: Option<Duration>,
}

/// The longest time two MACs answered for the VIP at once among `replies` inside
/// `[from, to]`: for every pair of MACs, the overlap of the spans from each one's first answer
/// to its last.
pub fn two_macs_answering(replies: &[NeighborReply], from: Instant, to: Instant) -> Duration {
    let mut spans: Vec<(Mac, Instant, Instant)> = Vec::new();
    for reply in replies.iter().filter(|r| r.at >= from && r.at <= to) {
        match spans.iter_mut().find(|(mac, _, _)| *mac == reply.mac) {
            Some(span) => {
                span.1 = span.1.min(reply.at);
                span.2 = span.2.max(reply.at);
            }
            None => spans.push((reply.mac, reply.at, reply.at)),
        }
    }
    let mut longest = Duration::ZERO;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let start = a.1.max(b.1);
            let end = a.2.min(b.2);
            longest = longest.max(end.saturating_duration_since(start));
        }
    }
    longest
}

/// The client's traffic: pings to the VIP and a TCP stream through it.
#[derive(Debug)]
pub struct Traffic {
    pings: EchoProber,
    stream: TcpStreamProbe,
}

impl Traffic {
    /// Adds the server behind the VIP and starts the traffic. The VIP must be answered (wait
    /// for the MASTER first): the stream connects through it.
    pub fn start(running: &mut Running) -> Result<Self, LabError> {
        let IpAddr::V4(vip) = running.vip() else {
            return Err(LabError::Invalid(
                "the handover traffic runs over an IPv4 VIP".into(),
            ));
        };
        let lab: &mut Lab = &mut running.lab;
        lab.add_server(vip)?;
        let server = lab
            .server()
            .ok_or_else(|| LabError::Invalid("no server".into()))?;
        let stream = TcpStreamProbe::start(
            lab.client(),
            server,
            SocketAddr::new(IpAddr::V4(SERVICE_IP), SERVICE_PORT),
            STREAM_PERIOD,
        )?;
        let pings = EchoProber::start(lab.client(), IpAddr::V4(vip), PING_PERIOD)?;
        Ok(Self { pings, stream })
    }
}

/// Moves the VIP away from `master` by `kind` and measures it. For [`Move::Terminate`],
/// `master` is the MASTER to stop (its port is cut once its daemon has exited); for
/// [`Move::Preempt`], it is the node whose daemon (stopped before) starts again, its port back
/// up, and takes the VIP back from the current MASTER. `settle` is how long
/// after the new owner's first answer the window stays open.
pub fn measure(
    running: &mut Running,
    traffic: &Traffic,
    kind: Move,
    master: usize,
    daemon: DaemonKind,
    settle: Duration,
) -> Result<Handover, LabError> {
    let lab_client = running.lab.client();
    let retransmitted_before = tcp_retransmissions(lab_client)?;
    let from = Instant::now();
    let mut exit_took = None;
    let (old, expected_new) = match kind {
        Move::Terminate => {
            running.daemon(master)?.terminate()?;
            exit_took = Some(from.elapsed());
            running.lab.cut(master)?;
            (master, None)
        }
        Move::Preempt => {
            let current = running.wait_for_master(Duration::from_secs(10))?;
            running.lab.heal(master)?;
            running.restart(master, daemon)?;
            (current, Some(master))
        }
    };
    let old_mac = running.lab.node_mac(old)?;
    let timeout = running.instance.master_down_interval(1) * 3 + Duration::from_secs(10);
    let reply = running
        .prober
        .wait_for_reply(from, timeout, |mac| mac != old_mac)
        .ok_or_else(|| LabError::Timeout {
            what: format!(
                "another node answering for {} ({})",
                running.vip(),
                kind.as_str()
            ),
            timeout,
        })?;
    let to = running
        .lab
        .node_with_mac(reply.mac)
        .ok_or_else(|| LabError::Invalid(format!("VIP answered by unknown MAC {}", reply.mac)))?;
    if let Some(expected) = expected_new
        && expected != to
    {
        return Err(LabError::Invalid(format!(
            "n{expected} should have taken the VIP back, n{to} did"
        )));
    }
    std::thread::sleep(settle);
    let until = Instant::now();
    // Replies to the last pings of the window may still be on their way.
    std::thread::sleep(Duration::from_millis(300));
    let pings = traffic.pings.pings();
    let retransmitted = tcp_retransmissions(running.lab.client())?;
    Ok(Handover {
        daemon,
        kind,
        from: old,
        to,
        pings_sent: pings.sent(from, until),
        pings_lost: pings.lost(from, until).len(),
        longest_outage: pings.longest_outage(from, until),
        stream_stall: longest_stall(&traffic.stream.arrivals(), from, until),
        retransmissions: retransmitted.saturating_sub(retransmitted_before),
        stream_errors: traffic.stream.errors(),
        two_macs: two_macs_answering(&running.prober.replies(), from, until),
        exit_took,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0x77, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0x77, 0, 0, 0, 2]);

    #[test]
    fn two_macs_answer_at_once_from_the_new_ones_first_answer_to_the_old_ones_last() {
        let t0 = Instant::now();
        let at = |ms: u64, mac: Mac| NeighborReply {
            at: t0 + Duration::from_millis(ms),
            mac,
        };
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let replies = [at(0, A), at(5, A), at(7, B), at(9, A), at(12, B)];
        assert_eq!(
            two_macs_answering(&replies, ms(0), ms(20)),
            Duration::from_millis(2)
        );
        // A clean handover: the old MAC's last answer before the new one's first.
        let replies = [at(0, A), at(5, A), at(6, B), at(12, B)];
        assert_eq!(two_macs_answering(&replies, ms(0), ms(20)), Duration::ZERO);
        // Outside the window nothing counts.
        let replies = [at(0, A), at(30, B), at(31, A)];
        assert_eq!(two_macs_answering(&replies, ms(0), ms(20)), Duration::ZERO);
    }
}
