//! TCP connect checks (keepalived's `TCP_CHECK`), and the connection every TCP-based check
//! starts with: optionally bound to a source address, closed with a reset so that thousands of
//! checks a second leave no TIME_WAIT sockets behind on the node.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kube_vrrp_crds::CheckResult;
use nix::sys::socket::{setsockopt, sockopt};
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
    /// Opens the connection (the caller bounds the time).
    pub async fn open(&self) -> Result<TcpStream, Outcome> {
        let socket = if self.target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| Outcome::failed(CheckResult::ConnectionFailed, format!("socket: {e}")))?;
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
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                Outcome::failed(
                    CheckResult::Misconfigured,
                    format!("sourceAddress {source} cannot be used here: {e}"),
                )
            })?;
        }
        let stream = socket
            .connect(self.target)
            .await
            .map_err(|e| Outcome::connect_error(&e))?;
        // Close with a reset: the checker would otherwise hold a TIME_WAIT socket per check.
        let _ = stream.set_zero_linger();
        Ok(stream)
    }
}

/// A TCP connect check: passes when the connection is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    pub connect: Connect,
}

impl TcpProbe {
    /// One attempt, at most `timeout` long.
    pub async fn attempt(&self, timeout: Duration) -> Outcome {
        match tokio::time::timeout(timeout, self.connect.open()).await {
            Ok(Ok(_stream)) => Outcome::passed(format!("connected to {}", self.connect.target)),
            Ok(Err(outcome)) => outcome,
            Err(_) => Outcome::timed_out(timeout, "connection"),
        }
    }
}
