//! One `vrrp_instance`, as the nodes' files define it, into one VirtualIP (and the Secret of its
//! v2 password). Settings the API holds once must agree between the files (a difference is a
//! conflict naming every file and line); priorities are per node, with `state MASTER` breaking
//! ties; preemption is taken from the nodes that can preempt.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube_vrrp_crds::{
    AuthType, Authentication, DurationString, Garp, PriorityRule, SecretKeyRef, Track, TrackFile,
    TrackInterface, TrackScript, VirtualIp, VirtualIpSpec, VrrpVersion,
};

use crate::model::{Instance, NodeConfig, Tracker};
use crate::names::object_name;
use crate::position::{Located, Position};
use crate::report::{ItemKind, Report, Severity};
use crate::script_rule;

use super::{HOSTNAME_LABEL, ORIGIN_ANNOTATION, Options, meta};

/// The API's highest priority (255 is the address owner's, which the API does not give).
const MAX_PRIORITY: u8 = 254;

/// A node's file and its definition of the instance.
pub type Member<'a> = (&'a NodeConfig, &'a Instance);

/// A merged instance.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The VirtualIP.
    pub vip: VirtualIp,
    /// The Secret holding its password.
    pub secret: Option<Secret>,
    /// Each member node's unicast address, for its Node's InternalIPs.
    pub unicast_addresses: Vec<(String, Located<IpAddr>)>,
    /// Its addresses.
    pub nets: Vec<IpNet>,
    /// The `vrrp_instance` lines.
    pub positions: Vec<Position>,
}

/// The settings every file must give the same value.
struct Agreed {
    vrid: u8,
    version: VrrpVersion,
    advert: Duration,
    addresses: Vec<IpNet>,
    accept: bool,
    password: Option<String>,
    unicast: bool,
    sync_group: Option<String>,
    vmac: bool,
    garp: Garp,
    track: Track,
}

/// Merges the members' definitions of instance `keepalived_name` into VirtualIP `name`; `None`
/// (with an error in the report) when the files disagree where the API needs one value.
pub fn merge(
    keepalived_name: &str,
    name: &str,
    members: &[Member<'_>],
    options: &Options,
    report: &mut Report,
) -> Option<Merged> {
    let what = format!("vrrp_instance {keepalived_name}");
    let agreed = agree(&what, members, report)?;
    let interface = interface(&what, members, report);
    let priorities = priorities(&what, members, report);
    let (preempt, preempt_delay) = preemption(&what, members, &priorities, report)?;
    let unicast_addresses = if agreed.unicast {
        unicast_addresses(&what, members, report)
    } else {
        Vec::new()
    };
    // acceptMode holds with both versions (RFC 3768 §6.4.3 is acceptMode: false), as keepalived's
    // accept / no_accept do.
    let accept_mode = agreed.accept;
    for (_, instance) in members {
        for tracker in &instance.trackers {
            if let Tracker::Script(s) = &tracker.value {
                report.warn(
                    ItemKind::Review,
                    &tracker.at,
                    script_rule::message(&format!("{what} (vrrp_script {})", s.name), &s.command),
                    Some(script_rule::ADVICE),
                );
            }
        }
    }

    let secret_name = format!("{name}-auth");
    let secret = agreed.password.as_ref().map(|p| Secret {
        metadata: meta(&secret_name, Some(&options.secret_namespace), &what),
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(p.clone().into_bytes()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    });
    let mut nodes: Vec<String> = members.iter().map(|(n, _)| n.node.clone()).collect();
    nodes.sort();
    let spec = VirtualIpSpec {
        addresses: agreed.addresses.iter().map(ToString::to_string).collect(),
        virtual_router_id: Some(agreed.vrid),
        interface,
        node_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: HOSTNAME_LABEL.to_owned(),
                operator: "In".to_owned(),
                values: Some(nodes),
            }]),
            match_labels: None,
        }),
        priorities: priorities
            .iter()
            .map(|(node, p)| PriorityRule {
                node_name: Some(node.clone()),
                node_selector: None,
                priority: *p,
            })
            .collect(),
        version: agreed.version,
        advert_interval: DurationString::from_duration(agreed.advert),
        preempt,
        preempt_delay: DurationString::from_duration(preempt_delay),
        accept_mode,
        authentication: agreed.password.as_ref().map(|_| Authentication {
            auth_type: AuthType::Pass,
            password_secret_ref: SecretKeyRef {
                namespace: options.secret_namespace.clone(),
                name: secret_name.clone(),
                key: "password".to_owned(),
            },
        }),
        unicast: agreed.unicast,
        garp: (agreed.garp != Garp::default()).then_some(agreed.garp),
        sync_group: agreed.sync_group,
        use_virtual_mac: agreed.vmac,
        track: (!agreed.track.is_empty()).then_some(agreed.track),
        virtual_router: None,
    };
    let mut vip = VirtualIp::new(name, spec);
    vip.metadata.annotations = Some(BTreeMap::from([(
        ORIGIN_ANNOTATION.to_owned(),
        what.clone(),
    )]));
    Some(Merged {
        vip,
        secret,
        unicast_addresses,
        nets: agreed.addresses,
        positions: members.iter().map(|(_, i)| i.at.clone()).collect(),
    })
}

/// The settings the files must agree on; every disagreement is reported, then `None`.
fn agree(what: &str, members: &[Member<'_>], report: &mut Report) -> Option<Agreed> {
    let mut a = Agreement {
        what,
        members,
        report,
        ok: true,
    };
    let vrid = a.one("virtual_router_id", |i| i.vrid.clone(), ToString::to_string);
    let version = a.one(
        "the VRRP version",
        |i| i.version.clone(),
        |v| v.as_str().to_owned(),
    );
    let advert = a.one("advert_int", |i| i.advert_interval.clone(), |d| seconds(*d));
    let addresses = a.one(
        "virtual_ipaddress",
        |i| {
            let mut set: Vec<IpNet> = i.addresses.iter().map(|a| a.value).collect();
            set.sort();
            Located::new(set, &i.addresses[0].at)
        },
        |v| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    let accept = a.one(
        "accept mode",
        |i| i.accept.clone(),
        |v| (if *v { "accept" } else { "no_accept" }).to_owned(),
    );
    let password = a.one(
        "auth_pass",
        |i| match &i.password {
            Some(p) => Located::new(Some(p.value.clone()), &p.at),
            None => Located::new(None, &i.at),
        },
        |p| {
            // Passwords are not printed: reports end up in tickets.
            match p {
                Some(p) => format!("a password of {} characters", p.chars().count()),
                None => "no authentication".to_owned(),
            }
        },
    );
    let unicast = a.one(
        "unicast",
        |i| match i.unicast_peers.first() {
            Some(p) => Located::new(true, &p.at),
            None => Located::new(false, &i.at),
        },
        |u| (if *u { "unicast" } else { "multicast" }).to_owned(),
    );
    let sync_group = a.one(
        "vrrp_sync_group",
        |i| match &i.sync_group {
            Some(g) => Located::new(Some(g.value.clone()), &g.at),
            None => Located::new(None, &i.at),
        },
        |g| g.clone().unwrap_or_else(|| "none".to_owned()),
    );
    let vmac = a.one(
        "use_vmac",
        |i| match &i.use_vmac {
            Some(at) => Located::new(true, at),
            None => Located::new(false, &i.at),
        },
        |v| (if *v { "use_vmac" } else { "no use_vmac" }).to_owned(),
    );
    let delay = a.one(
        "garp_master_delay",
        |i| i.garp.delay.clone(),
        |d| seconds(*d),
    );
    let repeat = a.one(
        "garp_master_repeat",
        |i| i.garp.repeat.clone(),
        ToString::to_string,
    );
    let refresh = a.one(
        "garp_master_refresh",
        |i| i.garp.refresh.clone(),
        |d| seconds(*d),
    );
    let track = a.one(
        "the tracked interfaces, scripts and files",
        |i| {
            let at = i.trackers.first().map_or(&i.at, |t| &t.at);
            Located::new(track(&i.trackers), at)
        },
        |t| {
            let mut names: Vec<String> = t.interfaces.iter().map(|i| i.name.clone()).collect();
            names.extend(t.files.iter().map(|f| f.path.clone()));
            names.extend(t.scripts.iter().map(|s| s.name.clone()));
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(" ")
            }
        },
    );
    if !a.ok {
        return None;
    }
    Some(Agreed {
        vrid: vrid?,
        version: version?,
        advert: advert?,
        addresses: addresses?,
        accept: accept?,
        password: password?,
        unicast: unicast?,
        sync_group: sync_group?,
        vmac: vmac?,
        garp: Garp {
            delay: DurationString::from_duration(delay?),
            repeat: repeat?,
            refresh: DurationString::from_duration(refresh?),
        },
        track: track?,
    })
}

/// A duration as keepalived writes it (seconds).
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// "One value for all files" checks; each difference is reported once.
struct Agreement<'a, 'm, 'r> {
    what: &'a str,
    members: &'a [Member<'m>],
    report: &'r mut Report,
    ok: bool,
}

impl Agreement<'_, '_, '_> {
    fn one<T: Clone + PartialEq>(
        &mut self,
        setting: &str,
        field: impl Fn(&Instance) -> Located<T>,
        show: impl Fn(&T) -> String,
    ) -> Option<T> {
        let values: Vec<(&str, Located<T>)> = self
            .members
            .iter()
            .map(|(n, i)| (n.node.as_str(), field(i)))
            .collect();
        let first = values.first()?.1.value.clone();
        if values.iter().all(|(_, v)| v.value == first) {
            return Some(first);
        }
        let mut distinct: Vec<&(&str, Located<T>)> = Vec::new();
        for v in &values {
            if !distinct.iter().any(|d| d.1.value == v.1.value) {
                distinct.push(v);
            }
        }
        let said: Vec<String> = distinct
            .iter()
            .map(|(node, v)| format!("{} on {node} ({})", show(&v.value), v.at))
            .collect();
        self.report.push(
            Severity::Error,
            ItemKind::Conflict,
            distinct.iter().map(|(_, v)| v.at.clone()).collect(),
            format!(
                "{}: the nodes' files disagree on {setting}: {}; not imported",
                self.what,
                said.join(", ")
            ),
            Some("make the files agree on it, then import again"),
        );
        self.ok = false;
        None
    }
}

/// The interface all files name; omitted (with a warning) when they differ.
fn interface(what: &str, members: &[Member<'_>], report: &mut Report) -> Option<String> {
    let names: BTreeSet<Option<&str>> = members
        .iter()
        .map(|(_, i)| i.interface.as_ref().map(|l| l.value.as_str()))
        .collect();
    if names.len() == 1 {
        return names.into_iter().next().flatten().map(str::to_owned);
    }
    let said: Vec<String> = members
        .iter()
        .map(|(n, i)| match &i.interface {
            Some(l) => format!("{} on {} ({})", l.value, n.node, l.at),
            None => format!("none on {} ({})", n.node, i.at),
        })
        .collect();
    report.push(
        Severity::Warning,
        ItemKind::Changed,
        members
            .iter()
            .map(|(_, i)| i.interface.as_ref().map_or(i.at.clone(), |l| l.at.clone()))
            .collect(),
        format!(
            "{what}: the nodes use different interfaces ({}); imported without an interface, so \
             each agent picks the interface whose subnet holds the VIP",
            said.join(", ")
        ),
        Some("rename the interfaces alike, or check that each node's subnet picks the right one"),
    );
    None
}

/// One node's priority while it is worked out.
struct Ranked {
    node: String,
    priority: u8,
    start_master: bool,
    at: Position,
}

/// Each member node's priority, in node-name order: 255 becomes 254, and a node with
/// `state MASTER` tied with others is put above them.
fn priorities(what: &str, members: &[Member<'_>], report: &mut Report) -> Vec<(String, u8)> {
    let mut ranked: Vec<Ranked> = members
        .iter()
        .map(|(n, i)| {
            let mut priority = i.priority.value;
            if priority > MAX_PRIORITY {
                report.warn(
                    ItemKind::Changed,
                    &i.priority.at,
                    format!(
                        "{what}: priority 255 (the address owner) is not a kube-vrrp priority; \
                         imported as {MAX_PRIORITY} for {}",
                        n.node
                    ),
                    Some("an owner holds the address without election; no equivalent"),
                );
                priority = MAX_PRIORITY;
            }
            Ranked {
                node: n.node.clone(),
                priority,
                start_master: i.start_master.is_some(),
                at: i
                    .start_master
                    .clone()
                    .unwrap_or_else(|| i.priority.at.clone()),
            }
        })
        .collect();
    for m in 0..ranked.len() {
        if !ranked[m].start_master {
            continue;
        }
        let p = ranked[m].priority;
        let tied: Vec<usize> = (0..ranked.len())
            .filter(|&i| i != m && ranked[i].priority == p && !ranked[i].start_master)
            .collect();
        if tied.is_empty() {
            continue;
        }
        let taken = |ranked: &[Ranked], q: u8| ranked.iter().any(|r| r.priority == q);
        let mut places = vec![ranked[m].at.clone()];
        places.extend(tied.iter().map(|&i| ranked[i].at.clone()));
        let others: Vec<String> = tied.iter().map(|&i| ranked[i].node.clone()).collect();
        let master = ranked[m].node.clone();
        let head = format!(
            "{what}: {master} has state MASTER and the same priority {p} as {}; keepalived's \
             state is only a start hint",
            others.join(", ")
        );
        let message = if p < MAX_PRIORITY && !taken(&ranked, p + 1) {
            ranked[m].priority = p + 1;
            format!(
                "{head}, so the order it meant is imported as priority {} for {master}",
                p + 1
            )
        } else if p > 1 && !taken(&ranked, p - 1) {
            for &i in &tied {
                ranked[i].priority = p - 1;
            }
            format!(
                "{head}, so the order it meant is imported as priority {} for {}",
                p - 1,
                others.join(", ")
            )
        } else {
            format!(
                "{head}; no free priority next to it, so imported tied (the higher address wins)"
            )
        };
        report.push(
            Severity::Warning,
            ItemKind::Changed,
            places,
            message,
            Some("give the preferred node a higher priority in its file"),
        );
    }
    let mut out: Vec<(String, u8)> = ranked.into_iter().map(|r| (r.node, r.priority)).collect();
    out.sort();
    out
}

/// Preemption for the VirtualIP: what the nodes that can preempt (all but those of the lowest
/// priority) say; they must agree.
fn preemption(
    what: &str,
    members: &[Member<'_>],
    priorities: &[(String, u8)],
    report: &mut Report,
) -> Option<(bool, Duration)> {
    let priority_of = |node: &str| {
        priorities
            .iter()
            .find(|(n, _)| n == node)
            .map_or(0, |(_, p)| *p)
    };
    let lowest = priorities.iter().map(|(_, p)| *p).min().unwrap_or(0);
    let relevant: Vec<&Member<'_>> = members
        .iter()
        .filter(|(n, _)| priority_of(&n.node) > lowest)
        .collect();
    // With every priority equal nobody preempts a tied master: any answer is the same.
    let all_tied = relevant.is_empty();
    let deciding: Vec<&Member<'_>> = if all_tied {
        members.iter().collect()
    } else {
        relevant
    };
    let mut conflict = |setting: &str, said: Vec<(String, Position)>| {
        report.push(
            Severity::Error,
            ItemKind::Conflict,
            said.iter().map(|(_, p)| p.clone()).collect(),
            format!(
                "{what}: the nodes that can preempt disagree on {setting}: {}; not imported",
                said.iter()
                    .map(|(s, p)| format!("{s} ({p})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some("make the files agree on it (a VirtualIP preempts the same way on every node)"),
        );
    };
    let preempts: BTreeSet<bool> = deciding.iter().map(|(_, i)| i.preempt.value).collect();
    let preempt = match (preempts.len(), all_tied) {
        (1, _) => preempts.contains(&true),
        (_, true) => true,
        _ => {
            conflict(
                "nopreempt",
                deciding
                    .iter()
                    .map(|(n, i)| {
                        let word = if i.preempt.value {
                            "preempt"
                        } else {
                            "nopreempt"
                        };
                        (format!("{word} on {}", n.node), i.preempt.at.clone())
                    })
                    .collect(),
            );
            return None;
        }
    };
    if !preempt {
        return Some((false, Duration::ZERO));
    }
    let delays: BTreeSet<Duration> = deciding
        .iter()
        .map(|(_, i)| i.preempt_delay.value)
        .collect();
    match (delays.len(), all_tied) {
        (1, _) => Some((true, delays.into_iter().next().unwrap_or_default())),
        (_, true) => Some((true, Duration::ZERO)),
        _ => {
            conflict(
                "preempt_delay",
                deciding
                    .iter()
                    .map(|(n, i)| {
                        (
                            format!("{} on {}", seconds(i.preempt_delay.value), n.node),
                            i.preempt_delay.at.clone(),
                        )
                    })
                    .collect(),
            );
            None
        }
    }
}

/// Each member's unicast address: its `unicast_src_ip`, else the one address the other files
/// name as a peer and its own file does not. Peer lists that differ from "every other member"
/// are reported.
fn unicast_addresses(
    what: &str,
    members: &[Member<'_>],
    report: &mut Report,
) -> Vec<(String, Located<IpAddr>)> {
    let mut out = Vec::new();
    for (node, instance) in members {
        if let Some(src) = &instance.unicast_src {
            out.push((node.node.clone(), src.clone()));
            continue;
        }
        let own: BTreeSet<IpAddr> = instance.unicast_peers.iter().map(|p| p.value).collect();
        let named: BTreeSet<IpAddr> = members
            .iter()
            .filter(|(n, _)| n.node != node.node)
            .flat_map(|(_, i)| i.unicast_peers.iter().map(|p| p.value))
            .filter(|ip| !own.contains(ip))
            .collect();
        if named.len() == 1
            && let Some(ip) = named.into_iter().next()
        {
            out.push((node.node.clone(), Located::new(ip, &instance.at)));
        } else {
            report.error(
                ItemKind::Review,
                &instance.at,
                format!(
                    "{what}: {} has no unicast_src_ip and its address cannot be told from the \
                     other files; the planner leaves a node without an InternalIP out of a \
                     unicast VirtualIP",
                    node.node
                ),
                Some(
                    "set unicast_src_ip in its file, or add its address to its Node \
                     (status.addresses, type InternalIP)",
                ),
            );
        }
    }
    for (node, instance) in members {
        let expected: BTreeSet<IpAddr> = out
            .iter()
            .filter(|(n, _)| *n != node.node)
            .map(|(_, a)| a.value)
            .collect();
        for peer in &instance.unicast_peers {
            if !expected.contains(&peer.value) {
                report.warn(
                    ItemKind::Changed,
                    &peer.at,
                    format!(
                        "{what}: peer {} of {} is none of the imported nodes; kube-vrrp sends \
                         adverts to the VirtualIP's nodes only, so it gets none",
                        peer.value, node.node
                    ),
                    Some("import that node's file too (or add a Node for it)"),
                );
            }
        }
        let listed: BTreeSet<IpAddr> = instance.unicast_peers.iter().map(|p| p.value).collect();
        for missing in expected.difference(&listed) {
            report.warn(
                ItemKind::Changed,
                &instance.at,
                format!(
                    "{what}: {} does not list {missing} as a peer, but kube-vrrp sends adverts \
                     to every node of the VirtualIP",
                    node.node
                ),
                None,
            );
        }
    }
    out
}

/// The trackers as the API's track lists.
fn track(trackers: &[Located<Tracker>]) -> Track {
    let mut t = Track::default();
    for tracker in trackers {
        match &tracker.value {
            Tracker::Interface { name, weight } => t.interfaces.push(TrackInterface {
                name: name.clone(),
                weight: *weight,
            }),
            Tracker::File { path, weight } => t.files.push(TrackFile {
                path: path.clone(),
                weight: *weight,
            }),
            Tracker::Script(s) => t.scripts.push(TrackScript {
                name: object_name(&s.name),
                command: s.command.clone(),
                interval: DurationString::from_duration(s.interval),
                timeout: DurationString::from_duration(s.timeout),
                rise: s.rise,
                fall: s.fall,
                weight: s.weight,
            }),
        }
    }
    t
}
