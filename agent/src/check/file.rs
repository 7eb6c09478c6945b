//! File trackers (keepalived `track_file`): a file holding an integer, read every interval.
//!
//! Semantics: the file's first whitespace-separated token is parsed as a decimal `i64`; an empty
//! (or whitespace-only) file reads as 0, like keepalived. A missing or unreadable file, one
//! larger than [`MAX_FILE_BYTES`], or one whose first token is not an integer, is
//! [`Observation::Unreadable`], which puts the instance in FAULT whatever the weight (see
//! [`super::aggregate::contribution`]).
//!
//! Reads run on tokio's blocking threads and never read more than [`MAX_FILE_BYTES`] + 1 bytes:
//! a file on a hung mount stalls only its own tracker, and a huge file is an error, not a
//! memory blow-up.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::Slot;
use super::aggregate::Observation;

/// How a file tracker reads its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProbe {
    /// The file to read.
    pub path: PathBuf,
    /// Time between two reads.
    pub interval: Duration,
}

/// What a file's contents mean. Pure.
pub fn parse_value(contents: &str) -> Observation {
    match contents.split_whitespace().next() {
        None => Observation::Value(0),
        Some(token) => token
            .parse::<i64>()
            .map_or(Observation::Unreadable, Observation::Value),
    }
}

/// The most a tracked file may hold: an integer and some whitespace fit many times over.
pub const MAX_FILE_BYTES: u64 = 4096;

/// Reads and parses the file now, blocking; with why it is unreadable when it is.
pub fn read_now(path: &Path) -> (Observation, Option<String>) {
    match read_bounded(path) {
        Ok(text) => {
            let observation = parse_value(&text);
            let detail = (observation == Observation::Unreadable)
                .then(|| "the first token is not an integer".to_owned());
            (observation, detail)
        }
        Err(reason) => (Observation::Unreadable, Some(reason)),
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// [`read_now`] on a blocking thread.
async fn read(path: &Path) -> (Observation, Option<String>) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || read_now(&path))
        .await
        .unwrap_or_else(|error| (Observation::Unreadable, Some(error.to_string())))
}

/// The tracker task: read at once, then every `interval`; report every change.
pub(crate) async fn track(probe: FileProbe, slot: Slot) {
    let mut ticker = tokio::time::interval(probe.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (observation, detail) = read(&probe.path).await;
        slot.note(detail);
        slot.report_counting_failure_on_change(observation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_with_surrounding_whitespace() {
        assert_eq!(parse_value("42\n"), Observation::Value(42));
        assert_eq!(parse_value("  -7  \n"), Observation::Value(-7));
        assert_eq!(parse_value("+3"), Observation::Value(3));
        assert_eq!(parse_value("5 trailing words"), Observation::Value(5));
    }

    #[test]
    fn empty_file_reads_as_zero() {
        assert_eq!(parse_value(""), Observation::Value(0));
        assert_eq!(parse_value(" \n\t"), Observation::Value(0));
    }

    #[test]
    fn non_integer_contents_are_unreadable() {
        assert_eq!(parse_value("up"), Observation::Unreadable);
        assert_eq!(parse_value("1.5"), Observation::Unreadable);
        assert_eq!(
            parse_value("99999999999999999999999"),
            Observation::Unreadable
        );
    }

    #[test]
    fn missing_file_is_unreadable_and_says_why() {
        let (observation, detail) = read_now(Path::new("/nonexistent/kube-vrrp/track"));
        assert_eq!(observation, Observation::Unreadable);
        assert!(detail.is_some_and(|d| d.contains("No such file")));
    }

    #[test]
    fn a_file_larger_than_the_limit_is_unreadable_without_being_read_whole() {
        let path = std::env::temp_dir().join(format!("kvtrack-{}-huge", std::process::id()));
        // 1 MiB of digits: an integer token, but far past the limit.
        std::fs::write(&path, "7".repeat(1 << 20)).unwrap();
        let (observation, detail) = read_now(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(observation, Observation::Unreadable);
        assert_eq!(detail.as_deref(), Some("larger than 4096 bytes"));
    }

    #[test]
    fn a_file_within_the_limit_is_read() {
        let path = std::env::temp_dir().join(format!("kvtrack-{}-small", std::process::id()));
        std::fs::write(&path, format!("{}12\n", " ".repeat(4000))).unwrap();
        let read = read_now(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(read, (Observation::Value(12), None));
    }
}
