#!/usr/bin/env bash
# End-to-end throughput and latency of overlayd next to the kernel's own
# vxlan, measured in one invocation on this machine, with the veth's
# offloads on and then off:
#
#   veth              the raw underlay, no encapsulation (the ceiling)
#   kernel-kernel     kernel vxlan <-> kernel vxlan
#   overlayd-kernel   overlayd (TAP backend, point mode) <-> kernel vxlan
#   overlayd-files    the same in dynamic mode (files plugin, ARP answered
#                     by its proxy, every super-frame through the cache)
#   overlayd-overlayd overlayd <-> overlayd, point mode, one daemon per side
#
# Two namespaces joined by a veth pair; underlay 198.51.100.0/24, overlay
# 192.0.2.0/24, VNI 42, overlay MTU 1400. For each path: ping RTT (the
# average of 20, with the processor time the overlayd processes used
# meanwhile, in % of one CPU), TCP with iperf3 from A to B, from B to A (-R), and 4
# streams from A to B, DURATION seconds each (default 10).
#
# PATHS lists the paths to measure (default: all five above; the ratios
# need kernel-kernel). overlayd's own options
# come from its environment variables, e.g. OVERLAYD_BUSY_POLL=100000.
#
# OFFLOADS="on off" (default) lists the veth settings to measure:
#   on   the veth keeps its offloads (TSO, GSO, GRO, checksum), as a
#        container or a NIC with offloads gives them; only B's transmit
#        checksum offload is off, because a veth hands frames over with
#        the checksum unfinished and the kernel vxlan in B would send them
#        so (see README, "The data path")
#   off  every offload off on both ends: every frame on the wire is
#        MTU-sized, as it is on a NIC without offloads
#
# Needs root. Prints one table per setting with the ratios to kernel <->
# kernel of the same setting; changes nothing outside the namespaces it
# creates, which are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
SETTINGS=${OFFLOADS:-on off}
[ "$(id -u)" -eq 0 ] || { echo "bench/throughput.sh needs root" >&2; exit 1; }
scripts/install-deps
cargo build --release --workspace >&2

A=ovbench-a-$$
B=ovbench-b-$$
TMP=$(mktemp -d)
PIDS=()
DAEMONS=()
teardown() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PIDS=()
    DAEMONS=()
    for ns in "$A" "$B"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap 'teardown; rm -rf "$TMP"' EXIT

ina() { ip netns exec "$A" "$@"; }
inb() { ip netns exec "$B" "$@"; }

setup() {
    local offloads=$1
    ip netns add "$A"
    ip netns add "$B"
    ip link add ua netns "$A" type veth peer name ub netns "$B"
    for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
    ip -n "$A" addr add 198.51.100.1/24 dev ua
    ip -n "$B" addr add 198.51.100.2/24 dev ub
    ip -n "$A" link set ua up
    ip -n "$B" link set ub up
    inb ethtool -K ub tx off >/dev/null
    if [ "$offloads" = off ]; then
        ina ethtool -K ua tx off rx off tso off gso off gro off >/dev/null
        inb ethtool -K ub rx off tso off gso off gro off >/dev/null
    fi
}

# overlayd in namespace $1 with a socket and state directory of its own
# (nothing persists from one run to the next); sets CTL.
daemon() {
    local ns=$1 dir=$TMP/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    ip netns exec "$ns" target/release/overlayd --socket "$dir/sock" --state-dir "$dir/state" --log warn &
    PIDS+=($!)
    DAEMONS+=($!)
    for _ in $(seq 100); do [ -S "$dir/sock" ] && break; sleep 0.05; done
    CTL="target/release/overlayctl --socket $dir/sock"
}

# A point-mode device ov0 in namespace $4 listening on $1, sending to $2,
# with overlay address $3.
point() {
    $CTL create -e vxlan -s direct -v 42 \
        -p vxlan/listen_ip=$1,direct/dest_ip=$2,direct/dest_port=4789 ov0
    $CTL activate ov0
    ip -n "$4" addr add "$3"/24 dev ov0
}

kernel_vxlan() {
    local ns=$1 local=$2 remote=$3 addr=$4 dev=$5
    ip -n "$ns" link add vx0 type vxlan id 42 dstport 4789 remote "$remote" local "$local" dev "$dev"
    ip -n "$ns" link set vx0 mtu 1400
    ip -n "$ns" addr add "$addr"/24 dev vx0
    ip -n "$ns" link set vx0 up
}

# Gbit/s received, from iperf3's summary line; extra arguments go to the client.
iperf() {
    local addr=$1
    shift
    # Only processes of the namespace are touched (pkill would reach the host).
    ip netns pids "$B" | grep -vxF -f <(printf '%s\n' "${PIDS[@]}") | xargs -r kill 2>/dev/null || true
    # In the background rather than -D: a daemonised server that never got
    # its one client would outlive the namespace.
    inb iperf3 -s -1 >/dev/null 2>&1 &
    PIDS+=($!)
    sleep 0.3
    ina iperf3 -c "$addr" -t "$DURATION" -f m "$@" 2>/dev/null |
        awk '/receiver/ { v = $(NF-2) } END { printf "%.2f", v / 1000 }'
}

rtt() {
    ina ping -q -c 20 -i 0.05 "$1" | awk -F/ '/rtt/ { printf "%.3f", $5 }'
}

# Processor time (clock ticks) the running overlayd processes have used.
daemon_ticks() {
    local t=0 p
    for p in "${DAEMONS[@]}"; do
        [ -r "/proc/$p/stat" ] || continue
        # utime and stime: fields 14 and 15, counted after the command name.
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$t"
}

declare -A RES
measure() {
    local key=$1 addr=$2
    # Paths not asked for are set up (cheap) but not measured.
    [[ " $PATHS " == *" ${key#*,} "* ]] || return 0
    ina ping -q -c 3 -i 0.1 "$addr" >/dev/null
    # The daemons' processor use while the pings run, in % of one CPU.
    local t0 w0
    t0=$(daemon_ticks) w0=$(date +%s%N)
    RES[$key,rtt]=$(rtt "$addr")
    RES[$key,cpu]=$(awk -v t="$(($(daemon_ticks) - t0))" -v w="$(($(date +%s%N) - w0))" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", 100 * t / hz / (w / 1e9) }')
    RES[$key,ab]=$(iperf "$addr" -P 1)
    RES[$key,ba]=$(iperf "$addr" -P 1 -R)
    RES[$key,s4]=$(iperf "$addr" -P 4)
    printf '%-24s ping %s ms (daemon CPU %s %%)  A->B %s  B->A %s  4 streams %s Gbit/s\n' "$key" \
        "${RES[$key,rtt]}" "${RES[$key,cpu]}" "${RES[$key,ab]}" "${RES[$key,ba]}" "${RES[$key,s4]}" >&2
}

PATHS=${PATHS:-veth kernel-kernel overlayd-kernel overlayd-files overlayd-overlayd}
run_setting() {
    local o=$1
    setup "$o"
    measure "$o,veth" 198.51.100.2

    kernel_vxlan "$A" 198.51.100.1 198.51.100.2 192.0.2.1 ua
    kernel_vxlan "$B" 198.51.100.2 198.51.100.1 192.0.2.2 ub
    measure "$o,kernel-kernel" 192.0.2.2
    ip -n "$A" link del vx0

    daemon "$A"
    local ctla=$CTL
    point 198.51.100.1 198.51.100.2 192.0.2.1 "$A"
    # B forgets the MAC the previous path had for 192.0.2.1.
    ip -n "$B" neigh flush dev vx0
    measure "$o,overlayd-kernel" 192.0.2.2
    $CTL show -s ov0 >&2
    $CTL delete ov0

    # Dynamic mode: the files plugin knows B's MAC and answers A's ARP for
    # B itself; every super-frame goes through the target cache.
    local bmac hosts=$TMP/hosts.json
    bmac=$(ip -n "$B" -o link show vx0 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    printf '{ "%s": { "ip": "198.51.100.2", "port": 4789, "arp": "192.0.2.2" } }\n' "$bmac" >"$hosts"
    $CTL create -e vxlan -s files -v 42 -p vxlan/listen_ip=198.51.100.1,files/config="$hosts" ov1
    $CTL activate ov1
    ip -n "$A" addr add 192.0.2.1/24 dev ov1
    ip -n "$B" neigh flush dev vx0
    measure "$o,overlayd-files" 192.0.2.2
    $CTL delete ov1

    ip -n "$B" link del vx0
    CTL=$ctla
    point 198.51.100.1 198.51.100.2 192.0.2.1 "$A"
    daemon "$B"
    point 198.51.100.2 198.51.100.1 192.0.2.2 "$B"
    measure "$o,overlayd-overlayd" 192.0.2.2
    teardown
}

for o in $SETTINGS; do run_setting "$o"; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "machine: $(nproc) cores, $(uname -r); ${DURATION} s per iperf3 run; Gbit/s received"
for o in $SETTINGS; do
    echo
    echo "veth offloads $o"
    echo
    printf '| path | ping ms | daemon CPU during ping | A->B | B->A | 4 streams A->B | ratio to kernel-kernel (A->B / B->A / 4) |\n'
    printf '|---|---|---|---|---|---|---|\n'
    for n in $PATHS; do
        k="$o,$n" kk="$o,kernel-kernel"
        printf '| %s | %s | %s %% | %s | %s | %s | %s / %s / %s |\n' "$n" "${RES[$k,rtt]}" "${RES[$k,cpu]}" \
            "${RES[$k,ab]}" "${RES[$k,ba]}" "${RES[$k,s4]}" \
            "$(ratio "${RES[$k,ab]}" "${RES[$kk,ab]}")" "$(ratio "${RES[$k,ba]}" "${RES[$kk,ba]}")" \
            "$(ratio "${RES[$k,s4]}" "${RES[$kk,s4]}")"
    done
done
