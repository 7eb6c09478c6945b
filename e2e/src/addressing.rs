//! The lab's address plan: one /24 and one /64 that exist only inside the lab's namespaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The lab subnet's prefix length for this family.
    pub fn prefix_len(self) -> u8 {
        match self {
            Self::V4 => 24,
            Self::V6 => 64,
        }
    }
}

/// Host part of node `n` (numbered from 1): node 1 is .11, node 2 is .12, ...
const NODE_HOST_BASE: u8 = 10;
/// Host part of the client.
const CLIENT_HOST: u8 = 100;
/// Host part of the first VIP; further VIPs follow (.50, .51, ...).
const VIP_HOST_BASE: u8 = 50;

fn host(family: Family, last: u8) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 168, 77, last)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, u16::from(last))),
    }
}

/// The address of lab node `node` (numbered from 1).
pub fn node_ip(node: usize, family: Family) -> IpAddr {
    let last = u8::try_from(node)
        .unwrap_or(u8::MAX)
        .saturating_add(NODE_HOST_BASE);
    host(family, last)
}

/// The client namespace's address.
pub fn client_ip(family: Family) -> IpAddr {
    host(family, CLIENT_HOST)
}

/// Host numbers of the lab's other hosts on the switch (no node, client or VIP uses them): the
/// control plane, then one per operator replica ([`lab_host_ip`]).
pub const CONTROL_PLANE_HOST: u8 = 2;
/// The first operator replica's host number; replica `i` is this plus `i`.
pub const OPERATOR_HOST_BASE: u8 = 3;

/// The address of the lab host numbered `host` (see [`CONTROL_PLANE_HOST`]).
pub fn lab_host_ip(host: u8, family: Family) -> IpAddr {
    self::host(family, host)
}

/// The MAC of the lab host numbered `host`: 02:77:00:00:01:NN.
pub fn lab_host_mac(host: u8) -> crate::Mac {
    crate::Mac([0x02, 0x77, 0, 0, 1, host])
}

/// The `index`-th virtual address (from 0) with the lab subnet's prefix: 192.168.77.50/24,
/// fd00:77::50/64 (hex 0x50 for IPv6), ...
pub fn vip(family: Family, index: u8) -> IpNet {
    let last = VIP_HOST_BASE.saturating_add(index);
    let addr = match family {
        Family::V4 => host(family, last),
        // Written as ::50, ::51 in hex so the two families read alike.
        Family::V6 => host(family, 0x50_u8.saturating_add(index)),
    };
    IpNet::new(addr, family.prefix_len()).unwrap_or_else(|_| IpNet::from(addr))
}

/// A node's fixed MAC address, so captures read easily: 02:77:00:00:00:NN.
pub fn node_mac(node: usize) -> crate::Mac {
    crate::Mac([0x02, 0x77, 0, 0, 0, u8::try_from(node).unwrap_or(u8::MAX)])
}

/// The client's MAC address.
pub fn client_mac() -> crate::Mac {
    crate::Mac([0x02, 0x77, 0, 0, 0, 0xcc])
}

/// The server's MAC address (see [`crate::Lab::add_server`]).
pub fn server_mac() -> crate::Mac {
    crate::Mac([0x02, 0x77, 0, 0, 0, 0xdd])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_are_distinct_and_inside_the_lab_subnets() {
        assert_eq!(node_ip(1, Family::V4).to_string(), "192.168.77.11");
        assert_eq!(node_ip(3, Family::V6).to_string(), "fd00:77::d");
        assert_eq!(client_ip(Family::V4).to_string(), "192.168.77.100");
        assert_eq!(vip(Family::V4, 1).to_string(), "192.168.77.51/24");
        assert_eq!(vip(Family::V6, 0).to_string(), "fd00:77::50/64");
        assert_ne!(node_mac(1), node_mac(2));
    }
}
