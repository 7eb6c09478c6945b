#!/usr/bin/env bash
# Opens the image archive written by hack/image.sh with an independent reader (skopeo) and
# checks what the chart relies on (make image-check, part of make test; needs root for chroot):
#   - the reference is the chart's default image.repository:appVersion;
#   - the config: user 65532:65532, PATH, the default command, OS/architecture;
#   - the root filesystem, extracted and mounted read-only, runs both binaries (`--version`,
#     and the agent's packet decoder) as the chart's non-root user, with nothing but what the
#     image carries (chroot: the host's libraries are out of reach);
#   - the archive's size (goal: under 40 MiB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

pass=0
fail=0
ok() { printf 'check-image: PASS %s\n' "$*"; pass=$((pass + 1)); }
bad() { printf 'check-image: FAIL %s\n' "$*" >&2; fail=$((fail + 1)); }
die() { printf 'check-image: ERROR: %s\n' "$*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "the image check chroots into the extracted image and needs root: run as root"
command -v skopeo >/dev/null || die "skopeo not found (Debian package skopeo; hack/install-deps.sh installs it)"
command -v jq >/dev/null || die "jq not found (Debian package jq; hack/install-deps.sh installs it)"

repository="$(sed -n 's/^  repository: //p' charts/kube-vrrp/values.yaml | head -n1)"
version="$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/kube-vrrp/Chart.yaml)"
archive="target/image/kube-vrrp-${version}.tar"
[[ -f "${archive}" ]] || die "${archive} is missing: run \`make image\` first"

work="$(mktemp -d)"
cleanup() {
    umount "${work}/ro" 2>/dev/null || true
    rm -rf "${work}"
}
trap cleanup EXIT

# --- reference and configuration ---------------------------------------------------------
inspect="$(skopeo inspect "docker-archive:${archive}")" || die "skopeo cannot read ${archive}"
config="$(skopeo inspect --config "docker-archive:${archive}")"
# docker-archive keeps the tag in its manifest.json; skopeo lists it under RepoTags.
tar -xOf "${archive}" manifest.json | jq -e --arg t "${repository}:${version}" '.[0].RepoTags == [$t]' >/dev/null \
    && ok "reference is ${repository}:${version} (the chart's default image)" \
    || bad "reference: $(tar -xOf "${archive}" manifest.json | jq -c '.[0].RepoTags')"
[[ "$(jq -r '.config.User' <<<"${config}")" == "65532:65532" ]] \
    && ok "user 65532:65532 (the chart's runAsUser/runAsGroup)" \
    || bad "user is $(jq -r '.config.User' <<<"${config}")"
[[ "$(jq -c '.config.Env' <<<"${config}")" == '["PATH=/usr/local/bin:/usr/bin:/bin"]' ]] \
    && ok "PATH finds the chart's bare commands (kube-vrrp-agent, kube-vrrp-operator)" \
    || bad "env is $(jq -c '.config.Env' <<<"${config}")"
[[ "$(jq -c '.config.Cmd' <<<"${config}")" == '["kube-vrrp-agent","--help"]' && "$(jq -c '.config.Entrypoint' <<<"${config}")" == null ]] \
    && ok "no entrypoint; default command kube-vrrp-agent --help (the chart sets its own command)" \
    || bad "entrypoint $(jq -c '.config.Entrypoint' <<<"${config}"), cmd $(jq -c '.config.Cmd' <<<"${config}")"
[[ "$(jq -r '.Os + "/" + .Architecture' <<<"${inspect}")" == "linux/amd64" ]] \
    && ok "linux/amd64" || bad "platform $(jq -r '.Os + "/" + .Architecture' <<<"${inspect}")"
[[ "$(jq '.Layers | length' <<<"${inspect}")" == 1 ]] && ok "one layer" || bad "$(jq '.Layers | length' <<<"${inspect}") layers"

# --- the root filesystem, read-only, as the non-root user ---------------------------------
skopeo copy --quiet "docker-archive:${archive}" "dir:${work}/image" >/dev/null
mkdir -p "${work}/rootfs" "${work}/ro"
layer="$(jq -r '.layers[0].digest' "${work}/image/manifest.json")"
tar -xf "${work}/image/${layer#sha256:}" -C "${work}/rootfs"
mount --bind "${work}/rootfs" "${work}/ro"
mount -o remount,bind,ro "${work}/ro"
in_image() { chroot --userspec=65532:65532 "${work}/ro" "$@"; }
for bin in kube-vrrp-agent kube-vrrp-operator; do
    if out="$(in_image "/usr/local/bin/${bin}" --version 2>&1)" && [[ "${out}" == "${bin} ${version}" ]]; then
        ok "${bin} --version in the read-only image as 65532: ${out}"
    else
        bad "${bin} --version: ${out}"
    fi
done
# A bare VRRPv3 advert (VRID 51, priority 100, 1 s, 10.0.0.50): the agent decodes it inside the image.
if out="$(in_image /usr/local/bin/kube-vrrp-agent decode --hex "31336401006400000a000032" 2>&1)" \
    && jq -e '.vrid == 51 and .priority == 100' <<<"${out}" >/dev/null; then
    ok "kube-vrrp-agent decode works in the image"
else
    bad "decode in the image: ${out}"
fi
unexpected="$(cd "${work}/rootfs" && find . -type f | sort | grep -vE '^\./(usr/local/bin/kube-vrrp-(agent|operator)|usr/lib(64)?/.*\.so(\.[0-9]+)*|etc/(passwd|group))$' || true)"
[[ -z "${unexpected}" ]] && ok "only the binaries, their libraries, passwd and group: $(cd "${work}/rootfs" && find . -type f | wc -l) files" \
    || bad "unexpected files: ${unexpected}"

size=$(stat -c %s "${archive}")
mib=$(awk -v s="${size}" 'BEGIN{printf "%.1f", s/1048576}')
if ((size < 40 * 1048576)); then ok "archive ${mib} MiB (goal under 40 MiB)"; else bad "archive ${mib} MiB (goal under 40 MiB)"; fi

printf '%d passed, %d failed\n' "${pass}" "${fail}"
((fail == 0))
