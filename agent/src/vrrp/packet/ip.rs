//! Whole IPv4 / IPv6 packets carrying VRRP: the IP header fields VRRP checks (source,
//! destination, TTL / hop limit) and the payload. IP header checksums are not verified (the
//! kernel already did for socket input).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Advertisement, ChecksumVerdict, DecodeError};
use crate::vrrp::protocol::{IPPROTO_VRRP, VRRP_TTL};

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
/// IPv4 flags/fragment offset: More Fragments bit and the 13-bit offset.
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
/// IPv6 extension headers skipped on the way to the upper-layer header.
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

/// An IPv4 or IPv6 packet, parsed down to its upper-layer payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 protocol or the IPv6 upper-layer next header (after extension headers).
    pub protocol: u8,
    /// True when the packet is a fragment (IPv4 MF/offset, IPv6 fragment header); its payload is
    /// then not a whole message.
    pub is_fragment: bool,
    /// The upper-layer payload, trimmed to the length the IP header declares.
    pub payload: &'a [u8],
}

impl<'a> IpPacket<'a> {
    /// Parses an IPv4 or IPv6 packet, chosen by the version nibble. Bytes after the declared
    /// length (link-layer padding) are ignored.
    pub fn decode(packet: &'a [u8]) -> Result<Self, DecodeError> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => Self::decode_ipv4(packet),
            Some(6) => Self::decode_ipv6(packet),
            Some(other) => Err(DecodeError::IpVersion(other)),
            None => Err(DecodeError::IpTooShort { len: 0, min: 1 }),
        }
    }

    /// Parses an IPv4 packet (as a raw IPv4 socket delivers it).
    pub fn decode_ipv4(packet: &'a [u8]) -> Result<Self, DecodeError> {
        let Some(header) = packet.first_chunk::<IPV4_MIN_HEADER_LEN>() else {
            return Err(DecodeError::IpTooShort {
                len: packet.len(),
                min: IPV4_MIN_HEADER_LEN,
            });
        };
        let version = header[0] >> 4;
        if version != 4 {
            return Err(DecodeError::IpVersion(version));
        }
        let header_len = usize::from(header[0] & 0x0f) * 4;
        if header_len < IPV4_MIN_HEADER_LEN {
            return Err(DecodeError::Ipv4HeaderLength(header_len));
        }
        let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if total_len < header_len {
            return Err(DecodeError::Ipv4HeaderLength(header_len));
        }
        if total_len > packet.len() {
            return Err(DecodeError::IpTotalLength {
                declared: total_len,
                available: packet.len(),
            });
        }
        let fragment = u16::from_be_bytes([header[6], header[7]]);
        Ok(Self {
            source: IpAddr::V4(Ipv4Addr::new(
                header[12], header[13], header[14], header[15],
            )),
            destination: IpAddr::V4(Ipv4Addr::new(
                header[16], header[17], header[18], header[19],
            )),
            ttl: header[8],
            protocol: header[9],
            is_fragment: fragment & (IPV4_MF | IPV4_OFFSET_MASK) != 0,
            payload: &packet[header_len..total_len],
        })
    }

    /// Parses an IPv6 packet, skipping hop-by-hop, routing and destination-options headers.
    pub fn decode_ipv6(packet: &'a [u8]) -> Result<Self, DecodeError> {
        let Some(header) = packet.first_chunk::<IPV6_HEADER_LEN>() else {
            return Err(DecodeError::IpTooShort {
                len: packet.len(),
                min: IPV6_HEADER_LEN,
            });
        };
        let version = header[0] >> 4;
        if version != 6 {
            return Err(DecodeError::IpVersion(version));
        }
        let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let total_len = IPV6_HEADER_LEN + payload_len;
        if total_len > packet.len() {
            return Err(DecodeError::IpTotalLength {
                declared: total_len,
                available: packet.len(),
            });
        }
        let mut octets = [0; 16];
        octets.copy_from_slice(&header[8..24]);
        let source = IpAddr::V6(Ipv6Addr::from(octets));
        octets.copy_from_slice(&header[24..40]);
        let destination = IpAddr::V6(Ipv6Addr::from(octets));

        let mut next_header = header[6];
        let mut rest = &packet[IPV6_HEADER_LEN..total_len];
        let mut is_fragment = false;
        loop {
            let extension_len = match next_header {
                IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                    rest.get(1).map(|&len| (usize::from(len) + 1) * 8)
                }
                IPPROTO_FRAGMENT => {
                    is_fragment = true;
                    Some(8)
                }
                _ => break,
            };
            let offset = total_len - rest.len();
            let (Some(&following), Some(after)) =
                (rest.first(), extension_len.and_then(|len| rest.get(len..)))
            else {
                return Err(DecodeError::Ipv6ExtensionHeaderTruncated { offset });
            };
            next_header = following;
            rest = after;
        }
        Ok(Self {
            source,
            destination,
            ttl: header[7],
            protocol: next_header,
            is_fragment,
            payload: rest,
        })
    }

    /// Checks that this is a whole VRRP packet (protocol 112, not a fragment).
    fn vrrp_payload(&self) -> Result<&'a [u8], DecodeError> {
        if self.protocol != IPPROTO_VRRP {
            return Err(DecodeError::NotVrrp(self.protocol));
        }
        if self.is_fragment {
            return Err(DecodeError::Fragment);
        }
        Ok(self.payload)
    }

    /// Decodes the VRRP advertisement this packet carries, verifying its checksum. The TTL is
    /// not checked here: see [`verify_ttl`].
    pub fn advertisement(&self) -> Result<Advertisement, DecodeError> {
        Advertisement::decode(self.vrrp_payload()?, self.source, self.destination)
    }

    /// Like [`IpPacket::advertisement`], reporting a checksum mismatch instead of failing.
    pub fn advertisement_lenient(&self) -> Result<(Advertisement, ChecksumVerdict), DecodeError> {
        Advertisement::decode_lenient(self.vrrp_payload()?, self.source, self.destination)
    }
}

/// RFC 5798 §7.1: a received VRRP packet must have TTL / hop limit 255.
pub fn verify_ttl(ttl: u8) -> Result<(), DecodeError> {
    if ttl == VRRP_TTL {
        Ok(())
    } else {
        Err(DecodeError::Ttl(ttl))
    }
}
