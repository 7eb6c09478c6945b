//! Sync groups: instances that change state together (keepalived `vrrp_sync_group` semantics).
//!
//! A [`SyncGroup`] owns its member [`Instance`]s and is as pure as they are. Every event goes
//! to one member through [`SyncGroup::apply`]; the group then reconciles the others:
//! - a fault in any member puts every member in Fault, until no member has a fault of its own;
//! - a member that falls back from Master to Backup takes the other Masters with it;
//! - no member goes to Master on its own: one whose Master_Down_Timer fires (or the owner at
//!   startup) waits, and the group goes to Master only when every member wants it.

use std::time::Instant;

use super::instance::{Action, Event, ForcedState, Instance, State};

/// Errors of the sync-group coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncGroupError {
    #[error("sync group has {len} members, no member {index}")]
    NoSuchMember { index: usize, len: usize },
}

/// A set of instances that fail over together.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    members: Vec<Instance>,
}

impl SyncGroup {
    /// Takes the members (normally all in Initialize) and marks them as sync members.
    pub fn new(mut members: Vec<Instance>) -> Self {
        for member in &mut members {
            member.set_sync_member(true);
        }
        Self { members }
    }

    pub fn members(&self) -> &[Instance] {
        &self.members
    }

    pub fn member(&self, index: usize) -> Option<&Instance> {
        self.members.get(index)
    }

    /// The index of the member with this VRID, for a driver dispatching received adverts.
    pub fn index_of(&self, vrid: u8) -> Option<usize> {
        self.members.iter().position(|m| m.config().vrid == vrid)
    }

    /// Gives the members back, as lone instances.
    pub fn into_members(mut self) -> Vec<Instance> {
        for member in &mut self.members {
            member.set_sync_member(false);
        }
        self.members
    }

    /// The earliest deadline of any member.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter_map(Instance::next_deadline)
            .min()
    }

    /// Delivers `event` to member `index`, then reconciles the group. Returns every action of
    /// every member, tagged with the member's index, in the order they must be performed.
    pub fn apply(
        &mut self,
        index: usize,
        now: Instant,
        event: Event,
    ) -> Result<Vec<(usize, Action)>, SyncGroupError> {
        let len = self.members.len();
        let member = self
            .members
            .get_mut(index)
            .ok_or(SyncGroupError::NoSuchMember { index, len })?;
        let mut out: Vec<(usize, Action)> = member
            .handle(now, event)
            .into_iter()
            .map(|action| (index, action))
            .collect();
        self.reconcile(now, &mut out);
        Ok(out)
    }

    /// Delivers [`Event::Timeout`] to every member whose deadline has passed, then reconciles.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<(usize, Action)> {
        let mut out = Vec::new();
        for (index, member) in self.members.iter_mut().enumerate() {
            if member
                .next_deadline()
                .is_some_and(|deadline| deadline <= now)
            {
                out.extend(
                    member
                        .handle(now, Event::Timeout)
                        .into_iter()
                        .map(|action| (index, action)),
                );
            }
        }
        self.reconcile(now, &mut out);
        out
    }

    /// Applies the group rules until nothing moves. Each pass forces members only towards a
    /// state the rules then hold stable, so two passes suffice; the bound is a safeguard.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<(usize, Action)>) {
        for _ in 0..=self.members.len() * 3 {
            let Some(forced) = self.pending_force() else {
                return;
            };
            for (index, target) in forced {
                let member = &mut self.members[index];
                out.extend(
                    member
                        .handle(now, Event::Force(target))
                        .into_iter()
                        .map(|action| (index, action)),
                );
            }
        }
    }

    /// The forces the group rules call for now, or `None` when the group is consistent.
    fn pending_force(&self) -> Option<Vec<(usize, ForcedState)>> {
        let started = || {
            self.members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.is_started())
        };
        let faulted = started().any(|(_, m)| m.fault_condition().is_some());
        let forced: Vec<(usize, ForcedState)> = if faulted {
            // One member's fault is everyone's.
            // A member faulted on its own is held too when another member is faulted, so
            // that it does not come back alone.
            let own_fault_elsewhere = |index: usize| {
                started().any(|(j, other)| j != index && other.fault_condition().is_some())
            };
            started()
                .filter(|&(i, m)| {
                    m.state() != State::Fault
                        || (!m.is_forced_fault()
                            && (m.fault_condition().is_none() || own_fault_elsewhere(i)))
                })
                .map(|(i, _)| (i, ForcedState::Fault))
                .collect()
        } else if started().any(|(_, m)| m.state() == State::Fault) {
            // The last own fault cleared: release the members the group held.
            started()
                .filter(|(_, m)| m.state() == State::Fault)
                .map(|(i, _)| (i, ForcedState::Backup))
                .collect()
        } else if started().any(|(_, m)| m.state() == State::Backup && !m.wants_master()) {
            // One member follows another Master: the group's Masters step down with it.
            started()
                .filter(|(_, m)| m.state() == State::Master)
                .map(|(i, _)| (i, ForcedState::Backup))
                .collect()
        } else if self
            .members
            .iter()
            .all(|m| m.state() == State::Master || m.wants_master())
            && self.members.iter().any(Instance::wants_master)
        {
            // Everyone agrees: the group goes to Master.
            started()
                .filter(|(_, m)| m.wants_master())
                .map(|(i, _)| (i, ForcedState::Master))
                .collect()
        } else {
            Vec::new()
        };
        (!forced.is_empty()).then_some(forced)
    }
}
