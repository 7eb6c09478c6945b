#!/usr/bin/env python3
"""Tests of what the chart renders: each test renders the chart with some values
(helm template, from .tools/bin/helm) and asserts on the objects.

Usage: chart-tests.py   (prints one line per test, exits 1 if any fails)
"""
import subprocess
import sys
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HELM = ROOT / ".tools" / "bin" / "helm"
CHART = ROOT / "charts" / "kube-vrrp"
RULES = CHART / "rules" / "alerts.yaml"
MONITORING_APIS = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"]


def render(*values, api_versions=(), namespace="kube-vrrp", release="kube-vrrp", expect_error=False):
    cmd = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    for v in values:
        cmd += ["--set", v]
    for a in api_versions:
        cmd += ["--api-versions", a]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if expect_error:
        assert proc.returncode != 0, "helm template succeeded but should have failed"
        return proc.stderr
    assert proc.returncode == 0, f"helm template failed: {proc.stderr.strip()}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs):
    return sorted(d["kind"] for d in docs)


def container(workload):
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def rules_of(role):
    return role["rules"]


def grants(role, group, resource, verb):
    return any(
        (group in r.get("apiGroups", []) or "*" in r.get("apiGroups", []))
        and (resource in r.get("resources", []) or "*" in r.get("resources", []))
        and (verb in r.get("verbs", []) or "*" in r.get("verbs", []))
        for r in rules_of(role)
    )


# ------------------------------------------------------------------ the agent

def agent_runs_on_the_host_network_with_only_net_admin_and_net_raw():
    ds = one(render(), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    sc = container(ds)["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sorted(sc["capabilities"]["add"]) == ["NET_ADMIN", "NET_RAW"]


def agent_gets_its_node_name_from_the_downward_api_and_passes_it_to_run():
    c = container(one(render(), "DaemonSet"))
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert c["command"] == ["kube-vrrp-agent"]
    assert c["args"] == ["run", "--node", "$(NODE_NAME)", "--listen", "[::]:7475",
                         "--state-dir", "/var/lib/kube-vrrp",
                         "--track-file-dir", "/etc/kube-vrrp/track"]
    # Both families on a dual-stack node.
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIPs"


def agent_probes_healthz_and_readyz_on_its_listener():
    c = container(one(render("agent.listenPort=9191"), "DaemonSet"))
    assert c["ports"] == [{"name": "metrics", "containerPort": 9191, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "[::]:9191" in c["args"]


def agent_is_node_critical_tolerates_control_planes_and_updates_one_node_at_a_time():
    ds = one(render(), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}


def agent_tolerates_every_taint_when_asked():
    spec = one(render("agent.tolerateAllTaints=true"), "DaemonSet")["spec"]["template"]["spec"]
    assert spec["tolerations"] == [{"operator": "Exists"}]


def no_namespace_is_rendered_unless_asked():
    assert [d for d in render() if d["kind"] == "Namespace"] == []


def the_release_namespace_is_rendered_privileged_and_kept_on_uninstall_when_asked():
    ns = one(render("namespace.create=true"), "Namespace")
    assert ns["metadata"]["name"] == "kube-vrrp"
    labels = ns["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "privileged"
    assert ns["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def agent_rbac_reads_vrrpnodes_patches_their_status_and_nothing_else():
    docs = render()
    role = one(docs, "ClusterRole", "kube-vrrp-agent")
    assert grants(role, "kubevrrp.io", "vrrpnodes", "watch")
    assert grants(role, "kubevrrp.io", "vrrpnodes/status", "patch")
    assert not grants(role, "kubevrrp.io", "vrrpnodes", "patch")
    assert not grants(role, "kubevrrp.io", "virtualips", "get")
    # The operator records every Event; the agent emits none, so it may not create them.
    assert not grants(role, "events.k8s.io", "events", "create")
    assert not grants(role, "", "events", "create")
    for r in rules_of(role):
        assert "*" not in r["verbs"] and "*" not in r["resources"], r
    assert not grants(role, "", "secrets", "get"), "no cluster-wide Secret access"
    cluster_roles = [r for r in docs if r["kind"] == "ClusterRole"]
    assert not any(grants(r, "", "secrets", verb) for r in cluster_roles for verb in ("get", "list", "watch"))


def agent_follows_endpoint_slices_for_endpoint_trackers_and_nothing_more():
    role = one(render(), "ClusterRole", "kube-vrrp-agent")
    assert grants(role, "discovery.k8s.io", "endpointslices", "list")
    assert grants(role, "discovery.k8s.io", "endpointslices", "watch")
    assert not grants(role, "discovery.k8s.io", "endpointslices", "create")
    assert not grants(role, "", "services", "get")


def agent_reads_secrets_of_the_release_namespace_by_default_so_v2_passwords_work():
    docs = render()
    role = one(docs, "Role", "kube-vrrp-agent-secrets")
    assert role["metadata"]["namespace"] == "kube-vrrp"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], \
        "get only: no list or watch, so names cannot be enumerated"
    binding = one(docs, "RoleBinding", "kube-vrrp-agent-secrets")
    assert binding["metadata"]["namespace"] == "kube-vrrp"
    assert binding["roleRef"]["name"] == "kube-vrrp-agent-secrets"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-vrrp-agent", "namespace": "kube-vrrp"}]
    off = render("agent.secrets.enabled=false")
    assert not any(d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"] == "kube-vrrp-agent-secrets" for d in off)


def agent_keeps_its_last_configuration_in_a_host_directory():
    ds = one(render(), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    args = container(ds)["args"]
    assert args[args.index("--state-dir") + 1] == "/var/lib/kube-vrrp", args
    assert {"name": "state", "hostPath": {"path": "/var/lib/kube-vrrp", "type": "DirectoryOrCreate"}} in spec["volumes"]
    assert {"name": "state", "mountPath": "/var/lib/kube-vrrp"} in container(ds)["volumeMounts"]
    assert container(ds)["securityContext"]["readOnlyRootFilesystem"] is True
    off = one(render("agent.stateDir="), "DaemonSet")
    assert "--state-dir" not in container(off)["args"]
    assert not any(v["name"] == "state" for v in off["spec"]["template"]["spec"]["volumes"])
    render("agent.stateDir=relative/path", expect_error=True)


def agent_reads_tracked_files_from_a_host_directory_mounted_read_only():
    ds = one(render(), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    args = container(ds)["args"]
    assert args[args.index("--track-file-dir") + 1] == "/etc/kube-vrrp/track", args
    assert {"name": "track-files", "hostPath": {"path": "/etc/kube-vrrp/track", "type": "DirectoryOrCreate"}} in spec["volumes"]
    assert {"name": "track-files", "mountPath": "/etc/kube-vrrp/track", "readOnly": True} in container(ds)["volumeMounts"]
    off = one(render("agent.trackFileDirectory="), "DaemonSet")
    assert "--track-file-dir" not in container(off)["args"]
    assert not any(v["name"] == "track-files" for v in off["spec"]["template"]["spec"]["volumes"])
    render("agent.trackFileDirectory=relative", expect_error=True)


def agent_runs_scripts_only_from_the_script_directory_mounted_read_only():
    off = one(render(), "DaemonSet")
    assert "--script-dir" not in container(off)["args"], "no script directory by default: no script runs"
    assert "shareProcessNamespace" not in off["spec"]["template"]["spec"]
    ds = one(render("agent.scriptDirectory=/etc/kube-vrrp/scripts"), "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    args = container(ds)["args"]
    assert args[args.index("--script-dir") + 1] == "/etc/kube-vrrp/scripts", args
    assert {"name": "scripts", "hostPath": {"path": "/etc/kube-vrrp/scripts", "type": "Directory"}} in spec["volumes"]
    assert {"name": "scripts", "mountPath": "/etc/kube-vrrp/scripts", "readOnly": True} in container(ds)["volumeMounts"]
    assert spec["shareProcessNamespace"] is True, "a pause process as PID 1 reaps what killed scripts leave"
    render("agent.scriptDirectory=scripts", expect_error=True)


def agent_gets_exactly_the_named_secrets_in_the_configured_namespace():
    docs = render("agent.secrets.namespace=vrrp-secrets", "agent.secrets.names={vrrp-auth,other}")
    role = one(docs, "Role", "kube-vrrp-agent-secrets")
    assert role["metadata"]["namespace"] == "vrrp-secrets"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["vrrp-auth", "other"], "verbs": ["get"]}]
    binding = one(docs, "RoleBinding", "kube-vrrp-agent-secrets")
    assert binding["metadata"]["namespace"] == "vrrp-secrets"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-vrrp-agent", "namespace": "kube-vrrp"}]


def agent_status_policy_admits_the_agent_on_its_own_node_only():
    import celpy  # cel-python: evaluates the policy's CEL as the API server would

    policy = one(render(namespace="vrrp"), "ValidatingAdmissionPolicy")
    env = celpy.Environment()
    (cond,) = policy["spec"]["matchConditions"]
    (validation,) = policy["spec"]["validations"]
    matches = env.program(env.compile(cond["expression"]))
    allowed = env.program(env.compile(validation["expression"]))
    message = env.program(env.compile(validation["messageExpression"]))

    def activation(username, node_names, vrrpnode):
        user = {"username": username}
        if node_names is not None:
            user["extra"] = {"authentication.kubernetes.io/node-name": node_names}
        return {"request": celpy.json_to_cel({"userInfo": user}),
                "object": celpy.json_to_cel({"metadata": {"name": vrrpnode}})}

    agent = "system:serviceaccount:vrrp:kube-vrrp-agent"
    assert matches.evaluate(activation(agent, ["n1"], "n1"))
    assert not matches.evaluate(activation("system:serviceaccount:vrrp:kube-vrrp-operator", None, "n1"))
    assert not matches.evaluate(activation("system:serviceaccount:other:kube-vrrp-agent", None, "n1"))
    assert allowed.evaluate(activation(agent, ["n1"], "n1"))
    assert not allowed.evaluate(activation(agent, ["n1"], "n2"))
    assert not allowed.evaluate(activation(agent, [], "n1"))
    assert not allowed.evaluate(activation(agent, None, "n1")), "a token without a node must be denied"
    assert str(message.evaluate(activation(agent, ["n1"], "n2"))).endswith("not n2")


def agent_status_writes_are_limited_to_its_own_node_by_an_admission_policy():
    docs = render()
    policy = one(docs, "ValidatingAdmissionPolicy")
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["vrrpnodes/status"]
    (cond,) = policy["spec"]["matchConditions"]
    assert "system:serviceaccount:kube-vrrp:kube-vrrp-agent" in cond["expression"]
    (v,) = policy["spec"]["validations"]
    assert "authentication.kubernetes.io/node-name" in v["expression"] and "object.metadata.name" in v["expression"]
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert "ValidatingAdmissionPolicy" not in kinds(render("agent.ownNodeStatusPolicy=false"))
    assert "ValidatingAdmissionPolicy" not in kinds(render("agent.ownNodeStatusPolicy=auto"))
    assert "ValidatingAdmissionPolicy" in kinds(render(
        "agent.ownNodeStatusPolicy=auto", api_versions=["admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"]))


# --------------------------------------------------------------- the operator

def operator_runs_two_replicas_with_metrics_and_lease_namespace_flags():
    dep = one(render(), "Deployment")
    assert dep["spec"]["replicas"] == 2
    c = container(dep)
    assert c["command"] == ["kube-vrrp-operator"]
    assert c["args"] == ["run", "--metrics-addr", "[::]:8080", "--lease-namespace", "kube-vrrp"]
    assert c["image"] == "ghcr.io/kube-vrrp/kube-vrrp:0.1.0"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert one(render(), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def operator_keeps_cordoned_nodes_only_when_asked():
    c = container(one(render("operator.keepCordonedNodes=true"), "Deployment"))
    assert "--keep-cordoned-nodes" in c["args"]


def operator_lease_role_lives_in_the_lease_namespace():
    docs = render("operator.leaderElection.namespace=leases")
    assert "--lease-namespace" in container(one(docs, "Deployment"))["args"]
    assert container(one(docs, "Deployment"))["args"][-1] == "leases"
    role = one(docs, "Role", "kube-vrrp-operator-leader-election")
    assert role["metadata"]["namespace"] == "leases"
    for verb in ("get", "create", "update", "patch"):
        assert grants(role, "coordination.k8s.io", "leases", verb), verb
    assert not grants(role, "coordination.k8s.io", "leases", "delete")
    assert one(docs, "RoleBinding", "kube-vrrp-operator-leader-election")["metadata"]["namespace"] == "leases"


def operator_rbac_owns_vrrpnodes_writes_statuses_and_reads_no_secrets():
    role = one(render(), "ClusterRole", "kube-vrrp-operator")
    for verb in ("create", "patch", "delete", "watch"):
        assert grants(role, "kubevrrp.io", "vrrpnodes", verb), verb
    assert grants(role, "kubevrrp.io", "virtualips/status", "patch")
    assert grants(role, "kubevrrp.io", "virtualservers/status", "patch")
    assert grants(role, "", "nodes", "watch") and not grants(role, "", "nodes", "patch")
    assert grants(role, "discovery.k8s.io", "endpointslices", "watch")
    assert not grants(role, "", "secrets", "get")
    assert not grants(role, "coordination.k8s.io", "leases", "get"), "leases belong in the namespaced Role"
    for r in rules_of(role):
        assert "*" not in r["verbs"] and "*" not in r["resources"], r


def operator_serves_load_balancers_with_the_rights_they_need_and_none_without():
    docs = render()
    role = one(docs, "ClusterRole", "kube-vrrp-operator")
    for verb in ("create", "patch", "delete"):
        assert grants(role, "kubevrrp.io", "virtualips", verb), verb
    assert grants(role, "kubevrrp.io", "virtualippools", "watch")
    assert grants(role, "kubevrrp.io", "virtualippools/status", "patch")
    assert not grants(role, "kubevrrp.io", "virtualippools", "patch"), "pools are the user's"
    assert grants(role, "", "services/status", "patch")
    assert not grants(role, "", "services", "patch"), "a Service's spec is the user's"
    assert grants(role, "", "namespaces", "watch") and not grants(role, "", "namespaces", "patch")
    args = container(one(docs, "Deployment"))["args"]
    assert "--load-balancers=false" not in args and "--default-load-balancer-class" not in args

    default = render("loadBalancer.default=true")
    assert container(one(default, "Deployment"))["args"][-1] == "--default-load-balancer-class"

    off = render("loadBalancer.enabled=false", "loadBalancer.default=true")
    role = one(off, "ClusterRole", "kube-vrrp-operator")
    for verb in ("create", "patch", "delete"):
        assert not grants(role, "kubevrrp.io", "virtualips", verb), verb
    assert not grants(role, "kubevrrp.io", "virtualippools", "get")
    assert not grants(role, "", "services/status", "patch")
    assert not grants(role, "", "namespaces", "list")
    args = container(one(off, "Deployment"))["args"]
    assert args[-1] == "--load-balancers=false" and "--default-load-balancer-class" not in args


def pod_templates_carry_no_chart_version_so_chart_only_upgrades_restart_nothing():
    for kind in ("Deployment", "DaemonSet"):
        workload = one(render("commonLabels.team=net"), kind)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert "helm.sh/chart" not in labels, kind
        assert labels["team"] == "net", kind
        for k, v in workload["spec"]["selector"]["matchLabels"].items():
            assert labels[k] == v, (kind, k)


def image_tag_and_digest_are_configurable():
    c = container(one(render("image.repository=registry.example/kv", "image.tag=1.2.3"), "Deployment"))
    assert c["image"] == "registry.example/kv:1.2.3"
    digest = "sha256:" + "ab" * 32
    c = container(one(render(f"image.digest={digest}"), "DaemonSet"))
    assert c["image"] == f"ghcr.io/kube-vrrp/kube-vrrp@{digest}"


# --------------------------------------------------------------- monitoring

def metrics_services_select_their_component_and_carry_the_scrape_job_label():
    docs = render()
    for component, port in (("agent", 7475), ("operator", 8080)):
        svc = one(docs, "Service", f"kube-vrrp-{component}-metrics")
        assert svc["metadata"]["labels"]["kubevrrp.io/scrape-job"] == f"kube-vrrp-{component}"
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == component
        assert svc["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}]


def monitoring_objects_follow_the_prometheus_operator_crds_when_auto():
    assert not {"ServiceMonitor", "PrometheusRule"} & set(kinds(render()))
    docs = render(api_versions=MONITORING_APIS)
    assert kinds(docs).count("ServiceMonitor") == 2
    assert kinds(docs).count("PrometheusRule") == 1
    assert "PrometheusRule" not in kinds(render("monitoring.prometheusRule.enabled=false", api_versions=MONITORING_APIS))
    docs = render("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true")
    assert kinds(docs).count("ServiceMonitor") == 2 and "PrometheusRule" in kinds(docs)


def agent_service_monitor_keeps_the_target_instance_label_and_adds_the_node():
    docs = render("monitoring.serviceMonitor.enabled=true", release="edge")
    sm = one(docs, "ServiceMonitor", "edge-kube-vrrp-agent")
    assert sm["spec"]["jobLabel"] == "kubevrrp.io/scrape-job"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics"
    # The agent labels the VRRP instance vrrp_instance: honorLabels would only let a metric
    # overwrite the scrape target's instance, job, node or pod.
    assert "honorLabels" not in ep, "the agent must be scraped without honorLabels"
    assert {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in ep["relabelings"]
    svc = one(docs, "Service", "edge-kube-vrrp-agent-metrics")
    for k, v in sm["spec"]["selector"]["matchLabels"].items():
        assert svc["metadata"]["labels"].get(k) == v, f"ServiceMonitor selects {k}={v}, Service has {svc['metadata']['labels'].get(k)}"
    op = one(docs, "ServiceMonitor", "edge-kube-vrrp-operator")
    assert "honorLabels" not in op["spec"]["endpoints"][0]


def alerts_name_the_vrrp_instance_vrrp_instance_and_the_scrape_target_instance():
    with RULES.open(encoding="utf-8") as f:
        source = yaml.safe_load(f)
    alerts = {r["alert"]: r for g in source["groups"] for r in g["rules"] if "alert" in r}
    for name, rule in alerts.items():
        text = " ".join(rule.get("annotations", {}).values())
        if "$labels.instance" in text:
            # Only alerts on the scrape itself (up) may name the target.
            assert rule["expr"].lstrip().startswith(("up{", "absent(up{")), f"{name} names $labels.instance but is not about a scrape target"
    for name in ("KubeVrrpInstanceFlapping", "KubeVrrpInstanceFault", "KubeVrrpMasterNotAdvertising"):
        assert "$labels.vrrp_instance" in alerts[name]["annotations"]["summary"], name
    assert "$labels.instance" in alerts["KubeVrrpAgentDown"]["annotations"]["description"]


def prometheus_rule_is_the_rule_file_unchanged_by_default():
    with RULES.open(encoding="utf-8") as f:
        source = yaml.safe_load(f)
    rule = one(render("monitoring.prometheusRule.enabled=true"), "PrometheusRule")
    assert rule["spec"]["groups"] == source["groups"]


def prometheus_rule_applies_overrides_labels_and_disabled_alerts():
    rule = one(render(
        "monitoring.prometheusRule.enabled=true",
        "monitoring.prometheusRule.disabledAlerts={KubeVrrpPacketsDropped}",
        "monitoring.prometheusRule.alertOverrides.KubeVrrpNoMaster.for=2m",
        "monitoring.prometheusRule.alertOverrides.KubeVrrpNoMaster.severity=warning",
        "monitoring.prometheusRule.alertLabels.team=net",
        "monitoring.prometheusRule.alertLabels.severity=ignored",
    ), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "KubeVrrpPacketsDropped" not in alerts
    assert alerts["KubeVrrpNoMaster"]["for"] == "2m"
    assert alerts["KubeVrrpNoMaster"]["labels"] == {"severity": "warning", "team": "net"}
    assert alerts["KubeVrrpDualMaster"]["labels"] == {"severity": "critical", "team": "net"}, "alertLabels must not override severity"
    assert alerts["KubeVrrpDualMaster"]["for"] == "10s"


def unknown_alert_names_in_values_are_rejected():
    err = render("monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.disabledAlerts={KubeVrrpNoSuchAlert}", expect_error=True)
    assert 'no alert named "KubeVrrpNoSuchAlert"' in err, err
    err = render("monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.alertOverrides.Typo.for=1m", expect_error=True)
    assert 'no alert named "Typo"' in err, err


def values_schema_rejects_misspelt_keys_and_bad_switches():
    err = render("operator.replica=3", expect_error=True)
    assert "replica" in err, err
    err = render("monitoring.serviceMonitor.enabled=maybe", expect_error=True)
    assert "enabled" in err, err


def every_object_is_labelled_and_namespaced_objects_use_the_release_namespace():
    docs = render("agent.secrets.names={a}", "monitoring.serviceMonitor.enabled=true",
                  "monitoring.prometheusRule.enabled=true", namespace="vrrp")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "kube-vrrp" and labels["app.kubernetes.io/part-of"] == "kube-vrrp", d["kind"]
        if d["kind"] in cluster_scoped:
            assert "namespace" not in d["metadata"], d["kind"]
        else:
            assert d["metadata"]["namespace"] == "vrrp", (d["kind"], d["metadata"]["name"])


TESTS = [
    agent_runs_on_the_host_network_with_only_net_admin_and_net_raw,
    agent_gets_its_node_name_from_the_downward_api_and_passes_it_to_run,
    agent_probes_healthz_and_readyz_on_its_listener,
    agent_is_node_critical_tolerates_control_planes_and_updates_one_node_at_a_time,
    agent_tolerates_every_taint_when_asked,
    no_namespace_is_rendered_unless_asked,
    the_release_namespace_is_rendered_privileged_and_kept_on_uninstall_when_asked,
    agent_rbac_reads_vrrpnodes_patches_their_status_and_nothing_else,
    agent_follows_endpoint_slices_for_endpoint_trackers_and_nothing_more,
    agent_reads_secrets_of_the_release_namespace_by_default_so_v2_passwords_work,
    agent_keeps_its_last_configuration_in_a_host_directory,
    agent_reads_tracked_files_from_a_host_directory_mounted_read_only,
    agent_runs_scripts_only_from_the_script_directory_mounted_read_only,
    agent_gets_exactly_the_named_secrets_in_the_configured_namespace,
    agent_status_writes_are_limited_to_its_own_node_by_an_admission_policy,
    agent_status_policy_admits_the_agent_on_its_own_node_only,
    operator_runs_two_replicas_with_metrics_and_lease_namespace_flags,
    operator_keeps_cordoned_nodes_only_when_asked,
    operator_lease_role_lives_in_the_lease_namespace,
    operator_rbac_owns_vrrpnodes_writes_statuses_and_reads_no_secrets,
    operator_serves_load_balancers_with_the_rights_they_need_and_none_without,
    pod_templates_carry_no_chart_version_so_chart_only_upgrades_restart_nothing,
    image_tag_and_digest_are_configurable,
    metrics_services_select_their_component_and_carry_the_scrape_job_label,
    monitoring_objects_follow_the_prometheus_operator_crds_when_auto,
    agent_service_monitor_keeps_the_target_instance_label_and_adds_the_node,
    alerts_name_the_vrrp_instance_vrrp_instance_and_the_scrape_target_instance,
    prometheus_rule_is_the_rule_file_unchanged_by_default,
    prometheus_rule_applies_overrides_labels_and_disabled_alerts,
    unknown_alert_names_in_values_are_rejected,
    values_schema_rejects_misspelt_keys_and_bad_switches,
    every_object_is_labelled_and_namespaced_objects_use_the_release_namespace,
]


def main() -> int:
    failed = 0
    for test in TESTS:
        try:
            test()
        except Exception as e:  # noqa: BLE001 - report every failing test, then fail
            failed += 1
            frame = traceback.extract_tb(e.__traceback__)[-1]
            print(f"chart-tests: FAIL {test.__name__}\n    line {frame.lineno}: {frame.line}\n"
                  f"    {type(e).__name__}: {e}", file=sys.stderr)
        else:
            print(f"chart-tests: ok   {test.__name__}")
    print(f"chart-tests: {len(TESTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
