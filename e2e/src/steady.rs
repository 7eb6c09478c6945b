//! The steady state of a VRRP pair: n1 MASTER and n2 BACKUP of `count` instances at one advert
//! interval, keepalived or our agent on both, and what one of the two costs over a window: in
//! instructions (callgrind; one daemon under valgrind, its peer native) or in CPU time, memory
//! and wakeups (both native). Adverts are counted on the wire (the kernel's IPv4 multicast
//! counters of the nodes' namespaces), the same way for either daemon.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::addressing::{self, Family};
use crate::callgrind::Callgrind;
use crate::daemon::{Daemon, DaemonKind};
use crate::error::LabError;
use crate::instance::InstanceSpec;
use crate::lab::{Lab, LabSpec, MulticastPackets};
use crate::page_cache;
use crate::resources::{self, Usage};

/// How many instances, at which advert interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steady {
    pub instances: usize,
    pub advert: Duration,
}

/// One side of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// n1, priority 150.
    Master,
    /// n2, priority 100.
    Backup,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "MASTER",
            Self::Backup => "BACKUP",
        }
    }
}

impl Steady {
    /// The instances: v3, VRIDs 1..=count, one VIP each (172.16.1.VRID/16), n1 preferred.
    pub fn instances(&self) -> Vec<InstanceSpec> {
        (1..=self.instances)
            .filter_map(|vrid| u8::try_from(vrid).ok())
            .map(|vrid| {
                let vip = format!("172.16.1.{vrid}/16")
                    .parse()
                    .unwrap_or_else(|_| addressing::vip(Family::V4, 0));
                let mut spec = InstanceSpec::new(&format!("vip-{vrid}"), vrid, vec![vip]);
                spec.priorities = vec![150, 100];
                spec.advert_interval = self.advert;
                spec
            })
            .collect()
    }

    /// The adverts the MASTER sends per second.
    pub fn adverts_per_second(&self) -> f64 {
        self.instances as f64 / self.advert.as_secs_f64()
    }

    /// A short name: "255x10ms".
    pub fn name(&self) -> String {
        format!(
            "{}x{}",
            self.instances,
            crate::agent::duration_string(self.advert)
        )
    }
}

/// How long a pair may take to reach its steady state (natively; under valgrind much longer).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
const WRAPPED_SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// The agent's `memory::SETTLE` (a unit test keeps them equal; the agent is not a dependency
/// of this library).
const AGENT_MEMORY_SETTLE: Duration = Duration::from_secs(20);

/// How long past the election the steady state begins: GARPs sent, allocations settled,
/// start-up timers done; for the agent also its one release of memory (free heap pages, its
/// code unmapped), which comes `memory::SETTLE` after the configuration was applied (a start-up
/// cost that a steady window must not count).
fn settle_after(kind: DaemonKind) -> Duration {
    match kind {
        DaemonKind::Agent => AGENT_MEMORY_SETTLE + Duration::from_secs(2),
        DaemonKind::Keepalived => Duration::from_secs(5),
    }
}

/// A running pair.
pub struct Pair {
    pub lab: Lab,
    pub master: Daemon,
    pub backup: Daemon,
    vips: Vec<IpAddr>,
}

impl Pair {
    /// Starts `kind` on n1 and n2, the daemon of `wrapped` under `prefix` (e.g. callgrind),
    /// and waits for the steady state.
    pub fn start(
        kind: DaemonKind,
        steady: Steady,
        wrapped: Option<(Role, &[String])>,
    ) -> Result<Self, LabError> {
        let instances = steady.instances();
        let lab = Lab::new(LabSpec {
            nodes: 2,
            ipv6: false,
        })?;
        let prefix_of = |role: Role| match wrapped {
            Some((r, prefix)) if r == role => prefix,
            _ => &[],
        };
        // The BACKUP first: the MASTER then wins the election at once instead of after both
        // time out.
        let backup = Daemon::start_wrapped(kind, &lab, 2, &instances, prefix_of(Role::Backup))?;
        let master = Daemon::start_wrapped(kind, &lab, 1, &instances, prefix_of(Role::Master))?;
        let vips = instances
            .iter()
            .filter_map(InstanceSpec::first_vip)
            .collect();
        let pair = Self {
            lab,
            master,
            backup,
            vips,
        };
        let limit = if wrapped.is_some() {
            WRAPPED_SETTLE_LIMIT
        } else {
            SETTLE_LIMIT
        };
        pair.wait_steady(limit)?;
        std::thread::sleep(settle_after(kind));
        pair.check_steady()?;
        Ok(pair)
    }

    /// Whether n1 holds every VIP and n2 none; a description of what is wrong otherwise.
    fn steady_state(&self) -> Result<Option<String>, LabError> {
        let on_master = self.lab.addresses(1)?;
        let on_backup = self.lab.addresses(2)?;
        let missing = self
            .vips
            .iter()
            .filter(|vip| !on_master.contains(vip))
            .count();
        let extra = self
            .vips
            .iter()
            .filter(|vip| on_backup.contains(vip))
            .count();
        Ok((missing > 0 || extra > 0).then(|| {
            format!(
                "n1 lacks {missing} of {} VIPs, n2 holds {extra}",
                self.vips.len()
            )
        }))
    }

    fn wait_steady(&self, limit: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + limit;
        loop {
            let Some(wrong) = self.steady_state()? else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("the steady state (n1 MASTER of all, n2 BACKUP): {wrong}"),
                    timeout: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An error when the pair is not (or no longer) in its steady state.
    pub fn check_steady(&self) -> Result<(), LabError> {
        match self.steady_state()? {
            None => Ok(()),
            Some(wrong) => Err(LabError::Invalid(format!(
                "not in the steady state: {wrong}"
            ))),
        }
    }

    /// The daemon playing `role`.
    pub fn daemon(&self, role: Role) -> &Daemon {
        match role {
            Role::Master => &self.master,
            Role::Backup => &self.backup,
        }
    }

    /// Both nodes' IPv4 multicast counters: (n1, n2).
    pub fn packets(&self) -> Result<(MulticastPackets, MulticastPackets), LabError> {
        Ok((
            self.lab.multicast_packets(1)?,
            self.lab.multicast_packets(2)?,
        ))
    }
}

/// Adverts on the wire over a window, from the nodes' IPv4 multicast counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireCount {
    /// Multicast packets n1 (the MASTER) sent: its adverts (ARP, such as the agent's conflict
    /// probe, and IPv6 chatter are not counted).
    pub master_sent: u64,
    /// Multicast packets n2 (the BACKUP) received: the MASTER's adverts.
    pub backup_received: u64,
    /// Multicast packets n2 sent: none in the steady state but a group report now and then (a
    /// BACKUP sends no adverts).
    pub backup_sent: u64,
}

impl WireCount {
    fn between(
        start: (MulticastPackets, MulticastPackets),
        end: (MulticastPackets, MulticastPackets),
    ) -> Self {
        let (n1, n2) = (end.0.since(start.0), end.1.since(start.1));
        Self {
            master_sent: n1.sent,
            backup_received: n2.received,
            backup_sent: n2.sent,
        }
    }

    /// What `self` counted beyond `shorter` (each count saturating at zero).
    fn minus(self, shorter: Self) -> Self {
        Self {
            master_sent: self.master_sent.saturating_sub(shorter.master_sent),
            backup_received: self.backup_received.saturating_sub(shorter.backup_received),
            backup_sent: self.backup_sent.saturating_sub(shorter.backup_sent),
        }
    }

    /// The adverts `role` handled: those the MASTER sent, which the BACKUP received (two nodes
    /// on one bridge).
    pub fn adverts(&self, _role: Role) -> u64 {
        self.master_sent
    }

    /// Whether a window of `length`, in which the MASTER should have sent `expected_adverts`
    /// for its `instances`, was the steady state on the wire: the MASTER sent at least 95 % of
    /// its adverts, less one per instance (where a window's edges fall between an instance's
    /// adverts), and the BACKUP no more than its node's own chatter, one packet a second (a
    /// BACKUP that took over an instance, even for a moment, sent adverts: that window held
    /// takeovers and their cost, not the steady state).
    pub fn held_steady(&self, length: Duration, expected_adverts: f64, instances: u64) -> bool {
        self.master_sent as f64 >= 0.95 * expected_adverts - instances as f64
            && self.backup_sent as f64 <= length.as_secs_f64()
    }
}

/// The instructions one daemon executed over a window of its steady state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub instructions: u64,
    pub wire: WireCount,
    pub window: Duration,
    /// The adverts the MASTER should have sent in the window: fewer on the wire means the
    /// daemon under valgrind could not keep up, and the count is not of the steady state.
    pub expected_adverts: f64,
    /// Instances the MASTER runs: each window's edges can cut off one advert of each.
    pub instances: u64,
}

impl Cost {
    pub fn per_second(&self) -> f64 {
        self.instructions as f64 / self.window.as_secs_f64()
    }

    /// Instructions per advert `role` sent or received; `None` without adverts.
    pub fn per_advert(&self, role: Role) -> Option<f64> {
        let adverts = self.wire.adverts(role);
        (adverts > 0).then(|| self.instructions as f64 / adverts as f64)
    }

    /// Whether the window was the steady state ([`WireCount::held_steady`]): under valgrind a
    /// MASTER that cannot keep up sends fewer adverts.
    pub fn kept_up(&self) -> bool {
        self.wire
            .held_steady(self.window, self.expected_adverts, self.instances)
    }
}

/// How much shorter than the measured window the window whose count is subtracted is.
const BASELINE_WINDOW_DIVISOR: u32 = 4;

/// Runs a pair of `kind` with the daemon playing `role` under callgrind and counts its
/// instructions over `window` of the steady state. Dumps go under the lab's work directory;
/// with `keep`, each window's dumps are copied there.
///
/// The count is a difference: that of a window `window` longer than a first, short one,
/// minus the short one's. Each window opens just after a dump, and a dump costs the daemon
/// work of its own: valgrind interrupts every blocked thread to dump, and each one runs its
/// wait loop once more (for an agent that is about 2,000 instructions whatever the window's
/// length: its idle tokio worker and health-check threads, which natively do not wake at all
/// in minutes). The difference cancels that cost for both daemons alike and keeps what the
/// steady state itself executes.
pub fn measure_cost(
    kind: DaemonKind,
    steady: Steady,
    role: Role,
    window: Duration,
    keep: Option<&std::path::Path>,
) -> Result<Cost, LabError> {
    let dumps = std::env::temp_dir().join(format!(
        "kube-vrrp-callgrind-{}-{}",
        std::process::id(),
        steady.name()
    ));
    let _ = std::fs::remove_dir_all(&dumps);
    let callgrind = Callgrind::new(&dumps)?;
    let prefix = callgrind.prefix();
    let result = (|| {
        let pair = Pair::start(kind, steady, Some((role, &prefix)))?;
        let pids = resources::process_tree(pair.daemon(role).pid());
        let label = format!("{}-{}-{}", kind.as_str(), steady.name(), role.as_str());
        callgrind.dump(&pids)?;
        let count = |length: Duration, suffix: &str| -> Result<_, LabError> {
            let (start, packets) = (Instant::now(), pair.packets()?);
            std::thread::sleep(length);
            let instructions = callgrind.dump(&pids)?;
            if let Some(into) = keep {
                callgrind.keep_latest(&pids, into, &format!("{label}-{suffix}"))?;
            }
            Ok((
                instructions,
                start.elapsed(),
                WireCount::between(packets, pair.packets()?),
            ))
        };
        let baseline = window / BASELINE_WINDOW_DIVISOR;
        let (short, short_took, short_wire) = count(baseline, "baseline")?;
        let (long, long_took, long_wire) = count(baseline + window, "window")?;
        pair.check_steady()?;
        let elapsed = long_took.saturating_sub(short_took);
        Ok(Cost {
            instructions: long.saturating_sub(short),
            wire: long_wire.minus(short_wire),
            window: elapsed,
            expected_adverts: steady.adverts_per_second() * elapsed.as_secs_f64(),
            instances: steady.instances as u64,
        })
    })();
    let _ = std::fs::remove_dir_all(&dumps);
    result
}

/// CPU, memory and wakeups of both daemons of a native pair over the same window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeUsage {
    pub master: Usage,
    pub backup: Usage,
    pub wire: WireCount,
}

impl NativeUsage {
    pub fn of(&self, role: Role) -> &Usage {
        match role {
            Role::Master => &self.master,
            Role::Backup => &self.backup,
        }
    }
}

/// Runs a native pair of `kind` and measures both daemons over `window` of the steady state:
/// an error if the wire shows it was not ([`WireCount::held_steady`]: a BACKUP that took over
/// within the window, or a MASTER that fell silent), or if the pair is not in it at the end.
/// The daemon's program file is evicted from the page cache first ([`page_cache`]), so every
/// run, of either daemon, maps its code as read from disk.
pub fn measure_native(
    kind: DaemonKind,
    steady: Steady,
    window: Duration,
) -> Result<NativeUsage, LabError> {
    let program = kind.program()?;
    page_cache::evict(&program).map_err(|error| {
        LabError::Invalid(format!(
            "taking {} out of the page cache: {error}",
            program.display()
        ))
    })?;
    let pair = Pair::start(kind, steady, None)?;
    let (master_pid, backup_pid) = (pair.master.pid(), pair.backup.pid());
    let (opened, packets) = (Instant::now(), pair.packets()?);
    let on_backup = std::thread::spawn(move || resources::measure(backup_pid, window));
    let master = resources::measure(master_pid, window)?;
    let backup = on_backup
        .join()
        .map_err(|_| LabError::Invalid("measuring thread panicked".into()))??;
    let wire = WireCount::between(packets, pair.packets()?);
    let length = opened.elapsed();
    let expected = steady.adverts_per_second() * length.as_secs_f64();
    if !wire.held_steady(length, expected, steady.instances as u64) {
        return Err(LabError::Invalid(format!(
            "the window was not the steady state on the wire: in {:.1} s n1 sent {} multicast \
             packets ({expected:.0} adverts due) and n2 sent {} (a BACKUP sends none but its \
             node's chatter)",
            length.as_secs_f64(),
            wire.master_sent,
            wire.backup_sent
        )));
    }
    pair.check_steady()?;
    Ok(NativeUsage {
        master,
        backup,
        wire,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_window_opens_after_its_start_up_heap_release() {
        assert_eq!(AGENT_MEMORY_SETTLE, kube_vrrp_agent::memory::SETTLE);
        assert!(settle_after(DaemonKind::Agent) > kube_vrrp_agent::memory::SETTLE);
    }

    #[test]
    fn a_longer_windows_wire_count_minus_a_shorter_ones_keeps_the_difference_and_never_wraps() {
        let long = WireCount {
            master_sent: 25,
            backup_received: 25,
            backup_sent: 0,
        };
        let short = WireCount {
            master_sent: 5,
            backup_received: 6,
            backup_sent: 1,
        };
        assert_eq!(
            long.minus(short),
            WireCount {
                master_sent: 20,
                backup_received: 19,
                backup_sent: 0,
            }
        );
    }

    #[test]
    fn a_window_holds_steady_unless_the_backup_advertised_or_the_master_fell_silent() {
        let window = Duration::from_secs(30);
        let quiet = WireCount {
            master_sent: 2_995,
            backup_received: 2_995,
            backup_sent: 12,
        };
        assert!(quiet.held_steady(window, 3_000.0, 1));
        let took_over_for_a_moment = WireCount {
            backup_sent: 12 + 20,
            ..quiet
        };
        assert!(!took_over_for_a_moment.held_steady(window, 3_000.0, 1));
        let fell_silent_for_two_seconds = WireCount {
            master_sent: 2_800,
            ..quiet
        };
        assert!(!fell_silent_for_two_seconds.held_steady(window, 3_000.0, 1));
    }

    #[test]
    fn the_255_instances_have_distinct_vrids_and_addresses_and_the_interval() {
        let steady = Steady {
            instances: 255,
            advert: Duration::from_millis(10),
        };
        let instances = steady.instances();
        assert_eq!(instances.len(), 255);
        let vrids: std::collections::BTreeSet<u8> = instances.iter().map(|i| i.vrid).collect();
        let vips: std::collections::BTreeSet<_> = instances
            .iter()
            .filter_map(InstanceSpec::first_vip)
            .collect();
        assert_eq!((vrids.len(), vips.len()), (255, 255));
        assert!(instances.iter().all(|i| i.validate().is_ok()));
        assert!(
            instances
                .iter()
                .all(|i| i.advert_interval == Duration::from_millis(10))
        );
        assert_eq!(
            instances[254].first_vip().unwrap().to_string(),
            "172.16.1.255"
        );
        assert_eq!(steady.name(), "255x10ms");
        assert!((steady.adverts_per_second() - 25_500.0).abs() < 1e-6);
    }

    #[test]
    fn a_cost_is_per_second_and_per_advert_of_the_role_and_flags_a_lagging_window() {
        let cost = Cost {
            instructions: 1_000_000,
            wire: WireCount {
                master_sent: 100,
                backup_received: 50,
                backup_sent: 0,
            },
            window: Duration::from_secs(10),
            expected_adverts: 100.0,
            instances: 1,
        };
        assert!((cost.per_second() - 100_000.0).abs() < 1e-6);
        assert_eq!(cost.per_advert(Role::Master), Some(10_000.0));
        assert_eq!(cost.per_advert(Role::Backup), Some(10_000.0));
        assert!(cost.kept_up());
        let one_cut_off_at_an_edge = Cost {
            expected_adverts: 105.0,
            ..cost
        };
        assert!(one_cut_off_at_an_edge.kept_up());
        let lagging = Cost {
            expected_adverts: 200.0,
            ..cost
        };
        assert!(!lagging.kept_up());
        let chattering_backup = Cost {
            wire: WireCount {
                backup_sent: 3,
                ..cost.wire
            },
            ..cost
        };
        assert!(chattering_backup.kept_up());
        let advertising_backup = Cost {
            wire: WireCount {
                backup_sent: 50,
                ..cost.wire
            },
            ..cost
        };
        assert!(!advertising_backup.kept_up());
    }
}
