//! Servers and clients for the guest lab's traffic checks (runs inside the guest).
//!
//! - `serve --name NAME [--tcp ADDR:PORT]... [--udp ADDR:PORT]...`: answers every TCP
//!   connection and every UDP datagram with NAME and a newline.
//! - `client (--tcp|--udp) ADDR:PORT --count N`: N connections (or datagrams from N fresh
//!   sockets, so N source ports: the last [`HELD_UDP_SOCKETS`] stay open, so that the kernel
//!   cannot hand a closed one's port out again and IPVS see a datagram of an earlier
//!   "connection"), one after the other; prints `{"NAME": count, ...}` (failures under
//!   `"error"`).
//! - `hold --tcp ADDR:PORT --seconds S`: one connection kept open S seconds (an active
//!   connection for drain tests); prints the server's name when it has it.
//! - `serve ... --http ADDR:PORT [--status-file PATH]`: also answers HTTP GETs with NAME,
//!   with the status code written in PATH when it exists (e.g. 503), else 200.
//! - `serve-http --address ADDR --ports LO-HI`: HTTP 200 on every port of the range (the
//!   health check benchmark's 1,000 real servers), one thread.
//! - `client ... --jsonl [--interval-ms N] [--seconds S]`: one JSON line per attempt,
//!   `{"t": SECONDS, "answer": NAME|null}`, instead of the counts.
//! - `watch --interval-ms N`: prints `{"t": SECONDS, "pools": {...}}` whenever
//!   `/proc/net/ip_vs` changes (destinations and weights of every service).
//! - `now`: prints the time the other commands stamp their lines with (the guest's clock).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve {
        #[arg(long)]
        name: String,
        #[arg(long)]
        tcp: Vec<SocketAddr>,
        #[arg(long)]
        udp: Vec<SocketAddr>,
        #[arg(long)]
        http: Vec<SocketAddr>,
        #[arg(long)]
        status_file: Option<std::path::PathBuf>,
        /// Written with the time once every listener is bound.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
    },
    ServeHttp {
        #[arg(long)]
        address: std::net::IpAddr,
        /// `LO-HI`, inclusive.
        #[arg(long)]
        ports: String,
        /// Rewritten every second with the number of requests answered so far.
        #[arg(long)]
        count_file: Option<std::path::PathBuf>,
    },
    Client {
        #[arg(long, conflicts_with = "udp")]
        tcp: Option<SocketAddr>,
        #[arg(long)]
        udp: Option<SocketAddr>,
        #[arg(long, default_value_t = 10)]
        count: u32,
        #[arg(long)]
        jsonl: bool,
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// Stop after this long instead of after `count` attempts.
        #[arg(long)]
        seconds: Option<f64>,
    },
    Watch {
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    Now,
    Hold {
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long)]
        seconds: u64,
    },
}

const TIMEOUT: Duration = Duration::from_secs(3);

fn serve(
    name: &str,
    tcp: &[SocketAddr],
    udp: &[SocketAddr],
    http: &[SocketAddr],
    status_file: Option<&std::path::Path>,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let mut threads = Vec::new();
    for addr in http {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let (name, status_file) = (
            name.to_owned(),
            status_file.map(std::path::Path::to_path_buf),
        );
        threads.push(std::thread::spawn(move || {
            serve_http_named(&listener, &name, status_file.as_deref());
        }));
    }
    for addr in tcp {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let answer = format!("{name}\n");
        threads.push(std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let answer = answer.clone();
                // Answer, then keep the connection until the client closes it: a client that
                // holds it keeps an active connection in IPVS.
                std::thread::spawn(move || {
                    let _ = stream.write_all(answer.as_bytes());
                    let mut sink = [0u8; 256];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        }));
    }
    for addr in udp {
        let socket = UdpSocket::bind(addr).with_context(|| format!("binding {addr}"))?;
        let answer = format!("{name}\n");
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((_, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(answer.as_bytes(), from);
            }
        }));
    }
    if let Some(ready) = ready_file {
        std::fs::write(ready, format!("{}\n", now())).context("writing the ready file")?;
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Seconds on the guest's clock, as every line is stamped.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Answers HTTP GETs on `listener` with `name`, and the status in `status_file` if any.
fn serve_http_named(listener: &TcpListener, name: &str, status_file: Option<&std::path::Path>) {
    for mut stream in listener.incoming().flatten() {
        let (name, status_file) = (
            name.to_owned(),
            status_file.map(std::path::Path::to_path_buf),
        );
        std::thread::spawn(move || {
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let status: u16 = status_file
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(200);
            let body = format!("{name}\n");
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
}

/// HTTP 200 on every port of `ports` at `address`, in one thread; the count of answers goes
/// to `count_file` every second.
fn serve_http_range(
    address: std::net::IpAddr,
    ports: &str,
    count_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let answered = std::sync::Arc::new(AtomicU64::new(0));
    let (lo, hi) = ports.split_once('-').context("--ports LO-HI")?;
    let (lo, hi): (u16, u16) = (lo.parse()?, hi.parse()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        for port in lo..=hi {
            let listener = tokio::net::TcpListener::bind(SocketAddr::new(address, port))
                .await
                .with_context(|| format!("binding {address}:{port}"))?;
            let answered = std::sync::Arc::clone(&answered);
            tokio::spawn(async move {
                loop {
                    // A failed accept (out of file descriptors, a connection reset before it
                    // was taken) ends neither the listener nor its port: said, and retried.
                    let mut stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            eprintln!("{address}:{port}: accept: {error}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let answered = std::sync::Arc::clone(&answered);
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut request = Vec::new();
                        let mut buf = [0u8; 512];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
                            .await
                            .is_ok()
                        {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(path) = &count_file {
                let _ = std::fs::write(path, format!("{}\n", answered.load(Ordering::Relaxed)));
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    })
}

/// Prints the pools whenever `/proc/net/ip_vs` changes.
fn watch(interval: Duration) -> anyhow::Result<()> {
    let mut last = None;
    loop {
        let text = std::fs::read_to_string("/proc/net/ip_vs").context("reading /proc/net/ip_vs")?;
        let pools = kube_vrrp_e2e::guest::proc_ip_vs::parse(&text);
        if last.as_ref() != Some(&pools) {
            println!("{}", serde_json::json!({"t": now(), "pools": pools}));
            last = Some(pools);
        }
        std::thread::sleep(interval);
    }
}

fn ask_tcp(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    Ok(read_line(&mut stream)?)
}

/// Reads up to the first newline (the server's name).
fn read_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte)? == 1 && byte[0] != b'\n' {
        out.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// How many of a client's UDP sockets stay open: each holds its source port, which a closed one
/// would free for the kernel's random pick to return (about a 6 % chance of one repeat among 60
/// datagrams), and IPVS would send that datagram where the port's first one went.
const HELD_UDP_SOCKETS: usize = 512;

/// Asks `addr` over a fresh UDP socket; the socket is kept in `held` (the oldest dropped past
/// [`HELD_UDP_SOCKETS`]).
fn ask_udp(
    addr: SocketAddr,
    held: &mut std::collections::VecDeque<UdpSocket>,
) -> anyhow::Result<String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.send_to(b"who\n", addr)?;
    let mut buf = [0u8; 512];
    let answer = socket.recv_from(&mut buf);
    if held.len() == HELD_UDP_SOCKETS {
        held.pop_front();
    }
    held.push_back(socket);
    let (n, _) = answer?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            name,
            tcp,
            udp,
            http,
            status_file,
            ready_file,
        } => serve(
            &name,
            &tcp,
            &udp,
            &http,
            status_file.as_deref(),
            ready_file.as_deref(),
        ),
        Command::ServeHttp {
            address,
            ports,
            count_file,
        } => serve_http_range(address, &ports, count_file),
        Command::Client {
            tcp,
            udp,
            count,
            jsonl,
            interval_ms,
            seconds,
        } => {
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            let started = std::time::Instant::now();
            let mut done = 0u32;
            let mut held_udp = std::collections::VecDeque::new();
            loop {
                let finished = match seconds {
                    Some(s) => started.elapsed().as_secs_f64() >= s,
                    None => done >= count,
                };
                if finished {
                    break;
                }
                let t = now();
                let answer = match (tcp, udp) {
                    (Some(addr), _) => ask_tcp(addr),
                    (None, Some(addr)) => ask_udp(addr, &mut held_udp),
                    (None, None) => anyhow::bail!("--tcp or --udp"),
                };
                if jsonl {
                    println!(
                        "{}",
                        serde_json::json!({"t": t, "answer": answer.as_ref().ok()})
                    );
                } else {
                    *counts
                        .entry(answer.unwrap_or_else(|_| "error".to_owned()))
                        .or_default() += 1;
                }
                done += 1;
                if interval_ms > 0 {
                    std::thread::sleep(Duration::from_millis(interval_ms));
                }
            }
            if !jsonl {
                println!("{}", serde_json::to_string(&counts)?);
            }
            Ok(())
        }
        Command::Watch { interval_ms } => watch(Duration::from_millis(interval_ms.max(1))),
        Command::Now => {
            println!("{}", now());
            Ok(())
        }
        Command::Hold { tcp, seconds } => {
            let mut stream = TcpStream::connect_timeout(&tcp, TIMEOUT)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            println!("{}", read_line(&mut stream)?);
            std::thread::sleep(Duration::from_secs(seconds));
            Ok(())
        }
    }
}
