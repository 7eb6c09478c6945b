//! VRID allocation: explicit and previously allocated VRIDs first, by precedence, then the
//! lowest free VRID for the rest.
//!
//! Rules, per segment (see [`Segment`]):
//! 1. A VirtualIP *asks* for a VRID when its spec names one (explicit) or, without one,
//!    when its status already holds one (an earlier allocation, kept stable).
//! 2. When several ask for the same VRID, the one whose status already holds it wins (it
//!    is running with it; of several, the instance whose VirtualIPs hold it more often),
//!    then an explicit one over an allocated one, then the older
//!    (`creationTimestamp`; unknown counts as newest), then the first by name.
//! 3. A losing explicit VirtualIP is a conflict: [`Outcome::Taken`] when the winner's
//!    status already holds the VRID, [`Outcome::Duplicate`] when both only ask for it.
//!    A losing allocated one simply gets a new VRID in step 4.
//! 4. The remaining VirtualIPs, in precedence order, get the lowest VRID that is free in
//!    every segment of their family (so an `(auto)` VirtualIP does not collide with one
//!    naming the interface the agent picks), else the lowest VRID free in their own
//!    segment, else [`Outcome::Exhausted`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;

use super::segment::{Family, Segment};

/// Which of two VirtualIPs takes precedence when nothing else decides: the older one, then
/// the first by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seniority<'a> {
    /// `metadata.creationTimestamp`; `None` counts as newest.
    pub created: Option<Timestamp>,
    /// `metadata.name`.
    pub name: &'a str,
}

impl Ord for Seniority<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let age = |s: &Self| (s.created.is_none(), s.created);
        age(self)
            .cmp(&age(other))
            .then_with(|| self.name.cmp(other.name))
    }
}

impl PartialOrd for Seniority<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One VirtualIP's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Where the VRID must be unique.
    pub segment: Segment,
    /// `spec.virtualRouterID`.
    pub explicit: Option<u8>,
    /// `status.virtualRouterID` (the VRID it holds now).
    pub held: Option<u8>,
    /// How many VirtualIPs of the claim (an instance may carry several) hold `held`.
    pub holders: usize,
    /// Precedence among equals.
    pub seniority: Seniority<'a>,
}

/// What one claim got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// This VRID.
    Allocated(u8),
    /// The explicit VRID is held by claim `holder` (an index into the claims).
    Taken { vrid: u8, holder: usize },
    /// The explicit VRID is also asked for by claim `holder`, which takes precedence.
    Duplicate { vrid: u8, holder: usize },
    /// No VRID is free in the segment.
    Exhausted,
}

/// A set of VRIDs 0..=255.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VridSet([u64; 4]);

impl VridSet {
    fn contains(self, v: u8) -> bool {
        self.0[usize::from(v / 64)] & (1 << (v % 64)) != 0
    }

    fn insert(&mut self, v: u8) {
        self.0[usize::from(v / 64)] |= 1 << (v % 64);
    }

    fn lowest_free(self, also_avoid: Self) -> Option<u8> {
        (1..=255).find(|&v| !self.contains(v) && !also_avoid.contains(v))
    }
}

/// Allocates a VRID to every claim; the result is in the order of `claims`.
pub fn allocate(claims: &[Claim<'_>]) -> Vec<Outcome> {
    let mut out = vec![Outcome::Exhausted; claims.len()];
    let mut used: BTreeMap<&Segment, VridSet> = BTreeMap::new();
    let mut family_used: BTreeMap<Family, VridSet> = BTreeMap::new();

    // Steps 1-3: requested VRIDs, grouped by (segment, VRID).
    let mut asks: BTreeMap<(&Segment, u8), Vec<usize>> = BTreeMap::new();
    let mut pool = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        match c.explicit.or(c.held).filter(|&v| v != 0) {
            Some(v) => asks.entry((&c.segment, v)).or_default().push(i),
            None => pool.push(i),
        }
    }
    for ((segment, vrid), mut who) in asks {
        who.sort_by(|&a, &b| {
            let key = |i: usize| {
                let c = &claims[i];
                (
                    c.held != Some(vrid),
                    std::cmp::Reverse(c.holders),
                    c.explicit.is_none(),
                    c.seniority,
                )
            };
            key(a).cmp(&key(b))
        });
        let winner = who[0];
        out[winner] = Outcome::Allocated(vrid);
        used.entry(segment).or_default().insert(vrid);
        family_used.entry(segment.family).or_default().insert(vrid);
        let winner_holds = claims[winner].held == Some(vrid);
        for &loser in &who[1..] {
            if claims[loser].explicit.is_some() {
                out[loser] = if winner_holds {
                    Outcome::Taken {
                        vrid,
                        holder: winner,
                    }
                } else {
                    Outcome::Duplicate {
                        vrid,
                        holder: winner,
                    }
                };
            } else {
                pool.push(loser);
            }
        }
    }

    // Step 4: everything else gets the lowest free VRID, in precedence order.
    pool.sort_by(|&a, &b| claims[a].seniority.cmp(&claims[b].seniority));
    for i in pool {
        let segment = &claims[i].segment;
        let seg_used = used.get(segment).copied().unwrap_or_default();
        let fam_used = family_used
            .get(&segment.family)
            .copied()
            .unwrap_or_default();
        let pick = seg_used
            .lowest_free(fam_used)
            .or_else(|| seg_used.lowest_free(VridSet::default()));
        if let Some(v) = pick {
            out[i] = Outcome::Allocated(v);
            used.entry(segment).or_default().insert(v);
            family_used.entry(segment.family).or_default().insert(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(interface: Option<&str>) -> Segment {
        Segment {
            family: Family::Ipv4,
            interface: interface.map(str::to_owned),
        }
    }

    fn claim(name: &str, explicit: Option<u8>, held: Option<u8>) -> Claim<'_> {
        Claim {
            segment: seg(Some("eth0")),
            explicit,
            held,
            holders: usize::from(held.is_some()),
            seniority: Seniority {
                created: None,
                name,
            },
        }
    }

    #[test]
    fn automatic_claims_get_the_lowest_free_vrids_in_name_order() {
        let claims = [
            claim("b", None, None),
            claim("a", None, None),
            claim("c", Some(1), None),
        ];
        assert_eq!(
            allocate(&claims),
            [
                Outcome::Allocated(3),
                Outcome::Allocated(2),
                Outcome::Allocated(1)
            ]
        );
    }

    #[test]
    fn a_held_vrid_is_kept_even_when_a_lower_one_is_free() {
        let claims = [claim("a", None, Some(7)), claim("b", None, None)];
        assert_eq!(
            allocate(&claims),
            [Outcome::Allocated(7), Outcome::Allocated(1)]
        );
    }

    #[test]
    fn of_two_claims_holding_one_vrid_the_one_held_by_more_virtual_ips_keeps_it() {
        let mut claims = [claim("a", None, Some(5)), claim("r", None, Some(5))];
        claims[1].holders = 3;
        assert_eq!(
            allocate(&claims),
            [Outcome::Allocated(1), Outcome::Allocated(5)]
        );
    }

    #[test]
    fn explicit_vrid_held_by_an_allocated_virtual_ip_is_taken() {
        let claims = [claim("db", None, Some(51)), claim("web", Some(51), None)];
        assert_eq!(
            allocate(&claims),
            [
                Outcome::Allocated(51),
                Outcome::Taken {
                    vrid: 51,
                    holder: 0
                }
            ]
        );
    }

    #[test]
    fn two_explicit_requests_go_to_the_older_then_the_first_by_name() {
        let older = Seniority {
            created: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            name: "zz",
        };
        let mut claims = [claim("aa", Some(9), None), claim("zz", Some(9), None)];
        claims[1].seniority = older;
        assert_eq!(
            allocate(&claims),
            [
                Outcome::Duplicate { vrid: 9, holder: 1 },
                Outcome::Allocated(9)
            ]
        );
        claims[1].seniority.created = None;
        assert_eq!(
            allocate(&claims),
            [
                Outcome::Allocated(9),
                Outcome::Duplicate { vrid: 9, holder: 0 }
            ]
        );
    }

    #[test]
    fn automatic_allocation_skips_explicit_vrids() {
        let claims = [claim("a", Some(1), None), claim("b", None, None)];
        assert_eq!(
            allocate(&claims),
            [Outcome::Allocated(1), Outcome::Allocated(2)]
        );
    }

    #[test]
    fn same_vrid_on_other_segments_or_families_is_no_conflict() {
        let mut claims = [
            claim("a", Some(5), None),
            claim("b", Some(5), None),
            claim("c", Some(5), None),
        ];
        claims[1].segment = seg(Some("eth1"));
        claims[2].segment = Segment {
            family: Family::Ipv6,
            interface: Some("eth0".to_owned()),
        };
        assert_eq!(allocate(&claims), [Outcome::Allocated(5); 3]);
    }

    #[test]
    fn allocation_avoids_vrids_used_on_other_interfaces_of_the_family() {
        let mut claims = [claim("a", Some(1), None), claim("b", None, None)];
        claims[1].segment = seg(None);
        assert_eq!(
            allocate(&claims),
            [Outcome::Allocated(1), Outcome::Allocated(2)]
        );
    }

    #[test]
    fn the_256th_virtual_ip_on_a_segment_finds_no_vrid() {
        let names: Vec<String> = (0..256).map(|i| format!("v{i:03}")).collect();
        let claims: Vec<Claim<'_>> = names.iter().map(|n| claim(n, None, None)).collect();
        let out = allocate(&claims);
        assert_eq!(out[0], Outcome::Allocated(1));
        assert_eq!(out[254], Outcome::Allocated(255));
        assert_eq!(out[255], Outcome::Exhausted);
    }
}
