//! The real keepalived 2.2.7 adverts shared by the `packet_*` tests.
//!
//! Each constant is the IP packet (hex) of the first frame in `tests/vectors/<name>.pcap`, captured
//! by `tests/vectors/capture.sh`: keepalived alone in a network namespace, MASTER after
//! Master_Down_Interval, tcpdump on the other end of its veth. `packet_decode_command.rs` checks
//! that the pcaps still hold these bytes. A re-capture keeps the VRRP bytes but may change IP
//! header fields the kernel picks (IPv4 identification, IPv6 flow label); update the constants
//! from `tcpdump -r FILE -n -x -c 1` if that test then fails.
#![allow(dead_code, clippy::unwrap_used)]

/// v2, VRID 10, priority 150, 1 s, no authentication, VIP 192.0.2.10 (`v2_none.pcap`).
pub const V2_NONE: &str = "45c0002800010000ff701891c0000201e0000012\
                           210a9601000186e8c000020a0000000000000000";
/// v2, VRID 11, priority 100, 2 s, PASS "secret12", VIP 198.51.100.11 (`v2_pass.pcap`).
pub const V2_PASS: &str = "45c0002800010000ff70b05dc6336401e0000012\
                           210b64010102e233c633640b7365637265743132";
/// v3 over IPv4, VRID 12, priority 200, 50 cs, VIP 203.0.113.12 (`v3_ipv4.pcap`).
pub const V3_IPV4: &str = "45c0002000010000ff709e98cb007101e0000012\
                           310cc8010032ae21cb00710c";
/// v3 over IPv4, VRID 13, priority 120, 100 cs, five VIPs (`v3_ipv4_multi.pcap`).
pub const V3_IPV4_MULTI: &str = "45c0003000010000ff70d07c0a0d0001e0000012\
                                 310d7805006489680a0d000a0a0d000b0a0d000c0a0d0101ac100d0d";
/// v3 over IPv6, VRID 14, priority 110, 100 cs, VIPs fd00:14::14 and ::15 (`v3_ipv6.pcap`).
pub const V3_IPV6: &str = "6c0330fb002870fffe8000000000000000005efffe100001ff020000000000000000000000000012\
                           310e6e0200640af9fd000014000000000000000000000014fd000014000000000000000000000015";

/// Every vector with the name of its pcap (without `.pcap`).
pub const ALL: [(&str, &str); 5] = [
    ("v2_none", V2_NONE),
    ("v2_pass", V2_PASS),
    ("v3_ipv4", V3_IPV4),
    ("v3_ipv4_multi", V3_IPV4_MULTI),
    ("v3_ipv6", V3_IPV6),
];

/// The bytes of a vector (or any hex text; whitespace is ignored).
pub fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.split_whitespace().collect::<String>()).unwrap()
}
