//! HTTP and HTTPS GET checks (keepalived's `HTTP_GET` and `SSL_GET`): one HTTP/1.1 request
//! per connection (`Connection: close`). Passes when the whole answer arrives within the
//! timeout, its status is expected, its body is no longer than the cap and, with a digest,
//! hashes to it (SHA-256, where keepalived uses MD5). The body is read to its end even without
//! a digest, as keepalived reads it: an answer that never completes fails.
//!
//! As keepalived's checker, this is no general HTTP client: the request is written once when
//! the check is built, and the answer is read by [`Answer`], sans I/O: its head parsed in
//! place ([`httparse`]), its body framed by [`crate::check::real_server::http_body`]. Plain
//! HTTP attempts run as [`attempt`](super::attempt) steps (on the loop); HTTPS ones here,
//! through rustls, with the same [`Answer`]. An attempt spawns no task and, reading into the
//! buffer its caller keeps, allocates nothing on its way to a pass.

use std::time::Duration;

use kube_vrrp_crds::CheckResult;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::http_body::{Body, Framing, framing};
use super::outcome::Outcome;
use super::tcp::Connect;
use super::tls::TlsClient;

/// The `User-Agent` of checks.
pub const AGENT: &str = concat!("kube-vrrp-agent/", env!("CARGO_PKG_VERSION"));

/// The longest response head read (status line and headers); a longer one is invalid.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bytes read at a time (the buffer an attempt starts with).
pub const READ_SIZE: usize = 4096;

/// Headers parsed at most in one response head.
const MAX_HEADERS: usize = 64;

/// An HTTP(S) GET check of one real server.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub connect: Connect,
    /// TLS for HTTPS.
    pub tls: Option<TlsClient>,
    /// The request, as sent.
    request: Box<[u8]>,
    pub expected_status: Vec<u16>,
    /// SHA-256 of the expected body.
    pub digest: Option<[u8; 32]>,
    pub max_body_bytes: u64,
}

/// The `Host` header for `host` (a name, or an IP address) and `port`: the port is appended
/// unless it is the scheme's default; an IPv6 address is bracketed.
pub fn host_header(host: &str, port: u16, https: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == if https { 443 } else { 80 } {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// Whether `text` can go on a request line or in a header value as it is: visible ASCII,
/// nothing that would end the line or split it.
fn is_token_text(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The request for `path` with the `Host` header `host`.
fn request(path: &str, host: &str) -> Result<Box<[u8]>, String> {
    if !is_token_text(path) {
        return Err(format!(
            "healthCheck.http.path {path:?} is not a request target (visible ASCII only)"
        ));
    }
    if !is_token_text(host) {
        return Err(format!(
            "healthCheck.http.host {host:?} cannot be a Host header (visible ASCII only)"
        ));
    }
    Ok(format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {AGENT}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
    .into_boxed_slice())
}

/// What the response head says, once parsed.
struct Head {
    /// Its length, up to and including the blank line.
    length: usize,
    status: u16,
    framing: Framing,
}

/// Parses the response head at the start of `bytes`; `Ok(None)` while it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    // Left uninitialised: httparse writes the headers it finds (filling 64 empty ones first
    // cost a few hundred instructions per check).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut headers,
    );
    let length = match parsed {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(format!("invalid HTTP response: {error}")),
    };
    let status = response.code.unwrap_or(0);
    let framing = framing(status, response.headers)?;
    Ok(Some(Head {
        length,
        status,
        framing,
    }))
}

/// Reads more of the answer into `buffer`'s free space (growing it by [`READ_SIZE`] when it
/// is full); the count read, 0 at its end. A TLS peer that closes without `close_notify`
/// ends the answer as a TCP close does: the framing says whether it was complete.
async fn read_more<S: AsyncRead + Unpin>(
    io: &mut S,
    buffer: &mut Vec<u8>,
) -> Result<usize, Outcome> {
    if buffer.capacity() == buffer.len() {
        buffer.reserve(READ_SIZE);
    }
    match io.read_buf(buffer).await {
        Ok(n) => Ok(n),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(error) => Err(reading_failed(&error)),
    }
}

/// `reading the answer: ...`: a failed read of the answer.
pub fn reading_failed(error: &std::io::Error) -> Outcome {
    Outcome::failed(
        CheckResult::ConnectionFailed,
        format!("reading the answer: {error}"),
    )
}

fn incomplete() -> Outcome {
    Outcome::failed(
        CheckResult::ConnectionFailed,
        "connection closed before the answer was complete",
    )
}

/// `sending the request: ...`: a failed write of the request.
pub fn sending_failed(error: &std::io::Error) -> Outcome {
    Outcome::failed(
        CheckResult::ConnectionFailed,
        format!("sending the request: {error}"),
    )
}

/// An answer as it is read, sans I/O: the bytes read go in with [`Answer::take`] and the end
/// of the connection with [`Answer::end`]; either says how the attempt ended once that is
/// known. Interim (1xx) heads are skipped; the head is parsed in place once complete, and its
/// status checked before any of the body is read; the body is framed and capped by
/// [`Body`], and its digest compared at its end.
#[derive(Default)]
#[allow(clippy::large_enum_variant)] // held in place for one attempt: boxing would allocate per attempt
pub enum Answer {
    /// The head is not complete yet.
    #[default]
    Head,
    /// The body of an answer with this status.
    Body { status: u16, body: Body },
}

/// What [`Answer::take`] made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The attempt ended so.
    Ended(Outcome),
    /// Not known yet: the first this many bytes are used up; the rest (the start of a head)
    /// comes again, with more after it.
    Used(usize),
}

impl Answer {
    /// Takes `bytes`, what was read and not used up yet.
    pub fn take(&mut self, probe: &HttpProbe, bytes: &[u8]) -> Taken {
        let mut start = 0;
        if let Self::Head = self {
            let head = loop {
                match parse_head(&bytes[start..]) {
                    Ok(Some(head)) if (100..200).contains(&head.status) && head.status != 101 => {
                        start += head.length;
                    }
                    Ok(Some(head)) => break head,
                    Ok(None) if bytes.len() - start >= MAX_HEAD_BYTES => {
                        return Taken::Ended(Outcome::failed(
                            CheckResult::InvalidResponse,
                            format!("response head longer than {MAX_HEAD_BYTES} bytes"),
                        ));
                    }
                    Ok(None) => return Taken::Used(start),
                    Err(why) => {
                        return Taken::Ended(Outcome::failed(CheckResult::InvalidResponse, why));
                    }
                }
            };
            if !probe.expected_status.contains(&head.status) {
                return Taken::Ended(Outcome::failed(
                    CheckResult::UnexpectedStatus,
                    format!("status {} (expected {})", head.status, probe.expected()),
                ));
            }
            *self = Self::Body {
                status: head.status,
                body: Body::new(head.framing, probe.max_body_bytes, probe.digest.is_some()),
            };
            // What came with the head is the body's start.
            start += head.length;
        }
        let Self::Body { body, .. } = self else {
            return Taken::Used(start);
        };
        match body.feed(&bytes[start..]) {
            Ok(true) => Taken::Ended(self.finish(probe)),
            Ok(false) => Taken::Used(bytes.len()),
            Err(outcome) => Taken::Ended(outcome),
        }
    }

    /// The connection ended (the peer closed it): how the attempt ended.
    pub fn end(&mut self, probe: &HttpProbe) -> Outcome {
        match self {
            Self::Head => incomplete(),
            Self::Body { body, .. } => match body.end() {
                Ok(()) => self.finish(probe),
                Err(outcome) => outcome,
            },
        }
    }

    /// The body is complete: passed unless its digest differs.
    fn finish(&mut self, probe: &HttpProbe) -> Outcome {
        let Self::Body { status, body } = std::mem::take(self) else {
            return incomplete();
        };
        let (length, digest) = body.finish();
        if let (Some(want), Some(got)) = (&probe.digest, digest)
            && got.as_ref() != want
        {
            return Outcome::failed(
                CheckResult::DigestMismatch,
                format!(
                    "body digest {} (expected {})",
                    hex::encode(got.as_ref()),
                    hex::encode(want)
                ),
            );
        }
        Outcome::passed(passed_detail(status, length))
    }
}

impl HttpProbe {
    /// The check of `connect` for `path` with the `Host` header `host`; an error when the path
    /// or host cannot be sent as they are.
    pub fn new(
        connect: Connect,
        tls: Option<TlsClient>,
        path: &str,
        host: &str,
        expected_status: Vec<u16>,
        digest: Option<[u8; 32]>,
        max_body_bytes: u64,
    ) -> Result<Self, String> {
        Ok(Self {
            connect,
            tls,
            request: request(path, host)?,
            expected_status,
            digest,
            max_body_bytes,
        })
    }

    /// One attempt over its own connection (what HTTPS checks run; plain HTTP ones run as
    /// [`attempt`](super::attempt) steps), at most `timeout` long from connecting to the
    /// body's end, reading into
    /// `buffer` (cleared first; kept by the caller so that its space is reused).
    pub async fn attempt(&self, timeout: Duration, buffer: &mut Vec<u8>) -> Outcome {
        buffer.clear();
        tokio::time::timeout(timeout, self.exchange_over_connection(buffer))
            .await
            .unwrap_or_else(|_| Outcome::timed_out(timeout, "complete answer"))
    }

    async fn exchange_over_connection(&self, buffer: &mut Vec<u8>) -> Outcome {
        let stream = match self.connect.open().await {
            Ok(stream) => stream,
            Err(outcome) => return outcome,
        };
        match &self.tls {
            None => self.exchange(stream, buffer).await,
            Some(tls) => match tls.connector.connect(tls.server_name.clone(), stream).await {
                Ok(stream) => self.exchange(stream, buffer).await,
                Err(error) => Outcome::failed(
                    CheckResult::TlsFailed,
                    format!("TLS handshake: {}", error_chain(&error)),
                ),
            },
        }
    }

    async fn exchange<S>(&self, mut io: S, buffer: &mut Vec<u8>) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if let Err(error) = async {
            io.write_all(&self.request).await?;
            io.flush().await
        }
        .await
        {
            return sending_failed(&error);
        }
        let mut answer = Answer::default();
        loop {
            match read_more(&mut io, buffer).await {
                Ok(0) => return answer.end(self),
                Ok(_) => match answer.take(self, buffer) {
                    Taken::Ended(outcome) => return outcome,
                    Taken::Used(used) => {
                        buffer.drain(..used);
                    }
                },
                Err(outcome) => return outcome,
            }
        }
    }

    /// The request, as sent.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    fn expected(&self) -> String {
        self.expected_status
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// "status 200 (13 bytes)": a passed attempt's detail, written without the formatting
/// machinery (every passed check makes one; `format!` was some 800 instructions of it).
fn passed_detail(status: u16, length: u64) -> String {
    let mut text = String::with_capacity(40);
    text.push_str("status ");
    push_decimal(&mut text, u64::from(status));
    text.push_str(" (");
    push_decimal(&mut text, length);
    text.push_str(" bytes)");
    text
}

/// Appends `n` in decimal.
fn push_decimal(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        text.push(char::from(digit));
    }
}

/// An error with its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_carries_a_port_only_when_it_is_not_the_schemes_default() {
        assert_eq!(host_header("web.example", 80, false), "web.example");
        assert_eq!(host_header("web.example", 443, true), "web.example");
        assert_eq!(host_header("web.example", 8080, false), "web.example:8080");
        assert_eq!(host_header("web.example", 80, true), "web.example:80");
        assert_eq!(host_header("2001:db8::1", 80, false), "[2001:db8::1]");
        assert_eq!(host_header("2001:db8::1", 8443, true), "[2001:db8::1]:8443");
    }

    #[test]
    fn the_request_is_one_get_that_closes_the_connection() {
        let sent = request("/healthz?full=1", "web.lab:8080").unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&sent),
            format!(
                "GET /healthz?full=1 HTTP/1.1\r\nHost: web.lab:8080\r\nUser-Agent: {AGENT}\r\nConnection: close\r\n\r\n"
            )
        );
    }

    #[test]
    fn a_path_or_host_that_would_split_the_request_is_refused() {
        assert!(request("/a b", "web").is_err());
        assert!(request("/a\r\nX-Evil: 1", "web").is_err());
        assert!(request("/", "web\r\nX-Evil: 1").is_err());
        assert!(request("/", "").is_err());
    }

    #[test]
    fn a_passed_detail_reads_as_formatted_text_would() {
        for (status, length) in [(200, 0), (204, 7), (299, 13), (200, u64::MAX)] {
            assert_eq!(
                passed_detail(status, length),
                format!("status {status} ({length} bytes)")
            );
        }
    }

    #[test]
    fn a_head_is_parsed_once_complete_and_garbage_is_invalid() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        let head = parse_head(full).ok().flatten();
        assert_eq!(head.as_ref().map(|h| (h.length, h.status)), Some((38, 200)));
        assert!(matches!(parse_head(&full[..20]), Ok(None)));
        assert!(parse_head(b"NOT HTTP AT ALL\r\n\r\n").is_err());
    }
}
