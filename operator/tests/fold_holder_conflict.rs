//! Split brain the API cannot see by counting MASTERs: only one MASTER reaches the API server,
//! and its agent's own ARP/NDP probes hear another holder of the VIP (`holderConflict`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube_vrrp_crds::{
    HolderConflict, InstanceStatus, State, VirtualIp, VirtualIpPhase, VirtualIpSpec, VrrpNode,
    VrrpNodeSpec, VrrpNodeStatus, condition,
};
use kube_vrrp_operator::fold::{EventReason, FoldConfig, Folded, Placement, fold};

const NOW: i64 = 1_800_000_000;

fn ago(secs: i64) -> MicroTime {
    MicroTime(Timestamp::from_second(NOW).unwrap() - SignedDuration::from_secs(secs))
}

fn node(name: &str, state: State, conflict: Option<&str>) -> VrrpNode {
    let mut n = VrrpNode::new(name, VrrpNodeSpec::default());
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(ago(5)),
        instances: vec![InstanceStatus {
            name: "web".to_owned(),
            state,
            priority: 100,
            effective_priority: 100,
            master_address: None,
            transitions: 1,
            last_transition_time: Some(ago(600)),
            vips_held: Vec::new(),
            message: None,
            holder_conflict: conflict.map(|mac| HolderConflict {
                address: "10.0.0.50".to_owned(),
                other_mac: mac.to_owned(),
                since: ago(3),
            }),
        }],
        ..VrrpNodeStatus::default()
    });
    n
}

fn run(previous: Option<&Folded>, nodes: &[VrrpNode]) -> Folded {
    let mut vip = VirtualIp::new(
        "web",
        serde_json::from_value::<VirtualIpSpec>(serde_json::json!({
            "addresses": ["10.0.0.50/24"]
        }))
        .unwrap(),
    );
    vip.status = previous.map(|f| f.status.clone());
    let placement = Placement {
        virtual_router_id: Some(51),
        selected: ["a".to_owned(), "b".to_owned()].into(),
        conflict: None,
        instance: None,
    };
    fold(
        Timestamp::from_second(NOW).unwrap(),
        &FoldConfig::default(),
        &vip,
        &placement,
        nodes,
    )
}

fn condition<'a>(folded: &'a Folded, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = folded
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn a_single_master_hearing_another_holder_is_split_brain_naming_both_and_clears_with_it() {
    let quiet = run(
        None,
        &[
            node("a", State::Master, None),
            node("b", State::Backup, None),
        ],
    );
    assert_eq!(quiet.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(condition(&quiet, condition::SPLIT_BRAIN).0, "False");

    // b is cut off from the API (its report went stale or it never wrote one); a hears it.
    let split = run(
        Some(&quiet),
        &[node("a", State::Master, Some("02:00:00:00:00:02"))],
    );
    assert_eq!(split.status.state, Some(VirtualIpPhase::SplitBrain));
    let (status, reason, message) = condition(&split, condition::SPLIT_BRAIN);
    assert_eq!((status, reason), ("True", "HolderConflict"));
    assert!(
        message.contains("a (MASTER)") && message.contains("02:00:00:00:00:02"),
        "{message}"
    );
    let (ready, ready_reason, _) = condition(&split, condition::READY);
    assert_eq!((ready, ready_reason), ("False", "SplitBrain"));
    assert_eq!(
        split.fresh_masters,
        ["a"],
        "one MASTER reports: it is not counted twice"
    );
    let events: Vec<_> = split.events.iter().map(|e| (e.reason, &e.note)).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, EventReason::SplitBrain);
    assert!(events[0].1.contains("02:00:00:00:00:02"), "{events:?}");

    let healed = run(
        Some(&split),
        &[
            node("a", State::Master, None),
            node("b", State::Backup, None),
        ],
    );
    assert_eq!(healed.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(condition(&healed, condition::SPLIT_BRAIN).0, "False");
    assert!(
        healed
            .events
            .iter()
            .any(|e| e.reason == EventReason::SplitBrainResolved),
        "{:?}",
        healed.events
    );
}

#[test]
fn a_backup_reporting_a_leftover_conflict_is_not_split_brain() {
    // Only a MASTER probes; a report from any other state does not count.
    let folded = run(
        None,
        &[
            node("a", State::Master, None),
            node("b", State::Backup, Some("02:00:00:00:00:01")),
        ],
    );
    assert_eq!(folded.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(condition(&folded, condition::SPLIT_BRAIN).0, "False");
}
