#!/usr/bin/env bash
# Builds the kube-vrrp container image as an archive without a container engine (make image):
#
#   target/image/kube-vrrp-<appVersion>.tar    `docker save` format; load it with
#                                              docker/podman load, ctr -n k8s.io images import,
#                                              kind load image-archive, or push it with
#                                              skopeo copy docker-archive:... docker://...
#
# The root filesystem holds the two release binaries (stripped of debug info) in /usr/local/bin,
# exactly the shared libraries `ldd` says they need (glibc, libm, libgcc_s and the loader, from
# this Debian machine), and /etc/passwd + /etc/group naming the chart's non-root user 65532.
# Nothing else: no shell, no package manager. The layer is a reproducible tar (owner 0, sorted,
# mtime SOURCE_DATE_EPOCH or the last commit's time); the image itself is written by hack/image
# (go-containerregistry), built into .tools/bin on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"

die() { printf 'image: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf 'image: %s\n' "$*"; }

repository="$(sed -n 's/^  repository: //p' charts/kube-vrrp/values.yaml | head -n1)"
version="$(sed -n 's/^appVersion: "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/kube-vrrp/Chart.yaml)"
[[ -n "${repository}" && -n "${version}" ]] || die "cannot read image.repository / appVersion from the chart"
tag="${repository}:${version}"
out="target/image/kube-vrrp-${version}.tar"
bins=(target/release/kube-vrrp-agent target/release/kube-vrrp-operator)
for bin in "${bins[@]}"; do
    [[ -x "${bin}" ]] || die "${bin} is missing: run \`make release\` first"
done

# --- the image tool (go-containerregistry), rebuilt when its sources change -------------------
go_bin="$(command -v go || true)"
[[ -n "${go_bin}" ]] || go_bin=/usr/local/go/bin/go
[[ -x "${go_bin}" ]] || die "no Go toolchain (go on PATH or /usr/local/go/bin/go) to build hack/image"
tool=".tools/bin/kube-vrrp-image"
stamp=".tools/bin/.kube-vrrp-image-$(cat hack/image/go.mod hack/image/go.sum hack/image/main.go | sha256sum | cut -c1-16)"
if [[ ! -x "${tool}" || ! -f "${stamp}" ]]; then
    say "building hack/image (go-containerregistry)"
    mkdir -p .tools/bin
    (cd hack/image && CGO_ENABLED=0 GOFLAGS=-mod=readonly "${go_bin}" build -trimpath -o "${root}/${tool}" .) \
        || die "go build hack/image failed"
    rm -f .tools/bin/.kube-vrrp-image-*
    touch "${stamp}"
fi

# --- the root filesystem ------------------------------------------------------------------
stage="$(mktemp -d)"
trap 'rm -rf "${stage}"' EXIT
rootfs="${stage}/rootfs"
mkdir -p "${rootfs}/usr/local/bin" "${rootfs}/etc" "${rootfs}/tmp"
chmod 1777 "${rootfs}/tmp"
for bin in "${bins[@]}"; do
    objcopy --strip-debug "${bin}" "${rootfs}/usr/local/bin/$(basename "${bin}")"
done
# Debian's merged /usr: /lib and /lib64 are links into /usr, as on the build machine.
ln -s usr/lib "${rootfs}/lib"
ln -s usr/lib64 "${rootfs}/lib64"
libs="$(ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u)"
[[ -n "${libs}" ]] || die "ldd found no shared libraries (a static build? then drop this step)"
for lib in ${libs}; do
    real="$(readlink -f "${lib}")"
    dest="${rootfs}/usr${lib#/usr}"
    mkdir -p "$(dirname "${dest}")"
    cp "${real}" "${dest}"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"${rootfs}/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"${rootfs}/etc/group"

epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
tar --create --file "${stage}/layer.tar" --directory "${rootfs}" --sort=name \
    --owner=0 --group=0 --numeric-owner --mtime="@${epoch}" .

mkdir -p "$(dirname "${out}")"
SOURCE_DATE_EPOCH="${epoch}" "${tool}" -rootfs "${stage}/layer.tar" -tag "${tag}" -out "${out}" \
    -user 65532:65532 -cmd "kube-vrrp-agent --help" \
    -label "org.opencontainers.image.title=kube-vrrp" \
    -label "org.opencontainers.image.version=${version}" \
    -label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -label "org.opencontainers.image.licenses=Apache-2.0"
say "wrote ${out} (${tag}, $(du -h "${out}" | cut -f1)); libraries: $(echo ${libs} | tr '\n' ' ')"
