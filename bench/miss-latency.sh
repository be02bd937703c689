#!/usr/bin/env bash
# Dynamic mode: how long the first frame to an unknown MAC takes to reach
# the underlay (a cache miss, the lookup, the answer, the send), next to a
# cache hit, with the files plugin, with an external lookup server over the
# overlay_target family and with the etcd plugin and a local etcd member.
# ROUNDS rounds per path (default 2000); with etcd, MOVES MAC moves timed
# until frames follow (default 50) and a BURST of lookups (default 2000).
#
# Needs root. Everything runs in a namespace of its own, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/miss-latency.sh needs root" >&2; exit 1; }
cargo build --release --workspace >&2
cargo run --release --quiet -p overlay-tests --example miss_latency
