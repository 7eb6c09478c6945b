//! VIP addresses tested for real in a network namespace (on one end of a veth pair; this kernel
//! has no dummy driver): flags visible
//! to `ip -d addr`, idempotence, and the start-up cleanup that touches only configured VIPs.

// Test helpers outside #[test] functions may unwrap too (clippy only exempts the tests).
#![allow(clippy::unwrap_used)]

use std::future::Future;

use ipnet::IpNet;
use kube_vrrp_agent::net::address::{
    Addresses, Change, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_TENTATIVE, IFAPROT_KUBE_VRRP,
    InterfaceAddress,
};
use kube_vrrp_agent::net::link::Links;
use kube_vrrp_agent::net::{NetError, rtnetlink_connect};
use kube_vrrp_e2e::netns::{Netns, require_root};

/// A namespace with interface `d0` (veth, peer `d1`) up, IPv6 DAD off, holding the node addresses 10.0.0.5/24 and
/// 2001:db8::5/64.
fn node() -> Netns {
    require_root();
    let ns = Netns::create("kvad").unwrap();
    // The kernel's own link-local address must be usable at once (no DAD wait).
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
        .unwrap();
    ns.exec(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ])
    .unwrap();
    ns.exec(&["ip", "link", "set", "d1", "up"]).unwrap();
    ns.exec(&["ip", "link", "set", "d0", "up"]).unwrap();
    ns.exec(&["ip", "addr", "add", "10.0.0.5/24", "dev", "d0"])
        .unwrap();
    ns.exec(&["ip", "addr", "add", "2001:db8::5/64", "dev", "d0", "nodad"])
        .unwrap();
    ns
}

fn in_ns<T, F, Fut>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Addresses, u32) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    ns.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let handle = rtnetlink_connect().unwrap();
                let ifindex = Links::new(handle.clone())
                    .by_name("d0")
                    .await
                    .unwrap()
                    .ifindex;
                f(Addresses::new(handle), ifindex).await
            })
    })
    .unwrap()
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

/// The `ip -d addr show dev d0` line describing `address` (with its prefix length).
fn ip_addr_line(ns: &Netns, address: &str) -> Option<String> {
    let out = ns.exec(&["ip", "-d", "addr", "show", "dev", "d0"]).unwrap();
    let needle = format!(" {address} ");
    out.lines()
        .find(|line| line.contains(&needle))
        .map(str::to_owned)
}

fn find(list: &[InterfaceAddress], address: &str) -> Option<InterfaceAddress> {
    list.iter()
        .find(|entry| entry.address == net(address))
        .cloned()
}

#[test]
fn ipv4_vip_is_added_once_with_its_label_noprefixroute_and_our_protocol() {
    let ns = node();
    let (first, second, listed, held) = in_ns(&ns, |addresses, ifindex| async move {
        let vip = net("198.51.100.50/24");
        let first = addresses.add(ifindex, "d0", vip).await.unwrap();
        let second = addresses.add(ifindex, "d0", vip).await.unwrap();
        let listed = addresses.list(ifindex).await.unwrap();
        let held = addresses.holds(ifindex, vip.addr()).await.unwrap();
        (first, second, listed, held)
    });
    assert_eq!(first, Change::Added);
    assert_eq!(second, Change::AlreadyPresent);
    assert!(held);
    let line = ip_addr_line(&ns, "198.51.100.50/24").expect("VIP missing from ip addr");
    assert!(line.contains("d0:vrrp"), "no label: {line}");
    assert!(line.contains("noprefixroute"), "no noprefixroute: {line}");
    assert!(!line.contains(" brd "), "broadcast address set: {line}");
    let entry = find(&listed, "198.51.100.50/24").unwrap();
    assert_eq!(entry.protocol, IFAPROT_KUBE_VRRP);
    assert_eq!(entry.label.as_deref(), Some("d0:vrrp"));
    assert!(entry.has_flag(IFA_F_NOPREFIXROUTE));
    assert!(entry.is_vip());
    assert_eq!(
        listed
            .iter()
            .filter(|entry| entry.address.addr() == net("198.51.100.50/24").addr())
            .count(),
        1,
        "the second add duplicated the VIP"
    );
    let routes = ns
        .exec(&["ip", "route", "show", "198.51.100.0/24"])
        .unwrap();
    assert!(
        routes.trim().is_empty(),
        "a prefix route appeared: {routes}"
    );
    let node = find(&listed, "10.0.0.5/24").unwrap();
    assert!(
        !node.is_vip(),
        "the node address looks like a VIP: {node:?}"
    );
}

#[test]
fn ipv6_vip_is_added_with_nodad_noprefixroute_and_answers_without_being_tentative() {
    let ns = node();
    let (first, second, listed) = in_ns(&ns, |addresses, ifindex| async move {
        let vip = net("2001:db8:1::50/64");
        let first = addresses.add(ifindex, "d0", vip).await.unwrap();
        let second = addresses.add(ifindex, "d0", vip).await.unwrap();
        (first, second, addresses.list(ifindex).await.unwrap())
    });
    assert_eq!(first, Change::Added);
    assert_eq!(second, Change::AlreadyPresent);
    let line = ns
        .exec(&["ip", "-d", "-6", "addr", "show", "dev", "d0"])
        .unwrap();
    let line = line
        .lines()
        .find(|line| line.contains("2001:db8:1::50/64"))
        .expect("VIP missing from ip addr")
        .to_owned();
    assert!(line.contains("nodad"), "no nodad: {line}");
    assert!(line.contains("noprefixroute"), "no noprefixroute: {line}");
    assert!(!line.contains("tentative"), "tentative: {line}");
    let entry = find(&listed, "2001:db8:1::50/64").unwrap();
    assert_eq!(entry.protocol, IFAPROT_KUBE_VRRP);
    assert!(entry.has_flag(IFA_F_NODAD | IFA_F_NOPREFIXROUTE));
    assert!(!entry.has_flag(IFA_F_TENTATIVE));
    let routes = ns
        .exec(&["ip", "-6", "route", "show", "2001:db8:1::/64"])
        .unwrap();
    assert!(
        routes.trim().is_empty(),
        "a prefix route appeared: {routes}"
    );
}

#[test]
fn a_link_local_ipv6_vip_is_added_and_removed_without_becoming_the_vrrp_source() {
    let ns = node();
    let (added, source, removed) = in_ns(&ns, |addresses, ifindex| async move {
        let vip = net("fe80::50/64");
        let added = addresses.add(ifindex, "d0", vip).await.unwrap();
        let links = Links::new(rtnetlink_connect().unwrap());
        let source = links.by_index(ifindex).await.unwrap().ipv6_link_local;
        let removed = addresses.remove(ifindex, vip).await.unwrap();
        (added, source, removed)
    });
    assert_eq!(added, Change::Added);
    assert_eq!(removed, Change::Removed);
    let source = source.expect("the kernel's own link-local address is missing");
    assert_ne!(
        source,
        net("fe80::50/64").addr(),
        "the VIP became the source"
    );
}

#[test]
fn removing_a_vip_is_idempotent_and_leaves_the_node_address() {
    let ns = node();
    let (removed, again, v6_removed, v6_again, held, listed) =
        in_ns(&ns, |addresses, ifindex| async move {
            let vip = net("10.0.0.50/24");
            let vip6 = net("2001:db8::50/64");
            addresses.add(ifindex, "d0", vip).await.unwrap();
            addresses.add(ifindex, "d0", vip6).await.unwrap();
            let removed = addresses.remove(ifindex, vip).await.unwrap();
            let again = addresses.remove(ifindex, vip).await.unwrap();
            let v6_removed = addresses.remove(ifindex, vip6).await.unwrap();
            let v6_again = addresses.remove(ifindex, vip6).await.unwrap();
            let held = addresses.holds(ifindex, vip.addr()).await.unwrap()
                || addresses.holds(ifindex, vip6.addr()).await.unwrap();
            (
                removed,
                again,
                v6_removed,
                v6_again,
                held,
                addresses.list(ifindex).await.unwrap(),
            )
        });
    assert_eq!(
        (removed, again, v6_removed, v6_again),
        (
            Change::Removed,
            Change::Absent,
            Change::Removed,
            Change::Absent
        )
    );
    assert!(!held);
    assert!(find(&listed, "10.0.0.5/24").is_some(), "node address gone");
    assert!(
        find(&listed, "2001:db8::5/64").is_some(),
        "node address gone"
    );
}

#[test]
fn startup_cleanup_removes_only_configured_vips_left_by_a_crash() {
    let ns = node();
    // Not ours, but equal to a configured VIP: must survive and be reported.
    ns.exec(&["ip", "addr", "add", "10.0.0.70/24", "dev", "d0"])
        .unwrap();
    let (cleanup, listed) = in_ns(&ns, |addresses, ifindex| async move {
        // Leftovers of a crashed agent (one with a prefix length since changed) ...
        addresses
            .add(ifindex, "d0", net("10.0.0.50/24"))
            .await
            .unwrap();
        addresses
            .add(ifindex, "d0", net("2001:db8::50/64"))
            .await
            .unwrap();
        // ... and a VIP of ours that is no longer configured.
        addresses
            .add(ifindex, "d0", net("10.0.0.60/24"))
            .await
            .unwrap();
        let configured = [
            net("10.0.0.50/32"),
            net("10.0.0.70/24"),
            net("2001:db8::50/64"),
            net("10.0.0.80/24"),
        ];
        let cleanup = addresses
            .remove_leftovers(ifindex, &configured)
            .await
            .unwrap();
        (cleanup, addresses.list(ifindex).await.unwrap())
    });
    assert_eq!(
        cleanup.removed,
        vec![net("10.0.0.50/24"), net("2001:db8::50/64")]
    );
    assert_eq!(cleanup.foreign.len(), 1);
    assert_eq!(cleanup.foreign[0].address, net("10.0.0.70/24"));
    assert!(find(&listed, "10.0.0.50/24").is_none(), "leftover kept");
    assert!(find(&listed, "2001:db8::50/64").is_none(), "leftover kept");
    for survivor in [
        "10.0.0.5/24",
        "2001:db8::5/64",
        "10.0.0.60/24",
        "10.0.0.70/24",
    ] {
        assert!(
            find(&listed, survivor).is_some(),
            "{survivor} was removed by the cleanup"
        );
    }
    let shown = ns.exec(&["ip", "addr", "show", "dev", "d0"]).unwrap();
    assert!(shown.contains("10.0.0.5/24"), "node address gone: {shown}");
}

#[test]
fn adding_a_vip_to_a_missing_interface_is_an_error() {
    let ns = node();
    let result = in_ns(&ns, |addresses, _| async move {
        addresses.add(9999, "nope0", net("10.0.0.50/24")).await
    });
    assert!(
        matches!(result, Err(NetError::Netlink { .. })),
        "{result:?}"
    );
}

#[test]
fn an_address_that_is_not_ours_is_never_removed_and_cannot_be_added_as_ours() {
    let ns = node();
    // An administrator's addresses, equal to VIPs: IPv4 (label d0) and IPv6 (no IFA_PROTO).
    ns.exec(&["ip", "addr", "add", "10.0.0.50/24", "dev", "d0"])
        .unwrap();
    ns.exec(&["ip", "addr", "add", "2001:db8::50/64", "dev", "d0", "nodad"])
        .unwrap();
    let (removed, removed6, added, added6, listed) = in_ns(&ns, |addresses, ifindex| async move {
        let removed = addresses
            .remove(ifindex, net("10.0.0.50/24"))
            .await
            .unwrap();
        let removed6 = addresses
            .remove(ifindex, net("2001:db8::50/64"))
            .await
            .unwrap();
        let added = addresses.add(ifindex, "d0", net("10.0.0.50/24")).await;
        let added6 = addresses.add(ifindex, "d0", net("2001:db8::50/64")).await;
        (
            removed,
            removed6,
            added.map_err(|e| e.to_string()),
            added6.map_err(|e| e.to_string()),
            addresses.list(ifindex).await.unwrap(),
        )
    });
    assert_eq!((removed, removed6), (Change::NotOurs, Change::NotOurs));
    let taken = added.unwrap_err();
    assert!(
        taken.contains("10.0.0.50/24") && taken.contains("not installed by kube-vrrp"),
        "{taken}"
    );
    assert!(added6.is_err(), "{added6:?}");
    for address in ["10.0.0.50/24", "2001:db8::50/64"] {
        let entry = find(&listed, address).expect("the administrator's address was removed");
        assert!(!entry.is_vip(), "{address} became ours: {entry:?}");
    }
}
