//! VRRP advertisement codec (RFC 3768 v2, RFC 5798 v3; IPv4 and IPv6): pure encode/decode, the
//! decode errors and the drop reasons they map to. No I/O.

mod ip;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use ip::{IpPacket, verify_ttl};

use super::protocol::{Family, IPPROTO_VRRP, Version};
use crate::checksum::{Sum, add_pseudo_header};
/// The largest v3 Max Advertise Interval (12 bits of centiseconds).
pub const V3_MAX_ADVERT_INTERVAL_CS: u16 = 0x0fff;
/// The largest v2 Advertisement Interval (8 bits of seconds), in centiseconds.
pub const V2_MAX_ADVERT_INTERVAL_CS: u16 = 255 * 100;

/// Length of the fixed part of every VRRP message (both versions).
const FIXED_HEADER_LEN: usize = 8;
/// Length of the v2 Authentication Data trailer (always present in v2).
const V2_AUTH_DATA_LEN: usize = 8;
/// The only VRRP packet type (RFC 3768 §5.3.2, RFC 5798 §5.2.2).
const TYPE_ADVERTISEMENT: u8 = 1;
/// v2 Auth Type values (RFC 2338 §5.3.6; RFC 3768 reserves 1 and 2, keepalived still speaks 1).
const AUTH_TYPE_NONE: u8 = 0;
const AUTH_TYPE_SIMPLE_TEXT_PASSWORD: u8 = 1;
const AUTH_TYPE_IP_AUTHENTICATION_HEADER: u8 = 2;

/// VRRPv2 authentication (RFC 2338 §5.3.6, kept by keepalived). v3 has none.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// Auth Type 0; the Authentication Data field is sent as zeros and ignored on receipt.
    None,
    /// Auth Type 1: a password of up to 8 bytes, zero-padded, sent in clear text.
    SimpleTextPassword([u8; 8]),
}

impl Authentication {
    /// A simple-text password authentication from a password of at most 8 bytes (zero-padded,
    /// like keepalived).
    pub fn simple_text_password(password: &[u8]) -> Result<Self, EncodeError> {
        if password.len() > V2_AUTH_DATA_LEN {
            return Err(EncodeError::PasswordTooLong(password.len()));
        }
        let mut data = [0; V2_AUTH_DATA_LEN];
        data[..password.len()].copy_from_slice(password);
        Ok(Self::SimpleTextPassword(data))
    }

    /// The value of the v2 Auth Type field.
    pub fn auth_type(&self) -> u8 {
        match self {
            Self::None => AUTH_TYPE_NONE,
            Self::SimpleTextPassword(_) => AUTH_TYPE_SIMPLE_TEXT_PASSWORD,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SimpleTextPassword(_) => "simple_text_password",
        }
    }
}

/// Does not print the password.
impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::SimpleTextPassword(_) => f.write_str("SimpleTextPassword(<redacted>)"),
        }
    }
}

/// A VRRP advertisement, either version.
///
/// VRRPv2 (RFC 3768 §5.1), IPv4 only:
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-------+-------+---------------+---------------+---------------+
/// |Version| Type  |    VRID       |   Priority    | Count IP Addrs|
/// +-------+-------+---------------+---------------+---------------+
/// |  Auth Type    | Adver Int (s) |           Checksum            |
/// +---------------+---------------+-------------------------------+
/// |                      IPv4 Address (1)                         |
/// +---------------------------------------------------------------+
/// :                            ...                                :
/// +---------------------------------------------------------------+
/// |                      IPv4 Address (n)                         |
/// +---------------------------------------------------------------+
/// |                  Authentication Data (1)                      |
/// +---------------------------------------------------------------+
/// |                  Authentication Data (2)                      |
/// +---------------------------------------------------------------+
/// ```
///
/// The v2 checksum covers the VRRP message only.
///
/// VRRPv3 (RFC 5798 §5.1), IPv4 or IPv6:
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-------+-------+---------------+---------------+---------------+
/// |Version| Type  |    VRID       |   Priority    |Count IPvX Addr|
/// +-------+-------+---------------+---------------+---------------+
/// | Rsvd  |  Max Adver Int (cs)   |           Checksum            |
/// +-------+-----------------------+-------------------------------+
/// |                                                               |
/// +                 IPvX Address(es) (4 or 16 bytes each)         +
/// |                                                               |
/// +---------------------------------------------------------------+
/// ```
///
/// An advertisement's fixed fields, everything but the virtual addresses: what the receive path
/// checks and hands on (see [`Advertisement::decode_header`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertHeader {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    pub max_advert_interval_cs: u16,
    pub auth: Authentication,
}

/// The v3 checksum also covers the IPv4 or IPv6 pseudo-header (RFC 5798 §5.2.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub version: Version,
    /// Virtual Router Identifier, 1..=255.
    pub vrid: u8,
    /// 0 (master resigning) ..= 255 (address owner).
    pub priority: u8,
    /// The advertisement interval in centiseconds (v2: seconds × 100 on the wire).
    pub max_advert_interval_cs: u16,
    /// The virtual addresses, all of the router's family.
    pub addresses: Vec<IpAddr>,
    /// v2 only; always [`Authentication::None`] for v3.
    pub auth: Authentication,
}

/// What the checksum of a decoded message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumVerdict {
    /// The received checksum matches.
    Valid { received: u16 },
    /// The received checksum does not match the one computed.
    Invalid { received: u16, computed: u16 },
    /// A v3 message decoded without its IP source and destination: the pseudo-header, and so the
    /// checksum, cannot be computed.
    Unverified { received: u16 },
}

impl ChecksumVerdict {
    /// `Some(valid)` when the checksum could be checked.
    pub fn is_valid(&self) -> Option<bool> {
        match self {
            Self::Valid { .. } => Some(true),
            Self::Invalid { .. } => Some(false),
            Self::Unverified { .. } => None,
        }
    }

    /// The checksum field as received.
    pub fn received(&self) -> u16 {
        match *self {
            Self::Valid { received }
            | Self::Invalid { received, .. }
            | Self::Unverified { received } => received,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Valid { .. } => "valid",
            Self::Invalid { .. } => "invalid",
            Self::Unverified { .. } => "unverified",
        }
    }
}

/// Why an advertisement could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("VRID 0 is not a valid virtual router id")]
    ZeroVrid,
    #[error("VRRPv2 runs over IPv4 only")]
    V2OverIpv6,
    #[error("source {src} and destination {dst} are of different address families")]
    FamilyMismatch { src: IpAddr, dst: IpAddr },
    #[error("virtual address {address} is not of the router's family ({family})", family = family.as_str())]
    AddressFamily { address: IpAddr, family: Family },
    #[error("{0} virtual addresses, at most 255 fit in an advertisement")]
    TooManyAddresses(usize),
    #[error("advertisement interval is 0")]
    ZeroInterval,
    #[error("VRRPv2 advertisement interval {0} cs is not a whole number of seconds")]
    IntervalNotWholeSeconds(u16),
    #[error("advertisement interval {interval_cs} cs exceeds the maximum {max_cs} cs")]
    IntervalTooLong { interval_cs: u16, max_cs: u16 },
    #[error("VRRPv3 has no authentication")]
    AuthenticationOnV3,
    #[error("simple-text password of {0} bytes, at most 8 fit")]
    PasswordTooLong(usize),
}

/// Why a received packet is not a valid VRRP advertisement, one variant per way it can be bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("VRRP message too short: {len} bytes, need at least {min}")]
    TooShort { len: usize, min: usize },
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    #[error("VRRPv2 runs over IPv4 only")]
    V2OverIpv6,
    #[error("source {src} and destination {dst} are of different address families")]
    FamilyMismatch { src: IpAddr, dst: IpAddr },
    #[error(
        "VRRP message of {len} bytes does not match its address count {count} (expected {expected} bytes)"
    )]
    LengthMismatch {
        count: u8,
        len: usize,
        expected: usize,
    },
    #[error("checksum mismatch: received {received:#06x}, computed {computed:#06x}")]
    Checksum { received: u16, computed: u16 },
    #[error("unknown VRRP packet type {0} (only 1, ADVERTISEMENT, exists)")]
    Type(u8),
    #[error("VRID 0 is not a valid virtual router id")]
    ZeroVrid,
    #[error("authentication type 2 (IP Authentication Header) is not supported")]
    AuthenticationHeader,
    #[error("unknown VRRPv2 authentication type {0}")]
    UnknownAuthType(u8),
    #[error("advertisement interval is 0")]
    ZeroInterval,
    #[error("IP packet too short: {len} bytes, need at least {min}")]
    IpTooShort { len: usize, min: usize },
    #[error("IP version {0} is neither 4 nor 6")]
    IpVersion(u8),
    #[error("IPv4 header length {0} bytes is invalid")]
    Ipv4HeaderLength(usize),
    #[error("IP packet declares {declared} bytes but {available} are available")]
    IpTotalLength { declared: usize, available: usize },
    #[error("IPv6 extension header at byte {offset} runs past the end of the packet")]
    Ipv6ExtensionHeaderTruncated { offset: usize },
    #[error("IP packet is a fragment")]
    Fragment,
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    #[error("TTL / hop limit {0}, VRRP requires 255")]
    Ttl(u8),
}

/// Why the agent dropped a received VRRP packet; the label of the drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// TTL / hop limit not 255.
    Ttl,
    /// Checksum mismatch.
    Checksum,
    /// VRRP version not understood, or not the instance's version.
    Version,
    /// Packet type not ADVERTISEMENT.
    Type,
    /// VRID 0, or no instance with this VRID on the interface.
    Vrid,
    /// Unknown or unsupported auth type, or the password does not match.
    Auth,
    /// Interval 0, or (v2) not the configured interval.
    Interval,
    /// Too short, or the length does not match the address count.
    Length,
    /// Sent by this node itself, or by a source that is not a configured peer.
    Source,
    /// Address family mismatch (v2 over IPv6, mixed source and destination).
    Family,
    /// Not a usable IP packet (bad IP header, fragment, not protocol 112).
    Malformed,
    /// Dropped by the kernel before the agent read it: the socket's receive queue was full.
    Overflow,
}

impl DropReason {
    /// Every reason, for pre-registering counters.
    pub const ALL: [Self; 12] = [
        Self::Ttl,
        Self::Checksum,
        Self::Version,
        Self::Type,
        Self::Vrid,
        Self::Auth,
        Self::Interval,
        Self::Length,
        Self::Source,
        Self::Family,
        Self::Malformed,
        Self::Overflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ttl => "ttl",
            Self::Checksum => "checksum",
            Self::Version => "version",
            Self::Type => "type",
            Self::Vrid => "vrid",
            Self::Auth => "auth",
            Self::Interval => "interval",
            Self::Length => "length",
            Self::Source => "source",
            Self::Family => "family",
            Self::Malformed => "malformed",
            Self::Overflow => "overflow",
        }
    }
}

impl DecodeError {
    /// The drop counter this error is counted under.
    pub fn drop_reason(&self) -> DropReason {
        match self {
            Self::TooShort { .. }
            | Self::LengthMismatch { .. }
            | Self::IpTooShort { .. }
            | Self::Ipv4HeaderLength(_)
            | Self::IpTotalLength { .. }
            | Self::Ipv6ExtensionHeaderTruncated { .. } => DropReason::Length,
            Self::Version(_) => DropReason::Version,
            Self::V2OverIpv6 | Self::FamilyMismatch { .. } => DropReason::Family,
            Self::Checksum { .. } => DropReason::Checksum,
            Self::Type(_) => DropReason::Type,
            Self::ZeroVrid => DropReason::Vrid,
            Self::AuthenticationHeader | Self::UnknownAuthType(_) => DropReason::Auth,
            Self::ZeroInterval => DropReason::Interval,
            Self::IpVersion(_) | Self::Fragment | Self::NotVrrp(_) => DropReason::Malformed,
            Self::Ttl(_) => DropReason::Ttl,
        }
    }
}

impl Advertisement {
    /// The length of this advertisement on the wire.
    pub fn encoded_len(&self, family: Family) -> usize {
        let auth = match self.version {
            Version::V2 => V2_AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        FIXED_HEADER_LEN + self.addresses.len() * family.address_len() + auth
    }

    /// Encodes the VRRP message (no IP header) sent from `src` to `dst`, checksum included.
    ///
    /// `src` and `dst` give the family and, for v3, the pseudo-header.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, EncodeError> {
        let family = Family::of(src);
        if Family::of(dst) != family {
            return Err(EncodeError::FamilyMismatch { src, dst });
        }
        self.validate(family)?;

        let mut out = Vec::with_capacity(self.encoded_len(family));
        out.push((self.version.number() << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(self.addresses.len() as u8);
        match self.version {
            Version::V2 => {
                out.push(self.auth.auth_type());
                out.push((self.max_advert_interval_cs / 100) as u8);
            }
            Version::V3 => out.extend_from_slice(&self.max_advert_interval_cs.to_be_bytes()),
        }
        out.extend_from_slice(&[0, 0]);
        for address in &self.addresses {
            match address {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        let pseudo = match self.version {
            Version::V2 => {
                match self.auth {
                    Authentication::None => out.extend_from_slice(&[0; V2_AUTH_DATA_LEN]),
                    Authentication::SimpleTextPassword(data) => out.extend_from_slice(&data),
                }
                None
            }
            Version::V3 => Some((src, dst)),
        };
        let sum = vrrp_checksum(&out, pseudo);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(out)
    }

    fn validate(&self, family: Family) -> Result<(), EncodeError> {
        if self.vrid == 0 {
            return Err(EncodeError::ZeroVrid);
        }
        if self.version == Version::V2 && family == Family::Ipv6 {
            return Err(EncodeError::V2OverIpv6);
        }
        if self.addresses.len() > usize::from(u8::MAX) {
            return Err(EncodeError::TooManyAddresses(self.addresses.len()));
        }
        if let Some(&address) = self.addresses.iter().find(|a| Family::of(**a) != family) {
            return Err(EncodeError::AddressFamily { address, family });
        }
        let interval = self.max_advert_interval_cs;
        if interval == 0 {
            return Err(EncodeError::ZeroInterval);
        }
        match self.version {
            Version::V2 => {
                if !interval.is_multiple_of(100) {
                    return Err(EncodeError::IntervalNotWholeSeconds(interval));
                }
                if interval > V2_MAX_ADVERT_INTERVAL_CS {
                    return Err(EncodeError::IntervalTooLong {
                        interval_cs: interval,
                        max_cs: V2_MAX_ADVERT_INTERVAL_CS,
                    });
                }
            }
            Version::V3 => {
                if interval > V3_MAX_ADVERT_INTERVAL_CS {
                    return Err(EncodeError::IntervalTooLong {
                        interval_cs: interval,
                        max_cs: V3_MAX_ADVERT_INTERVAL_CS,
                    });
                }
                if self.auth != Authentication::None {
                    return Err(EncodeError::AuthenticationOnV3);
                }
            }
        }
        Ok(())
    }

    /// Decodes a VRRP message received from `src` for `dst`, verifying its checksum.
    pub fn decode(payload: &[u8], src: IpAddr, dst: IpAddr) -> Result<Self, DecodeError> {
        check_families(src, dst)?;
        let family = Some(Family::of(src));
        decode_message(payload, family, Some((src, dst)), ChecksumPolicy::Enforce)
            .map(|(advertisement, _)| advertisement)
    }

    /// [`Advertisement::decode`] without the virtual addresses (the receive path does not need
    /// them): the same checks, and nothing allocated.
    pub fn decode_header(
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<AdvertHeader, DecodeError> {
        check_families(src, dst)?;
        let family = Some(Family::of(src));
        decode_checked(payload, family, Some((src, dst)), ChecksumPolicy::Enforce)
            .map(|(header, _, _)| header)
    }

    /// Like [`Advertisement::decode`], but a checksum mismatch is reported in the verdict instead
    /// of failing the decode (for diagnostics). Every other check still applies.
    pub fn decode_lenient(
        payload: &[u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(Self, ChecksumVerdict), DecodeError> {
        check_families(src, dst)?;
        let family = Some(Family::of(src));
        decode_message(payload, family, Some((src, dst)), ChecksumPolicy::Report)
    }

    /// Decodes a bare VRRP message whose IP header is unknown (for diagnostics).
    ///
    /// The family comes from the version (v2: IPv4) or, for v3, from the length and address count.
    /// A v2 checksum is verified; a v3 checksum covers the unknown pseudo-header, so its verdict
    /// is [`ChecksumVerdict::Unverified`]. A checksum mismatch does not fail the decode.
    pub fn decode_bare(payload: &[u8]) -> Result<(Self, ChecksumVerdict), DecodeError> {
        decode_message(payload, None, None, ChecksumPolicy::Report)
    }
}

fn check_families(src: IpAddr, dst: IpAddr) -> Result<(), DecodeError> {
    if Family::of(src) == Family::of(dst) {
        Ok(())
    } else {
        Err(DecodeError::FamilyMismatch { src, dst })
    }
}

/// Whether a checksum mismatch fails the decode or is only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChecksumPolicy {
    Enforce,
    Report,
}

/// The checks of RFC 5798 §7.1 that need no configuration, in its order: version, complete
/// message, checksum; then type, VRID, authentication type and interval.
fn decode_message(
    payload: &[u8],
    family: Option<Family>,
    pseudo: Option<(IpAddr, IpAddr)>,
    policy: ChecksumPolicy,
) -> Result<(Advertisement, ChecksumVerdict), DecodeError> {
    let (header, family, verdict) = decode_checked(payload, family, pseudo, policy)?;
    let addresses_end = FIXED_HEADER_LEN + usize::from(payload[3]) * family.address_len();
    let addresses = payload[FIXED_HEADER_LEN..addresses_end]
        .chunks_exact(family.address_len())
        .map(|chunk| match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3])),
            Family::Ipv6 => {
                let mut octets = [0; 16];
                octets.copy_from_slice(chunk);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
        })
        .collect();
    Ok((
        Advertisement {
            version: header.version,
            vrid: header.vrid,
            priority: header.priority,
            max_advert_interval_cs: header.max_advert_interval_cs,
            addresses,
            auth: header.auth,
        },
        verdict,
    ))
}

/// Every check of [`decode_message`], without collecting the addresses: the header, the
/// message's family and the checksum verdict. Allocates nothing.
fn decode_checked(
    payload: &[u8],
    family: Option<Family>,
    pseudo: Option<(IpAddr, IpAddr)>,
    policy: ChecksumPolicy,
) -> Result<(AdvertHeader, Family, ChecksumVerdict), DecodeError> {
    let Some(fixed) = payload.first_chunk::<FIXED_HEADER_LEN>() else {
        return Err(DecodeError::TooShort {
            len: payload.len(),
            min: FIXED_HEADER_LEN,
        });
    };
    let version = match fixed[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        other => return Err(DecodeError::Version(other)),
    };
    let count = fixed[3];
    let (family, trailer) = match version {
        Version::V2 => {
            if family == Some(Family::Ipv6) {
                return Err(DecodeError::V2OverIpv6);
            }
            (Family::Ipv4, V2_AUTH_DATA_LEN)
        }
        Version::V3 => (
            family.unwrap_or_else(|| infer_v3_family(payload.len(), count)),
            0,
        ),
    };
    let expected = FIXED_HEADER_LEN + usize::from(count) * family.address_len() + trailer;
    if payload.len() != expected {
        return Err(DecodeError::LengthMismatch {
            count,
            len: payload.len(),
            expected,
        });
    }

    let received = u16::from_be_bytes([fixed[6], fixed[7]]);
    let verdict = match (version, pseudo) {
        (Version::V3, None) => ChecksumVerdict::Unverified { received },
        (Version::V2, _) | (Version::V3, Some(_)) => {
            let computed =
                vrrp_checksum(payload, if version == Version::V3 { pseudo } else { None });
            if computed == received {
                ChecksumVerdict::Valid { received }
            } else {
                ChecksumVerdict::Invalid { received, computed }
            }
        }
    };
    if let (ChecksumVerdict::Invalid { received, computed }, ChecksumPolicy::Enforce) =
        (verdict, policy)
    {
        return Err(DecodeError::Checksum { received, computed });
    }

    let packet_type = fixed[0] & 0x0f;
    if packet_type != TYPE_ADVERTISEMENT {
        return Err(DecodeError::Type(packet_type));
    }
    let vrid = fixed[1];
    if vrid == 0 {
        return Err(DecodeError::ZeroVrid);
    }
    let addresses_end = FIXED_HEADER_LEN + usize::from(count) * family.address_len();
    let (auth, max_advert_interval_cs) = match version {
        Version::V2 => {
            let auth = match fixed[4] {
                AUTH_TYPE_NONE => Authentication::None,
                AUTH_TYPE_SIMPLE_TEXT_PASSWORD => {
                    let mut data = [0; V2_AUTH_DATA_LEN];
                    data.copy_from_slice(&payload[addresses_end..]);
                    Authentication::SimpleTextPassword(data)
                }
                AUTH_TYPE_IP_AUTHENTICATION_HEADER => {
                    return Err(DecodeError::AuthenticationHeader);
                }
                other => return Err(DecodeError::UnknownAuthType(other)),
            };
            (auth, u16::from(fixed[5]) * 100)
        }
        Version::V3 => (
            Authentication::None,
            u16::from_be_bytes([fixed[4], fixed[5]]) & V3_MAX_ADVERT_INTERVAL_CS,
        ),
    };
    if max_advert_interval_cs == 0 {
        return Err(DecodeError::ZeroInterval);
    }
    Ok((
        AdvertHeader {
            version,
            vrid,
            priority: fixed[2],
            max_advert_interval_cs,
            auth,
        },
        family,
        verdict,
    ))
}

/// The family of a bare v3 message: IPv6 when the addresses fill exactly `count` × 16 bytes,
/// otherwise IPv4 (whose length check then reports any mismatch).
fn infer_v3_family(len: usize, count: u8) -> Family {
    let addresses_len = len.saturating_sub(FIXED_HEADER_LEN);
    if count > 0 && addresses_len == usize::from(count) * 16 {
        Family::Ipv6
    } else {
        Family::Ipv4
    }
}

/// The checksum of a VRRP message (RFC 5798 §5.2.8), computed as if its checksum field at bytes
/// 6..8 were zero; over the pseudo-header too when `pseudo` is given (v3).
fn vrrp_checksum(message: &[u8], pseudo: Option<(IpAddr, IpAddr)>) -> u16 {
    let mut sum = Sum::default();
    if let Some((source, destination)) = pseudo {
        add_pseudo_header(&mut sum, source, destination, IPPROTO_VRRP, message.len());
    }
    sum.add(message);
    // The checksum field (bytes 6 and 7) counts as zero.
    if let [_, _, _, _, _, _, high, low, ..] = *message {
        sum.remove(u16::from_be_bytes([high, low]));
    }
    sum.finish()
}
