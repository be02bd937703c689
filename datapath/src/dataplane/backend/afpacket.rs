//! The `AF_PACKET` backend: a packet socket bound to an existing interface.
//!
//! # How frames come in
//!
//! The socket is promiscuous on one interface (a veth end, a bridge port)
//! and ignores frames the host sends out of it (`PACKET_IGNORE_OUTGOING`,
//! and `PACKET_OUTGOING` is skipped again in case the kernel lacks the
//! option): frames this backend writes are never read back.
//!
//! Frames arrive in a TPACKET_V3 ring shared with the kernel: blocks of
//! variable-length frames, handed to us when full or after
//! `RETIRE_TOV_MS`, handed back with a volatile write of
//! `TP_STATUS_KERNEL`. Where the ring cannot be set up the socket is read
//! with `recvmsg`, one frame per call.
//!
//! # Checksums and segmentation
//!
//! A packet socket sees frames as the kernel holds them, not as a NIC
//! would put them on a wire. Two consequences on a veth with its default
//! offloads:
//!
//! * a frame may carry a partial checksum (`CHECKSUM_PARTIAL`: only the
//!   pseudo-header sum is in the L4 checksum field);
//! * a TCP stream or a `UDP_SEGMENT` send may arrive as one GSO frame of up
//!   to 64 KiB, to be cut into MTU-sized segments.
//!
//! `PACKET_VNET_HDR` makes the kernel describe both in a virtio-net header
//! in front of each frame. The header and a V3 ring go together: the
//! kernel accepts `PACKET_VNET_HDR` set *before* `PACKET_RX_RING` (after,
//! it refuses with `EBUSY`) and writes the header in the ten bytes before
//! `tp_mac` (verified on Linux 6.18). Partial checksums are completed from
//! `csum_start`/`csum_offset` with [`complete_checksum`]; GSO frames are
//! handed over whole with their header, and the transmit path segments
//! them as it sends them (one UDP GSO send each where it can), as it does
//! for the TAP's. Should a kernel flag a partial checksum
//! (`TP_STATUS_CSUMNOTREADY`) without saying where in the header, the frame
//! is parsed and its TCP/UDP checksum computed in full (module `l4`).
//!
//! VLAN tags the kernel keeps out of band (veth takes VLAN offload) are
//! put back into the frame, so frames read are what was sent.
//!
//! # How frames go out
//!
//! `sendmmsg`, each message made of two iovecs: a zeroed virtio-net header
//! (the socket has `PACKET_VNET_HDR`, so the kernel expects one in front of
//! every frame) and the frame, not copied. TCP segments the receive side
//! merged go as one GSO frame with a GSO header and a partial checksum
//! ([`Backend::write_gso`]); the kernel segments it for the interface, or
//! a veth passes it whole. `PACKET_QDISC_BYPASS` is not set: frames sent
//! with it are invisible to other packet sockets (captures).

use super::{Backend, Caps, RxBatch, BATCH, MAX_FRAME};
use crate::dataplane::offload::{
    csum::complete_checksum, layout as l4, segment::copy_tagged, vnet,
};
use crate::sys::{
    ifctl::{ifname_bytes, with_context, IfCtl},
    socket,
};
use nix::sys::socket::{self as nixsock, sockopt};
use std::{
    io,
    mem::{offset_of, size_of},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    ptr::{self, NonNull},
    sync::{
        atomic::{fence, Ordering},
        Mutex,
    },
};

/// Size of one ring block. A V3 block holds frames of any size up to the
/// block, so a 64 KiB GSO frame fits, as do jumbo frames.
const BLOCK_SIZE: u32 = 256 * 1024;
/// Number of ring blocks (2 MiB of ring).
const BLOCK_NR: u32 = 8;
/// Nominal frame size: V3 only uses it to check the request.
const FRAME_SIZE: u32 = 2048;
/// How long a block that is not full waits before the kernel hands it over
/// anyway; small, since a frame is invisible until then.
const RETIRE_TOV_MS: u32 = 1;

/// `tpacket3_hdr` is followed by a `sockaddr_ll`, at this offset.
const TPACKET3_SLL_OFFSET: usize = (size_of::<libc::tpacket3_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

static ZERO_VNET_HDR: [u8; vnet::HDR_LEN] = [0; vnet::HDR_LEN];

/// A promiscuous packet socket on an existing Ethernet interface.
pub struct AfPacket {
    /// Receive state; dropped (ring unmapped) before the socket closes.
    rx: Mutex<Rx>,
    sock: OwnedFd,
    ctl: IfCtl,
    link_addr: [u8; 6],
    ring: bool,
}

impl AfPacket {
    /// Opens a packet socket on the existing interface `ifname`.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] if there is no such interface
    /// and [`io::ErrorKind::InvalidInput`] if it is not Ethernet.
    pub fn open(ifname: &str) -> io::Result<AfPacket> {
        Self::open_with(ifname, true)
    }

    /// Whether frames are received through a TPACKET_V3 ring (rather than
    /// one `recvmsg` per frame).
    pub fn has_rx_ring(&self) -> bool {
        self.ring
    }

    fn open_with(ifname: &str, try_ring: bool) -> io::Result<AfPacket> {
        ifname_bytes(ifname, false)?;
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|_| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named {ifname}"),
            )
        })?;
        let ctl = IfCtl::new(ifname)?;
        let (hatype, link_addr) = ctl.hwaddr()?;
        if hatype != libc::ARPHRD_ETHER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {ifname} is not an Ethernet interface (type {hatype})"),
            ));
        }
        let ifindex = ifindex as libc::c_int;
        let (sock, ring) = if try_ring {
            match open_socket(ifindex, true) {
                Ok(s) => Ok(s),
                Err(e) => {
                    tracing::info!(
                        ifname,
                        "no TPACKET_V3 receive ring ({e}); reading one frame per call"
                    );
                    open_socket(ifindex, false)
                }
            }
        } else {
            open_socket(ifindex, false)
        }
        .map_err(|e| with_context(e, format!("packet socket on {ifname}")))?;
        let has_ring = ring.is_some();
        Ok(AfPacket {
            rx: Mutex::new(Rx {
                stash: if ring.is_some() {
                    Vec::new()
                } else {
                    vec![0; MAX_FRAME]
                },
                ring,
                stashed: None,
            }),
            sock,
            ctl,
            link_addr,
            ring: has_ring,
        })
    }

    /// Reads from the ring until the batch is full or no block is ready.
    fn read_ring(ring: &mut Ring, batch: &mut RxBatch) {
        while batch.len() < batch.capacity() {
            if ring.left.is_none() && !ring.open_block() {
                return;
            }
            let left = ring.left.unwrap_or(0);
            if left == 0 {
                ring.release_block();
                continue;
            }
            let block = ring.block();
            let Some(f) = RingFrame::parse(block, ring.offset) else {
                // A header that does not fit the block: give the block back
                // rather than read garbage.
                ring.release_block();
                continue;
            };
            if f.wanted {
                let frame = &block[f.mac..f.mac + f.len];
                let vnet_hdr =
                    vnet::Hdr::parse(&block[f.mac - vnet::HDR_LEN..f.mac]).unwrap_or_default();
                let meta = Meta {
                    vnet: vnet_hdr,
                    vlan: f.vlan,
                    csum_not_ready: f.csum_not_ready,
                };
                if !emit(frame, &meta, batch) {
                    return; // The batch is full; resume at this frame.
                }
            }
            ring.left = Some(left - 1);
            if f.next == 0 {
                ring.left = Some(0);
            }
            ring.offset += f.next;
        }
    }

    /// Reads with `recvmsg` until the batch is full or nothing is waiting.
    fn read_plain(&self, rx: &mut Rx, batch: &mut RxBatch) -> io::Result<()> {
        while batch.len() < batch.capacity() {
            if let Some((meta, len)) = rx.stashed {
                if !emit(&rx.stash[..len], &meta, batch) {
                    return Ok(());
                }
                rx.stashed = None;
                continue;
            }
            match recv_one(self.sock.as_fd(), &mut rx.stash) {
                Ok(Some(got)) => rx.stashed = got,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Backend for AfPacket {
    fn ifname(&self) -> &str {
        self.ctl.name()
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn read_batch(&self, batch: &mut RxBatch) -> io::Result<usize> {
        let start = batch.len();
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let rx = &mut *rx;
        match rx.ring.as_mut() {
            Some(ring) => Self::read_ring(ring, batch),
            None => {
                if let Err(e) = self.read_plain(rx, batch) {
                    if batch.len() == start {
                        return Err(e);
                    }
                }
            }
        }
        let n = batch.len() - start;
        if n == 0 && rx.ring.is_some() {
            // The ring never reports errors; a socket that polled readable
            // with nothing in the ring may carry one (ENETDOWN when the
            // interface went away), which the caller should see rather than
            // spin on.
            let err =
                nix::sys::socket::getsockopt(&self.sock, nix::sys::socket::sockopt::SocketError)?;
            if err != 0 {
                return Err(with_context(
                    io::Error::from_raw_os_error(err),
                    format!("packet socket on {}", self.ctl.name()),
                ));
            }
        }
        Ok(n)
    }

    fn has_pending(&self) -> bool {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        // A frame cut short by a full batch, or a ring block opened and not
        // yet read to its end: poll would not report either.
        rx.stashed.is_some()
            || rx
                .ring
                .as_ref()
                .is_some_and(|r| r.left.is_some_and(|l| l > 0))
    }

    fn write_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut written = 0;
        for chunk in frames.chunks(BATCH) {
            let mut iovs = [[libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            }; 2]; BATCH];
            // SAFETY: mmsghdr is plain data; all-zero is a valid value.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, frame) in chunk.iter().enumerate() {
                // The kernel only reads through these pointers (sendmmsg).
                iovs[i] = [
                    libc::iovec {
                        iov_base: ZERO_VNET_HDR.as_ptr() as *mut libc::c_void,
                        iov_len: vnet::HDR_LEN,
                    },
                    libc::iovec {
                        iov_base: frame.as_ptr() as *mut libc::c_void,
                        iov_len: frame.len(),
                    },
                ];
                msgs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
                msgs[i].msg_hdr.msg_iovlen = 2;
            }
            let mut i = 0;
            while i < chunk.len() {
                let left = &mut msgs[i..chunk.len()];
                // SAFETY: `left` is a valid array of `left.len()` messages
                // whose iovecs point into `iovs`, ZERO_VNET_HDR and the
                // frames, all alive for the call; no address (bound socket).
                let r = unsafe {
                    libc::sendmmsg(
                        self.sock.as_raw_fd(),
                        left.as_mut_ptr(),
                        left.len() as libc::c_uint,
                        0,
                    )
                };
                if r > 0 {
                    written += r as usize;
                    i += r as usize;
                    continue;
                }
                if r == 0 {
                    break; // Not expected with messages to send; do not spin.
                }
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    // Queue full: the caller counts the rest as drops.
                    Some(libc::EAGAIN | libc::ENOBUFS) => return Ok(written),
                    // This frame is refused (EMSGSIZE: larger than the MTU;
                    // EINVAL: shorter than a header): skip it.
                    _ => {
                        tracing::debug!(ifname = self.ctl.name(), "frame not sent: {e}");
                        i += 1;
                    }
                }
            }
        }
        Ok(written)
    }

    fn mtu(&self) -> io::Result<u32> {
        self.ctl.mtu()
    }

    /// Sets the MTU of the interface the socket is bound to. The hosts
    /// behind it (a veth's peer end, a bridge's other ports) keep theirs:
    /// matching them is the operator's business.
    fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        self.ctl.set_mtu(mtu)
    }

    fn link_addr(&self) -> [u8; 6] {
        self.link_addr
    }

    /// Partial checksums are completed before [`Backend::read_batch`]
    /// returns frames; GSO frames come whole, and GSO frames can be sent
    /// (the kernel segments them for the interface if it must).
    fn caps(&self) -> Caps {
        Caps {
            gso_write: true,
            ..Caps::default()
        }
    }

    fn write_gso(&self, hdr: &vnet::Hdr, parts: &[std::io::IoSlice<'_>]) -> io::Result<bool> {
        let h = hdr.emit();
        let mut iov = Vec::with_capacity(parts.len() + 1);
        iov.push(std::io::IoSlice::new(&h));
        iov.extend_from_slice(parts);
        loop {
            match nix::sys::socket::sendmsg::<()>(
                self.sock.as_raw_fd(),
                &iov,
                &[],
                nix::sys::socket::MsgFlags::empty(),
                None,
            ) {
                Ok(_) => return Ok(true),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ENOBUFS) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The socket, configured and bound, with its ring if `ring`.
fn open_socket(ifindex: libc::c_int, ring: bool) -> io::Result<(OwnedFd, Option<Ring>)> {
    // Protocol 0: the socket receives nothing until bind() names both the
    // protocol and the interface, so no frame of another interface slips
    // into the ring meanwhile.
    let sock = socket::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
    let s = sock.as_fd();
    if let Err(e) = socket::setsockopt(s, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32) {
        // Before Linux 4.20: PACKET_OUTGOING frames are skipped when read.
        tracing::debug!("PACKET_IGNORE_OUTGOING refused: {e}");
    }
    // Before the ring: the kernel refuses it once a ring exists.
    socket::setsockopt(s, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &1i32)
        .map_err(|e| with_context(e, "PACKET_VNET_HDR"))?;
    let ring = if ring {
        Some(Ring::new(s)?)
    } else {
        // Out-of-band VLAN tags and checksum status, as the ring has them.
        socket::setsockopt(s, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1i32)
            .map_err(|e| with_context(e, "PACKET_AUXDATA"))?;
        // As much room as the ring would have had: the default (about 200
        // KiB) overflows after some 90 MTU-sized frames. Best effort: the
        // forced size needs CAP_NET_ADMIN, the other is capped at rmem_max.
        if nixsock::setsockopt(&s, sockopt::RcvBufForce, &Ring::LEN).is_err() {
            if let Err(e) = nixsock::setsockopt(&s, sockopt::RcvBuf, &Ring::LEN) {
                tracing::debug!("SO_RCVBUF refused: {e}");
            }
        }
        None
    };
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex,
        mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    socket::setsockopt(s, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
        .map_err(|e| with_context(e, "PACKET_ADD_MEMBERSHIP (promiscuous)"))?;
    socket::bind_packet(s, ifindex).map_err(|e| with_context(e, "bind"))?;
    Ok((sock, ring))
}

/// Receives one frame into `stash` with `recvmsg`. `Ok(None)`: nothing
/// waiting; `Ok(Some(None))`: a frame to skip.
fn recv_one(fd: BorrowedFd<'_>, stash: &mut [u8]) -> io::Result<Option<Option<(Meta, usize)>>> {
    let mut hdr = [0u8; vnet::HDR_LEN];
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // Room for one PACKET_AUXDATA message, aligned for cmsghdr.
    let mut cbuf = [0u64; 8];
    let mut iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: stash.as_mut_ptr().cast(),
            iov_len: stash.len(),
        },
    ];
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>();
    let n = loop {
        // SAFETY: every pointer in `msg` refers to a live local buffer of
        // the length given alongside it.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            _ => return Err(e),
        }
    };
    if msg.msg_flags & libc::MSG_TRUNC != 0 || n <= vnet::HDR_LEN {
        return Ok(Some(None));
    }
    if sll.sll_pkttype == libc::PACKET_OUTGOING {
        return Ok(Some(None));
    }
    let mut aux: Option<libc::tpacket_auxdata> = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // within `msg_controllen`; the auxdata payload is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let want = libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) as usize;
            if (*c).cmsg_level == libc::SOL_PACKET
                && (*c).cmsg_type == libc::PACKET_AUXDATA
                && (*c).cmsg_len >= want
            {
                aux = Some(ptr::read_unaligned(libc::CMSG_DATA(c).cast()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let (vlan, csum_not_ready) = match aux {
        Some(a) => (
            vlan_tag(a.tp_status, a.tp_vlan_tci as u32, a.tp_vlan_tpid),
            a.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0,
        ),
        None => (None, false),
    };
    let meta = Meta {
        vnet: vnet::Hdr::parse(&hdr).unwrap_or_default(),
        vlan,
        csum_not_ready,
    };
    Ok(Some(Some((meta, n - vnet::HDR_LEN))))
}

/// The 802.1Q tag the kernel kept out of band, as it goes into the frame.
fn vlan_tag(status: u32, tci: u32, tpid: u16) -> Option<[u8; 4]> {
    if status & libc::TP_STATUS_VLAN_VALID == 0 {
        return None;
    }
    let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 && tpid != 0 {
        tpid
    } else {
        0x8100
    };
    let [a, b] = tpid.to_be_bytes();
    let [c, d] = (tci as u16).to_be_bytes();
    Some([a, b, c, d])
}

/// Receive state, behind the backend's lock.
struct Rx {
    ring: Option<Ring>,
    /// Without a ring: the receive buffer.
    stash: Vec<u8>,
    /// Without a ring: a frame in `stash` not yet (fully) handed over.
    stashed: Option<(Meta, usize)>,
}

/// What the kernel said about a frame besides its bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    vnet: vnet::Hdr,
    /// A VLAN tag to put back after the MAC addresses.
    vlan: Option<[u8; 4]>,
    /// `TP_STATUS_CSUMNOTREADY`: the L4 checksum is partial.
    csum_not_ready: bool,
}

/// Hands the frame `src` to `batch`: completed, with its VLAN tag back in
/// place; a GSO frame whole, with its header (offsets moved past the tag),
/// for the transmit path to segment. Returns false when the batch is full
/// (the frame is kept for the next call); a frame that cannot be made
/// whole is dropped (returns true).
fn emit(src: &[u8], meta: &Meta, batch: &mut RxBatch) -> bool {
    let shift = if meta.vlan.is_some() { 4 } else { 0 };
    if meta.vnet.is_gso() {
        let Some(buf) = batch.next_buf() else {
            return false;
        };
        if let Some(len) = copy_tagged(src, meta.vlan, buf) {
            let hdr = vnet::Hdr {
                csum_start: meta.vnet.csum_start + shift as u16,
                ..meta.vnet
            };
            batch.commit_with(len, hdr);
        }
        return true;
    }
    let Some(buf) = batch.next_buf() else {
        return false;
    };
    let Some(len) = copy_tagged(src, meta.vlan, buf) else {
        return true;
    };
    let frame = &mut buf[..len];
    let whole = if meta.vnet.flags & vnet::F_NEEDS_CSUM != 0 {
        complete_checksum(
            frame,
            meta.vnet.csum_start as usize + shift,
            meta.vnet.csum_offset as usize,
        )
    } else if meta.csum_not_ready {
        l4::fill_checksum(frame)
    } else {
        true
    };
    if whole {
        batch.commit(len);
    }
    true
}

/// One frame's header in a ring block, checked against the block bounds.
struct RingFrame {
    /// Offset of the next frame from this one (0: last).
    next: usize,
    /// The frame's bytes: `block[mac..mac + len]`, with room for the
    /// virtio-net header before `mac`.
    mac: usize,
    len: usize,
    vlan: Option<[u8; 4]>,
    csum_not_ready: bool,
    /// False for frames to skip: outgoing, or cut short by the ring.
    wanted: bool,
}

impl RingFrame {
    fn parse(block: &[u8], off: usize) -> Option<RingFrame> {
        let h = block
            .get(off..off.checked_add(TPACKET3_SLL_OFFSET + size_of::<libc::sockaddr_ll>())?)?;
        let u32_at = |o: usize| u32::from_ne_bytes(h[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_ne_bytes(h[o..o + 2].try_into().unwrap());
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        let next = u32_at(offset_of!(libc::tpacket3_hdr, tp_next_offset)) as usize;
        let snaplen = u32_at(offset_of!(libc::tpacket3_hdr, tp_snaplen)) as usize;
        let len = u32_at(offset_of!(libc::tpacket3_hdr, tp_len)) as usize;
        let status = u32_at(offset_of!(libc::tpacket3_hdr, tp_status));
        let mac = u16_at(offset_of!(libc::tpacket3_hdr, tp_mac)) as usize;
        let tci = u32_at(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci));
        let tpid = u16_at(hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid));
        let pkttype = h[TPACKET3_SLL_OFFSET + offset_of!(libc::sockaddr_ll, sll_pkttype)];
        // The frame, and the virtio-net header before it, inside the block.
        if mac < vnet::HDR_LEN || off + mac + snaplen > block.len() {
            return None;
        }
        Some(RingFrame {
            next,
            mac: off + mac,
            len: snaplen,
            vlan: vlan_tag(status, tci, tpid),
            csum_not_ready: status & libc::TP_STATUS_CSUMNOTREADY != 0,
            wanted: pkttype != libc::PACKET_OUTGOING && snaplen == len,
        })
    }
}

/// A TPACKET_V3 receive ring mapped into our memory.
struct Ring {
    base: NonNull<u8>,
    /// Block the cursor is in.
    block: usize,
    /// Frames left in the current block; `None` until it is opened.
    left: Option<u32>,
    /// Offset of the cursor's frame in the current block.
    offset: usize,
}

// SAFETY: the mapping belongs to the Ring alone (it is unmapped on drop) and
// is only touched through `&mut Ring`, under the backend's lock.
unsafe impl Send for Ring {}

impl Ring {
    const LEN: usize = BLOCK_SIZE as usize * BLOCK_NR as usize;

    /// Sets up and maps the ring on `sock` (which has no ring yet).
    fn new(sock: BorrowedFd<'_>) -> io::Result<Ring> {
        socket::setsockopt(
            sock,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
        )
        .map_err(|e| with_context(e, "PACKET_VERSION TPACKET_V3"))?;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: BLOCK_NR,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_NR,
            tp_retire_blk_tov: RETIRE_TOV_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        socket::setsockopt(sock, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| with_context(e, "PACKET_RX_RING"))?;
        // SAFETY: maps the ring just requested on this socket; the result
        // is checked.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                Self::LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                sock.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(with_context(io::Error::last_os_error(), "mmap of the ring"));
        }
        Ok(Ring {
            base: NonNull::new(p.cast()).expect("mmap returned NULL"),
            block: 0,
            left: None,
            offset: 0,
        })
    }

    /// The status word of the current block's descriptor.
    fn status_ptr(&self) -> *mut u32 {
        // SAFETY: the block lies within the mapping; block descriptors are
        // at the start of each block, aligned (blocks are page-aligned).
        unsafe {
            let bd = self
                .base
                .as_ptr()
                .add(self.block * BLOCK_SIZE as usize)
                .cast::<libc::tpacket_block_desc>();
            ptr::addr_of_mut!((*bd).hdr.bh1.block_status)
        }
    }

    /// Takes the current block if the kernel has handed it over.
    fn open_block(&mut self) -> bool {
        // SAFETY: a valid, aligned u32 in the mapping; volatile since the
        // kernel writes it concurrently.
        let status = unsafe { ptr::read_volatile(self.status_ptr()) };
        if status & libc::TP_STATUS_USER == 0 {
            return false;
        }
        // The block's contents were written before its status.
        fence(Ordering::Acquire);
        self.left = Some(0); // Ours now; `block` may be read.
        let block = self.block();
        let at = |o: usize| u32::from_ne_bytes(block[o..o + 4].try_into().unwrap());
        let bh1 = offset_of!(libc::tpacket_block_desc, hdr);
        let left = at(bh1 + offset_of!(libc::tpacket_hdr_v1, num_pkts));
        let offset = at(bh1 + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt));
        self.left = Some(left);
        self.offset = offset as usize;
        true
    }

    /// The current block, which we own (its status is `TP_STATUS_USER`).
    fn block(&self) -> &[u8] {
        assert!(
            self.left.is_some(),
            "ring block read while the kernel owns it"
        );
        // SAFETY: the block lies within the mapping. `left` is `Some` only
        // between seeing `TP_STATUS_USER` (`open_block`) and handing the
        // block back (`release_block`, which needs `&mut self`, so this
        // borrow has ended by then); meanwhile the kernel does not write it.
        unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(self.block * BLOCK_SIZE as usize),
                BLOCK_SIZE as usize,
            )
        }
    }

    /// Hands the current block back to the kernel and moves to the next.
    fn release_block(&mut self) {
        // Our reads of the block happen before the kernel may refill it.
        fence(Ordering::Release);
        // SAFETY: a valid, aligned u32 in the mapping; volatile so the write
        // is not elided or reordered by the compiler.
        unsafe { ptr::write_volatile(self.status_ptr(), libc::TP_STATUS_KERNEL) };
        self.block = (self.block + 1) % BLOCK_NR as usize;
        self.left = None;
        self.offset = 0;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `Ring::new`; nothing
        // borrows it any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), Self::LEN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::offload::csum::{fold, ones_sum};
    use crate::dataplane::offload::segment::Plan;
    use crate::sys::testnet::{arp_reply, arp_request, ipv4_ok, l4_ok, readable, run, Netns};
    use std::{
        net::UdpSocket,
        time::{Duration, Instant},
    };

    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    /// An Ethernet/IPv4 or IPv6 frame carrying a TCP or UDP segment with
    /// `payload` bytes (a counting pattern); checksum fields left zero.
    fn frame(v6: bool, proto: u8, payload: usize) -> Vec<u8> {
        let l4h = if proto == l4::TCP { 20 } else { 8 };
        let l3h = if v6 { 40 } else { 20 };
        let mut f = vec![0u8; 14 + l3h + l4h + payload];
        f[..6].copy_from_slice(&PEER_MAC);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        let ip = &mut f[14..];
        if v6 {
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&((l4h + payload) as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24]
                .copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip[24..40]
                .copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + l4h + payload) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&7u16.to_be_bytes());
            ip[6] = 0x40; // DF
            ip[8] = 64;
            ip[9] = proto;
            ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
            ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        }
        f[12..14].copy_from_slice(&if v6 { 0x86ddu16 } else { 0x0800 }.to_be_bytes());
        let l4 = 14 + l3h;
        f[l4..l4 + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&9u16.to_be_bytes());
        if proto == l4::TCP {
            f[l4 + 4..l4 + 8].copy_from_slice(&0xffff_fc00u32.to_be_bytes());
            f[l4 + 12] = 5 << 4;
            f[l4 + 13] = 0x80 | 0x10 | 0x08 | 0x01; // CWR ACK PSH FIN
        } else {
            f[l4 + 4..l4 + 6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        }
        for (i, b) in f[l4 + l4h..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn gso_hdr(gso_type: u8, mss: u16, l4: u16, csum_offset: u16) -> vnet::Hdr {
        vnet::Hdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type,
            hdr_len: 0,
            gso_size: mss,
            csum_start: l4,
            csum_offset,
        }
    }

    #[test]
    fn layout_finds_headers_and_refuses_the_rest() {
        let f = frame(false, l4::UDP, 10);
        let l = l4::layout(&f).unwrap();
        assert_eq!(
            (l.v6, l.l3, l.l4, l.end, l.proto),
            (false, 14, 34, f.len(), l4::UDP)
        );
        let f = frame(true, l4::TCP, 10);
        let l = l4::layout(&f).unwrap();
        assert_eq!(
            (l.v6, l.l3, l.l4, l.end, l.proto),
            (true, 14, 54, f.len(), l4::TCP)
        );
        let mut frag = frame(false, l4::UDP, 10);
        frag[14 + 6] = 0x20; // more fragments
        assert!(l4::layout(&frag).is_none());
        let mut arp = frame(false, l4::UDP, 10);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(l4::layout(&arp).is_none());
        let short = frame(false, l4::UDP, 10);
        assert!(l4::layout(&short[..40]).is_none());
    }

    #[test]
    fn fills_a_checksum_ignoring_ethernet_padding() {
        for (v6, proto) in [
            (false, l4::UDP),
            (false, l4::TCP),
            (true, l4::UDP),
            (true, l4::TCP),
        ] {
            let mut f = frame(v6, proto, 5);
            let l3_end = f.len();
            f.extend_from_slice(&[0xaa; 7]); // padding, not part of the packet
            assert!(l4::fill_checksum(&mut f));
            assert!(l4_ok(&f[..l3_end], 14), "v6 {v6} proto {proto}");
        }
    }

    #[test]
    fn segments_a_tcp4_gso_frame() {
        let src = frame(false, l4::TCP, 2500);
        let h = gso_hdr(1, 1000, 34, 16);
        let plan = Plan::new(&src, &h).unwrap();
        assert_eq!(plan.count(), 3);
        let mut out = vec![0u8; 2000];
        let mut payload = Vec::new();
        for i in 0..3 {
            let len = plan.segment(&src, i, None, &mut out).unwrap();
            let s = &out[..len];
            assert_eq!(len, 54 + if i < 2 { 1000 } else { 500 });
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, len - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 7 + i as u16);
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, 0xffff_fc00u32.wrapping_add(1000 * i as u32));
            let flags = s[47];
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
            assert_eq!(flags & 0x09 != 0, i == 2, "FIN/PSH on the last only");
            assert!(ipv4_ok(s, 14) && l4_ok(s, 14), "segment {i}");
            payload.extend_from_slice(&s[54..]);
        }
        assert_eq!(payload, src[54..]);
    }

    #[test]
    fn segments_a_udp6_gso_frame_and_puts_the_vlan_tag_back() {
        let src = frame(true, l4::UDP, 2100);
        let h = gso_hdr(5, 1000, 54, 6);
        let meta = Meta {
            vnet: h,
            vlan: Some([0x81, 0x00, 0x00, 0x2a]),
            csum_not_ready: true,
        };
        // A full batch takes nothing: the frame waits for the next call.
        let mut batch = RxBatch::new(1, 4096);
        batch.commit(0);
        assert!(!emit(&src, &meta, &mut batch));
        // The frame comes whole, tag back in, offsets moved past it.
        let mut batch = RxBatch::new(1, 4096);
        assert!(emit(&src, &meta, &mut batch));
        assert_eq!(batch.frame(0).len(), src.len() + 4);
        assert_eq!(batch.hdr(0).csum_start, 54 + 4);
        let segs = frames_of(&batch);
        assert_eq!(segs.len(), 3);
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s[12..18], [0x81, 0x00, 0x00, 0x2a, 0x86, 0xdd]);
            let udp_len = u16::from_be_bytes([s[62], s[63]]) as usize;
            assert_eq!(udp_len, 8 + if i < 2 { 1000 } else { 100 });
            assert_eq!(s.len(), 18 + 40 + udp_len);
            assert!(l4_ok(s, 18), "segment {i}");
            payload.extend_from_slice(&s[66..]);
        }
        assert_eq!(payload, src[62..]);
    }

    #[test]
    fn refuses_gso_it_does_not_know() {
        let src = frame(false, l4::UDP, 2000);
        // UFO (3) and a TCP type on a UDP packet are dropped, not passed on.
        assert!(Plan::new(&src, &gso_hdr(3, 1000, 34, 6)).is_err());
        assert!(Plan::new(&src, &gso_hdr(1, 1000, 34, 16)).is_err());
        assert!(Plan::new(&src, &gso_hdr(5, 0, 34, 6)).is_err());
        // The backend hands such a frame over as it is, header and all: the
        // transmit path refuses it and counts why.
        let mut batch = RxBatch::new(4, 4096);
        let meta = Meta {
            vnet: gso_hdr(3, 1000, 34, 6),
            ..Meta::default()
        };
        assert!(emit(&src, &meta, &mut batch));
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.hdr(0).gso_type, 3);
    }

    #[test]
    fn completes_a_partial_checksum_after_a_reinserted_tag() {
        let mut src = frame(false, l4::UDP, 33);
        // CHECKSUM_PARTIAL: the pseudo-header sum alone in the field.
        let pseudo = fold(ones_sum(&src[26..34], l4::UDP as u32 + 41));
        src[40..42].copy_from_slice(&pseudo.to_be_bytes());
        let meta = Meta {
            vnet: vnet::Hdr {
                flags: vnet::F_NEEDS_CSUM,
                csum_start: 34,
                csum_offset: 6,
                ..vnet::Hdr::default()
            },
            vlan: Some([0x81, 0x00, 0x00, 0x05]),
            csum_not_ready: true,
        };
        let mut batch = RxBatch::new(1, 2048);
        assert!(emit(&src, &meta, &mut batch));
        let f = batch.frame(0);
        assert_eq!(f.len(), src.len() + 4);
        assert_eq!(f[12..18], [0x81, 0x00, 0x00, 0x05, 0x08, 0x00]);
        assert!(l4_ok(f, 18));
        // Offsets outside the frame: dropped.
        let mut bad = meta;
        bad.vnet.csum_start = 5000;
        let mut batch = RxBatch::new(1, 2048);
        assert!(emit(&src, &bad, &mut batch));
        assert!(batch.is_empty());
    }

    #[test]
    fn parses_ring_frame_headers() {
        let mut block = vec![0u8; 4096];
        let put32 = |b: &mut [u8], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        let off = 64;
        put32(
            &mut block,
            off + offset_of!(libc::tpacket3_hdr, tp_next_offset),
            512,
        );
        put32(
            &mut block,
            off + offset_of!(libc::tpacket3_hdr, tp_snaplen),
            60,
        );
        put32(&mut block, off + offset_of!(libc::tpacket3_hdr, tp_len), 60);
        let status =
            libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_CSUMNOTREADY;
        put32(
            &mut block,
            off + offset_of!(libc::tpacket3_hdr, tp_status),
            status,
        );
        let mac = offset_of!(libc::tpacket3_hdr, tp_mac);
        block[off + mac..off + mac + 2].copy_from_slice(&96u16.to_ne_bytes());
        let hv1 = offset_of!(libc::tpacket3_hdr, hv1);
        put32(
            &mut block,
            off + hv1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci),
            42,
        );
        let f = RingFrame::parse(&block, off).unwrap();
        assert_eq!((f.next, f.mac, f.len), (512, off + 96, 60));
        assert_eq!(f.vlan, Some([0x81, 0x00, 0x00, 42]));
        assert!(f.csum_not_ready && f.wanted);
        // Outgoing, or cut short: skipped.
        let pkttype = off + TPACKET3_SLL_OFFSET + offset_of!(libc::sockaddr_ll, sll_pkttype);
        block[pkttype] = libc::PACKET_OUTGOING;
        assert!(!RingFrame::parse(&block, off).unwrap().wanted);
        block[pkttype] = 0;
        put32(
            &mut block,
            off + offset_of!(libc::tpacket3_hdr, tp_len),
            1500,
        );
        assert!(!RingFrame::parse(&block, off).unwrap().wanted);
        // A frame running past the block: refused.
        put32(
            &mut block,
            off + offset_of!(libc::tpacket3_hdr, tp_snaplen),
            4000,
        );
        assert!(RingFrame::parse(&block, off).is_none());
        assert!(RingFrame::parse(&block, 4090).is_none());
    }

    #[test]
    fn unknown_interface_is_not_found() {
        // Fails before any privileged call, so it runs anywhere.
        let e = AfPacket::open("ovnosuch0").err().expect("must fail");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("ovnosuch0"), "{e}");
    }

    /// A veth pair: `ova` for the backend, `ovb` with 192.0.2.1/24.
    fn veth(ns: &Netns) {
        ns.ip(&["link", "add", "ova", "type", "veth", "peer", "name", "ovb"]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ovb"]);
        ns.ip(&["link", "set", "ova", "up"]);
        ns.ip(&["link", "set", "ovb", "up"]);
        ns.wait_up("ova");
        ns.wait_up("ovb");
    }

    /// Reads frames from `p` until `done` holds of those read, for at most
    /// three seconds. Returns all frames read.
    fn read_until(p: &AfPacket, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut batch = RxBatch::new(BATCH, MAX_FRAME);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !done(&got) && Instant::now() < deadline {
            if !readable(p.as_fd(), 100) {
                continue;
            }
            batch.clear();
            let n = p.read_batch(&mut batch).unwrap();
            assert_eq!(n, batch.len());
            got.extend(frames_of(&batch));
        }
        got
    }

    /// The frames of a batch as they go on the wire: super-frames cut into
    /// their segments, as the transmit path cuts them.
    fn frames_of(batch: &RxBatch) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..batch.len() {
            let (f, h) = (batch.frame(i), batch.hdr(i));
            if !h.is_gso() {
                out.push(f.to_vec());
                continue;
            }
            let plan = Plan::new(f, h).expect("a GSO frame the transmit path can cut");
            for k in 0..plan.count() {
                let mut seg = vec![0u8; 9300];
                let n = plan.segment(f, k, None, &mut seg).unwrap();
                seg.truncate(n);
                out.push(seg);
            }
        }
        out
    }

    fn arp_roundtrip(ring: bool) {
        run(&format!("arp_roundtrip(ring: {ring})"), move |ns| {
            veth(ns);
            let p = AfPacket::open_with("ova", ring).unwrap();
            assert_eq!(p.has_rx_ring(), ring);
            assert_eq!(p.ifname(), "ova");
            assert_eq!(
                p.caps(),
                Caps {
                    gso_write: true,
                    ..Caps::default()
                }
            );
            let ctl = IfCtl::new("ova").unwrap();
            assert_eq!(p.link_addr(), ctl.hwaddr().unwrap().1);
            assert_eq!(p.mtu().unwrap(), 1500);
            p.set_mtu(1400).unwrap();
            assert_eq!(ctl.mtu().unwrap(), 1400);
            let ovb_mac = IfCtl::new("ovb").unwrap().hwaddr().unwrap().1;

            let req = arp_request(PEER_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            // A runt is refused by the kernel and skipped; the request goes.
            assert_eq!(p.write_batch(&[&req[..4], &req]).unwrap(), 1);
            let got = read_until(&p, |g| g.iter().any(|f| arp_reply(f).is_some()));
            let reply = got
                .iter()
                .find_map(|f| arp_reply(f))
                .expect("no ARP reply within 3 s");
            assert_eq!(reply, (ovb_mac, [192, 0, 2, 1], PEER_MAC));
            assert!(!got.contains(&req), "a written frame was read back");
        });
    }

    #[test]
    fn arp_through_the_ring() {
        arp_roundtrip(true);
    }

    #[test]
    fn arp_through_recvmsg() {
        arp_roundtrip(false);
    }

    /// A second packet socket on `ifname` that reads frames as the kernel
    /// holds them, without a virtio-net header: what a naive reader sees.
    fn raw_socket(ifname: &str) -> OwnedFd {
        let ifindex = nix::net::if_::if_nametoindex(ifname).unwrap() as libc::c_int;
        let (sock, _) = open_socket(ifindex, false).unwrap();
        socket::setsockopt(sock.as_fd(), libc::SOL_PACKET, libc::PACKET_VNET_HDR, &0i32).unwrap();
        sock
    }

    fn raw_frames(sock: &OwnedFd) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_FRAME];
        while let Ok(n) = nix::sys::socket::recv(
            sock.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// UDP from 192.0.2.1 to port 9, as IPv4 in an untagged frame.
    fn is_udp_to_9(f: &[u8]) -> bool {
        f.len() >= 42 && f[12..14] == [0x08, 0x00] && f[23] == 17 && f[36..38] == [0, 9]
    }

    fn udp_from_the_kernel(ring: bool, segment: Option<u16>, len: usize) {
        let test = format!("udp_from_the_kernel(ring: {ring}, segment: {segment:?})");
        run(&test, move |ns| {
            veth(ns);
            let mac = PEER_MAC.map(|b| format!("{b:02x}")).join(":");
            ns.ip(&[
                "neigh",
                "add",
                "192.0.2.2",
                "lladdr",
                &mac,
                "dev",
                "ovb",
                "nud",
                "permanent",
            ]);
            let p = AfPacket::open_with("ova", ring).unwrap();
            let raw = raw_socket("ova");
            let sock = UdpSocket::bind("192.0.2.1:0").unwrap();
            if let Some(mss) = segment {
                nixsock::setsockopt(&sock, sockopt::UdpGsoSegment, &(mss as libc::c_int)).unwrap();
            }
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(sock.send_to(&payload, "192.0.2.2:9").unwrap(), len);

            let got = read_until(&p, |g| {
                g.iter()
                    .filter(|f| is_udp_to_9(f))
                    .map(|f| f.len() - 42)
                    .sum::<usize>()
                    >= len
            });
            let udp: Vec<_> = got.iter().filter(|f| is_udp_to_9(f)).collect();
            let mut data = Vec::new();
            for f in &udp {
                assert!(ipv4_ok(f, 14), "IPv4 header checksum");
                assert_ne!(f[40..42], [0, 0], "UDP checksum missing");
                assert!(l4_ok(f, 14), "UDP checksum wrong");
                assert!(f.len() <= 14 + 1500);
                data.extend_from_slice(&f[42..]);
            }
            assert_eq!(data, payload);
            assert_eq!(udp.len(), segment.map_or(1, |m| len.div_ceil(m as usize)));

            // What made this worth testing: read raw, the checksum is only
            // partial, and a UDP_SEGMENT send is one large frame.
            let raw: Vec<_> = raw_frames(&raw)
                .into_iter()
                .filter(|f| is_udp_to_9(f))
                .collect();
            assert_eq!(raw.len(), 1, "expected the datagram once, as one frame");
            assert!(
                !l4_ok(&raw[0], 14),
                "the kernel did not leave the checksum partial"
            );
            assert_eq!(raw[0].len(), 42 + len);
        });
    }

    /// Many frames, more than a ring block holds, read through a batch of
    /// three: reading resumes mid-block and in the middle of a GSO frame.
    fn many_frames(ring: bool) {
        run(&format!("many_frames(ring: {ring})"), move |ns| {
            veth(ns);
            let mac = PEER_MAC.map(|b| format!("{b:02x}")).join(":");
            ns.ip(&[
                "neigh",
                "add",
                "192.0.2.2",
                "lladdr",
                &mac,
                "dev",
                "ovb",
                "nud",
                "permanent",
            ]);
            let p = AfPacket::open_with("ova", ring).unwrap();
            let plain = UdpSocket::bind("192.0.2.1:0").unwrap();
            let gso = UdpSocket::bind("192.0.2.1:0").unwrap();
            nixsock::setsockopt(&gso, sockopt::UdpGsoSegment, &1000).unwrap();
            const COUNT: u32 = 250; // 250 frames of 1242 bytes: over 300 KiB
            let big: Vec<u8> = (0..4500).map(|i| (i % 251) as u8).collect();
            for i in 0..COUNT {
                let mut d = vec![0u8; 1200];
                d[..4].copy_from_slice(&i.to_be_bytes());
                plain.send_to(&d, "192.0.2.2:9").unwrap();
                if i == COUNT / 2 {
                    gso.send_to(&big, "192.0.2.2:9").unwrap();
                }
            }
            let gso_port = gso.local_addr().unwrap().port().to_be_bytes();
            let (mut seen, mut gso_data) = (vec![false; COUNT as usize], Vec::new());
            let mut batch = RxBatch::new(3, MAX_FRAME);
            let deadline = Instant::now() + Duration::from_secs(3);
            while (seen.contains(&false) || gso_data.len() < big.len()) && Instant::now() < deadline
            {
                if !readable(p.as_fd(), 100) {
                    continue;
                }
                batch.clear();
                p.read_batch(&mut batch).unwrap();
                for f in frames_of(&batch).iter().filter(|f| is_udp_to_9(f)) {
                    assert!(ipv4_ok(f, 14) && l4_ok(f, 14), "bad checksum");
                    if f[34..36] == gso_port {
                        gso_data.extend_from_slice(&f[42..]);
                    } else {
                        let i = u32::from_be_bytes(f[42..46].try_into().unwrap()) as usize;
                        assert!(!seen[i], "frame {i} read twice");
                        seen[i] = true;
                    }
                }
            }
            let missing = seen.iter().filter(|s| !**s).count();
            assert_eq!(missing, 0, "{missing} frames not read within 3 s");
            assert_eq!(gso_data, big);
        });
    }

    #[test]
    fn many_frames_through_the_ring() {
        many_frames(true);
    }

    #[test]
    fn many_frames_through_recvmsg() {
        many_frames(false);
    }

    #[test]
    fn udp_checksum_completed_through_the_ring() {
        udp_from_the_kernel(true, None, 300);
    }

    #[test]
    fn udp_checksum_completed_through_recvmsg() {
        udp_from_the_kernel(false, None, 300);
    }

    #[test]
    fn udp_gso_segmented_through_the_ring() {
        udp_from_the_kernel(true, Some(1000), 4500);
    }

    #[test]
    fn udp_gso_segmented_through_recvmsg() {
        udp_from_the_kernel(false, Some(1000), 4500);
    }
}
