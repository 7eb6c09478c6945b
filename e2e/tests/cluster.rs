//! The cluster half, for real: a kube-apiserver and etcd built from Go modules, the chart
//! installed with Helm, two operator replicas and one agent per node namespace run with the
//! chart's rendered command, args, environment and ServiceAccount tokens (so RBAC and the
//! admission policy are enforced by the API server). Each scenario asserts on what a user
//! sees (`kubectl get vip`, conditions, Events in `kubectl describe`), on the VIP as the
//! client namespace sees it, and on the API server's answers (objects, audit log).
//!
//! Needs root, the control plane (`make controlplane`), kubectl and Helm (`make tools`) and the
//! workspace binaries; a missing piece fails with what to run.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod cluster_scenarios;

use cluster_scenarios as s;

#[test]
fn crds_examples_and_invalid_manifests_get_one_verdict_from_the_api_server_and_the_validator() {
    s::timed("validation", s::validation::run);
}

#[test]
fn applying_a_virtual_ip_shows_its_master_in_kubectl_get_and_its_events_in_describe() {
    s::timed("apply", s::apply::run);
}

#[test]
fn a_master_dying_hard_moves_status_master_without_ever_showing_split_brain() {
    s::timed("failover", s::failover::run);
}

#[test]
fn a_rolling_restart_of_every_agent_keeps_the_vip_answering_and_never_shows_split_brain() {
    s::timed("rolling", s::rolling::run);
}

#[test]
fn a_partition_shows_split_brain_naming_the_masters_and_clears_after_healing() {
    s::timed("partition", s::partition::run);
}

#[test]
fn operators_and_agents_need_nothing_beyond_the_charts_rbac_and_agents_are_held_to_their_own_node()
{
    s::timed("rbac", s::rbac::run);
}

#[test]
fn a_standby_operator_takes_over_the_lease_and_the_old_leader_writes_nothing_after_losing_it() {
    s::timed("leader", s::leader::run);
}

#[test]
fn the_api_server_stopping_moves_no_vip_and_an_agent_restarted_meanwhile_runs_its_last_config() {
    s::timed("outage", s::outage::run);
}

#[test]
fn one_bad_virtual_ip_is_rejected_alone_and_shown_while_the_nodes_other_instances_follow_changes() {
    s::timed("isolation", s::isolation::run);
}

#[test]
fn cordoned_not_ready_and_excluded_nodes_hand_their_vips_over_with_priority_zero() {
    s::timed("nodes", s::nodes::run);
}

#[test]
fn the_readmes_upgrade_steps_bring_older_crds_to_the_charts_and_move_no_vip() {
    s::timed("upgrade", s::upgrade::run);
}

#[test]
fn the_charts_realtime_and_memory_lock_values_reach_every_agent_thread_and_failover_still_works() {
    s::timed("tuning", s::tuning::run);
}

#[test]
fn a_vrrp_node_the_api_server_refuses_is_named_in_the_virtual_ips_degraded_condition_until_written()
{
    s::timed("refused", s::refused::run);
}
