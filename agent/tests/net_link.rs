//! Interface lookups and link events tested for real in network namespaces.

// Test helpers outside #[test] functions may unwrap too (clippy only exempts the tests).
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use kube_vrrp_agent::net::link::{InterfaceEvent, InterfaceEvents, LinkState, Links, OperState};
use kube_vrrp_agent::net::{NetError, rtnetlink_connect};
use kube_vrrp_e2e::netns::{Netns, require_root, veth};

const WAIT: Duration = Duration::from_secs(5);

/// A (`va` 192.0.2.1/24 and `vc` 198.51.100.1/24, DAD off) joined to B (`vb`, `vd`).
fn lab() -> (Netns, Netns) {
    require_root();
    let a = Netns::create("kvln").unwrap();
    let b = Netns::create("kvln").unwrap();
    for ns in [&a, &b] {
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
            .unwrap();
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])
            .unwrap();
    }
    veth(&a, "va", &b, "vb").unwrap();
    veth(&a, "vc", &b, "vd").unwrap();
    a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
        .unwrap();
    a.exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", "vc"])
        .unwrap();
    (a, b)
}

fn in_ns<T, F, Fut>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    ns.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .unwrap()
}

/// Runs `ip ARGS` from the calling thread, which is inside the namespace.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

/// The next event for `ifindex` matching `wanted`, skipping others; panics after 5 s.
async fn wait_for(
    events: &mut InterfaceEvents,
    what: &str,
    wanted: impl Fn(&InterfaceEvent) -> bool,
) -> InterfaceEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.expect("link event stream ended");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} event within 5 s"))
}

#[test]
fn an_interface_resolves_by_name_and_index_with_mac_state_and_source_addresses() {
    let (a, _b) = lab();
    let sys_mac = a
        .exec(&["cat", "/sys/class/net/va/address"])
        .unwrap()
        .trim()
        .to_owned();
    let sys_index: u32 = a
        .exec(&["cat", "/sys/class/net/va/ifindex"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (by_name, by_index) = in_ns(&a, || async {
        let links = Links::new(rtnetlink_connect().unwrap());
        let by_name = links.by_name("va").await.unwrap();
        let by_index = links.by_index(by_name.ifindex).await.unwrap();
        (by_name, by_index)
    });
    assert_eq!(by_name, by_index);
    assert_eq!(by_name.name, "va");
    assert_eq!(by_name.ifindex, sys_index);
    let mac: Vec<String> = by_name
        .mac
        .unwrap()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(mac.join(":"), sys_mac);
    assert_eq!(by_name.state, LinkState::Up);
    assert_eq!(by_name.oper_state, OperState::Up);
    assert_eq!(by_name.primary_ipv4, Some(Ipv4Addr::new(192, 0, 2, 1)));
    let link_local = by_name.ipv6_link_local.expect("no link-local address");
    assert_eq!(link_local.segments()[0], 0xfe80);
}

#[test]
fn looking_up_a_missing_interface_says_so() {
    let (a, _b) = lab();
    let (by_name, by_index) = in_ns(&a, || async {
        let links = Links::new(rtnetlink_connect().unwrap());
        (links.by_name("nope0").await, links.by_index(9999).await)
    });
    assert!(
        matches!(by_name, Err(NetError::NoSuchInterface(ref name)) if name == "nope0"),
        "{by_name:?}"
    );
    assert!(
        matches!(by_index, Err(NetError::NoSuchInterfaceIndex(9999))),
        "{by_index:?}"
    );
}

#[test]
fn the_interface_whose_subnet_contains_a_vip_is_found() {
    let (a, _b) = lab();
    let (va, vc, none) = in_ns(&a, || async {
        let links = Links::new(rtnetlink_connect().unwrap());
        let va = links
            .containing(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50)))
            .await
            .unwrap();
        let vc = links
            .containing(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 50)))
            .await
            .unwrap();
        let none = links
            .containing(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 50)))
            .await
            .unwrap();
        (va, vc, none)
    });
    assert_eq!(va.map(|link| link.name).as_deref(), Some("va"));
    assert_eq!(vc.map(|link| link.name).as_deref(), Some("vc"));
    assert!(none.is_none());
}

#[test]
fn link_down_up_and_removal_are_observed_as_events() {
    let (a, _b) = lab();
    let ifindex: u32 = a
        .exec(&["cat", "/sys/class/net/va/ifindex"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    in_ns(&a, move || async move {
        let mut events = InterfaceEvents::subscribe().unwrap();
        ip(&["link", "set", "va", "down"]);
        let down = wait_for(&mut events, "down", |event| {
            matches!(event, InterfaceEvent::Changed { ifindex: i, state: LinkState::Down, .. } if *i == ifindex)
        })
        .await;
        assert!(matches!(down, InterfaceEvent::Changed { ref name, .. } if name == "va"));
        ip(&["link", "set", "va", "up"]);
        wait_for(&mut events, "up", |event| {
            matches!(event, InterfaceEvent::Changed { ifindex: i, state: LinkState::Up, .. } if *i == ifindex)
        })
        .await;
        ip(&["link", "del", "va"]);
        wait_for(
            &mut events,
            "removed",
            |event| matches!(event, InterfaceEvent::Removed { ifindex: i, .. } if *i == ifindex),
        )
        .await;
    });
}

#[test]
fn losing_the_peer_takes_the_link_down_and_its_return_brings_it_up() {
    let (a, b) = lab();
    let (down_tx, down_rx) = std::sync::mpsc::channel();
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            in_ns(&a, move || async move {
                let mut events = InterfaceEvents::subscribe().unwrap();
                down_tx.send(()).unwrap();
                wait_for(&mut events, "carrier loss", |event| {
                    matches!(event, InterfaceEvent::Changed { name, state: LinkState::Down, .. } if name == "va")
                })
                .await;
                up_tx.send(()).unwrap();
                wait_for(&mut events, "carrier return", |event| {
                    matches!(event, InterfaceEvent::Changed { name, state: LinkState::Up, .. } if name == "va")
                })
                .await;
            });
        });
        down_rx.recv_timeout(WAIT).unwrap();
        b.exec(&["ip", "link", "set", "vb", "down"]).unwrap();
        up_rx.recv_timeout(WAIT).expect("va never went down");
        b.exec(&["ip", "link", "set", "vb", "up"]).unwrap();
        watcher.join().unwrap();
    });
}
