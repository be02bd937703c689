//! The daemon process: clean exit on signals, one daemon per socket, stale
//! sockets replaced.

use overlay_tests::proto::{self, full_props};
use overlay_tests::{run_overlayd_to_exit, target_dir, Daemon, TempDir};
use std::os::unix::fs::FileTypeExt;
use std::time::Duration;

fn is_socket(p: &std::path::Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn sigterm_exits_zero_and_removes_the_socket() {
    let mut d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    proto::create(&mut c, "ov1", 2, &[]).unwrap();
    assert!(is_socket(&d.socket));
    // An idle open connection does not hold the daemon up.
    let status = d
        .terminate()
        .expect("overlayd exits on SIGTERM within 10 s");
    assert_eq!(status.code(), Some(0), "{status}\n{}", d.log());
    assert!(!d.socket.exists(), "the socket file is removed");
    let log = d.log();
    assert!(log.contains("SIGTERM"), "{log}");
    drop(c);
}

#[test]
fn sigint_and_sighup_exit_zero_too() {
    for sig in [libc::SIGINT, libc::SIGHUP] {
        let mut d = Daemon::start();
        let status = d.signal_and_wait(sig).expect("overlayd exits within 10 s");
        assert_eq!(
            status.code(),
            Some(0),
            "signal {sig}: {status}\n{}",
            d.log()
        );
        assert!(!d.socket.exists(), "signal {sig}: socket left behind");
    }
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();

    let (status, log) = run_overlayd_to_exit(&d.socket, &[target_dir()], Duration::from_secs(10));
    let status = status.unwrap_or_else(|| panic!("the second overlayd kept running:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    let path = d.socket.display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains(&path) && l.contains("already listening")),
        "no line naming {path}:\n{log}"
    );

    // The first one is untouched and keeps serving, old and new clients.
    assert!(is_socket(&d.socket));
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    let mut fresh = d.client();
    proto::create(&mut fresh, "ov1", 2, &[]).unwrap();
    assert_eq!(proto::device_names(&mut c), ["ov0", "ov1"]);
}

#[test]
fn stale_socket_of_a_killed_daemon_is_replaced() {
    let dir = TempDir::new("stale");
    let socket = dir.join("overlayd.sock");
    let mut first = Daemon::start_on(&socket);
    let mut c = first.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    drop(c);
    first.kill();
    assert!(is_socket(&socket), "SIGKILL leaves the socket file");
    assert!(
        nlproto::client::Client::connect(&socket).is_err(),
        "nobody answers on the stale socket"
    );

    let mut second = Daemon::start_on(&socket);
    let mut c = second.client();
    assert!(proto::device_names(&mut c).is_empty(), "a fresh daemon");
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    drop(c);
    assert_eq!(second.terminate().and_then(|s| s.code()), Some(0));
    assert!(!socket.exists());
}

/// Only a socket nobody answers on is stale: another kind of file at the
/// socket path is not the daemon's to delete.
#[test]
fn socket_path_holding_a_regular_file_is_not_deleted() {
    let dir = TempDir::new("notasocket");
    let path = dir.join("overlayd.sock");
    std::fs::write(&path, b"precious data\n").unwrap();
    match Daemon::try_start_on(&path) {
        Ok(mut d) => {
            d.stop();
            panic!(
                "overlayd replaced the regular file {} with its socket",
                path.display()
            );
        }
        Err((status, log)) => {
            assert!(!status.success(), "{log}");
            assert!(log.contains(&path.display().to_string()), "{log}");
        }
    }
    assert_eq!(
        std::fs::read(&path).expect("the file is still there"),
        b"precious data\n"
    );
}
