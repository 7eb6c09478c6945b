//! Scenario 5: the nodes are partitioned from each other (the API server still reaches them):
//! every node becomes MASTER; the API server shows `SplitBrain=True` and a Warning Event
//! naming the MASTERs within 2 × Master_Down_Interval plus one status write; after healing
//! it clears and one MASTER remains.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};
use serde_json::json;

use super::{POLL, master_down_interval, up, vip_manifest, wait_master};

const ADVERT: Duration = Duration::from_millis(100);
/// One status write: an agent notices the change (status poll 100 ms) and patches its
/// VrrpNode, the operator folds it and writes the VirtualIP.
const STATUS_WRITE: Duration = Duration::from_secs(1);

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(20));

    let partitioned = Instant::now();
    cluster.lab().partition().unwrap();
    let allowed = master_down_interval(50, ADVERT) * 2 + STATUS_WRITE;
    let seen = poll(
        "SplitBrain=True",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || Ok(user::condition_true(&user.vip("web")?, "SplitBrain").then_some(())),
    )
    .map_or_else(
        |e| panic!("{e}\n{}", super::logs_tail(&cluster, 10)),
        |()| partitioned.elapsed(),
    );
    eprintln!(
        "partition → SplitBrain=True after {:.0} ms (allowed {:.0} ms)",
        seen.as_secs_f64() * 1e3,
        allowed.as_secs_f64() * 1e3
    );
    assert!(
        seen <= allowed,
        "SplitBrain=True after {seen:?}, allowed {allowed:?}"
    );

    let warning = poll(
        "a Warning Event naming the MASTERs",
        Duration::from_secs(10),
        POLL,
        || {
            Ok(user
                .vip_events("web")?
                .into_iter()
                .find(|e| e.kind == "Warning"))
        },
    )
    .unwrap();
    for node in ["n1", "n2", "n3"] {
        assert!(
            warning.message.contains(node),
            "the Warning Event does not name {node}: {warning:?}"
        );
    }
    let vip = user.vip("web").unwrap();
    let split = user::conditions(&vip)
        .into_iter()
        .find(|c| c.kind == "SplitBrain")
        .unwrap();
    assert!(
        split.message.contains("n1") && split.message.contains("n2"),
        "{split:?}"
    );

    let healed = Instant::now();
    cluster.lab().heal_partition().unwrap();
    poll(
        "SplitBrain cleared and one MASTER (n1)",
        Duration::from_secs(15),
        POLL,
        || {
            let vip = user.vip("web")?;
            Ok((!user::condition_true(&vip, "SplitBrain")
                && user::master(&vip) == "n1"
                && user::condition_true(&vip, "Ready"))
            .then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", super::logs_tail(&cluster, 10)));
    eprintln!(
        "heal → SplitBrain cleared after {:.0} ms",
        healed.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(
        cluster
            .lab()
            .wait_for_single_holder(super::vip_address(0), Duration::from_secs(5))
            .unwrap(),
        1
    );
}
