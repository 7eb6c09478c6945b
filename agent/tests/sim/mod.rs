//! A discrete-event simulation of pure VRRP instances: a virtual clock, an in-memory wire with
//! a link delay and partitions, and a log of every input and output for exact assertions and
//! JSONL goldens.

mod jsonl;

pub use jsonl::replay;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube_vrrp_agent::vrrp::Version;
use kube_vrrp_agent::vrrp::instance::{
    Action, Config, Event, Instance, ReceivedAdvert, State, TransitionReason,
};
use kube_vrrp_agent::vrrp::sync_group::SyncGroup;

/// A v3 instance config with a 1 s interval, preempting, no delay.
pub fn config(vrid: u8, priority: u8, primary_address: &str) -> Config {
    Config {
        vrid,
        priority,
        advert_interval: Duration::from_secs(1),
        version: Version::V3,
        preempt: true,
        preempt_delay: Duration::ZERO,
        accept_mode: false,
        primary_address: primary_address.parse().expect("test address"),
    }
}

/// Master_Down_Interval for v3 with the same interval on both sides.
pub fn master_down_interval(priority: u8, interval: Duration) -> Duration {
    interval * 3 + skew_time(priority, interval)
}

/// v3 Skew_Time.
pub fn skew_time(priority: u8, interval: Duration) -> Duration {
    interval * (256 - u32::from(priority)) / 256
}

pub fn micros(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// One transition seen in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: Duration,
    pub node: &'static str,
    pub vrid: u8,
    pub from: State,
    pub to: State,
    pub reason: TransitionReason,
}

/// What a node runs: lone instances, or one sync group.
enum Unit {
    Lone(Vec<Instance>),
    Group(SyncGroup),
}

struct Node {
    name: &'static str,
    address: IpAddr,
    alive: bool,
    partition: usize,
    unit: Unit,
}

/// An advert on the wire.
#[derive(Debug, Clone, Copy)]
struct Packet {
    from: usize,
    to: usize,
    vrid: u8,
    advert: ReceivedAdvert,
}

/// One line of the log.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An instance was created (recorded so that a trace can be replayed).
    Config {
        config: Config,
        sync_group: bool,
    },
    Input(Event),
    Output(Action),
}

#[derive(Debug, Clone)]
pub struct Record {
    pub at: Duration,
    pub node: &'static str,
    pub vrid: u8,
    pub entry: Entry,
}

pub struct Sim {
    base: Instant,
    now: Instant,
    link_delay: Duration,
    nodes: Vec<Node>,
    /// Packets in flight, by (delivery time, sequence).
    wire: BTreeMap<(Instant, u64), Packet>,
    sequence: u64,
    log: Vec<Record>,
}

impl Sim {
    pub fn new(link_delay: Duration) -> Self {
        let base = Instant::now();
        Self {
            base,
            now: base,
            link_delay,
            nodes: Vec::new(),
            wire: BTreeMap::new(),
            sequence: 0,
            log: Vec::new(),
        }
    }

    /// A node running independent instances (one per config). Its address is the first
    /// config's primary address.
    pub fn add_node(&mut self, name: &'static str, configs: Vec<Config>) -> usize {
        let address = configs[0].primary_address;
        let unit = Unit::Lone(configs.into_iter().map(Instance::new).collect());
        self.push_node(name, address, unit)
    }

    /// A node running its instances as one sync group.
    pub fn add_group_node(&mut self, name: &'static str, configs: Vec<Config>) -> usize {
        let address = configs[0].primary_address;
        let unit = Unit::Group(SyncGroup::new(
            configs.into_iter().map(Instance::new).collect(),
        ));
        self.push_node(name, address, unit)
    }

    fn push_node(&mut self, name: &'static str, address: IpAddr, unit: Unit) -> usize {
        let (instances, sync_group) = match &unit {
            Unit::Lone(instances) => (instances.as_slice(), false),
            Unit::Group(group) => (group.members(), true),
        };
        for instance in instances {
            self.log.push(Record {
                at: self.elapsed(),
                node: name,
                vrid: instance.config().vrid,
                entry: Entry::Config {
                    config: instance.config().clone(),
                    sync_group,
                },
            });
        }
        self.nodes.push(Node {
            name,
            address,
            alive: true,
            partition: 0,
            unit,
        });
        self.nodes.len() - 1
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Delivers an event to every instance of a node.
    pub fn deliver_all(&mut self, node: usize, event: &Event) {
        for vrid in self.vrids(node) {
            self.deliver(node, vrid, event.clone());
        }
    }

    pub fn start(&mut self, node: usize) {
        self.deliver_all(node, &Event::Startup);
    }

    /// Graceful stop: a Master sends priority 0.
    pub fn shutdown(&mut self, node: usize) {
        self.deliver_all(node, &Event::Shutdown);
    }

    /// The node dies silently: no goodbye, nothing sent or received from now on.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].alive = false;
    }

    /// Splits the nodes; nodes not listed stay in partition 0.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        for (id, group) in groups.iter().enumerate() {
            for &node in *group {
                self.nodes[node].partition = id + 1;
            }
        }
    }

    pub fn heal(&mut self) {
        for node in &mut self.nodes {
            node.partition = 0;
        }
    }

    /// Runs the event loop until `offset` from the start, jumping from one deadline or
    /// delivery to the next; the clock ends exactly at `offset`.
    pub fn run_until(&mut self, offset: Duration) {
        let end = self.base + offset;
        assert!(end >= self.now, "the simulation cannot go back in time");
        while let Some(at) = self.next_event_time().filter(|&at| at <= end) {
            self.now = at;
            // Packets first, then timers, at equal times.
            while let Some(entry) = self.wire.first_entry().filter(|e| e.key().0 <= at) {
                let packet = entry.remove();
                self.receive(packet);
            }
            for node in 0..self.nodes.len() {
                self.fire_timers(node);
            }
        }
        self.now = end;
    }

    pub fn run_for(&mut self, duration: Duration) {
        self.run_until(self.elapsed() + duration);
    }

    fn next_event_time(&self) -> Option<Instant> {
        let wire = self.wire.keys().next().map(|&(at, _)| at);
        let timers = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .filter_map(|n| match &n.unit {
                Unit::Lone(instances) => instances.iter().filter_map(Instance::next_deadline).min(),
                Unit::Group(group) => group.next_deadline(),
            });
        wire.into_iter().chain(timers).min()
    }

    fn fire_timers(&mut self, node: usize) {
        if !self.nodes[node].alive {
            return;
        }
        let now = self.now;
        let mut produced = Vec::new();
        match &mut self.nodes[node].unit {
            Unit::Lone(instances) => {
                for instance in instances {
                    if instance.next_deadline().is_some_and(|d| d <= now) {
                        let vrid = instance.config().vrid;
                        produced.push((vrid, Entry::Input(Event::Timeout)));
                        produced.extend(
                            instance
                                .handle(now, Event::Timeout)
                                .into_iter()
                                .map(|a| (vrid, Entry::Output(a))),
                        );
                    }
                }
            }
            Unit::Group(group) => {
                for member in group.members() {
                    if member.next_deadline().is_some_and(|d| d <= now) {
                        produced.push((member.config().vrid, Entry::Input(Event::Timeout)));
                    }
                }
                let actions = group.on_timeout(now);
                produced.extend(tag_group(group, actions));
            }
        }
        self.record_and_send(node, produced);
    }

    fn receive(&mut self, packet: Packet) {
        let (from, to) = (&self.nodes[packet.from], &self.nodes[packet.to]);
        if !to.alive || from.partition != to.partition {
            return;
        }
        self.deliver(packet.to, packet.vrid, Event::Advert(packet.advert));
    }

    /// Delivers one event to the node's instance with this VRID, if it runs one.
    pub fn deliver(&mut self, node: usize, vrid: u8, event: Event) {
        if !self.nodes[node].alive {
            return;
        }
        let now = self.now;
        let mut produced = vec![(vrid, Entry::Input(event.clone()))];
        match &mut self.nodes[node].unit {
            Unit::Lone(instances) => {
                let Some(instance) = instances.iter_mut().find(|i| i.config().vrid == vrid) else {
                    return;
                };
                produced.extend(
                    instance
                        .handle(now, event)
                        .into_iter()
                        .map(|a| (vrid, Entry::Output(a))),
                );
            }
            Unit::Group(group) => {
                let Some(index) = group.index_of(vrid) else {
                    return;
                };
                let actions = group.apply(index, now, event).expect("member index");
                produced.extend(tag_group(group, actions));
            }
        }
        self.record_and_send(node, produced);
    }

    fn record_and_send(&mut self, node: usize, produced: Vec<(u8, Entry)>) {
        let at = self.elapsed();
        let name = self.nodes[node].name;
        for (vrid, entry) in produced {
            if let Entry::Output(Action::SendAdvert {
                priority,
                max_advert_interval,
            }) = entry
            {
                self.send(node, vrid, priority, max_advert_interval);
            }
            self.log.push(Record {
                at,
                node: name,
                vrid,
                entry,
            });
        }
    }

    /// Multicast to every other node on the same side of any partition.
    fn send(&mut self, from: usize, vrid: u8, priority: u8, max_advert_interval: Duration) {
        let sender = &self.nodes[from];
        let advert = ReceivedAdvert {
            source: sender.address,
            priority,
            max_advert_interval,
        };
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|&to| to != from && self.nodes[to].partition == sender.partition)
            .collect();
        for to in targets {
            self.sequence += 1;
            self.wire.insert(
                (self.now + self.link_delay, self.sequence),
                Packet {
                    from,
                    to,
                    vrid,
                    advert,
                },
            );
        }
    }

    fn vrids(&self, node: usize) -> Vec<u8> {
        match &self.nodes[node].unit {
            Unit::Lone(instances) => instances.iter().map(|i| i.config().vrid).collect(),
            Unit::Group(group) => group.members().iter().map(|m| m.config().vrid).collect(),
        }
    }

    fn instance(&self, node: usize, vrid: u8) -> &Instance {
        let found = match &self.nodes[node].unit {
            Unit::Lone(instances) => instances.iter().find(|i| i.config().vrid == vrid),
            Unit::Group(group) => group.members().iter().find(|m| m.config().vrid == vrid),
        };
        found.expect("no such instance")
    }

    pub fn state(&self, node: usize, vrid: u8) -> State {
        self.instance(node, vrid).state()
    }

    pub fn master_address(&self, node: usize, vrid: u8) -> Option<IpAddr> {
        self.instance(node, vrid).master_address()
    }

    /// The names of the live nodes that are Master for this VRID now.
    pub fn masters(&self, vrid: u8) -> Vec<&'static str> {
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive && self.vrids(n).contains(&vrid))
            .filter(|&n| self.state(n, vrid) == State::Master)
            .map(|n| self.nodes[n].name)
            .collect()
    }

    pub fn transitions(&self) -> Vec<Transition> {
        self.log
            .iter()
            .filter_map(|r| match r.entry {
                Entry::Output(Action::StateChanged { from, to, reason }) => Some(Transition {
                    at: r.at,
                    node: r.node,
                    vrid: r.vrid,
                    from,
                    to,
                    reason,
                }),
                _ => None,
            })
            .collect()
    }

    /// The transitions of one node's instance into `to`.
    pub fn entered(&self, node: usize, vrid: u8, to: State) -> Vec<Transition> {
        let name = self.nodes[node].name;
        self.transitions()
            .into_iter()
            .filter(|t| t.node == name && t.vrid == vrid && t.to == to)
            .collect()
    }

    /// Who held the VIPs of `vrid`, as (node, from, until) spans from each node's `AddVips` to
    /// its `RemoveVips` (`None`: still held), in the order they began.
    pub fn vip_holdings(&self, vrid: u8) -> Vec<(&'static str, Duration, Option<Duration>)> {
        let mut spans: Vec<(&'static str, Duration, Option<Duration>)> = Vec::new();
        for record in self.log.iter().filter(|r| r.vrid == vrid) {
            match record.entry {
                Entry::Output(Action::AddVips) => spans.push((record.node, record.at, None)),
                Entry::Output(Action::RemoveVips) => {
                    if let Some(span) = spans
                        .iter_mut()
                        .rev()
                        .find(|(node, _, until)| *node == record.node && until.is_none())
                    {
                        span.2 = Some(record.at);
                    }
                }
                _ => {}
            }
        }
        spans
    }

    /// When `node` last received a non-zero advert for `vrid` from the node at `source`.
    pub fn last_advert_heard(&self, node: usize, vrid: u8, source: usize) -> Option<Duration> {
        let (name, address) = (self.nodes[node].name, self.nodes[source].address);
        self.log
            .iter()
            .filter(|r| r.node == name && r.vrid == vrid)
            .filter(|r| {
                matches!(r.entry, Entry::Input(Event::Advert(a)) if a.source == address && a.priority != 0)
            })
            .map(|r| r.at)
            .next_back()
    }

    /// The log as JSON lines: one config, input or output per line, time in nanoseconds.
    pub fn jsonl(&self) -> String {
        let mut text = String::new();
        for record in &self.log {
            let line = match &record.entry {
                Entry::Config { config, sync_group } => {
                    jsonl::config_line(record.node, config, *sync_group)
                }
                Entry::Input(event) => {
                    jsonl::input_line(record.at, record.node, record.vrid, event)
                }
                Entry::Output(action) => {
                    jsonl::output_line(record.at, record.node, record.vrid, action)
                }
            };
            text.push_str(&line);
            text.push('\n');
        }
        text
    }

    /// Compares the log with `agent/tests/sim/goldens/<name>.jsonl`; `UPDATE_GOLDENS=1`
    /// rewrites the file instead.
    pub fn check_golden(&self, name: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sim/goldens")
            .join(format!("{name}.jsonl"));
        let actual = self.jsonl();
        // Conformance: the config and input lines alone reproduce every output line.
        let replayed =
            replay(&actual).unwrap_or_else(|e| panic!("trace {name} does not parse: {e}"));
        assert!(
            replayed == actual,
            "trace {name} does not replay: first difference at line {}",
            first_difference(&actual, &replayed) + 1
        );
        if std::env::var_os("UPDATE_GOLDENS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create goldens");
            std::fs::write(&path, &actual).expect("write golden");
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "golden {} unreadable ({e}); run with UPDATE_GOLDENS=1 to create it",
                path.display()
            )
        });
        if expected != actual {
            let line = first_difference(&expected, &actual);
            panic!(
                "golden {} differs at line {}:\n expected: {}\n   actual: {}\n(UPDATE_GOLDENS=1 rewrites it)",
                path.display(),
                line + 1,
                expected.lines().nth(line).unwrap_or("<end>"),
                actual.lines().nth(line).unwrap_or("<end>"),
            );
        }
    }
}

/// The index of the first line where two texts differ.
fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
}

fn tag_group(group: &SyncGroup, actions: Vec<(usize, Action)>) -> Vec<(u8, Entry)> {
    actions
        .into_iter()
        .map(|(index, action)| {
            let vrid = group.member(index).expect("member").config().vrid;
            (vrid, Entry::Output(action))
        })
        .collect()
}
