//! The guest lab (`make e2e-ipvs`): the agent programs real IPVS in a QEMU guest booted from
//! Debian's kernel, checked with `ipvsadm -Ln` (and `--stats`) and with client traffic from a
//! network namespace to real servers in another. Each test boots its own guest.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use kube_vrrp_e2e::guest::GuestError;
use kube_vrrp_e2e::guest::ipvsadm::ListedService;
use kube_vrrp_e2e::guest::lab::{IpvsLab, VIP, node_and_vip};

const PROGRAMMED: Duration = Duration::from_secs(60);

fn vs(name: &str, port: u16, body: &str) -> String {
    format!(
        "---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata:
  name: {name}
spec:
  virtualIPRef: web
  port: {port}
{body}"
    )
}

fn rs(address_last: u8, port: u16, weight: u32) -> String {
    format!("    - {{address: 198.51.100.{address_last}, port: {port}, weight: {weight}}}\n")
}

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn key(proto: &str, port: u16) -> String {
    format!("{proto} {VIP}:{port}")
}

/// Waits until every service key is listed and the agent reports every VirtualServer but
/// those in `conflicted` programmed.
fn wait_programmed(lab: &mut IpvsLab, keys: &[String], conflicted: &[&str]) -> Result<(), GuestError> {
    let keys = keys.to_vec();
    let conflicted: Vec<String> = conflicted.iter().map(|c| (*c).to_owned()).collect();
    lab.wait_until("the services are programmed", PROGRAMMED, move |lab| {
        let listed = lab.services()?;
        if !keys.iter().all(|k| listed.iter().any(|s| &s.key() == k)) {
            return Ok(false);
        }
        let Ok(status) = lab.status() else {
            return Ok(false);
        };
        Ok(status["ipvs"]["virtualServices"].as_array().is_some_and(|all| {
            all.iter().all(|s| {
                s["programmed"] == true
                    || conflicted.iter().any(|c| s["virtualServer"] == c.as_str())
            })
        }))
    })
}

fn listed(lab: &mut IpvsLab, key: &str) -> ListedService {
    lab.service(key).unwrap().unwrap_or_else(|| panic!("{key} is not listed"))
}

/// The `requests=` of the agent's last "IPVS synchronised" log line.
fn last_sync_requests(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("IPVS synchronised"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["requests"].as_u64())
        .last()
}

fn foreign_services(lab: &mut IpvsLab) {
    lab.guest
        .ok(&format!(
            "ipvsadm -A -t {VIP}:8888 -s lc && ipvsadm -a -t {VIP}:8888 -r 198.51.100.11:8888 -m -w 7 && ipvsadm -A -t {VIP}:7000 -s wlc"
        ))
        .unwrap();
}

fn assert_foreign_untouched(lab: &mut IpvsLab, when: &str) {
    let admin = listed(lab, &key("TCP", 8888));
    assert_eq!(admin.scheduler, "lc", "{when}: {admin:?}");
    assert_eq!(admin.real_servers.len(), 1, "{when}: {admin:?}");
    assert_eq!(admin.real_servers[0].weight, 7, "{when}: {admin:?}");
    let clash = listed(lab, &key("TCP", 7000));
    assert_eq!(clash.scheduler, "wlc", "{when}: {clash:?}");
    assert!(clash.real_servers.is_empty(), "{when}: {clash:?}");
}

#[test]
fn guest_programs_every_virtual_server_and_traffic_follows_each_scheduler() {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest.keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-programs.log"));
    foreign_services(&mut lab);
    let mut yaml = node_and_vip();
    let all_three = |port, weights: [u32; 3]| {
        rs(11, port, weights[0]) + &rs(12, port, weights[1]) + &rs(13, port, weights[2])
    };
    yaml += &vs("web-http", 80, &format!("  scheduler: rr\n  realServers:\n{}", all_three(8080, [1, 1, 1])));
    yaml += &vs(
        "web-dns",
        53,
        &format!("  protocol: UDP\n  scheduler: wrr\n  realServers:\n{}", all_three(5353, [1, 2, 3])),
    );
    yaml += &vs(
        "web-sticky",
        443,
        &format!(
            "  scheduler: sh\n  schedulerFlags: [fallback]\n  persistenceTimeout: 300s\n  persistenceGranularity: 24\n  realServers:\n{}",
            all_three(8080, [1, 1, 1])
        ),
    );
    yaml += &vs(
        "web-tun",
        8443,
        "  forwarding: TUN\n  tunnel: {type: GUE, port: 6080, checksum: Checksum}\n  realServers:\n    - {address: 198.51.100.11, port: 8443, weight: 2, upperThreshold: 100, lowerThreshold: 10}\n",
    );
    yaml += &vs("web-dr", 8081, &format!("  forwarding: DR\n  realServers:\n{}", rs(12, 8081, 4)));
    yaml += &vs(
        "web-mh",
        9000,
        &format!("  scheduler: mh\n  schedulerFlags: [fallback, port]\n  realServers:\n{}", rs(11, 9000, 1)),
    );
    yaml += &vs("web-clash", 7000, &format!("  scheduler: rr\n  realServers:\n{}", rs(11, 7000, 1)));
    let others = ["lc", "wlc", "lblc", "lblcr", "dh", "sed", "nq"];
    for (i, s) in others.iter().enumerate() {
        let port = 9101 + i as u16;
        yaml += &vs(&format!("sched-{s}"), port, &format!("  scheduler: {s}\n  realServers:\n{}", rs(13, port, 1)));
    }
    lab.write_manifest("lab.yaml", &yaml).unwrap();
    lab.start_agent("").unwrap();
    let mut keys: Vec<String> = [("TCP", 80), ("UDP", 53), ("TCP", 443), ("TCP", 8443), ("TCP", 8081), ("TCP", 9000)]
        .iter()
        .map(|(p, port)| key(p, *port))
        .collect();
    keys.extend((0..others.len()).map(|i| key("TCP", 9101 + i as u16)));
    wait_programmed(&mut lab, &keys, &["web-clash"]).unwrap();

    let http = listed(&mut lab, &key("TCP", 80));
    assert_eq!(http.scheduler, "rr");
    assert_eq!(http.real_servers.len(), 3);
    assert!(http.real_servers.iter().all(|r| r.forward == "Masq" && r.weight == 1), "{http:?}");
    let dns = listed(&mut lab, &key("UDP", 53));
    assert_eq!(dns.scheduler, "wrr");
    let weights: Vec<u32> = ["198.51.100.11:5353", "198.51.100.12:5353", "198.51.100.13:5353"]
        .iter()
        .map(|a| dns.real_server(a).unwrap().weight)
        .collect();
    assert_eq!(weights, [1, 2, 3]);
    let sticky = listed(&mut lab, &key("TCP", 443));
    assert_eq!(sticky.scheduler, "sh");
    assert_eq!(sticky.flags, "(sh-fallback) persistent 300 mask 255.255.255.0", "{sticky:?}");
    let tun = listed(&mut lab, &key("TCP", 8443));
    assert_eq!(tun.real_servers[0].forward, "Tunnel");
    assert_eq!(tun.real_servers[0].weight, 2);
    let tun_info = lab.guest.ok(&format!("ipvsadm -Ln -t {VIP}:8443 --tun-info")).unwrap();
    assert!(tun_info.contains("gue") && tun_info.contains("6080"), "{tun_info}");
    let thresholds = lab.guest.ok(&format!("ipvsadm -Ln -t {VIP}:8443 --thresholds")).unwrap();
    let line = thresholds.lines().find(|l| l.contains("198.51.100.11:8443")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[2..4], ["100", "10"], "{thresholds}");
    assert_eq!(listed(&mut lab, &key("TCP", 8081)).real_servers[0].forward, "Route");
    assert_eq!(listed(&mut lab, &key("TCP", 9000)).flags, "(mh-fallback,mh-port)");
    for (i, s) in others.iter().enumerate() {
        assert_eq!(&listed(&mut lab, &key("TCP", 9101 + i as u16)).scheduler, s);
    }
    assert_foreign_untouched(&mut lab, "after start");

    // Traffic from the client namespace, by each scheduler's rule.
    assert_eq!(lab.client(false, 80, 30).unwrap(), counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]));
    assert_eq!(lab.client(true, 53, 60).unwrap(), counts(&[("rs1", 10), ("rs2", 20), ("rs3", 30)]));
    let sticky = lab.client(false, 443, 12).unwrap();
    assert_eq!(sticky.len(), 1, "persistence keeps one client on one server: {sticky:?}");
    assert!(!sticky.contains_key("error"), "{sticky:?}");

    let status = lab.status().unwrap();
    assert_eq!(status["ipvs"]["available"], true, "{status}");
    let services = status["ipvs"]["virtualServices"].as_array().unwrap();
    let clash = services.iter().find(|s| s["virtualServer"] == "web-clash").unwrap();
    assert_eq!(clash["programmed"], false);
    assert!(clash["message"].as_str().unwrap().contains("not created by kube-vrrp"), "{clash}");
    let http = services.iter().find(|s| s["virtualServer"] == "web-http").unwrap();
    assert_eq!(http["programmed"], true, "{http}");
    assert_eq!(http["realServers"].as_array().unwrap().len(), 3, "{http}");
    lab.stop_agent("TERM").unwrap();
    assert_foreign_untouched(&mut lab, "after shutdown");
    assert!(lab.service(&key("TCP", 80)).unwrap().is_some(), "services stay after shutdown");
}
