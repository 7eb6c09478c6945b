//! keepalived's value syntax: decimal timers in seconds (microsecond resolution), integers in
//! ranges, booleans (`on|off|true|false|yes|no`), and reporting of values keepalived refuses.

use std::time::Duration;

use crate::ast::Statement;
use crate::report::{ItemKind, Report};

/// A timer in seconds with up to six decimals (`1`, `0.5`, `2.71828`).
pub fn timer(s: &str) -> Option<Duration> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 6
    {
        return None;
    }
    let seconds: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let micros: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    Duration::from_secs(seconds).checked_add(Duration::from_micros(micros))
}

/// A non-negative decimal integer in `min..=max`.
pub fn unsigned(s: &str, min: u64, max: u64) -> Option<u64> {
    if !s.bytes().all(|b| b.is_ascii_digit()) || s.is_empty() {
        return None;
    }
    s.parse::<u64>().ok().filter(|v| (min..=max).contains(v))
}

/// A decimal integer (optionally signed) in `min..=max`.
pub fn int(s: &str, min: i64, max: i64) -> Option<i64> {
    s.parse::<i64>().ok().filter(|v| (min..=max).contains(v))
}

/// `on|true|yes` or `off|false|no`.
pub fn boolean(s: &str) -> Option<bool> {
    match s {
        "on" | "true" | "yes" => Some(true),
        "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

/// An optional boolean argument: absent means `true`.
pub fn flag(stmt: &Statement, report: &mut Report, what: &str) -> Option<bool> {
    match stmt.word(1) {
        None => Some(true),
        Some(v) => {
            let parsed = boolean(v);
            if parsed.is_none() {
                refuse(report, stmt, what, "takes on, off, true, false, yes or no");
            }
            parsed
        }
    }
}

/// Word 1 of `stmt`, or a report that the keyword needs a value.
pub fn value<'a>(stmt: &'a Statement, report: &mut Report, what: &str) -> Option<&'a str> {
    let v = stmt.word(1);
    if v.is_none() {
        refuse(report, stmt, what, "needs a value");
    }
    v
}

/// Reports a value keepalived refuses (it logs an error and keeps its default).
pub fn refuse(report: &mut Report, stmt: &Statement, what: &str, why: &str) {
    report.warn(
        ItemKind::Invalid,
        &stmt.at,
        format!(
            "{:?} in {what} {why}; keepalived ignores it, and so does import",
            stmt.text()
        ),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_decimal_seconds_to_the_microsecond() {
        assert_eq!(timer("1"), Some(Duration::from_secs(1)));
        assert_eq!(timer("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(timer(".25"), Some(Duration::from_millis(250)));
        assert_eq!(timer("2.718281"), Some(Duration::from_micros(2_718_281)));
        assert_eq!(timer("1.2345678"), None);
        assert_eq!(timer("-1"), None);
        assert_eq!(timer("1s"), None);
        assert_eq!(timer("."), None);
    }

    #[test]
    fn integers_and_booleans_are_checked() {
        assert_eq!(unsigned("51", 1, 255), Some(51));
        assert_eq!(unsigned("256", 1, 255), None);
        assert_eq!(unsigned("+5", 0, 9), None);
        assert_eq!(int("-20", -253, 253), Some(-20));
        assert_eq!(boolean("yes"), Some(true));
        assert_eq!(boolean("0"), None);
    }
}
