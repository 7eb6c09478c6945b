//! Scenario 3: the MASTER dies hard (its switch port cut, its agent SIGKILLed: no goodbye, no
//! last status). `status.master` moves to the next node and the client reaches the VIP there;
//! at no point does the API server show `SplitBrain=True`, does the leading operator's
//! `kube_vrrp_virtualip_masters` exceed 1, or does a Warning Event appear, for as long as the
//! dead node's last report could still count as fresh (the operator's staleness, 30 s).

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};

use super::{
    POLL, Watcher, apply_web, assert_never_split_brain, assert_no_warning_event, mac_of, up,
    vip_address,
};

/// The operator's default `--staleness-seconds`, plus a margin: after it the dead node's report
/// no longer counts either way.
const WATCH_AFTER_DEATH: Duration = Duration::from_secs(35);

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();
    apply_web(&cluster);
    let prober = cluster
        .lab()
        .probe(vip_address(0), Duration::from_millis(20))
        .unwrap();
    let watcher = Watcher::start(&cluster, "web");
    std::thread::sleep(Duration::from_secs(1));

    let died = Instant::now();
    cluster.lab().cut(1).unwrap();
    cluster.agent(1).unwrap().kill().unwrap();

    let n2 = mac_of(&cluster, 2);
    assert!(
        prober
            .wait_for_reply(died, Duration::from_secs(5), |m| m == n2)
            .is_some(),
        "the VIP did not answer from n2 after n1 died"
    );
    poll("status.master n2", Duration::from_secs(15), POLL, || {
        Ok((user::master(&user.vip("web")?) == "n2").then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the API server says: {}\n{}",
            user.vip("web")
                .map(|v| v["status"].to_string())
                .unwrap_or_default(),
            super::logs_tail(&cluster, 15)
        )
    });
    eprintln!(
        "n1 died → status.master n2 after {:.0} ms",
        died.elapsed().as_secs_f64() * 1e3
    );

    std::thread::sleep(WATCH_AFTER_DEATH.saturating_sub(died.elapsed()));
    let samples = watcher.finish();
    assert_never_split_brain(&samples, "hard failure of the MASTER");
    assert_no_warning_event(&user, "web");
    let last = samples.last().unwrap();
    assert_eq!(last.master, "n2", "{}", last.status);
}
