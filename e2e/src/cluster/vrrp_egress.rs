//! Silencing one node's VRRP adverts: an nftables table inside the node's namespace whose
//! output chain drops IP protocol 112, so the node's own sends fail (`sendmsg` gets EPERM)
//! while it still hears its peers, and scraping and API traffic flow. Removed on drop.

use crate::netns::Netns;

use super::ClusterError;

/// The table's name in the node's namespace.
const TABLE: &str = "kube_vrrp_lab_egress";

/// Outgoing VRRP of one namespace dropped while this lives.
#[derive(Debug)]
pub struct VrrpEgressDrop<'a> {
    ns: &'a Netns,
}

impl<'a> VrrpEgressDrop<'a> {
    /// Drops every VRRP packet `ns` sends (IPv4 and IPv6). Needs `nft` (Debian `nftables`).
    pub fn start(ns: &'a Netns) -> Result<Self, ClusterError> {
        let script = format!(
            "add table inet {TABLE}; \
             add chain inet {TABLE} out {{ type filter hook output priority 0; policy accept; }}; \
             add rule inet {TABLE} out meta l4proto vrrp drop"
        );
        ns.exec(&["nft", &script]).map_err(|e| ClusterError::Tool {
            command: format!("nft {script} (in {}; Debian package nftables)", ns.name()),
            stderr: e.to_string(),
        })?;
        Ok(Self { ns })
    }

    /// Lets VRRP out again.
    pub fn stop(self) -> Result<(), ClusterError> {
        let result = self.remove();
        std::mem::forget(self);
        result
    }

    fn remove(&self) -> Result<(), ClusterError> {
        self.ns
            .exec(&["nft", "delete", "table", "inet", TABLE])
            .map(drop)
            .map_err(ClusterError::from)
    }
}

impl Drop for VrrpEgressDrop<'_> {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}
