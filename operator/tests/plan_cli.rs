//! `kube-vrrp-operator plan --manifests DIR`: output and exit status (0 clean, 1 conflicts or
//! invalid objects, 2 unreadable input).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch manifests directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(test: &str, files: &[(&str, &str)]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("kube-vrrp-plan-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_plan(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kube-vrrp-operator"))
        .arg("plan")
        .arg("--manifests")
        .arg(dir)
        .output()
        .unwrap()
}

const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n\
                    status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}\n";

fn vip(name: &str, address: &str) -> String {
    format!(
        "---\napiVersion: kubevrrp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: {name}}}\n\
         spec: {{addresses: [\"{address}\"]}}\n"
    )
}

#[test]
fn clean_manifests_print_the_golden_vrrp_nodes_and_exit_zero() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plan/tests/data/plan/design-example");
    let out = run_plan(&data.join("input"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(data.join("expected.yaml")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert!(out.stderr.is_empty());
}

#[test]
fn conflicts_are_printed_as_comments_and_on_stderr_with_exit_one() {
    let text = format!(
        "{NODE}{}{}",
        vip("a", "10.0.0.50/24"),
        vip("b", "10.0.0.50/24")
    );
    let dir = ScratchDir::new("conflict", &[("all.yaml", &text)]);
    let out = run_plan(&dir.0);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stdout.contains("kind: VrrpNode\nmetadata:\n  name: n1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# - VirtualIP 'b': DuplicateAddress: address 10.0.0.50 is already used by VirtualIP 'a'"),
        "{stdout}"
    );
    assert!(
        stderr.contains("conflict: VirtualIP 'b': DuplicateAddress"),
        "{stderr}"
    );
}

#[test]
fn invalid_objects_exit_one_with_the_violation() {
    let text = format!("{NODE}{}", vip("a", "10.0.0.50"));
    let dir = ScratchDir::new("invalid", &[("all.yaml", &text)]);
    let out = run_plan(&dir.0);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("spec.addresses[0]"), "{stderr}");
}

#[test]
fn unreadable_input_exits_two() {
    let missing =
        std::env::temp_dir().join(format!("kube-vrrp-plan-missing-{}", std::process::id()));
    assert_eq!(run_plan(&missing).status.code(), Some(2));

    let dir = ScratchDir::new("bad-yaml", &[("bad.yaml", "kind: [unclosed\n")]);
    let out = run_plan(&dir.0);
    assert_eq!(out.status.code(), Some(2));
    assert!(!out.stderr.is_empty());
}
