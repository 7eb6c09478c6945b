//! Reusable scenario steps over a lab: start a daemon on every node with probes running, wait
//! for one MASTER, disrupt it, and measure the failover from the client's point of view. Tests
//! assert on the outcome; `lab-bench` repeats it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, DaemonKind};
use crate::error::LabError;
use crate::instance::InstanceSpec;
use crate::lab::{Lab, LabSpec};
use crate::probe::{AdvertSniffer, Failover, NeighborProber, measure_failover};

/// How the MASTER goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disruption {
    /// Switch port cut, then SIGKILL: no goodbye; backups wait Master_Down_Interval.
    Death,
    /// SIGTERM: the MASTER sends priority 0; the next backup waits Skew_Time.
    Terminate,
}

impl Disruption {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Death => "death",
            Self::Terminate => "sigterm",
        }
    }

    /// What RFC 5798 says the failover should take, for a new MASTER with `priority`.
    pub fn expected(self, spec: &InstanceSpec, priority: u8) -> Duration {
        match self {
            Self::Death => spec.master_down_interval(priority),
            Self::Terminate => spec.skew_time(priority),
        }
    }
}

/// How often the client asks who has the VIP.
pub const PROBE_PERIOD: Duration = Duration::from_millis(1);

/// A lab with a daemon on every node, the client probing the first instance's first VIP and the
/// switch recording adverts. Fields drop probes first, then daemons, then the lab.
#[derive(Debug)]
pub struct Running {
    pub prober: NeighborProber,
    pub sniffer: AdvertSniffer,
    /// Index `n - 1` holds node `n`'s daemon; `None` once it was taken away.
    pub daemons: Vec<Option<Daemon>>,
    pub instance: InstanceSpec,
    pub lab: Lab,
}

/// The node that should be MASTER among `nodes`: highest priority, ties to the higher address
/// (RFC 5798 §6.4.3), which in the lab is the higher node number.
pub fn expected_master(
    spec: &InstanceSpec,
    nodes: impl IntoIterator<Item = usize>,
) -> Option<usize> {
    nodes.into_iter().max_by_key(|&n| (spec.priority(n), n))
}

impl Running {
    /// Builds the lab, starts the probes, then `kind` on every node running `instance`.
    pub fn start(
        kind: DaemonKind,
        lab_spec: LabSpec,
        instance: InstanceSpec,
    ) -> Result<Self, LabError> {
        let kinds = vec![kind; lab_spec.nodes];
        Self::start_mixed(&kinds, lab_spec, instance)
    }

    /// Like [`Running::start`], with node `n` running `kinds[n - 1]` (interop: keepalived and
    /// our agent in one VRRP instance).
    pub fn start_mixed(
        kinds: &[DaemonKind],
        lab_spec: LabSpec,
        instance: InstanceSpec,
    ) -> Result<Self, LabError> {
        if kinds.len() != lab_spec.nodes {
            return Err(LabError::Invalid(format!(
                "{} daemon kinds for {} nodes",
                kinds.len(),
                lab_spec.nodes
            )));
        }
        instance.validate().map_err(LabError::Invalid)?;
        let vip = instance
            .first_vip()
            .ok_or_else(|| LabError::Invalid("instance without VIP".into()))?;
        let lab = Lab::new(lab_spec)?;
        let sniffer = lab.sniff()?;
        let prober = lab.probe(vip, PROBE_PERIOD)?;
        let mut running = Self {
            prober,
            sniffer,
            daemons: Vec::new(),
            instance,
            lab,
        };
        for (node, &kind) in running.lab.node_numbers().zip(kinds) {
            let daemon = Daemon::start(
                kind,
                &running.lab,
                node,
                std::slice::from_ref(&running.instance),
            )?;
            running.daemons.push(Some(daemon));
        }
        Ok(running)
    }

    /// Starts `kind` again on node `node` (after it was stopped or died), replacing the old one.
    pub fn restart(&mut self, node: usize, kind: DaemonKind) -> Result<(), LabError> {
        let slot = node
            .checked_sub(1)
            .and_then(|i| self.daemons.get_mut(i))
            .ok_or(LabError::NoSuchNode(node))?;
        // The old process is reaped before the new one starts.
        drop(slot.take());
        *slot = Some(Daemon::start(
            kind,
            &self.lab,
            node,
            std::slice::from_ref(&self.instance),
        )?);
        Ok(())
    }

    /// The VIP the client probes.
    pub fn vip(&self) -> IpAddr {
        self.prober.target()
    }

    /// The daemon of node `node`.
    pub fn daemon(&mut self, node: usize) -> Result<&mut Daemon, LabError> {
        node.checked_sub(1)
            .and_then(|i| self.daemons.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(LabError::NoSuchNode(node))
    }

    /// Waits until exactly one node holds the VIP, the client hears it answer, and it has sent
    /// two more adverts (so every backup has heard the MASTER) while still the only holder;
    /// returns that node. A node that held the VIP only briefly during the first election (a
    /// backup whose Master_Down timer fired before it heard a higher priority) is not mistaken
    /// for the MASTER: the wait starts over until the holder is stable or the timeout expires.
    pub fn wait_for_master(&self, timeout: Duration) -> Result<usize, LabError> {
        let deadline = Instant::now() + timeout;
        let vrid = self.instance.vrid;
        let settle = self.instance.advert_interval * 3 + Duration::from_millis(500);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let master = self.lab.wait_for_single_holder(self.vip(), left)?;
            let mac = self.lab.node_mac(master)?;
            let seen = Instant::now();
            let window = settle.min(deadline.saturating_duration_since(seen));
            let answered = self
                .prober
                .wait_for_reply(seen, window, |m| m == mac)
                .is_some();
            let advertised = answered
                && self.sniffer.wait_until(
                    settle.min(deadline.saturating_duration_since(Instant::now())),
                    |adverts| {
                        adverts
                            .iter()
                            .filter(|a| a.at >= seen && a.node == master && a.wire.vrid == vrid)
                            .count()
                            >= 2
                    },
                );
            if advertised && self.lab.holders(self.vip())? == [master] {
                return Ok(master);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!(
                        "a stable MASTER for {} (last candidate n{master}: answered={answered}, two adverts={advertised})",
                        self.vip()
                    ),
                    timeout,
                });
            }
        }
    }

    /// Disrupts the MASTER `master` and waits for another node to answer for the VIP; returns
    /// the measured failover and the new owner.
    pub fn fail_over(
        &mut self,
        master: usize,
        disruption: Disruption,
        timeout: Duration,
    ) -> Result<(Failover, usize), LabError> {
        let old_mac = self.lab.node_mac(master)?;
        let since = Instant::now();
        {
            let daemon = master
                .checked_sub(1)
                .and_then(|i| self.daemons.get_mut(i))
                .and_then(Option::as_mut)
                .ok_or(LabError::NoSuchNode(master))?;
            match disruption {
                Disruption::Death => daemon.die(&self.lab)?,
                Disruption::Terminate => daemon.terminate()?,
            }
        }
        self.prober
            .wait_for_reply(since, timeout, |m| m != old_mac)
            .ok_or_else(|| LabError::Timeout {
                what: format!(
                    "another node answering for {} after {} of n{master}",
                    self.vip(),
                    disruption.as_str()
                ),
                timeout,
            })?;
        let failover = measure_failover(
            &self.sniffer.adverts(),
            &self.prober.replies(),
            self.instance.vrid,
            old_mac,
            since,
        )
        .map_err(|e| LabError::Invalid(format!("failover not measurable: {e}")))?;
        let new_owner = self.lab.node_with_mac(failover.new_mac).ok_or_else(|| {
            LabError::Invalid(format!("VIP answered by unknown MAC {}", failover.new_mac))
        })?;
        Ok((failover, new_owner))
    }

    /// The last "failover:" log line of node `node`'s agent (none for keepalived), waiting up
    /// to a second for it: the agent logs it once its first advert as MASTER has left.
    pub fn failover_trace(&self, node: usize) -> Option<String> {
        let daemon = self.daemons.get(node.checked_sub(1)?)?.as_ref()?;
        if daemon.kind() != DaemonKind::Agent {
            return None;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let log = daemon.log();
            if let Some(line) = log
                .lines()
                .rev()
                .find(|line| line.contains("failover: from"))
            {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One measured failover run.
#[derive(Clone, Debug)]
pub struct FailoverRun {
    pub disruption: Disruption,
    pub old_master: usize,
    pub new_master: usize,
    /// The node RFC 5798 says should take over.
    pub expected_new_master: usize,
    pub failover: Failover,
    /// Master_Down_Interval (death) or Skew_Time (SIGTERM) of the expected new MASTER.
    pub expected: Duration,
    /// When the new MASTER's first advert was seen on the switch.
    pub first_new_advert: Option<Instant>,
    /// The new MASTER's own account of the failover's stages, when it is our agent (its
    /// "failover:" log line).
    pub trace: Option<String>,
}

impl FailoverRun {
    pub fn measured(&self) -> Duration {
        self.failover.duration()
    }
}

/// A duration field of an agent's "failover:" log line (`timer=Some(609.375ms)`, as tracing
/// prints a `Debug` `Option<Duration>`); `None` when the field is absent or `None`.
pub fn trace_duration(trace: &str, field: &str) -> Option<Duration> {
    let value = trace
        .split_whitespace()
        .find_map(|word| word.strip_prefix(field)?.strip_prefix('='))?;
    let inner = value.strip_prefix("Some(")?.strip_suffix(')')?;
    let (number, scale) = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| Some((inner.strip_suffix(unit)?, scale)))?;
    let seconds = number.parse::<f64>().ok()? * scale;
    Duration::try_from_secs_f64(seconds).ok()
}

/// Builds a lab, elects a MASTER, disrupts it and measures; the lab is gone when this returns.
pub fn run_failover(
    kind: DaemonKind,
    lab_spec: LabSpec,
    instance: &InstanceSpec,
    disruption: Disruption,
) -> Result<FailoverRun, LabError> {
    run_held_failover(kind, lab_spec, instance, disruption, Duration::ZERO)
}

/// [`run_failover`], the disruption `hold` after the election: the failover of daemons that
/// have run that long (the agent releases memory 20 s after its configuration was applied).
pub fn run_held_failover(
    kind: DaemonKind,
    lab_spec: LabSpec,
    instance: &InstanceSpec,
    disruption: Disruption,
    hold: Duration,
) -> Result<FailoverRun, LabError> {
    let kinds = vec![kind; lab_spec.nodes];
    failover_after(&kinds, lab_spec, instance, disruption, hold)
}

/// [`run_failover`] with node `n` running `kinds[n - 1]`.
pub fn run_failover_mixed(
    kinds: &[DaemonKind],
    lab_spec: LabSpec,
    instance: &InstanceSpec,
    disruption: Disruption,
) -> Result<FailoverRun, LabError> {
    failover_after(kinds, lab_spec, instance, disruption, Duration::ZERO)
}

fn failover_after(
    kinds: &[DaemonKind],
    lab_spec: LabSpec,
    instance: &InstanceSpec,
    disruption: Disruption,
    hold: Duration,
) -> Result<FailoverRun, LabError> {
    let mut running = Running::start_mixed(kinds, lab_spec, instance.clone())?;
    let election = instance.master_down_interval(1) * 3 + Duration::from_secs(10);
    let old_master = running.wait_for_master(election)?;
    std::thread::sleep(hold);
    let survivors = running.lab.node_numbers().filter(|&n| n != old_master);
    let expected_new_master = expected_master(instance, survivors)
        .ok_or_else(|| LabError::Invalid("failover needs at least two nodes".into()))?;
    let expected = disruption.expected(instance, instance.priority(expected_new_master));
    let (failover, new_master) = running.fail_over(
        old_master,
        disruption,
        expected * 3 + Duration::from_secs(5),
    )?;
    // The new MASTER's first advert follows its VIP (announced first); wait a little for it.
    let vrid = instance.vrid;
    let mut first_new_advert = None;
    running
        .sniffer
        .wait_until(Duration::from_secs(2), |adverts| {
            first_new_advert = adverts
                .iter()
                .filter(|a| {
                    a.wire.vrid == vrid
                        && a.wire.source_mac == failover.new_mac
                        && a.at >= failover.last_old_advert
                })
                .map(|a| a.at)
                .min();
            first_new_advert.is_some()
        });
    let trace = running.failover_trace(new_master);
    Ok(FailoverRun {
        disruption,
        old_master,
        new_master,
        expected_new_master,
        failover,
        expected,
        first_new_advert,
        trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addressing::{Family, vip};

    #[test]
    fn a_failover_traces_durations_are_read_in_each_unit_and_none_is_none() {
        let line = "INFO failover: from the old MASTER's last advert heard to this node's first \
                    instance=web took=611.2ms timer=Some(609.375ms) timer_late=Some(85.3µs) \
                    vip_add=Some(212ns) announce=None advert=Some(1.5s)";
        let ms = |v: f64| Duration::from_secs_f64(v / 1e3);
        let near = |a: Option<Duration>, b: Duration| a.is_some_and(|a| a.abs_diff(b) < ms(1e-6));
        assert!(near(trace_duration(line, "timer"), ms(609.375)));
        assert!(near(trace_duration(line, "timer_late"), ms(0.0853)));
        assert!(near(trace_duration(line, "vip_add"), ms(0.000_212)));
        assert!(near(trace_duration(line, "advert"), ms(1500.0)));
        assert_eq!(trace_duration(line, "announce"), None);
        assert_eq!(trace_duration(line, "took"), None, "not an Option");
        assert_eq!(trace_duration(line, "absent"), None);
    }

    #[test]
    fn the_highest_priority_is_expected_master_and_ties_go_to_the_higher_address() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V4, 0)]);
        spec.priorities = vec![150, 100, 100];
        assert_eq!(expected_master(&spec, 1..=3), Some(1));
        assert_eq!(expected_master(&spec, 2..=3), Some(3));
        assert_eq!(expected_master(&spec, []), None);
    }
}
