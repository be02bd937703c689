#!/usr/bin/env bash
# A soak: overlayd (release build) in network namespace A, the kernel's
# vxlan in B, joined by a veth pair; for MINUTES minutes (default 10):
#   - CLIENTS clients (default 3) each create, change, activate and delete
#     temporary devices in a loop (overlayctl -b batches), every command
#     checked;
#   - iperf3 through a point-mode device to the kernel's vxlan, in bursts;
#   - lookups answered by the files plugin (ARP proxied for its hosts) on a
#     dynamic-mode device, asked again and again;
#   - lookups answered by an external server over the overlay_target family
#     (tests/examples/lookup_server.rs) on another, its cache flushed after
#     every pass over 50 unknown MACs so that they are asked again;
#   - two `overlayctl monitor` subscribers attached throughout, and a third
#     stopped (SIGSTOP) for the first 60 s while the others churn (and
#     property changes on one more device go on until its queue overflows).
# Every 10 s it samples the daemon's resident memory, open descriptors and
# threads; at the end it prints the samples and fails when, for any of the
# three, the largest sample of the last third exceeds the largest of the
# first third by more than 10 % (the first sample, taken as the load
# starts, left out), when any command failed, when the external
# server failed or answered nothing, when the daemon died, when the stopped
# monitor, continued, was not told it lost notifications (ENOBUFS) or did
# not resynchronise and go on, or when a monitor that kept reading was told
# it lost any.
#
#   bench/soak.sh [MINUTES]
#
# Run as root; build first:
#   cargo build --release --workspace
#   cargo build --release -p overlay-tests --example lookup_server
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
clients=${CLIENTS:-3}
bin="${CARGO_TARGET_DIR:-target}/release"
for f in overlayd overlayctl examples/lookup_server; do
    [ -x "$bin/$f" ] || {
        echo "soak: no $bin/$f: build first: cargo build --release --workspace && cargo build --release -p overlay-tests --example lookup_server" >&2
        exit 1
    }
done
bin=$(cd "$bin" && pwd)

a="ovsoak-a-$$"
b="ovsoak-b-$$"
work=$(mktemp -d /tmp/ovsoak.XXXXXX)
daemon=""
pids=()
stopped=""
cleanup() {
    # A stopped process keeps a SIGTERM pending until it is continued.
    [ -n "$stopped" ] && kill -CONT "$stopped" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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
ip netns exec "$b" iperf3 -s -D -1 >/dev/null 2>&1 || true

ctl() { "$bin/overlayctl" --socket "$work/s" "$@"; }
ip netns exec "$a" "$bin/overlayd" --socket "$work/s" --state-dir "$work/state" \
    --plugin-dir "$bin" --log warn 2>"$work/log" &
daemon=$!
for _ in $(seq 100); do [ -S "$work/s" ] && break; sleep 0.05; done
[ -S "$work/s" ] || { echo "soak: overlayd did not start:" >&2; cat "$work/log" >&2; exit 1; }

# The traffic device, and a files device whose ARP the plugin answers.
ctl create -t -e vxlan -s direct -v 42 \
    -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789 ov0
ctl activate ov0
ip -n "$a" addr add 192.0.2.1/24 dev ov0
hosts="$work/hosts.json"
{
    echo '{'
    for i in $(seq 10 59); do
        printf '"02:00:5e:11:00:%02x": { "ip": "198.51.100.2", "arp": "192.0.3.%d" }' "$i" "$i"
        [ "$i" -lt 59 ] && echo ','
    done
    echo '}'
} >"$hosts"
ctl create -t -e vxlan -s files -v 43 -p vxlan/listen_ip=198.51.100.1,files/config="$hosts" of0
ctl activate of0
ip -n "$a" addr add 192.0.3.1/24 dev of0
# A device whose lookups the external server answers: the files plugin with
# no hosts, never asked once the device is associated. Its 50 neighbours
# are permanent, so each ping is a unicast frame to an unknown MAC.
echo '{}' >"$work/empty.json"
ctl create -t -e vxlan -s files -v 44 -p vxlan/listen_ip=198.51.100.1,files/config="$work/empty.json" ex0
ctl activate ex0
ip -n "$a" addr add 192.0.4.1/24 dev ex0
for i in $(seq 10 59); do
    ip -n "$a" neigh replace "192.0.4.$i" lladdr "$(printf '02:00:5e:44:00:%02x' "$i")" dev ex0 nud permanent
done

# Waits at most SECONDS for a line matching the extended regular expression
# in FILE, after line AFTER (0: anywhere).
wait_line() {
    local file=$1 re=$2 seconds=$3 after=${4:-0}
    local until=$(($(date +%s) + seconds))
    while ! tail -n "+$((after + 1))" "$file" | grep -Eq "$re"; do
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.2
    done
}

# Monitors: 1 and 2 read throughout; "stopped" is stopped for 60 s. Not
# through ctl: $! must be overlayctl itself, not a subshell.
for m in 1 2 stopped; do
    "$bin/overlayctl" --socket "$work/s" monitor >"$work/mon-$m" 2>&1 &
    pids+=($!)
done
stopped=${pids[2]}
# Each is subscribed once it prints a change (asked again each second, at
# most 20 times).
for try in $(seq 20); do
    ctl create -t -e vxlan -s direct -v 45 mark0
    ctl delete mark0
    subscribed=0
    for m in 1 2 stopped; do
        wait_line "$work/mon-$m" '^delete mark0$' 1 && subscribed=$((subscribed + 1))
    done
    [ "$subscribed" -eq 3 ] && break
    [ "$try" -lt 20 ] || { echo "soak: the monitors did not print a change in 20 s" >&2; exit 1; }
done
kill -STOP "$stopped"
echo "soak: monitor $stopped stopped at $(date -u +%T.%N | cut -c1-12)"
(sleep 60 && kill -CONT "$stopped") &
continuer=$!
# However slowly the churn goes on a loaded machine, the stopped monitor's
# queue must overflow: changes in batches of 500 on a device of their own
# until the daemon says it dropped notifications (at most 100 batches).
(
    ctl create -t -e vxlan -s direct -v 46 storm0
    for n in $(seq 100); do
        grep -q 'does not read its notifications' "$work/log" && break
        for i in $(seq 500); do echo "prop-set storm0 mtu=$((1000 + i))"; done >"$work/storm"
        ctl -b "$work/storm" >/dev/null 2>>"$work/errors" || echo "storm batch $n failed" >>"$work/errors"
        sleep 0.2
    done
) &
storm=$!

end=$(($(date +%s) + minutes * 60))
"$bin/examples/lookup_server" "$work/s" ex0 198.51.100.2 4789 $((minutes * 60)) >"$work/server" 2>&1 &
server=$!
pids+=("$server")
# Every command that took SLOW_MS (default 2000 ms) or more is written down
# with the time it ended (UTC), for the report at the end.
slow_ms=${SLOW_MS:-2000}
slow() {
    local ms=$((($(date +%s%N) - $2) / 1000000))
    [ "$ms" -lt "$slow_ms" ] || echo "$(date -u +%T.%N | cut -c1-12) $1: $ms ms" >>"$work/slow"
}
# Churn: each client its own names; a failed batch is an error.
loops=()
for c in $(seq 1 "$clients"); do
    (
        n=0
        while [ "$(date +%s)" -lt "$end" ]; do
            n=$((n + 1))
            {
                for i in 1 2 3 4 5; do
                    echo "create -t -e vxlan -s direct -v $((1000 * c + i)) -p vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789 c${c}d$i"
                    echo "prop-set c${c}d$i mtu=$((1300 + n % 100))"
                    echo "activate c${c}d$i"
                done
                echo "show"
                for i in 1 2 3 4 5; do echo "delete c${c}d$i"; done
            } >"$work/batch-$c"
            t0=$(date +%s%N)
            if ! ctl -b "$work/batch-$c" >/dev/null 2>>"$work/errors"; then
                echo "$(date -u +%T) client $c round $n failed" >>"$work/errors"
                # What the failed batch left would fail every later round.
                for i in 1 2 3 4 5; do ctl delete "c${c}d$i" >/dev/null 2>&1 || true; done
            fi
            slow "client $c batch $n" "$t0"
        done
    ) &
    loops+=($!)
    pids+=($!)
done
# Traffic in bursts; lookups for every host of the files device.
(
    while [ "$(date +%s)" -lt "$end" ]; do
        ip netns exec "$a" iperf3 -c 192.0.2.2 -t 5 >/dev/null 2>&1 || true
        ip netns exec "$b" iperf3 -s -D -1 >/dev/null 2>&1 || true
        for i in $(seq 10 59); do
            ip -n "$a" neigh del "192.0.3.$i" dev of0 2>/dev/null || true
            ip netns exec "$a" ping -c 1 -W 0.2 "192.0.3.$i" >/dev/null 2>&1 || true
        done
    done
) &
loops+=($!)
pids+=($!)
# Lookups for the external server: each ping a miss, then the answers
# flushed so that the next pass asks again.
(
    while [ "$(date +%s)" -lt "$end" ]; do
        for i in $(seq 10 59); do
            ip netns exec "$a" ping -c 1 -W 0.1 "192.0.4.$i" >/dev/null 2>&1 || true
        done
        ctl cache-flush ex0 >/dev/null 2>>"$work/errors" || echo "cache-flush ex0 failed" >>"$work/errors"
    done
) &
loops+=($!)
pids+=($!)
# A probe: the cheapest request (STATUS), twice a second, so that a stall
# of the daemon's control loop shows apart from slow churn commands.
(
    while [ "$(date +%s)" -lt "$end" ]; do
        t0=$(date +%s%N)
        ctl status >/dev/null 2>>"$work/errors" || echo "$(date -u +%T) status probe failed" >>"$work/errors"
        slow "status probe" "$t0"
        sleep 0.5
    done
) &
loops+=($!)
pids+=($!)

echo "soak: $minutes min, $clients churning clients; samples every 10 s (RSS kB, descriptors, threads)"
samples="$work/samples"
: >"$samples"
prev=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
    # A sampler that wakes far later than asked was itself held up (the
    # machine, or every process stopped from outside): what took long
    # meanwhile need not be the daemon's doing.
    now=$(date +%s)
    [ $((now - prev)) -le 15 ] ||
        echo "$(date -u +%T) the sampler woke $((now - prev)) s after its previous sample instead of 10 s: this script itself was held up" >>"$work/held"
    prev=$now
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "soak: overlayd died" >&2
        cat "$work/log" >&2
        exit 1
    fi
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$daemon/status")
    fds=$(find "/proc/$daemon/fd" -mindepth 1 -maxdepth 1 | wc -l)
    echo "$rss $fds $thr" | tee -a "$samples"
    sleep 10
done
# The server serves until the same end; its status is its verdict.
server_ok=1
wait "$server" || server_ok=0
wait "${loops[@]}" 2>/dev/null || true
ctl lookup-stats

fail=0
cat "$work/server"
# The stopped monitor, continued, reads what was queued for it, then the
# ENOBUFS report, lists every device and goes on; the others lost nothing.
wait "$storm" || echo "the storm0 device could not be created" >>"$work/errors"
wait "$continuer" || true
if ! wait_line "$work/mon-stopped" '^lost: ' 30; then
    echo "soak: the monitor stopped for 60 s was not told it lost notifications ($(wc -l <"$work/mon-stopped") lines read; the daemon: $(ctl status -j | grep -o '"notifications_dropped":[0-9]*'))" >&2
    tail -n 3 "$work/mon-stopped" >&2
    fail=1
else
    lost=$(grep -n -m1 '^lost: ' "$work/mon-stopped" | cut -d: -f1)
    before=$(grep -c '^delete mark0$' "$work/mon-stopped")
    echo "soak: the monitor stopped for 60 s read $((lost - 1 - 2 * before)) notifications queued for it, then: $(sed -n "${lost}p" "$work/mon-stopped")"
    grep -m1 'does not read its notifications' "$work/log" | sed 's/^/soak: the daemon: /'
    ctl create -t -e vxlan -s direct -v 45 mark1
    ctl delete mark1
    for dev in ov0 of0 ex0 storm0; do
        grep -q "^device $dev " <(tail -n "+$lost" "$work/mon-stopped") || {
            echo "soak: the stopped monitor's resynchronisation did not list $dev" >&2
            fail=1
        }
    done
    for m in stopped 1 2; do
        wait_line "$work/mon-$m" '^delete mark1$' 30 || {
            echo "soak: monitor $m did not go on after the stopped one was continued" >&2
            fail=1
        }
    done
fi
for m in 1 2; do
    if grep -q '^lost: ' "$work/mon-$m"; then
        echo "soak: monitor $m, which kept reading, lost notifications" >&2
        fail=1
    fi
done
if [ "$server_ok" -eq 0 ]; then
    echo "soak: the external lookup server failed" >&2
    fail=1
fi
if [ -s "$work/held" ]; then
    echo "soak: held up from outside (UTC):"
    cat "$work/held"
fi
if [ -s "$work/slow" ]; then
    echo "soak: $(wc -l <"$work/slow") commands took ${slow_ms} ms or more (UTC end time, what, duration):"
    sort "$work/slow" | head -40
    echo "soak: the daemon's log (warnings and errors), last lines:"
    tail -n 20 "$work/log"
fi
if [ -s "$work/errors" ]; then
    echo "soak: commands failed:" >&2
    sort "$work/errors" | uniq -c | sort -rn | head -20 >&2
    fail=1
fi
# The largest of the last third against the largest of the first third.
# The first sample, taken as the load starts, is not compared: with the few
# samples of a 1-minute run it would be the whole first third, and the
# daemon warms up (buffers, the lookup threads) in its first seconds.
awk -v fail="$fail" '
    NR > 1 { n++; v[n, 1] = $1; v[n, 2] = $2; v[n, 3] = $3 }
    END {
        NR = n
        third = int(NR / 3)
        if (third < 1) { print "soak: too few samples (run at least a minute)"; exit 1 }
        split("rss_kB descriptors threads", name, " ")
        for (k = 1; k <= 3; k++) {
            a = 0; b = 0
            for (i = 1; i <= third; i++) if (v[i, k] > a) a = v[i, k]
            for (i = NR - third + 1; i <= NR; i++) if (v[i, k] > b) b = v[i, k]
            verdict = (b > a * 1.10) ? "GROWS" : "flat"
            if (verdict == "GROWS") fail = 1
            printf "soak: %-11s first third max %d, last third max %d (%+.1f %%): %s\n", name[k], a, b, (a ? 100 * (b - a) / a : 0), verdict
        }
        exit fail
    }' "$samples"
