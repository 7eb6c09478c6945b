//! Names the operator gives: a Service address's VirtualIP, and a pool's shared virtual
//! routers. Both are valid object names (DNS subdomains) for every input.

use std::fmt::Write as _;
use std::net::IpAddr;

use kube_vrrp_plan::Family;

/// The VirtualIP of a Service address: `lb-` and the address with `-` for its separators
/// (`lb-192-168-77-100`; IPv6 in full, without `::` compression: `lb-fd00-77-0-0-0-0-0-5`).
pub fn virtual_ip_name(address: IpAddr) -> String {
    let mut out = String::from("lb");
    match address {
        IpAddr::V4(v4) => {
            for octet in v4.octets() {
                let _ = write!(out, "-{octet}");
            }
        }
        IpAddr::V6(v6) => {
            for segment in v6.segments() {
                let _ = write!(out, "-{segment:x}");
            }
        }
    }
    out
}

/// Longest name of an object.
const MAX_NAME: usize = 253;

/// The stem of a pool's shared virtual routers of `family`: `<pool>-ipv4` (a pool name too
/// long to take the suffix is cut and given a hash of the whole name, so two pools never
/// share a stem).
fn stem(pool: &str, family: Family) -> String {
    let suffix = match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    };
    // Room for "-ipv4" and "-<n>" with up to 4 digits.
    let room = MAX_NAME - 1 - suffix.len() - 5;
    if pool.len() <= room {
        return format!("{pool}-{suffix}");
    }
    let hash = kube_vrrp_plan::priority::score(pool, suffix);
    let keep = room - 17;
    let cut = pool[..keep].trim_end_matches(['-', '.']);
    format!("{cut}-{hash:016x}-{suffix}")
}

/// Shared virtual router `n` of `pool` for `family`: `<pool>-ipv4-<n>`.
pub fn shard_name(pool: &str, family: Family, n: usize) -> String {
    format!("{}-{n}", stem(pool, family))
}

/// The number of shared virtual router `router` of `pool` for `family`, if it is one.
pub fn shard_number(router: &str, pool: &str, family: Family) -> Option<usize> {
    let rest = router
        .strip_prefix(&stem(pool, family))?
        .strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_ip_names_spell_the_address_with_dashes() {
        assert_eq!(
            virtual_ip_name("192.168.77.100".parse().unwrap()),
            "lb-192-168-77-100"
        );
        assert_eq!(
            virtual_ip_name("fd00:77::5".parse().unwrap()),
            "lb-fd00-77-0-0-0-0-0-5"
        );
        assert_eq!(virtual_ip_name("::".parse().unwrap()), "lb-0-0-0-0-0-0-0-0");
    }

    #[test]
    fn shard_names_round_trip_and_stay_within_object_name_limits() {
        assert_eq!(shard_name("lan", Family::Ipv4, 3), "lan-ipv4-3");
        assert_eq!(shard_number("lan-ipv4-3", "lan", Family::Ipv4), Some(3));
        assert_eq!(shard_number("lan-ipv6-3", "lan", Family::Ipv4), None);
        assert_eq!(shard_number("lan-ipv4-03", "lan", Family::Ipv4), None);
        assert_eq!(shard_number("lan-ipv4-", "lan", Family::Ipv4), None);
        assert_eq!(shard_number("lan2-ipv4-1", "lan", Family::Ipv4), None);
        let long = "p".repeat(253);
        let other = format!("{}q", "p".repeat(252));
        let a = shard_name(&long, Family::Ipv6, 9999);
        let b = shard_name(&other, Family::Ipv6, 9999);
        assert!(a.len() <= 253, "{}", a.len());
        assert_ne!(a, b);
        assert_eq!(shard_number(&a, &long, Family::Ipv6), Some(9999));
        assert!(kube_vrrp_crds::virtual_ip::is_dns_subdomain(&a));
    }
}
