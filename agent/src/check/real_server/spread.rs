//! When each real server's first check starts: at a phase within the interval fixed by a hash
//! of its identity, so that 1,000 real servers checked every second start about one per
//! millisecond instead of all at once, and a restart or an unrelated change keeps each one's
//! phase. (keepalived delays each checker's start by a random time up to the interval, its
//! `warmup`; a hash gives the same spread, and the same one every time.) Pure.

use std::time::Duration;

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The phase of the real server named `key` within `interval`: in `0..interval`.
pub fn phase(key: &str, interval: Duration) -> Duration {
    let nanos = interval.as_nanos();
    if nanos == 0 {
        return Duration::ZERO;
    }
    // Finalise the hash so that keys differing in their last bytes spread too.
    let mut h = fnv1a(key.as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let offset = u128::from(h) % nanos;
    Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_real_servers_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(1);
        let mut bins = [0u32; 10];
        for i in 0..1000u32 {
            let key = format!("web-80/10.1.{}.{}:8080", i / 250, i % 250);
            let p = phase(&key, interval);
            assert!(p < interval);
            bins[(p.as_millis() / 100) as usize] += 1;
        }
        // A uniform spread puts 100 in each 100 ms bin; allow the binomial noise (±4 sigma).
        for (i, n) in bins.iter().enumerate() {
            assert!((62..=138).contains(n), "bin {i} holds {n}: {bins:?}");
        }
    }

    #[test]
    fn the_phase_is_the_same_every_time_and_differs_between_servers() {
        let interval = Duration::from_secs(5);
        assert_eq!(
            phase("a/10.0.0.1:80", interval),
            phase("a/10.0.0.1:80", interval)
        );
        assert_ne!(
            phase("a/10.0.0.1:80", interval),
            phase("a/10.0.0.2:80", interval)
        );
        assert_eq!(phase("x", Duration::ZERO), Duration::ZERO);
    }
}
