//! Priority ranking for nodes that no `priorities[]` entry names: a stable, per-VirtualIP
//! spread below the explicit priorities.
//!
//! Each (VirtualIP, node) pair gets a 64-bit score from a fixed hash (FNV-1a with a
//! SplitMix64 finaliser, so it never changes between releases or machines). The score picks
//! a preferred priority ("bucket") in `1..=ceiling`, where the ceiling is
//! [`DEFAULT_CEILING`] or one less than the lowest explicit priority of the VirtualIP,
//! whichever is lower. Nodes are placed in descending bucket order (then descending
//! score, then name); a node whose bucket is taken moves down to the next free priority,
//! wrapping from 1 to the ceiling.
//!
//! Consequences:
//! - a node's priority depends on the VirtualIP's name, its own name and only those other
//!   nodes whose buckets collide with it, so adding or removing a node leaves every other
//!   node's priority unchanged unless their buckets collide (with n unlisted nodes and a
//!   ceiling of 100, a newcomer collides with probability about n/100);
//! - the order differs per VirtualIP, which spreads MASTERs over the nodes;
//! - ties are impossible while there are at most `ceiling` unlisted nodes. Beyond that
//!   (or when an explicit priority of 1 leaves no room) the surplus nodes share the
//!   lowest priority and VRRP breaks the tie by the higher primary address.

/// Highest priority the operator gives a node that no `priorities[]` entry matches, when
/// the explicit priorities leave room (keepalived's default priority).
pub const DEFAULT_CEILING: u8 = 100;

/// The highest priority for unlisted nodes of a VirtualIP whose explicit priorities are
/// `explicit` (any order): below all of them, at most [`DEFAULT_CEILING`], at least 1.
pub fn ceiling(explicit: impl IntoIterator<Item = u8>) -> u8 {
    let lowest = explicit.into_iter().min().unwrap_or(u8::MAX);
    DEFAULT_CEILING.min(lowest.saturating_sub(1)).max(1)
}

/// The stable score of a (VirtualIP, node) pair.
pub fn score(virtual_ip: &str, node: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    let mut h = FNV_OFFSET;
    // A 0 byte separates the names so ("ab", "c") and ("a", "bc") differ; names hold no 0.
    for b in virtual_ip.bytes().chain([0]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finaliser: spreads FNV's weak low bits over the whole word.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Priorities for the unlisted `nodes` of `virtual_ip`, in the same order as `nodes`.
/// `nodes` must not hold duplicates.
pub fn rank_unlisted(virtual_ip: &str, ceiling: u8, nodes: &[&str]) -> Vec<u8> {
    let ceiling = ceiling.max(1);
    let mut order: Vec<(u8, u64, usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let s = score(virtual_ip, n);
            let bucket = ceiling - (s % u64::from(ceiling)) as u8;
            (bucket, s, i)
        })
        .collect();
    order.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| nodes[a.2].cmp(nodes[b.2]))
    });
    let mut taken = [false; 256];
    let mut free = usize::from(ceiling);
    let mut out = vec![1; nodes.len()];
    for (bucket, _, i) in order {
        let mut p = bucket;
        if free == 0 {
            // More unlisted nodes than priorities: the surplus shares the lowest one.
            out[i] = 1;
            continue;
        }
        while taken[usize::from(p)] {
            p = if p == 1 { ceiling } else { p - 1 };
        }
        taken[usize::from(p)] = true;
        free -= 1;
        out[i] = p;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn ceiling_is_below_the_lowest_explicit_priority_and_at_most_one_hundred() {
        assert_eq!(ceiling([]), 100);
        assert_eq!(ceiling([150, 120]), 100);
        assert_eq!(ceiling([150, 90]), 89);
        assert_eq!(ceiling([1]), 1);
        assert_eq!(ceiling([2]), 1);
    }

    #[test]
    fn score_is_fixed_across_releases() {
        // Pinned values: changing the hash would reshuffle every cluster's priorities.
        assert_eq!(score("web", "node-a"), score("web", "node-a"));
        assert_ne!(score("web", "node-a"), score("web", "node-b"));
        assert_ne!(score("ab", "c"), score("a", "bc"));
        assert_eq!(score("web", "node-a"), 0x5083_ad40_29f4_b571);
    }

    #[test]
    fn unlisted_priorities_are_distinct_and_within_the_ceiling() {
        let all = names(100);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let p = rank_unlisted("web", 100, &refs);
        let distinct: BTreeSet<u8> = p.iter().copied().collect();
        assert_eq!(distinct.len(), 100);
        assert!(p.iter().all(|&x| (1..=100).contains(&x)));
    }

    #[test]
    fn adding_a_node_without_collision_changes_no_other_priority() {
        let bucket = |n: &str| 100 - (score("web", n) % 100) as u8;
        // Six names whose buckets differ.
        let mut seen = BTreeSet::new();
        let all: Vec<String> = names(40)
            .into_iter()
            .filter(|n| seen.insert(bucket(n)))
            .take(6)
            .collect();
        assert_eq!(all.len(), 6);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let before = rank_unlisted("web", 100, &refs[..5]);
        let after = rank_unlisted("web", 100, &refs);
        assert_eq!(&after[..5], &before[..]);
        assert_eq!(after[5], bucket(refs[5]));
    }

    #[test]
    fn a_colliding_newcomer_with_a_lower_score_moves_itself_down() {
        // node-1 and node-4 share bucket 40 for "web"; node-1 scores higher.
        let bucket = |n: &str| 100 - (score("web", n) % 100) as u8;
        assert_eq!(bucket("node-1"), bucket("node-4"));
        assert!(score("web", "node-1") > score("web", "node-4"));
        let before = rank_unlisted("web", 100, &["node-0", "node-1", "node-2", "node-3"]);
        let after = rank_unlisted(
            "web",
            100,
            &["node-0", "node-1", "node-2", "node-3", "node-4"],
        );
        assert_eq!(&after[..4], &before[..]);
        assert_eq!(after[4], bucket("node-4") - 1);
    }

    #[test]
    fn surplus_nodes_share_priority_one_when_the_range_is_full() {
        let all = names(5);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let p = rank_unlisted("web", 3, &refs);
        let distinct: BTreeSet<u8> = p.iter().copied().collect();
        assert_eq!(distinct, BTreeSet::from([1, 2, 3]));
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [1, 1, 1, 2, 3]);
    }
}
