#!/usr/bin/env bash
# Captures real VRRP advertisements from Debian's keepalived (2.2.7) into the pcaps next to this
# script. Needs root, keepalived, tcpdump and iproute2. Re-running overwrites the pcaps.
#
# Every scenario gets two fresh network namespaces joined by one veth pair with fixed MACs
# (so IPv6 link-local sources are stable): "k" runs keepalived alone (it becomes MASTER after
# Master_Down_Interval and advertises), "c" runs tcpdump on its end of the veth and keeps the first
# three VRRP packets. Nothing is sent outside these namespaces; a trap deletes them and kills
# every process left in them, also on failure or Ctrl-C.
#
# Vectors (name: VRRP settings; link type of the capture):
#   v2_none.pcap       v2, VRID 10, prio 150, 1 s, no auth, 1 VIP;            Ethernet (veth)
#   v2_pass.pcap       v2, VRID 11, prio 100, 2 s, auth PASS "secret12", 1 VIP; Linux SLL2 (-i any)
#   v3_ipv4.pcap       v3, VRID 12, prio 200, 0.5 s, 1 VIP;                    Ethernet (veth)
#   v3_ipv4_multi.pcap v3, VRID 13, prio 120, 1 s, 5 VIPs;                     Linux SLL (-i any -y LINUX_SLL)
#   v3_ipv6.pcap       v3, VRID 14, prio 110, 1 s, 2 IPv6 VIPs;                Ethernet (veth)
#
# The committed pcaps were captured on 2026-11-22 with keepalived 2.2.7 and tcpdump 4.99.3
# (Debian), Linux veth; `tcpdump -r FILE -nvv -x` shows them.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" -eq 0 ] || { echo "capture.sh needs root (network namespaces)" >&2; exit 1; }
for tool in keepalived tcpdump ip; do
    command -v "$tool" >/dev/null || { echo "capture.sh needs $tool" >&2; exit 1; }
done

prefix="vrrpcap$$"
work="$(mktemp -d)"
namespaces=()
declare -A tcpdump_pid

cleanup() {
    for ns in "${namespaces[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# scenario NAME K_ADDR TCPDUMP_ARGS INSTANCE_BODY
scenario() {
    local name="$1" kaddr="$2" dump_args="$3" body="$4"
    local k="${prefix}${name//_/}k" c="${prefix}${name//_/}c"
    namespaces+=("$k" "$c")
    ip netns add "$k"
    ip netns add "$c"
    ip -n "$k" link set lo up
    ip -n "$c" link set lo up
    ip link add vk netns "$k" address 02:00:5e:10:00:01 type veth peer name vc netns "$c" address 02:00:5e:10:00:02
    ip -n "$k" addr add "$kaddr" dev vk
    ip -n "$k" link set vk up
    ip -n "$c" link set vc up

    cat >"$work/$name.conf" <<CONF
global_defs {
    router_id capture_$name
}
vrrp_instance $name {
    interface vk
    state BACKUP
$body
}
CONF
    # shellcheck disable=SC2086
    ip netns exec "$c" timeout 30 tcpdump -Z root -n -U -c 3 $dump_args -w "$here/$name.pcap" 'ip proto 112 or ip6 proto 112' \
        2>"$work/$name.tcpdump.log" &
    tcpdump_pid[$name]=$!
    sleep 0.5
    ip netns exec "$k" keepalived -n -l -D -P -f "$work/$name.conf" -p "$work/$name.pid" \
        -r "$work/$name.vrrp.pid" -c "$work/$name.check.pid" >"$work/$name.keepalived.log" 2>&1 &
    disown  # killed by the cleanup trap; keeps bash from reporting "Killed"
}

scenario v2_none 192.0.2.1/24 "-i vc" '
    version 2
    virtual_router_id 10
    priority 150
    advert_int 1
    virtual_ipaddress {
        192.0.2.10/24
    }'

scenario v2_pass 198.51.100.1/24 "-i any" '
    version 2
    virtual_router_id 11
    priority 100
    advert_int 2
    authentication {
        auth_type PASS
        auth_pass secret12
    }
    virtual_ipaddress {
        198.51.100.11/24
    }'

scenario v3_ipv4 203.0.113.1/24 "-i vc" '
    version 3
    virtual_router_id 12
    priority 200
    advert_int 0.5
    virtual_ipaddress {
        203.0.113.12/24
    }'

scenario v3_ipv4_multi 10.13.0.1/24 "-i any -y LINUX_SLL" '
    version 3
    virtual_router_id 13
    priority 120
    advert_int 1
    virtual_ipaddress {
        10.13.0.10/24
        10.13.0.11/24
        10.13.0.12/24
        10.13.1.1/32
        172.16.13.13/32
    }'

scenario v3_ipv6 fd00:14::1/64 "-i vc" '
    version 3
    virtual_router_id 14
    priority 110
    advert_int 1
    virtual_ipaddress {
        fd00:14::14/64
        fd00:14::15/64
    }'

failed=0
# Wait for the tcpdumps (keepalived keeps running until cleanup).
for name in v2_none v2_pass v3_ipv4 v3_ipv4_multi v3_ipv6; do
    wait "${tcpdump_pid[$name]}" || true
    packets=$(tcpdump -r "$here/$name.pcap" 2>/dev/null | wc -l)
    if [ "$packets" -ne 3 ]; then
        echo "$name: captured $packets packets, expected 3" >&2
        cat "$work/$name.keepalived.log" "$work/$name.tcpdump.log" >&2
        failed=1
    else
        echo "$name.pcap: $packets packets"
    fi
done
exit "$failed"
