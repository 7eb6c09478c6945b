#!/usr/bin/env bash
# Seeds fuzz/corpus/decode with the keepalived captures: each whole pcap file, and each frame's
# IP packet and bare VRRP message (extracted with tcpdump). Re-running overwrites the seeds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vectors="$here/../agent/tests/vectors"
corpus="$here/corpus/decode"
mkdir -p "$corpus"
for pcap in "$vectors"/*.pcap; do
    name="$(basename "$pcap" .pcap)"
    cp "$pcap" "$corpus/$name.pcap"
    ip_hex="$(tcpdump -r "$pcap" -n -x -c 1 2>/dev/null | grep 0x | sed 's/.*0x....:  //' | tr -d ' \n')"
    printf '%s' "$ip_hex" | xxd -r -p >"$corpus/$name.ip"
    header=20
    [ "${ip_hex:0:1}" = 6 ] && header=40
    tail -c +$((header + 1)) "$corpus/$name.ip" >"$corpus/$name.vrrp"
done
ls "$corpus"
