//! The plan as text: the VrrpNode objects as multi-document YAML, then the conflicts as
//! YAML comments (what `kube-vrrp-operator plan` prints).

use std::fmt::Write as _;

use super::{Conflict, Plan};

/// The plan could not be written as YAML.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// serde-saphyr refused a value.
    #[error("writing the plan as YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

/// One line describing a conflict, e.g. `VirtualIP 'web': VridTaken: VRID 51 on ...`.
pub fn conflict_line(c: &Conflict) -> String {
    match &c.virtual_server {
        Some(vs) => format!(
            "VirtualServer '{vs}' (VirtualIP '{}'): {}: {}",
            c.virtual_ip,
            c.reason.as_str(),
            c.message
        ),
        None => format!(
            "VirtualIP '{}': {}: {}",
            c.virtual_ip,
            c.reason.as_str(),
            c.message
        ),
    }
}

/// The VrrpNode objects (apiVersion, kind, metadata.name, spec) as YAML documents in node
/// order, followed by comment lines: nodes left out of unicast VirtualIPs, then conflicts.
pub fn render_yaml(plan: &Plan) -> Result<String, OutputError> {
    let objects = plan.vrrp_nodes();
    let mut out = serde_saphyr::to_string_multiple(&objects)?;
    // A VirtualIP with no node at all has a NoEligibleNode conflict saying the same.
    for (name, a) in plan
        .allocations
        .iter()
        .filter(|(_, a)| !a.priorities.is_empty())
    {
        for node in &a.unreachable {
            let _ = writeln!(
                out,
                "# note: VirtualIP '{name}' leaves out node {node}: it has no {} InternalIP \
                 to be a unicast peer at",
                a.segment.family.as_str()
            );
        }
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(out, "# {} conflict(s):", plan.conflicts.len());
        for c in &plan.conflicts {
            let _ = writeln!(out, "# - {}", conflict_line(c));
        }
    }
    Ok(out)
}
