//! The lab benchmark's record of what it measured: one JSON line per measured value, appended
//! to a file kept in the repository (`bench/lab-bench.jsonl`), so that later runs, on other
//! days and other commits, can be set beside earlier ones ([`crate::bench_table`]).

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// A failover's time from the client, minus the RFC's value for it, in ms.
    FailoverOverRfcMs,
    /// User-space instructions per second of steady state (callgrind).
    InstructionsPerSecond,
    /// User-space instructions per advert sent (MASTER) or received (BACKUP).
    InstructionsPerAdvert,
    /// CPU time in percent of one core.
    CpuPercent,
    /// Resident memory of the daemon's processes, in MiB.
    RssMib,
    /// Context switches per second, all threads.
    WakeupsPerSecond,
}

impl Measure {
    pub fn label(self) -> &'static str {
        match self {
            Self::FailoverOverRfcMs => "failover − RFC value, ms",
            Self::InstructionsPerSecond => "instructions / s",
            Self::InstructionsPerAdvert => "instructions / advert",
            Self::CpuPercent => "CPU, % of a core",
            Self::RssMib => "RSS, MiB",
            Self::WakeupsPerSecond => "wakeups / s",
        }
    }

    /// Decimal places a value is written with.
    pub fn decimals(self) -> usize {
        match self {
            Self::InstructionsPerSecond | Self::InstructionsPerAdvert => 0,
            Self::FailoverOverRfcMs | Self::RssMib | Self::WakeupsPerSecond => 1,
            Self::CpuPercent => 3,
        }
    }
}

/// Where and when one `lab-bench` invocation ran; the same for all its values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// When the invocation started, `YYYY-MM-DD HH:MM UTC`.
    pub started: String,
    /// CPU model, cores, kernel.
    pub machine: String,
    /// The commit the agent was built from (`git describe --always --dirty`).
    pub commit: String,
}

impl RunInfo {
    /// The day, `YYYY-MM-DD`.
    pub fn day(&self) -> &str {
        self.started.get(..10).unwrap_or(&self.started)
    }
}

/// One measured value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub run: RunInfo,
    /// The 1-minute load average when this measurement began.
    pub load: f64,
    /// The bench's case name: `death-v2-1s`, `steady-1x1s`, ...
    pub case: String,
    /// `keepalived` or `kube-vrrp-agent`.
    pub daemon: String,
    /// `MASTER` or `BACKUP` for a steady-state value; none for a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub measure: Measure,
    pub value: f64,
    /// Which repeat of a steady-state case the value comes from (from 1). Within one run the
    /// daemons measure each repeat in turn, back to back, so the two daemons' values of one
    /// repeat are a pair ([`crate::bench_table`] compares them pair by pair). None for a
    /// failover, and in records written before repeats were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
}

/// Appends `records` to the file at `path` (created, with its directory, if missing), one JSON
/// object per line.
pub fn append(path: &Path, records: &[Record]) -> std::io::Result<()> {
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Every record of `text`; an error names the first line that is not one.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", index + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: &str, case: &str, daemon: &str, value: f64) -> Record {
        Record {
            run: RunInfo {
                started: started.into(),
                machine: "AMD EPYC, 2 cores, Linux 6.1".into(),
                commit: "abc1234".into(),
            },
            load: 0.5,
            case: case.into(),
            daemon: daemon.into(),
            role: Some("MASTER".into()),
            measure: Measure::InstructionsPerSecond,
            value,
            repeat: Some(1),
        }
    }

    #[test]
    fn records_appended_to_a_file_read_back_the_same_and_a_bad_line_is_named() {
        let dir = std::env::temp_dir().join(format!("bench-record-{}", std::process::id()));
        let path = dir.join("new").join("runs.jsonl");
        let first = record("2026-12-01 05:00 UTC", "steady-1x1s", "keepalived", 1353.0);
        let mut second = record(
            "2026-12-02 05:00 UTC",
            "death-v2-1s",
            "kube-vrrp-agent",
            0.8,
        );
        second.role = None;
        second.measure = Measure::FailoverOverRfcMs;
        second.repeat = None;
        append(&path, std::slice::from_ref(&first)).unwrap();
        append(&path, std::slice::from_ref(&second)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.lines().next().unwrap().contains(r#""repeat":1"#),
            "{text}"
        );
        let failover = text.lines().nth(1).unwrap();
        assert!(
            !failover.contains("role") && !failover.contains("repeat"),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), vec![first, second]);
        assert_eq!(
            parse(&format!("{text}\n{{\"case\": 1}}\n"))
                .unwrap_err()
                .split(':')
                .next(),
            Some("line 4")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_written_before_repeats_were_recorded_reads_as_no_repeat() {
        let line = r#"{"started":"2026-12-01 06:47 UTC","machine":"m","commit":"d8db22d","load":0.17,"case":"steady-1x1s","daemon":"keepalived","role":"MASTER","measure":"cpu_percent","value":0.5}"#;
        let records = parse(line).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].repeat, None);
        assert_eq!(records[0].measure, Measure::CpuPercent);
    }

    #[test]
    fn a_run_is_dated_by_the_day_it_started() {
        let r = record("2026-12-01 23:59 UTC", "steady-1x1s", "keepalived", 1.0);
        assert_eq!(r.run.day(), "2026-12-01");
    }
}
