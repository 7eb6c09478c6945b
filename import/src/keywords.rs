//! keepalived keywords import reads past without translating: the ones with no kube-vrrp
//! equivalent (each with what to do instead), and everything else, reported as unknown with the
//! closest keyword of that block as a suggestion.

use crate::ast::Statement;
use crate::report::{ItemKind, Report};

/// The block a keyword appears in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// The top level of the file.
    Top,
    /// `global_defs`.
    Global,
    /// `vrrp_instance`.
    Instance,
    /// `vrrp_script`.
    Script,
    /// `track_file`.
    TrackFile,
    /// `vrrp_sync_group`.
    SyncGroup,
    /// `virtual_server`.
    VirtualServer,
    /// `real_server`.
    RealServer,
    /// A checker (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`) or its HTTP `url`.
    Checker,
}

impl Context {
    /// The block's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Top => "the top level",
            Self::Global => "global_defs",
            Self::Instance => "vrrp_instance",
            Self::Script => "vrrp_script",
            Self::TrackFile => "track_file",
            Self::SyncGroup => "vrrp_sync_group",
            Self::VirtualServer => "virtual_server",
            Self::RealServer => "real_server",
            Self::Checker => "the checker",
        }
    }
}

/// What to do instead of keepalived's notification scripts.
pub const NOTIFY: &str = "every node's state is the metric kube_vrrp_instance_state and its \
    /status, and in a cluster the operator records each change of MASTER (and any split brain) \
    as an Event on the VirtualIP; run the hook from something that watches those (an Event \
    watcher, or an Alertmanager webhook on the chart's alerts)";
/// What to do instead of email alerts.
pub const EMAIL: &str = "route the chart's Prometheus alerts (dual MASTER, no MASTER, flapping, \
    agent down, health-check failures) through Alertmanager to email";
/// What to do instead of SNMP / D-Bus.
pub const METRICS: &str = "scrape the agent's /metrics with Prometheus and read /status \
    (kube-vrrp-agent status)";
/// What to do instead of keepalived's real-time priorities.
pub const REALTIME: &str = "set the chart's agent.realtimePriority (kube-vrrp-agent \
    --realtime-priority): SCHED_RR for the agent's VRRP threads, one priority for the whole \
    agent; its health checks and scripts run under the normal scheduler";
/// What to do instead of keepalived's `*_no_swap`.
pub const NO_SWAP: &str = "set the chart's agent.lockMemory (kube-vrrp-agent --lock-memory), \
    which locks the whole agent's memory";
/// What to do instead of the rest of keepalived's process tuning.
pub const TUNING: &str = "none: the agent is one process; give its pod a CPU request";
/// What to do instead of keepalived's firewall handling.
pub const FIREWALL: &str = "kube-vrrp installs no firewall rules; add the rules you need to the \
    node's firewall";
/// What to do instead of static or virtual routes, rules and addresses.
pub const ROUTING: &str = "keep them in the node's own network configuration, or add them from \
    a hook on the VirtualIP's Events";
/// What to do instead of BFD.
pub const BFD: &str = "track the neighbour with a script (track.scripts), or have your BFD \
    daemon write a tracked file (track.files)";
/// What to do instead of `track_process`.
pub const PROCESS: &str = "track the process with a script, e.g. command [\"/usr/bin/pgrep\", \
    \"-x\", \"haproxy\"] in track.scripts";
/// What to do when a keyword only tunes keepalived's own VRRP implementation.
pub const PROTOCOL: &str = "none: the agent follows RFC 5798 here; check that the default suits \
    you";

/// What to do about a keyword that only tunes how keepalived itself runs.
const NOTHING: &str = "none: it concerns keepalived itself";
/// What to do about IPVS synchronisation.
const LVS_SYNC: &str =
    "none: IPVS connection synchronisation and timeouts are not managed by kube-vrrp";
/// What to do about script settings.
const SCRIPTS: &str = "the agent runs scripts itself; keep them in a directory only root can write";
/// What to do about VirtualServer details.
const SERVER: &str = "none: VirtualServer has no such setting; check that its defaults suit you";

use Context::{
    Checker, Global, Instance, RealServer, Script, SyncGroup, Top, TrackFile, VirtualServer,
};

/// keepalived keywords with no kube-vrrp equivalent: where they appear, and what to do instead.
pub const UNSUPPORTED: &[(&[Context], &[&str], &str)] = &[
    (
        &[Instance, SyncGroup],
        &[
            "notify",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "notify_priority_changes",
        ],
        NOTIFY,
    ),
    (
        &[Instance],
        &["notify_deleted", "notify_master_rx_lower_pri"],
        NOTIFY,
    ),
    (&[RealServer], &["notify_up", "notify_down"], NOTIFY),
    (&[VirtualServer], &["quorum_up", "quorum_down"], NOTIFY),
    (
        &[Global],
        &[
            "notify_fifo",
            "notify_fifo_script",
            "vrrp_notify_fifo",
            "vrrp_notify_fifo_script",
            "lvs_notify_fifo",
            "lvs_notify_fifo_script",
            "fifo_write_vrrp_states_on_reload",
            "vrrp_notify_priority_changes",
            "rs_init_notifies",
        ],
        NOTIFY,
    ),
    (
        &[Instance, SyncGroup, VirtualServer, RealServer],
        &["smtp_alert"],
        EMAIL,
    ),
    (
        &[Global],
        &[
            "notification_email",
            "notification_email_from",
            "smtp_server",
            "smtp_helo_name",
            "smtp_connect_timeout",
            "smtp_alert",
            "smtp_alert_vrrp",
            "smtp_alert_checker",
            "no_email_faults",
            "no_checker_emails",
        ],
        EMAIL,
    ),
    (
        &[Global],
        &[
            "snmp_socket",
            "enable_snmp_vrrp",
            "enable_snmp_keepalived",
            "enable_snmp_checker",
            "enable_snmp_rfc",
            "enable_snmp_rfcv2",
            "enable_snmp_rfcv3",
            "enable_traps",
            "enable_dbus",
            "dbus_service_name",
        ],
        METRICS,
    ),
    (&[VirtualServer, RealServer], &["snmp_name"], METRICS),
    (
        &[Global],
        &[
            "vrrp_priority",
            "checker_priority",
            "bfd_priority",
            "vrrp_rlimit_rttime",
            "checker_rlimit_rttime",
            "bfd_rlimit_rttime",
            "vrrp_cpu_affinity",
            "checker_cpu_affinity",
            "bfd_cpu_affinity",
            "max_auto_priority",
            "min_auto_priority_delay",
            "child_wait_time",
            "vrrp_startup_delay",
        ],
        TUNING,
    ),
    (
        &[Global],
        &["vrrp_rt_priority", "checker_rt_priority", "bfd_rt_priority"],
        REALTIME,
    ),
    (
        &[Global],
        &["vrrp_no_swap", "checker_no_swap", "bfd_no_swap"],
        NO_SWAP,
    ),
    (
        &[Global],
        &[
            "vrrp_iptables",
            "vrrp_ipsets",
            "nftables",
            "nftables_priority",
            "nftables_counters",
            "nftables_ifindex",
            "nftables_ipvs",
            "nftables_ipvs_priority",
            "nftables_ipvs_start_fwmark",
        ],
        FIREWALL,
    ),
    (
        &[Top],
        &[
            "static_ipaddress",
            "static_routes",
            "static_rules",
            "track_group",
        ],
        ROUTING,
    ),
    (
        &[Instance],
        &["virtual_routes", "virtual_rules", "promote_secondaries"],
        ROUTING,
    ),
    (&[Top], &["bfd_instance"], BFD),
    (&[Instance, SyncGroup], &["track_bfd"], BFD),
    (&[Top], &["vrrp_track_process"], PROCESS),
    (&[Instance, SyncGroup], &["track_process"], PROCESS),
    (
        &[Instance],
        &[
            "down_timer_adverts",
            "lower_prio_no_advert",
            "higher_prio_send_advert",
            "skip_check_adv_addr",
            "old_unicast_checksum",
            "kernel_rx_buf_size",
            "garp_lower_prio_delay",
            "garp_lower_prio_repeat",
            "garp_extra_if",
            "debug",
            "linkbeat_use_polling",
            "track_src_ip",
            "unicast_ttl",
            "unicast_fault_no_peer",
            "mcast_src_ip",
            "mcast_dst_ip",
            "vmac_xmit_base",
            "use_vmac_addr",
            "use_ipvlan",
            "vrf",
            "lvs_sync_daemon_interface",
        ],
        PROTOCOL,
    ),
    (
        &[Global],
        &[
            "vrrp_down_timer_adverts",
            "vrrp_lower_prio_no_advert",
            "vrrp_higher_prio_send_advert",
            "vrrp_skip_check_adv_addr",
            "vrrp_garp_lower_prio_delay",
            "vrrp_garp_lower_prio_repeat",
            "vrrp_garp_extra_if",
            "vrrp_mcast_group4",
            "vrrp_mcast_group6",
            "vrrp_rx_bufs_policy",
            "vrrp_rx_bufs_multiplier",
            "log_unknown_vrids",
            "vmac_prefix",
            "vmac_addr_prefix",
            "linkbeat_use_polling",
            "dynamic_interfaces",
            "vrrp_netlink_cmd_rcv_bufs",
            "vrrp_netlink_cmd_rcv_bufs_force",
            "vrrp_netlink_monitor_rcv_bufs",
            "vrrp_netlink_monitor_rcv_bufs_force",
            "lvs_netlink_cmd_rcv_bufs",
            "lvs_netlink_cmd_rcv_bufs_force",
            "lvs_netlink_monitor_rcv_bufs",
            "lvs_netlink_monitor_rcv_bufs_force",
            "process_monitor_rcv_bufs",
            "process_monitor_rcv_bufs_force",
            "default_interface",
        ],
        PROTOCOL,
    ),
    (
        &[Global],
        &[
            "lvs_sync_daemon",
            "lvs_timeouts",
            "lvs_flush",
            "lvs_flush_on_stop",
        ],
        LVS_SYNC,
    ),
    (
        &[Top],
        &[
            "linkbeat_interfaces",
            "interface_up_down_delays",
            "garp_group",
            "net_namespace",
            "net_namespace_ipvs",
            "namespace_with_ipsets",
            "instance",
            "use_pid_dir",
            "SSL",
            "virtual_server_group",
        ],
        PROTOCOL,
    ),
    (
        &[Global],
        &[
            "script_user",
            "enable_script_security",
            "startup_script",
            "startup_script_timeout",
            "shutdown_script",
            "shutdown_script_timeout",
        ],
        SCRIPTS,
    ),
    (
        &[Global],
        &[
            "tmp_config_directory",
            "config_save_dir",
            "process_names",
            "process_name",
            "vrrp_process_name",
            "checker_process_name",
            "bfd_process_name",
            "reload_check_config",
            "reload_time_file",
            "reload_repeat",
            "include_check",
            "random_seed",
            "umask",
            "data_use_instance",
            "checker_log_all_failures",
        ],
        NOTHING,
    ),
    (
        &[VirtualServer],
        &[
            "ha_suspend",
            "alpha",
            "omega",
            "hysteresis",
            "persistence_engine",
            "ip_family",
            "sorry_server_inhibit",
            "sorry_server_lvs_method",
            "warmup",
            "flag-3",
            "ops",
        ],
        SERVER,
    ),
    (&[RealServer], &["alpha", "warmup"], SERVER),
    (
        &[Checker],
        &[
            "connect_ip",
            "bindto",
            "bind_if",
            "bind_port",
            "fwmark",
            "alpha",
            "warmup",
            "log_all_failures",
            "http_protocol",
            "fast_recovery",
            "enable_sni",
            "regex",
            "regex_no_match",
            "regex_options",
            "regex_stack",
            "regex_min_offset",
            "regex_max_offset",
            "misc_dynamic",
            "user",
        ],
        SERVER,
    ),
    (
        &[RealServer],
        &[
            "SMTP_CHECK",
            "DNS_CHECK",
            "UDP_CHECK",
            "PING_CHECK",
            "FILE_CHECK",
            "BFD_CHECK",
        ],
        "use a tcp, http or script health check (a script can run any probe)",
    ),
    (
        &[Script],
        &["user"],
        "the agent runs track scripts as its own user",
    ),
    (
        &[Script],
        &["init_fail"],
        "the agent counts a script as failed until it passes",
    ),
    (
        &[TrackFile],
        &["init_file"],
        "create the file on the node before the agent starts",
    ),
    (&[SyncGroup], &["global_tracking"], PROTOCOL),
];

/// What to do instead of `keyword`, which has no equivalent in `context`.
fn unsupported(context: Context, keyword: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(contexts, keywords, _)| contexts.contains(&context) && keywords.contains(&keyword))
        .map(|(_, _, advice)| *advice)
}

/// Every block kind.
pub const CONTEXTS: [Context; 9] = [
    Context::Top,
    Context::Global,
    Context::Instance,
    Context::Script,
    Context::TrackFile,
    Context::SyncGroup,
    Context::VirtualServer,
    Context::RealServer,
    Context::Checker,
];

/// Keywords import translates (or knows to need nothing) in `context`.
pub fn translated(context: Context) -> &'static [&'static str] {
    match context {
        Context::Top => &[
            "global_defs",
            "vrrp_instance",
            "vrrp_script",
            "vrrp_sync_group",
            "track_file",
            "vrrp_track_file",
            "virtual_server",
        ],
        Context::Global => &[
            "router_id",
            "vrrp_version",
            "vrrp_strict",
            "vrrp_garp_master_delay",
            "vrrp_garp_master_repeat",
            "vrrp_garp_master_refresh",
            "vrrp_garp_master_refresh_repeat",
            "vrrp_garp_interval",
            "vrrp_gna_interval",
            "vrrp_min_garp",
            "vrrp_check_unicast_src",
        ],
        Context::Instance => &[
            "state",
            "interface",
            "virtual_router_id",
            "priority",
            "advert_int",
            "version",
            "nopreempt",
            "preempt",
            "preempt_delay",
            "accept",
            "no_accept",
            "authentication",
            "unicast_src_ip",
            "unicast_peer",
            "virtual_ipaddress",
            "virtual_ipaddress_excluded",
            "track_interface",
            "track_script",
            "track_file",
            "use_vmac",
            "garp_master_delay",
            "garp_master_repeat",
            "garp_master_refresh",
            "garp_master_refresh_repeat",
            "strict_mode",
            "dont_track_primary",
            "check_unicast_src",
            "native_ipv6",
        ],
        Context::Script => &["script", "interval", "timeout", "weight", "rise", "fall"],
        Context::TrackFile => &["file", "weight"],
        Context::SyncGroup => &[
            "group",
            "track_interface",
            "track_script",
            "track_file",
            "sync_group_tracking_weight",
        ],
        Context::VirtualServer => &[
            "lvs_sched",
            "lb_algo",
            "lvs_method",
            "lb_kind",
            "persistence_timeout",
            "protocol",
            "quorum",
            "sorry_server",
            "inhibit_on_failure",
            "real_server",
            "delay_loop",
            "connect_timeout",
            "retry",
            "delay_before_retry",
            "virtualhost",
        ],
        Context::RealServer => &[
            "weight",
            "lvs_method",
            "inhibit_on_failure",
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "MISC_CHECK",
            "delay_loop",
            "connect_timeout",
            "retry",
            "delay_before_retry",
            "virtualhost",
        ],
        Context::Checker => &[
            "connect_port",
            "connect_timeout",
            "retry",
            "nb_get_retry",
            "delay_before_retry",
            "delay_loop",
            "url",
            "path",
            "status_code",
            "digest",
            "virtualhost",
            "misc_path",
            "misc_timeout",
        ],
    }
}

/// Reports `stmt`, which import does not translate in `context` (`what`: the block, e.g.
/// "vrrp_instance VI_1"): as unsupported with advice when keepalived knows it there, else as
/// unknown with the closest keyword.
pub fn report_untranslated(report: &mut Report, context: Context, what: &str, stmt: &Statement) {
    let keyword = stmt.keyword();
    let block = if stmt.block.is_some() {
        " (and its block)"
    } else {
        ""
    };
    if let Some(advice) = unsupported(context, keyword) {
        let message = if matches!(advice, REALTIME | NO_SWAP) {
            format!("{keyword} in {what} is an agent setting, not part of a manifest; not imported")
        } else {
            format!("{keyword} in {what} has no kube-vrrp equivalent; not imported{block}")
        };
        report.warn(ItemKind::Unsupported, &stmt.at, message, Some(advice));
        return;
    }
    let suggestion = closest(keyword, context);
    let message = match suggestion {
        Some(s) => {
            format!("unknown keyword {keyword:?} in {what} (did you mean {s:?}?); ignored{block}")
        }
        None => format!("unknown keyword {keyword:?} in {what}; ignored{block}"),
    };
    report.warn(
        ItemKind::Unknown,
        &stmt.at,
        message,
        Some("check the spelling against keepalived.conf(5); keepalived ignores it too"),
    );
}

/// The translated or known keyword of `context` closest to `word`, if close enough to be a
/// typo (an edit distance of at most a third of its length).
fn closest(word: &str, context: Context) -> Option<&'static str> {
    translated(context)
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d > 0 && *d <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance (keywords are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(previous + cost);
            previous = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::position::Position;

    fn stmt(words: &[&str]) -> Statement {
        Statement {
            at: Position::new(&Arc::from("k.conf"), 3),
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            raw: words.join(" "),
            block: None,
        }
    }

    #[test]
    fn a_misspelt_keyword_gets_a_suggestion() {
        let mut report = Report::default();
        report_untranslated(
            &mut report,
            Context::Instance,
            "vrrp_instance VI_1",
            &stmt(&["virtual_routerid", "51"]),
        );
        assert_eq!(
            report.items[0].message,
            "unknown keyword \"virtual_routerid\" in vrrp_instance VI_1 (did you mean \
             \"virtual_router_id\"?); ignored"
        );
        assert_eq!(report.items[0].kind, ItemKind::Unknown);
    }

    #[test]
    fn a_keyword_without_equivalent_comes_with_advice() {
        let mut report = Report::default();
        report_untranslated(
            &mut report,
            Context::Instance,
            "vrrp_instance VI_1",
            &stmt(&["notify_master", "/x"]),
        );
        let item = &report.items[0];
        assert_eq!(item.kind, ItemKind::Unsupported);
        assert_eq!(item.advice.as_deref(), Some(NOTIFY));
        assert_eq!(item.at[0].to_string(), "k.conf:3");
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("priorty", "priority"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(closest("zzzzzz", Context::Instance), None);
    }
}
