//! The virtual MACs the driver runs: one macvlan per instance with `useVirtualMAC`, and the
//! parents' ARP settings, changed while an IPv4 virtual MAC lives on them and put back when the
//! last one goes (see [`crate::net::vmac`] for what is set and why).

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;
use tokio::sync::Mutex;

use crate::net::NetError;
use crate::net::link::{Link, ipv6_link_local};
use crate::net::vmac::{ArpSettings, Vmacs, vmac_name};
use crate::vrrp::Family;

/// What the parent must say for a virtual MAC to be the only one answering ARP for the VIPs.
const QUIET_PARENT: ArpSettings = ArpSettings {
    arp_ignore: 1,
    arp_filter: 1,
};

/// One instance's virtual MAC interface and the interface it sits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacBinding {
    pub name: String,
    pub ifindex: u32,
    pub parent: String,
    pub parent_index: u32,
    pub family: Family,
}

/// A parent's IPv4 virtual MACs and its ARP settings from before the first one.
#[derive(Debug, Clone, Copy, Default)]
struct Parent {
    count: usize,
    /// The settings found, when they had to be changed.
    saved: Option<ArpSettings>,
}

/// The node's virtual MACs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VirtualMacs {
    kernel: Vmacs,
    parents: Arc<Mutex<HashMap<u32, Parent>>>,
}

impl VirtualMacs {
    pub fn new(kernel: Vmacs) -> Self {
        Self {
            kernel,
            parents: Arc::default(),
        }
    }

    /// Creates (or takes back) the virtual MAC of `vrid`/`family` on `parent`.
    pub async fn attach(
        &self,
        parent: &Link,
        family: Family,
        vrid: u8,
    ) -> Result<VmacBinding, NetError> {
        let link_local = match family {
            Family::Ipv4 => None,
            Family::Ipv6 => Some(
                ipv6_link_local(&parent.addresses)
                    .and_then(|address| IpNet::new(address.into(), 64).ok())
                    .ok_or_else(|| NetError::NoSourceAddress {
                        ifname: parent.name.clone(),
                        what: "IPv6 link-local address (none, or still tentative)",
                    })?,
            ),
        };
        let ifindex = self
            .kernel
            .ensure(&parent.name, parent.ifindex, family, vrid, link_local)
            .await?;
        let binding = VmacBinding {
            name: vmac_name(family, vrid),
            ifindex,
            parent: parent.name.clone(),
            parent_index: parent.ifindex,
            family,
        };
        if family == Family::Ipv4 {
            let mut parents = self.parents.lock().await;
            let entry = parents.entry(parent.ifindex).or_default();
            if entry.count == 0 {
                let found = self.kernel.arp_settings(parent.ifindex).await?;
                if found != QUIET_PARENT {
                    self.kernel
                        .set_arp_settings(parent.ifindex, QUIET_PARENT)
                        .await?;
                    tracing::info!(interface = %parent.name, arp_ignore = found.arp_ignore, arp_filter = found.arp_filter, "arp_ignore=1 and arp_filter=1 while a virtual MAC lives on the interface");
                    entry.saved = Some(found);
                }
            }
            entry.count += 1;
        }
        Ok(binding)
    }

    /// Deletes the virtual MAC; puts the parent's ARP settings back after its last one.
    pub async fn detach(&self, binding: &VmacBinding) {
        if let Err(error) = self.kernel.remove(&binding.name).await {
            tracing::error!(interface = %binding.name, %error, "cannot delete the virtual MAC interface");
        }
        if binding.family != Family::Ipv4 {
            return;
        }
        let mut parents = self.parents.lock().await;
        let Some(entry) = parents.get_mut(&binding.parent_index) else {
            return;
        };
        entry.count = entry.count.saturating_sub(1);
        if entry.count > 0 {
            return;
        }
        if let Some(saved) = entry.saved
            && let Err(error) = self
                .kernel
                .set_arp_settings(binding.parent_index, saved)
                .await
        {
            tracing::error!(interface = %binding.parent, %error, "cannot put the interface's ARP settings back");
        }
        parents.remove(&binding.parent_index);
    }
}
