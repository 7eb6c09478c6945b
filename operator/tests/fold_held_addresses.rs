//! Held addresses: a MASTER report counts for a VirtualIP only when the node holds the
//! VirtualIP's addresses, so a shared virtual router's MASTER that has not added a new
//! member's address yet neither shows as its MASTER nor gives its Service an ingress.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube_vrrp_crds::{
    InstanceStatus, State, VirtualIp, VirtualIpPhase, VirtualIpSpec, VrrpNode, VrrpNodeSpec,
    VrrpNodeStatus, condition,
};
use kube_vrrp_operator::fold::{FoldConfig, Placement, condition_status, fold};
use kube_vrrp_operator::load_balancer::status::ingress;
use kube_vrrp_operator::load_balancer::{Assigned, ServiceOutcome, virtual_ip_name};

const ROUTER: &str = "lan-ipv4-0";
const ADDRESS: &str = "192.168.77.5";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn member() -> VirtualIp {
    let address = ADDRESS.parse().unwrap();
    VirtualIp::new(
        &virtual_ip_name(address),
        serde_json::from_value::<VirtualIpSpec>(serde_json::json!({
            "addresses": [format!("{ADDRESS}/32")],
            "virtualRouter": ROUTER,
        }))
        .unwrap(),
    )
}

/// `node`'s fresh report of `instance` in `state`, holding `held`.
fn report(node: &str, instance: &str, state: State, held: &[&str]) -> VrrpNode {
    let mut n = VrrpNode::new(node, VrrpNodeSpec::default());
    n.status = Some(VrrpNodeStatus {
        heartbeat_time: Some(MicroTime(now() - SignedDuration::from_secs(2))),
        instances: vec![InstanceStatus {
            name: instance.to_owned(),
            state,
            priority: 100,
            effective_priority: 100,
            master_address: None,
            transitions: 1,
            last_transition_time: Some(MicroTime(now() - SignedDuration::from_secs(60))),
            vips_held: held.iter().map(|h| (*h).to_owned()).collect(),
            message: None,
            holder_conflict: None,
        }],
        ..VrrpNodeStatus::default()
    });
    n
}

fn placement(instance: Option<&str>) -> Placement {
    Placement {
        virtual_router_id: Some(7),
        selected: ["a".to_owned(), "b".to_owned()].into(),
        conflict: None,
        instance: instance.map(str::to_owned),
        unwritten: std::collections::BTreeMap::new(),
    }
}

fn service_outcome(vip: &VirtualIp) -> ServiceOutcome {
    ServiceOutcome {
        addresses: vec![Assigned {
            address: ADDRESS.parse().unwrap(),
            virtual_ip: vip.metadata.name.clone().unwrap(),
            pool: "lan".to_owned(),
            new: true,
        }],
        failures: Vec::new(),
    }
}

/// (what, the instance nodes report (`None`: the VirtualIP's own), what MASTER a holds,
/// expected MASTER, phase, listed nodes, Degraded reason)
type Row = (
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    Option<&'static str>,
    VirtualIpPhase,
    &'static [&'static str],
    &'static str,
);

#[test]
fn a_master_counts_for_a_virtual_ip_only_while_it_holds_its_addresses() {
    let rows: [Row; 6] = [
        (
            "router MASTER before it added the member's address",
            Some(ROUTER),
            &["192.168.77.1/32", "192.168.77.2/32"],
            None,
            VirtualIpPhase::Pending,
            &["b"],
            "AddressNotHeld",
        ),
        (
            "router MASTER holding nothing",
            Some(ROUTER),
            &[],
            None,
            VirtualIpPhase::Pending,
            &["b"],
            "AddressNotHeld",
        ),
        (
            "router MASTER holding the address among others",
            Some(ROUTER),
            &["192.168.77.1/32", "192.168.77.5/32"],
            Some("a"),
            VirtualIpPhase::Ready,
            &["a", "b"],
            "AllNodesHealthy",
        ),
        (
            "router MASTER holding the address written without a prefix",
            Some(ROUTER),
            &["192.168.77.5"],
            Some("a"),
            VirtualIpPhase::Ready,
            &["a", "b"],
            "AllNodesHealthy",
        ),
        (
            "own instance's MASTER still holding a previous address",
            None,
            &["192.168.77.4/32"],
            None,
            VirtualIpPhase::Pending,
            &["b"],
            "AddressNotHeld",
        ),
        (
            "own instance's MASTER holding its address",
            None,
            &["192.168.77.5/32"],
            Some("a"),
            VirtualIpPhase::Ready,
            &["a", "b"],
            "AllNodesHealthy",
        ),
    ];
    for (what, instance, held, master, phase, listed, degraded) in rows {
        let vip = member();
        let name = vip.metadata.name.clone().unwrap();
        let reported = instance.unwrap_or(&name);
        let nodes = [
            report("a", reported, State::Master, held),
            report("b", reported, State::Backup, &[]),
        ];
        let f = fold(
            now(),
            &FoldConfig::default(),
            &vip,
            &placement(instance),
            &nodes,
        );
        assert_eq!(f.status.master.as_deref(), master, "{what}: master");
        assert_eq!(f.status.state, Some(phase), "{what}: phase");
        let names: Vec<&str> = f.status.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, listed, "{what}: listed nodes");
        let d = f
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::DEGRADED)
            .unwrap();
        assert_eq!(d.reason, degraded, "{what}: Degraded");
        if degraded == "AddressNotHeld" {
            assert_eq!(
                d.message,
                format!("a is MASTER of {reported} but does not hold {ADDRESS} yet"),
                "{what}"
            );
            let ready = f
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::READY)
                .unwrap();
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "AddressNotHeld"),
                "{what}"
            );
            assert_eq!(
                ready.message,
                format!(
                    "a is MASTER of {reported} but has not added the addresses of VirtualIP {name} yet"
                ),
                "{what}"
            );
            assert_eq!(
                condition_status(&f.status.conditions, condition::SPLIT_BRAIN),
                Some("False"),
                "{what}"
            );
        }
        // The Service's ingress follows: shown only once a MASTER holds the address.
        let answering = !f.fresh_masters.is_empty();
        let shown = ingress(
            &service_outcome(&vip),
            |v| answering && v == name,
            |_| true,
            &[],
        );
        assert_eq!(
            shown.len(),
            usize::from(master.is_some()),
            "{what}: ingress"
        );
    }
}
