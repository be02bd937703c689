//! A device's transmit side, run by a packet thread: frames the hosts sent
//! (and frames injected outbound) are encapsulated and sent to the
//! underlay.
//!
//! Each run reads a batch from the backend and sends it in order:
//!
//! * whole frames go by batches, one `sendmmsg` on the mux's raw socket,
//!   each datagram two iovecs (UDP and encapsulation headers, then the
//!   frame where the backend left it);
//! * a super-frame (TSO from the TAP) is asked about once (one cache
//!   lookup in dynamic mode: its segments share the destination MAC),
//!   encapsulated once (the header is repeated on every segment), and sent
//!   with one `sendmmsg` of UDP GSO messages on the source-port socket of
//!   its flow: per segment, a block of encapsulation header and inner
//!   headers (lengths, sequence number, checksum computed over the
//!   payload) and the payload slice, not copied. Where UDP GSO is off or
//!   refused, the super-frame is segmented here and its segments go as
//!   whole frames.
//!
//! Nothing is allocated per frame: the buffers are the packet thread's
//! ([`TxScratch`]).

use super::{
    backend::{Backend, RxBatch, BATCH, ETH_HLEN, MAX_FRAME},
    mux::{self, Mux, Port, SportPool},
    offload::{
        segment::{segs_per_send, Plan},
        vnet::{self, Bad},
    },
    Injector, TxTunables,
};
use crate::{
    plugins::EncapInstance,
    stats::{add, DeviceStats},
    sys::socket::InetAddr,
    target::{DynTarget, Route},
};
use overlay_plugin_abi::Point;
use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
    sync::{atomic::Ordering, Arc, Mutex, RwLock},
};

/// Room for the UDP header plus the largest encapsulation header.
const HDR_ROOM: usize = 8 + 512;
/// Largest segment cut here: a jumbo frame and its headers.
const SEG_BUF: usize = 9216 + 64;
/// Segments laid out per round of UDP GSO messages.
const GSO_WINDOW: usize = 128;
/// Largest inner headers a segment carries (Ethernet with two tags, IPv6,
/// TCP with options).
const INNER_HDRS: usize = 22 + 40 + 60;

/// What the transmit side sends with; replaced as a whole (retargeting).
pub(super) struct TxConf {
    /// Virtual network id written into every header.
    pub vnetid: u64,
    /// Point mode: the one destination (`None` in dynamic mode).
    pub single: Option<SingleDest>,
    /// Dynamic mode: the target cache.
    pub dynamic: Option<Arc<DynTarget>>,
}

/// A point-mode device's destination, resolved once.
#[derive(Clone, Copy)]
pub(super) struct SingleDest {
    /// For the raw socket (port 0: the UDP header carries it).
    pub raw: InetAddr,
    /// For a UDP socket.
    pub udp: InetAddr,
    pub port: u16,
}

/// Where one frame of a batch goes.
#[derive(Clone, Copy)]
enum FrameDest {
    /// The device's single destination (point mode).
    Single,
    /// Refused for its size before the cache was asked (dynamic mode):
    /// transmit counts it as it counts every frame of a refused size.
    Refused,
    /// This destination.
    To(Point),
    /// Kept by the cache (queued for a lookup) or dropped by it.
    Held,
}

/// What the target said about a batch.
struct ClassifiedBatch {
    /// Where each frame of the batch goes.
    batch: [FrameDest; BATCH],
    /// Frames answered meanwhile, with their destinations, to send first.
    ready: Vec<(Vec<u8>, Point)>,
}

impl Default for ClassifiedBatch {
    fn default() -> Self {
        ClassifiedBatch {
            batch: [FrameDest::Refused; BATCH],
            ready: Vec::new(),
        }
    }
}

/// Buffers for one `sendmmsg` of whole frames on the raw socket.
pub(super) struct TxBufs {
    hdrs: Vec<[u8; HDR_ROOM]>,
    hdr_lens: [usize; BATCH],
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    ok: [bool; BATCH],
    sent_ok: [bool; BATCH],
    dests: [FrameDest; BATCH],
    addrs: Vec<InetAddr>,
    dports: [u16; BATCH],
}

impl TxBufs {
    fn new() -> TxBufs {
        TxBufs {
            hdrs: vec![[0u8; HDR_ROOM]; BATCH],
            hdr_lens: [0; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                2 * BATCH
            ],
            // SAFETY: mmsghdr is plain data; all-zero is valid.
            msgs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            ok: [false; BATCH],
            sent_ok: [false; BATCH],
            dests: [FrameDest::Single; BATCH],
            addrs: vec![InetAddr::unspecified(); BATCH],
            dports: [0; BATCH],
        }
    }
}

/// Buffers for UDP GSO sends: one window of segment blocks (encapsulation
/// header and inner headers) and the messages pointing at them.
struct GsoBufs {
    /// The encapsulation header, written once per super-frame.
    eh: [u8; HDR_ROOM],
    blocks: Vec<u8>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// One `UDP_SEGMENT` control message per message (u64 for alignment).
    cmsgs: Vec<[u64; 4]>,
}

impl GsoBufs {
    fn new() -> GsoBufs {
        GsoBufs {
            eh: [0; HDR_ROOM],
            blocks: vec![0; GSO_WINDOW * (HDR_ROOM + INNER_HDRS)],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                2 * GSO_WINDOW
            ],
            // SAFETY: mmsghdr is plain data; all-zero is valid.
            msgs: (0..GSO_WINDOW)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            cmsgs: vec![[0; 4]; GSO_WINDOW],
        }
    }
}

/// A packet thread's transmit buffers.
pub struct TxScratch {
    /// Frames read from a backend.
    batch: RxBatch,
    /// Segments cut here.
    segs: RxBatch,
    pub(super) bufs: TxBufs,
    gso: GsoBufs,
    injected: Vec<Vec<u8>>,
}

impl TxScratch {
    /// Buffers for a batch of super-frames.
    pub fn new() -> TxScratch {
        TxScratch {
            batch: RxBatch::new(BATCH, MAX_FRAME),
            segs: RxBatch::new(BATCH, SEG_BUF),
            bufs: TxBufs::new(),
            gso: GsoBufs::new(),
            injected: Vec::new(),
        }
    }
}

impl Default for TxScratch {
    fn default() -> Self {
        TxScratch::new()
    }
}

/// A device's transmit side.
pub(super) struct DeviceTx {
    pub backend: Arc<dyn Backend>,
    pub mux: Arc<Mux>,
    pub port: Arc<Port>,
    pub encap: Arc<EncapInstance>,
    pub tunables: Arc<TxTunables>,
    pub stats: Arc<DeviceStats>,
    pub injector: Arc<Injector>,
    pub conf: RwLock<Arc<TxConf>>,
    /// The source-port pool of the current range, once opened.
    sports: Mutex<Option<Arc<SportPool>>>,
    /// The backend failed for good (its interface is gone): the device is
    /// degraded and its descriptor no longer watched.
    pub failed: std::sync::atomic::AtomicBool,
}

/// What a UDP GSO send attempt says.
enum Gso {
    /// Sent (or dropped and counted).
    Sent,
    /// The kernel will not segment this one: segment it here; with an
    /// error, UDP GSO is refused for good on this mux.
    Fallback(Option<io::Error>),
}

impl DeviceTx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: Arc<dyn Backend>,
        mux: Arc<Mux>,
        port: Arc<Port>,
        encap: Arc<EncapInstance>,
        tunables: Arc<TxTunables>,
        stats: Arc<DeviceStats>,
        injector: Arc<Injector>,
        conf: TxConf,
    ) -> DeviceTx {
        DeviceTx {
            backend,
            mux,
            port,
            encap,
            tunables,
            stats,
            injector,
            conf: RwLock::new(Arc::new(conf)),
            sports: Mutex::new(None),
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The descriptor the packet thread watches.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.backend.as_fd()
    }

    /// One run: injected frames, frames answers released, then a batch
    /// from the backend. Returns whether the backend has frames already
    /// read but not handed over (it must run again without its
    /// descriptor saying so).
    pub fn run(&self, s: &mut TxScratch) -> bool {
        let conf = self.conf.read().unwrap().clone();
        let TxScratch {
            batch,
            segs,
            bufs,
            gso,
            injected,
        } = s;
        // Injected frames first: they were queued before this run.
        self.injector.take(injected);
        for chunk in injected.chunks(BATCH) {
            let sent = self.classify_and_send(&conf, bufs, chunk.len(), |i| &chunk[i][..]);
            add(&self.stats.tx_injected, sent as u64);
        }
        injected.clear();
        if self.failed.load(Ordering::Relaxed) {
            return false;
        }
        batch.clear();
        let n = match self.backend.read_batch(batch) {
            Ok(n) => n,
            Err(e) => {
                self.read_failed(&e);
                0
            }
        };
        if n == 0 && conf.dynamic.is_some() {
            // Answers wake the device too: send what they released.
            self.classify_and_send(&conf, bufs, 0, |_| &[][..]);
        }
        let mut i = 0;
        while i < n {
            if batch.hdr(i).is_gso() {
                self.send_super(&conf, bufs, gso, segs, batch.frame(i), batch.hdr(i));
                i += 1;
                continue;
            }
            let end = (i..n).find(|k| batch.hdr(*k).is_gso()).unwrap_or(n);
            self.classify_and_send(&conf, bufs, end - i, |k| batch.frame(i + k));
            i = end;
        }
        self.backend.has_pending()
    }

    /// A read error: the interface may be gone (deleted from outside). The
    /// device is degraded once, with the error; the caller stops watching
    /// a descriptor that reports errors for good.
    #[cold]
    fn read_failed(&self, e: &io::Error) {
        let gone = matches!(
            e.raw_os_error(),
            Some(
                libc::EBADFD
                    | libc::EBADF
                    | libc::ENODEV
                    | libc::ENXIO
                    | libc::ENETDOWN
                    | libc::EIO
            )
        );
        if gone {
            self.failed.store(true, Ordering::Relaxed);
            let msg = format!(
                "backend interface {} failed: {e} (deleted from outside?); activate the device again or delete it",
                self.backend.ifname()
            );
            if self.port.health.degrade(&msg) {
                tracing::error!(ifname = self.backend.ifname(), "device degraded: {msg}");
            }
        } else {
            tracing::warn!(ifname = self.backend.ifname(), "read failed: {e}");
        }
    }

    /// Counts a super-frame whose virtio-net header does not describe it.
    fn bad_hdr(&self, bad: Bad) {
        let c = match bad {
            Bad::Csum => &self.stats.drop_vnet_csum,
            Bad::GsoSize => &self.stats.drop_vnet_gso_size,
            Bad::GsoType => &self.stats.drop_vnet_gso_type,
        };
        add(c, 1);
    }

    /// Sends one super-frame: asked about once, then one UDP GSO send, or
    /// segmented here.
    fn send_super(
        &self,
        conf: &TxConf,
        bufs: &mut TxBufs,
        gso: &mut GsoBufs,
        segs: &mut RxBatch,
        frame: &[u8],
        hdr: &vnet::Hdr,
    ) {
        let plan = match hdr.check(frame.len()).and_then(|_| Plan::new(frame, hdr)) {
            Ok(p) => p,
            Err(bad) => return self.bad_hdr(bad),
        };
        let count = plan.count();
        if plan.seg_len(0) > self.tunables.max_frame.load(Ordering::Relaxed) {
            add(&self.stats.drop_mtu, count as u64);
            return;
        }
        let dest = match (&conf.single, &conf.dynamic) {
            (Some(_), _) => FrameDest::Single,
            (None, Some(d)) => match self.classify_super(d, bufs, segs, frame, &plan) {
                Some(p) => FrameDest::To(p),
                None => return,
            },
            (None, None) => {
                add(&self.stats.drop_no_destination, count as u64);
                return;
            }
        };
        if count > 1 && self.mux.gso() {
            match self.send_gso(conf, gso, frame, &plan, dest) {
                Gso::Sent => return,
                Gso::Fallback(Some(e)) => self.mux.gso_refused(&e),
                Gso::Fallback(None) => {}
            }
        }
        self.send_segmented(conf, bufs, segs, frame, &plan, dest);
        add(&self.stats.tx_segmented, 1);
    }

    /// Dynamic mode: where a super-frame goes, asked once with its first
    /// segment standing for all. On a miss (or a drop entry) every segment
    /// goes to the cache, in order, as whole frames would; `None` then.
    fn classify_super(
        &self,
        d: &DynTarget,
        bufs: &mut TxBufs,
        segs: &mut RxBatch,
        frame: &[u8],
        plan: &Plan,
    ) -> Option<Point> {
        segs.clear();
        let seg = segs.next_buf()?;
        let n0 = plan.segment(frame, 0, None, seg)?;
        let mut batch = d.batch();
        let ready = batch.released();
        let dest = match batch.route(&seg[..n0]) {
            Route::Send(p) => Some(p),
            Route::Held => {
                for i in 1..plan.count() {
                    if let Some(n) = plan.segment(frame, i, None, seg) {
                        batch.route(&seg[..n]);
                    }
                }
                None
            }
        };
        // The lock goes, and the lookups of misses are asked, here.
        drop(batch);
        self.send_ready(bufs, &ready);
        dest
    }

    /// The source-port pool of the current range, opened on first use (or
    /// after the range changed).
    fn sport_pool(&self, lo: u16, hi: u16) -> Option<Arc<SportPool>> {
        let mut cur = self.sports.lock().unwrap();
        if let Some(p) = cur.as_ref().filter(|p| p.range == (lo.min(hi), lo.max(hi))) {
            return Some(p.clone());
        }
        match self.mux.sport_pool(lo, hi) {
            Ok(p) => {
                *cur = Some(p.clone());
                Some(p)
            }
            Err(e) => {
                // No port of the range could be bound: UDP GSO cannot keep
                // per-flow source ports, so it is not used.
                self.mux.gso_refused(&io::Error::other(format!(
                    "no port of the source-port range {lo}-{hi} could be bound: {e}"
                )));
                None
            }
        }
    }

    /// The outer source port of `frame`'s flow: with UDP GSO, the port of
    /// the flow's pool socket (so that a flow keeps one port whichever way
    /// its frames go), else a hash into the whole range.
    fn source_port(&self, frame: &[u8], lo: u16, hi: u16) -> u16 {
        if self.mux.gso() {
            if let Some(p) = self.sport_pool(lo, hi) {
                return p.pick(mux::flow_hash(frame)).1;
            }
        }
        mux::source_port(frame, lo, hi)
    }

    /// One super-frame in one `sendmmsg` of UDP GSO messages on its flow's
    /// socket (more than one message only beyond 64 KiB or 64 segments).
    fn send_gso(
        &self,
        conf: &TxConf,
        g: &mut GsoBufs,
        frame: &[u8],
        plan: &Plan,
        dest: FrameDest,
    ) -> Gso {
        let count = plan.count() as u64;
        let addr = match (dest, &conf.single) {
            (FrameDest::To(p), _) => match InetAddr::new(self.mux.key.domain, p.ip, p.port) {
                Some(a) => a,
                None => {
                    add(&self.stats.drop_no_destination, count);
                    return Gso::Sent;
                }
            },
            (_, Some(s)) => s.udp,
            _ => {
                add(&self.stats.drop_no_destination, count);
                return Gso::Sent;
            }
        };
        let range = self.tunables.sport_range.load(Ordering::Relaxed);
        let Some(pool) = self.sport_pool((range >> 16) as u16, range as u16) else {
            return Gso::Fallback(None);
        };
        let (sock, _) = pool.pick(mux::flow_hash(frame));
        let first = &frame[..plan.seg_len(0)];
        // A panic is counted and degrades the device inside the call.
        let Ok(hl) = self.encap.encap(conf.vnetid, first, &mut g.eh) else {
            add(&self.stats.drop_encap, count);
            return Gso::Sent;
        };
        let blk = hl + plan.hdrs_len();
        let seg_size = hl + plan.seg_len(0);
        let per = segs_per_send(seg_size, self.mux.key.domain == libc::AF_INET6);
        let (mut sent, mut inner_bytes, mut sends) = (0usize, 0u64, 0u64);
        let mut start = 0;
        while start < plan.count() {
            let end = (start + GSO_WINDOW).min(plan.count());
            for i in start..end {
                let b = &mut g.blocks[(i - start) * blk..(i - start + 1) * blk];
                b[..hl].copy_from_slice(&g.eh[..hl]);
                plan.write_headers(frame, i, &mut b[hl..]);
                let payload = &frame[plan.payload(i)];
                let k = 2 * (i - start);
                g.iovs[k] = libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: blk,
                };
                g.iovs[k + 1] = libc::iovec {
                    iov_base: payload.as_ptr() as *mut libc::c_void,
                    iov_len: payload.len(),
                };
            }
            let nmsg = (end - start).div_ceil(per);
            for m in 0..nmsg {
                let a = m * per;
                let b = ((m + 1) * per).min(end - start);
                let h = &mut g.msgs[m].msg_hdr;
                h.msg_name = addr.as_ptr() as *mut libc::c_void;
                h.msg_namelen = addr.len();
                h.msg_iov = &mut g.iovs[2 * a];
                h.msg_iovlen = 2 * (b - a);
                set_segment_cmsg(h, &mut g.cmsgs[m], seg_size as u16);
            }
            match send_mmsg(sock, &mut g.msgs[..nmsg]) {
                Ok(done) => {
                    sends += done as u64;
                    let segs_done = (done * per).min(end - start);
                    for i in start..start + segs_done {
                        inner_bytes += plan.seg_len(i) as u64;
                    }
                    sent += segs_done;
                    if done < nmsg {
                        break;
                    }
                }
                Err(e) if start == 0 => match gso_refusal(&e) {
                    Some(permanent) => return Gso::Fallback(permanent.then_some(e)),
                    None => {
                        tracing::debug!(ifname = self.backend.ifname(), "UDP GSO send failed: {e}");
                        break;
                    }
                },
                Err(e) => {
                    tracing::debug!(ifname = self.backend.ifname(), "UDP GSO send failed: {e}");
                    break;
                }
            }
            start = end;
        }
        let s = &self.stats;
        add(&s.tx_packets, sent as u64);
        add(&s.tx_bytes, inner_bytes);
        add(&s.tx_gso, 1);
        add(&s.drop_send, count - sent as u64);
        let m = &self.mux.stats;
        add(&m.tx_packets, sent as u64);
        add(&m.tx_bytes, inner_bytes + (hl * sent) as u64);
        add(&m.tx_gso, sends);
        Gso::Sent
    }

    /// A super-frame cut here into whole segments, sent by batches.
    fn send_segmented(
        &self,
        conf: &TxConf,
        bufs: &mut TxBufs,
        segs: &mut RxBatch,
        frame: &[u8],
        plan: &Plan,
        dest: FrameDest,
    ) {
        let mut i = 0;
        while i < plan.count() {
            segs.clear();
            while i < plan.count() {
                let Some(out) = segs.next_buf() else { break };
                if let Some(n) = plan.segment(frame, i, None, out) {
                    segs.commit(n);
                }
                i += 1;
            }
            bufs.dests[..segs.len()].fill(dest);
            self.transmit(conf, bufs, segs.len(), |k| segs.frame(k));
        }
    }

    /// Sends frames released by answers, in order, to their destinations.
    fn send_ready(&self, bufs: &mut TxBufs, ready: &[(Vec<u8>, Point)]) {
        if ready.is_empty() {
            return;
        }
        let conf = self.conf.read().unwrap().clone();
        for chunk in ready.chunks(BATCH) {
            for (i, (_, p)) in chunk.iter().enumerate() {
                bufs.dests[i] = FrameDest::To(*p);
            }
            self.transmit(&conf, bufs, chunk.len(), |i| &chunk[i].0[..]);
        }
    }

    /// Sends `n` whole frames: to the single destination in point mode; in
    /// dynamic mode through the target cache, after the frames that
    /// answers released (taken under the same lock, so that a frame never
    /// overtakes one queued before it). Returns how many of the `n` were
    /// sent.
    pub(super) fn classify_and_send<'f>(
        &self,
        conf: &TxConf,
        b: &mut TxBufs,
        n: usize,
        frame_at: impl Fn(usize) -> &'f [u8],
    ) -> usize {
        let Some(d) = &conf.dynamic else {
            b.dests[..n].fill(FrameDest::Single);
            return self.transmit(conf, b, n, frame_at);
        };
        let c = self.classify(d, n, &frame_at);
        self.send_ready(b, &c.ready);
        if n > 0 {
            b.dests[..n].copy_from_slice(&c.batch[..n]);
            self.transmit(conf, b, n, frame_at)
        } else {
            0
        }
    }

    /// Asks the target about each frame, in one batch (one lock; the
    /// lookups for misses are asked when the batch ends).
    fn classify<'f>(
        &self,
        d: &DynTarget,
        n: usize,
        frame_at: &impl Fn(usize) -> &'f [u8],
    ) -> ClassifiedBatch {
        let max_frame = self.tunables.max_frame.load(Ordering::Relaxed);
        let mut out = ClassifiedBatch::default();
        let mut batch = d.batch();
        out.ready = batch.released();
        for i in 0..n {
            let frame = frame_at(i);
            if frame.len() < ETH_HLEN || frame.len() > max_frame {
                out.batch[i] = FrameDest::Refused;
                continue;
            }
            out.batch[i] = match batch.route(frame) {
                Route::Send(p) => FrameDest::To(p),
                Route::Held => FrameDest::Held,
            };
        }
        out
    }

    /// Encapsulates and sends `n` (at most [`BATCH`]) whole frames with one
    /// `sendmmsg` on the raw socket, counting what happened to each.
    /// Returns how many were sent.
    fn transmit<'f>(
        &self,
        conf: &TxConf,
        b: &mut TxBufs,
        n: usize,
        frame_at: impl Fn(usize) -> &'f [u8],
    ) -> usize {
        debug_assert!(n <= BATCH);
        let max_frame = self.tunables.max_frame.load(Ordering::Relaxed);
        let range = self.tunables.sport_range.load(Ordering::Relaxed);
        let (lo, hi) = ((range >> 16) as u16, range as u16);
        let (mut mtu_drops, mut runts, mut encap_drops) = (0u64, 0u64, 0u64);
        let mut no_dest = 0u64;
        for i in 0..n {
            b.ok[i] = false;
            let frame = frame_at(i);
            if frame.len() > max_frame {
                mtu_drops += 1;
                continue;
            }
            if frame.len() < ETH_HLEN {
                runts += 1;
                continue;
            }
            b.dports[i] = match (b.dests[i], &conf.single) {
                // (Refused frames failed the size checks above.)
                (FrameDest::Held | FrameDest::Refused, _) => continue,
                (FrameDest::Single, Some(s)) => s.port,
                (FrameDest::Single, None) => {
                    no_dest += 1;
                    continue;
                }
                (FrameDest::To(p), _) => match mux::raw_dest(self.mux.key.domain, p.ip) {
                    Some(a) => {
                        b.addrs[i] = a;
                        p.port
                    }
                    None => {
                        no_dest += 1;
                        continue;
                    }
                },
            };
            let (udp, rest) = b.hdrs[i].split_at_mut(8);
            let Ok(hl) = self.encap.encap(conf.vnetid, frame, rest) else {
                encap_drops += 1;
                continue;
            };
            let sport = self.source_port(frame, lo, hi);
            mux::udp_header(udp, sport, b.dports[i], hl + frame.len());
            b.hdr_lens[i] = 8 + hl;
            b.ok[i] = true;
        }
        // Gather the packets that survived into the message array.
        let mut k = 0;
        for i in 0..n {
            if !b.ok[i] {
                continue;
            }
            let frame = frame_at(i);
            b.iovs[2 * k] = libc::iovec {
                iov_base: b.hdrs[i].as_mut_ptr().cast(),
                iov_len: b.hdr_lens[i],
            };
            b.iovs[2 * k + 1] = libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            };
            let name = match (b.dests[i], &conf.single) {
                (FrameDest::Single, Some(s)) => &s.raw,
                _ => &b.addrs[i],
            };
            let h = &mut b.msgs[k].msg_hdr;
            h.msg_name = name.as_ptr() as *mut libc::c_void;
            h.msg_namelen = name.len();
            h.msg_iov = &mut b.iovs[2 * k];
            h.msg_iovlen = 2;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            k += 1;
        }
        let sent = self.send_all(&mut b.msgs[..k], &mut b.sent_ok);
        let (mut tx_bytes, mut wire_bytes) = (0u64, 0u64);
        for j in (0..k).filter(|j| b.sent_ok[*j]) {
            let inner = b.iovs[2 * j + 1].iov_len as u64;
            tx_bytes += inner;
            wire_bytes += inner + b.iovs[2 * j].iov_len as u64 - 8;
        }
        let s = &self.stats;
        add(&s.tx_packets, sent as u64);
        add(&s.tx_bytes, tx_bytes);
        add(&s.drop_send, (k - sent) as u64);
        add(&s.drop_mtu, mtu_drops);
        add(&s.drop_runt, runts);
        add(&s.drop_encap, encap_drops);
        add(&s.drop_no_destination, no_dest);
        let m = &self.mux.stats;
        add(&m.tx_packets, sent as u64);
        add(&m.tx_bytes, wire_bytes);
        sent
    }

    /// Sends every message, retrying the rest after a partial send; a
    /// message the kernel refuses is skipped. Returns the number sent.
    fn send_all(&self, msgs: &mut [libc::mmsghdr], sent_ok: &mut [bool; BATCH]) -> usize {
        let mut done = 0;
        let mut sent = 0;
        while done < msgs.len() {
            match send_mmsg(self.mux.tx_fd(), &mut msgs[done..]) {
                Ok(r) => {
                    for ok in &mut sent_ok[done..done + r] {
                        *ok = true;
                    }
                    done += r;
                    sent += r;
                }
                Err(_) => {
                    // The first message failed: skip it and go on.
                    sent_ok[done] = false;
                    done += 1;
                }
            }
        }
        sent
    }
}

/// `sendmmsg` on `fd`: the number of messages sent (at least one), or the
/// error of the first one.
fn send_mmsg(fd: BorrowedFd<'_>, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    loop {
        // SAFETY: every header points to iovecs, an address and control
        // data that live until the call returns; the socket is open.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        if r > 0 {
            return Ok(r as usize);
        }
        let e = if r == 0 {
            io::Error::other("sendmmsg sent nothing")
        } else {
            io::Error::last_os_error()
        };
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Puts a `UDP_SEGMENT` control message of `size` into `h`, in `buf`.
fn set_segment_cmsg(h: &mut libc::msghdr, buf: &mut [u64; 4], size: u16) {
    // SAFETY: CMSG_SPACE of a u16 (24 bytes on 64-bit) fits the 32-byte,
    // 8-aligned buffer; CMSG_FIRSTHDR on a msghdr whose control points to
    // it returns its start; the data written is within CMSG_LEN(2).
    unsafe {
        h.msg_control = buf.as_mut_ptr().cast();
        h.msg_controllen = libc::CMSG_SPACE(2) as _;
        let c = libc::CMSG_FIRSTHDR(h);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
}

/// Whether the kernel refused to segment UDP for this send, and if so
/// whether for good: no UDP GSO or no checksum offload on the way (EIO,
/// ENOPROTOOPT, EOPNOTSUPP) is permanent; a segment over the route's MTU
/// (EINVAL, EMSGSIZE) is this super-frame's. `None`: another error.
fn gso_refusal(e: &io::Error) -> Option<bool> {
    match e.raw_os_error() {
        Some(libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP) => Some(true),
        Some(libc::EINVAL | libc::EMSGSIZE) => Some(false),
        _ => None,
    }
}
