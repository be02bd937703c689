//! Network namespaces for the end-to-end tests.
//!
//! Every namespace has a name unique to the test process and is deleted on
//! drop, also when the test fails; processes a test starts inside one are
//! bounded by `timeout` and killed on drop. Addresses are only ever
//! configured inside these namespaces.

use std::{
    io::Write,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether the tests can create namespaces (they need root).
///
/// Without root a test fails, unless `OVERLAYD_SKIP_PRIVILEGED=1` asks for
/// the privileged tests to be skipped: then it prints that it skipped, with
/// the number of tests this test binary has skipped so far, and the caller
/// returns early. A skip never looks like a pass by accident.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root || !skip_privileged("needs root (network namespaces, TAP devices, groups, uid changes)")
}

/// The environment variable that turns a privileged test run without root
/// into a counted skip instead of a failure.
pub const SKIP_PRIVILEGED: &str = "OVERLAYD_SKIP_PRIVILEGED";

static SKIPPED: AtomicU32 = AtomicU32::new(0);

/// Called by a test that needs a privilege it does not have (`why` says
/// which): panics unless [`SKIP_PRIVILEGED`] is `1`, else counts and prints
/// the skip and returns true.
pub fn skip_privileged(why: &str) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var(SKIP_PRIVILEGED).as_deref() != Ok("1") {
        panic!(
            "{test} cannot run: {why}; run the tests as root, or set \
             {SKIP_PRIVILEGED}=1 to skip the privileged ones"
        );
    }
    let n = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    // Straight to the process's stderr, past the test harness's capture,
    // so that the skip shows in every run, not only in failing ones.
    let line = format!(
        "SKIPPED {test}: {why} ({SKIP_PRIVILEGED}=1); \
         {n} privileged test(s) skipped so far in this test binary\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    true
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    /// Its name, for `ip netns exec`.
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    /// A new namespace with loopback up.
    pub fn new(tag: &str) -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ovt-{tag}-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.ip("link set lo up");
        ns
    }

    /// Runs `ip -n <ns> <args>`, panicking with its output on failure.
    pub fn ip(&self, args: &str) {
        let mut c = Command::new("ip");
        c.arg("-n").arg(&self.name).args(args.split_whitespace());
        run(&mut c);
    }

    /// Runs a command in the namespace and returns its output.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec runs")
    }

    /// Three pings to `addr` from the namespace, each answered within
    /// `wait` seconds; panics with ping's output otherwise.
    #[track_caller]
    pub fn ping(&self, addr: &str, wait: u32) {
        let wait = wait.to_string();
        let out = self.exec(&["ping", "-c", "3", "-i", "0.2", "-W", &wait, addr]);
        assert!(
            out.status.success(),
            "ping {addr} from {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// Runs a command in the namespace, panicking on failure.
    pub fn ok(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "{} in {}: {}\n{}{}",
            cmd.join(" "),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a command in the namespace in the background; it is killed
    /// when the namespace is dropped.
    pub fn spawn(&mut self, cmd: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec spawns");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits at most `timeout` for background command `i` to exit
    /// successfully; panics with its stderr otherwise.
    pub fn wait(&mut self, i: usize, timeout: Duration) {
        let child = &mut self.children[i];
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "background command in {} did not finish in {timeout:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        assert!(
            status.success(),
            "background command failed: {status}\n{err}"
        );
    }

    /// Reads an interface counter (`/sys/class/net/<if>/statistics/<name>`).
    pub fn if_counter(&self, ifname: &str, name: &str) -> u64 {
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        self.ok(&["cat", &path]).trim().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A child is often `timeout CMD`: killing `timeout` leaves CMD
        // running (a listener would wait forever, holding the namespace).
        // Whatever still runs inside the namespace is the test's: kill it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: kill has no memory preconditions; the pid is
                    // a process of this test's namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair between two namespaces, both ends up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]));
    a.ip(&format!("link set {a_if} up"));
    b.ip(&format!("link set {b_if} up"));
}

fn run(c: &mut Command) {
    let out = c.output().expect("command runs");
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `len` bytes of deterministic pseudo-random data to `path`.
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        // xorshift64*: fast, and incompressible enough for a transfer test.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).unwrap();
}

/// The sha256 of a file, by `sha256sum`.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Sends `file` from `from` to `to_addr:port` over TCP, received by a
/// listener in `to` into `out`, each side bounded by `timeout` seconds.
pub fn tcp_transfer(
    from: &mut Netns,
    to: &mut Netns,
    to_addr: &str,
    port: u16,
    file: &Path,
    out: &Path,
) {
    // socat's TCP-LISTEN is IPv4 only: an IPv6 address needs TCP6-LISTEN.
    let v6 = to_addr.contains(':');
    let listen = if v6 {
        format!("TCP6-LISTEN:{port},reuseaddr")
    } else {
        format!("TCP4-LISTEN:{port},reuseaddr")
    };
    let sink = format!("OPEN:{},creat,trunc", out.display());
    let rx = to.spawn(&["timeout", "60", "socat", "-u", &listen, &sink]);
    let src = format!("OPEN:{}", file.display());
    let dst = if v6 {
        format!("TCP6:[{to_addr}]:{port},retry=100,interval=0.05")
    } else {
        format!("TCP4:{to_addr}:{port},retry=100,interval=0.05")
    };
    from.ok(&["timeout", "60", "socat", "-u", &src, &dst]);
    to.wait(rx, Duration::from_secs(65));
}

/// Runs `f` on a new thread that has entered the network namespace `ns`
/// (by `setns` on `/run/netns/<name>`), and returns its result. Only that
/// thread changes namespace; sockets it opens stay in `ns` wherever they
/// are used afterwards.
pub fn in_netns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)?;
        // SAFETY: the descriptor is open for the call; setns changes only
        // this thread's network namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .expect("the thread in the namespace does not panic")
}

/// An AF_PACKET socket bound to one interface of a test namespace: it
/// sends whole Ethernet frames out of that interface and receives every
/// frame the interface receives (frames it sends itself are skipped).
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

impl PacketSocket {
    /// Opens the socket in namespace `ns`, bound to `ifname` for every
    /// ethertype; from then on it queues what the interface receives.
    pub fn open(ns: &Netns, ifname: &str) -> PacketSocket {
        let name = ifname.to_string();
        let fd = in_netns(ns, move || {
            let cname = std::ffi::CString::new(name).expect("no NUL in an interface name");
            // SAFETY: cname is a valid C string for the call.
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if ifindex == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // Protocol 0 receives nothing until the bind below names the
            // interface and the ethertypes, so no other interface's frame
            // is ever queued.
            // SAFETY: plain socket creation; the result is checked.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            if raw < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: raw is a descriptor this function just opened.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: sll is a valid sockaddr_ll of the length given.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(fd)
        })
        .unwrap_or_else(|e| panic!("AF_PACKET socket on {ifname} in {}: {e}", ns.name));
        PacketSocket {
            fd,
            ifname: ifname.to_string(),
        }
    }

    /// Sends one Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: frame is valid for reads of its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send on {}: {}",
            self.ifname,
            std::io::Error::last_os_error()
        );
    }

    /// Receives frames until one satisfies `done`, for at most `timeout`
    /// in all. Returns every frame received, the satisfying one last, or
    /// `None` when the time ran out first.
    pub fn recv_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<Vec<u8>>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match nlproto::sys::wait_readable(self.fd.as_fd(), left) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => panic!("poll: {e}"),
            }
            // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are valid for writes of the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ),
                    "recv on {}: {e}",
                    self.ifname
                );
                continue;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let frame = buf[..n as usize].to_vec();
            let last = done(&frame);
            frames.push(frame);
            if last {
                return Some(frames);
            }
        }
    }
}

/// A MAC address written as six `:`-separated hex bytes.
pub fn mac(text: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut out {
        let part = parts.next().unwrap_or_else(|| panic!("short MAC {text}"));
        *b = u8::from_str_radix(part, 16).unwrap_or_else(|_| panic!("bad MAC {text}"));
    }
    assert!(parts.next().is_none(), "long MAC {text}");
    out
}

/// An untagged Ethernet frame: destination, source, ethertype, payload.
pub fn ethernet_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}
