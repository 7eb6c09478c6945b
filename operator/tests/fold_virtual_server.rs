//! VirtualServer status folding: table tests over health checks, quorum, a missing MASTER,
//! conflicts and condition times.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_vrrp_crds::{
    CheckerKind, CheckerStatus, IpvsRealServerStatus, IpvsServiceStatus, IpvsStatus, Protocol,
    ResolvedRealServer, ResolvedVirtualServer, VirtualServer, VirtualServerSpec,
    VirtualServerStatus, VrrpNodeStatus, condition,
};
use kube_vrrp_operator::fold::{ConflictNote, ServerView, fold_virtual_server};
use serde_json::json;

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn vs(health_check: bool, quorum: Option<u32>) -> VirtualServer {
    let mut spec = json!({"virtualIPRef": "web", "port": 80});
    if health_check {
        spec["healthCheck"] = json!({"tcp": {}});
    }
    if let Some(q) = quorum {
        spec["quorum"] = json!(q);
    }
    let mut v = VirtualServer::new(
        "http",
        serde_json::from_value::<VirtualServerSpec>(spec).unwrap(),
    );
    v.metadata.generation = Some(2);
    v
}

fn resolved(server: &VirtualServer, weights: &[u32]) -> ResolvedVirtualServer {
    serde_json::from_value(json!({
        "name": "http", "virtualIP": "web", "addresses": ["10.0.0.50"], "port": 80,
        "protocol": "TCP", "scheduler": "wlc", "forwarding": "NAT",
        "quorum": server.spec.quorum,
        "healthCheck": server.spec.health_check,
        "realServers": weights.iter().enumerate().map(|(i, w)| json!({
            "address": format!("10.1.0.{}", i + 1), "port": 8080, "weight": w
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn check(target: &str, healthy: bool) -> CheckerStatus {
    CheckerStatus {
        kind: CheckerKind::RealServer,
        owner: "http".to_owned(),
        target: target.to_owned(),
        healthy,
        last_transition_time: Some(Time(now() - SignedDuration::from_secs(30))),
        message: (!healthy).then(|| "connection refused".to_owned()),
    }
}

/// The MASTER's IPVS report: `resolved` programmed with its real servers at their weights.
fn ipvs_of(resolved: &ResolvedVirtualServer) -> IpvsStatus {
    IpvsStatus {
        available: true,
        services: 1,
        real_servers: resolved.real_servers.len() as u32,
        message: None,
        virtual_services: resolved
            .addresses
            .iter()
            .map(|a| IpvsServiceStatus {
                virtual_server: resolved.name.clone(),
                address: a.clone(),
                port: resolved.port,
                protocol: Protocol::Tcp,
                programmed: true,
                message: None,
                real_servers: resolved
                    .real_servers
                    .iter()
                    .map(|r| IpvsRealServerStatus {
                        address: r.address.clone(),
                        port: r.port,
                        weight: r.weight,
                        active_connections: 0,
                        inactive_connections: 0,
                        draining: r.draining,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn report_for(resolved: &ResolvedVirtualServer, checks: Vec<CheckerStatus>) -> VrrpNodeStatus {
    VrrpNodeStatus {
        checkers: checks,
        ipvs: Some(ipvs_of(resolved)),
        ..VrrpNodeStatus::default()
    }
}

fn cond<'a>(s: &'a VirtualServerStatus, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = s.conditions.iter().find(|c| c.type_ == t).unwrap();
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn folding_table_over_checks_and_quorum() {
    struct Row {
        what: &'static str,
        health_check: bool,
        quorum: Option<u32>,
        weights: Vec<u32>,
        checks: Vec<CheckerStatus>,
        summary: &'static str,
        weights_out: Vec<u32>,
        available: (&'static str, &'static str),
        degraded: (&'static str, &'static str),
    }
    let rows = vec![
        Row {
            what: "no health check: all healthy",
            health_check: false,
            quorum: None,
            weights: vec![1, 1],
            checks: vec![],
            summary: "2/2",
            weights_out: vec![1, 1],
            available: ("True", "Serving"),
            degraded: ("False", "AllRealServersHealthy"),
        },
        Row {
            what: "one of two failing",
            health_check: true,
            quorum: None,
            weights: vec![3, 2],
            checks: vec![check("10.1.0.1:8080", true), check("10.1.0.2:8080", false)],
            summary: "1/2",
            weights_out: vec![3, 2],
            available: ("True", "Serving"),
            degraded: ("True", "RealServersUnhealthy"),
        },
        Row {
            what: "healthy weight below quorum",
            health_check: true,
            quorum: Some(4),
            weights: vec![3, 2],
            checks: vec![check("10.1.0.1:8080", true), check("10.1.0.2:8080", false)],
            summary: "1/2",
            weights_out: vec![3, 2],
            available: ("False", "BelowQuorum"),
            degraded: ("True", "RealServersUnhealthy"),
        },
        Row {
            what: "quorum met exactly",
            health_check: true,
            quorum: Some(5),
            weights: vec![3, 2],
            checks: vec![check("10.1.0.1:8080", true), check("10.1.0.2:8080", true)],
            summary: "2/2",
            weights_out: vec![3, 2],
            available: ("True", "Serving"),
            degraded: ("False", "AllRealServersHealthy"),
        },
        Row {
            what: "not checked yet counts as unhealthy",
            health_check: true,
            quorum: None,
            weights: vec![1],
            checks: vec![],
            summary: "0/1",
            weights_out: vec![1],
            available: ("False", "NoHealthyRealServer"),
            degraded: ("True", "RealServersUnhealthy"),
        },
        Row {
            what: "checks of another owner or kind are ignored",
            health_check: true,
            quorum: None,
            weights: vec![1],
            checks: vec![
                CheckerStatus {
                    owner: "other".to_owned(),
                    ..check("10.1.0.1:8080", true)
                },
                CheckerStatus {
                    kind: CheckerKind::Script,
                    ..check("10.1.0.1:8080", true)
                },
            ],
            summary: "0/1",
            weights_out: vec![1],
            available: ("False", "NoHealthyRealServer"),
            degraded: ("True", "RealServersUnhealthy"),
        },
        Row {
            what: "no real servers",
            health_check: false,
            quorum: None,
            weights: vec![],
            checks: vec![],
            summary: "0/0",
            weights_out: vec![],
            available: ("False", "NoHealthyRealServer"),
            degraded: ("False", "AllRealServersHealthy"),
        },
    ];
    for row in rows {
        let server = vs(row.health_check, row.quorum);
        let planned = resolved(&server, &row.weights);
        let status_report = report_for(&planned, row.checks);
        let status = fold_virtual_server(
            now(),
            &server,
            &ServerView {
                conflict: None,
                resolved: Some(&planned),
                master: Some(("n1", &status_report)),
            },
        );
        let what = row.what;
        assert_eq!(
            status.healthy_summary.as_deref(),
            Some(row.summary),
            "{what}"
        );
        let weights: Vec<u32> = status.real_servers.iter().map(|r| r.weight).collect();
        assert_eq!(weights, row.weights_out, "{what}");
        let available = cond(&status, condition::AVAILABLE);
        assert_eq!(
            (available.0, available.1),
            row.available,
            "{what}: {}",
            available.2
        );
        let degraded = cond(&status, condition::DEGRADED);
        assert_eq!(
            (degraded.0, degraded.1),
            row.degraded,
            "{what}: {}",
            degraded.2
        );
        assert_eq!(status.observed_generation, Some(2), "{what}");
    }
}

#[test]
fn messages_name_failing_real_servers_and_the_quorum() {
    let v = vs(true, Some(4));
    let r = resolved(&v, &[3, 2, 1]);
    let rep = report_for(
        &r,
        vec![check("10.1.0.1:8080", true), check("10.1.0.2:8080", false)],
    );
    let s = fold_virtual_server(
        now(),
        &v,
        &ServerView {
            conflict: None,
            resolved: Some(&r),
            master: Some(("n1", &rep)),
        },
    );
    assert_eq!(
        cond(&s, condition::AVAILABLE).2,
        "healthy weight 3 is below the quorum of 4"
    );
    assert_eq!(
        cond(&s, condition::DEGRADED).2,
        "10.1.0.2:8080 (connection refused); 10.1.0.3:8080 (no health check result from n1 yet)"
    );
    assert_eq!(
        s.real_servers[0].last_transition_time,
        Some(Time(now() - SignedDuration::from_secs(30)))
    );
}

#[test]
fn ipv6_targets_in_brackets_match() {
    let v = vs(true, None);
    let mut r = resolved(&v, &[1]);
    r.real_servers = vec![ResolvedRealServer {
        address: "fd00::1".to_owned(),
        port: 80,
        weight: 1,
        ..ResolvedRealServer::default()
    }];
    let rep = report_for(&r, vec![check("[fd00::1]:80", true)]);
    let s = fold_virtual_server(
        now(),
        &v,
        &ServerView {
            conflict: None,
            resolved: Some(&r),
            master: Some(("n1", &rep)),
        },
    );
    assert!(s.real_servers[0].healthy);
}

#[test]
fn without_master_plan_or_with_a_conflict_nothing_is_served() {
    let v = vs(false, None);
    let r = resolved(&v, &[1]);
    let conflict = ConflictNote {
        reason: "DuplicateService",
        message: "VirtualServer 'a' already serves TCP port 80 on VirtualIP 'web'".to_owned(),
    };
    let cases = [
        (
            ServerView {
                conflict: Some(&conflict),
                resolved: None,
                master: None,
            },
            "DuplicateService",
        ),
        (
            ServerView {
                conflict: None,
                resolved: None,
                master: None,
            },
            "NotDeployed",
        ),
        (
            ServerView {
                conflict: None,
                resolved: Some(&r),
                master: None,
            },
            "NoMaster",
        ),
    ];
    for (view, reason) in cases {
        let s = fold_virtual_server(now(), &v, &view);
        assert_eq!(cond(&s, condition::AVAILABLE).0, "False", "{reason}");
        assert_eq!(cond(&s, condition::AVAILABLE).1, reason);
        assert_eq!(
            cond(&s, condition::PROGRAMMED),
            cond(&s, condition::AVAILABLE)
        );
        assert_eq!(cond(&s, condition::DEGRADED).1, "NotServing", "{reason}");
        assert!(
            s.real_servers.is_empty() && s.healthy_summary.is_none(),
            "{reason}"
        );
    }
}

#[test]
fn refolding_keeps_condition_times_until_a_flip() {
    let mut v = vs(true, None);
    let r = resolved(&v, &[1]);
    let up = report_for(&r, vec![check("10.1.0.1:8080", true)]);
    let view = |rep| ServerView {
        conflict: None,
        resolved: Some(&r),
        master: Some(("n1", rep)),
    };
    let first = fold_virtual_server(now(), &v, &view(&up));
    v.status = Some(serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap());
    let later = now() + SignedDuration::from_secs(600);
    assert_eq!(fold_virtual_server(later, &v, &view(&up)), first);
    let down = report_for(&r, vec![check("10.1.0.1:8080", false)]);
    let flipped = fold_virtual_server(later, &v, &view(&down));
    let a = flipped
        .conditions
        .iter()
        .find(|c| c.type_ == condition::AVAILABLE)
        .unwrap();
    assert_eq!(a.last_transition_time, Time(later));
}

#[test]
fn nothing_is_available_unless_the_master_reports_it_programmed() {
    let v = vs(false, None);
    let r = resolved(&v, &[1, 1]);
    let fold = |rep: &VrrpNodeStatus| {
        fold_virtual_server(
            now(),
            &v,
            &ServerView {
                conflict: None,
                resolved: Some(&r),
                master: Some(("n1", rep)),
            },
        )
    };
    // A MASTER that reports no IPVS at all: not Available (this used to say Serving).
    let silent = VrrpNodeStatus::default();
    let s = fold(&silent);
    assert_eq!(cond(&s, condition::PROGRAMMED).0, "False");
    assert_eq!(
        (
            cond(&s, condition::AVAILABLE).0,
            cond(&s, condition::AVAILABLE).1
        ),
        ("False", "NotReported")
    );
    assert!(
        s.real_servers
            .iter()
            .all(|r| !r.programmed && r.weight == 0)
    );

    // IPVS missing on the MASTER.
    let missing = VrrpNodeStatus {
        ipvs: Some(IpvsStatus {
            available: false,
            message: Some("the kernel has no generic netlink family IPVS".into()),
            ..IpvsStatus::default()
        }),
        ..VrrpNodeStatus::default()
    };
    let s = fold(&missing);
    let (status, reason, message) = cond(&s, condition::AVAILABLE);
    assert_eq!((status, reason), ("False", "IPVSUnavailable"));
    assert!(
        message.contains("no generic netlink family IPVS"),
        "{message}"
    );

    // Listed but not programmed (a foreign service holds the address).
    let mut held = report_for(&r, vec![]);
    if let Some(ipvs) = held.ipvs.as_mut() {
        ipvs.virtual_services[0].programmed = false;
        ipvs.virtual_services[0].message =
            Some("TCP 10.0.0.50:80 is in the kernel but was not created by kube-vrrp".into());
        ipvs.virtual_services[0].real_servers.clear();
    }
    let s = fold(&held);
    let (status, reason, message) = cond(&s, condition::PROGRAMMED);
    assert_eq!((status, reason), ("False", "NotProgrammed"));
    assert!(message.contains("not created by kube-vrrp"));
    assert_eq!(cond(&s, condition::AVAILABLE).0, "False");

    // Programmed: Programmed and Available, real servers with the kernel's weights.
    let s = fold(&report_for(&r, vec![]));
    assert_eq!(cond(&s, condition::PROGRAMMED).0, "True");
    assert_eq!(
        cond(&s, condition::AVAILABLE),
        ("True", "Serving", "n1 serves 2 of 2 real servers")
    );
    assert!(s.real_servers.iter().all(|r| r.programmed && r.weight == 1));
}

#[test]
fn a_draining_real_server_is_shown_and_serves_nothing() {
    let v = vs(false, None);
    let mut r = resolved(&v, &[1, 0]);
    r.real_servers[1].draining = true;
    let rep = report_for(&r, vec![]);
    let s = fold_virtual_server(
        now(),
        &v,
        &ServerView {
            conflict: None,
            resolved: Some(&r),
            master: Some(("n1", &rep)),
        },
    );
    assert!(s.real_servers[1].draining && s.real_servers[1].weight == 0);
    assert_eq!(
        cond(&s, condition::AVAILABLE).2,
        "n1 serves 1 of 2 real servers"
    );
}
