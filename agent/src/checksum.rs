//! The Internet checksum (RFC 1071) and the IPv4 / IPv6 pseudo-headers it covers for an
//! upper-layer message: the one implementation behind VRRPv3 adverts (RFC 5798 §5.2.8) and
//! ICMPv6 Neighbor Advertisements (RFC 4443 §2.3). Pure.

use std::net::IpAddr;

/// A running one's-complement sum of 16-bit big-endian words.
///
/// Every slice given to [`Sum::add`] except the last must have an even length, so that words stay
/// aligned; callers add fixed even-sized fields and then one message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sum(u64);

impl Sum {
    pub fn add(&mut self, bytes: &[u8]) {
        // Big-endian 32-bit words first, at half the additions: a 32-bit word is its high
        // 16-bit word times 2^16 plus its low one, and 2^16 is 1 modulo 2^16 - 1, the modulus
        // of the one's-complement sum, so [`Sum::finish`] folds them to the same checksum.
        let mut quads = bytes.chunks_exact(4);
        for quad in &mut quads {
            self.0 += u64::from(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]));
        }
        let mut words = quads.remainder().chunks_exact(2);
        for word in &mut words {
            self.0 += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            self.0 += u64::from(u16::from_be_bytes([*last, 0]));
        }
    }

    /// Adds a 32-bit word (two big-endian 16-bit words, as [`Sum::add`] takes them).
    fn add_word(&mut self, word: u32) {
        self.0 += u64::from(word);
    }

    /// Takes back a 16-bit word added at an even offset (a checksum field being skipped): the
    /// sum is kept unfolded, so this is exact.
    pub fn remove(&mut self, word: u16) {
        self.0 -= u64::from(word);
    }

    /// Folds the carries back in and returns the one's complement of the sum.
    pub fn finish(self) -> u16 {
        let mut sum = self.0;
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }
}

/// Adds the pseudo-header of an upper-layer message of `len` bytes with IP protocol / next
/// header `protocol`: RFC 768's layout for IPv4, RFC 8200 §8.1's for IPv6. Mixed families have
/// no pseudo-header and add nothing (callers reject them first).
pub fn add_pseudo_header(
    sum: &mut Sum,
    source: IpAddr,
    destination: IpAddr,
    protocol: u8,
    len: usize,
) {
    match (source, destination) {
        // Added as integers (an address's bits are its big-endian words), not byte slices: this
        // is on the path of every VRRPv3 advert.
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum.add_word(s.to_bits());
            sum.add_word(d.to_bits());
            sum.add_word(u32::from(protocol));
            sum.add_word(u32::from(len as u16));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            for bits in [s.to_bits(), d.to_bits()] {
                for quarter in 0..4 {
                    sum.add_word((bits >> (32 * quarter)) as u32);
                }
            }
            sum.add_word(len as u32);
            sum.add_word(u32::from(protocol));
        }
        _ => {}
    }
}

/// The checksum of `message` (whose own checksum field must be zero) under the pseudo-header
/// of `source`, `destination` and `protocol`.
pub fn with_pseudo_header(
    source: IpAddr,
    destination: IpAddr,
    protocol: u8,
    message: &[u8],
) -> u16 {
    let mut sum = Sum::default();
    add_pseudo_header(&mut sum, source, destination, protocol, message.len());
    sum.add(message);
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

    /// RFC 1071's sum, one 16-bit word at a time: what [`Sum`] must equal.
    fn sum_by_16_bit_words(pieces: &[&[u8]]) -> u16 {
        let mut sum: u64 = 0;
        for piece in pieces {
            for word in piece.chunks(2) {
                sum += u64::from(u16::from_be_bytes([word[0], *word.get(1).unwrap_or(&0)]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn summing_by_32_bit_words_gives_rfc_1071s_checksum_for_every_length_and_split() {
        // Bytes from a fixed linear congruential sequence, every length up to 70, split at
        // every even offset (every piece but the last even, as callers add them).
        let mut state: u32 = 12_345;
        let bytes: Vec<u8> = (0..70)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        for len in 0..=bytes.len() {
            let message = &bytes[..len];
            for split in (0..=len).step_by(2) {
                let (head, tail) = message.split_at(split);
                let mut sum = Sum::default();
                sum.add(head);
                sum.add(tail);
                assert_eq!(
                    sum.finish(),
                    sum_by_16_bit_words(&[head, tail]),
                    "length {len}, split at {split}"
                );
            }
        }
        let all_ones = [0xff; 64];
        let mut sum = Sum::default();
        sum.add(&all_ones);
        assert_eq!(sum.finish(), sum_by_16_bit_words(&[&all_ones]));
    }

    #[test]
    fn pseudo_headers_sum_as_rfc_768_and_rfc_8200_lay_them_out() {
        let v4: (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "224.0.0.18".parse().unwrap());
        let v6: (IpAddr, IpAddr) = (
            "fe80::1:ffff:8000:1".parse().unwrap(),
            "ff02::12".parse().unwrap(),
        );
        for ((source, destination), len) in [(v4, 20), (v4, 0xfffe), (v6, 40), (v6, 0x1_0002)] {
            let mut sum = Sum::default();
            add_pseudo_header(&mut sum, source, destination, 112, len);
            let layout: Vec<u8> = match (source, destination) {
                (IpAddr::V4(s), IpAddr::V4(d)) => [
                    &s.octets()[..],
                    &d.octets(),
                    &[0, 112],
                    &(len as u16).to_be_bytes(),
                ]
                .concat(),
                (IpAddr::V6(s), IpAddr::V6(d)) => [
                    &s.octets()[..],
                    &d.octets(),
                    &(len as u32).to_be_bytes(),
                    &[0, 0, 0, 112],
                ]
                .concat(),
                _ => unreachable!("one family each"),
            };
            assert_eq!(
                sum.finish(),
                sum_by_16_bit_words(&[&layout]),
                "{source} {len}"
            );
        }
    }

    #[test]
    fn a_removed_word_is_as_if_it_were_zero() {
        let mut with = Sum::default();
        with.add(&[0x45, 0x00, 0xab, 0xcd, 0xff, 0xff, 0x12, 0x34]);
        with.remove(0xabcd);
        with.remove(0x1234);
        let mut zeroed = Sum::default();
        zeroed.add(&[0x45, 0x00, 0, 0, 0xff, 0xff, 0, 0]);
        assert_eq!(with.finish(), zeroed.finish());
    }

    #[test]
    fn odd_length_input_is_padded_with_a_zero_byte() {
        let mut odd = Sum::default();
        odd.add(&[0x12, 0x34, 0x56]);
        let mut even = Sum::default();
        even.add(&[0x12, 0x34, 0x56, 0x00]);
        assert_eq!(odd.finish(), even.finish());
    }

    #[test]
    fn a_message_carrying_its_checksum_sums_to_zero_under_the_same_pseudo_header() {
        let (source, destination) = ("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap());
        let mut message = vec![136, 0, 0, 0, 0x20, 0, 0, 0, 1, 2, 3, 4];
        let checksum = with_pseudo_header(source, destination, 58, &message);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(with_pseudo_header(source, destination, 58, &message), 0);
    }
}
