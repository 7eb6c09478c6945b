//! What instances track and group: `vrrp_script` and `track_file` definitions, the
//! `track_interface` / `track_script` / `track_file` lists of instances and sync groups, and
//! `vrrp_sync_group` membership. keepalived's rule for sync groups is applied here: without
//! `sync_group_tracking_weight`, a member's weighted interface counts as unweighted, a weighted
//! script is ignored, and a tracked file keeps only weight 1 (as unweighted).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ast::Statement;
use crate::keywords::{Context, report_untranslated};
use crate::model::{Script, Tracker};
use crate::position::{Located, Position};
use crate::report::{ItemKind, Report, Severity};
use crate::words::command_of;

use super::values::{int, refuse, timer, unsigned, value};

/// A `vrrp_script` block.
#[derive(Clone, Debug)]
pub struct ScriptDef {
    pub command: Option<Vec<String>>,
    pub interval: Duration,
    pub timeout: Option<Duration>,
    pub weight: i32,
    pub reverse: bool,
    pub rise: u32,
    pub fall: u32,
}

/// A `track_file` block.
#[derive(Clone, Debug)]
pub struct TrackFileDef {
    pub path: Option<String>,
    pub weight: i64,
    pub reverse: bool,
}

/// A `vrrp_sync_group` block.
#[derive(Clone, Debug)]
pub struct SyncGroupDef {
    pub name: String,
    pub members: Vec<Located<String>>,
    /// The group's own `track_*` lists.
    pub tracking: Vec<Statement>,
    /// `sync_group_tracking_weight`: members keep their tracker weights.
    pub tracking_weight: bool,
}

/// The sync group of each instance named by one.
pub type Membership = BTreeMap<String, Located<SyncGroupDef>>;

fn name_of(stmt: &Statement, report: &mut Report) -> Option<String> {
    if stmt.words.len() != 2 {
        report.error(
            ItemKind::Invalid,
            &stmt.at,
            format!(
                "{:?}: {} needs exactly one name; keepalived skips the block, and so does import",
                stmt.text(),
                stmt.keyword()
            ),
            Some("write the name as one word, without spaces"),
        );
        return None;
    }
    stmt.word(1).map(str::to_owned)
}

/// Reads a `vrrp_script` block into `scripts`.
pub fn script(
    block: &Statement,
    scripts: &mut BTreeMap<String, Located<ScriptDef>>,
    report: &mut Report,
) {
    let Some(name) = name_of(block, report) else {
        return;
    };
    let what = format!("vrrp_script {name}");
    let mut def = ScriptDef {
        command: None,
        interval: Duration::from_secs(1),
        timeout: None,
        weight: 0,
        reverse: false,
        rise: 1,
        fall: 1,
    };
    for stmt in block.children() {
        match stmt.keyword() {
            "script" => match command_of(&stmt.raw) {
                Ok(Some((argv, extra))) => {
                    if !extra.is_empty() {
                        report.warn(
                            ItemKind::Invalid,
                            &stmt.at,
                            format!(
                                "{what}: only {:?} is the command; keepalived ignores {:?} after \
                                 it, and so does import",
                                argv.join(" "),
                                extra.join(" ")
                            ),
                            Some("quote the whole command: script \"/path/to/check --arg\""),
                        );
                    }
                    def.command = Some(argv);
                }
                Ok(None) => refuse(report, stmt, &what, "needs a command"),
                Err(_) => refuse(report, stmt, &what, "has an unterminated quote"),
            },
            "interval" | "timeout" => {
                let Some(v) = value(stmt, report, &what) else {
                    continue;
                };
                match timer(v) {
                    Some(d) => {
                        // keepalived turns 0 into 1 second, with an error.
                        let d = if d.is_zero() {
                            Duration::from_secs(1)
                        } else {
                            d
                        };
                        let d = Duration::from_millis(d.as_millis() as u64);
                        if stmt.keyword() == "interval" {
                            def.interval = d;
                        } else {
                            def.timeout = Some(d);
                        }
                    }
                    None => refuse(report, stmt, &what, "takes seconds"),
                }
            }
            "weight" => match stmt.word(1).and_then(|w| int(w, -253, 253)) {
                Some(w) => {
                    def.weight = w as i32;
                    def.reverse = stmt.word(2) == Some("reverse");
                }
                None => refuse(report, stmt, &what, "takes a weight from -253 to 253"),
            },
            "rise" | "fall" => match stmt.word(1).and_then(|v| unsigned(v, 1, i32::MAX as u64)) {
                Some(v) => {
                    let v = if v > 255 {
                        report.warn(
                            ItemKind::Changed,
                            &stmt.at,
                            format!(
                                "{what}: {} {v} is more than kube-vrrp's 255; imported as 255",
                                stmt.keyword()
                            ),
                            None,
                        );
                        255
                    } else {
                        v as u32
                    };
                    if stmt.keyword() == "rise" {
                        def.rise = v;
                    } else {
                        def.fall = v;
                    }
                }
                None => refuse(report, stmt, &what, "takes a count from 1"),
            },
            _ => report_untranslated(report, Context::Script, &what, stmt),
        }
    }
    if def.command.is_none() {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no script; keepalived removes it, and so does import"),
            None,
        );
        return;
    }
    scripts.insert(name, Located::new(def, &block.at));
}

/// Reads a `track_file` block into `files`.
pub fn track_file(
    block: &Statement,
    files: &mut BTreeMap<String, Located<TrackFileDef>>,
    report: &mut Report,
) {
    let Some(name) = name_of(block, report) else {
        return;
    };
    let what = format!("track_file {name}");
    let mut def = TrackFileDef {
        path: None,
        weight: 1,
        reverse: false,
    };
    for stmt in block.children() {
        match stmt.keyword() {
            "file" => def.path = value(stmt, report, &what).map(str::to_owned),
            "weight" => match stmt
                .word(1)
                .and_then(|w| int(w, -2_147_483_647, 2_147_483_647))
            {
                Some(w) => {
                    def.weight = w;
                    def.reverse = stmt.word(2) == Some("reverse");
                }
                None => refuse(report, stmt, &what, "takes an integer weight"),
            },
            _ => report_untranslated(report, Context::TrackFile, &what, stmt),
        }
    }
    if def.path.is_none() {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no file; keepalived ignores it, and so does import"),
            None,
        );
        return;
    }
    files.insert(name, Located::new(def, &block.at));
}

/// Reads a `vrrp_sync_group` block.
pub fn sync_group(block: &Statement, report: &mut Report) -> Option<Located<SyncGroupDef>> {
    let name = name_of(block, report)?;
    let what = format!("vrrp_sync_group {name}");
    let mut def = SyncGroupDef {
        name,
        members: Vec::new(),
        tracking: Vec::new(),
        tracking_weight: false,
    };
    for stmt in block.children() {
        match stmt.keyword() {
            "group" => {
                for member in stmt.children() {
                    for word in &member.words {
                        def.members.push(Located::new(word.clone(), &member.at));
                    }
                }
            }
            "track_interface" | "track_script" | "track_file" => def.tracking.push(stmt.clone()),
            "sync_group_tracking_weight" => def.tracking_weight = true,
            _ => report_untranslated(report, Context::SyncGroup, &what, stmt),
        }
    }
    Some(Located::new(def, &block.at))
}

/// Which group each instance belongs to; a name in two groups or naming no instance is
/// reported as keepalived does.
pub fn membership(
    groups: &[Located<SyncGroupDef>],
    instances: &[&Statement],
    report: &mut Report,
) -> Membership {
    let mut out = Membership::new();
    for group in groups {
        for member in &group.value.members {
            if !instances
                .iter()
                .any(|i| i.word(1) == Some(member.value.as_str()))
            {
                report.warn(
                    ItemKind::Invalid,
                    &member.at,
                    format!(
                        "vrrp_sync_group {} names vrrp_instance {}, which does not exist; \
                         keepalived ignores the name, and so does import",
                        group.value.name, member.value
                    ),
                    None,
                );
                continue;
            }
            if let Some(first) = out.get(&member.value) {
                report.push(
                    Severity::Error,
                    ItemKind::Invalid,
                    vec![first.at.clone(), member.at.clone()],
                    format!(
                        "vrrp_instance {} is in two sync groups ({} and {}); keepalived refuses \
                         the second, and so does import",
                        member.value, first.value.name, group.value.name
                    ),
                    None,
                );
                continue;
            }
            out.insert(
                member.value.clone(),
                Located::new(group.value.clone(), &member.at),
            );
        }
    }
    out
}

/// How weights are treated for one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightRule {
    /// Weights apply as written.
    AsWritten,
    /// In a sync group without `sync_group_tracking_weight`.
    SyncGroup,
    /// Priority 255 (the address owner): weighted trackers are dropped.
    Owner,
}

/// Reads a `track_interface`, `track_script` or `track_file` list of `owner` (e.g.
/// "vrrp_instance VI_1") into trackers, resolving names against the definitions.
pub fn trackers(
    list: &Statement,
    owner: &str,
    rule: WeightRule,
    scripts: &BTreeMap<String, Located<ScriptDef>>,
    files: &BTreeMap<String, Located<TrackFileDef>>,
    report: &mut Report,
) -> Vec<Located<Tracker>> {
    let mut out = Vec::new();
    for entry in list.children() {
        let name = entry.keyword();
        let (weight, reverse) = match (entry.word(1), entry.word(2)) {
            (None, _) => (None, false),
            (Some("weight"), Some(w)) => {
                let Some(w) = int(w, -254, 254) else {
                    refuse(report, entry, owner, "has a weight outside -254..254");
                    continue;
                };
                (Some(w), entry.word(3) == Some("reverse"))
            }
            _ => {
                refuse(
                    report,
                    entry,
                    owner,
                    "takes a name, optionally followed by weight N",
                );
                continue;
            }
        };
        let tracker = match list.keyword() {
            "track_interface" => Some((
                Kind::Interface,
                name.to_owned(),
                weight.unwrap_or(0),
                reverse,
            )),
            "track_script" => {
                let found = scripts.get(name).map(|s| {
                    (
                        Kind::Script(s.value.clone()),
                        name.to_owned(),
                        weight.unwrap_or(i64::from(s.value.weight)),
                        reverse || (weight.is_none() && s.value.reverse),
                    )
                });
                if found.is_none() {
                    missing(report, entry, owner, "vrrp_script");
                }
                found
            }
            _ => {
                let found = files.get(name).map(|f| {
                    (
                        Kind::File(f.value.path.clone().unwrap_or_default()),
                        name.to_owned(),
                        weight.unwrap_or(f.value.weight),
                        reverse || (weight.is_none() && f.value.reverse),
                    )
                });
                if found.is_none() {
                    missing(report, entry, owner, "track_file");
                }
                found
            }
        };
        let Some((kind, name, weight, reverse)) = tracker else {
            continue;
        };
        if reverse {
            report.warn(
                ItemKind::Unsupported,
                &entry.at,
                format!("{owner}: the reversed weight of {name} has no equivalent; not imported"),
                Some("write the tracker so that failure is its failing state, and use a weight"),
            );
            continue;
        }
        if let Some(t) = resolve(kind, name, weight, rule, &entry.at, owner, report) {
            out.push(Located::new(t, &entry.at));
        }
    }
    out
}

enum Kind {
    Interface,
    Script(ScriptDef),
    File(String),
}

fn missing(report: &mut Report, entry: &Statement, owner: &str, kind: &str) {
    report.warn(
        ItemKind::Invalid,
        &entry.at,
        format!(
            "{owner} tracks {}, but no {kind} of that name is defined before it; keepalived \
             ignores it, and so does import",
            entry.keyword()
        ),
        Some(&format!(
            "define the {kind} before the blocks that track it"
        )),
    );
}

/// Applies keepalived's weight rule and the API's range.
fn resolve(
    kind: Kind,
    name: String,
    weight: i64,
    rule: WeightRule,
    at: &Position,
    owner: &str,
    report: &mut Report,
) -> Option<Tracker> {
    let why = match rule {
        WeightRule::AsWritten => "",
        WeightRule::SyncGroup => "in a sync group without sync_group_tracking_weight",
        WeightRule::Owner => "with priority 255",
    };
    let mut ignored = |what: &str| {
        report.warn(
            ItemKind::Invalid,
            at,
            format!("{owner}: keepalived {what} {name} {why}; imported as keepalived runs it"),
            Some("remove the weight (or set sync_group_tracking_weight) to say what runs"),
        );
    };
    let weight = if weight == 0 || rule == WeightRule::AsWritten {
        weight
    } else {
        match kind {
            Kind::Interface if rule == WeightRule::SyncGroup => {
                ignored("ignores the weight of tracked interface");
                0
            }
            Kind::File(_) if weight == 1 => {
                ignored("ignores the default weight of tracked file");
                0
            }
            _ => {
                ignored("drops weighted tracker");
                return None;
            }
        }
    };
    if !(-253..=253).contains(&weight) {
        report.warn(
            ItemKind::Unsupported,
            at,
            format!(
                "{owner}: weight {weight} of {name} is outside kube-vrrp's -253..253; not imported"
            ),
            Some("use a weight from -253 to 253"),
        );
        return None;
    }
    let weight = (weight != 0).then_some(weight as i32);
    Some(match kind {
        Kind::Interface => Tracker::Interface { name, weight },
        Kind::File(path) => Tracker::File { path, weight },
        Kind::Script(def) => Tracker::Script(Script {
            name,
            command: def.command.unwrap_or_default(),
            interval: def.interval,
            timeout: def.timeout.unwrap_or(def.interval),
            rise: def.rise,
            fall: def.fall,
            weight,
        }),
    })
}
