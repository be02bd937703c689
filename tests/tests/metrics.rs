//! `overlayd --metrics`: scraped with curl while traffic flows between
//! overlayd (namespace A) and the kernel's vxlan (namespace B), checked by
//! `promtool check metrics`, and the counters follow the traffic. Also the
//! refusals: an address in use, an address that does not parse. And the
//! other way of watching the same counters, `overlayctl show -s -i`: its
//! rates follow the same traffic.

use overlay_tests::{
    net::{self, Netns},
    target_dir, Daemon, TempDir,
};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const METRICS: &str = "127.0.0.1:9477";

struct Topology {
    // Field order is drop order: the daemon stops before its namespace goes.
    daemon: Daemon,
    a: Netns,
    _b: Netns,
}

/// overlayd with metrics in A, the kernel's vxlan (VNI 42, 192.0.2.2) in
/// B, `ov0` active in A with 192.0.2.1.
fn topology() -> Topology {
    let a = Netns::new("meta");
    let b = Netns::new("metb");
    net::veth(&a, "ua", &b, "ub");
    b.ok(&["ethtool", "-K", "ub", "tx", "off"]);
    a.ip("addr add 198.51.100.1/24 dev ua nodad");
    b.ip("addr add 198.51.100.2/24 dev ub nodad");
    b.ip(
        "link add vx0 type vxlan id 42 dstport 4789 remote 198.51.100.1 local 198.51.100.2 dev ub",
    );
    b.ip("link set vx0 mtu 1400");
    b.ip("addr add 192.0.2.2/24 dev vx0");
    b.ip("link set vx0 up");
    let daemon = Daemon::start_in_netns_with_args(&a.name, &["--metrics", METRICS]);
    daemon.ctl_ok(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789",
        "ov0",
    ]);
    daemon.ctl_ok(&["activate", "ov0"]);
    a.ip("addr add 192.0.2.1/24 dev ov0");
    Topology { daemon, a, _b: b }
}

/// One scrape from inside A, with curl's extra arguments.
fn scrape(a: &Netns, extra: &[&str]) -> String {
    let url = format!("http://{METRICS}/metrics");
    let mut cmd = vec!["curl", "-sS", "--fail", "--max-time", "10"];
    cmd.extend_from_slice(extra);
    cmd.push(&url);
    a.ok(&cmd)
}

/// `promtool check metrics` on `text`: passes without a complaint.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/install-deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `name{labels}` (labels written as in the
/// text, or empty).
fn sample(text: &str, name: &str, labels: &str) -> u64 {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    let line = text
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no sample {key}in\n{text}"));
    line[key.len()..].trim().parse().unwrap()
}

#[test]
fn metrics_follow_the_traffic_and_pass_promtool() {
    if !net::can_run() {
        return;
    }
    let mut t = topology();
    t.a.ping("192.0.2.2", 2);
    let before = scrape(&t.a, &[]);
    promtool_check(&before);
    let link = "link=\"ov0\"";
    let mux = "endpoint=\"udp 198.51.100.1:4789\"";
    assert_eq!(sample(&before, "overlayd_device_active", link), 1);
    assert_eq!(sample(&before, "overlayd_device_degraded", link), 0);
    assert_eq!(
        sample(
            &before,
            "overlayd_device_info",
            "link=\"ov0\",encap=\"vxlan\",search=\"direct\",vnetid=\"42\""
        ),
        1
    );
    assert!(sample(&before, "overlayd_control_handles", "") >= 1);
    assert!(sample(&before, "overlayd_control_requests_total", "") > 0);
    sample(&before, "overlayd_lookup_requests_total", "");
    sample(&before, "overlayd_device_plugin_panics_total", link);
    sample(
        &before,
        "overlayd_device_drops_total",
        "link=\"ov0\",reason=\"mtu\"",
    );
    sample(
        &before,
        "overlayd_mux_drops_total",
        &format!("{mux},reason=\"unknown_vnetid\""),
    );
    sample(&before, "overlayd_mux_plugin_panics_total", mux);

    // 300 pings over about 1.5 s, scraped twice while they flow.
    let ping = t.a.spawn(&[
        "ping",
        "-q",
        "-c",
        "300",
        "-i",
        "0.005",
        "-W",
        "2",
        "192.0.2.2",
    ]);
    std::thread::sleep(Duration::from_millis(400));
    let during = scrape(&t.a, &[]);
    std::thread::sleep(Duration::from_millis(400));
    let later = scrape(&t.a, &[]);
    t.a.wait(ping, Duration::from_secs(30));
    let after = scrape(&t.a, &[]);
    promtool_check(&after);
    for (name, labels) in [
        ("overlayd_device_tx_packets_total", link),
        ("overlayd_device_rx_packets_total", link),
        ("overlayd_mux_rx_packets_total", mux),
        ("overlayd_mux_tx_packets_total", mux),
    ] {
        let (b, d, l, a) = (
            sample(&before, name, labels),
            sample(&during, name, labels),
            sample(&later, name, labels),
            sample(&after, name, labels),
        );
        assert!(b < d && d < l && l <= a, "{name}: {b} {d} {l} {a}");
        assert!(a >= b + 300, "{name}: {b} -> {a} after 300 pings");
    }
    let bytes = |text: &str| sample(text, "overlayd_device_tx_bytes_total", link);
    // An echo request of 64 bytes of ICMP is at least 98 bytes of frame.
    assert!(bytes(&after) >= bytes(&before) + 300 * 98);
    // Every scrape is a request of its own.
    assert!(
        sample(&after, "overlayd_control_requests_total", "")
            > sample(&before, "overlayd_control_requests_total", "")
    );

    // Prometheus asks for OpenMetrics and gets it.
    let om = scrape(
        &t.a,
        &[
            "-H",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        ],
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE overlayd_device_tx_packets counter\n"),
        "{om}"
    );

    // Anything but /metrics is not found.
    let out = t.a.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{METRICS}/nope"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    drop(t);
}

#[test]
fn a_metrics_address_in_use_or_unparsable_stops_the_daemon() {
    if !net::can_run() {
        return;
    }
    let t = topology();
    // A second daemon (its own socket and state) on the same address.
    let dir = TempDir::new("metrics-second");
    let out = t.a.exec(&[
        target_dir().join("overlayd").to_str().unwrap(),
        "--socket",
        dir.join("s.sock").to_str().unwrap(),
        "--state-dir",
        dir.join("state").to_str().unwrap(),
        "--metrics",
        METRICS,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("--metrics {METRICS}: cannot listen: ")) && err.contains("in use"),
        "{err}"
    );
    // Refused before the state directory was touched.
    assert!(!dir.join("state").exists());

    let out = Command::new(target_dir().join("overlayd"))
        .args([
            "--socket",
            dir.join("t.sock").to_str().unwrap(),
            "--metrics",
            "localhost",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("'localhost'") && err.contains("--metrics"),
        "{err}"
    );
    assert!(!dir.join("t.sock").exists());
    // The first daemon is unaffected.
    t.daemon.ctl_ok(&["show", "ov0"]);
}

#[test]
fn show_s_i_prints_rates_that_follow_the_traffic() {
    if !net::can_run() {
        return;
    }
    let mut t = topology();
    t.a.ping("192.0.2.2", 2);
    // 200 pings a second for about 2 s, watched over four half-seconds.
    let ping = t.a.spawn(&[
        "ping",
        "-q",
        "-c",
        "400",
        "-i",
        "0.005",
        "-W",
        "2",
        "192.0.2.2",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let json = t
        .daemon
        .ctl_ok(&["show", "-s", "-i", "0.5", "-c", "3", "-j", "ov0"]);
    let text = t.daemon.ctl_ok(&["show", "-s", "-i", "0.3", "-c", "2"]);
    t.a.wait(ping, Duration::from_secs(30));
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{json}");
    for v in &lines {
        let interval = v["interval"].as_f64().unwrap();
        assert!(interval > 0.4 && interval < 5.0, "{v}");
        assert!(v["time"].as_f64().unwrap() > 1.7e9, "{v}");
        let dev = &v["devices"][0];
        assert_eq!(dev["link"], "ov0");
        // Echo requests out, replies in: well above zero, at most the
        // 200 a second ping sends (with room for a slow machine's bursts).
        let (tx, rx) = (
            dev["tx_pps"].as_f64().unwrap(),
            dev["rx_pps"].as_f64().unwrap(),
        );
        assert!(tx > 20.0 && tx < 1000.0, "{v}");
        assert!(rx > 20.0 && rx < 1000.0, "{v}");
        // Echo requests are 98-byte frames (an ARP now and then is 42).
        assert!(dev["tx_bps"].as_f64().unwrap() >= tx * 8.0 * 90.0, "{v}");
        assert_eq!(dev["drops_ps"], 0.0);
    }
    // The text: a header and a row for ov0 per interval.
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(
        rows[0].starts_with("LINK  IPKTS/s  IBITS/s  OPKTS/s  OBITS/s  DROPS/s"),
        "{text}"
    );
    assert!(rows[1].starts_with("ov0 "), "{text}");
}
