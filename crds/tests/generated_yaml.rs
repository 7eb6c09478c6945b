//! The committed `crds/yaml/*.yaml` files are exactly what the types generate.

// Test helpers outside #[test] functions panic on broken fixtures by design.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let files = kube_vrrp_crds::crd_yaml::render_all().unwrap();
    assert_eq!(files.len(), 4);
    for (name, yaml) in files {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(
            committed == yaml,
            "crds/yaml/{name} is stale: run `cargo run -p kube-vrrp-crds --bin crdgen`"
        );
    }
}

#[test]
fn generated_yaml_parses_back_into_the_same_crds() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let expected = kube_vrrp_crds::crd_yaml::crds().unwrap();
    let files = kube_vrrp_crds::crd_yaml::render_all().unwrap();
    for ((name, yaml), (_, want)) in files.iter().zip(expected) {
        let got: CustomResourceDefinition = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(got, want, "{name}");
    }
}
