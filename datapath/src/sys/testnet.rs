//! Network namespaces for tests: each test runs its body in a thread of its
//! own that has left the host's namespace, so interfaces it creates are
//! invisible elsewhere and vanish with the thread. Test builds only.

use std::{io::Write, process::Command};

/// The namespace of the calling thread.
pub struct Netns {
    path: String,
}

impl Netns {
    /// Runs `ip args…` inside this namespace (through `nsenter`, since
    /// a child process would otherwise start in the process's original
    /// namespace, not the thread's). Panics on failure.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path))
            .arg("ip")
            .args(args)
            .output()
            .expect("nsenter (util-linux) must be installed");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Netns {
    /// Waits (at most three seconds) until `ifname` is up and has its
    /// queueing discipline: the kernel attaches it a moment after the
    /// link comes up (link watch), and until then frames sent out of the
    /// interface are silently discarded by `noop`.
    pub fn wait_up(&self, ifname: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let out = Command::new("nsenter")
                .arg(format!("--net={}", self.path))
                .args(["ip", "-o", "link", "show", "dev", ifname])
                .output()
                .expect("nsenter (util-linux) must be installed");
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(",LOWER_UP") && !text.contains("qdisc noop") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{ifname} not ready within 3 s: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

fn ns_id(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Tests skipped in this test binary (see [`run`]).
static SKIPPED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Runs `body` in a fresh network namespace, on a thread of its own.
/// Without root the test fails, unless `OVERLAYD_SKIP_PRIVILEGED=1` asks
/// for a skip: then it prints the skip and how many tests this binary has
/// skipped so far, and returns at once.
pub fn run(test: &str, body: impl FnOnce(&Netns) + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        let why = "needs root (network namespaces, TAP, AF_PACKET)";
        assert!(
            std::env::var("OVERLAYD_SKIP_PRIVILEGED").as_deref() == Ok("1"),
            "{test} cannot run: {why}; run the tests as root, or set \
             OVERLAYD_SKIP_PRIVILEGED=1 to skip the privileged ones"
        );
        let n = SKIPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // Straight to the process's stderr, past the test harness's
        // capture, so that the skip shows in every run.
        let line = format!(
            "SKIPPED {test}: {why} (OVERLAYD_SKIP_PRIVILEGED=1); \
             {n} privileged test(s) skipped so far in this test binary\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
        return;
    }
    let found = Command::new("nsenter").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "nsenter (util-linux) is required"
    );
    let handle = std::thread::spawn(move || {
        let before = ns_id("/proc/thread-self/ns/net");
        // SAFETY: unshare(2) only changes this thread's namespace.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        let after = ns_id("/proc/thread-self/ns/net");
        // Never touch the host's namespace.
        assert_ne!(before, after, "still in the original network namespace");
        let ns = Netns {
            path: format!(
                "/proc/{}/task/{}/ns/net",
                std::process::id(),
                nix::unistd::gettid()
            ),
        };
        assert_eq!(ns_id(&ns.path), after);
        body(&ns);
    });
    if let Err(p) = handle.join() {
        std::panic::resume_unwind(p);
    }
}

/// Waits at most `ms` milliseconds for input on `fd`.
pub fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: u16) -> bool {
    nlproto::sys::wait_readable(fd, std::time::Duration::from_millis(ms.into())).unwrap_or(false)
}

/// Whether the TCP/UDP checksum of the IP packet at `l3` verifies.
pub fn l4_ok(f: &[u8], l3: usize) -> bool {
    use crate::dataplane::offload::csum::{fold, ones_sum};
    let (v6, l4, end, proto) = if f[l3] >> 4 == 6 {
        let plen = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) as usize;
        (true, l3 + 40, l3 + 40 + plen, f[l3 + 6])
    } else {
        let tot = u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]) as usize;
        (false, l3 + (f[l3] & 15) as usize * 4, l3 + tot, f[l3 + 9])
    };
    let addrs = if v6 {
        &f[l3 + 8..l3 + 40]
    } else {
        &f[l3 + 12..l3 + 20]
    };
    let sum = ones_sum(addrs, proto as u32 + (end - l4) as u32);
    fold(ones_sum(&f[l4..end], sum)) == 0xffff
}

/// Whether the IPv4 header checksum at `l3` verifies.
pub fn ipv4_ok(f: &[u8], l3: usize) -> bool {
    use crate::dataplane::offload::csum::{fold, ones_sum};
    fold(ones_sum(&f[l3..l3 + 20], 0)) == 0xffff
}

/// An ARP request from `sha`/`spa` for `tpa`.
pub fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

/// If `f` is an ARP reply, its sender hardware and protocol addresses
/// and its destination MAC.
pub fn arp_reply(f: &[u8]) -> Option<([u8; 6], [u8; 4], [u8; 6])> {
    if f.len() < 42 || f[12..14] != [0x08, 0x06] || f[20..22] != [0, 2] {
        return None;
    }
    Some((
        f[22..28].try_into().unwrap(),
        f[28..32].try_into().unwrap(),
        f[0..6].try_into().unwrap(),
    ))
}
