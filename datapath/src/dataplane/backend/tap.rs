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
use crate::sys::{
    ifctl::{ifname_bytes, name_from_ifreq, with_context, IfCtl},
    tun,
};
use std::{
    fs::{File, OpenOptions},
    io::{self, IoSlice, IoSliceMut},
    os::{
        fd::{AsFd, BorrowedFd},
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
    /// host stack may hand over super-frames with partial checksums; with
    /// `group`, the interface joins that interface group (so that it can be
    /// deleted with the others in one batch).
    ///
    /// `name` is at most 15 bytes; an empty name lets the kernel choose one
    /// (`tapN`, see [`Backend::ifname`]). Fails if an interface of that name
    /// already exists, whatever its kind.
    pub fn create(name: &str, mtu: u32, tso: bool, group: Option<u32>) -> io::Result<Tap> {
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
        tun::set_iff(file.as_fd(), &mut ifr).map_err(|e| tunsetiff_error(e, name))?;
        // The kernel writes back the name it used (it fills in `tap%d`).
        let ifname = name_from_ifreq(&ifr.ifr_name);

        tun::set_vnet_hdr_len(file.as_fd(), vnet::HDR_LEN as libc::c_int)
            .map_err(|e| with_context(e, format!("TUNSETVNETHDRSZ on {ifname}")))?;
        let set_offload =
            |flags: libc::c_uint| tun::set_offload(file.as_fd(), flags).map(|()| flags);
        // A kernel without UDP segmentation refuses the whole set (EINVAL).
        let offloads = if tso {
            set_offload(OFFLOADS | OFFLOADS_USO)
                .or_else(|_| set_offload(OFFLOADS))
                .map_err(|e| with_context(e, format!("TUNSETOFFLOAD on {ifname}")))?
        } else {
            0
        };

        let ctl = IfCtl::new(&ifname)?;
        if let Some(g) = group {
            crate::sys::rtnl::set_group(ctl.index()?, g)
                .map_err(|e| with_context(e, format!("interface group {g} for {ifname}")))?;
        }
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
        self.ctl.name()
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
                        tracing::debug!(ifname = self.ctl.name(), "frame not written: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::backend::{BATCH, MAX_FRAME};
    use crate::dataplane::offload::segment::Plan;
    use crate::sys::testnet::{self, arp_reply, arp_request, readable, run};
    use nix::sys::socket::{setsockopt, sockopt};
    use std::time::{Duration, Instant};

    const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    #[test]
    fn refuses_a_name_too_long() {
        // No privilege needed: the name is checked before anything is opened.
        let e = Tap::create("a-name-too-long-x", 1500, true, None)
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
            let tap = Tap::create("ovtap0", 1400, true, None).unwrap();
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
            let plain = Tap::create("ovtap9", 1400, false, None).unwrap();
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
            let e = Tap::create("ovdummy", 1500, true, None)
                .err()
                .expect("must fail");
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
            assert!(e.to_string().contains("ovdummy"), "{e}");
            let _tap = Tap::create("ovtap1", 1500, true, None).unwrap();
            let e = Tap::create("ovtap1", 1500, true, None)
                .err()
                .expect("must fail");
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
                let tap = Tap::create("ovtap3", 1500, true, None).unwrap();
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
                setsockopt(&sock, sockopt::UdpGsoSegment, &(mss as libc::c_int))
                    .expect("UDP_SEGMENT");
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
            let tap = Tap::create("ovtap2", 1500, true, None).unwrap();
            let req = arp_request(OUR_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            // A frame shorter than an Ethernet header is refused (EINVAL)
            // and skipped; the one after it still goes.
            let n = tap.write_batch(&[&req[..4], &req]).unwrap();
            assert_eq!(n, 1);
        });
    }
}
