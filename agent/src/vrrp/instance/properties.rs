//! Property tests: arbitrary event sequences keep the machine's invariants, alone and in sync
//! groups.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{
    Action, Config, Event, ForcedState, Instance, ReceivedAdvert, State, Tracking, Version,
};
use crate::vrrp::sync_group::SyncGroup;

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));

fn interval() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_millis(10)),
        Just(Duration::from_millis(100)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(3)),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(1u8), Just(100), Just(254), Just(255), any::<u8>()],
        interval(),
        prop_oneof![Just(Version::V2), Just(Version::V3)],
        any::<bool>(),
        prop_oneof![Just(Duration::ZERO), Just(Duration::from_secs(2))],
        any::<bool>(),
    )
        .prop_map(
            |(priority, advert_interval, version, preempt, preempt_delay, accept_mode)| Config {
                vrid: 7,
                priority,
                advert_interval,
                version,
                preempt,
                preempt_delay,
                accept_mode,
                primary_address: OURS,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    let advert = (0u8..=9, any::<u8>(), interval()).prop_map(|(host, priority, interval)| {
        Event::Advert(ReceivedAdvert {
            source: IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)),
            priority,
            max_advert_interval: interval,
        })
    });
    let tracking = (-300i32..300, prop::bool::weighted(0.2)).prop_map(|(weight_delta, fault)| {
        Event::Tracking(Tracking {
            weight_delta,
            fault,
        })
    });
    let forced = prop_oneof![
        Just(ForcedState::Master),
        Just(ForcedState::Backup),
        Just(ForcedState::Fault)
    ]
    .prop_map(Event::Force);
    prop_oneof![
        1 => Just(Event::Startup),
        1 => Just(Event::Shutdown),
        6 => Just(Event::Timeout),
        6 => advert,
        2 => tracking,
        1 => Just(Event::InterfaceDown),
        1 => Just(Event::InterfaceUp),
        1 => config().prop_map(Event::ConfigChanged),
        1 => forced,
    ]
}

/// A step: how far the clock moves first (or, for `None`, straight to the next deadline).
fn steps() -> impl Strategy<Value = Vec<(Option<u64>, Event)>> {
    prop::collection::vec(
        (prop::option::weighted(0.5, 0u64..5_000_000), event()),
        1..120,
    )
}

/// Tracks the VIPs the edge would hold, and checks every action against the state.
#[derive(Default)]
struct Edge {
    vips_held: bool,
}

impl Edge {
    fn check(&mut self, before: State, actions: &[Action], instance: &Instance) {
        let mut state = before;
        for action in actions {
            match *action {
                Action::StateChanged { from, to, .. } => {
                    assert_eq!(from, state, "transition from a state we were not in");
                    assert_ne!(from, to, "transition to the same state");
                    state = to;
                }
                Action::AddVips => {
                    assert!(!self.vips_held, "VIPs added twice");
                    self.vips_held = true;
                }
                Action::RemoveVips => {
                    assert!(self.vips_held, "VIPs removed while not held");
                    self.vips_held = false;
                }
                Action::SendAdvert { priority, .. } => {
                    assert!(
                        priority == 0 || priority == instance.effective_priority(),
                        "advert with priority {priority}"
                    );
                }
                Action::Announce => assert!(self.vips_held, "announce without VIPs"),
                Action::HandoverEnded(_) => {
                    assert!(self.vips_held, "a handover ended without VIPs");
                    assert_eq!(
                        state,
                        State::Initialize,
                        "a handover ended outside Initialize"
                    );
                }
                Action::EffectivePriorityChanged { .. } => {}
            }
        }
        assert_eq!(state, instance.state(), "transitions do not add up");
        assert_eq!(self.vips_held, instance.holds_vips());
        assert_eq!(
            instance.holds_vips(),
            instance.state() == State::Master || instance.is_handing_over()
        );
        if instance.is_handing_over() {
            assert_eq!(
                instance.state(),
                State::Initialize,
                "handing over outside Initialize"
            );
        }
    }
}

fn check_instance(instance: &Instance, now: Instant) {
    let priority = instance.effective_priority();
    assert!(priority >= 1);
    assert_eq!(priority == 255, instance.config().is_owner());
    match instance.state() {
        State::Backup | State::Master => {
            let deadline = instance.next_deadline().expect("running without a timer");
            assert!(deadline > now, "timer armed in the past");
        }
        State::Initialize if instance.is_handing_over() => {
            let deadline = instance
                .next_deadline()
                .expect("handing over without a timer");
            assert!(deadline > now, "timer armed in the past");
            assert!(deadline <= instance.handover_until().expect("handover without an end"));
        }
        State::Initialize | State::Fault => assert_eq!(instance.next_deadline(), None),
    }
    if instance.state() == State::Master {
        assert_eq!(
            instance.master_address(),
            Some(instance.config().primary_address)
        );
    }
    assert_eq!(instance.is_started(), instance.state() != State::Initialize);
}

fn advance(now: Instant, step: Option<u64>, deadline: Option<Instant>) -> Instant {
    match (step, deadline) {
        (Some(micros), _) => now + Duration::from_micros(micros),
        (None, Some(deadline)) => deadline.max(now),
        (None, None) => now,
    }
}

proptest! {
    // 128 cases of up to 120 events each: about 2 s per property in a debug build.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_event_sequence_keeps_a_lone_instance_consistent(config in config(), steps in steps()) {
        let mut instance = Instance::new(config);
        let mut edge = Edge::default();
        let mut now = Instant::now();
        for (step, event) in steps {
            // A Force reaches only sync members; a lone instance must still stay consistent.
            now = advance(now, step, instance.next_deadline());
            // A driver delivers an overdue timer before anything else.
            if instance.next_deadline().is_some_and(|deadline| deadline <= now) {
                let before = instance.state();
                let actions = instance.handle(now, Event::Timeout);
                edge.check(before, &actions, &instance);
            }
            let before = instance.state();
            let actions = instance.handle(now, event);
            edge.check(before, &actions, &instance);
            check_instance(&instance, now);
        }
    }

    #[test]
    fn any_event_sequence_keeps_a_sync_group_together(
        configs in prop::collection::vec(config(), 2..4),
        steps in prop::collection::vec((any::<prop::sample::Index>(), prop::option::weighted(0.5, 0u64..5_000_000), event()), 1..120),
    ) {
        let members: Vec<Instance> = configs
            .into_iter()
            .zip(1u8..)
            .map(|(mut config, vrid)| {
                config.vrid = vrid;
                Instance::new(config)
            })
            .collect();
        let mut edges: Vec<Edge> = members.iter().map(|_| Edge::default()).collect();
        let mut group = SyncGroup::new(members);
        let mut now = Instant::now();
        for (member, step, event) in steps {
            // Forces come from the group itself, never from outside.
            if matches!(event, Event::Force(_)) {
                continue;
            }
            let index = member.index(group.members().len());
            now = advance(now, step, group.next_deadline());
            let before: Vec<State> = group.members().iter().map(Instance::state).collect();
            if group.next_deadline().is_some_and(|deadline| deadline <= now) {
                let actions = group.on_timeout(now);
                check_group(&group, &before, &actions, &mut edges, now);
            }
            let before: Vec<State> = group.members().iter().map(Instance::state).collect();
            let actions = if event == Event::Timeout {
                group.on_timeout(now)
            } else {
                group.apply(index, now, event).unwrap()
            };
            check_group(&group, &before, &actions, &mut edges, now);
        }
    }
}

/// Checks every member against its edge, then the group rules.
fn check_group(
    group: &SyncGroup,
    before: &[State],
    actions: &[(usize, Action)],
    edges: &mut [Edge],
    now: Instant,
) {
    for (i, edge) in edges.iter_mut().enumerate() {
        let mine: Vec<Action> = actions
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|&(_, a)| a)
            .collect();
        edge.check(before[i], &mine, &group.members()[i]);
        check_instance(&group.members()[i], now);
    }
    let started: Vec<&Instance> = group.members().iter().filter(|m| m.is_started()).collect();
    if started.iter().any(|m| m.fault_condition().is_some()) {
        assert!(
            started.iter().all(|m| m.state() == State::Fault),
            "a fault did not spread"
        );
    }
    let masters = started.iter().any(|m| m.state() == State::Master);
    let settled_backup = started
        .iter()
        .any(|m| m.state() == State::Backup && !m.wants_master());
    assert!(
        !(masters && settled_backup),
        "group split between Master and Backup"
    );
}
