//! The agent's kernel edges: raw VRRP sockets, VIP addresses, GARP/NA, interface and address
//! events, the Accept_Mode filter (nftables), virtual MAC interfaces (macvlan), a precise
//! timer (timerfd), and how the plain threads sleep (epoll).
//!
//! Everything here is a thin adapter over a kernel interface; the pure parts (frame builders,
//! the GARP schedule, the link debounce) are unit-tested, the I/O parts are
//! tested for real in network namespaces (`agent/tests/net_*.rs`).

pub mod accept;
pub mod address;
pub mod announce;
pub mod arrival;
pub mod conflict;
pub mod control;
pub mod error;
pub mod frame_socket;
pub mod link;
pub mod socket;
pub(crate) mod sys;
pub mod timer;
pub mod vmac;
pub(crate) mod waiter;

pub use error::NetError;

/// Opens an rtnetlink connection in the calling thread's network namespace and drives it on the
/// current tokio runtime. The returned handle is cheap to clone; the connection task ends when
/// every handle is dropped.
pub fn rtnetlink_connect() -> Result<rtnetlink::Handle, NetError> {
    let (connection, handle, _messages) =
        rtnetlink::new_connection().map_err(|source| NetError::Io {
            op: "open rtnetlink socket",
            source,
        })?;
    tokio::spawn(connection);
    Ok(handle)
}
