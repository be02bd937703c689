//! overlayctl's target cache commands against a real daemon: `show -t`,
//! `cache-set`, `cache-get`, `cache-remove`, `cache-flush` on a point-mode
//! device (`search direct`) and a dynamic-mode one (`search files`), their
//! text and JSON, the daemon's refusals and the CLI's own, and the
//! notifications `monitor` prints for them.

use overlay_tests::monitor::{wait_until_subscribed, Monitor};
use overlay_tests::{ctl_failed, ctl_succeeded as ok, Daemon, TempDir};
use serde_json::Value;
use std::process::Output;

const HEADER: &str = "LINK  TARGET             DESTINATION\n";

/// Asserts failure as [`ctl_failed`]; returns the line without the
/// program name.
#[track_caller]
fn fails(o: Output) -> String {
    let err = ctl_failed(o);
    err.strip_prefix("overlayctl: ")
        .unwrap_or_else(|| panic!("{err:?}"))
        .to_string()
}

/// A daemon with `pt0` (point mode, to 10.200.0.2:4789) and `dyn0`
/// (dynamic mode, files with one entry) active, and `idle0` created only.
/// The directory holds the files plugin's config.
fn setup() -> (Daemon, TempDir) {
    let d = Daemon::start();
    let dir = TempDir::new("target-cli");
    let config = dir.join("hosts.json");
    std::fs::write(
        &config,
        r#"{"02:00:00:00:00:02": {"ip": "10.9.0.2", "port": 4789}}"#,
    )
    .unwrap();
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
    ok(d.ctl(&["activate", "pt0"]));
    let files = format!(
        "vxlan/listen_ip=10.200.0.1,files/config={}",
        config.display()
    );
    ok(d.ctl(&[
        "create", "-e", "vxlan", "-s", "files", "-v", "43", "-p", &files, "dyn0",
    ]));
    ok(d.ctl(&["activate", "dyn0"]));
    ok(d.ctl(&["create", "-e", "vxlan", "-s", "direct", "-v", "44", "idle0"]));
    // Whatever the lookups answered so far, start from an empty cache.
    ok(d.ctl(&["cache-flush", "dyn0"]));
    (d, dir)
}

#[test]
fn point_mode_shows_its_one_target() {
    let (d, _dir) = setup();
    assert_eq!(
        ok(d.ctl(&["show", "-t", "pt0"])),
        "LINK  TARGET       DESTINATION\npt0   *:*:*:*:*:*  10.200.0.2:4789\n"
    );
    let v: Value = serde_json::from_str(&ok(d.ctl(&["show", "-t", "-j", "pt0"]))).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"link": "pt0", "target": "*:*:*:*:*:*", "destination": "10.200.0.2:4789"}
        ])
    );
    // Any MAC gets the point.
    let out = ok(d.ctl(&["cache-get", "pt0", "2:0:0:0:0:77"]));
    assert!(out.starts_with(HEADER), "{out}");
    assert!(out.ends_with("  10.200.0.2:4789\n"), "{out}");
    // A point-mode device has no entries to set or clear.
    let e = fails(d.ctl(&["cache-set", "pt0", "2:0:0:0:0:1=10.200.0.3:4789"]));
    assert!(
        e.starts_with("cache-set pt0 02:00:00:00:00:01: ") && e.ends_with("(EOPNOTSUPP)"),
        "{e}"
    );
    let e = fails(d.ctl(&["cache-set", "pt0", "2:0:0:0:0:1=drop"]));
    assert!(e.ends_with("(EOPNOTSUPP)"), "{e}");
}

#[test]
fn set_get_list_remove_flush_on_a_dynamic_device() {
    let (d, _dir) = setup();
    assert_eq!(
        ok(d.ctl(&["show", "-t", "dyn0"])),
        "LINK  TARGET  DESTINATION\n"
    );
    assert_eq!(
        ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:05=10.9.0.5:4789"])),
        ""
    );
    ok(d.ctl(&["cache-set", "dyn0", "2-0-0-0-0-6=DROP"]));
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:07=10.9.0.7:4789"]));
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:03=10.9.0.3:4789"]));
    assert_eq!(
        ok(d.ctl(&["show", "-t", "dyn0"])),
        "\
LINK  TARGET             DESTINATION
dyn0  02:00:00:00:00:03  10.9.0.3:4789
dyn0  02:00:00:00:00:05  10.9.0.5:4789
dyn0  02:00:00:00:00:06  drop
dyn0  02:00:00:00:00:07  10.9.0.7:4789
"
    );
    // Every active device, sorted by link: dyn0 before pt0; idle0, not
    // active, has no cache to list.
    let all = ok(d.ctl(&["show", "-t"]));
    let links: Vec<&str> = all
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(links, ["dyn0", "dyn0", "dyn0", "dyn0", "pt0"], "{all}");
    let v: Value = serde_json::from_str(&ok(d.ctl(&["show", "-t", "-j"]))).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(
        v[2],
        serde_json::json!({"link": "dyn0", "target": "02:00:00:00:00:06", "destination": "drop"})
    );

    assert_eq!(
        ok(d.ctl(&["cache-get", "dyn0", "02:00:00:00:00:05"])),
        format!("{HEADER}dyn0  02:00:00:00:00:05  10.9.0.5:4789\n")
    );
    let v: Value =
        serde_json::from_str(&ok(d.ctl(&["cache-get", "-j", "dyn0", "2:0:0:0:0:7"]))).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"link": "dyn0", "target": "02:00:00:00:00:07",
                            "destination": "10.9.0.7:4789"}])
    );
    // A drop entry replaced by a destination, and back.
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:06=10.9.0.6:4789"]));
    assert!(ok(d.ctl(&["cache-get", "dyn0", "02:00:00:00:00:06"])).ends_with("  10.9.0.6:4789\n"));
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:06=drop"]));
    assert!(ok(d.ctl(&["cache-get", "dyn0", "02:00:00:00:00:06"])).ends_with("  drop\n"));

    ok(d.ctl(&["cache-remove", "dyn0", "02:00:00:00:00:05"]));
    let e = fails(d.ctl(&["cache-get", "dyn0", "02:00:00:00:00:05"]));
    assert!(
        e.starts_with("cache-get dyn0 02:00:00:00:00:05: ") && e.ends_with("(ENOENT)"),
        "{e}"
    );
    ok(d.ctl(&["cache-flush", "dyn0"]));
    assert_eq!(ok(d.ctl(&["show", "-t", "-j", "dyn0"])), "[]\n");
}

#[test]
fn refusals_name_what_was_wrong_and_set_nothing() {
    let (d, _dir) = setup();
    // The device needs an IP and a port: a bare IP is refused locally.
    let e = fails(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:08=10.9.0.8"]));
    assert_eq!(
        e,
        "cache-set dyn0: \"02:00:00:00:00:08=10.9.0.8\": the device needs an IP and a port \
         (a port is missing): write MAC=IP:PORT (IPv6 as [addr]:port)"
    );
    let e = fails(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:08=2001:db8::8:4789"]));
    assert!(e.contains("(a port is missing)"), "{e}");
    let tail = "; expected MAC=IP:PORT, MAC=[IPv6]:PORT, MAC=IP (no port) or MAC=drop";
    for (arg, why) in [
        ("02:00:00:00:00:08", "no '='"),
        (
            "02:00:00:00:00:08=10.9.0.8:70000",
            "port 70000 outside 1-65535",
        ),
        (
            "02:00:00:00:00:08=host:4789",
            "\"host\" before ':' is not an IPv4 address",
        ),
        (
            "02:00:00:00:00=10.9.0.8:4789",
            "invalid MAC address \"02:00:00:00:00\": 5 groups instead of 6; write six \
             hexadecimal bytes separated by ':' or '-' (02:00:5e:10:00:01, 2-0-5e-10-0-1), \
             three dot-separated groups of four digits (0200.5e10.0001) or twelve digits \
             (02005e100001)",
        ),
    ] {
        let e = fails(d.ctl(&["cache-set", "dyn0", arg]));
        assert_eq!(e, format!("cache-set dyn0: \"{arg}\": {why}{tail}"));
    }
    assert_eq!(
        ok(d.ctl(&["show", "-t", "dyn0"])).lines().count(),
        1,
        "nothing set"
    );

    let e = fails(d.ctl(&["cache-get", "dyn0", "0g:00:00:00:00:08"]));
    assert!(
        e.starts_with("cache-get dyn0: invalid MAC address \"0g:00:00:00:00:08\""),
        "{e}"
    );
    let e = fails(d.ctl(&["cache-remove", "dyn0", "02:00:00:00:00:08:09"]));
    assert!(e.contains("7 groups instead of 6"), "{e}");

    // The daemon's refusals come through with its errno.
    let e = fails(d.ctl(&["show", "-t", "nope"]));
    assert!(
        e.starts_with("show -t nope: ") && e.ends_with("(ENOENT)"),
        "{e}"
    );
    let e = fails(d.ctl(&["cache-flush", "nope"]));
    assert!(
        e.starts_with("cache-flush nope: ") && e.ends_with("(ENOENT)"),
        "{e}"
    );
    // idle0 is a point-mode device: no cache to change, and no point to
    // read until it is active.
    let e = fails(d.ctl(&["cache-get", "idle0", "2:0:0:0:0:1"]));
    assert!(e.ends_with("(ENXIO)"), "{e}");
    assert_eq!(
        ok(d.ctl(&["show", "-t", "idle0"])),
        "LINK  TARGET  DESTINATION\n"
    );
    for args in [
        &["cache-set", "idle0", "2:0:0:0:0:1=drop"][..],
        &["cache-remove", "idle0", "2:0:0:0:0:1"],
        &["cache-flush", "idle0"],
    ] {
        let e = fails(d.ctl(args));
        assert!(e.ends_with("(EOPNOTSUPP)"), "{args:?}: {e}");
    }
}

#[test]
fn monitor_prints_cache_changes() {
    let (d, _dir) = setup();
    let text = Monitor::start(&d, false);
    let json = Monitor::start(&d, true);
    wait_until_subscribed(&d, &[&text, &json]);

    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:05=10.9.0.5:4789"]));
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:06=drop"]));
    ok(d.ctl(&["cache-remove", "dyn0", "02:00:00:00:00:05"]));
    ok(d.ctl(&["cache-flush", "dyn0"]));

    assert_eq!(
        text.line(),
        "cache-set dyn0 02:00:00:00:00:05 10.9.0.5:4789"
    );
    assert_eq!(text.line(), "cache-set dyn0 02:00:00:00:00:06 drop");
    assert_eq!(text.line(), "cache-remove dyn0 02:00:00:00:00:05");
    assert_eq!(text.line(), "cache-flush dyn0");

    let objects: Vec<Value> = (0..4)
        .map(|_| serde_json::from_str(&json.line()).expect("one JSON object per line"))
        .collect();
    let linkid = objects[0]["linkid"].clone();
    assert!(linkid.is_u64(), "{:?}", objects[0]);
    assert_eq!(
        objects,
        [
            serde_json::json!({"event": "cache-set", "link": "dyn0", "linkid": linkid,
                               "target": "02:00:00:00:00:05", "destination": "10.9.0.5:4789"}),
            serde_json::json!({"event": "cache-set", "link": "dyn0", "linkid": linkid,
                               "target": "02:00:00:00:00:06", "destination": "drop"}),
            serde_json::json!({"event": "cache-remove", "link": "dyn0", "linkid": linkid,
                               "target": "02:00:00:00:00:05"}),
            serde_json::json!({"event": "cache-flush", "link": "dyn0", "linkid": linkid}),
        ]
    );
}

/// A lookup plugin that reports changed answers (files, after its file
/// was edited and reloaded) has the entries it had cached forgotten, and
/// each forgotten entry is notified on the target group as an
/// administrator's `cache-remove` is; a MAC that was not cached is not.
#[test]
fn monitor_prints_entries_the_lookup_plugin_invalidated() {
    let (d, dir) = setup();
    let text = Monitor::start(&d, false);
    wait_until_subscribed(&d, &[&text]);
    ok(d.ctl(&["cache-set", "dyn0", "02:00:00:00:00:02=10.9.0.2:4789"]));
    assert_eq!(
        text.line(),
        "cache-set dyn0 02:00:00:00:00:02 10.9.0.2:4789"
    );

    // 02 moves; 03 is new (never cached). Setting the path again reloads.
    let config = dir.join("hosts.json");
    std::fs::write(
        &config,
        r#"{"02:00:00:00:00:02": {"ip": "10.9.0.22", "port": 4789},
            "02:00:00:00:00:03": {"ip": "10.9.0.3", "port": 4789}}"#,
    )
    .unwrap();
    let path = config.display().to_string();
    ok(d.ctl(&["prop-set", "dyn0", &format!("files/config={path}")]));
    assert_eq!(text.line(), format!("setprop dyn0 files/config={path}"));
    assert_eq!(text.line(), "cache-remove dyn0 02:00:00:00:00:02");
    // Forgotten: the next frame to it is asked again.
    let e = fails(d.ctl(&["cache-get", "dyn0", "02:00:00:00:00:02"]));
    assert!(e.ends_with("(ENOENT)"), "{e}");

    // Nothing about 03: the next line is the next change.
    ok(d.ctl(&["cache-flush", "dyn0"]));
    assert_eq!(text.line(), "cache-flush dyn0");
}
