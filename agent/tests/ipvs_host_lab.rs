//! The agent on this host, for real, with a VirtualServer: the host kernel has no IPVS (no
//! `ip_vs` module, none loadable), so the agent must say `IPVS` is unavailable, with the
//! reason, for the node and for the VirtualServer, keep running VRRP (it becomes MASTER and
//! holds the VIP), and log the unavailability once, not on every retry.
//!
//! On a kernel that has IPVS the same test checks the other branch: the service is programmed.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::SocketAddr;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use kube_vrrp_agent::report::StatusDocument;
use kube_vrrp_agent::report::table::fetch_document;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_e2e::netns::{Netns, require_root, veth};

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp-agent");
const LISTEN: &str = "127.0.0.1:9651";

const MANIFESTS: &str = "apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
  addresses: [\"192.0.2.50/24\"]
  virtualRouterID: 51
  advertInterval: 100ms
---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualServer
metadata:
  name: web-http
spec:
  virtualIPRef: web
  port: 80
  scheduler: rr
  realServers:
    - {address: 192.0.2.21, port: 8080}
---
apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{type: InternalIP, address: 192.0.2.1}]
";

fn ipvs_present() -> bool {
    fs::read_to_string("/proc/net/genetlink").is_ok_and(|t| t.contains("IPVS"))
        || std::path::Path::new("/proc/net/ip_vs").exists()
}

#[test]
fn without_ipvs_the_agent_says_so_once_and_vrrp_runs_on() {
    require_root();
    let ns = Netns::create("kvipvs").unwrap();
    // The host has no dummy links: a veth pair to a peer namespace gives eth0 a carrier.
    let peer = Netns::create("kvipvsp").unwrap();
    veth(&ns, "eth0", &peer, "eth0").unwrap();
    peer.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();
    ns.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"])
        .unwrap();
    ns.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();
    ns.exec(&["ip", "link", "set", "lo", "up"]).unwrap();
    let dir = std::env::temp_dir().join(format!("kvipvs-host-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("manifests")).unwrap();
    fs::write(dir.join("manifests/lab.yaml"), MANIFESTS).unwrap();
    let log = dir.join("agent.log");
    let mut child = ns
        .command(&[
            BIN,
            "run",
            "--node",
            "n1",
            "--manifests",
            dir.join("manifests").to_str().unwrap(),
            "--listen",
            LISTEN,
            "--log-format",
            "json",
            "--runtime-dir",
            dir.join("state").to_str().unwrap(),
            "--ipvs-resync-ms",
            "200",
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = LISTEN.parse().unwrap();
    let status = |ns: &Netns| -> Option<StatusDocument> {
        ns.run_in(move || fetch_document(addr)).unwrap().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        last = status(&ns);
        let master = last.as_ref().is_some_and(|d| {
            d.instances
                .iter()
                .any(|i| i.name == "web" && i.state == State::Master && !i.vips.is_empty())
        });
        if master && last.as_ref().is_some_and(|d| d.ipvs.is_some()) {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    // A few more seconds: retries must not flood the log.
    sleep(Duration::from_secs(3));
    let document = status(&ns).or(last).expect("the agent answers /status");
    let _ = child.kill();
    let _ = child.wait();
    let text = fs::read_to_string(&log).unwrap_or_default();
    let web = document
        .instances
        .iter()
        .find(|i| i.name == "web")
        .expect("instance web");
    assert_eq!(
        web.state,
        State::Master,
        "VRRP runs on whatever IPVS does; log:\n{text}"
    );
    let ipvs = document.ipvs.expect("an IPVS report");
    let service = ipvs
        .virtual_services
        .iter()
        .find(|s| s.virtual_server == "web-http")
        .expect("the VirtualServer is listed");
    if ipvs_present() {
        assert!(ipvs.available, "{ipvs:?}");
        assert!(service.programmed, "{service:?}");
    } else {
        assert!(!ipvs.available, "{ipvs:?}");
        let reason = ipvs.message.clone().unwrap_or_default();
        assert!(
            reason.contains("no generic netlink family IPVS"),
            "{reason}"
        );
        assert!(!service.programmed);
        assert!(
            service
                .message
                .as_deref()
                .unwrap_or_default()
                .contains("IPVS is not available"),
            "{service:?}"
        );
        let warnings = text
            .lines()
            .filter(|l| l.contains("IPVS unavailable"))
            .count();
        assert_eq!(warnings, 1, "one warning, not one per retry; log:\n{text}");
        assert!(
            !dir.join("state/ipvs-services.json").exists(),
            "nothing was recorded as ours"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}
