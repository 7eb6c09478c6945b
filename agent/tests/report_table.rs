//! The `kube-vrrp-agent status` table against a golden rendering.

#![allow(clippy::unwrap_used)] // fixture helpers parse literals

use jiff::Timestamp;
use kube_vrrp_agent::report::InstanceStatus;
use kube_vrrp_agent::report::table::render_at;
use kube_vrrp_agent::vrrp::instance::State;

fn status(
    name: &str,
    vrid: u8,
    state: State,
    master: Option<&str>,
    vips: &[&str],
    since: Option<&str>,
) -> InstanceStatus {
    InstanceStatus {
        name: name.into(),
        vrid,
        interface: "eth0".into(),
        version: 3,
        state,
        priority: 150,
        effective_priority: 140,
        master_address: master.map(|m| m.parse().unwrap()),
        vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
        transitions: 1,
        last_transition: since.map(|s| s.parse().unwrap()),
        message: None,
        holder_conflict: None,
    }
}

#[test]
fn status_table_matches_the_golden_rendering() {
    let now: Timestamp = "2026-11-22T04:00:00Z".parse().unwrap();
    let rows = [
        status(
            "web",
            51,
            State::Master,
            Some("10.0.0.11"),
            &["10.0.0.50/24", "10.0.0.51/24"],
            Some("2026-11-22T03:56:48Z"),
        ),
        status(
            "api-v6",
            7,
            State::Backup,
            Some("fe80::1"),
            &["fd00::7/64"],
            Some("2026-11-20T00:00:00Z"),
        ),
        status("batch", 200, State::Initialize, None, &[], None),
        status(
            "edge",
            12,
            State::Fault,
            None,
            &["192.0.2.1/32"],
            Some("2026-11-22T03:59:15Z"),
        ),
    ];
    let golden = "\
NAME     VRID   INTERFACE   STATE    PRIO   EFF   MASTER      VIPS                        AGE
web      51     eth0        MASTER   150    140   10.0.0.11   10.0.0.50/24,10.0.0.51/24   3m12s
api-v6   7      eth0        BACKUP   150    140   fe80::1     fd00::7/64                  2d4h
batch    200    eth0        INIT     150    140   -           -                           -
edge     12     eth0        FAULT    150    140   -           192.0.2.1/32                45s
";
    assert_eq!(render_at(&rows, now), golden);
}

#[test]
fn empty_status_renders_only_the_header() {
    let now: Timestamp = "2026-11-22T04:00:00Z".parse().unwrap();
    assert_eq!(
        render_at(&[], now),
        "NAME   VRID   INTERFACE   STATE   PRIO   EFF   MASTER   VIPS   AGE\n"
    );
}

#[test]
fn rejected_instances_render_under_their_own_header() {
    use kube_vrrp_agent::report::table::render_rejected;
    use kube_vrrp_crds::{RejectReason, RejectedInstance};
    assert_eq!(render_rejected(&[]), "", "nothing to say, nothing printed");
    let rejected = [
        RejectedInstance {
            name: "legacy".into(),
            reason: RejectReason::SecretUnavailable,
            message: "Secret kube-vrrp/vrrp-auth not found".into(),
            running_previous: false,
        },
        RejectedInstance {
            name: "web".into(),
            reason: RejectReason::Invalid,
            message: "advertInterval: 15ms is not a multiple of 10ms".into(),
            running_previous: true,
        },
    ];
    assert_eq!(
        render_rejected(&rejected),
        "REJECTED   REASON              RUNNING    MESSAGE\n\
         legacy     SecretUnavailable   no         Secret kube-vrrp/vrrp-auth not found\n\
         web        Invalid             previous   advertInterval: 15ms is not a multiple of 10ms\n"
    );
}
