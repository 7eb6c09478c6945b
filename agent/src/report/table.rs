//! The `kube-vrrp-agent status` table, and the tiny HTTP client that fetches `/status` for it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use jiff::Timestamp;
use kube_vrrp_crds::RejectedInstance;

use super::ReportError;
use super::board::{InstanceStatus, StatusDocument};

/// How long [`fetch`] waits to connect, and then for each read or write.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

const HEADERS: [&str; 9] = [
    "NAME",
    "VRID",
    "INTERFACE",
    "STATE",
    "PRIO",
    "EFF",
    "MASTER",
    "VIPS",
    "AGE",
];

/// The status table as of now. AGE is the time since the instance's last state change.
pub fn render(statuses: &[InstanceStatus]) -> String {
    render_at(statuses, Timestamp::now())
}

/// The status table as of `now` (pure): a header row, one row per instance in the given order,
/// columns separated by three spaces, every line ending with `\n`.
pub fn render_at(statuses: &[InstanceStatus], now: Timestamp) -> String {
    let rows: Vec<[String; 9]> = statuses
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.vrid.to_string(),
                s.interface.clone(),
                s.state.as_str().to_owned(),
                s.priority.to_string(),
                s.effective_priority.to_string(),
                s.master_address
                    .map_or_else(|| "-".to_owned(), |a| a.to_string()),
                if s.vips.is_empty() {
                    "-".to_owned()
                } else {
                    s.vips
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                },
                s.last_transition
                    .map_or_else(|| "-".to_owned(), |at| age(now.duration_since(at))),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADERS.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A short human age in the style of `kubectl get`: `45s`, `3m12s`, `17m`, `5h3m`, `20h`,
/// `3d4h`, `12d`. Negative spans (clock skew) read as `0s`.
pub fn age(span: jiff::SignedDuration) -> String {
    let seconds = span.as_secs().max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        format!("{minutes}m{}s", seconds % 60)
    } else if hours < 3 {
        format!("{minutes}m")
    } else if hours < 8 {
        format!("{hours}h{}m", minutes % 60)
    } else if hours < 48 {
        format!("{hours}h")
    } else if days < 8 {
        format!("{days}d{}h", hours % 24)
    } else {
        format!("{days}d")
    }
}

/// The instances the agent rejected, one line each under a header (`REJECTED REASON RUNNING
/// MESSAGE`, RUNNING saying whether the previous version still runs); empty when none. Pure.
pub fn render_rejected(rejected: &[RejectedInstance]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let name = rejected
        .iter()
        .map(|r| r.name.chars().count())
        .chain(std::iter::once("REJECTED".len()))
        .max()
        .unwrap_or_default();
    let reason = rejected
        .iter()
        .map(|r| r.reason.as_str().len())
        .chain(std::iter::once("REASON".len()))
        .max()
        .unwrap_or_default();
    let mut out = format!(
        "{:<name$}   {:<reason$}   {:<8}   MESSAGE\n",
        "REJECTED", "REASON", "RUNNING"
    );
    for r in rejected {
        let running = if r.running_previous { "previous" } else { "no" };
        let _ = writeln!(
            out,
            "{:<name$}   {:<reason$}   {running:<8}   {}",
            r.name,
            r.reason.as_str(),
            r.message
        );
    }
    out
}

/// GETs `/status` from the agent at `addr` (plain HTTP/1.1, blocking, [`FETCH_TIMEOUT`] per
/// step) and returns its instances.
pub fn fetch(addr: SocketAddr) -> Result<Vec<InstanceStatus>, ReportError> {
    fetch_document(addr).map(|document| document.instances)
}

/// GETs the whole `/status` document from the agent at `addr` (see [`fetch`]).
pub fn fetch_document(addr: SocketAddr) -> Result<StatusDocument, ReportError> {
    let io = |source| ReportError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, FETCH_TIMEOUT)
        .map_err(|source| ReportError::Connect { addr, source })?;
    stream.set_read_timeout(Some(FETCH_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(FETCH_TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let (status, body) =
        parse_response(&raw).map_err(|reason| ReportError::Malformed { addr, reason })?;
    if status != 200 {
        return Err(ReportError::Status {
            addr,
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| ReportError::Json { addr, source })
}

/// Splits a complete HTTP/1.x response into its status code and body (de-chunked, cut to
/// Content-Length when given). Pure.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), &'static str> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("not an HTTP/1 status line");
    }
    let status = parts
        .next()
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or("no status code")?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err("header line without a colon");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        }
    }
    if chunked {
        return dechunk(body).map(|body| (status, body));
    }
    match length {
        Some(length) if length > body.len() => Err("body shorter than Content-Length"),
        Some(length) => Ok((status, body[..length].to_vec())),
        None => Ok((status, body.to_vec())),
    }
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("chunk shorter than its size");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (192, "3m12s"),
            (17 * 60 + 5, "17m"),
            (5 * 3600 + 3 * 60, "5h3m"),
            (20 * 3600, "20h"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
            (12 * 86_400, "12d"),
            (-30, "0s"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                age(jiff::SignedDuration::from_secs(seconds)),
                want,
                "{seconds}s"
            );
        }
    }

    #[test]
    fn response_with_content_length_is_cut_to_it() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}extra";
        assert_eq!(parse_response(raw).unwrap(), (200, b"{}".to_vec()));
    }

    #[test]
    fn chunked_response_is_reassembled() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnot \r\n5;x=y\r\nready\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (503, b"not ready".to_vec()));
    }

    #[test]
    fn truncated_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
                .is_err()
        );
    }
}
