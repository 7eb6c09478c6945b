//! One named test per way a packet can be bad (and per encode error), starting from the real
//! keepalived vectors and breaking one thing at a time.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod vectors;

use std::net::IpAddr;

use kube_vrrp_agent::vrrp::packet::{
    Advertisement, Authentication, DecodeError, DropReason, EncodeError, IpPacket, verify_ttl,
};
use kube_vrrp_agent::vrrp::{Family, Version};
use vectors::{V2_NONE, V2_PASS, V3_IPV4, V3_IPV6, bytes};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The VRRP message of the v2 vector (no IP header) and its addresses.
fn v2_message() -> (Vec<u8>, IpAddr, IpAddr) {
    (
        bytes(V2_NONE)[20..].to_vec(),
        ip("192.0.2.1"),
        ip("224.0.0.18"),
    )
}

/// The VRRP message of the v3 IPv4 vector and its addresses.
fn v3_message() -> (Vec<u8>, IpAddr, IpAddr) {
    (
        bytes(V3_IPV4)[20..].to_vec(),
        ip("203.0.113.1"),
        ip("224.0.0.18"),
    )
}

/// An independent RFC 1071 checksum, used to re-sign a v2 message after breaking a field that
/// is checked after the checksum.
fn resign_v2(message: &mut [u8]) {
    message[6] = 0;
    message[7] = 0;
    let mut sum: u32 = message
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let checksum = !(sum as u16);
    message[6..8].copy_from_slice(&checksum.to_be_bytes());
}

fn decode_v2(message: &[u8]) -> Result<Advertisement, DecodeError> {
    let (_, src, dst) = v2_message();
    Advertisement::decode(message, src, dst)
}

#[test]
fn message_shorter_than_the_fixed_header_is_too_short() {
    let (message, src, dst) = v2_message();
    let error = Advertisement::decode(&message[..7], src, dst).unwrap_err();
    assert_eq!(error, DecodeError::TooShort { len: 7, min: 8 });
    assert_eq!(error.drop_reason(), DropReason::Length);
    assert_eq!(
        Advertisement::decode_bare(&[]).unwrap_err(),
        DecodeError::TooShort { len: 0, min: 8 }
    );
}

#[test]
fn version_other_than_2_or_3_is_rejected() {
    let (mut message, src, dst) = v2_message();
    message[0] = 0x11;
    let error = Advertisement::decode(&message, src, dst).unwrap_err();
    assert_eq!(error, DecodeError::Version(1));
    assert_eq!(error.drop_reason(), DropReason::Version);
}

#[test]
fn v2_message_over_ipv6_is_a_family_error() {
    let (message, _, _) = v2_message();
    let error = Advertisement::decode(&message, ip("fe80::1"), ip("ff02::12")).unwrap_err();
    assert_eq!(error, DecodeError::V2OverIpv6);
    assert_eq!(error.drop_reason(), DropReason::Family);
}

#[test]
fn source_and_destination_of_different_families_are_rejected() {
    let (message, src, _) = v3_message();
    let error = Advertisement::decode(&message, src, ip("ff02::12")).unwrap_err();
    assert_eq!(
        error,
        DecodeError::FamilyMismatch {
            src,
            dst: ip("ff02::12")
        }
    );
    assert_eq!(error.drop_reason(), DropReason::Family);
}

#[test]
fn message_one_byte_short_of_its_address_count_is_a_length_mismatch() {
    let (message, src, dst) = v2_message();
    let error = Advertisement::decode(&message[..message.len() - 1], src, dst).unwrap_err();
    assert_eq!(
        error,
        DecodeError::LengthMismatch {
            count: 1,
            len: 19,
            expected: 20
        }
    );
    assert_eq!(error.drop_reason(), DropReason::Length);
}

#[test]
fn address_count_larger_than_the_message_is_a_length_mismatch() {
    let (mut message, src, dst) = v3_message();
    message[3] = 2;
    let error = Advertisement::decode(&message, src, dst).unwrap_err();
    assert_eq!(
        error,
        DecodeError::LengthMismatch {
            count: 2,
            len: 12,
            expected: 16
        }
    );
}

#[test]
fn trailing_bytes_after_the_addresses_are_a_length_mismatch() {
    let (mut message, src, dst) = v3_message();
    message.push(0);
    let error = Advertisement::decode(&message, src, dst).unwrap_err();
    assert!(matches!(
        error,
        DecodeError::LengthMismatch {
            len: 13,
            expected: 12,
            ..
        }
    ));
}

#[test]
fn flipped_priority_bit_fails_the_v2_checksum() {
    let (mut message, src, dst) = v2_message();
    message[2] ^= 0x01;
    let error = Advertisement::decode(&message, src, dst).unwrap_err();
    assert!(matches!(
        error,
        DecodeError::Checksum {
            received: 0x86e8,
            ..
        }
    ));
    assert_eq!(error.drop_reason(), DropReason::Checksum);
    // The lenient decoder reports the same verdict and still decodes.
    let (advertisement, verdict) = Advertisement::decode_lenient(&message, src, dst).unwrap();
    assert_eq!(advertisement.priority, 151);
    assert_eq!(verdict.is_valid(), Some(false));
}

#[test]
fn flipped_address_bit_fails_the_v3_ipv6_checksum() {
    let message = bytes(V3_IPV6)[40..].to_vec();
    let mut broken = message.clone();
    broken[20] ^= 0x80;
    let error =
        Advertisement::decode(&broken, ip("fe80::5eff:fe10:1"), ip("ff02::12")).unwrap_err();
    assert_eq!(error.drop_reason(), DropReason::Checksum);
}

#[test]
fn packet_type_other_than_advertisement_is_rejected() {
    let (mut message, _, _) = v2_message();
    message[0] = 0x22;
    resign_v2(&mut message);
    let error = decode_v2(&message).unwrap_err();
    assert_eq!(error, DecodeError::Type(2));
    assert_eq!(error.drop_reason(), DropReason::Type);
}

#[test]
fn vrid_zero_is_rejected() {
    let (mut message, _, _) = v2_message();
    message[1] = 0;
    resign_v2(&mut message);
    let error = decode_v2(&message).unwrap_err();
    assert_eq!(error, DecodeError::ZeroVrid);
    assert_eq!(error.drop_reason(), DropReason::Vrid);
}

#[test]
fn v2_ip_authentication_header_type_is_rejected() {
    let (mut message, _, _) = v2_message();
    message[4] = 2;
    resign_v2(&mut message);
    let error = decode_v2(&message).unwrap_err();
    assert_eq!(error, DecodeError::AuthenticationHeader);
    assert_eq!(error.drop_reason(), DropReason::Auth);
}

#[test]
fn v2_unknown_authentication_type_is_rejected() {
    let (mut message, _, _) = v2_message();
    message[4] = 7;
    resign_v2(&mut message);
    let error = decode_v2(&message).unwrap_err();
    assert_eq!(error, DecodeError::UnknownAuthType(7));
    assert_eq!(error.drop_reason(), DropReason::Auth);
}

#[test]
fn v2_interval_of_zero_seconds_is_rejected() {
    let (mut message, _, _) = v2_message();
    message[5] = 0;
    resign_v2(&mut message);
    let error = decode_v2(&message).unwrap_err();
    assert_eq!(error, DecodeError::ZeroInterval);
    assert_eq!(error.drop_reason(), DropReason::Interval);
}

#[test]
fn v3_interval_of_zero_centiseconds_is_rejected_even_with_reserved_bits_set() {
    let (mut message, src, dst) = v3_message();
    message[4] = 0xf0; // reserved bits only
    message[5] = 0;
    // The checksum no longer matches either; the lenient decoder gets past it to the interval.
    let error = Advertisement::decode_lenient(&message, src, dst).unwrap_err();
    assert_eq!(error, DecodeError::ZeroInterval);
    assert_eq!(error.drop_reason(), DropReason::Interval);
    let error = Advertisement::decode_bare(&message).unwrap_err();
    assert_eq!(error, DecodeError::ZeroInterval);
}

#[test]
fn v3_reserved_bits_are_ignored_on_receipt() {
    let (mut message, _, _) = v3_message();
    message[4] |= 0xf0;
    let (advertisement, _) = Advertisement::decode_bare(&message).unwrap();
    assert_eq!(advertisement.max_advert_interval_cs, 50);
}

#[test]
fn ip_packet_shorter_than_an_ipv4_header_is_too_short() {
    let packet = bytes(V2_NONE);
    let error = IpPacket::decode(&packet[..19]).unwrap_err();
    assert_eq!(error, DecodeError::IpTooShort { len: 19, min: 20 });
    assert_eq!(error.drop_reason(), DropReason::Length);
    assert_eq!(
        IpPacket::decode(&[]).unwrap_err(),
        DecodeError::IpTooShort { len: 0, min: 1 }
    );
}

#[test]
fn ip_version_other_than_4_or_6_is_rejected() {
    let mut packet = bytes(V2_NONE);
    packet[0] = 0x55;
    let error = IpPacket::decode(&packet).unwrap_err();
    assert_eq!(error, DecodeError::IpVersion(5));
    assert_eq!(error.drop_reason(), DropReason::Malformed);
}

#[test]
fn ipv4_header_length_below_20_bytes_is_rejected() {
    let mut packet = bytes(V2_NONE);
    packet[0] = 0x44;
    let error = IpPacket::decode(&packet).unwrap_err();
    assert_eq!(error, DecodeError::Ipv4HeaderLength(16));
    assert_eq!(error.drop_reason(), DropReason::Length);
}

#[test]
fn truncated_ipv4_packet_is_shorter_than_its_total_length() {
    let packet = bytes(V2_NONE);
    let error = IpPacket::decode(&packet[..39]).unwrap_err();
    assert_eq!(
        error,
        DecodeError::IpTotalLength {
            declared: 40,
            available: 39
        }
    );
    assert_eq!(error.drop_reason(), DropReason::Length);
}

#[test]
fn truncated_ipv6_packet_is_shorter_than_its_payload_length() {
    let packet = bytes(V3_IPV6);
    let error = IpPacket::decode(&packet[..60]).unwrap_err();
    assert_eq!(
        error,
        DecodeError::IpTotalLength {
            declared: 80,
            available: 60
        }
    );
}

#[test]
fn ipv4_fragment_is_not_decoded_as_an_advertisement() {
    let mut packet = bytes(V2_PASS);
    packet[6] = 0x20; // More Fragments
    let parsed = IpPacket::decode(&packet).unwrap();
    assert!(parsed.is_fragment);
    let error = parsed.advertisement().unwrap_err();
    assert_eq!(error, DecodeError::Fragment);
    assert_eq!(error.drop_reason(), DropReason::Malformed);
}

#[test]
fn ip_packet_of_another_protocol_is_not_vrrp() {
    let mut packet = bytes(V2_NONE);
    packet[9] = 17;
    let parsed = IpPacket::decode(&packet).unwrap();
    assert_eq!(parsed.protocol, 17);
    let error = parsed.advertisement().unwrap_err();
    assert_eq!(error, DecodeError::NotVrrp(17));
    assert_eq!(error.drop_reason(), DropReason::Malformed);
}

#[test]
fn ttl_other_than_255_is_rejected() {
    let mut packet = bytes(V3_IPV6);
    packet[7] = 1; // hop limit
    let parsed = IpPacket::decode(&packet).unwrap();
    let error = verify_ttl(parsed.ttl).unwrap_err();
    assert_eq!(error, DecodeError::Ttl(1));
    assert_eq!(error.drop_reason(), DropReason::Ttl);
    assert_eq!(verify_ttl(254), Err(DecodeError::Ttl(254)));
}

#[test]
fn every_drop_reason_has_a_distinct_label() {
    let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), DropReason::ALL.len());
    for label in [
        "ttl", "checksum", "version", "vrid", "auth", "interval", "length", "source",
    ] {
        assert!(labels.contains(&label), "missing drop reason {label}");
    }
}

fn advertisement(version: Version, addresses: &[&str]) -> Advertisement {
    Advertisement {
        version,
        vrid: 1,
        priority: 100,
        max_advert_interval_cs: 100,
        addresses: addresses.iter().copied().map(ip).collect(),
        auth: Authentication::None,
    }
}

const SRC4: &str = "192.0.2.1";
const DST4: &str = "224.0.0.18";

fn encode4(advertisement: &Advertisement) -> Result<Vec<u8>, EncodeError> {
    advertisement.encode(ip(SRC4), ip(DST4))
}

#[test]
fn encoding_vrid_zero_fails() {
    let mut adv = advertisement(Version::V3, &["192.0.2.10"]);
    adv.vrid = 0;
    assert_eq!(encode4(&adv), Err(EncodeError::ZeroVrid));
}

#[test]
fn encoding_v2_over_ipv6_fails() {
    let adv = advertisement(Version::V2, &["fd00::1"]);
    assert_eq!(
        adv.encode(ip("fe80::1"), ip("ff02::12")),
        Err(EncodeError::V2OverIpv6)
    );
}

#[test]
fn encoding_with_mixed_source_and_destination_families_fails() {
    let adv = advertisement(Version::V3, &["192.0.2.10"]);
    assert_eq!(
        adv.encode(ip(SRC4), ip("ff02::12")),
        Err(EncodeError::FamilyMismatch {
            src: ip(SRC4),
            dst: ip("ff02::12")
        })
    );
}

#[test]
fn encoding_an_ipv6_address_in_an_ipv4_advert_fails() {
    let adv = advertisement(Version::V3, &["192.0.2.10", "fd00::1"]);
    assert_eq!(
        encode4(&adv),
        Err(EncodeError::AddressFamily {
            address: ip("fd00::1"),
            family: Family::Ipv4
        })
    );
}

#[test]
fn encoding_256_addresses_fails() {
    let mut adv = advertisement(Version::V3, &[]);
    adv.addresses = (0..256u32)
        .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    assert_eq!(encode4(&adv), Err(EncodeError::TooManyAddresses(256)));
    adv.addresses.pop();
    assert_eq!(encode4(&adv).unwrap().len(), 8 + 255 * 4);
}

#[test]
fn encoding_interval_zero_fails() {
    let mut adv = advertisement(Version::V3, &["192.0.2.10"]);
    adv.max_advert_interval_cs = 0;
    assert_eq!(encode4(&adv), Err(EncodeError::ZeroInterval));
}

#[test]
fn encoding_v2_interval_that_is_not_whole_seconds_fails() {
    let mut adv = advertisement(Version::V2, &["192.0.2.10"]);
    adv.max_advert_interval_cs = 150;
    assert_eq!(
        encode4(&adv),
        Err(EncodeError::IntervalNotWholeSeconds(150))
    );
}

#[test]
fn encoding_intervals_beyond_the_field_widths_fails() {
    let mut v2 = advertisement(Version::V2, &["192.0.2.10"]);
    v2.max_advert_interval_cs = 25_600;
    assert_eq!(
        encode4(&v2),
        Err(EncodeError::IntervalTooLong {
            interval_cs: 25_600,
            max_cs: 25_500
        })
    );
    let mut v3 = advertisement(Version::V3, &["192.0.2.10"]);
    v3.max_advert_interval_cs = 4096;
    assert_eq!(
        encode4(&v3),
        Err(EncodeError::IntervalTooLong {
            interval_cs: 4096,
            max_cs: 4095
        })
    );
    v3.max_advert_interval_cs = 4095;
    assert!(encode4(&v3).is_ok());
}

#[test]
fn encoding_a_password_in_a_v3_advert_fails() {
    let mut adv = advertisement(Version::V3, &["192.0.2.10"]);
    adv.auth = Authentication::simple_text_password(b"pw").unwrap();
    assert_eq!(encode4(&adv), Err(EncodeError::AuthenticationOnV3));
}

#[test]
fn password_longer_than_eight_bytes_is_rejected() {
    assert_eq!(
        Authentication::simple_text_password(b"123456789"),
        Err(EncodeError::PasswordTooLong(9))
    );
    assert_eq!(
        Authentication::simple_text_password(b"pw"),
        Ok(Authentication::SimpleTextPassword(*b"pw\0\0\0\0\0\0"))
    );
}

#[test]
fn debug_output_of_a_password_does_not_reveal_it() {
    let auth = Authentication::simple_text_password(b"secret12").unwrap();
    assert!(!format!("{auth:?}").contains("secret"));
}

#[test]
fn strict_decode_reports_a_bad_checksum_before_checks_that_follow_it_in_rfc_order() {
    // VRID 0 without re-signing: the checksum (checked first, RFC 5798 §7.1) is the reason;
    // the lenient decoder gets past it to the VRID.
    let (mut message, src, dst) = v2_message();
    message[1] = 0;
    assert!(matches!(
        Advertisement::decode(&message, src, dst),
        Err(DecodeError::Checksum { .. })
    ));
    assert_eq!(
        Advertisement::decode_lenient(&message, src, dst).unwrap_err(),
        DecodeError::ZeroVrid
    );
}
