//! Who may do what on the control socket: the socket's group decides who
//! can connect, uid 0 or CAP_NET_ADMIN who can change anything; everyone
//! else gets the read-only commands and EPERM for the rest.

use overlay_tests::{net, stderr, stdout, target_dir, Daemon};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Output};

/// A group that exists while the value lives.
struct TestGroup {
    name: String,
    gid: u32,
}

impl TestGroup {
    fn new() -> TestGroup {
        let name = format!("ovt{}", std::process::id());
        let out = Command::new("groupadd").arg(&name).output().unwrap();
        assert!(out.status.success(), "groupadd {name}: {}", stderr(&out));
        let entry = Command::new("getent")
            .args(["group", &name])
            .output()
            .unwrap();
        let gid = stdout(&entry)
            .split(':')
            .nth(2)
            .and_then(|g| g.trim().parse().ok())
            .unwrap_or_else(|| panic!("no gid for {name}: {}", stdout(&entry)));
        TestGroup { name, gid }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// overlayctl as uid 65534 with only `gid`, and the given extra setpriv
/// options (capabilities).
fn ctl_as(d: &Daemon, gid: u32, setpriv: &[&str], args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg("--reuid=65534")
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(setpriv)
        .arg(target_dir().join("overlayctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .env_remove("OVERLAYD_SOCKET")
        .output()
        .expect("setpriv runs")
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        stderr(out)
    );
    stdout(out)
}

/// Fails with EPERM and a message naming the command and the privilege.
fn refused(what: &str, out: &Output, command: &str) {
    assert!(!out.status.success(), "{what} succeeded: {}", stdout(out));
    let err = stderr(out);
    for needle in [
        &format!("command {command} of family overlay"),
        "needs admin privilege (uid 0 or CAP_NET_ADMIN)",
        "EPERM",
    ] {
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn group_members_read_and_only_admins_write() {
    if !net::can_run() {
        return;
    }
    let group = TestGroup::new();
    let d = Daemon::start_with_args(&["--group", &group.name]);

    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "socket mode");
    assert_eq!((meta.uid(), meta.gid()), (0, group.gid), "socket owner");

    // Root does everything.
    let create = [
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "7",
        "-p",
        "vxlan/listen_ip=10.0.0.1,direct/dest_ip=10.0.0.2,direct/dest_port=4789",
        "ov0",
    ];
    ok("root create", &d.ctl(&create));
    ok("root prop-set", &d.ctl(&["prop-set", "ov0", "mtu=1300"]));

    // A member of the group without privilege reads...
    let g = group.gid;
    let show = ok("show", &ctl_as(&d, g, &[], &["show"]));
    assert!(show.contains("ov0"), "{show}");
    let mtu = ok("prop-get", &ctl_as(&d, g, &[], &["prop-get", "ov0", "mtu"]));
    assert!(mtu.contains("1300"), "{mtu}");
    ok("show -s", &ctl_as(&d, g, &[], &["show", "-s", "ov0"]));
    ok("show -f", &ctl_as(&d, g, &[], &["show", "-f"]));
    ok("plugins", &ctl_as(&d, g, &[], &["plugins", "-v"]));

    // ... and every change is refused, naming the command.
    let mut other = create;
    other[6] = "8";
    other[9] = "ov1";
    refused("create", &ctl_as(&d, g, &[], &other), "CREATE");
    refused(
        "prop-set",
        &ctl_as(&d, g, &[], &["prop-set", "ov0", "mtu=1400"]),
        "SETPROP",
    );
    refused(
        "activate",
        &ctl_as(&d, g, &[], &["activate", "ov0"]),
        "ACTIVATE",
    );
    refused("delete", &ctl_as(&d, g, &[], &["delete", "ov0"]), "DELETE");
    // Nothing changed.
    let mtu = ok("prop-get", &d.ctl(&["prop-get", "ov0", "mtu"]));
    assert!(mtu.contains("1300"), "{mtu}");
    let all = ok("show", &d.ctl(&["show"]));
    assert!(!all.contains("ov1"), "{all}");

    // CAP_NET_ADMIN without uid 0 is an administrator.
    let caps = ["--inh-caps=+net_admin", "--ambient-caps=+net_admin"];
    ok(
        "prop-set with CAP_NET_ADMIN",
        &ctl_as(&d, g, &caps, &["prop-set", "ov0", "mtu=1400"]),
    );
    ok(
        "delete with CAP_NET_ADMIN",
        &ctl_as(&d, g, &caps, &["delete", "ov0"]),
    );

    // Outside the group, not even a connection.
    let out = ctl_as(&d, 65534, &[], &["show"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_group_is_refused_at_start() {
    let name = format!("ovt-none-{}", std::process::id());
    let dir = overlay_tests::TempDir::new("nogroup");
    let (status, log) = overlay_tests::run_overlayd_args_to_exit(
        &dir.join("s"),
        &[target_dir()],
        &["--group", &name],
        std::time::Duration::from_secs(10),
    );
    let status = status.expect("overlayd exits");
    assert!(!status.success());
    assert!(
        log.contains(&format!("--group {name}: no such group")),
        "{log}"
    );
    assert!(!dir.join("s").exists(), "no socket left behind");
}
