//! Status folding: table tests over node states, freshness, conflicts, condition times and
//! Events, plus an exhaustive sweep of two nodes over every state and report kind.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube_vrrp_crds::{
    InstanceStatus, State, VirtualIp, VirtualIpPhase, VirtualIpSpec, VrrpNode, VrrpNodeSpec,
    VrrpNodeStatus, condition,
};
/// (what, reports before, reports after, expected events)
type EventCase = (
    &'static str,
    Vec<(&'static str, Report)>,
    Vec<(&'static str, Report)>,
    Vec<(EventReason, &'static str)>,
);

use kube_vrrp_operator::fold::{
    ConflictNote, EventReason, EventSeverity, FoldConfig, Folded, Placement, fold,
};

const NOW: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp::from_second(NOW).unwrap()
}

fn ago(secs: i64) -> Time {
    Time(now() - SignedDuration::from_secs(secs))
}

/// A report's time `secs` seconds ago.
fn report_ago(secs: i64) -> MicroTime {
    MicroTime(now() - SignedDuration::from_secs(secs))
}

fn vip(name: &str) -> VirtualIp {
    let mut v = VirtualIp::new(
        name,
        serde_json::from_value::<VirtualIpSpec>(serde_json::json!({
            "addresses": ["10.0.0.50/24"]
        }))
        .unwrap(),
    );
    v.metadata.generation = Some(3);
    v
}

/// How a node reports in a test row.
#[derive(Clone, Copy, Debug)]
enum Report {
    /// Heartbeat `age` seconds ago, instance in `state`.
    Fresh(State),
    /// Heartbeat 120 s ago (bound: 30 s).
    Stale(State),
    /// Fresh heartbeat, but no instance of this VirtualIP.
    WithoutInstance,
    /// No VrrpNode status at all.
    Silent,
}

fn node(name: &str, vip: &str, report: Report) -> VrrpNode {
    let mut n = VrrpNode::new(name, VrrpNodeSpec::default());
    let (age, state) = match report {
        Report::Fresh(s) => (5, Some(s)),
        Report::Stale(s) => (120, Some(s)),
        Report::WithoutInstance => (5, None),
        Report::Silent => return n,
    };
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(report_ago(age)),
        instances: state
            .map(|state| InstanceStatus {
                name: vip.to_owned(),
                state,
                priority: 100,
                effective_priority: 90,
                master_address: None,
                transitions: 1,
                last_transition_time: Some(report_ago(600)),
                // A MASTER holds the address, as an agent reports it.
                vips_held: if state == State::Master {
                    vec!["10.0.0.50/24".to_owned()]
                } else {
                    Vec::new()
                },
                message: None,
                holder_conflict: None,
            })
            .into_iter()
            .collect(),
        ..VrrpNodeStatus::default()
    });
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

fn run(v: &VirtualIp, p: &Placement, reports: &[(&str, Report)]) -> Folded {
    let nodes: Vec<VrrpNode> = reports
        .iter()
        .map(|(n, r)| node(n, v.metadata.name.as_deref().unwrap(), *r))
        .collect();
    fold(now(), &FoldConfig::default(), v, p, &nodes)
}

fn cond<'a>(f: &'a Folded, type_: &str) -> &'a Condition {
    f.status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

/// (Ready, SplitBrain, Degraded) as "True"/"False".
fn flags(f: &Folded) -> (&str, &str, &str) {
    (
        cond(f, condition::READY).status.as_str(),
        cond(f, condition::SPLIT_BRAIN).status.as_str(),
        cond(f, condition::DEGRADED).status.as_str(),
    )
}

struct Row {
    what: &'static str,
    reports: Vec<(&'static str, Report)>,
    phase: VirtualIpPhase,
    master: Option<&'static str>,
    flags: (&'static str, &'static str, &'static str),
    ready_reason: &'static str,
    degraded_reason: &'static str,
    summary: &'static str,
    listed: Vec<&'static str>,
}

#[test]
fn folding_table_gives_phase_master_conditions_and_summary() {
    use Report::{Fresh, Silent, Stale, WithoutInstance};
    use State::{Backup, Fault, Initialize, Master};
    let rows = vec![
        Row {
            what: "one master, one backup",
            reports: vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            phase: VirtualIpPhase::Ready,
            master: Some("a"),
            flags: ("True", "False", "False"),
            ready_reason: "MasterElected",
            degraded_reason: "AllNodesHealthy",
            summary: "2/2",
            listed: vec!["a", "b"],
        },
        Row {
            what: "two fresh masters",
            reports: vec![("a", Fresh(Master)), ("b", Fresh(Master))],
            phase: VirtualIpPhase::SplitBrain,
            master: None,
            flags: ("False", "True", "False"),
            ready_reason: "SplitBrain",
            degraded_reason: "AllNodesHealthy",
            summary: "2/2",
            listed: vec!["a", "b"],
        },
        Row {
            what: "stale master is not counted",
            reports: vec![("a", Stale(Master)), ("b", Fresh(Backup))],
            phase: VirtualIpPhase::NoMaster,
            master: None,
            flags: ("False", "False", "True"),
            ready_reason: "NoMaster",
            degraded_reason: "NodeNotReporting",
            summary: "1/2",
            listed: vec!["b"],
        },
        Row {
            what: "fresh master and stale master are no split brain",
            reports: vec![("a", Stale(Master)), ("b", Fresh(Master))],
            phase: VirtualIpPhase::Ready,
            master: Some("b"),
            flags: ("True", "False", "True"),
            ready_reason: "MasterElected",
            degraded_reason: "NodeNotReporting",
            summary: "1/2",
            listed: vec!["b"],
        },
        Row {
            what: "nobody reported",
            reports: vec![("a", Silent), ("b", Silent)],
            phase: VirtualIpPhase::Pending,
            master: None,
            flags: ("False", "False", "True"),
            ready_reason: "NotReporting",
            degraded_reason: "NodeNotReporting",
            summary: "0/2",
            listed: vec![],
        },
        Row {
            what: "master plus a node in fault",
            reports: vec![("a", Fresh(Master)), ("b", Fresh(Fault))],
            phase: VirtualIpPhase::Ready,
            master: Some("a"),
            flags: ("True", "False", "True"),
            ready_reason: "MasterElected",
            degraded_reason: "NodeFault",
            summary: "1/2",
            listed: vec!["a", "b"],
        },
        Row {
            what: "fault and a node without the instance",
            reports: vec![("a", Fresh(Fault)), ("b", WithoutInstance)],
            phase: VirtualIpPhase::NoMaster,
            master: None,
            flags: ("False", "False", "True"),
            ready_reason: "NoMaster",
            degraded_reason: "NodesUnhealthy",
            summary: "0/2",
            listed: vec!["a"],
        },
        Row {
            what: "both initialising",
            reports: vec![("a", Fresh(Initialize)), ("b", Fresh(Initialize))],
            phase: VirtualIpPhase::NoMaster,
            master: None,
            flags: ("False", "False", "False"),
            ready_reason: "NoMaster",
            degraded_reason: "AllNodesHealthy",
            summary: "0/2",
            listed: vec!["a", "b"],
        },
        Row {
            what: "an unselected node still claiming master makes a split brain",
            reports: vec![
                ("a", Fresh(Master)),
                ("b", Fresh(Backup)),
                ("x", Fresh(Master)),
            ],
            phase: VirtualIpPhase::SplitBrain,
            master: None,
            flags: ("False", "True", "False"),
            ready_reason: "SplitBrain",
            degraded_reason: "AllNodesHealthy",
            summary: "2/2",
            listed: vec!["a", "b", "x"],
        },
    ];
    for row in rows {
        let f = run(&vip("web"), &placement(&["a", "b"]), &row.reports);
        let what = row.what;
        assert_eq!(f.status.state, Some(row.phase), "{what}: phase");
        assert_eq!(f.status.master.as_deref(), row.master, "{what}: master");
        assert_eq!(flags(&f), row.flags, "{what}: flags");
        assert_eq!(
            cond(&f, condition::READY).reason,
            row.ready_reason,
            "{what}"
        );
        assert_eq!(
            cond(&f, condition::DEGRADED).reason,
            row.degraded_reason,
            "{what}"
        );
        assert_eq!(
            f.status.nodes_summary.as_deref(),
            Some(row.summary),
            "{what}: summary"
        );
        let listed: Vec<&str> = f.status.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(listed, row.listed, "{what}: nodes[]");
        assert_eq!(cond(&f, condition::CONFLICT).status, "False", "{what}");
        assert_eq!(f.status.observed_generation, Some(3), "{what}");
        assert_eq!(f.status.virtual_router_id, Some(51), "{what}");
    }
}

#[test]
fn every_two_node_combination_obeys_the_counting_rules() {
    let mut kinds = Vec::new();
    for s in State::ALL {
        kinds.push(Report::Fresh(s));
        kinds.push(Report::Stale(s));
    }
    kinds.push(Report::WithoutInstance);
    kinds.push(Report::Silent);
    let mut combos = 0;
    for &ra in &kinds {
        for &rb in &kinds {
            combos += 1;
            let f = run(
                &vip("web"),
                &placement(&["a", "b"]),
                &[("a", ra), ("b", rb)],
            );
            let fresh_master = |r: Report| matches!(r, Report::Fresh(State::Master));
            let troubled = |r: Report| {
                !matches!(
                    r,
                    Report::Fresh(State::Master | State::Backup | State::Initialize)
                )
            };
            let masters = usize::from(fresh_master(ra)) + usize::from(fresh_master(rb));
            let ctx = format!("{ra:?} {rb:?}");
            assert_eq!(f.fresh_masters.len(), masters, "{ctx}");
            assert_eq!(
                cond(&f, condition::READY).status == "True",
                masters == 1,
                "{ctx}: Ready iff exactly one fresh master"
            );
            assert_eq!(
                cond(&f, condition::SPLIT_BRAIN).status == "True",
                masters > 1,
                "{ctx}: SplitBrain iff more than one"
            );
            assert_eq!(
                cond(&f, condition::DEGRADED).status == "True",
                troubled(ra) || troubled(rb),
                "{ctx}: Degraded iff fault or not reporting"
            );
            assert_eq!(f.status.master.is_some(), masters == 1, "{ctx}");
            for n in &f.status.nodes {
                let r = if n.name == "a" { ra } else { rb };
                assert!(
                    matches!(r, Report::Fresh(_)),
                    "{ctx}: only fresh nodes listed"
                );
            }
            let again = {
                let mut v = vip("web");
                // Through JSON, as the API server stores it.
                v.status =
                    Some(serde_json::from_value(serde_json::to_value(&f.status).unwrap()).unwrap());
                run(&v, &placement(&["a", "b"]), &[("a", ra), ("b", rb)])
            };
            assert_eq!(again.status, f.status, "{ctx}: refolding is stable");
            assert!(again.events.is_empty(), "{ctx}: refolding emits nothing");
        }
    }
    assert_eq!(combos, 100);
}

#[test]
fn heartbeat_exactly_at_the_bound_is_fresh_and_one_second_older_is_stale() {
    let v = vip("web");
    let p = placement(&["a"]);
    let config = FoldConfig {
        staleness: SignedDuration::from_secs(30),
        ..FoldConfig::default()
    };
    for (age, fresh) in [(30, true), (31, false), (-10, true)] {
        let mut n = node("a", "web", Report::Fresh(State::Master));
        n.status.as_mut().unwrap().heartbeat_time = Some(report_ago(age));
        let f = fold(now(), &config, &v, &p, &[n]);
        assert_eq!(f.fresh_masters.len() == 1, fresh, "age {age}s");
    }
}

#[test]
fn a_conflict_sets_the_conflict_condition_with_the_planner_message() {
    let p = Placement {
        virtual_router_id: None,
        selected: std::collections::BTreeSet::default(),
        conflict: Some(ConflictNote {
            reason: "VridTaken",
            message: "VRID 51 on eth0/IPv4 is already used by VirtualIP 'db'".to_owned(),
        }),
        instance: None,
        unwritten: std::collections::BTreeMap::new(),
    };
    let f = run(&vip("web"), &p, &[]);
    assert_eq!(f.status.state, Some(VirtualIpPhase::Conflict));
    let c = cond(&f, condition::CONFLICT);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "VridTaken")
    );
    assert!(c.message.contains("already used by VirtualIP 'db'"));
    let r = cond(&f, condition::READY);
    assert_eq!(
        (r.status.as_str(), r.reason.as_str()),
        ("False", "Conflict")
    );
    assert_eq!(f.status.nodes_summary.as_deref(), Some("0/0"));
    assert_eq!(f.status.virtual_router_id, None);
}

#[test]
fn a_vrid_missing_from_the_plan_keeps_the_previous_status_value() {
    let mut v = vip("web");
    v.status = Some(kube_vrrp_crds::VirtualIpStatus {
        virtual_router_id: Some(7),
        ..Default::default()
    });
    let mut p = placement(&[]);
    p.virtual_router_id = None;
    assert_eq!(run(&v, &p, &[]).status.virtual_router_id, Some(7));
}

#[test]
fn split_brain_message_names_every_master() {
    let f = run(
        &vip("web"),
        &placement(&["a", "b", "c"]),
        &[
            ("a", Report::Fresh(State::Master)),
            ("b", Report::Fresh(State::Master)),
            ("c", Report::Fresh(State::Master)),
        ],
    );
    let m = &cond(&f, condition::SPLIT_BRAIN).message;
    assert_eq!(
        m,
        "a, b and c all report MASTER for VirtualIP web (VRID 51)"
    );
}

#[test]
fn condition_transition_time_moves_only_when_the_status_flips() {
    let p = placement(&["a", "b"]);
    let first = run(
        &vip("web"),
        &p,
        &[
            ("a", Report::Fresh(State::Master)),
            ("b", Report::Fresh(State::Backup)),
        ],
    );
    let mut v = vip("web");
    let mut previous = first.status.clone();
    for c in &mut previous.conditions {
        c.last_transition_time = ago(3600);
    }
    v.status = Some(previous);
    // The master moves: Ready stays True (its message changes), SplitBrain stays False.
    let moved = run(
        &v,
        &p,
        &[
            ("a", Report::Fresh(State::Backup)),
            ("b", Report::Fresh(State::Master)),
        ],
    );
    let ready = cond(&moved, condition::READY);
    assert_eq!(ready.last_transition_time, ago(3600));
    assert_eq!(ready.message, "b is MASTER (VRID 51)");
    // Now both claim MASTER: Ready and SplitBrain flip.
    let split = run(
        &v,
        &p,
        &[
            ("a", Report::Fresh(State::Master)),
            ("b", Report::Fresh(State::Master)),
        ],
    );
    assert_eq!(
        cond(&split, condition::READY).last_transition_time,
        Time(now())
    );
    assert_eq!(
        cond(&split, condition::SPLIT_BRAIN).last_transition_time,
        Time(now())
    );
    assert_eq!(
        cond(&split, condition::DEGRADED).last_transition_time,
        ago(3600)
    );
}

#[test]
fn condition_times_are_whole_seconds() {
    let f = fold(
        now() + SignedDuration::from_millis(750),
        &FoldConfig::default(),
        &vip("web"),
        &placement(&["a"]),
        &[] as &[VrrpNode],
    );
    for c in &f.status.conditions {
        assert_eq!(c.last_transition_time, Time(now()), "{}", c.type_);
    }
}

/// Folds `web` from a previous status with master `before` reports to `after` reports.
fn transition(before: &[(&str, Report)], after: &[(&str, Report)]) -> Vec<(EventReason, String)> {
    let p = placement(&["a", "b"]);
    let mut v = vip("web");
    if !before.is_empty() {
        v.status = Some(run(&v, &p, before).status);
    }
    run(&v, &p, after)
        .events
        .into_iter()
        .map(|e| (e.reason, e.note))
        .collect()
}

#[test]
fn events_follow_master_changes_and_split_brains() {
    use Report::{Fresh, Stale};
    use State::{Backup, Master};
    let m = EventReason::MasterChanged;
    let cases: Vec<EventCase> = vec![
        (
            "first master",
            vec![],
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![(m, "a became MASTER of 10.0.0.50/24 (VRID 51)")],
        ),
        (
            "failover",
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![("a", Stale(Master)), ("b", Fresh(Master))],
            vec![(m, "MASTER of 10.0.0.50/24 (VRID 51) moved from a to b")],
        ),
        (
            "master lost",
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![("a", Fresh(Backup)), ("b", Fresh(Backup))],
            vec![(
                m,
                "a is no longer MASTER; no node holds 10.0.0.50/24 (VRID 51)",
            )],
        ),
        (
            "split brain begins",
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![("a", Fresh(Master)), ("b", Fresh(Master))],
            vec![(
                EventReason::SplitBrain,
                "a and b both claim 10.0.0.50/24 (VRID 51) as MASTER; they cannot hear each \
                 other's adverts: check the network between them",
            )],
        ),
        (
            "split brain ends",
            vec![("a", Fresh(Master)), ("b", Fresh(Master))],
            vec![("a", Fresh(Backup)), ("b", Fresh(Master))],
            vec![
                (
                    EventReason::SplitBrainResolved,
                    "split brain over: b is the only MASTER of VirtualIP web",
                ),
                (m, "b became MASTER of 10.0.0.50/24 (VRID 51)"),
            ],
        ),
        (
            "nothing changed",
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![("a", Fresh(Master)), ("b", Fresh(Backup))],
            vec![],
        ),
        (
            "no master before or after",
            vec![],
            vec![("a", Fresh(Backup)), ("b", Fresh(Backup))],
            vec![],
        ),
    ];
    for (what, before, after, expected) in cases {
        let got = transition(&before, &after);
        let expected: Vec<(EventReason, String)> = expected
            .into_iter()
            .map(|(r, n)| (r, n.to_owned()))
            .collect();
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn split_brain_events_are_warnings_and_master_changes_are_normal() {
    assert_eq!(EventReason::SplitBrain.severity(), EventSeverity::Warning);
    assert_eq!(EventReason::MasterChanged.severity(), EventSeverity::Normal);
    assert_eq!(
        EventReason::SplitBrainResolved.severity(),
        EventSeverity::Normal
    );
    assert_eq!(EventReason::SplitBrain.as_str(), "SplitBrain");
    assert_eq!(EventReason::MasterChanged.as_str(), "MasterChanged");
}

#[test]
fn degraded_message_names_fault_and_silent_nodes_with_a_stable_time() {
    let f = run(
        &vip("web"),
        &placement(&["a", "b", "c"]),
        &[
            ("a", Report::Fresh(State::Fault)),
            ("b", Report::Stale(State::Backup)),
            ("c", Report::Silent),
        ],
    );
    let d = cond(&f, condition::DEGRADED);
    assert_eq!(d.reason, "NodesUnhealthy");
    assert_eq!(
        d.message,
        format!(
            "a is in FAULT; b has not reported since {}; c has not reported this VirtualIP",
            ago(120).0.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    );
}

#[test]
fn a_stale_report_without_the_instance_reads_as_stale_not_missing() {
    let mut n = node("a", "web", Report::Stale(State::Backup));
    n.status.as_mut().unwrap().instances.clear();
    let f = fold(
        now(),
        &FoldConfig::default(),
        &vip("web"),
        &placement(&["a"]),
        &[n],
    );
    let d = cond(&f, condition::DEGRADED);
    assert!(
        d.message.starts_with("a has not reported since "),
        "{}",
        d.message
    );
}

#[test]
fn a_member_of_a_virtual_router_folds_the_reports_of_the_routers_instance() {
    let member = vip("lb-10-0-0-50");
    let mut p = placement(&["a", "b"]);
    p.instance = Some("lan-ipv4-0".to_owned());
    // The nodes report the shared instance under the router's name, never the member's.
    let nodes = [
        node("a", "lan-ipv4-0", Report::Fresh(State::Master)),
        node("b", "lan-ipv4-0", Report::Fresh(State::Backup)),
    ];
    let f = fold(now(), &FoldConfig::default(), &member, &p, &nodes);
    assert_eq!(f.status.master.as_deref(), Some("a"));
    assert_eq!(f.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(f.status.nodes_summary.as_deref(), Some("2/2"));
    // Reports of an instance named like the member are not the member's.
    let own_name = [node("a", "lb-10-0-0-50", Report::Fresh(State::Master))];
    let f = fold(now(), &FoldConfig::default(), &member, &p, &own_name);
    assert_eq!(f.status.master, None);
    assert_eq!(f.status.state, Some(VirtualIpPhase::Pending));
}

#[test]
fn a_node_whose_vrrp_node_the_api_refused_is_named_with_the_apis_answer() {
    let mut p = placement(&["a", "b"]);
    p.unwritten.insert(
        "b".to_owned(),
        "etcdserver: request is too large (500)".to_owned(),
    );
    // b's agent still runs its older spec as BACKUP; a is MASTER.
    let f = run(
        &vip("web"),
        &p,
        &[
            ("a", Report::Fresh(State::Master)),
            ("b", Report::Fresh(State::Backup)),
        ],
    );
    assert_eq!(flags(&f), ("True", "False", "True"));
    let d = cond(&f, condition::DEGRADED);
    assert_eq!(d.reason, "VrrpNodeNotWritten");
    assert_eq!(
        d.message,
        "the operator could not write b's VrrpNode, so its agent runs an older spec or none: \
         etcdserver: request is too large (500)"
    );
    // Once written again, b is healthy.
    let healthy = run(
        &vip("web"),
        &placement(&["a", "b"]),
        &[
            ("a", Report::Fresh(State::Master)),
            ("b", Report::Fresh(State::Backup)),
        ],
    );
    assert_eq!(
        cond(&healthy, condition::DEGRADED).reason,
        "AllNodesHealthy"
    );
    // A silent node that could not be written reads as not written, the cause.
    let mut silent = placement(&["a", "c"]);
    silent
        .unwritten
        .insert("c".to_owned(), "forbidden (403)".to_owned());
    let f = run(
        &vip("web"),
        &silent,
        &[("a", Report::Fresh(State::Master)), ("c", Report::Silent)],
    );
    assert_eq!(cond(&f, condition::DEGRADED).reason, "VrrpNodeNotWritten");
}
