//! A `virtual_server` block (address and port) into a VirtualServer spec: scheduler,
//! forwarding, persistence, quorum, sorry server, real servers with weights, and their checker
//! (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`) with keepalived's timers resolved the way
//! keepalived does: a checker's setting, else its real server's, else the virtual server's,
//! else the checker type's default.

use std::net::IpAddr;
use std::time::Duration;

use kube_vrrp_crds::{
    DurationString, Forwarding, HealthCheck, HttpCheck, Protocol, RealServer, Scheduler,
    SchedulerFlag, ScriptCheck, SorryServer, TcpCheck, Tunnel, TunnelChecksum, TunnelType,
    VirtualServerSpec,
};

use crate::ast::Statement;
use crate::keywords::{Context, report_untranslated};
use crate::model::VirtualServerDef;
use crate::position::Position;
use crate::report::{ItemKind, Report};
use crate::words::command_of;

use super::values::{flag, refuse, timer, unsigned, value};

/// keepalived's `delay_loop` default.
const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's `connect_timeout` default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// keepalived's `persistence_timeout` without a value.
const DEFAULT_PERSISTENCE: u64 = 360;
/// The most attempts a VirtualServer health check makes.
const MAX_RETRIES: u32 = 10;
/// The most status codes a VirtualServer HTTP check lists.
const MAX_STATUS_CODES: usize = 16;

/// Checker timers that a virtual server passes to its real servers and those to their checkers.
#[derive(Clone, Debug, Default)]
struct Timers {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    virtualhost: Option<String>,
}

impl Timers {
    /// Reads a timer keyword; false when `stmt` is not one (`nb_get_retry`, the old name of
    /// `retry`, exists in checkers only).
    fn read(&mut self, stmt: &Statement, what: &str, checker: bool, report: &mut Report) -> bool {
        match stmt.keyword() {
            "nb_get_retry" if !checker => return false,
            "delay_loop" | "connect_timeout" | "delay_before_retry" => {
                let Some(v) = value(stmt, report, what) else {
                    return true;
                };
                let Some(d) = timer(v) else {
                    refuse(report, stmt, what, "takes seconds");
                    return true;
                };
                match stmt.keyword() {
                    "delay_loop" => self.delay_loop = Some(d),
                    "connect_timeout" => self.connect_timeout = Some(d),
                    _ => self.delay_before_retry = Some(d),
                }
            }
            "retry" | "nb_get_retry" => match stmt
                .word(1)
                .and_then(|v| unsigned(v, 0, u64::from(u32::MAX)))
            {
                Some(v) => self.retry = Some(v as u32),
                None => refuse(report, stmt, what, "takes a count"),
            },
            "virtualhost" => self.virtualhost = value(stmt, report, what).map(str::to_owned),
            _ => return false,
        }
        true
    }

    /// `self` with what it does not set taken from `outer`.
    fn within(&self, outer: &Timers) -> Timers {
        Timers {
            delay_loop: self.delay_loop.or(outer.delay_loop),
            connect_timeout: self.connect_timeout.or(outer.connect_timeout),
            retry: self.retry.or(outer.retry),
            delay_before_retry: self.delay_before_retry.or(outer.delay_before_retry),
            virtualhost: self
                .virtualhost
                .clone()
                .or_else(|| outer.virtualhost.clone()),
        }
    }
}

/// Reads one `virtual_server` block; `None` when it does not translate.
pub(super) fn read(block: &Statement, report: &mut Report) -> Option<VirtualServerDef> {
    let what = format!("virtual_server {}", block.words[1..].join(" "));
    let (address, port) = match (block.word(1), block.word(2)) {
        (Some("fwmark" | "group"), _) => {
            report.error(
                ItemKind::Unsupported,
                &block.at,
                format!(
                    "{what}: a virtual server by {} has no equivalent; not imported",
                    block.words[1]
                ),
                Some("a VirtualServer is an address and port of a VirtualIP: write one per port"),
            );
            return None;
        }
        (Some(ip), port) => {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                refuse(
                    report,
                    block,
                    "virtual_server",
                    "does not start with an IP address",
                );
                return None;
            };
            let Some(p) = port.and_then(|p| unsigned(p, 1, 65_535)) else {
                report.error(
                    ItemKind::Unsupported,
                    &block.at,
                    format!(
                        "{what}: a virtual server without a port has no equivalent; not imported"
                    ),
                    Some("a VirtualServer serves one port: write one per port"),
                );
                return None;
            };
            (ip, p as u16)
        }
        (None, _) => {
            refuse(
                report,
                block,
                "virtual_server",
                "needs an address and a port",
            );
            return None;
        }
    };
    let mut spec = VirtualServerSpec {
        virtual_ip_ref: String::new(),
        port,
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wlc,
        scheduler_flags: Vec::new(),
        forwarding: Forwarding::Nat,
        tunnel: None,
        persistence_timeout: None,
        persistence_granularity: None,
        quorum: None,
        sorry_server: None,
        inhibit_on_failure: false,
        real_servers: Vec::new(),
        backend_ref: None,
        health_check: None,
    };
    let mut timers = Timers::default();
    let mut real_servers = Vec::new();
    for stmt in block.children() {
        if timers.read(stmt, &what, false, report) {
            continue;
        }
        match stmt.keyword() {
            "lvs_sched" | "lb_algo" => scheduler(stmt, &what, &mut spec, report),
            "lvs_method" | "lb_kind" => {
                if let Some((f, tunnel)) = forwarding(stmt, &what, report) {
                    spec.forwarding = f;
                    spec.tunnel = tunnel;
                }
            }
            "persistence_granularity" => match stmt.word(1).and_then(granularity) {
                Some(g) => spec.persistence_granularity = Some(g),
                None => refuse(
                    report,
                    stmt,
                    &what,
                    "takes an IPv4 netmask (255.255.255.0) or a prefix length",
                ),
            },
            "sh-fallback" | "mh-fallback" | "flag-1" => {
                scheduler_flag(&mut spec, SchedulerFlag::Fallback);
            }
            "sh-port" | "mh-port" | "flag-2" => scheduler_flag(&mut spec, SchedulerFlag::Port),
            "persistence_timeout" => match stmt.word(1) {
                None => {
                    spec.persistence_timeout =
                        Some(DurationString::new(format!("{DEFAULT_PERSISTENCE}s")));
                }
                Some(v) => match unsigned(v, 0, u64::from(u32::MAX)) {
                    Some(0) => spec.persistence_timeout = None,
                    Some(s) => {
                        spec.persistence_timeout = Some(DurationString::new(format!("{s}s")));
                    }
                    None => refuse(report, stmt, &what, "takes whole seconds"),
                },
            },
            "protocol" => match stmt.word(1) {
                Some("TCP") => spec.protocol = Protocol::Tcp,
                Some("UDP") => spec.protocol = Protocol::Udp,
                Some("SCTP") => spec.protocol = Protocol::Sctp,
                _ => refuse(report, stmt, &what, "takes TCP, UDP or SCTP"),
            },
            "quorum" => match stmt
                .word(1)
                .and_then(|v| unsigned(v, 1, u64::from(u32::MAX)))
            {
                Some(1) => spec.quorum = None,
                Some(q) => spec.quorum = Some(q as u32),
                None => refuse(report, stmt, &what, "takes a weight from 1"),
            },
            "sorry_server" => match stmt.word(1).map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => {
                    let sorry_port = stmt
                        .word(2)
                        .and_then(|p| unsigned(p, 1, 65_535))
                        .map(|p| p as u16);
                    spec.sorry_server = Some(SorryServer {
                        address: ip.to_string(),
                        port: sorry_port.filter(|p| *p != port),
                    });
                }
                _ => refuse(report, stmt, &what, "takes an IP address and a port"),
            },
            "inhibit_on_failure" => {
                spec.inhibit_on_failure = flag(stmt, report, &what).unwrap_or(false);
            }
            "real_server" => real_servers.push(stmt),
            _ => report_untranslated(report, Context::VirtualServer, &what, stmt),
        }
    }
    if !spec.scheduler_flags.is_empty() && !matches!(spec.scheduler, Scheduler::Sh | Scheduler::Mh)
    {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{what}: scheduler flags do nothing with the {} scheduler (only sh and mh read \
                 them); not imported",
                spec.scheduler.as_str()
            ),
            None,
        );
        spec.scheduler_flags.clear();
    }
    if spec.persistence_granularity.is_some() && spec.persistence_timeout.is_none() {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{what}: persistence_granularity does nothing without persistence_timeout; not \
                 imported"
            ),
            None,
        );
        spec.persistence_granularity = None;
    }
    if spec.forwarding != Forwarding::Nat
        && let Some(sorry) = spec.sorry_server.as_mut()
        && sorry.port.is_some()
    {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{what}: with {} forwarding the sorry server's port must be the virtual server's; \
                 keepalived resets it to {port}, and so does import",
                spec.forwarding.as_str()
            ),
            None,
        );
        sorry.port = None;
    }
    if real_servers.is_empty() {
        report.error(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no real_server; a VirtualServer needs one; not imported"),
            None,
        );
        return None;
    }
    let mut checks: Vec<(Position, Option<HealthCheck>)> = Vec::new();
    let mut inhibits = Vec::new();
    for stmt in real_servers {
        if let Some((server, check, inhibit)) = real_server(stmt, &what, &spec, &timers, report) {
            spec.real_servers.push(server);
            checks.push((stmt.at.clone(), check));
            inhibits.push(inhibit);
        }
    }
    if spec.real_servers.is_empty() {
        return None;
    }
    if let Some(first) = inhibits.first().copied().flatten()
        && inhibits.iter().all(|i| *i == Some(first))
    {
        spec.inhibit_on_failure = first;
    } else if inhibits
        .iter()
        .any(|i| i.is_some_and(|v| v != spec.inhibit_on_failure))
    {
        report.warn(
            ItemKind::Unsupported,
            &block.at,
            format!(
                "{what}: real servers differ in inhibit_on_failure; a VirtualServer has one \
                 setting; imported as {}",
                spec.inhibit_on_failure
            ),
            None,
        );
    }
    spec.health_check = one_check(&what, &block.at, &checks, report);
    Some(VirtualServerDef {
        at: block.at.clone(),
        address,
        spec,
    })
}

fn scheduler(stmt: &Statement, what: &str, spec: &mut VirtualServerSpec, report: &mut Report) {
    spec.scheduler = match stmt.word(1) {
        Some("rr") => Scheduler::Rr,
        Some("wrr") => Scheduler::Wrr,
        Some("lc") => Scheduler::Lc,
        Some("wlc") => Scheduler::Wlc,
        Some("lblc") => Scheduler::Lblc,
        Some("lblcr") => Scheduler::Lblcr,
        Some("dh") => Scheduler::Dh,
        Some("sh") => Scheduler::Sh,
        Some("sed") => Scheduler::Sed,
        Some("nq") => Scheduler::Nq,
        Some("mh") => Scheduler::Mh,
        Some(other @ ("fo" | "ovf" | "twos")) => {
            report.warn(
                ItemKind::Unsupported,
                &stmt.at,
                format!("{what}: scheduler {other} has no equivalent; imported with wlc"),
                Some("pick one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh"),
            );
            Scheduler::Wlc
        }
        _ => {
            refuse(report, stmt, what, "names no IPVS scheduler (wlc is used)");
            Scheduler::Wlc
        }
    };
}

/// `lvs_method NAT|DR|TUN`, with TUN's `type ipip|gue port N|gre` and `nocsum|csum|remcsum`.
fn forwarding(
    stmt: &Statement,
    what: &str,
    report: &mut Report,
) -> Option<(Forwarding, Option<Tunnel>)> {
    let f = match stmt.word(1) {
        Some("NAT") => Forwarding::Nat,
        Some("DR") => Forwarding::Dr,
        Some("TUN") => Forwarding::Tun,
        _ => {
            refuse(report, stmt, what, "takes NAT, DR or TUN");
            return None;
        }
    };
    if stmt.words.len() <= 2 {
        return Some((f, None));
    }
    if f != Forwarding::Tun {
        refuse(report, stmt, what, "takes options after TUN only");
        return Some((f, None));
    }
    let Some((tunnel, checksum)) = tunnel(&stmt.words[2..]) else {
        refuse(
            report,
            stmt,
            what,
            "takes TUN [type ipip|gue port PORT|gre] [nocsum|csum|remcsum]",
        );
        return Some((f, None));
    };
    let Some(word) = checksum else {
        return Some((f, Some(tunnel)));
    };
    if let Some(with) = with_checksum(tunnel.clone(), word) {
        return Some((f, Some(with)));
    }
    let kind = match tunnel.kind {
        TunnelType::Ipip => "ipip",
        TunnelType::Gue => "gue",
        TunnelType::Gre => "gre",
    };
    report.warn(
        ItemKind::Invalid,
        &stmt.at,
        format!(
            "{what}: {word} does not apply to {kind} tunnels (csum: GUE and GRE, remcsum: GUE); \
             keepalived ignores it, and so does import"
        ),
        None,
    );
    Some((f, Some(tunnel)))
}

/// TUN's options as keepalived reads them: `type ipip`, `type gue port N` or `type gre`, and
/// the checksum word after them, if any (judged by [`with_checksum`]).
fn tunnel(words: &[String]) -> Option<(Tunnel, Option<&str>)> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let (kind, rest) = match words.as_slice() {
        ["type", "ipip", rest @ ..] => (TunnelType::Ipip, rest),
        ["type", "gre", rest @ ..] => (TunnelType::Gre, rest),
        ["type", "gue", "port", port, rest @ ..] => {
            let port = unsigned(port, 1, 65_535)? as u16;
            let tunnel = Tunnel {
                kind: TunnelType::Gue,
                port: Some(port),
                checksum: TunnelChecksum::None,
            };
            return match rest {
                [] => Some((tunnel, None)),
                [word] => Some((tunnel, Some(*word))),
                _ => None,
            };
        }
        _ => return None,
    };
    let tunnel = Tunnel {
        kind,
        ..Tunnel::default()
    };
    match rest {
        [] => Some((tunnel, None)),
        [word] => Some((tunnel, Some(*word))),
        _ => None,
    }
}

/// A tunnel with keepalived's checksum word applied, or `None` when the word does not apply
/// to its type (`nocsum`/`csum`: GUE and GRE; `remcsum`: GUE only).
fn with_checksum(mut tunnel: Tunnel, word: &str) -> Option<Tunnel> {
    tunnel.checksum = match (word, tunnel.kind) {
        ("nocsum", TunnelType::Gue | TunnelType::Gre) => TunnelChecksum::None,
        ("csum", TunnelType::Gue | TunnelType::Gre) => TunnelChecksum::Checksum,
        ("remcsum", TunnelType::Gue) => TunnelChecksum::RemoteChecksum,
        _ => return None,
    };
    Some(tunnel)
}

/// `persistence_granularity`: an IPv4 netmask (contiguous ones) or a prefix length, as the
/// prefix length the API takes.
fn granularity(word: &str) -> Option<u8> {
    if let Ok(mask) = word.parse::<std::net::Ipv4Addr>() {
        let bits = u32::from(mask);
        let ones = bits.leading_ones();
        return (ones > 0 && bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8);
    }
    unsigned(word, 1, 128).map(|v| v as u8)
}

/// Adds a scheduler flag once (`sh-port` and `flag-2` are the same kernel bit).
fn scheduler_flag(spec: &mut VirtualServerSpec, flag: SchedulerFlag) {
    if !spec.scheduler_flags.contains(&flag) {
        spec.scheduler_flags.push(flag);
    }
}

/// One real server, its check and its `inhibit_on_failure`.
fn real_server(
    block: &Statement,
    vs_what: &str,
    spec: &VirtualServerSpec,
    vs_timers: &Timers,
    report: &mut Report,
) -> Option<(RealServer, Option<HealthCheck>, Option<bool>)> {
    let what = format!("real_server {} of {vs_what}", block.words[1..].join(" "));
    let Some(Ok(address)) = block.word(1).map(str::parse::<IpAddr>) else {
        refuse(report, block, vs_what, "does not start with an IP address");
        return None;
    };
    let port = match block.word(2) {
        None => None,
        Some(p) => {
            let Some(p) = unsigned(p, 1, 65_535) else {
                refuse(report, block, vs_what, "has no valid port");
                return None;
            };
            Some(p as u16)
        }
    };
    let mut server = RealServer {
        address: address.to_string(),
        port: port.filter(|p| *p != spec.port),
        weight: 1,
        upper_threshold: None,
        lower_threshold: None,
    };
    if spec.forwarding != Forwarding::Nat && server.port.is_some() {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{what}: with {} forwarding the real server's port must be the virtual server's; \
                 keepalived resets it to {}, and so does import",
                spec.forwarding.as_str(),
                spec.port
            ),
            None,
        );
        server.port = None;
    }
    let mut timers = Timers::default();
    let mut checkers = Vec::new();
    let mut inhibit = None;
    for stmt in block.children() {
        if timers.read(stmt, &what, false, report) {
            continue;
        }
        match stmt.keyword() {
            "weight" => match stmt.word(1).and_then(|v| unsigned(v, 0, 65_535)) {
                Some(w) => server.weight = w as u32,
                None => refuse(report, stmt, &what, "takes a weight from 0 to 65535"),
            },
            "lvs_method" => {
                if let Some((f, _)) = forwarding(stmt, &what, report)
                    && f != spec.forwarding
                {
                    report.warn(
                        ItemKind::Unsupported,
                        &stmt.at,
                        format!(
                            "{what}: forwarding {} differs from the virtual server's {}; a \
                             VirtualServer forwards one way; imported as {}",
                            f.as_str(),
                            spec.forwarding.as_str(),
                            spec.forwarding.as_str()
                        ),
                        None,
                    );
                }
            }
            "inhibit_on_failure" => inhibit = flag(stmt, report, &what),
            "uthreshold" => match stmt
                .word(1)
                .and_then(|v| unsigned(v, 0, u64::from(u32::MAX)))
            {
                Some(0) => server.upper_threshold = None,
                Some(v) => server.upper_threshold = Some(v as u32),
                None => refuse(report, stmt, &what, "takes a connection count"),
            },
            "lthreshold" => match stmt
                .word(1)
                .and_then(|v| unsigned(v, 0, u64::from(u32::MAX)))
            {
                Some(0) => server.lower_threshold = None,
                Some(v) => server.lower_threshold = Some(v as u32),
                None => refuse(report, stmt, &what, "takes a connection count"),
            },
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" => checkers.push(stmt),
            _ => report_untranslated(report, Context::RealServer, &what, stmt),
        }
    }
    if let Some(lower) = server.lower_threshold
        && server.upper_threshold.is_none_or(|upper| lower >= upper)
    {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!(
                "{what}: lthreshold {lower} needs a uthreshold above it (IPVS ignores it \
                 otherwise); not imported"
            ),
            None,
        );
        server.lower_threshold = None;
    }
    let timers = timers.within(vs_timers);
    let mut check = None;
    for (i, stmt) in checkers.into_iter().enumerate() {
        if i > 0 {
            report.warn(
                ItemKind::Unsupported,
                &stmt.at,
                format!("{what}: a second checker has no equivalent (a VirtualServer has one health check); not imported"),
                Some("fold both probes into one script check"),
            );
            continue;
        }
        check = checker(
            stmt,
            &what,
            port.unwrap_or(spec.port),
            &timers,
            vs_timers,
            report,
        );
    }
    Some((server, check, inhibit))
}

/// One checker block as a health check.
fn checker(
    block: &Statement,
    rs_what: &str,
    rs_port: u16,
    outer: &Timers,
    vs_timers: &Timers,
    report: &mut Report,
) -> Option<HealthCheck> {
    let kind = block.keyword();
    let what = format!("{kind} of {rs_what}");
    let mut timers = Timers::default();
    let mut connect_port = None;
    let mut urls: Vec<&Statement> = Vec::new();
    let mut misc_path = None;
    let mut misc_timeout = None;
    for stmt in block.children() {
        if timers.read(stmt, &what, true, report) {
            continue;
        }
        match stmt.keyword() {
            "connect_port" => match stmt.word(1).and_then(|v| unsigned(v, 1, 65_535)) {
                Some(p) => connect_port = Some(p as u16),
                None => refuse(report, stmt, &what, "takes a port"),
            },
            "url" if matches!(kind, "HTTP_GET" | "SSL_GET") => urls.push(stmt),
            "misc_path" if kind == "MISC_CHECK" => match command_of(&stmt.raw) {
                Ok(Some((argv, _))) => misc_path = Some(argv),
                _ => refuse(report, stmt, &what, "needs a command"),
            },
            "misc_timeout" if kind == "MISC_CHECK" => {
                match stmt.word(1).and_then(|v| unsigned(v, 0, 86_400)) {
                    Some(s) => misc_timeout = Some(Duration::from_secs(s)),
                    None => refuse(report, stmt, &what, "takes whole seconds"),
                }
            }
            _ => report_untranslated(report, Context::Checker, &what, stmt),
        }
    }
    let timers = timers.within(outer);
    let port = connect_port.filter(|p| *p != rs_port);
    let (default_retry, default_delay) = match kind {
        "HTTP_GET" | "SSL_GET" => (1, Duration::from_secs(3)),
        "MISC_CHECK" => (0, Duration::from_secs(1)),
        _ => (1, Duration::from_secs(1)),
    };
    let interval = timers.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let mut check = HealthCheck {
        tcp: None,
        http: None,
        script: None,
        interval: DurationString::from_duration(interval),
        timeout: DurationString::from_duration(
            timers.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        ),
        retries: 1,
        delay_before_retry: DurationString::from_duration(
            timers.delay_before_retry.unwrap_or(default_delay),
        ),
        rise: 1,
        fall: 1,
    };
    let retry = timers.retry.unwrap_or(default_retry);
    check.retries = retry.saturating_add(1).min(MAX_RETRIES);
    if retry >= MAX_RETRIES {
        report.warn(
            ItemKind::Changed,
            &block.at,
            format!("{what}: retry {retry} is more than a VirtualServer check makes; imported as {MAX_RETRIES} attempts"),
            None,
        );
    }
    match kind {
        "TCP_CHECK" => check.tcp = Some(TcpCheck { port }),
        "MISC_CHECK" => {
            let Some(command) = misc_path else {
                report.warn(
                    ItemKind::Invalid,
                    &block.at,
                    format!("{what} has no misc_path; keepalived ignores it, and so does import"),
                    None,
                );
                return None;
            };
            report.warn(
                ItemKind::Review,
                &block.at,
                crate::script_rule::message(&what, &command),
                Some(crate::script_rule::ADVICE),
            );
            check.timeout = DurationString::from_duration(
                misc_timeout
                    .filter(|t| !t.is_zero())
                    .unwrap_or_else(|| vs_timers.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP)),
            );
            check.script = Some(ScriptCheck { command });
        }
        _ => {
            check.http = Some(http(
                &what,
                kind == "SSL_GET",
                port,
                &urls,
                &timers,
                block,
                report,
            )?);
        }
    }
    Some(check)
}

fn http(
    what: &str,
    https: bool,
    port: Option<u16>,
    urls: &[&Statement],
    timers: &Timers,
    block: &Statement,
    report: &mut Report,
) -> Option<HttpCheck> {
    let Some(url) = urls.first() else {
        report.warn(
            ItemKind::Invalid,
            &block.at,
            format!("{what} has no url; keepalived checks nothing, and import imports no check"),
            None,
        );
        return None;
    };
    for extra in &urls[1..] {
        report.warn(
            ItemKind::Unsupported,
            &extra.at,
            format!("{what}: a second url has no equivalent (an HTTP check requests one path); not imported"),
            None,
        );
    }
    let url_what = format!("url of {what}");
    let mut path = None;
    let mut codes: Option<Vec<u16>> = None;
    let mut host = None;
    for stmt in url.children() {
        match stmt.keyword() {
            "path" => path = value(stmt, report, &url_what).map(str::to_owned),
            "status_code" => match status_codes(&stmt.words[1..]) {
                Some(c) => codes = Some(c),
                None => refuse(report, stmt, &url_what, "takes codes or ranges from 100 to 599"),
            },
            "virtualhost" => host = value(stmt, report, &url_what).map(str::to_owned),
            "digest" => report.warn(
                ItemKind::Unsupported,
                &stmt.at,
                format!(
                    "{url_what}: digest is an MD5 of the body, and a VirtualServer checks a \
                     SHA-256; imported without the body check"
                ),
                Some("set healthCheck.http.bodyDigest to the SHA-256 of the page (e.g. curl -s URL | sha256sum)"),
            ),
            _ => report_untranslated(report, Context::Checker, &url_what, stmt),
        }
    }
    let Some(path) = path else {
        report.warn(
            ItemKind::Invalid,
            &url.at,
            format!("{url_what} has no path; keepalived ignores it, and import imports no check"),
            None,
        );
        return None;
    };
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let mut expected = codes.unwrap_or_else(|| (200..=299).collect());
    if expected.len() > MAX_STATUS_CODES {
        // Only registered codes are ever sent by servers; keep those.
        expected.retain(|c| REGISTERED.contains(c));
    }
    if expected.len() > MAX_STATUS_CODES {
        report.warn(
            ItemKind::Changed,
            &url.at,
            format!(
                "{url_what}: more than {MAX_STATUS_CODES} status codes; imported with the first \
                 {MAX_STATUS_CODES}"
            ),
            Some("list the codes your service returns"),
        );
        expected.truncate(MAX_STATUS_CODES);
    }
    Some(HttpCheck {
        path,
        port,
        host: host.or_else(|| timers.virtualhost.clone()),
        https,
        expected_status: expected,
        body_digest: None,
    })
}

/// IANA-registered HTTP status codes.
const REGISTERED: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506,
    507, 508, 510, 511,
];

/// `200 201-204` into the codes, in order.
fn status_codes(words: &[String]) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for word in words {
        let (lo, hi) = word.split_once('-').unwrap_or((word, word));
        let lo = unsigned(lo, 100, 599)? as u16;
        let hi = unsigned(hi, 100, 599)? as u16;
        if lo > hi {
            return None;
        }
        for c in lo..=hi {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The one health check of a VirtualServer from its real servers' checks.
fn one_check(
    what: &str,
    at: &Position,
    checks: &[(Position, Option<HealthCheck>)],
    report: &mut Report,
) -> Option<HealthCheck> {
    let first = checks.iter().find_map(|(_, c)| c.clone());
    let differing: Vec<Position> = checks
        .iter()
        .filter(|(_, c)| *c != first)
        .map(|(p, _)| p.clone())
        .collect();
    if !differing.is_empty() {
        let mut places = vec![at.clone()];
        places.extend(differing);
        report.push(
            crate::report::Severity::Warning,
            ItemKind::Changed,
            places,
            format!(
                "{what}: real servers are checked differently; a VirtualServer checks all its \
                 real servers one way; imported with the first real server's check"
            ),
            Some("split the real servers into VirtualServers that share a check, or make the checks equal"),
        );
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_take_single_codes_and_ranges() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            status_codes(&words("200 301-303")),
            Some(vec![200, 301, 302, 303])
        );
        assert_eq!(status_codes(&words("99")), None);
        assert_eq!(status_codes(&words("300-200")), None);
    }
}
