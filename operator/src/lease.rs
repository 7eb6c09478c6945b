//! Leader election over a `coordination.k8s.io` Lease, fenced by this replica's monotonic
//! clock: one replica holds the Lease and writes; a standby takes over once the Lease's
//! record has stood unchanged for the lease duration (measured on its own clock, so clock
//! skew between nodes does not matter), or at its next read (every 2 s) when the holder
//! releases it on shutdown.
//! A holder that cannot renew, or that was frozen past its term (SIGSTOP, a long GC-like
//! pause, a VM stall), stops writing when the term it last secured runs out, before any
//! standby may take over, whether or not it has heard of the takeover yet. Every failed read or
//! write of the Lease (a conflict aside) counts as an error of the `lease` controller: an
//! operator that lost the API server shows it, although it writes nothing else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::{ErrorLabels, LEASE_CONTROLLER, Metrics};

/// Default Lease name.
pub const DEFAULT_LEASE_NAME: &str = "kube-vrrp-operator";

/// How often a standby reads the Lease, and a holder retries a failed renewal.
const RETRY: Duration = Duration::from_secs(2);

/// Where the Lease is and how it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name); `None`: a random one.
    pub identity: Option<String>,
    /// Seconds a holder's term lasts after its last renewal was sent.
    pub duration_seconds: u64,
    /// Seconds before the end of its term at which the holder renews.
    pub grace_seconds: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            name: DEFAULT_LEASE_NAME.to_owned(),
            identity: None,
            duration_seconds: 15,
            grace_seconds: 5,
        }
    }
}

/// Leader election failures.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The timings cannot work.
    #[error("lease grace ({grace}s) must be above 0 and below the duration ({duration}s)")]
    Timing {
        /// Duration in seconds.
        duration: u64,
        /// Grace in seconds.
        grace: u64,
    },
    /// The Lease could not be released.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The election task panicked or was cancelled.
    #[error("the leader election task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl LeaseConfig {
    /// Checks the timings.
    pub fn validate(&self) -> Result<(), LeaseError> {
        if self.grace_seconds == 0 || self.grace_seconds >= self.duration_seconds {
            return Err(LeaseError::Timing {
                duration: self.duration_seconds,
                grace: self.grace_seconds,
            });
        }
        Ok(())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }

    /// How long after sending a renewal the holder renews again.
    fn renew_after(&self) -> Duration {
        Duration::from_secs(self.duration_seconds - self.grace_seconds)
    }

    /// How long after sending its last successful renewal the holder may write: the lease
    /// duration less half the grace, left for writes already on their way. A standby counts
    /// the duration from when it saw that renewal, which is later.
    fn term(&self) -> Duration {
        self.duration()
            .saturating_sub(Duration::from_secs(self.grace_seconds) / 2)
    }

    fn api_error(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }
}

/// The term this replica holds, which alone decides whether it may write: the role only
/// tells waiters that it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    /// No term: the role alone decides (tests, a replica driven by hand).
    Unbounded,
    /// Held until then.
    Until(Instant),
    /// Not held.
    Over,
}

/// Whether this replica may write now: its role, told on every change, and the term it holds.
#[derive(Clone, Debug)]
pub struct Leadership {
    role: watch::Receiver<bool>,
    term: Arc<Mutex<Term>>,
}

impl Leadership {
    /// Leadership decided by `role` alone, with no term of its own (tests, a single replica
    /// driven by hand).
    pub fn unfenced(role: watch::Receiver<bool>) -> Self {
        Self {
            role,
            term: Arc::new(Mutex::new(Term::Unbounded)),
        }
    }

    /// True while this replica holds the Lease and its term has not run out.
    pub fn holds(&self) -> bool {
        let term = *self
            .term
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *self.role.borrow()
            && match term {
                Term::Unbounded => true,
                Term::Until(ends) => Instant::now() < ends,
                Term::Over => false,
            }
    }

    /// Waits for the role to change; an error once the election has stopped.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.role.changed().await
    }
}

/// What a replica does with the Lease as it reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Move {
    /// It is ours: renew it when due.
    Renew,
    /// It is free or expired: take it.
    Acquire,
    /// Another replica holds it, for this long yet unless it renews.
    Wait(Duration),
}

/// The move for `spec`, whose record has stood unchanged for `unchanged_for` on this
/// replica's clock.
fn decide(me: &str, spec: &LeaseSpec, unchanged_for: Duration, default: Duration) -> Move {
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Move::Renew,
        None | Some("") => Move::Acquire,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default, Duration::from_secs);
            if unchanged_for >= duration {
                Move::Acquire
            } else {
                Move::Wait(duration.saturating_sub(unchanged_for))
            }
        }
    }
}

/// `spec` held by `me` from `now`: a renewal keeps the acquire time and transition count, an
/// acquisition starts a new term.
fn held_by(me: &str, spec: &LeaseSpec, acquiring: bool, duration_seconds: u64) -> LeaseSpec {
    let now = Some(MicroTime(Timestamp::now()));
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: i32::try_from(duration_seconds).ok(),
        renew_time: now.clone(),
        acquire_time: if acquiring {
            now
        } else {
            spec.acquire_time.clone()
        },
        lease_transitions: if acquiring {
            Some(spec.lease_transitions.unwrap_or(0) + 1)
        } else {
            spec.lease_transitions
        },
        ..spec.clone()
    }
}

/// A running election.
#[derive(Debug)]
pub struct Election {
    leadership: Leadership,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), LeaseError>>,
}

impl Election {
    /// This replica's leadership.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops campaigning and releases the Lease if held, so another replica takes over at
    /// once.
    pub async fn stop(self) -> Result<(), LeaseError> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// Starts campaigning for the Lease (created when missing); failures are counted in `metrics`.
pub fn elect(
    client: Client,
    config: &LeaseConfig,
    metrics: Arc<Metrics>,
) -> Result<Election, LeaseError> {
    config.validate()?;
    let identity = config.identity.clone().unwrap_or_else(random_identity);
    let (role_tx, role) = watch::channel(false);
    let term = Arc::new(Mutex::new(Term::Over));
    let (stop, stopped) = watch::channel(false);
    let campaign = Campaign {
        api: Api::namespaced(client, &config.namespace),
        config: config.clone(),
        identity,
        role: role_tx,
        term: Arc::clone(&term),
        held_since: None,
        seen: None,
        expires: None,
        metrics,
    };
    Ok(Election {
        leadership: Leadership { role, term },
        stop,
        task: tokio::spawn(campaign.run(stopped)),
    })
}

/// An identity unique enough without a pod name: the process and the time it started.
fn random_identity() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("kube-vrrp-operator-{}-{nanos:09}", std::process::id())
}

/// The campaign loop's state.
struct Campaign {
    api: Api<Lease>,
    config: LeaseConfig,
    identity: String,
    role: watch::Sender<bool>,
    term: Arc<Mutex<Term>>,
    /// When the last successful renewal (or acquisition) of ours was sent.
    held_since: Option<Instant>,
    /// The record's `resourceVersion` as last read, and when it was first read so.
    seen: Option<(String, Instant)>,
    /// When another holder's Lease expires unless renewed, as last read.
    expires: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl Campaign {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> Result<(), LeaseError> {
        loop {
            self.step().await;
            let wake = self.next_wake();
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                _ = stopped.changed() => break,
            }
        }
        self.release().await
    }

    /// One read of the Lease and the move it calls for.
    async fn step(&mut self) {
        let lease = match self.api.get_opt(&self.config.name).await {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, lease = %self.config.name, "reading the Lease failed");
                self.count_failure("ReadLease");
                self.check_term();
                return;
            }
        };
        let Some(lease) = lease else {
            self.create().await;
            return;
        };
        let now = Instant::now();
        let version = lease.resource_version().unwrap_or_default();
        if self.seen.as_ref().is_none_or(|(v, _)| *v != version) {
            self.seen = Some((version, now));
        }
        let unchanged_for = self
            .seen
            .as_ref()
            .map_or(Duration::ZERO, |(_, at)| now - *at);
        let spec = lease.spec.clone().unwrap_or_default();
        match decide(&self.identity, &spec, unchanged_for, self.config.duration()) {
            Move::Wait(left) => {
                if self.held_since.is_some() {
                    tracing::warn!(holder = ?spec.holder_identity, "the Lease was taken over");
                }
                self.lapse();
                self.expires = Some(now + left);
            }
            Move::Renew => {
                if self
                    .held_since
                    .is_none_or(|at| now >= at + self.config.renew_after())
                {
                    self.write(lease, &spec, false).await;
                }
                self.check_term();
            }
            Move::Acquire => {
                self.write(lease, &spec, true).await;
            }
        }
    }

    /// Replaces the Lease with one held by us, guarded by the `resourceVersion` it was read
    /// at: of two replicas racing, one gets a conflict.
    async fn write(&mut self, lease: Lease, spec: &LeaseSpec, acquiring: bool) {
        let body = Lease {
            spec: Some(held_by(
                &self.identity,
                spec,
                acquiring,
                self.config.duration_seconds,
            )),
            ..lease
        };
        let sent = Instant::now();
        let result = self
            .api
            .replace(&self.config.name, &PostParams::default(), &body)
            .await;
        self.written(
            result,
            sent,
            if acquiring { "acquiring" } else { "renewing" },
        );
    }

    /// The outcome of a write of ours sent at `sent`: held from then, or a counted failure
    /// (a conflict aside: another replica wrote first, which the next read shows).
    fn written(&mut self, result: Result<Lease, kube::Error>, sent: Instant, what: &str) {
        match result {
            Ok(written) => {
                self.seen = Some((
                    written.resource_version().unwrap_or_default(),
                    Instant::now(),
                ));
                self.hold(sent);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(what, "the Lease changed while writing it");
                self.check_term();
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "writing the Lease failed");
                self.count_failure("WriteLease");
                self.check_term();
            }
        }
    }

    async fn create(&mut self) {
        let body = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(held_by(
                &self.identity,
                &LeaseSpec::default(),
                true,
                self.config.duration_seconds,
            )),
        };
        let sent = Instant::now();
        let result = self.api.create(&PostParams::default(), &body).await;
        self.written(result, sent, "creating");
    }

    fn count_failure(&self, reason: &'static str) {
        self.metrics
            .reconcile_errors_total
            .get_or_create(&ErrorLabels {
                controller: LEASE_CONTROLLER,
                reason,
            })
            .inc();
    }

    /// A write of ours sent at `sent` succeeded: the term runs from then.
    fn hold(&mut self, sent: Instant) {
        let ends = sent + self.config.term();
        self.set_term(Term::Until(ends));
        if self.held_since.is_none() {
            tracing::info!(identity = %self.identity, "acquired the Lease");
        }
        self.held_since = Some(sent);
        self.role
            .send_if_modified(|role| !std::mem::replace(role, true));
    }

    /// Gives up the role once the term has run out without a renewal.
    fn check_term(&mut self) {
        if let Some(since) = self.held_since
            && Instant::now() >= since + self.config.term()
        {
            tracing::warn!(
                unrenewed_for = ?since.elapsed(),
                "the Lease term ran out without a renewal; writing nothing until it is held again"
            );
            self.lapse();
        }
    }

    fn set_term(&self, term: Term) {
        *self
            .term
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = term;
    }

    fn lapse(&mut self) {
        self.held_since = None;
        self.set_term(Term::Over);
        self.role
            .send_if_modified(|role| std::mem::replace(role, false));
    }

    /// When to read the Lease next: a holder when its renewal is due (or, after a failed
    /// one, soon, but no later than the end of its term); a standby every [`RETRY`].
    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        match self.held_since {
            Some(since) => {
                let due = since + self.config.renew_after();
                let ends = since + self.config.term();
                if due > now {
                    due
                } else {
                    (now + RETRY).min(ends)
                }
            }
            // Read again when the holder's Lease would expire, if that comes first.
            None => self
                .expires
                .filter(|at| *at > now)
                .map_or(now + RETRY, |at| at.min(now + RETRY)),
        }
    }

    /// Gives the Lease up on shutdown: no holder, so a standby takes it on its
    /// next read.
    async fn release(mut self) -> Result<(), LeaseError> {
        if self.held_since.is_none() {
            return Ok(());
        }
        self.lapse();
        let Some(lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.config.api_error(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let body = Lease {
            spec: Some(LeaseSpec {
                holder_identity: None,
                renew_time: None,
                ..spec
            }),
            ..lease
        };
        self.api
            .replace(&self.config.name, &PostParams::default(), &body)
            .await
            .map(drop)
            .map_err(|e| self.config.api_error(e))?;
        tracing::info!("released the Lease");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn spec(holder: Option<&str>, duration: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: duration,
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn grace_must_be_positive_and_below_the_duration() {
        for (duration, grace, ok) in [(15, 5, true), (15, 0, false), (15, 15, false), (2, 1, true)]
        {
            let c = LeaseConfig {
                duration_seconds: duration,
                grace_seconds: grace,
                ..LeaseConfig::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "{duration}/{grace}");
        }
    }

    #[test]
    fn a_holder_renews_before_its_term_ends_and_its_term_ends_before_a_standby_may_take_over() {
        let c = LeaseConfig::default();
        assert_eq!(c.renew_after(), Duration::from_secs(10));
        assert_eq!(c.term(), Duration::from_millis(12_500));
        assert!(c.renew_after() < c.term() && c.term() < c.duration());
        let tight = LeaseConfig {
            duration_seconds: 2,
            grace_seconds: 1,
            ..LeaseConfig::default()
        };
        assert!(tight.renew_after() < tight.term() && tight.term() < tight.duration());
    }

    #[test]
    fn ours_is_renewed_a_free_one_taken_and_anothers_waited_for_until_it_stood_unchanged_a_duration()
     {
        let s = Duration::from_secs;
        assert_eq!(
            decide("a", &spec(Some("a"), Some(15)), s(99), DURATION),
            Move::Renew
        );
        assert_eq!(
            decide("a", &spec(None, Some(15)), s(0), DURATION),
            Move::Acquire
        );
        assert_eq!(
            decide("a", &spec(Some(""), None), s(0), DURATION),
            Move::Acquire
        );
        assert_eq!(
            decide("a", &spec(Some("b"), Some(15)), s(14), DURATION),
            Move::Wait(s(1))
        );
        assert_eq!(
            decide("a", &spec(Some("b"), Some(15)), s(15), DURATION),
            Move::Acquire
        );
        // The holder's own duration counts, not ours.
        assert_eq!(
            decide("a", &spec(Some("b"), Some(30)), s(20), DURATION),
            Move::Wait(s(10))
        );
        // Without one, ours.
        assert_eq!(
            decide("a", &spec(Some("b"), None), s(15), DURATION),
            Move::Acquire
        );
    }

    #[test]
    fn acquiring_starts_a_new_term_and_renewing_keeps_it() {
        let old = spec(Some("b"), Some(30));
        let acquired = held_by("a", &old, true, 15);
        assert_eq!(acquired.holder_identity.as_deref(), Some("a"));
        assert_eq!(acquired.lease_duration_seconds, Some(15));
        assert_eq!(acquired.lease_transitions, Some(4));
        assert_ne!(acquired.acquire_time, old.acquire_time);
        assert!(acquired.renew_time.is_some());
        let renewed = held_by("a", &acquired, false, 15);
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, acquired.acquire_time);
    }

    #[test]
    fn leadership_lapses_on_its_own_when_the_term_ends_unrenewed() {
        let (_role_tx, role) = watch::channel(true);
        let leadership = Leadership {
            role,
            term: Arc::new(Mutex::new(Term::Until(
                Instant::now() + Duration::from_millis(50),
            ))),
        };
        assert!(leadership.holds());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!leadership.holds(), "still writing after the term ended");
        // A lapse ends the term first: a reader that still sees the old role writes nothing.
        *leadership.term.lock().unwrap() = Term::Over;
        assert!(!leadership.holds());
        let (role_tx, role) = watch::channel(true);
        let unfenced = Leadership::unfenced(role);
        assert!(unfenced.holds());
        role_tx.send(false).unwrap();
        assert!(!unfenced.holds());
    }
}
