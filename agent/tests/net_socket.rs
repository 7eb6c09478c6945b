//! Raw VRRP sockets tested for real: two network namespaces joined by a veth pair, a VRRP
//! payload sent from A and received in B (and back).

// Test helpers outside #[test] functions may unwrap too (clippy only exempts the tests).
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::mpsc;
use std::time::Duration;

use kube_vrrp_agent::net::arrival::Clocks;
use kube_vrrp_agent::net::link::{Link, Links};
use kube_vrrp_agent::net::socket::{Received, VrrpSocket};
use kube_vrrp_agent::net::{NetError, rtnetlink_connect};
use kube_vrrp_agent::vrrp::packet::DropReason;
use kube_vrrp_agent::vrrp::{Family, VRRP_MULTICAST_IPV4, VRRP_MULTICAST_IPV6};
use kube_vrrp_e2e::netns::{Netns, require_root, veth};
use socket2::{Domain, Protocol, Socket, Type};

const A_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const WAIT: Duration = Duration::from_secs(5);
/// A VRRPv3 advert for VRID 51, priority 100, interval 1 s, one IPv4 address (checksum zero:
/// this edge does not look inside).
const PAYLOAD: [u8; 12] = [0x31, 51, 100, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 50];
const PEER_PAYLOAD: [u8; 12] = [0x31, 51, 200, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 50];

/// Namespaces A (`va`, 192.0.2.1/24) and B (`vb`, 192.0.2.2/24) joined by a veth pair, IPv6
/// duplicate address detection off so link-local addresses are usable at once. Deleted on drop.
struct Lab {
    a: Netns,
    b: Netns,
}

fn lab() -> Lab {
    require_root();
    let a = Netns::create("kvsk").unwrap();
    let b = Netns::create("kvsk").unwrap();
    for ns in [&a, &b] {
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
            .unwrap();
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])
            .unwrap();
    }
    veth(&a, "va", &b, "vb").unwrap();
    a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
        .unwrap();
    b.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])
        .unwrap();
    Lab { a, b }
}

/// Runs an async closure on a fresh single-threaded runtime inside `ns`.
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

/// The link named `ifname` once it has a source address of `family` (bounded wait).
async fn link_with_source(ifname: &str, family: Family) -> Link {
    let links = Links::new(rtnetlink_connect().unwrap());
    for _ in 0..100 {
        let link = links.by_name(ifname).await.unwrap();
        let ready = match family {
            Family::Ipv4 => link.primary_ipv4.is_some(),
            Family::Ipv6 => link.ipv6_link_local.is_some(),
        };
        if ready {
            return link;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{ifname} got no {} source address within 10 s",
        family.as_str()
    );
}

/// A socket with the address it sends from: the link's primary IPv4 or IPv6 link-local address,
/// as the driver picks it.
struct Speaker {
    socket: VrrpSocket,
    source: IpAddr,
}

impl Speaker {
    fn local_address(&self) -> IpAddr {
        self.source
    }

    async fn send(&self, payload: &[u8], destination: IpAddr) -> Result<(), NetError> {
        self.socket
            .send_from(payload, self.source, destination)
            .await
    }
}

async fn open(ifname: &str, family: Family) -> (Link, Speaker) {
    let link = link_with_source(ifname, family).await;
    let socket = VrrpSocket::open(link.ifindex, &link.name, family).unwrap();
    let source = link.source_for(family).unwrap();
    (link, Speaker { socket, source })
}

/// The socket is read by a plain thread in the agent; here it is read without waiting, every
/// millisecond, until [`WAIT`] has passed.
async fn recv_within(speaker: &Speaker) -> Received {
    let mut received = Received::empty();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(outcome) =
            speaker
                .socket
                .try_recv_into(&mut received, None, &mut Clocks::default())
        {
            outcome.unwrap();
            return received;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no VRRP datagram received within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Opens B's socket, then runs `send_from_a` in A; returns what B received.
fn receive_in_b<F, Fut>(lab: &Lab, family: Family, send_from_a: F) -> Received
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            in_ns(&lab.b, move || async move {
                let (_, socket) = open("vb", family).await;
                ready_tx.send(()).unwrap();
                recv_within(&socket).await
            })
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("B never opened its socket");
        in_ns(&lab.a, send_from_a);
        receiver.join().unwrap()
    })
}

#[test]
fn ipv4_multicast_advert_arrives_in_b_with_ttl_255_source_and_destination() {
    let lab = lab();
    let received = receive_in_b(&lab, Family::Ipv4, || async {
        let (_, socket) = open("va", Family::Ipv4).await;
        assert_eq!(socket.local_address(), IpAddr::V4(A_V4));
        socket
            .send(&PAYLOAD, IpAddr::V4(VRRP_MULTICAST_IPV4))
            .await
            .unwrap();
    });
    assert_eq!(received.source, IpAddr::V4(A_V4));
    assert_eq!(received.destination, IpAddr::V4(VRRP_MULTICAST_IPV4));
    assert_eq!(received.ttl, 255);
    assert_eq!(received.payload, PAYLOAD);
}

#[test]
fn ipv4_unicast_advert_arrives_in_b_with_ttl_255_and_b_as_destination() {
    let lab = lab();
    let received = receive_in_b(&lab, Family::Ipv4, || async {
        let (_, socket) = open("va", Family::Ipv4).await;
        socket.send(&PAYLOAD, IpAddr::V4(B_V4)).await.unwrap();
    });
    assert_eq!(received.source, IpAddr::V4(A_V4));
    assert_eq!(received.destination, IpAddr::V4(B_V4));
    assert_eq!(received.ttl, 255);
    assert_eq!(received.payload, PAYLOAD);
}

#[test]
fn ipv6_multicast_advert_arrives_in_b_from_a_link_local_source_with_hop_limit_255() {
    let lab = lab();
    let (source_tx, source_rx) = mpsc::channel();
    let received = receive_in_b(&lab, Family::Ipv6, move || async move {
        let (a_link, socket) = open("va", Family::Ipv6).await;
        assert_eq!(
            socket.local_address(),
            IpAddr::V6(a_link.ipv6_link_local.unwrap())
        );
        source_tx.send(socket.local_address()).unwrap();
        socket
            .send(&PAYLOAD, IpAddr::V6(VRRP_MULTICAST_IPV6))
            .await
            .unwrap();
    });
    let a_source = source_rx.recv().unwrap();
    assert!(
        matches!(a_source, IpAddr::V6(address) if address.segments()[0] == 0xfe80),
        "source {a_source} is not link-local"
    );
    assert_eq!(received.source, a_source);
    assert_eq!(received.destination, IpAddr::V6(VRRP_MULTICAST_IPV6));
    assert_eq!(received.ttl, 255);
    assert_eq!(received.payload, PAYLOAD);
}

#[test]
fn ipv6_unicast_advert_to_a_link_local_peer_arrives_with_hop_limit_255() {
    let lab = lab();
    let b_link_local = in_ns(&lab.b, || async {
        link_with_source("vb", Family::Ipv6)
            .await
            .ipv6_link_local
            .unwrap()
    });
    let received = receive_in_b(&lab, Family::Ipv6, move || async move {
        let (_, socket) = open("va", Family::Ipv6).await;
        socket
            .send(&PAYLOAD, IpAddr::V6(b_link_local))
            .await
            .unwrap();
    });
    assert_eq!(received.destination, IpAddr::V6(b_link_local));
    assert_eq!(received.ttl, 255);
    assert_eq!(received.payload, PAYLOAD);
}

/// The device binding is what names a datagram's interface (no packet info is asked for): an
/// advert arriving on B's other link reaches the socket bound there, and in the same delivery
/// not the one bound to `vb`.
#[test]
fn an_ipv4_advert_arriving_on_another_interface_reaches_only_the_socket_bound_there() {
    let lab = lab();
    veth(&lab.a, "wa", &lab.b, "wb").unwrap();
    lab.a
        .exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", "wa"])
        .unwrap();
    lab.b
        .exec(&["ip", "addr", "add", "198.51.100.2/24", "dev", "wb"])
        .unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            in_ns(&lab.b, move || async move {
                let (_, on_vb) = open("vb", Family::Ipv4).await;
                let (_, on_wb) = open("wb", Family::Ipv4).await;
                ready_tx.send(()).unwrap();
                let received = recv_within(&on_wb).await;
                let mut elsewhere = Received::empty();
                let vb_received = on_vb
                    .socket
                    .try_recv_into(&mut elsewhere, None, &mut Clocks::default())
                    .is_some();
                (received, vb_received)
            })
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("B never opened its sockets");
        in_ns(&lab.a, || async {
            let (_, socket) = open("wa", Family::Ipv4).await;
            socket
                .send(&PAYLOAD, IpAddr::V4(VRRP_MULTICAST_IPV4))
                .await
                .unwrap();
        });
        let (received, vb_received) = receiver.join().unwrap();
        assert_eq!(received.source, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
        assert_eq!(received.payload, PAYLOAD);
        assert!(
            !vb_received,
            "the socket bound to vb received an advert that arrived on wb"
        );
    });
}

#[test]
fn ipv4_packet_sent_with_ttl_64_by_a_plain_raw_socket_is_received_with_ttl_64() {
    let lab = lab();
    let received = receive_in_b(&lab, Family::Ipv4, || async {
        let plain = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
        plain.bind_device(Some(b"va")).unwrap();
        plain.set_multicast_ttl_v4(64).unwrap();
        let group = SocketAddr::V4(SocketAddrV4::new(VRRP_MULTICAST_IPV4, 0));
        plain.send_to(&PAYLOAD, &group.into()).unwrap();
    });
    assert_eq!(received.ttl, 64);
    assert_eq!(received.source, IpAddr::V4(A_V4));
    assert_eq!(received.payload, PAYLOAD);
}

#[test]
fn ipv6_packet_sent_with_hop_limit_64_by_a_plain_raw_socket_is_received_with_hop_limit_64() {
    let lab = lab();
    let received = receive_in_b(&lab, Family::Ipv6, || async {
        let (a_link, _) = open("va", Family::Ipv6).await;
        let plain = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112))).unwrap();
        plain.bind_device(Some(b"va")).unwrap();
        plain.set_multicast_if_v6(a_link.ifindex).unwrap();
        plain.set_multicast_hops_v6(64).unwrap();
        let group = SocketAddr::V6(SocketAddrV6::new(VRRP_MULTICAST_IPV6, 0, 0, a_link.ifindex));
        plain.send_to(&PAYLOAD, &group.into()).unwrap();
    });
    assert_eq!(received.ttl, 64);
    assert_eq!(received.payload, PAYLOAD);
}

/// A sends to the group first, then B does; with multicast loop off the first thing A's own
/// socket receives is B's packet, not its own.
fn own_multicast_is_not_looped_back(family: Family) {
    let lab = lab();
    let (sent_tx, sent_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let a_side = scope.spawn(|| {
            in_ns(&lab.a, move || async move {
                let (_, socket) = open("va", family).await;
                socket
                    .send(&PAYLOAD, family.vrrp_multicast())
                    .await
                    .unwrap();
                sent_tx.send(()).unwrap();
                recv_within(&socket).await
            })
        });
        sent_rx.recv_timeout(WAIT).expect("A never sent");
        let b_source = in_ns(&lab.b, move || async move {
            let (_, socket) = open("vb", family).await;
            socket
                .send(&PEER_PAYLOAD, family.vrrp_multicast())
                .await
                .unwrap();
            socket.local_address()
        });
        let received = a_side.join().unwrap();
        assert_eq!(
            received.payload, PEER_PAYLOAD,
            "A received its own advert back"
        );
        assert_eq!(received.source, b_source);
    });
}

#[test]
fn ipv4_multicast_loop_is_off_so_a_does_not_receive_its_own_advert() {
    own_multicast_is_not_looped_back(Family::Ipv4);
}

#[test]
fn ipv6_multicast_loop_is_off_so_a_does_not_receive_its_own_advert() {
    own_multicast_is_not_looped_back(Family::Ipv6);
}

#[test]
fn sending_to_an_address_of_the_other_family_is_refused() {
    let lab = lab();
    let refused = in_ns(&lab.a, || async {
        let (_, socket) = open("va", Family::Ipv4).await;
        socket
            .send(&PAYLOAD, IpAddr::V6(VRRP_MULTICAST_IPV6))
            .await
            .is_err()
    });
    assert!(refused);
}

/// B's priority-0 socket queues, of three adverts A sends (priority 100, 0, 200), only the one of
/// priority 0, while B's main socket receives all three in order.
fn only_priority_zero_reaches_the_priority_zero_socket(family: Family) {
    const LEAVING: [u8; 12] = [0x31, 51, 0, 1, 0x00, 0x64, 0, 0, 192, 0, 2, 50];
    let lab = lab();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let b_side = scope.spawn(|| {
            in_ns(&lab.b, move || async move {
                let (link, main) = open("vb", family).await;
                let zero =
                    VrrpSocket::open_priority_zero(link.ifindex, &link.name, family).unwrap();
                ready_tx.send(()).unwrap();
                let mut on_main = Vec::new();
                for _ in 0..3 {
                    on_main.push(recv_within(&main).await.payload);
                }
                let mut on_zero = Vec::new();
                let mut received = Received::empty();
                while let Some(outcome) =
                    zero.try_recv_into(&mut received, None, &mut Clocks::default())
                {
                    outcome.unwrap();
                    on_zero.push(received.payload.clone());
                }
                (on_main, on_zero)
            })
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("B never opened its sockets");
        in_ns(&lab.a, move || async move {
            let (_, socket) = open("va", family).await;
            for payload in [PAYLOAD, LEAVING, PEER_PAYLOAD] {
                socket
                    .send(&payload, family.vrrp_multicast())
                    .await
                    .unwrap();
            }
        });
        let (on_main, on_zero) = b_side.join().unwrap();
        assert_eq!(on_main, [PAYLOAD, LEAVING, PEER_PAYLOAD]);
        assert_eq!(on_zero, [LEAVING], "the filter kept priority 0 alone");
    });
}

#[test]
fn ipv4_the_priority_zero_socket_queues_only_priority_zero() {
    only_priority_zero_reaches_the_priority_zero_socket(Family::Ipv4);
}

#[test]
fn ipv6_the_priority_zero_socket_queues_only_priority_zero() {
    only_priority_zero_reaches_the_priority_zero_socket(Family::Ipv6);
}

/// B drains what A sent in one go: 40 adverts with a datagram longer than any advert among
/// them. Every one comes out, in order, across the drain's batches of reads; the long one is
/// an error of its own datagram (a length drop) and the drain goes on past it; a drain that has
/// emptied the queue ends, and the next one reads afresh what arrived since.
fn a_drain_takes_every_queued_datagram_in_order_and_ends_when_the_queue_is_empty(family: Family) {
    const ADVERTS: u8 = 40;
    const LONG_AT: usize = 20;
    let advert = |n: u8| {
        let mut payload = PAYLOAD;
        payload[2] = n + 1;
        payload
    };
    let lab = lab();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let (drained_tx, drained_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let b_side = scope.spawn(|| {
            in_ns(&lab.b, move || async move {
                let (_, socket) = open("vb", family).await;
                ready_tx.send(()).unwrap();
                sent_rx.recv_timeout(WAIT).expect("A never sent");
                let drain = |into: &mut Vec<Result<Vec<u8>, NetError>>| {
                    let mut received = Received::empty();
                    let mut clocks = Clocks::default();
                    while let Some(outcome) =
                        socket.socket.drain_into(&mut received, None, &mut clocks)
                    {
                        into.push(outcome.map(|()| received.payload.clone()));
                    }
                };
                let mut first = Vec::new();
                let deadline = std::time::Instant::now() + WAIT;
                while first.len() <= usize::from(ADVERTS) && std::time::Instant::now() < deadline {
                    drain(&mut first);
                    std::thread::sleep(Duration::from_millis(1));
                }
                drained_tx.send(()).unwrap();
                sent_rx.recv_timeout(WAIT).expect("A never sent again");
                let mut second = Vec::new();
                while second.is_empty() && std::time::Instant::now() < deadline + WAIT {
                    drain(&mut second);
                    std::thread::sleep(Duration::from_millis(1));
                }
                (first, second)
            })
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("B never opened its socket");
        in_ns(&lab.a, move || async move {
            let (link, socket) = open("va", family).await;
            for n in 0..ADVERTS {
                if usize::from(n) == LONG_AT {
                    let (domain, group) = match family {
                        Family::Ipv4 => (
                            Domain::IPV4,
                            SocketAddr::V4(SocketAddrV4::new(VRRP_MULTICAST_IPV4, 0)),
                        ),
                        Family::Ipv6 => (
                            Domain::IPV6,
                            SocketAddr::V6(SocketAddrV6::new(
                                VRRP_MULTICAST_IPV6,
                                0,
                                0,
                                link.ifindex,
                            )),
                        ),
                    };
                    let plain = Socket::new(domain, Type::RAW, Some(Protocol::from(112))).unwrap();
                    plain.bind_device(Some(b"va")).unwrap();
                    if family == Family::Ipv6 {
                        plain.set_multicast_if_v6(link.ifindex).unwrap();
                    }
                    plain.send_to(&[0x31; 9_000], &group.into()).unwrap();
                }
                socket
                    .send(&advert(n), family.vrrp_multicast())
                    .await
                    .unwrap();
            }
            sent_tx.send(()).unwrap();
            drained_rx.recv_timeout(WAIT).expect("B never drained");
            socket
                .send(&PEER_PAYLOAD, family.vrrp_multicast())
                .await
                .unwrap();
            sent_tx.send(()).unwrap();
        });
        let (first, second) = b_side.join().unwrap();
        let long = first.get(LONG_AT).expect("the long datagram was read");
        assert!(
            matches!(long, Err(error) if error.drop_reason() == Some(DropReason::Length)),
            "the long datagram is a length drop: {long:?}"
        );
        let adverts: Vec<_> = first
            .iter()
            .enumerate()
            .filter(|(at, _)| *at != LONG_AT)
            .map(|(_, outcome)| outcome.as_ref().unwrap().clone())
            .collect();
        let sent: Vec<_> = (0..ADVERTS).map(|n| advert(n).to_vec()).collect();
        assert_eq!(adverts, sent, "every advert, in the order sent");
        let second: Vec<_> = second.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            second,
            [PEER_PAYLOAD.to_vec()],
            "the next drain read afresh"
        );
    });
}

#[test]
fn ipv4_a_drain_takes_every_queued_datagram_in_order_and_ends_when_the_queue_is_empty() {
    a_drain_takes_every_queued_datagram_in_order_and_ends_when_the_queue_is_empty(Family::Ipv4);
}

#[test]
fn ipv6_a_drain_takes_every_queued_datagram_in_order_and_ends_when_the_queue_is_empty() {
    a_drain_takes_every_queued_datagram_in_order_and_ends_when_the_queue_is_empty(Family::Ipv6);
}

/// The IPv4 header an advert leaves with, as a plain raw socket in B hands it over: version 4
/// with no options, TOS 0, the length of the advert, Don't Fragment set (the identification
/// the kernel's to choose), TTL 255, protocol 112, A's source, the group, and a header checksum that holds.
#[test]
fn ipv4_an_advert_leaves_with_a_plain_header_ttl_255_and_a_checksum_that_holds() {
    let lab = lab();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let b_side = scope.spawn(|| {
            lab.b
                .run_in(move || {
                    let plain =
                        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
                    plain.bind_device(Some(b"vb")).unwrap();
                    plain
                        .join_multicast_v4(&VRRP_MULTICAST_IPV4, &B_V4)
                        .unwrap();
                    plain.set_read_timeout(Some(WAIT)).unwrap();
                    ready_tx.send(()).unwrap();
                    let mut buffer = [0u8; 256];
                    let length = std::io::Read::read(&mut &plain, &mut buffer).unwrap();
                    buffer[..length].to_vec()
                })
                .unwrap()
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("B never opened its socket");
        in_ns(&lab.a, || async {
            let (_, socket) = open("va", Family::Ipv4).await;
            socket
                .send(&PAYLOAD, IpAddr::V4(VRRP_MULTICAST_IPV4))
                .await
                .unwrap();
        });
        let packet = b_side.join().unwrap();
        let header = &packet[..20];
        assert_eq!(header[0], 0x45, "version 4, no options");
        assert_eq!(header[1], 0, "TOS");
        assert_eq!(
            usize::from(u16::from_be_bytes([header[2], header[3]])),
            20 + PAYLOAD.len()
        );
        assert_eq!(&header[6..8], [0x40, 0], "Don't Fragment, no offset");
        assert_eq!(header[8], 255, "TTL");
        assert_eq!(header[9], 112, "protocol");
        assert_eq!(&header[12..16], A_V4.octets());
        assert_eq!(&header[16..20], VRRP_MULTICAST_IPV4.octets());
        let sum = header
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
            .sum::<u32>();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(folded, 0xffff, "the header checksum holds");
        assert_eq!(&packet[20..], PAYLOAD);
    });
}
