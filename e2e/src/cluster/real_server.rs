//! A real server for a VirtualServer's health checks in the lab: a TCP listener inside a lab
//! namespace that accepts every connection and closes it, and can be stopped (connections are
//! then refused) and started again on the same address.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ClusterError;
use crate::netns::{self, Netns};

/// How often a listener with nothing to accept looks again (and at its stop flag).
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// A TCP real server; stops listening when dropped.
#[derive(Debug)]
pub struct TcpRealServer {
    namespace: String,
    address: SocketAddr,
    accepted: Arc<AtomicU64>,
    serving: Option<Serving>,
}

#[derive(Debug)]
struct Serving {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl TcpRealServer {
    /// Listens on `address` inside `ns`.
    pub fn start(ns: &Netns, address: SocketAddr) -> Result<Self, ClusterError> {
        let mut server = Self {
            namespace: ns.name().to_owned(),
            address,
            accepted: Arc::new(AtomicU64::new(0)),
            serving: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// The address it listens on while running.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What the agent's metrics call it: `address:port`.
    pub fn label(&self) -> String {
        self.address.to_string()
    }

    /// Connections accepted so far (each health check attempt that reached it).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes the listener: once this returns, connections to the address are refused.
    pub fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.stop.store(true, Ordering::Relaxed);
            let _ = serving.thread.join();
        }
    }

    /// Listens again (nothing happens while it runs).
    pub fn resume(&mut self) -> Result<(), ClusterError> {
        if self.serving.is_some() {
            return Ok(());
        }
        let address = self.address;
        let listener =
            netns::run_in_named(&self.namespace, move || TcpListener::bind(address))?.map_err(
                ClusterError::io(format!("listening on {address} in {}", self.namespace)),
            )?;
        listener
            .set_nonblocking(true)
            .map_err(ClusterError::io("a non-blocking listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&self.accepted));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((connection, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            drop(connection);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => std::thread::sleep(ACCEPT_POLL),
                    }
                }
            })
        };
        self.serving = Some(Serving { stop, thread });
        Ok(())
    }
}

impl Drop for TcpRealServer {
    fn drop(&mut self) {
        self.stop();
    }
}
