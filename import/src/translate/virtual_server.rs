//! `virtual_server` blocks of all nodes into VirtualServers: one per (address, port, protocol),
//! equal in every file that defines it, attached to the VirtualIP that carries the address and
//! named `<virtualip>-<protocol>-<port>`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kube_vrrp_crds::{Protocol, VirtualServer, VirtualServerSpec};

use crate::model::{NodeConfig, VirtualServerDef};
use crate::names::{Names, object_name};
use crate::position::Position;
use crate::report::{ItemKind, Report, Severity};

use super::meta;
use super::virtual_ip::Merged;

type Key = (IpAddr, u16, Protocol);

/// The VirtualServers and the lines each comes from.
pub fn translate(
    nodes: &[NodeConfig],
    vips: &[Merged],
    names: &mut Names,
    report: &mut Report,
) -> Vec<(VirtualServer, Vec<Position>)> {
    let mut order: Vec<Key> = Vec::new();
    let mut defs: Vec<(Key, &NodeConfig, &VirtualServerDef)> = Vec::new();
    for node in nodes {
        for def in &node.virtual_servers {
            let key = (def.address, def.spec.port, def.spec.protocol);
            if !order.contains(&key) {
                order.push(key);
            }
            defs.push((key, node, def));
        }
    }
    let mut out = Vec::new();
    for key in order {
        let group: Vec<(&NodeConfig, &VirtualServerDef)> = defs
            .iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, n, d)| (*n, *d))
            .collect();
        if let Some(server) = one(key, &group, vips, names, report) {
            out.push(server);
        }
    }
    out
}

fn one(
    (address, port, protocol): Key,
    group: &[(&NodeConfig, &VirtualServerDef)],
    vips: &[Merged],
    names: &mut Names,
    report: &mut Report,
) -> Option<(VirtualServer, Vec<Position>)> {
    let what = format!("virtual_server {address} {port} ({})", protocol.as_str());
    let positions: Vec<Position> = group.iter().map(|(_, d)| d.at.clone()).collect();
    let first = &group.first()?.1.spec;
    let differing: Vec<&(&NodeConfig, &VirtualServerDef)> =
        group.iter().filter(|(_, d)| d.spec != *first).collect();
    if let Some((node, def)) = differing.first() {
        report.push(
            Severity::Error,
            ItemKind::Conflict,
            vec![group[0].1.at.clone(), def.at.clone()],
            format!(
                "{what}: the nodes' files disagree on {} ({} and {}); not imported",
                differences(first, &def.spec).join(", "),
                group[0].0.node,
                node.node
            ),
            Some("make the files agree on it, then import again"),
        );
        return None;
    }
    let Some(vip) = vips
        .iter()
        .find(|v| v.nets.iter().any(|n| n.addr() == address))
    else {
        report.push(
            Severity::Error,
            ItemKind::Unsupported,
            positions,
            format!(
                "{what}: no imported vrrp_instance carries {address}; a VirtualServer belongs to \
                 a VirtualIP; not imported"
            ),
            Some("add the address to the virtual_ipaddress of the instance that should carry it"),
        );
        return None;
    };
    let vip_name = vip.vip.metadata.name.clone().unwrap_or_default();
    if vip.nets.len() > 1 {
        let others: Vec<String> = vip
            .nets
            .iter()
            .filter(|n| n.addr() != address)
            .map(|n| n.addr().to_string())
            .collect();
        report.push(
            Severity::Warning,
            ItemKind::Changed,
            positions.clone(),
            format!(
                "{what}: a VirtualServer serves every address of its VirtualIP {vip_name}, so it \
                 also serves on {}",
                others.join(", ")
            ),
            Some("give the service address a VirtualIP of its own if that matters"),
        );
    }
    let vip_nodes: BTreeSet<&str> = vip
        .vip
        .spec
        .priorities
        .iter()
        .filter_map(|p| p.node_name.as_deref())
        .collect();
    let defined_on: BTreeSet<&str> = group.iter().map(|(n, _)| n.node.as_str()).collect();
    let missing: Vec<&str> = vip_nodes.difference(&defined_on).copied().collect();
    if !missing.is_empty() {
        report.push(
            Severity::Warning,
            ItemKind::Changed,
            positions.clone(),
            format!(
                "{what} is not in the files of {}; a VirtualServer runs on every node of its \
                 VirtualIP {vip_name}, so it runs there too",
                missing.join(", ")
            ),
            None,
        );
    }
    let name = names.claim(&object_name(&format!(
        "{vip_name}-{}-{port}",
        protocol.as_str().to_ascii_lowercase()
    )));
    let spec = VirtualServerSpec {
        virtual_ip_ref: vip_name,
        ..first.clone()
    };
    let mut server = VirtualServer::new(&name, spec);
    server.metadata = meta(&name, None, &format!("virtual_server {address} {port}"));
    Some((server, positions))
}

/// The spec fields in which `a` and `b` differ, by their API names.
fn differences(a: &VirtualServerSpec, b: &VirtualServerSpec) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return vec!["the spec".to_owned()];
    };
    let keys: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .chain(b.as_object())
        .flat_map(|o| o.keys())
        .collect();
    keys.into_iter()
        .filter(|k| a.get(k.as_str()) != b.get(k.as_str()))
        .map(|k| format!("spec.{k}"))
        .collect()
}
