//! A wall clock of one agent's own, for the clock-step run: libfaketime preloaded into that
//! agent reads its offset from a file on every call (`FAKETIME_NO_CACHE=1`), so the run steps
//! the agent's CLOCK_REALTIME by editing the file, while CLOCK_MONOTONIC
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`) and the host's own clock stay as they are.

use std::path::{Path, PathBuf};

use crate::error::LabError;

/// libfaketime's thread-safe build (Debian package `libfaketime`, pulled in by `faketime`).
pub const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The offset file of one faked clock.
#[derive(Debug)]
pub struct FakeClock {
    file: PathBuf,
}

/// libfaketime's spelling of an offset from the real clock in seconds: `+3600`, `-3600`, `+0`.
pub fn offset_text(seconds: i64) -> String {
    if seconds < 0 {
        format!("{seconds}")
    } else {
        format!("+{seconds}")
    }
}

impl FakeClock {
    /// A clock at offset 0 kept in `file`. An error says how to install libfaketime when it
    /// is missing.
    pub fn new(file: &Path) -> Result<Self, LabError> {
        if !Path::new(LIBRARY).is_file() {
            return Err(LabError::Invalid(format!(
                "{LIBRARY} is missing: install the Debian package faketime (hack/install-deps.sh)"
            )));
        }
        let clock = Self {
            file: file.to_owned(),
        };
        clock.set_offset(0)?;
        Ok(clock)
    }

    /// The environment that puts a process on this clock.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", LIBRARY.to_owned()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
        ]
    }

    /// Steps the clock to `seconds` from the real time (written whole, then renamed into place,
    /// so the library never reads half a line).
    pub fn set_offset(&self, seconds: i64) -> Result<(), LabError> {
        let staged = self.file.with_extension("new");
        std::fs::write(&staged, format!("{}\n", offset_text(seconds)))
            .map_err(LabError::io(format!("write {}", staged.display())))?;
        std::fs::rename(&staged, &self.file)
            .map_err(LabError::io(format!("rename to {}", self.file.display())))
    }
}

/// An HTTP `Date` header (`Mon, 30 Nov 2026 12:02:24 GMT`) as a timestamp.
pub fn parse_http_date(text: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::parse(text).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_spelled_with_their_sign() {
        assert_eq!(offset_text(3600), "+3600");
        assert_eq!(offset_text(-3600), "-3600");
        assert_eq!(offset_text(0), "+0");
    }

    #[test]
    fn http_dates_are_read_as_utc_timestamps() {
        let at = parse_http_date("Mon, 30 Nov 2026 12:02:24 GMT").unwrap();
        assert_eq!(at.to_string(), "2026-11-30T12:02:24Z");
        assert!(parse_http_date("yesterday").is_none());
    }
}
