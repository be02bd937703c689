//! Helpers for the integration tests: a real `overlayd` started on a
//! private socket with the real plugins, and the built binaries.
//!
//! The workspace must be built first (`cargo build --workspace`, as
//! `scripts/test` does): the tests use the `overlayd` and `overlayctl`
//! binaries and the plugin `.so` files from the target directory.

pub mod etcd;
pub mod monitor;
pub mod net;
pub mod tshark;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The directory holding the built binaries and plugins.
pub fn target_dir() -> PathBuf {
    // tests/ -> workspace root -> target/<profile>
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(profile);
    for bin in ["overlayd", "overlayctl"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the workspace first (cargo build --workspace)",
            dir.join(bin).display()
        );
    }
    dir
}

/// The path of a built plugin, by library name (`overlay_vxlan`).
pub fn plugin_path(lib: &str) -> PathBuf {
    target_dir().join(format!("lib{lib}.so"))
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The target directory shared by every plugin built outside the
/// workspace (`target/examples`), so that repeated builds are incremental
/// and the dependencies are compiled once for all of them.
pub fn out_of_tree_target_dir() -> PathBuf {
    workspace_root().join("target").join("examples")
}

/// Builds the plugin crate whose manifest is `manifest` the way a third
/// party does (`cargo build --release --manifest-path ...`), in
/// [`out_of_tree_target_dir`], and returns the path of `lib<lib>.so`.
pub fn build_out_of_tree(manifest: &Path, lib: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = out_of_tree_target_dir();
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target)
        // The outer `cargo test` may set these for its own build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build --release --manifest-path {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let so = target.join("release").join(format!("lib{lib}.so"));
    assert!(so.exists(), "{} was not built", so.display());
    so
}

/// Copies `from` to `dir/name` with exactly `mode`.
pub fn install_plugin(from: &Path, dir: &TempDir, name: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    to
}

/// A private temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    /// A new empty directory with a unique name.
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ovl-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `overlayd`, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its scratch directory (log, state directory, and the socket unless
    /// one was given).
    pub dir: TempDir,
    launch: Launch,
}

/// How a test daemon is started, kept to start it again.
#[derive(Clone, Debug, Default)]
struct Launch {
    plugin_dirs: Vec<PathBuf>,
    netns: Option<String>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

/// Underlay addresses configured in each test daemon's namespace.
pub const UNDERLAY_ADDRS: [&str; 5] = [
    "10.0.0.1/24",
    "10.0.0.9/24",
    "10.200.0.1/24",
    "2001:db8::1/64",
    "2001:db8::9/64",
];

/// The command line of an `overlayd` on `socket` with these plugin
/// directories, its stderr (the log) appended to `log`, its state in
/// `state_dir`, and the `extra` arguments.
///
/// The daemon runs in a network namespace of its own (`unshare --net`),
/// holding only loopback and a veth pair (this kernel has no dummy driver) with the underlay addresses
/// the tests use ([`UNDERLAY_ADDRS`]): activation opens real sockets and
/// TAP interfaces, which must neither clash between tests running in
/// parallel nor touch the host. The namespace goes away with the daemon.
///
/// With `netns`, the daemon runs in that named namespace instead, which the
/// caller set up (the end-to-end tests).
fn overlayd_command(
    socket: &Path,
    plugin_dirs: &[PathBuf],
    log: &Path,
    state_dir: &Path,
    netns: Option<&str>,
    extra: &[String],
    env: &[(String, String)],
) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(target_dir().join("overlayd"));
            c
        }
        None => {
            let mut setup = String::from(
                "ip link set lo up && ip link add ovt0 type veth peer name ovt1 \
                 && ip link set ovt1 up && ip link set ovt0 up",
            );
            for a in UNDERLAY_ADDRS {
                setup.push_str(&format!(" && ip addr add {a} dev ovt0 nodad"));
            }
            let mut c = Command::new("unshare");
            c.arg("--net")
                .arg("--")
                .arg("sh")
                .arg("-c")
                .arg(format!("{setup} && exec \"$0\" \"$@\""))
                .arg(target_dir().join("overlayd"));
            c
        }
    };
    cmd.arg("--socket").arg(socket).arg("--log").arg("debug");
    if !extra.iter().any(|a| a == "--state-dir") {
        cmd.arg("--state-dir").arg(state_dir);
    }
    for d in plugin_dirs {
        cmd.arg("--plugin-dir").arg(d);
    }
    cmd.args(extra);
    // The log goes to a file: a pipe nobody drains would block the
    // daemon once full. Appended, so a restarted daemon's log follows the
    // first one's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    cmd.env_remove("OVERLAYD_SOCKET")
        .env_remove("OVERLAYD_PLUGIN_DIR")
        .env_remove("OVERLAYD_LOG")
        .env_remove("OVERLAYD_GROUP")
        .env_remove("OVERLAYD_STATE_DIR")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd
}

/// Waits at most `timeout` for `child` to exit.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs an `overlayd` that is expected to exit by itself (for instance
/// because it refuses to start) and returns its exit status and log. A
/// daemon still running after `timeout` is killed and `None` returned.
pub fn run_overlayd_to_exit(
    socket: &Path,
    plugin_dirs: &[PathBuf],
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    run_overlayd_args_to_exit(socket, plugin_dirs, &[], timeout)
}

/// [`run_overlayd_to_exit`] with extra arguments (which may name a state
/// directory of the caller's; otherwise a private one is used).
pub fn run_overlayd_args_to_exit(
    socket: &Path,
    plugin_dirs: &[PathBuf],
    extra: &[&str],
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    let dir = TempDir::new("run");
    let log = dir.join("overlayd.log");
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let mut child = overlayd_command(
        socket,
        plugin_dirs,
        &log,
        &dir.join("state"),
        None,
        &extra,
        &[],
    )
    .spawn()
    .expect("overlayd starts");
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

impl Daemon {
    /// Starts overlayd with the plugins in the target directory.
    pub fn start() -> Daemon {
        Self::start_with(&[target_dir()])
    }

    /// Starts overlayd with these plugin directories.
    pub fn start_with(plugin_dirs: &[PathBuf]) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        Self::launch(dir, socket, plugin_dirs)
    }

    /// Starts overlayd on a socket path of the caller's choosing, with the
    /// plugins in the target directory.
    pub fn start_on(socket: &Path) -> Daemon {
        match Self::try_start_on(socket) {
            Ok(d) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    /// Starts overlayd on `socket` (plugins of the target directory) and
    /// waits until it answers there; when it exits first, returns its exit
    /// status and log instead.
    pub fn try_start_on(socket: &Path) -> Result<Daemon, (ExitStatus, String)> {
        Self::try_launch(
            TempDir::new("daemon"),
            socket.to_path_buf(),
            &[target_dir()],
        )
        .map(|(d, _)| d)
    }

    /// Starts overlayd with the plugins in the target directory and returns
    /// it with the connection that found it ready: the daemon's first
    /// handle.
    pub fn start_with_first_client() -> (Daemon, nlproto::client::Client) {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        match Self::try_launch(dir, socket, &[target_dir()]) {
            Ok(pair) => pair,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    /// Starts overlayd, with the built plugins, in the named network
    /// namespace `netns` (which the caller created and configured).
    pub fn start_in_netns(netns: &str) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        match Self::try_launch_in(dir, socket, &[target_dir()], Some(netns)) {
            Ok((d, _)) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    /// Starts overlayd with these plugin directories, in the named network
    /// namespace `netns` when given (else in a private one, as
    /// [`Daemon::start_with`]), with extra environment variables.
    pub fn start_opts(
        plugin_dirs: &[PathBuf],
        netns: Option<&str>,
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        let launch = Launch {
            plugin_dirs: plugin_dirs.to_vec(),
            netns: netns.map(str::to_string),
            extra: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        match Self::try_launch_with(dir, socket, launch) {
            Ok((d, _)) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    fn launch(dir: TempDir, socket: PathBuf, plugin_dirs: &[PathBuf]) -> Daemon {
        match Self::try_launch(dir, socket, plugin_dirs) {
            Ok((d, _)) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    fn try_launch(
        dir: TempDir,
        socket: PathBuf,
        plugin_dirs: &[PathBuf],
    ) -> Result<(Daemon, nlproto::client::Client), (ExitStatus, String)> {
        Self::try_launch_in(dir, socket, plugin_dirs, None)
    }

    fn try_launch_in(
        dir: TempDir,
        socket: PathBuf,
        plugin_dirs: &[PathBuf],
        netns: Option<&str>,
    ) -> Result<(Daemon, nlproto::client::Client), (ExitStatus, String)> {
        let launch = Launch {
            plugin_dirs: plugin_dirs.to_vec(),
            netns: netns.map(str::to_string),
            extra: Vec::new(),
            env: Vec::new(),
        };
        Self::try_launch_with(dir, socket, launch)
    }

    fn try_launch_with(
        dir: TempDir,
        socket: PathBuf,
        launch: Launch,
    ) -> Result<(Daemon, nlproto::client::Client), (ExitStatus, String)> {
        let mut d = Daemon {
            child: None,
            socket,
            dir,
            launch,
        };
        let client = d.spawn_and_wait()?;
        Ok((d, client))
    }

    fn spawn_and_wait(&mut self) -> Result<nlproto::client::Client, (ExitStatus, String)> {
        let child = overlayd_command(
            &self.socket,
            &self.launch.plugin_dirs,
            &self.dir.join("overlayd.log"),
            &self.state_dir(),
            self.launch.netns.as_deref(),
            &self.launch.extra,
            &self.launch.env,
        )
        .spawn()
        .expect("overlayd starts");
        self.child = Some(child);
        self.wait_ready()
    }

    /// Starts overlayd (plugins of the target directory) in the named
    /// network namespace `netns`, with extra command-line arguments.
    pub fn start_in_netns_with_args(netns: &str, extra: &[&str]) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        let launch = Launch {
            plugin_dirs: vec![target_dir()],
            netns: Some(netns.to_string()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        match Self::try_launch_with(dir, socket, launch) {
            Ok((d, _)) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    /// Starts overlayd (plugins of the target directory, its own namespace)
    /// with extra command-line arguments.
    pub fn start_with_args(extra: &[&str]) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket = dir.join("overlayd.sock");
        let launch = Launch {
            plugin_dirs: vec![target_dir()],
            netns: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
        };
        match Self::try_launch_with(dir, socket, launch) {
            Ok((d, _)) => d,
            Err((status, log)) => panic!("overlayd exited early ({status}):\n{log}"),
        }
    }

    /// The daemon's private state directory (`--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts the daemon again, after it stopped or was killed, with the
    /// same socket, state directory, namespace and arguments; its log is
    /// appended to the same file. Panics when it does not come up.
    pub fn restart(&mut self) {
        assert!(!self.alive(), "restart: the daemon is still running");
        self.child = None;
        if let Err((status, log)) = self.spawn_and_wait() {
            panic!("overlayd exited early on restart ({status}):\n{log}");
        }
    }

    /// Waits until the daemon answers a GET_PID on its socket; returns that
    /// connection.
    fn wait_ready(&mut self) -> Result<nlproto::client::Client, (ExitStatus, String)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err((status, self.log()));
            }
            if self.socket.exists() {
                if let Ok(c) =
                    nlproto::client::Client::connect_with(&self.socket, Duration::from_secs(5))
                {
                    return Ok(c);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.stop();
        panic!(
            "overlayd did not open {} within 20 s:\n{log}",
            self.socket.display()
        );
    }

    /// A new client connection.
    pub fn client(&self) -> nlproto::client::Client {
        nlproto::client::Client::connect(&self.socket).expect("connect to overlayd")
    }

    /// Runs `overlayctl --socket <ours> args...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(target_dir().join("overlayctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("OVERLAYD_SOCKET")
            .output()
            .expect("overlayctl runs")
    }

    /// Runs overlayctl against this daemon, panicking with its stderr and
    /// the daemon's log when it fails; returns its stdout.
    #[track_caller]
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "overlayctl {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates and activates `link`: encapsulation `encap` (`vxlan`,
    /// `geneve`) with VNI `vni` listening on `listen_ip`, dynamic mode with
    /// the `files` plugin reading `config`, plus the `key=value`
    /// properties of `extra`.
    #[track_caller]
    pub fn files_overlay(
        &self,
        link: &str,
        encap: &str,
        vni: u32,
        listen_ip: &str,
        config: &Path,
        extra: &[&str],
    ) {
        let mut props = format!(
            "{encap}/listen_ip={listen_ip},files/config={}",
            config.display()
        );
        for e in extra {
            props.push(',');
            props.push_str(e);
        }
        let vni = vni.to_string();
        self.ctl_ok(&[
            "create", "-e", encap, "-s", "files", "-v", &vni, "-p", &props, link,
        ]);
        self.ctl_ok(&["activate", link]);
    }

    /// Whether the daemon is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The daemon's process id, while it is ours to signal.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("overlayd.log")).unwrap_or_default()
    }

    /// Waits at most `timeout` for a log line for which `pred` holds.
    pub fn wait_log_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().lines().any(&pred) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most 10 s) until the daemon has logged closing the
    /// connection of the handle `pid`, so everything that connection sent
    /// has been handled. Panics on timeout.
    pub fn wait_closed(&self, pid: u32) {
        let needle = format!("connection closed pid={pid}");
        assert!(
            self.wait_log_line(Duration::from_secs(10), |l| l.ends_with(&needle)),
            "the daemon did not log closing handle {pid}:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM and waits at most 10 s for the daemon to exit. Returns
    /// its exit status, or `None` when it had to be killed.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// Sends `signal` and waits at most 10 s for the daemon to exit.
    /// Returns its exit status, or `None` when it had to be killed.
    pub fn signal_and_wait(&mut self, signal: libc::c_int) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill on a pid we own; the child has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Kills the daemon with SIGKILL (it cannot clean up) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 10 s) and returns its log.
    pub fn stop(&mut self) -> String {
        self.terminate();
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Standard output of a command as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error of a command as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that an overlayctl run succeeded with nothing on stderr;
/// returns its stdout.
#[track_caller]
pub fn ctl_succeeded(o: Output) -> String {
    assert!(
        o.status.success(),
        "overlayctl failed ({}): {}",
        o.status,
        stderr(&o)
    );
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(&o));
    stdout(&o)
}

/// Asserts that an overlayctl run failed: a non-zero exit, nothing on
/// stdout, exactly one line on stderr; returns that line.
#[track_caller]
pub fn ctl_failed(o: Output) -> String {
    assert!(!o.status.success(), "overlayctl succeeded: {}", stdout(&o));
    assert_ne!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(&o));
    let err = stderr(&o);
    assert!(err.ends_with('\n'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    err.trim_end().to_string()
}

/// Requests and checks on the overlay family through the nlproto client,
/// and raw datagram helpers for the malformed-message tests.
pub mod proto {
    use nlproto::attr::Unknown;
    use nlproto::client::{Client, Error};
    use nlproto::msg::{ErrorMsg, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
    use nlproto::server::split_datagram;
    use nlproto::spec::{self, overlay as ov, target as tg};
    use nlproto::{Attr, AttrValue, AttrsExt, Emit, GenlMsg, Message};
    use std::net::{IpAddr, Ipv4Addr};

    /// A device's counters and its mux's, by name, from STATS.
    pub fn stats(
        c: &mut Client,
        link: &str,
    ) -> (
        std::collections::HashMap<String, u64>,
        std::collections::HashMap<String, u64>,
    ) {
        let reply = c
            .transact(
                ov::NAME,
                ov::CMD_STATS,
                vec![Attr::str(ov::ATTR_NAME, link)],
            )
            .expect("STATS");
        let read = |attrs: &[Attr]| -> std::collections::HashMap<String, u64> {
            attrs
                .all(ov::ATTR_STAT)
                .filter_map(|a| match &a.value {
                    AttrValue::Nested(kv) => Some((
                        kv.get_str(ov::ATTR_STAT_NAME)?.to_string(),
                        kv.get_u64(ov::ATTR_STAT_VALUE)?,
                    )),
                    _ => None,
                })
                .collect()
        };
        let dev = read(reply.attrs.get_nested(ov::ATTR_STATS).unwrap_or_default());
        let mux = reply
            .attrs
            .get_nested(ov::ATTR_MUX)
            .and_then(|m| m.get_nested(ov::ATTR_STATS))
            .map(read)
            .unwrap_or_default();
        (dev, mux)
    }

    /// A UINT property value: 8 bytes, native order.
    pub fn uint(v: u64) -> Vec<u8> {
        v.to_ne_bytes().to_vec()
    }

    /// An IP property value: 16 bytes of `in6_addr`, IPv4 v4-mapped.
    pub fn ip(text: &str) -> Vec<u8> {
        match text.parse::<IpAddr>().expect("an IP address") {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        }
    }

    /// `NAME` naming a device.
    pub fn name(dev: &str) -> Attr {
        Attr::str(ov::ATTR_NAME, dev)
    }

    /// `PROPS` holding one `PROP` per (name, value).
    pub fn props(list: &[(&str, Vec<u8>)]) -> Attr {
        Attr::nested(
            ov::ATTR_PROPS,
            list.iter()
                .map(|(n, v)| {
                    Attr::nested(
                        ov::ATTR_PROP,
                        vec![
                            Attr::str(ov::ATTR_PROP_NAME, *n),
                            Attr::bytes(ov::ATTR_PROP_VALUE, v.clone()),
                        ],
                    )
                })
                .collect(),
        )
    }

    /// CREATE with any plugins; `props` empty means no `PROPS` attribute.
    pub fn create_with(
        c: &mut Client,
        dev: &str,
        encap: &str,
        search: &str,
        vnetid: u64,
        list: &[(&str, Vec<u8>)],
    ) -> Result<GenlMsg, Error> {
        let mut attrs = vec![
            name(dev),
            Attr::str(ov::ATTR_ENCAP, encap),
            Attr::str(ov::ATTR_SEARCH, search),
            Attr::u64(ov::ATTR_VNETID, vnetid),
        ];
        if !list.is_empty() {
            attrs.push(props(list));
        }
        c.transact(ov::NAME, ov::CMD_CREATE, attrs)
    }

    /// CREATE of a vxlan/direct device.
    pub fn create(
        c: &mut Client,
        dev: &str,
        vnetid: u64,
        list: &[(&str, Vec<u8>)],
    ) -> Result<GenlMsg, Error> {
        create_with(c, dev, "vxlan", "direct", vnetid, list)
    }

    /// The properties a vxlan/direct device needs to activate.
    pub fn full_props(listen: &str, dest: &str) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("vxlan/listen_ip", ip(listen)),
            ("direct/dest_ip", ip(dest)),
            ("direct/dest_port", uint(4789)),
        ]
    }

    /// GETPROP: the value, `None` when unset.
    pub fn getprop(c: &mut Client, dev: &str, prop: &str) -> Result<Option<Vec<u8>>, Error> {
        let reply = c.transact(
            ov::NAME,
            ov::CMD_GETPROP,
            vec![name(dev), Attr::str(ov::ATTR_PROP_NAME, prop)],
        )?;
        Ok(reply
            .attrs
            .get_bytes(ov::ATTR_PROP_VALUE)
            .map(<[u8]>::to_vec))
    }

    /// GETPROP of a UINT property that must be set.
    pub fn getprop_uint(c: &mut Client, dev: &str, prop: &str) -> u64 {
        let v = getprop(c, dev, prop)
            .unwrap_or_else(|e| panic!("GETPROP {prop}: {e}"))
            .unwrap_or_else(|| panic!("{prop} is unset"));
        u64::from_ne_bytes(v.try_into().expect("a UINT value is 8 bytes"))
    }

    /// SETPROP.
    pub fn setprop(c: &mut Client, dev: &str, prop: &str, value: Vec<u8>) -> Result<(), Error> {
        c.write(
            ov::NAME,
            ov::CMD_SETPROP,
            vec![
                name(dev),
                Attr::str(ov::ATTR_PROP_NAME, prop),
                Attr::bytes(ov::ATTR_PROP_VALUE, value),
            ],
        )
    }

    /// ACTIVATE.
    pub fn activate(c: &mut Client, dev: &str) -> Result<(), Error> {
        c.write(ov::NAME, ov::CMD_ACTIVATE, vec![name(dev)])
    }

    /// DELETE.
    pub fn delete(c: &mut Client, dev: &str) -> Result<(), Error> {
        c.write(ov::NAME, ov::CMD_DELETE, vec![name(dev)])
    }

    /// The names of every device (a LIST dump), in link-id order.
    pub fn device_names(c: &mut Client) -> Vec<String> {
        c.dump(ov::NAME, ov::CMD_LIST, vec![])
            .expect("LIST dump")
            .iter()
            .map(|m| m.attrs.get_str(ov::ATTR_NAME).unwrap_or("").to_string())
            .collect()
    }

    /// The device's STATE (LIST transaction).
    pub fn state(c: &mut Client, dev: &str) -> u32 {
        c.transact(ov::NAME, ov::CMD_LIST, vec![name(dev)])
            .expect("LIST transaction")
            .attrs
            .get_u32(ov::ATTR_STATE)
            .expect("STATE in the LIST reply")
    }

    /// Asserts that `r` failed with `errno` and an extended-ack text that
    /// contains every one of `needles`; returns the text.
    #[track_caller]
    pub fn expect_err<T: std::fmt::Debug>(
        r: Result<T, Error>,
        errno: i32,
        needles: &[&str],
    ) -> String {
        expect_err_in("request", r, errno, needles)
    }

    /// [`expect_err`], naming what was tried in failure messages.
    #[track_caller]
    pub fn expect_err_in<T: std::fmt::Debug>(
        what: &str,
        r: Result<T, Error>,
        errno: i32,
        needles: &[&str],
    ) -> String {
        match r {
            Err(Error::Netlink {
                errno: got,
                message,
                ..
            }) => {
                let text = message.unwrap_or_default();
                assert_eq!(
                    got,
                    errno,
                    "{what}: expected errno {errno} ({}), got {got} ({}): {text}",
                    nlproto::errno::label(errno),
                    nlproto::errno::label(got)
                );
                assert!(
                    !text.is_empty(),
                    "{what}: error {got} without extended-ack text"
                );
                for n in needles {
                    assert!(text.contains(n), "{what}: {text:?} does not mention {n:?}");
                }
                text
            }
            other => panic!("{what}: expected errno {errno}, got {other:?}"),
        }
    }

    /// The bytes of one generic-netlink request.
    pub fn request(
        family: u16,
        cmd: u8,
        version: u8,
        flags: u16,
        seq: u32,
        attrs: Vec<Attr>,
    ) -> Vec<u8> {
        GenlMsg {
            family,
            flags,
            seq,
            pid: 0,
            cmd,
            version,
            attrs,
        }
        .emit()
    }

    /// An overlay-family request with `NLM_F_REQUEST | NLM_F_ACK`.
    pub fn overlay_request(cmd: u8, seq: u32, attrs: Vec<Attr>) -> Vec<u8> {
        request(
            ov::ID,
            cmd,
            ov::VERSION,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            attrs,
        )
    }

    /// MAC number `n` of a range the target cache is filled with:
    /// 02:01:nn:nn:nn:nn (locally administered, unicast).
    pub fn numbered_mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x02, 0x01, b[0], b[1], b[2], b[3]]
    }

    /// A CACHE_SET request for `dev`'s target cache: `mac` at the underlay
    /// address `dest` (sent mapped into IPv6) and the VXLAN port.
    pub fn cache_set_request(
        dev: &str,
        mac: [u8; 6],
        dest: Ipv4Addr,
        flags: u16,
        seq: u32,
    ) -> Vec<u8> {
        request(
            tg::ID,
            tg::CMD_CACHE_SET,
            tg::VERSION,
            flags,
            seq,
            vec![
                Attr::str(tg::ATTR_NAME, dev),
                Attr::bytes(tg::ATTR_MAC, mac.to_vec()),
                Attr::bytes(tg::ATTR_DEST_IP, dest.to_ipv6_mapped().octets().to_vec()),
                Attr::u16(tg::ATTR_DEST_PORT, 4789),
            ],
        )
    }

    /// A CACHE_LIST dump request of `dev`'s target cache.
    pub fn cache_list_request(dev: &str, seq: u32) -> Vec<u8> {
        request(
            tg::ID,
            tg::CMD_CACHE_LIST,
            tg::VERSION,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            vec![Attr::str(tg::ATTR_NAME, dev)],
        )
    }

    /// Decodes one message from the daemon, genetlink messages with their
    /// family's policy.
    pub fn parse(raw: &[u8]) -> Message {
        let kind = u16::from_ne_bytes([raw[4], raw[5]]);
        let policy = spec::family_by_id(kind).map_or(ov::ATTRS, |f| f.attrs);
        Message::parse(raw, policy, Unknown::Keep).expect("a well-formed message from the daemon")
    }

    /// Receives one datagram and decodes each of its messages.
    pub fn recv_messages(c: &mut Client) -> Vec<Message> {
        let datagram = c.recv_raw().expect("a datagram from the daemon");
        split_datagram(&datagram)
            .map(|m| parse(m.expect("well-framed reply datagram").bytes))
            .collect()
    }

    /// Receives datagrams until the `NLMSG_ERROR` answering `seq` arrives;
    /// fails on anything else answering `seq`.
    pub fn expect_error_reply(c: &mut Client, seq: u32) -> ErrorMsg {
        loop {
            for m in recv_messages(c) {
                match m {
                    Message::Error(e) if e.seq == seq => return e,
                    other if other.seq() == seq => {
                        panic!("expected NLMSG_ERROR for seq {seq}, got {other:?}")
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Many devices at once: created and activated through the protocol with
/// requests pipelined on one connection (as a provisioning system would),
/// and the daemon's process figures to see what they cost.
pub mod scale {
    use crate::proto::{self, overlay_request, recv_messages};
    use nlproto::client::Client;
    use nlproto::spec::overlay as ov;
    use nlproto::{Attr, Message};
    use std::time::{Duration, Instant};

    /// Creates and activates `n` temporary vxlan/direct devices named
    /// `{prefix}{i}` with virtual network ids `vnet0 + i`, all listening on
    /// `listen` (one mux) and sending to `dest`, with at most `window`
    /// requests unanswered. Returns how long it took; panics naming the
    /// first request the daemon refused.
    pub fn create_and_activate(
        c: &mut Client,
        n: usize,
        prefix: &str,
        vnet0: u64,
        listen: &str,
        dest: &str,
        window: usize,
    ) -> Duration {
        let props = proto::full_props(listen, dest);
        let mut requests = Vec::with_capacity(2 * n);
        for i in 0..n {
            let name = format!("{prefix}{i}");
            requests.push(vec![
                proto::name(&name),
                Attr::str(ov::ATTR_ENCAP, "vxlan"),
                Attr::str(ov::ATTR_SEARCH, "direct"),
                Attr::u64(ov::ATTR_VNETID, vnet0 + i as u64),
                proto::props(&props),
                Attr::flag(ov::ATTR_TEMPORARY),
            ]);
            requests.push(vec![proto::name(&name)]);
        }
        let start = Instant::now();
        let (mut sent, mut answered) = (0usize, 0usize);
        let seq0 = c.next_seq();
        while answered < requests.len() {
            while sent < requests.len() && sent - answered < window {
                let cmd = if sent.is_multiple_of(2) {
                    ov::CMD_CREATE
                } else {
                    ov::CMD_ACTIVATE
                };
                let bytes = overlay_request(cmd, seq0 + sent as u32, requests[sent].clone());
                c.send_raw(&bytes).expect("send a request");
                sent += 1;
            }
            for m in recv_messages(c) {
                if let Message::Error(e) = m {
                    let i = (e.seq - seq0) as usize;
                    assert_eq!(
                        e.errno,
                        0,
                        "request {i} ({} of {prefix}{}) refused: {:?}",
                        if i.is_multiple_of(2) {
                            "CREATE"
                        } else {
                            "ACTIVATE"
                        },
                        i / 2,
                        e.message
                    );
                    answered += 1;
                }
            }
        }
        start.elapsed()
    }

    /// What a process costs: threads, resident memory (KiB), descriptors.
    #[derive(Debug, Clone, Copy)]
    pub struct Figures {
        /// Threads.
        pub threads: usize,
        /// Resident set size, KiB.
        pub rss_kib: u64,
        /// Open descriptors.
        pub fds: usize,
    }

    /// The figures of process `pid`, from /proc.
    pub fn figures(pid: u32) -> Figures {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
        };
        Figures {
            threads: field("Threads:") as usize,
            rss_kib: field("VmRSS:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count())
                .unwrap_or(0),
        }
    }
}
