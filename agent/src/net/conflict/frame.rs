//! Pure builders and parsers for the frames that ask "who holds this VIP?" and the answers
//! that say "I do": an ARP probe (RFC 5227 §2.1.1) and a DAD-style Neighbor Solicitation
//! (RFC 4861 §7.2.2, RFC 4862 §5.4.2) out; ARP requests/replies and Neighbor Advertisements in.
//!
//! The probes carry no sender protocol address (0.0.0.0, ::), so they leave no trace in the
//! other nodes' neighbour tables. Linux answers both for an address it holds (checked in the
//! namespace lab): an ARP reply unicast to the probe's sender hardware address, and a Neighbor
//! Advertisement to all nodes (ff02::1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::net::announce::frame::{
    ARPOP_REQUEST, ETH_P_ARP, ETH_P_IPV6, ETHERNET_HEADER, HOP_LIMIT, IPPROTO_ICMPV6, IPV6_HEADER,
    ND_NEIGHBOR_ADVERT, ND_OPT_TARGET_LINKADDR, arp_request, ethernet_header,
};

/// Length of an ARP probe frame.
pub const ARP_PROBE_LEN: usize = ETHERNET_HEADER + ARP_LEN;
/// Length of a Neighbor Solicitation probe frame (no options: the source is unspecified).
pub const NS_PROBE_LEN: usize = ETHERNET_HEADER + IPV6_HEADER + NS_ICMP_LEN;

const ARP_LEN: usize = 28;
const NS_ICMP_LEN: usize = 8 + 16;
const ARPOP_REPLY: u16 = 2;
const ND_NEIGHBOR_SOLICIT: u8 = 135;

/// Someone saying, on the wire, that `address` is at `mac`: the sender of an ARP request or
/// reply, or the target of a Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub address: IpAddr,
    pub mac: [u8; 6],
}

/// The solicited-node multicast group of `address` (RFC 4291 §2.7.1).
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a, b, c])
}

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let [.., a, b, c, d] = group.octets();
    [0x33, 0x33, a, b, c, d]
}

/// A broadcast ARP probe for `vip` from `mac`: a request with sender protocol address 0.0.0.0
/// and target hardware address zero.
pub fn arp_probe(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    arp_request(mac, Ipv4Addr::UNSPECIFIED, vip)
}

/// A Neighbor Solicitation for `vip` from the unspecified address to its solicited-node group,
/// hop limit 255, no source link-layer option (RFC 4861 §4.3 forbids it from ::).
pub fn neighbor_solicitation_probe(mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(vip);
    let mut frame = Vec::with_capacity(NS_PROBE_LEN);
    ethernet_header(&mut frame, multicast_mac(group), mac, ETH_P_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(NS_ICMP_LEN as u16).to_be_bytes());
    frame.push(IPPROTO_ICMPV6);
    frame.push(HOP_LIMIT);
    frame.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    frame.extend_from_slice(&group.octets());
    let icmp_start = frame.len();
    frame.extend_from_slice(&[ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
    frame.extend_from_slice(&vip.octets());
    let checksum = checksum::with_pseudo_header(
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        IpAddr::V6(group),
        IPPROTO_ICMPV6,
        &frame[icmp_start..],
    );
    frame[icmp_start + 2..icmp_start + 4].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The claim a received frame makes, if it makes one: an ARP request or reply for IPv4 over
/// Ethernet with a sender protocol address (probes, with 0.0.0.0, claim nothing), or a valid
/// Neighbor Advertisement (hop limit 255, code 0, checksum right) naming the target's
/// link-layer address in its option, else in the Ethernet source.
pub fn claim(frame: &[u8]) -> Option<Claim> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let payload = frame.get(ETHERNET_HEADER..)?;
    match ethertype {
        ETH_P_ARP => arp_claim(payload),
        ETH_P_IPV6 => {
            let source: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
            advertisement_claim(payload, source)
        }
        _ => None,
    }
}

fn arp_claim(arp: &[u8]) -> Option<Claim> {
    let arp = arp.get(..ARP_LEN)?;
    let header = &arp[..8];
    let operation = u16::from_be_bytes([header[6], header[7]]);
    if header[..6] != [0, 1, 0x08, 0x00, 6, 4]
        || !(operation == ARPOP_REQUEST || operation == ARPOP_REPLY)
    {
        return None;
    }
    let mac: [u8; 6] = arp.get(8..14)?.try_into().ok()?;
    let sender: [u8; 4] = arp.get(14..18)?.try_into().ok()?;
    let sender = Ipv4Addr::from(sender);
    (!sender.is_unspecified()).then_some(Claim {
        address: IpAddr::V4(sender),
        mac,
    })
}

fn advertisement_claim(ipv6: &[u8], ethernet_source: [u8; 6]) -> Option<Claim> {
    let header = ipv6.get(..IPV6_HEADER)?;
    if header[0] >> 4 != 6 || header[6] != IPPROTO_ICMPV6 || header[7] != HOP_LIMIT {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let icmp = ipv6.get(IPV6_HEADER..IPV6_HEADER + length)?;
    if icmp.len() < 24 || icmp[0] != ND_NEIGHBOR_ADVERT || icmp[1] != 0 {
        return None;
    }
    let source: [u8; 16] = header[8..24].try_into().ok()?;
    let destination: [u8; 16] = header[24..40].try_into().ok()?;
    let sum = checksum::with_pseudo_header(
        IpAddr::V6(source.into()),
        IpAddr::V6(destination.into()),
        IPPROTO_ICMPV6,
        icmp,
    );
    if sum != 0 {
        return None;
    }
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    let mut options = &icmp[24..];
    let mut mac = ethernet_source;
    while let &[kind, units, ..] = options {
        let len = usize::from(units) * 8;
        if len == 0 {
            return None;
        }
        let option = options.get(..len)?;
        if kind == ND_OPT_TARGET_LINKADDR
            && let Some(address) = option.get(2..8)
        {
            mac = address.try_into().ok()?;
        }
        options = &options[len..];
    }
    Some(Claim {
        address: IpAddr::V6(target.into()),
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::announce::{gratuitous_arp, unsolicited_neighbor_advertisement};

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const OTHER: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x31];

    #[test]
    fn arp_probe_is_a_broadcast_request_without_a_sender_address() {
        let frame = arp_probe(MAC, Ipv4Addr::new(192, 0, 2, 50));
        #[rustfmt::skip]
        let expected: [u8; ARP_PROBE_LEN] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 192, 0, 2, 50,
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn neighbor_solicitation_probe_goes_to_the_solicited_node_group_from_unspecified() {
        let vip: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        let frame = neighbor_solicitation_probe(MAC, vip);
        assert_eq!(frame.len(), NS_PROBE_LEN);
        assert_eq!(&frame[..6], &[0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        assert_eq!(&frame[6..12], &MAC);
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        // payload length 24, ICMPv6, hop limit 255
        assert_eq!(&frame[18..22], &[0, 24, 58, 255]);
        assert_eq!(&frame[22..38], &[0; 16]);
        assert_eq!(
            &frame[38..54],
            &"ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(frame[54], 135);
        assert_eq!(&frame[62..78], &vip.octets());
        let sum = checksum::with_pseudo_header(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(solicited_node(vip)),
            IPPROTO_ICMPV6,
            &frame[54..],
        );
        assert_eq!(sum, 0, "checksum must verify");
    }

    fn arp_reply(mac: [u8; 6], sender: Ipv4Addr) -> Vec<u8> {
        let mut frame = arp_probe(mac, Ipv4Addr::UNSPECIFIED);
        frame[21] = 2;
        frame[28..32].copy_from_slice(&sender.octets());
        frame
    }

    #[test]
    fn frames_claim_what_their_sender_or_target_says_and_nothing_else() {
        let v4 = Ipv4Addr::new(192, 0, 2, 50);
        let v6: Ipv6Addr = "2001:db8::50".parse().unwrap();
        let mut na_without_option = unsolicited_neighbor_advertisement(OTHER, v6, v6, false);
        // Drop the option (8 bytes) and fix the payload length and checksum.
        na_without_option.truncate(na_without_option.len() - 8);
        na_without_option[18..20].copy_from_slice(&24u16.to_be_bytes());
        na_without_option[56..58].copy_from_slice(&[0, 0]);
        let sum = checksum::with_pseudo_header(
            IpAddr::V6(v6),
            IpAddr::V6("ff02::1".parse().unwrap()),
            IPPROTO_ICMPV6,
            &na_without_option[54..],
        );
        na_without_option[56..58].copy_from_slice(&sum.to_be_bytes());
        let mut bad_checksum = unsolicited_neighbor_advertisement(OTHER, v6, v6, false);
        bad_checksum[57] ^= 1;
        let mut hop_limit_64 = unsolicited_neighbor_advertisement(OTHER, v6, v6, false);
        hop_limit_64[21] = 64;
        let mut option_length_zero = unsolicited_neighbor_advertisement(OTHER, v6, v6, false);
        option_length_zero[79] = 0;
        let mut rarp = arp_reply(OTHER, v4);
        rarp[21] = 3;
        let v4_claim = Some(Claim {
            address: IpAddr::V4(v4),
            mac: OTHER,
        });
        let v6_claim = Some(Claim {
            address: IpAddr::V6(v6),
            mac: OTHER,
        });
        let cases: Vec<(&str, Vec<u8>, Option<Claim>)> = vec![
            ("ARP reply", arp_reply(OTHER, v4), v4_claim),
            ("gratuitous ARP", gratuitous_arp(OTHER, v4), v4_claim),
            ("ARP probe (no sender)", arp_probe(OTHER, v4), None),
            ("RARP operation", rarp, None),
            ("truncated ARP", arp_reply(OTHER, v4)[..30].to_vec(), None),
            (
                "NA with target option",
                unsolicited_neighbor_advertisement(OTHER, v6, v6, true),
                v6_claim,
            ),
            (
                "NA without option: Ethernet source",
                na_without_option,
                v6_claim,
            ),
            ("NA with a bad checksum", bad_checksum, None),
            ("NA with hop limit 64", hop_limit_64, None),
            ("NA with an option of length 0", option_length_zero, None),
            ("our NS probe", neighbor_solicitation_probe(OTHER, v6), None),
            ("empty", Vec::new(), None),
            ("Ethernet header only", vec![0; 14], None),
        ];
        for (name, frame, expected) in cases {
            assert_eq!(claim(&frame), expected, "{name}");
        }
    }

    #[test]
    fn every_truncation_of_a_valid_answer_is_no_claim_and_no_panic() {
        let v6: Ipv6Addr = "2001:db8::50".parse().unwrap();
        let frames = [
            arp_reply(OTHER, Ipv4Addr::new(192, 0, 2, 50)),
            unsolicited_neighbor_advertisement(OTHER, v6, v6, false),
        ];
        for frame in frames {
            for len in 0..frame.len() {
                // An NA cut inside its option still claims (the option is then ignored) only
                // when the IPv6 payload length still fits: it does not here.
                assert_eq!(claim(&frame[..len]), None, "cut at {len}");
            }
        }
    }
}
