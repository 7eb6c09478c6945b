//! The same lab scenarios with our agent, alone and mixed with keepalived (needs root and the
//! agent binary: `cargo build -p kube-vrrp-agent`, or KUBE_VRRP_AGENT=path). Built only with
//! `--features agent-lab`, because the agent does not exist yet; a missing binary fails with
//! "agent binary not built".
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod scenarios;

use std::time::Duration;

use kube_vrrp_e2e::addressing::{self, Family};
use kube_vrrp_e2e::daemon::{Daemon, DaemonKind::Agent, DaemonKind::Keepalived};
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::scenario::Running;
use kube_vrrp_e2e::{LabSpec, Version};

fn require_agent() {
    if let Err(e) = kube_vrrp_e2e::agent::binary() {
        panic!("{e}");
    }
}

#[test]
fn three_agents_elect_the_highest_priority_and_only_it_answers_for_the_vip() {
    require_agent();
    scenarios::election(Agent);
}

#[test]
fn agent_v2_master_death_fails_over_after_master_down_interval() {
    require_agent();
    scenarios::v2_death_fails_over_after_master_down_interval(Agent);
}

#[test]
fn agent_sigterm_hands_over_after_skew_time() {
    require_agent();
    scenarios::sigterm_hands_over_after_skew_time(Agent);
}

#[test]
fn agent_ipv6_master_death_fails_over_after_master_down_interval() {
    require_agent();
    scenarios::ipv6_death_fails_over_after_master_down_interval(Agent);
}

#[test]
fn unicast_agents_fail_over_and_advertise_to_each_other_only() {
    require_agent();
    scenarios::unicast_fails_over_and_advertises_to_peers_only(Agent);
}

#[test]
fn partitioned_agents_both_become_master_until_healed() {
    require_agent();
    scenarios::partition_makes_both_master_until_healed(Agent);
}

#[test]
fn agent_nopreempt_keeps_the_current_master_when_a_higher_priority_returns() {
    require_agent();
    scenarios::nopreempt_keeps_the_current_master_when_a_higher_priority_returns(Agent);
}

#[test]
fn agent_preempt_delay_holds_back_a_returning_higher_priority() {
    require_agent();
    scenarios::preempt_delay_holds_back_a_returning_higher_priority(Agent);
}

#[test]
fn keepalived_backups_take_over_from_a_dying_agent_master() {
    require_agent();
    scenarios::mixed_death_fails_over_on_time([Agent, Keepalived, Keepalived]);
}

#[test]
fn an_agent_backup_takes_over_from_a_dying_keepalived_master() {
    require_agent();
    scenarios::mixed_death_fails_over_on_time([Keepalived, Agent, Keepalived]);
}

#[test]
fn v2_pass_interop_hands_over_from_keepalived_to_an_agent_on_sigterm() {
    require_agent();
    scenarios::mixed_v2_sigterm_hands_over_after_skew_time([Keepalived, Agent, Agent]);
}

#[test]
fn agent_status_names_the_master_and_the_backups_hear_it() {
    require_root();
    require_agent();
    let spec = scenarios::instance(Family::V4, Version::V3, Duration::from_millis(100));
    let running = Running::start(
        Agent,
        LabSpec {
            nodes: 3,
            ipv6: false,
        },
        spec,
    )
    .unwrap();
    assert_eq!(running.wait_for_master(Duration::from_secs(10)).unwrap(), 1);
    let master_ip = addressing::node_ip(1, Family::V4).to_string();
    for (i, daemon) in running.daemons.iter().enumerate() {
        let Some(Daemon::Agent(agent)) = daemon else {
            panic!("node {} runs no agent", i + 1);
        };
        let status = agent.status(&running.lab).unwrap();
        let web = status
            .iter()
            .find(|s| s.name == "web")
            .unwrap_or_else(|| panic!("no instance web in {status:?}"));
        let node = i + 1;
        assert_eq!(
            web.priority,
            Some(running.instance.priority(node)),
            "n{node}: {web:?}"
        );
        if node == 1 {
            assert!(web.is_master(), "n1: {web:?}");
        } else {
            assert!(web.state.eq_ignore_ascii_case("backup"), "n{node}: {web:?}");
            assert_eq!(
                web.master_address.as_deref(),
                Some(master_ip.as_str()),
                "n{node}: {web:?}"
            );
        }
    }
}

#[test]
fn agent_link_down_releases_the_vips_and_link_up_preempts_back() {
    require_agent();
    scenarios::link_down_releases_the_vips_and_link_up_preempts_back(Agent);
}
