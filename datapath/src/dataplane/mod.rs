//! A device's packet path while it is active: its backend, its place in a
//! mux, and the transmit thread.
//!
//! The transmit thread reads batches of frames from the backend, checks
//! their size, asks the encapsulation instance for a header (written into a
//! per-slot buffer: nothing is allocated per frame), puts the UDP header in
//! front and sends the whole batch with one `sendmmsg` on the mux's raw
//! socket, each packet as two iovecs (headers, then the frame where the
//! backend left it: the frame is never copied).
//!
//! Reconfiguration (vnetid, destination) stops the thread, changes what it
//! uses, and starts it again: a frame is never sent with a stale value, and
//! nothing the thread uses is closed while it runs.
//!
//! Frames can also be *injected* through an [`Injector`], from any thread:
//! outbound, down the transmit path as if the hosts had sent them (the
//! transmit thread takes them between two backend batches and treats them
//! exactly like backend frames), or inbound, to the hosts as if they had
//! come from the underlay. Lookup proxies use this to answer ARP, NDP and
//! DHCP, and to resend frames a lookup held back.

pub mod backend;
pub mod mux;
pub mod offload;

use crate::{
    dataplane::backend::{Backend, RxBatch, BATCH, ETH_HLEN, MAX_FRAME, VLAN_TAGSZ},
    dataplane::mux::{Mux, Port},
    error::{CtlError, CtlResult},
    stats::{add, DeviceStats},
    target::{DynTarget, PacketPath, Route},
};
use overlay_plugin_abi::{
    abi_stable::std_types::{RSlice, RSliceMut},
    EncapDeviceBox, Point,
};
use std::{
    io,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
        Arc, Mutex, RwLock,
    },
    thread::JoinHandle,
};

/// Room for the UDP header plus the largest encapsulation header.
const HDR_ROOM: usize = 8 + 512;
/// Most frames waiting in a device's outbound injection queue; beyond,
/// injection fails with `ENOBUFS`.
pub const INJECT_QUEUE_MAX: usize = 1024;

/// Settings the transmit thread reads on every batch.
pub struct TxTunables {
    /// Largest frame accepted from the hosts (MTU + Ethernet header, + a
    /// VLAN tag when the encapsulation allows one).
    pub max_frame: AtomicUsize,
    /// Outer UDP source port range, `lo << 16 | hi`.
    pub sport_range: AtomicU32,
}

impl TxTunables {
    /// Tunables for an MTU and a source port range.
    pub fn new(mtu: u64, vlan: bool, lo: u16, hi: u16) -> TxTunables {
        let t = TxTunables {
            max_frame: AtomicUsize::new(0),
            sport_range: AtomicU32::new(0),
        };
        t.set_mtu(mtu, vlan);
        t.set_sport_range(lo, hi);
        t
    }

    /// Follows a change of the device MTU.
    pub fn set_mtu(&self, mtu: u64, vlan: bool) {
        let extra = ETH_HLEN + if vlan { VLAN_TAGSZ } else { 0 };
        self.max_frame
            .store(mtu as usize + extra, Ordering::Relaxed);
    }

    /// Follows a change of the source port range.
    pub fn set_sport_range(&self, lo: u16, hi: u16) {
        self.sport_range
            .store((lo as u32) << 16 | hi as u32, Ordering::Relaxed);
    }
}

/// What the transmit thread sends with; replaced only while it is stopped.
#[derive(Clone)]
pub struct TxTarget {
    /// Virtual network id written into every header.
    pub vnetid: u64,
    /// Where frames go.
    pub dest: TxDest,
}

/// Where a device's frames go, by its lookup mode.
#[derive(Clone)]
pub enum TxDest {
    /// Point mode: every frame to this one destination.
    Point(Point),
    /// Dynamic mode: each frame where the target cache says.
    Dynamic(Arc<DynTarget>),
}

impl TxTarget {
    /// The single destination, in point mode.
    pub fn point(&self) -> Option<Point> {
        match &self.dest {
            TxDest::Point(p) => Some(*p),
            TxDest::Dynamic(_) => None,
        }
    }

    /// The target cache, in dynamic mode.
    pub fn dynamic(&self) -> Option<&Arc<DynTarget>> {
        match &self.dest {
            TxDest::Point(_) => None,
            TxDest::Dynamic(d) => Some(d),
        }
    }
}

/// A running packet path.
pub struct Dataplane {
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// The mux the device is attached to.
    pub mux: Arc<Mux>,
    /// The device as the mux sees it.
    pub port: Arc<Port>,
    encap: Arc<EncapDeviceBox>,
    tunables: Arc<TxTunables>,
    stats: Arc<DeviceStats>,
    target: TxTarget,
    injector: Arc<Injector>,
    tx: Option<TxThread>,
}

struct TxThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// Puts frames into a running packet path from outside it. Cheap to clone
/// (as an `Arc`) and usable from any thread; once the device is
/// deactivated every call fails with `ENXIO` and the backend is no longer
/// touched.
pub struct Injector {
    /// The backend, until the packet path stops.
    backend: RwLock<Option<Arc<dyn Backend>>>,
    /// Frames waiting for the transmit thread.
    queue: Mutex<Vec<Vec<u8>>>,
    /// Wakes the transmit thread.
    wake: OwnedFd,
    tunables: Arc<TxTunables>,
    stats: Arc<DeviceStats>,
}

impl Injector {
    fn new(
        backend: Arc<dyn Backend>,
        tunables: Arc<TxTunables>,
        stats: Arc<DeviceStats>,
    ) -> io::Result<Injector> {
        Ok(Injector {
            backend: RwLock::new(Some(backend)),
            queue: Mutex::new(Vec::new()),
            wake: mux::new_wake_fd()?,
            tunables,
            stats,
        })
    }

    fn refuse(&self, e: CtlError) -> CtlError {
        add(&self.stats.drop_inject, 1);
        e
    }

    /// Takes every waiting frame, in order.
    fn take(&self, into: &mut Vec<Vec<u8>>) {
        let mut q = self.queue.lock().unwrap();
        std::mem::swap(&mut *q, into);
    }

    /// Refuses everything from now on and forgets the waiting frames.
    fn close(&self) {
        *self.backend.write().unwrap() = None;
        let dropped = std::mem::take(&mut *self.queue.lock().unwrap());
        add(&self.stats.drop_inject, dropped.len() as u64);
    }
}

impl PacketPath for Injector {
    /// Queues `frame` for the transmit path, as if the hosts had sent it:
    /// it is encapsulated with the device's current virtual network id and
    /// sent to its current destination, in order with other injected
    /// frames. Fails with `EINVAL` for a frame shorter than an Ethernet
    /// header or longer than the MTU allows, `ENOBUFS` when
    /// [`INJECT_QUEUE_MAX`] frames are already waiting, and `ENXIO` once
    /// the device is no longer active.
    fn outbound(&self, frame: &[u8]) -> CtlResult<()> {
        let max = self.tunables.max_frame.load(Ordering::Relaxed);
        if frame.len() < ETH_HLEN || frame.len() > max {
            return Err(self.refuse(CtlError::invalid(format!(
                "an injected frame must be {ETH_HLEN} to {max} bytes (the MTU plus the Ethernet header), not {}",
                frame.len()
            ))));
        }
        if self.backend.read().unwrap().is_none() {
            return Err(self.refuse(not_active()));
        }
        let mut q = self.queue.lock().unwrap();
        if q.len() >= INJECT_QUEUE_MAX {
            return Err(self.refuse(CtlError::new(
                libc::ENOBUFS,
                format!(
                    "{INJECT_QUEUE_MAX} injected frames are already waiting to be sent; retry later"
                ),
            )));
        }
        q.push(frame.to_vec());
        drop(q);
        mux::wake(&self.wake);
        Ok(())
    }

    /// Delivers `frames` to the hosts, as if they had been received and
    /// decapsulated. Returns how many the backend took; the others are
    /// counted as `drop_backend`. Fails with `ENXIO` once the device is no
    /// longer active.
    fn inbound(&self, frames: &[&[u8]]) -> CtlResult<usize> {
        let guard = self.backend.read().unwrap();
        let Some(backend) = guard.as_ref() else {
            return Err(self.refuse(not_active()));
        };
        let n = backend
            .write_batch(frames)
            .map_err(|e| CtlError::io("cannot inject into the backend", &e))?;
        let bytes: usize = frames[..n].iter().map(|f| f.len()).sum();
        add(&self.stats.rx_injected, n as u64);
        add(&self.stats.rx_packets, n as u64);
        add(&self.stats.rx_bytes, bytes as u64);
        add(&self.stats.drop_backend, (frames.len() - n) as u64);
        Ok(n)
    }

    /// Wakes the transmit thread (frames were answered for it).
    fn wake(&self) {
        mux::wake(&self.wake);
    }
}

fn not_active() -> CtlError {
    CtlError::new(
        libc::ENXIO,
        "the device is not active: activate it before injecting frames",
    )
}

impl Dataplane {
    /// Attaches the device to its mux and starts transmitting. The caller
    /// has already joined the mux (so that a failed join leaves nothing).
    pub fn start(
        backend: Arc<dyn Backend>,
        mux: Arc<Mux>,
        port: Arc<Port>,
        encap: Arc<EncapDeviceBox>,
        tunables: Arc<TxTunables>,
        stats: Arc<DeviceStats>,
        target: TxTarget,
    ) -> CtlResult<Dataplane> {
        let injector = Injector::new(backend.clone(), tunables.clone(), stats.clone())
            .map(Arc::new)
            .map_err(io_ctl)?;
        let mut dp = Dataplane {
            backend,
            mux,
            port,
            encap,
            tunables,
            stats,
            target,
            injector,
            tx: None,
        };
        if let Some(d) = dp.target.dynamic() {
            d.attach(dp.injector.clone());
        }
        dp.start_tx()?;
        Ok(dp)
    }

    /// The current target.
    pub fn target(&self) -> &TxTarget {
        &self.target
    }

    /// The tunables.
    pub fn tunables(&self) -> &TxTunables {
        &self.tunables
    }

    /// The handle that injects frames into this packet path.
    pub fn injector(&self) -> Arc<Injector> {
        self.injector.clone()
    }

    /// What the transmit thread works with, for the current target.
    fn tx_context(&self, stop: Arc<AtomicBool>) -> CtlResult<TxContext> {
        // Dynamic mode has no single destination: each frame's comes from
        // the cache.
        let single = match self.target.point() {
            None => None,
            Some(p) => {
                let addr = mux::raw_dest(self.mux.key.domain, p.ip).ok_or_else(|| {
                    CtlError::invalid(format!(
                        "the destination {} and the listen address of {} are not of the same IP version",
                        overlay_plugin_abi::prop::ip_from_in6(p.ip),
                        self.mux.key.endpoint()
                    ))
                })?;
                Some(SingleDest { addr, port: p.port })
            }
        };
        Ok(TxContext {
            backend: self.backend.clone(),
            mux: self.mux.clone(),
            encap: self.encap.clone(),
            tunables: self.tunables.clone(),
            stats: self.stats.clone(),
            port: self.port.clone(),
            vnetid: self.target.vnetid,
            single,
            stop,
            injector: self.injector.clone(),
            dynamic: self.target.dynamic().cloned(),
        })
    }

    fn start_tx(&mut self) -> CtlResult<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = self.tx_context(stop.clone())?;
        let handle = std::thread::Builder::new()
            .name(format!("tx-{}", self.backend.ifname()))
            .spawn(move || ctx.run())
            .map_err(io_ctl)?;
        self.tx = Some(TxThread { stop, handle });
        Ok(())
    }

    fn stop_tx(&mut self) {
        if let Some(t) = self.tx.take() {
            t.stop.store(true, Ordering::SeqCst);
            mux::wake(&self.injector.wake);
            let _ = t.handle.join();
        }
    }

    /// Changes the virtual network id or destination: the transmit thread
    /// is stopped, the mux re-keyed, and the thread started again.
    pub fn retarget(&mut self, target: TxTarget) -> CtlResult<()> {
        self.stop_tx();
        if target.vnetid != self.target.vnetid {
            self.mux.remove(self.target.vnetid);
            self.mux.insert(target.vnetid, self.port.clone());
        }
        self.target = target;
        self.start_tx()
    }

    /// Stops transmitting and leaves the mux. Once this returns, no frame
    /// of the device is sent or delivered; the backend closes when the
    /// returned value is dropped.
    pub fn stop(mut self, muxes: &mut mux::MuxSet) -> Arc<dyn Backend> {
        if let Some(d) = self.target.dynamic() {
            d.detach();
        }
        self.injector.close();
        self.stop_tx();
        muxes.leave(&self.mux, self.target.vnetid);
        self.backend.clone()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.injector.close();
        self.stop_tx();
    }
}

fn io_ctl(e: io::Error) -> CtlError {
    CtlError::io("cannot start the transmit thread", &e)
}

struct TxContext {
    backend: Arc<dyn Backend>,
    mux: Arc<Mux>,
    encap: Arc<EncapDeviceBox>,
    tunables: Arc<TxTunables>,
    stats: Arc<DeviceStats>,
    port: Arc<Port>,
    vnetid: u64,
    /// Point mode: the one destination (`None` in dynamic mode).
    single: Option<SingleDest>,
    stop: Arc<AtomicBool>,
    injector: Arc<Injector>,
    dynamic: Option<Arc<DynTarget>>,
}

/// A point-mode device's destination, resolved once for the thread.
#[derive(Clone, Copy)]
struct SingleDest {
    addr: (libc::sockaddr_storage, libc::socklen_t),
    port: u16,
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

/// The transmit thread's reusable buffers: a header slot per frame of a
/// batch and the `sendmmsg` vectors.
struct TxBufs {
    hdrs: Vec<[u8; HDR_ROOM]>,
    hdr_lens: [usize; BATCH],
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    ok: [bool; BATCH],
    sent_ok: [bool; BATCH],
    dests: [FrameDest; BATCH],
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
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
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            addrs: (0..BATCH)
                .map(|_| (unsafe { std::mem::zeroed() }, 0))
                .collect(),
            dports: [0; BATCH],
        }
    }
}

impl TxContext {
    fn run(self) {
        let mut batch = RxBatch::new(BATCH, MAX_FRAME);
        let mut bufs = TxBufs::new();
        let mut injected: Vec<Vec<u8>> = Vec::new();
        while !self.stop.load(Ordering::SeqCst) {
            // Segments of a GSO frame left over from the last batch go
            // first, without waiting for the descriptor.
            let pending = self.backend.has_pending();
            let wait = if pending { 0 } else { mux::POLL_MS };
            let readable =
                mux::poll_two(self.backend.as_fd(), self.injector.wake.as_fd(), wait) || pending;
            mux::drain(&self.injector.wake);
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            // Injected frames first: they were queued before this wake-up.
            self.injector.take(&mut injected);
            if !injected.is_empty() {
                for chunk in injected.chunks(BATCH) {
                    let sent = self.classify_and_send(&mut bufs, chunk.len(), |i| &chunk[i][..]);
                    add(&self.stats.tx_injected, sent as u64);
                }
                injected.clear();
            }
            if !readable {
                // Answers wake the thread too: send what they released.
                if self.dynamic.is_some() {
                    self.classify_and_send(&mut bufs, 0, |_| &[][..]);
                }
                continue;
            }
            batch.clear();
            let n = match self.backend.read_batch(&mut batch) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(ifname = self.backend.ifname(), "read failed: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            if n > 0 || self.dynamic.is_some() {
                self.classify_and_send(&mut bufs, n, |i| batch.frame(i));
            }
        }
    }

    /// Sends `n` frames: to the single destination in point mode; in
    /// dynamic mode through the target cache, after the frames that
    /// answers released (taken under the same lock, so that a frame never
    /// overtakes one queued before it). Returns how many of the `n` were
    /// sent.
    fn classify_and_send<'f>(
        &self,
        b: &mut TxBufs,
        n: usize,
        frame_at: impl Fn(usize) -> &'f [u8],
    ) -> usize {
        let Some(d) = &self.dynamic else {
            b.dests[..n].fill(FrameDest::Single);
            return self.transmit(b, n, frame_at);
        };
        let c = self.classify(d, n, &frame_at);
        for chunk in c.ready.chunks(BATCH) {
            for (i, (_, p)) in chunk.iter().enumerate() {
                b.dests[i] = FrameDest::To(*p);
            }
            self.transmit(b, chunk.len(), |i| &chunk[i].0[..]);
        }
        if n > 0 {
            b.dests[..n].copy_from_slice(&c.batch[..n]);
            self.transmit(b, n, frame_at)
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

    /// Encapsulates and sends `n` (at most [`BATCH`]) frames with one
    /// `sendmmsg`, counting what happened to each. Returns how many were
    /// sent.
    fn transmit<'f>(
        &self,
        b: &mut TxBufs,
        n: usize,
        frame_at: impl Fn(usize) -> &'f [u8],
    ) -> usize {
        debug_assert!(n <= BATCH);
        let max_frame = self.tunables.max_frame.load(Ordering::Relaxed);
        let range = self.tunables.sport_range.load(Ordering::Relaxed);
        let (lo, hi) = ((range >> 16) as u16, range as u16);
        let (mut mtu_drops, mut runts, mut encap_drops, mut panics) = (0u64, 0u64, 0u64, 0u64);
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
            b.dports[i] = match (b.dests[i], &self.single) {
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
            let hl = match self
                .encap
                .encap(
                    self.vnetid,
                    RSlice::from_slice(frame),
                    RSliceMut::from_mut_slice(rest),
                )
                .into_result()
            {
                Ok(hl) => hl as usize,
                Err(e) => {
                    encap_drops += 1;
                    if e.panicked {
                        panics += 1;
                        self.encap_panicked(&e.msg);
                    }
                    continue;
                }
            };
            let sport = mux::source_port(frame, lo, hi);
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
            let (name, namelen) = match (b.dests[i], &self.single) {
                (FrameDest::Single, Some(s)) => (&s.addr.0, s.addr.1),
                _ => (&b.addrs[i].0, b.addrs[i].1),
            };
            let h = &mut b.msgs[k].msg_hdr;
            h.msg_name = (name as *const libc::sockaddr_storage) as *mut libc::c_void;
            h.msg_namelen = namelen;
            h.msg_iov = &mut b.iovs[2 * k];
            h.msg_iovlen = 2;
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
        add(&s.plugin_panics, panics);
        let m = &self.mux.stats;
        add(&m.tx_packets, sent as u64);
        add(&m.tx_bytes, wire_bytes);
        sent
    }

    /// An `encap` panic degrades the device; logged once per transition.
    #[cold]
    fn encap_panicked(&self, msg: &str) {
        if self.port.health.degrade(msg) {
            tracing::error!(ifname = self.backend.ifname(), "device degraded: {msg}");
        }
    }

    /// Sends every message, retrying the rest after a partial send; a
    /// message the kernel refuses is skipped. Returns the number sent.
    fn send_all(&self, msgs: &mut [libc::mmsghdr], sent_ok: &mut [bool; BATCH]) -> usize {
        let mut done = 0;
        let mut sent = 0;
        while done < msgs.len() {
            // SAFETY: every header points to iovecs and a destination that
            // live until the call returns; the socket is open (the mux is
            // referenced by this thread).
            let r = unsafe {
                libc::sendmmsg(
                    self.mux.tx_fd().as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as u32,
                    0,
                )
            };
            if r > 0 {
                for ok in &mut sent_ok[done..done + r as usize] {
                    *ok = true;
                }
                done += r as usize;
                sent += r as usize;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first message failed: skip it and go on.
                sent_ok[done] = false;
                done += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dataplane::backend::tap::{testnet, Tap},
        dataplane::mux::{MuxKey, MuxSet},
        plugins::{EncapEntry, PluginMeta},
        target::{Answer, Mac},
    };
    use overlay_plugin_abi::{kit, prop::ip_to_in6};
    use std::{
        net::{IpAddr, Ipv4Addr, UdpSocket},
        time::{Duration, Instant},
    };

    const VNI: u64 = 42;
    const LISTEN_PORT: u16 = 4789;
    const PEER_PORT: u16 = 4790;
    const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn loopback() -> [u8; 16] {
        ip_to_in6(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A packet path for a TAP `ifname` with the linked-in VXLAN plugin,
    /// sending to a UDP socket on the loopback that stands for the peer.
    fn start(ifname: &str) -> (Dataplane, MuxSet, Arc<DeviceStats>, UdpSocket) {
        start_with(ifname, |_| None)
    }

    /// As [`start`], in dynamic mode when `dynamic` makes a target (given
    /// the device's counters).
    fn start_with(
        ifname: &str,
        dynamic: impl FnOnce(&Arc<DeviceStats>) -> Option<Arc<DynTarget>>,
    ) -> (Dataplane, MuxSet, Arc<DeviceStats>, UdpSocket) {
        let plugin = kit::encap_box(|| overlay_vxlan::Vxlan)
            .into_result()
            .unwrap();
        let entry = Arc::new(EncapEntry {
            meta: PluginMeta {
                name: "vxlan".into(),
                version: "test".into(),
                abi_version: "test".into(),
                path: "linked-in".into(),
            },
            info: plugin.info(),
            plugin,
        });
        let encap = Arc::new(entry.plugin.new_device().into_result().unwrap());
        let backend: Arc<dyn Backend> = Arc::new(Tap::create(ifname, 1500).unwrap());
        let stats = Arc::new(DeviceStats::default());
        let port = Arc::new(Port {
            backend: backend.clone(),
            stats: stats.clone(),
            health: Arc::new(crate::stats::Health::default()),
        });
        let key = MuxKey {
            domain: libc::AF_INET,
            sotype: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
            addr: loopback(),
            port: LISTEN_PORT,
            options: Vec::new(),
        };
        let mut muxes = MuxSet::default();
        let mux = muxes.join(key, &entry, VNI, port.clone()).unwrap();
        let peer = UdpSocket::bind(("127.0.0.1", PEER_PORT)).unwrap();
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let dest = match dynamic(&stats) {
            Some(d) => TxDest::Dynamic(d),
            None => TxDest::Point(Point {
                mac: [0; 6],
                ip: loopback(),
                port: PEER_PORT,
            }),
        };
        let target = TxTarget { vnetid: VNI, dest };
        let tunables = Arc::new(TxTunables::new(1500, true, 49152, 65535));
        let dp =
            Dataplane::start(backend, mux, port, encap, tunables, stats.clone(), target).unwrap();
        (dp, muxes, stats, peer)
    }

    /// As [`start`], in dynamic mode: the device (link 1, named
    /// `ifname`) has a target cache whose lookups `service` serves.
    fn start_dynamic(
        ifname: &str,
        service: &Arc<crate::target::lookup::LookupService>,
    ) -> (
        Dataplane,
        MuxSet,
        Arc<DeviceStats>,
        UdpSocket,
        Arc<DynTarget>,
    ) {
        let mut made = None;
        let (dp, muxes, stats, peer) = start_with(ifname, |stats| {
            let t = Arc::new(DynTarget::new(
                crate::target::DynIdentity {
                    linkid: 1,
                    name: ifname.into(),
                    needs: 6,
                    domain: libc::AF_INET,
                },
                crate::target::CacheLimits::default(),
                stats.clone(),
                Arc::new(crate::stats::Health::default()),
                service,
            ));
            made = Some(t.clone());
            Some(t)
        });
        (dp, muxes, stats, peer, made.unwrap())
    }

    /// The inner frames the peer receives within `wait` that `keep` accepts,
    /// after checking each VXLAN header carries [`VNI`].
    fn receive(
        peer: &UdpSocket,
        want: usize,
        wait: Duration,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < want && Instant::now() < deadline {
            let Ok(n) = peer.recv(&mut buf) else { continue };
            let h = overlay_vxlan::Header::new_checked(&buf[..n]).unwrap();
            assert!(h.vni_valid());
            assert_eq!(h.vni() as u64, VNI);
            let inner = &buf[overlay_vxlan::HEADER_LEN..n];
            if keep(inner) {
                got.push(inner.to_vec());
            }
        }
        got
    }

    fn test_frame(i: u8) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x09]);
        f[6..12].copy_from_slice(&HOST_MAC);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental
        f[14] = i;
        f
    }

    #[test]
    fn outbound_injection_is_encapsulated_in_order() {
        testnet::run("outbound_injection_is_encapsulated_in_order", |ns| {
            ns.ip(&["link", "set", "lo", "up"]);
            let (dp, mut muxes, stats, peer) = start("inj0");
            let inj = dp.injector();
            for i in 0..5 {
                inj.outbound(&test_frame(i)).unwrap();
            }
            let got = receive(&peer, 5, Duration::from_secs(5), |f| {
                f[12..14] == [0x88, 0xb5]
            });
            let want: Vec<Vec<u8>> = (0..5).map(test_frame).collect();
            assert_eq!(got, want);
            // The thread counts a batch just after sending it.
            let deadline = Instant::now() + Duration::from_secs(2);
            while stats.tx_injected.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(stats.tx_injected.load(Ordering::Relaxed), 5);
            assert!(stats.tx_packets.load(Ordering::Relaxed) >= 5);

            // Bad sizes are refused and counted; nothing is queued.
            let e = inj.outbound(&[0u8; 10]).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL, "{}", e.msg);
            assert!(e.msg.contains("14 to 1518"), "{}", e.msg);
            let e = inj.outbound(&vec![0u8; 1519]).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL);
            assert_eq!(stats.drop_inject.load(Ordering::Relaxed), 2);

            // Once stopped, injection fails and nothing more is sent.
            let _backend = dp.stop(&mut muxes);
            let e = inj.outbound(&test_frame(9)).unwrap_err();
            assert_eq!(e.errno, libc::ENXIO, "{}", e.msg);
            let e = inj.inbound(&[&test_frame(9)]).unwrap_err();
            assert_eq!(e.errno, libc::ENXIO);
            assert!(receive(&peer, 1, Duration::from_millis(400), |_| true).is_empty());
        });
    }

    #[test]
    fn inbound_injection_reaches_the_hosts() {
        testnet::run("inbound_injection_reaches_the_hosts", |ns| {
            ns.ip(&["link", "set", "lo", "up"]);
            let (dp, mut muxes, stats, peer) = start("inj1");
            ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "inj1"]);
            ns.wait_up("inj1");
            // An ARP request injected towards the hosts is answered by the
            // host stack, and the answer comes back down the transmit path.
            let request = testnet::arp_request(HOST_MAC, [192, 0, 2, 2], [192, 0, 2, 1]);
            assert_eq!(dp.injector().inbound(&[&request]).unwrap(), 1);
            let got = receive(&peer, 1, Duration::from_secs(5), |f| {
                testnet::arp_reply(f).is_some()
            });
            assert_eq!(got.len(), 1, "no ARP reply came back");
            let (sha, spa, dst) = testnet::arp_reply(&got[0]).unwrap();
            assert_eq!(spa, [192, 0, 2, 1]);
            assert_eq!(sha, dp.backend.link_addr());
            assert_eq!(dst, HOST_MAC);
            assert_eq!(stats.rx_injected.load(Ordering::Relaxed), 1);
            let _backend = dp.stop(&mut muxes);
        });
    }

    #[test]
    fn a_full_injection_queue_refuses_more() {
        testnet::run("a_full_injection_queue_refuses_more", |_ns| {
            let backend: Arc<dyn Backend> = Arc::new(Tap::create("inj2", 1500).unwrap());
            let stats = Arc::new(DeviceStats::default());
            let tunables = Arc::new(TxTunables::new(1500, false, 49152, 65535));
            // No transmit thread drains this injector.
            let inj = Injector::new(backend, tunables, stats.clone()).unwrap();
            for i in 0..INJECT_QUEUE_MAX {
                inj.outbound(&test_frame(i as u8)).unwrap();
            }
            let e = inj.outbound(&test_frame(0)).unwrap_err();
            assert_eq!(e.errno, libc::ENOBUFS, "{}", e.msg);
            assert_eq!(stats.drop_inject.load(Ordering::Relaxed), 1);
            // Closing forgets the waiting frames, counting them.
            inj.close();
            assert_eq!(
                stats.drop_inject.load(Ordering::Relaxed),
                1 + INJECT_QUEUE_MAX as u64
            );
        });
    }

    #[test]
    fn dynamic_mode_counts_refused_sizes_without_a_single_destination() {
        testnet::run(
            "dynamic_mode_counts_refused_sizes_without_a_single_destination",
            |ns| {
                use crate::target::lookup::LookupService;
                ns.ip(&["link", "set", "lo", "up"]);
                let service = LookupService::new(1);
                let (mut dp, mut muxes, stats, peer, target) = start_dynamic("dyn1", &service);
                // The batch is sent here, not by the thread.
                dp.stop_tx();
                let ctx = dp.tx_context(Arc::new(AtomicBool::new(false))).unwrap();
                assert!(
                    ctx.single.is_none(),
                    "dynamic mode has no single destination"
                );
                let known = [0x02, 0, 0, 0, 0, 0x09];
                let peer_point = Point {
                    mac: [0; 6],
                    ip: loopback(),
                    port: PEER_PORT,
                };
                target.set(&Mac(known), Answer::To(peer_point));
                let mut big = vec![0u8; 1519];
                big[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
                let runt = vec![0x02u8; 10];
                let frames = [runt, test_frame(1), big];
                let before = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let (mtu, runts, no_dest, tx) = (
                    before(&stats.drop_mtu),
                    before(&stats.drop_runt),
                    before(&stats.drop_no_destination),
                    before(&stats.tx_packets),
                );
                let mut bufs = TxBufs::new();
                let sent = ctx.classify_and_send(&mut bufs, frames.len(), |i| &frames[i][..]);
                assert_eq!(sent, 1);
                assert_eq!(before(&stats.drop_mtu) - mtu, 1);
                assert_eq!(before(&stats.drop_runt) - runts, 1);
                assert_eq!(before(&stats.drop_no_destination) - no_dest, 0);
                assert_eq!(before(&stats.tx_packets) - tx, 1);
                // Refused frames never reach the cache.
                assert_eq!(target.entry(&Mac([0x02, 0, 0, 0, 0, 0x0b])), None);
                let got = receive(&peer, 1, Duration::from_secs(5), |f| {
                    f[12..14] == [0x88, 0xb5]
                });
                assert_eq!(got, vec![test_frame(1)]);
                let _backend = dp.stop(&mut muxes);
                service.shutdown();
            },
        );
    }

    #[test]
    fn dynamic_mode_looks_up_misses_and_sends_in_order() {
        testnet::run("dynamic_mode_looks_up_misses_and_sends_in_order", |ns| {
            use crate::target::lookup::LookupService;
            ns.ip(&["link", "set", "lo", "up"]);
            let service = LookupService::new(2);
            let plugin = kit::lookup_box(|| crate::target::lookup::tests::Table {
                peer_port: PEER_PORT,
            })
            .into_result()
            .unwrap();
            let inst = Arc::new(plugin.new_device(6, VNI).into_result().unwrap());
            let (dp, mut muxes, stats, peer, target) = start_dynamic("dyn0", &service);
            service.add_device(target.clone(), inst, "table", false);
            let inj = dp.injector();
            // Five frames to a MAC not yet known: one lookup, then all
            // five go out in order.
            for i in 0..5 {
                inj.outbound(&test_frame(i)).unwrap();
            }
            let got = receive(&peer, 5, Duration::from_secs(5), |f| {
                f[12..14] == [0x88, 0xb5]
            });
            assert_eq!(got, (0..5).map(test_frame).collect::<Vec<_>>());
            assert_eq!(stats.lookup_requests.load(Ordering::Relaxed), 1);
            assert_eq!(stats.lookup_answers.load(Ordering::Relaxed), 1);
            let mac = [0x02, 0, 0, 0, 0, 0x09];
            assert!(matches!(
                target.entry(&Mac(mac)),
                Some((crate::target::State::Valid(_), 0))
            ));
            // A hit now needs no lookup.
            // (The host stack's own multicast, replicated by the table,
            // is told apart by its ethertype.)
            let ours = |f: &[u8]| f[12..14] == [0x88, 0xb5];
            inj.outbound(&test_frame(5)).unwrap();
            assert_eq!(receive(&peer, 1, Duration::from_secs(5), ours).len(), 1);
            assert_eq!(stats.lookup_requests.load(Ordering::Relaxed), 1);

            // An unknown MAC is dropped by the lookup; nothing is sent.
            let mut unknown = test_frame(7);
            unknown[5] = 0x0a;
            inj.outbound(&unknown).unwrap();
            assert!(receive(&peer, 1, Duration::from_millis(400), ours).is_empty());
            assert_eq!(stats.lookup_drops.load(Ordering::Relaxed), 1);

            // Broadcast is replicated, frame by frame, and never cached.
            let mut bcast = test_frame(8);
            bcast[..6].copy_from_slice(&[0xff; 6]);
            inj.outbound(&bcast).unwrap();
            inj.outbound(&bcast).unwrap();
            let got = receive(&peer, 2, Duration::from_secs(5), ours);
            assert_eq!(got, vec![bcast.clone(), bcast.clone()]);
            assert!(stats.lookup_replicated.load(Ordering::Relaxed) >= 2);
            assert!(!matches!(
                target.entry(&Mac::BROADCAST),
                Some((crate::target::State::Valid(_), _))
            ));
            service.remove_device(1);
            let _backend = dp.stop(&mut muxes);
            service.shutdown();
        });
    }
}
