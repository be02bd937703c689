#!/usr/bin/env bash
# Thousands of devices on one daemon: DEVICES (default 10000) devices
# created and activated through the protocol, pipelined; prints the time
# to activate them all, threads, resident memory per active device, and
# the time of a clean stop with them all active.
#
# Needs root. Everything runs in a namespace of its own, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/scale.sh needs root" >&2; exit 1; }
cargo build --release --workspace >&2
cargo run --release --quiet -p overlay-tests --example scale
