//! The driver's plain threads (the ticker, the receive threads): started under the scheduling
//! policy of the thread that starts them. The runtime's threads run under the real-time policy
//! when asked for (see `crate::process`); a new thread does not inherit it. The ticker also runs
//! the split-brain probes, which so share the adverts' policy (a few frames per probe round).

use crate::net::sys;

/// Starts `body` on a thread named `name`, under `SCHED_RR` at the calling thread's priority
/// when the calling thread runs under it (a failure to copy it is logged; the thread runs
/// anyway, under the normal scheduler).
pub fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let policy = sys::scheduler().ok();
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            if let Some((nix::libc::SCHED_RR, priority)) = policy
                && let Ok(priority) = u8::try_from(priority)
                && let Err(error) = sys::set_round_robin(priority)
            {
                tracing::error!(%thread, %error, priority, "the thread stays under the normal scheduler");
            }
            body();
        })
        .map(drop)
}
