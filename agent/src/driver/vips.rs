//! VIP ownership of one instance on its interface: the addresses it wants, the ones it installed
//! (and so, alone, may remove), and the ones another owner holds (a conflict: left alone).
//!
//! The bookkeeping is pure ([`Vips::observe`] compares it with the interface's addresses);
//! [`Vips::install`] and [`Vips::release`] perform it through rtnetlink, which itself never
//! deletes an address that is not ours (see [`crate::net::address`]).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::net::NetError;
use crate::net::address::{Addresses, Change, InterfaceAddress, foreign_matches};

/// The VIPs of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vips {
    /// The configured virtual addresses.
    wanted: Vec<IpNet>,
    /// The addresses this instance installed and has not removed.
    held: Vec<IpNet>,
    /// Addresses on the interface equal to a wanted VIP but installed by someone else.
    conflicts: Vec<InterfaceAddress>,
}

/// What comparing the books with the interface found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The set of conflicting addresses changed.
    pub conflicts_changed: bool,
    /// Held addresses that are no longer on the interface: someone else removed them.
    pub missing: Vec<IpNet>,
}

/// What an attempt to install the wanted addresses did.
#[derive(Debug, Default)]
pub struct Installed {
    /// Addresses now on the interface by this instance's hand (added, or already ours).
    pub held: Vec<IpNet>,
    /// Addresses another owner holds: not added, now recorded as conflicts.
    pub taken: Vec<InterfaceAddress>,
    /// Addresses the kernel refused, with why.
    pub failed: Vec<(IpNet, NetError)>,
}

impl Vips {
    /// Nothing held yet.
    pub fn new(wanted: Vec<IpNet>) -> Self {
        Self {
            wanted,
            held: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// The configured virtual addresses.
    pub fn wanted(&self) -> &[IpNet] {
        &self.wanted
    }

    /// The addresses installed by this instance, in the order they were added.
    pub fn held(&self) -> &[IpNet] {
        &self.held
    }

    /// The held addresses without prefix length, as announcements carry them.
    pub fn held_addresses(&self) -> Vec<IpAddr> {
        self.held.iter().map(IpNet::addr).collect()
    }

    /// The addresses another owner holds.
    pub fn conflicts(&self) -> &[InterfaceAddress] {
        &self.conflicts
    }

    /// Replaces the configured addresses; returns the held ones that are no longer wanted (to
    /// be released). Conflicts are re-evaluated by the next [`Vips::observe`].
    pub fn set_wanted(&mut self, wanted: Vec<IpNet>) -> Vec<IpNet> {
        self.wanted = wanted;
        self.held
            .iter()
            .filter(|vip| !self.wanted.contains(vip))
            .copied()
            .collect()
    }

    /// Compares the books with `present`, the interface's addresses now: records the foreign
    /// addresses equal to a wanted VIP (whatever their prefix length), and reports the held
    /// ones that are gone.
    pub fn observe(&mut self, present: &[InterfaceAddress]) -> Observed {
        let conflicts: Vec<InterfaceAddress> =
            foreign_matches(present, &self.wanted).cloned().collect();
        let conflicts_changed = conflicts != self.conflicts;
        self.conflicts = conflicts;
        let missing = self
            .held
            .iter()
            .filter(|vip| {
                !present.iter().any(|entry| {
                    entry.is_vip()
                        && entry.address.addr() == vip.addr()
                        && entry.address.prefix_len() == vip.prefix_len()
                })
            })
            .copied()
            .collect();
        Observed {
            conflicts_changed,
            missing,
        }
    }

    /// Records that `vip` is on the interface by this instance's hand.
    pub fn record_held(&mut self, vip: IpNet) {
        if !self.held.contains(&vip) {
            self.held.push(vip);
        }
    }

    /// Records that `vip` is no longer on the interface.
    pub fn record_released(&mut self, vip: IpNet) {
        self.held.retain(|held| *held != vip);
    }

    /// Records that another owner holds `entry`.
    pub fn record_taken(&mut self, entry: InterfaceAddress) {
        if !self.conflicts.contains(&entry) {
            self.conflicts.push(entry);
        }
    }

    /// Adds every wanted address that another owner does not hold to interface `ifindex`
    /// (named `ifname`).
    pub async fn install(
        &mut self,
        addresses: &Addresses,
        ifindex: u32,
        ifname: &str,
    ) -> Installed {
        let mut outcome = Installed::default();
        for vip in self.wanted.clone() {
            if self
                .conflicts
                .iter()
                .any(|entry| entry.address.addr() == vip.addr())
            {
                continue;
            }
            match addresses.add(ifindex, ifname, vip).await {
                Ok(_) => {
                    self.record_held(vip);
                    outcome.held.push(vip);
                }
                Err(NetError::AddressTaken(entry)) => {
                    tracing::debug!(%vip, owner = %entry.owner(), "VIP taken by another owner");
                    self.record_taken((*entry).clone());
                    outcome.taken.push(*entry);
                }
                Err(error) => outcome.failed.push((vip, error)),
            }
        }
        outcome
    }

    /// Removes `vips` from interface `ifindex` where they are ours; returns the errors.
    pub async fn release(
        &mut self,
        addresses: &Addresses,
        ifindex: u32,
        vips: &[IpNet],
    ) -> Vec<(IpNet, NetError)> {
        let mut errors = Vec::new();
        for vip in vips {
            match addresses.remove(ifindex, *vip).await {
                Ok(Change::NotOurs) => {
                    tracing::warn!(%vip, ifindex, "a VIP this instance held was replaced by another owner's address; left alone");
                    self.record_released(*vip);
                }
                Ok(change) => {
                    tracing::debug!(%vip, change = change.as_str(), "VIP removed");
                    self.record_released(*vip);
                }
                Err(error) => errors.push((*vip, error)),
            }
        }
        errors
    }

    /// Removes every held address; returns the errors.
    pub async fn release_held(
        &mut self,
        addresses: &Addresses,
        ifindex: u32,
    ) -> Vec<(IpNet, NetError)> {
        let held = self.held.clone();
        self.release(addresses, ifindex, &held).await
    }
}

/// How the conflicts of an instance read in logs and status: each address with its owner.
pub fn describe_conflicts(conflicts: &[InterfaceAddress]) -> String {
    conflicts
        .iter()
        .map(|entry| format!("{} (owner: {})", entry.address, entry.owner()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::address::IFAPROT_KUBE_VRRP;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn present(text: &str, ours: bool) -> InterfaceAddress {
        InterfaceAddress {
            ifindex: 2,
            address: net(text),
            flags: 0,
            label: ours.then(|| "eth0:vrrp".to_owned()),
            protocol: if ours { IFAPROT_KUBE_VRRP } else { 0 },
        }
    }

    #[test]
    fn a_new_set_holds_nothing_and_sees_no_conflict() {
        let vips = Vips::new(vec![net("10.0.0.50/24")]);
        assert!(vips.held().is_empty());
        assert!(vips.conflicts().is_empty());
        assert_eq!(vips.wanted(), [net("10.0.0.50/24")]);
    }

    #[test]
    fn held_addresses_are_recorded_once_and_released_by_address() {
        let mut vips = Vips::new(vec![net("10.0.0.50/24"), net("10.0.0.51/24")]);
        vips.record_held(net("10.0.0.50/24"));
        vips.record_held(net("10.0.0.50/24"));
        vips.record_held(net("10.0.0.51/24"));
        assert_eq!(vips.held(), [net("10.0.0.50/24"), net("10.0.0.51/24")]);
        vips.record_released(net("10.0.0.50/24"));
        assert_eq!(vips.held(), [net("10.0.0.51/24")]);
    }

    #[test]
    fn new_wanted_addresses_give_back_the_held_ones_that_left() {
        let mut vips = Vips::new(vec![net("10.0.0.50/24"), net("10.0.0.51/24")]);
        vips.record_held(net("10.0.0.50/24"));
        vips.record_held(net("10.0.0.51/24"));
        let gone = vips.set_wanted(vec![net("10.0.0.51/24"), net("10.0.0.52/24")]);
        assert_eq!(gone, [net("10.0.0.50/24")]);
        assert_eq!(vips.wanted(), [net("10.0.0.51/24"), net("10.0.0.52/24")]);
    }

    #[test]
    fn an_administrators_address_equal_to_a_vip_is_a_conflict_and_never_held() {
        let mut vips = Vips::new(vec![net("10.0.0.5/24")]);
        let observed = vips.observe(&[present("10.0.0.5/24", false)]);
        assert!(observed.conflicts_changed);
        assert_eq!(vips.conflicts(), [present("10.0.0.5/24", false)]);
        assert!(vips.held().is_empty());
        assert_eq!(
            describe_conflicts(vips.conflicts()),
            "10.0.0.5/24 (owner: unknown (no IFA_PROTO))"
        );
        // Seen again: nothing new. Gone: the conflict clears.
        assert!(
            !vips
                .observe(&[present("10.0.0.5/24", false)])
                .conflicts_changed
        );
        assert!(vips.observe(&[]).conflicts_changed);
        assert!(vips.conflicts().is_empty());
    }

    #[test]
    fn a_conflict_is_an_equal_address_whatever_its_prefix_length() {
        let mut vips = Vips::new(vec![net("10.0.0.5/24")]);
        vips.observe(&[present("10.0.0.5/32", false)]);
        assert_eq!(vips.conflicts().len(), 1);
    }

    #[test]
    fn our_own_vip_on_the_interface_is_no_conflict() {
        let mut vips = Vips::new(vec![net("10.0.0.50/24")]);
        vips.record_held(net("10.0.0.50/24"));
        let observed = vips.observe(&[present("10.0.0.50/24", true)]);
        assert_eq!(observed, Observed::default());
    }

    #[test]
    fn a_held_vip_removed_by_someone_else_is_reported_missing() {
        let mut vips = Vips::new(vec![net("10.0.0.50/24"), net("10.0.0.51/24")]);
        vips.record_held(net("10.0.0.50/24"));
        vips.record_held(net("10.0.0.51/24"));
        let observed = vips.observe(&[present("10.0.0.51/24", true)]);
        assert_eq!(observed.missing, [net("10.0.0.50/24")]);
        // An untagged address in its place is not ours: still missing, and a conflict.
        let observed = vips.observe(&[
            present("10.0.0.50/24", false),
            present("10.0.0.51/24", true),
        ]);
        assert_eq!(observed.missing, [net("10.0.0.50/24")]);
        assert!(observed.conflicts_changed);
    }
}
