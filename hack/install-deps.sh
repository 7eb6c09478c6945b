#!/usr/bin/env bash
# Installs the Debian packages the lab, the demo and the checks use, only those missing, so that
# `make test` and `make demo` work on a fresh Debian machine (as root). Idempotent and quick when
# everything is there.
set -euo pipefail

declare -A package_of=(
    [ip]=iproute2
    [keepalived]=keepalived
    [tcpdump]=tcpdump
    [ping]=iputils-ping
    [arping]=iputils-arping
    [promtool]=prometheus
    [prometheus]=prometheus
    [unzip]=unzip
    [npm]=npm
    [setpriv]=util-linux
    # The cluster lab's alert scenarios silence a MASTER's adverts with an nftables rule.
    [nft]=nftables
    [skopeo]=skopeo
    [jq]=jq
    # make bench: instruction counts of the agent and keepalived (callgrind).
    [valgrind]=valgrind
    [callgrind_control]=valgrind
    # make bench: the machine's own timer lateness beside the advert timing.
    [cyclictest]=rt-tests
    # make bench: how much of a daemon's program file is in the page cache (e2e page_cache).
    [fincore]=util-linux-extra
    # make chaos: one agent's wall clock stepped with libfaketime (LD_PRELOAD).
    [faketime]=faketime
    # The guest lab (make e2e-ipvs): QEMU, and what goes into the guest's initramfs.
    [qemu-system-x86_64]=qemu-system-x86
    [busybox]=busybox-static
    [ipvsadm]=ipvsadm
    [modprobe]=kmod
    [depmod]=kmod
    [cpio]=cpio
    [strip]=binutils
    [objcopy]=binutils
    [openssl]=openssl
)
missing=()
for command in "${!package_of[@]}"; do
    command -v "${command}" >/dev/null 2>&1 || missing+=("${package_of[${command}]}")
done
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# The cluster lab's control plane is built from Go modules (e2e/controlplane/build.sh); Debian's
# golang is too old for current Kubernetes, so the machine's toolchain is used: say so early.
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
    printf 'install-deps: no Go toolchain (PATH or /usr/local/go/bin/go): the cluster lab cannot build kube-apiserver\n' >&2
fi
((${#missing[@]})) || exit 0

if [[ ${EUID} -ne 0 ]]; then
    printf 'install-deps: missing Debian packages (%s); run as root to install them\n' "${missing[*]}" >&2
    exit 1
fi
printf 'install-deps: installing %s\n' "${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
