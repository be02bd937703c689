#!/usr/bin/env bash
# End-to-end throughput and latency of overlayd next to the kernel's own
# vxlan, measured in one run on this machine:
#
#   veth           the raw underlay, no encapsulation (the ceiling)
#   kernel-kernel  kernel vxlan <-> kernel vxlan
#   overlayd-kernel overlayd (TAP backend) <-> kernel vxlan
#   overlayd-files  the same with overlayd in dynamic mode (files plugin,
#                   ARP answered by its proxy, every frame through the cache)
#
# Two namespaces joined by a veth pair; underlay 198.51.100.0/24, overlay
# 192.0.2.0/24, VNI 42, overlay MTU 1400. Offloads are off on the veth
# (every frame MTU-sized, as a userspace datapath sees it) unless
# OFFLOADS=on. For each path: ping RTT (20 pings), TCP with iperf3, one
# stream and 4 streams, DURATION seconds each (default 10).
#
# Needs root. Prints a table and the ratios; changes nothing outside the
# namespaces it creates, which are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
OFFLOADS=${OFFLOADS:-off}
[ "$(id -u)" -eq 0 ] || { echo "bench/throughput.sh needs root" >&2; exit 1; }
scripts/install-deps
cargo build --release --workspace >&2

A=ovbench-a-$$
B=ovbench-b-$$
SOCK=$(mktemp -d)/overlayd.sock
DPID=
cleanup() {
    if [ -n "$DPID" ]; then kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; fi
    ip netns pids "$A" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns pids "$B" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$(dirname "$SOCK")"
}
trap cleanup EXIT

ina() { ip netns exec "$A" "$@"; }
inb() { ip netns exec "$B" "$@"; }

ip netns add "$A"
ip netns add "$B"
ip link add ua netns "$A" type veth peer name ub netns "$B"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" addr add 198.51.100.1/24 dev ua
ip -n "$B" addr add 198.51.100.2/24 dev ub
ip -n "$A" link set ua up
ip -n "$B" link set ub up
# The underlay always completes checksums, as a NIC would (see peers.md).
inb ethtool -K ub tx off >/dev/null
if [ "$OFFLOADS" = off ]; then
    ina ethtool -K ua tx off rx off tso off gso off gro off >/dev/null
    inb ethtool -K ub tx off rx off tso off gso off gro off >/dev/null
fi
# Gbit/s received, from iperf3's summary line.
iperf() {
    local addr=$1 streams=$2
    # Only processes of the namespace are touched (pkill would reach the host).
    ip netns pids "$B" | xargs -r kill 2>/dev/null || true
    inb iperf3 -s -D >/dev/null
    sleep 0.3
    ina iperf3 -c "$addr" -t "$DURATION" -P "$streams" -f m 2>/dev/null |
        awk '/receiver/ { v = $(NF-2) } END { printf "%.2f", v / 1000 }'
}

rtt() {
    ina ping -q -c 20 -i 0.05 "$1" | awk -F/ '/rtt/ { printf "%.3f", $5 }'
}

declare -A RES
measure() {
    local name=$1 addr=$2
    RES[$name,rtt]=$(rtt "$addr")
    RES[$name,s1]=$(iperf "$addr" 1)
    RES[$name,s4]=$(iperf "$addr" 4)
    printf '%-16s ping %s ms  1 stream %s Gbit/s  4 streams %s Gbit/s\n' \
        "$name" "${RES[$name,rtt]}" "${RES[$name,s1]}" "${RES[$name,s4]}" >&2
}

measure veth 198.51.100.2

# Kernel vxlan on both sides.
for ns in "$A" "$B"; do
    if [ "$ns" = "$A" ]; then l=198.51.100.1 r=198.51.100.2 o=192.0.2.1
    else l=198.51.100.2 r=198.51.100.1 o=192.0.2.2; fi
    ip -n "$ns" link add vx0 type vxlan id 42 dstport 4789 remote $r local $l dev "$( [ "$ns" = "$A" ] && echo ua || echo ub )"
    ip -n "$ns" link set vx0 mtu 1400
    ip -n "$ns" addr add $o/24 dev vx0
    ip -n "$ns" link set vx0 up
done
measure kernel-kernel 192.0.2.2
ip -n "$A" link del vx0

# overlayd in A.
# A state directory of its own: nothing persists from one run to the next.
ina target/release/overlayd --socket "$SOCK" --state-dir "$(dirname "$SOCK")/state" --log warn &
DPID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
CTL="target/release/overlayctl --socket $SOCK"
$CTL create -e vxlan -s direct -v 42 \
    -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789 ov0
$CTL activate ov0
ip -n "$A" addr add 192.0.2.1/24 dev ov0
# B forgets the MAC the previous path had for 192.0.2.1.
ip -n "$B" neigh flush dev vx0
measure overlayd-kernel 192.0.2.2
$CTL show -s ov0 >&2
$CTL delete ov0

# The same in dynamic mode: the files plugin knows B's MAC and answers
# A's ARP for B itself; every frame goes through the target cache.
B_MAC=$(ip -n "$B" -o link show vx0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
HOSTS=$(dirname "$SOCK")/hosts.json
printf '{ "%s": { "ip": "198.51.100.2", "port": 4789, "arp": "192.0.2.2" } }\n' "$B_MAC" >"$HOSTS"
$CTL create -e vxlan -s files -v 42 -p vxlan/listen_ip=198.51.100.1,files/config="$HOSTS" ov1
$CTL activate ov1
ip -n "$A" addr add 192.0.2.1/24 dev ov1
ip -n "$B" neigh flush dev vx0
measure overlayd-files 192.0.2.2
$CTL show -s ov1 >&2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "machine: $(nproc) cores, $(uname -r), offloads $OFFLOADS on the veth, ${DURATION} s per iperf3 run"
printf '| path | ping avg ms | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s |\n|---|---|---|---|\n'
for n in veth kernel-kernel overlayd-kernel overlayd-files; do
    printf '| %s | %s | %s | %s |\n' "$n" "${RES[$n,rtt]}" "${RES[$n,s1]}" "${RES[$n,s4]}"
done
echo
echo "overlayd-kernel / kernel-kernel: 1 stream $(ratio "${RES[overlayd-kernel,s1]}" "${RES[kernel-kernel,s1]}"), 4 streams $(ratio "${RES[overlayd-kernel,s4]}" "${RES[kernel-kernel,s4]}")"
echo "overlayd-kernel / veth:          1 stream $(ratio "${RES[overlayd-kernel,s1]}" "${RES[veth,s1]}")"
echo "overlayd-files / overlayd-kernel: 1 stream $(ratio "${RES[overlayd-files,s1]}" "${RES[overlayd-kernel,s1]}"), 4 streams $(ratio "${RES[overlayd-files,s4]}" "${RES[overlayd-kernel,s4]}")"
