//! From the status board's snapshot to `VrrpNode.status`, and the server-side apply body
//! that carries it. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::Resource;
use kube_vrrp_crds::{InstanceStatus, State, VrrpNode, VrrpNodeStatus, condition};
use serde_json::{Value, json};

use crate::report;
use crate::vrrp::instance::State as MachineState;

/// The report of this node: one entry per instance of `snapshot` (kept in its order), the
/// instance and MASTER counts, IPVS with its `IPVSAvailable` condition (once the IPVS task has
/// looked), `heartbeat` as `heartbeatTime`, and the spec generation the agent runs as
/// `observedGeneration`.
pub fn build_status(
    snapshot: &[report::InstanceStatus],
    ipvs: Option<&report::IpvsReport>,
    observed_generation: Option<i64>,
    heartbeat: Timestamp,
) -> VrrpNodeStatus {
    let instances: Vec<InstanceStatus> = snapshot.iter().map(instance_status).collect();
    let masters = instances
        .iter()
        .filter(|instance| instance.state == State::Master)
        .count();
    VrrpNodeStatus {
        instance_count: Some(count(instances.len())),
        master_count: Some(count(masters)),
        instances,
        ipvs: ipvs.map(|report| report.status.clone()),
        conditions: ipvs
            .map(|report| vec![ipvs_condition(report, observed_generation)])
            .unwrap_or_default(),
        heartbeat_time: Some(MicroTime(heartbeat)),
        observed_generation,
        ..VrrpNodeStatus::default()
    }
}

/// `IPVSAvailable`: True when the kernel answers the IPVS family, False with the reason.
fn ipvs_condition(report: &report::IpvsReport, generation: Option<i64>) -> Condition {
    let (status, reason) = if report.status.available {
        ("True", "Available")
    } else {
        ("False", "Unavailable")
    };
    Condition {
        type_: condition::IPVS_AVAILABLE.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: report.status.message.clone().unwrap_or_default(),
        last_transition_time: Time(report.since),
        observed_generation: generation,
    }
}

/// The server-side apply body writing `status` into the `VrrpNode` named `node`.
pub fn status_patch(node: &str, status: &VrrpNodeStatus) -> Value {
    json!({
        "apiVersion": VrrpNode::api_version(&()),
        "kind": VrrpNode::kind(&()),
        "metadata": { "name": node },
        "status": status,
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn state(state: MachineState) -> State {
    match state {
        MachineState::Initialize => State::Initialize,
        MachineState::Backup => State::Backup,
        MachineState::Master => State::Master,
        MachineState::Fault => State::Fault,
    }
}

/// One instance. Only a MASTER holds its virtual addresses.
fn instance_status(instance: &report::InstanceStatus) -> InstanceStatus {
    let state = state(instance.state);
    let vips_held = if state == State::Master {
        instance.vips.iter().map(ToString::to_string).collect()
    } else {
        Vec::new()
    };
    InstanceStatus {
        name: instance.name.clone(),
        state,
        priority: instance.priority,
        effective_priority: instance.effective_priority,
        master_address: instance.master_address.map(|address| address.to_string()),
        transitions: instance.transitions,
        last_transition_time: instance.last_transition.map(MicroTime),
        vips_held,
        message: instance.message.clone(),
        holder_conflict: instance.holder_conflict.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_entry(name: &str, state: MachineState) -> report::InstanceStatus {
        report::InstanceStatus {
            name: name.into(),
            vrid: 51,
            interface: "eth0".into(),
            version: 3,
            state,
            priority: 150,
            effective_priority: 140,
            master_address: Some("10.0.0.1".parse().unwrap()),
            vips: vec![
                "10.0.0.50/24".parse().unwrap(),
                "10.0.0.51/24".parse().unwrap(),
            ],
            transitions: 3,
            last_transition: Some(elected()),
            message: None,
            holder_conflict: None,
        }
    }

    /// Within a second, as the operator must be able to order it.
    fn elected() -> Timestamp {
        Timestamp::new(1_800_000_000, 250_000_500).unwrap()
    }

    fn heartbeat() -> Timestamp {
        Timestamp::new(1_800_000_100, 125_000_000).unwrap()
    }

    #[test]
    fn a_master_reports_its_state_priorities_master_address_and_held_vips() {
        let status = build_status(
            &[board_entry("web", MachineState::Master)],
            None,
            Some(4),
            heartbeat(),
        );
        let web = &status.instances[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.state, State::Master);
        assert_eq!((web.priority, web.effective_priority), (150, 140));
        assert_eq!(web.master_address.as_deref(), Some("10.0.0.1"));
        assert_eq!(web.vips_held, ["10.0.0.50/24", "10.0.0.51/24"]);
        assert_eq!(web.transitions, 3);
        assert_eq!(web.last_transition_time, Some(MicroTime(elected())));
        assert_eq!(status.heartbeat_time, Some(MicroTime(heartbeat())));
        assert_eq!(status.observed_generation, Some(4));
    }

    #[test]
    fn a_backup_holds_no_vips() {
        let status = build_status(
            &[board_entry("web", MachineState::Backup)],
            None,
            None,
            heartbeat(),
        );
        assert_eq!(status.instances[0].state, State::Backup);
        assert!(status.instances[0].vips_held.is_empty());
        assert_eq!(status.observed_generation, None);
    }

    #[test]
    fn ipvs_missing_is_reported_with_its_reason_as_ipvs_available_false() {
        let report = report::IpvsReport {
            status: kube_vrrp_crds::IpvsStatus {
                available: false,
                message: Some("the kernel has no generic netlink family IPVS".into()),
                ..kube_vrrp_crds::IpvsStatus::default()
            },
            since: Timestamp::from_second(1_800_000_050).unwrap(),
        };
        let status = build_status(&[], Some(&report), Some(1), heartbeat());
        let c = &status.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("IPVSAvailable", "False", "Unavailable")
        );
        assert!(c.message.contains("no generic netlink family IPVS"));
        assert_eq!(c.last_transition_time, Time(report.since));
        assert_eq!(status.ipvs.as_ref().map(|i| i.available), Some(false));
    }

    #[test]
    fn every_machine_state_maps_to_the_api_state_of_the_same_name() {
        let pairs = [
            (MachineState::Initialize, State::Initialize),
            (MachineState::Backup, State::Backup),
            (MachineState::Master, State::Master),
            (MachineState::Fault, State::Fault),
        ];
        for (machine, api) in pairs {
            assert_eq!(state(machine), api);
        }
    }

    #[test]
    fn counts_cover_every_instance_and_the_masters_among_them() {
        let snapshot = [
            board_entry("a", MachineState::Master),
            board_entry("b", MachineState::Backup),
            board_entry("c", MachineState::Master),
            board_entry("d", MachineState::Fault),
        ];
        let status = build_status(&snapshot, None, Some(1), heartbeat());
        assert_eq!(status.instance_count, Some(4));
        assert_eq!(status.master_count, Some(2));
        let names: Vec<&str> = status.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn an_empty_board_reports_zero_instances_with_a_heartbeat() {
        let status = build_status(&[], None, Some(2), heartbeat());
        assert_eq!(status.instance_count, Some(0));
        assert_eq!(status.master_count, Some(0));
        assert!(status.instances.is_empty());
        assert!(status.heartbeat_time.is_some());
    }

    #[test]
    fn the_patch_names_the_kind_the_node_and_carries_the_status_in_camel_case() {
        let status = build_status(
            &[board_entry("web", MachineState::Master)],
            None,
            Some(7),
            heartbeat(),
        );
        let patch = status_patch("node-a", &status);
        assert_eq!(patch["apiVersion"], "kubevrrp.io/v1alpha1");
        assert_eq!(patch["kind"], "VrrpNode");
        assert_eq!(patch["metadata"]["name"], "node-a");
        assert_eq!(patch["status"]["observedGeneration"], 7);
        assert_eq!(patch["status"]["instances"][0]["state"], "Master");
        assert_eq!(patch["status"]["instances"][0]["effectivePriority"], 140);
        assert_eq!(
            patch["status"]["instances"][0]["vipsHeld"][0],
            "10.0.0.50/24"
        );
        assert_eq!(
            patch["status"]["heartbeatTime"],
            "2027-01-15T08:01:40.125000Z"
        );
        assert_eq!(
            patch["status"]["instances"][0]["lastTransitionTime"], "2027-01-15T08:00:00.250000Z",
            "the transition keeps its microseconds"
        );
        assert!(
            patch.get("spec").is_none(),
            "the agent never writes the spec"
        );
    }
}
