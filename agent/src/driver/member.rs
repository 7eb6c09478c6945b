//! One member of a unit: its spec, its interface as last seen, the addresses it speaks from,
//! its VIP books, what the machine was last told about the edge, and the words its status says
//! them in. Performing actions is the unit task's; this is its bookkeeping.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use tokio::task::JoinHandle;

use super::beat::Beat;
use super::config::InstanceSpec;
use super::conflict::ConflictProbe;
use super::endpoint::{Endpoint, Sources};
use super::failover::{FailoverTrace, LastHeard};
use super::interfaces::InterfaceView;
use super::outgoing::EncodedAdverts;
use super::routine::Routine;
use super::streak::Streak;
use super::view_feed::ViewFeed;
use super::vips::{Vips, describe_conflicts};
use super::virtual_mac::VmacBinding;
use crate::check::TrackerSet;
use crate::net::announce::GarpSchedule;
use crate::net::link::{LinkDebounce, LinkState};
use crate::report::InstanceStatus;
use crate::vrrp::instance::{EdgeFaults, Instance, ReceivedAdvert};

/// Aborts a helper task when dropped.
#[derive(Debug)]
pub(super) struct Helper(pub(super) JoinHandle<()>);

impl Drop for Helper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When a failed VIP add is retried: [`super::retry_delay`] after each failure in a row (1 s doubling
/// to 30 s); a successful add starts over.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AddRetry {
    pub(super) failures: u32,
    pub(super) at: Option<Instant>,
    /// `at` on the wall clock, for status.
    pub(super) at_wall: Option<Timestamp>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) spec: InstanceSpec,
    pub(super) endpoint: Arc<Endpoint>,
    /// The interface as last seen.
    pub(super) view: InterfaceView,
    /// With a virtual MAC: the interface under it as last seen (where the sources come from).
    pub(super) source_view: Option<InterfaceView>,
    /// With a virtual MAC: the feed of the interface under it.
    pub(super) sources_feed: Option<ViewFeed>,
    pub(super) vmac: Option<VmacBinding>,
    /// The addresses VRRP speaks from, as last derived from `view`.
    pub(super) sources: Sources,
    pub(super) debounce: LinkDebounce,
    pub(super) trackers: Option<(TrackerSet, Helper)>,
    pub(super) view_feed: ViewFeed,
    pub(super) garp: Option<GarpSchedule>,
    pub(super) vips: Vips,
    /// What the machine was last told about the edge.
    pub(super) edge: EdgeFaults,
    pub(super) add_retry: AddRetry,
    /// VIPs re-added after something else removed them, and the last time.
    pub(super) restored: Option<(u64, Timestamp)>,
    /// When a planned exit started handing over (the VIPs kept for the new MASTER).
    pub(super) handover_started: Option<Instant>,
    /// In BACKUP: the last advert heard (the MASTER's) and the timer it left running.
    pub(super) last_heard: Option<LastHeard>,
    /// Just become MASTER after hearing one: the failover's stages so far, until this node's
    /// first advert ends it.
    pub(super) failover: Option<FailoverTrace>,
    /// Adverts that could not be sent in a row (no source address, the send refused).
    pub(super) send_failures: Streak,
    /// Why `acceptMode: false` is not enforced, when it is not.
    pub(super) accept_error: Option<String>,
    /// Its adverts as last encoded.
    pub(super) adverts: EncodedAdverts,
    /// Counts the adverts the member sent (its metric, held so that sending looks up nothing).
    pub(super) sent: Counter,
    pub(super) transitions: u64,
    pub(super) last_transition: Option<Timestamp>,
    pub(super) published: Option<InstanceStatus>,
    /// While MASTER: the probes for another holder of the VIPs, and what they found.
    pub(super) probe: ConflictProbe,
    /// The adverts the receive path takes for this member without waking the unit.
    pub(super) routine: Routine,
    /// The last advert heard from the queue, when the machine accepted it as its BACKUP's
    /// MASTER's, with the effective priority it was accepted at: the advert that is routine
    /// while nothing else changes.
    pub(super) routine_candidate: Option<(ReceivedAdvert, u8)>,
    /// While MASTER and asleep: the routine adverts the ticker sends for this member.
    pub(super) beat: Beat,
    /// The advert interval of the Adver_Timer handed to the ticker, while it holds it.
    pub(super) beat_interval: Option<Duration>,
}

impl Member {
    /// The raw link state of the member's own interface: down while the name is gone or now
    /// names another interface (re-created: the driver re-binds the unit).
    pub(super) fn link_state(&self) -> LinkState {
        if self.view.ifindex == Some(self.endpoint.ifindex) {
            self.view.state
        } else {
            LinkState::Down
        }
    }

    /// The address this member speaks from (and breaks ties with), if the interface has one.
    pub(super) fn source(&self) -> Option<IpAddr> {
        self.sources
            .for_instance(!self.spec.unicast_peers.is_empty())
    }

    /// The machine's primary address: the source, or the unspecified address while there is
    /// none (the member is then in FAULT and sends nothing).
    pub(super) fn primary(&self) -> IpAddr {
        self.source()
            .unwrap_or_else(|| unspecified(self.endpoint.family))
    }

    /// The edge faults the interface and the books call for now.
    pub(super) fn edge_faults(&self) -> EdgeFaults {
        EdgeFaults {
            address_conflict: !self.vips.conflicts().is_empty(),
            no_source_address: self.source().is_none(),
            vip_add_failed: self.add_retry.at.is_some(),
        }
    }

    /// Why the member is not running normally, in words, if it is not.
    pub(super) fn message(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.vips.conflicts().is_empty() {
            parts.push(format!(
                "address conflict on {}: {} already there, not installed by kube-vrrp; left alone, instance kept in FAULT",
                self.endpoint.interface,
                describe_conflicts(self.vips.conflicts())
            ));
        }
        if self.source().is_none() {
            parts.push(format!(
                "{} has no {} address to send adverts from",
                self.endpoint.interface,
                self.endpoint.family.as_str()
            ));
        }
        if let (Some(_), Some(at)) = (self.add_retry.at, self.add_retry.at_wall) {
            parts.push(format!(
                "adding the VIPs failed {} time(s) in a row; the instance rejoins at {at}, without preempting a working MASTER",
                self.add_retry.failures
            ));
        }
        if let Some(error) = &self.accept_error {
            parts.push(error.clone());
        }
        if let Some(note) = self.probe.note() {
            parts.push(note.to_owned());
        }
        if let Some((count, at)) = self.restored {
            parts.push(format!(
                "VIPs removed by something else while MASTER were re-added {count} time(s), last at {at}: another VRRP daemon or an administrator manages the same address"
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Member {
    /// The status of this member, with `instance` its machine.
    pub(super) fn status(&self, instance: &Instance) -> InstanceStatus {
        let handover = instance.handover_until().map(|until| {
            let left = until.saturating_duration_since(Instant::now());
            let at = jiff::SignedDuration::try_from(left)
                .ok()
                .and_then(|left| Timestamp::now().checked_add(left).ok())
                .map_or_else(String::new, |at| format!(", at the latest at {at}"));
            format!("handing over: priority 0 sent; the VIPs stay until the new MASTER's first advert{at}")
        });
        let message = match (handover, self.message()) {
            (Some(handover), Some(rest)) => Some(format!("{handover}; {rest}")),
            (handover, rest) => handover.or(rest),
        };
        InstanceStatus {
            name: self.spec.name.clone(),
            vrid: self.spec.vrid,
            interface: self.endpoint.interface.clone(),
            version: self.spec.version.number(),
            state: instance.state(),
            priority: self.spec.priority,
            effective_priority: instance.effective_priority(),
            master_address: instance.master_address(),
            vips: self.vips.held().to_vec(),
            transitions: self.transitions,
            last_transition: self.last_transition,
            message,
            holder_conflict: self.probe.conflict().cloned(),
        }
    }
}

pub(super) fn unspecified(family: crate::vrrp::Family) -> IpAddr {
    match family {
        crate::vrrp::Family::Ipv4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        crate::vrrp::Family::Ipv6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}
