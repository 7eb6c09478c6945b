//! Pure builders for the Ethernet frames that announce a VIP: a gratuitous ARP (IPv4) and an
//! unsolicited Neighbor Advertisement (IPv6, RFC 4861 §7.2.6).
//!
//! The GARP is an ARP *request* with sender = target = VIP (an "ARP Announcement", RFC 5227
//! §2.3), as keepalived sends: every Linux host updates an existing neighbour entry from it
//! whatever its `arp_accept`, and some devices ignore unsolicited ARP replies. The target
//! hardware address is zero, as RFC 5227 asks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;

/// `ETH_P_ARP`.
pub const ETH_P_ARP: u16 = 0x0806;
/// `ETH_P_IPV6`.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// ff02::1, all nodes.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet multicast address of ff02::1 (RFC 2464 §7).
pub const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Length of a gratuitous ARP frame (Ethernet header + ARP for IPv4 over Ethernet).
pub const GARP_LEN: usize = 14 + 28;
/// Length of an unsolicited NA frame with a target link-layer address option.
pub const NA_LEN: usize = 14 + 40 + NA_ICMP_LEN;

pub(crate) const ETHERNET_HEADER: usize = 14;
pub(crate) const IPV6_HEADER: usize = 40;
const NA_ICMP_LEN: usize = 8 + 16 + 8;
const ARPHRD_ETHER: u16 = 1;
const ETH_P_IP: u16 = 0x0800;
pub(crate) const ARPOP_REQUEST: u16 = 1;
pub(crate) const IPPROTO_ICMPV6: u8 = 58;
pub(crate) const ND_NEIGHBOR_ADVERT: u8 = 136;
pub(crate) const ND_OPT_TARGET_LINKADDR: u8 = 2;
const ND_NA_FLAG_ROUTER: u8 = 0x80;
const ND_NA_FLAG_OVERRIDE: u8 = 0x20;
pub(crate) const HOP_LIMIT: u8 = 255;

pub(crate) fn ethernet_header(
    frame: &mut Vec<u8>,
    destination: [u8; 6],
    source: [u8; 6],
    ethertype: u16,
) {
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&ethertype.to_be_bytes());
}

/// A broadcast gratuitous ARP request announcing that `vip` is at `mac`.
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    arp_request(mac, vip, vip)
}

/// A broadcast ARP request from `mac` and `sender` for `target`, with the target hardware
/// address zero (RFC 5227).
pub(crate) fn arp_request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = Vec::with_capacity(GARP_LEN);
    ethernet_header(&mut frame, BROADCAST_MAC, mac, ETH_P_ARP);
    frame.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
    frame.push(6);
    frame.push(4);
    frame.extend_from_slice(&ARPOP_REQUEST.to_be_bytes());
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&sender.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&target.octets());
    frame
}

/// An unsolicited Neighbor Advertisement to all nodes for `target` at `mac`, with the Override
/// flag, the Router flag when `router`, hop limit 255 and a target link-layer address option,
/// sent from `source` (an address of the interface; the VIP itself will do).
pub fn unsolicited_neighbor_advertisement(
    mac: [u8; 6],
    source: Ipv6Addr,
    target: Ipv6Addr,
    router: bool,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(NA_LEN);
    ethernet_header(&mut frame, ALL_NODES_MAC, mac, ETH_P_IPV6);
    // IPv6 header: version 6, traffic class 0, flow label 0.
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    frame.push(IPPROTO_ICMPV6);
    frame.push(HOP_LIMIT);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&ALL_NODES.octets());
    // ICMPv6 Neighbor Advertisement; checksum filled in below.
    let icmp_start = frame.len();
    frame.extend_from_slice(&[ND_NEIGHBOR_ADVERT, 0, 0, 0]);
    let flags = ND_NA_FLAG_OVERRIDE | if router { ND_NA_FLAG_ROUTER } else { 0 };
    frame.extend_from_slice(&[flags, 0, 0, 0]);
    frame.extend_from_slice(&target.octets());
    frame.extend_from_slice(&[ND_OPT_TARGET_LINKADDR, 1]);
    frame.extend_from_slice(&mac);
    let checksum = checksum::with_pseudo_header(
        IpAddr::V6(source),
        IpAddr::V6(ALL_NODES),
        IPPROTO_ICMPV6,
        &frame[icmp_start..],
    );
    frame[icmp_start + 2..icmp_start + 4].copy_from_slice(&checksum.to_be_bytes());
    debug_assert_eq!(frame.len(), ETHERNET_HEADER + IPV6_HEADER + NA_ICMP_LEN);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_with_sender_and_target_the_vip() {
        let frame = gratuitous_arp(MAC, Ipv4Addr::new(192, 0, 2, 50));
        #[rustfmt::skip]
        let expected: [u8; GARP_LEN] = [
            // Ethernet: broadcast <- MAC, ARP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x08, 0x06,
            // ARP: Ethernet, IPv4, hlen 6, plen 4, request
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
            // sender MAC, sender IP
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, 192, 0, 2, 50,
            // target MAC (zero), target IP
            0, 0, 0, 0, 0, 0, 192, 0, 2, 50,
        ];
        assert_eq!(frame, expected);
    }

    /// The checksum 0x7a4d was computed independently (Python, RFC 1071 sum over the pseudo-
    /// header and message) for this exact frame.
    #[test]
    fn unsolicited_na_has_override_flag_hop_limit_255_target_option_and_checksum() {
        let vip: Ipv6Addr = "2001:db8::50".parse().unwrap();
        let frame = unsolicited_neighbor_advertisement(MAC, vip, vip, false);
        #[rustfmt::skip]
        let expected: [u8; NA_LEN] = [
            // Ethernet: 33:33:00:00:00:01 <- MAC, IPv6
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01,
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
            0x86, 0xdd,
            // IPv6: version 6, payload length 32, ICMPv6, hop limit 255
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 58, 255,
            // source 2001:db8::50
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x50,
            // destination ff02::1
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            // ICMPv6: type 136, code 0, checksum, flags O, reserved
            136, 0, 0x7a, 0x4d, 0x20, 0, 0, 0,
            // target 2001:db8::50
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x50,
            // option: target link-layer address, length 1 (8 bytes), MAC
            2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30,
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn unsolicited_na_from_a_router_sets_the_router_flag_and_adjusts_the_checksum() {
        let vip: Ipv6Addr = "2001:db8::50".parse().unwrap();
        let frame = unsolicited_neighbor_advertisement(MAC, vip, vip, true);
        let icmp = &frame[54..];
        assert_eq!(icmp[4], 0xa0);
        assert_eq!(&icmp[2..4], &[0xfa, 0x4c]);
    }

    #[test]
    fn a_message_with_its_checksum_filled_in_sums_to_zero() {
        let vip: Ipv6Addr = "fe80::1234".parse().unwrap();
        let frame = unsolicited_neighbor_advertisement(MAC, vip, vip, false);
        let sum = checksum::with_pseudo_header(
            IpAddr::V6(vip),
            IpAddr::V6(ALL_NODES),
            IPPROTO_ICMPV6,
            &frame[54..],
        );
        assert_eq!(sum, 0);
    }
}
