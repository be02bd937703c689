//! overlayd started as `packaging/overlayd.service` starts it: its
//! `ExecStart`, its `Environment=` lines, not root but a user holding only
//! the unit's `AmbientCapabilities` (through `setpriv`, since systemd is
//! not the service manager here), and `NOTIFY_SOCKET` pointing at a socket
//! of the test. `READY=1` must come once the control socket answers and
//! the saved devices are restored; `STOPPING=1` when SIGTERM starts the
//! clean stop. The devices it restores use a TAP and an AF_PACKET
//! backend, which shows that the unit's two capabilities are enough.
//!
//! Three settings differ from the installed unit, each through the
//! variables the unit itself sets: the socket and the state directory are
//! private to the test, and the user and group are a numeric id with no
//! account (the package creates the `overlayd` account; this test does
//! not need it).
//!
//! A TAP is opened through `/dev/net/tun`, which Debian's udev makes mode
//! 0666; where it is not (this machine's is 0600), the daemon runs in a
//! mount namespace of its own where a node of the same device, mode 0666,
//! is bound over it. The host's node is never changed.

use overlay_tests::{
    net::{self, Netns},
    target_dir, workspace_root, TempDir,
};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and group the daemon runs as.
const ID: u32 = 64_971;

/// What the unit says about starting the daemon.
struct Unit {
    exec_start: Vec<String>,
    environment: Vec<(String, String)>,
    ambient: Vec<String>,
    bounding: Vec<String>,
    kind: String,
    no_new_privileges: bool,
}

fn unit() -> Unit {
    let path = workspace_root().join("packaging/overlayd.service");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut u = Unit {
        exec_start: Vec::new(),
        environment: Vec::new(),
        ambient: Vec::new(),
        bounding: Vec::new(),
        kind: String::new(),
        no_new_privileges: false,
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let words = || {
            value
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        match key {
            "ExecStart" => u.exec_start = words(),
            "Environment" => {
                let (k, v) = value.split_once('=').unwrap();
                u.environment.push((k.to_string(), v.to_string()));
            }
            "AmbientCapabilities" => u.ambient = words(),
            "CapabilityBoundingSet" => u.bounding = words(),
            "Type" => u.kind = value.to_string(),
            "NoNewPrivileges" => u.no_new_privileges = value == "yes",
            _ => {}
        }
    }
    u
}

/// `CAP_NET_ADMIN` as setpriv writes it: `net_admin`.
fn setpriv_caps(caps: &[String]) -> String {
    caps.iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

fn chown(path: &Path, id: u32) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::chown(c.as_ptr(), id, id) },
        0,
        "chown {path:?}"
    );
}

struct Service {
    unit: Unit,
    ns: String,
    socket: PathBuf,
    state: PathBuf,
    notify: UnixDatagram,
    notify_path: PathBuf,
    log: PathBuf,
    tun: PathBuf,
}

impl Service {
    /// Starts the daemon as the unit does; returns it once started (not
    /// necessarily ready).
    fn start(&self) -> Child {
        let u = &self.unit;
        assert_eq!(
            u.exec_start[0], "/usr/sbin/overlayd",
            "the unit starts the packaged daemon"
        );
        let tun = self.tun.to_str().unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "{{ [ -e {tun} ] || mknod -m 0666 {tun} c 10 200; }} && mount --bind {tun} /dev/net/tun && exec \"$@\""
            ))
            .arg("sh")
            .args(["ip", "netns", "exec", &self.ns, "setpriv"])
            .arg(format!("--reuid={ID}"))
            .arg(format!("--regid={ID}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps=-all,{}", setpriv_caps(&u.ambient)))
            .arg(format!("--ambient-caps={}", setpriv_caps(&u.ambient)))
            .arg(format!("--bounding-set=-all,{}", setpriv_caps(&u.bounding)));
        if u.no_new_privileges {
            cmd.arg("--no-new-privs");
        }
        cmd.arg("--")
            .arg(target_dir().join("overlayd"))
            .args(&u.exec_start[1..]);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in &u.environment {
            cmd.env(k, v);
        }
        cmd.env("OVERLAYD_SOCKET", &self.socket)
            .env("OVERLAYD_STATE_DIR", &self.state)
            .env("OVERLAYD_GROUP", ID.to_string())
            .env("OVERLAYD_PLUGIN_DIR", target_dir())
            .env("NOTIFY_SOCKET", &self.notify_path);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        cmd.spawn().expect("unshare ip netns exec setpriv overlayd")
    }

    /// The next notification datagram, within 20 s.
    fn next_notification(&self, child: &mut Child) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            match self.notify.recv(&mut buf) {
                Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("notify socket: {e}"),
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "overlayd exited ({status}) before notifying:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no notification in 20 s:\n{}",
                self.log_text()
            );
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(target_dir().join("overlayctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "overlayctl {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM, then `STOPPING=1` and a clean exit.
    fn stop(&self, mut child: Child) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let msg = self.next_notification(&mut child);
        assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "overlayd did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}\n{}", self.log_text());
    }
}

/// Fields of `/proc/PID/status` (`Uid`, `CapEff`, ...).
fn proc_status(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn ready_after_the_socket_and_the_restore_as_the_unit_starts_it() {
    if !net::can_run() {
        return;
    }
    let u = unit();
    assert_eq!(u.kind, "notify");
    assert_eq!(u.ambient, ["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    let a = Netns::new("svca");
    let b = Netns::new("svcb");
    net::veth(&a, "ua", &b, "ub");
    a.ip("addr add 198.51.100.1/24 dev ua nodad");
    a.ip("link add hp0 type veth peer name hp1");
    a.ip("link set hp0 up");
    a.ip("link set hp1 up");

    let dir = TempDir::new("service");
    let run = dir.join("run");
    let state = dir.join("state");
    for d in [&run, &state] {
        std::fs::create_dir(d).unwrap();
        chown(d, ID);
    }
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::fs::set_permissions(
        &notify_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let svc = Service {
        unit: u,
        ns: a.name.clone(),
        socket: run.join("overlayd.sock"),
        state,
        notify,
        notify_path,
        log: dir.join("overlayd.log"),
        tun: dir.join("tun"),
    };

    // First start: nothing to restore.
    let mut child = svc.start();
    let msg = svc.next_notification(&mut child);
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert!(svc.socket.exists(), "READY=1 before the socket exists");
    assert!(svc.ctl(&["show"]).lines().count() <= 1);
    // Not root, and only the unit's capabilities.
    assert_eq!(
        proc_status(child.id(), "Uid").split_whitespace().next(),
        Some(&*ID.to_string())
    );
    // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
    assert_eq!(proc_status(child.id(), "CapEff"), "0000000000003000");
    assert_eq!(proc_status(child.id(), "CapBnd"), "0000000000003000");
    svc.ctl(&[
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
    svc.ctl(&["activate", "ov0"]);
    svc.ctl(&[
        "create", "-e", "vxlan", "-s", "direct", "-v", "43", "-p",
        "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789,backend=afpacket,ifname=hp0",
        "ov1",
    ]);
    svc.ctl(&["activate", "ov1"]);
    a.ok(&["ip", "link", "show", "ov0"]);
    svc.stop(child);

    // Second start: READY=1 only once both devices are back and active.
    let mut child = svc.start();
    let msg = svc.next_notification(&mut child);
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    let show = svc.ctl(&["show"]);
    let active: Vec<&str> = show
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some("active"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(active, ["ov0", "ov1"], "{show}");
    a.ok(&["ip", "link", "show", "ov0"]);
    svc.stop(child);
    drop(b);
}

/// Every variable overlayd reads (`[env: OVERLAYD_...]` in its help) is
/// either set by the unit or offered, commented out and explained, in
/// `packaging/overlayd.default`, which says that every option has one.
#[test]
fn every_option_is_set_by_the_unit_or_offered_in_the_defaults_file() {
    let help = Command::new(target_dir().join("overlayd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    let vars: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split('=').next().unwrap())
        .collect();
    assert!(
        vars.len() >= 10,
        "too few variables in overlayd --help: {vars:?}"
    );
    let set: Vec<String> = unit().environment.into_iter().map(|(k, _)| k).collect();
    let defaults =
        std::fs::read_to_string(workspace_root().join("packaging/overlayd.default")).unwrap();
    let offered: Vec<&str> = defaults
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once('=').map(|(k, _)| k))
        .collect();
    let missing: Vec<&&str> = vars
        .iter()
        .filter(|v| !set.iter().any(|s| s == *v) && !offered.contains(v))
        .collect();
    assert!(
        missing.is_empty(),
        "overlayd reads {missing:?}, which neither packaging/overlayd.service sets \
         nor packaging/overlayd.default offers"
    );
}
