//! Property tests: no decoder entry point panics on mutated real vectors, random bytes or mutated
//! pcap files, and every valid advertisement survives an encode/decode round trip.
//!
//! Case counts are set explicitly: 40,000 + 30,000 (each decoded twice) + 20,000 + 20,000 + 10,000
//! = 120,000 generated inputs per run.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod vectors;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use kube_vrrp_agent::decode;
use kube_vrrp_agent::vrrp::packet::{Advertisement, Authentication, IpPacket, verify_ttl};
use kube_vrrp_agent::vrrp::{Family, Version};
use proptest::prelude::*;
use vectors::{ALL, bytes};

/// One way to damage a packet.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, value: u8 },
    Truncate { len: usize },
    Extend { tail: Vec<u8> },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => proptest::collection::vec(any::<u8>(), 1..24).prop_map(|tail| Mutation::Extend { tail }),
        1 => any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(packet: &mut Vec<u8>, mutation: &Mutation) {
    let len = packet.len();
    match mutation {
        Mutation::FlipBit { at, bit } if len > 0 => packet[at % len] ^= 1 << bit,
        Mutation::SetByte { at, value } if len > 0 => packet[at % len] = *value,
        Mutation::Truncate { len: new_len } => packet.truncate(new_len % (len + 1)),
        Mutation::Extend { tail } => packet.extend_from_slice(tail),
        Mutation::Remove { at } if len > 0 => {
            packet.remove(at % len);
        }
        _ => {}
    }
}

/// A real vector with a few mutations applied.
fn mutated_vector() -> impl Strategy<Value = Vec<u8>> {
    (0..ALL.len(), proptest::collection::vec(mutation(), 1..4)).prop_map(|(index, mutations)| {
        let mut packet = bytes(ALL[index].1);
        for m in &mutations {
            apply(&mut packet, m);
        }
        packet
    })
}

/// Feeds `input` to every decoder entry point, as an IP packet, as a bare VRRP message and with
/// both families of addresses. Decoding may fail; it must not panic.
fn decode_everywhere(input: &[u8]) {
    if let Ok(ip) = IpPacket::decode(input) {
        let _ = verify_ttl(ip.ttl);
        let strict = ip.advertisement();
        let lenient = ip.advertisement_lenient();
        // A packet the strict decoder accepts, the lenient one accepts identically.
        if let Ok(advertisement) = &strict {
            assert_eq!(&lenient.as_ref().unwrap().0, advertisement);
        }
    }
    let _ = IpPacket::decode_ipv4(input);
    let _ = IpPacket::decode_ipv6(input);
    let v4 = (
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
    );
    let v6 = (
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
    );
    for slice in [
        input,
        input.get(20..).unwrap_or(&[]),
        input.get(40..).unwrap_or(&[]),
    ] {
        for (src, dst) in [v4, v6, (v4.0, v6.1)] {
            let _ = Advertisement::decode(slice, src, dst);
            let _ = Advertisement::decode_lenient(slice, src, dst);
        }
        let _ = Advertisement::decode_bare(slice);
    }
    let record = decode::bytes_record(input);
    serde_json::to_string(&record).unwrap();
}

/// The captured pcap files, read once.
static VECTOR_PCAPS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    ALL.iter()
        .map(|(name, _)| std::fs::read(dir.join(format!("{name}.pcap"))).unwrap())
        .collect()
});

/// Characters that hex input may contain, valid or not.
const HEX_TEXT_NOISE: [char; 8] = [' ', ':', '-', 'x', 'g', '\n', '0', 'f'];

fn address(family_v6: bool) -> impl Strategy<Value = IpAddr> {
    if family_v6 {
        any::<[u8; 16]>()
            .prop_map(|o| IpAddr::V6(Ipv6Addr::from(o)))
            .boxed()
    } else {
        any::<[u8; 4]>()
            .prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)))
            .boxed()
    }
}

/// A valid advertisement with a matching source and destination.
fn valid_advertisement() -> impl Strategy<Value = (Advertisement, IpAddr, IpAddr)> {
    (any::<bool>(), any::<bool>())
        .prop_flat_map(|(v3, ipv6)| {
            let ipv6 = v3 && ipv6;
            let interval = if v3 {
                (1u16..=4095).boxed()
            } else {
                (1u16..=255).prop_map(|s| s * 100).boxed()
            };
            let auth = if v3 {
                Just(Authentication::None).boxed()
            } else {
                prop_oneof![
                    Just(Authentication::None),
                    any::<[u8; 8]>().prop_map(Authentication::SimpleTextPassword)
                ]
                .boxed()
            };
            (
                Just(if v3 { Version::V3 } else { Version::V2 }),
                1u8..=255,
                any::<u8>(),
                interval,
                proptest::collection::vec(address(ipv6), 0..20),
                auth,
                address(ipv6),
                address(ipv6),
            )
        })
        .prop_map(
            |(version, vrid, priority, max_advert_interval_cs, addresses, auth, src, dst)| {
                (
                    Advertisement {
                        version,
                        vrid,
                        priority,
                        max_advert_interval_cs,
                        addresses,
                        auth,
                    },
                    src,
                    dst,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40_000, ..ProptestConfig::default() })]
    #[test]
    fn mutated_keepalived_vectors_never_panic_any_decoder(packet in mutated_vector()) {
        decode_everywhere(&packet);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30_000, ..ProptestConfig::default() })]
    #[test]
    fn random_bytes_never_panic_any_decoder(packet in proptest::collection::vec(any::<u8>(), 0..120)) {
        decode_everywhere(&packet);
        // Random bytes shaped like a v2/v3 header reach deeper checks.
        let mut shaped = packet.clone();
        if let Some(first) = shaped.first_mut() {
            *first = 0x21 + (*first & 0x10);
        }
        decode_everywhere(&shaped);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]
    #[test]
    fn mutated_pcap_files_never_panic_the_decode_command(
        index in 0..ALL.len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let mut file = VECTOR_PCAPS[index].clone();
        for m in &mutations {
            apply(&mut file, m);
        }
        let (records, summary) = decode::pcap_records(&file);
        prop_assert_eq!(records.len(), summary.decoded + summary.errors);
        let mut out = Vec::new();
        decode::write_records(&mut out, &records).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]
    #[test]
    fn noisy_hex_text_never_panics_the_decode_command(
        packet in mutated_vector(),
        noise in proptest::collection::vec((any::<usize>(), proptest::sample::select(&HEX_TEXT_NOISE[..])), 0..4),
    ) {
        let mut text: Vec<char> = hex::encode(&packet).chars().collect();
        for (at, c) in noise {
            text.insert(at % (text.len() + 1), c);
        }
        let text: String = text.into_iter().collect();
        let record = decode::hex_record(&text);
        serde_json::to_string(&record).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]
    #[test]
    fn valid_advertisements_round_trip_through_encode_and_decode((advertisement, src, dst) in valid_advertisement()) {
        let encoded = advertisement.encode(src, dst).unwrap();
        prop_assert_eq!(encoded.len(), advertisement.encoded_len(Family::of(src)));
        let decoded = Advertisement::decode(&encoded, src, dst).unwrap();
        prop_assert_eq!(&decoded, &advertisement);
        // The checksum covers every bit: flipping any one is caught (v3 also binds the addresses).
        let mut damaged = encoded.clone();
        let at = usize::from(advertisement.priority) % damaged.len();
        damaged[at] ^= 0x04;
        prop_assert!(Advertisement::decode(&damaged, src, dst).is_err());
    }
}
