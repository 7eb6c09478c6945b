//! Servers and clients for the guest lab's traffic checks (runs inside the guest).
//!
//! - `serve --name NAME [--tcp ADDR:PORT]... [--udp ADDR:PORT]...`: answers every TCP
//!   connection and every UDP datagram with NAME and a newline.
//! - `client (--tcp|--udp) ADDR:PORT --count N`: N connections (or datagrams from N fresh
//!   sockets, so N source ports), one after the other; prints `{"NAME": count, ...}` (failures
//!   under `"error"`).
//! - `hold --tcp ADDR:PORT --seconds S`: one connection kept open S seconds (an active
//!   connection for drain tests); prints the server's name when it has it.

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
    },
    Client {
        #[arg(long, conflicts_with = "udp")]
        tcp: Option<SocketAddr>,
        #[arg(long)]
        udp: Option<SocketAddr>,
        #[arg(long, default_value_t = 10)]
        count: u32,
    },
    Hold {
        #[arg(long)]
        tcp: SocketAddr,
        #[arg(long)]
        seconds: u64,
    },
}

const TIMEOUT: Duration = Duration::from_secs(3);

fn serve(name: &str, tcp: &[SocketAddr], udp: &[SocketAddr]) -> anyhow::Result<()> {
    let mut threads = Vec::new();
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
    for t in threads {
        let _ = t.join();
    }
    Ok(())
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

fn ask_udp(addr: SocketAddr) -> anyhow::Result<String> {
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
    let (n, _) = socket.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve { name, tcp, udp } => serve(&name, &tcp, &udp),
        Command::Client { tcp, udp, count } => {
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            for _ in 0..count {
                let answer = match (tcp, udp) {
                    (Some(addr), _) => ask_tcp(addr),
                    (None, Some(addr)) => ask_udp(addr),
                    (None, None) => anyhow::bail!("--tcp or --udp"),
                };
                *counts
                    .entry(answer.unwrap_or_else(|_| "error".to_owned()))
                    .or_default() += 1;
            }
            println!("{}", serde_json::to_string(&counts)?);
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
