//! The pure machine of one unit: a lone [`Instance`] or a [`SyncGroup`], behind one interface
//! so that the unit task dispatches events without caring which it runs. Actions come back
//! tagged with the member they concern.

use std::time::Instant;

use crate::vrrp::instance::{Action, Event, Instance};
use crate::vrrp::sync_group::SyncGroup;

/// The lone instance or the sync group of a unit.
#[derive(Debug)]
pub enum Machine {
    Single(Box<Instance>),
    Group(SyncGroup),
}

impl Machine {
    /// A lone instance when `sync_group` is false and there is exactly one; a group otherwise
    /// (a lone unit built from several instances runs them as a group rather than losing any).
    pub fn new(mut instances: Vec<Instance>, sync_group: bool) -> Self {
        if !sync_group
            && instances.len() == 1
            && let Some(instance) = instances.pop()
        {
            return Self::Single(Box::new(instance));
        }
        Self::Group(SyncGroup::new(instances))
    }

    /// Feeds `event` to member `index`; returns every member's resulting actions.
    pub fn apply(&mut self, index: usize, now: Instant, event: Event) -> Vec<(usize, Action)> {
        match self {
            Self::Single(instance) => tag(instance.handle(now, event)),
            Self::Group(group) => group.apply(index, now, event).unwrap_or_else(|error| {
                tracing::error!(%error, "sync group event for a missing member");
                Vec::new()
            }),
        }
    }

    /// Delivers the timeouts due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<(usize, Action)> {
        match self {
            Self::Single(instance) => {
                if instance.next_deadline().is_some_and(|at| at <= now) {
                    tag(instance.handle(now, Event::Timeout))
                } else {
                    Vec::new()
                }
            }
            Self::Group(group) => group.on_timeout(now),
        }
    }

    /// The earliest deadline of any member.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self {
            Self::Single(instance) => instance.next_deadline(),
            Self::Group(group) => group.next_deadline(),
        }
    }

    /// Whether any member is still handing over after a planned exit (VIPs kept for the new
    /// MASTER).
    pub fn is_handing_over(&self) -> bool {
        match self {
            Self::Single(instance) => instance.is_handing_over(),
            Self::Group(group) => group.members().iter().any(Instance::is_handing_over),
        }
    }

    /// Member `index`, if there is one.
    pub fn member(&self, index: usize) -> Option<&Instance> {
        match self {
            Self::Single(instance) => (index == 0).then_some(&**instance),
            Self::Group(group) => group.member(index),
        }
    }
}

fn tag(actions: Vec<Action>) -> Vec<(usize, Action)> {
    actions.into_iter().map(|action| (0, action)).collect()
}
