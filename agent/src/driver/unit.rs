//! The task of one unit: a lone VRRP instance, or the instances of one sync group. It owns the
//! pure machine and performs its actions (adverts, VIPs, announcements, status), selecting
//! over received adverts, the machine's deadline, the GARP schedule, link and tracker changes,
//! configuration updates and shutdown.
//!
//! Trackers and link watches feed the task through channels; nothing here waits on a tracker,
//! the API, a log sink or HTTP. The only awaits in the VRRP path are the socket send and the
//! rtnetlink address requests.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::{InstanceDiff, InstanceSpec, duration_to_cs};
use super::endpoint::Endpoint;
use super::links::LinkMonitor;
use super::machine::Machine;
use super::vips::Vips;
use crate::check::{EndpointReadiness, TrackState, TrackerSet};
use crate::net::address::Addresses;
use crate::net::announce::GarpSchedule;
use crate::net::link::{LinkDebounce, LinkState};
use crate::report::{InstanceStatus, Metrics, StatusBoard};
use crate::vrrp::Version;
use crate::vrrp::instance::{Action, Event, Instance, ReceivedAdvert, State, Tracking};
use crate::vrrp::packet::{Advertisement, Authentication};

/// A link must stay down this long before the instance goes to FAULT (absorbs flaps).
pub const LINK_DOWN_HOLD: Duration = Duration::from_millis(100);
/// A link must stay up this long before a faulted instance rejoins.
pub const LINK_UP_HOLD: Duration = Duration::from_millis(500);

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
    Link(usize, LinkState),
}

/// Shared services every unit task uses.
#[derive(Debug, Clone)]
pub struct Services {
    pub addresses: Addresses,
    pub board: StatusBoard,
    pub metrics: Metrics,
    pub links: LinkMonitor,
    /// What endpoint trackers follow.
    pub endpoints: EndpointReadiness,
}

/// One member of a unit, with the edge resolved by the driver.
#[derive(Debug)]
pub struct MemberSetup {
    pub spec: InstanceSpec,
    pub endpoint: Arc<Endpoint>,
    /// The interface's raw link state when the unit started.
    pub link_state: LinkState,
}

/// Aborts a helper task when dropped.
#[derive(Debug)]
struct Helper(JoinHandle<()>);

impl Drop for Helper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug)]
struct Member {
    spec: InstanceSpec,
    endpoint: Arc<Endpoint>,
    debounce: LinkDebounce,
    trackers: Option<(TrackerSet, Helper)>,
    _link_watch: Helper,
    garp: Option<GarpSchedule>,
    vips: Vips,
    transitions: u64,
    last_transition: Option<Timestamp>,
    published: Option<InstanceStatus>,
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
    adverts: mpsc::Receiver<(usize, ReceivedAdvert)>,
    services: Services,
) -> UnitHandle {
    let (control, control_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let (mut unit, inputs) = Unit::new(label, setups, sync_group, services);
        unit.run(control_rx, adverts, inputs).await;
    });
    UnitHandle { control, task }
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
        for (index, setup) in setups.into_iter().enumerate() {
            let primary = setup
                .endpoint
                .source_for(!setup.spec.unicast_peers.is_empty());
            instances.push(Instance::new(setup.spec.machine_config(primary)));
            let link_watch = forward_link(
                index,
                services
                    .links
                    .watch(setup.endpoint.ifindex, setup.link_state),
                inputs.clone(),
            );
            members.push(Member {
                debounce: LinkDebounce::new(setup.link_state, LINK_DOWN_HOLD, LINK_UP_HOLD),
                vips: Vips::new(setup.spec.addresses.clone()),
                spec: setup.spec,
                endpoint: setup.endpoint,
                trackers: None,
                _link_watch: link_watch,
                garp: None,
                transitions: 0,
                last_transition: None,
                published: None,
            });
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
        mut control: mpsc::UnboundedReceiver<Control>,
        mut adverts: mpsc::Receiver<(usize, ReceivedAdvert)>,
        mut inputs: mpsc::UnboundedReceiver<Input>,
    ) {
        self.start().await;
        loop {
            self.publish();
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                command = control.recv() => match command {
                    Some(Control::Update(specs)) => self.update(specs).await,
                    Some(Control::Shutdown) | None => break,
                },
                Some((index, advert)) = adverts.recv() => {
                    let actions = self.machine.apply(index, Instant::now(), Event::Advert(advert));
                    self.perform(actions).await;
                }
                Some(input) = inputs.recv() => self.on_input(input).await,
                () = sleep_until(deadline) => self.on_timeout().await,
            }
        }
        self.stop().await;
    }

    async fn start(&mut self) {
        for (index, member) in self.members.iter().enumerate() {
            let spec = &member.spec;
            let metrics = &self.services.metrics;
            metrics.state(
                &spec.name,
                spec.vrid,
                &member.endpoint.interface,
                State::Initialize,
            );
            if let Some(instance) = self.machine.member(index) {
                metrics.effective_priority(&spec.name, instance.effective_priority());
            }
        }
        let now = Instant::now();
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
            &self.services.endpoints,
        );
        let forward = forward_track(index, receiver, self.inputs.clone());
        member.trackers = Some((set, forward));
    }

    fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.iter().flat_map(|member| {
            [
                member.garp.as_ref().and_then(GarpSchedule::next_deadline),
                member.debounce.next_deadline(),
            ]
        });
        members
            .chain(std::iter::once(self.machine.next_deadline()))
            .flatten()
            .min()
    }

    async fn on_timeout(&mut self) {
        let now = Instant::now();
        let actions = self.machine.on_timeout(now);
        self.perform(actions).await;
        for index in 0..self.members.len() {
            if let Some(state) = self.members[index].debounce.on_timeout(now) {
                self.on_link(index, now, state).await;
            }
            self.announce_due(index, now).await;
        }
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
            Input::Link(index, state) => {
                let Some(member) = self.members.get_mut(index) else {
                    return;
                };
                if let Some(state) = member.debounce.observe(now, state) {
                    self.on_link(index, now, state).await;
                }
            }
        }
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
            let primary = member.endpoint.source_for(!spec.unicast_peers.is_empty());
            self.members[index].spec = spec;
            if diff.protocol {
                let config = self.members[index].spec.machine_config(primary);
                let actions =
                    self.machine
                        .apply(index, Instant::now(), Event::ConfigChanged(config));
                self.perform(actions).await;
            }
            if diff.addresses {
                self.swap_addresses(index).await;
            }
            if diff.track {
                self.start_trackers(index);
            }
        }
    }

    /// A member holding VIPs installs the new set and removes what left it; a MASTER
    /// announces again.
    async fn swap_addresses(&mut self, index: usize) {
        let member = &mut self.members[index];
        let holding = !member.vips.held().is_empty();
        let gone = member.vips.set_wanted(member.spec.addresses.clone());
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

    async fn stop(&mut self) {
        let now = Instant::now();
        for index in 0..self.members.len() {
            let actions = self.machine.apply(index, now, Event::Shutdown);
            self.perform(actions).await;
        }
        for index in 0..self.members.len() {
            // Whatever the machine said, nothing of ours stays on the interface.
            let member = &mut self.members[index];
            member
                .vips
                .release_held(
                    &self.services.addresses,
                    member.endpoint.ifindex,
                    &member.spec.name,
                )
                .await;
            member.trackers = None;
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
            }
            Action::SendAdvert {
                priority,
                max_advert_interval,
            } => self.send_advert(index, priority, max_advert_interval).await,
            Action::AddVips => self.add_vips(index).await,
            Action::RemoveVips => {
                let vips = self.members[index].spec.addresses.clone();
                self.remove_vips(index, &vips).await;
            }
            Action::Announce => {
                let member = &mut self.members[index];
                member.garp = Some(GarpSchedule::new(now, &member.spec.garp));
                self.announce_due(index, now).await;
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

    async fn send_advert(&self, index: usize, priority: u8, max_advert_interval: Duration) {
        let member = &self.members[index];
        let spec = &member.spec;
        let advert = Advertisement {
            version: spec.version,
            vrid: spec.vrid,
            priority,
            max_advert_interval_cs: duration_to_cs(max_advert_interval),
            addresses: spec.vip_addresses(),
            auth: match spec.version {
                Version::V2 => spec.authentication,
                Version::V3 => Authentication::None,
            },
        };
        let socket = &member.endpoint.socket;
        let source = member.endpoint.source_for(!spec.unicast_peers.is_empty());
        let destinations: Vec<IpAddr> = if spec.unicast_peers.is_empty() {
            vec![member.endpoint.family.vrrp_multicast()]
        } else {
            spec.unicast_peers.clone()
        };
        for destination in destinations {
            let payload = match advert.encode(source, destination) {
                Ok(payload) => payload,
                Err(error) => {
                    tracing::error!(instance = %spec.name, %destination, %error, "cannot encode an advert");
                    continue;
                }
            };
            match socket.send_from(&payload, source, destination).await {
                Ok(()) => self.services.metrics.advert_sent(&spec.name),
                Err(error) => {
                    tracing::warn!(instance = %spec.name, %destination, %error, "sending an advert failed");
                }
            }
        }
    }

    async fn add_vips(&mut self, index: usize) {
        let member = &mut self.members[index];
        member
            .vips
            .install(
                &self.services.addresses,
                member.endpoint.ifindex,
                &member.endpoint.interface,
                &member.spec.name,
            )
            .await;
    }

    async fn remove_vips(&mut self, index: usize, vips: &[IpNet]) {
        let member = &mut self.members[index];
        member
            .vips
            .release(
                &self.services.addresses,
                member.endpoint.ifindex,
                vips,
                &member.spec.name,
            )
            .await;
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
        let addresses = member.spec.vip_addresses();
        for _ in 0..due {
            if let Err(error) = announcer.announce(&addresses).await {
                tracing::warn!(instance = %member.spec.name, %error, "announcing VIPs failed");
            }
        }
    }

    /// Puts each member's status on the board when it changed.
    fn publish(&mut self) {
        for (index, member) in self.members.iter_mut().enumerate() {
            let Some(instance) = self.machine.member(index) else {
                continue;
            };
            let status = InstanceStatus {
                name: member.spec.name.clone(),
                vrid: member.spec.vrid,
                interface: member.endpoint.interface.clone(),
                version: member.spec.version.number(),
                state: instance.state(),
                priority: member.spec.priority,
                effective_priority: instance.effective_priority(),
                master_address: instance.master_address(),
                vips: member.vips.held().to_vec(),
                transitions: member.transitions,
                last_transition: member.last_transition,
            };
            if member.published.as_ref() != Some(&status) {
                self.services.board.set(status.clone());
                member.published = Some(status);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn forward_link(
    index: usize,
    mut receiver: tokio::sync::watch::Receiver<LinkState>,
    inputs: mpsc::UnboundedSender<Input>,
) -> Helper {
    Helper(tokio::spawn(async move {
        while receiver.changed().await.is_ok() {
            let state = *receiver.borrow_and_update();
            if inputs.send(Input::Link(index, state)).is_err() {
                return;
            }
        }
    }))
}

fn forward_track(
    index: usize,
    mut receiver: tokio::sync::watch::Receiver<TrackState>,
    inputs: mpsc::UnboundedSender<Input>,
) -> Helper {
    Helper(tokio::spawn(async move {
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
