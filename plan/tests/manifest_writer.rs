//! What `write_manifests` writes, the manifests reader reads back as the same objects.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::path::Path;

use kube_vrrp_plan::{Manifests, load_manifests, parse_manifests, write_manifests};

#[test]
fn a_manifests_directory_written_out_reads_back_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/manifests/standalone");
    let loaded = load_manifests(&dir).unwrap();
    assert!(
        !loaded.virtual_ips.is_empty() && !loaded.nodes.is_empty() && !loaded.secrets.is_empty()
    );
    let yaml = write_manifests(&loaded).unwrap();
    let again = parse_manifests(Path::new("written.yaml"), &yaml).unwrap();
    assert_eq!(again, loaded, "{yaml}");
}

#[test]
fn an_empty_set_writes_nothing() {
    assert_eq!(write_manifests(&Manifests::default()).unwrap(), "");
}
