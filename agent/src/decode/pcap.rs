//! A minimal classic-pcap reader (either byte order, micro- or nanosecond timestamps) and the
//! link-layer headers VRRP captures come with: Ethernet, Linux cooked (SLL, SLL2) and raw IP.

/// Magic numbers of the classic pcap global header, as read in the file's own byte order.
const MAGIC_MICROSECONDS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// tcpdump's LINKTYPE_* values.
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

const ETHERNET_HEADER_LEN: usize = 14;
const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const VLAN_TAG_LEN: usize = 4;

/// What is wrong with a capture file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    #[error("file too short for a pcap header: {0} bytes")]
    TooShort(usize),
    #[error("not a classic pcap file (magic {0:#010x}; pcapng is not supported)")]
    Magic(u32),
    #[error("unsupported link type {0}")]
    LinkType(u32),
    #[error("record header truncated: {available} of 16 bytes")]
    RecordHeaderTruncated { available: usize },
    #[error("record data truncated: {declared} bytes declared, {available} in the file")]
    RecordDataTruncated { declared: usize, available: usize },
}

/// The link layer of every record in a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    /// Raw IP, version given by the first nibble (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6).
    RawIp,
}

impl LinkType {
    fn from_linktype(value: u32) -> Result<Self, PcapError> {
        match value {
            LINKTYPE_ETHERNET => Ok(Self::Ethernet),
            LINKTYPE_LINUX_SLL => Ok(Self::LinuxSll),
            LINKTYPE_LINUX_SLL2 => Ok(Self::LinuxSll2),
            LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Ok(Self::RawIp),
            other => Err(PcapError::LinkType(other)),
        }
    }

    /// The IP packet inside a frame of this link type, or `None` when the frame does not carry
    /// IPv4 or IPv6 (or is too short to tell).
    pub fn ip_packet(self, frame: &[u8]) -> Option<&[u8]> {
        let (ethertype, mut rest) = match self {
            Self::RawIp => return Some(frame),
            Self::Ethernet => (be16(frame, 12)?, frame.get(ETHERNET_HEADER_LEN..)?),
            Self::LinuxSll => (be16(frame, 14)?, frame.get(SLL_HEADER_LEN..)?),
            Self::LinuxSll2 => (be16(frame, 0)?, frame.get(SLL2_HEADER_LEN..)?),
        };
        let mut ethertype = ethertype;
        // VLAN tags (Ethernet only in practice): TCI, then the inner ethertype.
        while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = be16(rest, 2)?;
            rest = rest.get(VLAN_TAG_LEN..)?;
        }
        match ethertype {
            ETH_P_IP | ETH_P_IPV6 => Some(rest),
            _ => None,
        }
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}

/// One captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub seconds: u32,
    pub nanoseconds: u32,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub original_len: u32,
}

/// A classic pcap file held in memory; iterate it for its records.
#[derive(Debug, Clone)]
pub struct Pcap<'a> {
    link_type: LinkType,
    big_endian: bool,
    nanosecond_timestamps: bool,
    records: &'a [u8],
    failed: bool,
}

impl<'a> Pcap<'a> {
    /// Reads the global header.
    pub fn parse(file: &'a [u8]) -> Result<Self, PcapError> {
        let Some(header) = file.first_chunk::<GLOBAL_HEADER_LEN>() else {
            return Err(PcapError::TooShort(file.len()));
        };
        let magic_bytes = [header[0], header[1], header[2], header[3]];
        let (big_endian, nanosecond_timestamps) = match (
            u32::from_le_bytes(magic_bytes),
            u32::from_be_bytes(magic_bytes),
        ) {
            (MAGIC_MICROSECONDS, _) => (false, false),
            (MAGIC_NANOSECONDS, _) => (false, true),
            (_, MAGIC_MICROSECONDS) => (true, false),
            (_, MAGIC_NANOSECONDS) => (true, true),
            (_, other) => return Err(PcapError::Magic(other)),
        };
        let read = |at: usize| {
            let word = [header[at], header[at + 1], header[at + 2], header[at + 3]];
            if big_endian {
                u32::from_be_bytes(word)
            } else {
                u32::from_le_bytes(word)
            }
        };
        // The low 16 bits hold the link type; the upper bits may carry FCS information.
        let link_type = LinkType::from_linktype(read(20) & 0xffff)?;
        Ok(Self {
            link_type,
            big_endian,
            nanosecond_timestamps,
            records: &file[GLOBAL_HEADER_LEN..],
            failed: false,
        })
    }

    pub fn link_type(&self) -> LinkType {
        self.link_type
    }

    fn read_u32(&self, bytes: &[u8], at: usize) -> u32 {
        let word = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        }
    }

    fn next_record(&mut self) -> Result<Record<'a>, PcapError> {
        let Some(header) = self.records.first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(PcapError::RecordHeaderTruncated {
                available: self.records.len(),
            });
        };
        let seconds = self.read_u32(header, 0);
        let fraction = self.read_u32(header, 4);
        let captured_len = self.read_u32(header, 8) as usize;
        let original_len = self.read_u32(header, 12);
        let body = &self.records[RECORD_HEADER_LEN..];
        let Some(data) = body.get(..captured_len) else {
            return Err(PcapError::RecordDataTruncated {
                declared: captured_len,
                available: body.len(),
            });
        };
        self.records = &body[captured_len..];
        let nanoseconds = if self.nanosecond_timestamps {
            fraction
        } else {
            fraction.saturating_mul(1000)
        };
        Ok(Record {
            seconds,
            nanoseconds,
            data,
            original_len,
        })
    }
}

/// Yields each record, then stops; a truncated record is yielded once as an error and ends the
/// iteration.
impl<'a> Iterator for Pcap<'a> {
    type Item = Result<Record<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.records.is_empty() {
            return None;
        }
        let record = self.next_record();
        self.failed = record.is_err();
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(magic: [u8; 4], big_endian: bool, link_type: u32, records: &[(&[u8], u32)]) -> Vec<u8> {
        let word = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = magic.to_vec();
        out.extend_from_slice(
            &(if big_endian {
                [0, 2, 0, 4]
            } else {
                [2, 0, 4, 0]
            }),
        );
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&word(65_535));
        out.extend_from_slice(&word(link_type));
        for (data, fraction) in records {
            out.extend_from_slice(&word(1_700_000_000));
            out.extend_from_slice(&word(*fraction));
            out.extend_from_slice(&word(data.len() as u32));
            out.extend_from_slice(&word(data.len() as u32));
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn big_endian_nanosecond_file_is_read_with_its_own_byte_order() {
        let bytes = file(
            [0xa1, 0xb2, 0x3c, 0x4d],
            true,
            LINKTYPE_RAW,
            &[(&[0x45, 1, 2], 7)],
        );
        let pcap = Pcap::parse(&bytes).unwrap();
        assert_eq!(pcap.link_type(), LinkType::RawIp);
        let records: Vec<_> = pcap.collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].seconds, 1_700_000_000);
        assert_eq!(records[0].nanoseconds, 7);
        assert_eq!(records[0].data, &[0x45, 1, 2]);
    }

    #[test]
    fn little_endian_microsecond_timestamps_are_converted_to_nanoseconds() {
        let bytes = file(
            [0xd4, 0xc3, 0xb2, 0xa1],
            false,
            LINKTYPE_ETHERNET,
            &[(&[0; 14], 250)],
        );
        let record = Pcap::parse(&bytes).unwrap().next().unwrap().unwrap();
        assert_eq!(record.nanoseconds, 250_000);
    }

    #[test]
    fn pcapng_file_is_rejected_by_its_magic() {
        let mut bytes = vec![0x0a, 0x0d, 0x0d, 0x0a];
        bytes.resize(32, 0);
        assert!(matches!(Pcap::parse(&bytes), Err(PcapError::Magic(_))));
    }

    #[test]
    fn unknown_link_type_is_rejected() {
        let bytes = file([0xd4, 0xc3, 0xb2, 0xa1], false, 147, &[]);
        assert_eq!(Pcap::parse(&bytes).unwrap_err(), PcapError::LinkType(147));
    }

    #[test]
    fn truncated_record_is_reported_once_and_ends_iteration() {
        let mut bytes = file(
            [0xd4, 0xc3, 0xb2, 0xa1],
            false,
            LINKTYPE_RAW,
            &[(&[0x45; 30], 0)],
        );
        bytes.truncate(bytes.len() - 1);
        let results: Vec<_> = Pcap::parse(&bytes).unwrap().collect();
        assert_eq!(
            results,
            vec![Err(PcapError::RecordDataTruncated {
                declared: 30,
                available: 29
            })]
        );
    }

    #[test]
    fn ethernet_frame_with_a_vlan_tag_yields_the_inner_ip_packet() {
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, 0x45, 0x00]);
        assert_eq!(
            LinkType::Ethernet.ip_packet(&frame),
            Some(&[0x45, 0x00][..])
        );
    }

    #[test]
    fn arp_frame_carries_no_ip_packet() {
        let mut frame = vec![0; 12];
        frame.extend_from_slice(&[0x08, 0x06, 0, 1]);
        assert_eq!(LinkType::Ethernet.ip_packet(&frame), None);
        assert_eq!(LinkType::LinuxSll2.ip_packet(&[0x08]), None);
    }
}
