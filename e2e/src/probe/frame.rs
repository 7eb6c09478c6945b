//! Ethernet frames the probes send and read: ARP and Neighbor Discovery for a VIP, and VRRP
//! adverts seen on the wire. Pure byte work, no sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::Mac;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_VRRP: u8 = 112;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;
const ARPHRD_ETHER: u16 = 1;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const ETH_HLEN: usize = 14;
const IPV6_HLEN: usize = 40;

fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETH_HLEN + payload.len());
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A broadcast ARP request "who has `target`, tell `sender_ip`".
pub fn arp_request(sender_mac: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    arp.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    arp.extend_from_slice(&[6, 4]);
    arp.extend_from_slice(&ARPOP_REQUEST.to_be_bytes());
    arp.extend_from_slice(&sender_mac.0);
    arp.extend_from_slice(&sender_ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&target.octets());
    ethernet(Mac::BROADCAST, sender_mac, ETHERTYPE_ARP, &arp)
}

/// The solicited-node multicast address of `target` (RFC 4291 §2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    )
}

/// The Ethernet multicast address of an IPv6 multicast group (RFC 2464 §7).
fn multicast_mac(group: Ipv6Addr) -> Mac {
    let g = group.octets();
    Mac([0x33, 0x33, g[12], g[13], g[14], g[15]])
}

/// The ones'-complement sum of an upper-layer packet with its IPv6 pseudo-header (RFC 8200 §8.1).
fn ipv6_upper_checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(data.len() as u32).to_be_bytes());
    add(&[0, 0, 0, next_header]);
    add(data);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A Neighbor Solicitation for `target` sent to its solicited-node group, with the sender's
/// link-layer address option so the target can answer at once.
pub fn neighbor_solicitation(sender_mac: Mac, sender_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[ND_NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[ND_OPT_SOURCE_LINKADDR, 1]);
    icmp.extend_from_slice(&sender_mac.0);
    let checksum = ipv6_upper_checksum(sender_ip, group, IPPROTO_ICMPV6, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let mut ip = Vec::with_capacity(IPV6_HLEN + icmp.len());
    ip.extend_from_slice(&[0x60, 0, 0, 0]);
    ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[IPPROTO_ICMPV6, 255]);
    ip.extend_from_slice(&sender_ip.octets());
    ip.extend_from_slice(&group.octets());
    ip.extend_from_slice(&icmp);
    ethernet(multicast_mac(group), sender_mac, ETHERTYPE_IPV6, &ip)
}

/// A neighbor solicitation ("who has") for `target`, ARP or ND by family.
pub fn who_has(sender_mac: Mac, sender_ip: IpAddr, target: IpAddr) -> Option<Vec<u8>> {
    match (sender_ip, target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => Some(arp_request(sender_mac, s, t)),
        (IpAddr::V6(s), IpAddr::V6(t)) => Some(neighbor_solicitation(sender_mac, s, t)),
        _ => None,
    }
}

fn ethertype(frame: &[u8]) -> Option<u16> {
    frame.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn mac_at(bytes: &[u8], at: usize) -> Option<Mac> {
    let b: [u8; 6] = bytes.get(at..at + 6)?.try_into().ok()?;
    Some(Mac(b))
}

fn ipv6_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

fn ipv4_at(bytes: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// If `frame` answers "who has `target`" (ARP reply or Neighbor Advertisement), the MAC that
/// claims the address: the ARP sender hardware address, or the NA's target link-layer address
/// option (its Ethernet source when the option is absent).
pub fn neighbor_reply_mac(frame: &[u8], target: IpAddr) -> Option<Mac> {
    match (ethertype(frame)?, target) {
        (ETHERTYPE_ARP, IpAddr::V4(t)) => {
            let arp = frame.get(ETH_HLEN..ETH_HLEN + 28)?;
            let op = u16::from_be_bytes([arp[6], arp[7]]);
            (op == ARPOP_REPLY && ipv4_at(arp, 14)? == t).then(|| mac_at(arp, 8))?
        }
        (ETHERTYPE_IPV6, IpAddr::V6(t)) => {
            let ip = frame.get(ETH_HLEN..)?;
            if *ip.get(6)? != IPPROTO_ICMPV6 {
                return None;
            }
            let icmp = ip.get(IPV6_HLEN..)?;
            if *icmp.first()? != ND_NEIGHBOR_ADVERT || ipv6_at(icmp, 8)? != t {
                return None;
            }
            let mut options = icmp.get(24..)?;
            while options.len() >= 8 {
                let len = usize::from(options[1]) * 8;
                if len == 0 || len > options.len() {
                    break;
                }
                if options[0] == ND_OPT_TARGET_LINKADDR {
                    return mac_at(options, 2);
                }
                options = &options[len..];
            }
            mac_at(frame, 6)
        }
        _ => None,
    }
}

/// A VRRP advertisement as seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireAdvert {
    pub source_mac: Mac,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval: whole seconds in v2, centiseconds in v3.
    pub interval: Duration,
}

/// Reads a VRRP advert (v2 or v3, IPv4 or IPv6 without extension headers) out of a frame.
pub fn vrrp_advert(frame: &[u8]) -> Option<WireAdvert> {
    let source_mac = mac_at(frame, 6)?;
    let ip = frame.get(ETH_HLEN..)?;
    let (source, destination, ttl, vrrp) = match ethertype(frame)? {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if *ip.get(9)? != IPPROTO_VRRP || ihl < 20 {
                return None;
            }
            (
                IpAddr::V4(ipv4_at(ip, 12)?),
                IpAddr::V4(ipv4_at(ip, 16)?),
                *ip.get(8)?,
                ip.get(ihl..)?,
            )
        }
        ETHERTYPE_IPV6 => {
            if *ip.get(6)? != IPPROTO_VRRP {
                return None;
            }
            (
                IpAddr::V6(ipv6_at(ip, 8)?),
                IpAddr::V6(ipv6_at(ip, 24)?),
                *ip.get(7)?,
                ip.get(IPV6_HLEN..)?,
            )
        }
        _ => return None,
    };
    let header = vrrp.get(..8)?;
    let version = header[0] >> 4;
    let interval = match version {
        2 => Duration::from_secs(u64::from(header[5])),
        3 => {
            Duration::from_millis(u64::from(u16::from_be_bytes([header[4] & 0x0f, header[5]])) * 10)
        }
        _ => return None,
    };
    Some(WireAdvert {
        source_mac,
        source,
        destination,
        ttl,
        version,
        vrid: header[1],
        priority: header[2],
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Mac = Mac([2, 0x77, 0, 0, 0, 0xcc]);
    const NODE: Mac = Mac([2, 0x77, 0, 0, 0, 1]);

    fn arp_reply(sender: Mac, sender_ip: Ipv4Addr) -> Vec<u8> {
        let mut frame = arp_request(sender, sender_ip, Ipv4Addr::new(192, 168, 77, 100));
        frame[ETH_HLEN + 7] = 2;
        frame
    }

    #[test]
    fn arp_request_asks_for_the_target_from_broadcast() {
        let frame = arp_request(
            CLIENT,
            "192.168.77.100".parse().unwrap(),
            "192.168.77.50".parse().unwrap(),
        );
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &[0xff; 6]);
        assert_eq!(ethertype(&frame), Some(ETHERTYPE_ARP));
        assert_eq!(&frame[ETH_HLEN + 24..], &[192, 168, 77, 50]);
    }

    #[test]
    fn arp_reply_for_the_target_yields_the_sender_mac_and_others_are_ignored() {
        let vip: IpAddr = "192.168.77.50".parse().unwrap();
        let reply = arp_reply(NODE, "192.168.77.50".parse().unwrap());
        assert_eq!(neighbor_reply_mac(&reply, vip), Some(NODE));
        let other = arp_reply(NODE, "192.168.77.51".parse().unwrap());
        assert_eq!(neighbor_reply_mac(&other, vip), None);
        let request = arp_request(
            CLIENT,
            "192.168.77.100".parse().unwrap(),
            "192.168.77.50".parse().unwrap(),
        );
        assert_eq!(neighbor_reply_mac(&request, vip), None);
    }

    #[test]
    fn neighbor_solicitation_goes_to_the_solicited_node_group_with_a_valid_checksum() {
        let src: Ipv6Addr = "fd00:77::100".parse().unwrap();
        let target: Ipv6Addr = "fd00:77::50".parse().unwrap();
        let frame = neighbor_solicitation(CLIENT, src, target);
        assert_eq!(&frame[..6], &[0x33, 0x33, 0xff, 0, 0, 0x50]);
        let ip = &frame[ETH_HLEN..];
        assert_eq!(ipv6_at(ip, 24).unwrap().to_string(), "ff02::1:ff00:50");
        // A correct checksum makes the sum over pseudo-header and message zero.
        let icmp = &ip[IPV6_HLEN..];
        assert_eq!(
            ipv6_upper_checksum(src, solicited_node(target), IPPROTO_ICMPV6, icmp),
            0
        );
    }

    #[test]
    fn neighbor_advertisement_yields_its_target_link_layer_address() {
        let target: Ipv6Addr = "fd00:77::50".parse().unwrap();
        // Reuse the NS layout, turned into an NA with a target link-layer option.
        let mut frame = neighbor_solicitation(NODE, "fd00:77::b".parse().unwrap(), target);
        let icmp = ETH_HLEN + IPV6_HLEN;
        frame[icmp] = ND_NEIGHBOR_ADVERT;
        frame[icmp + 24] = ND_OPT_TARGET_LINKADDR;
        frame[icmp + 26..icmp + 32].copy_from_slice(&[2, 0x77, 0, 0, 0, 9]);
        assert_eq!(
            neighbor_reply_mac(&frame, IpAddr::V6(target)),
            Some(Mac([2, 0x77, 0, 0, 0, 9]))
        );
        assert_eq!(
            neighbor_reply_mac(&frame, "fd00:77::51".parse().unwrap()),
            None
        );
    }

    #[test]
    fn vrrp_v2_advert_over_ipv4_is_read_with_its_interval_in_seconds() {
        // Captured shape of a keepalived v2 advert: VRID 51, priority 150, PASS auth, 1 s.
        let mut ip = vec![0x45, 0xc0, 0, 40, 0, 0, 0, 0, 255, IPPROTO_VRRP, 0, 0];
        ip.extend_from_slice(&[192, 168, 77, 11, 224, 0, 0, 18]);
        ip.extend_from_slice(&[0x21, 51, 150, 1, 1, 1, 0, 0, 192, 168, 77, 50]);
        let frame = ethernet(Mac([1, 0, 0x5e, 0, 0, 0x12]), NODE, ETHERTYPE_IPV4, &ip);
        let advert = vrrp_advert(&frame).unwrap();
        assert_eq!(advert.version, 2);
        assert_eq!(advert.vrid, 51);
        assert_eq!(advert.priority, 150);
        assert_eq!(advert.ttl, 255);
        assert_eq!(advert.interval, Duration::from_secs(1));
        assert_eq!(advert.source.to_string(), "192.168.77.11");
        assert_eq!(advert.source_mac, NODE);
    }

    #[test]
    fn vrrp_v3_advert_over_ipv6_is_read_with_its_interval_in_centiseconds() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 24, IPPROTO_VRRP, 255];
        ip.extend_from_slice(&"fe80::77:ff:fe00:1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"ff02::12".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&[0x31, 7, 100, 1, 0x00, 0x01, 0, 0]);
        ip.extend_from_slice(&"fd00:77::50".parse::<Ipv6Addr>().unwrap().octets());
        let frame = ethernet(Mac([0x33, 0x33, 0, 0, 0, 0x12]), NODE, ETHERTYPE_IPV6, &ip);
        let advert = vrrp_advert(&frame).unwrap();
        assert_eq!(advert.version, 3);
        assert_eq!(advert.vrid, 7);
        assert_eq!(advert.priority, 100);
        assert_eq!(advert.interval, Duration::from_millis(10));
        assert_eq!(advert.destination.to_string(), "ff02::12");
    }

    #[test]
    fn frames_that_are_not_vrrp_are_not_adverts() {
        let frame = arp_request(
            CLIENT,
            "192.168.77.100".parse().unwrap(),
            "192.168.77.50".parse().unwrap(),
        );
        assert_eq!(vrrp_advert(&frame), None);
        assert_eq!(vrrp_advert(&frame[..10]), None);
    }
}
