//! The guest lab (`make e2e-ipvs`): the agent programs real IPVS in a QEMU guest booted from
//! Debian's kernel, checked with `ipvsadm -Ln` (and `--stats`) and with client traffic from a
//! network namespace to real servers in another. Each test boots its own guest.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
fn wait_programmed(
    lab: &mut IpvsLab,
    keys: &[String],
    conflicted: &[&str],
) -> Result<(), GuestError> {
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
        Ok(status["ipvs"]["virtualServices"]
            .as_array()
            .is_some_and(|all| {
                all.iter().all(|s| {
                    s["programmed"] == true
                        || conflicted.iter().any(|c| s["virtualServer"] == c.as_str())
                })
            }))
    })
}

/// The `Conns` counter of service `key` once it reaches `at_least` (the kernel sums its
/// per-CPU counters in its estimator, every two seconds): what it is then.
fn conns(lab: &mut IpvsLab, key: &str, at_least: u64) -> u64 {
    let key = key.to_owned();
    let _ = lab.wait_until("the counters catch up", Duration::from_secs(10), |lab| {
        Ok(lab.stats()?.get(&key).is_some_and(|s| s.conns >= at_least))
    });
    lab.stats().unwrap()[&key].conns
}

fn listed(lab: &mut IpvsLab, key: &str) -> ListedService {
    lab.service(key)
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is not listed"))
}

/// The `requests=` of the agent's last "IPVS synchronised" log line.
fn last_sync_requests(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter(|l| l.contains("IPVS synchronised"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["requests"].as_u64())
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
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-programs.log"));
    foreign_services(&mut lab);
    let mut yaml = node_and_vip();
    let all_three = |port, weights: [u32; 3]| {
        rs(11, port, weights[0]) + &rs(12, port, weights[1]) + &rs(13, port, weights[2])
    };
    yaml += &vs(
        "web-http",
        80,
        &format!(
            "  scheduler: rr\n  realServers:\n{}",
            all_three(8080, [1, 1, 1])
        ),
    );
    yaml += &vs(
        "web-dns",
        53,
        &format!(
            "  protocol: UDP\n  scheduler: wrr\n  realServers:\n{}",
            all_three(5353, [1, 2, 3])
        ),
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
    yaml += &vs(
        "web-dr",
        8081,
        &format!("  forwarding: DR\n  realServers:\n{}", rs(12, 8081, 4)),
    );
    yaml += &vs(
        "web-mh",
        9000,
        &format!(
            "  scheduler: mh\n  schedulerFlags: [fallback, port]\n  realServers:\n{}",
            rs(11, 9000, 1)
        ),
    );
    yaml += &vs(
        "web-clash",
        7000,
        &format!("  scheduler: rr\n  realServers:\n{}", rs(11, 7000, 1)),
    );
    let others = ["lc", "wlc", "lblc", "lblcr", "dh", "sed", "nq"];
    for (i, s) in others.iter().enumerate() {
        let port = 9101 + i as u16;
        yaml += &vs(
            &format!("sched-{s}"),
            port,
            &format!("  scheduler: {s}\n  realServers:\n{}", rs(13, port, 1)),
        );
    }
    lab.write_manifest("lab.yaml", &yaml).unwrap();
    lab.start_agent("").unwrap();
    let mut keys: Vec<String> = [
        ("TCP", 80),
        ("UDP", 53),
        ("TCP", 443),
        ("TCP", 8443),
        ("TCP", 8081),
        ("TCP", 9000),
    ]
    .iter()
    .map(|(p, port)| key(p, *port))
    .collect();
    keys.extend((0..others.len()).map(|i| key("TCP", 9101 + i as u16)));
    wait_programmed(&mut lab, &keys, &["web-clash"]).unwrap();

    let http = listed(&mut lab, &key("TCP", 80));
    assert_eq!(http.scheduler, "rr");
    assert_eq!(http.real_servers.len(), 3);
    assert!(
        http.real_servers
            .iter()
            .all(|r| r.forward == "Masq" && r.weight == 1),
        "{http:?}"
    );
    let dns = listed(&mut lab, &key("UDP", 53));
    assert_eq!(dns.scheduler, "wrr");
    let weights: Vec<u32> = [
        "198.51.100.11:5353",
        "198.51.100.12:5353",
        "198.51.100.13:5353",
    ]
    .iter()
    .map(|a| dns.real_server(a).unwrap().weight)
    .collect();
    assert_eq!(weights, [1, 2, 3]);
    let sticky = listed(&mut lab, &key("TCP", 443));
    assert_eq!(sticky.scheduler, "sh");
    assert_eq!(
        sticky.flags, "(sh-fallback) persistent 300 mask 255.255.255.0",
        "{sticky:?}"
    );
    let tun = listed(&mut lab, &key("TCP", 8443));
    assert_eq!(tun.real_servers[0].forward, "Tunnel");
    assert_eq!(tun.real_servers[0].weight, 2);
    let tun_info = lab
        .guest
        .ok(&format!("ipvsadm -Ln -t {VIP}:8443 --tun-info"))
        .unwrap();
    assert!(
        tun_info.contains("gue") && tun_info.contains("6080"),
        "{tun_info}"
    );
    let thresholds = lab
        .guest
        .ok(&format!("ipvsadm -Ln -t {VIP}:8443 --thresholds"))
        .unwrap();
    let line = thresholds
        .lines()
        .find(|l| l.contains("198.51.100.11:8443"))
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[2..4], ["100", "10"], "{thresholds}");
    assert_eq!(
        listed(&mut lab, &key("TCP", 8081)).real_servers[0].forward,
        "Route"
    );
    assert_eq!(
        listed(&mut lab, &key("TCP", 9000)).flags,
        "(mh-fallback,mh-port)"
    );
    for (i, s) in others.iter().enumerate() {
        assert_eq!(&listed(&mut lab, &key("TCP", 9101 + i as u16)).scheduler, s);
    }
    assert_foreign_untouched(&mut lab, "after start");
    // IPVS first, then VRRP: the VirtualIP could not become MASTER before its services existed.
    let log = lab.agent_log().unwrap();
    let programmed_at = log.find("IPVS synchronised").expect("a sync");
    let master_at = log.find("\"to\":\"MASTER\"").expect("MASTER");
    assert!(programmed_at < master_at, "{log}");

    // Traffic from the client namespace, by each scheduler's rule.
    assert_eq!(
        lab.client(false, 80, 30).unwrap(),
        counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)])
    );
    assert_eq!(
        lab.client(true, 53, 60).unwrap(),
        counts(&[("rs1", 10), ("rs2", 20), ("rs3", 30)])
    );
    let sticky = lab.client(false, 443, 12).unwrap();
    assert_eq!(
        sticky.len(),
        1,
        "persistence keeps one client on one server: {sticky:?}"
    );
    assert!(!sticky.contains_key("error"), "{sticky:?}");

    let status = lab.status().unwrap();
    assert_eq!(status["ipvs"]["available"], true, "{status}");
    let services = status["ipvs"]["virtualServices"].as_array().unwrap();
    let clash = services
        .iter()
        .find(|s| s["virtualServer"] == "web-clash")
        .unwrap();
    assert_eq!(clash["programmed"], false);
    assert!(
        clash["message"]
            .as_str()
            .unwrap()
            .contains("not created by kube-vrrp"),
        "{clash}"
    );
    let http = services
        .iter()
        .find(|s| s["virtualServer"] == "web-http")
        .unwrap();
    assert_eq!(http["programmed"], true, "{http}");
    assert_eq!(http["realServers"].as_array().unwrap().len(), 3, "{http}");
    lab.stop_agent("TERM").unwrap();
    assert_foreign_untouched(&mut lab, "after shutdown");
    assert!(
        lab.service(&key("TCP", 80)).unwrap().is_some(),
        "services stay after shutdown"
    );
}

fn change_manifests(weight1: u32, scheduler: &str, second: u8) -> String {
    let mut yaml = node_and_vip();
    yaml += &vs(
        "web-http",
        80,
        &format!(
            "  scheduler: {scheduler}\n  realServers:\n{}{}",
            rs(11, 8080, weight1),
            rs(second, 8080, 1)
        ),
    );
    yaml += &dns_only();
    yaml
}

fn dns_only() -> String {
    vs(
        "web-dns",
        53,
        &format!(
            "  protocol: UDP\n  scheduler: rr\n  realServers:\n{}",
            rs(11, 5353, 1) + &rs(12, 5353, 1)
        ),
    )
}

#[test]
fn guest_applies_a_change_with_the_smallest_set_of_calls_and_leaves_other_services_counting() {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-change.log"));
    foreign_services(&mut lab);
    lab.write_manifest("lab.yaml", &change_manifests(1, "rr", 12))
        .unwrap();
    lab.start_agent("").unwrap();
    let keys = [key("TCP", 80), key("UDP", 53)];
    wait_programmed(&mut lab, &keys, &[]).unwrap();
    assert_eq!(
        lab.client(false, 80, 20).unwrap(),
        counts(&[("rs1", 10), ("rs2", 10)])
    );
    assert_eq!(
        lab.client(true, 53, 20).unwrap(),
        counts(&[("rs1", 10), ("rs2", 10)])
    );
    let dns_before = conns(&mut lab, &key("UDP", 53), 20);
    assert_eq!(dns_before, 20);

    // Weight 1 → 3 for rs1, scheduler rr → wrr, rs2 replaced by rs3: four calls, no more.
    lab.write_manifest("lab.yaml", &change_manifests(3, "wrr", 13))
        .unwrap();
    lab.wait_until("the change is applied", PROGRAMMED, |lab| {
        let http = lab.service(&key("TCP", 80))?;
        Ok(http.is_some_and(|h| {
            h.scheduler == "wrr"
                && h.real_server("198.51.100.13:8080").is_some()
                && h.real_server("198.51.100.12:8080").is_none()
        }))
    })
    .unwrap();
    let log = lab.agent_log().unwrap();
    assert_eq!(
        last_sync_requests(&log),
        Some(4),
        "set service, set dest, new dest, del dest:\n{log}"
    );
    let http = listed(&mut lab, &key("TCP", 80));
    assert_eq!(http.real_server("198.51.100.11:8080").unwrap().weight, 3);
    assert_eq!(
        lab.client(false, 80, 40).unwrap(),
        counts(&[("rs1", 30), ("rs3", 10)])
    );

    // The untouched service was not re-created: its counters keep counting.
    assert_eq!(
        conns(&mut lab, &key("UDP", 53), 0),
        dns_before,
        "no traffic in between"
    );
    assert_eq!(
        lab.client(true, 53, 10).unwrap(),
        counts(&[("rs1", 5), ("rs2", 5)])
    );
    assert_eq!(
        conns(&mut lab, &key("UDP", 53), dns_before + 10),
        dns_before + 10
    );
    assert_foreign_untouched(&mut lab, "after the change");

    // A VirtualServer removed from the manifests: only its service goes, in one call.
    lab.write_manifest("lab.yaml", &(node_and_vip() + &dns_only()))
        .unwrap();
    lab.wait_until("web-http is removed", PROGRAMMED, |lab| {
        Ok(lab.service(&key("TCP", 80))?.is_none())
    })
    .unwrap();
    assert_eq!(last_sync_requests(&lab.agent_log().unwrap()), Some(1));
    assert_eq!(conns(&mut lab, &key("UDP", 53), 0), dns_before + 10);
    lab.stop_agent("TERM").unwrap();
    assert_foreign_untouched(&mut lab, "after shutdown");
    assert!(
        lab.service(&key("UDP", 53)).unwrap().is_some(),
        "ours stay too"
    );
}

#[test]
fn guest_restarted_agent_adopts_its_services_without_a_gap() {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-restart.log"));
    let yaml = node_and_vip()
        + &vs(
            "web-http",
            80,
            &format!(
                "  scheduler: rr\n  realServers:\n{}",
                rs(11, 8080, 1) + &rs(12, 8080, 1)
            ),
        );
    lab.write_manifest("lab.yaml", &yaml).unwrap();
    lab.start_agent("").unwrap();
    wait_programmed(&mut lab, &[key("TCP", 80)], &[]).unwrap();
    assert_eq!(
        lab.client(false, 80, 10).unwrap(),
        counts(&[("rs1", 5), ("rs2", 5)])
    );

    // Killed without a word: the service stays and keeps serving.
    lab.stop_agent("KILL").unwrap();
    assert_eq!(
        lab.client(false, 80, 10).unwrap(),
        counts(&[("rs1", 5), ("rs2", 5)])
    );
    let syncs_before = lab
        .agent_log()
        .unwrap()
        .matches("IPVS synchronised")
        .count();
    lab.start_agent("").unwrap();
    wait_programmed(&mut lab, &[key("TCP", 80)], &[]).unwrap();
    let log = lab.agent_log().unwrap();
    assert_eq!(
        log.matches("IPVS synchronised").count(),
        syncs_before,
        "the restarted agent found its service as wanted and sent nothing:\n{log}"
    );
    assert_eq!(
        conns(&mut lab, &key("TCP", 80), 20),
        20,
        "counters kept: not re-created"
    );

    // The record lost as well (e.g. a new state folder): the mark still says ours.
    lab.stop_agent("TERM").unwrap();
    lab.guest
        .ok("rm /run/kube-vrrp/ipvs-services.json")
        .unwrap();
    lab.start_agent("").unwrap();
    wait_programmed(&mut lab, &[key("TCP", 80)], &[]).unwrap();
    assert!(
        lab.agent_log()
            .unwrap()
            .contains("adopting an IPVS service")
    );
    assert_eq!(conns(&mut lab, &key("TCP", 80), 20), 20);
    // Adopted means ours: removing the VirtualServer removes it.
    lab.write_manifest("lab.yaml", &node_and_vip()).unwrap();
    lab.wait_until("web-http is removed", PROGRAMMED, |lab| {
        Ok(lab.service(&key("TCP", 80))?.is_none())
    })
    .unwrap();
}

fn backend_manifests(slice_endpoints: &str) -> String {
    let mut yaml = node_and_vip();
    yaml += &vs(
        "web-svc",
        80,
        "  scheduler: rr\n  backendRef: {namespace: default, name: backend, port: http}\n",
    );
    let _ = write!(
        yaml,
        "---
apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: default
spec:
  ports: [{{name: http, port: 8080, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  namespace: default
  labels: {{kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
{slice_endpoints}"
    );
    yaml
}

#[test]
fn guest_drains_a_terminating_endpoint_then_removes_it() {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-drain.log"));
    let ready = |a: &str| format!("  - {{addresses: [{a}], conditions: {{ready: true}}}}\n");
    lab.write_manifest("lab.yaml", &backend_manifests(&ready("198.51.100.12")))
        .unwrap();
    lab.start_agent("--ipvs-drain-timeout 120").unwrap();
    wait_programmed(&mut lab, &[key("TCP", 80)], &[]).unwrap();
    // A long connection to rs2, the only endpoint: long enough to outlast the configuration
    // change reaching the agent in a guest under software emulation.
    lab.guest
        .ok(&format!(
            "/sbin/ip netns exec client /opt/kv/ipvs-lab-peer hold --tcp {VIP}:80 --seconds 20 > /tmp/hold.log 2>&1 &"
        ))
        .unwrap();
    lab.wait_until("the held connection is active", PROGRAMMED, |lab| {
        Ok(listed(lab, &key("TCP", 80))
            .real_server("198.51.100.12:8080")
            .is_some_and(|r| r.active == 1))
    })
    .unwrap();
    // rs2 terminates, rs1 takes over.
    let terminating = "  - {addresses: [198.51.100.12], conditions: {ready: false, serving: true, terminating: true}}\n";
    lab.write_manifest(
        "lab.yaml",
        &backend_manifests(&(ready("198.51.100.11") + terminating)),
    )
    .unwrap();
    lab.wait_until("rs2 drains at weight 0", PROGRAMMED, |lab| {
        let svc = listed(lab, &key("TCP", 80));
        Ok(svc
            .real_server("198.51.100.12:8080")
            .is_some_and(|r| r.weight == 0 && r.active == 1)
            && svc
                .real_server("198.51.100.11:8080")
                .is_some_and(|r| r.weight == 1))
    })
    .unwrap();
    assert_eq!(
        lab.client(false, 80, 6).unwrap(),
        counts(&[("rs1", 6)]),
        "no new connection to a draining server"
    );
    let status = lab.status().unwrap();
    let svc = &status["ipvs"]["virtualServices"][0];
    let rs2 = svc["realServers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "198.51.100.12")
        .unwrap();
    assert_eq!(rs2["draining"], true, "{svc}");
    // The held connection ends: rs2 leaves, long before the drain timeout.
    lab.wait_until(
        "rs2 is removed after its connection ended",
        PROGRAMMED,
        |lab| {
            Ok(listed(lab, &key("TCP", 80))
                .real_server("198.51.100.12:8080")
                .is_none())
        },
    )
    .unwrap();
    assert_eq!(lab.guest.ok("cat /tmp/hold.log").unwrap().trim(), "rs2");
}

#[test]
fn guest_programs_the_deploy_example_virtual_server() {
    let mut lab = IpvsLab::boot("debug").unwrap();
    lab.guest
        .keep_console_at(std::env::temp_dir().join("kube-vrrp-guest-example.log"));
    // The example's nodes live on 10.77.0.0/24: give the guest n1's addresses.
    lab.guest
        .ok("/sbin/ip link add ex0 type dummy && /sbin/ip addr add 10.77.0.11/24 dev ex0 && /sbin/ip addr add fd00:77::11/64 dev ex0 nodad && /sbin/ip link set ex0 up")
        .unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/examples/standalone");
    for file in [
        "nodes.yaml",
        "virtualips.yaml",
        "virtualservers.yaml",
        "secret.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        lab.write_manifest(file, &text).unwrap();
    }
    lab.start_agent_as("n1", "").unwrap();
    // Nothing answers at 10.77.1.21 or .22 in the guest, so both HTTP checks
    // fail: with inhibitOnFailure the servers stay in the table at weight 0.
    // (Servers start in service, so a listing taken before the checks have
    // failed `fall` times shows weight 1; the state is only settled once
    // both are inhibited.)
    let servers = ["10.77.1.21:8080", "10.77.1.22:8080"];
    lab.wait_until(
        "web-http's failing servers are inhibited",
        PROGRAMMED,
        |lab| {
            Ok(lab.service("TCP 10.77.0.100:80")?.is_some_and(|s| {
                s.real_servers.len() == 2
                    && servers
                        .iter()
                        .all(|a| s.real_server(a).is_some_and(|r| r.weight == 0))
            }))
        },
    )
    .unwrap();
    let svc = listed(&mut lab, "TCP 10.77.0.100:80");
    assert_eq!(svc.scheduler, "rr");
    for address in servers {
        let r = svc.real_server(address).unwrap();
        assert_eq!(r.forward, "Masq", "{svc:?}");
    }
    let status = lab.status().unwrap();
    let web = status["ipvs"]["virtualServices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["virtualServer"] == "web-http")
        .unwrap();
    assert_eq!(web["programmed"], true, "{web}");
    let weights: Vec<_> = web["realServers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["weight"].as_u64())
        .collect();
    assert_eq!(weights, [Some(0), Some(0)], "{web}");
    let checks: Vec<_> = status["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "RealServer" && c["owner"] == "web-http")
        .map(|c| (c["target"].as_str().unwrap(), c["healthy"].as_bool()))
        .collect();
    assert_eq!(
        checks,
        [
            ("10.77.1.21:8080", Some(false)),
            ("10.77.1.22:8080", Some(false))
        ],
        "{status}"
    );
}
