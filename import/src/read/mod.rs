//! From one node's syntax tree to its [`NodeConfig`]: keyword by keyword as keepalived reads
//! them, with keepalived's defaults and corrections, reporting what does not translate.
//!
//! The top level is read in order, as keepalived does: an instance sees the `vrrp_script` and
//! `track_file` blocks and the `global_defs` GARP settings written before it; the VRRP version,
//! strict mode and sync groups are settled once everything is read, wherever they are written.

mod instance;
mod lvs;
mod tracking;
pub mod values;

use std::collections::BTreeMap;
use std::time::Duration;

use kube_vrrp_crds::VrrpVersion;

use crate::ast::Statement;
use crate::keywords::{Context, report_untranslated};
use crate::model::NodeConfig;
use crate::position::{Located, Position};
use crate::report::{ItemKind, Report};

use tracking::{ScriptDef, SyncGroupDef, TrackFileDef};
use values::{refuse, timer, unsigned, value};

/// `global_defs` settings that instances inherit.
#[derive(Clone, Debug, Default)]
struct Globals {
    router_id: Option<String>,
    version: Option<Located<VrrpVersion>>,
    strict: Option<Position>,
    garp_delay: Option<Located<Duration>>,
    garp_repeat: Option<Located<u32>>,
    garp_refresh: Option<Located<Duration>>,
}

/// What instances can refer to.
#[derive(Clone)]
struct Definitions {
    globals: Globals,
    scripts: BTreeMap<String, Located<ScriptDef>>,
    track_files: BTreeMap<String, Located<TrackFileDef>>,
    sync_groups: Vec<Located<SyncGroupDef>>,
}

/// Reads one node's configuration (`node`: its name; `file`: its main file as given).
pub fn node_config(
    node: &str,
    file: &str,
    statements: &[Statement],
    report: &mut Report,
) -> NodeConfig {
    let mut defs = Definitions {
        globals: Globals::default(),
        scripts: BTreeMap::new(),
        track_files: BTreeMap::new(),
        sync_groups: Vec::new(),
    };
    let mut instances = Vec::new();
    let mut servers = Vec::new();
    for stmt in statements {
        match stmt.keyword() {
            "global_defs" => read_globals(stmt, &mut defs.globals, report),
            "vrrp_script" => tracking::script(stmt, &mut defs.scripts, report),
            "track_file" | "vrrp_track_file" => {
                tracking::track_file(stmt, &mut defs.track_files, report);
            }
            "vrrp_sync_group" => {
                if let Some(group) = tracking::sync_group(stmt, report) {
                    defs.sync_groups.push(group);
                }
            }
            "vrrp_instance" => instances.push((stmt, defs.clone())),
            "virtual_server" => servers.push(stmt),
            _ => report_untranslated(report, Context::Top, "the configuration", stmt),
        }
    }
    let statements: Vec<&Statement> = instances.iter().map(|(s, _)| *s).collect();
    let membership = tracking::membership(&defs.sync_groups, &statements, report);
    let mut read_instances: Vec<crate::model::Instance> = Vec::new();
    for (stmt, mut seen) in instances {
        seen.globals.version.clone_from(&defs.globals.version);
        seen.globals.strict.clone_from(&defs.globals.strict);
        let Some(inst) = instance::read(stmt, &seen, &membership, report) else {
            continue;
        };
        if let Some(first) = read_instances.iter().find(|i| i.name == inst.name) {
            report.push(
                crate::report::Severity::Error,
                ItemKind::Invalid,
                vec![first.at.clone(), inst.at.clone()],
                format!(
                    "vrrp_instance {} is defined twice; keepalived keeps the first, and so does \
                     import",
                    inst.name
                ),
                None,
            );
            continue;
        }
        read_instances.push(inst);
    }
    NodeConfig {
        node: node.to_owned(),
        file: file.to_owned(),
        router_id: defs.globals.router_id.clone(),
        instances: read_instances,
        virtual_servers: servers
            .into_iter()
            .filter_map(|stmt| lvs::read(stmt, report))
            .collect(),
    }
}

fn read_globals(block: &Statement, globals: &mut Globals, report: &mut Report) {
    const WHAT: &str = "global_defs";
    for stmt in block.children() {
        match stmt.keyword() {
            "router_id" => globals.router_id = value(stmt, report, WHAT).map(str::to_owned),
            "vrrp_version" => match stmt.word(1) {
                Some("2") => globals.version = Some(Located::new(VrrpVersion::V2, &stmt.at)),
                Some("3") => globals.version = Some(Located::new(VrrpVersion::V3, &stmt.at)),
                _ => refuse(report, stmt, WHAT, "takes 2 or 3"),
            },
            "vrrp_strict" => globals.strict = Some(stmt.at.clone()),
            "vrrp_garp_master_delay" => {
                if let Some(v) = seconds(stmt, report, WHAT) {
                    globals.garp_delay = Some(Located::new(v, &stmt.at));
                }
            }
            "vrrp_garp_master_repeat" => {
                if let Some(v) = count(stmt, report, WHAT) {
                    globals.garp_repeat = Some(Located::new(v, &stmt.at));
                }
            }
            "vrrp_garp_master_refresh" => {
                if let Some(v) = seconds(stmt, report, WHAT) {
                    globals.garp_refresh = Some(Located::new(v, &stmt.at));
                }
            }
            "vrrp_min_garp" => {
                if values::flag(stmt, report, WHAT) == Some(true) {
                    globals.garp_repeat = Some(Located::new(1, &stmt.at));
                    globals.garp_delay = Some(Located::new(Duration::ZERO, &stmt.at));
                }
            }
            "vrrp_garp_master_refresh_repeat" | "vrrp_garp_interval" | "vrrp_gna_interval" => {
                garp_detail(stmt, report, WHAT);
            }
            // The agent always drops unicast adverts from addresses that are not peers.
            "vrrp_check_unicast_src" => {}
            _ => report_untranslated(report, Context::Global, WHAT, stmt),
        }
    }
}

/// A whole number of seconds (keepalived's GARP delays and refresh periods).
fn seconds(stmt: &Statement, report: &mut Report, what: &str) -> Option<Duration> {
    let v = value(stmt, report, what)?;
    let parsed = unsigned(v, 0, 86_400).map(Duration::from_secs);
    if parsed.is_none() {
        refuse(report, stmt, what, "takes whole seconds");
    }
    parsed
}

/// A GARP repeat count (1..=100 in the API; keepalived allows up to 255).
fn count(stmt: &Statement, report: &mut Report, what: &str) -> Option<u32> {
    let v = value(stmt, report, what)?;
    let parsed = unsigned(v, 1, 255).map(|v| v as u32);
    if parsed.is_none() {
        refuse(report, stmt, what, "takes a count from 1 to 255");
    }
    parsed
}

/// `(vrrp_)garp_master_refresh_repeat`, `vrrp_garp_interval`, `vrrp_gna_interval`: fine at keepalived's
/// defaults (1, 0, 0), which are what the agent does; anything else has no equivalent.
fn garp_detail(stmt: &Statement, report: &mut Report, what: &str) {
    let default = if stmt.keyword().ends_with("refresh_repeat") {
        unsigned(stmt.word(1).unwrap_or_default(), 0, u64::MAX) == Some(1)
    } else {
        stmt.word(1).and_then(timer) == Some(Duration::ZERO)
    };
    if !default {
        report.warn(
            ItemKind::Unsupported,
            &stmt.at,
            format!(
                "{:?} in {what} has no kube-vrrp equivalent; the agent sends one refresh \
                 announcement at a time and no gap within a burst",
                stmt.text()
            ),
            None,
        );
    }
}
