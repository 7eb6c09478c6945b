//! `DurationString`: durations written as strings ("1s", "100ms", "1m30s") in the API.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern every duration string matches (the same grammar as Go's `time.ParseDuration`
/// and CEL's `duration()`, without signs): `0`, or one or more `<number><unit>` pairs with
/// units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`; numbers may have a fractional part.
pub const DURATION_PATTERN: &str = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$";

/// Longest duration string accepted by the schema (bounds CEL cost estimation).
pub const DURATION_MAX_LENGTH: u32 = 32;

/// A duration kept as the string the user wrote, e.g. `"1s"`, `"100ms"`, `"1m30s"`.
///
/// It (de)serialises as a plain string so manifests read naturally and CEL can call
/// `duration()` on it; [`DurationString::parse`] turns it into a [`Duration`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationString(String);

/// Why a duration string could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty (write e.g. \"1s\" or \"100ms\")")]
    Empty,
    #[error("duration {0:?}: expected a number at byte {1}")]
    MissingNumber(String, usize),
    #[error("duration {0:?}: number at byte {1} has no unit (use ns, us, ms, s, m or h)")]
    MissingUnit(String, usize),
    #[error("duration {0:?}: unknown unit {1:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit(String, String),
    #[error("duration {0:?} is too long to represent")]
    Overflow(String),
}

impl DurationError {
    /// A stable name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::MissingNumber(..) => "missing_number",
            Self::MissingUnit(..) => "missing_unit",
            Self::UnknownUnit(..) => "unknown_unit",
            Self::Overflow(..) => "overflow",
        }
    }
}

impl DurationString {
    /// Wraps a string without checking it; call [`DurationString::parse`] to check.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The shortest exact string for `d` in one unit: `"0s"`, `"1s"`, `"100ms"`, `"1500ms"`,
    /// `"250us"`, `"7ns"`, `"2m"`, `"1h"`.
    pub fn from_duration(d: Duration) -> Self {
        let nanos = d.as_nanos();
        let units: [(u128, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        if nanos == 0 {
            return Self("0s".to_owned());
        }
        for (size, unit) in units {
            if nanos.is_multiple_of(size) {
                return Self(format!("{}{unit}", nanos / size));
            }
        }
        // Unreachable in practice: every count of nanoseconds is a multiple of 1 ns.
        Self(format!("{nanos}ns"))
    }

    /// The string as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the string into a [`Duration`].
    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for DurationString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Duration> for DurationString {
    fn from(d: Duration) -> Self {
        Self::from_duration(d)
    }
}

impl From<&str> for DurationString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl JsonSchema for DurationString {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "DurationString".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
        })
    }
}

/// Nanoseconds in one `unit`, or `None` for an unknown unit.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let overflow = || DurationError::Overflow(s.to_owned());
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut total: u128 = 0;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return Err(DurationError::MissingNumber(s.to_owned(), start));
        }
        let whole = &s[start..pos];
        let mut frac = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            let frac_start = pos + 1;
            pos = frac_start;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            if pos == frac_start {
                return Err(DurationError::MissingNumber(s.to_owned(), frac_start));
            }
            frac = &s[frac_start..pos];
        }
        let unit_start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_digit() && bytes[pos] != b'.' {
            pos += 1;
        }
        let unit = &s[unit_start..pos];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(s.to_owned(), start));
        }
        let size = unit_nanos(unit)
            .ok_or_else(|| DurationError::UnknownUnit(s.to_owned(), unit.to_owned()))?;
        let whole: u128 = whole.parse().map_err(|_| overflow())?;
        let mut part = whole.checked_mul(size).ok_or_else(overflow)?;
        // The fractional part, truncated to whole nanoseconds like Go does.
        let mut scale = size;
        for digit in frac.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            part = part
                .checked_add(u128::from(digit - b'0') * scale)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| overflow())?;
    // Always below 1e9, so it fits.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Duration, DurationError> {
        DurationString::new(s).parse()
    }

    #[test]
    fn simple_units_parse_to_their_durations() {
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse("250µs").unwrap(), Duration::from_micros(250));
        assert_eq!(parse("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn compound_and_fractional_durations_add_up() {
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("40.95s").unwrap(), Duration::from_millis(40_950));
        assert_eq!(parse("1h2m3s4ms").unwrap(), Duration::new(3723, 4_000_000));
        assert_eq!(parse("0.000000001s").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse("1.0000000019s").unwrap(), Duration::new(1, 1));
    }

    #[test]
    fn malformed_durations_name_the_problem() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("10"), Err(DurationError::MissingUnit("10".into(), 0)));
        assert_eq!(parse("s"), Err(DurationError::MissingNumber("s".into(), 0)));
        assert_eq!(
            parse("1.s"),
            Err(DurationError::MissingNumber("1.s".into(), 2))
        );
        assert_eq!(
            parse("-1s"),
            Err(DurationError::MissingNumber("-1s".into(), 0))
        );
        assert_eq!(
            parse("5 seconds"),
            Err(DurationError::UnknownUnit(
                "5 seconds".into(),
                " seconds".into()
            ))
        );
        assert_eq!(
            parse("1d"),
            Err(DurationError::UnknownUnit("1d".into(), "d".into()))
        );
        assert_eq!(
            parse("99999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(
                "99999999999999999999999999999999999999h".into()
            ))
        );
    }

    #[test]
    fn from_duration_writes_the_shortest_exact_unit() {
        assert_eq!(DurationString::from_duration(Duration::ZERO).as_str(), "0s");
        assert_eq!(
            DurationString::from_duration(Duration::from_secs(1)).as_str(),
            "1s"
        );
        assert_eq!(
            DurationString::from_duration(Duration::from_millis(1500)).as_str(),
            "1500ms"
        );
        assert_eq!(
            DurationString::from_duration(Duration::from_secs(120)).as_str(),
            "2m"
        );
        assert_eq!(
            DurationString::from_duration(Duration::from_nanos(1_000_001)).as_str(),
            "1000001ns"
        );
    }

    #[test]
    fn from_duration_round_trips_through_parse() {
        for nanos in [0, 1, 999, 10_000_000, 1_000_000_000, 61_500_000_000] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(DurationString::from_duration(d).parse().unwrap(), d);
        }
    }

    #[test]
    fn serialises_as_a_plain_string() {
        let d = DurationString::new("100ms");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"100ms\"");
        let back: DurationString = serde_json::from_str("\"100ms\"").unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn schema_is_a_string_with_the_duration_pattern() {
        let schema = schemars::schema_for!(DurationString);
        let v = schema.as_value();
        assert_eq!(v["type"], "string");
        assert_eq!(v["pattern"], DURATION_PATTERN);
    }
}
