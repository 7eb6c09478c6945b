//! When a chaos step has settled, as a pure verdict over what was observed: every VIP on
//! exactly one node (its addresses, read in every node namespace), that node its expected
//! MASTER, that node's MAC alone answering ARP / Neighbor Solicitation for it, and every agent
//! naming the same MASTER. Also the node addresses apart from VIPs, which no run may change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One instance as a settled lab must show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub instance: String,
    pub vips: Vec<IpAddr>,
    /// The node that must be MASTER (the highest priority: every lab instance preempts).
    pub master: usize,
}

/// What was seen at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Nodes with the VIP on an interface, by VIP.
    pub holders: BTreeMap<IpAddr, BTreeSet<usize>>,
    /// Nodes reporting MASTER on `/status`, by instance.
    pub masters: BTreeMap<String, BTreeSet<usize>>,
}

/// Who answered "who has VIP" in a window: lab nodes by their MAC, and any MAC that is no
/// node's, as text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    pub nodes: BTreeSet<usize>,
    pub strangers: BTreeSet<String>,
}

fn one(node: usize) -> BTreeSet<usize> {
    BTreeSet::from([node])
}

/// What is wrong with `seen` against `expected`: empty when settled (ARP/NDP aside).
pub fn holder_problems(expected: &[Expected], seen: &Observation) -> Vec<String> {
    let mut problems = Vec::new();
    for want in expected {
        for vip in &want.vips {
            let holders = seen.holders.get(vip).cloned().unwrap_or_default();
            if holders != one(want.master) {
                problems.push(format!(
                    "{vip} ({}) held by {holders:?}, expected n{} alone",
                    want.instance, want.master
                ));
            }
        }
        let masters = seen
            .masters
            .get(&want.instance)
            .cloned()
            .unwrap_or_default();
        if masters != one(want.master) {
            problems.push(format!(
                "{}: MASTER on {masters:?} by the agents' /status, expected n{} alone",
                want.instance, want.master
            ));
        }
    }
    problems
}

/// What is wrong with who answered for each VIP: empty when only its MASTER's MAC did.
pub fn answer_problems(expected: &[Expected], answers: &BTreeMap<IpAddr, Answers>) -> Vec<String> {
    let mut problems = Vec::new();
    for want in expected {
        for vip in &want.vips {
            let got = answers.get(vip).cloned().unwrap_or_default();
            if got.nodes != one(want.master) || !got.strangers.is_empty() {
                problems.push(format!(
                    "{vip} ({}) answered by nodes {:?} and other MACs {:?}, expected n{} alone",
                    want.instance, got.nodes, got.strangers, want.master
                ));
            }
        }
    }
    problems
}

/// One address on a node: interface, address, prefix length.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeAddress {
    pub interface: String,
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.interface, self.address, self.prefix)
    }
}

/// Every address of `ip -j addr show` output, on every interface.
pub fn parse_addresses(json: &str) -> Result<Vec<NodeAddress>, String> {
    let links: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("`ip -j addr` output is not JSON: {e}"))?;
    let mut out = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        let name = link.get("ifname").and_then(|v| v.as_str()).unwrap_or("?");
        for info in link
            .get("addr_info")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let (Some(local), Some(prefix)) = (
                info.get("local").and_then(|v| v.as_str()),
                info.get("prefixlen")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|p| u8::try_from(p).ok()),
            ) else {
                continue;
            };
            let address = local
                .parse()
                .map_err(|_| format!("`ip -j addr` address {local:?} is not an address"))?;
            out.push(NodeAddress {
                interface: name.to_owned(),
                address,
                prefix,
            });
        }
    }
    Ok(out)
}

/// What a node holds apart from `vips` (whatever their prefix), as `interface address/prefix`.
pub fn apart_from(addresses: &[NodeAddress], vips: &BTreeSet<IpAddr>) -> BTreeSet<String> {
    addresses
        .iter()
        .filter(|a| !vips.contains(&a.address))
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Expected {
        Expected {
            instance: "web".into(),
            vips: vec!["192.168.77.50".parse().unwrap()],
            master: 1,
        }
    }

    fn seen(holders: &[usize], masters: &[usize]) -> Observation {
        Observation {
            holders: BTreeMap::from([(
                "192.168.77.50".parse().unwrap(),
                holders.iter().copied().collect(),
            )]),
            masters: BTreeMap::from([("web".into(), masters.iter().copied().collect())]),
        }
    }

    #[test]
    fn one_holder_that_is_the_expected_master_everywhere_is_settled() {
        assert!(holder_problems(&[web()], &seen(&[1], &[1])).is_empty());
    }

    #[test]
    fn two_holders_no_holder_the_wrong_holder_or_two_masters_are_each_a_problem() {
        for (holders, masters) in [
            (&[1, 2][..], &[1][..]),
            (&[][..], &[1][..]),
            (&[2][..], &[1][..]),
            (&[1][..], &[1, 3][..]),
            (&[1][..], &[][..]),
        ] {
            let problems = holder_problems(&[web()], &seen(holders, masters));
            assert_eq!(problems.len(), 1, "{holders:?} {masters:?}: {problems:?}");
        }
    }

    #[test]
    fn only_the_masters_mac_may_answer_for_a_vip() {
        let vip: IpAddr = "192.168.77.50".parse().unwrap();
        let answers = |nodes: &[usize], strangers: &[&str]| {
            BTreeMap::from([(
                vip,
                Answers {
                    nodes: nodes.iter().copied().collect(),
                    strangers: strangers.iter().map(|s| (*s).to_owned()).collect(),
                },
            )])
        };
        assert!(answer_problems(&[web()], &answers(&[1], &[])).is_empty());
        assert_eq!(answer_problems(&[web()], &answers(&[1, 2], &[])).len(), 1);
        assert_eq!(answer_problems(&[web()], &answers(&[], &[])).len(), 1);
        assert_eq!(
            answer_problems(&[web()], &answers(&[1], &["02:00:00:00:00:01"])).len(),
            1
        );
    }

    #[test]
    fn node_addresses_leave_out_vips_and_keep_interface_and_prefix() {
        let json = r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
            {"ifname":"eth0","addr_info":[{"local":"192.168.77.11","prefixlen":24},
             {"local":"192.168.77.50","prefixlen":24},{"local":"fd00:77::50","prefixlen":64},
             {"local":"fe80::77:ff:fe00:1","prefixlen":64}]}]"#;
        let vips = BTreeSet::from([
            "192.168.77.50".parse().unwrap(),
            "fd00:77::50".parse().unwrap(),
        ]);
        let kept = apart_from(&parse_addresses(json).unwrap(), &vips);
        assert_eq!(
            kept.into_iter().collect::<Vec<_>>(),
            [
                "eth0 192.168.77.11/24",
                "eth0 fe80::77:ff:fe00:1/64",
                "lo 127.0.0.1/8"
            ]
        );
        assert!(parse_addresses("nope").is_err());
    }
}
