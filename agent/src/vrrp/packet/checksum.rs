//! The Internet checksum (RFC 1071) and the VRRPv3 pseudo-headers it covers (RFC 5798 §5.2.8).

use std::net::IpAddr;

use super::IPPROTO_VRRP;

/// A running one's-complement sum of 16-bit big-endian words.
///
/// Every slice given to [`Sum::add`] except the last must have an even length, so that words stay
/// aligned; all callers here add fixed even-sized fields and then one message.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sum(u64);

impl Sum {
    pub(super) fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(2);
        for word in &mut words {
            self.0 += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.0 += u64::from(u16::from_be_bytes([*last, 0]));
        }
    }

    /// Folds the carries back in and returns the one's complement of the sum.
    pub(super) fn finish(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

/// Adds the IPv4 or IPv6 pseudo-header for a VRRP message of `vrrp_len` bytes.
///
/// The caller has already checked that `source` and `destination` are of one family.
pub(super) fn add_pseudo_header(
    sum: &mut Sum,
    source: IpAddr,
    destination: IpAddr,
    vrrp_len: usize,
) {
    match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&[0, IPPROTO_VRRP]);
            sum.add(&(vrrp_len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum.add(&s.octets());
            sum.add(&d.octets());
            sum.add(&(vrrp_len as u32).to_be_bytes());
            sum.add(&[0, 0, 0, IPPROTO_VRRP]);
        }
        // Mixed families have no pseudo-header; callers reject them before getting here.
        _ => {}
    }
}

/// The checksum of `message` (plus the pseudo-header when `pseudo` is given), computed as if the
/// message's checksum field at bytes 6..8 were zero.
pub(super) fn compute(message: &[u8], pseudo: Option<(IpAddr, IpAddr)>) -> u16 {
    let mut sum = Sum::default();
    if let Some((source, destination)) = pseudo {
        add_pseudo_header(&mut sum, source, destination, message.len());
    }
    sum.add(message.get(..6).unwrap_or(message));
    sum.add(message.get(8..).unwrap_or(&[]));
    sum.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_words_sum_to_the_documented_checksum() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (after folding); checksum 220d.
        let mut sum = Sum::default();
        sum.add(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(sum.finish(), 0x220d);
    }

    #[test]
    fn odd_length_input_is_padded_with_a_zero_byte() {
        let mut odd = Sum::default();
        odd.add(&[0x12, 0x34, 0x56]);
        let mut even = Sum::default();
        even.add(&[0x12, 0x34, 0x56, 0x00]);
        assert_eq!(odd.finish(), even.finish());
    }
}
