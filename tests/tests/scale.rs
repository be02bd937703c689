//! Thousands of devices on one daemon: 2,000 devices are created and
//! activated through the protocol, pipelined on one connection, and the
//! daemon's threads and memory must not grow with them: a device costs
//! memory (a little), not a thread. A clean stop removes every TAP.
//! (Timings are for bench/scale.sh; nothing here is timed.)

use overlay_tests::{
    net::{self, Netns},
    scale, Daemon,
};

const DEVICES: usize = 2000;
/// Most resident memory an idle active device may cost, KiB (the goal of
/// the packet-path design, docs/performance.md).
const KIB_PER_DEVICE: u64 = 64;

#[test]
fn two_thousand_devices_cost_no_thread_and_little_memory() {
    if !net::can_run() {
        return;
    }
    let ns = Netns::new("scale");
    ns.ip("link set lo up");
    ns.ip("addr add 198.51.100.1/24 dev lo");
    // No IPv6 on the thousands of TAPs: their router solicitations would
    // only add traffic.
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    let mut daemon = Daemon::start_in_netns(&ns.name);
    let pid = daemon.pid().expect("the daemon runs");
    let mut c = daemon.client();
    // One device first, so that the mux and its sockets are counted in the
    // baseline, not per device.
    scale::create_and_activate(&mut c, 1, "base", 1, "198.51.100.1", "198.51.100.2", 1);
    let before = scale::figures(pid);
    scale::create_and_activate(
        &mut c,
        DEVICES,
        "s",
        100,
        "198.51.100.1",
        "198.51.100.2",
        64,
    );
    let after = scale::figures(pid);
    let taps = ns
        .ok(&["ip", "-o", "link", "show", "type", "tun"])
        .lines()
        .count();
    assert_eq!(taps, DEVICES + 1, "one TAP per active device");
    assert_eq!(
        after.threads, before.threads,
        "threads grew with the devices: {before:?} -> {after:?}"
    );
    let per_device = after.rss_kib.saturating_sub(before.rss_kib) / DEVICES as u64;
    assert!(
        per_device <= KIB_PER_DEVICE,
        "{per_device} KiB per active device ({before:?} -> {after:?})"
    );
    // One descriptor per device (its TAP), nothing more.
    assert!(
        after.fds - before.fds <= DEVICES + 8,
        "descriptors: {before:?} -> {after:?}"
    );
    drop(c);
    // A clean stop deletes every TAP.
    daemon.stop();
    let left = ns
        .ok(&["ip", "-o", "link", "show", "type", "tun"])
        .lines()
        .count();
    assert_eq!(left, 0, "TAPs left after a clean stop");
}
