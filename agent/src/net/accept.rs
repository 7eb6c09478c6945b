//! RFC 5798 §6.4.3 Accept_Mode False, enforced: a MASTER that does not own its virtual
//! addresses must not accept packets addressed to them. One nftables table, `inet kube_vrrp`,
//! holds a filter chain on the input hook that drops every packet to those addresses, except
//! the IPv6 Neighbor Solicitations and Advertisements that answer for them (ARP is not IP and
//! passes anyway). It is written through netlink (nlink), in one atomic batch whenever the set
//! of addresses changes, and deleted when no instance wants it.
//!
//! The rules stay in place whatever the instance's state: a BACKUP does not hold the VIPs, so
//! nothing addressed to them is delivered locally there, and a new MASTER is covered from its
//! first packet. Traffic the node forwards is untouched (another hook).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use nlink::Nftables;
use nlink::netlink::Connection;
use nlink::netlink::nftables::{BaseChain, Chain, Family, FilterHook, Policy, Priority, Rule};
use tokio::sync::Mutex;

use super::NetError;

/// The table the agent owns.
pub const TABLE: &str = "kube_vrrp";
/// Its chain on the input hook.
pub const CHAIN: &str = "accept_mode";
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

/// The addresses to drop traffic to: those of every instance that does not accept. Pure.
pub fn dropped_addresses(wanted: &BTreeMap<String, Vec<IpAddr>>) -> BTreeSet<IpAddr> {
    wanted.values().flatten().copied().collect()
}

struct State {
    connection: Option<Connection<Nftables>>,
    /// Per instance, its VIPs, for each instance that does not accept.
    wanted: BTreeMap<String, Vec<IpAddr>>,
    /// What the table holds now.
    installed: BTreeSet<IpAddr>,
}

/// The node's Accept_Mode filter, shared by every instance task. Cheap to clone.
#[derive(Clone)]
pub struct AcceptFilter {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for AcceptFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptFilter").finish_non_exhaustive()
    }
}

impl Default for AcceptFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptFilter {
    /// A filter that has written nothing yet. Its netlink socket is opened on first use, in
    /// the namespace of the thread that uses it.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                connection: None,
                wanted: BTreeMap::new(),
                installed: BTreeSet::new(),
            })),
        }
    }

    /// Drops traffic to `vips` for `instance` (replacing what it had); no addresses: the
    /// instance accepts again. The table is rewritten only when the union changed.
    pub async fn set(&self, instance: &str, vips: &[IpAddr]) -> Result<(), NetError> {
        let mut state = self.state.lock().await;
        if vips.is_empty() {
            state.wanted.remove(instance);
        } else {
            state.wanted.insert(instance.to_owned(), vips.to_vec());
        }
        let desired = dropped_addresses(&state.wanted);
        if desired == state.installed {
            return Ok(());
        }
        if state.connection.is_none() {
            state.connection =
                Some(Connection::<Nftables>::new().map_err(nft("open nftables netlink socket"))?);
        }
        let Some(connection) = state.connection.as_ref() else {
            return Ok(());
        };
        write(connection, &desired).await?;
        state.installed = desired;
        Ok(())
    }
}

/// Replaces the table with one dropping traffic to `addresses`, or deletes it when there are
/// none: one batch, applied atomically by the kernel.
async fn write(
    connection: &Connection<Nftables>,
    addresses: &BTreeSet<IpAddr>,
) -> Result<(), NetError> {
    let mut batch = connection.transaction().destroy_table(TABLE, Family::Inet);
    if !addresses.is_empty() {
        let chain = Chain::new(TABLE, CHAIN)
            .map_err(nft("name the accept_mode chain"))?
            .family(Family::Inet)
            .base(BaseChain::filter(FilterHook::Input, Priority::Filter).policy(Policy::Accept));
        batch = batch.add_table(TABLE, Family::Inet).add_chain(chain);
        for nd in [ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT] {
            batch = batch.add_rule(
                Rule::new(TABLE, CHAIN)
                    .family(Family::Inet)
                    .match_l4proto(IPPROTO_ICMPV6)
                    .match_icmpv6_type(nd)
                    .accept(),
            );
        }
        for address in addresses {
            let prefix = if address.is_ipv4() { 32 } else { 128 };
            batch = batch.add_rule(
                Rule::new(TABLE, CHAIN)
                    .family(Family::Inet)
                    .match_daddr(*address, prefix)
                    .counter()
                    .drop(),
            );
        }
    }
    batch
        .commit(connection)
        .await
        .map_err(nft("write the accept_mode table"))
}

fn nft(op: &'static str) -> impl FnOnce(nlink::Error) -> NetError {
    move |error| NetError::Nftables {
        op,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropped_addresses_are_the_union_of_every_non_accepting_instance() {
        let mut wanted = BTreeMap::new();
        wanted.insert("web".to_owned(), vec!["10.0.0.50".parse().unwrap()]);
        wanted.insert(
            "db".to_owned(),
            vec!["10.0.0.51".parse().unwrap(), "10.0.0.50".parse().unwrap()],
        );
        let dropped: Vec<String> = dropped_addresses(&wanted)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(dropped, ["10.0.0.50", "10.0.0.51"]);
        assert!(dropped_addresses(&BTreeMap::new()).is_empty());
    }
}
