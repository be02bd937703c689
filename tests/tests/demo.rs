//! `scripts/demo`: the one-minute demonstration runs through (VXLAN
//! against the kernel's vxlan), and with `--geneve` (two overlayd) it is
//! interrupted as Ctrl-C would (SIGINT to its process group) after the
//! ping went across; both times nothing it made is left behind.

use overlay_tests::{net, target_dir, workspace_root};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn demo(args: &[&str]) -> Command {
    let mut c = Command::new(workspace_root().join("scripts/demo"));
    c.args(args)
        // The binaries the tests use: no release build here.
        .env("OVERLAYD_BIN", target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Nothing named after the demo's process is left: namespaces, files.
fn assert_clean(pid: u32) {
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(
        !ns.contains(&format!("ovdemo-a-{pid}")) && !ns.contains(&format!("ovdemo-b-{pid}")),
        "namespaces left: {ns}"
    );
}

#[test]
fn the_demo_runs_and_cleans_up() {
    if !net::can_run() {
        return;
    }
    let child = demo(&[]).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 packets transmitted, 3 received"), "{text}");
    assert!(text.lines().any(|l| l.ends_with("receiver")), "{text}");
    // show -s: ov0 with its counters.
    assert!(
        text.lines().any(|l| l.starts_with("LINK  IPACKETS")),
        "{text}"
    );
    assert!(text.contains("    tx_packets "), "{text}");
    // What monitor saw.
    for line in [
        "create ov0 linkid=1 encap=vxlan search=direct vnetid=42 state=created status=ok",
        "activate ov0",
        "delete ov0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(text.contains("== cleaned up"), "{text}");
    assert_clean(pid);
}

#[test]
fn an_interrupted_geneve_demo_cleans_up() {
    if !net::can_run() {
        return;
    }
    let mut cmd = demo(&["--geneve"]);
    cmd.process_group(0);
    // As from a terminal: SIGINT at its default. A test run started in
    // the background of a non-interactive shell inherits it ignored, and
    // bash cannot trap a signal ignored when it starts.
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut pinged = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        pinged |= line.contains("3 packets transmitted, 3 received");
        if line.starts_with("== iperf3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not get to iperf3:\n{seen}"
        );
    }
    assert!(pinged, "the ping did not go across Geneve:\n{seen}");
    // Ctrl-C: SIGINT to the whole process group.
    // SAFETY: kill has no memory preconditions; the group is the demo's.
    assert_eq!(unsafe { libc::kill(-(pid as i32), libc::SIGINT) }, 0);
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}\n{seen}");
    assert!(
        seen.contains("== interrupted") && seen.contains("== cleaned up"),
        "{seen}"
    );
    assert_clean(pid);
}
