#!/usr/bin/env bash
# What lookup plugins that block for ever or panic on every call cost a
# healthy device next to them: iperf3 through a point-mode overlayd device
# (namespace A) to the kernel's vxlan (namespace B), in ROUNDS pairs of
# SECONDS-long runs, one of each kind (which goes first alternates):
#   quiet  the healthy device alone;
#   sick   the same, with two dynamic devices of the test plugin `sick`
#          (tests/plugins/testplug, OVERLAY_TESTPLUG=sick-lookup) next to
#          it, one blocking in every lookup, one panicking, each sent a
#          steady stream of misses (ARP for 32 addresses, again and again);
#          they are created before the run and deleted after it.
# Each round has a daemon of its own (started, then stopped after the pair).
# Prints each run's Mbit/s, then the mean and the spread (min-max) of each
# kind and the ratio sick/quiet of the means. Nothing is asserted; the
# spread of the quiet runs is the noise the ratio is to be read against.
#
#   bench/sick-neighbours.sh [ROUNDS [SECONDS]]     # 5 rounds of 10 s
#
# Run as root after cargo build --release --workspace (it builds the test
# plugin itself, out of tree as a third party would).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-10}
[ "$(id -u)" -eq 0 ] || { echo "sick-neighbours: needs root" >&2; exit 1; }
bin="${CARGO_TARGET_DIR:-target}/release"
[ -x "$bin/overlayd" ] || { echo "sick-neighbours: build first: cargo build --release --workspace" >&2; exit 1; }
bin=$(cd "$bin" && pwd)

work=$(mktemp -d /tmp/ovsick.XXXXXX)
# Where the tests build out-of-tree plugins (target/examples), shared.
plug_target="$(pwd)/target/examples"
CARGO_TARGET_DIR="$plug_target" cargo build --release --quiet \
    --manifest-path tests/plugins/testplug/Cargo.toml
mkdir -p "$work/plugins"
install -m 0755 "$plug_target/release/liboverlay_testplug.so" "$work/plugins/libsick.so"

a="ovsick-a-$$"
b="ovsick-b-$$"
daemon=""
pingers=()
cleanup() {
    for p in "${pingers[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$a"
ip netns add "$b"
ip -n "$a" link set lo up
ip -n "$b" link set lo up
ip -n "$a" link add u0 type veth peer name u1 netns "$b"
ip -n "$a" addr add 198.51.100.1/24 dev u0
ip -n "$b" addr add 198.51.100.2/24 dev u1
ip -n "$a" link set u0 up
ip -n "$b" link set u1 up
# A veth leaves inner checksums to a NIC that is not there (README).
ip netns exec "$b" ethtool -K u1 tx off >/dev/null
ip -n "$b" link add vx0 type vxlan id 42 dstport 4789 remote 198.51.100.1 local 198.51.100.2 dev u1
ip -n "$b" addr add 192.0.2.2/24 dev vx0
ip -n "$b" link set vx0 up

ctl() { "$bin/overlayctl" --socket "$work/s" "$@"; }
# A daemon of its own for each round, with the healthy device: a thread
# left inside a blocking plugin stays there until the daemon exits.
daemon_up() {
    rm -f "$work/s"
    OVERLAY_TESTPLUG=sick-lookup ip netns exec "$a" "$bin/overlayd" --socket "$work/s" \
        --state-dir "$work/state" --plugin-dir "$bin" --plugin-dir "$work/plugins" \
        --log warn 2>>"$work/log" &
    daemon=$!
    for _ in $(seq 100); do [ -S "$work/s" ] && break; sleep 0.05; done
    [ -S "$work/s" ] || { echo "sick-neighbours: overlayd did not start:" >&2; cat "$work/log" >&2; exit 1; }
    ctl create -t -e vxlan -s direct -v 42 \
        -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789 ov0
    ctl activate ov0
    ip -n "$a" addr add 192.0.2.1/24 dev ov0
}
daemon_down() {
    kill "$daemon"
    wait "$daemon" || true
    daemon=""
}

sick_up() {
    local p="vxlan/listen_ip=198.51.100.1,lookup_timeout=100,sick/on_lookup"
    ctl create -t -e vxlan -s sick -v 1 -p "$p=block" ovb
    ctl create -t -e vxlan -s sick -v 2 -p "$p=panic" ovp
    ctl activate ovb
    ctl activate ovp
    ip -n "$a" addr add 192.0.3.1/24 dev ovb
    ip -n "$a" addr add 192.0.4.1/24 dev ovp
    pingers=()
    for net in 192.0.3 192.0.4; do
        for i in $(seq 2 33); do
            ip netns exec "$a" ping -q -i 0.2 -W 1 "$net.$i" >/dev/null 2>&1 &
            pingers+=($!)
        done
    done
}
sick_down() {
    # What they say at the end of the run: degraded, each with its reason.
    { ctl show -f ovb; ctl show -f ovp; } | grep -v '^LINK' >"$work/status"
    for p in "${pingers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${pingers[@]}" 2>/dev/null || true
    pingers=()
    ctl delete ovb
    ctl delete ovp
}
# One iperf3 run through ov0; prints the receiver's Mbit/s.
run() {
    ip netns exec "$b" iperf3 -s -D -1 >/dev/null 2>&1
    sleep 0.3
    ip netns exec "$a" iperf3 -c 192.0.2.2 -t "$seconds" -f m |
        awk '/receiver/ { print $7 }'
}

quiet=()
sick=()
for r in $(seq 1 "$rounds"); do
    daemon_up
    # Which goes first alternates, so that what a first run after the
    # start costs or gains falls on both kinds alike.
    if [ $((r % 2)) -eq 1 ]; then
        q=$(run)
        sick_up
        s=$(run)
        sick_down
    else
        sick_up
        s=$(run)
        sick_down
        q=$(run)
    fi
    daemon_down
    [ -n "$q" ] && [ -n "$s" ] || { echo "sick-neighbours: iperf3 failed in round $r" >&2; exit 1; }
    echo "round $r: quiet $q Mbit/s, sick $s Mbit/s"
    sed 's/^/  /' "$work/status"
    quiet+=("$q")
    sick+=("$s")
done
awk -v q="${quiet[*]}" -v s="${sick[*]}" 'BEGIN {
    nq = split(q, Q, " "); ns = split(s, S, " ")
    for (i = 1; i <= nq; i++) { mq += Q[i] / nq; if (i == 1 || Q[i] < loq) loq = Q[i]; if (Q[i] > hiq) hiq = Q[i] }
    for (i = 1; i <= ns; i++) { ms += S[i] / ns; if (i == 1 || S[i] < los) los = S[i]; if (S[i] > his) his = S[i] }
    printf "quiet: mean %.0f Mbit/s (%.0f-%.0f)\n", mq, loq, hiq
    printf "sick:  mean %.0f Mbit/s (%.0f-%.0f)\n", ms, los, his
    printf "sick/quiet: %.3f; quiet spread/mean: %.3f\n", ms / mq, (hiq - loq) / mq
}'
