//! Real keepalived 2.2.7 adverts (see `vectors/mod.rs`), decoded to the expected fields and
//! re-encoded to the same bytes.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod vectors;

use std::net::IpAddr;

use kube_vrrp_agent::vrrp::packet::{
    Advertisement, Authentication, ChecksumVerdict, IpPacket, verify_ttl,
};
use kube_vrrp_agent::vrrp::{VRRP_TTL, Version};
use vectors::{V2_NONE, V2_PASS, V3_IPV4, V3_IPV4_MULTI, V3_IPV6, bytes};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Decodes the whole IP packet, checks the IP fields and the advert, then re-encodes the advert
/// and compares it with the captured VRRP bytes, checksum included.
fn check_vector(hex_text: &str, source: &str, destination: &str, expected: &Advertisement) {
    let packet = bytes(hex_text);
    let ip_packet = IpPacket::decode(&packet).unwrap();
    assert_eq!(ip_packet.source, ip(source));
    assert_eq!(ip_packet.destination, ip(destination));
    assert_eq!(ip_packet.ttl, VRRP_TTL);
    assert_eq!(verify_ttl(ip_packet.ttl), Ok(()));

    let decoded = ip_packet.advertisement().unwrap();
    assert_eq!(&decoded, expected);

    let (lenient, verdict) = ip_packet.advertisement_lenient().unwrap();
    assert_eq!(&lenient, expected);
    let received = u16::from_be_bytes([ip_packet.payload[6], ip_packet.payload[7]]);
    assert_eq!(verdict, ChecksumVerdict::Valid { received });

    let encoded = expected
        .encode(ip_packet.source, ip_packet.destination)
        .unwrap();
    assert_eq!(hex::encode(&encoded), hex::encode(ip_packet.payload));
}

#[test]
fn keepalived_v2_advert_without_authentication_decodes_and_reencodes_identically() {
    let expected = Advertisement {
        version: Version::V2,
        vrid: 10,
        priority: 150,
        max_advert_interval_cs: 100,
        addresses: vec![ip("192.0.2.10")],
        auth: Authentication::None,
    };
    check_vector(V2_NONE, "192.0.2.1", "224.0.0.18", &expected);
}

#[test]
fn keepalived_v2_advert_with_simple_password_decodes_and_reencodes_identically() {
    let expected = Advertisement {
        version: Version::V2,
        vrid: 11,
        priority: 100,
        max_advert_interval_cs: 200,
        addresses: vec![ip("198.51.100.11")],
        auth: Authentication::simple_text_password(b"secret12").unwrap(),
    };
    assert_eq!(
        expected.auth,
        Authentication::SimpleTextPassword(*b"secret12")
    );
    check_vector(V2_PASS, "198.51.100.1", "224.0.0.18", &expected);
}

#[test]
fn keepalived_v3_ipv4_advert_checksums_the_pseudo_header_and_reencodes_identically() {
    let expected = Advertisement {
        version: Version::V3,
        vrid: 12,
        priority: 200,
        max_advert_interval_cs: 50,
        addresses: vec![ip("203.0.113.12")],
        auth: Authentication::None,
    };
    check_vector(V3_IPV4, "203.0.113.1", "224.0.0.18", &expected);
}

#[test]
fn keepalived_v3_ipv4_advert_with_five_addresses_decodes_and_reencodes_identically() {
    let expected = Advertisement {
        version: Version::V3,
        vrid: 13,
        priority: 120,
        max_advert_interval_cs: 100,
        addresses: [
            "10.13.0.10",
            "10.13.0.11",
            "10.13.0.12",
            "10.13.1.1",
            "172.16.13.13",
        ]
        .into_iter()
        .map(ip)
        .collect(),
        auth: Authentication::None,
    };
    check_vector(V3_IPV4_MULTI, "10.13.0.1", "224.0.0.18", &expected);
}

#[test]
fn keepalived_v3_ipv6_advert_decodes_and_reencodes_identically() {
    let expected = Advertisement {
        version: Version::V3,
        vrid: 14,
        priority: 110,
        max_advert_interval_cs: 100,
        addresses: vec![ip("fd00:14::14"), ip("fd00:14::15")],
        auth: Authentication::None,
    };
    check_vector(V3_IPV6, "fe80::5eff:fe10:1", "ff02::12", &expected);
}

#[test]
fn bare_v2_message_is_decoded_and_its_checksum_verified_without_the_ip_header() {
    let packet = bytes(V2_PASS);
    let (advertisement, verdict) = Advertisement::decode_bare(&packet[20..]).unwrap();
    assert_eq!(advertisement.vrid, 11);
    assert_eq!(verdict, ChecksumVerdict::Valid { received: 0xe233 });
}

#[test]
fn bare_v3_ipv6_message_is_recognised_by_its_length_and_left_unverified() {
    let packet = bytes(V3_IPV6);
    let (advertisement, verdict) = Advertisement::decode_bare(&packet[40..]).unwrap();
    assert_eq!(
        advertisement.addresses,
        vec![ip("fd00:14::14"), ip("fd00:14::15")]
    );
    assert_eq!(verdict, ChecksumVerdict::Unverified { received: 0x0af9 });
    assert_eq!(verdict.is_valid(), None);
}

#[test]
fn bare_v3_ipv4_message_is_recognised_by_its_length() {
    let packet = bytes(V3_IPV4_MULTI);
    let (advertisement, _) = Advertisement::decode_bare(&packet[20..]).unwrap();
    assert_eq!(advertisement.addresses.len(), 5);
    assert!(advertisement.addresses.iter().all(IpAddr::is_ipv4));
}

#[test]
fn v3_ipv4_checksum_does_not_verify_against_another_source_address() {
    // The pseudo-header binds the checksum to the IP addresses.
    let packet = bytes(V3_IPV4);
    let verdict = Advertisement::decode_lenient(&packet[20..], ip("203.0.113.2"), ip("224.0.0.18"))
        .unwrap()
        .1;
    assert_eq!(verdict.is_valid(), Some(false));
}
