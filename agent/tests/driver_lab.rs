//! The driver library in-process, for real: one `Driver` per network namespace, fed a
//! hand-built `DesiredConfig`, two namespaces joined by a veth pair. Link down → FAULT,
//! unicast, v2 passwords, IPv6, sync groups with trackers, and an instance restarted by a
//! VRID change.

// The helpers are test code: a failed setup step should fail the test right there, as
// `allow-unwrap-in-tests` allows inside the test functions.
#![allow(clippy::unwrap_used)]

mod lab;

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use kube_vrrp_agent::vrrp::Version;
use kube_vrrp_agent::vrrp::instance::State;
use kube_vrrp_agent::vrrp::packet::Authentication;
use kube_vrrp_crds::TrackFile;
use lab::{Agent, config, holds, spec, wait_for};

fn lab() -> lab::Lab {
    lab::lab("kvdr")
}

#[test]
fn link_down_puts_the_master_in_fault_and_the_peer_takes_over() {
    let lab = lab();
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    let a2 = Agent::start(&lab.n2, config(vec![spec("web", 51, "192.0.2.50/24", 100)]));
    wait_for("n1 MASTER", || a1.state("web") == Some(State::Master));
    wait_for("n2 BACKUP", || a2.state("web") == Some(State::Backup));
    lab.n1.exec(&["ip", "link", "set", "eth0", "down"]).unwrap();
    wait_for("n1 FAULT", || a1.state("web") == Some(State::Fault));
    assert!(!holds(&lab.n1, "192.0.2.50"), "FAULT kept the VIP");
    wait_for("n2 MASTER", || a2.state("web") == Some(State::Master));
    wait_for("the VIP on n2", || holds(&lab.n2, "192.0.2.50"));
    lab.n1.exec(&["ip", "link", "set", "eth0", "up"]).unwrap();
    wait_for("n1 MASTER again (preempt)", || {
        a1.state("web") == Some(State::Master)
    });
    wait_for("n2 BACKUP again", || a2.state("web") == Some(State::Backup));
    wait_for("the VIP back on n1 only", || {
        holds(&lab.n1, "192.0.2.50") && !holds(&lab.n2, "192.0.2.50")
    });
}

#[test]
fn unicast_peers_elect_and_adverts_from_other_sources_are_dropped() {
    let lab = lab();
    let unicast = |priority: u8, peer: &str| {
        let mut web = spec("web", 51, "192.0.2.50/24", priority);
        web.unicast_peers = vec![peer.parse().unwrap()];
        web
    };
    let a1 = Agent::start(&lab.n1, config(vec![unicast(150, "192.0.2.2")]));
    let a2 = Agent::start(&lab.n2, config(vec![unicast(100, "192.0.2.1")]));
    // A BACKUP learns its MASTER from the first advert it accepts, which may come after it
    // entered BACKUP; wait for that advert rather than racing it.
    let n1_address = Some("192.0.2.1".parse::<IpAddr>().unwrap());
    wait_for("n1 MASTER, n2 BACKUP following n1", || {
        a1.state("web") == Some(State::Master)
            && a2.state("web") == Some(State::Backup)
            && a2.status("web").and_then(|s| s.master_address) == n1_address
    });
    // n2 now trusts only a peer that does not exist: n1's adverts are dropped as `source`.
    a2.apply(config(vec![unicast(100, "192.0.2.9")]));
    wait_for("n2 MASTER once n1 is no longer a peer", || {
        a2.state("web") == Some(State::Master)
    });
    assert!(a2.dropped("source") > 0);
}

#[test]
fn v2_peers_with_the_same_password_elect_and_a_wrong_password_is_dropped() {
    let lab = lab();
    let v2 = |priority: u8, password: &[u8]| {
        let mut web = spec("web", 51, "192.0.2.50/24", priority);
        web.version = Version::V2;
        web.advert_interval = Duration::from_secs(1);
        web.authentication = Authentication::simple_text_password(password).unwrap();
        web
    };
    let a1 = Agent::start(&lab.n1, config(vec![v2(150, b"secret")]));
    let a2 = Agent::start(&lab.n2, config(vec![v2(100, b"other")]));
    // Different passwords: neither hears the other, both end up MASTER.
    wait_for("both MASTER", || {
        a1.state("web") == Some(State::Master) && a2.state("web") == Some(State::Master)
    });
    wait_for("auth drops counted", || a2.dropped("auth") > 0);
    // The same password: n2 hears n1's higher priority and steps down.
    a2.apply(config(vec![v2(100, b"secret")]));
    wait_for("n2 BACKUP", || a2.state("web") == Some(State::Backup));
    assert_eq!(a1.state("web"), Some(State::Master));
    wait_for("the VIP on n1 only", || {
        holds(&lab.n1, "192.0.2.50") && !holds(&lab.n2, "192.0.2.50")
    });
}

#[test]
fn ipv6_instances_elect_over_link_local_sources() {
    let lab = lab();
    let a1 = Agent::start(
        &lab.n1,
        config(vec![spec("web6", 61, "2001:db8::50/64", 150)]),
    );
    let a2 = Agent::start(
        &lab.n2,
        config(vec![spec("web6", 61, "2001:db8::50/64", 100)]),
    );
    wait_for("n1 MASTER, n2 BACKUP following it", || {
        a1.state("web6") == Some(State::Master)
            && a2.state("web6") == Some(State::Backup)
            && a2
                .status("web6")
                .is_some_and(|s| s.master_address.is_some())
    });
    let master = a2.status("web6").unwrap().master_address.unwrap();
    assert!(
        matches!(master, IpAddr::V6(v6) if v6.segments()[0] == 0xfe80),
        "the master's source {master} is not link-local"
    );
    wait_for("the VIP on n1 only", || {
        holds(&lab.n1, "2001:db8::50") && !holds(&lab.n2, "2001:db8::50")
    });
}

#[test]
fn a_sync_group_fails_over_together_when_one_member_tracker_faults() {
    let lab = lab();
    let flag: PathBuf = std::env::temp_dir().join(format!("kvdr-{}-flag", std::process::id()));
    fs::write(&flag, "0\n").unwrap();
    let members = |priority: u8, tracked: bool| {
        let mut a = spec("a", 71, "192.0.2.71/24", priority);
        let mut b = spec("b", 72, "192.0.2.72/24", priority);
        a.sync_group = Some("edge".into());
        b.sync_group = Some("edge".into());
        if tracked {
            a.track.files.push(TrackFile {
                path: flag.to_string_lossy().into_owned(),
                weight: None,
            });
        }
        config(vec![a, b])
    };
    let a1 = Agent::start(&lab.n1, members(150, true));
    let a2 = Agent::start(&lab.n2, members(100, false));
    wait_for("both members MASTER on n1", || {
        a1.state("a") == Some(State::Master) && a1.state("b") == Some(State::Master)
    });
    // Member a's tracked file turns non-zero: a goes to FAULT and takes b with it.
    fs::write(&flag, "1\n").unwrap();
    wait_for("both members FAULT on n1", || {
        a1.state("a") == Some(State::Fault) && a1.state("b") == Some(State::Fault)
    });
    wait_for("both members MASTER on n2", || {
        a2.state("a") == Some(State::Master) && a2.state("b") == Some(State::Master)
    });
    assert!(!holds(&lab.n1, "192.0.2.72"), "b kept its VIP in FAULT");
    let _ = fs::remove_file(&flag);
}

#[test]
fn a_vrid_change_restarts_only_that_instance() {
    let lab = lab();
    let web = spec("web", 51, "192.0.2.50/24", 150);
    let db = spec("db", 52, "192.0.2.60/24", 150);
    let a1 = Agent::start(&lab.n1, config(vec![web.clone(), db.clone()]));
    wait_for("both MASTER", || {
        a1.state("web") == Some(State::Master) && a1.state("db") == Some(State::Master)
    });
    let web_before = a1.status("web").unwrap();
    let mut moved = db;
    moved.vrid = 53;
    a1.apply(config(vec![web, moved]));
    wait_for("db restarted on VRID 53 and MASTER", || {
        a1.status("db")
            .is_some_and(|db| db.vrid == 53 && db.state == State::Master)
    });
    let web_after = a1.status("web").unwrap();
    assert_eq!(web_after.transitions, web_before.transitions);
    assert!(holds(&lab.n1, "192.0.2.50") && holds(&lab.n1, "192.0.2.60"));
}

#[test]
fn a_new_master_announces_its_vip_with_gratuitous_arp() {
    let lab = lab();
    // Capture, in n2, the first ARP whose sender address is the VIP (192.0.2.50 = c0000232).
    let capture = lab
        .n2
        .command(&[
            "timeout",
            "5",
            "tcpdump",
            "-l",
            "-nn",
            "-c",
            "1",
            "-i",
            "eth0",
            "arp and arp[14:4] = 0xc0000232",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump reports on stderr once it listens; give it a moment to attach.
    sleep(Duration::from_millis(500));
    let a1 = Agent::start(&lab.n1, config(vec![spec("web", 51, "192.0.2.50/24", 150)]));
    wait_for("n1 MASTER", || a1.state("web") == Some(State::Master));
    let output = capture.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Request who-has 192.0.2.50 tell 192.0.2.50"),
        "no gratuitous ARP for the VIP seen in n2: {text:?} / {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
