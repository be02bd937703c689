#!/usr/bin/env bash
# What `overlayctl -b` saves: N temporary devices created through one
# batch (one connection, pipelined) next to N more created by one
# overlayctl process per line, against overlayd (release build) in a
# private network namespace.
#
#   bench/batch.sh [N]      default 200
#
# Run as root; build first (cargo build --release --workspace).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/release"
[ -x "$bin/overlayd" ] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
bin=$(cd "$bin" && pwd)
n=${1:-200}
ns="ovbench-batch-$$"
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
ip netns exec "$ns" "$bin/overlayd" --socket "$work/s" --state-dir "$work/state" \
    --plugin-dir "$bin" --log warn &
daemon=$!
for _ in $(seq 100); do [ -S "$work/s" ] && break; sleep 0.05; done

line() { echo "create -t -e vxlan -s direct -v $1 -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789 d$1"; }
for i in $(seq 1 "$n"); do line "$i"; done >"$work/batch"
for i in $(seq $((n + 1)) $((2 * n))); do line "$i"; done >"$work/lines"
elapsed() { awk "BEGIN {printf \"%.2f\", $2 - $1}"; }

s=$(date +%s.%N)
"$bin/overlayctl" --socket "$work/s" -b "$work/batch"
e=$(date +%s.%N)
echo "overlayctl -b: $n creates in $(elapsed "$s" "$e") s"
s=$(date +%s.%N)
while read -r cmd; do
    # shellcheck disable=SC2086 # the line's words, as a shell splits them
    "$bin/overlayctl" --socket "$work/s" $cmd
done <"$work/lines"
e=$(date +%s.%N)
echo "one overlayctl per line: $n creates in $(elapsed "$s" "$e") s"
