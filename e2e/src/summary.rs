//! Min, median and max of a sample, and counts written for tables (`1,234,567`).

use std::time::Duration;

/// Min, median and max of a non-empty sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary<T> {
    pub min: T,
    pub median: T,
    pub max: T,
}

/// The summary of `samples`; none for an empty sample.
pub fn summarize<T: Copy + PartialOrd + Median>(mut samples: Vec<T>) -> Option<Summary<T>> {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let (min, max) = (*samples.first()?, *samples.last()?);
    let mid = samples.len() / 2;
    let median = if samples.len().is_multiple_of(2) {
        T::mean(samples[mid - 1], samples[mid])
    } else {
        samples[mid]
    };
    Some(Summary { min, median, max })
}

/// The mean of two middle samples.
pub trait Median {
    fn mean(a: Self, b: Self) -> Self;
}

impl Median for Duration {
    fn mean(a: Self, b: Self) -> Self {
        (a + b) / 2
    }
}

impl Median for f64 {
    fn mean(a: Self, b: Self) -> Self {
        f64::midpoint(a, b)
    }
}

impl Summary<f64> {
    /// (max − min) ÷ median, in percent.
    pub fn spread_percent(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median * 100.0
        }
    }
}

/// `0.123 (0.100–0.150)`: median (min–max) with `decimals` places; `–` for no sample.
pub fn range_cell(summary: Option<Summary<f64>>, decimals: usize) -> String {
    summary.map_or("–".into(), |s| {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            s.median,
            s.min,
            s.max,
            d = decimals
        )
    })
}

/// `1,234,567`; `–` for a value that is not finite.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 && digits != "0" {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_min_median_and_max_of_odd_and_even_samples() {
        let ms = |v: u64| Duration::from_millis(v);
        let odd = summarize(vec![ms(30), ms(10), ms(20)]).unwrap();
        assert_eq!((odd.min, odd.median, odd.max), (ms(10), ms(20), ms(30)));
        let even = summarize(vec![ms(40), ms(10), ms(20), ms(30)]).unwrap();
        assert_eq!((even.min, even.median, even.max), (ms(10), ms(25), ms(40)));
        assert!(summarize(Vec::<Duration>::new()).is_none());
        let spread = summarize(vec![99.0, 100.0, 101.0]).unwrap();
        assert!((spread.spread_percent() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_range_cell_is_the_median_then_min_to_max_or_a_dash() {
        let summary = summarize(vec![0.15, 0.1, 0.123]);
        assert_eq!(range_cell(summary, 3), "0.123 (0.100–0.150)");
        assert_eq!(range_cell(summary, 1), "0.1 (0.1–0.1)");
        assert_eq!(range_cell(None, 2), "–");
    }

    #[test]
    fn counts_are_written_with_thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(-0.2), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-12_345.0), "-12,345");
        assert_eq!(thousands(f64::NAN), "–");
    }
}
