//! Standalone mode: reading VirtualIP, VirtualServer, Node and Secret manifests from a
//! directory of YAML files (several documents per file), validating each kube-vrrp object.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use std::sync::OnceLock;

use kube::CustomResourceExt;

use kube_vrrp_crds::validation::{Violation, ViolationKind};
use kube_vrrp_crds::{API_VERSION, VirtualIp, VirtualServer};

/// Everything read from a manifests directory, each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifests {
    /// VirtualIP objects, all valid.
    pub virtual_ips: Vec<VirtualIp>,
    /// VirtualServer objects, all valid.
    pub virtual_servers: Vec<VirtualServer>,
    /// Nodes (only `metadata.name`, `metadata.labels` and `status.addresses` matter).
    pub nodes: Vec<Node>,
    /// Secrets; `stringData` has been merged into `data`. A Secret without a namespace is
    /// in `default`.
    pub secrets: Vec<Secret>,
    /// Services that `backendRef`s name (a Service without a namespace is in `default`).
    pub services: Vec<Service>,
    /// EndpointSlices of those Services (labelled `kubernetes.io/service-name`): their
    /// endpoints become real servers, terminating ones drained.
    pub endpoint_slices: Vec<EndpointSlice>,
}

impl Manifests {
    /// The bytes under `key` of Secret `namespace/name`, if present.
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<&[u8]> {
        self.secrets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(namespace) && s.name_any() == name)
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
    }
}

/// Where a document is: the file and its 1-based position among the file's non-empty
/// documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentLocation {
    /// The YAML file.
    pub file: PathBuf,
    /// 1-based index of the document in the file (empty documents are not counted).
    pub index: usize,
}

impl fmt::Display for DocumentLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.index)
    }
}

/// Why a manifests directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory could not be listed.
    #[error("reading manifests directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("reading {}: {source}", file.display())]
    ReadFile {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{}: not valid YAML: {message}", file.display())]
    Yaml { file: PathBuf, message: String },
    /// A document is not an object with `apiVersion`, `kind` and `metadata.name`.
    #[error("{at}: {message}")]
    NotAnObject {
        at: DocumentLocation,
        message: String,
    },
    /// A document's apiVersion/kind is not one standalone mode reads.
    #[error(
        "{at}: unsupported kind {api_version}/{kind}; standalone mode reads \
         kubevrrp.io/v1alpha1 VirtualIP and VirtualServer, v1 Node, Secret and Service, \
         and discovery.k8s.io/v1 EndpointSlice"
    )]
    UnknownKind {
        at: DocumentLocation,
        api_version: String,
        kind: String,
    },
    /// A document does not match its kind's fields (wrong type, unknown enum value, ...).
    #[error("{at}: {kind} {name:?}: {field}: {message}")]
    Decode {
        at: DocumentLocation,
        kind: &'static str,
        name: String,
        field: String,
        message: String,
    },
    /// A VirtualIP or VirtualServer breaks validation rules.
    #[error("{at}: {kind} {name:?} is invalid: {}", join(violations))]
    Invalid {
        at: DocumentLocation,
        kind: &'static str,
        name: String,
        violations: Vec<Violation>,
    },
    /// Two objects of one kind share a name (and namespace, for Secrets).
    #[error("{kind} {name:?} is defined twice: {first} and {second}")]
    Duplicate {
        kind: &'static str,
        name: String,
        first: DocumentLocation,
        second: DocumentLocation,
    },
    /// More than one of the above; each is listed.
    #[error("{} problems in manifests:\n{}", .0.len(), join_errors(.0))]
    Several(Vec<ManifestError>),
}

impl ManifestError {
    /// The individual problems (one, or each of `Several`).
    pub fn problems(&self) -> Vec<&ManifestError> {
        match self {
            Self::Several(all) => all.iter().collect(),
            other => vec![other],
        }
    }
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn join_errors(errors: &[ManifestError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads every `*.yaml` / `*.yml` file directly in `dir` (in name order), several documents
/// per file, into VirtualIP, VirtualServer, Node and Secret objects.
///
/// Every problem is reported, not just the first: unreadable files, bad YAML, unknown kinds
/// (naming file and document), undecodable documents, invalid VirtualIPs/VirtualServers (with
/// all their violations) and duplicate names. Nothing is silently dropped.
pub fn load_manifests(dir: &Path) -> Result<Manifests, ManifestError> {
    load(dir, false).map(|(manifests, _)| manifests)
}

/// [`load_manifests`], except that VirtualIPs and VirtualServers that break validation rules
/// are set aside instead of failing the load: they are returned beside the valid objects, one
/// [`ManifestError::Invalid`] each (naming the object and every violation), so that standalone
/// mode rejects each alone while the others follow edits. Anything else still fails the load.
pub fn load_manifests_setting_aside_invalid(
    dir: &Path,
) -> Result<(Manifests, Vec<ManifestError>), ManifestError> {
    load(dir, true)
}

fn load(
    dir: &Path,
    set_aside_invalid: bool,
) -> Result<(Manifests, Vec<ManifestError>), ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::ReadDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ManifestError::ReadDir {
            dir: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut loader = Loader {
        set_aside_invalid,
        ..Loader::default()
    };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => loader.file(&file, &text),
            Err(source) => loader
                .problems
                .push(ManifestError::ReadFile { file, source }),
        }
    }
    let set_aside = std::mem::take(&mut loader.set_aside);
    loader.finish().map(|manifests| (manifests, set_aside))
}

/// Parses manifests from YAML text as if read from `file` (for tests and for callers that
/// already hold the text).
pub fn parse_manifests(file: &Path, text: &str) -> Result<Manifests, ManifestError> {
    let mut loader = Loader::default();
    loader.file(file, text);
    loader.finish()
}

#[derive(Default)]
struct Loader {
    virtual_ips: BTreeMap<String, (DocumentLocation, VirtualIp)>,
    virtual_servers: BTreeMap<String, (DocumentLocation, VirtualServer)>,
    nodes: BTreeMap<String, (DocumentLocation, Node)>,
    secrets: BTreeMap<String, (DocumentLocation, Secret)>,
    services: BTreeMap<String, (DocumentLocation, Service)>,
    endpoint_slices: BTreeMap<String, (DocumentLocation, EndpointSlice)>,
    problems: Vec<ManifestError>,
    /// Set invalid VirtualIPs and VirtualServers aside (in `set_aside`) instead of failing.
    set_aside_invalid: bool,
    set_aside: Vec<ManifestError>,
}

impl Loader {
    fn file(&mut self, file: &Path, text: &str) {
        let docs: Vec<Value> = match serde_saphyr::from_multiple(text) {
            Ok(docs) => docs,
            Err(e) => {
                self.problems.push(ManifestError::Yaml {
                    file: file.to_owned(),
                    message: e.to_string(),
                });
                return;
            }
        };
        for (i, doc) in docs.into_iter().enumerate() {
            let at = DocumentLocation {
                file: file.to_owned(),
                index: i + 1,
            };
            if let Err(e) = self.document(at, doc) {
                self.problems.push(e);
            }
        }
    }

    fn document(&mut self, at: DocumentLocation, doc: Value) -> Result<(), ManifestError> {
        match self.object(at, doc) {
            Err(invalid @ ManifestError::Invalid { .. }) if self.set_aside_invalid => {
                self.set_aside.push(invalid);
                Ok(())
            }
            other => other,
        }
    }

    fn object(&mut self, at: DocumentLocation, doc: Value) -> Result<(), ManifestError> {
        if doc.is_null() {
            return Ok(());
        }
        let field = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (field("apiVersion"), field("kind")) else {
            return Err(ManifestError::NotAnObject {
                at,
                message: "not a Kubernetes object: apiVersion and kind must be strings".into(),
            });
        };
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.is_empty() {
            return Err(ManifestError::NotAnObject {
                at,
                message: format!("{kind} has no metadata.name"),
            });
        }
        match (api_version.as_str(), kind.as_str()) {
            (API_VERSION, "VirtualIP") => {
                let unknown =
                    unknown_fields(VIRTUAL_IP_SCHEMA.get_or_init(crd_schema::<VirtualIp>), &doc);
                let vip: VirtualIp = decode(&at, "VirtualIP", &name, doc)?;
                check(&at, "VirtualIP", &name, unknown, vip.spec.validate())?;
                insert(&mut self.virtual_ips, "VirtualIP", name, at, vip)
            }
            (API_VERSION, "VirtualServer") => {
                let unknown = unknown_fields(
                    VIRTUAL_SERVER_SCHEMA.get_or_init(crd_schema::<VirtualServer>),
                    &doc,
                );
                let vs: VirtualServer = decode(&at, "VirtualServer", &name, doc)?;
                check(&at, "VirtualServer", &name, unknown, vs.spec.validate())?;
                insert(&mut self.virtual_servers, "VirtualServer", name, at, vs)
            }
            ("v1", "Node") => {
                let node: Node = decode(&at, "Node", &name, doc)?;
                insert(&mut self.nodes, "Node", name, at, node)
            }
            ("v1", "Secret") => {
                let mut secret: Secret = decode(&at, "Secret", &name, doc)?;
                let namespace = secret
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_owned())
                    .clone();
                if let Some(string_data) = secret.string_data.take() {
                    let data = secret.data.get_or_insert_with(BTreeMap::new);
                    for (k, v) in string_data {
                        data.insert(k, ByteString(v.into_bytes()));
                    }
                }
                insert(
                    &mut self.secrets,
                    "Secret",
                    format!("{namespace}/{name}"),
                    at,
                    secret,
                )
            }
            ("v1", "Service") => {
                let mut service: Service = decode(&at, "Service", &name, doc)?;
                let namespace = service
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_owned())
                    .clone();
                insert(
                    &mut self.services,
                    "Service",
                    format!("{namespace}/{name}"),
                    at,
                    service,
                )
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                let mut slice: EndpointSlice = decode(&at, "EndpointSlice", &name, doc)?;
                let namespace = slice
                    .metadata
                    .namespace
                    .get_or_insert_with(|| "default".to_owned())
                    .clone();
                insert(
                    &mut self.endpoint_slices,
                    "EndpointSlice",
                    format!("{namespace}/{name}"),
                    at,
                    slice,
                )
            }
            _ => Err(ManifestError::UnknownKind {
                at,
                api_version,
                kind,
            }),
        }
    }

    fn finish(mut self) -> Result<Manifests, ManifestError> {
        match self.problems.len() {
            0 => Ok(Manifests {
                virtual_ips: values(self.virtual_ips),
                virtual_servers: values(self.virtual_servers),
                nodes: values(self.nodes),
                secrets: values(self.secrets),
                services: values(self.services),
                endpoint_slices: values(self.endpoint_slices),
            }),
            1 => Err(self.problems.remove(0)),
            _ => Err(ManifestError::Several(self.problems)),
        }
    }
}

fn values<T>(map: BTreeMap<String, (DocumentLocation, T)>) -> Vec<T> {
    map.into_values().map(|(_, v)| v).collect()
}

fn decode<T: DeserializeOwned>(
    at: &DocumentLocation,
    kind: &'static str,
    name: &str,
    doc: Value,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        ManifestError::Decode {
            at: at.clone(),
            kind,
            name: name.to_owned(),
            field: if path == "." {
                "(root)".to_owned()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// The openAPIV3Schema of a kube-vrrp CRD, built once per kind.
fn crd_schema<K: CustomResourceExt>() -> Value {
    let crd = serde_json::to_value(K::crd()).unwrap_or(Value::Null);
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

static VIRTUAL_IP_SCHEMA: OnceLock<Value> = OnceLock::new();
static VIRTUAL_SERVER_SCHEMA: OnceLock<Value> = OnceLock::new();

/// Violations for fields the kind's schema does not declare.
fn unknown_fields(schema: &Value, doc: &Value) -> Vec<Violation> {
    kube_vrrp_crds::pruning::unknown_fields(schema, doc)
        .into_iter()
        .map(|field| Violation {
            field,
            kind: ViolationKind::UnknownField,
            message: "unknown field (misspelt, or not in kubevrrp.io/v1alpha1); \
                      remove or correct it"
                .to_owned(),
        })
        .collect()
}

fn check(
    at: &DocumentLocation,
    kind: &'static str,
    name: &str,
    mut violations: Vec<Violation>,
    more: Vec<Violation>,
) -> Result<(), ManifestError> {
    violations.extend(more);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::Invalid {
            at: at.clone(),
            kind,
            name: name.to_owned(),
            violations,
        })
    }
}

fn insert<T>(
    map: &mut BTreeMap<String, (DocumentLocation, T)>,
    kind: &'static str,
    name: String,
    at: DocumentLocation,
    value: T,
) -> Result<(), ManifestError> {
    if let Some((first, _)) = map.get(&name) {
        return Err(ManifestError::Duplicate {
            kind,
            name,
            first: first.clone(),
            second: at,
        });
    }
    map.insert(name, (at, value));
    Ok(())
}
