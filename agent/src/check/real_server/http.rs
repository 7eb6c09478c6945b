//! HTTP and HTTPS GET checks (keepalived's `HTTP_GET` and `SSL_GET`): one HTTP/1.1 request
//! per connection (`Connection: close`), through hyper. Passes when the whole answer arrives
//! within the timeout, its status is expected, its body is no longer than the cap and, with a
//! digest, hashes to it (SHA-256, where keepalived uses MD5). The body is read to its end
//! even without a digest, as keepalived reads it: an answer that never completes fails.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use kube_vrrp_crds::CheckResult;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

use super::outcome::Outcome;
use super::tcp::Connect;
use super::tls::TlsClient;

/// The `User-Agent` of checks.
pub const AGENT: &str = concat!("kube-vrrp-agent/", env!("CARGO_PKG_VERSION"));

/// An HTTP(S) GET check of one real server.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub connect: Connect,
    /// TLS for HTTPS.
    pub tls: Option<TlsClient>,
    /// Path and query.
    pub path: String,
    /// The `Host` header.
    pub host: String,
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

/// Aborts the connection task when the attempt ends, finished or not.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpProbe {
    /// One attempt, at most `timeout` long from connecting to the body's end.
    pub async fn attempt(&self, timeout: Duration) -> Outcome {
        tokio::time::timeout(timeout, self.exchange_over_connection())
            .await
            .unwrap_or_else(|_| Outcome::timed_out(timeout, "complete answer"))
    }

    async fn exchange_over_connection(&self) -> Outcome {
        let stream = match self.connect.open().await {
            Ok(stream) => stream,
            Err(outcome) => return outcome,
        };
        match &self.tls {
            None => self.exchange(stream).await,
            Some(tls) => match tls.connector.connect(tls.server_name.clone(), stream).await {
                Ok(stream) => self.exchange(stream).await,
                Err(error) => Outcome::failed(
                    CheckResult::TlsFailed,
                    format!("TLS handshake: {}", error_chain(&error)),
                ),
            },
        }
    }

    async fn exchange<S>(&self, io: S) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = match http1::handshake(TokioIo::new(io)).await {
            Ok(pair) => pair,
            Err(error) => return hyper_failure(&error),
        };
        let _driver = Driver(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let request = match Request::get(self.path.as_str())
            .header(HOST, self.host.as_str())
            .header(USER_AGENT, AGENT)
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
        {
            Ok(request) => request,
            Err(error) => {
                return Outcome::failed(
                    CheckResult::Misconfigured,
                    format!("request for {:?}: {error}", self.path),
                );
            }
        };
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => return hyper_failure(&error),
        };
        let status = response.status();
        if !self.expected_status.contains(&status.as_u16()) {
            return Outcome::failed(
                CheckResult::UnexpectedStatus,
                format!("status {} (expected {})", status.as_u16(), self.expected()),
            );
        }
        let mut body = response.into_body();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut length: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => return hyper_failure(&error),
            };
            if let Some(data) = frame.data_ref() {
                length = length.saturating_add(data.len() as u64);
                if length > self.max_body_bytes {
                    return Outcome::failed(
                        CheckResult::BodyTooLarge,
                        format!("body longer than {} bytes", self.max_body_bytes),
                    );
                }
                digest.update(data);
            }
        }
        if let Some(want) = &self.digest {
            let got = digest.finish();
            if got.as_ref() != want {
                return Outcome::failed(
                    CheckResult::DigestMismatch,
                    format!(
                        "body digest {} (expected {})",
                        hex::encode(got.as_ref()),
                        hex::encode(want)
                    ),
                );
            }
        }
        Outcome::passed(format!("status {} ({length} bytes)", reason(status)))
    }

    fn expected(&self) -> String {
        self.expected_status
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn reason(status: StatusCode) -> String {
    status.as_u16().to_string()
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

fn hyper_failure(error: &hyper::Error) -> Outcome {
    let result = if error.is_parse() || error.is_parse_status() {
        CheckResult::InvalidResponse
    } else {
        CheckResult::ConnectionFailed
    };
    let detail = if error.is_incomplete_message() {
        "connection closed before the answer was complete".to_owned()
    } else {
        error_chain(error)
    };
    Outcome::failed(result, detail)
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
}
