//! A small seeded random source (SplitMix64): a chaos run prints its seed, and the same seed
//! replays the same choices.

use std::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit word of state.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A seed from the clock and the pid, for a run that was given none.
    pub fn fresh_seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // The low 64 bits vary fastest; the pid separates runs started in the same nanosecond.
        #[allow(clippy::cast_possible_truncation)]
        let low = nanos as u64;
        low ^ (u64::from(std::process::id()) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is below 2^-40 for the small `n` used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// An index into a slice of `len` items (`len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    /// A duration in `0..=max`, in whole milliseconds.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.between(0, max_ms))
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_from_seed_zero_gives_the_published_first_outputs() {
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn the_same_seed_replays_the_same_choices_and_bounds_hold() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..1000 {
            let (x, y) = (a.between(3, 9), b.between(3, 9));
            assert_eq!(x, y);
            assert!((3..=9).contains(&x));
            assert!(a.index(3) < 3 && b.index(3) < 3);
            assert!(a.duration(Duration::from_millis(5)) <= Duration::from_millis(5));
            b.duration(Duration::from_millis(5));
        }
        assert!(!Rng::new(1).chance(0));
        assert!(Rng::new(1).chance(100));
    }
}
