#!/usr/bin/env bash
# The core scenarios against a real cluster (make e2e-cluster):
#   - with KUBECONFIG set: the cluster it names, which needs kube-vrrp installed
#     (helm install kube-vrrp charts/kube-vrrp -n kube-vrrp --create-namespace) with an image that
#     contains this commit's binaries, two Linux nodes on one L2 segment (E2E_NODES, default: the
#     first two Ready nodes) and a free address on that segment for the test VIP (E2E_VIP, e.g.
#     10.0.0.250/24: required);
#   - without KUBECONFIG: the cluster lab (`make cluster-lab`: a kube-apiserver built from Go
#     modules, the chart installed with Helm, its pods run in network namespaces), brought up for
#     the run and removed after it, with E2E_VIP=192.168.77.60/24 on the lab's switch (root).
# kubectl comes from PATH or .tools/bin (make tools).
# Scenarios: apply → one MASTER and Ready within Master_Down_Interval + 1 s; graceful handover when
# the MASTER's agent pod is deleted (SIGTERM: priority 0); no SplitBrain at any point; cleanup.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${PWD}/.tools/bin:${PATH}"

die() { printf 'e2e-cluster: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf 'e2e-cluster: %s\n' "$*"; }

ns="${E2E_NAMESPACE:-kube-vrrp}"
name="e2e-$$"
label="kubevrrp.io/e2e-${$}"
nodes=()
lab=""
cleanup() {
    kubectl delete virtualip "${name}" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kubectl label node "${nodes[@]}" "${label}-" >/dev/null 2>&1 || true
    if [[ -n "${lab}" ]]; then target/debug/cluster-lab down >/dev/null || true; fi
}
trap cleanup EXIT
if [[ -z "${KUBECONFIG:-}" ]]; then
    [[ ${EUID} -eq 0 ]] || die "no KUBECONFIG: the cluster lab needs root (or set KUBECONFIG to a cluster with kube-vrrp installed)"
    [[ -x target/debug/cluster-lab ]] || die "target/debug/cluster-lab not built (make build)"
    say "no KUBECONFIG: bringing up the cluster lab"
    target/debug/cluster-lab up >/dev/null
    lab=yes
    KUBECONFIG="$(sed -n 's/^ *export KUBECONFIG=//p' "${TMPDIR:-/tmp}/kube-vrrp-cluster-lab/summary")"
    export KUBECONFIG
    E2E_VIP="${E2E_VIP:-192.168.77.60/24}"
    say "cluster lab up: KUBECONFIG=${KUBECONFIG}"
fi
[[ -n "${E2E_VIP:-}" ]] || die "set E2E_VIP to a free CIDR address on the nodes' segment (e.g. 10.0.0.250/24)"
command -v kubectl >/dev/null || die "kubectl not found (make tools installs one under .tools/bin)"

kubectl get crd virtualips.kubevrrp.io >/dev/null || die "the VirtualIP CRD is not installed"
if [[ -n "${E2E_NODES:-}" ]]; then
    read -r -a nodes <<<"${E2E_NODES}"
else
    mapfile -t nodes < <(kubectl get nodes -o jsonpath='{range .items[?(@.status.conditions[-1].status=="True")]}{.metadata.name}{"\n"}{end}' | head -n 2)
fi
((${#nodes[@]} >= 2)) || die "need two Ready nodes (got: ${nodes[*]:-none})"

field() { kubectl get virtualip "${name}" -o jsonpath="$1" 2>/dev/null || true; }
condition() { field "{.status.conditions[?(@.type==\"$1\")].status}"; }
now_ms() { date +%s%3N; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: polls every 100 ms; fails on timeout or split brain.
wait_for() {
    local what="$1" timeout="$2"; shift 2
    local deadline=$(( $(now_ms) + timeout * 1000 ))
    until "$@"; do
        [[ "$(condition SplitBrain)" != "True" ]] || die "SplitBrain=True while waiting for ${what}"
        (( $(now_ms) < deadline )) || die "timed out after ${timeout}s waiting for ${what}"
        sleep 0.1
    done
}

kubectl label node "${nodes[@]}" "${label}=true" --overwrite >/dev/null
say "nodes: ${nodes[*]}; VIP ${E2E_VIP}"
start=$(now_ms)
kubectl apply -f - >/dev/null <<YAML
apiVersion: kubevrrp.io/v1alpha1
kind: VirtualIP
metadata:
  name: ${name}
spec:
  addresses: ["${E2E_VIP}"]
  version: 3
  advertInterval: 100ms
  nodeSelector:
    matchLabels: {${label}: "true"}
  priorities:
    - nodeName: ${nodes[0]}
      priority: 150
YAML
has_master_and_ready() { [[ -n "$(field '{.status.master}')" && "$(condition Ready)" == "True" ]]; }
wait_for "a MASTER and Ready=True" 30 has_master_and_ready
master=$(field '{.status.master}')
say "apply → Ready with MASTER ${master}: $(( $(now_ms) - start )) ms"
[[ "${master}" == "${nodes[0]}" ]] || die "MASTER is ${master}, expected the priority-150 node ${nodes[0]}"

pod=$(kubectl -n "${ns}" get pods -l app.kubernetes.io/component=agent \
    --field-selector "spec.nodeName=${master}" -o jsonpath='{.items[0].metadata.name}')
[[ -n "${pod}" ]] || die "no agent pod on ${master} in namespace ${ns}"
start=$(now_ms)
kubectl -n "${ns}" delete pod "${pod}" --wait=false >/dev/null
moved() { local m; m=$(field '{.status.master}'); [[ -n "${m}" && "${m}" != "${master}" ]]; }
wait_for "the MASTER to move off ${master}" 30 moved
say "graceful handover ${master} → $(field '{.status.master}') seen in status: $(( $(now_ms) - start )) ms"

# When the DaemonSet brings the agent back, the priority-150 node preempts again.
back() { [[ "$(field '{.status.master}')" == "${master}" && "$(condition Ready)" == "True" ]]; }
wait_for "${master} to preempt back after its agent restarts" 120 back
say "preempted back to ${master}"
[[ "$(condition SplitBrain)" != "True" ]] || die "SplitBrain=True at the end"
say "3 passed, 0 failed"
