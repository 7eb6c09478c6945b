//! A TCP forwarder from the host's loopback into a lab namespace, so that kubectl and Helm on
//! the host reach the API server that only the lab's namespaces can route to. Connections to
//! the target are opened from a thread inside the namespace; bytes are copied both ways.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::error::ClusterError;

/// How long a connection to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running forwarder; it stops accepting when dropped (open connections end with their
/// peers).
#[derive(Debug)]
pub struct Forwarder {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `target` as seen
    /// from namespace `netns` (its name as `ip netns` knows it).
    pub fn start(netns: &str, target: SocketAddr) -> Result<Self, ClusterError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(ClusterError::io(
            "listen on 127.0.0.1 for the API forwarder",
        ))?;
        let local = listener
            .local_addr()
            .map_err(ClusterError::io("forwarder address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, netns) = (stop.clone(), netns.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let netns = netns.clone();
                std::thread::spawn(move || {
                    if let Ok(server) = connect_in(&netns, target) {
                        splice(client, server);
                    }
                });
            }
        });
        Ok(Self { local, stop })
    }

    /// The host-side address, e.g. 127.0.0.1:40123.
    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200));
    }
}

/// Connects to `target` from inside namespace `netns`: the socket is created on a thread that
/// entered the namespace, and keeps it after the thread ends.
fn connect_in(netns: &str, target: SocketAddr) -> io::Result<TcpStream> {
    crate::netns::run_in_named(netns, move || {
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
    })
    .map_err(io::Error::other)?
}

/// Copies both directions until each side has closed.
fn splice(client: TcpStream, server: TcpStream) {
    let (Ok(mut client_read), Ok(mut server_read)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    let (mut client_write, mut server_write) = (client, server);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
}
