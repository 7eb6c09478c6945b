//! Round trip through the planner: keepalived configurations generated for a cluster (nodes,
//! instances with VRIDs, priorities, intervals, VIPs, unicast peers, trackers, passwords,
//! GARP settings), written as each node's `keepalived.conf` in varied but valid layouts, are
//! imported, loaded the way the agent loads a manifests directory, and planned; every node's
//! planned instance must carry exactly the parameters its own file gives keepalived. The
//! expectation is computed from the generated model, never from the importer.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube_vrrp_crds::{
    DurationString, Track, TrackFile, TrackInterface, TrackScript, VrrpInstance, VrrpVersion,
};
use kube_vrrp_import::{Input, ItemKind, MemoryFiles, Options, Severity, import};
use kube_vrrp_plan::{PlanInput, parse_manifests, plan};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Cluster {
    nodes: usize,
    instances: Vec<Inst>,
    /// Brace on the keyword's line (else on the next line), per node.
    layouts: Vec<bool>,
    /// `vrrp_garp_master_delay` and `vrrp_garp_master_repeat` in `global_defs`.
    garp: Option<(u64, u32)>,
}

#[derive(Clone, Debug)]
struct Inst {
    vrid: u8,
    ipv6: bool,
    v3: bool,
    /// Centiseconds (v3) or seconds (v2).
    advert: u32,
    /// Priority of each node; `None`: the node does not run the instance.
    priorities: Vec<Option<u8>>,
    preempt: bool,
    preempt_delay: u64,
    unicast: bool,
    vips: Vec<u8>,
    password: Option<String>,
    track_interface: Option<(u8, Option<i32>)>,
    track_script: Option<(u64, u32, u32, Option<i32>)>,
    track_file: Option<FileWeight>,
}

/// A tracked file's weight (`None`: unweighted).
#[derive(Clone, Copy, Debug)]
struct FileWeight(Option<i32>);

fn weight() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![
        Just(None),
        (1i32..=50).prop_map(Some),
        (-50i32..=-1).prop_map(Some)
    ]
}

fn instance(nodes: usize) -> impl Strategy<Value = Inst> {
    (
        (1u8..=255, any::<bool>(), any::<bool>(), 1u32..=200),
        prop::collection::vec(prop::option::weighted(0.8, 1u8..=254), nodes),
        (any::<bool>(), 0u64..=3, any::<bool>()),
        prop::collection::btree_set(1u8..=250, 1..=3),
        prop::option::of("[a-z0-9]{1,8}"),
        (
            prop::option::of((1u8..=3, weight())),
            prop::option::of((1u64..=5, 1u32..=4, 1u32..=4, weight())),
            prop::option::of(weight().prop_map(FileWeight)),
        ),
    )
        .prop_map(
            |(
                (vrid, ipv6, v3, advert),
                priorities,
                (preempt, preempt_delay, unicast),
                vips,
                password,
                (ti, ts, tf),
            )| {
                let v3 = v3 || ipv6;
                Inst {
                    vrid,
                    ipv6,
                    v3,
                    advert: if v3 { advert } else { advert % 5 + 1 },
                    priorities,
                    preempt,
                    preempt_delay: if preempt { preempt_delay } else { 0 },
                    unicast,
                    vips: vips.into_iter().collect(),
                    password: if v3 { None } else { password },
                    track_interface: ti,
                    track_script: ts,
                    track_file: tf,
                }
            },
        )
        .prop_filter("an instance runs on at least one node", |i| {
            i.priorities.iter().any(Option::is_some)
        })
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (1usize..=4)
        .prop_flat_map(|nodes| {
            (
                Just(nodes),
                prop::collection::vec(instance(nodes), 1..=4),
                prop::collection::vec(any::<bool>(), nodes),
                prop::option::of((0u64..=10, 1u32..=10)),
            )
        })
        .prop_map(|(nodes, mut instances, layouts, garp)| {
            // VRIDs and VIPs are unique per family, as a working keepalived setup has them.
            let mut vrids = BTreeSet::new();
            let mut vips = BTreeSet::new();
            for inst in &mut instances {
                while !vrids.insert((inst.ipv6, inst.vrid)) {
                    inst.vrid = inst.vrid % 255 + 1;
                }
                inst.vips.retain(|v| vips.insert((inst.ipv6, *v)));
                if inst.vips.is_empty() {
                    let mut v = 251u8;
                    while !vips.insert((inst.ipv6, v)) {
                        v += 1;
                    }
                    inst.vips.push(v);
                }
            }
            Cluster {
                nodes,
                instances,
                layouts,
                garp,
            }
        })
}

fn node_name(n: usize) -> String {
    format!("n{}", n + 1)
}

fn node_address(n: usize, ipv6: bool) -> String {
    if ipv6 {
        format!("fd00::{}", n + 11)
    } else {
        format!("10.0.0.{}", n + 11)
    }
}

fn vip(v: u8, ipv6: bool) -> String {
    if ipv6 {
        format!("fd00::1:{v:x}/64")
    } else {
        format!("10.0.1.{v}/24")
    }
}

/// Unicast needs a peer: with one member keepalived runs multicast.
fn unicast(inst: &Inst) -> bool {
    inst.unicast && inst.priorities.iter().filter(|p| p.is_some()).count() > 1
}

fn advert(inst: &Inst) -> Duration {
    if inst.v3 {
        Duration::from_millis(u64::from(inst.advert) * 10)
    } else {
        Duration::from_secs(u64::from(inst.advert))
    }
}

/// Node `n`'s keepalived.conf.
fn render(cluster: &Cluster, n: usize) -> String {
    let open = |c: &mut String, head: &str| {
        if cluster.layouts[n] {
            let _ = writeln!(c, "{head} {{");
        } else {
            let _ = writeln!(c, "{head}\n{{   # brace on its own line");
        }
    };
    let mut c = String::new();
    let _ = writeln!(c, "! generated for {}", node_name(n));
    open(&mut c, "global_defs");
    let _ = writeln!(c, "    router_id {}", node_name(n));
    if let Some((delay, repeat)) = cluster.garp {
        let _ = writeln!(
            c,
            "    vrrp_garp_master_delay {delay}\n    vrrp_garp_master_repeat {repeat}"
        );
    }
    let _ = writeln!(c, "}}");
    for (i, inst) in cluster.instances.iter().enumerate() {
        let Some(priority) = inst.priorities[n] else {
            continue;
        };
        if let Some((interval, rise, fall, weight)) = inst.track_script {
            open(&mut c, &format!("vrrp_script chk_{i}"));
            let _ = writeln!(c, "    script \"/usr/local/bin/check --instance {i}\"");
            let _ = writeln!(
                c,
                "    interval {interval}\n    rise {rise}\n    fall {fall}"
            );
            if let Some(w) = weight {
                let _ = writeln!(c, "    weight {w}");
            }
            let _ = writeln!(c, "}}");
        }
        if let Some(FileWeight(weight)) = inst.track_file {
            open(&mut c, &format!("track_file file_{i}"));
            let _ = writeln!(
                c,
                "    file \"/run/track/{i}\"\n    weight {}",
                weight.unwrap_or(0)
            );
            let _ = writeln!(c, "}}");
        }
        open(&mut c, &format!("vrrp_instance VI_{i}"));
        let members: Vec<usize> = (0..cluster.nodes)
            .filter(|&m| inst.priorities[m].is_some())
            .collect();
        let highest = members.iter().filter_map(|&m| inst.priorities[m]).max();
        let unique_highest = members
            .iter()
            .filter(|&&m| inst.priorities[m] == highest)
            .count()
            == 1;
        // state MASTER only where it changes nothing: on the one highest node, with preemption.
        let state = if inst.preempt
            && inst.preempt_delay == 0
            && unique_highest
            && Some(priority) == highest
        {
            "MASTER"
        } else {
            "BACKUP"
        };
        let _ = writeln!(
            c,
            "    state {state}\n    interface eth0\n    virtual_router_id {}",
            inst.vrid
        );
        let _ = writeln!(c, "    priority {priority}");
        let _ = writeln!(c, "    version {}", if inst.v3 { 3 } else { 2 });
        let interval = if inst.v3 {
            format!("{}.{:02}", inst.advert / 100, inst.advert % 100)
        } else {
            inst.advert.to_string()
        };
        let _ = writeln!(c, "    advert_int {interval}");
        if !inst.preempt {
            let _ = writeln!(c, "    nopreempt");
        } else if inst.preempt_delay > 0 {
            let _ = writeln!(c, "    preempt_delay {}", inst.preempt_delay);
        }
        if let Some(p) = &inst.password {
            let _ = writeln!(
                c,
                "    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}"
            );
        }
        if unicast(inst) {
            let _ = writeln!(c, "    unicast_src_ip {}", node_address(n, inst.ipv6));
            let _ = writeln!(c, "    unicast_peer {{");
            for &m in members.iter().filter(|&&m| m != n) {
                let _ = writeln!(c, "        {}", node_address(m, inst.ipv6));
            }
            let _ = writeln!(c, "    }}");
        }
        let _ = writeln!(c, "    virtual_ipaddress {{");
        for v in &inst.vips {
            let _ = writeln!(c, "        {}   # VIP", vip(*v, inst.ipv6));
        }
        let _ = writeln!(c, "    }}");
        if let Some((ifx, weight)) = inst.track_interface {
            match weight {
                Some(w) => {
                    let _ = writeln!(c, "    track_interface {{ eth{ifx} weight {w} }}");
                }
                None => {
                    let _ = writeln!(c, "    track_interface {{\n        eth{ifx}\n    }}");
                }
            }
        }
        if inst.track_script.is_some() {
            let _ = writeln!(c, "    track_script {{\n        chk_{i}\n    }}");
        }
        if inst.track_file.is_some() {
            let _ = writeln!(c, "    track_file {{\n        file_{i}\n    }}");
        }
        let _ = writeln!(c, "}}");
    }
    c
}

/// What node `n` runs for instance `inst` according to its own file.
fn expected_track(i: usize, inst: &Inst) -> Track {
    let mut t = Track::default();
    if let Some((ifx, weight)) = inst.track_interface {
        t.interfaces.push(TrackInterface {
            name: format!("eth{ifx}"),
            weight,
        });
    }
    if let Some(FileWeight(weight)) = inst.track_file {
        t.files.push(TrackFile {
            path: format!("/run/track/{i}"),
            weight,
        });
    }
    if let Some((interval, rise, fall, weight)) = inst.track_script {
        t.scripts.push(TrackScript {
            name: format!("chk-{i}"),
            command: vec![
                "/usr/local/bin/check".into(),
                "--instance".into(),
                i.to_string(),
            ],
            interval: DurationString::from_duration(Duration::from_secs(interval)),
            timeout: DurationString::from_duration(Duration::from_secs(interval)),
            rise,
            fall,
            weight,
        });
    }
    t
}

fn check_instance(cluster: &Cluster, n: usize, i: usize, planned: &VrrpInstance) {
    let inst = &cluster.instances[i];
    let what = format!("{} VI_{i}", node_name(n));
    assert_eq!(planned.virtual_router_id, inst.vrid, "{what}: VRID");
    assert_eq!(
        Some(planned.priority),
        inst.priorities[n],
        "{what}: priority"
    );
    assert_eq!(
        planned.version,
        if inst.v3 {
            VrrpVersion::V3
        } else {
            VrrpVersion::V2
        },
        "{what}: version"
    );
    assert_eq!(
        planned.advert_interval.parse().unwrap(),
        advert(inst),
        "{what}: advert_int"
    );
    let addresses: BTreeSet<String> = planned.addresses.iter().cloned().collect();
    let vips: BTreeSet<String> = inst.vips.iter().map(|v| vip(*v, inst.ipv6)).collect();
    assert_eq!(addresses, vips, "{what}: VIPs");
    let peers: BTreeSet<String> = planned.unicast_peers.iter().cloned().collect();
    let expected_peers: BTreeSet<String> = if unicast(inst) {
        (0..cluster.nodes)
            .filter(|&m| m != n && inst.priorities[m].is_some())
            .map(|m| node_address(m, inst.ipv6))
            .collect()
    } else {
        BTreeSet::new()
    };
    assert_eq!(peers, expected_peers, "{what}: unicast peers");
    assert_eq!(planned.track, expected_track(i, inst), "{what}: trackers");
    assert_eq!(planned.preempt, inst.preempt, "{what}: preempt");
    assert_eq!(
        planned.preempt_delay.parse().unwrap(),
        Duration::from_secs(inst.preempt_delay),
        "{what}: preempt_delay"
    );
    assert_eq!(
        planned.authentication.is_some(),
        inst.password.is_some(),
        "{what}: authentication"
    );
    assert_eq!(
        planned.interface.as_deref(),
        Some("eth0"),
        "{what}: interface"
    );
    let (delay, repeat) = cluster.garp.unwrap_or((5, 5));
    assert_eq!(
        planned.garp.delay.parse().unwrap(),
        Duration::from_secs(delay),
        "{what}: garp delay"
    );
    assert_eq!(planned.garp.repeat, repeat, "{what}: garp repeat");
}

fn round_trip(cluster: &Cluster) {
    let mut files = MemoryFiles::new();
    let mut inputs = Vec::new();
    for n in 0..cluster.nodes {
        let file = format!("{}.conf", node_name(n));
        files = files.with(&file, render(cluster, n));
        inputs.push(Input::new(&node_name(n), PathBuf::from(file)));
    }
    let outcome = import(&inputs, &mut files, &Options::default()).unwrap();
    for item in &outcome.report.items {
        // The only thing such a configuration must report is the script path rule.
        assert!(
            item.severity == Severity::Warning && item.kind == ItemKind::Review,
            "unexpected report item: {item}\n{}",
            render(cluster, 0)
        );
    }
    let manifests = parse_manifests(Path::new("imported.yaml"), &outcome.yaml).unwrap();
    let planned = plan(&PlanInput::from(manifests));
    assert!(planned.conflicts.is_empty(), "{:?}", planned.conflicts);
    for n in 0..cluster.nodes {
        let spec = planned.nodes.get(&node_name(n));
        for (i, inst) in cluster.instances.iter().enumerate() {
            let found = spec.and_then(|s| s.instances.iter().find(|p| p.name == format!("vi-{i}")));
            match (inst.priorities[n], found) {
                (Some(_), Some(planned)) => check_instance(cluster, n, i, planned),
                (None, None) => {}
                (Some(_), None) => panic!("{} lost VI_{i}", node_name(n)),
                (None, Some(_)) => {
                    panic!("{} got VI_{i}, which its file does not have", node_name(n))
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_node_plans_the_parameters_its_keepalived_conf_gives_keepalived(cluster in cluster()) {
        round_trip(&cluster);
    }
}
