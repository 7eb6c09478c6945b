//! kube-vrrp's keepalived importer: `keepalived.conf` files, one per node, into the VirtualIP,
//! VirtualServer, Node and Secret manifests that mean the same thing, and a report of everything
//! that does not carry over (with file, line and what to do instead).
//!
//! The pipeline, each step pure but the first:
//! 1. [`source`]: the files (the only I/O, behind a trait).
//! 2. [`lines`]: keepalived's line reader: comments, `@` conditions, `$` parameters, `~SEQ` /
//!    `~LST`, `include` globs, braces on lines of their own ([`params`], [`sequence`], [`glob`]).
//! 3. [`ast`]: the located tree of statements and blocks ([`words`] splits each line).
//! 4. [`read`]: one node's tree as keepalived runs it ([`model`]), with keepalived's defaults and
//!    corrections; what has no equivalent goes to the [`report`] ([`keywords`]).
//! 5. [`translate`]: all nodes into one set of objects; where the API holds one value the files
//!    must agree, or it is a conflict.
//! 6. [`import`] checks the result the way the agent will read it: the manifests reader of
//!    `kube-vrrp-plan` (schema and validation) and the planner (conflicts), so what is printed
//!    loads.
//!
//! Reading a file cannot fail silently or without bound: see [`error`] for the limits.

pub mod ast;
pub mod error;
pub mod glob;
pub mod keywords;
pub mod lines;
pub mod model;
pub mod names;
pub mod params;
pub mod position;
pub mod read;
pub mod report;
pub mod script_rule;
pub mod sequence;
pub mod source;
pub mod translate;
pub mod words;

use std::path::{Path, PathBuf};

use kube_vrrp_plan::{Manifests, PlanInput, parse_manifests, plan, write_manifests};

pub use error::ReadError;
pub use report::{Item, ItemKind, Report, Severity};
pub use source::{FileSystem, MemoryFiles, Sources};
pub use translate::Options;

/// One node's configuration to import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The node's name (its Node object; `priorities[].nodeName`).
    pub node: String,
    /// Its main `keepalived.conf`.
    pub file: PathBuf,
    /// The config id `@` lines compare with (keepalived's `-i`; by default the node name's
    /// first label, as keepalived defaults to the host name's).
    pub config_id: String,
    /// Where absolute `include` paths are read from: a copy of the node's `/` (by default this
    /// machine's `/`).
    pub root: Option<PathBuf>,
}

impl Input {
    /// `file` of `node`, with the default config id.
    pub fn new(node: &str, file: impl Into<PathBuf>) -> Self {
        Self {
            node: node.to_owned(),
            file: file.into(),
            config_id: default_config_id(node),
            root: None,
        }
    }
}

/// keepalived's default config id for a host: the first label of its name.
pub fn default_config_id(node: &str) -> String {
    node.split('.').next().unwrap_or(node).to_owned()
}

/// What an import produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The objects.
    pub manifests: Manifests,
    /// The objects as YAML documents, ready for `kubectl apply -f -` or a manifests directory.
    pub yaml: String,
    /// Everything that did not carry over as written, in file and line order.
    pub report: Report,
}

impl Outcome {
    /// 0 when everything was translated as written, 1 when the report has items.
    pub fn exit_status(&self) -> u8 {
        u8::from(!self.report.is_empty())
    }

    /// One line: what was imported and what the report holds.
    pub fn summary(&self) -> String {
        let count = |n: usize, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        let m = &self.manifests;
        format!(
            "import: {}, {}, {}, {}; report: {}, {}",
            count(m.virtual_ips.len(), "VirtualIP"),
            count(m.virtual_servers.len(), "VirtualServer"),
            count(m.nodes.len(), "Node"),
            count(m.secrets.len(), "Secret"),
            count(self.report.count(Severity::Error), "error"),
            count(self.report.count(Severity::Warning), "warning"),
        )
    }
}

/// Imports the configurations of `inputs` (one per node).
pub fn import(
    inputs: &[Input],
    sources: &mut dyn Sources,
    options: &Options,
) -> Result<Outcome, ReadError> {
    let mut report = Report::default();
    let mut configs = Vec::with_capacity(inputs.len());
    for input in inputs {
        let lines = lines::read(
            sources,
            &input.file,
            &input.config_id,
            input.root.as_deref(),
            &mut report,
        )?;
        let tree = ast::parse(lines)?;
        let file = input.file.to_string_lossy().into_owned();
        configs.push(read::node_config(&input.node, &file, &tree, &mut report));
    }
    let translated = translate::translate(&configs, options, &mut report);
    // The check reads the objects with their Nodes, as standalone mode would.
    if let Ok(all) = write_manifests(&translated.manifests) {
        check(&all, &translated.origins, &mut report);
    }
    let mut manifests = translated.manifests;
    if !options.nodes {
        manifests.nodes.clear();
    }
    let yaml = match write_manifests(&manifests) {
        Ok(yaml) => yaml,
        Err(e) => {
            report.push(
                Severity::Error,
                ItemKind::Invalid,
                Vec::new(),
                format!("the manifests cannot be written as YAML: {e}"),
                None,
            );
            String::new()
        }
    };
    let order: Vec<String> = inputs
        .iter()
        .map(|i| i.file.to_string_lossy().into_owned())
        .collect();
    Ok(Outcome {
        manifests,
        yaml,
        report: report.sorted(&order),
    })
}

/// Reads `yaml` back the way the agent's standalone mode does and plans it; anything refused is
/// an error item at the keepalived lines of the object.
fn check(
    yaml: &str,
    origins: &std::collections::BTreeMap<String, Vec<position::Position>>,
    report: &mut Report,
) {
    let at = |name: &str| origins.get(name).cloned().unwrap_or_default();
    let manifests = match parse_manifests(Path::new("imported.yaml"), yaml) {
        Ok(m) => m,
        Err(e) => {
            for problem in e.problems() {
                report.push(
                    Severity::Error,
                    ItemKind::Invalid,
                    Vec::new(),
                    format!("the imported manifests do not load ({problem}); this is a bug in import, please report it"),
                    None,
                );
            }
            return;
        }
    };
    for conflict in plan(&PlanInput::from(manifests)).conflicts {
        let object = conflict
            .virtual_server
            .as_deref()
            .unwrap_or(&conflict.virtual_ip);
        report.push(
            Severity::Error,
            ItemKind::Conflict,
            at(object),
            format!(
                "the planner will not deploy this: {}",
                kube_vrrp_plan::output::conflict_line(&conflict)
            ),
            None,
        );
    }
}
