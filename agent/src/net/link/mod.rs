//! Interfaces: resolve one by name or index (index, MAC, oper state, primary IPv4, IPv6
//! link-local), find the interface whose subnet holds an address, and watch links and their
//! addresses change.

mod debounce;
mod events;

pub use debounce::LinkDebounce;
pub use events::{InterfaceEvent, InterfaceEvents};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, State};

use super::NetError;
use super::address::{
    Addresses, IFA_F_DADFAILED, IFA_F_SECONDARY, IFA_F_TENTATIVE, InterfaceAddress,
};
use super::error::netlink_errno;
use crate::vrrp::Family;

const ENODEV: i32 = nix::libc::ENODEV;

/// Whether a link can carry traffic, as far as VRRP cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    Up,
    Down,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    /// Up when administratively up (IFF_UP) and running (IFF_RUNNING: RFC 2863 oper state up,
    /// or unknown for drivers that do not report one, like dummy).
    pub(crate) fn from_flags(flags: LinkFlags) -> Self {
        if flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running) {
            Self::Up
        } else {
            Self::Down
        }
    }
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
    Other,
}

impl OperState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::NotPresent => "not_present",
            Self::Down => "down",
            Self::LowerLayerDown => "lower_layer_down",
            Self::Testing => "testing",
            Self::Dormant => "dormant",
            Self::Up => "up",
            Self::Other => "other",
        }
    }

    fn from_netlink(state: State) -> Self {
        match state {
            State::Unknown => Self::Unknown,
            State::NotPresent => Self::NotPresent,
            State::Down => Self::Down,
            State::LowerLayerDown => Self::LowerLayerDown,
            State::Testing => Self::Testing,
            State::Dormant => Self::Dormant,
            State::Up => Self::Up,
            _ => Self::Other,
        }
    }
}

/// One network interface and the addresses VRRP needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// The Ethernet address, if the link has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    pub oper_state: OperState,
    /// IFF_UP && IFF_RUNNING.
    pub state: LinkState,
    /// The node's own IPv4 address VRRP sends from: see [`primary_ipv4`].
    pub primary_ipv4: Option<Ipv4Addr>,
    /// The first usable (not tentative, DAD not failed, not a VIP) IPv6 link-local address.
    pub ipv6_link_local: Option<Ipv6Addr>,
    /// Every address on the link.
    pub addresses: Vec<InterfaceAddress>,
}

impl Link {
    fn from_message(message: &LinkMessage, all_addresses: &[InterfaceAddress]) -> Option<Self> {
        let ifindex = message.header.index;
        let mut name = None;
        let mut mac = None;
        let mut oper_state = OperState::Unknown;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(text) => name = Some(text.clone()),
                LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                LinkAttribute::OperState(state) => oper_state = OperState::from_netlink(*state),
                _ => {}
            }
        }
        let addresses: Vec<InterfaceAddress> = all_addresses
            .iter()
            .filter(|entry| entry.ifindex == ifindex)
            .cloned()
            .collect();
        Some(Self {
            ifindex,
            name: name?,
            mac,
            oper_state,
            state: LinkState::from_flags(message.header.flags),
            primary_ipv4: primary_ipv4(&addresses),
            ipv6_link_local: ipv6_link_local(&addresses),
            addresses,
        })
    }

    /// The address VRRP sends from on this link: the primary IPv4 address or the IPv6
    /// link-local address.
    pub fn source_for(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4 => self.primary_ipv4.map(IpAddr::V4),
            Family::Ipv6 => self.ipv6_link_local.map(IpAddr::V6),
        }
    }

    /// The length of the longest prefix among this link's own (non-VIP) subnets that contains
    /// `address`, if any does.
    pub fn subnet_match(&self, address: IpAddr) -> Option<u8> {
        self.addresses
            .iter()
            .filter(|entry| !entry.is_vip() && entry.address.contains(&address))
            .map(|entry| entry.address.prefix_len())
            .max()
    }
}

/// The first primary IPv4 address that kube-vrrp did not install; else the first secondary one
/// it did not install. While a node is renumbered with `promote_secondaries`, the kernel may
/// promote one of our VIPs to primary and leave the node's new address secondary: the node's
/// own address is still the one to send from.
pub fn primary_ipv4(addresses: &[InterfaceAddress]) -> Option<Ipv4Addr> {
    let own = |primary: bool| {
        addresses
            .iter()
            .find_map(|entry| match entry.address.addr() {
                IpAddr::V4(address)
                    if entry.has_flag(IFA_F_SECONDARY) != primary && !entry.is_vip() =>
                {
                    Some(address)
                }
                _ => None,
            })
    };
    own(true).or_else(|| own(false))
}

/// The first IPv6 link-local address that can be used as a source (DAD done and passed) and
/// that kube-vrrp did not install (RFC 5798 IPv6 VIPs are often link-local themselves).
pub fn ipv6_link_local(addresses: &[InterfaceAddress]) -> Option<Ipv6Addr> {
    addresses
        .iter()
        .find_map(|entry| match entry.address.addr() {
            IpAddr::V6(address)
                if address.segments()[0] & 0xffc0 == 0xfe80
                    && !entry.is_vip()
                    && !entry.has_flag(IFA_F_TENTATIVE)
                    && !entry.has_flag(IFA_F_DADFAILED) =>
            {
                Some(address)
            }
            _ => None,
        })
}

/// Of `links`, the one whose own subnet contains `address` most specifically (longest prefix;
/// the lowest ifindex on a tie).
pub fn link_for_address(links: &[Link], address: IpAddr) -> Option<&Link> {
    links
        .iter()
        .filter_map(|link| link.subnet_match(address).map(|prefix| (prefix, link)))
        .max_by(|(a_prefix, a), (b_prefix, b)| {
            a_prefix.cmp(b_prefix).then(b.ifindex.cmp(&a.ifindex))
        })
        .map(|(_, link)| link)
}

/// Interface lookups on one rtnetlink connection.
#[derive(Debug, Clone)]
pub struct Links {
    handle: Handle,
    addresses: Addresses,
}

impl Links {
    pub fn new(handle: Handle) -> Self {
        let addresses = Addresses::new(handle.clone());
        Self { handle, addresses }
    }

    /// The interface named `name`.
    pub async fn by_name(&self, name: &str) -> Result<Link, NetError> {
        let request = self.handle.link().get().match_name(name);
        let messages = collect_links(request).await;
        let messages = match messages {
            Err(error) if netlink_errno(&error) == Some(ENODEV) => {
                return Err(NetError::NoSuchInterface(name.to_owned()));
            }
            other => other.map_err(NetError::netlink("get link"))?,
        };
        let addresses = self.addresses.list_all().await?;
        messages
            .iter()
            .find_map(|message| Link::from_message(message, &addresses))
            .ok_or_else(|| NetError::NoSuchInterface(name.to_owned()))
    }

    /// The interface with index `ifindex`.
    pub async fn by_index(&self, ifindex: u32) -> Result<Link, NetError> {
        let request = self.handle.link().get().match_index(ifindex);
        let messages = match collect_links(request).await {
            Err(error) if netlink_errno(&error) == Some(ENODEV) => {
                return Err(NetError::NoSuchInterfaceIndex(ifindex));
            }
            other => other.map_err(NetError::netlink("get link"))?,
        };
        let addresses = self.addresses.list(ifindex).await?;
        messages
            .iter()
            .find_map(|message| Link::from_message(message, &addresses))
            .ok_or(NetError::NoSuchInterfaceIndex(ifindex))
    }

    /// Every interface.
    pub async fn all(&self) -> Result<Vec<Link>, NetError> {
        let messages = collect_links(self.handle.link().get())
            .await
            .map_err(NetError::netlink("list links"))?;
        let addresses = self.addresses.list_all().await?;
        Ok(messages
            .iter()
            .filter_map(|message| Link::from_message(message, &addresses))
            .collect())
    }

    /// The interface whose own subnet contains `address` (see [`link_for_address`]).
    pub async fn containing(&self, address: IpAddr) -> Result<Option<Link>, NetError> {
        let links = self.all().await?;
        Ok(link_for_address(&links, address).cloned())
    }
}

async fn collect_links(
    request: rtnetlink::LinkGetRequest,
) -> Result<Vec<LinkMessage>, rtnetlink::Error> {
    request.execute().try_collect().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::address::{IFA_F_NOPREFIXROUTE, IFAPROT_KUBE_VRRP};

    fn entry(ifindex: u32, address: &str, flags: u32, protocol: u8) -> InterfaceAddress {
        InterfaceAddress {
            ifindex,
            address: address.parse().unwrap(),
            flags,
            label: None,
            protocol,
        }
    }

    fn link(ifindex: u32, addresses: Vec<InterfaceAddress>) -> Link {
        Link {
            ifindex,
            name: format!("eth{ifindex}"),
            mac: None,
            oper_state: OperState::Up,
            state: LinkState::Up,
            primary_ipv4: primary_ipv4(&addresses),
            ipv6_link_local: ipv6_link_local(&addresses),
            addresses,
        }
    }

    #[test]
    fn primary_ipv4_skips_secondaries_and_vips() {
        let addresses = [
            entry(2, "10.0.0.50/24", IFA_F_NOPREFIXROUTE, IFAPROT_KUBE_VRRP),
            entry(2, "10.0.0.6/24", IFA_F_SECONDARY, 0),
            entry(2, "10.0.0.5/24", 0, 0),
        ];
        assert_eq!(primary_ipv4(&addresses), Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[test]
    fn primary_ipv4_falls_back_to_a_secondary_when_a_vip_was_promoted_to_primary() {
        let addresses = [
            entry(2, "10.0.0.50/24", IFA_F_NOPREFIXROUTE, IFAPROT_KUBE_VRRP),
            entry(2, "10.0.0.7/24", IFA_F_SECONDARY, 0),
        ];
        assert_eq!(primary_ipv4(&addresses), Some(Ipv4Addr::new(10, 0, 0, 7)));
    }

    #[test]
    fn primary_ipv4_is_none_when_only_vips_are_present() {
        let addresses = [entry(2, "10.0.0.50/24", 0, IFAPROT_KUBE_VRRP)];
        assert_eq!(primary_ipv4(&addresses), None);
    }

    #[test]
    fn ipv6_link_local_skips_global_and_tentative_addresses() {
        let addresses = [
            entry(2, "2001:db8::5/64", 0, 0),
            entry(2, "fe80::1/64", IFA_F_TENTATIVE, 3),
            entry(2, "fe80::2/64", 0, 3),
        ];
        assert_eq!(
            ipv6_link_local(&addresses),
            Some("fe80::2".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_link_local_skips_a_link_local_vip() {
        let addresses = [
            entry(2, "fe80::50/64", IFA_F_NOPREFIXROUTE, IFAPROT_KUBE_VRRP),
            entry(2, "fe80::2/64", 0, 3),
        ];
        assert_eq!(
            ipv6_link_local(&addresses),
            Some("fe80::2".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_link_local_is_none_while_the_only_one_is_tentative() {
        let addresses = [entry(2, "fe80::1/64", IFA_F_TENTATIVE, 3)];
        assert_eq!(ipv6_link_local(&addresses), None);
    }

    #[test]
    fn the_link_with_the_most_specific_subnet_holding_the_address_is_chosen() {
        let links = [
            link(2, vec![entry(2, "10.0.0.5/16", 0, 0)]),
            link(3, vec![entry(3, "10.0.1.5/24", 0, 0)]),
            link(4, vec![entry(4, "192.168.1.5/24", 0, 0)]),
        ];
        let chosen = link_for_address(&links, "10.0.1.50".parse().unwrap()).unwrap();
        assert_eq!(chosen.ifindex, 3);
        let chosen = link_for_address(&links, "10.0.9.50".parse().unwrap()).unwrap();
        assert_eq!(chosen.ifindex, 2);
    }

    #[test]
    fn a_vip_subnet_does_not_make_a_link_hold_an_address() {
        let links = [link(
            2,
            vec![entry(
                2,
                "10.0.0.50/24",
                IFA_F_NOPREFIXROUTE,
                IFAPROT_KUBE_VRRP,
            )],
        )];
        assert!(link_for_address(&links, "10.0.0.51".parse().unwrap()).is_none());
    }

    #[test]
    fn no_link_is_chosen_for_an_address_outside_every_subnet() {
        let links = [link(2, vec![entry(2, "10.0.0.5/24", 0, 0)])];
        assert!(link_for_address(&links, "172.16.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn a_link_is_up_only_when_admin_up_and_running() {
        assert_eq!(
            LinkState::from_flags(LinkFlags::Up | LinkFlags::Running),
            LinkState::Up
        );
        assert_eq!(LinkState::from_flags(LinkFlags::Up), LinkState::Down);
        assert_eq!(LinkState::from_flags(LinkFlags::Running), LinkState::Down);
    }
}
