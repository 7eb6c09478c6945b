//! The RFC virtual MAC (`useVirtualMAC`), as keepalived's `use_vmac` builds it: a macvlan
//! interface in private mode on the instance's interface, carrying the MAC 00-00-5E-00-01-{VRID}
//! (IPv4) or 00-00-5E-00-02-{VRID} (IPv6, RFC 5798 §7.3). The VIPs go on it, adverts leave
//! through it and gratuitous ARP / NA announce its MAC, so clients and switches follow the
//! virtual router rather than a node.
//!
//! For that to hold, the kernel is told (through netlink, no `/proc/sys` writes, so it works
//! in a container with a read-only `/proc/sys`):
//! - on the macvlan: `arp_ignore=1` (answer ARP only for its own addresses, the VIPs),
//!   `accept_local=1` (hear adverts sent from the node's other interfaces), no IPv6 address
//!   generated from the shared virtual MAC (identical on every node: useless as a source);
//!   an IPv6 instance gets the parent's link-local address instead, so adverts come from a
//!   node's own address, as RFC 5798 §5.1.2.1 asks;
//! - on the parent, for IPv4: `arp_ignore=1` and `arp_filter=1`, so it no longer answers ARP
//!   for the VIPs with its own MAC. The values found are returned to the caller, who puts them
//!   back when the last virtual MAC on that parent goes.

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::LinkMacVlan;
use rtnetlink::packet_core::DefaultNla;
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoKind, LinkAttribute, LinkInfo,
    LinkMessage, MacVlanMode,
};
use rtnetlink::{Handle, LinkUnspec};

use super::NetError;
use super::error::netlink_errno;
use crate::vrrp::Family;

/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC`/`AF_INET`, and the nested flag.
const IFLA_INET_CONF: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// `IPV4_DEVCONF_*` indexes (linux/ip.h) of the settings a virtual MAC needs.
const IPV4_DEVCONF_ARPFILTER: u16 = 13;
const IPV4_DEVCONF_ARP_IGNORE: u16 = 19;
const IPV4_DEVCONF_PROMOTE_SECONDARIES: u16 = 20;
const IPV4_DEVCONF_ACCEPT_LOCAL: u16 = 23;
const ENODEV: i32 = nix::libc::ENODEV;
const EEXIST: i32 = nix::libc::EEXIST;

/// The RFC 5798 §7.3 virtual MAC of `vrid` for `family`.
pub fn virtual_mac(family: Family, vrid: u8) -> [u8; 6] {
    let kind = match family {
        Family::Ipv4 => 0x01,
        Family::Ipv6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}

/// The macvlan's name: `vrrp.{vrid}` (IPv4) or `vrrp6.{vrid}` (IPv6), as keepalived names
/// them; at most 9 characters, within the kernel's 15.
pub fn vmac_name(family: Family, vrid: u8) -> String {
    match family {
        Family::Ipv4 => format!("vrrp.{vrid}"),
        Family::Ipv6 => format!("vrrp6.{vrid}"),
    }
}

/// A parent's ARP settings as found, to be put back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSettings {
    pub arp_ignore: u32,
    pub arp_filter: u32,
}

/// `IFLA_INET_CONF` as RTM_NEWLINK takes it: one u32 attribute per `IPV4_DEVCONF_*` index,
/// zeros included (netlink-packet-route's request form leaves zeros out).
fn inet_conf(settings: &[(u16, u32)]) -> LinkAttribute {
    let mut nested = Vec::with_capacity(settings.len() * 8);
    for (index, value) in settings {
        nested.extend_from_slice(&8u16.to_ne_bytes());
        nested.extend_from_slice(&index.to_ne_bytes());
        nested.extend_from_slice(&value.to_ne_bytes());
    }
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::Other(
        DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, nested),
    )])])
}

/// The macvlan of a virtual MAC, as found on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacLink {
    pub ifindex: u32,
    pub mac: Option<[u8; 6]>,
    /// Its parent's index (`IFLA_LINK`).
    pub parent: Option<u32>,
    pub is_macvlan: bool,
}

impl VmacLink {
    fn from_message(message: &LinkMessage) -> Self {
        let mut link = Self {
            ifindex: message.header.index,
            mac: None,
            parent: None,
            is_macvlan: false,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::Address(bytes) => {
                    link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
                }
                LinkAttribute::Link(parent) => link.parent = Some(*parent),
                LinkAttribute::LinkInfo(infos) => {
                    link.is_macvlan = infos
                        .iter()
                        .any(|info| matches!(info, LinkInfo::Kind(InfoKind::MacVlan)));
                }
                _ => {}
            }
        }
        link
    }
}

/// Virtual-MAC interfaces through rtnetlink.
#[derive(Debug, Clone)]
pub struct Vmacs {
    handle: Handle,
}

impl Vmacs {
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    async fn find(&self, name: &str) -> Result<Option<VmacLink>, NetError> {
        let found: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_collect()
            .await;
        match found {
            Ok(messages) => Ok(messages.first().map(VmacLink::from_message)),
            Err(error) if netlink_errno(&error) == Some(ENODEV) => Ok(None),
            Err(error) => Err(NetError::netlink("look up a virtual MAC interface")(error)),
        }
    }

    /// Makes sure the virtual MAC of `vrid`/`family` exists on interface `parent` (index
    /// `parent_index`), configured as the module says and up; a leftover of ours (same MAC,
    /// same parent) is reused, another interface by that name is an error. For IPv6,
    /// `link_local` (the parent's) is added to it untagged, as its own source address. Returns
    /// its index.
    pub async fn ensure(
        &self,
        parent: &str,
        parent_index: u32,
        family: Family,
        vrid: u8,
        link_local: Option<IpNet>,
    ) -> Result<u32, NetError> {
        let name = vmac_name(family, vrid);
        let mac = virtual_mac(family, vrid);
        let existing = self.find(&name).await?;
        let ifindex = match existing {
            Some(link)
                if link.is_macvlan
                    && link.mac == Some(mac)
                    && link.parent == Some(parent_index) =>
            {
                link.ifindex
            }
            Some(_) => {
                return Err(NetError::VmacNameTaken {
                    name,
                    parent: parent.to_owned(),
                });
            }
            None => {
                let message = LinkMacVlan::new(&name, parent_index, MacVlanMode::Private)
                    .address(mac.to_vec())
                    .build();
                self.handle
                    .link()
                    .add(message)
                    .execute()
                    .await
                    .map_err(NetError::netlink("create the virtual MAC interface"))?;
                self.find(&name)
                    .await?
                    .ok_or_else(|| NetError::NoSuchInterface(name.clone()))?
                    .ifindex
            }
        };
        // No address generated from the virtual MAC (the same on every node); IPv4 devconf.
        let settings = LinkUnspec::new_with_index(ifindex)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]))
            .append_extra_attribute(inet_conf(&[
                (IPV4_DEVCONF_ARP_IGNORE, 1),
                (IPV4_DEVCONF_ACCEPT_LOCAL, 1),
                (IPV4_DEVCONF_PROMOTE_SECONDARIES, 1),
            ]))
            .build();
        self.handle
            .link()
            .set(settings)
            .execute()
            .await
            .map_err(NetError::netlink("configure the virtual MAC interface"))?;
        if let (Family::Ipv6, Some(link_local)) = (family, link_local) {
            let added = self
                .handle
                .address()
                .add(ifindex, link_local.addr(), link_local.prefix_len())
                .execute()
                .await;
            match added {
                Ok(()) => {}
                Err(error) if netlink_errno(&error) == Some(EEXIST) => {}
                Err(error) => {
                    return Err(NetError::netlink(
                        "give the virtual MAC interface a link-local address",
                    )(error));
                }
            }
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(ifindex).up().build())
            .execute()
            .await
            .map_err(NetError::netlink("bring the virtual MAC interface up"))?;
        Ok(ifindex)
    }

    /// Deletes the virtual MAC interface `name` if it is a macvlan (never another interface).
    pub async fn remove(&self, name: &str) -> Result<(), NetError> {
        match self.find(name).await? {
            Some(link) if link.is_macvlan => {
                match self.handle.link().del(link.ifindex).execute().await {
                    Ok(()) => Ok(()),
                    Err(error) if netlink_errno(&error) == Some(ENODEV) => Ok(()),
                    Err(error) => Err(NetError::netlink("delete the virtual MAC interface")(error)),
                }
            }
            _ => Ok(()),
        }
    }

    /// The parent's ARP settings now.
    pub async fn arp_settings(&self, parent_index: u32) -> Result<ArpSettings, NetError> {
        let messages: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .match_index(parent_index)
            .execute()
            .try_collect()
            .await
            .map_err(NetError::netlink("read the interface's ARP settings"))?;
        let conf = messages
            .iter()
            .flat_map(|message| &message.attributes)
            .find_map(|attribute| match attribute {
                LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|spec| match spec {
                    AfSpecUnspec::Inet(inet) => inet.iter().find_map(|entry| match entry {
                        AfSpecInet::DevConf(conf) => Some(*conf),
                        _ => None,
                    }),
                    _ => None,
                }),
                _ => None,
            })
            .ok_or(NetError::NoSuchInterfaceIndex(parent_index))?;
        Ok(ArpSettings {
            arp_ignore: u32::try_from(conf.arp_ignore).unwrap_or(0),
            arp_filter: u32::try_from(conf.arpfilter).unwrap_or(0),
        })
    }

    /// Sets the parent's ARP settings.
    pub async fn set_arp_settings(
        &self,
        parent_index: u32,
        arp: ArpSettings,
    ) -> Result<(), NetError> {
        let message = LinkUnspec::new_with_index(parent_index)
            .append_extra_attribute(inet_conf(&[
                (IPV4_DEVCONF_ARP_IGNORE, arp.arp_ignore),
                (IPV4_DEVCONF_ARPFILTER, arp.arp_filter),
            ]))
            .build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(NetError::netlink("set the interface's ARP settings"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_mac_is_the_rfc_one_per_family_and_vrid() {
        assert_eq!(virtual_mac(Family::Ipv4, 51), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(Family::Ipv6, 255), [0, 0, 0x5e, 0, 2, 255]);
    }

    #[test]
    fn virtual_mac_interfaces_are_named_like_keepalived_and_fit_ifnamsiz() {
        assert_eq!(vmac_name(Family::Ipv4, 51), "vrrp.51");
        assert_eq!(vmac_name(Family::Ipv6, 255), "vrrp6.255");
        assert!(vmac_name(Family::Ipv6, 255).len() <= 15);
    }

    #[test]
    fn inet_conf_carries_every_setting_zeros_included() {
        let LinkAttribute::AfSpecUnspec(specs) = inet_conf(&[(19, 1), (13, 0)]) else {
            panic!("not an IFLA_AF_SPEC");
        };
        let [AfSpecUnspec::Inet(inet)] = specs.as_slice() else {
            panic!("not AF_INET");
        };
        let [AfSpecInet::Other(nla)] = inet.as_slice() else {
            panic!("not a raw IFLA_INET_CONF");
        };
        let mut expected = Vec::new();
        for (index, value) in [(19u16, 1u32), (13, 0)] {
            expected.extend_from_slice(&8u16.to_ne_bytes());
            expected.extend_from_slice(&index.to_ne_bytes());
            expected.extend_from_slice(&value.to_ne_bytes());
        }
        assert_eq!(
            nla,
            &DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, expected)
        );
    }
}
