//! `overlayctl -b FILE` against a real daemon: many commands over one
//! connection, the output of the reading ones in order, `-b -` from
//! standard input, and the errors: a line that does not parse (nothing
//! sent; with `-force` the others run), a refused command (the batch stops
//! there), each naming its line, with a failing exit status.

use overlay_tests::{target_dir, Daemon, TempDir};
use std::io::Write;
use std::process::{Command, Output, Stdio};

const PROPS: &str = "vxlan/listen_ip=10.200.0.1,direct/dest_ip=10.200.0.2,direct/dest_port=4789";

fn batch(d: &Daemon, file: &std::path::Path, extra: &[&str]) -> Output {
    Command::new(target_dir().join("overlayctl"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("-b")
        .arg(file)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn links(d: &Daemon) -> Vec<String> {
    d.ctl_ok(&["show"])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn a_batch_runs_every_line_over_one_connection() {
    let d = Daemon::start();
    let dir = TempDir::new("batch");
    let file = dir.join("cmds");
    let mut cmds = String::from("# forty devices, created and activated\n");
    for i in 0..40 {
        cmds += &format!("create -e vxlan -s direct -v {} -p {PROPS} b{i}\n", 100 + i);
    }
    for i in 0..40 {
        cmds += &format!("activate b{i}\n");
    }
    cmds += "\nprop-set b3 mtu=1450\nshow b3\nprop-get -j b3 mtu\n";
    std::fs::write(&file, &cmds).unwrap();
    let before = server_stat(&d, "connections");
    let requests = server_stat(&d, "requests");
    let out = batch(&d, &file, &[]);
    // 40 creates and 40 activates, pipelined; the plugin list that the
    // creates' -p values need is asked once, not 40 times; a handful for
    // the last three lines, resolving families and this count itself.
    let sent = server_stat(&d, "requests") - requests;
    assert!((86..100).contains(&sent), "{sent} requests");
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), d.log());
    let stdout = text(&out.stdout);
    // The outputs of the reading lines, in order.
    assert!(
        stdout.starts_with("LINK  ENCAP  SEARCH  VNETID  STATE   STATUS\nb3"),
        "{stdout}"
    );
    let json_start = stdout.find('[').expect("prop-get -j output");
    let v: serde_json::Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    assert_eq!(v[0]["value"], "1450");
    let show = d.ctl_ok(&["show"]);
    assert_eq!(
        show.lines().filter(|l| l.contains(" active ")).count(),
        40,
        "{show}"
    );
    // One connection for the whole batch; the others are the two request
    // counts, `show` above and this check.
    assert_eq!(server_stat(&d, "connections"), before + 5);

    // The same from standard input, with -j for every line.
    let mut child = Command::new(target_dir().join("overlayctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["-j", "-b", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"delete b39\nshow b38\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v[0]["link"], "b38");
    assert!(!links(&d).contains(&"b39".to_string()));
}

/// A counter of the daemon's SERVER_STATS.
fn server_stat(d: &Daemon, name: &str) -> u64 {
    let out = d.ctl_ok(&["raw", "overlay_handle", "SERVER_STATS"]);
    let key = format!("HANDLE_ATTR_STAT_NAME=\"{name}\" HANDLE_ATTR_STAT_VALUE=");
    let at = out
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not in {out}"));
    let rest = &out[at..];
    let value = rest.split("HANDLE_ATTR_STAT_VALUE=").nth(1).unwrap();
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_bad_line_is_named_and_nothing_is_sent_unless_force() {
    let d = Daemon::start();
    let dir = TempDir::new("batch-bad");
    let file = dir.join("cmds");
    std::fs::write(
        &file,
        format!(
            "create -e vxlan -s direct -v 1 -p {PROPS} x1\nfrobnicate x1\ncreate -e vxlan -s direct -v 2 x2\nshow -q\n"
        ),
    )
    .unwrap();
    let out = batch(&d, &file, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: ") && err.contains("frobnicate"),
        "{err}"
    );
    assert!(err.contains("line 4: ") && err.contains("-q"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(links(&d).is_empty());

    // -force, as ip spells it: the good lines run, the status says one failed.
    let out = batch(&d, &file, &["-force"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 2: "), "{err}");
    assert!(err.contains("2 lines failed"), "{err}");
    assert_eq!(links(&d), ["x1", "x2"]);
}

#[test]
fn a_refused_command_stops_the_batch_at_its_line() {
    let d = Daemon::start();
    let dir = TempDir::new("batch-refused");
    let file = dir.join("cmds");
    std::fs::write(
        &file,
        format!(
            "create -e vxlan -s direct -v 1 -p {PROPS} y1\n\
             activate y1\n\
             activate nosuch\n\
             show y1\n\
             create -e vxlan -s direct -v 3 -p {PROPS} y3\n"
        ),
    )
    .unwrap();
    let out = batch(&d, &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3: activate nosuch: no device named nosuch (ENOENT)"),
        "{err}"
    );
    assert!(err.contains("stopped at the first error"), "{err}");
    // Line 4 reads, so it waited for the answers before it: it was not
    // run, nor anything after it.
    assert_eq!(links(&d), ["y1"]);
    assert_eq!(text(&out.stdout), "");

    // With --force every other line runs.
    d.ctl_ok(&["delete", "y1"]);
    let out = batch(&d, &file, &["--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 3: "),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(links(&d), ["y1", "y3"]);
    assert!(text(&out.stdout).contains("y1"));
}

#[test]
fn batch_usage_errors() {
    let d = Daemon::start();
    let out = Command::new(target_dir().join("overlayctl"))
        .args(["--socket"])
        .arg(&d.socket)
        .args(["-b", "/nonexistent/cmds"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("-b /nonexistent/cmds: no such file or directory (ENOENT)"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(target_dir().join("overlayctl"))
        .args(["-b", "x", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("give no command with it"));
}
