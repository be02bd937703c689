//! The figures that monitoring reads over the protocol: `SERVER_STATS`
//! of `overlay_handle` (handles open, connections, requests, errors) and
//! `CACHE_ENTRIES` in the `STATS` reply of an active dynamic-mode device.

use nlproto::client::Client;
use nlproto::spec::{handle, overlay as ov};
use nlproto::{Attr, AttrValue, AttrsExt};
use overlay_tests::{ctl_succeeded as ok, Daemon, TempDir};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Handles open now, and the counters by name.
fn server_stats(c: &mut Client) -> (u32, HashMap<String, u64>) {
    let reply = c
        .transact(handle::NAME, handle::CMD_SERVER_STATS, vec![])
        .expect("SERVER_STATS");
    let handles = reply
        .attrs
        .get_u32(handle::HANDLE_ATTR_HANDLES)
        .expect("HANDLE_ATTR_HANDLES");
    let counters = reply
        .attrs
        .get_nested(handle::HANDLE_ATTR_STATS)
        .expect("HANDLE_ATTR_STATS")
        .all(handle::HANDLE_ATTR_STAT)
        .filter_map(|a| match &a.value {
            AttrValue::Nested(kv) => Some((
                kv.get_str(handle::HANDLE_ATTR_STAT_NAME)?.to_string(),
                kv.get_u64(handle::HANDLE_ATTR_STAT_VALUE)?,
            )),
            _ => None,
        })
        .collect();
    (handles, counters)
}

#[test]
fn server_stats_count_handles_requests_and_errors() {
    let d = Daemon::start();
    let mut a = d.client();
    let (_, before) = server_stats(&mut a);
    for name in ["connections", "requests", "errors", "notifications_dropped"] {
        assert!(before.contains_key(name), "{name} missing: {before:?}");
    }

    let mut b = d.client();
    // A refused request: no such device.
    let e = b
        .transact(
            ov::NAME,
            ov::CMD_LIST,
            vec![Attr::str(ov::ATTR_NAME, "nosuch")],
        )
        .unwrap_err();
    assert!(e.to_string().contains("nosuch"), "{e}");
    b.transact(ov::NAME, ov::CMD_LIST, vec![]).unwrap_err();
    let (handles, after) = server_stats(&mut a);
    assert!(handles >= 2, "two clients connected, {handles} handles");
    assert_eq!(after["connections"], before["connections"] + 1);
    // b resolved the family and sent two requests; a asked once more.
    assert!(
        after["requests"] >= before["requests"] + 3,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after["errors"], before["errors"] + 2, "{after:?}");

    // A closed handle is no longer counted.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (now, _) = server_stats(&mut a);
        if now < handles {
            break;
        }
        assert!(Instant::now() < deadline, "still {now} handles");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `CACHE_ENTRIES` of a device's STATS reply, if any.
fn cache_entries(c: &mut Client, link: &str) -> Option<u64> {
    c.transact(
        ov::NAME,
        ov::CMD_STATS,
        vec![Attr::str(ov::ATTR_NAME, link)],
    )
    .expect("STATS")
    .attrs
    .get_u64(ov::ATTR_CACHE_ENTRIES)
}

#[test]
fn stats_carry_the_cache_entries_of_an_active_dynamic_device() {
    let d = Daemon::start();
    let dir = TempDir::new("cache-entries");
    let config = dir.join("hosts.json");
    std::fs::write(&config, "{}").unwrap();
    let files = format!(
        "vxlan/listen_ip=10.200.0.1,files/config={}",
        config.display()
    );
    ok(d.ctl(&[
        "create", "-e", "vxlan", "-s", "files", "-v", "43", "-p", &files, "dyn0",
    ]));
    ok(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=10.200.0.1,direct/dest_ip=10.200.0.2,direct/dest_port=4789",
        "pt0",
    ]));
    let mut c = d.client();
    // Not active: no cache.
    assert_eq!(cache_entries(&mut c, "dyn0"), None);
    ok(d.ctl(&["activate", "dyn0"]));
    ok(d.ctl(&["activate", "pt0"]));
    assert!(cache_entries(&mut c, "dyn0").is_some());
    // The TAP's own frames (IPv6 router solicitations, MLD reports) may
    // add pending entries at any time: every count below is a floor, and
    // the listing of answered entries is always within it.
    ok(d.ctl(&["cache-flush", "dyn0"]));
    for i in 1..=5 {
        ok(d.ctl(&[
            "cache-set",
            "dyn0",
            &format!("02:00:00:00:01:0{i}=10.9.0.{i}:4789"),
        ]));
    }
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:01:06=drop"]));
    let answered = ok(d.ctl(&["show", "-t", "dyn0"])).lines().count() as u64 - 1;
    assert!(answered >= 6, "{answered}");
    let n = cache_entries(&mut c, "dyn0").unwrap();
    assert!(n >= answered, "CACHE_ENTRIES {n} < {answered} answered");
    // A point-mode device has no cache entries to count.
    assert_eq!(cache_entries(&mut c, "pt0"), None);
    // The dump carries it too, for the dynamic device only.
    let dump = c.dump(ov::NAME, ov::CMD_STATS, vec![]).expect("STATS dump");
    let with: Vec<&str> = dump
        .iter()
        .filter(|m| m.attrs.get_u64(ov::ATTR_CACHE_ENTRIES).is_some())
        .filter_map(|m| m.attrs.get_str(ov::ATTR_NAME))
        .collect();
    assert_eq!(with, ["dyn0"]);
}

/// `overlayctl status`: the packet threads asked for with
/// `--packet-threads`, and an offload turned off with `--disable-offload`
/// shown off while the daemon without the option shows it as the kernel
/// supports it (this machine's kernels support UDP GSO).
#[test]
fn status_shows_packet_threads_and_offloads() {
    let d = Daemon::start_with_args(&["--packet-threads", "3"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.ctl(&["status", "-j"]))).expect("status -j is JSON");
    assert_eq!(v[0]["packet-threads"], "3", "{v}");
    assert_eq!(v[0]["offload"]["udp-gso"], "on", "{v}");
    assert!(
        v[0]["offloads"].as_str().unwrap().contains("udp-gso"),
        "{v}"
    );
    assert!(v[0]["counters"]["requests"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(
        v[0]["busy-poll"], "off",
        "busy polling is off by default: {v}"
    );

    let off = Daemon::start_with_args(&["--disable-offload", "udp-gso"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(off.ctl(&["status", "-j"]))).expect("status -j is JSON");
    assert_eq!(v[0]["offload"]["udp-gso"], "off", "{v}");
    assert!(
        !v[0]["offloads"].as_str().unwrap().contains("udp-gso"),
        "{v}"
    );
    let table = ok(off.ctl(&["status"]));
    assert!(table.starts_with("PACKET-THREADS  OFFLOADS"), "{table}");

    let busy = Daemon::start_with_args(&["--busy-poll", "250"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(busy.ctl(&["status", "-j"]))).expect("status -j is JSON");
    assert_eq!(v[0]["busy-poll"], "250us", "{v}");
}

/// A busy-poll window out of range is refused at start, naming the option.
#[test]
fn a_busy_poll_window_out_of_range_is_refused() {
    let out = std::process::Command::new(overlay_tests::target_dir().join("overlayd"))
        .args(["--busy-poll", "2000000"])
        .output()
        .expect("run overlayd");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--busy-poll"), "{err}");
}
