//! What happened in IPVS and to clients over time, from the guest lab's logs: the watcher's
//! pools (one JSON line per change, stamped with the guest's clock) become a list of
//! destination changes, and a client's attempts (one JSON line each) say which connections
//! failed when. Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::proc_ip_vs::Pools;

/// One line of the watcher: the pools at time `t` (seconds since the epoch, guest clock).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Observed {
    pub t: f64,
    pub pools: Pools,
}

/// One destination change of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub t: f64,
    pub service: String,
    pub destination: String,
    pub what: What,
}

/// How a destination changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Added(u32),
    Removed,
    Weight { from: u32, to: u32 },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.what {
            What::Added(w) => write!(f, "{} +{} (weight {w})", self.service, self.destination),
            What::Removed => write!(f, "{} -{}", self.service, self.destination),
            What::Weight { from, to } => write!(
                f,
                "{} {} weight {from} -> {to}",
                self.service, self.destination
            ),
        }
    }
}

/// Reads the watcher's JSON lines (lines that do not parse are skipped).
pub fn observed(text: &str) -> Vec<Observed> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The destination changes between consecutive observations, in order.
pub fn changes(observed: &[Observed]) -> Vec<Change> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    for pair in observed.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let services: std::collections::BTreeSet<&String> =
            before.pools.keys().chain(after.pools.keys()).collect();
        for service in services {
            let old = before.pools.get(service).unwrap_or(&empty);
            let new = after.pools.get(service).unwrap_or(&empty);
            for (dest, weight) in new {
                let what = match old.get(dest) {
                    None => Some(What::Added(*weight)),
                    Some(w) if w != weight => Some(What::Weight {
                        from: *w,
                        to: *weight,
                    }),
                    Some(_) => None,
                };
                if let Some(what) = what {
                    out.push(Change {
                        t: after.t,
                        service: service.clone(),
                        destination: dest.clone(),
                        what,
                    });
                }
            }
            for dest in old.keys().filter(|d| !new.contains_key(*d)) {
                out.push(Change {
                    t: after.t,
                    service: service.clone(),
                    destination: dest.clone(),
                    what: What::Removed,
                });
            }
        }
    }
    out
}

/// One client attempt: when it started and whom it reached (`None`: it failed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attempt {
    #[serde(deserialize_with = "seconds")]
    pub t: Millis,
    pub answer: Option<String>,
}

/// A time in whole milliseconds (so attempts compare and sort).
pub type Millis = u64;

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
    let s = f64::deserialize(d)?;
    Ok((s * 1000.0).round() as Millis)
}

/// Reads a client's JSON lines.
pub fn attempts(text: &str) -> Vec<Attempt> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, pools: &[(&str, &[(&str, u32)])]) -> Observed {
        Observed {
            t,
            pools: pools
                .iter()
                .map(|(s, d)| {
                    (
                        (*s).to_owned(),
                        d.iter().map(|(a, w)| ((*a).to_owned(), *w)).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn additions_removals_and_weight_changes_are_found_in_order() {
        let log = [
            at(1.0, &[("TCP v:80", &[("a", 1), ("b", 1)])]),
            at(2.5, &[("TCP v:80", &[("a", 1)])]),
            at(3.0, &[("TCP v:80", &[("a", 0), ("s", 1)])]),
        ];
        let found: Vec<String> = changes(&log).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "TCP v:80 -b",
                "TCP v:80 a weight 1 -> 0",
                "TCP v:80 +s (weight 1)"
            ]
        );
        assert!((changes(&log)[0].t - 2.5).abs() < 1e-9);
    }

    #[test]
    fn watcher_and_client_lines_parse_and_junk_is_skipped() {
        let text = "{\"t\": 1.5, \"pools\": {\"TCP v:80\": {\"a\": 1}}}\nnot json\n";
        assert_eq!(observed(text).len(), 1);
        let tries =
            attempts("{\"t\": 2.0015, \"answer\": \"rs1\"}\n{\"t\": 2.1, \"answer\": null}\n");
        assert_eq!(tries[0].t, 2002);
        assert_eq!(tries[1].answer, None);
    }
}
