//! Golden files: each `tests/data/golden/<case>/` holds keepalived files and an `inputs` file
//! (one line per node: `NODE FILE [CONFIG_ID]`); importing them must print exactly
//! `expected.yaml` and report exactly `expected-report.txt` (the report, the summary and the
//! exit status). `UPDATE_GOLDENS=1` rewrites the expected files; review the diff.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::path::{Path, PathBuf};

use kube_vrrp_import::{FileSystem, Input, Options, default_config_id, import};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// The inputs of a case, from its `inputs` file.
fn inputs(dir: &Path) -> Vec<Input> {
    std::fs::read_to_string(dir.join("inputs"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Input {
                node: words[0].to_owned(),
                file: PathBuf::from(words[1]),
                config_id: words
                    .get(2)
                    .map_or_else(|| default_config_id(words[0]), |id| (*id).to_owned()),
                root: None,
            }
        })
        .collect()
}

/// What the command prints for a case: the YAML, and the report with its exit status.
fn run(dir: &Path) -> (String, String) {
    let mut files = FileSystem::new(dir);
    match import(&inputs(dir), &mut files, &Options::default()) {
        Ok(outcome) => (
            outcome.yaml.clone(),
            format!(
                "{}{}\nexit status: {}\n",
                outcome.report.render(),
                outcome.summary(),
                outcome.exit_status()
            ),
        ),
        Err(e) => (String::new(), format!("{e}\nexit status: 2\n")),
    }
}

fn check(dir: &Path, file: &str, actual: &str) {
    let path = dir.join(file);
    if std::env::var_os("UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDENS=1 to create it",
            path.display()
        )
    });
    assert!(
        actual == expected,
        "{} differs\n--- actual ---\n{actual}\n--- expected ---\n{expected}\n\
         (UPDATE_GOLDENS=1 rewrites it after review)",
        path.display()
    );
}

fn check_case(name: &str) {
    let dir = cases_dir().join(name);
    let (yaml, report) = run(&dir);
    check(&dir, "expected.yaml", &yaml);
    check(&dir, "expected-report.txt", &report);
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
    "error-binary",
    "error-include-loop",
    "error-missing-include",
    "error-truncated",
    "error-unbalanced",
    "includes-and-comments",
    "lvs-dr-tcp-check",
    "lvs-ipvs-options",
    "lvs-nat-http-sorry",
    "pair-master-backup",
    "sync-groups",
    "typos",
    "unicast-pair",
    "unsupported",
    "v3-ipv6",
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
    a_two_node_master_backup_pair_imports_without_report_items => "pair-master-backup",
    a_unicast_pair_gets_nodes_with_their_source_addresses_as_internal_ips => "unicast-pair",
    sync_group_members_follow_keepalived_weight_rules => "sync-groups",
    lvs_dr_with_tcp_checks_becomes_a_virtual_server_with_keepalived_timers => "lvs-dr-tcp-check",
    ipvs_scheduler_flags_granularity_tunnels_and_thresholds_carry_over_and_misuses_are_reported => "lvs-ipvs-options",
    lvs_nat_with_http_checks_and_a_sorry_server_keeps_what_translates => "lvs-nat-http-sorry",
    v3_ipv6_instances_report_excluded_addresses_and_accept_mode => "v3-ipv6",
    includes_conditions_parameters_and_comments_in_odd_places_are_read_as_keepalived_does => "includes-and-comments",
    common_typos_are_reported_where_keepalived_would_misread_them => "typos",
    files_that_disagree_are_conflicts_naming_both_places => "conflicts",
    keywords_without_equivalent_are_reported_with_what_to_do_instead => "unsupported",
    a_truncated_file_is_an_error_at_the_unclosed_block => "error-truncated",
    an_extra_closing_brace_is_an_error_at_its_line => "error-unbalanced",
    an_include_loop_is_an_error_naming_the_chain => "error-include-loop",
    a_missing_include_is_an_error_at_the_include_line => "error-missing-include",
    binary_garbage_is_an_error_with_line_and_column => "error-binary",
}
