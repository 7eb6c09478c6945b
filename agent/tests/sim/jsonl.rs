//! The JSONL trace format of the simulation (one input, output or instance config per line)
//! and its replay against fresh instances, holo-style conformance.
//!
//! A trace replays when feeding its config and input lines to new instances, with no wire,
//! reproduces every output line: `replay(trace) == trace`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube_vrrp_agent::vrrp::Version;
use kube_vrrp_agent::vrrp::instance::{
    Action, Config, EdgeFaults, Event, ForcedState, HandoverEnd, Instance, ReceivedAdvert, Tracking,
};
use kube_vrrp_agent::vrrp::sync_group::SyncGroup;
use serde_json::{Value, json};

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).expect("duration fits in u64 nanoseconds")
}

fn line(at: Duration, node: &str, vrid: u8, key: &str, value: &Value) -> String {
    format!(
        r#"{{"t_ns":{},"node":{},"vrid":{vrid},"{key}":{value}}}"#,
        nanos(at),
        Value::from(node),
    )
}

pub fn config_line(node: &str, config: &Config, sync_group: bool) -> String {
    let value = json!({
        "priority": config.priority,
        "advert_interval_ns": nanos(config.advert_interval),
        "version": config.version.as_str(),
        "preempt": config.preempt,
        "preempt_delay_ns": nanos(config.preempt_delay),
        "accept_mode": config.accept_mode,
        "primary_address": config.primary_address.to_string(),
        "sync_group": sync_group,
    });
    line(Duration::ZERO, node, config.vrid, "config", &value)
}

pub fn input_line(at: Duration, node: &str, vrid: u8, event: &Event) -> String {
    line(at, node, vrid, "in", &event_json(event))
}

pub fn output_line(at: Duration, node: &str, vrid: u8, action: &Action) -> String {
    line(at, node, vrid, "out", &action_json(action))
}

fn event_json(event: &Event) -> Value {
    match event {
        Event::Startup => json!("startup"),
        Event::Shutdown => json!("shutdown"),
        Event::Timeout => json!("timeout"),
        Event::InterfaceDown => json!("interface_down"),
        Event::InterfaceUp => json!("interface_up"),
        Event::Advert(advert) => json!({
            "advert": {
                "source": advert.source.to_string(),
                "priority": advert.priority,
                "max_advert_interval_ns": nanos(advert.max_advert_interval),
            }
        }),
        Event::Tracking(tracking) => json!({
            "tracking": { "weight_delta": tracking.weight_delta, "fault": tracking.fault }
        }),
        Event::EdgeFaults(edge) => json!({
            "edge_faults": {
                "address_conflict": edge.address_conflict,
                "no_source_address": edge.no_source_address,
                "vip_add_failed": edge.vip_add_failed,
            }
        }),
        Event::ConfigChanged(config) => json!({
            "config_changed": {
                "priority": config.priority,
                "advert_interval_ns": nanos(config.advert_interval),
                "preempt": config.preempt,
                "preempt_delay_ns": nanos(config.preempt_delay),
                "accept_mode": config.accept_mode,
            }
        }),
        Event::Force(forced) => json!({ "force": format!("{forced:?}") }),
    }
}

fn action_json(action: &Action) -> Value {
    match action {
        Action::StateChanged { from, to, reason } => json!({
            "state_changed": { "from": from.as_str(), "to": to.as_str(), "reason": reason.as_str() }
        }),
        Action::SendAdvert {
            priority,
            max_advert_interval,
        } => json!({
            "send_advert": {
                "priority": priority,
                "max_advert_interval_ns": nanos(*max_advert_interval),
            }
        }),
        Action::AddVips => json!("add_vips"),
        Action::RemoveVips => json!("remove_vips"),
        Action::Announce => json!("announce"),
        Action::EffectivePriorityChanged { from, to } => json!({
            "effective_priority_changed": { "from": from, "to": to }
        }),
        Action::HandoverEnded(end) => match end {
            HandoverEnd::NewMaster(address) => json!({
                "handover_ended": { "end": end.as_str(), "new_master": address.to_string() }
            }),
            _ => json!({ "handover_ended": { "end": end.as_str() } }),
        },
    }
}

/// One parsed trace line.
enum Line {
    Config {
        node: String,
        config: Config,
        sync_group: bool,
    },
    Input {
        at: Duration,
        node: String,
        vrid: u8,
        event: Event,
    },
    Output,
}

fn field<'a>(value: &'a Value, key: &str) -> Result<&'a Value, String> {
    value
        .get(key)
        .ok_or_else(|| format!("missing {key:?} in {value}"))
}

fn u64_field(value: &Value, key: &str) -> Result<u64, String> {
    field(value, key)?
        .as_u64()
        .ok_or_else(|| format!("{key:?} is not an unsigned integer in {value}"))
}

fn u8_field(value: &Value, key: &str) -> Result<u8, String> {
    u8::try_from(u64_field(value, key)?).map_err(|e| format!("{key:?}: {e}"))
}

fn bool_field(value: &Value, key: &str) -> Result<bool, String> {
    field(value, key)?
        .as_bool()
        .ok_or_else(|| format!("{key:?} is not a boolean in {value}"))
}

fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, String> {
    field(value, key)?
        .as_str()
        .ok_or_else(|| format!("{key:?} is not a string in {value}"))
}

fn address_field(value: &Value, key: &str) -> Result<IpAddr, String> {
    str_field(value, key)?
        .parse()
        .map_err(|e| format!("{key:?}: {e}"))
}

fn parse_line(text: &str) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
    let at = Duration::from_nanos(u64_field(&value, "t_ns")?);
    let node = str_field(&value, "node")?.to_owned();
    let vrid = u8_field(&value, "vrid")?;
    if let Some(config) = value.get("config") {
        let version = match str_field(config, "version")? {
            "v2" => Version::V2,
            "v3" => Version::V3,
            other => return Err(format!("unknown version {other:?}")),
        };
        return Ok(Line::Config {
            node,
            sync_group: bool_field(config, "sync_group")?,
            config: Config {
                vrid,
                priority: u8_field(config, "priority")?,
                advert_interval: Duration::from_nanos(u64_field(config, "advert_interval_ns")?),
                version,
                preempt: bool_field(config, "preempt")?,
                preempt_delay: Duration::from_nanos(u64_field(config, "preempt_delay_ns")?),
                accept_mode: bool_field(config, "accept_mode")?,
                primary_address: address_field(config, "primary_address")?,
            },
        });
    }
    if value.get("out").is_some() {
        return Ok(Line::Output);
    }
    let input = field(&value, "in")?;
    let event = if let Some(name) = input.as_str() {
        match name {
            "startup" => Event::Startup,
            "shutdown" => Event::Shutdown,
            "timeout" => Event::Timeout,
            "interface_down" => Event::InterfaceDown,
            "interface_up" => Event::InterfaceUp,
            other => return Err(format!("unknown input {other:?}")),
        }
    } else if let Some(advert) = input.get("advert") {
        Event::Advert(ReceivedAdvert {
            source: address_field(advert, "source")?,
            priority: u8_field(advert, "priority")?,
            max_advert_interval: Duration::from_nanos(u64_field(advert, "max_advert_interval_ns")?),
        })
    } else if let Some(tracking) = input.get("tracking") {
        let weight_delta = field(tracking, "weight_delta")?
            .as_i64()
            .and_then(|w| i32::try_from(w).ok())
            .ok_or_else(|| format!("bad weight_delta in {tracking}"))?;
        Event::Tracking(Tracking {
            weight_delta,
            fault: bool_field(tracking, "fault")?,
        })
    } else if let Some(edge) = input.get("edge_faults") {
        Event::EdgeFaults(EdgeFaults {
            address_conflict: bool_field(edge, "address_conflict")?,
            no_source_address: bool_field(edge, "no_source_address")?,
            vip_add_failed: bool_field(edge, "vip_add_failed")?,
        })
    } else if let Some(forced) = input.get("force").and_then(Value::as_str) {
        Event::Force(match forced {
            "Master" => ForcedState::Master,
            "Backup" => ForcedState::Backup,
            "Fault" => ForcedState::Fault,
            other => return Err(format!("unknown forced state {other:?}")),
        })
    } else {
        return Err(format!("input not replayable: {input}"));
    };
    Ok(Line::Input {
        at,
        node,
        vrid,
        event,
    })
}

enum Unit {
    Lone(Vec<Instance>),
    Group(SyncGroup),
}

impl Unit {
    /// Feeds one event to the instance with this VRID; returns (vrid, action) pairs.
    fn handle(
        &mut self,
        now: Instant,
        vrid: u8,
        event: Event,
    ) -> Result<Vec<(u8, Action)>, String> {
        match self {
            Self::Lone(instances) => {
                let instance = instances
                    .iter_mut()
                    .find(|i| i.config().vrid == vrid)
                    .ok_or_else(|| format!("no instance with VRID {vrid}"))?;
                Ok(instance
                    .handle(now, event)
                    .into_iter()
                    .map(|a| (vrid, a))
                    .collect())
            }
            Self::Group(group) => {
                let index = group
                    .index_of(vrid)
                    .ok_or_else(|| format!("no member with VRID {vrid}"))?;
                let actions = if event == Event::Timeout {
                    group.on_timeout(now)
                } else {
                    group.apply(index, now, event).map_err(|e| e.to_string())?
                };
                Ok(actions
                    .into_iter()
                    .map(|(i, a)| (group.members()[i].config().vrid, a))
                    .collect())
            }
        }
    }
}

/// Rebuilds a trace from its config and input lines alone.
pub fn replay(trace: &str) -> Result<String, String> {
    let base = Instant::now();
    let lines: Vec<&str> = trace.lines().collect();
    let mut units: Vec<(String, Unit)> = Vec::new();
    let mut out = String::new();
    let mut index = 0;
    while index < lines.len() {
        let text = lines[index];
        index += 1;
        match parse_line(text).map_err(|e| format!("line {index}: {e}"))? {
            Line::Config {
                node,
                config,
                sync_group,
            } => {
                writeln!(out, "{text}").map_err(|e| e.to_string())?;
                let position = units.iter().position(|(name, _)| *name == node);
                match (position, sync_group) {
                    (None, false) => units.push((node, Unit::Lone(vec![Instance::new(config)]))),
                    (None, true) => units.push((
                        node,
                        Unit::Group(SyncGroup::new(vec![Instance::new(config)])),
                    )),
                    (Some(p), false) => match &mut units[p].1 {
                        Unit::Lone(instances) => instances.push(Instance::new(config)),
                        Unit::Group(_) => return Err(format!("line {index}: mixed node {node}")),
                    },
                    (Some(p), true) => {
                        let Unit::Group(group) = &units[p].1 else {
                            return Err(format!("line {index}: mixed node {node}"));
                        };
                        let mut members = group.clone().into_members();
                        members.push(Instance::new(config));
                        units[p].1 = Unit::Group(SyncGroup::new(members));
                    }
                }
            }
            Line::Output => {}
            Line::Input {
                at,
                node,
                vrid,
                event,
            } => {
                writeln!(out, "{text}").map_err(|e| e.to_string())?;
                let unit = &mut units
                    .iter_mut()
                    .find(|(name, _)| *name == node)
                    .ok_or_else(|| format!("line {index}: unknown node {node}"))?
                    .1;
                // A sync group handles all of its due timers in one call: echo the other
                // timeout lines of this node at this time.
                if event == Event::Timeout && matches!(unit, Unit::Group(_)) {
                    while let Some(next) = lines.get(index) {
                        match parse_line(next) {
                            Ok(Line::Input {
                                at: next_at,
                                node: next_node,
                                event: Event::Timeout,
                                ..
                            }) if next_at == at && next_node == node => {
                                writeln!(out, "{next}").map_err(|e| e.to_string())?;
                                index += 1;
                            }
                            _ => break,
                        }
                    }
                }
                for (vrid, action) in unit.handle(base + at, vrid, event)? {
                    writeln!(out, "{}", output_line(at, &node, vrid, &action))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(out)
}
