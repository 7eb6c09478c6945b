//! Folding across failovers, partitions, rejections and lagging agents: the supersede rule
//! (an ordinary failover is never a split brain), the roll call that tells a partition from
//! a death, instances an agent rejected, and specs an agent has not applied.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, ManagedFieldsEntry, MicroTime, Time,
};
use kube_vrrp_crds::{
    InstanceStatus, RejectReason, RejectedInstance, State, VirtualIp, VirtualIpPhase,
    VirtualIpSpec, VirtualIpStatus, VrrpNode, VrrpNodeSpec, VrrpNodeStatus, condition,
};
use kube_vrrp_operator::fold::{
    EventReason, EventSeverity, FoldConfig, Folded, Placement, fold, spec_written_at,
};

const NOW: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

/// `secs` seconds before now (fractions allowed).
fn ago(secs: f64) -> Timestamp {
    now() - SignedDuration::from_secs_f64(secs)
}

fn vip() -> VirtualIp {
    let mut v = VirtualIp::new(
        "web",
        serde_json::from_value::<VirtualIpSpec>(serde_json::json!({
            "addresses": ["10.0.0.50/24"]
        }))
        .unwrap(),
    );
    v.metadata.generation = Some(1);
    v
}

/// `vip` as it was when `node` was its only MASTER (so Events show what changed).
fn vip_mastered_by(node: &str) -> VirtualIp {
    let mut v = vip();
    let before = fold(
        ago(60.0),
        &FoldConfig::default(),
        &v,
        &placement(&["a", "b"]),
        &[
            report(node, State::Master, 600.0, 65.0),
            report(
                if node == "a" { "b" } else { "a" },
                State::Backup,
                600.0,
                65.0,
            ),
        ],
    );
    assert_eq!(before.status.master.as_deref(), Some(node));
    v.status = Some(before.status);
    v
}

/// A node reporting `web` in `state`, having changed state `transition` seconds ago and
/// written its status `heartbeat` seconds ago.
fn report(name: &str, state: State, transition: f64, heartbeat: f64) -> VrrpNode {
    let mut n = VrrpNode::new(name, VrrpNodeSpec::default());
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(MicroTime(ago(heartbeat))),
        instances: vec![InstanceStatus {
            name: "web".into(),
            state,
            priority: 100,
            effective_priority: 100,
            master_address: None,
            transitions: 1,
            last_transition_time: Some(MicroTime(ago(transition))),
            // A MASTER holds the address, as an agent reports it.
            vips_held: if state == State::Master {
                vec!["10.0.0.50/24".to_owned()]
            } else {
                Vec::new()
            },
            message: None,
            holder_conflict: None,
        }],
        ..VrrpNodeStatus::default()
    });
    n
}

fn answering(mut n: VrrpNode, roll_call: Timestamp) -> VrrpNode {
    n.status.as_mut().unwrap().roll_call = Some(roll_call.to_string());
    n
}

fn placement(selected: &[&str]) -> Placement {
    Placement {
        virtual_router_id: Some(51),
        selected: selected.iter().map(|s| (*s).to_owned()).collect(),
        conflict: None,
        instance: None,
        unwritten: std::collections::BTreeMap::new(),
    }
}

fn run(v: &VirtualIp, nodes: &[VrrpNode]) -> Folded {
    fold(
        now(),
        &FoldConfig::default(),
        v,
        &placement(&["a", "b"]),
        nodes,
    )
}

fn cond<'a>(status: &'a VirtualIpStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn warnings(f: &Folded) -> Vec<&str> {
    f.events
        .iter()
        .filter(|e| e.severity() == EventSeverity::Warning)
        .map(|e| e.note.as_str())
        .collect()
}

#[test]
fn an_ordinary_failover_is_not_a_split_brain() {
    // a was MASTER and wrote its last status 8 s ago, then died without a word; b took over
    // 4 s ago. a's report is still fresh (bound 30 s) and still says MASTER.
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 600.0, 8.0),
            report("b", State::Master, 4.0, 4.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["b"]);
    assert_eq!(f.status.master.as_deref(), Some("b"));
    assert_eq!(f.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "False");
    assert!(warnings(&f).is_empty(), "{:?}", f.events);
    let reasons: Vec<EventReason> = f.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [EventReason::MasterChanged]);
    let listed: Vec<&str> = f.status.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(listed, ["b"], "a's superseded claim is not listed");
    let degraded = cond(&f.status, condition::DEGRADED);
    assert_eq!(degraded.reason, "NodeSuperseded");
    assert_eq!(
        degraded.message,
        format!(
            "a has not reported since {} and b became MASTER after that",
            ago(8.0).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    );
    assert_eq!(
        f.roll_calls.get("a"),
        Some(&ago(4.0)),
        "a is asked to answer b's transition"
    );
}

#[test]
fn a_partitioned_master_that_answers_the_roll_call_is_a_split_brain() {
    let b_took_over = ago(4.0);
    let f = run(
        &vip_mastered_by("a"),
        &[
            answering(report("a", State::Master, 600.0, 8.0), b_took_over),
            report("b", State::Master, 4.0, 4.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
    assert_eq!(f.status.state, Some(VirtualIpPhase::SplitBrain));
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "True");
    assert_eq!(
        warnings(&f),
        [
            "a and b both claim 10.0.0.50/24 (VRID 51) as MASTER; they cannot hear each \
          other's adverts: check the network between them"
        ]
    );
    assert!(f.roll_calls.is_empty(), "a answered; nothing to ask");
}

#[test]
fn a_master_that_keeps_reporting_after_the_other_took_over_is_a_split_brain() {
    // a's own heartbeat, 3 s after b's transition, proves it alive: no roll call needed.
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 600.0, 1.0),
            report("b", State::Master, 4.0, 4.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "True");
    assert!(f.roll_calls.is_empty());
}

#[test]
fn a_transition_within_the_clock_skew_before_a_heartbeat_still_supersedes_it() {
    // b's clock runs 0.5 s slow: its transition reads as half a second before a's last word.
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 600.0, 4.0),
            report("b", State::Master, 4.5, 4.5),
        ],
    );
    assert_eq!(f.fresh_masters, ["b"]);
    // Beyond the allowance (1 s) the heartbeat proves a alive.
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 600.0, 4.0),
            report("b", State::Master, 5.5, 5.5),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
}

#[test]
fn a_roll_call_answered_before_a_later_transition_does_not_keep_the_claim() {
    let f = run(
        &vip_mastered_by("a"),
        &[
            answering(report("a", State::Master, 600.0, 20.0), ago(20.0)),
            report("b", State::Master, 4.0, 4.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["b"]);
    assert_eq!(f.roll_calls.get("a"), Some(&ago(4.0)));
}

#[test]
fn a_preempting_master_supersedes_the_one_it_preempted_until_that_one_reports_backup() {
    let mut v = vip_mastered_by("b");
    // a (higher priority) came back and preempted 1 s ago; b's last status says MASTER.
    let during = run(
        &v,
        &[
            report("a", State::Master, 1.0, 1.0),
            report("b", State::Master, 900.0, 6.0),
        ],
    );
    assert_eq!(during.fresh_masters, ["a"]);
    assert_eq!(during.status.state, Some(VirtualIpPhase::Ready));
    v.status = Some(during.status);
    let after = run(
        &v,
        &[
            report("a", State::Master, 1.0, 1.0),
            report("b", State::Backup, 0.9, 0.9),
        ],
    );
    assert_eq!(after.fresh_masters, ["a"]);
    assert_eq!(cond(&after.status, condition::DEGRADED).status, "False");
    assert!(after.roll_calls.is_empty());
}

/// Seconds ago of two instants within one wall-clock second: `ELECTED` a fifth of a second
/// into it, `TOOK_OVER` half a second later (the backup's Master_Down_Interval at 100 ms).
const ELECTED: f64 = 9.8;
const TOOK_OVER: f64 = 9.3;

#[test]
fn a_master_killed_within_the_second_it_was_elected_is_superseded_whichever_node_it_was() {
    assert_eq!(
        ago(ELECTED).as_second(),
        ago(TOOK_OVER).as_second(),
        "both transitions fall within one second"
    );
    for (dead, backup) in [("a", "b"), ("b", "a")] {
        // `dead` became MASTER and wrote its status at once, then died without a word;
        // `backup` became MASTER half a second later, in the same second.
        let f = run(
            &vip_mastered_by(dead),
            &[
                report(dead, State::Master, ELECTED, ELECTED),
                report(backup, State::Master, TOOK_OVER, TOOK_OVER),
            ],
        );
        assert_eq!(f.fresh_masters, [backup], "{dead} died, {backup} took over");
        assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "False");
        assert!(warnings(&f).is_empty(), "{:?}", f.events);
        assert_eq!(f.roll_calls.get(dead), Some(&ago(TOOK_OVER)));
        assert_eq!(
            f.status.nodes[0].last_transition_time,
            Some(MicroTime(ago(TOOK_OVER))),
            "status.nodes keeps the report's microseconds"
        );
    }
}

#[test]
fn a_master_killed_within_its_election_second_that_answers_the_roll_call_is_a_split_brain() {
    let f = run(
        &vip_mastered_by("a"),
        &[
            answering(report("a", State::Master, ELECTED, ELECTED), ago(TOOK_OVER)),
            report("b", State::Master, TOOK_OVER, TOOK_OVER),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "True");
}

#[test]
fn a_whole_second_transition_of_an_earlier_agent_reads_as_the_start_of_its_second() {
    // a (an agent writing whole seconds) was elected 0.2 s into the second, b (writing
    // microseconds) took over 0.5 s later: b's transition is the later one.
    let whole = ago(ELECTED).as_second();
    let mut a = report("a", State::Master, ELECTED, ELECTED);
    let status = a.status.as_mut().unwrap();
    status.heartbeat_time = Some(MicroTime(Timestamp::from_second(whole).unwrap()));
    status.instances[0].last_transition_time =
        Some(MicroTime(Timestamp::from_second(whole).unwrap()));
    let f = run(
        &vip_mastered_by("a"),
        &[a, report("b", State::Master, TOOK_OVER, TOOK_OVER)],
    );
    assert_eq!(f.fresh_masters, ["b"]);
}

#[test]
fn equal_transition_times_are_settled_by_the_node_that_spoke_last() {
    // Two agents writing whole seconds, elected within one second: equal transitions. b
    // wrote its status since (its heartbeat is later than a's last word), so b's claim
    // stands and a is asked to answer the roll call.
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 10.0, 10.0),
            report("b", State::Master, 10.0, 2.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["b"]);
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "False");
    assert_eq!(f.roll_calls.get("a"), Some(&ago(10.0)));
    // Alive behind a partition, a answers: both claims count.
    let f = run(
        &vip_mastered_by("a"),
        &[
            answering(report("a", State::Master, 10.0, 10.0), ago(10.0)),
            report("b", State::Master, 10.0, 2.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "True");
}

#[test]
fn equal_transitions_and_equal_heartbeats_are_undecidable_and_both_count() {
    let f = run(
        &vip_mastered_by("a"),
        &[
            report("a", State::Master, 10.0, 10.0),
            report("b", State::Master, 10.0, 10.0),
        ],
    );
    assert_eq!(f.fresh_masters, ["a", "b"]);
    assert_eq!(cond(&f.status, condition::SPLIT_BRAIN).status, "True");
    assert!(f.roll_calls.is_empty());
}

#[test]
fn among_master_reports_at_least_one_always_counts() {
    // Every combination of transition and heartbeat times on a grid, three nodes.
    let times = [1.0, 3.0, 5.0, 9.0];
    let mut cases = 0;
    for &ta in &times {
        for &ha in times.iter().filter(|&&h| h <= ta) {
            for &tb in &times {
                for &hb in times.iter().filter(|&&h| h <= tb) {
                    for &tc in &times {
                        cases += 1;
                        let nodes = [
                            report("a", State::Master, ta, ha),
                            report("b", State::Master, tb, hb),
                            report("c", State::Master, tc, tc),
                        ];
                        let f = fold(
                            now(),
                            &FoldConfig::default(),
                            &vip(),
                            &placement(&["a", "b", "c"]),
                            &nodes,
                        );
                        assert!(
                            !f.fresh_masters.is_empty(),
                            "a {ta}/{ha} b {tb}/{hb} c {tc}: no MASTER left"
                        );
                        for superseded in f.roll_calls.keys() {
                            assert!(!f.fresh_masters.contains(superseded));
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 100, "{cases}");
}

fn rejecting(mut n: VrrpNode, running_previous: bool) -> VrrpNode {
    let status = n.status.as_mut().unwrap();
    if !running_previous {
        status.instances.clear();
    }
    status.rejected = vec![RejectedInstance {
        name: "web".into(),
        reason: RejectReason::SecretUnavailable,
        message: "Secret kube-vrrp/vrrp-auth: not found".into(),
        running_previous,
    }];
    n
}

#[test]
fn a_node_that_rejected_the_instance_degrades_the_virtual_ip_and_says_why() {
    let f = run(
        &vip(),
        &[
            report("a", State::Master, 60.0, 2.0),
            rejecting(report("b", State::Backup, 60.0, 2.0), false),
        ],
    );
    assert_eq!(f.status.state, Some(VirtualIpPhase::Ready));
    let degraded = cond(&f.status, condition::DEGRADED);
    assert_eq!(degraded.reason, "NodeRejected");
    assert_eq!(
        degraded.message,
        "b rejected this VirtualIP (SecretUnavailable: Secret kube-vrrp/vrrp-auth: not found) \
         and does not run it"
    );
    let f = run(
        &vip(),
        &[
            report("a", State::Master, 60.0, 2.0),
            rejecting(report("b", State::Backup, 60.0, 2.0), true),
        ],
    );
    assert!(
        cond(&f.status, condition::DEGRADED)
            .message
            .ends_with("and runs its previous configuration")
    );
    assert_eq!(f.status.nodes.len(), 2, "b still runs it and is listed");
}

#[test]
fn a_virtual_ip_every_node_rejected_is_rejected_not_pending() {
    let f = run(
        &vip(),
        &[
            rejecting(report("a", State::Backup, 60.0, 2.0), false),
            rejecting(report("b", State::Backup, 60.0, 2.0), false),
        ],
    );
    assert_eq!(f.status.state, Some(VirtualIpPhase::Rejected));
    let ready = cond(&f.status, condition::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Rejected")
    );
    assert_eq!(cond(&f.status, condition::DEGRADED).reason, "NodeRejected");
}

fn with_generations(
    mut n: VrrpNode,
    generation: i64,
    observed: i64,
    written: Option<f64>,
) -> VrrpNode {
    n.metadata.generation = Some(generation);
    n.status.as_mut().unwrap().observed_generation = Some(observed);
    n.metadata.managed_fields = written.map(|secs| {
        vec![
            ManagedFieldsEntry {
                manager: Some("kube-vrrp-operator".into()),
                operation: Some("Apply".into()),
                time: Some(Time(ago(secs))),
                ..ManagedFieldsEntry::default()
            },
            ManagedFieldsEntry {
                manager: Some("kube-vrrp-agent".into()),
                operation: Some("Apply".into()),
                subresource: Some("status".into()),
                time: Some(Time(ago(0.0))),
                ..ManagedFieldsEntry::default()
            },
        ]
    });
    n
}

#[test]
fn a_node_that_has_not_applied_its_latest_spec_after_the_grace_is_shown() {
    let lagging = with_generations(report("b", State::Backup, 60.0, 2.0), 7, 6, Some(20.0));
    assert_eq!(
        spec_written_at(&lagging),
        Some(ago(20.0)),
        "the status write is not the spec's"
    );
    let f = run(&vip(), &[report("a", State::Master, 60.0, 2.0), lagging]);
    let degraded = cond(&f.status, condition::DEGRADED);
    assert_eq!(degraded.reason, "SpecNotApplied");
    assert_eq!(
        degraded.message,
        "b has not applied its latest spec (VrrpNode generation 7; it runs 6)"
    );
}

#[test]
fn a_spec_written_moments_ago_is_not_yet_a_lag_and_an_applied_one_never_is() {
    for node in [
        with_generations(report("b", State::Backup, 60.0, 2.0), 7, 6, Some(2.0)),
        with_generations(report("b", State::Backup, 60.0, 2.0), 7, 7, Some(600.0)),
    ] {
        let f = run(&vip(), &[report("a", State::Master, 60.0, 2.0), node]);
        assert_eq!(cond(&f.status, condition::DEGRADED).status, "False");
    }
    // Without managed fields the lag cannot be timed: it is shown, as it is true.
    let f = run(
        &vip(),
        &[
            report("a", State::Master, 60.0, 2.0),
            with_generations(report("b", State::Backup, 60.0, 2.0), 7, 6, None),
        ],
    );
    assert_eq!(
        cond(&f.status, condition::DEGRADED).reason,
        "SpecNotApplied"
    );
}
