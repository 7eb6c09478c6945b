//! GARP and unsolicited NA tested for real: A announces VIPs over a veth pair, B sniffs the
//! frames with an AF_PACKET socket (byte-exact) and B's kernel updates its neighbour table
//! entries that still point at an "old master" MAC.

// Test helpers outside #[test] functions may unwrap too (clippy only exempts the tests).
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kube_vrrp_agent::net::announce::{
    Announcer, ETH_P_ARP, ETH_P_IPV6, gratuitous_arp, unsolicited_neighbor_advertisement,
};
use kube_vrrp_agent::net::link::{Link, Links};
use kube_vrrp_agent::net::rtnetlink_connect;
use kube_vrrp_e2e::netns::{Netns, require_root, veth};
use socket2::{Domain, Protocol, Socket, Type};

const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x50);
const OLD_MASTER_MAC: &str = "02:00:00:00:00:99";
const VIRTUAL_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
const WAIT: Duration = Duration::from_secs(5);
const ETH_P_ALL: u16 = 0x0003;
const ND_NEIGHBOR_ADVERT: u8 = 136;

struct Lab {
    a: Netns,
    b: Netns,
}

/// A (`va`) and B (`vb`, 192.0.2.2/24) on a veth pair; B believes both VIPs are at the old
/// master's MAC (stale neighbour entries), as after a failover.
fn lab() -> Lab {
    require_root();
    let a = Netns::create("kvan").unwrap();
    let b = Netns::create("kvan").unwrap();
    veth(&a, "va", &b, "vb").unwrap();
    a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
        .unwrap();
    b.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])
        .unwrap();
    for vip in [VIP4.to_string(), VIP6.to_string()] {
        b.exec(&[
            "ip",
            "neigh",
            "replace",
            &vip,
            "lladdr",
            OLD_MASTER_MAC,
            "dev",
            "vb",
            "nud",
            "stale",
        ])
        .unwrap();
    }
    Lab { a, b }
}

fn va(lab: &Lab) -> Link {
    lab.a
        .run_in(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    Links::new(rtnetlink_connect().unwrap())
                        .by_name("va")
                        .await
                        .unwrap()
                })
        })
        .unwrap()
}

fn announce_from_a(lab: &Lab, ifindex: u32, mac: [u8; 6], vips: Vec<IpAddr>) {
    lab.a
        .run_in(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let announcer = Announcer::open(ifindex, mac).unwrap();
                    announcer.announce(&vips).await.unwrap();
                });
        })
        .unwrap();
}

/// Whether a frame is an announcement sent by `mac` (ARP, or ICMPv6 Neighbor Advertisement).
fn is_announcement_from(frame: &[u8], mac: [u8; 6]) -> bool {
    if frame.len() < 14 || frame[6..12] != mac {
        return false;
    }
    match u16::from_be_bytes([frame[12], frame[13]]) {
        ETH_P_ARP => true,
        ETH_P_IPV6 => frame.len() > 54 && frame[20] == 58 && frame[54] == ND_NEIGHBOR_ADVERT,
        _ => false,
    }
}

/// Starts sniffing in B, runs `announce`, and returns the announcement frames from `mac` B saw
/// (waiting until `expected` arrived or 5 s passed).
fn sniff_in_b(lab: &Lab, mac: [u8; 6], expected: usize, announce: impl FnOnce()) -> Vec<Vec<u8>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let sniffer = scope.spawn(|| {
            lab.b
                .run_in(move || {
                    let protocol = Protocol::from(i32::from(ETH_P_ALL.to_be()));
                    let mut socket =
                        Socket::new(Domain::PACKET, Type::RAW, Some(protocol)).unwrap();
                    socket
                        .set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    ready_tx.send(()).unwrap();
                    let deadline = Instant::now() + WAIT;
                    let mut frames = Vec::new();
                    let mut buffer = [0u8; 2048];
                    while frames.len() < expected && Instant::now() < deadline {
                        if let Ok(len) = socket.read(&mut buffer)
                            && is_announcement_from(&buffer[..len], mac)
                        {
                            frames.push(buffer[..len].to_vec());
                        }
                    }
                    frames
                })
                .unwrap()
        });
        ready_rx.recv_timeout(WAIT).expect("sniffer never started");
        announce();
        sniffer.join().unwrap()
    })
}

/// Polls B's neighbour entry for `vip` until it holds `mac` (5 s at most); returns the last line.
fn wait_for_neighbour(lab: &Lab, vip: &str, mac: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let line = lab
            .b
            .exec(&["ip", "neigh", "show", vip, "dev", "vb"])
            .unwrap();
        if line.contains(mac) || Instant::now() >= deadline {
            return line;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn garp_and_unsolicited_na_arrive_byte_exact_and_move_b_neighbour_entries_to_a() {
    let lab = lab();
    let link = va(&lab);
    let mac = link.mac.expect("veth has a MAC");
    let frames = sniff_in_b(&lab, mac, 2, || {
        announce_from_a(
            &lab,
            link.ifindex,
            mac,
            vec![IpAddr::V4(VIP4), IpAddr::V6(VIP6)],
        );
    });
    assert_eq!(frames.len(), 2, "B saw {} announcements", frames.len());
    assert_eq!(frames[0], gratuitous_arp(mac, VIP4));
    assert_eq!(
        frames[1],
        unsolicited_neighbor_advertisement(mac, VIP6, VIP6, false)
    );
    let mac = mac_text(mac);
    let arp = wait_for_neighbour(&lab, &VIP4.to_string(), &mac);
    assert!(arp.contains(&mac), "GARP did not update B: {arp}");
    let nd = wait_for_neighbour(&lab, &VIP6.to_string(), &mac);
    assert!(nd.contains(&mac), "NA did not update B: {nd}");
}

#[test]
fn announcing_with_the_virtual_mac_points_b_at_the_virtual_mac() {
    let lab = lab();
    let link = va(&lab);
    let frames = sniff_in_b(&lab, VIRTUAL_MAC, 1, || {
        announce_from_a(&lab, link.ifindex, VIRTUAL_MAC, vec![IpAddr::V4(VIP4)]);
    });
    assert_eq!(frames, vec![gratuitous_arp(VIRTUAL_MAC, VIP4)]);
    let mac = mac_text(VIRTUAL_MAC);
    let arp = wait_for_neighbour(&lab, &VIP4.to_string(), &mac);
    assert!(arp.contains(&mac), "GARP did not update B: {arp}");
}
