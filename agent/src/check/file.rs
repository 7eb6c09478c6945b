//! File trackers (keepalived `track_file`): a file holding an integer, read every interval.
//!
//! Semantics: the file's first whitespace-separated token is parsed as a decimal `i64`; an empty
//! (or whitespace-only) file reads as 0, like keepalived. A missing or unreadable file, or one
//! whose first token is not an integer, is [`Observation::Unreadable`], which puts the instance in
//! FAULT whatever the weight (see [`super::aggregate::contribution`]).

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

/// Reads and parses the file now (blocking; used once at spawn so the first state is known).
pub fn read_now(path: &Path) -> Observation {
    std::fs::read_to_string(path).map_or(Observation::Unreadable, |text| parse_value(&text))
}

async fn read(path: &Path) -> Observation {
    tokio::fs::read_to_string(path)
        .await
        .map_or(Observation::Unreadable, |text| parse_value(&text))
}

/// The tracker task: read every `interval`, report every change.
pub(crate) async fn track(probe: FileProbe, slot: Slot) {
    let mut ticker = tokio::time::interval(probe.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let observation = read(&probe.path).await;
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
    fn missing_file_is_unreadable() {
        assert_eq!(
            read_now(Path::new("/nonexistent/kube-vrrp/track")),
            Observation::Unreadable
        );
    }
}
