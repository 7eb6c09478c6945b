//! `kube-vrrp-agent decode` end to end: the real keepalived pcaps, hex input in its accepted
//! spellings, synthetic captures with non-VRRP and broken frames, and bad files.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod vectors;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube_vrrp_agent::decode::pcap::{LinkType, Pcap};
use serde_json::{Value, json};
use vectors::{ALL, V2_NONE, V2_PASS, V3_IPV4, V3_IPV6, bytes};

fn vector_pcap(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{name}.pcap"))
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kube-vrrp-agent"))
        .args(args)
        .output()
        .unwrap()
}

/// Every stdout line parsed as JSON (a line that is not JSON fails the test).
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}")))
        .collect()
}

fn summary(output: &Output) -> Value {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let last = stderr
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary on stderr"));
    serde_json::from_str::<Value>(last).unwrap()["summary"].clone()
}

/// A temporary file removed on drop, even when the test fails.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!(
            "kube-vrrp-decode-{}-{tag}.pcap",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A little-endian microsecond pcap of `link_type` holding `frames`, one second apart.
fn pcap_file(link_type: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65_535, link_type] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    // The version word is two u16s (major 2, minor 4), not one u32: rewrite it.
    out[4..8].copy_from_slice(&[2, 0, 4, 0]);
    for (i, frame) in frames.iter().enumerate() {
        let len = frame.len() as u32;
        for word in [1_700_000_000 + i as u32, 500_000, len, len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(frame);
    }
    out
}

#[test]
fn captured_pcaps_still_hold_the_vector_bytes_with_the_expected_link_types() {
    let expected_link = [
        ("v2_none", LinkType::Ethernet),
        ("v2_pass", LinkType::LinuxSll2),
        ("v3_ipv4", LinkType::Ethernet),
        ("v3_ipv4_multi", LinkType::LinuxSll),
        ("v3_ipv6", LinkType::Ethernet),
    ];
    for ((name, hex_text), (link_name, link_type)) in ALL.iter().zip(expected_link) {
        assert_eq!(*name, link_name);
        let file = std::fs::read(vector_pcap(name)).unwrap();
        let mut pcap = Pcap::parse(&file).unwrap();
        assert_eq!(pcap.link_type(), link_type, "{name}");
        let first = pcap.next().unwrap().unwrap();
        assert_eq!(
            link_type.ip_packet(first.data).unwrap(),
            bytes(hex_text),
            "{name}"
        );
        assert_eq!(pcap.count(), 2, "{name}: three frames in all");
    }
}

#[test]
fn decoding_the_v2_pass_pcap_prints_one_json_line_per_advert_with_auth_and_timestamps() {
    let output = agent(&["decode", "--pcap", vector_pcap("v2_pass").to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3);
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], index);
        assert!(
            line["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2026-11-22T")
        );
    }
    let mut first = lines[0].clone();
    first.as_object_mut().unwrap().remove("timestamp");
    assert_eq!(
        first,
        json!({
            "index": 0, "source": "198.51.100.1", "destination": "224.0.0.18", "ttl": 255,
            "version": 2, "type": 1, "vrid": 11, "priority": 100, "count": 1,
            "advert_interval_cs": 200, "checksum_valid": true, "checksum": "0xe233",
            "auth_type": "simple_text_password", "auth_data": "7365637265743132",
            "addresses": ["198.51.100.11"]
        })
    );
    assert_eq!(
        summary(&output),
        json!({"frames": 3, "decoded": 3, "errors": 0, "skipped": 0})
    );
}

#[test]
fn decoding_every_captured_pcap_reports_the_configured_keepalived_instance() {
    // (name, version, vrid, priority, interval cs, address count, IP source)
    let expected = [
        ("v2_none", 2, 10, 150, 100, 1, "192.0.2.1"),
        ("v2_pass", 2, 11, 100, 200, 1, "198.51.100.1"),
        ("v3_ipv4", 3, 12, 200, 50, 1, "203.0.113.1"),
        ("v3_ipv4_multi", 3, 13, 120, 100, 5, "10.13.0.1"),
        ("v3_ipv6", 3, 14, 110, 100, 2, "fe80::5eff:fe10:1"),
    ];
    for (name, version, vrid, priority, interval, count, source) in expected {
        let output = agent(&["decode", "--pcap", vector_pcap(name).to_str().unwrap()]);
        assert!(output.status.success(), "{name}: {output:?}");
        let lines = json_lines(&output);
        assert_eq!(lines.len(), 3, "{name}");
        for line in &lines {
            assert_eq!(line["version"], version, "{name}");
            assert_eq!(line["vrid"], vrid, "{name}");
            assert_eq!(line["priority"], priority, "{name}");
            assert_eq!(line["advert_interval_cs"], interval, "{name}");
            assert_eq!(line["count"], count, "{name}");
            assert_eq!(line["addresses"].as_array().unwrap().len(), count, "{name}");
            assert_eq!(line["source"], source, "{name}");
            assert_eq!(line["ttl"], 255, "{name}");
            assert_eq!(line["checksum_valid"], true, "{name}");
            assert_eq!(line.get("auth_type").is_some(), version == 2, "{name}");
        }
    }
}

#[test]
fn hex_of_a_whole_ipv6_packet_with_spaces_and_colons_is_decoded_with_its_hop_limit() {
    let spaced: String = V3_IPV6
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let coloned = spaced.replace(' ', ":");
    for text in [V3_IPV6.to_string(), spaced, coloned] {
        let output = agent(&["decode", "--hex", &text]);
        assert!(output.status.success(), "{output:?}");
        let lines = json_lines(&output);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["source"], "fe80::5eff:fe10:1");
        assert_eq!(lines[0]["destination"], "ff02::12");
        assert_eq!(lines[0]["ttl"], 255);
        assert_eq!(lines[0]["addresses"], json!(["fd00:14::14", "fd00:14::15"]));
        assert_eq!(lines[0]["checksum_valid"], true);
    }
}

#[test]
fn hex_of_a_bare_vrrp_message_is_auto_detected_and_has_no_ip_fields() {
    let v2 = hex::encode(&bytes(V2_NONE)[20..]);
    let output = agent(&["decode", "--hex", &v2]);
    assert!(output.status.success(), "{output:?}");
    let line = &json_lines(&output)[0];
    assert_eq!(line["vrid"], 10);
    assert_eq!(line["checksum_valid"], true);
    assert!(line.get("source").is_none() && line.get("ttl").is_none());

    // A bare v3 message has no pseudo-header to verify against.
    let v3 = hex::encode(&bytes(V3_IPV4)[20..]);
    let line = &json_lines(&agent(&["decode", "--hex", &v3]))[0];
    assert_eq!(line["vrid"], 12);
    assert_eq!(line["checksum_valid"], Value::Null);
}

#[test]
fn hex_with_a_corrupted_checksum_is_printed_with_checksum_valid_false() {
    let mut packet = bytes(V2_PASS);
    packet[26] ^= 0xff; // VRRP checksum, high byte
    let output = agent(&["decode", "--hex", &hex::encode(&packet)]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(json_lines(&output)[0]["checksum_valid"], false);
}

#[test]
fn invalid_hex_prints_one_json_error_line_and_fails() {
    let output = agent(&["decode", "--hex", "21:0a:zz"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"], "hex");
}

#[test]
fn truncated_vrrp_hex_prints_the_drop_reason() {
    let packet = bytes(V2_NONE);
    let output = agent(&["decode", "--hex", &hex::encode(&packet[20..30])]);
    assert_eq!(output.status.code(), Some(1));
    let line = &json_lines(&output)[0];
    assert_eq!(line["error"], "length");
    assert!(line["message"].as_str().unwrap().contains("address count"));
}

#[test]
fn raw_ip_pcap_skips_non_vrrp_packets_and_reports_a_broken_one_by_index() {
    let mut udp = bytes(V2_NONE);
    udp[9] = 17; // protocol UDP: not VRRP, skipped
    let mut broken = bytes(V3_IPV4);
    // VRID 0. The checksum no longer matches either, but the command decodes leniently, so the
    // VRID is the reason reported.
    broken[21] = 0;
    let mut frames: Vec<Vec<u8>> = ALL.iter().map(|(_, h)| bytes(h)).collect();
    frames.insert(1, udp);
    frames.push(broken);
    let file = TempFile::new("raw", &pcap_file(101, &frames));

    let output = agent(&["decode", "--pcap", file.path()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let lines = json_lines(&output);
    let indices: Vec<_> = lines.iter().map(|l| l["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, vec![0, 2, 3, 4, 5, 6]);
    assert_eq!(lines[5]["error"], "vrid");
    assert_eq!(lines[5]["timestamp"], "2023-11-14T22:13:26.5Z");
    assert_eq!(
        summary(&output),
        json!({"frames": 7, "decoded": 5, "errors": 1, "skipped": 1})
    );
}

#[test]
fn ethernet_pcap_skips_arp_frames() {
    let ethernet = |ethertype: [u8; 2], payload: &[u8]| {
        let mut frame = vec![0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x02, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&ethertype);
        frame.extend_from_slice(payload);
        frame
    };
    let frames = vec![
        ethernet([0x08, 0x06], &[0; 28]),
        ethernet([0x08, 0x00], &bytes(V2_NONE)),
    ];
    let file = TempFile::new("ethernet", &pcap_file(1, &frames));
    let output = agent(&["decode", "--pcap", file.path()]);
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["index"], 1);
    assert_eq!(
        summary(&output),
        json!({"frames": 2, "decoded": 1, "errors": 0, "skipped": 1})
    );
}

#[test]
fn pcap_cut_short_in_its_last_record_prints_the_good_records_then_an_error() {
    let mut file_bytes = std::fs::read(vector_pcap("v3_ipv4")).unwrap();
    file_bytes.truncate(file_bytes.len() - 5);
    let file = TempFile::new("cut", &file_bytes);
    let output = agent(&["decode", "--pcap", file.path()]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["vrid"], 12);
    assert_eq!(lines[2]["error"], "pcap");
    assert_eq!(lines[2]["index"], 2);
}

#[test]
fn file_that_is_not_a_pcap_prints_a_pcap_error() {
    let file = TempFile::new("garbage", b"this is not a capture file at all");
    let output = agent(&["decode", "--pcap", file.path()]);
    assert_eq!(output.status.code(), Some(1));
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"], "pcap");
}

#[test]
fn missing_pcap_file_prints_an_io_error() {
    let output = agent(&["decode", "--pcap", "/nonexistent/kube-vrrp.pcap"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json_lines(&output)[0]["error"], "io");
}

#[test]
fn decode_without_input_is_a_usage_error() {
    let output = agent(&["decode"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("--hex"));
}
