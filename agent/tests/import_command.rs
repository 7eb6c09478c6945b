//! `kube-vrrp-agent import` as a user runs it: the manifests on stdout, the report and a
//! summary on stderr, and the exit status (0 translated as written, 1 report items, 2 the input
//! cannot be read).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../import/tests/data/golden")
        .join(case)
}

fn import(case: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kube-vrrp-agent"))
        .arg("import")
        .args(args)
        .current_dir(golden(case))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_pair_that_translates_as_written_exits_0_with_the_golden_manifests() {
    let out = import(
        "pair-master-backup",
        &["--node", "n1", "--node", "n2", "n1.conf", "n2.conf"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let expected =
        std::fs::read_to_string(golden("pair-master-backup").join("expected.yaml")).unwrap();
    assert!(
        stdout.starts_with("# kube-vrrp-agent import of n1.conf (node n1), n2.conf (node n2)\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with(&expected), "{stdout}");
    assert_eq!(
        text(&out.stderr),
        "import: 1 VirtualIP, 0 VirtualServers, 2 Nodes, 1 Secret; report: 0 errors, 0 warnings\n"
    );
}

#[test]
fn report_items_exit_1_and_print_as_text_or_json() {
    let out = import(
        "unicast-pair",
        &["--node", "lb1", "--node", "lb2", "lb1.conf", "lb2.conf"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("lb1.conf:7, lb2.conf:7: warning: enable_script_security"),
        "{stderr}"
    );
    let out = import(
        "unicast-pair",
        &[
            "--report-json",
            "--node",
            "lb1",
            "--node",
            "lb2",
            "lb1.conf",
            "lb2.conf",
        ],
    );
    let stderr = text(&out.stderr);
    let json = &stderr[..stderr.rfind("import: ").unwrap()];
    let report: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(report["items"][0]["at"][0], "lb1.conf:7");
    assert_eq!(report["items"][0]["kind"], "unsupported");
}

#[test]
fn for_a_cluster_the_node_objects_are_left_out() {
    let out = import(
        "unicast-pair",
        &[
            "--cluster",
            "--node",
            "lb1",
            "--node",
            "lb2",
            "lb1.conf",
            "lb2.conf",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("kind: VirtualIP") && !stdout.contains("kind: Node"),
        "{stdout}"
    );
}

#[test]
fn unreadable_input_and_unnamed_files_exit_2() {
    let out = import("error-truncated", &["--node", "n1", "n1.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is never closed"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let out = import(
        "pair-master-backup",
        &["--node", "n1", "n1.conf", "n2.conf"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "import: 2 files but 1 --node names; name each file's node, in order\n"
    );
    let out = import("pair-master-backup", &["--node", "n1", "missing.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("missing.conf: cannot read: No such file"),
        "{}",
        text(&out.stderr)
    );
}
