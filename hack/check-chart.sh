#!/usr/bin/env bash
# Every check of the Helm chart, the plain manifests and the alert rules.
# Exits non-zero if any check fails; the last line reads "N passed, M failed".
#
#   CRDs        charts/kube-vrrp/crds/ is an exact copy of crds/yaml/
#   rules       promtool check rules + promtool test rules (rules/alerts_test.yaml),
#               every alert tested firing and quiet, and the same tests run on the
#               rules as the chart renders them into its PrometheusRule
#   chart       helm lint (defaults, monitoring on), chart-tests.py
#   manifests   helm template (defaults, monitoring auto-detected, many options)
#               validated offline: built-in kinds with kubernetes-validate (1.33),
#               custom resources with check-jsonschema against the CRDs, Prometheus
#               Operator objects against its schemas
#   validator   known-bad manifests are rejected for the expected reason
#   examples    deploy/examples/ valid against the CRDs and Kubernetes 1.33
#   deploy      deploy/*.yaml is what the chart renders now
#
# Tools come from .tools/ (hack/install-tools.sh runs first; it is idempotent).
# Until crds/yaml/ exists the CRD sync check fails; KUBE_VRRP_ALLOW_MISSING_CRDS=1
# reports it as NOT CHECKED instead (never as passed). Checks that need the chart's
# CRDs are NOT CHECKED while charts/kube-vrrp/crds/ is empty.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}" || exit 1
tools="${root}/.tools"
helm="${tools}/bin/helm"
python="${tools}/venv/bin/python"
chart="charts/kube-vrrp"
rules="${chart}/rules/alerts.yaml"
rule_tests="${chart}/rules/alerts_test.yaml"
kube_version="1.33.0"
monitoring_apis=(--api-versions monitoring.coreos.com/v1/ServiceMonitor --api-versions monitoring.coreos.com/v1/PrometheusRule)

passed=0
failed=0
not_checked=0
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# check NAME CMD...: run CMD, count it, show its output when it fails.
check() {
    local name="$1"
    shift
    local log="${tmp}/log"
    if "$@" >"${log}" 2>&1; then
        passed=$((passed + 1))
        printf 'check-chart: PASS %s\n' "${name}"
    else
        failed=$((failed + 1))
        printf 'check-chart: FAIL %s\n' "${name}"
        sed 's/^/    /' "${log}"
    fi
}

not_checked() {
    not_checked=$((not_checked + 1))
    printf 'check-chart: NOT CHECKED %s (%s)\n' "$1" "$2"
}

# --- tools ------------------------------------------------------------------------
# install-tools.sh is idempotent and quick when everything is at its pinned version.
if ! hack/install-tools.sh >"${tmp}/install-tools.log" 2>&1; then
    printf 'check-chart: FAIL hack/install-tools.sh\n'
    sed 's/^/    /' "${tmp}/install-tools.log"
    printf '0 passed, 1 failed\n'
    exit 1
fi

# --- CRDs -----------------------------------------------------------------------------
if compgen -G "crds/yaml/*.yaml" >/dev/null || [[ "${KUBE_VRRP_ALLOW_MISSING_CRDS:-0}" != 1 ]]; then
    check "chart CRDs are identical to crds/yaml" hack/sync-chart-crds.sh --check
else
    not_checked "chart CRDs are identical to crds/yaml" "crds/yaml/*.yaml not generated yet"
fi
have_crds=0
compgen -G "${chart}/crds/*.yaml" >/dev/null && have_crds=1
needs_crds() { # needs_crds NAME CMD...: checks that need the chart's CRDs
    if ((have_crds)); then check "$@"; else not_checked "$1" "no CRDs in ${chart}/crds yet"; fi
}

# --- alert rules --------------------------------------------------------------------
check "promtool check rules ${rules}" promtool check rules "${rules}"
check "promtool test rules ${rule_tests}" promtool test rules "${rule_tests}"
check "every alert is tested firing and quiet" "${python}" hack/check-alert-tests.py "${rules}" "${rule_tests}"

rendered_rules_pass_the_tests() {
    mkdir -p "${tmp}/rendered-rules"
    "${helm}" template kube-vrrp "${chart}" --set monitoring.prometheusRule.enabled=true \
        --show-only templates/prometheusrule.yaml >"${tmp}/prometheusrule.yaml" || return 1
    "${python}" - "${tmp}/prometheusrule.yaml" "${tmp}/rendered-rules/alerts.yaml" <<'PY' || return 1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"groups": doc["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False)
PY
    cp "${rule_tests}" "${tmp}/rendered-rules/alerts_test.yaml"
    (cd "${tmp}/rendered-rules" && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml)
}
check "the chart's PrometheusRule passes the same promtool tests" rendered_rules_pass_the_tests

# --- chart ---------------------------------------------------------------------------
check "helm lint (defaults)" "${helm}" lint --strict "${chart}"
check "helm lint (monitoring on)" "${helm}" lint --strict "${chart}" \
    --set monitoring.serviceMonitor.enabled=true --set monitoring.prometheusRule.enabled=true
check "chart tests (hack/chart-tests.py)" "${python}" hack/chart-tests.py

render_and_validate() { # render_and_validate FILE HELM-ARGS...
    local out="${tmp}/$1"
    shift
    "${helm}" template kube-vrrp "${chart}" --namespace kube-vrrp --include-crds "$@" >"${out}" || return 1
    "${python}" hack/validate-manifests.py --kube-version "${kube_version}" --crds "${chart}/crds" "${out}"
}
check "helm template, default values, valid for Kubernetes ${kube_version}" \
    render_and_validate default.yaml
check "helm template, monitoring CRDs present, valid" \
    render_and_validate monitoring.yaml "${monitoring_apis[@]}"
check "helm template, every option set, valid" \
    render_and_validate options.yaml "${monitoring_apis[@]}" \
    --set fullnameOverride=vrrp --set image.digest="sha256:$(printf '0%.0s' {1..64})" \
    --set imagePullSecrets[0].name=regcred --set commonLabels.team=net \
    --set operator.replicas=3 --set operator.leaderElection.namespace=kube-system \
    --set operator.extraArgs[0]=--log-json --set operator.extraEnv[0].name=RUST_LOG \
    --set operator.extraEnv[0].value=debug --set operator.priorityClassName=system-cluster-critical \
    --set agent.secrets.namespace=vrrp-secrets --set agent.secrets.names[0]=vrrp-auth \
    --set agent.listenPort=9191 --set agent.extraArgs[0]=--log-json \
    --set agent.podAnnotations.a=b --set agent.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=kubevrrp.io/vip \
    --set agent.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists \
    --set monitoring.serviceMonitor.interval=15s --set monitoring.serviceMonitor.labels.release=prom \
    --set monitoring.prometheusRule.alertLabels.team=net \
    --set monitoring.prometheusRule.disabledAlerts[0]=KubeVrrpPacketsDropped \
    --set monitoring.prometheusRule.alertOverrides.KubeVrrpNoMaster.for=1m

# --- the validator itself ----------------------------------------------------------
rejected_for_expected_reason() { # FILE: validation must fail with the "# expect:" text
    local file="$1" expect
    expect="$(sed -n 's/^# expect: //p' "${file}" | head -n1)"
    [[ -n "${expect}" ]] || { echo "${file} has no '# expect:' line"; return 1; }
    if "${python}" hack/validate-manifests.py --kube-version "${kube_version}" \
        --crds "${chart}/crds" --crds hack/testdata/fixture-crds "${file}" >"${tmp}/v.log" 2>&1; then
        echo "${file} was accepted; expected a failure containing: ${expect}"
        return 1
    fi
    grep -qF -- "${expect}" "${tmp}/v.log" || {
        echo "${file} failed, but not with: ${expect}"
        cat "${tmp}/v.log"
        return 1
    }
}
for f in hack/testdata/invalid/*.yaml; do
    if grep -q '^apiVersion: kubevrrp.io/' "${f}"; then
        needs_crds "validator rejects ${f}" rejected_for_expected_reason "${f}"
    else
        check "validator rejects ${f}" rejected_for_expected_reason "${f}"
    fi
done
check "validator accepts hack/testdata/valid" \
    "${python}" hack/validate-manifests.py --crds hack/testdata/fixture-crds hack/testdata/valid/*.yaml

# --- examples and plain manifests -------------------------------------------------
mapfile -t examples < <(find deploy/examples -name '*.yaml' | sort)
needs_crds "deploy/examples valid against the CRDs and Kubernetes ${kube_version}" \
    "${python}" hack/validate-manifests.py --kube-version "${kube_version}" --crds "${chart}/crds" "${examples[@]}"
check "deploy/*.yaml rendered from the chart are up to date" hack/render-deploy.sh --check
check "deploy/*.yaml valid" "${python}" hack/validate-manifests.py --kube-version "${kube_version}" \
    --crds "${chart}/crds" deploy/kube-vrrp.yaml deploy/kube-vrrp-monitoring.yaml

# --- summary ------------------------------------------------------------------------
if ((not_checked)); then
    printf 'check-chart: %d checks NOT CHECKED: generate the CRDs and copy them (make crds)\n' "${not_checked}"
fi
printf '%d passed, %d failed\n' "${passed}" "${failed}"
((failed == 0))
