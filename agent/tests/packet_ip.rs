//! Whole IP packets around the keepalived vectors: IPv4 options and link-layer padding, IPv6
//! extension headers and fragments.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod vectors;

use kube_vrrp_agent::vrrp::packet::{DecodeError, DropReason, IpPacket};
use vectors::{V2_NONE, V3_IPV4, V3_IPV6, bytes};

/// The v3 IPv6 vector with `extension` inserted between the fixed header and VRRP.
/// `extension[0]` must be 112 (VRRP) for the chain to end at the advert.
fn ipv6_with_extension(first_header: u8, extension: &[u8]) -> Vec<u8> {
    let original = bytes(V3_IPV6);
    let mut packet = original[..40].to_vec();
    packet[6] = first_header;
    let payload_len = u16::from_be_bytes([packet[4], packet[5]]) + extension.len() as u16;
    packet[4..6].copy_from_slice(&payload_len.to_be_bytes());
    packet.extend_from_slice(extension);
    packet.extend_from_slice(&original[40..]);
    packet
}

#[test]
fn ethernet_padding_after_the_ipv4_total_length_is_ignored() {
    let mut packet = bytes(V3_IPV4);
    packet.extend_from_slice(&[0; 14]); // a 60-byte minimum Ethernet frame pads like this
    let ip = IpPacket::decode(&packet).unwrap();
    assert_eq!(ip.payload.len(), 12);
    assert_eq!(ip.advertisement().unwrap().vrid, 12);
}

#[test]
fn ipv4_options_are_skipped_to_reach_the_advert() {
    let original = bytes(V2_NONE);
    let mut packet = original[..20].to_vec();
    packet[0] = 0x46; // IHL 6: one 4-byte option word
    packet[3] += 4; // total length
    packet.extend_from_slice(&[0x94, 0x04, 0x00, 0x00]); // Router Alert
    packet.extend_from_slice(&original[20..]);
    let ip = IpPacket::decode(&packet).unwrap();
    assert_eq!(ip.payload, &original[20..]);
    assert_eq!(ip.advertisement().unwrap().vrid, 10);
}

#[test]
fn ipv6_hop_by_hop_header_is_skipped_and_the_checksum_still_verifies() {
    // Hop-by-hop: next header VRRP, length 0 (8 bytes), PadN option filling the rest.
    let packet = ipv6_with_extension(0, &[112, 0, 1, 4, 0, 0, 0, 0]);
    let ip = IpPacket::decode(&packet).unwrap();
    assert_eq!(ip.protocol, 112);
    assert!(!ip.is_fragment);
    let advertisement = ip.advertisement().unwrap();
    assert_eq!(advertisement.vrid, 14);
}

#[test]
fn ipv6_fragment_header_marks_the_packet_as_a_fragment() {
    let packet = ipv6_with_extension(44, &[112, 0, 0, 1, 0, 0, 0, 42]);
    let ip = IpPacket::decode(&packet).unwrap();
    assert!(ip.is_fragment);
    assert_eq!(ip.advertisement().unwrap_err(), DecodeError::Fragment);
}

#[test]
fn ipv6_extension_header_longer_than_the_packet_is_truncated() {
    // Destination options claiming 16 bytes where only 8 remain before VRRP's 40 bytes end.
    let mut packet = ipv6_with_extension(60, &[112, 1, 1, 4, 0, 0, 0, 0]);
    packet.truncate(40 + 8);
    packet[4..6].copy_from_slice(&8u16.to_be_bytes());
    let error = IpPacket::decode(&packet).unwrap_err();
    assert_eq!(
        error,
        DecodeError::Ipv6ExtensionHeaderTruncated { offset: 40 }
    );
    assert_eq!(error.drop_reason(), DropReason::Length);
}

#[test]
fn ipv6_packet_of_another_protocol_is_not_vrrp() {
    let mut packet = bytes(V3_IPV6);
    packet[6] = 58; // ICMPv6
    let ip = IpPacket::decode(&packet).unwrap();
    assert_eq!(ip.advertisement().unwrap_err(), DecodeError::NotVrrp(58));
}

#[test]
fn decode_ipv4_refuses_an_ipv6_packet_and_decode_ipv6_an_ipv4_one() {
    let v6 = bytes(V3_IPV6);
    assert_eq!(
        IpPacket::decode_ipv4(&v6).unwrap_err(),
        DecodeError::IpVersion(6)
    );
    let mut v4 = bytes(V3_IPV4);
    v4.resize(40, 0);
    assert_eq!(
        IpPacket::decode_ipv6(&v4).unwrap_err(),
        DecodeError::IpVersion(4)
    );
}
