//! The `decode` command: VRRP packets from hex text or a pcap file, one JSON object per line.
//!
//! Output records never fail: every packet becomes either a [`PacketRecord`] or an
//! [`ErrorRecord`] naming the reason.

pub mod pcap;

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::vrrp::packet::{Advertisement, Authentication, ChecksumVerdict, DecodeError, IpPacket};
use crate::vrrp::{IPPROTO_VRRP, Version};

/// A decoded VRRP packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketRecord {
    /// Position of the frame in the pcap file, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Capture time (RFC 3339, UTC), for pcap input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// IP source, destination and TTL / hop limit, when the input was a whole IP packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    pub version: u8,
    /// The VRRP packet type; 1 (ADVERTISEMENT) is the only one that decodes.
    #[serde(rename = "type")]
    pub packet_type: u8,
    pub vrid: u8,
    pub priority: u8,
    pub count: usize,
    pub advert_interval_cs: u16,
    /// `true`/`false`, or `null` for a bare v3 message (no pseudo-header to check against).
    pub checksum_valid: Option<bool>,
    /// The received checksum, `0x`-prefixed hex.
    pub checksum: String,
    /// v2 only: `none` or `simple_text_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<&'static str>,
    /// v2 simple-text password only: the 8 bytes of Authentication Data, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_data: Option<String>,
    pub addresses: Vec<IpAddr>,
}

/// A packet (or file) that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The drop reason for a bad VRRP packet (`checksum`, `length`, ...), or `hex`, `pcap`, `io`.
    pub error: &'static str,
    /// What exactly was wrong.
    pub message: String,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Packet(PacketRecord),
    Error(ErrorRecord),
}

impl Record {
    fn error(error: &'static str, message: String) -> Self {
        Self::Error(ErrorRecord {
            index: None,
            timestamp: None,
            error,
            message,
        })
    }

    fn decode_error(error: &DecodeError) -> Self {
        Self::error(error.drop_reason().as_str(), error.to_string())
    }

    fn with_position(mut self, index: usize, timestamp: Option<String>) -> Self {
        match &mut self {
            Self::Packet(p) => {
                p.index = Some(index);
                p.timestamp = timestamp;
            }
            Self::Error(e) => {
                e.index = Some(index);
                e.timestamp = timestamp;
            }
        }
        self
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error(_))
    }
}

/// What happened to the frames of a pcap file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Frames read.
    pub frames: usize,
    /// VRRP packets decoded.
    pub decoded: usize,
    /// Error lines written (bad VRRP packets, a truncated file).
    pub errors: usize,
    /// Frames skipped because they carry no VRRP (other protocols, ARP, ...).
    pub skipped: usize,
}

fn packet_record(
    advertisement: &Advertisement,
    verdict: ChecksumVerdict,
    ip: Option<&IpPacket<'_>>,
) -> PacketRecord {
    let (auth_type, auth_data) = match (advertisement.version, advertisement.auth) {
        (Version::V3, _) => (None, None),
        (Version::V2, Authentication::None) => (Some(advertisement.auth.as_str()), None),
        (Version::V2, Authentication::SimpleTextPassword(data)) => {
            (Some(advertisement.auth.as_str()), Some(hex::encode(data)))
        }
    };
    PacketRecord {
        index: None,
        timestamp: None,
        source: ip.map(|p| p.source),
        destination: ip.map(|p| p.destination),
        ttl: ip.map(|p| p.ttl),
        version: advertisement.version.number(),
        packet_type: 1,
        vrid: advertisement.vrid,
        priority: advertisement.priority,
        count: advertisement.addresses.len(),
        advert_interval_cs: advertisement.max_advert_interval_cs,
        checksum_valid: verdict.is_valid(),
        checksum: format!("{:#06x}", verdict.received()),
        auth_type,
        auth_data,
        addresses: advertisement.addresses.clone(),
    }
}

/// Decodes a whole IP packet carrying VRRP.
fn ip_record(ip: &IpPacket<'_>) -> Record {
    match ip.advertisement_lenient() {
        Ok((advertisement, verdict)) => {
            Record::Packet(packet_record(&advertisement, verdict, Some(ip)))
        }
        Err(error) => Record::decode_error(&error),
    }
}

/// Decodes bytes that are a whole IPv4 or IPv6 packet (by the version nibble) or else a bare
/// VRRP message. VRRP's own version nibble (2 or 3) never collides with IP's (4 or 6).
pub fn bytes_record(bytes: &[u8]) -> Record {
    match bytes.first().map(|b| b >> 4) {
        Some(4 | 6) => match IpPacket::decode(bytes) {
            Ok(ip) => ip_record(&ip),
            Err(error) => Record::decode_error(&error),
        },
        _ => match Advertisement::decode_bare(bytes) {
            Ok((advertisement, verdict)) => {
                Record::Packet(packet_record(&advertisement, verdict, None))
            }
            Err(error) => Record::decode_error(&error),
        },
    }
}

/// Parses hex text; whitespace, `:`, `-` and a leading `0x` are ignored.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let digits: String = trimmed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '-')
        .collect();
    hex::decode(&digits).map_err(|e| format!("invalid hex input: {e}"))
}

/// `decode --hex TEXT`: exactly one record.
pub fn hex_record(text: &str) -> Record {
    match parse_hex(text) {
        Ok(bytes) => bytes_record(&bytes),
        Err(message) => Record::error("hex", message),
    }
}

/// `decode --pcap FILE`: one record per VRRP frame (decoded or not), non-VRRP frames skipped.
pub fn pcap_records(file: &[u8]) -> (Vec<Record>, Summary) {
    let mut summary = Summary::default();
    let mut records = Vec::new();
    let pcap = match pcap::Pcap::parse(file) {
        Ok(pcap) => pcap,
        Err(error) => {
            summary.errors = 1;
            return (vec![Record::error("pcap", error.to_string())], summary);
        }
    };
    let link_type = pcap.link_type();
    for (index, frame) in pcap.enumerate() {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                summary.errors += 1;
                records.push(Record::error("pcap", error.to_string()).with_position(index, None));
                break;
            }
        };
        summary.frames += 1;
        let timestamp = i32::try_from(frame.nanoseconds)
            .ok()
            .and_then(|ns| jiff::Timestamp::new(i64::from(frame.seconds), ns).ok())
            .map(|t| t.to_string());
        let record = match link_type.ip_packet(frame.data).map(IpPacket::decode) {
            None => None,
            Some(Ok(ip)) if ip.protocol != IPPROTO_VRRP => None,
            Some(Ok(ip)) => Some(ip_record(&ip)),
            Some(Err(error)) => Some(Record::decode_error(&error)),
        };
        match record {
            None => summary.skipped += 1,
            Some(record) => {
                if record.is_error() {
                    summary.errors += 1;
                } else {
                    summary.decoded += 1;
                }
                records.push(record.with_position(index, timestamp));
            }
        }
    }
    (records, summary)
}

/// Writes records as JSON lines.
pub fn write_records(out: &mut impl Write, records: &[Record]) -> io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `decode --pcap FILE` for a file on disk; an unreadable file is one `io` error record.
pub fn pcap_file_records(path: &std::path::Path) -> (Vec<Record>, Summary) {
    match std::fs::read(path) {
        Ok(file) => pcap_records(&file),
        Err(e) => (
            vec![Record::error(
                "io",
                format!("cannot read {}: {e}", path.display()),
            )],
            Summary {
                errors: 1,
                ..Summary::default()
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_separators_and_a_0x_prefix_are_ignored() {
        assert_eq!(
            parse_hex("0x21:0a 96-01\n"),
            Ok(vec![0x21, 0x0a, 0x96, 0x01])
        );
        assert_eq!(parse_hex("AbCd"), Ok(vec![0xab, 0xcd]));
    }

    #[test]
    fn odd_number_of_hex_digits_is_an_error() {
        assert!(parse_hex("210").unwrap_err().contains("invalid hex"));
    }

    #[test]
    fn empty_hex_is_a_too_short_vrrp_message() {
        assert_eq!(
            hex_record(""),
            Record::Error(ErrorRecord {
                index: None,
                timestamp: None,
                error: "length",
                message: "VRRP message too short: 0 bytes, need at least 8".to_string(),
            })
        );
    }
}
