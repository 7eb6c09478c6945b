//! Scenario 5: the nodes are partitioned from each other (the API server still reaches them):
//! every node becomes MASTER; the API server shows `SplitBrain=True` and a Warning Event
//! naming the MASTERs within 2 × Master_Down_Interval plus one status write; after healing
//! it clears and one MASTER remains.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};

use super::{POLL, apply_web, master_down_interval, up};

const ADVERT: Duration = Duration::from_millis(100);
/// One status write: an agent notices the change (status poll 100 ms) and patches its
/// VrrpNode, the operator folds it and writes the VirtualIP.
const STATUS_WRITE: Duration = Duration::from_secs(1);

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    apply_web(&cluster);

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
    // The Event names the MASTERs the operator knows of when it sees the split: those whose
    // reports are newer than the others' (n1, MASTER since before the partition, counts again
    // once it answers the roll call that its older claim triggers). So at least two nodes.
    let named = ["n1", "n2", "n3"]
        .iter()
        .filter(|n| warning.message.contains(*n))
        .count();
    assert!(
        named >= 2,
        "the Warning Event names fewer than two MASTERs: {warning:?}"
    );
    // The condition follows, naming all three.
    poll(
        "SplitBrain naming n1, n2 and n3",
        Duration::from_secs(10),
        POLL,
        || {
            let vip = user.vip("web")?;
            Ok(user::conditions(&vip)
                .into_iter()
                .find(|c| c.kind == "SplitBrain")
                .filter(|c| ["n1", "n2", "n3"].iter().all(|n| c.message.contains(n))))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            user.vip("web")
                .map(|v| v["status"].to_string())
                .unwrap_or_default()
        )
    });

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
