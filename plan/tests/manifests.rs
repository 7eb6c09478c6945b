//! `load_manifests`: the standalone-mode reader of a manifests directory.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use kube::ResourceExt;
use kube_vrrp_crds::{ViolationKind, VrrpVersion};
use kube_vrrp_plan::manifests::DocumentLocation;
use kube_vrrp_plan::{
    ManifestError, load_manifests, load_manifests_setting_aside_invalid, parse_manifests,
};

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/manifests")
        .join(dir)
}

fn file_name(at: &DocumentLocation) -> &str {
    at.file.file_name().unwrap().to_str().unwrap()
}

#[test]
fn directory_with_several_documents_per_file_loads_every_object() {
    let m = load_manifests(&data("standalone")).unwrap();
    let vips: Vec<String> = m.virtual_ips.iter().map(ResourceExt::name_any).collect();
    assert_eq!(vips, ["legacy", "web"], "sorted by name");
    assert_eq!(m.virtual_ips[0].spec.version, VrrpVersion::V2);
    assert_eq!(m.virtual_ips[1].spec.virtual_router_id, Some(51));
    assert_eq!(m.virtual_servers.len(), 1);
    assert_eq!(m.virtual_servers[0].spec.real_servers.len(), 2);
    let nodes: Vec<String> = m.nodes.iter().map(ResourceExt::name_any).collect();
    assert_eq!(nodes, ["node-a", "node-b"], ".yml files are read too");
    let addresses = m.nodes[0]
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .unwrap();
    assert_eq!(addresses[0].type_, "InternalIP");
    assert_eq!(addresses[0].address, "10.0.0.11");
    assert_eq!(m.secrets.len(), 2);
}

#[test]
fn secret_string_data_is_merged_into_data() {
    let m = load_manifests(&data("standalone")).unwrap();
    assert_eq!(
        m.secret_value("kube-vrrp", "vrrp-auth", "password"),
        Some(&b"s3cret"[..])
    );
    assert_eq!(
        m.secret_value("kube-vrrp", "vrrp-auth", "other"),
        Some(&b"other"[..])
    );
    assert_eq!(m.secret_value("kube-vrrp", "vrrp-auth", "missing"), None);
    assert_eq!(m.secret_value("other-ns", "vrrp-auth", "password"), None);
}

#[test]
fn secret_without_namespace_lands_in_default() {
    let m = load_manifests(&data("standalone")).unwrap();
    assert_eq!(
        m.secret_value("default", "no-namespace", "token"),
        Some(&b"token"[..])
    );
}

#[test]
fn unknown_kind_is_an_error_naming_file_and_document() {
    let err = load_manifests(&data("bad-kind")).unwrap_err();
    let ManifestError::UnknownKind {
        at,
        api_version,
        kind,
    } = &err
    else {
        panic!("expected UnknownKind, got {err}");
    };
    assert_eq!((file_name(at), at.index), ("manifests.yaml", 2));
    assert_eq!((api_version.as_str(), kind.as_str()), ("v1", "ConfigMap"));
    let text = err.to_string();
    assert!(
        text.contains("manifests.yaml (document 2)") && text.contains("v1/ConfigMap"),
        "{text}"
    );
}

#[test]
fn broken_yaml_is_an_error_naming_the_file() {
    let err = load_manifests(&data("broken-yaml")).unwrap_err();
    let ManifestError::Yaml { file, message } = &err else {
        panic!("expected Yaml, got {err}");
    };
    assert!(file.ends_with("broken-yaml/manifests.yaml"));
    assert!(!message.is_empty());
}

#[test]
fn every_problem_in_a_directory_is_reported_with_its_location() {
    let err = load_manifests(&data("invalid")).unwrap_err();
    let problems = err.problems();
    let summary: Vec<String> = problems
        .iter()
        .map(|p| match p {
            ManifestError::Invalid { at, name, .. } => {
                format!("invalid {} #{} {name}", file_name(at), at.index)
            }
            ManifestError::Decode {
                at, name, field, ..
            } => format!("decode {} #{} {name} {field}", file_name(at), at.index),
            ManifestError::NotAnObject { at, .. } => {
                format!("not-an-object {} #{}", file_name(at), at.index)
            }
            ManifestError::UnknownKind {
                at, api_version, ..
            } => {
                format!("unknown {} #{} {api_version}", file_name(at), at.index)
            }
            ManifestError::Duplicate {
                name,
                first,
                second,
                ..
            } => format!(
                "duplicate {name} {} #{} {} #{}",
                file_name(first),
                first.index,
                file_name(second),
                second.index
            ),
            other => format!("other {other}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "invalid a-virtualips.yaml #1 mixed",
            "decode a-virtualips.yaml #2 future spec.version",
            "not-an-object a-virtualips.yaml #4",
            "not-an-object a-virtualips.yaml #5",
            "duplicate ok a-virtualips.yaml #3 b-more.yaml #1",
            "invalid b-more.yaml #2 nowhere",
            "unknown b-more.yaml #3 kubevrrp.io/v1beta1",
        ]
    );
    assert!(
        err.to_string().starts_with("7 problems in manifests:"),
        "{err}"
    );
}

#[test]
fn invalid_virtual_ip_lists_all_its_violations() {
    let err = load_manifests(&data("invalid")).unwrap_err();
    let Some(ManifestError::Invalid {
        kind, violations, ..
    }) = err.problems().into_iter().next()
    else {
        panic!("expected Invalid first, got {err}");
    };
    assert_eq!(*kind, "VirtualIP");
    let kinds: Vec<_> = violations
        .iter()
        .map(|v| (v.field.as_str(), v.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("spec.addresses", ViolationKind::MixedFamilies),
            ("spec.advertInterval", ViolationKind::NotCentiseconds),
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains("VirtualIP \"mixed\" is invalid: spec.addresses: mixes IPv4 and IPv6"),
        "{text}"
    );
}

#[test]
fn decode_error_names_the_field_and_the_reason() {
    let err = load_manifests(&data("invalid")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("VirtualIP \"future\": spec.version: unsupported VRRP version 4: use 2 or 3"),
        "{text}"
    );
}

#[test]
fn missing_directory_is_a_read_error() {
    let err = load_manifests(&data("no-such-directory")).unwrap_err();
    assert!(matches!(err, ManifestError::ReadDir { .. }), "{err}");
}

#[test]
fn empty_text_holds_no_objects() {
    let m = parse_manifests(Path::new("empty.yaml"), "").unwrap();
    assert!(m.virtual_ips.is_empty() && m.nodes.is_empty());
}

#[test]
fn secret_duplicates_are_keyed_by_namespace_and_name() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\n---\n\
                apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: b}\n---\n\
                apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: a}\n";
    let err = parse_manifests(Path::new("s.yaml"), text).unwrap_err();
    let ManifestError::Duplicate { name, second, .. } = &err else {
        panic!("expected Duplicate, got {err}");
    };
    assert_eq!((name.as_str(), second.index), ("a/s", 3));
}

#[test]
fn misspelt_fields_are_reported_instead_of_ignored() {
    let err = load_manifests(&data("misspelt")).unwrap_err();
    let ManifestError::Invalid { violations, .. } = &err else {
        panic!("expected Invalid, got {err}");
    };
    let found: Vec<_> = violations
        .iter()
        .map(|v| (v.field.as_str(), v.kind))
        .collect();
    assert_eq!(
        found,
        [
            ("spec.preemt", ViolationKind::UnknownField),
            ("spec.priorities[0].nodeNme", ViolationKind::UnknownField),
            ("spec.priorities[0]", ViolationKind::ExactlyOneOf),
        ]
    );
}

#[test]
fn invalid_virtual_ips_and_servers_can_be_set_aside_while_anything_else_still_fails() {
    let dir = std::env::temp_dir().join(format!("kv-aside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("vips.yaml"),
        "apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: ok}
spec: {addresses: [\"10.0.0.80/24\"]}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata: {name: mixed}
spec: {addresses: [\"10.0.0.50/24\", \"2001:db8::50/64\"]}
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata: {name: nowhere}
spec: {virtualIPRef: ok, port: 80}
",
    )
    .unwrap();
    assert!(
        load_manifests(&dir).is_err(),
        "the strict loader still refuses the directory"
    );
    let (manifests, aside) = load_manifests_setting_aside_invalid(&dir).unwrap();
    let kept: Vec<String> = manifests
        .virtual_ips
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(kept, ["ok"]);
    assert!(manifests.virtual_servers.is_empty());
    let set_aside: Vec<(&str, &str)> = aside
        .iter()
        .map(|e| match e {
            ManifestError::Invalid { kind, name, .. } => (*kind, name.as_str()),
            other => panic!("only invalid objects are set aside: {other}"),
        })
        .collect();
    assert_eq!(
        set_aside,
        [("VirtualIP", "mixed"), ("VirtualServer", "nowhere")]
    );
    std::fs::remove_dir_all(&dir).unwrap();
    // Unknown kinds, bad YAML and the like still fail the whole load.
    assert!(load_manifests_setting_aside_invalid(&data("invalid")).is_err());
}
