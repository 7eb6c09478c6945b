//! keepalived-only lab scenarios: they validate the harness against a known-good VRRP
//! implementation and are the baseline our agent is measured against (needs root).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod scenarios;

use kube_vrrp_e2e::addressing::Family;
use kube_vrrp_e2e::daemon::DaemonKind::Keepalived;

#[test]
fn three_keepalived_nodes_elect_the_highest_priority_and_only_it_answers_for_the_vip() {
    scenarios::election(Keepalived);
}

#[test]
fn keepalived_v2_master_death_fails_over_after_master_down_interval() {
    scenarios::v2_death_fails_over_after_master_down_interval(Keepalived);
}

#[test]
fn keepalived_sigterm_hands_over_after_skew_time() {
    scenarios::sigterm_hands_over_after_skew_time(Keepalived);
}

#[test]
fn keepalived_ipv6_master_death_fails_over_after_master_down_interval() {
    scenarios::ipv6_death_fails_over_after_master_down_interval(Keepalived);
}

#[test]
fn unicast_keepalived_peers_fail_over_and_advertise_to_each_other_only() {
    scenarios::unicast_fails_over_and_advertises_to_peers_only(Keepalived);
}

#[test]
fn partitioned_keepalived_nodes_both_become_master_until_healed() {
    scenarios::partition_makes_both_master_until_healed(Keepalived);
}

#[test]
fn keepalived_nopreempt_keeps_the_current_master_when_a_higher_priority_returns() {
    scenarios::nopreempt_keeps_the_current_master_when_a_higher_priority_returns(Keepalived);
}

#[test]
fn keepalived_preempt_delay_holds_back_a_returning_higher_priority() {
    scenarios::preempt_delay_holds_back_a_returning_higher_priority(Keepalived);
}

#[test]
fn keepalived_link_down_releases_the_vips_and_link_up_preempts_back() {
    scenarios::link_down_releases_the_vips_and_link_up_preempts_back(Keepalived);
}

#[test]
fn unicast_ipv6_keepalived_peers_fail_over_and_advertise_to_each_other_only() {
    scenarios::unicast_fails_over_and_advertises_to_peers_only_over(Keepalived, Family::V6);
}
