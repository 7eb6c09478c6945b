//! Scenario 2: `kubectl apply` of a VirtualIP; `kubectl get vip` shows NAME, ADDRESS (plain
//! text), MASTER (the highest-priority node), STATE, NODES and AGE; the client reaches the VIP
//! at that node's MAC; `kubectl describe vip` shows the Event.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::poll;
use serde_json::json;

use super::{POLL, mac_of, up, vip_address, vip_manifest};

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    let prober = cluster
        .lab()
        .probe(vip_address(0), Duration::from_millis(20))
        .unwrap();
    let applied = Instant::now();
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n2", 150), ("n1", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();

    let row = poll(
        "kubectl get vip: web MASTER n2, STATE Ready",
        Duration::from_secs(20),
        POLL,
        || {
            let row = user.get_vip_row("web")?;
            Ok((row["MASTER"] == "n2" && row["STATE"] == "Ready").then_some(row))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", super::logs_tail(&cluster, 10)));
    eprintln!(
        "kubectl apply → MASTER n2 in kubectl get vip: {:.0} ms",
        applied.elapsed().as_secs_f64() * 1e3
    );
    let columns: Vec<&str> = row.keys().map(String::as_str).collect();
    for column in ["NAME", "ADDRESS", "MASTER", "STATE", "NODES", "AGE"] {
        assert!(
            columns.contains(&column),
            "kubectl get vip columns: {columns:?}"
        );
    }
    assert_eq!(
        row["ADDRESS"], "192.168.77.50/24",
        "ADDRESS is plain text: {row:?}"
    );
    // NODES counts the nodes whose agents report the instance running: the lowest-priority
    // node may report a moment after the MASTER is Ready (2/3 is then the truth).
    let row = poll(
        "kubectl get vip: web NODES 3/3",
        Duration::from_secs(10),
        POLL,
        || {
            let row = user.get_vip_row("web")?;
            Ok((row["NODES"] == "3/3").then_some(row))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", super::logs_tail(&cluster, 10)));
    eprintln!(
        "kubectl apply → NODES 3/3 in kubectl get vip: {:.0} ms",
        applied.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        (row["MASTER"].as_str(), row["STATE"].as_str()),
        ("n2", "Ready"),
        "{row:?}"
    );
    assert!(
        row["AGE"].ends_with('s') && row["AGE"].trim_end_matches('s').parse::<u32>().is_ok(),
        "AGE: {row:?}"
    );

    // The client reaches the VIP at n2.
    let n2 = mac_of(&cluster, 2);
    assert!(
        prober
            .wait_for_reply(applied, Duration::from_secs(5), |m| m == n2)
            .is_some(),
        "the VIP never answered from n2 ({n2}); replies: {:?}",
        prober
            .replies()
            .iter()
            .map(|r| r.mac.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    );

    // The API server's answer agrees, node by node.
    let vip = user.vip("web").unwrap();
    let nodes = vip["status"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{}", vip["status"]);
    for node in nodes {
        let expected = if node["name"] == "n2" {
            "Master"
        } else {
            "Backup"
        };
        assert_eq!(node["state"], expected, "{}", vip["status"]);
    }

    // describe shows who became MASTER. The agents start when each reads its VrrpNode: one
    // that starts more than Master_Down_Interval before n2's (a loaded machine, a slow write)
    // is MASTER until n2 preempts it, and the Events then tell that truth ("n1 became MASTER",
    // "moved from n1 to n2"). Either way one of them names n2 as the MASTER it became.
    let events = user.vip_events("web").unwrap();
    assert!(
        events.iter().any(|e| e.kind == "Normal"
            && e.reason == "MasterChanged"
            && (e.message.starts_with("n2 became MASTER") || e.message.ends_with(" to n2"))),
        "kubectl describe vip web events: {events:?}"
    );
    assert!(!events.iter().any(|e| e.kind == "Warning"), "{events:?}");
}
