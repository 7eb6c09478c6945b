//! A `vrrp_instance` block as keepalived runs it: its keywords, then keepalived's own rules
//! (version from `vrrp_version` or the address family, advert interval rounding, `state MASTER`
//! clearing `nopreempt` and `preempt_delay`, strict mode, accept mode defaults).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use kube_vrrp_crds::VrrpVersion;

use crate::ast::Statement;
use crate::keywords::{Context, report_untranslated};
use crate::model::{Garp, Instance, Tracker};
use crate::position::{Located, Position};
use crate::report::{ItemKind, Report};

use super::Definitions;
use super::tracking::{self, Membership, WeightRule};
use super::values::{flag, refuse, timer, unsigned, value};

/// keepalived's priority when none is written.
const DEFAULT_PRIORITY: u8 = 100;
/// keepalived's address-owner priority.
const OWNER: u8 = 255;

/// A `virtual_ipaddress` entry.
struct Vip {
    net: IpNet,
    dev: Option<String>,
    at: Position,
}

/// What the block says, before keepalived's rules are applied.
struct Written {
    start_master: Option<Position>,
    interface: Option<Located<String>>,
    vrid: Option<Located<u8>>,
    priority: Option<Located<u8>>,
    advert: Option<Located<Duration>>,
    version: Option<Located<VrrpVersion>>,
    nopreempt: Option<Position>,
    preempt_delay: Option<Located<Duration>>,
    accept: Option<Located<bool>>,
    strict: Option<Located<bool>>,
    auth: Option<(Position, Option<String>, Option<String>)>,
    unicast_src: Option<Located<IpAddr>>,
    unicast_peers: Vec<Located<IpAddr>>,
    vips: Vec<Vip>,
    use_vmac: Option<Position>,
    garp_delay: Option<Located<Duration>>,
    garp_repeat: Option<Located<u32>>,
    garp_refresh: Option<Located<Duration>>,
    track_lists: Vec<Statement>,
}

/// Reads one `vrrp_instance` block; `None` when keepalived would not run it.
pub(super) fn read(
    block: &Statement,
    defs: &Definitions,
    membership: &Membership,
    report: &mut Report,
) -> Option<Instance> {
    if block.words.len() != 2 {
        report.error(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{:?}: the instance name has a space; keepalived skips this block ('vrrp_instance \
                 must have a name'), and so does import",
                block.text()
            ),
            Some("write the name as one word, e.g. VI_1"),
        );
        return None;
    }
    let name = block.words[1].clone();
    let what = format!("vrrp_instance {name}");
    if block.block.is_none() {
        report.error(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no {{ }} block; not imported"),
            None,
        );
        return None;
    }
    let mut w = Written {
        start_master: None,
        interface: None,
        vrid: None,
        priority: None,
        advert: None,
        version: None,
        nopreempt: None,
        preempt_delay: None,
        accept: None,
        strict: None,
        auth: None,
        unicast_src: None,
        unicast_peers: Vec::new(),
        vips: Vec::new(),
        use_vmac: None,
        garp_delay: None,
        garp_repeat: None,
        garp_refresh: None,
        track_lists: Vec::new(),
    };
    for stmt in block.children() {
        keyword(stmt, &what, &mut w, report);
    }
    finish(block, name, &what, w, defs, membership, report)
}

fn keyword(stmt: &Statement, what: &str, w: &mut Written, report: &mut Report) {
    let at = &stmt.at;
    match stmt.keyword() {
        "state" => match stmt.word(1) {
            Some("MASTER") => w.start_master = Some(at.clone()),
            Some("BACKUP") => w.start_master = None,
            _ => refuse(report, stmt, what, "takes MASTER or BACKUP"),
        },
        "interface" => {
            w.interface = value(stmt, report, what).map(|v| Located::new(v.to_owned(), at));
        }
        "virtual_router_id" => match stmt.word(1).and_then(|v| unsigned(v, 1, 255)) {
            Some(v) => w.vrid = Some(Located::new(v as u8, at)),
            None => refuse(report, stmt, what, "takes a number from 1 to 255"),
        },
        "priority" => match stmt.word(1).and_then(|v| unsigned(v, 1, 255)) {
            Some(v) => w.priority = Some(Located::new(v as u8, at)),
            None => refuse(
                report,
                stmt,
                what,
                "takes a number from 1 to 255 (100 is used)",
            ),
        },
        "advert_int" => match stmt.word(1).and_then(timer) {
            Some(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(255) => {
                w.advert = Some(Located::new(d, at));
            }
            _ => refuse(
                report,
                stmt,
                what,
                "takes seconds from 0.01 to 255 (1 is used)",
            ),
        },
        "version" => match stmt.word(1) {
            Some("2") => w.version = Some(Located::new(VrrpVersion::V2, at)),
            Some("3") => w.version = Some(Located::new(VrrpVersion::V3, at)),
            _ => refuse(report, stmt, what, "takes 2 or 3"),
        },
        "nopreempt" => w.nopreempt = Some(at.clone()),
        "preempt" => w.nopreempt = None,
        "preempt_delay" => match stmt.word(1).and_then(timer) {
            Some(d) if d <= Duration::from_secs(1000) => {
                w.preempt_delay = Some(Located::new(d, at));
            }
            _ => refuse(report, stmt, what, "takes seconds from 0 to 1000"),
        },
        "accept" => w.accept = Some(Located::new(true, at)),
        "no_accept" => w.accept = Some(Located::new(false, at)),
        "strict_mode" => {
            if let Some(on) = flag(stmt, report, what) {
                w.strict = Some(Located::new(on, at));
            }
        }
        "authentication" => {
            let mut kind = None;
            let mut pass = None;
            for entry in stmt.children() {
                match entry.keyword() {
                    "auth_type" => kind = entry.word(1).map(str::to_owned),
                    "auth_pass" => pass = entry.word(1).map(str::to_owned),
                    _ => report_untranslated(report, Context::Instance, what, entry),
                }
            }
            w.auth = Some((at.clone(), kind, pass));
        }
        "unicast_src_ip" => match stmt.word(1).map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => w.unicast_src = Some(Located::new(ip, at)),
            _ => refuse(report, stmt, what, "takes an IP address"),
        },
        "unicast_peer" => {
            for entry in stmt.children() {
                match entry.keyword().parse::<IpAddr>() {
                    Ok(ip) => {
                        if entry.words.len() > 1 {
                            report.warn(
                                ItemKind::Unsupported,
                                &entry.at,
                                format!(
                                    "{what}: the TTL limits of unicast peer {ip} have no \
                                     equivalent; the peer is imported without them"
                                ),
                                Some("the agent accepts only adverts sent with TTL 255"),
                            );
                        }
                        w.unicast_peers.push(Located::new(ip, &entry.at));
                    }
                    Err(_) => refuse(report, entry, what, "is not an IP address"),
                }
            }
        }
        "virtual_ipaddress" => {
            for entry in stmt.children() {
                if let Some(vip) = vip(entry, what, report) {
                    w.vips.push(vip);
                }
            }
        }
        "virtual_ipaddress_excluded" => {
            for entry in stmt.children() {
                report.error(
                    ItemKind::Unsupported,
                    &entry.at,
                    format!(
                        "{what}: excluded address {} (not carried in adverts) has no \
                         equivalent; not imported",
                        entry.keyword()
                    ),
                    Some(
                        "put it in a second VirtualIP (its own VRID), or, once every node runs \
                         kube-vrrp, in this VirtualIP's addresses (its adverts then carry it)",
                    ),
                );
            }
        }
        "track_interface" | "track_script" | "track_file" => w.track_lists.push(stmt.clone()),
        "use_vmac" => {
            if stmt.words.len() > 1 {
                report.warn(
                    ItemKind::Unsupported,
                    at,
                    format!(
                        "{what}: use_vmac's interface name or MAC ({}) is not kept; the agent \
                         names the macvlan itself and uses the RFC MAC 00-00-5E-00-01-{{VRID}}",
                        stmt.words[1..].join(" ")
                    ),
                    None,
                );
            }
            w.use_vmac = Some(at.clone());
        }
        "garp_master_delay" => {
            if let Some(v) = super::seconds(stmt, report, what) {
                w.garp_delay = Some(Located::new(v, at));
            }
        }
        "garp_master_repeat" => {
            if let Some(v) = super::count(stmt, report, what) {
                w.garp_repeat = Some(Located::new(v, at));
            }
        }
        "garp_master_refresh" => {
            if let Some(v) = super::seconds(stmt, report, what) {
                w.garp_refresh = Some(Located::new(v, at));
            }
        }
        "garp_master_refresh_repeat" => {
            super::garp_detail(stmt, report, what);
        }
        "dont_track_primary" => report.warn(
            ItemKind::Unsupported,
            at,
            format!("{what}: dont_track_primary has no equivalent; not imported"),
            Some("the agent puts the instance in FAULT while its interface is down"),
        ),
        // The agent always checks unicast sources; the address family decides IPv6.
        "check_unicast_src" | "native_ipv6" => {}
        _ => report_untranslated(report, Context::Instance, what, stmt),
    }
}

/// One `virtual_ipaddress` line: the address (a bare one is /32 or /128) and its `dev`; other
/// options are reported.
fn vip(entry: &Statement, what: &str, report: &mut Report) -> Option<Vip> {
    let text = entry.keyword();
    let net = if text.contains('/') {
        text.parse::<IpNet>().ok()
    } else {
        text.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let Some(net) = net else {
        refuse(report, entry, what, "is not an address");
        return None;
    };
    let mut dev = None;
    let mut dropped = Vec::new();
    let mut words = entry.words[1..].iter();
    while let Some(option) = words.next() {
        match option.as_str() {
            "dev" => dev = words.next().cloned(),
            "scope" => match words.next().map(String::as_str) {
                Some("global") => {}
                other => dropped.push(format!("scope {}", other.unwrap_or_default())),
            },
            "brd" | "label" | "peer" | "preferred_lft" => {
                dropped.push(format!(
                    "{option} {}",
                    words.next().map_or("", String::as_str)
                ));
            }
            // The agent adds VIPs with noprefixroute and IPv6 ones without DAD.
            "noprefixroute" | "-nodad" => {}
            other => dropped.push(other.to_owned()),
        }
    }
    if !dropped.is_empty() {
        report.warn(
            ItemKind::Unsupported,
            &entry.at,
            format!(
                "{what}: {net} is imported without {}; the agent adds VIPs with scope global, \
                 noprefixroute and (IPv4) the label <interface>:vrrp",
                dropped.join(", ")
            ),
            None,
        );
    }
    Some(Vip {
        net,
        dev,
        at: entry.at.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn finish(
    block: &Statement,
    name: String,
    what: &str,
    w: Written,
    defs: &Definitions,
    membership: &Membership,
    report: &mut Report,
) -> Option<Instance> {
    let globals = &defs.globals;
    let Some(vrid) = w.vrid else {
        report.error(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no virtual_router_id; keepalived refuses it; not imported"),
            Some("add virtual_router_id with the VRID the other nodes use"),
        );
        return None;
    };

    // Addresses: one family (the first address's); VIPs on another interface do not translate.
    let mut addresses: Vec<Located<IpNet>> = Vec::new();
    for vip in w.vips {
        let family_v4 = matches!(vip.net, IpNet::V4(_));
        if let Some(first) = addresses.first()
            && matches!(first.value, IpNet::V4(_)) != family_v4
        {
            report.error(
                ItemKind::Invalid,
                &vip.at,
                format!(
                    "{what}: {} is not of the family of {}; an instance's virtual_ipaddress \
                     are one family; not imported",
                    vip.net, first.value
                ),
                Some("make a second instance for the other family"),
            );
            continue;
        }
        if let (Some(dev), Some(interface)) = (&vip.dev, &w.interface)
            && *dev != interface.value
        {
            report.error(
                ItemKind::Unsupported,
                &vip.at,
                format!(
                    "{what}: {} is on {dev}, not on the instance's interface {}; a VirtualIP's \
                     addresses live on its interface; not imported",
                    vip.net, interface.value
                ),
                Some(&format!(
                    "run a second VirtualIP on {dev} (it elects on its own), or run this one on {dev}"
                )),
            );
            continue;
        }
        addresses.push(Located::new(vip.net, &vip.at));
    }
    if addresses.is_empty() {
        report.error(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no virtual address that imports; not imported"),
            Some("a VirtualIP needs at least one address in virtual_ipaddress"),
        );
        return None;
    }
    let ipv6 = matches!(addresses[0].value, IpNet::V6(_));

    let version = match (w.version.or_else(|| globals.version.clone()), ipv6) {
        (Some(v), true) if v.value == VrrpVersion::V2 => {
            report.warn(
                ItemKind::Invalid,
                &v.at,
                format!("{what}: IPv6 instances always use VRRP version 3; keepalived ignores version 2 here"),
                None,
            );
            Located::new(VrrpVersion::V3, &v.at)
        }
        (Some(v), _) => v,
        (None, true) => Located::new(VrrpVersion::V3, &block.at),
        (None, false) => Located::new(VrrpVersion::V2, &block.at),
    };
    let advert = w
        .advert
        .unwrap_or_else(|| Located::new(Duration::from_secs(1), &block.at));
    let advert = round_advert(advert, version.value, what, report);

    let priority = w
        .priority
        .unwrap_or_else(|| Located::new(DEFAULT_PRIORITY, &block.at));
    let strict = match &w.strict {
        Some(s) => s.value.then(|| s.at.clone()),
        None => globals.strict.clone(),
    };
    if let Some(at) = &strict {
        report.warn(
            ItemKind::Unsupported,
            at,
            format!(
                "{what}: strict mode is imported as what it decides here (accept mode off, no \
                 preempt_delay, no authentication, no unicast); keepalived's firewall rules that \
                 drop traffic to the VIPs have no equivalent"
            ),
            Some(crate::keywords::FIREWALL),
        );
    }

    // Preemption as keepalived runs it.
    let mut preempt = match &w.nopreempt {
        Some(at) => Located::new(false, at),
        None => Located::new(true, &block.at),
    };
    let mut preempt_delay = w.preempt_delay.clone();
    if let Some(at) = &w.nopreempt {
        let cleared_by = if priority.value == OWNER {
            Some(format!("priority {OWNER}"))
        } else {
            w.start_master.as_ref().map(|_| "state MASTER".to_owned())
        };
        if let Some(cause) = cleared_by {
            report.warn(
                ItemKind::Invalid,
                at,
                format!(
                    "{what}: keepalived ignores nopreempt with {cause}; imported as preempting, \
                     as keepalived runs it"
                ),
                Some("to stop a returning node from taking over, use state BACKUP with nopreempt"),
            );
            preempt = Located::new(true, at);
        }
    }
    if let Some(delay) = &preempt_delay
        && !delay.value.is_zero()
    {
        let cleared_by = if w.start_master.is_some() {
            Some("state MASTER")
        } else if strict.is_some() {
            Some("strict mode")
        } else if !preempt.value {
            Some("nopreempt")
        } else {
            None
        };
        if let Some(cause) = cleared_by {
            report.warn(
                ItemKind::Invalid,
                &delay.at,
                format!(
                    "{what}: keepalived ignores preempt_delay with {cause}, and so does import"
                ),
                None,
            );
            preempt_delay = None;
        }
    }
    let preempt_delay = preempt_delay.unwrap_or_else(|| Located::new(Duration::ZERO, &block.at));

    let accept = match w.accept {
        Some(a) => {
            if a.value
                && strict.is_some()
                && version.value == VrrpVersion::V2
                && priority.value != OWNER
            {
                Located::new(false, &a.at)
            } else {
                a
            }
        }
        None => Located::new(priority.value == OWNER || strict.is_none(), &block.at),
    };

    let password = match w.auth {
        None => None,
        Some((at, kind, pass)) => auth(
            &at,
            kind.as_deref(),
            pass,
            version.value,
            strict.is_some(),
            what,
            report,
        ),
    };

    let unicast_peers = w.unicast_peers;
    if !unicast_peers.is_empty() && strict.is_some() {
        report.error(
            ItemKind::Invalid,
            &unicast_peers[0].at,
            format!("{what}: keepalived refuses unicast peers in strict mode; not imported"),
            None,
        );
        return None;
    }
    if unicast_peers.is_empty()
        && let Some(src) = &w.unicast_src
    {
        report.warn(
            ItemKind::Invalid,
            &src.at,
            format!(
                "{what}: unicast_src_ip without unicast_peer; keepalived runs multicast (and \
                 calls this deprecated), and so does import"
            ),
            None,
        );
    }
    for peer in &unicast_peers {
        if matches!(peer.value, IpAddr::V6(_)) != ipv6 {
            report.warn(
                ItemKind::Invalid,
                &peer.at,
                format!(
                    "{what}: unicast peer {} is not of the VIPs' family",
                    peer.value
                ),
                None,
            );
        }
    }

    let garp = Garp {
        delay: w
            .garp_delay
            .or_else(|| globals.garp_delay.clone())
            .unwrap_or_else(|| Located::new(Duration::from_secs(5), &block.at)),
        repeat: w
            .garp_repeat
            .or_else(|| globals.garp_repeat.clone())
            .unwrap_or_else(|| Located::new(5, &block.at)),
        refresh: w
            .garp_refresh
            .or_else(|| globals.garp_refresh.clone())
            .unwrap_or_else(|| Located::new(Duration::ZERO, &block.at)),
    };

    let group = membership.get(&name);
    let rule = if priority.value == OWNER {
        WeightRule::Owner
    } else if group.is_some_and(|g| !g.value.tracking_weight) {
        WeightRule::SyncGroup
    } else {
        WeightRule::AsWritten
    };
    let mut trackers: Vec<Located<Tracker>> = Vec::new();
    for list in &w.track_lists {
        trackers.extend(tracking::trackers(
            list,
            what,
            rule,
            &defs.scripts,
            &defs.track_files,
            report,
        ));
    }
    if let Some(group) = group {
        let owner = format!("vrrp_sync_group {}", group.value.name);
        for list in &group.value.tracking {
            trackers.extend(tracking::trackers(
                list,
                &owner,
                WeightRule::AsWritten,
                &defs.scripts,
                &defs.track_files,
                report,
            ));
        }
    }

    Some(Instance {
        name,
        at: block.at.clone(),
        start_master: w.start_master,
        interface: w.interface,
        vrid,
        priority,
        version,
        advert_interval: advert,
        preempt,
        preempt_delay,
        accept,
        password,
        unicast_src: if unicast_peers.is_empty() {
            None
        } else {
            w.unicast_src
        },
        unicast_peers,
        addresses,
        garp,
        use_vmac: w.use_vmac,
        sync_group: group.map(|g| Located::new(g.value.name.clone(), &g.at)),
        trackers,
    })
}

/// keepalived's rounding: whole seconds for version 2, centiseconds for version 3.
fn round_advert(
    advert: Located<Duration>,
    version: VrrpVersion,
    what: &str,
    report: &mut Report,
) -> Located<Duration> {
    let micros = advert.value.as_micros() as u64;
    let unit = match version {
        VrrpVersion::V2 => 1_000_000,
        VrrpVersion::V3 => 10_000,
    };
    let max = match version {
        VrrpVersion::V2 => 255 * unit,
        VrrpVersion::V3 => 4095 * unit,
    };
    let rounded = ((micros + unit / 2) / unit * unit).clamp(unit, max);
    if rounded == micros {
        return advert;
    }
    let rounded = Duration::from_micros(rounded);
    report.warn(
        ItemKind::Invalid,
        &advert.at,
        format!(
            "{what}: keepalived rounds advert_int {} to {} for VRRP version {}; imported as \
             {}",
            advert.value.as_secs_f64(),
            rounded.as_secs_f64(),
            version.as_str(),
            rounded.as_secs_f64()
        ),
        None,
    );
    Located::new(rounded, &advert.at)
}

/// The PASS password, when it applies.
fn auth(
    at: &Position,
    kind: Option<&str>,
    pass: Option<String>,
    version: VrrpVersion,
    strict: bool,
    what: &str,
    report: &mut Report,
) -> Option<Located<String>> {
    match kind {
        Some("PASS") => {}
        Some("AH") => {
            report.error(
                ItemKind::Unsupported,
                at,
                format!(
                    "{what}: AH authentication has no equivalent; imported without authentication"
                ),
                Some(
                    "use auth_type PASS (VRRPv2) or none; a peer still using AH will not accept \
                     this node's adverts",
                ),
            );
            return None;
        }
        _ => {
            report.warn(
                ItemKind::Invalid,
                at,
                format!("{what}: authentication without auth_type PASS or AH; keepalived ignores it, and so does import"),
                None,
            );
            return None;
        }
    }
    let Some(pass) = pass.filter(|p| !p.is_empty()) else {
        report.warn(
            ItemKind::Invalid,
            at,
            format!("{what}: auth_type PASS without auth_pass; imported without authentication"),
            None,
        );
        return None;
    };
    let why = if version == VrrpVersion::V3 {
        Some("VRRP version 3 has no authentication")
    } else if strict {
        Some("strict mode refuses authentication")
    } else {
        None
    };
    if let Some(why) = why {
        report.warn(
            ItemKind::Invalid,
            at,
            format!("{what}: keepalived ignores authentication here ({why}), and so does import"),
            None,
        );
        return None;
    }
    let mut pass = pass;
    if pass.len() > 8 {
        let mut end = 8;
        while !pass.is_char_boundary(end) {
            end -= 1;
        }
        pass.truncate(end);
        report.warn(
            ItemKind::Invalid,
            at,
            format!(
                "{what}: auth_pass is longer than 8 bytes; keepalived uses the first 8, and so \
                 does the imported Secret"
            ),
            None,
        );
    }
    Some(Located::new(pass, at))
}
