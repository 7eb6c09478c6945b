//! Real-server health checks of VirtualServers, with keepalived's semantics (its
//! `TCP_CHECK`, `HTTP_GET`/`SSL_GET` and `MISC_CHECK`), and their effects on the pool.
//!
//! Pure: [`machine`] (one real server's schedule, retries, rise/fall, first result),
//! [`pool`](mod@pool) (weights, inhibit, quorum, sorry server), [`spread`] (first-check phases),
//! [`health`] (the published snapshot), [`http_body`] (an answer's body framing), [`attempt`]
//! (a TCP or plain-HTTP attempt as sans-IO steps), [`deadlines`] (the loop's timers). Edges:
//! [`tcp`], [`http`] with [`tls`], [`command`] (scripts), built by [`probe`] from the
//! `healthCheck`; [`runner`] runs them on a thread of their own (HTTPS and scripts as tokio
//! tasks), handing TCP and plain-HTTP checks to [`poller`], an epoll loop on one more thread
//! that owns their sockets and deadlines (started again should it end); [`memory`] keeps
//! verdicts across restarts.
//!
//! Where this differs from keepalived, and why:
//! - `rise`/`fall` exist (keepalived's checkers have none; `vrrp_script` has them); with 1/1,
//!   the default, the behaviour is keepalived's.
//! - Verdicts are remembered across agent restarts (keepalived starts every real server
//!   alive): a restarting agent neither sends clients to a dead server nor drops a live one.
//! - Checks start at a fixed rate and at a hashed phase (keepalived: `delay_loop` after each
//!   check's end, first one after a random `warmup`); only a check that ends after its
//!   successor was due is followed an interval after its end, as keepalived's always are.
//!   Attempts in flight are bounded.
//! - The body digest is SHA-256 (keepalived: MD5); HTTPS certificates can be verified.
//! - The quorum has no hysteresis (no field for it), and its up/down scripts are Events.

pub mod attempt;
pub mod command;
pub mod deadlines;
pub mod health;
pub mod http;
pub mod http_body;
pub mod machine;
pub mod memory;
pub mod outcome;
pub mod poller;
pub mod pool;
pub mod probe;
pub mod runner;
pub mod spread;
pub mod tcp;
pub mod tls;

pub use health::{HealthSnapshot, RealServerHealth, VirtualServerHealth};
pub use machine::{CheckMachine, CheckTimers};
pub use memory::Memory;
pub use outcome::Outcome;
pub use pool::{Pool, Quorum, pool};
pub use runner::{HealthChecks, HealthOptions};
