//! Instructions a guest process executes, counted by valgrind's callgrind inside the guest
//! (keepalived's checker needs the guest's IPVS, so it can only be counted there): the archive
//! that carries callgrind in, the command prefix that runs a daemon under it, and the count
//! over a window. As on the host ([`crate::callgrind`]), a window opens with a dump (which
//! zeroes the counters) and closes with another; dumps are asked for with `vgdb`, since the
//! guest has no perl for `callgrind_control`.
//!
//! Instruction counts do not depend on how fast the emulated CPU runs, which is what makes the
//! guest's figures comparable between runs on a loaded host.

use std::path::Path;
use std::time::{Duration, Instant};

use super::image::{Initramfs, which};
use super::{Guest, GuestError};

/// Where valgrind looks for its tools (Debian's build).
const LIBEXEC: &str = "/usr/libexec/valgrind";

/// The files of valgrind that running callgrind needs.
const TOOL_FILES: [&str; 3] = [
    "callgrind-amd64-linux",
    "vgpreload_core-amd64-linux.so",
    "default.supp",
];

/// Where the dumps go in the guest (`callgrind.PID.N`): a folder of the archive, since
/// `/tmp` and `/run` are mounted over at boot.
pub const DUMPS: &str = "/callgrind";

/// An archive carrying valgrind's launcher, callgrind, and `vgdb` at their host paths.
pub fn archive() -> Result<Vec<u8>, GuestError> {
    let mut image = Initramfs::new();
    // Debian's `valgrind` is a shell wrapper around `valgrind.bin` that only adds C++ and
    // debug-library settings: the launcher itself goes in its place.
    image.program("/usr/bin/valgrind", &which("valgrind.bin")?, false)?;
    image.program("/usr/bin/vgdb", &which("vgdb")?, false)?;
    for name in TOOL_FILES {
        let path = format!("{LIBEXEC}/{name}");
        image.file(&path, Path::new(&path))?;
    }
    image.bytes(
        &format!("{DUMPS}/README"),
        0o644,
        b"callgrind dumps of the guest's daemons\n",
    );
    Ok(image.finish())
}

/// The words before a daemon's command line in the guest: callgrind, one dump file per
/// process (keepalived forks its checker, which valgrind follows).
pub fn prefix() -> String {
    format!("/usr/bin/valgrind --tool=callgrind --quiet --callgrind-out-file={DUMPS}/callgrind.%p")
}

/// The number of `pid`'s newest dump, if any.
fn latest_dump(guest: &mut Guest, pid: u32) -> Result<Option<u32>, GuestError> {
    let text = guest.ok(&format!("ls {DUMPS} 2>/dev/null || true"))?;
    let prefix = format!("callgrind.{pid}.");
    Ok(text
        .split_whitespace()
        .filter_map(|name| name.strip_prefix(&prefix)?.parse().ok())
        .max())
}

/// Dumps `pid`'s counters (which zeroes them) and returns the instructions the dump holds:
/// what the process executed since its previous dump (or since it started).
pub fn dump(guest: &mut Guest, pid: u32) -> Result<u64, GuestError> {
    let before = latest_dump(guest, pid)?;
    guest.run_for(
        &format!("/usr/bin/vgdb --pid={pid} dump"),
        Duration::from_secs(120),
    )?;
    let timeout = Duration::from_secs(120);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(n) = latest_dump(guest, pid)?
            && Some(n) != before
        {
            let text = guest.ok(&format!(
                "grep -E '^(totals|summary):' {DUMPS}/callgrind.{pid}.{n} || true"
            ))?;
            if let Some(total) = crate::callgrind::parse_total(&text) {
                return Ok(total);
            }
        }
        if Instant::now() >= deadline {
            return Err(GuestError::Invalid(format!(
                "no callgrind dump of guest process {pid} within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
