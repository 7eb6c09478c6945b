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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use super::{SyncGroup, SyncGroupError};
    use crate::vrrp::Version;
    use crate::vrrp::instance::{
        Action, Config, Event, Instance, ReceivedAdvert, State, Tracking, TransitionReason,
    };

    const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));

    fn config(vrid: u8, priority: u8) -> Config {
        Config {
            vrid,
            priority,
            advert_interval: Duration::from_secs(1),
            version: Version::V3,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_address: OURS,
        }
    }

    fn group(priorities: &[u8]) -> SyncGroup {
        let members = priorities
            .iter()
            .zip(1..)
            .map(|(&priority, vrid)| Instance::new(config(vrid, priority)))
            .collect();
        SyncGroup::new(members)
    }

    fn start_all(group: &mut SyncGroup, now: Instant) {
        for index in 0..group.members().len() {
            group.apply(index, now, Event::Startup).unwrap();
        }
    }

    fn states(group: &SyncGroup) -> Vec<State> {
        group.members().iter().map(Instance::state).collect()
    }

    fn transitions(actions: &[(usize, Action)]) -> Vec<(usize, State, TransitionReason)> {
        actions
            .iter()
            .filter_map(|&(index, action)| match action {
                Action::StateChanged { to, reason, .. } => Some((index, to, reason)),
                _ => None,
            })
            .collect()
    }

    fn fault(on: bool) -> Event {
        Event::Tracking(Tracking {
            weight_delta: 0,
            fault: on,
        })
    }

    fn advert(priority: u8) -> Event {
        Event::Advert(ReceivedAdvert {
            source: PEER,
            priority,
            max_advert_interval: Duration::from_secs(1),
        })
    }

    /// Runs the group's timers until it is Master; returns when it became Master.
    fn run_to_master(group: &mut SyncGroup) -> Instant {
        for _ in 0..10 {
            let at = group.next_deadline().unwrap();
            group.on_timeout(at);
            if states(group).iter().all(|&s| s == State::Master) {
                return at;
            }
        }
        panic!("group never became Master: {:?}", states(group));
    }

    #[test]
    fn group_goes_to_master_only_when_every_member_wants_it() {
        let t0 = Instant::now();
        let mut group = group(&[100, 90]);
        start_all(&mut group, t0);
        // Member 0 (3.609375 s) is ready before member 1 (3 s + 166/256 s = 3.6484375 s).
        let first = t0 + Duration::from_micros(3_609_375);
        assert_eq!(group.next_deadline(), Some(first));
        assert!(group.on_timeout(first).is_empty());
        assert!(group.members()[0].wants_master());
        assert_eq!(states(&group), vec![State::Backup, State::Backup]);
        let second = t0 + Duration::from_nanos(3_648_437_500);
        assert_eq!(group.next_deadline(), Some(second));
        let actions = group.on_timeout(second);
        assert_eq!(
            transitions(&actions),
            vec![
                (0, State::Master, TransitionReason::MasterDownTimer),
                (1, State::Master, TransitionReason::MasterDownTimer),
            ]
        );
        assert_eq!(
            actions
                .iter()
                .filter(|(_, a)| *a == Action::AddVips)
                .count(),
            2
        );
    }

    #[test]
    fn a_member_still_hearing_its_master_holds_the_whole_group_in_backup() {
        let t0 = Instant::now();
        let mut group = group(&[100, 100]);
        start_all(&mut group, t0);
        let mut now = t0;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            group.apply(1, now, advert(200)).unwrap();
            if group.next_deadline().is_some_and(|d| d <= now) {
                group.on_timeout(now);
            }
        }
        assert!(group.members()[0].wants_master());
        assert!(!group.members()[1].wants_master());
        assert_eq!(states(&group), vec![State::Backup, State::Backup]);
    }

    #[test]
    fn a_master_member_stepping_down_takes_the_others_to_backup() {
        let t0 = Instant::now();
        let mut group = group(&[100, 100]);
        start_all(&mut group, t0);
        let became = run_to_master(&mut group);
        let actions = group.apply(0, became, advert(150)).unwrap();
        assert_eq!(
            transitions(&actions),
            vec![
                (0, State::Backup, TransitionReason::HigherPriorityAdvert),
                (1, State::Backup, TransitionReason::SyncGroup),
            ]
        );
        assert!(actions.contains(&(1, Action::RemoveVips)));
    }

    #[test]
    fn a_fault_in_one_member_faults_all_until_the_last_own_fault_clears() {
        let t0 = Instant::now();
        let mut group = group(&[100, 100, 100]);
        start_all(&mut group, t0);
        let became = run_to_master(&mut group);
        let actions = group.apply(0, became, fault(true)).unwrap();
        assert_eq!(
            transitions(&actions),
            vec![
                (0, State::Fault, TransitionReason::TrackerFault),
                (1, State::Fault, TransitionReason::SyncGroup),
                (2, State::Fault, TransitionReason::SyncGroup),
            ]
        );
        // Every Master resigns with priority 0.
        let stops = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::SendAdvert { priority: 0, .. }))
            .count();
        assert_eq!(stops, 3);
        // A second member's interface fails, then the first fault clears: still all Fault.
        assert!(
            group
                .apply(1, became, Event::InterfaceDown)
                .unwrap()
                .is_empty()
        );
        assert!(group.apply(0, became, fault(false)).unwrap().is_empty());
        assert_eq!(states(&group), vec![State::Fault; 3]);
        // The last fault clears: everyone restarts as Backup.
        let actions = group.apply(1, became, Event::InterfaceUp).unwrap();
        assert_eq!(
            transitions(&actions),
            vec![
                (0, State::Backup, TransitionReason::SyncGroup),
                (1, State::Backup, TransitionReason::SyncGroup),
                (2, State::Backup, TransitionReason::SyncGroup),
            ]
        );
    }

    #[test]
    fn an_owner_member_waits_for_the_group_before_taking_master() {
        let t0 = Instant::now();
        let mut group = group(&[255, 100]);
        let actions = group.apply(0, t0, Event::Startup).unwrap();
        assert_eq!(
            transitions(&actions),
            vec![(0, State::Backup, TransitionReason::Startup)]
        );
        assert!(group.members()[0].wants_master());
        group.apply(1, t0, Event::Startup).unwrap();
        let at = t0 + Duration::from_micros(3_609_375);
        let actions = group.on_timeout(at);
        assert_eq!(
            transitions(&actions),
            vec![
                (0, State::Master, TransitionReason::Owner),
                (1, State::Master, TransitionReason::MasterDownTimer),
            ]
        );
    }

    #[test]
    fn members_released_from_the_group_act_alone_again() {
        let t0 = Instant::now();
        let mut group = group(&[255]);
        group.apply(0, t0, Event::Shutdown).unwrap();
        let mut members = group.into_members();
        let actions = members[0].handle(t0, Event::Startup);
        assert_eq!(
            actions[0],
            Action::StateChanged {
                from: State::Initialize,
                to: State::Master,
                reason: TransitionReason::Owner
            }
        );
    }

    #[test]
    fn apply_rejects_an_unknown_member() {
        let mut group = group(&[100]);
        assert_eq!(
            group.apply(3, Instant::now(), Event::Startup),
            Err(SyncGroupError::NoSuchMember { index: 3, len: 1 })
        );
        assert_eq!(group.index_of(1), Some(0));
        assert_eq!(group.index_of(9), None);
    }
}
