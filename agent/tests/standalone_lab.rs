//! `kube-vrrp-agent run` in standalone mode, for real: two agents in two network namespaces
//! joined by a veth pair, each reading its own manifests directory. Elections, failover on
//! SIGKILL, graceful handover on SIGTERM, configuration reloads and the start-up cleanup.

// The helpers below are test code too: a failed setup step should fail the test right there,
// as `allow-unwrap-in-tests` allows inside the test functions.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use kube_vrrp_agent::report::InstanceStatus;
use kube_vrrp_agent::report::table::fetch;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_e2e::netns::{Netns, require_root, veth};

const BIN: &str = env!("CARGO_BIN_EXE_kube-vrrp-agent");
const LISTEN: &str = "127.0.0.1:9650";
const VIP: &str = "192.0.2.50";
const DB_VIP: &str = "192.0.2.60";
/// Generous bound for anything the protocol does in well under a second at a 100 ms interval.
const SETTLE: Duration = Duration::from_secs(5);

/// The manifests of the lab: VirtualIP `web` (VRID 51, advert 100 ms, n1 at 150, n2 at 100),
/// optionally `db`, and Nodes n1 (192.0.2.1) and n2 (192.0.2.2).
fn manifests(web_extra: &str, db: Option<&str>) -> String {
    let mut text = format!(
        "apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: web
spec:
  addresses: [\"{VIP}/24\"]
  virtualRouterID: 51
  advertInterval: 100ms
{web_extra}  priorities:
    - nodeName: n1
      priority: 150
    - nodeName: n2
      priority: 100
---
apiVersion: v1
kind: Node
metadata:
  name: n1
status:
  addresses: [{{type: InternalIP, address: 192.0.2.1}}]
---
apiVersion: v1
kind: Node
metadata:
  name: n2
status:
  addresses: [{{type: InternalIP, address: 192.0.2.2}}]
"
    );
    if let Some(priority) = db {
        write!(
            text,
            "---
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: db
spec:
  addresses: [\"{DB_VIP}/24\"]
  virtualRouterID: 52
  advertInterval: 100ms
  priorities:
    - nodeName: n1
      priority: {priority}
"
        )
        .unwrap();
    }
    text
}

/// One node: a namespace with `eth0` on 192.0.2.0/24 and a manifests directory.
struct Node {
    name: &'static str,
    ns: Netns,
    dir: PathBuf,
}

impl Node {
    fn write(&self, file: &str, text: &str) {
        // Write then rename, so the agent never reads half a file.
        let tmp = self.dir.join(format!(".{file}.tmp"));
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.dir.join(file)).unwrap();
    }

    fn holds(&self, address: &str) -> bool {
        let out = self
            .ns
            .exec(&["ip", "-br", "-4", "addr", "show", "dev", "eth0"])
            .unwrap();
        out.split_whitespace()
            .any(|word| word.split('/').next() == Some(address))
    }

    fn start(&self) -> Agent {
        let log = self.dir.join(format!("{}.log", self.name));
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let dir = self.dir.to_str().unwrap();
        let child = self
            .ns
            .command(&[
                BIN,
                "run",
                "--node",
                self.name,
                "--manifests",
                dir,
                "--listen",
                LISTEN,
                "--log-format",
                "json",
                "--poll-ms",
                "100",
            ])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log,
        }
    }

    /// The agent's `/status`, read from inside the namespace.
    fn status(&self) -> Vec<InstanceStatus> {
        let addr: SocketAddr = LISTEN.parse().unwrap();
        self.ns
            .run_in(move || fetch(addr))
            .unwrap()
            .unwrap_or_default()
    }

    fn instance(&self, name: &str) -> Option<InstanceStatus> {
        self.status().into_iter().find(|status| status.name == name)
    }

    fn state(&self, name: &str) -> Option<State> {
        self.instance(name).map(|status| status.state)
    }
}

/// A running agent process; killed (SIGKILL) and reaped on drop if still running.
struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// `ip netns exec` replaces itself with the agent, so the child's pid is the agent's.
    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Waits (bounded) for the process to exit.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "agent did not exit within {limit:?}"
            );
            sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        self.wait(SETTLE);
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Two nodes on one veth link. Namespaces and directories are removed on drop.
struct Lab {
    n1: Node,
    n2: Node,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.n1.dir);
        let _ = fs::remove_dir_all(&self.n2.dir);
    }
}

fn lab(test: &str, text: &str) -> Lab {
    require_root();
    let make = |name: &'static str| {
        let ns = Netns::create("kvsa").unwrap();
        let dir = std::env::temp_dir().join(format!("kvsa-{}-{test}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Node { name, ns, dir }
    };
    let n1 = make("n1");
    let n2 = make("n2");
    veth(&n1.ns, "eth0", &n2.ns, "eth0").unwrap();
    n1.ns
        .exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"])
        .unwrap();
    n2.ns
        .exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    n1.write("lab.yaml", text);
    n2.write("lab.yaml", text);
    Lab { n1, n2 }
}

/// Polls `check` until it holds or `limit` passes; returns how long it took.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(10));
    }
}

fn elected(lab: &Lab) -> (Agent, Agent) {
    let a1 = lab.n1.start();
    let a2 = lab.n2.start();
    wait_for("n1 MASTER and n2 BACKUP", SETTLE, || {
        lab.n1.state("web") == Some(State::Master) && lab.n2.state("web") == Some(State::Backup)
    });
    (a1, a2)
}

#[test]
fn two_agents_elect_the_higher_priority_and_only_it_holds_the_vip() {
    let lab = lab("elect", &manifests("", None));
    let (_a1, _a2) = elected(&lab);
    wait_for("the VIP on n1", SETTLE, || lab.n1.holds(VIP));
    // Hold for a while: the election is stable and the backup never grabs the VIP.
    for _ in 0..10 {
        sleep(Duration::from_millis(100));
        assert!(lab.n1.holds(VIP), "n1 lost the VIP");
        assert!(!lab.n2.holds(VIP), "n2 holds the VIP while BACKUP");
    }
    let n2 = lab.n2.instance("web").unwrap();
    assert_eq!(n2.master_address, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(n2.effective_priority, 100);
    let n1 = lab.n1.instance("web").unwrap();
    assert_eq!(n1.priority, 150);
    assert_eq!(n1.transitions, 2, "INIT → BACKUP → MASTER");
}

/// The voluntary context switches (wake-ups) of the agent's VRRP receive threads so far.
fn receive_thread_wakeups(pid: i32) -> u64 {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        if fs::read_to_string(task.join("comm"))
            .unwrap_or_default()
            .trim()
            != "vrrp-receive"
        {
            continue;
        }
        let status = fs::read_to_string(task.join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |count| count.trim().parse::<u64>().unwrap());
    }
    total
}

/// A BACKUP whose MASTER speaks routinely lets the adverts wait in its socket and reads them
/// together, half an interval before its Master_Down deadline: its receive thread wakes once
/// for two to four adverts (about 4 times a second at 100 ms and priority 100), not once for
/// each, and the election stays where it is.
#[test]
fn a_backup_reads_its_masters_routine_adverts_in_batches() {
    let lab = lab("batch", &manifests("", None));
    let (_a1, a2) = elected(&lab);
    sleep(Duration::from_millis(500));
    let window = Duration::from_secs(3);
    let before = receive_thread_wakeups(a2.pid());
    sleep(window);
    let wakeups = receive_thread_wakeups(a2.pid()) - before;
    // The MASTER sends one advert per 100 ms: 30 in the window.
    let adverts = 30;
    assert!(
        wakeups * 5 <= adverts * 3,
        "the receive thread woke {wakeups} times for about {adverts} adverts"
    );
    assert!(
        wakeups >= 3,
        "the receive thread woke only {wakeups} times in {window:?}"
    );
    assert_eq!(lab.n2.state("web"), Some(State::Backup));
    assert_eq!(
        lab.n2.instance("web").unwrap().transitions,
        1,
        "INIT → BACKUP"
    );
    assert!(lab.n1.holds(VIP) && !lab.n2.holds(VIP));
}

#[test]
fn killing_the_master_makes_the_backup_take_over() {
    let lab = lab("kill", &manifests("", None));
    let (mut a1, _a2) = elected(&lab);
    a1.kill();
    // Master_Down_Interval at 100 ms and priority 100: 3 × 100 ms + 61 ms.
    wait_for("n2 MASTER after SIGKILL of n1", SETTLE, || {
        lab.n2.state("web") == Some(State::Master)
    });
    wait_for("the VIP on n2", SETTLE, || lab.n2.holds(VIP));
}

#[test]
fn sigterm_sends_priority_zero_and_the_backup_takes_over() {
    let lab = lab("term", &manifests("", None));
    let (mut a1, a2) = elected(&lab);
    wait_for("the VIP on n1", SETTLE, || lab.n1.holds(VIP));
    a1.signal(nix::sys::signal::Signal::SIGTERM);
    let status = a1.wait(SETTLE);
    assert!(status.success(), "agent exited with {status}");
    assert!(
        !lab.n1.holds(VIP),
        "n1 kept the VIP after a graceful shutdown"
    );
    wait_for("n2 MASTER after SIGTERM of n1", SETTLE, || {
        lab.n2.state("web") == Some(State::Master)
    });
    // The reason proves the priority-0 advert was heard: the Master_Down_Timer was cut to
    // Skew_Time instead of running out.
    let log = a2.log();
    assert!(
        log.contains("\"reason\":\"master_stopped\""),
        "n2 did not take over because of a priority-0 advert:\n{log}"
    );
    wait_for("the VIP on n2", SETTLE, || lab.n2.holds(VIP));
}

#[test]
fn a_reload_that_does_not_touch_an_instance_keeps_its_state_and_vip() {
    let lab = lab("reload", &manifests("", Some("100")));
    let a1 = lab.n1.start();
    wait_for("web and db MASTER on n1", SETTLE, || {
        lab.n1.state("web") == Some(State::Master) && lab.n1.state("db") == Some(State::Master)
    });
    let before = lab.n1.instance("web").unwrap();
    // Change db's priority, then remove db: web must not notice either.
    lab.n1.write("lab.yaml", &manifests("", Some("120")));
    wait_for("db at priority 120", SETTLE, || {
        lab.n1.instance("db").is_some_and(|db| db.priority == 120)
    });
    let db = lab.n1.instance("db").unwrap();
    assert_eq!(db.state, State::Master, "a priority change moved db");
    assert_eq!(db.transitions, 2, "a priority change restarted db");
    lab.n1.write("lab.yaml", &manifests("", None));
    wait_for("db gone", SETTLE, || lab.n1.instance("db").is_none());
    assert!(!lab.n1.holds(DB_VIP), "the removed instance left its VIP");
    let after = lab.n1.instance("web").unwrap();
    assert_eq!(after.state, State::Master);
    assert_eq!(after.transitions, before.transitions, "web changed state");
    assert_eq!(after.last_transition, before.last_transition);
    assert!(lab.n1.holds(VIP), "web lost its VIP");
    drop(a1);
}

#[test]
fn a_broken_manifest_keeps_the_last_configuration() {
    let lab = lab("broken", &manifests("", None));
    let a1 = lab.n1.start();
    wait_for("web MASTER on n1", SETTLE, || {
        lab.n1.state("web") == Some(State::Master)
    });
    wait_for("the VIP on n1", SETTLE, || lab.n1.holds(VIP));
    // An edit that removes the VirtualIP, together with a file that does not parse: the whole
    // directory is rejected, so the VIP stays.
    let nodes_only = manifests("", None)
        .split_once("---\n")
        .map(|(_, nodes)| nodes.to_owned())
        .unwrap();
    lab.n1.write("lab.yaml", &nodes_only);
    lab.n1.write("broken.yaml", "addresses: [\n");
    wait_for("the rejection logged", SETTLE, || {
        a1.log().contains("manifests rejected")
    });
    sleep(Duration::from_millis(500));
    assert_eq!(lab.n1.state("web"), Some(State::Master));
    assert!(lab.n1.holds(VIP), "a broken edit dropped the VIP");
    // Fixing the directory applies the edit: web is gone, and so is its VIP.
    fs::remove_file(lab.n1.dir.join("broken.yaml")).unwrap();
    wait_for("web removed by the fixed edit", SETTLE, || {
        lab.n1.instance("web").is_none()
    });
    assert!(!lab.n1.holds(VIP));
}

#[test]
fn start_up_cleanup_removes_a_leftover_vip() {
    let lab = lab("cleanup", &manifests("  preempt: false\n", None));
    // n1 alone becomes MASTER, then crashes: its VIP stays on the interface.
    let mut a1 = lab.n1.start();
    wait_for("the VIP on n1", SETTLE, || lab.n1.holds(VIP));
    a1.kill();
    assert!(lab.n1.holds(VIP), "SIGKILL should leave the VIP behind");
    // n2 takes over; n1 comes back without preempting and must drop the leftover first.
    let _a2 = lab.n2.start();
    wait_for("n2 MASTER", SETTLE, || {
        lab.n2.state("web") == Some(State::Master)
    });
    let a1 = lab.n1.start();
    wait_for("n1 BACKUP", SETTLE, || {
        lab.n1.state("web") == Some(State::Backup)
    });
    assert!(!lab.n1.holds(VIP), "the leftover VIP is still on n1");
    assert!(
        a1.log().contains("removed leftover VIPs"),
        "no cleanup logged:\n{}",
        a1.log()
    );
    assert!(lab.n2.holds(VIP));
}

#[test]
fn an_instance_that_cannot_run_is_rejected_alone_and_the_others_keep_following_edits() {
    // web runs; db is added with an impossible VRRPv2 timer: only db is refused.
    let lab = lab("one-bad", &manifests("", None));
    let a1 = lab.n1.start();
    wait_for("web MASTER on n1", SETTLE, || {
        lab.n1.state("web") == Some(State::Master)
    });
    let impossible_db = manifests("", Some("100")).replace(
        "  virtualRouterID: 52\n  advertInterval: 100ms\n",
        "  virtualRouterID: 52\n  version: 2\n  advertInterval: 1500ms\n",
    );
    assert!(impossible_db.contains("1500ms"));
    lab.n1.write("lab.yaml", &impossible_db);
    let addr: SocketAddr = LISTEN.parse().unwrap();
    let document = || {
        lab.n1
            .ns
            .run_in(move || kube_vrrp_agent::report::table::fetch_document(addr))
            .unwrap()
            .ok()
    };
    wait_for("db rejected in /status", SETTLE, || {
        document().is_some_and(|d| d.rejected.iter().any(|r| r.name == "db"))
    });
    let rejected = document().unwrap().rejected;
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].message.contains("spec.advertInterval"),
        "{}",
        rejected[0].message
    );
    assert!(lab.n1.instance("db").is_none(), "db runs anyway");
    assert!(!lab.n1.holds(DB_VIP));
    // web keeps following edits meanwhile: its priority moves, it stays MASTER with its VIP.
    let raised = impossible_db.replace("priority: 150", "priority: 200");
    lab.n1.write("lab.yaml", &raised);
    wait_for("web at priority 200", SETTLE, || {
        lab.n1
            .instance("web")
            .is_some_and(|web| web.priority == 200)
    });
    assert_eq!(lab.n1.state("web"), Some(State::Master));
    assert!(lab.n1.holds(VIP));
    drop(a1);
}
