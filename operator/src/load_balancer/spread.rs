//! Which shared virtual router of a pool's family a new Cluster address joins, so that the
//! MASTERs of the Service addresses spread evenly over the nodes.
//!
//! A router's MASTER is the node the planner ranks first for the router's name (a stable hash
//! per router, [`kube_vrrp_plan::MasterForecast`]), and each router carries up to 64
//! addresses. Hashing a handful of routers onto the nodes is uneven (16 routers over 3 nodes
//! put 7 on one node about as often as 5), and a whole router's addresses follow its MASTER,
//! so counting routers is not enough: a new address goes to the router whose expected MASTER
//! carries the fewest addresses of the pool's family, filling that node's open router before
//! a new one is numbered for it (the lowest free number the node is ranked first for).
//! Addresses that are placed stay where they are; nothing moves when a node comes or goes.
//!
//! When the ranking names the same MASTER for every router (explicit priorities in the pool),
//! or none (no node selected), spreading buys nothing: addresses fill the lowest router with
//! room. At most [`MAX_SPREAD_ROUTERS`] routers are open (with room) at a time: each costs a
//! VRID of the segment's 255.

use std::collections::{BTreeMap, HashMap};

use kube_vrrp_crds::validation::MAX_ADDRESSES;

/// Most shared virtual routers of a pool's family with room at a time (more only once they
/// fill): each costs a VRID of the segment's 255.
pub const MAX_SPREAD_ROUTERS: usize = 16;

/// Router numbers considered: a segment has 255 VRIDs, so no family of a pool uses more.
pub const ROUTER_NUMBERS: usize = 256;

/// The routers of one pool's family: members per router number, and each number's expected
/// MASTER.
pub struct Routers<'a> {
    /// Members per router number (only numbers in use).
    counts: BTreeMap<usize, usize>,
    /// Expected MASTER of router number `n` (`None`: unknown, or beyond the forecast).
    masters: Vec<Option<&'a str>>,
    /// Addresses per expected MASTER.
    load: HashMap<Option<&'a str>, usize>,
}

impl<'a> Routers<'a> {
    /// Routers holding `counts` members, router `n` expected to have `masters[n]` as MASTER.
    pub fn new(counts: BTreeMap<usize, usize>, masters: Vec<Option<&'a str>>) -> Self {
        let mut routers = Self {
            counts: BTreeMap::new(),
            masters,
            load: HashMap::new(),
        };
        for (n, count) in counts {
            for _ in 0..count {
                routers.add(n);
            }
        }
        routers
    }

    fn master(&self, n: usize) -> Option<&'a str> {
        self.masters.get(n).copied().flatten()
    }

    fn count(&self, n: usize) -> usize {
        self.counts.get(&n).copied().unwrap_or(0)
    }

    fn add(&mut self, n: usize) {
        *self.counts.entry(n).or_default() += 1;
        *self.load.entry(self.master(n)).or_default() += 1;
    }

    /// Places one new address: returns its router number.
    pub fn place(&mut self) -> usize {
        let open = self.counts.values().filter(|&&c| c < MAX_ADDRESSES).count();
        let may_open = open < MAX_SPREAD_ROUTERS;
        // (load of its MASTER, a new router, number): the least loaded MASTER first, its
        // open router before a new one, the lowest number last.
        let best = (0..ROUTER_NUMBERS.max(self.masters.len()))
            .filter(|&n| self.count(n) < MAX_ADDRESSES)
            .filter(|&n| may_open || self.count(n) > 0)
            .min_by_key(|&n| {
                let load = self.load.get(&self.master(n)).copied().unwrap_or(0);
                (load, self.count(n) == 0, n)
            });
        let n = best.unwrap_or_else(|| {
            // Every considered number is full: the first number past them with room (one of
            // the next `counts.len() + 1` is).
            (ROUTER_NUMBERS..=ROUTER_NUMBERS + self.counts.len())
                .find(|&n| self.count(n) < MAX_ADDRESSES)
                .unwrap_or(ROUTER_NUMBERS)
        });
        self.add(n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masters(pattern: &[&'static str]) -> Vec<Option<&'static str>> {
        (0..ROUTER_NUMBERS)
            .map(|n| Some(pattern[n % pattern.len()]))
            .collect()
    }

    fn load_by_master(r: &Routers<'static>) -> BTreeMap<&'static str, usize> {
        let mut out = BTreeMap::new();
        for (&n, &c) in &r.counts {
            *out.entry(r.masters[n].unwrap_or("?")).or_default() += c;
        }
        out
    }

    #[test]
    fn new_addresses_go_to_the_router_of_the_least_loaded_master() {
        // Router numbers 0 and 1 are a's, 2 is b's, 3 is c's, and so on.
        let m = masters(&["a", "a", "b", "c"]);
        let mut r = Routers::new(BTreeMap::new(), m);
        let placed: Vec<usize> = (0..6).map(|_| r.place()).collect();
        // a, b, c get one router each (the lowest numbers they lead), then fill them.
        assert_eq!(placed, [0, 2, 3, 0, 2, 3]);
        for _ in 0..294 {
            r.place();
        }
        assert_eq!(
            load_by_master(&r),
            BTreeMap::from([("a", 100), ("b", 100), ("c", 100)])
        );
        assert!(r.counts.values().all(|&c| c <= MAX_ADDRESSES));
    }

    #[test]
    fn existing_members_stay_and_new_ones_even_out_the_masters() {
        // a already leads 128 addresses, b none.
        let m = masters(&["a", "b"]);
        let mut r = Routers::new(BTreeMap::from([(0, 64), (2, 64)]), m);
        let placed: Vec<usize> = (0..128).map(|_| r.place()).collect();
        assert!(placed.iter().all(|n| n % 2 == 1), "{placed:?}");
        assert_eq!(load_by_master(&r), BTreeMap::from([("a", 128), ("b", 128)]));
    }

    #[test]
    fn one_master_for_every_router_fills_the_lowest_router_first() {
        let m = masters(&["a"]);
        let mut r = Routers::new(BTreeMap::new(), m);
        let placed: Vec<usize> = (0..70).map(|_| r.place()).collect();
        assert!(placed[..64].iter().all(|&n| n == 0));
        assert!(placed[64..].iter().all(|&n| n == 1));
        let unknown = Routers::new(BTreeMap::new(), Vec::new()).place();
        assert_eq!(unknown, 0);
    }

    #[test]
    fn at_most_sixteen_routers_are_open_at_a_time() {
        let names: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("n{i:02}").into_boxed_str()))
            .collect();
        let mut r = Routers::new(BTreeMap::new(), masters(&names));
        for _ in 0..40 {
            r.place();
        }
        assert_eq!(r.counts.len(), MAX_SPREAD_ROUTERS);
    }
}
