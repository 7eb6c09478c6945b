//! Fuzz target: arbitrary bytes through every VRRP decoder entry point and the decode command's
//! pcap and hex paths. Seed it with the keepalived captures: `fuzz/seed.sh`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use kube_vrrp_agent::decode;
use kube_vrrp_agent::vrrp::packet::{Advertisement, IpPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ip) = IpPacket::decode(data) {
        let _ = ip.advertisement();
        let _ = ip.advertisement_lenient();
    }
    let v4 = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)));
    let v6 = (
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
    );
    for (src, dst) in [v4, v6] {
        let _ = Advertisement::decode_lenient(data, src, dst);
    }
    let _ = Advertisement::decode_bare(data);
    let _ = decode::bytes_record(data);
    let _ = decode::pcap_records(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode::hex_record(text);
    }
});
