//! The IPVS codec against ipvsadm's own netlink messages and the kernel's answers to them,
//! captured in the guest lab (`tests/ipvs_captures/*.strace`; each file's header says how:
//! kernel, ipvsadm and strace versions, the state before, the command).
//!
//! Byte-level checks:
//! - every IPVS message of every capture (sent by ipvsadm or by the kernel) parses, and emits
//!   back to the very same bytes (the kernel's own nests lack `NLA_F_NESTED`, which this codec
//!   sets as libnl does: only that bit is masked for them);
//! - the agent's request for the same operation encodes to ipvsadm's bytes. For commands that
//!   the kernel reads only the identity of a service (`ip_vs_genl_parse_service` with
//!   `full_entry = 0`: delete, get, and every destination command) or of a destination
//!   (delete), ipvsadm also sends the settings the kernel ignores there; those are compared
//!   after keeping the identity only, and everything else byte for byte.

#![allow(clippy::unwrap_used)] // test helpers: a failed step is the test failing

use std::net::IpAddr;

use kube_vrrp_agent::ipvs::model::netmask;
use kube_vrrp_agent::ipvs::packet::{
    AddressFamily, DestAttribute, ForwardingMethod, IpvsAttribute, IpvsCmd, IpvsMessage, Protocol,
    Scheduler, ServiceAttribute, ServiceFlags, TunnelFlags, TunnelType,
};
use kube_vrrp_agent::ipvs::{
    Destination, DestinationEntry, DestinationSettings, Request, Service, ServiceEntry, ServiceKey,
    ServiceSettings, Timeouts, Tunnel,
};
use netlink_packet_core::{Emitable, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, ParseableParametrized};
use netlink_packet_generic::GenlHeader;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const GENL_ID_CTRL: u16 = 16;

/// One netlink message of a capture.
#[derive(Debug, Clone)]
struct Wire {
    sent: bool,
    kind: u16,
    flags: u16,
    /// Everything after the 16-byte netlink header.
    payload: Vec<u8>,
}

/// The netlink messages of capture `name`, in order: what ipvsadm sent, and what it received
/// (the `MSG_PEEK` reads that libnl makes before each real read are left out).
fn capture(name: &str) -> Vec<Wire> {
    let path = format!(
        "{}/tests/ipvs_captures/{name}.strace",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buffers: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut current: Option<(bool, Vec<u8>)> = None;
    for line in text.lines() {
        if let Some(hex) = line.strip_prefix(" | ") {
            if let Some((_, bytes)) = current.as_mut() {
                // " | 00010  03 01 00 00 ...  ........ |": offset, then up to 16 bytes.
                let data = &hex[7..hex.len().min(7 + 16 * 3 + 1)];
                bytes.extend(
                    data.split_whitespace()
                        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte")),
                );
            }
            continue;
        }
        if line.starts_with(" * ") {
            continue;
        }
        if let Some(done) = current.take() {
            buffers.push(done);
        }
        if line.starts_with("sendmsg(") {
            current = Some((true, Vec::new()));
        } else if line.starts_with("recvmsg(") && !line.contains("MSG_PEEK") {
            current = Some((false, Vec::new()));
        }
    }
    if let Some(done) = current.take() {
        buffers.push(done);
    }
    let mut out = Vec::new();
    for (sent, bytes) in buffers {
        let mut at = 0;
        while at + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_le_bytes([bytes[at + 4], bytes[at + 5]]);
            let flags = u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]);
            out.push(Wire {
                sent,
                kind,
                flags,
                payload: bytes[at + 16..at + len].to_vec(),
            });
            at += (len + 3) & !3;
        }
    }
    assert!(!out.is_empty(), "{name}: no netlink message in the capture");
    out
}

fn is_ipvs(w: &Wire) -> bool {
    !matches!(w.kind, NLMSG_ERROR | NLMSG_DONE | GENL_ID_CTRL)
}

fn parse(payload: &[u8]) -> IpvsMessage {
    let header = GenlHeader {
        cmd: payload[0],
        version: payload[1],
    };
    IpvsMessage::parse_with_param(&payload[4..], header).expect("an IPVS message")
}

/// The genetlink header and attributes of `message`.
fn emit(message: &IpvsMessage) -> Vec<u8> {
    let mut out = vec![message.cmd.into(), 1, 0, 0];
    let mut body = vec![0; message.buffer_len()];
    message.emit(&mut body);
    out.extend(body);
    out
}

/// The one IPVS request ipvsadm sent in capture `name` after the `IPVS_CMD_GET_INFO` it
/// starts every run with (that one, in the capture of `ipvsadm -v`).
fn sent(name: &str) -> Wire {
    let mut ipvs: Vec<Wire> = capture(name)
        .into_iter()
        .filter(|w| w.sent && is_ipvs(w))
        .collect();
    assert_eq!(
        ipvs[0].payload[0], 15,
        "{name}: ipvsadm starts with GET_INFO"
    );
    if ipvs.len() > 1 {
        ipvs.remove(0);
    }
    assert_eq!(ipvs.len(), 1, "{name}: one IPVS request besides GET_INFO");
    ipvs.remove(0)
}

/// `payload` with `NLA_F_NESTED` cleared on every nested attribute: the kernel opens its nests
/// without the flag (`nla_nest_start_noflag`), this codec (like libnl) with it; the kernel's
/// parser treats both alike.
fn without_nested_flags(payload: &[u8]) -> Vec<u8> {
    fn walk(bytes: &mut [u8], depth: u8) {
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let len = usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
            if len < 4 || at + len > bytes.len() {
                return;
            }
            if bytes[at + 3] & 0x80 != 0 {
                bytes[at + 3] &= 0x7f;
            }
            let kind = u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]);
            // Nests: SERVICE 1 and DEST 2 at the first level; STATS 10 and STATS64 12 in them.
            let nest = match depth {
                0 => kind == 1 || kind == 2,
                1 => kind == 10 || kind == 12,
                _ => false,
            };
            if nest {
                walk(&mut bytes[at + 4..at + len], depth + 1);
            }
            at += (len + 3) & !3;
        }
    }
    let mut out = payload.to_vec();
    walk(&mut out[4..], 0);
    out
}

fn identity_only(message: &IpvsMessage, dest_identity: bool) -> IpvsMessage {
    let attributes = message
        .attributes
        .iter()
        .map(|a| match a {
            IpvsAttribute::Service(s) => IpvsAttribute::Service(
                s.iter()
                    .filter(|a| {
                        matches!(
                            a,
                            ServiceAttribute::Af(_)
                                | ServiceAttribute::Protocol(_)
                                | ServiceAttribute::Addr(_)
                                | ServiceAttribute::Port(_)
                                | ServiceAttribute::Fwmark(_)
                        )
                    })
                    .cloned()
                    .collect(),
            ),
            IpvsAttribute::Dest(d) if dest_identity => IpvsAttribute::Dest(
                d.iter()
                    .filter(|a| {
                        matches!(
                            a,
                            DestAttribute::AddrFamily(_)
                                | DestAttribute::Addr(_)
                                | DestAttribute::Port(_)
                        )
                    })
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        })
        .collect();
    IpvsMessage::new(message.cmd, attributes)
}

/// Asserts that `request` encodes to what ipvsadm sent in capture `name` (flags included).
fn assert_same_request(name: &str, request: &Request) {
    let wire = sent(name);
    let ours = request.netlink(wire.kind);
    assert_eq!(ours.header.flags, wire.flags, "{name}: netlink flags");
    assert_eq!(ours.header.message_type, wire.kind, "{name}: family id");
    let theirs = parse(&wire.payload);
    let (theirs, compared) = match theirs.cmd {
        IpvsCmd::NewService
        | IpvsCmd::SetService
        | IpvsCmd::GetInfo
        | IpvsCmd::GetConfig
        | IpvsCmd::SetConfig => (theirs, wire.payload.clone()),
        IpvsCmd::DelDest => {
            let id = identity_only(&theirs, true);
            let bytes = emit(&id);
            (id, bytes)
        }
        _ => {
            let id = identity_only(&theirs, false);
            let bytes = emit(&id);
            (id, bytes)
        }
    };
    assert_eq!(request.message(), theirs, "{name}: decoded request");
    assert_eq!(emit(&request.message()), compared, "{name}: bytes");
}

fn v4(a: &str) -> IpAddr {
    a.parse().unwrap()
}

fn tcp(address: &str, port: u16) -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: v4(address),
        port,
    }
}

fn service(key: ServiceKey, scheduler: Scheduler, flags: u32, timeout: u32, prefix: u8) -> Service {
    Service {
        key,
        settings: ServiceSettings {
            scheduler,
            flags,
            timeout,
            netmask: netmask(key.family(), prefix),
            persistence_engine: None,
        },
    }
}

fn dest(address: &str, port: u16, forwarding: ForwardingMethod, weight: u32) -> Destination {
    Destination {
        address: v4(address),
        port,
        settings: DestinationSettings {
            forwarding,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
        },
    }
}

const CAPTURES: &[&str] = &[
    "get_info",
    "new_service_tcp_rr",
    "new_service_udp_wrr_ops",
    "new_service_sctp_lc",
    "new_service_fwmark_wlc",
    "new_service_fwmark6_sed",
    "new_service_ipv6_mh_flags",
    "new_service_sh_flags_persistent_netmask",
    "new_service_ipv6_persistent_prefix",
    "new_service_dh",
    "new_service_udp_nq",
    "set_service_scheduler",
    "del_service",
    "new_dest_nat_thresholds",
    "new_dest_dr",
    "new_dest_tun_ipip",
    "new_dest_tun_gue_csum",
    "new_dest_tun_gre_csum",
    "new_dest_ipv6",
    "set_dest_weight",
    "del_dest",
    "dump",
    "set_config_timeouts",
    "get_config_timeouts",
];

#[test]
fn every_ipvs_message_of_every_capture_parses_and_emits_back_to_the_same_bytes() {
    let mut checked = 0;
    for name in CAPTURES {
        for wire in capture(name).iter().filter(|w| is_ipvs(w)) {
            let message = parse(&wire.payload);
            assert!(
                !message
                    .attributes
                    .iter()
                    .any(|a| matches!(a, IpvsAttribute::Other(_))),
                "{name}: an attribute this codec does not know: {message:?}"
            );
            if wire.sent {
                assert_eq!(emit(&message), wire.payload, "{name}: {message:?}");
            } else {
                assert_eq!(
                    without_nested_flags(&emit(&message)),
                    wire.payload,
                    "{name}: {message:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} messages checked");
}

#[test]
fn get_info_set_and_get_timeouts_encode_as_ipvsadm_does() {
    assert_same_request("get_info", &Request::GetInfo);
    assert_same_request(
        "set_config_timeouts",
        &Request::SetConfig(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }),
    );
    assert_same_request("get_config_timeouts", &Request::GetConfig);
}

#[test]
fn new_services_of_every_protocol_family_and_key_encode_as_ipvsadm_does() {
    use Scheduler as S;
    let udp = |a: &str, port| ServiceKey::Address {
        protocol: Protocol::Udp,
        address: v4(a),
        port,
    };
    let cases = [
        (
            "new_service_tcp_rr",
            service(tcp("192.0.2.1", 80), S::RoundRobin, 0, 0, 32),
        ),
        (
            "new_service_udp_wrr_ops",
            service(
                udp("192.0.2.1", 53),
                S::WeightedRoundRobin,
                ServiceFlags::ONEPACKET,
                0,
                32,
            ),
        ),
        (
            "new_service_sctp_lc",
            service(
                ServiceKey::Address {
                    protocol: Protocol::Sctp,
                    address: v4("192.0.2.1"),
                    port: 5000,
                },
                S::LeastConnection,
                0,
                0,
                32,
            ),
        ),
        (
            "new_service_fwmark_wlc",
            service(
                ServiceKey::FirewallMark {
                    family: AddressFamily::Inet,
                    mark: 7,
                },
                S::WeightedLeastConnection,
                0,
                0,
                32,
            ),
        ),
        (
            "new_service_fwmark6_sed",
            service(
                ServiceKey::FirewallMark {
                    family: AddressFamily::Inet6,
                    mark: 8,
                },
                S::ShortestExpectedDelay,
                0,
                0,
                128,
            ),
        ),
        (
            "new_service_ipv6_mh_flags",
            service(
                ServiceKey::Address {
                    protocol: Protocol::Tcp,
                    address: "2001:db8::1".parse().unwrap(),
                    port: 443,
                },
                S::MaglevHashing,
                ServiceFlags::SCHED1 | ServiceFlags::SCHED2,
                0,
                128,
            ),
        ),
        (
            "new_service_sh_flags_persistent_netmask",
            service(
                tcp("192.0.2.2", 80),
                S::SourceHashing,
                ServiceFlags::PERSISTENT | ServiceFlags::SCHED1 | ServiceFlags::SCHED2,
                300,
                24,
            ),
        ),
        (
            "new_service_ipv6_persistent_prefix",
            service(
                ServiceKey::Address {
                    protocol: Protocol::Tcp,
                    address: "2001:db8::2".parse().unwrap(),
                    port: 80,
                },
                S::LocalityBasedLeastConnectionWithReplication,
                ServiceFlags::PERSISTENT,
                60,
                64,
            ),
        ),
        (
            "new_service_dh",
            service(tcp("192.0.2.3", 80), S::DestinationHashing, 0, 0, 32),
        ),
        (
            "new_service_udp_nq",
            service(udp("192.0.2.3", 80), S::NeverQueue, 0, 0, 32),
        ),
    ];
    for (name, svc) in cases {
        assert_same_request(name, &Request::NewService(svc));
    }
}

#[test]
fn editing_and_deleting_a_service_encode_as_ipvsadm_does() {
    let key = tcp("192.0.2.1", 80);
    assert_same_request(
        "set_service_scheduler",
        &Request::SetService(service(key, Scheduler::WeightedLeastConnection, 0, 0, 32)),
    );
    assert_same_request("del_service", &Request::DelService(key));
}

#[test]
fn destinations_of_every_forwarding_method_and_tunnel_encode_as_ipvsadm_does() {
    let key = tcp("192.0.2.1", 80);
    let mut nat = dest("198.51.100.1", 8080, ForwardingMethod::Masq, 3);
    nat.settings.upper_threshold = 100;
    nat.settings.lower_threshold = 10;
    assert_same_request("new_dest_nat_thresholds", &Request::NewDest(key, nat));
    assert_same_request(
        "new_dest_dr",
        &Request::NewDest(
            key,
            dest("198.51.100.2", 80, ForwardingMethod::DirectRoute, 1),
        ),
    );
    assert_same_request(
        "new_dest_tun_ipip",
        &Request::NewDest(key, dest("198.51.100.3", 80, ForwardingMethod::Tunnel, 2)),
    );
    let mut gue = dest("198.51.100.4", 80, ForwardingMethod::Tunnel, 1);
    gue.settings.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: TunnelFlags(TunnelFlags::CSUM),
    };
    assert_same_request("new_dest_tun_gue_csum", &Request::NewDest(key, gue));
    let mut gre = dest("198.51.100.5", 80, ForwardingMethod::Tunnel, 1);
    gre.settings.tunnel = Tunnel {
        kind: TunnelType::Gre,
        port: 0,
        flags: TunnelFlags(TunnelFlags::CSUM),
    };
    assert_same_request("new_dest_tun_gre_csum", &Request::NewDest(key, gre));
    let v6 = ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: "2001:db8::1".parse().unwrap(),
        port: 443,
    };
    let mut d6 = dest("198.51.100.1", 8443, ForwardingMethod::Masq, 5);
    d6.address = "2001:db8:1::7".parse().unwrap();
    assert_same_request("new_dest_ipv6", &Request::NewDest(v6, d6));
}

#[test]
fn editing_and_deleting_a_destination_encode_as_ipvsadm_does() {
    let key = tcp("192.0.2.1", 80);
    assert_same_request(
        "set_dest_weight",
        &Request::SetDest(key, dest("198.51.100.1", 8080, ForwardingMethod::Masq, 0)),
    );
    assert_same_request(
        "del_dest",
        &Request::DelDest {
            service: key,
            address: v4("198.51.100.1"),
            port: 8080,
        },
    );
}

#[test]
fn listing_asks_for_dumps_as_ipvsadm_does() {
    let wires = capture("dump");
    let requests: Vec<&Wire> = wires
        .iter()
        .filter(|w| w.sent && is_ipvs(w) && w.payload[0] != 15)
        .collect();
    assert_eq!(requests[0].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
    assert_eq!(
        emit(&Request::DumpServices.message()),
        requests[0].payload,
        "the service dump"
    );
    let dest_dumps: Vec<IpvsMessage> = requests[1..]
        .iter()
        .map(|w| identity_only(&parse(&w.payload), false))
        .collect();
    assert_eq!(dest_dumps.len(), 3, "one destination dump per service");
    for dump in dest_dumps {
        let key = ServiceKey::from_attributes(dump.service().unwrap()).unwrap();
        assert_eq!(Request::DumpDestinations(key).message(), dump);
        assert_eq!(
            Request::DumpDestinations(key).flags(),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP
        );
    }
}

fn received(name: &str) -> Vec<IpvsMessage> {
    capture(name)
        .iter()
        .filter(|w| !w.sent && is_ipvs(w))
        .map(|w| parse(&w.payload))
        .collect()
}

#[test]
fn the_kernels_dump_decodes_into_services_and_destinations() {
    let answers = received("dump");
    let services: Vec<ServiceEntry> = answers
        .iter()
        .filter(|m| m.cmd == IpvsCmd::NewService)
        .map(|m| ServiceEntry::from_attributes(m.service().unwrap()).unwrap())
        .collect();
    let by_key = |key: ServiceKey| {
        services
            .iter()
            .find(|s| s.service.key == key)
            .unwrap_or_else(|| panic!("{key} in {services:?}"))
    };
    let rr = by_key(tcp("192.0.2.1", 80));
    assert_eq!(rr.service.settings.scheduler, Scheduler::RoundRobin);
    assert_eq!(rr.service.settings.flags, 0, "HASHED is left out");
    let v6 = ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: "2001:db8::2".parse().unwrap(),
        port: 80,
    };
    let sh = by_key(v6);
    assert_eq!(sh.service.settings.scheduler, Scheduler::SourceHashing);
    assert_eq!(
        sh.service.settings.flags,
        ServiceFlags::PERSISTENT | ServiceFlags::SCHED2
    );
    assert_eq!(sh.service.settings.timeout, 60);
    assert_eq!(sh.service.settings.netmask, 64);
    let fwm = by_key(ServiceKey::FirewallMark {
        family: AddressFamily::Inet,
        mark: 7,
    });
    assert_eq!(
        fwm.service.settings.scheduler,
        Scheduler::WeightedLeastConnection
    );

    let dests: Vec<DestinationEntry> = answers
        .iter()
        .filter(|m| m.cmd == IpvsCmd::NewDest)
        .map(|m| DestinationEntry::from_attributes(AddressFamily::Inet, m.dest().unwrap()).unwrap())
        .collect();
    assert_eq!(dests.len(), 3);
    let nat = dests.iter().find(|d| d.destination.port == 8080).unwrap();
    assert_eq!(nat.destination.address, v4("198.51.100.1"));
    assert_eq!(nat.destination.settings.forwarding, ForwardingMethod::Masq);
    assert_eq!(nat.destination.settings.weight, 3);
    assert_eq!(
        (
            nat.destination.settings.upper_threshold,
            nat.destination.settings.lower_threshold
        ),
        (100, 10)
    );
    assert_eq!((nat.active_connections, nat.inactive_connections), (0, 0));
    let gue = dests
        .iter()
        .find(|d| d.destination.address == "2001:db8:1::7".parse::<IpAddr>().unwrap())
        .unwrap();
    assert_eq!(
        gue.destination.settings.forwarding,
        ForwardingMethod::Tunnel
    );
    assert_eq!(gue.destination.settings.tunnel.kind, TunnelType::Gue);
    assert_eq!(gue.destination.settings.tunnel.port, 6080);
    assert_eq!(gue.destination.settings.weight, 2);
    let dr = dests
        .iter()
        .find(|d| d.destination.port == 80 && d.destination.address == v4("198.51.100.2"))
        .unwrap();
    assert_eq!(
        dr.destination.settings.forwarding,
        ForwardingMethod::DirectRoute
    );
    assert_eq!(
        dr.destination.settings.tunnel,
        Tunnel::default(),
        "tunnel fields only for tunnels"
    );
}

#[test]
fn the_kernels_info_and_timeouts_decode() {
    let info = received("get_info");
    let version = info[0]
        .attributes
        .iter()
        .find_map(|a| match a {
            IpvsAttribute::InfoVersion(v) => Some(*v),
            _ => None,
        })
        .unwrap();
    assert_eq!(version, 0x01_02_01, "IPVS 1.2.1");
    assert!(
        info[0]
            .attributes
            .contains(&IpvsAttribute::InfoConnTabSize(4096))
    );
    let config = received("get_config_timeouts");
    let config = config.iter().find(|m| m.cmd == IpvsCmd::SetConfig).unwrap();
    assert_eq!(
        config.attributes,
        [
            IpvsAttribute::TimeoutTcp(900),
            IpvsAttribute::TimeoutTcpFin(120),
            IpvsAttribute::TimeoutUdp(300)
        ]
    );
}

#[test]
fn an_unknown_attribute_survives_a_parse_and_an_emit() {
    // IPVS_SVC_ATTR 99 with 4 bytes, inside a service, inside a NEW_SERVICE message.
    let unknown = [8u8, 0, 99, 0, 1, 2, 3, 4];
    let mut service = vec![(4 + unknown.len()) as u8, 0, 1, 0x80];
    service.extend(unknown);
    let mut payload = vec![1u8, 1, 0, 0];
    payload.extend(service);
    let message = parse(&payload);
    match &message.service().unwrap()[0] {
        ServiceAttribute::Other(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(emit(&message), payload);
}
