//! Scenario 9: one bad VirtualIP (its password Secret missing) affects only its own instance:
//! the nodes' other instance keeps following changes, each VrrpNode's status says which
//! instance it rejected and why, that VirtualIP has a condition saying so, and a node that has
//! not applied its latest spec (its agent frozen) is shown by comparing the VrrpNode's
//! `observedGeneration` with its generation.

use std::time::Duration;

use kube_vrrp_e2e::cluster::NAMESPACE;
use kube_vrrp_e2e::cluster::user::{self, poll};
use nix::sys::signal::Signal;
use serde_json::json;

use super::{POLL, mac_of, up, vip_address, vip_manifest, wait_master};

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();
    user.apply(&vip_manifest(
        "good",
        0,
        50,
        "100ms",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    let auth = json!({"type": "PASS", "passwordSecretRef": {"namespace": NAMESPACE, "name": "no-such-secret", "key": "password"}});
    user.apply(&vip_manifest(
        "bad",
        1,
        61,
        "1s",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &json!({"version": 2, "authentication": auth}),
    ))
    .unwrap();
    wait_master(&cluster, "good", "n1", Duration::from_secs(20));

    // Each node says which instance it rejected, and why.
    poll(
        "every VrrpNode listing bad as rejected (SecretUnavailable)",
        Duration::from_secs(20),
        POLL,
        || {
            let mut all = true;
            for node in ["n1", "n2", "n3"] {
                let object = user.get("vrrpnode", node, &[])?;
                all &= object["status"]["rejected"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|i| i["name"] == "bad" && i["reason"] == "SecretUnavailable")
                });
            }
            Ok(all.then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: n1's status: {}\n{}",
            user.get("vrrpnode", "n1", &[])
                .map(|o| o["status"].to_string())
                .unwrap_or_default(),
            super::logs_tail(&cluster, 10)
        )
    });

    // The VirtualIP says so, where a user looks.
    let describe = poll(
        "kubectl describe vip bad naming the rejection",
        Duration::from_secs(15),
        POLL,
        || {
            let text = user.describe_vip("bad")?;
            Ok((text.contains("rejected") && text.contains("SecretUnavailable")).then_some(text))
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", user.describe_vip("bad").unwrap_or_default()));
    let bad = user.vip("bad").unwrap();
    assert!(
        user::conditions(&bad).iter().any(
            |c| c.message.contains("no-such-secret") || c.message.contains("SecretUnavailable")
        ),
        "no condition of VirtualIP bad names the problem: {describe}"
    );
    assert!(
        !user::condition_true(&bad, "Ready"),
        "bad is Ready although no node runs it: {}",
        bad["status"]
    );

    // The other instance follows a change on every node.
    user.apply(&vip_manifest(
        "good",
        0,
        50,
        "100ms",
        &[("n2", 150), ("n1", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "good", "n2", Duration::from_secs(20));
    let prober = cluster
        .lab()
        .probe(vip_address(0), Duration::from_millis(20))
        .unwrap();
    let n2 = mac_of(&cluster, 2);
    assert!(
        prober
            .wait_for_reply(std::time::Instant::now(), Duration::from_secs(5), |m| m
                == n2)
            .is_some()
    );
    assert!(user::condition_true(&user.vip("good").unwrap(), "Ready"));

    // A node that has not applied its latest spec is shown.
    cluster.agent(3).unwrap().signal(Signal::SIGSTOP).unwrap();
    user.apply(&vip_manifest(
        "good",
        0,
        50,
        "100ms",
        &[("n2", 150), ("n3", 100), ("n1", 50)],
        &json!({}),
    ))
    .unwrap();
    let shown = poll(
        "VirtualIP good showing that n3 has not applied its latest spec",
        Duration::from_secs(20),
        POLL,
        || {
            let vip = user.vip("good")?;
            Ok(user::conditions(&vip).into_iter().find(|c| {
                c.status == "True" && c.message.contains("n3") && c.message.contains("not applied")
            }))
        },
    );
    let n3 = user.get("vrrpnode", "n3", &[]).unwrap();
    cluster.agent(3).unwrap().signal(Signal::SIGCONT).unwrap();
    let shown = shown.unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            user.vip("good")
                .map(|v| v["status"].to_string())
                .unwrap_or_default()
        )
    });
    eprintln!("shown: {shown:?}");
    assert_ne!(
        n3["status"]["observedGeneration"], n3["metadata"]["generation"],
        "n3 had applied it after all"
    );
    poll(
        "n3 applying its spec once thawed",
        Duration::from_secs(20),
        POLL,
        || {
            let n3 = user.get("vrrpnode", "n3", &[])?;
            Ok((n3["status"]["observedGeneration"] == n3["metadata"]["generation"]).then_some(()))
        },
    )
    .unwrap();
}
