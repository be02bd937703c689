//! A running `overlayctl monitor` for the tests, and the probe that waits
//! until it has joined its groups.

use crate::{proto, target_dir, Daemon};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// How long a test waits for one line of the monitor.
pub const LINE_WAIT: Duration = Duration::from_secs(15);

/// A running `overlayctl monitor`, killed on drop.
pub struct Monitor {
    child: Child,
    /// The lines it prints, as they come.
    pub lines: Receiver<String>,
}

impl Monitor {
    /// Starts `overlayctl monitor` (`-j` when `json`) against `d`.
    pub fn start(d: &Daemon, json: bool) -> Monitor {
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

    /// The next line, waiting at most [`LINE_WAIT`].
    #[track_caller]
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .expect("a line from overlayctl monitor")
    }

    /// The monitor's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A monitor joins every group before it prints anything: set `mtu` on a
/// probe device until a line shows it arrived, then read every monitor up
/// to the last probe, so that what follows is exactly what the test does.
pub fn wait_until_subscribed(d: &Daemon, monitors: &[&Monitor]) {
    let mut c = d.client();
    proto::create(&mut c, "probe", 999, &[]).unwrap();
    let mut sent = 0u64;
    // For each monitor, the last probe value it printed.
    let mut seen = vec![None; monitors.len()];
    for (i, m) in monitors.iter().enumerate() {
        while seen[i].is_none() {
            assert!(sent < 150, "the monitor printed nothing");
            sent += 1;
            proto::setprop(&mut c, "probe", "mtu", proto::uint(1000 + sent)).unwrap();
            if let Ok(line) = m.lines.recv_timeout(Duration::from_millis(100)) {
                seen[i] = Some(probe_value(&line));
            }
        }
    }
    for (i, m) in monitors.iter().enumerate() {
        while seen[i] != Some(1000 + sent) {
            seen[i] = Some(probe_value(&m.line()));
        }
    }
}

/// The mtu value of a probe line (text or JSON); 0 for the probe's creation.
pub fn probe_value(line: &str) -> u64 {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        assert_eq!(v["link"], "probe", "{line}");
        return match v["event"].as_str() {
            Some("create") => 0,
            _ => v["value"].as_str().unwrap().parse().unwrap(),
        };
    }
    if line.starts_with("create probe ") {
        return 0;
    }
    line.strip_prefix("setprop probe mtu=")
        .unwrap_or_else(|| panic!("a probe line: {line}"))
        .parse()
        .unwrap()
}
