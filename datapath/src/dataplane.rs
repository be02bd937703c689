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

use crate::{
    backend::{Backend, RxBatch, BATCH, ETH_HLEN, MAX_FRAME, VLAN_TAGSZ},
    error::{CtlError, CtlResult},
    mux::{self, Mux, Port},
    stats::{add, DeviceStats},
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
        Arc,
    },
    thread::JoinHandle,
};

/// Room for the UDP header plus the largest encapsulation header.
const HDR_ROOM: usize = 8 + 512;

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
    /// The point destination.
    pub point: Point,
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
    tx: Option<TxThread>,
}

struct TxThread {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    handle: JoinHandle<()>,
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
        let mut dp = Dataplane {
            backend,
            mux,
            port,
            encap,
            tunables,
            stats,
            target,
            tx: None,
        };
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

    fn start_tx(&mut self) -> CtlResult<()> {
        let dest = mux::raw_dest(self.mux.key.domain, self.target.point.ip).ok_or_else(|| {
            CtlError::invalid(format!(
                "the destination {} and the listen address of {} are not of the same IP version",
                overlay_plugin_abi::prop::ip_from_in6(self.target.point.ip),
                self.mux.key.endpoint()
            ))
        })?;
        let wake = Arc::new(mux::new_wake_fd().map_err(io_ctl)?);
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = TxContext {
            backend: self.backend.clone(),
            mux: self.mux.clone(),
            encap: self.encap.clone(),
            tunables: self.tunables.clone(),
            stats: self.stats.clone(),
            port: self.port.clone(),
            vnetid: self.target.vnetid,
            dport: self.target.point.port,
            dest,
            stop: stop.clone(),
            wake: wake.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("tx-{}", self.backend.ifname()))
            .spawn(move || ctx.run())
            .map_err(io_ctl)?;
        self.tx = Some(TxThread { stop, wake, handle });
        Ok(())
    }

    fn stop_tx(&mut self) {
        if let Some(t) = self.tx.take() {
            t.stop.store(true, Ordering::SeqCst);
            mux::wake(&t.wake);
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
        self.stop_tx();
        muxes.leave(&self.mux, self.target.vnetid);
        self.backend.clone()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
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
    dport: u16,
    dest: (libc::sockaddr_storage, libc::socklen_t),
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

impl TxContext {
    fn run(self) {
        let mut batch = RxBatch::new(BATCH, MAX_FRAME);
        let mut hdrs = vec![[0u8; HDR_ROOM]; BATCH];
        let mut hdr_lens = [0usize; BATCH];
        let mut iovs: Vec<libc::iovec> = vec![
            libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0
            };
            2 * BATCH
        ];
        // SAFETY: mmsghdr is plain data; all-zero is valid.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut ok = [false; BATCH];
        let mut sent_ok = [false; BATCH];
        while !self.stop.load(Ordering::SeqCst) {
            if !mux::poll_two(self.backend.as_fd(), self.wake.as_fd(), mux::POLL_MS) {
                continue;
            }
            mux::drain(&self.wake);
            batch.clear();
            let n = match self.backend.read_batch(&mut batch) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(ifname = self.backend.ifname(), "read failed: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            if n == 0 {
                continue;
            }
            let max_frame = self.tunables.max_frame.load(Ordering::Relaxed);
            let range = self.tunables.sport_range.load(Ordering::Relaxed);
            let (lo, hi) = ((range >> 16) as u16, range as u16);
            let (mut mtu_drops, mut runts, mut encap_drops, mut panics) = (0u64, 0u64, 0u64, 0u64);
            for i in 0..n {
                ok[i] = false;
                let frame = batch.frame(i);
                if frame.len() > max_frame {
                    mtu_drops += 1;
                    continue;
                }
                if frame.len() < ETH_HLEN {
                    runts += 1;
                    continue;
                }
                let (udp, rest) = hdrs[i].split_at_mut(8);
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
                mux::udp_header(udp, sport, self.dport, hl + frame.len());
                hdr_lens[i] = 8 + hl;
                ok[i] = true;
            }
            // Gather the packets that survived into the message array.
            let mut k = 0;
            for i in 0..n {
                if !ok[i] {
                    continue;
                }
                let frame = batch.frame(i);
                iovs[2 * k] = libc::iovec {
                    iov_base: hdrs[i].as_mut_ptr().cast(),
                    iov_len: hdr_lens[i],
                };
                iovs[2 * k + 1] = libc::iovec {
                    iov_base: frame.as_ptr() as *mut libc::c_void,
                    iov_len: frame.len(),
                };
                let h = &mut msgs[k].msg_hdr;
                h.msg_name = (&self.dest.0 as *const libc::sockaddr_storage) as *mut libc::c_void;
                h.msg_namelen = self.dest.1;
                h.msg_iov = &mut iovs[2 * k];
                h.msg_iovlen = 2;
                k += 1;
            }
            let sent = self.send_all(&mut msgs[..k], &mut sent_ok);
            let (mut tx_bytes, mut wire_bytes) = (0u64, 0u64);
            for j in (0..k).filter(|j| sent_ok[*j]) {
                let inner = iovs[2 * j + 1].iov_len as u64;
                tx_bytes += inner;
                wire_bytes += inner + iovs[2 * j].iov_len as u64 - 8;
            }
            let s = &self.stats;
            add(&s.tx_packets, sent as u64);
            add(&s.tx_bytes, tx_bytes);
            add(&s.drop_send, (k - sent) as u64);
            add(&s.drop_mtu, mtu_drops);
            add(&s.drop_runt, runts);
            add(&s.drop_encap, encap_drops);
            add(&s.plugin_panics, panics);
            let m = &self.mux.stats;
            add(&m.tx_packets, sent as u64);
            add(&m.tx_bytes, wire_bytes);
        }
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
