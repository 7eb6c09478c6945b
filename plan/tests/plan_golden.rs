//! Golden files: `tests/data/plan/<case>/input/*.yaml` planned and rendered must equal
//! `tests/data/plan/<case>/expected.yaml`. `UPDATE_GOLDENS=1` rewrites the expected files.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod plan_support;

use std::path::{Path, PathBuf};

use kube_vrrp_plan::output::render_yaml;
use kube_vrrp_plan::plan;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plan")
}

fn check_case(name: &str) {
    let dir = cases_dir().join(name);
    let input = plan_support::load_input(&dir.join("input"));
    let actual = render_yaml(&plan(&input)).unwrap();
    let expected_path = dir.join("expected.yaml");
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDENS=1 to create it",
            expected_path.display()
        )
    });
    assert!(
        actual == expected,
        "case {name}: plan differs from {}\n--- actual ---\n{actual}\n--- expected ---\n{expected}\n\
         (UPDATE_GOLDENS=1 rewrites it after review)",
        expected_path.display()
    );
}

#[test]
fn every_case_directory_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, CASES, "add new golden cases to CASES");
}

const CASES: &[&str] = &[
    "conflicts",
    "design-example",
    "ipv6-and-segments",
    "node-added",
    "node-removed",
    "unicast-v2-auth",
    "virtual-servers",
    "vrid-allocation",
];

macro_rules! golden {
    ($($test:ident => $case:literal),* $(,)?) => {
        $(#[test]
        fn $test() {
            check_case($case);
        })*
    };
}

golden! {
    conflicts_of_every_kind_are_reported_and_block_only_their_virtual_ip => "conflicts",
    design_example_places_explicit_and_ranked_priorities => "design-example",
    ipv6_and_ipv4_share_vrids_and_interfaces_are_separate_segments => "ipv6-and-segments",
    node_added_keeps_existing_priorities_and_vrids => "node-added",
    node_removed_keeps_remaining_priorities_and_vrids => "node-removed",
    unicast_v2_carries_peers_and_the_secret_reference_only => "unicast-v2-auth",
    virtual_servers_resolve_static_and_ready_endpoint_backends => "virtual-servers",
    vrids_are_kept_from_spec_and_status_and_allocated_lowest_free => "vrid-allocation",
}
