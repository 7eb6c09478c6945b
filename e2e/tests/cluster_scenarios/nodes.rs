//! Node health: a MASTER's node cordoned (then made NotReady, then labelled out of load
//! balancing) loses its instance, and its MASTER hands over with priority 0, keeping the VIP
//! until the next MASTER's first advert (make-before-break): the next node answers within
//! about a second, long before Master_Down_Interval, a client pinging every 10 ms loses no
//! ping, and there is no split brain and no Warning Event. This is how a drain moves VIPs
//! while the agent is still up, before its pod is evicted. Uncordoned, the node gets its
//! instance back and preempts. Every node unhealthy at once keeps the VIP where it is.

use std::time::{Duration, Instant};

use kube_vrrp_e2e::cluster::user::{self, poll};
use kube_vrrp_e2e::probe::echo::EchoProber;
use serde_json::json;

use super::{
    POLL, Watcher, assert_never_split_brain, assert_no_warning_event, mac_of, master_down_interval,
    up, vip_address, vip_manifest, wait_master,
};

/// How many instances the node's VrrpNode asks for.
fn instances(user: &user::User, node: &str) -> usize {
    user.get("vrrpnode", node, &[])
        .ok()
        .and_then(|n| n["spec"]["instances"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn set_ready(user: &user::User, node: &str, status: &str) {
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": status,
        "reason": "LabSaysSo", "message": "set by the node-health scenario"}]}})
    .to_string();
    user.kubectl()
        .run(&[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .unwrap();
}

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    let advert = Duration::from_secs(1);
    user.apply(&vip_manifest(
        "web",
        0,
        52,
        "1s",
        &[("n1", 150), ("n2", 100), ("n3", 50)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(30));
    let prober = cluster
        .lab()
        .probe(vip_address(0), Duration::from_millis(20))
        .unwrap();
    let watcher = Watcher::start(&cluster, "web");
    let kubectl = user.kubectl();
    let n2 = mac_of(&cluster, 2);
    let pinger = EchoProber::start(
        cluster.lab().client(),
        vip_address(0),
        Duration::from_millis(10),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Cordoned: n1's instance goes, its MASTER hands over with priority 0.
    let cordoned = Instant::now();
    kubectl.run(&["cordon", "n1"]).unwrap();
    let answered = prober
        .wait_for_reply(cordoned, Duration::from_secs(10), |m| m == n2)
        .expect("the VIP did not answer from n2 after n1 was cordoned");
    let handover = answered.at.saturating_duration_since(cordoned);
    eprintln!(
        "cordon n1 → the VIP answers from n2 after {:.0} ms",
        handover.as_secs_f64() * 1e3
    );
    assert!(
        handover < master_down_interval(100, advert),
        "n2 took over after {handover:?}: that is a silent MASTER timing out, not a handover"
    );
    wait_master(&cluster, "web", "n2", Duration::from_secs(15));
    // Pings sent until a second after the handover; later ones may still be in flight.
    let settled = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    let pings = pinger.pings();
    let from = cordoned.checked_sub(Duration::from_millis(400)).unwrap();
    let to = settled + Duration::from_secs(1);
    let lost = pings.lost(from, to);
    eprintln!(
        "cordon n1: {} of {} pings lost (every 10 ms, from before the cordon to after the handover)",
        lost.len(),
        pings.sent(from, to)
    );
    assert!(
        lost.is_empty(),
        "pings lost during the cordon handover: {lost:?}"
    );
    drop(pinger);
    poll(
        "n1's VrrpNode without instances",
        Duration::from_secs(10),
        POLL,
        || Ok((instances(&user, "n1") == 0).then_some(())),
    )
    .unwrap();

    // Uncordoned: n1 is planned again and preempts.
    kubectl.run(&["uncordon", "n1"]).unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(30));

    // NotReady, then labelled out: the same handover each time.
    set_ready(&user, "n1", "False");
    wait_master(&cluster, "web", "n2", Duration::from_secs(15));
    set_ready(&user, "n1", "True");
    wait_master(&cluster, "web", "n1", Duration::from_secs(30));
    kubectl
        .run(&[
            "label",
            "node",
            "n1",
            "node.kubernetes.io/exclude-from-external-load-balancers=",
        ])
        .unwrap();
    wait_master(&cluster, "web", "n2", Duration::from_secs(15));
    kubectl
        .run(&[
            "label",
            "node",
            "n1",
            "node.kubernetes.io/exclude-from-external-load-balancers-",
        ])
        .unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(30));

    // Every node NotReady at once (as after an API server outage): nothing moves.
    for node in ["n1", "n2", "n3"] {
        set_ready(&user, node, "Unknown");
    }
    std::thread::sleep(Duration::from_secs(5));
    for node in ["n1", "n2", "n3"] {
        assert_eq!(instances(&user, node), 1, "{node} lost its instance");
    }
    assert_eq!(user::master(&user.vip("web").unwrap()), "n1");

    let samples = watcher.finish();
    assert_never_split_brain(&samples, "cordon, NotReady and exclusion handovers");
    assert_no_warning_event(&user, "web");
}
