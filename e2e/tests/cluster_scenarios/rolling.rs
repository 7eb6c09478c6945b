//! Scenario 4: a rolling restart of every agent, one by one, as a DaemonSet update does it
//! (SIGTERM, wait for the exit, start again, wait until ready). The client hears the VIP
//! throughout, except for at most Skew_Time per handover; the API server never shows split
//! brain; and a stopping MASTER's final status write moves `status.master` at once instead of
//! after its report goes stale.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};
use serde_json::json;

use super::{
    POLL, Watcher, assert_never_split_brain, assert_no_warning_event, skew_time, up, vip_address,
    vip_manifest, wait_master,
};

const ADVERT: Duration = Duration::from_millis(100);
/// The prober's period and the scheduling slack of a busy 2-core machine: a gap is the time
/// between two answers, so it is at least one probe period longer than the outage.
const PROBE_PERIOD: Duration = Duration::from_millis(10);
const SLACK: Duration = Duration::from_millis(150);
/// How soon after a MASTER's agent exits `status.master` must name the next node: its final
/// status write (about 1 s) plus the operator's pass.
const FINAL_STATUS: Duration = Duration::from_secs(3);

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();
    let priorities = [("n1", 150_u8), ("n2", 100), ("n3", 50)];
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &priorities,
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(20));
    let prober = cluster.lab().probe(vip_address(0), PROBE_PERIOD).unwrap();
    let watcher = Watcher::start(&cluster, "web");
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();

    for n in 1..=3 {
        let was_master = user::master(&user.vip("web").unwrap()) == format!("n{n}");
        let stopped = Instant::now();
        cluster.agent(n).unwrap().terminate().unwrap();
        if was_master {
            poll(
                &format!("status.master off n{n} after its SIGTERM"),
                FINAL_STATUS,
                POLL,
                || {
                    let master = user::master(&user.vip("web")?).to_owned();
                    Ok((!master.is_empty() && master != format!("n{n}")).then_some(()))
                },
            )
            .unwrap_or_else(|e| {
                panic!(
                    "{e} (a stopping MASTER's final status write moves it at once); the API server says: {}\n{}",
                    user.vip("web").map(|v| v["status"].to_string()).unwrap_or_default(),
                    super::logs_tail(&cluster, 15)
                )
            });
            eprintln!(
                "n{n} SIGTERM → status.master moved in {:.0} ms",
                stopped.elapsed().as_secs_f64() * 1e3
            );
        }
        let pod = cluster.agent(n).unwrap();
        pod.start().unwrap();
        pod.wait_ready(Duration::from_secs(30)).unwrap();
        // Back in the election (and, for n1, preempting back) before the next node goes.
        std::thread::sleep(Duration::from_secs(2));
    }
    wait_master(&cluster, "web", "n1", Duration::from_secs(10));
    let samples = watcher.finish();

    // The client's view: the longest silence between two answers for the VIP.
    let replies: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= started)
        .collect();
    assert!(
        replies.len() > 100,
        "the VIP hardly answered during the restart: {} replies",
        replies.len()
    );
    let longest = replies.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
    let allowed = skew_time(100, ADVERT) + PROBE_PERIOD + SLACK;
    eprintln!(
        "rolling restart: longest silence {:.0} ms (allowed {:.0} ms)",
        longest.as_secs_f64() * 1e3,
        allowed.as_secs_f64() * 1e3
    );
    assert!(
        longest <= allowed,
        "the VIP was silent for {longest:?} (Skew_Time of the next node {:?})",
        skew_time(100, ADVERT)
    );
    assert_never_split_brain(&samples, "rolling restart");
    assert_no_warning_event(&user, "web");
}
