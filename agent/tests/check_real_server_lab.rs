//! Real-server health checks for real, in network namespaces: a `checker` namespace runs the
//! checks, a `backends` namespace holds the real servers (tiny TCP, HTTP and HTTPS servers in
//! this process, their sockets bound inside it), joined by a veth pair. No IPVS is needed:
//! what is checked is the checkers, the runner and what they publish.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube_vrrp_agent::check::host_dirs::HostDirs;
use kube_vrrp_agent::check::real_server::probe::{HealthProbe, checks};
use kube_vrrp_agent::check::real_server::{HealthChecks, HealthOptions, HealthSnapshot};
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_crds::{CheckResult, ResolvedVirtualServer};
use kube_vrrp_e2e::netns::{Netns, require_root, veth};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

const CHECKER_IP: &str = "10.77.0.1";
const BACKEND_IP: &str = "10.77.0.2";

/// Two namespaces joined by a veth pair: the checker at .1, the real servers at .2 (and .3,
/// .4 ... when asked).
struct Lab {
    checker: Netns,
    backends: Netns,
}

impl Lab {
    fn new(extra_backend_addresses: usize) -> Self {
        require_root();
        let checker = Netns::create("kvrsc").expect("checker namespace");
        let backends = Netns::create("kvrsb").expect("backends namespace");
        veth(&checker, "chk0", &backends, "rs0").expect("veth");
        checker
            .exec(&[
                "ip",
                "addr",
                "add",
                &format!("{CHECKER_IP}/24"),
                "dev",
                "chk0",
            ])
            .expect("checker address");
        backends
            .exec(&[
                "ip",
                "addr",
                "add",
                &format!("{BACKEND_IP}/24"),
                "dev",
                "rs0",
            ])
            .expect("backend address");
        for i in 0..extra_backend_addresses {
            backends
                .exec(&[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.77.0.{}/24", i + 3),
                    "dev",
                    "rs0",
                ])
                .expect("extra backend address");
        }
        Self { checker, backends }
    }

    /// A listening socket inside the backends namespace.
    fn listen(&self, address: &str, port: u16) -> std::net::TcpListener {
        let address: SocketAddr = format!("{address}:{port}").parse().expect("address");
        self.backends
            .run_in(move || std::net::TcpListener::bind(address))
            .expect("enter the backends namespace")
            .expect("bind in the backends namespace")
    }

    /// Runs `test` on a current-thread runtime inside the checker namespace.
    fn check<F, Fut>(&self, test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        self.checker
            .run_in(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(test());
            })
            .expect("enter the checker namespace");
    }
}

fn tokio_listener(listener: std::net::TcpListener) -> tokio::net::TcpListener {
    listener.set_nonblocking(true).expect("nonblocking");
    tokio::net::TcpListener::from_std(listener).expect("tokio listener")
}

// ------------------------------------------------------------------------------ the servers

/// What the HTTP server does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Behaviour {
    /// 200 with the body "hello".
    Healthy = 0,
    /// 503.
    Unavailable = 1,
    /// 200 with another body.
    WrongBody = 2,
    /// Reads the request and never answers.
    Hang = 3,
    /// 200 with a chunked body that never ends.
    Endless = 4,
    /// Something that is not HTTP.
    Garbage = 5,
}

const BODY: &[u8] = b"hello";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// What the servers saw: Host headers, TLS server names, connections in flight.
#[derive(Default)]
struct Seen {
    hosts: Mutex<Vec<String>>,
    server_names: Mutex<Vec<Option<String>>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    accepted_at: Mutex<Vec<Instant>>,
    peers: Mutex<Vec<IpAddr>>,
}

impl Seen {
    fn hosts(&self) -> Vec<String> {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    behaviour: Behaviour,
    seen: &Seen,
) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    if let Some(host) = text.lines().find_map(|l| {
        l.strip_prefix("host: ")
            .or_else(|| l.strip_prefix("Host: "))
    }) {
        seen.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(host.trim().to_owned());
    }
    let _ = match behaviour {
        Behaviour::Healthy => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                )
                .await
        }
        Behaviour::Unavailable => {
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                .await
        }
        Behaviour::WrongBody => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHELLO")
                .await
        }
        Behaviour::Hang => {
            // Never answer; notice when the checker gives up and closes.
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
            Ok(())
        }
        Behaviour::Endless => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
            loop {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    break Ok(());
                }
            }
        }
        Behaviour::Garbage => stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await,
    };
    let _ = stream.shutdown().await;
}

/// An HTTP (or, with `tls`, HTTPS) server following `behaviour`.
fn http_server(
    listener: std::net::TcpListener,
    behaviour: Arc<AtomicU8>,
    seen: Arc<Seen>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> tokio::task::JoinHandle<()> {
    let listener = tokio_listener(listener);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            seen.accepted_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Instant::now());
            let (behaviour, seen, tls) = (Arc::clone(&behaviour), Arc::clone(&seen), tls.clone());
            tokio::spawn(async move {
                let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_in_flight.fetch_max(now, Ordering::SeqCst);
                let mode = match behaviour.load(Ordering::SeqCst) {
                    0 => Behaviour::Healthy,
                    1 => Behaviour::Unavailable,
                    2 => Behaviour::WrongBody,
                    3 => Behaviour::Hang,
                    4 => Behaviour::Endless,
                    _ => Behaviour::Garbage,
                };
                match tls {
                    None => serve_http(stream, mode, &seen).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let name = stream.get_ref().1.server_name().map(str::to_owned);
                            seen.server_names
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(name);
                            serve_http(stream, mode, &seen).await;
                        }
                    }
                }
                seen.in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
    })
}

/// A TCP server that accepts and closes, noting when.
fn tcp_server(listener: std::net::TcpListener, seen: Arc<Seen>) -> tokio::task::JoinHandle<()> {
    let listener = tokio_listener(listener);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            seen.accepted_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Instant::now());
            seen.peers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(peer.ip());
            drop(stream);
        }
    })
}

// ----------------------------------------------------------------------------- the checks

fn virtual_server(
    name: &str,
    real_servers: &[(&str, u16)],
    check: &serde_json::Value,
) -> ResolvedVirtualServer {
    let real_servers: Vec<serde_json::Value> = real_servers
        .iter()
        .map(|(a, p)| serde_json::json!({"address": a, "port": p, "weight": 1}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "name": name, "virtualIP": "web", "addresses": ["192.0.2.100"], "port": 80,
        "protocol": "TCP", "scheduler": "wlc", "forwarding": "NAT",
        "realServers": real_servers, "healthCheck": check
    }))
    .expect("a resolved VirtualServer")
}

/// The probe of the first real server of `server`.
fn probe_of(server: &ResolvedVirtualServer, dirs: &HostDirs) -> Arc<HealthProbe> {
    let checks = checks(server, dirs)
        .expect("the check builds")
        .expect("a health check");
    Arc::clone(&checks.probes[0].1)
}

#[test]
fn a_tcp_check_is_refused_when_the_listener_goes_away_and_passes_when_it_is_back() {
    let lab = Lab::new(0);
    let listener = lab.listen(BACKEND_IP, 8080);
    let relisten = {
        let backends = lab.backends.name().to_owned();
        move || {
            let path = format!("/run/netns/{backends}");
            std::thread::spawn(move || {
                let file = std::fs::File::open(path).expect("netns");
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                let address: SocketAddr = format!("{BACKEND_IP}:8080").parse().expect("address");
                std::net::TcpListener::bind(address).expect("bind again")
            })
            .join()
            .expect("thread")
        }
    };
    lab.check(move || async move {
        let server = virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080)],
            &serde_json::json!({"tcp": {}, "timeout": "1s"}),
        );
        let probe = probe_of(&server, &HostDirs::default());
        let seen = Arc::new(Seen::default());
        let task = tcp_server(listener, Arc::clone(&seen));
        let up = probe.attempt(Duration::from_secs(1)).await;
        assert_eq!(up.result, CheckResult::Passed, "{up:?}");

        task.abort();
        let _ = task.await;
        let gone = probe.attempt(Duration::from_secs(1)).await;
        assert_eq!(gone.result, CheckResult::Refused, "{gone:?}");
        assert_eq!(gone.detail, "connection refused");

        let task = tcp_server(relisten(), seen);
        let back = probe.attempt(Duration::from_secs(1)).await;
        assert_eq!(back.result, CheckResult::Passed, "{back:?}");
        task.abort();
    });
}

#[test]
fn a_check_with_a_source_address_connects_from_it_and_one_not_on_the_node_is_misconfigured() {
    let lab = Lab::new(0);
    lab.checker
        .exec(&["ip", "addr", "add", "10.77.0.11/24", "dev", "chk0"])
        .expect("second checker address");
    let listener = lab.listen(BACKEND_IP, 8080);
    lab.check(move || async move {
        let seen = Arc::new(Seen::default());
        let _server = tcp_server(listener, Arc::clone(&seen));
        let from = |source: &str| {
            let server = virtual_server(
                "web-80",
                &[(BACKEND_IP, 8080)],
                &serde_json::json!({"tcp": {}, "sourceAddress": source}),
            );
            probe_of(&server, &HostDirs::default())
        };
        let second = Duration::from_secs(1);
        let bound = from("10.77.0.11").attempt(second).await;
        assert_eq!(bound.result, CheckResult::Passed, "{bound:?}");
        let default = {
            let server = virtual_server(
                "web-80",
                &[(BACKEND_IP, 8080)],
                &serde_json::json!({"tcp": {}}),
            );
            probe_of(&server, &HostDirs::default())
        };
        assert_eq!(default.attempt(second).await.result, CheckResult::Passed);
        let peers = seen
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let want: Vec<IpAddr> = ["10.77.0.11", CHECKER_IP]
            .iter()
            .map(|a| a.parse().expect("ip"))
            .collect();
        assert_eq!(peers, want, "the first check came from its sourceAddress");

        let elsewhere = from("10.99.0.1").attempt(second).await;
        assert_eq!(
            elsewhere.result,
            CheckResult::Misconfigured,
            "{elsewhere:?}"
        );
        assert!(
            elsewhere.detail.contains("sourceAddress 10.99.0.1"),
            "{}",
            elsewhere.detail
        );
    });
}

#[test]
fn a_tcp_check_of_an_address_nobody_answers_for_times_out_within_its_timeout() {
    let lab = Lab::new(0);
    // 10.77.0.9 is on the link but held by nobody: ARP goes unanswered.
    lab.check(|| async {
        let server = virtual_server(
            "web-80",
            &[("10.77.0.9", 8080)],
            &serde_json::json!({"tcp": {}}),
        );
        let probe = probe_of(&server, &HostDirs::default());
        let started = Instant::now();
        let outcome = probe.attempt(Duration::from_millis(400)).await;
        let took = started.elapsed();
        assert!(
            matches!(
                outcome.result,
                CheckResult::Timeout | CheckResult::Unreachable
            ),
            "{outcome:?}"
        );
        assert!(took < Duration::from_millis(900), "took {took:?}");
    });
}

#[test]
fn an_http_check_sees_503_a_wrong_body_a_hang_an_endless_body_and_garbage() {
    let lab = Lab::new(0);
    let listener = lab.listen(BACKEND_IP, 8080);
    lab.check(move || async move {
        let behaviour = Arc::new(AtomicU8::new(Behaviour::Healthy as u8));
        let seen = Arc::new(Seen::default());
        let _server = http_server(listener, Arc::clone(&behaviour), Arc::clone(&seen), None);
        let server = virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080)],
            &serde_json::json!({"http": {
                "path": "/healthz", "host": "web.lab", "bodyDigest": sha256_hex(BODY),
                "maxBodyBytes": 65536
            }}),
        );
        let probe = probe_of(&server, &HostDirs::default());
        let timeout = Duration::from_millis(500);
        let attempt = |b: Behaviour| {
            behaviour.store(b as u8, Ordering::SeqCst);
            let probe = Arc::clone(&probe);
            async move {
                let started = Instant::now();
                let outcome = probe.attempt(timeout).await;
                (outcome, started.elapsed())
            }
        };

        let (healthy, _) = attempt(Behaviour::Healthy).await;
        assert_eq!(healthy.result, CheckResult::Passed, "{healthy:?}");
        assert_eq!(
            seen.hosts(),
            ["web.lab:8080"],
            "Host header: the host, with the port"
        );

        let (busy, _) = attempt(Behaviour::Unavailable).await;
        assert_eq!(busy.result, CheckResult::UnexpectedStatus);
        assert_eq!(busy.detail, "status 503 (expected 200)");

        let (wrong, _) = attempt(Behaviour::WrongBody).await;
        assert_eq!(wrong.result, CheckResult::DigestMismatch, "{wrong:?}");
        assert!(wrong.detail.contains(&sha256_hex(BODY)), "{}", wrong.detail);

        let (hang, took) = attempt(Behaviour::Hang).await;
        assert_eq!(hang.result, CheckResult::Timeout, "{hang:?}");
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(400),
            "a hung server is given up at the timeout: {took:?}"
        );

        let (endless, took) = attempt(Behaviour::Endless).await;
        assert_eq!(endless.result, CheckResult::BodyTooLarge, "{endless:?}");
        assert!(
            took < timeout,
            "the cap ends the read before the timeout: {took:?}"
        );

        let (garbage, _) = attempt(Behaviour::Garbage).await;
        assert_eq!(garbage.result, CheckResult::InvalidResponse, "{garbage:?}");

        let (again, _) = attempt(Behaviour::Healthy).await;
        assert_eq!(again.result, CheckResult::Passed, "{again:?}");
    });
}

#[test]
fn without_a_digest_an_endless_body_still_fails_at_the_cap() {
    let lab = Lab::new(0);
    let listener = lab.listen(BACKEND_IP, 8080);
    lab.check(move || async move {
        let behaviour = Arc::new(AtomicU8::new(Behaviour::Endless as u8));
        let _server = http_server(listener, behaviour, Arc::new(Seen::default()), None);
        let server = virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080)],
            &serde_json::json!({"http": {"maxBodyBytes": 100_000}}),
        );
        let outcome = probe_of(&server, &HostDirs::default())
            .attempt(Duration::from_secs(2))
            .await;
        assert_eq!(outcome.result, CheckResult::BodyTooLarge, "{outcome:?}");
        assert_eq!(outcome.detail, "body longer than 100000 bytes");
    });
}

// --------------------------------------------------------------------------------- HTTPS

/// A self-signed certificate for `web.lab`, made with openssl.
struct SelfSigned {
    dir: PathBuf,
}

impl SelfSigned {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("kube-vrrp-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=web.lab",
                "-addext",
                "subjectAltName=DNS:web.lab",
                // A server certificate, not a CA: the bundle pins it as its own anchor.
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
            ])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is missing: hack/install-deps.sh installs it");
        assert!(status.success(), "openssl req failed");
        Self { dir }
    }

    fn cert_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("cert.pem")).expect("cert.pem")
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.dir.join("cert.pem"))
                .expect("cert.pem")
                .collect::<Result<_, _>>()
                .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(self.dir.join("key.pem")).expect("key.pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_https_check_of_a_self_signed_server_passes_unverified_and_verifies_against_a_ca_bundle() {
    let lab = Lab::new(0);
    let listener = lab.listen(BACKEND_IP, 8443);
    let cert = SelfSigned::new();
    let acceptor = cert.acceptor();
    let pem = cert.cert_pem();
    lab.check(move || async move {
        let seen = Arc::new(Seen::default());
        let healthy = Arc::new(AtomicU8::new(Behaviour::Healthy as u8));
        let _server = http_server(listener, healthy, Arc::clone(&seen), Some(acceptor));
        let https = |extra: serde_json::Value| {
            let mut http = serde_json::json!({"https": true, "host": "web.lab"});
            if let (Some(http), Some(extra)) = (http.as_object_mut(), extra.as_object()) {
                http.extend(extra.clone());
            }
            let server = virtual_server(
                "web-443",
                &[(BACKEND_IP, 8443)],
                &serde_json::json!({"http": http}),
            );
            probe_of(&server, &HostDirs::default())
        };
        let second = Duration::from_secs(2);

        let unverified = https(serde_json::json!({})).attempt(second).await;
        assert_eq!(unverified.result, CheckResult::Passed, "{unverified:?}");
        let sni = seen
            .server_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(sni, [Some("web.lab".to_owned())], "SNI carries the host");
        assert_eq!(seen.hosts(), ["web.lab:8443"]);

        let trusted = https(serde_json::json!({"verifyCertificate": true, "caBundle": pem}))
            .attempt(second)
            .await;
        assert_eq!(trusted.result, CheckResult::Passed, "{trusted:?}");

        let wrong_name = https(serde_json::json!({
            "verifyCertificate": true, "caBundle": pem, "host": "other.lab"
        }))
        .attempt(second)
        .await;
        assert_eq!(wrong_name.result, CheckResult::TlsFailed, "{wrong_name:?}");
        assert!(
            wrong_name.detail.contains("TLS handshake"),
            "{}",
            wrong_name.detail
        );

        // The system's trust store does not know a self-signed certificate.
        let server = virtual_server(
            "web-443",
            &[(BACKEND_IP, 8443)],
            &serde_json::json!({"http": {"https": true, "host": "web.lab", "verifyCertificate": true}}),
        );
        match checks(&server, &HostDirs::default()) {
            Ok(Some(built)) => {
                let outcome = built.probes[0].1.attempt(second).await;
                assert_eq!(outcome.result, CheckResult::TlsFailed, "{outcome:?}");
            }
            Ok(None) => panic!("the health check vanished"),
            Err(refused) => assert!(refused.contains("system trust store"), "{refused}"),
        }

        let another_ca = SelfSigned::new();
        let untrusted = https(serde_json::json!({
            "verifyCertificate": true, "caBundle": another_ca.cert_pem()
        }))
        .attempt(second)
        .await;
        drop(another_ca);
        assert_eq!(untrusted.result, CheckResult::TlsFailed, "{untrusted:?}");

        // An IP address as the server name is not sent as SNI (RFC 6066).
        let by_address = {
            let server = virtual_server(
                "web-443",
                &[(BACKEND_IP, 8443)],
                &serde_json::json!({"http": {"https": true}}),
            );
            probe_of(&server, &HostDirs::default())
        };
        let outcome = by_address.attempt(second).await;
        assert_eq!(outcome.result, CheckResult::Passed, "{outcome:?}");
        let sni = seen
            .server_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(sni.last(), Some(&None), "{sni:?}");
        assert_eq!(
            seen.hosts().last().map(String::as_str),
            Some("10.77.0.2:8443")
        );
    });
}

// -------------------------------------------------------------------------------- scripts

/// A scratch directory of scripts, removed on drop.
/// A scratch directory of scripts, one per test: tests run in parallel in one process, so the
/// name carries a counter besides the pid (a shared one would be removed under another test).
struct Scripts(PathBuf);

impl Scripts {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("kube-vrrp-rs-scripts-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self(dir)
    }

    fn add(&self, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    }

    fn dirs(&self) -> HostDirs {
        HostDirs::scripts([self.0.clone()])
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Processes whose command line contains `marker`, and zombies whose parent is this process.
fn leftovers(marker: &str) -> (Vec<i32>, Vec<i32>) {
    let me = std::process::id().to_string();
    let mut alive = Vec::new();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        let ppid = fields.next().unwrap_or("");
        if state == "Z" && ppid == me {
            zombies.push(pid);
        }
        if String::from_utf8_lossy(&cmdline).contains(marker) && state != "Z" {
            alive.push(pid);
        }
    }
    (alive, zombies)
}

#[test]
fn a_hung_script_is_killed_with_its_group_at_the_timeout_and_leaves_no_zombie() {
    let lab = Lab::new(0);
    let scripts = Scripts::new();
    // A child in the background and one in the foreground: both must die.
    let hang = scripts.add("hang", "sleep 987651 &\nsleep 987652");
    let exit2 = scripts.add("exit2", "exit 2");
    let env_file = scripts.0.join("env");
    let env = scripts.add(
        "env",
        &format!(
            "echo \"$REAL_SERVER_ADDRESS $REAL_SERVER_PORT\" > {}",
            env_file.display()
        ),
    );
    let dirs = scripts.dirs();
    lab.check(move || async move {
        let script = |program: &str| {
            let server = virtual_server(
                "web-80",
                &[(BACKEND_IP, 8080)],
                &serde_json::json!({"script": {"command": [program]}}),
            );
            probe_of(&server, &dirs)
        };
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        let hung = script(&hang).attempt(timeout).await;
        let took = started.elapsed();
        assert_eq!(hung.result, CheckResult::ScriptTimedOut, "{hung:?}");
        assert!(took < timeout + Duration::from_millis(500), "{took:?}");
        // The killed group's orphans are reaped by init; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let (alive, zombies) = leftovers("98765");
            assert!(
                zombies.is_empty(),
                "zombie children of the agent: {zombies:?}"
            );
            if alive.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the script's processes survive: {alive:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let failed = script(&exit2).attempt(timeout * 10).await;
        assert_eq!(failed.result, CheckResult::ScriptFailed, "{failed:?}");
        assert_eq!(failed.detail, "exit status 2");

        let passed = script(&env).attempt(timeout * 10).await;
        assert_eq!(passed.result, CheckResult::Passed, "{passed:?}");
        let written = std::fs::read_to_string(&env_file).expect("the script wrote its env");
        assert_eq!(written.trim(), "10.77.0.2 8080");
        let (_, zombies) = leftovers("98765");
        assert!(zombies.is_empty(), "{zombies:?}");
    });
}

#[test]
fn a_script_outside_the_allowed_directories_is_refused_and_a_link_out_of_them_fails() {
    let scripts = Scripts::new();
    let server = |program: &str| {
        virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080)],
            &serde_json::json!({"script": {"command": [program]}}),
        )
    };
    let refused = checks(&server("/bin/true"), &scripts.dirs()).expect_err("outside: refused");
    assert!(
        refused.contains("healthCheck.script") && refused.contains("outside"),
        "{refused}"
    );
    let link = scripts.0.join("escape");
    std::os::unix::fs::symlink("/bin/true", &link).expect("symlink");
    let link = link.display().to_string();
    let probe = probe_of(&server(&link), &scripts.dirs());
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(probe.attempt(Duration::from_secs(1)));
    assert_eq!(outcome.result, CheckResult::Misconfigured, "{outcome:?}");
    assert!(outcome.detail.contains("leads to /"), "{}", outcome.detail);
}

// ------------------------------------------------------------------------------ the runner

async fn wait_for(
    rx: &mut watch::Receiver<Arc<HealthSnapshot>>,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&HealthSnapshot) -> bool,
) -> Duration {
    let started = Instant::now();
    let outcome = tokio::time::timeout(within, rx.wait_for(|s| pred(s)))
        .await
        .map(|waited| waited.is_ok());
    match outcome {
        Ok(true) => started.elapsed(),
        Ok(false) => panic!("the health checks stopped while waiting for {what}"),
        Err(elapsed) => panic!(
            "{elapsed}: no {what} within {within:?}; last snapshot {:#?}",
            *rx.borrow()
        ),
    }
}

fn healthy(snapshot: &HealthSnapshot, server: &str, address: &str, port: u16) -> Option<bool> {
    let address: IpAddr = address.parse().ok()?;
    snapshot
        .virtual_servers
        .get(server)?
        .real_servers
        .get(&(address, port))
        .filter(|h| h.checked)
        .map(|h| h.healthy)
}

#[test]
fn the_runner_takes_a_dead_server_out_within_fall_intervals_and_back_within_rise_with_quorum_and_sorry_server()
 {
    let lab = Lab::new(1);
    let first = lab.listen(BACKEND_IP, 8080);
    let second = lab.listen("10.77.0.3", 8080);
    let backends = lab.backends.name().to_owned();
    lab.check(move || async move {
        let interval = Duration::from_millis(200);
        let timeout = Duration::from_millis(150);
        let mut server = virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080), ("10.77.0.3", 8080)],
            &serde_json::json!({"tcp": {}, "interval": "200ms", "timeout": "150ms",
                                "fall": 2, "rise": 2, "retries": 1}),
        );
        server.quorum = Some(2);
        server.sorry_server = Some(kube_vrrp_crds::SorryServer {
            address: "10.77.0.99".into(),
            port: Some(8080),
        });
        let metrics = Metrics::new();
        let checks = HealthChecks::start(HealthOptions::default(), metrics.clone()).expect("start");
        let mut rx = checks.subscribe();
        let seen = Arc::new(Seen::default());
        let first_task = tcp_server(first, Arc::clone(&seen));
        let _second_task = tcp_server(second, Arc::clone(&seen));
        checks.configure(vec![server.clone()]);
        wait_for(
            &mut rx,
            Duration::from_secs(3),
            "both checked healthy",
            |s| {
                healthy(s, "web-80", BACKEND_IP, 8080) == Some(true)
                    && healthy(s, "web-80", "10.77.0.3", 8080) == Some(true)
            },
        )
        .await;
        let pool = checks.snapshot().pool(&server);
        assert!(
            pool.quorum.up && !pool.quorum.sorry_server_active,
            "{pool:?}"
        );
        assert_eq!(pool.members.len(), 2);

        // The first real server dies: out within fall × interval + timeout (+ scheduling slack).
        first_task.abort();
        let _ = first_task.await;
        let took = wait_for(
            &mut rx,
            Duration::from_secs(3),
            "the first real server down",
            |s| healthy(s, "web-80", BACKEND_IP, 8080) == Some(false),
        )
        .await;
        let bound = 2 * interval + timeout;
        assert!(
            took <= bound + Duration::from_millis(250),
            "down after {took:?}, bound {bound:?}"
        );
        let snapshot = checks.snapshot();
        let pool = snapshot.pool(&server);
        assert!(!pool.quorum.up, "weight 1 < quorum 2: {pool:?}");
        assert!(pool.quorum.sorry_server_active);
        assert_eq!(
            pool.members
                .iter()
                .map(|m| m.address.as_str())
                .collect::<Vec<_>>(),
            ["10.77.0.99"],
            "the sorry server takes all traffic"
        );
        let statuses = snapshot.checker_statuses();
        let dead = statuses
            .iter()
            .find(|c| c.target == "10.77.0.2:8080")
            .expect("a status for the dead server");
        assert!(!dead.healthy);
        assert_eq!(dead.last_result, Some(CheckResult::Refused));
        assert_eq!(dead.message.as_deref(), Some("connection refused"));
        assert!(dead.last_transition_time.is_some());
        let quorum = &snapshot.quorum_statuses()[0];
        assert!(!quorum.up && quorum.sorry_server_active && quorum.healthy_weight == 1);
        let text = metrics.encode();
        assert!(
            text.contains(
                "kube_vrrp_realserver_up{virtualserver=\"web-80\",real_server=\"10.77.0.2:8080\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kube_vrrp_virtualserver_sorry_server_active{virtualserver=\"web-80\"} 1"
            )
        );

        // Back: within rise × interval.
        let path = format!("/run/netns/{backends}");
        let listener = std::thread::spawn(move || {
            let file = std::fs::File::open(path).expect("netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            std::net::TcpListener::bind(format!("{BACKEND_IP}:8080")).expect("bind again")
        })
        .join()
        .expect("thread");
        let _back = tcp_server(listener, seen);
        let took = wait_for(
            &mut rx,
            Duration::from_secs(3),
            "the first real server back",
            |s| healthy(s, "web-80", BACKEND_IP, 8080) == Some(true),
        )
        .await;
        let bound = 2 * interval;
        assert!(
            took <= bound + Duration::from_millis(250),
            "up after {took:?}, bound {bound:?}"
        );
        let pool = checks.snapshot().pool(&server);
        assert!(
            pool.quorum.up && !pool.quorum.sorry_server_active,
            "{pool:?}"
        );
        assert_eq!(pool.members.len(), 2, "the sorry server is gone: {pool:?}");
    });
}

#[test]
fn fifty_real_servers_are_spread_over_the_interval_and_attempts_in_flight_are_bounded() {
    let lab = Lab::new(0);
    let ports: Vec<u16> = (9000..9050).collect();
    let listeners: Vec<std::net::TcpListener> =
        ports.iter().map(|p| lab.listen(BACKEND_IP, *p)).collect();
    let hanging = lab.listen(BACKEND_IP, 8080);
    lab.check(move || async move {
        let seen = Arc::new(Seen::default());
        let _tasks: Vec<_> = listeners
            .into_iter()
            .map(|l| tcp_server(l, Arc::clone(&seen)))
            .collect();
        let real_servers: Vec<(&str, u16)> = ports.iter().map(|p| (BACKEND_IP, *p)).collect();
        let spread = virtual_server(
            "spread",
            &real_servers,
            &serde_json::json!({"tcp": {}, "interval": "1s", "timeout": "500ms"}),
        );
        let checks = HealthChecks::start(HealthOptions::default(), Metrics::new()).expect("start");
        let started = Instant::now();
        checks.configure(vec![spread]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let firsts: Vec<Duration> = {
            let at = seen
                .accepted_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            at.iter().map(|t| t.duration_since(started)).collect()
        };
        assert!(firsts.len() >= 50, "{} first checks", firsts.len());
        let mut bins = [0u32; 10];
        for t in firsts.iter().take(50) {
            bins[(t.as_millis() / 100).min(9) as usize] += 1;
        }
        assert!(
            bins.iter().all(|n| *n <= 15) && bins.iter().filter(|n| **n > 0).count() >= 6,
            "first checks of 50 real servers bunch up instead of spreading over 1 s: {bins:?}"
        );
        drop(checks);

        // Ten real servers that never answer, checked 2 at a time at most.
        let behaviour = Arc::new(AtomicU8::new(Behaviour::Hang as u8));
        let hang_seen = Arc::new(Seen::default());
        let _hanging = http_server(hanging, behaviour, Arc::clone(&hang_seen), None);
        let many: Vec<ResolvedVirtualServer> = (0..10)
            .map(|i| {
                virtual_server(
                    &format!("hung-{i}"),
                    &[(BACKEND_IP, 8080)],
                    &serde_json::json!({"http": {}, "interval": "300ms", "timeout": "400ms"}),
                )
            })
            .collect();
        let options = HealthOptions {
            concurrency: 2,
            ..HealthOptions::default()
        };
        let checks = HealthChecks::start(options, Metrics::new()).expect("start");
        let configured = Instant::now();
        checks.configure(many);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // The bound, from what the agent did: each attempt holds its slot for its whole 400 ms
        // timeout, so 2 slots start at most 2 × (2 s / 400 ms) + 2 = 12 attempts in 2 s (3
        // slots would start 17, no bound about 28). Counted at accept, which the server never
        // sees early. The server's own count of open connections only lags (it notices a
        // closed one when its task next runs), so it shows the bound is reached, not kept.
        let window = configured + Duration::from_secs(2);
        let started = hang_seen
            .accepted_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|at| **at <= window)
            .count();
        assert!(
            (3..=12).contains(&started),
            "{started} attempts started in 2 s with 2 slots of 400 ms (at most 12)"
        );
        let most = hang_seen.most_in_flight.load(Ordering::SeqCst);
        assert!(
            most >= 2,
            "the bound of 2 attempts in flight is never reached ({most})"
        );
        let names: BTreeSet<String> = checks
            .snapshot()
            .checker_statuses()
            .into_iter()
            .filter(|c| c.last_result == Some(CheckResult::Timeout))
            .map(|c| c.owner)
            .collect();
        assert!(
            names.len() >= 4,
            "checks waited their turn and timed out: {names:?}"
        );
    });
}

#[test]
fn verdicts_kept_on_disk_are_what_a_restarted_runner_assumes_until_its_first_check() {
    let lab = Lab::new(0);
    let dir = std::env::temp_dir().join(format!("kube-vrrp-memory-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let memory_dir = dir.clone();
    lab.check(move || async move {
        // Nothing listens on 8080: the first check finds the real server dead.
        let server = virtual_server(
            "web-80",
            &[(BACKEND_IP, 8080)],
            &serde_json::json!({"tcp": {}, "interval": "5s", "timeout": "200ms"}),
        );
        let options = HealthOptions {
            memory: Some(kube_vrrp_agent::check::real_server::Memory::in_dir(
                &memory_dir,
                "n1",
            )),
            ..HealthOptions::default()
        };
        let checks = HealthChecks::start(options.clone(), Metrics::new()).expect("start");
        let mut rx = checks.subscribe();
        assert!(
            checks.snapshot().pool(&server).members.len() == 1,
            "healthy until checked"
        );
        checks.configure(vec![server.clone()]);
        wait_for(&mut rx, Duration::from_secs(7), "the first check", |s| {
            healthy(s, "web-80", BACKEND_IP, 8080) == Some(false)
        })
        .await;
        drop(checks);

        let restarted = HealthChecks::start(options, Metrics::new()).expect("restart");
        assert!(
            restarted.snapshot().pool(&server).members.is_empty(),
            "a restarted agent keeps a dead server out before its first check"
        );
        let mut rx = restarted.subscribe();
        restarted.configure(vec![server.clone()]);
        wait_for(
            &mut rx,
            Duration::from_secs(1),
            "the VirtualServer taken in",
            |s| s.virtual_servers.contains_key("web-80"),
        )
        .await;
        let snapshot = restarted.snapshot();
        let health = &snapshot.virtual_servers["web-80"].real_servers
            [&(BACKEND_IP.parse::<IpAddr>().expect("ip"), 8080)];
        assert!(!health.healthy && !health.checked, "{health:?}");
        let status = &snapshot.checker_statuses()[0];
        assert!(
            status
                .message
                .as_deref()
                .unwrap_or("")
                .contains("as it was when the agent last ran")
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!Path::new(&dir).exists());
}
