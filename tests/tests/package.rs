//! The Debian package, built by `scripts/package` (release build and
//! cargo-deb) and installed on this machine with the real `dpkg`: every
//! file where the package says, the `overlayd` account, `--version`, both
//! manual pages rendered by `man -l`, the unit checked by
//! `systemd-analyze verify`, the installed daemon finding the installed
//! plugins; then installed again over itself and removed while the daemon
//! runs, with the saved devices kept, and purged, with them gone.
//!
//! It leaves the machine as it found it: it refuses to run where overlayd
//! is already installed (or /var/lib/overlayd exists), and on the way out,
//! even after a failure, purges the package and deletes the `overlayd`
//! user and group when they did not exist before.
//!
//! Set `OVERLAYD_TEST_SKIP_PACKAGE=1` to skip it (it builds in release
//! mode, a few minutes the first time); the skip is printed.

use overlay_tests::{
    net::{self, Netns},
    workspace_root, TempDir,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("command runs")
}

#[track_caller]
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "overlayd"]));
    String::from_utf8_lossy(&out.stdout).contains("installed")
}

fn account_exists(db: &str) -> bool {
    run(Command::new("getent").args([db, "overlayd"]))
        .status
        .success()
}

/// Puts the machine back as it was: purges the package, and deletes the
/// account the package created.
struct Restore {
    had_group: bool,
    had_user: bool,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = run(Command::new("dpkg").args(["--purge", "overlayd"]));
        if !self.had_user && account_exists("passwd") {
            let _ = run(Command::new("userdel").arg("overlayd"));
        }
        if !self.had_group && account_exists("group") {
            let _ = run(Command::new("groupdel").arg("overlayd"));
        }
        let _ = std::fs::remove_dir_all("/var/lib/overlayd");
    }
}

/// Builds the package; returns its path.
fn build() -> PathBuf {
    let out = ok(&mut Command::new(workspace_root().join("scripts/package")));
    let deb = PathBuf::from(out.lines().last().expect("scripts/package prints the path"));
    assert!(deb.exists(), "{} missing", deb.display());
    deb
}

/// The installed daemon (its own socket; the package's state directory
/// and plugin directory) in namespace `ns`.
fn start_daemon(ns: &Netns, socket: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "/usr/sbin/overlayd", "--socket"])
        .arg(socket)
        .env_remove("OVERLAYD_PLUGIN_DIR")
        .env_remove("OVERLAYD_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the installed overlayd did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn ctl(socket: &Path, args: &[&str]) -> String {
    ok(Command::new("/usr/bin/overlayctl")
        .arg("--socket")
        .arg(socket)
        .args(args))
}

fn stop(mut child: Child) {
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "{s}");
            return;
        }
        assert!(Instant::now() < deadline, "overlayd did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_names() -> String {
    std::fs::read_to_string("/var/lib/overlayd/state.json").unwrap_or_default()
}

#[test]
fn install_check_reinstall_remove_purge() {
    if std::env::var_os("OVERLAYD_TEST_SKIP_PACKAGE").is_some() {
        eprintln!("skipped 1 test: OVERLAYD_TEST_SKIP_PACKAGE is set (the Debian package test)");
        return;
    }
    if !net::can_run() {
        return;
    }
    assert!(
        !installed(),
        "overlayd is installed on this machine; this test installs and purges the package, so it only runs where it is not installed"
    );
    assert!(
        !Path::new("/var/lib/overlayd").exists(),
        "/var/lib/overlayd exists: this test would purge it; move it away first"
    );
    let deb = build();
    let _restore = Restore {
        had_group: account_exists("group"),
        had_user: account_exists("passwd"),
    };

    ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());
    // Every file the package lists is there.
    let listed = ok(Command::new("dpkg").args(["-L", "overlayd"]));
    for path in listed.lines().filter(|l| !l.is_empty()) {
        assert!(
            Path::new(path).exists(),
            "{path} listed by dpkg -L but missing"
        );
    }
    for path in [
        "/usr/sbin/overlayd",
        "/usr/bin/overlayctl",
        "/usr/lib/overlayd/plugins/liboverlay_vxlan.so",
        "/usr/lib/overlayd/plugins/liboverlay_geneve.so",
        "/usr/lib/overlayd/plugins/liboverlay_direct.so",
        "/usr/lib/overlayd/plugins/liboverlay_files.so",
        "/usr/share/man/man8/overlayd.8.gz",
        "/usr/share/man/man8/overlayctl.8.gz",
        "/usr/share/bash-completion/completions/overlayctl",
        "/usr/share/bash-completion/completions/overlayd",
        "/usr/share/zsh/vendor-completions/_overlayctl",
        "/usr/share/fish/vendor_completions.d/overlayctl.fish",
        "/usr/lib/systemd/system/overlayd.service",
        "/etc/default/overlayd",
    ] {
        assert!(
            listed.lines().any(|l| l == path),
            "{path} not in the package"
        );
    }
    assert!(account_exists("group") && account_exists("passwd"));
    let meta = std::fs::metadata("/var/lib/overlayd").unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o750
    );

    let version = ok(Command::new("/usr/sbin/overlayd").arg("--version"));
    assert!(version.starts_with("overlayd "), "{version}");
    assert!(ok(Command::new("/usr/bin/overlayctl").arg("--version")).starts_with("overlayctl "));
    for (page, word) in [("overlayd", "--metrics"), ("overlayctl", "cache-set")] {
        let text = ok(Command::new("man")
            .arg("-l")
            .arg(format!("/usr/share/man/man8/{page}.8.gz"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"));
        assert!(
            text.contains(page) && text.contains(word),
            "man -l {page}:\n{text}"
        );
    }
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/overlayd.service"]));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The bash completion script parses.
    ok(Command::new("bash")
        .arg("-n")
        .arg("/usr/share/bash-completion/completions/overlayctl"));

    // The installed daemon: the installed plugins, the package's state
    // directory.
    let ns = Netns::new("pkg");
    ns.ip("link add pu0 type veth peer name pu1");
    ns.ip("addr add 198.51.100.1/24 dev pu0 nodad");
    ns.ip("link set pu0 up");
    ns.ip("link set pu1 up");
    let dir = TempDir::new("package");
    let socket = dir.join("overlayd.sock");
    let daemon = start_daemon(&ns, &socket, &dir.join("log1"));
    let plugins = ctl(&socket, &["plugins"]);
    assert!(
        plugins.contains("/usr/lib/overlayd/plugins/liboverlay_vxlan.so"),
        "{plugins}"
    );
    ctl(
        &socket,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "42",
            "-p",
            "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789",
            "pkg0",
        ],
    );
    ctl(&socket, &["activate", "pkg0"]);
    assert!(state_names().contains("pkg0"));

    // Installed again over itself while the daemon runs.
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ctl(&socket, &["show"]).contains("pkg0"));
    // Removed while it runs: the files go, the running daemon goes on,
    // and its clean stop still writes the saved devices.
    ok(Command::new("dpkg").args(["-r", "overlayd"]));
    assert!(!Path::new("/usr/sbin/overlayd").exists());
    assert!(
        Path::new("/etc/default/overlayd").exists(),
        "a conffile stays until purge"
    );
    stop(daemon);
    let state = state_names();
    assert!(
        state.contains("pkg0") && state.contains("\"active\": true"),
        "{state}"
    );

    // Installed again: the device comes back.
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    let daemon = start_daemon(&ns, &socket, &dir.join("log2"));
    let show = ctl(&socket, &["show", "pkg0"]);
    assert!(show.contains("active"), "{show}");
    stop(daemon);

    // Purged: the state and the conffile go.
    ok(Command::new("dpkg").args(["-P", "overlayd"]));
    assert!(!installed());
    assert!(!Path::new("/var/lib/overlayd").exists());
    assert!(!Path::new("/etc/default/overlayd").exists());
    assert!(!Path::new("/usr/lib/overlayd").exists());
}
