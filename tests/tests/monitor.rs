//! `overlayctl monitor` end to end: spawned against a real daemon, its
//! output read line by line (every wait bounded) while changes are made,
//! in text and JSON, and its resynchronisation after lost notifications.

use overlay_tests::proto::{self, uint};
use overlay_tests::{target_dir, Daemon};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// How long to wait for any one line before giving up.
const LINE_WAIT: Duration = Duration::from_secs(15);

/// A running `overlayctl monitor`, killed on drop, its stdout as lines.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
}

impl Monitor {
    fn start(d: &Daemon, json: bool) -> Monitor {
        let mut cmd = Command::new(target_dir().join("overlayctl"));
        cmd.arg("--socket").arg(&d.socket).arg("monitor");
        if json {
            cmd.arg("-j");
        }
        let mut child = cmd
            .env_remove("OVERLAYD_SOCKET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("overlayctl monitor starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Monitor { child, lines }
    }

    #[track_caller]
    fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .expect("a line from overlayctl monitor")
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The monitor joins its groups some time after it starts: set `mtu` on a
/// probe device until a line shows it arrived, then read up to the last
/// probe, so that what follows is exactly what the test does.
fn wait_until_subscribed(d: &Daemon, monitors: &[&Monitor]) {
    let mut c = d.client();
    proto::create(&mut c, "probe", 999, &[]).unwrap();
    let mut sent = 0u64;
    // For each monitor, the last probe value it printed.
    let mut seen = vec![None; monitors.len()];
    for (i, m) in monitors.iter().enumerate() {
        while seen[i].is_none() {
            assert!(sent < 150, "the monitor printed nothing");
            sent += 1;
            proto::setprop(&mut c, "probe", "mtu", uint(1000 + sent)).unwrap();
            if let Ok(line) = m.lines.recv_timeout(Duration::from_millis(100)) {
                seen[i] = Some(probe_value(&line));
            }
        }
    }
    // Every monitor has joined; each prints the probes up to the last one.
    for (i, m) in monitors.iter().enumerate() {
        while seen[i] != Some(1000 + sent) {
            seen[i] = Some(probe_value(&m.line()));
        }
    }
}

/// The mtu value of a probe line, text or JSON.
fn probe_value(line: &str) -> u64 {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        if v["event"] == "create" {
            return 0;
        }
        assert_eq!(v["link"], "probe", "{line}");
        return v["value"].as_str().unwrap().parse().unwrap();
    }
    if line.starts_with("create probe ") {
        return 0;
    }
    line.strip_prefix("setprop probe mtu=")
        .unwrap_or_else(|| panic!("a probe line: {line}"))
        .parse()
        .unwrap()
}

#[test]
fn prints_every_change_in_text_and_json() {
    let d = Daemon::start();
    let text = Monitor::start(&d, false);
    let json = Monitor::start(&d, true);
    wait_until_subscribed(&d, &[&text, &json]);
    let mut c = d.client();
    proto::create(
        &mut c,
        "ov0",
        42,
        &proto::full_props("10.0.0.1", "10.200.0.2"),
    )
    .unwrap();
    proto::setprop(&mut c, "ov0", "mtu", uint(1300)).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    proto::delete(&mut c, "ov0").unwrap();

    assert_eq!(
        text.line(),
        "create ov0 linkid=2 encap=vxlan search=direct vnetid=42 state=created status=ok"
    );
    assert_eq!(text.line(), "setprop ov0 mtu=1300");
    assert_eq!(text.line(), "activate ov0");
    assert_eq!(text.line(), "deactivate ov0");
    assert_eq!(text.line(), "delete ov0");

    let objects: Vec<Value> = (0..5)
        .map(|_| serde_json::from_str(&json.line()).expect("one JSON object per line"))
        .collect();
    let events: Vec<&str> = objects
        .iter()
        .map(|o| o["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["create", "setprop", "activate", "deactivate", "delete"]
    );
    for o in &objects {
        assert_eq!(o["link"], "ov0");
        assert_eq!(o["linkid"], 2);
    }
    assert_eq!(objects[0]["vnetid"], 42);
    assert_eq!(objects[0]["state"], "created");
    assert_eq!(objects[1]["property"], "mtu");
    assert_eq!(objects[1]["value"], "1300");
}

/// A monitor that is stopped while changes pile up is told it lost
/// events: it prints `lost`, then every device as it is now, then goes on.
#[test]
fn resynchronises_after_lost_notifications() {
    let d = Daemon::start();
    let m = Monitor::start(&d, false);
    wait_until_subscribed(&d, &[&m]);
    let mut c = d.client();
    proto::create(&mut c, "ov0", 7, &[]).unwrap();
    assert!(m.line().starts_with("create ov0 "));

    // SAFETY: kill() with a PID this test spawned and a valid signal.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGSTOP) }, 0);
    let mut changes = 0u64;
    while !d.log().contains("does not read its notifications") {
        assert!(changes < 40_000, "no overrun after {changes} changes");
        for _ in 0..500 {
            changes += 1;
            proto::setprop(&mut c, "probe", "mtu", uint(1000 + changes % 1000)).unwrap();
        }
    }
    // A change the monitor never gets as a notification, but sees in the
    // resynchronisation.
    proto::setprop(&mut c, "ov0", "vnetid", uint(77)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGCONT) }, 0);

    let mut line = m.line();
    let mut backlog = 0;
    while line.starts_with("setprop probe mtu=") {
        backlog += 1;
        line = m.line();
    }
    assert!(backlog > 0);
    assert!(line.starts_with("lost: "), "{line}");
    assert_eq!(
        m.line(),
        "device probe linkid=1 encap=vxlan search=direct vnetid=999 state=created status=ok"
    );
    assert_eq!(
        m.line(),
        "device ov0 linkid=2 encap=vxlan search=direct vnetid=77 state=created status=ok"
    );
    // And it goes on.
    proto::delete(&mut c, "ov0").unwrap();
    assert_eq!(m.line(), "delete ov0");
}
