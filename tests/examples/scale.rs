//! Thousands of devices on one daemon, and what they cost.
//!
//! A release `overlayd` runs in a namespace of its own; DEVICES (default
//! 10,000) temporary vxlan/direct devices are created and activated
//! through the protocol, 64 requests in flight on one connection, all on
//! one underlay socket. Printed: the time to activate all, the daemon's
//! threads, resident memory and descriptors before and after (memory per
//! active device), and the time a clean stop (SIGTERM) takes with them all
//! active.
//!
//! Run as root after `cargo build --release --workspace`:
//!
//! ```sh
//! bench/scale.sh          # DEVICES=10000 by default
//! ```
//!
//! Nothing is asserted; tests/tests/scale.rs checks the bounds.

use overlay_tests::{
    net::{self, Netns},
    scale, Daemon,
};
use std::time::Instant;

fn main() {
    if !net::can_run() {
        std::process::exit(2);
    }
    let n: usize = std::env::var("DEVICES")
        .ok()
        .map(|v| v.parse().expect("DEVICES is a number of devices"))
        .unwrap_or(10_000);
    let ns = Netns::new("scale");
    ns.ip("link set lo up");
    ns.ip("addr add 198.51.100.1/24 dev lo");
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    let mut daemon = Daemon::start_in_netns(&ns.name);
    let pid = daemon.pid().expect("the daemon runs");
    let mut c = daemon.client();
    scale::create_and_activate(&mut c, 1, "base", 1, "198.51.100.1", "198.51.100.2", 1);
    let before = scale::figures(pid);
    let took = scale::create_and_activate(&mut c, n, "s", 100, "198.51.100.1", "198.51.100.2", 64);
    let after = scale::figures(pid);
    drop(c);
    let stop = Instant::now();
    daemon.terminate();
    let stopped = stop.elapsed();
    let per_device = (after.rss_kib.saturating_sub(before.rss_kib)) as f64 / n as f64;
    println!("| devices | activate all | per device | threads | RSS before | RSS after | per device | descriptors | clean stop |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.2} s | {:.0} µs | {} -> {} | {} KiB | {} KiB | {:.1} KiB | {} -> {} | {:.2} s |",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        before.threads,
        after.threads,
        before.rss_kib,
        after.rss_kib,
        per_device,
        before.fds,
        after.fds,
        stopped.as_secs_f64()
    );
}
