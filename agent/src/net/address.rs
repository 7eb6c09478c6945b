//! VIP addresses on interfaces through rtnetlink: add, remove, list, and the start-up cleanup of
//! crash leftovers. Only addresses kube-vrrp installed are ever removed: an address equal to a
//! VIP that carries neither our tag nor our label belongs to someone else and is left alone.
//!
//! A VIP is installed so nothing mistakes it for the node's own address: tagged with
//! `IFA_PROTO` = [`IFAPROT_KUBE_VRRP`] (both families, kernel >= 6.3) and, for IPv4, the label
//! `<ifname>:vrrp`; with its own prefix length but `noprefixroute` (no connected route appears or
//! disappears with failover); IPv6 with `nodad` so it answers at once instead of sitting
//! tentative through duplicate address detection. No broadcast address is set (as keepalived
//! does by default), so a VIP adds no broadcast route either.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use ipnet::IpNet;
use kube_vrrp_crds::backoff::doubling;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressMessage, AddressProtocol,
};

use super::NetError;
use super::error::netlink_errno;

/// The `IFA_PROTO` value marking an address as a kube-vrrp VIP. Userspace owns values above the
/// kernel's (1..=3); 112 echoes VRRP's IP protocol number.
pub const IFAPROT_KUBE_VRRP: u8 = 112;
/// The suffix of the IPv4 label of a VIP.
pub const LABEL_SUFFIX: &str = ":vrrp";
/// Longest interface address label the kernel stores (IFNAMSIZ - 1).
pub const LABEL_MAX: usize = 15;

/// `IFA_F_SECONDARY` (IPv4: another address of the same subnet is primary).
pub const IFA_F_SECONDARY: u32 = 0x01;
/// `IFA_F_NODAD`: no duplicate address detection (IPv6).
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_DADFAILED`: duplicate address detection failed (IPv6).
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: duplicate address detection still running (IPv6).
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_NOPREFIXROUTE`: no prefix route for this address.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

const EEXIST: i32 = nix::libc::EEXIST;
const EADDRNOTAVAIL: i32 = nix::libc::EADDRNOTAVAIL;
/// What the kernel answers a dump request while another dump runs on the same netlink socket.
const EBUSY: i32 = nix::libc::EBUSY;
/// How often an address dump is asked for while the socket is busy with another one.
const DUMP_ATTEMPTS: u32 = 8;
/// The wait before a busy dump's second attempt, doubled before each further one.
const DUMP_FIRST_WAIT: Duration = Duration::from_millis(1);

/// Runs `dump` again while it fails with `is_busy` (EBUSY: another dump runs on the shared
/// netlink socket), at most [`DUMP_ATTEMPTS`] times, 1, 2, 4, … ms apart. Found by `make chaos`:
/// a VIP removal whose ownership check met EBUSY failed and was never retried, so a BACKUP
/// kept the VIP, answering ARP beside the MASTER.
async fn while_busy<T, E, F, Fut>(is_busy: impl Fn(&E) -> bool, mut dump: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match dump().await {
            Err(error) if attempt < DUMP_ATTEMPTS && is_busy(&error) => {
                let wait = doubling(DUMP_FIRST_WAIT, Duration::MAX, attempt - 1);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn is_busy(error: &rtnetlink::Error) -> bool {
    netlink_errno(error) == Some(EBUSY)
}

/// The IPv4 label of a VIP on `ifname`: `<ifname>:vrrp`, the interface name shortened when the
/// whole would exceed the kernel's 15 characters (so the suffix always identifies it).
pub fn vip_label(ifname: &str) -> String {
    let room = LABEL_MAX - LABEL_SUFFIX.len();
    let mut end = ifname.len().min(room);
    while !ifname.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{LABEL_SUFFIX}", &ifname[..end])
}

/// One address on an interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ifindex: u32,
    /// The local address with its prefix length.
    pub address: IpNet,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// IPv4 label (`IFA_LABEL`); IPv6 addresses have none.
    pub label: Option<String>,
    /// `IFA_PROTO`, 0 when unset (IFAPROT_UNSPEC).
    pub protocol: u8,
}

impl InterfaceAddress {
    /// Whether kube-vrrp installed this address (by `IFA_PROTO`, or the IPv4 label suffix).
    pub fn is_vip(&self) -> bool {
        self.protocol == IFAPROT_KUBE_VRRP
            || self
                .label
                .as_deref()
                .is_some_and(|label| label.ends_with(LABEL_SUFFIX))
    }

    /// Who installed the address, for logs and status: `kube-vrrp` for ours, else the kernel's
    /// `IFA_PROTO` name (`kernel_lo`, `kernel_ra`, `kernel_ll`), `IFA_PROTO <n>`, or
    /// `unknown (no IFA_PROTO)` for an address added by hand or by a tool that sets none; with
    /// its label when it has one.
    pub fn owner(&self) -> String {
        let who = match self.protocol {
            _ if self.is_vip() => "kube-vrrp".to_owned(),
            0 => "unknown (no IFA_PROTO)".to_owned(),
            1 => "kernel_lo".to_owned(),
            2 => "kernel_ra".to_owned(),
            3 => "kernel_ll".to_owned(),
            other => format!("IFA_PROTO {other}"),
        };
        match &self.label {
            Some(label) => format!("{who}, label {label}"),
            None => who,
        }
    }

    /// Whether an `IFA_F_*` flag is set.
    pub fn has_flag(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }

    pub(crate) fn from_message(message: &AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut peer = None;
        let mut label = None;
        let mut flags = u32::from(message.header.flags.bits());
        let mut protocol = 0;
        for attribute in &message.attributes {
            match attribute {
                AddressAttribute::Local(address) => local = Some(*address),
                AddressAttribute::Address(address) => peer = Some(*address),
                AddressAttribute::Label(text) => label = Some(text.clone()),
                AddressAttribute::Flags(all) => flags = all.bits(),
                AddressAttribute::Protocol(value) => protocol = u8::from(*value),
                _ => {}
            }
        }
        let address = IpNet::new(local.or(peer)?, message.header.prefix_len).ok()?;
        Some(Self {
            ifindex: message.header.index,
            address,
            flags,
            label,
            protocol,
        })
    }
}

/// What an idempotent add or remove did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    /// Our own address (tagged) was already there.
    AlreadyPresent,
    Removed,
    Absent,
    /// The address is there but not ours: left alone.
    NotOurs,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::AlreadyPresent => "already_present",
            Self::Removed => "removed",
            Self::Absent => "absent",
            Self::NotOurs => "not_ours",
        }
    }
}

/// The entry on the interface that is `vip` (same address and prefix length), if any.
pub fn find_vip(present: &[InterfaceAddress], vip: IpNet) -> Option<&InterfaceAddress> {
    present.iter().find(|entry| {
        entry.address.addr() == vip.addr() && entry.address.prefix_len() == vip.prefix_len()
    })
}

/// The addresses on the interface that equal one of `vips` (any prefix length) but were not
/// installed by kube-vrrp: each is another owner's, a conflict for the instance naming it.
pub fn foreign_matches<'a>(
    present: &'a [InterfaceAddress],
    vips: &'a [IpNet],
) -> impl Iterator<Item = &'a InterfaceAddress> + 'a {
    present.iter().filter(move |entry| {
        !entry.is_vip() && vips.iter().any(|vip| vip.addr() == entry.address.addr())
    })
}

/// The outcome of the start-up cleanup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    /// Tagged VIP leftovers that were removed.
    pub removed: Vec<IpNet>,
    /// Addresses equal to a configured VIP but not installed by kube-vrrp: left alone, to be
    /// reported as a conflict.
    pub foreign: Vec<InterfaceAddress>,
}

/// Decides the start-up cleanup: which present addresses are leftovers of configured VIPs
/// (same address, any prefix length, carrying our tag) and which merely collide with one.
/// Every other address is untouched.
pub fn plan_cleanup(present: &[InterfaceAddress], configured: &[IpNet]) -> Cleanup {
    let wanted: HashSet<IpAddr> = configured.iter().map(IpNet::addr).collect();
    let mut cleanup = Cleanup::default();
    for entry in present {
        if !wanted.contains(&entry.address.addr()) {
            continue;
        }
        if entry.is_vip() {
            cleanup.removed.push(entry.address);
        } else {
            cleanup.foreign.push(entry.clone());
        }
    }
    cleanup
}

/// VIP management on one rtnetlink connection.
#[derive(Debug, Clone)]
pub struct Addresses {
    handle: Handle,
}

impl Addresses {
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    /// Installs `vip` on interface `ifindex` (named `ifname`, for the IPv4 label). Adding a VIP
    /// that is already there as ours succeeds with [`Change::AlreadyPresent`]; one that is
    /// there but was installed by someone else is [`NetError::AddressTaken`].
    pub async fn add(&self, ifindex: u32, ifname: &str, vip: IpNet) -> Result<Change, NetError> {
        let mut request = self
            .handle
            .address()
            .add(ifindex, vip.addr(), vip.prefix_len());
        let message = request.message_mut();
        // No IFA_BROADCAST (rtnetlink's builder adds one): a VIP needs no broadcast route.
        message
            .attributes
            .retain(|attribute| !matches!(attribute, AddressAttribute::Broadcast(_)));
        let mut flags = AddressFlags::Noprefixroute;
        match vip {
            IpNet::V4(_) => message
                .attributes
                .push(AddressAttribute::Label(vip_label(ifname))),
            IpNet::V6(_) => flags |= AddressFlags::Nodad,
        }
        message.attributes.push(AddressAttribute::Flags(flags));
        message
            .attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(
                IFAPROT_KUBE_VRRP,
            )));
        match request.execute().await {
            Ok(()) => Ok(Change::Added),
            Err(error) if netlink_errno(&error) == Some(EEXIST) => {
                let present = self.list(ifindex).await?;
                match present
                    .iter()
                    .find(|entry| entry.address.addr() == vip.addr())
                {
                    Some(entry) if !entry.is_vip() => {
                        Err(NetError::AddressTaken(Box::new(entry.clone())))
                    }
                    _ => Ok(Change::AlreadyPresent),
                }
            }
            Err(error) => Err(NetError::netlink("add VIP")(error)),
        }
    }

    /// Removes `vip` (address and prefix length) from interface `ifindex` if kube-vrrp installed
    /// it. Removing an absent address succeeds with [`Change::Absent`]; an address that is there
    /// but not ours is left alone and reported as [`Change::NotOurs`].
    ///
    /// IPv4 deletes also carry our label, which the kernel matches, so an address someone else
    /// put in place of ours between the listing and the delete is never removed; IPv6 has no
    /// label, and relies on the listing alone.
    pub async fn remove(&self, ifindex: u32, vip: IpNet) -> Result<Change, NetError> {
        let present = self.list(ifindex).await?;
        match find_vip(&present, vip) {
            None => Ok(Change::Absent),
            Some(entry) if !entry.is_vip() => Ok(Change::NotOurs),
            Some(entry) => self.delete(entry).await,
        }
    }

    /// Deletes exactly `entry` (an address of ours), by address, prefix length and, for IPv4,
    /// label.
    async fn delete(&self, entry: &InterfaceAddress) -> Result<Change, NetError> {
        let address = entry.address;
        let mut message = AddressMessage::default();
        message.header.index = entry.ifindex;
        message.header.prefix_len = address.prefix_len();
        message.header.family = match address {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        message
            .attributes
            .push(AddressAttribute::Local(address.addr()));
        if address.addr().is_ipv4() {
            message
                .attributes
                .push(AddressAttribute::Address(address.addr()));
            if let Some(label) = &entry.label {
                message
                    .attributes
                    .push(AddressAttribute::Label(label.clone()));
            }
        }
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(Change::Removed),
            Err(error) if netlink_errno(&error) == Some(EADDRNOTAVAIL) => Ok(Change::Absent),
            Err(error) => Err(NetError::netlink("remove VIP")(error)),
        }
    }

    /// Every address on interface `ifindex`, both families.
    pub async fn list(&self, ifindex: u32) -> Result<Vec<InterfaceAddress>, NetError> {
        let messages: Vec<AddressMessage> = while_busy(is_busy, || {
            self.handle
                .address()
                .get()
                .set_link_index_filter(ifindex)
                .execute()
                .try_collect()
        })
        .await
        .map_err(NetError::netlink("list addresses"))?;
        Ok(messages
            .iter()
            .filter_map(InterfaceAddress::from_message)
            .collect())
    }

    /// Every address on every interface, both families.
    pub async fn list_all(&self) -> Result<Vec<InterfaceAddress>, NetError> {
        let messages: Vec<AddressMessage> = while_busy(is_busy, || {
            self.handle.address().get().execute().try_collect()
        })
        .await
        .map_err(NetError::netlink("list addresses"))?;
        Ok(messages
            .iter()
            .filter_map(InterfaceAddress::from_message)
            .collect())
    }

    /// Whether interface `ifindex` holds `address` (any prefix length, any owner).
    pub async fn holds(&self, ifindex: u32, address: IpAddr) -> Result<bool, NetError> {
        Ok(self
            .list(ifindex)
            .await?
            .iter()
            .any(|entry| entry.address.addr() == address))
    }

    /// Start-up cleanup: removes from interface `ifindex` every kube-vrrp-tagged address whose
    /// address is one of `configured` (a crash leftover), with whatever prefix length it has.
    /// Never touches any other address; untagged addresses equal to a VIP are reported in
    /// [`Cleanup::foreign`].
    pub async fn remove_leftovers(
        &self,
        ifindex: u32,
        configured: &[IpNet],
    ) -> Result<Cleanup, NetError> {
        let present = self.list(ifindex).await?;
        let cleanup = plan_cleanup(&present, configured);
        for leftover in &cleanup.removed {
            if let Some(entry) = find_vip(&present, *leftover) {
                self.delete(entry).await?;
            }
        }
        Ok(cleanup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(address: &str, label: Option<&str>, protocol: u8) -> InterfaceAddress {
        InterfaceAddress {
            ifindex: 2,
            address: address.parse().unwrap(),
            flags: 0,
            label: label.map(str::to_owned),
            protocol,
        }
    }

    #[test]
    fn vip_label_appends_vrrp_to_a_short_interface_name() {
        assert_eq!(vip_label("eth0"), "eth0:vrrp");
    }

    #[test]
    fn vip_label_shortens_a_long_interface_name_to_fit_fifteen_characters() {
        let label = vip_label("enp0s31f6long12");
        assert_eq!(label, "enp0s31f6l:vrrp");
        assert_eq!(label.len(), LABEL_MAX);
        assert!(label.ends_with(LABEL_SUFFIX));
    }

    #[test]
    fn an_address_with_our_protocol_or_label_is_a_vip_and_others_are_not() {
        assert!(entry("10.0.0.50/24", None, IFAPROT_KUBE_VRRP).is_vip());
        assert!(entry("10.0.0.50/24", Some("eth0:vrrp"), 0).is_vip());
        assert!(!entry("10.0.0.5/24", Some("eth0"), 0).is_vip());
        assert!(!entry("fe80::1/64", None, 3).is_vip());
    }

    #[tokio::test]
    async fn an_address_dump_refused_as_busy_is_asked_again_and_other_errors_are_not() {
        let busy = |e: &i32| *e == EBUSY;
        let mut calls = 0;
        let got: Result<&str, i32> = while_busy(busy, || {
            calls += 1;
            let answer = if calls < 3 {
                Err(EBUSY)
            } else {
                Ok("addresses")
            };
            async move { answer }
        })
        .await;
        assert_eq!((got, calls), (Ok("addresses"), 3));
        let mut calls = 0;
        let got: Result<(), i32> = while_busy(busy, || {
            calls += 1;
            async { Err(EADDRNOTAVAIL) }
        })
        .await;
        assert_eq!((got, calls), (Err(EADDRNOTAVAIL), 1));
        let mut calls = 0;
        let got: Result<(), i32> = while_busy(busy, || {
            calls += 1;
            async { Err(EBUSY) }
        })
        .await;
        assert_eq!((got, calls), (Err(EBUSY), DUMP_ATTEMPTS));
    }

    #[test]
    fn cleanup_removes_tagged_leftovers_of_configured_vips_with_any_prefix_length() {
        let present = [
            entry("10.0.0.5/24", Some("eth0"), 0),
            entry("10.0.0.50/32", Some("eth0:vrrp"), IFAPROT_KUBE_VRRP),
            entry("2001:db8::50/64", None, IFAPROT_KUBE_VRRP),
        ];
        let configured: Vec<IpNet> = vec![
            "10.0.0.50/24".parse().unwrap(),
            "2001:db8::50/64".parse().unwrap(),
        ];
        let cleanup = plan_cleanup(&present, &configured);
        assert_eq!(
            cleanup.removed,
            vec![
                "10.0.0.50/32".parse::<IpNet>().unwrap(),
                "2001:db8::50/64".parse().unwrap()
            ]
        );
        assert!(cleanup.foreign.is_empty());
    }

    #[test]
    fn cleanup_never_removes_an_untagged_address_even_when_it_equals_a_vip() {
        let present = [entry("10.0.0.5/24", Some("eth0"), 0)];
        let cleanup = plan_cleanup(&present, &["10.0.0.5/24".parse().unwrap()]);
        assert!(cleanup.removed.is_empty());
        assert_eq!(cleanup.foreign, present.to_vec());
    }

    #[test]
    fn cleanup_leaves_tagged_addresses_that_are_not_configured() {
        let present = [entry("10.0.0.60/24", Some("eth0:vrrp"), IFAPROT_KUBE_VRRP)];
        let cleanup = plan_cleanup(&present, &["10.0.0.50/24".parse().unwrap()]);
        assert_eq!(cleanup, Cleanup::default());
    }

    #[test]
    fn change_names_are_stable_metric_labels() {
        let names: Vec<&str> = [
            Change::Added,
            Change::AlreadyPresent,
            Change::Removed,
            Change::Absent,
            Change::NotOurs,
        ]
        .into_iter()
        .map(Change::as_str)
        .collect();
        assert_eq!(
            names,
            ["added", "already_present", "removed", "absent", "not_ours"]
        );
    }

    #[test]
    fn an_untagged_address_equal_to_a_vip_is_foreign_whatever_its_prefix() {
        let present = [
            entry("10.0.0.5/24", Some("eth0"), 0),
            entry("10.0.0.50/32", Some("eth0:vrrp"), IFAPROT_KUBE_VRRP),
            entry("10.0.0.51/32", Some("eth0"), 0),
        ];
        let vips: Vec<IpNet> = vec![
            "10.0.0.50/24".parse().unwrap(),
            "10.0.0.51/24".parse().unwrap(),
        ];
        let foreign: Vec<String> = foreign_matches(&present, &vips)
            .map(|entry| entry.address.to_string())
            .collect();
        assert_eq!(foreign, ["10.0.0.51/32"]);
    }

    #[test]
    fn a_vip_is_found_only_with_its_own_prefix_length() {
        let present = [entry("10.0.0.50/32", Some("eth0:vrrp"), IFAPROT_KUBE_VRRP)];
        assert!(find_vip(&present, "10.0.0.50/24".parse().unwrap()).is_none());
        assert!(find_vip(&present, "10.0.0.50/32".parse().unwrap()).is_some());
    }

    #[test]
    fn owners_are_named_by_protocol_and_label() {
        assert_eq!(
            entry("10.0.0.5/24", Some("eth0"), 0).owner(),
            "unknown (no IFA_PROTO), label eth0"
        );
        assert_eq!(entry("fe80::1/64", None, 3).owner(), "kernel_ll");
        assert_eq!(
            entry("10.0.0.50/24", Some("eth0:vrrp"), IFAPROT_KUBE_VRRP).owner(),
            "kube-vrrp, label eth0:vrrp"
        );
        assert_eq!(entry("10.0.0.9/24", None, 4).owner(), "IFA_PROTO 4");
    }
}
