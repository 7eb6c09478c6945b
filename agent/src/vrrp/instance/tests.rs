//! Unit tests of the state machine: one per RFC 5798 §6.4 rule, plus trackers and timing.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::{
    Action, Config, ConfigError, EdgeFaults, Event, Instance, ReceivedAdvert, State, Tracking,
    TransitionReason, Version,
};

const OURS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const LOWER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const HIGHER_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(priority: u8) -> Config {
    Config {
        vrid: 51,
        priority,
        advert_interval: Duration::from_secs(1),
        version: Version::V3,
        preempt: true,
        preempt_delay: Duration::ZERO,
        accept_mode: false,
        primary_address: OURS,
    }
}

fn advert(source: IpAddr, priority: u8, interval: Duration) -> Event {
    Event::Advert(ReceivedAdvert {
        source,
        priority,
        max_advert_interval: interval,
    })
}

fn changed(from: State, to: State, reason: TransitionReason) -> Action {
    Action::StateChanged { from, to, reason }
}

/// An instance started at `t0` in Backup.
fn backup(config: Config, t0: Instant) -> Instance {
    let mut instance = Instance::new(config);
    instance.handle(t0, Event::Startup);
    assert_eq!(instance.state(), State::Backup);
    instance
}

/// An instance that became Master through its Master_Down_Timer; returns the time it did.
fn master(config: Config, t0: Instant) -> (Instance, Instant) {
    let mut instance = backup(config, t0);
    let at = instance.next_deadline().unwrap();
    instance.handle(at, Event::Timeout);
    assert_eq!(instance.state(), State::Master);
    (instance, at)
}

// ---- timing ----

#[test]
fn master_down_interval_for_priority_100_at_one_second_is_three_seconds_plus_609_375_ms() {
    let instance = Instance::new(config(100));
    assert_eq!(instance.skew_time(), Duration::from_micros(609_375));
    assert_eq!(
        instance.master_down_interval(),
        Duration::from_micros(3_609_375)
    );
}

#[test]
fn skew_time_scales_with_a_10_ms_v3_interval() {
    let mut cfg = config(100);
    cfg.advert_interval = ms(10);
    let instance = Instance::new(cfg);
    // (256 − 100) × 10 ms / 256 = 6.09375 ms.
    assert_eq!(instance.skew_time(), Duration::from_nanos(6_093_750));
    assert_eq!(
        instance.master_down_interval(),
        Duration::from_nanos(36_093_750)
    );
}

#[test]
fn v2_skew_time_is_in_seconds_whatever_the_interval() {
    let mut cfg = config(100);
    cfg.version = Version::V2;
    cfg.advert_interval = Duration::from_secs(2);
    let instance = Instance::new(cfg);
    // RFC 3768 §6.1: (256 − 100) / 256 s, not scaled by the 2 s interval.
    assert_eq!(instance.skew_time(), Duration::from_micros(609_375));
    assert_eq!(
        instance.master_down_interval(),
        Duration::from_micros(6_609_375)
    );
}

#[test]
fn interval_below_ten_milliseconds_is_raised_to_ten() {
    let mut cfg = config(100);
    cfg.advert_interval = Duration::ZERO;
    let instance = Instance::new(cfg);
    assert_eq!(instance.master_adver_interval(), ms(10));
}

// ---- §6.4.1 Initialize ----

#[test]
fn initialize_owner_startup_sends_advert_announces_and_becomes_master() {
    // §6.4.1: "If the Priority = 255 ... Send an ADVERTISEMENT, broadcast gratuitous ARP /
    // send Unsolicited NA, set the Adver_Timer to Advertisement_Interval, transition to Master".
    // The addresses are taken and announced before the advert goes (make-before-break).
    let t0 = Instant::now();
    let mut instance = Instance::new(config(255));
    let actions = instance.handle(t0, Event::Startup);
    assert_eq!(
        actions,
        vec![
            changed(State::Initialize, State::Master, TransitionReason::Owner),
            Action::AddVips,
            Action::Announce,
            Action::SendAdvert {
                priority: 255,
                max_advert_interval: Duration::from_secs(1)
            },
        ]
    );
    assert_eq!(instance.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(instance.master_address(), Some(OURS));
}

#[test]
fn initialize_non_owner_startup_arms_master_down_timer_and_becomes_backup() {
    // §6.4.1: "else ... Set Master_Adver_Interval to Advertisement_Interval, set the
    // Master_Down_Timer to Master_Down_Interval, transition to Backup".
    let t0 = Instant::now();
    let mut instance = Instance::new(config(100));
    let actions = instance.handle(t0, Event::Startup);
    assert_eq!(
        actions,
        vec![changed(
            State::Initialize,
            State::Backup,
            TransitionReason::Startup
        )]
    );
    assert_eq!(instance.master_adver_interval(), Duration::from_secs(1));
    assert_eq!(
        instance.next_deadline(),
        Some(t0 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn initialize_ignores_adverts_and_timeouts_until_startup() {
    // §6.4.1: Initialize only waits for Startup.
    let t0 = Instant::now();
    let mut instance = Instance::new(config(100));
    assert!(
        instance
            .handle(t0, advert(HIGHER_ADDRESS, 200, Duration::from_secs(1)))
            .is_empty()
    );
    assert!(instance.handle(t0, Event::Timeout).is_empty());
    assert!(instance.handle(t0, Event::Shutdown).is_empty());
    assert_eq!(instance.state(), State::Initialize);
    assert_eq!(instance.next_deadline(), None);
}

#[test]
fn startup_with_interface_down_goes_to_fault_and_interface_up_starts_backup() {
    let t0 = Instant::now();
    let mut instance = Instance::new(config(100));
    assert!(instance.handle(t0, Event::InterfaceDown).is_empty());
    assert_eq!(
        instance.handle(t0, Event::Startup),
        vec![changed(
            State::Initialize,
            State::Fault,
            TransitionReason::InterfaceDown
        )]
    );
    assert_eq!(instance.next_deadline(), None);
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(
        instance.handle(t1, Event::InterfaceUp),
        vec![changed(
            State::Fault,
            State::Backup,
            TransitionReason::InterfaceUp
        )]
    );
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(3_609_375))
    );
}

// ---- §6.4.2 Backup ----

#[test]
fn backup_shutdown_cancels_master_down_timer_and_returns_to_initialize() {
    // §6.4.2: "If a Shutdown event is received, then: Cancel the Master_Down_Timer,
    // transition to the Initialize state".
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    assert_eq!(
        instance.handle(t0 + ms(100), Event::Shutdown),
        vec![changed(
            State::Backup,
            State::Initialize,
            TransitionReason::Shutdown
        )]
    );
    assert_eq!(instance.next_deadline(), None);
}

#[test]
fn backup_master_down_timer_expiry_sends_advert_announces_and_becomes_master() {
    // §6.4.2: "If the Master_Down_Timer fires, then: Send an ADVERTISEMENT, broadcast
    // gratuitous ARP / Unsolicited NA, set the Adver_Timer, transition to Master". The
    // addresses are taken and announced before the advert goes (make-before-break).
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let at = t0 + Duration::from_micros(3_609_375);
    assert_eq!(
        instance.handle(at, Event::Timeout),
        vec![
            changed(
                State::Backup,
                State::Master,
                TransitionReason::MasterDownTimer
            ),
            Action::AddVips,
            Action::Announce,
            Action::SendAdvert {
                priority: 100,
                max_advert_interval: Duration::from_secs(1)
            },
        ]
    );
    assert_eq!(instance.next_deadline(), Some(at + Duration::from_secs(1)));
}

#[test]
fn backup_ignores_a_timeout_delivered_before_its_deadline() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let early = t0 + Duration::from_micros(3_609_374);
    assert!(instance.handle(early, Event::Timeout).is_empty());
    assert_eq!(instance.state(), State::Backup);
    assert_eq!(
        instance.next_deadline(),
        Some(t0 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn backup_priority_zero_advert_sets_master_down_timer_to_skew_time() {
    // §6.4.2: "If the Priority in the ADVERTISEMENT is zero, then: Set the Master_Down_Timer
    // to Skew_Time".
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let t1 = t0 + Duration::from_secs(1);
    assert!(
        instance
            .handle(t1, advert(HIGHER_ADDRESS, 0, Duration::from_secs(1)))
            .is_empty()
    );
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(609_375))
    );
    let actions = instance.handle(t1 + Duration::from_micros(609_375), Event::Timeout);
    assert_eq!(
        actions[0],
        changed(
            State::Backup,
            State::Master,
            TransitionReason::MasterStopped
        )
    );
}

#[test]
fn backup_accepts_higher_priority_advert_and_learns_master_adver_interval() {
    // §6.4.2: "If Preempt_Mode is False, or if the Priority in the ADVERTISEMENT is greater
    // than or equal to the local Priority, then: Set Master_Adver_Interval to Adver Interval
    // contained in the ADVERTISEMENT, recompute the Master_Down_Interval, reset the
    // Master_Down_Timer to Master_Down_Interval".
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let t1 = t0 + ms(500);
    assert!(
        instance
            .handle(t1, advert(HIGHER_ADDRESS, 200, Duration::from_secs(2)))
            .is_empty()
    );
    assert_eq!(instance.master_adver_interval(), Duration::from_secs(2));
    // 3 × 2 s + (156 × 2 s) / 256 = 6 s + 1.21875 s.
    assert_eq!(
        instance.master_down_interval(),
        Duration::from_micros(7_218_750)
    );
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(7_218_750))
    );
    assert_eq!(instance.master_address(), Some(HIGHER_ADDRESS));
}

#[test]
fn backup_accepts_an_equal_priority_advert_whatever_the_address() {
    // §6.4.2: "greater than or equal to the local Priority": no address tie-break in Backup.
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let t1 = t0 + ms(500);
    instance.handle(t1, advert(LOWER_ADDRESS, 100, Duration::from_secs(1)));
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(3_609_375))
    );
    assert_eq!(instance.master_address(), Some(LOWER_ADDRESS));
}

#[test]
fn v2_backup_does_not_learn_the_interval_of_the_master() {
    // RFC 3768 has no Master_Adver_Interval: the Backup keeps its own interval.
    let t0 = Instant::now();
    let mut cfg = config(100);
    cfg.version = Version::V2;
    let mut instance = backup(cfg, t0);
    instance.handle(t0, advert(HIGHER_ADDRESS, 200, Duration::from_secs(3)));
    assert_eq!(instance.master_adver_interval(), Duration::from_secs(1));
    assert_eq!(
        instance.next_deadline(),
        Some(t0 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn backup_with_preempt_discards_lower_priority_advert_and_preempts_when_timer_fires() {
    // §6.4.2: "else (Preempt_Mode True and lower priority): Discard the ADVERTISEMENT" — the
    // Master_Down_Timer is not reset, so it fires and we preempt.
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let t1 = t0 + Duration::from_secs(1);
    instance.handle(t1, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    assert_eq!(
        instance.next_deadline(),
        Some(t0 + Duration::from_micros(3_609_375))
    );
    let actions = instance.handle(t0 + Duration::from_micros(3_609_375), Event::Timeout);
    assert_eq!(
        actions[0],
        changed(
            State::Backup,
            State::Master,
            TransitionReason::PreemptLowerPriority
        )
    );
}

#[test]
fn backup_without_preempt_accepts_lower_priority_advert() {
    // §6.4.2: "If Preempt_Mode is False ... reset the Master_Down_Timer".
    let t0 = Instant::now();
    let mut cfg = config(100);
    cfg.preempt = false;
    let mut instance = backup(cfg, t0);
    let t1 = t0 + Duration::from_secs(1);
    instance.handle(t1, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn backup_with_preempt_delay_accepts_lower_priority_master_until_the_delay_has_passed() {
    // keepalived preempt_delay: the delay starts at startup (or on first accepting a lower
    // Master after a higher one); until it passes, the lower Master's adverts are accepted.
    let t0 = Instant::now();
    let mut cfg = config(100);
    cfg.preempt_delay = Duration::from_secs(5);
    let mut instance = backup(cfg, t0);
    let before = t0 + ms(4_999);
    instance.handle(before, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    assert_eq!(
        instance.next_deadline(),
        Some(before + Duration::from_micros(3_609_375))
    );
    let after = t0 + Duration::from_secs(5);
    instance.handle(after, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    // Discarded: the timer still runs from the last accepted advert.
    assert_eq!(
        instance.next_deadline(),
        Some(before + Duration::from_micros(3_609_375))
    );
}

#[test]
fn preempt_delay_restarts_when_a_lower_master_follows_a_higher_one() {
    let t0 = Instant::now();
    let mut cfg = config(100);
    cfg.preempt_delay = Duration::from_secs(2);
    let mut instance = backup(cfg, t0);
    instance.handle(
        t0 + Duration::from_secs(10),
        advert(HIGHER_ADDRESS, 200, Duration::from_secs(1)),
    );
    // First lower advert at 11 s starts a fresh 2 s delay: accepted until 13 s.
    let t11 = t0 + Duration::from_secs(11);
    instance.handle(t11, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    let t12 = t0 + Duration::from_secs(12);
    instance.handle(t12, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)));
    assert_eq!(
        instance.next_deadline(),
        Some(t12 + Duration::from_micros(3_609_375))
    );
    instance.handle(
        t0 + Duration::from_secs(13),
        advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)),
    );
    assert_eq!(
        instance.next_deadline(),
        Some(t12 + Duration::from_micros(3_609_375))
    );
}

// ---- §6.4.3 Master ----

#[test]
fn master_adver_timer_expiry_sends_advert_and_rearms() {
    // §6.4.3: "If the Adver_Timer fires, then: Send an ADVERTISEMENT, reset the Adver_Timer
    // to Advertisement_Interval".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let at = became + Duration::from_secs(1);
    assert_eq!(
        instance.handle(at, Event::Timeout),
        vec![Action::SendAdvert {
            priority: 100,
            max_advert_interval: Duration::from_secs(1)
        }]
    );
    assert_eq!(instance.next_deadline(), Some(at + Duration::from_secs(1)));
}

fn stop_advert() -> Action {
    Action::SendAdvert {
        priority: 0,
        max_advert_interval: Duration::from_secs(1),
    }
}

#[test]
fn master_shutdown_sends_priority_zero_and_keeps_its_vips_for_the_new_master() {
    // §6.4.3: "If a Shutdown event is received, then: Cancel the Adver_Timer, send an
    // ADVERTISEMENT with Priority = 0, transition to the Initialize state". The addresses stay
    // (make-before-break): §6.4.1 places no rule on answering ARP in Initialize.
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let left = became + ms(10);
    assert_eq!(
        instance.handle(left, Event::Shutdown),
        vec![
            changed(State::Master, State::Initialize, TransitionReason::Shutdown),
            stop_advert(),
        ]
    );
    assert_eq!(instance.state(), State::Initialize);
    assert!(!instance.is_started());
    assert!(instance.is_handing_over());
    assert!(instance.holds_vips());
    assert_eq!(instance.master_address(), None);
    assert!(!instance.accepts_vip_traffic());
    // The Adver_Timer is cancelled; the handover's timer repeats priority 0 one interval on.
    assert_eq!(
        instance.next_deadline(),
        Some(left + Duration::from_secs(1))
    );
    assert_eq!(
        instance.handover_until(),
        Some(left + Duration::from_secs(3))
    );
}

#[test]
fn a_master_handing_over_lets_go_at_the_new_masters_first_advert() {
    // §6.4.2: a Backup hearing priority 0 takes over after Skew_Time and advertises; only a
    // Master advertises, so the first non-zero advert is the new Master's. It announced the
    // addresses before sending it: now they go.
    let t0 = Instant::now();
    let (mut instance, became) = master(config(150), t0);
    let left = became + ms(10);
    instance.handle(left, Event::Shutdown);
    let skew = left + Duration::from_micros(609_375);
    assert_eq!(
        instance.handle(skew, advert(HIGHER_ADDRESS, 100, Duration::from_secs(1))),
        vec![
            Action::HandoverEnded(super::HandoverEnd::NewMaster(HIGHER_ADDRESS)),
            Action::RemoveVips,
        ]
    );
    assert!(!instance.is_handing_over());
    assert!(!instance.holds_vips());
    assert_eq!(instance.state(), State::Initialize);
    assert_eq!(instance.next_deadline(), None);
    // Later adverts change nothing: Initialize ignores them (§6.4.1).
    assert!(
        instance
            .handle(
                skew + ms(5),
                advert(HIGHER_ADDRESS, 100, Duration::from_secs(1))
            )
            .is_empty()
    );
}

#[test]
fn a_lower_priority_router_taking_over_also_ends_the_handover() {
    // Whatever its priority: a router that advertises after our priority 0 is the Master.
    let t0 = Instant::now();
    let (mut instance, became) = master(config(200), t0);
    instance.handle(became, Event::Shutdown);
    let actions = instance.handle(became + ms(700), advert(LOWER_ADDRESS, 1, ms(1000)));
    assert_eq!(actions.last(), Some(&Action::RemoveVips));
}

#[test]
fn another_routers_priority_zero_does_not_end_a_handover() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    instance.handle(became, Event::Shutdown);
    assert!(
        instance
            .handle(became + ms(1), advert(HIGHER_ADDRESS, 0, ms(1000)))
            .is_empty()
    );
    assert!(instance.is_handing_over());
}

#[test]
fn a_handover_repeats_priority_zero_every_interval_and_lets_go_after_three() {
    // One lost priority-0 advert must not leave the Backups waiting Master_Down_Interval
    // (3 intervals + Skew_Time) after the addresses went: it is repeated each interval.
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    instance.handle(became, Event::Shutdown);
    let second = became + Duration::from_secs(1);
    assert_eq!(instance.next_deadline(), Some(second));
    assert!(instance.handle(became + ms(999), Event::Timeout).is_empty());
    assert_eq!(instance.handle(second, Event::Timeout), vec![stop_advert()]);
    let third = became + Duration::from_secs(2);
    assert_eq!(instance.next_deadline(), Some(third));
    assert_eq!(instance.handle(third, Event::Timeout), vec![stop_advert()]);
    let end = became + Duration::from_secs(3);
    assert_eq!(instance.next_deadline(), Some(end));
    assert_eq!(
        instance.handle(end, Event::Timeout),
        vec![
            Action::HandoverEnded(super::HandoverEnd::TimedOut),
            Action::RemoveVips,
        ]
    );
    assert!(!instance.holds_vips());
    assert_eq!(instance.next_deadline(), None);
}

#[test]
fn the_handover_timeout_is_three_intervals_and_at_most_ten_seconds() {
    assert_eq!(super::handover_timeout(ms(10)), ms(30));
    assert_eq!(super::handover_timeout(Duration::ZERO), ms(30));
    assert_eq!(
        super::handover_timeout(Duration::from_secs(1)),
        Duration::from_secs(3)
    );
    assert_eq!(
        super::handover_timeout(Duration::from_secs(255)),
        Duration::from_secs(10)
    );
}

#[test]
fn a_master_whose_interface_is_down_releases_its_vips_at_shutdown() {
    // Nobody can be answered through a dead link: no reason to wait.
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    // The edge reports the link down after shutdown began...
    instance.handle(became, Event::Shutdown);
    assert_eq!(
        instance.handle(became + ms(1), Event::InterfaceDown),
        vec![
            Action::HandoverEnded(super::HandoverEnd::InterfaceDown),
            Action::RemoveVips,
        ]
    );
    // ...or before (a Master with its link down is in Fault, which already released them).
    let (mut instance, became) = master(config(100), t0);
    let actions = instance.handle(became, Event::InterfaceDown);
    assert!(actions.contains(&Action::RemoveVips));
    assert!(
        instance
            .handle(became, Event::Shutdown)
            .iter()
            .all(|a| *a != Action::RemoveVips)
    );
    assert!(!instance.is_handing_over());
}

#[test]
fn started_again_while_handing_over_the_instance_lets_go_and_rejoins_as_backup() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    instance.handle(became, Event::Shutdown);
    let actions = instance.handle(became + ms(5), Event::Startup);
    assert_eq!(
        &actions[..3],
        &[
            Action::HandoverEnded(super::HandoverEnd::Restarted),
            Action::RemoveVips,
            changed(State::Initialize, State::Backup, TransitionReason::Startup),
        ]
    );
    assert_eq!(instance.state(), State::Backup);
    assert!(!instance.holds_vips());
}

#[test]
fn a_handing_over_instance_ignores_trackers_faults_and_forces() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    instance.handle(became, Event::Shutdown);
    let fault = Tracking {
        weight_delta: 0,
        fault: true,
    };
    assert!(instance.handle(became, Event::Tracking(fault)).is_empty());
    assert!(
        instance
            .handle(
                became,
                Event::EdgeFaults(EdgeFaults {
                    address_conflict: true,
                    ..EdgeFaults::default()
                })
            )
            .is_empty()
    );
    assert!(
        instance
            .handle(became, Event::Force(super::ForcedState::Backup))
            .is_empty()
    );
    assert!(instance.is_handing_over());
}

#[test]
fn master_priority_zero_advert_sends_an_advert_at_once_and_resets_adver_timer() {
    // §6.4.3: "If the Priority in the ADVERTISEMENT is zero, then: Send an ADVERTISEMENT,
    // reset the Adver_Timer to Advertisement_Interval".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let t1 = became + ms(300);
    assert_eq!(
        instance.handle(t1, advert(HIGHER_ADDRESS, 0, Duration::from_secs(1))),
        vec![Action::SendAdvert {
            priority: 100,
            max_advert_interval: Duration::from_secs(1)
        }]
    );
    assert_eq!(instance.next_deadline(), Some(t1 + Duration::from_secs(1)));
    assert_eq!(instance.state(), State::Master);
}

#[test]
fn master_higher_priority_advert_steps_down_to_backup_and_learns_interval() {
    // §6.4.3: "If the Priority in the ADVERTISEMENT is greater than the local Priority ...
    // Cancel Adver_Timer, set Master_Adver_Interval, recompute Skew_Time and
    // Master_Down_Interval, set Master_Down_Timer, transition to Backup".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let t1 = became + ms(300);
    assert_eq!(
        instance.handle(t1, advert(LOWER_ADDRESS, 101, ms(500))),
        vec![
            changed(
                State::Master,
                State::Backup,
                TransitionReason::HigherPriorityAdvert
            ),
            Action::RemoveVips,
        ]
    );
    assert_eq!(instance.master_adver_interval(), ms(500));
    // 3 × 500 ms + 156 × 500 ms / 256 = 1.5 s + 304.6875 ms.
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_nanos(1_804_687_500))
    );
    assert_eq!(instance.master_address(), Some(LOWER_ADDRESS));
}

#[test]
fn master_equal_priority_advert_from_greater_address_steps_down() {
    // §6.4.3: "... or equal to the local Priority and the primary IPvX Address of the sender
    // is greater than the local primary IPvX Address".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let actions = instance.handle(became, advert(HIGHER_ADDRESS, 100, Duration::from_secs(1)));
    assert_eq!(
        actions[0],
        changed(
            State::Master,
            State::Backup,
            TransitionReason::EqualPriorityHigherAddress
        )
    );
}

#[test]
fn master_discards_equal_priority_advert_from_lesser_address() {
    // §6.4.3: "else: Discard ADVERTISEMENT".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    assert!(
        instance
            .handle(became, advert(LOWER_ADDRESS, 100, Duration::from_secs(1)))
            .is_empty()
    );
    assert_eq!(instance.state(), State::Master);
    assert_eq!(
        instance.next_deadline(),
        Some(became + Duration::from_secs(1))
    );
}

#[test]
fn master_discards_lower_priority_advert() {
    // §6.4.3: "else: Discard ADVERTISEMENT".
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    assert!(
        instance
            .handle(became, advert(HIGHER_ADDRESS, 99, Duration::from_secs(1)))
            .is_empty()
    );
    assert_eq!(instance.state(), State::Master);
}

#[test]
fn accept_mode_or_ownership_lets_a_master_accept_vip_traffic() {
    // §6.4.3: a Master accepts packets for the VIPs only as owner or with Accept_Mode.
    let t0 = Instant::now();
    let (plain, _) = master(config(100), t0);
    assert!(!plain.accepts_vip_traffic());
    let mut cfg = config(100);
    cfg.accept_mode = true;
    let (accepting, _) = master(cfg.clone(), t0);
    assert!(accepting.accepts_vip_traffic());
    assert!(!backup(cfg, t0).accepts_vip_traffic());
    let mut owner = Instance::new(config(255));
    owner.handle(t0, Event::Startup);
    assert!(owner.accepts_vip_traffic());
}

// ---- trackers, interface, configuration ----

#[test]
fn tracker_weight_moves_effective_priority_within_one_and_254() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let down = Tracking {
        weight_delta: -30,
        fault: false,
    };
    assert_eq!(
        instance.handle(t0, Event::Tracking(down)),
        vec![Action::EffectivePriorityChanged { from: 100, to: 70 }]
    );
    instance.handle(
        t0,
        Event::Tracking(Tracking {
            weight_delta: -500,
            fault: false,
        }),
    );
    assert_eq!(instance.effective_priority(), 1);
    instance.handle(
        t0,
        Event::Tracking(Tracking {
            weight_delta: 500,
            fault: false,
        }),
    );
    assert_eq!(instance.effective_priority(), 254);
    // Skew_Time follows the effective priority: (256 − 254) / 256 s.
    assert_eq!(instance.skew_time(), Duration::from_nanos(7_812_500));
}

#[test]
fn owner_keeps_priority_255_whatever_the_tracker_weights() {
    let mut instance = Instance::new(config(255));
    let actions = instance.handle(
        Instant::now(),
        Event::Tracking(Tracking {
            weight_delta: -100,
            fault: false,
        }),
    );
    assert!(actions.is_empty());
    assert_eq!(instance.effective_priority(), 255);
}

#[test]
fn tracker_fault_takes_a_master_to_fault_with_a_priority_zero_advert() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let fault = Tracking {
        weight_delta: 0,
        fault: true,
    };
    assert_eq!(
        instance.handle(became, Event::Tracking(fault)),
        vec![
            changed(State::Master, State::Fault, TransitionReason::TrackerFault),
            Action::SendAdvert {
                priority: 0,
                max_advert_interval: Duration::from_secs(1)
            },
            Action::RemoveVips,
        ]
    );
    assert_eq!(instance.next_deadline(), None);
    assert!(
        instance
            .handle(became, advert(HIGHER_ADDRESS, 50, Duration::from_secs(1)))
            .is_empty()
    );
}

#[test]
fn tracker_recovery_restarts_through_the_startup_rules() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    instance.handle(
        t0,
        Event::Tracking(Tracking {
            weight_delta: 0,
            fault: true,
        }),
    );
    assert_eq!(instance.state(), State::Fault);
    let t1 = t0 + Duration::from_secs(7);
    assert_eq!(
        instance.handle(t1, Event::Tracking(Tracking::default())),
        vec![changed(
            State::Fault,
            State::Backup,
            TransitionReason::TrackerRecovered
        )]
    );
    assert_eq!(
        instance.next_deadline(),
        Some(t1 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn owner_recovering_from_a_fault_goes_straight_to_master() {
    let t0 = Instant::now();
    let mut instance = Instance::new(config(255));
    instance.handle(t0, Event::Startup);
    instance.handle(t0, Event::InterfaceDown);
    let actions = instance.handle(t0 + ms(5), Event::InterfaceUp);
    assert_eq!(
        actions[0],
        changed(State::Fault, State::Master, TransitionReason::InterfaceUp)
    );
    assert!(actions.contains(&Action::AddVips));
}

#[test]
fn interface_down_takes_a_master_to_fault_without_sending() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    assert_eq!(
        instance.handle(became, Event::InterfaceDown),
        vec![
            changed(State::Master, State::Fault, TransitionReason::InterfaceDown),
            Action::RemoveVips,
        ]
    );
}

#[test]
fn fault_clears_only_when_interface_and_trackers_are_both_healthy() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    instance.handle(t0, Event::InterfaceDown);
    instance.handle(
        t0,
        Event::Tracking(Tracking {
            weight_delta: 0,
            fault: true,
        }),
    );
    assert!(instance.handle(t0, Event::InterfaceUp).is_empty());
    assert_eq!(instance.state(), State::Fault);
    assert_eq!(
        instance.fault_condition(),
        Some(TransitionReason::TrackerFault)
    );
    instance.handle(t0, Event::Tracking(Tracking::default()));
    assert_eq!(instance.state(), State::Backup);
}

#[test]
fn backup_whose_priority_rises_above_the_master_preempts_after_master_down_interval() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let t1 = t0 + Duration::from_secs(1);
    instance.handle(t1, advert(HIGHER_ADDRESS, 120, Duration::from_secs(1)));
    instance.handle(
        t1 + ms(100),
        Event::Tracking(Tracking {
            weight_delta: 30,
            fault: false,
        }),
    );
    // The next advert (120 < 130) is discarded; the timer armed at t1 with the old
    // Master_Down_Interval runs out.
    instance.handle(
        t1 + Duration::from_secs(1),
        advert(HIGHER_ADDRESS, 120, Duration::from_secs(1)),
    );
    let at = t1 + Duration::from_micros(3_609_375);
    assert_eq!(instance.next_deadline(), Some(at));
    let actions = instance.handle(at, Event::Timeout);
    assert_eq!(
        actions[0],
        changed(
            State::Backup,
            State::Master,
            TransitionReason::PreemptLowerPriority
        )
    );
    assert_eq!(
        actions[3],
        Action::SendAdvert {
            priority: 130,
            max_advert_interval: Duration::from_secs(1)
        }
    );
}

#[test]
fn config_change_keeps_the_state_and_reports_the_new_priority() {
    let t0 = Instant::now();
    let (mut instance, became) = master(config(100), t0);
    let mut cfg = config(150);
    cfg.advert_interval = ms(200);
    let t1 = became + ms(100);
    assert_eq!(
        instance.handle(t1, Event::ConfigChanged(cfg)),
        vec![Action::EffectivePriorityChanged { from: 100, to: 150 }]
    );
    assert_eq!(instance.state(), State::Master);
    // The next advert comes within the new interval.
    assert_eq!(instance.next_deadline(), Some(t1 + ms(200)));
    assert_eq!(instance.master_adver_interval(), ms(200));
}

#[test]
fn shutdown_from_fault_returns_to_initialize_and_startup_runs_again() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    instance.handle(t0, Event::InterfaceDown);
    assert_eq!(
        instance.handle(t0, Event::Shutdown),
        vec![changed(
            State::Fault,
            State::Initialize,
            TransitionReason::Shutdown
        )]
    );
    assert!(!instance.is_started());
    instance.handle(t0, Event::InterfaceUp);
    instance.handle(t0, Event::Startup);
    assert_eq!(instance.state(), State::Backup);
}

#[test]
fn a_second_startup_changes_nothing() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    assert!(instance.handle(t0 + ms(1), Event::Startup).is_empty());
    assert_eq!(
        instance.next_deadline(),
        Some(t0 + Duration::from_micros(3_609_375))
    );
}

#[test]
fn validate_rejects_what_the_wire_cannot_carry() {
    let mut cfg = config(0);
    assert_eq!(cfg.validate(), Err(ConfigError::PriorityZero));
    cfg.priority = 100;
    assert_eq!(cfg.validate(), Ok(()));
    cfg.advert_interval = ms(15);
    assert_eq!(cfg.validate(), Err(ConfigError::V3Interval(ms(15))));
    cfg.advert_interval = ms(40_960);
    assert_eq!(cfg.validate(), Err(ConfigError::V3Interval(ms(40_960))));
    cfg.version = Version::V2;
    cfg.advert_interval = ms(1_500);
    assert_eq!(cfg.validate(), Err(ConfigError::V2Interval(ms(1_500))));
    cfg.advert_interval = Duration::from_secs(2);
    assert_eq!(cfg.validate(), Ok(()));
    cfg.primary_address = "fe80::1".parse().unwrap();
    assert!(matches!(cfg.validate(), Err(ConfigError::V2WithIpv6(_))));
    cfg.vrid = 0;
    assert_eq!(cfg.validate(), Err(ConfigError::VridZero));
}

#[test]
fn as_str_names_are_stable_labels() {
    assert_eq!(State::Master.as_str(), "MASTER");
    assert_eq!(State::Initialize.as_str(), "INIT");
    assert_eq!(Version::V2.as_str(), "v2");
    assert_eq!(
        TransitionReason::PreemptLowerPriority.as_str(),
        "preempt_lower_priority"
    );
}

#[test]
fn ipv6_master_steps_down_for_an_equal_priority_from_a_greater_link_local_address() {
    // §6.4.3 compares the primary IPvX addresses; for IPv6 these are link-local.
    let t0 = Instant::now();
    let mut cfg = config(100);
    cfg.primary_address = "fe80::2".parse().unwrap();
    let (mut instance, became) = master(cfg, t0);
    let lesser: IpAddr = "fe80::1".parse().unwrap();
    assert!(
        instance
            .handle(became, advert(lesser, 100, Duration::from_secs(1)))
            .is_empty()
    );
    let greater: IpAddr = "fe80::10".parse().unwrap();
    let actions = instance.handle(became, advert(greater, 100, Duration::from_secs(1)));
    assert_eq!(
        actions[0],
        changed(
            State::Master,
            State::Backup,
            TransitionReason::EqualPriorityHigherAddress
        )
    );
    assert_eq!(instance.master_address(), Some(greater));
}

// ---- the Adver_Timer keeps its schedule ----

#[test]
fn master_adverts_stay_on_their_schedule_when_every_timeout_is_handled_late() {
    let mut cfg = config(100);
    cfg.advert_interval = ms(10);
    let (mut instance, became) = master(cfg, Instant::now());
    let first = instance.next_deadline().unwrap();
    assert_eq!(first, became + ms(10));
    // Every wake-up comes 3 ms late; the deadlines stay on the 10 ms grid.
    for k in 1..=100u32 {
        let due = instance.next_deadline().unwrap();
        assert_eq!(due, first + ms(10) * (k - 1), "advert {k} drifted");
        let actions = instance.handle(due + ms(3), Event::Timeout);
        assert!(matches!(actions[..], [Action::SendAdvert { .. }]));
    }
}

#[test]
fn a_master_timer_more_than_an_interval_behind_restarts_its_schedule_instead_of_bursting() {
    let mut cfg = config(100);
    cfg.advert_interval = ms(10);
    let (mut instance, _) = master(cfg, Instant::now());
    let due = instance.next_deadline().unwrap();
    // The process was stopped for 55 ms: one advert now, the next one interval later.
    let woke = due + ms(55);
    instance.handle(woke, Event::Timeout);
    assert_eq!(instance.next_deadline(), Some(woke + ms(10)));
}

// ---- edge faults ----

fn conflict() -> Event {
    Event::EdgeFaults(EdgeFaults {
        address_conflict: true,
        ..EdgeFaults::default()
    })
}

#[test]
fn an_address_conflict_keeps_a_backup_out_of_the_election_until_it_clears() {
    let t0 = Instant::now();
    let mut instance = backup(config(150), t0);
    let actions = instance.handle(t0 + ms(5), conflict());
    assert_eq!(
        actions,
        vec![changed(
            State::Backup,
            State::Fault,
            TransitionReason::AddressConflict
        )]
    );
    assert_eq!(
        instance.next_deadline(),
        None,
        "a FAULT instance runs no timer"
    );
    assert_eq!(
        instance.fault_condition(),
        Some(TransitionReason::AddressConflict)
    );
    let actions = instance.handle(t0 + ms(10), Event::EdgeFaults(EdgeFaults::default()));
    assert_eq!(
        actions,
        vec![changed(
            State::Fault,
            State::Backup,
            TransitionReason::EdgeRecovered
        )]
    );
}

#[test]
fn a_conflict_present_at_startup_starts_the_instance_in_fault() {
    let t0 = Instant::now();
    let mut instance = Instance::new(config(150));
    instance.handle(t0, conflict());
    let actions = instance.handle(t0, Event::Startup);
    assert_eq!(
        actions,
        vec![changed(
            State::Initialize,
            State::Fault,
            TransitionReason::AddressConflict
        )]
    );
}

#[test]
fn a_master_whose_vip_add_failed_resigns_with_priority_zero_and_releases_its_vips() {
    let (mut instance, became) = master(config(150), Instant::now());
    let failed = EdgeFaults {
        vip_add_failed: true,
        ..EdgeFaults::default()
    };
    let actions = instance.handle(became, Event::EdgeFaults(failed));
    assert_eq!(
        actions,
        vec![
            changed(State::Master, State::Fault, TransitionReason::VipAddFailed),
            Action::SendAdvert {
                priority: 0,
                max_advert_interval: Duration::from_secs(1)
            },
            Action::RemoveVips,
        ]
    );
}

#[test]
fn losing_the_source_address_is_a_fault_until_one_returns() {
    let t0 = Instant::now();
    let mut instance = backup(config(100), t0);
    let lost = EdgeFaults {
        no_source_address: true,
        ..EdgeFaults::default()
    };
    instance.handle(t0, Event::EdgeFaults(lost));
    assert_eq!(instance.state(), State::Fault);
    // The interface going down and up meanwhile does not bring it back on its own.
    instance.handle(t0, Event::InterfaceDown);
    instance.handle(t0, Event::InterfaceUp);
    assert_eq!(instance.state(), State::Fault);
    instance.handle(t0, Event::EdgeFaults(EdgeFaults::default()));
    assert_eq!(instance.state(), State::Backup);
}

#[test]
fn back_from_a_failed_vip_add_an_instance_does_not_preempt_a_working_master() {
    let (mut instance, became) = master(config(150), Instant::now());
    let failed = EdgeFaults {
        vip_add_failed: true,
        ..EdgeFaults::default()
    };
    instance.handle(became, Event::EdgeFaults(failed));
    let retry = became + Duration::from_secs(1);
    instance.handle(retry, Event::EdgeFaults(EdgeFaults::default()));
    assert_eq!(instance.state(), State::Backup);
    // A lower-priority Master took over meanwhile: it is followed, not preempted.
    let heard = retry + ms(100);
    instance.handle(heard, advert(LOWER_ADDRESS, 100, Duration::from_secs(1)));
    assert_eq!(instance.master_address(), Some(LOWER_ADDRESS));
    let deadline = instance.next_deadline().unwrap();
    instance.handle(
        deadline.checked_sub(ms(1)).unwrap(),
        advert(LOWER_ADDRESS, 100, Duration::from_secs(1)),
    );
    assert_eq!(instance.state(), State::Backup);
    // The Master goes silent: the retry becomes Master, and preempts again from then on.
    let silent = instance.next_deadline().unwrap();
    instance.handle(silent, Event::Timeout);
    assert_eq!(instance.state(), State::Master);
    instance.handle(silent, advert(LOWER_ADDRESS, 100, Duration::from_secs(1)));
    assert_eq!(
        instance.state(),
        State::Master,
        "a Master discards a lower priority"
    );
}
