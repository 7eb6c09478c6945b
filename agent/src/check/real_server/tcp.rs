//! TCP connect checks (keepalived's `TCP_CHECK`), and the connection every TCP-based check
//! starts with: optionally bound to a source address, closed with a reset so that thousands of
//! checks a second leave no TIME_WAIT sockets behind on the node.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube_vrrp_crds::CheckResult;
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use super::outcome::Outcome;

/// Where a TCP-based check connects, and from where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect {
    pub target: SocketAddr,
    /// `healthCheck.sourceAddress`.
    pub source: Option<IpAddr>,
}

impl Connect {
    /// A non-blocking socket for the connection, bound to the source address if there is one,
    /// that closes with a reset (the checker would otherwise hold a TIME_WAIT socket per
    /// check).
    fn socket(&self) -> Result<Socket, Outcome> {
        let socket = Socket::new(
            Domain::for_address(self.target),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(|e| Outcome::failed(CheckResult::ConnectionFailed, format!("socket: {e}")))?;
        let _ = socket.set_linger(Some(Duration::ZERO));
        if let Some(source) = self.source {
            if source.is_ipv4() != self.target.is_ipv4() {
                return Err(Outcome::failed(
                    CheckResult::Misconfigured,
                    format!(
                        "sourceAddress {source} and real server {} are of different families",
                        self.target.ip()
                    ),
                ));
            }
            // Pick the port at connect time, per destination, as an unbound socket does:
            // binding first would reserve one port per check whatever the destination.
            let _ = setsockopt(&socket, sockopt::IpBindAddressNoPort, &true);
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .map_err(|e| {
                    Outcome::failed(
                        CheckResult::Misconfigured,
                        format!("sourceAddress {source} cannot be used here: {e}"),
                    )
                })?;
        }
        Ok(socket)
    }

    /// Opens the connection (the caller bounds the time).
    pub async fn open(&self) -> Result<TcpStream, Outcome> {
        TcpSocket::from_std_stream(self.socket()?.into())
            .connect(self.target)
            .await
            .map_err(|e| Outcome::connect_error(&e))
    }

    /// Starts opening the connection without waiting: the socket becomes writable once the
    /// connection is accepted or has failed (its error says which).
    pub fn start(&self) -> Result<std::net::TcpStream, Outcome> {
        let socket = self.socket()?;
        match socket.connect(&self.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
            Err(e) => return Err(Outcome::connect_error(&e)),
        }
        Ok(socket.into())
    }
}

/// A TCP connect check: passes when the connection is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    pub connect: Connect,
}

impl TcpProbe {
    /// A passed attempt.
    pub fn passed(&self) -> Outcome {
        Outcome::passed(format!("connected to {}", self.connect.target))
    }
}
