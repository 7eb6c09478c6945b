#!/usr/bin/env bash
# Keeps the chart's CRDs identical to the generated ones.
#
#   hack/sync-chart-crds.sh          copy crds/yaml/*.yaml to charts/kube-vrrp/crds/
#                                    (and remove chart CRDs that are no longer generated),
#                                    then render deploy/ again (hack/render-deploy.sh)
#   hack/sync-chart-crds.sh --check  exit 1 if they differ, or if the generated CRDs
#                                    do not exist yet
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${root}/crds/yaml"
dst="${root}/charts/kube-vrrp/crds"
mode="${1:-sync}"

say() { printf 'sync-chart-crds: %s\n' "$*"; }
die() { printf 'sync-chart-crds: ERROR: %s\n' "$*" >&2; exit 1; }

shopt -s nullglob
sources=("${src}"/*.yaml)
if ((${#sources[@]} == 0)); then
    die "no generated CRDs in crds/yaml/ yet, so the chart's copies cannot be checked (generate them with the crds crate's crdgen: make crds)"
fi

case "${mode}" in
sync)
    mkdir -p "${dst}"
    for f in "${dst}"/*.yaml; do
        [[ -f "${src}/$(basename "${f}")" ]] || { rm -f "${f}"; say "removed $(basename "${f}")"; }
    done
    for f in "${sources[@]}"; do
        if ! cmp -s "${f}" "${dst}/$(basename "${f}")"; then
            cp "${f}" "${dst}/"
            say "copied $(basename "${f}")"
        fi
    done
    say "charts/kube-vrrp/crds/ matches crds/yaml/ (${#sources[@]} files)"
    # deploy/kube-vrrp.yaml embeds the CRDs: render it again.
    if [[ -x "${root}/.tools/bin/helm" ]]; then
        "${root}/hack/render-deploy.sh"
    else
        say "no .tools/bin/helm: run hack/install-tools.sh, then hack/render-deploy.sh"
    fi
    ;;
--check)
    drift=0
    for f in "${sources[@]}"; do
        name="$(basename "${f}")"
        if [[ ! -f "${dst}/${name}" ]]; then
            printf 'sync-chart-crds: missing from the chart: charts/kube-vrrp/crds/%s\n' "${name}" >&2
            drift=1
        elif ! cmp -s "${f}" "${dst}/${name}"; then
            printf 'sync-chart-crds: differs: charts/kube-vrrp/crds/%s\n' "${name}" >&2
            diff -u "${f}" "${dst}/${name}" | head -n 20 >&2 || true
            drift=1
        fi
    done
    for f in "${dst}"/*.yaml; do
        if [[ ! -f "${src}/$(basename "${f}")" ]]; then
            printf 'sync-chart-crds: not generated any more: charts/kube-vrrp/crds/%s\n' "$(basename "${f}")" >&2
            drift=1
        fi
    done
    ((drift == 0)) || die "the chart's CRDs are out of date: run hack/sync-chart-crds.sh"
    say "charts/kube-vrrp/crds/ matches crds/yaml/ (${#sources[@]} files)"
    ;;
*)
    die "usage: $0 [--check]"
    ;;
esac
