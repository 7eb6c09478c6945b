//! Leader election over a `coordination.k8s.io` Lease (kube-lease-manager): one replica
//! holds the Lease and writes; the others watch and take over within the lease duration
//! once the holder stops renewing, or at once when it releases the Lease on shutdown.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Default Lease name.
pub const DEFAULT_LEASE_NAME: &str = "kube-vrrp-operator";

/// Where the Lease is and how it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (the pod name); `None`: a random one.
    pub identity: Option<String>,
    /// Seconds a holder's lock stays valid after its last renewal.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
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
    /// The timings cannot work (the library would panic on them).
    #[error("lease grace ({grace}s) must be above 0 and below the duration ({duration}s)")]
    Timing {
        /// Duration in seconds.
        duration: u64,
        /// Grace in seconds.
        grace: u64,
    },
    /// The Lease could not be read, created or released.
    #[error("lease {namespace}/{name}: {source}")]
    Manager {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The library error.
        #[source]
        source: LeaseManagerError,
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

    fn wrap(&self, source: LeaseManagerError) -> LeaseError {
        LeaseError::Manager {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }
}

/// A running election.
pub struct Election {
    leader: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
    config: LeaseConfig,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("leader", &*self.leader.borrow())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Election {
    /// A receiver that is true while this replica holds the Lease.
    pub fn leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Stops campaigning and releases the Lease if held, so another replica takes over at
    /// once. Every other receiver from [`Election::leader`] must be dropped first, or this
    /// waits for them.
    pub async fn stop(self) -> Result<(), LeaseError> {
        let Self {
            leader,
            task,
            config,
        } = self;
        drop(leader);
        task.await?.map(drop).map_err(|e| config.wrap(e))
    }
}

/// Starts campaigning for the Lease (created when missing).
pub async fn elect(client: Client, config: &LeaseConfig) -> Result<Election, LeaseError> {
    config.validate()?;
    let mut builder = LeaseManagerBuilder::new(client, &config.name)
        .with_namespace(&config.namespace)
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds);
    if let Some(identity) = &config.identity {
        // The field manager stays the library's, derived from the identity: SSA conflicts
        // between replicas' field managers are what make the lock exclusive.
        builder = builder.with_identity(identity);
    }
    let manager = builder.build().await.map_err(|e| config.wrap(e))?;
    let (leader, task) = manager.watch().await;
    Ok(Election {
        leader,
        task,
        config: config.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
