//! The other half of [`crate::manifests`]: a [`Manifests`] set written as the multi-document
//! YAML that [`crate::load_manifests`] reads back (VirtualIPs, VirtualServers, Nodes, Secrets,
//! each in name order), for tools that produce manifests, such as the keepalived importer.
//!
//! Written here, next to the reader, so that "what is written reads back as the same objects"
//! is one crate's promise, tested in one place.

use kube_vrrp_crds::{VirtualIp, VirtualServer};
use serde::Serialize;

use k8s_openapi::api::core::v1::{Node, Secret};

use super::manifests::Manifests;
use super::output::OutputError;

/// One document of any kind the manifests directory holds, serialised as the object itself.
#[derive(Serialize)]
#[serde(untagged)]
enum Document<'a> {
    VirtualIp(&'a VirtualIp),
    VirtualServer(&'a VirtualServer),
    Node(&'a Node),
    Secret(&'a Secret),
}

/// The objects of `manifests` as YAML documents separated by `---`: VirtualIPs, then
/// VirtualServers, Nodes and Secrets, each list in the order given (the reader's order is by
/// name). Status is written only where it is given (Nodes carry their InternalIPs there).
pub fn write_manifests(manifests: &Manifests) -> Result<String, OutputError> {
    let documents: Vec<Document<'_>> = manifests
        .virtual_ips
        .iter()
        .map(Document::VirtualIp)
        .chain(
            manifests
                .virtual_servers
                .iter()
                .map(Document::VirtualServer),
        )
        .chain(manifests.nodes.iter().map(Document::Node))
        .chain(manifests.secrets.iter().map(Document::Secret))
        .collect();
    if documents.is_empty() {
        return Ok(String::new());
    }
    Ok(serde_saphyr::to_string_multiple(&documents)?)
}
