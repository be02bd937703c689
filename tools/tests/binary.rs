//! The built binary's exit codes and stderr, without a daemon.

use std::process::{Command, Output};

fn overlayctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_overlayctl"))
        .args(args)
        .env_remove("OVERLAYD_SOCKET")
        .output()
        .expect("run overlayctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn no_daemon_is_one_line_and_status_1() {
    let dir = std::env::temp_dir().join(format!("overlayctl-test-{}", std::process::id()));
    let sock = dir.join("absent.sock");
    let o = overlayctl(&["--socket", sock.to_str().unwrap(), "show"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o),
        format!(
            "overlayctl: cannot connect to {}: no such file or directory (ENOENT)\n",
            sock.display()
        )
    );
}

#[test]
fn socket_from_environment() {
    let o = Command::new(env!("CARGO_BIN_EXE_overlayctl"))
        .args(["plugins"])
        .env("OVERLAYD_SOCKET", "/nonexistent/overlayd.sock")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot connect to /nonexistent/overlayd.sock"));
}

#[test]
fn bad_arguments_are_reported_before_connecting() {
    // The default socket does not matter: nothing is sent.
    let o = overlayctl(&["--socket", "/nonexistent", "prop-set", "ov0", "mtu"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "overlayctl: prop-set ov0: \"mtu\": expected KEY=VALUE\n"
    );
    let o = overlayctl(&[
        "--socket",
        "/nonexistent",
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "99999999999999999999",
        "ov0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "overlayctl: create ov0: -v: invalid UINT value \"99999999999999999999\": \
         exceeds 18446744073709551615\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["create", "ov0"],
        &["prop-set", "ov0"],
        &["show", "-x"],
        &[],
    ] {
        let o = overlayctl(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn completions_and_help() {
    let o = overlayctl(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8(o.stdout).unwrap().contains("prop-set"));
    let o = overlayctl(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
}
