//! Helpers for the integration tests: a real `overlayd` started on a
//! private socket with the real plugins, and the built binaries.
//!
//! The workspace must be built first (`cargo build --workspace`, as
//! `scripts/test` does): the tests use the `overlayd` and `overlayctl`
//! binaries and the plugin `.so` files from the target directory.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
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
    /// Its scratch directory (socket, plugin copies).
    pub dir: TempDir,
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
        let mut cmd = Command::new(target_dir().join("overlayd"));
        cmd.arg("--socket").arg(&socket).arg("--log").arg("debug");
        for d in plugin_dirs {
            cmd.arg("--plugin-dir").arg(d);
        }
        // The log goes to a file: a pipe nobody drains would block the
        // daemon once full.
        let log = std::fs::File::create(dir.join("overlayd.log")).unwrap();
        let child = cmd
            .env_remove("OVERLAYD_SOCKET")
            .env_remove("OVERLAYD_PLUGIN_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("overlayd starts");
        let mut d = Daemon {
            child: Some(child),
            socket,
            dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.socket.exists() && nlproto::client::Client::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("overlayd exited early ({status}):\n{}", self.log());
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

    /// Whether the daemon is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("overlayd.log")).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 10 s) and returns its log.
    pub fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return self.log();
        };
        // SAFETY: kill on a pid we own; the child has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
