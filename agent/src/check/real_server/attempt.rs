//! One TCP or plain-HTTP attempt as steps over a non-blocking connection it does not own:
//! connected? → send the request → read and parse the answer. Each call to
//! [`Attempt::advance`] goes as far as the connection allows without waiting and says how the
//! attempt ended once that is known; the [`poller`](super::poller) calls it when the socket is
//! ready and owns the socket, the deadline and the clock. The answer is parsed by the same
//! [`Answer`] as the async (HTTPS) path's, so both give the same [`Outcome`]s.

use std::io::{self, Read, Write};
use std::time::Duration;

use kube_vrrp_crds::CheckResult;
use tokio::io::Interest;

use super::http::{Answer, HttpProbe, READ_SIZE, Taken, reading_failed, sending_failed};
use super::outcome::Outcome;
use super::probe::HealthProbe;
use super::tcp::TcpProbe;

/// A non-blocking connection being opened.
pub trait Connection: Read + Write {
    /// Whether it is open: `Ok(false)` while connecting, the kernel's error if it failed.
    fn connected(&self) -> io::Result<bool>;
}

/// The probes whose attempts run as steps: a TCP connect, or an HTTP GET without TLS.
#[derive(Debug, Clone, Copy)]
pub enum Plain<'a> {
    Tcp(&'a TcpProbe),
    Http(&'a HttpProbe),
}

impl<'a> Plain<'a> {
    /// `probe` as steps, if it runs as such (HTTPS and scripts do not).
    pub fn of(probe: &'a HealthProbe) -> Option<Self> {
        match probe {
            HealthProbe::Tcp(tcp) => Some(Self::Tcp(tcp)),
            HealthProbe::Http(http) if http.tls.is_none() => Some(Self::Http(http)),
            HealthProbe::Http(_) | HealthProbe::Command(_) => None,
        }
    }

    /// What it connects to.
    pub fn connect(self) -> &'a super::tcp::Connect {
        match self {
            Self::Tcp(tcp) => &tcp.connect,
            Self::Http(http) => &http.connect,
        }
    }

    /// The outcome of an attempt that did not end within `timeout`.
    pub fn timed_out(self, timeout: Duration) -> Outcome {
        match self {
            Self::Tcp(_) => Outcome::timed_out(timeout, "connection"),
            Self::Http(_) => Outcome::timed_out(timeout, "complete answer"),
        }
    }
}

/// Where an attempt stands.
#[derive(Default)]
#[allow(clippy::large_enum_variant)] // held in its check's slot: boxing would allocate per attempt
pub enum Attempt {
    /// The connection is being opened.
    #[default]
    Connecting,
    /// This much of the request is sent.
    Sending(usize),
    /// The answer is being read; the first this many bytes of the buffer are read and not
    /// used up yet.
    Reading(Answer, usize),
}

impl Attempt {
    /// Goes as far as `io` allows now, reading into `buffer`: the outcome once the attempt
    /// has ended, `None` while it waits for the connection.
    pub fn advance<C: Connection>(
        &mut self,
        probe: Plain<'_>,
        io: &mut C,
        buffer: &mut Vec<u8>,
    ) -> Option<Outcome> {
        loop {
            match self {
                Self::Connecting => match io.connected() {
                    Err(error) => return Some(Outcome::connect_error(&error)),
                    Ok(false) => return None,
                    Ok(true) => match probe {
                        Plain::Tcp(tcp) => return Some(tcp.passed()),
                        Plain::Http(_) => {
                            *self = Self::Sending(0);
                        }
                    },
                },
                Self::Sending(sent) => {
                    let Plain::Http(http) = probe else {
                        return None;
                    };
                    let request = http.request();
                    while *sent < request.len() {
                        match io.write(&request[*sent..]) {
                            Ok(0) => {
                                return Some(sending_failed(&io::ErrorKind::WriteZero.into()));
                            }
                            Ok(n) => *sent += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Some(sending_failed(&e)),
                        }
                    }
                    // Nothing to read before the request arrives: wait for the answer (its
                    // arrival is a new event; the caller reads at once if the event that got
                    // the request out already said readable).
                    *self = Self::Reading(Answer::default(), 0);
                    return None;
                }
                Self::Reading(answer, filled) => {
                    let Plain::Http(http) = probe else {
                        return None;
                    };
                    return read_answer(answer, filled, http, io, buffer);
                }
            }
        }
    }
}

/// One attempt of `probe` alone, at most `timeout` long, its steps driven by a tokio stream
/// (which registers its socket with tokio's reactor): what [`HealthProbe::attempt`] runs
/// outside the loop, and the runner when the loop cannot start.
pub async fn run_alone(probe: Plain<'_>, timeout: Duration, buffer: &mut Vec<u8>) -> Outcome {
    let steps = async {
        let socket = match probe.connect().start() {
            Ok(socket) => socket,
            Err(outcome) => return outcome,
        };
        let socket = match tokio::net::TcpStream::from_std(socket) {
            Ok(socket) => socket,
            Err(error) => return polling_failed(&error),
        };
        let mut attempt = Attempt::default();
        loop {
            let interest = match attempt {
                Attempt::Connecting | Attempt::Sending(_) => Interest::WRITABLE,
                Attempt::Reading(..) => Interest::READABLE,
            };
            if let Err(error) = socket.ready(interest).await {
                return polling_failed(&error);
            }
            if let Some(outcome) = attempt.advance(probe, &mut Alone(&socket), buffer) {
                return outcome;
            }
            // Waiting again: what was ready is used up (a read or write said so, or the
            // connection is not open yet).
            let _ = socket.try_io(interest, || Err::<(), _>(io::ErrorKind::WouldBlock.into()));
        }
    };
    tokio::time::timeout(timeout, steps)
        .await
        .unwrap_or_else(|_| probe.timed_out(timeout))
}

/// The socket cannot be watched.
pub fn polling_failed(error: &io::Error) -> Outcome {
    Outcome::failed(CheckResult::ConnectionFailed, format!("poll: {error}"))
}

/// A tokio stream as a [`Connection`].
struct Alone<'a>(&'a tokio::net::TcpStream);

impl Read for Alone<'_> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(into)
    }
}

impl Write for Alone<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for Alone<'_> {
    fn connected(&self) -> io::Result<bool> {
        if let Some(error) = self.0.take_error()? {
            return Err(error);
        }
        is_open(self.0.peer_addr())
    }
}

/// Whether a socket whose error is taken is open, from its peer's address.
pub fn is_open(peer: io::Result<std::net::SocketAddr>) -> io::Result<bool> {
    match peer {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(error) => Err(error),
    }
}

/// Reads until the answer is decided, or nothing more is there yet (`None`). `buffer` is
/// kept initialised to its length from one attempt to the next (its bytes are whatever came
/// last): zeroing [`READ_SIZE`] bytes for every read cost more than the rest of the attempt.
/// The first `*filled` bytes are what was read and not used up yet.
fn read_answer<C: Connection>(
    answer: &mut Answer,
    filled: &mut usize,
    probe: &HttpProbe,
    io: &mut C,
    buffer: &mut Vec<u8>,
) -> Option<Outcome> {
    loop {
        if buffer.len() - *filled < READ_SIZE / 2 {
            buffer.resize(*filled + READ_SIZE, 0);
        }
        match io.read(&mut buffer[*filled..]) {
            Ok(0) => return Some(answer.end(probe)),
            Ok(n) => {
                *filled += n;
                match answer.take(probe, &buffer[..*filled]) {
                    Taken::Ended(outcome) => return Some(outcome),
                    Taken::Used(used) => {
                        buffer.copy_within(used..*filled, 0);
                        *filled -= used;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Some(reading_failed(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::real_server::tcp::Connect;
    use std::collections::VecDeque;

    /// A connection that gives what it is told, a piece per read, and `WouldBlock` between.
    #[derive(Default)]
    struct Scripted {
        connected: Option<io::Result<bool>>,
        reads: VecDeque<io::Result<Vec<u8>>>,
        written: Vec<u8>,
        /// Bytes a write takes at most before `WouldBlock`.
        room: usize,
    }

    impl Read for Scripted {
        fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
            match self.reads.pop_front() {
                Some(Ok(bytes)) => {
                    into[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                Some(Err(e)) => Err(e),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Scripted {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let n = bytes.len().min(self.room);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.room -= n;
            self.written.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for Scripted {
        fn connected(&self) -> io::Result<bool> {
            match &self.connected {
                Some(Ok(open)) => Ok(*open),
                Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
                None => Ok(false),
            }
        }
    }

    fn connect() -> Connect {
        Connect {
            target: "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!()),
            source: None,
        }
    }

    fn http(expected: Vec<u16>) -> HttpProbe {
        HttpProbe::new(connect(), None, "/", "web", expected, None, 1024)
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// Runs `probe`'s attempt over `io` until it ends (the request sent, then the answer read).
    fn run(probe: &HttpProbe, io: &mut Scripted) -> Option<Outcome> {
        let mut attempt = Attempt::default();
        let mut buffer = Vec::new();
        attempt
            .advance(Plain::Http(probe), io, &mut buffer)
            .or_else(|| attempt.advance(Plain::Http(probe), io, &mut buffer))
    }

    fn open(reads: &[&[u8]]) -> Scripted {
        Scripted {
            connected: Some(Ok(true)),
            reads: reads.iter().map(|r| Ok(r.to_vec())).collect(),
            room: usize::MAX,
            ..Scripted::default()
        }
    }

    #[test]
    fn a_tcp_attempt_waits_for_the_connection_and_passes_once_it_is_open() {
        let tcp = TcpProbe { connect: connect() };
        let mut io = Scripted::default();
        let mut attempt = Attempt::default();
        let mut buffer = Vec::new();
        assert_eq!(
            attempt.advance(Plain::Tcp(&tcp), &mut io, &mut buffer),
            None
        );
        io.connected = Some(Ok(true));
        let outcome = attempt.advance(Plain::Tcp(&tcp), &mut io, &mut buffer);
        assert_eq!(outcome.map(|o| o.result), Some(CheckResult::Passed));
    }

    #[test]
    fn a_refused_connection_is_refused() {
        let tcp = TcpProbe { connect: connect() };
        let mut io = Scripted {
            connected: Some(Err(io::ErrorKind::ConnectionRefused.into())),
            ..Scripted::default()
        };
        let outcome = Attempt::default().advance(Plain::Tcp(&tcp), &mut io, &mut Vec::new());
        assert_eq!(
            outcome,
            Some(Outcome::failed(CheckResult::Refused, "connection refused"))
        );
    }

    #[test]
    fn a_request_sent_in_pieces_is_sent_whole_and_an_answer_read_in_pieces_passes() {
        let probe = http(vec![200]);
        let mut io = open(&[b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 2\r\n\r\no", b"k"]);
        io.room = 10;
        let mut attempt = Attempt::default();
        let mut buffer = Vec::new();
        assert_eq!(
            attempt.advance(Plain::Http(&probe), &mut io, &mut buffer),
            None
        );
        assert_eq!(io.written.len(), 10);
        io.room = usize::MAX;
        assert_eq!(
            attempt.advance(Plain::Http(&probe), &mut io, &mut buffer),
            None
        );
        assert_eq!(io.written, probe.request());
        assert!(
            matches!(attempt, Attempt::Reading(..)),
            "waits for the answer"
        );
        let outcome = attempt.advance(Plain::Http(&probe), &mut io, &mut buffer);
        assert_eq!(outcome, Some(Outcome::passed("status 200 (2 bytes)")));
    }

    #[test]
    fn a_status_not_expected_fails_before_the_body_is_read() {
        let probe = http(vec![200]);
        let mut io = open(&[b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\n"]);
        let outcome = run(&probe, &mut io);
        assert_eq!(
            outcome,
            Some(Outcome::failed(
                CheckResult::UnexpectedStatus,
                "status 503 (expected 200)"
            ))
        );
    }

    #[test]
    fn an_answer_cut_short_fails_and_one_closed_at_its_end_passes() {
        let probe = http(vec![200]);
        let mut cut = open(&[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", b""]);
        let outcome = run(&probe, &mut cut);
        assert_eq!(
            outcome.map(|o| o.result),
            Some(CheckResult::ConnectionFailed)
        );
        let mut closed = open(&[b"HTTP/1.1 200 OK\r\n\r\nall of it", b""]);
        let outcome = run(&probe, &mut closed);
        assert_eq!(outcome, Some(Outcome::passed("status 200 (9 bytes)")));
    }

    #[test]
    fn an_interim_answer_is_skipped_and_garbage_is_invalid() {
        let probe = http(vec![200]);
        let mut io =
            open(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]);
        let outcome = run(&probe, &mut io);
        assert_eq!(outcome, Some(Outcome::passed("status 200 (0 bytes)")));
        let mut garbage = open(&[b"NOT HTTP AT ALL\r\n\r\n"]);
        let outcome = run(&probe, &mut garbage);
        assert_eq!(
            outcome.map(|o| o.result),
            Some(CheckResult::InvalidResponse)
        );
    }
}
