//! VIP ownership of one instance on its interface: the addresses it wants, and the ones it
//! installed and so may remove. The bookkeeping is pure; [`Vips::install`] and
//! [`Vips::release`] perform it through rtnetlink.

use ipnet::IpNet;

use crate::net::address::Addresses;

/// The VIPs of one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vips {
    /// The configured virtual addresses.
    wanted: Vec<IpNet>,
    /// The addresses this instance installed and has not removed.
    held: Vec<IpNet>,
}

impl Vips {
    /// Nothing held yet.
    pub fn new(wanted: Vec<IpNet>) -> Self {
        Self {
            wanted,
            held: Vec::new(),
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

    /// Replaces the configured addresses; returns the held ones that are no longer wanted (to
    /// be released).
    pub fn set_wanted(&mut self, wanted: Vec<IpNet>) -> Vec<IpNet> {
        self.wanted = wanted;
        self.held
            .iter()
            .filter(|vip| !self.wanted.contains(vip))
            .copied()
            .collect()
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

    /// Adds every wanted address to interface `ifindex` (named `ifname`).
    pub async fn install(
        &mut self,
        addresses: &Addresses,
        ifindex: u32,
        ifname: &str,
        instance: &str,
    ) {
        for vip in self.wanted.clone() {
            match addresses.add(ifindex, ifname, vip).await {
                Ok(change) => {
                    tracing::debug!(%instance, %vip, change = change.as_str(), "VIP added");
                    self.record_held(vip);
                }
                Err(error) => {
                    tracing::error!(%instance, %vip, %error, "adding a VIP failed");
                }
            }
        }
    }

    /// Removes `vips` from interface `ifindex`.
    pub async fn release(
        &mut self,
        addresses: &Addresses,
        ifindex: u32,
        vips: &[IpNet],
        instance: &str,
    ) {
        for vip in vips {
            match addresses.remove(ifindex, *vip).await {
                Ok(change) => {
                    tracing::debug!(%instance, %vip, change = change.as_str(), "VIP removed");
                    self.record_released(*vip);
                }
                Err(error) => {
                    tracing::error!(%instance, %vip, %error, "removing a VIP failed");
                }
            }
        }
    }

    /// Removes every held address.
    pub async fn release_held(&mut self, addresses: &Addresses, ifindex: u32, instance: &str) {
        let held = self.held.clone();
        self.release(addresses, ifindex, &held, instance).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn a_new_set_holds_nothing() {
        let vips = Vips::new(vec![net("10.0.0.50/24")]);
        assert!(vips.held().is_empty());
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
}
