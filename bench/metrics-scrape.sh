#!/usr/bin/env bash
# What a Prometheus scrape costs: overlayd (release build) in a private
# network namespace with --metrics on its loopback, N devices created
# through one `overlayctl -b` batch (timed too), the first ACTIVE of them
# activated; then SCRAPES scrapes of /metrics, each timed by curl, next to
# as many `overlayctl show -s` (the same STATS dump, as any client reads
# it). Prints the median and the 90th percentile of each, in ms.
#
#   bench/metrics-scrape.sh [N...]     default: 10 100 1000
#   SCRAPES=20 ACTIVE=10               scrapes per size, devices activated
#
# Run as root; build first (cargo build --release --workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release"
[ -x "$bin/overlayd" ] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
bin=$(cd "$bin" && pwd)
scrapes=${SCRAPES:-20}
active=${ACTIVE:-10}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 1000)

ns="ovbench-scrape-$$"
work=$(mktemp -d /tmp/ovbench.XXXXXX)
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add u0 type veth peer name u1
ip -n "$ns" addr add 198.51.100.1/24 dev u0
ip -n "$ns" link set u0 up
ip -n "$ns" link set u1 up

# Median and 90th percentile (ms) of the numbers (seconds) on stdin.
stats() { sort -n | awk '{v[NR]=$1*1000} END {printf "median %.2f ms, p90 %.2f ms", v[int((NR+1)/2)], v[int(NR*0.9+0.5)]}'; }

for n in "${sizes[@]}"; do
    rm -rf "$work/state" "$work/s"
    ip netns exec "$ns" "$bin/overlayd" --socket "$work/s" --state-dir "$work/state" \
        --plugin-dir "$bin" --metrics 127.0.0.1:9477 --log warn 2>>"$work/log" &
    daemon=$!
    for _ in $(seq 100); do [ -S "$work/s" ] && break; sleep 0.05; done
    : >"$work/batch"
    for i in $(seq 1 "$n"); do
        echo "create -t -e vxlan -s direct -v $i -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789,ifname=b$i b$i" >>"$work/batch"
    done
    for i in $(seq 1 $((active < n ? active : n))); do echo "activate b$i" >>"$work/batch"; done
    start=$(date +%s.%N)
    "$bin/overlayctl" --socket "$work/s" -b "$work/batch"
    end=$(date +%s.%N)
    echo "$n devices: batch of $(wc -l <"$work/batch") lines in $(awk "BEGIN {printf \"%.2f\", $end - $start}") s"
    for _ in $(seq "$scrapes"); do
        ip netns exec "$ns" curl -s -o /dev/null -w '%{time_total}\n' http://127.0.0.1:9477/metrics
    done | stats | sed "s/^/  scrape: /"; echo
    for _ in $(seq "$scrapes"); do
        s=$(date +%s.%N); "$bin/overlayctl" --socket "$work/s" show -s >/dev/null; e=$(date +%s.%N)
        awk "BEGIN {print $e - $s}"
    done | stats | sed "s/^/  overlayctl show -s: /"; echo
    size=$(ip netns exec "$ns" curl -s http://127.0.0.1:9477/metrics | wc -c)
    echo "  /metrics is $size bytes"
    kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""
done
