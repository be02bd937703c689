//! The TAP backend: a TAP interface the daemon creates and owns.
//!
//! The interface is opened with `IFF_VNET_HDR`, so every frame crossing the
//! descriptor carries a 10-byte virtio-net header in front, and, unless
//! the `tso` offload is off, offloads are turned on with `TUNSETOFFLOAD`:
//! checksum, TCP segmentation (IPv4, IPv6, ECN) and, where the kernel has
//! it, UDP segmentation. The host stack then hands over up to 64 KiB per
//! read (one TSO frame where it would have sent some 45 MTU-sized ones),
//! with the checksum left partial. [`Backend::read_batch`] completes the
//! partial checksums of ordinary frames and hands super-frames over whole
//! with their header: the transmit path segments them as it sends
//! (`dataplane::offload::segment`), one UDP GSO send per super-frame
//! where it can.
//!
//! Towards the hosts, frames are written with a zero header (whole frames)
//! or, for TCP segments the receive side merged, with a GSO header and a
//! partial checksum, which the host stack takes as a NIC's GRO would give
//! it ([`Backend::write_gso`]).
//!
//! The interface is not persistent: the kernel removes it when the
//! descriptor closes, that is when the [`Tap`] is dropped. It is created
//! with `IFF_TUN_EXCL`, so an existing interface of the same name (a TAP
//! left persistent by someone else, or any other kind) is refused instead
//! of being attached to: a `Tap` always owns a fresh interface.

use super::{Backend, Caps, RxBatch};
use crate::dataplane::offload::{csum::complete_checksum, vnet};
use std::{
    ffi::CStr,
    fs::{File, OpenOptions},
    io::{self, IoSlice, IoSliceMut},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    sync::atomic::{AtomicU64, Ordering},
};

/// `TUNSETOFFLOAD` flags requested at creation: partial checksums and TCP
/// segmentation offload.
const OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;
/// Asked for as well where the kernel knows them (Linux 6.2 and later):
/// UDP segmentation offload.
const OFFLOADS_USO: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;

/// A zeroed virtio-net header: no offload asked of the kernel for a frame
/// we write (its checksums are complete, it is not a GSO frame).
static ZERO_VNET_HDR: [u8; vnet::HDR_LEN] = [0; vnet::HDR_LEN];

/// A TAP interface owned by the daemon.
pub struct Tap {
    /// The `/dev/net/tun` descriptor attached to the interface.
    file: File,
    /// Control handle for the interface's MTU, flags and address.
    ctl: IfCtl,
    /// The link address, read once at creation.
    link_addr: [u8; 6],
    /// The `TUNSETOFFLOAD` flags in force.
    offloads: libc::c_uint,
    /// GSO frames read (each handed over whole, to be segmented).
    gso_frames: AtomicU64,
}

/// What one read from the TAP gave.
enum Read {
    /// Nothing waiting.
    Empty,
    /// A frame that must be dropped (truncated, bad offsets).
    Dropped,
    /// A whole frame of this length.
    Frame(usize),
    /// A GSO super-frame of this length, to be segmented as the header
    /// says.
    Gso(usize, vnet::Hdr),
}

impl Tap {
    /// Creates the TAP interface `name` with MTU `mtu`, up; with `tso`, the
    /// host stack may hand over super-frames with partial checksums.
    ///
    /// `name` is at most 15 bytes; an empty name lets the kernel choose one
    /// (`tapN`, see [`Backend::ifname`]). Fails if an interface of that name
    /// already exists, whatever its kind.
    pub fn create(name: &str, mtu: u32, tso: bool) -> io::Result<Tap> {
        let req_name = ifname_bytes(name, true)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            // std adds O_CLOEXEC itself.
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| with_context(e, "cannot open /dev/net/tun"))?;

        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_name = req_name;
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR | libc::IFF_TUN_EXCL)
                as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `ifr` is,
        // and the descriptor is open.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            return Err(tunsetiff_error(io::Error::last_os_error(), name));
        }
        // The kernel writes back the name it used (it fills in `tap%d`).
        let ifname = name_from_ifreq(&ifr.ifr_name);

        let hdr_len = vnet::HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int, which `hdr_len` is.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_len) } < 0 {
            let e = io::Error::last_os_error();
            return Err(with_context(e, format!("TUNSETVNETHDRSZ on {ifname}")));
        }
        let set_offload = |flags: libc::c_uint| {
            // TUNSETOFFLOAD takes its flags as the ioctl argument itself.
            // SAFETY: no memory is passed; the descriptor is open.
            let r = unsafe {
                libc::ioctl(
                    file.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    flags as libc::c_ulong,
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(flags)
            }
        };
        // A kernel without UDP segmentation refuses the whole set (EINVAL).
        let offloads = if tso {
            set_offload(OFFLOADS | OFFLOADS_USO)
                .or_else(|_| set_offload(OFFLOADS))
                .map_err(|e| with_context(e, format!("TUNSETOFFLOAD on {ifname}")))?
        } else {
            0
        };

        let ctl = IfCtl::new(&ifname)?;
        ctl.set_mtu(mtu)?;
        ctl.set_up()?;
        let (_, link_addr) = ctl.hwaddr()?;
        Ok(Tap {
            file,
            ctl,
            link_addr,
            offloads,
            gso_frames: AtomicU64::new(0),
        })
    }

    /// How many GSO (TSO/USO) frames the host stack has handed over so far.
    pub fn gso_frames(&self) -> u64 {
        self.gso_frames.load(Ordering::Relaxed)
    }

    /// Reads one frame into `buf`.
    fn read_one(&self, buf: &mut [u8]) -> io::Result<Read> {
        let mut hdr = [0u8; vnet::HDR_LEN];
        let buf_len = buf.len();
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)];
            match nix::sys::uio::readv(self.file.as_fd(), &mut iov) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(Read::Empty),
                Err(e) => return Err(e.into()),
            }
        };
        // A read that fills the buffer may have been cut short (tun
        // truncates silently); such a frame is useless.
        if n <= vnet::HDR_LEN || n - vnet::HDR_LEN >= buf_len {
            return Ok(Read::Dropped);
        }
        let len = n - vnet::HDR_LEN;
        let Some(h) = vnet::Hdr::parse(&hdr) else {
            return Ok(Read::Dropped);
        };
        if h.is_gso() {
            // Segmentation computes every checksum itself.
            return Ok(Read::Gso(len, h));
        }
        if h.flags & vnet::F_NEEDS_CSUM != 0
            && !complete_checksum(
                &mut buf[..len],
                h.csum_start as usize,
                h.csum_offset as usize,
            )
        {
            return Ok(Read::Dropped);
        }
        Ok(Read::Frame(len))
    }
}

impl Backend for Tap {
    fn ifname(&self) -> &str {
        &self.ctl.name
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    fn read_batch(&self, batch: &mut RxBatch) -> io::Result<usize> {
        let start = batch.len();
        while let Some(buf) = batch.next_buf() {
            match self.read_one(buf) {
                Ok(Read::Empty) => break,
                Ok(Read::Dropped) => continue,
                Ok(Read::Frame(len)) => batch.commit(len),
                Ok(Read::Gso(len, h)) => {
                    self.gso_frames.fetch_add(1, Ordering::Relaxed);
                    batch.commit_with(len, h);
                }
                // Hand over what was read; the error comes back next call.
                Err(_) if batch.len() > start => break,
                Err(e) => return Err(e),
            }
        }
        Ok(batch.len() - start)
    }

    fn write_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut written = 0;
        for frame in frames {
            // The header goes in its own iovec so the frame is not copied.
            let iov = [IoSlice::new(&ZERO_VNET_HDR), IoSlice::new(frame)];
            loop {
                match nix::sys::uio::writev(self.file.as_fd(), &iov) {
                    Ok(_) => written += 1,
                    Err(nix::errno::Errno::EINTR) => continue,
                    // The queue is full: the caller counts the rest as drops.
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => {
                        return Ok(written)
                    }
                    // This frame is refused (too large, interface down):
                    // skip it, the next one may pass.
                    Err(e) => {
                        tracing::debug!(ifname = self.ctl.name, "frame not written: {e}");
                    }
                }
                break;
            }
        }
        Ok(written)
    }

    fn write_gso(&self, hdr: &vnet::Hdr, parts: &[IoSlice<'_>]) -> io::Result<bool> {
        let h = hdr.emit();
        let mut iov = Vec::with_capacity(parts.len() + 1);
        iov.push(IoSlice::new(&h));
        iov.extend_from_slice(parts);
        loop {
            match nix::sys::uio::writev(self.file.as_fd(), &iov) {
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn mtu(&self) -> io::Result<u32> {
        self.ctl.mtu()
    }

    fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        self.ctl.set_mtu(mtu)
    }

    fn link_addr(&self) -> [u8; 6] {
        self.link_addr
    }

    fn caps(&self) -> Caps {
        Caps {
            csum_offload: self.offloads & libc::TUN_F_CSUM != 0,
            segmentation_offload: self.offloads
                & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_USO4 | libc::TUN_F_USO6)
                != 0,
            // A TAP takes GSO frames written to it whatever its offloads.
            gso_write: true,
        }
    }
}

/// Explains a TUNSETIFF failure in terms of the interface name.
fn tunsetiff_error(e: io::Error, name: &str) -> io::Error {
    let msg = match e.raw_os_error() {
        // IFF_TUN_EXCL: the name is taken, whatever the kind of interface.
        Some(libc::EBUSY | libc::EEXIST) => {
            format!("interface {name} already exists; choose another name or delete it")
        }
        Some(libc::EPERM) => {
            format!("not permitted to create TAP interface {name} (needs CAP_NET_ADMIN)")
        }
        Some(libc::EINVAL) => format!("cannot create TAP interface {name}: invalid name"),
        _ => format!("cannot create TAP interface {name}: {e}"),
    };
    let kind = match e.raw_os_error() {
        Some(libc::EBUSY | libc::EEXIST) => io::ErrorKind::AlreadyExists,
        _ => e.kind(),
    };
    io::Error::new(kind, msg)
}

/// Prefixes an OS error with what was being done (the kind is kept).
pub(super) fn with_context(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// `name` as the kernel wants it in `ifr_name`: at most `IFNAMSIZ - 1`
/// bytes, NUL-terminated.
pub(super) fn ifname_bytes(
    name: &str,
    allow_empty: bool,
) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}: {why}"),
        )
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(invalid(&format!(
            "longer than {} bytes",
            libc::IFNAMSIZ - 1
        )));
    }
    if name.is_empty() && !allow_empty {
        return Err(invalid("empty"));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(invalid("contains NUL, '/' or white space"));
    }
    let mut out = [0 as libc::c_char; libc::IFNAMSIZ];
    for (d, s) in out.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(out)
}

/// The name held in an `ifr_name` field.
fn name_from_ifreq(raw: &[libc::c_char; libc::IFNAMSIZ]) -> String {
    let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// An interface addressed by name through the `SIOC[GS]IF*` ioctls, on an
/// `AF_INET` datagram socket (the conventional handle for them; it is
/// created in, and so addresses, the caller's network namespace).
pub(super) struct IfCtl {
    sock: OwnedFd,
    name: String,
    raw_name: [libc::c_char; libc::IFNAMSIZ],
}

impl IfCtl {
    /// A handle on interface `name` (which need not exist yet).
    pub(super) fn new(name: &str) -> io::Result<IfCtl> {
        let raw_name = ifname_bytes(name, false)?;
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(with_context(e, "cannot open a control socket"));
        }
        // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(IfCtl {
            sock,
            name: name.to_owned(),
            raw_name,
        })
    }

    /// The interface name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn request(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_name = self.raw_name;
        ifr
    }

    /// Runs one `SIOC*IF*` ioctl on `ifr`; errors name the interface.
    fn ioctl(&self, req: libc::c_ulong, what: &str, ifr: &mut libc::ifreq) -> io::Result<()> {
        // SAFETY: every request passed here reads and/or writes exactly one
        // `struct ifreq`, which `ifr` points to; the socket is open.
        if unsafe { libc::ioctl(self.sock.as_raw_fd(), req as _, ifr as *mut libc::ifreq) } < 0 {
            let e = io::Error::last_os_error();
            return Err(with_context(e, format!("{what} on {}", self.name)));
        }
        Ok(())
    }

    /// The interface MTU.
    pub(super) fn mtu(&self) -> io::Result<u32> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFMTU, "SIOCGIFMTU", &mut ifr)?;
        // SAFETY: SIOCGIFMTU filled in the `ifru_mtu` member.
        Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
    }

    /// Sets the interface MTU (the kernel checks the device's range).
    pub(super) fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let mtu = libc::c_int::try_from(mtu).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {mtu} out of range for {}", self.name),
            )
        })?;
        let mut ifr = self.request();
        ifr.ifr_ifru.ifru_mtu = mtu;
        self.ioctl(libc::SIOCSIFMTU, "SIOCSIFMTU", &mut ifr)
    }

    /// Brings the interface up (keeping its other flags).
    pub(super) fn set_up(&self) -> io::Result<()> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)?;
        // SAFETY: SIOCGIFFLAGS filled in the `ifru_flags` member.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, "SIOCSIFFLAGS", &mut ifr)
    }

    /// The link-layer type (`ARPHRD_*`) and the first six bytes of the
    /// hardware address.
    pub(super) fn hwaddr(&self) -> io::Result<(u16, [u8; 6])> {
        let mut ifr = self.request();
        self.ioctl(libc::SIOCGIFHWADDR, "SIOCGIFHWADDR", &mut ifr)?;
        // SAFETY: SIOCGIFHWADDR filled in the `ifru_hwaddr` member.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
            *d = *s as u8;
        }
        Ok((sa.sa_family, mac))
    }
}

/// Network namespaces for tests: each test runs its body in a thread of its
/// own that has left the host's namespace, so interfaces it creates are
/// invisible elsewhere and vanish with the thread.
#[cfg(test)]
pub(crate) mod testnet {
    use std::process::Command;

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

    /// Runs `body` in a fresh network namespace, on a thread of its own.
    /// Without root it prints a skip line and returns at once.
    pub fn run(test: &str, body: impl FnOnce(&Netns) + Send + 'static) {
        if !nix::unistd::geteuid().is_root() {
            println!("skipping {test}: needs root (network namespaces, TAP, AF_PACKET)");
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

    /// Polls `fd` for input for at most `ms` milliseconds.
    pub fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: u16) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
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
}

#[cfg(test)]
mod tests {
    use super::testnet::{self, arp_reply, arp_request, readable, run};
    use super::*;
    use crate::dataplane::backend::{BATCH, MAX_FRAME};
    use crate::dataplane::offload::segment::Plan;
    use std::time::{Duration, Instant};

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    #[test]
    fn refuses_a_name_too_long() {
        // No privilege needed: the name is checked before anything is opened.
        let e = Tap::create("a-name-too-long-x", 1500, true)
            .err()
            .expect("must fail");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains("a-name-too-long-x") && msg.contains("15"),
            "{msg}"
        );
    }

    #[test]
    fn creates_configures_answers_and_vanishes() {
        run("creates_configures_answers_and_vanishes", |ns| {
            let tap = Tap::create("ovtap0", 1400, true).unwrap();
            assert_eq!(tap.ifname(), "ovtap0");
            assert_eq!(
                tap.caps(),
                Caps {
                    csum_offload: true,
                    segmentation_offload: true,
                    gso_write: true,
                }
            );
            // Without the tso offload, frames come whole, checksums done.
            let plain = Tap::create("ovtap9", 1400, false).unwrap();
            assert_eq!(
                plain.caps(),
                Caps {
                    csum_offload: false,
                    segmentation_offload: false,
                    gso_write: true,
                }
            );
            drop(plain);

            // Exists, with that MTU, up, with the address SIOCGIFHWADDR gives.
            let ctl = IfCtl::new("ovtap0").unwrap();
            assert_eq!(ctl.mtu().unwrap(), 1400);
            assert_eq!(tap.mtu().unwrap(), 1400);
            let mut ifr = ctl.request();
            ctl.ioctl(libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", &mut ifr)
                .unwrap();
            // SAFETY: SIOCGIFFLAGS filled in the flags.
            let flags = unsafe { ifr.ifr_ifru.ifru_flags };
            assert_ne!(flags & libc::IFF_UP as libc::c_short, 0);
            let (family, mac) = ctl.hwaddr().unwrap();
            assert_eq!(family, libc::ARPHRD_ETHER);
            assert_eq!(tap.link_addr(), mac);
            assert_ne!(mac, [0; 6]);

            // The kernel answers an ARP request for its address; the reply
            // comes back as a bare Ethernet frame.
            ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ovtap0"]);
            ns.wait_up("ovtap0");
            let req = arp_request(OUR_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            assert_eq!(tap.write_batch(&[&req]).unwrap(), 1);
            let mut batch = RxBatch::new(BATCH, MAX_FRAME);
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut reply = None;
            while reply.is_none() && Instant::now() < deadline {
                if !readable(tap.as_fd(), 200) {
                    continue;
                }
                batch.clear();
                let n = tap.read_batch(&mut batch).unwrap();
                assert_eq!(n, batch.len());
                reply = batch.frames().find_map(arp_reply);
            }
            let (sha, spa, dst) = reply.expect("no ARP reply within 3 s");
            assert_eq!((sha, spa, dst), (mac, [192, 0, 2, 1], OUR_MAC));

            tap.set_mtu(1280).unwrap();
            assert_eq!(ctl.mtu().unwrap(), 1280);
            assert_eq!(tap.mtu().unwrap(), 1280);

            // Not persistent: gone once the descriptor closes. A child that
            // another test thread is forking holds a copy of the descriptor
            // until it execs, so allow a moment.
            assert!(nix::net::if_::if_nametoindex("ovtap0").is_ok());
            drop(tap);
            let deadline = Instant::now() + Duration::from_secs(2);
            while nix::net::if_::if_nametoindex("ovtap0").is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "ovtap0 still exists 2 s after drop"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        });
    }

    #[test]
    fn refuses_a_name_in_use() {
        run("refuses_a_name_in_use", |ns| {
            ns.ip(&[
                "link", "add", "ovdummy", "type", "veth", "peer", "name", "ovdummy1",
            ]);
            let e = Tap::create("ovdummy", 1500, true).err().expect("must fail");
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
            assert!(e.to_string().contains("ovdummy"), "{e}");
            let _tap = Tap::create("ovtap1", 1500, true).unwrap();
            let e = Tap::create("ovtap1", 1500, true).err().expect("must fail");
            assert!(e.to_string().contains("ovtap1 already exists"), "{e}");
        });
    }

    /// A `UDP_SEGMENT` send of `len` bytes in `mss`-byte datagrams out of
    /// the TAP: the host stack hands it over as one GSO frame (the TAP has
    /// segmentation offload on), `read_batch` returns it whole with its
    /// header, and its segments are the datagrams, MTU-sized, with valid
    /// checksums.
    #[test]
    fn segments_what_the_host_stack_sends_as_one_gso_frame() {
        run(
            "segments_what_the_host_stack_sends_as_one_gso_frame",
            |ns| {
                let tap = Tap::create("ovtap3", 1500, true).unwrap();
                assert!(tap.caps().csum_offload && tap.caps().segmentation_offload);
                ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ovtap3"]);
                ns.ip(&[
                    "neigh",
                    "add",
                    "192.0.2.2",
                    "lladdr",
                    "02:00:00:00:00:02",
                    "dev",
                    "ovtap3",
                    "nud",
                    "permanent",
                ]);
                ns.wait_up("ovtap3");
                let (len, mss) = (12_000usize, 1400usize);
                let sock = std::net::UdpSocket::bind("192.0.2.1:0").unwrap();
                let one = mss as libc::c_int;
                // SAFETY: sets one int option on an open socket.
                let r = unsafe {
                    libc::setsockopt(
                        sock.as_raw_fd(),
                        libc::SOL_UDP,
                        libc::UDP_SEGMENT,
                        (&one as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                assert_eq!(r, 0, "UDP_SEGMENT: {}", io::Error::last_os_error());
                let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                assert_eq!(sock.send_to(&payload, "192.0.2.2:9").unwrap(), len);

                let is_ours = |f: &[u8]| {
                    f.len() > 42 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0, 9]
                };
                let mut batch = RxBatch::new(3, MAX_FRAME);
                let mut data = Vec::new();
                let mut datagrams = 0;
                let deadline = Instant::now() + Duration::from_secs(3);
                while data.len() < len && Instant::now() < deadline {
                    if !readable(tap.as_fd(), 100) {
                        continue;
                    }
                    batch.clear();
                    tap.read_batch(&mut batch).unwrap();
                    for i in 0..batch.len() {
                        let (src, h) = (batch.frame(i), batch.hdr(i));
                        if !is_ours(src) {
                            continue;
                        }
                        assert_eq!(h.gso_type, vnet::GSO_UDP_L4);
                        let plan = Plan::new(src, h).unwrap();
                        for k in 0..plan.count() {
                            let mut seg = vec![0u8; 2048];
                            let n = plan.segment(src, k, None, &mut seg).unwrap();
                            let f = &seg[..n];
                            assert!(testnet::ipv4_ok(f, 14), "IPv4 header checksum");
                            assert!(testnet::l4_ok(f, 14), "UDP checksum");
                            assert!(f.len() <= 14 + 1500, "a frame of {} bytes", f.len());
                            data.extend_from_slice(&f[42..]);
                            datagrams += 1;
                        }
                    }
                }
                assert_eq!(data, payload);
                assert_eq!(datagrams, len.div_ceil(mss));
                assert_eq!(
                    tap.gso_frames(),
                    1,
                    "the host stack did not hand over a GSO frame"
                );
            },
        );
    }

    #[test]
    fn skips_frames_it_cannot_write() {
        run("skips_frames_it_cannot_write", |_| {
            let tap = Tap::create("ovtap2", 1500, true).unwrap();
            let req = arp_request(OUR_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            // A frame shorter than an Ethernet header is refused (EINVAL)
            // and skipped; the one after it still goes.
            let n = tap.write_batch(&[&req[..4], &req]).unwrap();
            assert_eq!(n, 1);
        });
    }
}
