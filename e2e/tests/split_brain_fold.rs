//! The operator's status folding fed with real agent reports: three `kube-vrrp-agent run`
//! (standalone) in the namespace lab share one VirtualIP; each node's `/status` becomes the
//! `VrrpNode.status` cluster mode would write (`build_status`), and the operator's `fold`
//! judges them. A partition shows `SplitBrain=True` naming the MASTERs; healing it shows
//! `Ready=True` again, with the matching Events.

// The helpers below are test code too: a failed step should fail the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_vrrp_agent::cluster::status::build_status;
use kube_vrrp_agent::report::InstanceStatus;
use kube_vrrp_agent::report::table::fetch;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_crds::{VirtualIp, VirtualIpPhase, VrrpNode, VrrpNodeSpec, condition};
use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::agent::{STATUS_PORT, manifests_yaml};
use kube_vrrp_e2e::daemon::DaemonKind;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::{Running, expected_master};
use kube_vrrp_e2e::{InstanceSpec, Lab, LabSpec, Version};
use kube_vrrp_operator::controller::placement_of;
use kube_vrrp_operator::fold::{
    ConditionReason, EventReason, EventSeverity, FoldConfig, Folded, Placement, fold,
};
use kube_vrrp_plan::parse_manifests;
use kube_vrrp_plan::{PlanInput, plan};

const NODES: usize = 3;
const VIRTUAL_IP: &str = "web";
const VRID: u8 = 51;
/// Short enough for a quick test, long enough that a loaded 2-core machine running debug
/// builds does not flap.
const ADVERT: Duration = Duration::from_millis(200);
/// What the loaded machine may add to a protocol bound (scheduling, `/status` polling).
const MARGIN: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// VirtualIP `web`, VRRPv3, 200 ms adverts, one VIP; n1 150, n2 120, n3 100.
fn instance() -> InstanceSpec {
    let mut spec = InstanceSpec::new(VIRTUAL_IP, VRID, vec![addressing::vip(Family::V4, 0)]);
    spec.version = Version::V3;
    spec.advert_interval = ADVERT;
    spec.priorities = vec![150, 120, 100];
    spec
}

fn node_name(node: usize) -> String {
    format!("n{node}")
}

// ---------------------------------------------------------------- the agents' reports

/// Every node's `/status` at one moment, in node order.
struct Reports {
    snapshots: Vec<(usize, Vec<InstanceStatus>)>,
}

impl Reports {
    /// Reads `/status` of every node, inside its namespace.
    fn fetch(lab: &Lab) -> Result<Self, String> {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), STATUS_PORT);
        let mut snapshots = Vec::new();
        for node in lab.node_numbers() {
            let snapshot = lab
                .node_ns(node)
                .map_err(|e| e.to_string())?
                .run_in(move || fetch(addr))
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("n{node}: {e}"))?;
            snapshots.push((node, snapshot));
        }
        Ok(Self { snapshots })
    }

    /// The state node `node` reports for the VirtualIP.
    fn state(&self, node: usize) -> Option<State> {
        self.snapshots
            .iter()
            .find(|(n, _)| *n == node)
            .and_then(|(_, s)| s.iter().find(|i| i.name == VIRTUAL_IP))
            .map(|i| i.state)
    }

    /// The nodes reporting MASTER, by name, ascending.
    fn masters(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .filter(|(n, _)| self.state(*n) == Some(State::Master))
            .map(|(n, _)| node_name(*n))
            .collect()
    }

    /// Exactly one node is MASTER and every other node is BACKUP.
    fn one_master_rest_backup(&self) -> bool {
        let masters = self.masters().len();
        let backups = self
            .snapshots
            .iter()
            .filter(|(n, _)| self.state(*n) == Some(State::Backup))
            .count();
        masters == 1 && backups == self.snapshots.len() - 1
    }

    /// The `VrrpNode` objects the agents would have written, heartbeat now.
    fn vrrp_nodes(&self) -> Vec<VrrpNode> {
        let now = Timestamp::now();
        self.snapshots
            .iter()
            .map(|(node, snapshot)| {
                let mut vn = VrrpNode::new(&node_name(*node), VrrpNodeSpec::default());
                vn.status = Some(build_status(snapshot, None, None, now));
                vn
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.snapshots
            .iter()
            .map(|(n, _)| {
                format!(
                    "n{n}={}",
                    self.state(*n).map_or("no instance", |s| s.as_str())
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Polls every node's `/status` until `done` holds (returning those reports and when they were
/// read) or `timeout` passes (panicking with the last reports or error).
fn wait_for_reports(
    lab: &Lab,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Reports) -> bool,
) -> (Reports, Instant) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match Reports::fetch(lab) {
            Ok(reports) if done(&reports) => return (reports, Instant::now()),
            Ok(reports) => reports.describe(),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; last /status: {last}"
        );
        sleep(POLL);
    }
}

// ---------------------------------------------------------------- the operator's view

/// The operator's side, without an API server: the planned placement of the VirtualIP and
/// its last folded status (so each fold sees the previous one, as the controller does).
struct Operator {
    virtual_ip: VirtualIp,
    placement: Placement,
}

impl Operator {
    /// Plans the same manifests the agents read.
    fn plan(spec: &InstanceSpec) -> Self {
        // The instance tracks no file, so the track-file path is never written into the YAML.
        let no_track_file = Path::new("/nonexistent");
        let yaml = manifests_yaml(NODES, false, std::slice::from_ref(spec), no_track_file).unwrap();
        let manifests = parse_manifests(Path::new("lab.yaml"), &yaml).unwrap();
        let virtual_ip = manifests
            .virtual_ips
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(VIRTUAL_IP))
            .cloned()
            .expect("the lab manifests hold VirtualIP web");
        let placement = placement_of(&plan(&PlanInput::from(manifests)), VIRTUAL_IP);
        Self {
            virtual_ip,
            placement,
        }
    }

    /// Folds `reports` now and keeps the result as the VirtualIP's status. A MASTER whose
    /// report another node's later transition supersedes is asked for a roll call; these
    /// agents are alive (their `/status` just answered), so each answers, as its next status
    /// write would in a cluster, and the fold is made again with the answers.
    fn fold(&mut self, reports: &Reports) -> Folded {
        let now = Timestamp::now();
        let mut nodes = reports.vrrp_nodes();
        let mut folded = fold(
            now,
            &FoldConfig::default(),
            &self.virtual_ip,
            &self.placement,
            &nodes,
        );
        if !folded.roll_calls.is_empty() {
            for node in &mut nodes {
                let asked = node
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|name| folded.roll_calls.get(name));
                if let (Some(at), Some(status)) = (asked, node.status.as_mut()) {
                    status.roll_call = Some(at.to_string());
                }
            }
            folded = fold(
                now,
                &FoldConfig::default(),
                &self.virtual_ip,
                &self.placement,
                &nodes,
            );
        }
        self.virtual_ip.status = Some(folded.status.clone());
        folded
    }
}

fn condition<'a>(folded: &'a Folded, type_: &str) -> &'a Condition {
    folded
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", folded.status.conditions))
}

fn event_reasons(folded: &Folded) -> Vec<&'static str> {
    folded.events.iter().map(|e| e.reason.as_str()).collect()
}

// ---------------------------------------------------------------- the scenario

#[test]
fn folding_the_agents_reports_shows_split_brain_during_a_partition_and_ready_after_it_heals() {
    require_root();
    let spec = instance();
    let mut operator = Operator::plan(&spec);
    assert_eq!(operator.placement.virtual_router_id, Some(VRID));
    assert_eq!(
        operator.placement.selected.iter().collect::<Vec<_>>(),
        ["n1", "n2", "n3"],
        "the planner selects every lab node"
    );
    let running = Running::start(
        DaemonKind::Agent,
        LabSpec {
            nodes: NODES,
            ipv6: false,
        },
        spec.clone(),
    )
    .unwrap();
    let lab = &running.lab;
    let master_down_interval = spec.master_down_interval(100);

    // One MASTER: folding says Ready, no split brain, and names it.
    let elected = running
        .wait_for_master(master_down_interval * 3 + Duration::from_secs(10))
        .unwrap();
    let (reports, _) = wait_for_reports(
        lab,
        "one MASTER, the others BACKUP",
        Duration::from_secs(10),
        Reports::one_master_rest_backup,
    );
    assert_eq!(reports.masters(), [node_name(elected)]);
    let folded = operator.fold(&reports);
    assert_eq!(folded.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(
        folded.status.master.as_deref(),
        Some(node_name(elected).as_str())
    );
    assert_eq!(condition(&folded, condition::READY).status, "True");
    assert_eq!(condition(&folded, condition::SPLIT_BRAIN).status, "False");
    assert_eq!(condition(&folded, condition::DEGRADED).status, "False");
    assert_eq!(folded.status.nodes_summary.as_deref(), Some("3/3"));

    // Partition: every node alone becomes MASTER after its Master_Down_Interval.
    lab.partition().unwrap();
    let (reports, _) = wait_for_reports(
        lab,
        "at least two MASTERs during the partition",
        master_down_interval * 3 + Duration::from_secs(10),
        |r| r.masters().len() >= 2,
    );
    let masters = reports.masters();
    let folded = operator.fold(&reports);
    assert_eq!(folded.fresh_masters, masters);
    assert_eq!(folded.status.state, Some(VirtualIpPhase::SplitBrain));
    assert_eq!(folded.status.master, None, "no single MASTER to name");
    let split = condition(&folded, condition::SPLIT_BRAIN);
    assert_eq!(split.status, "True");
    assert_eq!(split.reason, ConditionReason::MultipleMasters.as_str());
    for master in &masters {
        assert!(
            split.message.contains(master.as_str()),
            "SplitBrain message {:?} does not name MASTER {master}",
            split.message
        );
    }
    let ready = condition(&folded, condition::READY);
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, ConditionReason::SplitBrain.as_str());
    let warning = folded
        .events
        .iter()
        .find(|e| e.reason == EventReason::SplitBrain)
        .unwrap_or_else(|| panic!("no SplitBrain event among {:?}", folded.events));
    assert_eq!(warning.severity(), EventSeverity::Warning);
    for master in &masters {
        assert!(
            warning.note.contains(master.as_str()),
            "SplitBrain event {:?} does not name MASTER {master}",
            warning.note
        );
    }

    // Heal: the highest priority's adverts reach the others again; within
    // Master_Down_Interval (plus the machine's margin) exactly one MASTER is left.
    lab.heal_partition().unwrap();
    let healed = Instant::now();
    let bound = master_down_interval + MARGIN;
    let (reports, converged) = wait_for_reports(
        lab,
        "exactly one MASTER after healing",
        bound,
        Reports::one_master_rest_backup,
    );
    let took = converged - healed;
    assert!(
        took <= bound,
        "one MASTER only after {took:?} (bound {bound:?})"
    );
    let winner = expected_master(&spec, lab.node_numbers()).unwrap();
    assert_eq!(
        reports.masters(),
        [node_name(winner)],
        "the highest priority stays MASTER"
    );
    let folded = operator.fold(&reports);
    assert_eq!(folded.status.state, Some(VirtualIpPhase::Ready));
    assert_eq!(
        folded.status.master.as_deref(),
        Some(node_name(winner).as_str())
    );
    assert_eq!(condition(&folded, condition::READY).status, "True");
    let split = condition(&folded, condition::SPLIT_BRAIN);
    assert_eq!(split.status, "False");
    assert_eq!(split.reason, ConditionReason::AtMostOneMaster.as_str());
    let resolved = folded
        .events
        .iter()
        .find(|e| e.reason == EventReason::SplitBrainResolved)
        .unwrap_or_else(|| panic!("no SplitBrainResolved event among {:?}", folded.events));
    assert_eq!(resolved.severity(), EventSeverity::Normal);
    assert!(
        resolved.note.contains(&node_name(winner)),
        "SplitBrainResolved event {:?} does not name {}",
        resolved.note,
        node_name(winner)
    );
    assert!(
        !event_reasons(&folded).contains(&EventReason::SplitBrain.as_str()),
        "a new SplitBrain event after healing: {:?}",
        folded.events
    );
    eprintln!(
        "split brain: {} MASTER during the partition; one MASTER {took:?} after healing \
         (Master_Down_Interval {master_down_interval:?})",
        masters.join(", ")
    );
}
