//! File trackers for real: a file on disk changing its integer, disappearing, coming back.

use std::path::PathBuf;
use std::time::Duration;

use kube_vrrp_agent::check::{FileProbe, Observation, Probe, TrackState, Tracker, TrackerSet};
use kube_vrrp_agent::report::Metrics;
use tokio::sync::watch;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("kube-vrrp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn wait_for_state(rx: &mut watch::Receiver<TrackState>, want: TrackState, what: &str) {
    let outcome = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s == want))
        .await
        .map(|waited| waited.map(|_| ()));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(closed)) => panic!("tracker set closed while waiting for {what}: {closed}"),
        Err(elapsed) => panic!(
            "{elapsed}: no {what} ({want:?}) within 5s; last {:?}",
            *rx.borrow()
        ),
    }
}

fn file_tracker(name: &str, weight: i32, path: PathBuf) -> Tracker {
    Tracker {
        name: name.into(),
        weight,
        probe: Probe::File(FileProbe {
            path,
            interval: Duration::from_millis(50),
        }),
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn file_value_times_weight_moves_priority_and_a_missing_file_is_fault() {
    let scratch = Scratch::new("file-weight");
    let path = scratch.0.join("weight");
    std::fs::write(&path, "2\n").unwrap();
    let metrics = Metrics::new();
    let (set, mut rx) = TrackerSet::start(
        vec![file_tracker("load", -10, path.clone())],
        metrics.clone(),
    );
    // Read on a blocking thread, at once.
    set.files_read().await;
    assert_eq!(
        *rx.borrow_and_update(),
        TrackState {
            weight_delta: -20,
            fault: false
        }
    );
    assert_eq!(
        set.observations(),
        [("load".to_owned(), Observation::Value(2))]
    );

    std::fs::write(&path, "-3").unwrap();
    wait_for_state(
        &mut rx,
        TrackState {
            weight_delta: 30,
            fault: false,
        },
        "value -3",
    )
    .await;

    std::fs::remove_file(&path).unwrap();
    wait_for_state(
        &mut rx,
        TrackState {
            weight_delta: 0,
            fault: true,
        },
        "fault on a missing file",
    )
    .await;
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "kube_vrrp_check_up{tracker=\"load\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "kube_vrrp_check_failures_total{tracker=\"load\"}"),
        Some(1.0),
        "{text}"
    );

    std::fs::write(&path, "0").unwrap();
    wait_for_state(
        &mut rx,
        TrackState {
            weight_delta: 0,
            fault: false,
        },
        "recovery",
    )
    .await;
    let text = metrics.encode();
    assert_eq!(
        sample(&text, "kube_vrrp_check_up{tracker=\"load\"}"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn weight_zero_file_is_fault_while_non_zero() {
    let scratch = Scratch::new("file-zero");
    let path = scratch.0.join("maintenance");
    std::fs::write(&path, "0").unwrap();
    let (set, mut rx) =
        TrackerSet::start(vec![file_tracker("maint", 0, path.clone())], Metrics::new());
    set.files_read().await;
    assert_eq!(*rx.borrow_and_update(), TrackState::default());
    std::fs::write(&path, "1").unwrap();
    wait_for_state(
        &mut rx,
        TrackState {
            weight_delta: 0,
            fault: true,
        },
        "fault on 1",
    )
    .await;
    std::fs::write(&path, "").unwrap();
    wait_for_state(&mut rx, TrackState::default(), "empty file reads as 0").await;
    std::fs::write(&path, "garbage").unwrap();
    wait_for_state(
        &mut rx,
        TrackState {
            weight_delta: 0,
            fault: true,
        },
        "fault on garbage",
    )
    .await;
}

#[tokio::test]
async fn missing_file_at_start_is_fault_immediately() {
    let scratch = Scratch::new("file-missing");
    let (set, rx) = TrackerSet::start(
        vec![file_tracker("absent", 50, scratch.0.join("nope"))],
        Metrics::new(),
    );
    set.files_read().await;
    assert_eq!(
        *rx.borrow(),
        TrackState {
            weight_delta: 0,
            fault: true
        }
    );
    assert_eq!(set.observations()[0].1, Observation::Unreadable);
}
