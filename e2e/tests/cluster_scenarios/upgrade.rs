//! Upgrading: Helm installs `crds/` once and never upgrades it, so the README's upgrade steps
//! apply the chart's CRDs first (`kubectl apply --server-side --force-conflicts -f
//! charts/kube-vrrp/crds/`) and then `helm upgrade`. Here the installed VirtualIP CRD is made
//! "older" (a printer column removed, as a previous release might have had it), the README's
//! steps run exactly, and the CRD is the chart's again, the release upgraded, and the VIP
//! never moved.

use std::time::Duration;

use kube_vrrp_e2e::cluster::binaries::repo_root;
use kube_vrrp_e2e::cluster::user::{self, poll};
use kube_vrrp_e2e::cluster::{NAMESPACE, RELEASE};
use serde_json::json;

use super::{POLL, Watcher, assert_never_split_brain, up, vip_manifest, wait_master};

const CRD: &str = "virtualips.kubevrrp.io";

fn column_names(crd: &serde_json::Value) -> Vec<String> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

pub fn run() {
    let cluster = up();
    let user = cluster.user();
    let kubectl = user.kubectl();
    user.apply(&vip_manifest(
        "web",
        0,
        53,
        "100ms",
        &[("n1", 150), ("n2", 100)],
        &json!({}),
    ))
    .unwrap();
    wait_master(&cluster, "web", "n1", Duration::from_secs(20));
    let watcher = Watcher::start(&cluster, "web");

    let installed = column_names(&kubectl.json(&["get", "crd", CRD, "-o", "json"]).unwrap());
    assert!(installed.iter().any(|c| c == "Master"), "{installed:?}");
    // An older CRD: without the Master column.
    let index = installed.iter().position(|c| c == "Master").unwrap();
    let remove = json!([{"op": "remove",
        "path": format!("/spec/versions/0/additionalPrinterColumns/{index}")}])
    .to_string();
    kubectl
        .run(&["patch", "crd", CRD, "--type=json", "-p", &remove])
        .unwrap();
    let older = column_names(&kubectl.json(&["get", "crd", CRD, "-o", "json"]).unwrap());
    assert!(!older.iter().any(|c| c == "Master"), "{older:?}");

    // The README's upgrade, step 1: the chart's CRDs, applied server-side.
    let crds = repo_root().join("charts/kube-vrrp/crds");
    kubectl
        .run(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crds.display().to_string(),
        ])
        .unwrap();
    // Step 2: the release.
    let chart = repo_root().join("charts/kube-vrrp");
    let upgraded = cluster
        .helm()
        .run(&[
            "upgrade",
            RELEASE,
            &chart.display().to_string(),
            "-n",
            NAMESPACE,
            "--reuse-values",
        ])
        .unwrap();
    assert!(upgraded.contains("REVISION: 2"), "{upgraded}");

    let restored = column_names(&kubectl.json(&["get", "crd", CRD, "-o", "json"]).unwrap());
    assert_eq!(restored, installed, "the chart's CRD is not back");
    poll(
        "kubectl get vip shows MASTER again",
        Duration::from_secs(10),
        POLL,
        || {
            Ok(
                (user.get_vip_row("web")?.get("MASTER").map(String::as_str) == Some("n1"))
                    .then_some(()),
            )
        },
    )
    .unwrap();
    assert_eq!(user::master(&user.vip("web").unwrap()), "n1");
    let samples = watcher.finish();
    assert!(
        samples.iter().all(|s| s.master == "n1"),
        "the VIP moved during the upgrade"
    );
    assert_never_split_brain(&samples, "a CRD and chart upgrade");
}
