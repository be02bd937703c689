//! The Python client of `examples/python/` (pyroute2's netlink classes
//! over the daemon's Unix socket) against a real daemon: it resolves the
//! families, lists the plugins, creates a device with initial properties,
//! activates, shows and deletes it, gets the daemon's error text, and
//! follows the notifications of all of it; overlayctl sees the same.

use overlay_tests::{workspace_root, Daemon};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's python3, where python3-pyroute2 is installed.
const PYTHON: &str = "/usr/bin/python3";

fn client(d: &Daemon) -> Command {
    let mut c = Command::new(PYTHON);
    c.arg(workspace_root().join("examples/python/overlayd_client.py"))
        .arg("--socket")
        .arg(&d.socket)
        .stdin(Stdio::null());
    c
}

#[track_caller]
fn run_ok(d: &Daemon, args: &[&str]) -> String {
    let out: Output = client(d).args(args).output().expect("python3 runs");
    assert!(
        out.status.success(),
        "overlayd_client.py {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_python_client_drives_a_real_daemon() {
    let d = Daemon::start();

    // Follow the notifications from the start.
    let mut monitor = client(&d)
        .args(["monitor", "--count", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events_out = monitor.stdout.take().unwrap();
    let mut first = [0u8; 11];
    std::io::Read::read_exact(&mut events_out, &mut first).unwrap();
    assert_eq!(&first, b"subscribed\n");

    let families = run_ok(&d, &["families"]);
    for f in [
        "nlctrl 16",
        "overlay_handle 32",
        "overlay 33",
        "overlay_target 34",
    ] {
        assert!(families.lines().any(|l| l == f), "{families}");
    }
    let plugins = run_ok(&d, &["plugins"]);
    assert!(
        plugins
            .lines()
            .any(|l| l.starts_with("vxlan encap ") && l.contains("vxlan/listen_ip")),
        "{plugins}"
    );
    assert!(
        plugins.lines().any(|l| l.starts_with("direct lookup ")),
        "{plugins}"
    );

    let created = run_ok(
        &d,
        &[
            "create",
            "py0",
            "vxlan",
            "direct",
            "42",
            "vxlan/listen_ip=10.200.0.1",
            "direct/dest_ip=10.200.0.2",
            "direct/dest_port=4789",
            "mtu=1450",
        ],
    );
    assert!(created.starts_with("py0 linkid="), "{created}");
    // The properties arrived typed as the daemon expects.
    let props = d.ctl_ok(&[
        "prop-get",
        "py0",
        "mtu",
        "vxlan/listen_ip",
        "direct/dest_port",
    ]);
    assert!(props.contains(" 1450 "), "{props}");
    assert!(props.contains(" 10.200.0.1 "), "{props}");
    assert!(props.contains(" 4789 "), "{props}");

    run_ok(&d, &["activate", "py0"]);
    let shown = run_ok(&d, &["show", "py0"]);
    assert!(
        shown.contains("link=py0") && shown.contains("vnetid=42") && shown.contains("state=active"),
        "{shown}"
    );
    assert!(run_ok(&d, &["stats", "py0"])
        .lines()
        .any(|l| l.starts_with("tx_packets ")));
    run_ok(&d, &["create", "py1", "vxlan", "direct", "43"]);

    // The daemon's refusal, with its message.
    let out = client(&d).args(["show", "nosuch"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no device named nosuch") && err.contains("errno 2"),
        "{err}"
    );

    run_ok(&d, &["delete", "py0"]);
    assert!(!d.ctl_ok(&["show"]).contains("py0"));

    // create, activate, create, then deactivate and delete of py0.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = monitor.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = monitor.kill();
            let _ = monitor.wait();
            panic!("the monitor did not see 5 events");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut events = String::new();
    std::io::Read::read_to_string(&mut events_out, &mut events).unwrap();
    assert!(status.success(), "{status}: {events}");
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(
        lines,
        [
            "event=create link=py0",
            "event=activate link=py0",
            "event=create link=py1",
            "event=deactivate link=py0",
            "event=delete link=py0",
        ]
    );
}
