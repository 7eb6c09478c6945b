//! Scenario 8: the API server stops for 60 s. No VIP moves and no instance changes state;
//! an agent restarted meanwhile runs the last configuration it applied (kept on disk under a
//! path the chart mounts from the host) and rejoins as BACKUP; when the API server returns,
//! the status catches up and the restarted agent reconciles.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};
use serde_json::json;

use super::{POLL, agent_instances, apply_web, mac_of, up, vip_address, vip_manifest, wait_master};

const OUTAGE: Duration = Duration::from_secs(60);
const ADVERT: Duration = Duration::from_millis(100);

pub fn run() {
    let mut cluster = up();
    let user = cluster.user();
    apply_web(&cluster);
    std::thread::sleep(Duration::from_secs(2));
    let transitions = |cluster: &mut kube_vrrp_e2e::cluster::Cluster, n: usize| {
        agent_instances(cluster, n)
            .unwrap()
            .into_iter()
            .find(|i| i.name == "web")
            .and_then(|i| i.transitions)
    };
    let (t1, t3) = (transitions(&mut cluster, 1), transitions(&mut cluster, 3));
    let prober = cluster
        .lab()
        .probe(vip_address(0), Duration::from_millis(20))
        .unwrap();

    let stopped = Instant::now();
    cluster.control_plane_mut().stop_apiserver().unwrap();
    assert!(
        cluster.kubectl().run(&["get", "vip"]).is_err(),
        "the API server still answers"
    );

    // An agent restarted during the outage runs its last configuration from disk.
    std::thread::sleep(Duration::from_secs(15));
    let pod = cluster.agent(2).unwrap();
    pod.terminate().unwrap();
    pod.start().unwrap();
    let restarted = poll(
        "the restarted agent on n2 running web as BACKUP without the API server",
        Duration::from_secs(20),
        POLL,
        || {
            Ok(agent_instances(&mut cluster, 2)
                .ok()
                .and_then(|list| list.into_iter().find(|i| i.name == "web" && i.is_backup())))
        },
    );
    let pod = cluster.agent(2).unwrap();
    assert!(
        restarted.is_ok(),
        "{}\nn2's log ({}):\n{}",
        restarted.unwrap_err(),
        pod.log_path().display(),
        pod.log()
    );

    std::thread::sleep(OUTAGE.saturating_sub(stopped.elapsed()));
    // Nothing moved: n1 answered all along, no instance changed state.
    let n1 = mac_of(&cluster, 1);
    let replies: Vec<_> = prober
        .replies()
        .into_iter()
        .filter(|r| r.at >= stopped)
        .collect();
    assert!(
        replies.len() > 100,
        "{} replies during the outage",
        replies.len()
    );
    assert!(
        replies.iter().all(|r| r.mac == n1),
        "the VIP moved during the outage"
    );
    let longest = replies.windows(2).map(|w| w[1].at - w[0].at).max().unwrap();
    assert!(
        longest < ADVERT * 3,
        "the VIP was silent for {longest:?} during the outage"
    );
    assert_eq!(
        transitions(&mut cluster, 1),
        t1,
        "n1 changed state during the outage"
    );
    assert_eq!(
        transitions(&mut cluster, 3),
        t3,
        "n3 changed state during the outage"
    );

    let back = Instant::now();
    cluster.control_plane_mut().start_apiserver().unwrap();
    eprintln!(
        "API server back after {:.1} s down (restart took {:.1} s)",
        stopped.elapsed().as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    // The status catches up: every node reports again, the restarted one has applied its spec.
    poll(
        "every VrrpNode reporting after the outage, n2 at its spec's generation",
        Duration::from_secs(30),
        POLL,
        || {
            let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(15);
            let mut ok = true;
            for node in ["n1", "n2", "n3"] {
                let object = user.get("vrrpnode", node, &[])?;
                let heartbeat: Option<jiff::Timestamp> = object["status"]["heartbeatTime"]
                    .as_str()
                    .and_then(|t| t.parse().ok());
                ok &= heartbeat.is_some_and(|h| h > since);
                ok &= object["status"]["observedGeneration"] == object["metadata"]["generation"];
            }
            Ok(ok.then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", super::logs_tail(&cluster, 10)));
    let vip = poll(
        "VirtualIP web: MASTER n1 and Ready=True after the outage",
        Duration::from_secs(30),
        POLL,
        || {
            let vip = user.vip("web")?;
            Ok((user::master(&vip) == "n1" && user::condition_true(&vip, "Ready")).then_some(vip))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the API server says: {}\n{}",
            user.vip("web")
                .map(|v| v["status"].to_string())
                .unwrap_or_default(),
            super::logs_tail(&cluster, 20)
        )
    });
    eprintln!(
        "API server back → VirtualIP status caught up after {:.1} s",
        back.elapsed().as_secs_f64()
    );
    assert!(!user::condition_true(&vip, "SplitBrain"));
    // And it follows changes again.
    user.apply(&vip_manifest(
        "web",
        0,
        50,
        "100ms",
        &[("n2", 150), ("n1", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n2", Duration::from_secs(20));
}
