//! The task of one unit: a lone VRRP instance, or the instances of one sync group. It owns the
//! pure machine ([`Machine`]) and performs its actions (adverts, VIPs, announcements, status),
//! selecting over the machine's deadline, received adverts, interface and tracker changes,
//! configuration updates and shutdown.
//!
//! Timers come first: before each wait, a deadline that has passed is served, and the wait is
//! a timerfd ([`Deadline`]), so neither a flood of adverts nor tokio's millisecond timer wheel
//! moves an advert. A lone MASTER hands its Adver_Timer to the agent's ticker
//! ([`super::ticker`]) while it sleeps, so its routine adverts wake no task; a BACKUP's routine
//! adverts are taken by the receive path, which also postpones its timer ([`super::routine`]).
//! Trackers and the interface
//! watch feed the task through channels; nothing
//! here waits on a tracker, the API, a log sink or HTTP. The only awaits in the VRRP path are
//! the socket send and the rtnetlink address requests.
//!
//! What the node's edge says about each member (its interface's addresses and index, a VIP it
//! cannot own, a VIP it could not add) becomes [`EdgeFaults`] for the machine, so the machine
//! decides states and the task only reports.
//!
//! The rare paths (start, update, leave, stop, inputs, VIP changes, announcements) are awaited
//! boxed, so a unit's task keeps room only for its steady path's state: 1,600 bytes a unit in
//! place of 3,136 (release build; 0.4 MiB at 255 units).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use kube_vrrp_crds::HolderConflict;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::beat::Handover;
use super::config::{InstanceDiff, InstanceSpec, duration_to_cs};
use super::conflict::ConflictProbe;
use super::endpoint::{Endpoint, Sources};
use super::failover::{FailoverTrace, LastHeard};
use super::interfaces::{InterfaceView, InterfaceWatch};
use super::machine::Machine;
use super::member::{AddRetry, Helper, Member, unspecified};
use super::outgoing::{AdvertKey, EncodedAdverts};
use super::receive::QueuedAdvert;
use super::retry_delay;
use super::routine::Routine;
use super::streak::Streak;
use super::ticker::Ticker;
use super::view_feed::ViewFeed;
use super::vips::{Vips, describe_conflicts};
use super::virtual_mac::{VirtualMacs, VmacBinding};
use crate::check::{Followed, TrackState, TrackerSet};
use crate::net::accept::AcceptFilter;
use crate::net::address::Addresses;
use crate::net::announce::GarpSchedule;
use crate::net::link::{LinkDebounce, LinkState};
use crate::net::timer::Deadline;
use crate::report::{Metrics, StatusBoard};
use crate::vrrp::instance::{
    Action, EdgeFaults, Event, HandoverEnd, Instance, MIN_ADVERT_INTERVAL, PRIORITY_STOP,
    ReceivedAdvert, State, Tracking,
};
use crate::vrrp::packet::{Advertisement, Authentication};
use crate::vrrp::{Family, Version};

/// A link must stay down this long before the instance goes to FAULT (absorbs flaps).
pub const LINK_DOWN_HOLD: Duration = Duration::from_millis(100);
/// A link must stay up this long before a faulted instance rejoins.
pub const LINK_UP_HOLD: Duration = Duration::from_millis(500);
/// How long the trackers' first state waits for tracked files to be read (on blocking
/// threads) before it is delivered with the unread ones counted as failing. The instance task
/// itself never waits: it runs as if untracked meanwhile.
pub const FIRST_FILE_READ_LIMIT: Duration = Duration::from_secs(1);

/// What the driver tells a unit task.
#[derive(Debug)]
pub enum Control {
    /// New specs for the same members (same names, same order), none needing a restart.
    Update(Vec<InstanceSpec>),
    /// Leave gracefully: a MASTER sends priority 0 and removes its VIPs.
    Shutdown,
}

/// Changes fed to the task by its helper tasks.
#[derive(Debug)]
enum Input {
    Track(usize, TrackState),
    /// The member's interface changed: its [`ViewFeed`] has the newest view.
    Interface(usize),
    /// The interface under a virtual MAC changed (its feed has the newest view).
    Sources(usize),
    /// What a MASTER member's probes found about another holder of its VIPs (boxed: each
    /// unit's channel allocates room for 32 inputs at once, and a conflict is 3 times the
    /// size of the other inputs).
    HolderConflict(usize, Option<Box<HolderConflict>>),
    /// The ticker could not send a routine advert of the member and gave its timer back.
    BeatStopped,
}

/// Shared services every unit task uses.
#[derive(Debug, Clone)]
pub struct Services {
    pub addresses: Addresses,
    pub accept: AcceptFilter,
    pub vmacs: VirtualMacs,
    pub board: StatusBoard,
    pub metrics: Metrics,
    pub interfaces: InterfaceWatch,
    /// What endpoint and quorum trackers follow.
    pub followed: Followed,
    /// Sends the MASTERs' routine adverts while their units sleep, and runs their split-brain
    /// probes, off the runtime.
    pub ticker: Ticker,
}

/// One member of a unit, with the edge resolved by the driver.
#[derive(Debug)]
pub struct MemberSetup {
    pub spec: InstanceSpec,
    pub endpoint: Arc<Endpoint>,
    /// The member's interface (its virtual MAC interface, when it has one), followed by name.
    pub view: watch::Receiver<InterfaceView>,
    /// With a virtual MAC: the interface under it, whose addresses VRRP speaks from.
    pub sources: Option<watch::Receiver<InterfaceView>>,
    /// The member's virtual MAC interface, removed when the member stops.
    pub vmac: Option<VmacBinding>,
    /// Shared with the member's route: the adverts the receive path takes without waking
    /// the unit.
    pub routine: Routine,
}

/// A running unit task, as the driver holds it.
#[derive(Debug)]
pub struct UnitHandle {
    pub control: mpsc::UnboundedSender<Control>,
    pub task: JoinHandle<()>,
}

/// Queue length of received adverts per unit.
pub const ADVERT_QUEUE: usize = 64;

/// Starts the task of a unit whose members' edges are set up. `adverts` is the receiving end
/// of the channel the driver registered in the members' routes.
pub fn spawn(
    label: String,
    setups: Vec<MemberSetup>,
    sync_group: bool,
    adverts: mpsc::Receiver<QueuedAdvert>,
    services: Services,
) -> UnitHandle {
    let (control, control_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let timer = match Deadline::new() {
            Ok(timer) => timer,
            Err(error) => {
                tracing::error!(unit = %label, %error, "cannot create the instance's timer; instance not started");
                return;
            }
        };
        let (mut unit, inputs) = Unit::new(label, setups, sync_group, services);
        unit.run(timer, control_rx, adverts, inputs).await;
    });
    UnitHandle { control, task }
}

/// What woke a unit task.
enum Wake {
    Timer,
    Control(Option<Control>),
    Advert(QueuedAdvert),
    Input(Input),
}

/// What replaying the routine adverts did.
#[derive(Debug, Default, Clone, Copy)]
struct Replayed {
    /// How many members' adverts were replayed.
    adverts: usize,
    /// Whether something a status shows changed.
    changed: bool,
}

struct Unit {
    label: String,
    machine: Machine,
    members: Vec<Member>,
    services: Services,
    inputs: mpsc::UnboundedSender<Input>,
}

impl Unit {
    fn new(
        label: String,
        setups: Vec<MemberSetup>,
        sync_group: bool,
        services: Services,
    ) -> (Self, mpsc::UnboundedReceiver<Input>) {
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let mut instances = Vec::with_capacity(setups.len());
        let mut members = Vec::with_capacity(setups.len());
        for (index, mut setup) in setups.into_iter().enumerate() {
            let view = setup.view.borrow_and_update().clone();
            let source_view = setup
                .sources
                .as_mut()
                .map(|sources| sources.borrow_and_update().clone());
            let sources = Sources::of(
                &source_view.as_ref().unwrap_or(&view).addresses,
                setup.endpoint.family,
            );
            let sources_feed = setup.sources.map(|sources| {
                let inputs = inputs.clone();
                ViewFeed::start(sources, move || inputs.send(Input::Sources(index)).is_ok())
            });
            let unicast = !setup.spec.unicast_peers.is_empty();
            // Without a source the machine gets the unspecified address; the member starts in
            // FAULT (no source address) and gets its real one as soon as the interface has it.
            let primary = sources
                .for_instance(unicast)
                .unwrap_or_else(|| unspecified(setup.endpoint.family));
            instances.push(Instance::new(setup.spec.machine_config(primary)));
            // `setup.view` moves into the feed below.
            let view_feed = {
                let inputs = inputs.clone();
                ViewFeed::start(setup.view, move || {
                    inputs.send(Input::Interface(index)).is_ok()
                })
            };
            let sent = services.metrics.adverts_sent_counter(&setup.spec.name);
            let mut member = Member {
                debounce: LinkDebounce::new(LinkState::Down, LINK_DOWN_HOLD, LINK_UP_HOLD),
                vips: Vips::new(setup.spec.addresses.clone()),
                spec: setup.spec,
                endpoint: setup.endpoint,
                view,
                source_view,
                sources_feed,
                vmac: setup.vmac,
                sources,
                trackers: None,
                view_feed,
                garp: None,
                edge: EdgeFaults::default(),
                add_retry: AddRetry::default(),
                restored: None,
                handover_started: None,
                last_heard: None,
                failover: None,
                send_failures: Streak::default(),
                accept_error: None,
                adverts: EncodedAdverts::default(),
                sent,
                transitions: 0,
                last_transition: None,
                published: None,
                probe: ConflictProbe::default(),
                routine: setup.routine,
                routine_candidate: None,
                beat: services.ticker.beat(),
                beat_interval: None,
            };
            member.debounce = LinkDebounce::new(member.link_state(), LINK_DOWN_HOLD, LINK_UP_HOLD);
            member.vips.observe(&member.view.addresses);
            members.push(member);
        }
        let machine = Machine::new(instances, sync_group);
        let unit = Self {
            label,
            machine,
            members,
            services,
            inputs,
        };
        (unit, inputs_rx)
    }

    async fn run(
        &mut self,
        mut timer: Deadline,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut adverts: mpsc::Receiver<QueuedAdvert>,
        mut inputs: mpsc::UnboundedReceiver<Input>,
    ) {
        Box::pin(self.start()).await;
        // After Shutdown the task runs on while a MASTER hands over (make-before-break): it
        // keeps its VIPs, hears adverts and serves its timer until the new MASTER speaks.
        let mut leaving = false;
        // False after an advert heard or sent that changed nothing a status shows: the common
        // case, whose path then builds no snapshot.
        let mut republish = true;
        loop {
            if leaving && !self.machine.is_handing_over() {
                break;
            }
            republish |= self.replay_routines().await.changed;
            // A deadline that has passed is served before commands and inputs, but after the
            // adverts that already reached this node (see `hear_pending`).
            let deadline = self.next_deadline();
            if deadline.is_some_and(|at| at <= Instant::now()) {
                republish |= self.serve_deadline(&mut adverts).await;
                continue;
            }
            if republish {
                self.publish();
            }
            self.expect_routines(&timer);
            let deadline = if self.hand_over_beat() {
                self.edge_deadline()
            } else {
                deadline
            };
            if let Err(error) = timer.set(deadline) {
                tracing::error!(unit = %self.label, %error, "cannot arm the instance's timer");
            }
            let woken = tokio::select! {
                () = timer.wait() => Wake::Timer,
                command = control.recv(), if !leaving => Wake::Control(command),
                Some(queued) = adverts.recv() => Wake::Advert(queued),
                Some(input) = inputs.recv() => Wake::Input(input),
            };
            // What the ticker sent and the receive path took while the unit slept happened
            // before what woke it.
            self.take_back_beat().await;
            republish = self.replay_routines().await.changed;
            republish |= match woken {
                // Served at the top of the loop, once due (a routine advert may have moved it).
                Wake::Timer => false,
                Wake::Control(Some(Control::Update(specs))) => {
                    for member in &mut self.members {
                        member.routine_candidate = None;
                    }
                    Box::pin(self.update(specs)).await;
                    true
                }
                Wake::Control(Some(Control::Shutdown) | None) => {
                    leaving = true;
                    Box::pin(self.leave()).await;
                    true
                }
                Wake::Advert(queued) => self.on_advert(queued).await,
                Wake::Input(input) => {
                    Box::pin(self.on_input(input)).await;
                    true
                }
            };
        }
        Box::pin(self.stop()).await;
    }

    /// Serves the deadlines that have passed, once the adverts already waiting were heard
    /// (they may have moved them). One round of hearing only: a stream of adverts that do not
    /// reset the timer (a lower priority) cannot hold a deadline back. True when something a
    /// status shows may have changed.
    async fn serve_deadline(&mut self, adverts: &mut mpsc::Receiver<QueuedAdvert>) -> bool {
        if self.hear_pending(adverts).await {
            if self.next_deadline().is_some_and(|at| at <= Instant::now()) {
                self.on_timeout().await;
            }
            return true;
        }
        self.on_timeout().await
    }

    /// Before a BACKUP's deadline is served: feeds it every advert that already reached this
    /// node, and says whether there was one.
    ///
    /// A node that stalls (CPU starvation, a paused VM) wakes with its Master_Down timer
    /// expired and the MASTER's adverts, sent on time, waiting in the socket. Serving the timer
    /// first would take over from a live MASTER; hearing them first, as keepalived's read
    /// before timeout does, keeps the election where it is. The receive thread moves datagrams
    /// from the socket into the queue, so the unit catches up with the socket first. A MASTER that is
    /// really gone has sent nothing: its failover loses only that round trip.
    async fn hear_pending(&mut self, adverts: &mut mpsc::Receiver<QueuedAdvert>) -> bool {
        let mut endpoints: Vec<Arc<Endpoint>> = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            if self.machine.member(index).map(Instance::state) == Some(State::Backup)
                && !endpoints
                    .iter()
                    .any(|seen| Arc::ptr_eq(seen, &member.endpoint))
            {
                endpoints.push(Arc::clone(&member.endpoint));
            }
        }
        if endpoints.is_empty() {
            return false;
        }
        for endpoint in &endpoints {
            endpoint.catch_up();
        }
        let replayed = self.replay_routines().await;
        let mut heard = replayed.adverts;
        while let Ok(queued) = adverts.try_recv() {
            self.on_advert(queued).await;
            heard += 1;
        }
        if heard > 0 {
            tracing::info!(unit = %self.label, adverts = heard, "woke past a deadline with adverts waiting: heard them first");
        }
        heard > 0
    }

    /// Feeds an advert from the queue to the machine; true when it changed something a
    /// status shows.
    async fn on_advert(&mut self, queued: QueuedAdvert) -> bool {
        let QueuedAdvert {
            member: index,
            advert,
            arrived,
            read,
        } = queued;
        let late = self.machine.member(index).is_some_and(|instance| {
            instance.state() == State::Backup
                && instance.next_deadline().is_some_and(|due| read >= due)
        });
        let Some(member) = self.members.get_mut(index) else {
            return false;
        };
        member.routine.taken();
        if late {
            member.routine.count_late();
        }
        let changed = self.hear(index, advert, arrived).await;
        // Accepted as the MASTER's (the Master_Down timer re-armed from its arrival): the same
        // advert again changes nothing else while nothing else changes (see
        // `expect_routines`). Not with a preempt delay, whose end turns the same advert from
        // accepted to refused, and not in a sync group, whose members decide together.
        let single = matches!(self.machine, Machine::Single(_));
        let candidate = self.machine.member(index).and_then(|instance| {
            let accepted = instance.state() == State::Backup
                && advert.priority != PRIORITY_STOP
                && instance.master_address() == Some(advert.source)
                && instance.next_deadline() == Some(arrived + instance.master_down_interval())
                && (instance.config().preempt_delay.is_zero()
                    || advert.priority >= instance.effective_priority());
            (single && accepted).then_some((advert, instance.effective_priority()))
        });
        if let Some(member) = self.members.get_mut(index) {
            member.routine_candidate = candidate;
        }
        changed
    }

    /// Feeds an advert heard at `at` to the machine; true when it changed something a status
    /// shows.
    async fn hear(&mut self, index: usize, advert: ReceivedAdvert, at: Instant) -> bool {
        let in_backup = self.state(index) == Some(State::Backup);
        let before = self.observed(index);
        let actions = self.machine.apply(index, at, Event::Advert(advert));
        if in_backup {
            // Only a MASTER advertises: for the failover trace, the old MASTER's last word and
            // the Master_Down_Timer it left running.
            let timer_due = self.machine.member(index).and_then(Instance::next_deadline);
            if let Some(member) = self.members.get_mut(index) {
                member.last_heard = Some(LastHeard { at, timer_due });
            }
        }
        let changed = !actions.is_empty() || self.observed(index) != before;
        self.perform(actions).await;
        changed
    }

    /// Feeds the machine the latest routine advert of each member that the receive path took
    /// since the last call, at the time it was heard.
    async fn replay_routines(&mut self) -> Replayed {
        let mut replayed = Replayed::default();
        for index in 0..self.members.len() {
            if let Some((advert, at)) = self.members[index].routine.replay() {
                replayed.adverts += 1;
                replayed.changed |= self.hear(index, advert, at).await;
            }
        }
        replayed
    }

    /// Tells the receive path, for each member, which advert it may take without waking the
    /// unit: the routine candidate while the member is still the BACKUP of the same MASTER
    /// at the same effective priority; nothing otherwise. Each one may postpone `timer` while
    /// the machine's deadline is the only one the unit waits for.
    fn expect_routines(&self, timer: &Deadline) {
        let alone = self.edge_deadline().is_none();
        for (index, member) in self.members.iter().enumerate() {
            let instance = self.machine.member(index);
            let expected = member
                .routine_candidate
                .filter(|(advert, priority)| {
                    instance.is_some_and(|instance| {
                        instance.state() == State::Backup
                            && instance.master_address() == Some(advert.source)
                            && instance.effective_priority() == *priority
                    })
                })
                .map(|(advert, _)| advert);
            let postpone = instance
                .filter(|_| alone && expected.is_some())
                .map(|instance| (timer.postpone(), instance.master_down_interval()));
            if member.routine.expect(
                expected,
                instance.and_then(Instance::next_deadline),
                postpone,
            ) {
                member.endpoint.routes.wake_reader();
            }
        }
    }

    /// Shutdown (RFC 5798 §6.4.3): every member leaves the election; a MASTER announces
    /// priority 0 and, its interface up, keeps its VIPs until the new MASTER's first advert.
    async fn leave(&mut self) {
        let now = Instant::now();
        for index in 0..self.members.len() {
            let actions = self.machine.apply(index, now, Event::Shutdown);
            self.perform(actions).await;
            if let Some(until) = self
                .machine
                .member(index)
                .and_then(Instance::handover_until)
            {
                let member = &mut self.members[index];
                member.handover_started = Some(now);
                tracing::info!(instance = %member.spec.name, within = ?until.saturating_duration_since(now), "handing over: priority 0 sent, the VIPs stay until the new MASTER's first advert");
            }
        }
    }

    async fn start(&mut self) {
        let now = Instant::now();
        for index in 0..self.members.len() {
            let member = &self.members[index];
            let metrics = &self.services.metrics;
            metrics.state(
                &member.spec.name,
                member.spec.vrid,
                &member.endpoint.interface,
                State::Initialize,
            );
            metrics.advert_interval(&member.spec.name, member.spec.advert_interval);
            if let Some(instance) = self.machine.member(index) {
                metrics.effective_priority(&member.spec.name, instance.effective_priority());
            }
            metrics.vip_conflicts(&member.spec.name, member.vips.conflicts().len());
            self.log_conflicts(index);
            self.enforce_accept_mode(index).await;
            // What the edge says is known before the instance joins: a conflict or a missing
            // source keeps it out from the start.
            self.tell_edge(index, now).await;
        }
        for index in 0..self.members.len() {
            let actions = self.machine.apply(index, now, Event::Startup);
            self.perform(actions).await;
            self.start_trackers(index);
            if self.members[index].debounce.state() == LinkState::Down {
                let actions = self.machine.apply(index, now, Event::InterfaceDown);
                self.perform(actions).await;
            }
        }
    }

    fn start_trackers(&mut self, index: usize) {
        let member = &mut self.members[index];
        member.trackers = None;
        if member.spec.track.is_empty() {
            return;
        }
        let (set, receiver) = TrackerSet::spawn(
            &member.spec.track,
            self.services.metrics.clone(),
            &self.services.followed,
        );
        let files_read = set.files_read();
        let forward = forward_track(index, receiver, self.inputs.clone(), files_read);
        member.trackers = Some((set, forward));
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.edge_deadline()
            .into_iter()
            .chain(self.machine.next_deadline())
            .min()
    }

    /// The earliest deadline of the members' edges (announcements, link debounce, VIP add
    /// retries), the machine's left out.
    fn edge_deadline(&self) -> Option<Instant> {
        self.members
            .iter()
            .flat_map(|member| {
                [
                    member.garp.as_ref().and_then(GarpSchedule::next_deadline),
                    member.debounce.next_deadline(),
                    member.add_retry.at,
                ]
            })
            .flatten()
            .min()
    }

    /// Before the unit sleeps: a lone MASTER whose next advert is the one it last sent (same
    /// priority, interval and source, sent without error, no failover being timed) hands its
    /// Adver_Timer to the ticker, which sends that advert on time while the unit sleeps. True
    /// when handed over: the machine's deadline is then not the unit's to wait for.
    fn hand_over_beat(&mut self) -> bool {
        let Machine::Single(instance) = &self.machine else {
            return false;
        };
        let Some(member) = self.members.first_mut() else {
            return false;
        };
        let interval = instance.config().advert_interval.max(MIN_ADVERT_INTERVAL);
        let routine = instance.state() == State::Master
            && !instance.is_handing_over()
            && member.failover.is_none()
            && member.send_failures.len() == 0;
        let (Some(due), Some(source), Some((key, payloads))) = (
            instance.next_deadline(),
            member.source(),
            member.adverts.current(),
        ) else {
            return false;
        };
        let same_advert = key.priority == instance.effective_priority()
            && key.source == source
            && key.max_advert_interval_cs == duration_to_cs(interval);
        if !routine || !same_advert {
            return false;
        }
        let inputs = self.inputs.clone();
        let handed = member.beat.hand_over(Handover {
            socket: Arc::clone(&member.endpoint.socket),
            source,
            payloads: Arc::clone(payloads),
            due,
            interval,
            sent: member.sent.clone(),
            wake: Box::new(move || {
                let _ = inputs.send(Input::BeatStopped);
            }),
        });
        member.beat_interval = handed.then_some(interval);
        handed
    }

    /// After the unit woke: takes the Adver_Timer back from the ticker and replays the adverts
    /// it sent into the machine, which re-arms exactly as if it had sent them (see
    /// [`super::ticker`]). A send that failed is left due: the unit sends it itself.
    async fn take_back_beat(&mut self) {
        let Some(member) = self.members.first_mut() else {
            return;
        };
        let Some(interval) = member.beat_interval.take() else {
            return;
        };
        let taken = member.beat.take_back();
        let Some(next_due) = taken.next_due else {
            return;
        };
        // Served at this time, the Adver_Timer re-arms for `next_due`, as the ticker did.
        let Some(at) = next_due.checked_sub(interval) else {
            return;
        };
        let mut actions = self.machine.on_timeout(at);
        let sent = actions.iter().position(|(_, action)| {
            matches!(action, Action::SendAdvert { max_advert_interval, .. } if *max_advert_interval == interval)
        });
        match sent {
            Some(position) => {
                actions.remove(position);
            }
            None => {
                tracing::error!(unit = %self.label, ?actions, "the ticker's adverts do not replay as one advert");
            }
        }
        self.perform(actions).await;
    }

    /// Serves every deadline that has passed. True when it did more than a MASTER's routine
    /// advert or an announcement, i.e. anything a status shows may have changed.
    async fn on_timeout(&mut self) -> bool {
        let now = Instant::now();
        let actions = self.machine.on_timeout(now);
        // A state, priority or handover change always comes with an action of its own.
        let mut changed = !actions
            .iter()
            .all(|(_, action)| matches!(action, Action::SendAdvert { .. }));
        self.perform(actions).await;
        for index in 0..self.members.len() {
            if let Some(state) = self.members[index].debounce.on_timeout(now) {
                changed = true;
                self.on_link(index, now, state).await;
            }
            if self.members[index].add_retry.at.is_some_and(|at| at <= now) {
                changed = true;
                self.members[index].add_retry.at = None;
                self.members[index].add_retry.at_wall = None;
                tracing::info!(instance = %self.members[index].spec.name, "retrying: the instance rejoins and adds its VIPs when it becomes MASTER again");
                self.tell_edge(index, now).await;
            }
            self.announce_due(index, now).await;
        }
        changed
    }

    async fn on_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Track(index, state) => {
                let tracking = Tracking {
                    weight_delta: state.weight_delta,
                    fault: state.fault,
                };
                let actions = self.machine.apply(index, now, Event::Tracking(tracking));
                self.perform(actions).await;
            }
            Input::Interface(index) => {
                let view = self
                    .members
                    .get_mut(index)
                    .and_then(|member| member.view_feed.take());
                if let Some(view) = view {
                    self.on_interface(index, now, view).await;
                }
            }
            Input::BeatStopped => {}
            Input::HolderConflict(index, conflict) => {
                if let Some(member) = self.members.get_mut(index) {
                    member.probe.found(conflict.map(|conflict| *conflict));
                }
            }
            Input::Sources(index) => {
                let member = self.members.get_mut(index);
                let view = member.and_then(|member| member.sources_feed.as_mut()?.take());
                if let Some(view) = view {
                    self.members[index].source_view = Some(view);
                    self.follow_sources(index, now).await;
                    self.tell_edge(index, now).await;
                }
            }
        }
    }

    /// The member's interface changed: its link state, its addresses (sources, conflicts, our
    /// own VIPs), or its index.
    async fn on_interface(&mut self, index: usize, now: Instant, view: InterfaceView) {
        let Some(member) = self.members.get_mut(index) else {
            return;
        };
        member.view = view;
        let link = member.link_state();
        if let Some(state) = member.debounce.observe(now, link) {
            self.on_link(index, now, state).await;
        }
        self.follow_sources(index, now).await;
        let member = &mut self.members[index];
        if member.view.ifindex != Some(member.endpoint.ifindex) {
            // Gone or re-created: nothing on the old index to compare; the driver re-binds.
            return;
        }
        let observed = member.vips.observe(&member.view.addresses);
        if observed.conflicts_changed {
            self.services
                .metrics
                .vip_conflicts(&member.spec.name, member.vips.conflicts().len());
            self.log_conflicts(index);
        }
        if !observed.missing.is_empty() {
            self.restore(index, &observed.missing).await;
        }
        self.tell_edge(index, now).await;
    }

    /// Sources follow the interface's addresses: a new one goes to the machine (tie-break),
    /// none is an edge fault.
    async fn follow_sources(&mut self, index: usize, now: Instant) {
        let member = &mut self.members[index];
        let addresses = &member
            .source_view
            .as_ref()
            .unwrap_or(&member.view)
            .addresses;
        let sources = Sources::of(addresses, member.endpoint.family);
        if sources == member.sources {
            return;
        }
        let before = member.source();
        member.sources = sources;
        let after = member.source();
        if before == after {
            return;
        }
        tracing::info!(instance = %member.spec.name, interface = %member.endpoint.interface, from = ?before, to = ?after, "the address VRRP speaks from changed");
        if let Some(primary) = after {
            let config = member.spec.machine_config(primary);
            let actions = self.machine.apply(index, now, Event::ConfigChanged(config));
            self.perform(actions).await;
        }
    }

    /// Held VIPs that disappeared while MASTER: re-added, counted and reported. The interface
    /// view can lag behind our own adds, so the kernel is asked first.
    async fn restore(&mut self, index: usize, missing: &[IpNet]) {
        if self.state(index) != Some(State::Master) {
            return;
        }
        let member = &mut self.members[index];
        let present = match self.services.addresses.list(member.endpoint.ifindex).await {
            Ok(present) => present,
            Err(error) => {
                tracing::warn!(instance = %member.spec.name, %error, "cannot list addresses to check VIPs");
                return;
            }
        };
        let gone: Vec<IpNet> = missing
            .iter()
            .filter(|vip| {
                !present.iter().any(|entry| {
                    entry.is_vip()
                        && entry.address.addr() == vip.addr()
                        && entry.address.prefix_len() == vip.prefix_len()
                })
            })
            .copied()
            .collect();
        if gone.is_empty() {
            return;
        }
        for vip in &gone {
            member.vips.record_released(*vip);
        }
        tracing::warn!(
            instance = %member.spec.name,
            interface = %member.endpoint.interface,
            vips = ?gone,
            "VIPs were removed by something else while this instance is MASTER (another VRRP daemon, or an administrator?); re-adding them"
        );
        let count = member.restored.map_or(0, |(count, _)| count) + gone.len() as u64;
        member.restored = Some((count, Timestamp::now()));
        self.services
            .metrics
            .vips_restored(&member.spec.name, gone.len());
        self.add_vips(index).await;
        if self.state(index) == Some(State::Master) {
            let now = Instant::now();
            let member = &mut self.members[index];
            member.garp = Some(GarpSchedule::new(now, &member.spec.garp));
            self.announce_due(index, now).await;
        }
    }

    /// Tells the machine what the edge says now, if it changed.
    async fn tell_edge(&mut self, index: usize, now: Instant) {
        let member = &mut self.members[index];
        let edge = member.edge_faults();
        if edge == member.edge {
            return;
        }
        member.edge = edge;
        let actions = self.machine.apply(index, now, Event::EdgeFaults(edge));
        self.perform(actions).await;
    }

    /// `acceptMode: false` (RFC 5798 §6.4.3): traffic to the VIPs is dropped on this node,
    /// whatever its state (see [`AcceptFilter`]); an address owner (priority 255) accepts.
    async fn enforce_accept_mode(&mut self, index: usize) {
        let member = &mut self.members[index];
        let spec = &member.spec;
        let vips = if spec.accept_mode || spec.priority == u8::MAX {
            Vec::new()
        } else {
            spec.vip_addresses()
        };
        member.accept_error = match self.services.accept.set(&spec.name, &vips).await {
            Ok(()) => None,
            Err(error) => {
                tracing::error!(instance = %spec.name, %error, "acceptMode: false cannot be enforced: traffic to the VIPs is accepted");
                Some(format!("acceptMode: false is not enforced: {error}"))
            }
        };
    }

    fn log_conflicts(&self, index: usize) {
        let member = &self.members[index];
        if member.vips.conflicts().is_empty() {
            return;
        }
        tracing::error!(
            instance = %member.spec.name,
            interface = %member.endpoint.interface,
            conflicts = %describe_conflicts(member.vips.conflicts()),
            "a VIP of this instance is already on the interface and was not installed by kube-vrrp: it is left alone, and the instance stays in FAULT while it is there"
        );
    }

    async fn on_link(&mut self, index: usize, now: Instant, state: LinkState) {
        let member = &self.members[index];
        tracing::info!(instance = %member.spec.name, interface = %member.endpoint.interface, state = state.as_str(), "interface changed");
        let event = match state {
            LinkState::Up => Event::InterfaceUp,
            LinkState::Down => Event::InterfaceDown,
        };
        let actions = self.machine.apply(index, now, event);
        self.perform(actions).await;
    }

    async fn update(&mut self, specs: Vec<InstanceSpec>) {
        for (index, spec) in specs.into_iter().enumerate() {
            let Some(member) = self.members.get(index) else {
                tracing::error!(unit = %self.label, instance = %spec.name, "update for a member the unit does not have");
                continue;
            };
            let diff = InstanceDiff::between(&member.spec, &spec);
            if diff.is_empty() {
                continue;
            }
            tracing::info!(instance = %spec.name, protocol = diff.protocol, addresses = diff.addresses, track = diff.track, edge = diff.edge, "applying new configuration");
            let now = Instant::now();
            self.members[index].spec = spec;
            self.members[index].adverts.clear();
            let member = &self.members[index];
            if diff.protocol || diff.edge {
                self.services
                    .metrics
                    .advert_interval(&member.spec.name, member.spec.advert_interval);
                let config = member.spec.machine_config(member.primary());
                let actions = self.machine.apply(index, now, Event::ConfigChanged(config));
                self.perform(actions).await;
            }
            if diff.addresses {
                self.swap_addresses(index).await;
                // A MASTER probes for its new VIPs, not the old ones.
                if let Some(state) = self.state(index) {
                    self.follow_probe(index, State::Initialize);
                    self.follow_probe(index, state);
                }
            }
            if diff.protocol || diff.addresses {
                self.enforce_accept_mode(index).await;
            }
            if diff.track {
                self.start_trackers(index);
            }
            self.tell_edge(index, now).await;
        }
    }

    /// A member holding VIPs installs the new set and removes what left it; a MASTER
    /// announces again. Conflicts are re-evaluated against the new set.
    async fn swap_addresses(&mut self, index: usize) {
        let member = &mut self.members[index];
        let holding = !member.vips.held().is_empty();
        let gone = member.vips.set_wanted(member.spec.addresses.clone());
        member.vips.observe(&member.view.addresses);
        self.services
            .metrics
            .vip_conflicts(&member.spec.name, member.vips.conflicts().len());
        self.log_conflicts(index);
        if !holding {
            return;
        }
        self.remove_vips(index, &gone).await;
        self.add_vips(index).await;
        if self.state(index) == Some(State::Master) {
            let now = Instant::now();
            self.members[index].garp = Some(GarpSchedule::new(now, &self.members[index].spec.garp));
            self.announce_due(index, now).await;
        }
    }

    fn state(&self, index: usize) -> Option<State> {
        self.machine.member(index).map(Instance::state)
    }

    /// After [`Unit::leave`] and any handover: nothing of the unit stays behind.
    async fn stop(&mut self) {
        for index in 0..self.members.len() {
            // Whatever the machine said, nothing of ours stays on the interface (and nothing
            // that is not ours is touched).
            let held = self.members[index].vips.held().to_vec();
            self.remove_vips(index, &held).await;
            let member = &mut self.members[index];
            member.trackers = None;
            if let Err(error) = self.services.accept.set(&member.spec.name, &[]).await {
                tracing::error!(instance = %member.spec.name, %error, "cannot remove the acceptMode rules");
            }
            if let Some(vmac) = member.vmac.take() {
                self.services.vmacs.detach(&vmac).await;
            }
            self.services.board.remove(&member.spec.name);
            self.services.metrics.forget(&member.spec.name);
        }
    }

    async fn perform(&mut self, actions: Vec<(usize, Action)>) {
        for (index, action) in actions {
            if index < self.members.len() {
                self.perform_one(index, action).await;
            }
        }
    }

    async fn perform_one(&mut self, index: usize, action: Action) {
        let now = Instant::now();
        match action {
            Action::StateChanged { from, to, reason } => {
                let member = &mut self.members[index];
                member.transitions += 1;
                member.last_transition = Some(Timestamp::now());
                if from == State::Master {
                    member.garp = None;
                }
                // A failover is timed from the old MASTER's last advert heard in BACKUP to this
                // node's first advert; a MASTER never heard (start-up) makes no failover.
                member.failover = if (from, to) == (State::Backup, State::Master) {
                    member
                        .last_heard
                        .take()
                        .map(|heard| FailoverTrace::new(heard, now, reason.is_master_down()))
                } else {
                    None
                };
                member.last_heard = None;
                tracing::info!(
                    instance = %member.spec.name,
                    vrid = member.spec.vrid,
                    interface = %member.endpoint.interface,
                    from = from.as_str(),
                    to = to.as_str(),
                    reason = reason.as_str(),
                    "VRRP state changed"
                );
                self.services.metrics.transition(
                    &member.spec.name,
                    member.spec.vrid,
                    &member.endpoint.interface,
                    to,
                );
                self.follow_probe(index, to);
            }
            Action::SendAdvert {
                priority,
                max_advert_interval,
            } => {
                // Only a MASTER advertises a priority; an advert queued behind a transition
                // that left MASTER (a failed VIP add) is stale.
                if priority == PRIORITY_STOP || self.state(index) == Some(State::Master) {
                    let handed = self.send_advert(index, priority, max_advert_interval).await;
                    if let Some(sent) = handed
                        && let Some(trace) = self.members[index].failover.take()
                    {
                        self.record_failover(index, &trace, sent);
                    }
                }
            }
            Action::AddVips => {
                let fault = Box::pin(self.add_vips(index)).await;
                if let Some(trace) = self.members[index].failover.as_mut() {
                    trace.vips_added(Instant::now());
                }
                if fault {
                    // The failure is an edge fault: the machine leaves MASTER (priority 0
                    // advert) at once, before any announcement.
                    Box::pin(self.tell_edge(index, now)).await;
                }
            }
            Action::RemoveVips => {
                let held = self.members[index].vips.held().to_vec();
                Box::pin(self.remove_vips(index, &held)).await;
            }
            Action::Announce => {
                if self.state(index) == Some(State::Master) {
                    let member = &mut self.members[index];
                    member.garp = Some(GarpSchedule::new(now, &member.spec.garp));
                    Box::pin(self.announce_due(index, now)).await;
                }
            }
            Action::HandoverEnded(end) => {
                let member = &mut self.members[index];
                let took = member
                    .handover_started
                    .take()
                    .map(|since| now.saturating_duration_since(since));
                let new_master = match end {
                    HandoverEnd::NewMaster(address) => Some(address),
                    _ => None,
                };
                tracing::info!(instance = %member.spec.name, end = end.as_str(), new_master = ?new_master, took = ?took, "handover over: the VIPs go");
            }
            Action::EffectivePriorityChanged { from, to } => {
                let member = &self.members[index];
                tracing::info!(instance = %member.spec.name, from, to, "effective priority changed");
                self.services
                    .metrics
                    .effective_priority(&member.spec.name, to);
            }
        }
    }

    /// Starts or stops member `index`'s probes for another holder of its VIPs, for its state
    /// `to` (see [`ConflictProbe`]).
    fn follow_probe(&mut self, index: usize, to: State) {
        let member = &mut self.members[index];
        let inputs = self.inputs.clone();
        let report = move |found: Option<HolderConflict>| {
            let _ = inputs.send(Input::HolderConflict(index, found.map(Box::new)));
        };
        let Services {
            metrics, ticker, ..
        } = &self.services;
        member
            .probe
            .follow(to, &member.spec, &member.endpoint, metrics, ticker, report);
    }

    fn record_failover(&self, index: usize, trace: &FailoverTrace, sent: Instant) {
        let member = &self.members[index];
        let Some(instance) = self.machine.member(index) else {
            return;
        };
        let master_down_interval = instance.master_down_interval();
        let stages = trace.stages(sent);
        tracing::info!(
            instance = %member.spec.name,
            took = ?stages.total,
            timer = ?stages.timer,
            timer_late = ?stages.timer_late,
            vip_add = ?stages.vip_add,
            announce = ?stages.announce,
            advert = ?stages.advert,
            "failover: from the old MASTER's last advert heard to this node's first"
        );
        self.services
            .metrics
            .failover(&member.spec.name, stages.total, master_down_interval);
    }

    /// Sends the member's advert to each destination. While a failover is being timed, returns
    /// when the advert was handed to the kernel: the clock is read just before the send, which
    /// waits only when the socket's buffer is full; read after, it would also count the peers'
    /// and the switch's readers the send wakes, which may run first on this core (a
    /// millisecond seen in the lab).
    async fn send_advert(
        &mut self,
        index: usize,
        priority: u8,
        max_advert_interval: Duration,
    ) -> Option<Instant> {
        let member = &mut self.members[index];
        let Some(source) = member.source() else {
            if let Some(run) = member.send_failures.failed() {
                tracing::warn!(instance = %member.spec.name, interface = %member.endpoint.interface, in_a_row = run, "no address to send an advert from");
            }
            return None;
        };
        let key = AdvertKey {
            priority,
            max_advert_interval_cs: duration_to_cs(max_advert_interval),
            source,
        };
        let (spec, endpoint) = (&member.spec, &member.endpoint);
        let payloads = member
            .adverts
            .get_or_encode(key, || encode_adverts(spec, endpoint.family, key));
        let handed = member.failover.is_some().then(Instant::now);
        let mut sent_any = false;
        for (destination, payload) in payloads.iter() {
            match endpoint
                .socket
                .send_from(payload, source, *destination)
                .await
            {
                Ok(()) => {
                    sent_any = true;
                    member.sent.inc();
                    if let Some(run) = member.send_failures.succeeded() {
                        tracing::info!(instance = %spec.name, %destination, after = run, "sending adverts works again");
                    }
                }
                Err(error) => {
                    if let Some(run) = member.send_failures.failed() {
                        tracing::warn!(instance = %spec.name, %destination, %error, in_a_row = run, "sending an advert failed");
                    }
                }
            }
        }
        handed.filter(|_| sent_any)
    }

    /// Installs the member's VIPs. Returns whether the edge faults changed (a VIP taken by
    /// another owner, or refused by the kernel).
    async fn add_vips(&mut self, index: usize) -> bool {
        let member = &mut self.members[index];
        let installed = member
            .vips
            .install(
                &self.services.addresses,
                member.endpoint.ifindex,
                &member.endpoint.interface,
            )
            .await;
        let name = member.spec.name.clone();
        if !installed.held.is_empty() {
            tracing::debug!(instance = %name, vips = ?installed.held, "VIPs in place");
        }
        if !installed.taken.is_empty() {
            self.services
                .metrics
                .vip_conflicts(&name, member.vips.conflicts().len());
            self.log_conflicts(index);
        }
        let member = &mut self.members[index];
        if installed.failed.is_empty() {
            if installed.taken.is_empty() {
                member.add_retry = AddRetry::default();
            }
        } else {
            member.add_retry.failures = member.add_retry.failures.saturating_add(1);
            let wait = retry_delay(member.add_retry.failures);
            member.add_retry.at = Some(Instant::now() + wait);
            member.add_retry.at_wall = Timestamp::now()
                .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                .ok();
            for (vip, error) in &installed.failed {
                self.services.metrics.vip_add_failed(&name);
                tracing::error!(instance = %name, %vip, %error, failures = member.add_retry.failures, retry_in = ?wait, "adding a VIP failed: the instance leaves MASTER (FAULT) and retries later");
            }
        }
        member.edge_faults() != member.edge
    }

    async fn remove_vips(&mut self, index: usize, vips: &[IpNet]) {
        let member = &mut self.members[index];
        let errors = member
            .vips
            .release(&self.services.addresses, member.endpoint.ifindex, vips)
            .await;
        for (vip, error) in errors {
            tracing::error!(instance = %member.spec.name, %vip, %error, "removing a VIP failed");
        }
    }

    async fn announce_due(&mut self, index: usize, now: Instant) {
        let member = &mut self.members[index];
        let Some(schedule) = member.garp.as_mut() else {
            return;
        };
        let due = schedule.take_due(now);
        if schedule.next_deadline().is_none() {
            member.garp = None;
        }
        let Some(announcer) = member.endpoint.announcer.as_ref() else {
            return;
        };
        // Only what this instance holds is announced.
        let addresses = member.vips.held_addresses();
        if addresses.is_empty() {
            return;
        }
        for _ in 0..due {
            if let Err(error) = announcer.announce(&addresses).await {
                tracing::warn!(instance = %member.spec.name, %error, "announcing VIPs failed");
            }
        }
        if due > 0
            && let Some(trace) = member.failover.as_mut()
        {
            trace.announced(Instant::now());
        }
    }

    /// What of member `index`'s status an advert can change without an action: its state,
    /// effective priority and MASTER. Everything else changes only through actions, timeouts,
    /// inputs and updates, after which the unit publishes anyway.
    fn observed(&self, index: usize) -> Option<(State, u8, Option<IpAddr>)> {
        self.machine.member(index).map(|instance| {
            (
                instance.state(),
                instance.effective_priority(),
                instance.master_address(),
            )
        })
    }

    /// Puts each member's status on the board when it changed.
    fn publish(&mut self) {
        for (index, member) in self.members.iter_mut().enumerate() {
            let Some(instance) = self.machine.member(index) else {
                continue;
            };
            let status = member.status(instance);
            if member.published.as_ref() != Some(&status) {
                self.services.board.set(status.clone());
                member.published = Some(status);
            }
        }
    }
}

/// `spec`'s advert for `key`, encoded for each destination (the multicast group of `family`,
/// or each unicast peer); one that cannot be encoded is logged and left out.
fn encode_adverts(spec: &InstanceSpec, family: Family, key: AdvertKey) -> Vec<(IpAddr, Vec<u8>)> {
    let advert = Advertisement {
        version: spec.version,
        vrid: spec.vrid,
        priority: key.priority,
        max_advert_interval_cs: key.max_advert_interval_cs,
        addresses: spec.vip_addresses(),
        auth: match spec.version {
            Version::V2 => spec.authentication,
            Version::V3 => Authentication::None,
        },
    };
    let multicast = [family.vrrp_multicast()];
    let destinations = if spec.unicast_peers.is_empty() {
        &multicast[..]
    } else {
        &spec.unicast_peers[..]
    };
    destinations
        .iter()
        .filter_map(|&destination| match advert.encode(key.source, destination) {
            Ok(payload) => Some((destination, payload)),
            Err(error) => {
                tracing::error!(instance = %spec.name, %destination, %error, "cannot encode an advert");
                None
            }
        })
        .collect()
}

fn forward_track(
    index: usize,
    mut receiver: tokio::sync::watch::Receiver<TrackState>,
    inputs: mpsc::UnboundedSender<Input>,
    files_read: impl std::future::Future<Output = ()> + Send + 'static,
) -> Helper {
    Helper(tokio::spawn(async move {
        if tokio::time::timeout(FIRST_FILE_READ_LIMIT, files_read)
            .await
            .is_err()
        {
            tracing::warn!(
                "tracked files not read within {FIRST_FILE_READ_LIMIT:?}: counted as failing until they are"
            );
        }
        loop {
            let state = *receiver.borrow_and_update();
            if inputs.send(Input::Track(index, state)).is_err() {
                return;
            }
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }))
}
