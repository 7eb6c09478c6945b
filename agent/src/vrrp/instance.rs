//! The per-instance VRRP state machine (RFC 5798 §6; RFC 3768 for v2), driven by events and a caller-supplied clock.
//!
//! The machine is pure, in the quiche model: the caller owns the clock and all I/O. It feeds
//! [`Instance::handle`] with the current time and one [`Event`], performs the returned
//! [`Action`]s in order, and delivers [`Event::Timeout`] once `now >= next_deadline()`.
//! Nothing here reads a clock, opens a socket or spawns anything.
//!
//! Only one timer runs at a time: the Adver_Timer as Master, the Master_Down_Timer as Backup,
//! the handover's timer in Initialize after a planned exit (below), none otherwise;
//! [`Instance::next_deadline`] returns whichever is armed.
//!
//! **A planned exit is make-before-break.** On [`Event::Shutdown`] a Master does what RFC 5798
//! §6.4.3 asks (it sends an advert with priority 0 and goes to Initialize) but keeps its
//! virtual addresses for a bounded [`handover_timeout`] instead of dropping them at once: it
//! goes on answering for them until another router's first advert says that router is Master
//! (§6.4.2: a Backup hearing priority 0 takes over after Skew_Time), and only then releases
//! them. The RFC places no rule on answering ARP in Initialize (§6.4.1 only waits for
//! Startup); the Backup rule "MUST NOT respond to ARP requests" (§6.4.2) is not broken, since
//! the router never enters Backup. A new Master takes its addresses and announces them before
//! it sends its first advert (§6.4.1, §6.4.2 list these steps for one event; the order on the
//! wire is ours), so that by the time the old Master hears it and lets go, the clients have
//! been told where the addresses went: no request is answered by nobody.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kube_vrrp_agent::vrrp::Version;
//! use kube_vrrp_agent::vrrp::instance::{Action, Config, Event, Instance, State};
//!
//! let mut instance = Instance::new(Config {
//!     vrid: 51,
//!     priority: 100,
//!     advert_interval: Duration::from_secs(1),
//!     version: Version::V3,
//!     preempt: true,
//!     preempt_delay: Duration::ZERO,
//!     accept_mode: false,
//!     primary_address: "10.0.0.2".parse().unwrap(),
//! });
//! let t0 = Instant::now(); // the driver's clock, never read by the machine
//! instance.handle(t0, Event::Startup);
//! // Nothing heard: the Master_Down_Timer runs out after 3 s + Skew_Time.
//! let deadline = instance.next_deadline().unwrap();
//! assert_eq!(deadline - t0, Duration::from_micros(3_609_375));
//! let actions = instance.handle(deadline, Event::Timeout);
//! assert_eq!(instance.state(), State::Master);
//! assert!(actions.contains(&Action::AddVips));
//! ```

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::protocol::Version;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

/// RFC 5798 §5.2.4: the priority of the router that owns the virtual addresses.
pub const PRIORITY_OWNER: u8 = 255;
/// RFC 5798 §5.2.4: priority 0 announces that the current Master stops participating.
pub const PRIORITY_STOP: u8 = 0;
/// The shortest advertisement interval the machine runs with (one v3 centisecond); shorter
/// configured intervals are raised to it.
pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
/// RFC 5798 §5.2.7: the largest v3 interval (4095 centiseconds).
const MAX_V3_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);
/// A handover waits for the new Master at most this many advertisement intervals...
pub const HANDOVER_INTERVALS: u32 = 3;
/// ...and never longer than this (a v2 interval may be minutes).
pub const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// How long a Master leaving on purpose keeps its addresses while it waits for the new
/// Master's first advert: [`HANDOVER_INTERVALS`] advertisement intervals, at most
/// [`HANDOVER_LIMIT`]. A Backup takes over Skew_Time (less than one interval) after the
/// priority-0 advert; the priority-0 advert is repeated every interval meanwhile, so one lost
/// packet does not cost the handover.
pub fn handover_timeout(advert_interval: Duration) -> Duration {
    (advert_interval.max(MIN_ADVERT_INTERVAL) * HANDOVER_INTERVALS).min(HANDOVER_LIMIT)
}

/// RFC 5798 §6.4: the states of one virtual router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// Not an RFC state (keepalived's): a tracked interface or check failed, or the sync group
    /// is faulted. The instance neither sends nor listens until the fault clears.
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "INIT",
            Self::Backup => "BACKUP",
            Self::Master => "MASTER",
            Self::Fault => "FAULT",
        }
    }
}

/// Why a state transition happened: a log field and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    /// Startup into Backup (RFC 5798 §6.4.1).
    Startup,
    /// Startup straight into Master as the address owner (priority 255, §6.4.1).
    Owner,
    /// The Master_Down_Timer fired: the Master went silent (§6.4.2).
    MasterDownTimer,
    /// The Master_Down_Timer fired Skew_Time after the Master sent priority 0 (§6.4.2).
    MasterStopped,
    /// The Master_Down_Timer fired after adverts of a lower-priority Master were discarded
    /// (preemption, §6.4.2).
    PreemptLowerPriority,
    /// A Master heard an advert with a higher priority (§6.4.3).
    HigherPriorityAdvert,
    /// A Master heard an advert with its own priority from a greater primary address (§6.4.3).
    EqualPriorityHigherAddress,
    /// The instance was stopped (§6.4.2, §6.4.3 Shutdown).
    Shutdown,
    InterfaceDown,
    InterfaceUp,
    TrackerFault,
    TrackerRecovered,
    /// A VIP is on the interface but was installed by someone else (see [`EdgeFaults`]).
    AddressConflict,
    /// The interface has no address to send adverts from.
    NoSourceAddress,
    /// Installing the VIPs failed.
    VipAddFailed,
    /// Every edge fault cleared.
    EdgeRecovered,
    /// Another member of the instance's sync group moved the group.
    SyncGroup,
}

/// How a handover (make-before-break planned exit) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverEnd {
    /// Another router's advert with a non-zero priority: it is Master now.
    NewMaster(IpAddr),
    /// Nobody took over within [`handover_timeout`].
    TimedOut,
    /// The interface went down: nobody can be answered any more.
    InterfaceDown,
    /// The instance was started again before anyone took over.
    Restarted,
}

impl HandoverEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMaster(_) => "new_master",
            Self::TimedOut => "timed_out",
            Self::InterfaceDown => "interface_down",
            Self::Restarted => "restarted",
        }
    }
}

impl TransitionReason {
    /// The Master_Down_Timer ran out: after silence, after a priority-0 advert's Skew_Time, or
    /// after discarding a lower priority's adverts.
    pub fn is_master_down(self) -> bool {
        matches!(
            self,
            Self::MasterDownTimer | Self::MasterStopped | Self::PreemptLowerPriority
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::Owner => "owner",
            Self::MasterDownTimer => "master_down_timer",
            Self::MasterStopped => "master_stopped",
            Self::PreemptLowerPriority => "preempt_lower_priority",
            Self::HigherPriorityAdvert => "higher_priority_advert",
            Self::EqualPriorityHigherAddress => "equal_priority_higher_address",
            Self::Shutdown => "shutdown",
            Self::InterfaceDown => "interface_down",
            Self::InterfaceUp => "interface_up",
            Self::TrackerFault => "tracker_fault",
            Self::TrackerRecovered => "tracker_recovered",
            Self::AddressConflict => "address_conflict",
            Self::NoSourceAddress => "no_source_address",
            Self::VipAddFailed => "vip_add_failed",
            Self::EdgeRecovered => "edge_recovered",
            Self::SyncGroup => "sync_group",
        }
    }
}

/// The configuration of one instance (RFC 5798 §6.1 parameters).
///
/// The machine runs with any value: a non-owner priority is clamped to 1..=254 and an interval
/// below [`MIN_ADVERT_INTERVAL`] is raised to it. Use [`Config::validate`] at the edge to reject
/// what the wire cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Virtual Router Identifier (1..=255). The machine does not use it; it is carried for the edge.
    pub vrid: u8,
    /// 1..=254, or 255 for the address owner.
    pub priority: u8,
    /// Advertisement_Interval.
    pub advert_interval: Duration,
    pub version: Version,
    /// Preempt_Mode. The address owner always preempts.
    pub preempt: bool,
    /// keepalived's preempt_delay: after startup, or after first accepting a lower-priority
    /// Master, keep accepting it for this long before preempting. Zero disables it.
    pub preempt_delay: Duration,
    /// Accept_Mode (v3): a non-owner Master accepts packets addressed to the VIPs.
    pub accept_mode: bool,
    /// Our own primary address on the interface, the tie-break between equal priorities.
    pub primary_address: IpAddr,
}

/// Why a [`Config`] cannot be sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("VRID 0 is not a valid virtual router identifier")]
    VridZero,
    #[error("priority 0 is reserved for a Master that stops (RFC 5798 §5.2.4)")]
    PriorityZero,
    #[error("a v2 advertisement interval is whole seconds from 1 s to 255 s, got {0:?}")]
    V2Interval(Duration),
    #[error("a v3 advertisement interval is a multiple of 10 ms from 10 ms to 40.95 s, got {0:?}")]
    V3Interval(Duration),
    #[error("VRRP v2 carries IPv4 only, got primary address {0}")]
    V2WithIpv6(IpAddr),
}

impl Config {
    /// Whether this instance owns the virtual addresses (priority 255).
    pub fn is_owner(&self) -> bool {
        self.priority == PRIORITY_OWNER
    }

    /// Checks the values against what RFC 3768 / RFC 5798 adverts can carry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::VridZero);
        }
        if self.priority == PRIORITY_STOP {
            return Err(ConfigError::PriorityZero);
        }
        let interval = self.advert_interval;
        match self.version {
            Version::V2 => {
                if interval.subsec_nanos() != 0 || !(1..=255).contains(&interval.as_secs()) {
                    return Err(ConfigError::V2Interval(interval));
                }
                if self.primary_address.is_ipv6() {
                    return Err(ConfigError::V2WithIpv6(self.primary_address));
                }
            }
            Version::V3 => {
                let centisecond_steps = interval
                    .as_nanos()
                    .is_multiple_of(MIN_ADVERT_INTERVAL.as_nanos());
                if !centisecond_steps
                    || interval < MIN_ADVERT_INTERVAL
                    || interval > MAX_V3_ADVERT_INTERVAL
                {
                    return Err(ConfigError::V3Interval(interval));
                }
            }
        }
        Ok(())
    }
}

/// The fields of a received advertisement that the machine needs. The edge has already
/// validated the packet (TTL, checksum, version, VRID, authentication, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedAdvert {
    /// The IP source of the packet: the sender's primary address.
    pub source: IpAddr,
    pub priority: u8,
    /// The Max Adver Int field (v3; for v2 the edge passes the whole-second interval). Zero is
    /// treated as "unknown" and not learned.
    pub max_advert_interval: Duration,
}

/// The combined state of the trackers of an instance (keepalived `track_*` semantics). Each
/// event carries the whole current value, not a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracking {
    /// Sum of the weights of the tracked objects; added to the configured priority of a
    /// non-owner, the result clamped to 1..=254.
    pub weight_delta: i32,
    /// A tracked object without weight failed: the instance goes to Fault.
    pub fault: bool,
}

/// What the node's edge reports that keeps an instance out of the election: each is a reason
/// for Fault of its own (not RFC states, keepalived-like faults). Each event carries the whole
/// current value, not a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdgeFaults {
    /// A virtual address is on the interface but was installed by someone else: taking over
    /// would claim an address this instance cannot own (and may not remove).
    pub address_conflict: bool,
    /// The interface has no address of the family to send adverts from.
    pub no_source_address: bool,
    /// Installing the virtual addresses failed; the edge clears it when a retry is due.
    pub vip_add_failed: bool,
}

impl EdgeFaults {
    /// The first fault present, as a transition reason.
    pub fn reason(self) -> Option<TransitionReason> {
        if self.no_source_address {
            Some(TransitionReason::NoSourceAddress)
        } else if self.address_conflict {
            Some(TransitionReason::AddressConflict)
        } else if self.vip_add_failed {
            Some(TransitionReason::VipAddFailed)
        } else {
            None
        }
    }
}

/// What a sync group can impose on a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedState {
    /// Backup → Master (the whole group agreed).
    Master,
    /// Master → Backup, or leave a group-imposed Fault.
    Backup,
    /// Any running state → Fault; the instance stays there until forced Backup.
    Fault,
}

/// An input to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Startup,
    Shutdown,
    /// The deadline from `next_deadline()` has passed. Early calls do nothing.
    Timeout,
    Advert(ReceivedAdvert),
    Tracking(Tracking),
    /// The current edge faults (address conflict, no source address, failed VIP add).
    EdgeFaults(EdgeFaults),
    InterfaceDown,
    InterfaceUp,
    /// New parameters, applied without leaving the current state.
    ConfigChanged(Config),
    /// Sent by [`super::sync_group::SyncGroup`]; a lone instance has no use for it.
    Force(ForcedState),
}

/// An output of the machine, for the edge to perform in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    StateChanged {
        from: State,
        to: State,
        reason: TransitionReason,
    },
    /// Send one advertisement with these fields.
    SendAdvert {
        priority: u8,
        max_advert_interval: Duration,
    },
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Remove the virtual addresses from the interface.
    RemoveVips,
    /// Send gratuitous ARP / unsolicited NA for the VIPs; delay, repeat and refresh belong to
    /// the edge.
    Announce,
    /// The priority used in adverts and elections changed (trackers or configuration).
    EffectivePriorityChanged { from: u8, to: u8 },
    /// A handover ended; [`Action::RemoveVips`] follows.
    HandoverEnded(HandoverEnd),
}

/// A planned exit in progress: priority 0 announced, the VIPs still held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handover {
    /// When the VIPs go whatever happens.
    until: Instant,
    /// When the priority-0 advert is sent again.
    next_stop_advert: Instant,
}

/// One VRRP virtual router on one interface.
#[derive(Debug, Clone)]
pub struct Instance {
    config: Config,
    state: State,
    /// Between Startup and Shutdown.
    started: bool,
    interface_up: bool,
    tracking: Tracking,
    edge: EdgeFaults,
    effective_priority: u8,
    master_adver_interval: Duration,
    /// The Adver_Timer (Master) or the Master_Down_Timer (Backup).
    deadline: Option<Instant>,
    /// The reason to give when the armed Master_Down_Timer fires.
    down_reason: TransitionReason,
    /// Until when a lower-priority Master is still accepted (preempt delay).
    preempt_at: Option<Instant>,
    master_address: Option<IpAddr>,
    /// Member of a sync group: never goes to Master on its own, only when forced.
    sync_member: bool,
    /// A sync member whose own rules say Master records why here and waits for the group.
    want_master: Option<TransitionReason>,
    /// The sync group holds this instance in Fault.
    forced_fault: bool,
    /// Back from a failed VIP add: until this instance is Master again, it does not preempt a
    /// working Master (a retry must not cost the clients a handover each time it fails).
    holding_back: bool,
    /// A planned exit waiting for the new Master (in Initialize, VIPs still held).
    handover: Option<Handover>,
}

impl Instance {
    /// A new instance in Initialize, interface assumed up, no tracker input yet.
    pub fn new(config: Config) -> Self {
        let tracking = Tracking::default();
        let effective_priority = effective_priority(&config, tracking);
        let master_adver_interval = config.advert_interval.max(MIN_ADVERT_INTERVAL);
        Self {
            config,
            state: State::Initialize,
            started: false,
            interface_up: true,
            tracking,
            edge: EdgeFaults::default(),
            effective_priority,
            master_adver_interval,
            deadline: None,
            down_reason: TransitionReason::MasterDownTimer,
            preempt_at: None,
            master_address: None,
            sync_member: false,
            want_master: None,
            forced_fault: false,
            holding_back: false,
            handover: None,
        }
    }

    /// Feeds one event at time `now`; returns the actions to perform, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Startup => self.on_startup(now, &mut out),
            Event::Shutdown => self.on_shutdown(now, &mut out),
            Event::Timeout => self.on_timeout(now, &mut out),
            Event::Advert(advert) => self.on_advert(now, advert, &mut out),
            Event::Tracking(tracking) => self.on_tracking(now, tracking, &mut out),
            Event::EdgeFaults(edge) => self.on_edge_faults(now, edge, &mut out),
            Event::InterfaceDown => self.on_interface_down(&mut out),
            Event::InterfaceUp => self.on_interface_up(now, &mut out),
            Event::ConfigChanged(config) => self.on_config_changed(now, config, &mut out),
            Event::Force(forced) => self.on_force(now, forced, &mut out),
        }
        out
    }

    /// When the caller must deliver [`Event::Timeout`]; `None` when no timer runs.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The priority used in adverts and elections: 255 for the owner, otherwise the configured
    /// priority plus the tracker weights, clamped to 1..=254.
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// RFC 5798 §6.1 Master_Adver_Interval: learned from the Master's adverts in v3, our own
    /// Advertisement_Interval otherwise.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// v3 (RFC 5798 §6.1): ((256 − priority) × Master_Adver_Interval) / 256.
    /// v2 (RFC 3768 §6.1): (256 − priority) / 256 seconds.
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u32::from(self.effective_priority);
        let base = match self.config.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.master_adver_interval,
        };
        base * weight / 256
    }

    /// 3 × Master_Adver_Interval + Skew_Time (both RFCs).
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    /// The source of the last advert accepted from the current Master; our own primary address
    /// while we are Master; `None` in Initialize and Fault.
    pub fn master_address(&self) -> Option<IpAddr> {
        self.master_address
    }

    /// Whether the node should accept packets addressed to the VIPs: only as Master, and only
    /// with Accept_Mode or as the address owner (RFC 5798 §6.4.3).
    pub fn accepts_vip_traffic(&self) -> bool {
        self.state == State::Master && (self.config.accept_mode || self.config.is_owner())
    }

    /// Whether the instance is between Startup and Shutdown.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Whether a planned exit is still holding the VIPs, waiting for the new Master.
    pub fn is_handing_over(&self) -> bool {
        self.handover.is_some()
    }

    /// When a handover in progress releases the VIPs at the latest.
    pub fn handover_until(&self) -> Option<Instant> {
        self.handover.map(|handover| handover.until)
    }

    /// Whether the VIPs are the instance's to hold now: as Master, or handing over.
    pub fn holds_vips(&self) -> bool {
        self.state == State::Master || self.handover.is_some()
    }

    /// The instance's own fault cause (interface, edge or tracker), ignoring any sync-group
    /// fault.
    pub fn fault_condition(&self) -> Option<TransitionReason> {
        if !self.interface_up {
            Some(TransitionReason::InterfaceDown)
        } else if let Some(reason) = self.edge.reason() {
            Some(reason)
        } else if self.tracking.fault {
            Some(TransitionReason::TrackerFault)
        } else {
            None
        }
    }

    /// The edge faults last reported.
    pub fn edge_faults(&self) -> EdgeFaults {
        self.edge
    }

    /// A sync member whose own rules would take it to Master, waiting for its group.
    pub fn wants_master(&self) -> bool {
        self.want_master.is_some()
    }

    /// Whether the sync group holds this instance in Fault.
    pub fn is_forced_fault(&self) -> bool {
        self.forced_fault
    }

    /// Marks the instance as a sync-group member (it then waits for the group before Master).
    pub(crate) fn set_sync_member(&mut self, member: bool) {
        self.sync_member = member;
        if !member {
            self.want_master = None;
            self.forced_fault = false;
        }
    }

    fn advert_interval(&self) -> Duration {
        self.config.advert_interval.max(MIN_ADVERT_INTERVAL)
    }

    fn preempts(&self) -> bool {
        (self.config.preempt || self.config.is_owner()) && !self.holding_back
    }

    fn transition(&mut self, to: State, reason: TransitionReason, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        out.push(Action::StateChanged { from, to, reason });
    }

    fn send_advert(&self, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.effective_priority,
            max_advert_interval: self.advert_interval(),
        });
    }

    fn send_stop_advert(&self, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: PRIORITY_STOP,
            max_advert_interval: self.advert_interval(),
        });
    }

    fn arm_master_down_timer(&mut self, now: Instant, reason: TransitionReason) {
        self.deadline = Some(now + self.master_down_interval());
        self.down_reason = reason;
    }

    /// §6.4.1, also used when a fault clears: the owner goes to Master, everyone else to Backup.
    fn enter_running(&mut self, now: Instant, reason: TransitionReason, out: &mut Vec<Action>) {
        self.master_adver_interval = self.advert_interval();
        self.master_address = None;
        self.forced_fault = false;
        let owner_reason = if reason == TransitionReason::Startup {
            TransitionReason::Owner
        } else {
            reason
        };
        if self.config.is_owner() && !self.sync_member {
            self.become_master(now, owner_reason, out);
            return;
        }
        self.transition(State::Backup, reason, out);
        self.arm_master_down_timer(now, TransitionReason::MasterDownTimer);
        self.preempt_at =
            (!self.config.preempt_delay.is_zero()).then(|| now + self.config.preempt_delay);
        self.want_master = self.config.is_owner().then_some(owner_reason);
    }

    /// §6.4.1 / §6.4.2: take the VIPs, announce them, send an advert, arm the Adver_Timer.
    /// The RFC lists the advert first; announcing first means that a Master handing over
    /// (or preempted), which lets go when it hears this advert, lets go only after the clients
    /// were told where the addresses went (make-before-break, see the module's doc).
    fn become_master(&mut self, now: Instant, reason: TransitionReason, out: &mut Vec<Action>) {
        self.transition(State::Master, reason, out);
        self.master_adver_interval = self.advert_interval();
        out.push(Action::AddVips);
        out.push(Action::Announce);
        self.send_advert(out);
        self.deadline = Some(now + self.advert_interval());
        self.master_address = Some(self.config.primary_address);
        self.preempt_at = None;
        self.want_master = None;
        self.holding_back = false;
    }

    /// Leaves a running state for Fault. A Master with a working interface resigns with
    /// priority 0 so that a Backup takes over after Skew_Time.
    fn enter_fault(&mut self, reason: TransitionReason, out: &mut Vec<Action>) {
        let was_master = self.state == State::Master;
        self.transition(State::Fault, reason, out);
        if was_master {
            if self.interface_up {
                self.send_stop_advert(out);
            }
            out.push(Action::RemoveVips);
        }
        self.deadline = None;
        self.preempt_at = None;
        self.want_master = None;
        self.master_address = None;
    }

    fn on_startup(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        // Started again while handing over: the addresses are let go first, so that they are
        // taken again only through the election.
        self.end_handover(HandoverEnd::Restarted, out);
        self.started = true;
        // A fault present at startup keeps the instance out of the election.
        if let Some(reason) = self.fault_condition() {
            self.enter_fault(reason, out);
        } else {
            self.enter_running(now, TransitionReason::Startup, out);
        }
    }

    /// §6.4.2 / §6.4.3 Shutdown: a Master sends priority 0 and goes to Initialize; with its
    /// interface up it keeps the VIPs until the new Master's first advert or
    /// [`handover_timeout`] (make-before-break), else it releases them at once.
    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        self.started = false;
        let was_master = self.state == State::Master;
        if self.state != State::Initialize {
            self.transition(State::Initialize, TransitionReason::Shutdown, out);
        }
        self.deadline = None;
        if was_master {
            self.send_stop_advert(out);
            if self.interface_up {
                let interval = self.advert_interval();
                let handover = Handover {
                    until: now + handover_timeout(interval),
                    next_stop_advert: now + interval,
                };
                self.deadline = Some(handover.next_stop_advert.min(handover.until));
                self.handover = Some(handover);
            } else {
                out.push(Action::RemoveVips);
            }
        }
        self.preempt_at = None;
        self.want_master = None;
        self.forced_fault = false;
        self.master_address = None;
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        if let Some(mut handover) = self.handover {
            if now >= handover.until {
                self.end_handover(HandoverEnd::TimedOut, out);
            } else {
                // Nobody has taken over yet: say it again, in case the last one was lost.
                handover.next_stop_advert =
                    next_advert(handover.next_stop_advert, now, self.advert_interval());
                self.deadline = Some(handover.next_stop_advert.min(handover.until));
                self.handover = Some(handover);
                self.send_stop_advert(out);
            }
            return;
        }
        match self.state {
            // §6.4.3: Adver_Timer fired: send an advert, re-arm from the deadline (not from
            // `now`, so that late wake-ups do not add up to drift).
            State::Master => {
                self.send_advert(out);
                self.deadline = Some(next_advert(deadline, now, self.advert_interval()));
            }
            // §6.4.2: Master_Down_Timer fired.
            State::Backup => {
                let reason = self.down_reason;
                if self.sync_member {
                    // The group decides; keep the timer running so the wish is renewed. The
                    // first reason for wanting Master is kept until an advert cancels it.
                    self.want_master.get_or_insert(reason);
                    self.arm_master_down_timer(now, reason);
                } else {
                    self.become_master(now, reason, out);
                }
            }
            State::Initialize | State::Fault => self.deadline = None,
        }
    }

    fn on_advert(&mut self, now: Instant, advert: ReceivedAdvert, out: &mut Vec<Action>) {
        // Handing over: a non-zero advert is the new Master's (only a Master advertises), and
        // it has announced the addresses before sending it; let them go.
        if self.handover.is_some() && advert.priority != PRIORITY_STOP {
            self.end_handover(HandoverEnd::NewMaster(advert.source), out);
            return;
        }
        match self.state {
            State::Backup => self.backup_receives(now, advert),
            State::Master => self.master_receives(now, advert, out),
            // §6.4.1: Initialize ignores adverts; so does Fault.
            State::Initialize | State::Fault => {}
        }
    }

    /// v3 only: Master_Adver_Interval follows the Master's adverts.
    fn learn_master_adver_interval(&mut self, advert: &ReceivedAdvert) {
        if self.config.version == Version::V3 && !advert.max_advert_interval.is_zero() {
            self.master_adver_interval = advert.max_advert_interval;
        }
    }

    /// §6.4.2, an advert arrives in Backup.
    fn backup_receives(&mut self, now: Instant, advert: ReceivedAdvert) {
        // The Master resigns: take over after Skew_Time.
        if advert.priority == PRIORITY_STOP {
            self.deadline = Some(now + self.skew_time());
            self.down_reason = TransitionReason::MasterStopped;
            return;
        }
        let lower = advert.priority < self.effective_priority;
        let delay_holds =
            !self.config.preempt_delay.is_zero() && self.preempt_at.is_none_or(|until| now < until);
        // Preempt_Mode false, or priority >= ours, or a preempt delay still running: accept.
        if !self.preempts() || !lower || delay_holds {
            self.learn_master_adver_interval(&advert);
            self.arm_master_down_timer(now, TransitionReason::MasterDownTimer);
            self.master_address = Some(advert.source);
            self.want_master = None;
            if !self.config.preempt_delay.is_zero() {
                if !lower {
                    self.preempt_at = None;
                } else if self.preempt_at.is_none() {
                    self.preempt_at = Some(now + self.config.preempt_delay);
                }
            }
        } else {
            // Discard: the Master_Down_Timer runs out and we preempt.
            self.down_reason = TransitionReason::PreemptLowerPriority;
        }
    }

    /// §6.4.3, an advert arrives in Master.
    fn master_receives(&mut self, now: Instant, advert: ReceivedAdvert, out: &mut Vec<Action>) {
        if advert.priority == PRIORITY_STOP {
            // Another router resigned: assert ourselves at once.
            self.send_advert(out);
            self.deadline = Some(now + self.advert_interval());
            return;
        }
        let ours = self.effective_priority;
        let reason = if advert.priority > ours {
            TransitionReason::HigherPriorityAdvert
        } else if advert.priority == ours && advert.source > self.config.primary_address {
            TransitionReason::EqualPriorityHigherAddress
        } else {
            // Lower priority, or equal from a lesser address: discard.
            return;
        };
        self.transition(State::Backup, reason, out);
        out.push(Action::RemoveVips);
        self.learn_master_adver_interval(&advert);
        self.arm_master_down_timer(now, TransitionReason::MasterDownTimer);
        self.master_address = Some(advert.source);
        self.preempt_at = None;
    }

    fn on_tracking(&mut self, now: Instant, tracking: Tracking, out: &mut Vec<Action>) {
        let was_faulted = self.fault_condition().is_some();
        self.tracking = tracking;
        self.update_effective_priority(out);
        if !self.started {
            return;
        }
        let faulted = self.fault_condition().is_some();
        if faulted && !was_faulted && matches!(self.state, State::Backup | State::Master) {
            self.enter_fault(TransitionReason::TrackerFault, out);
        } else if !faulted && was_faulted && self.state == State::Fault && !self.forced_fault {
            self.enter_running(now, TransitionReason::TrackerRecovered, out);
        }
    }

    fn on_edge_faults(&mut self, now: Instant, edge: EdgeFaults, out: &mut Vec<Action>) {
        let was_faulted = self.fault_condition().is_some();
        if self.edge.vip_add_failed && !edge.vip_add_failed {
            self.holding_back = true;
        }
        self.edge = edge;
        if !self.started {
            return;
        }
        match self.fault_condition() {
            Some(reason) if !was_faulted && matches!(self.state, State::Backup | State::Master) => {
                self.enter_fault(reason, out);
            }
            None if was_faulted && self.state == State::Fault && !self.forced_fault => {
                self.enter_running(now, TransitionReason::EdgeRecovered, out);
            }
            _ => {}
        }
    }

    fn on_interface_down(&mut self, out: &mut Vec<Action>) {
        if !self.interface_up {
            return;
        }
        self.interface_up = false;
        self.end_handover(HandoverEnd::InterfaceDown, out);
        if self.started && matches!(self.state, State::Backup | State::Master) {
            self.enter_fault(TransitionReason::InterfaceDown, out);
        }
    }

    fn on_interface_up(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.interface_up {
            return;
        }
        self.interface_up = true;
        if self.started
            && self.state == State::Fault
            && self.fault_condition().is_none()
            && !self.forced_fault
        {
            self.enter_running(now, TransitionReason::InterfaceUp, out);
        }
    }

    /// Applies new parameters in place. The armed timer keeps its deadline, except that a
    /// Master's next advert comes no later than one new interval from now; a Backup's new
    /// Master_Down_Interval applies from the next advert.
    fn on_config_changed(&mut self, now: Instant, config: Config, out: &mut Vec<Action>) {
        self.config = config;
        self.update_effective_priority(out);
        if self.config.version == Version::V2 || self.state != State::Backup {
            self.master_adver_interval = self.advert_interval();
        }
        if self.state == State::Master {
            let next = now + self.advert_interval();
            self.deadline = Some(self.deadline.map_or(next, |armed| armed.min(next)));
            self.master_address = Some(self.config.primary_address);
        }
    }

    fn on_force(&mut self, now: Instant, forced: ForcedState, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        match (forced, self.state) {
            (ForcedState::Master, State::Backup) => {
                let reason = self.want_master.unwrap_or(TransitionReason::SyncGroup);
                self.become_master(now, reason, out);
            }
            (ForcedState::Backup, State::Master) => {
                self.transition(State::Backup, TransitionReason::SyncGroup, out);
                out.push(Action::RemoveVips);
                self.arm_master_down_timer(now, TransitionReason::MasterDownTimer);
                self.master_address = None;
            }
            (ForcedState::Backup, State::Fault) => {
                self.forced_fault = false;
                if self.fault_condition().is_none() {
                    self.enter_running(now, TransitionReason::SyncGroup, out);
                }
            }
            (ForcedState::Fault, State::Backup | State::Master) => {
                self.forced_fault = true;
                self.enter_fault(TransitionReason::SyncGroup, out);
            }
            (ForcedState::Fault, State::Fault) => self.forced_fault = true,
            // Already there, or not a move a group makes (Initialize is left only by Startup).
            (ForcedState::Master, State::Master | State::Initialize | State::Fault)
            | (ForcedState::Backup, State::Backup | State::Initialize)
            | (ForcedState::Fault, State::Initialize) => {}
        }
    }

    /// Ends a handover in progress, if any: the VIPs go.
    fn end_handover(&mut self, end: HandoverEnd, out: &mut Vec<Action>) {
        if self.handover.take().is_some() {
            out.push(Action::HandoverEnded(end));
            out.push(Action::RemoveVips);
            self.deadline = None;
        }
    }

    fn update_effective_priority(&mut self, out: &mut Vec<Action>) {
        let from = self.effective_priority;
        let to = effective_priority(&self.config, self.tracking);
        if from != to {
            self.effective_priority = to;
            out.push(Action::EffectivePriorityChanged { from, to });
        }
    }
}

/// The Adver_Timer's next deadline after the one at `deadline` fired at `now`: one interval
/// later, keeping the adverts on their schedule however late this one fired; if the timer is
/// more than an interval behind (the process was stopped), the schedule restarts from `now`
/// instead of sending a burst to catch up.
fn next_advert(deadline: Instant, now: Instant, interval: Duration) -> Instant {
    let next = deadline + interval;
    if next > now { next } else { now + interval }
}

/// keepalived semantics: the owner keeps 255; others move by the tracker weights within 1..=254.
fn effective_priority(config: &Config, tracking: Tracking) -> u8 {
    if config.is_owner() {
        return PRIORITY_OWNER;
    }
    let sum = i64::from(config.priority) + i64::from(tracking.weight_delta);
    // Clamped to 1..=254, so the conversion cannot fail.
    u8::try_from(sum.clamp(1, 254)).unwrap_or(1)
}
