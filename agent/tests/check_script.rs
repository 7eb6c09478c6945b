//! Script trackers for real: `sh` commands, timeouts, process-group kills, rise/fall.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube_vrrp_agent::check::{
    FileProbe, Probe, ScriptOutcome, ScriptProbe, TrackState, Tracker, TrackerSet,
};
use kube_vrrp_agent::report::Metrics;
use tokio::sync::watch;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn script_tracker(name: &str, weight: i32, argv: Vec<String>, probe: ScriptParams) -> Tracker {
    Tracker {
        name: name.into(),
        weight,
        probe: Probe::Script(ScriptProbe {
            argv,
            interval: probe.interval,
            timeout: probe.timeout,
            rise: probe.rise,
            fall: probe.fall,
        }),
    }
}

#[derive(Clone, Copy)]
struct ScriptParams {
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
}

async fn wait_for_state(
    rx: &mut watch::Receiver<TrackState>,
    within: Duration,
    what: &str,
    pred: impl FnMut(&TrackState) -> bool,
) -> TrackState {
    let outcome = tokio::time::timeout(within, rx.wait_for(pred))
        .await
        .map(|waited| waited.map(|state| *state));
    match outcome {
        Ok(Ok(state)) => state,
        Ok(Err(closed)) => panic!("tracker set closed while waiting for {what}: {closed}"),
        Err(elapsed) => panic!(
            "{elapsed}: no {what} within {within:?}; last state {:?}",
            *rx.borrow()
        ),
    }
}

fn process_exists(pid: i32) -> bool {
    // A zombie still has a /proc entry but state Z; count it as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !process_exists(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !process_exists(pid)
}

fn read_pid(path: &Path, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} was never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn script_exiting_zero_succeeds_and_non_zero_fails_with_its_code() {
    let timeout = Duration::from_secs(10);
    assert_eq!(
        kube_vrrp_agent::check::script::run_once(&sh("exit 0"), timeout).await,
        ScriptOutcome::Success
    );
    assert_eq!(
        kube_vrrp_agent::check::script::run_once(&sh("exit 3"), timeout).await,
        ScriptOutcome::Failed(Some(3))
    );
}

#[tokio::test]
async fn missing_program_is_reported_as_not_started() {
    let outcome = kube_vrrp_agent::check::script::run_once(
        &["/nonexistent/kube-vrrp-check".to_owned()],
        Duration::from_secs(1),
    )
    .await;
    assert!(
        matches!(outcome, ScriptOutcome::NotStarted(_)),
        "{outcome:?}"
    );
    assert!(!outcome.is_success());
    let empty = kube_vrrp_agent::check::script::run_once(&[], Duration::from_secs(1)).await;
    assert!(matches!(empty, ScriptOutcome::NotStarted(_)), "{empty:?}");
}

#[tokio::test]
async fn hung_script_is_killed_at_the_timeout_with_its_children() {
    let scratch = Scratch::new("hung");
    let pid_file = scratch.path("child.pid");
    let started = Instant::now();
    let outcome = kube_vrrp_agent::check::script::run_once(
        &sh(&format!(
            "sleep 30 & echo $! > {}; wait",
            pid_file.display()
        )),
        Duration::from_millis(300),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, ScriptOutcome::TimedOut);
    assert!(
        elapsed < Duration::from_secs(5),
        "run_once returned after {elapsed:?}, the timeout was 300ms"
    );
    let child = read_pid(&pid_file, Duration::from_secs(1));
    assert!(
        wait_gone(child, Duration::from_secs(5)),
        "the script's background `sleep` (pid {child}) survived the timeout kill"
    );
}

#[tokio::test]
async fn script_tracker_goes_down_after_fall_failures_and_up_after_rise_successes() {
    let scratch = Scratch::new("risefall");
    let control = scratch.path("exit-code");
    let log = scratch.path("runs.log");
    std::fs::write(&control, "0").unwrap();
    let argv = sh(&format!(
        "c=$(cat {control}); echo $c >> {log}; exit $c",
        control = control.display(),
        log = log.display()
    ));
    let params = ScriptParams {
        interval: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        rise: 2,
        fall: 3,
    };
    let metrics = Metrics::new();
    let (set, mut rx) = TrackerSet::start(
        vec![script_tracker("chk", 0, argv, params)],
        metrics.clone(),
    );
    // Before the first run a weight-0 script counts as down: FAULT.
    tokio::time::timeout(Duration::from_secs(10), set.settled())
        .await
        .expect("the script never ran");
    wait_for_state(&mut rx, Duration::from_secs(5), "the first success", |s| {
        !s.fault
    })
    .await;

    std::fs::write(&control, "1").unwrap();
    wait_for_state(
        &mut rx,
        Duration::from_secs(10),
        "FAULT after failures",
        |s| s.fault,
    )
    .await;
    let runs = std::fs::read_to_string(&log).unwrap();
    let failures = runs.lines().rev().take_while(|l| *l == "1").count();
    assert!(
        (3..=4).contains(&failures),
        "went down after {failures} trailing failures (fall = 3); runs: {runs:?}"
    );

    std::fs::write(&control, "0").unwrap();
    wait_for_state(&mut rx, Duration::from_secs(10), "recovery", |s| !s.fault).await;
    let runs = std::fs::read_to_string(&log).unwrap();
    let successes = runs.lines().rev().take_while(|l| *l == "0").count();
    assert!(
        (2..=3).contains(&successes),
        "came back up after {successes} trailing successes (rise = 2); runs: {runs:?}"
    );
    let text = metrics.encode();
    let failures_line = text
        .lines()
        .find(|l| l.starts_with("kube_vrrp_check_failures_total{tracker=\"chk\"}"))
        .unwrap_or_else(|| panic!("no failure counter in:\n{text}"));
    let counted: u64 = failures_line.rsplit(' ').next().unwrap().parse().unwrap();
    let failed_runs = runs.lines().filter(|l| *l == "1").count() as u64;
    assert_eq!(counted, failed_runs, "{text}");
    assert!(
        text.contains("kube_vrrp_check_up{tracker=\"chk\"} 1\n"),
        "{text}"
    );
    drop(set);
}

#[tokio::test]
async fn hung_script_counts_as_down_and_does_not_delay_other_trackers() {
    let scratch = Scratch::new("nonblocking");
    let file = scratch.path("value");
    std::fs::write(&file, "0").unwrap();
    let hung = script_tracker(
        "hung",
        -10,
        sh("sleep 30"),
        ScriptParams {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1,
        },
    );
    let value = Tracker {
        name: "value".into(),
        weight: -1,
        probe: Probe::File(FileProbe {
            path: file.clone(),
            interval: Duration::from_millis(50),
        }),
    };
    let (set, mut rx) = TrackerSet::start(vec![hung, value], Metrics::new());
    // While the script hangs (Pending counts as down: -10), the file tracker still moves the sum.
    std::fs::write(&file, "5").unwrap();
    let state = wait_for_state(
        &mut rx,
        Duration::from_millis(400),
        "the file change",
        |s| s.weight_delta == -15,
    )
    .await;
    assert!(!state.fault);
    // After the timeout the hung script is a failed run: still down, still -10.
    tokio::time::timeout(Duration::from_secs(5), set.settled())
        .await
        .expect("the hung script was never timed out");
    let observed = set.observations();
    assert_eq!(observed[0].0, "hung");
    assert_eq!(observed[0].1, kube_vrrp_agent::check::Observation::Down);
    let statuses = set.checker_statuses("web");
    assert_eq!(
        statuses[0].message.as_deref(),
        Some("still running after 500ms: killed")
    );
    assert_eq!(rx.borrow().weight_delta, -15);
}

#[tokio::test]
async fn dropping_the_tracker_set_kills_a_running_script() {
    let scratch = Scratch::new("drop");
    let pid_file = scratch.path("script.pid");
    let tracker = script_tracker(
        "long",
        0,
        sh(&format!("echo $$ > {}; sleep 30", pid_file.display())),
        ScriptParams {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
            rise: 1,
            fall: 1,
        },
    );
    let (set, _rx) = TrackerSet::start(vec![tracker], Metrics::new());
    let pid = tokio::task::spawn_blocking(move || read_pid(&pid_file, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(process_exists(pid));
    drop(set);
    let gone = tokio::task::spawn_blocking(move || wait_gone(pid, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        gone,
        "script {pid} still runs after its TrackerSet was dropped"
    );
}
