//! A mux's receive side, run by a packet thread: underlay datagrams are
//! decapsulated and their inner frames delivered to the devices.
//!
//! One `recvmmsg` reads up to [`RX_BATCH`] messages; with `UDP_GRO` a
//! message may hold a run of datagrams of one size (the last shorter),
//! which are split here. Each datagram is parsed by the plugin (`decap`),
//! its device found by virtual network id, and its inner frame handed to
//! that device's *lane*: consecutive TCP segments of one flow whose
//! checksums are right are merged ([`coalesce::Run`]) and written to the
//! backend as one GSO frame, one write where there would have been dozens;
//! every other frame is written as it comes, in order. A datagram that
//! does not parse, or whose virtual network id is unknown, is dropped and
//! counted, and the datagrams around it are delivered.

use super::backend::ETH_HLEN;
use super::{
    mux::{Mux, Port, Table},
    offload::{
        coalesce::Run,
        layout::{checksum_ok, layout, TCP},
    },
    threads::{More, Scratch, Source},
};
use crate::{
    plugins::{DecapError, EncapPlugin},
    stats::add,
};
use std::{
    io::IoSlice,
    ops::Range,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::Arc,
};

/// Messages read per `recvmmsg`.
pub const RX_BATCH: usize = 32;
/// Room per message: a 64 KiB run of datagrams (`UDP_GRO`).
const RX_BUF: usize = 65536;
/// `recvmmsg` calls per run, bounding how long one mux holds its thread.
const ROUNDS: usize = 4;

/// A packet thread's receive buffers.
pub struct RxScratch {
    bufs: Vec<u8>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// One control buffer per message, for the `UDP_GRO` segment size.
    cmsgs: Vec<[u64; 8]>,
    lanes: Vec<Lane>,
}

impl RxScratch {
    /// Buffers for [`RX_BATCH`] messages of 64 KiB.
    pub fn new() -> RxScratch {
        let mut s = RxScratch {
            bufs: vec![0u8; RX_BATCH * RX_BUF],
            iovs: Vec::with_capacity(RX_BATCH),
            // SAFETY: mmsghdr is plain data; all-zero is valid.
            msgs: (0..RX_BATCH)
                .map(|_| unsafe { std::mem::zeroed() })
                .collect(),
            cmsgs: vec![[0; 8]; RX_BATCH],
            lanes: Vec::new(),
        };
        for i in 0..RX_BATCH {
            let base = s.bufs[i * RX_BUF..].as_mut_ptr();
            s.iovs.push(libc::iovec {
                iov_base: base.cast(),
                iov_len: RX_BUF,
            });
        }
        s
    }

    /// Points every message at its buffer and control space again (the
    /// kernel rewrites lengths on every call).
    fn rearm(&mut self) {
        for i in 0..RX_BATCH {
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = std::mem::size_of::<[u64; 8]>() as _;
            h.msg_flags = 0;
        }
    }
}

impl Default for RxScratch {
    fn default() -> Self {
        RxScratch::new()
    }
}

/// A device's share of a batch: the run of segments being merged.
struct Lane {
    port: Arc<Port>,
    run: Option<Run>,
    /// The first segment of the run, whole (written as it came if no other
    /// joins it).
    first: Range<usize>,
    /// The payloads of the run's segments, in `bufs`.
    parts: Vec<Range<usize>>,
    /// Bytes of the run's segments, as received.
    bytes: usize,
    coalesce: bool,
}

impl Source for Mux {
    fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    fn run(&self, scratch: &mut Scratch) -> More {
        let s = &mut scratch.rx;
        let table = self.table();
        for _ in 0..ROUNDS {
            let n = self.read(s);
            if n == 0 {
                break;
            }
            self.deliver(s, &table, n);
            if n < RX_BATCH {
                break;
            }
        }
        More::No
    }
}

impl Mux {
    /// One `recvmmsg`: the number of messages read.
    fn read(&self, s: &mut RxScratch) -> usize {
        s.rearm();
        // SAFETY: msgs holds RX_BATCH headers whose iovecs and control
        // buffers point into `s`, which outlives the call; the socket is
        // open.
        let n = unsafe {
            libc::recvmmsg(
                self.rx.as_raw_fd(),
                s.msgs.as_mut_ptr(),
                RX_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        n.max(0) as usize
    }

    /// Splits, decapsulates and delivers `n` messages.
    fn deliver(&self, s: &mut RxScratch, table: &Table, n: usize) {
        let plugin = &self.encap.plugin;
        let (mut pkts, mut bytes, mut gro) = (0u64, 0u64, 0u64);
        let (mut unknown, mut bad, mut short, mut oam) = (0u64, 0u64, 0u64, 0u64);
        let mut panics = 0u64;
        for i in 0..n {
            let m = &s.msgs[i];
            let len = m.msg_len as usize;
            let truncated = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let seg = gro_size(&m.msg_hdr).unwrap_or(len).max(1);
            if seg < len {
                gro += 1;
            }
            let base = i * RX_BUF;
            let mut off = 0;
            while off < len {
                let end = (off + seg).min(len);
                let at = base + off..base + end;
                off = end;
                pkts += 1;
                bytes += at.len() as u64;
                if truncated && end == len {
                    short += 1;
                    continue;
                }
                let (vnetid, inner) = match decap(plugin, &s.bufs[at.clone()]) {
                    Decap::Frame { vnetid, inner } => (vnetid, inner),
                    Decap::Bad { panicked } => {
                        bad += 1;
                        if let Some(msg) = panicked {
                            panics += 1;
                            self.decap_panicked(table, &msg);
                        }
                        continue;
                    }
                    Decap::Oam => {
                        oam += 1;
                        continue;
                    }
                    Decap::Short => {
                        short += 1;
                        continue;
                    }
                };
                let Some(port) = table.get(&vnetid) else {
                    unknown += 1;
                    continue;
                };
                let lane = match s.lanes.iter().position(|l| Arc::ptr_eq(&l.port, port)) {
                    Some(k) => k,
                    None => {
                        s.lanes.push(Lane {
                            port: port.clone(),
                            run: None,
                            first: 0..0,
                            parts: Vec::new(),
                            bytes: 0,
                            coalesce: self.coalesce && port.backend.caps().gso_write,
                        });
                        s.lanes.len() - 1
                    }
                };
                let frame = at.start + inner.start..at.start + inner.end;
                offer(&mut s.lanes[lane], &s.bufs, frame);
            }
        }
        for lane in &mut s.lanes {
            flush(lane, &s.bufs);
        }
        s.lanes.clear();
        let st = &self.stats;
        add(&st.rx_packets, pkts);
        add(&st.rx_bytes, bytes);
        add(&st.rx_gro, gro);
        add(&st.drop_unknown_vnetid, unknown);
        add(&st.drop_bad_header, bad);
        add(&st.drop_short, short);
        add(&st.drop_oam, oam);
        add(&st.plugin_panics, panics);
    }
}

/// What the receive side makes of one underlay datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decap {
    /// An inner frame (at `inner` in the datagram) for `vnetid`.
    Frame {
        /// The virtual network id the plugin read.
        vnetid: u64,
        /// Where the inner Ethernet frame lies in the datagram.
        inner: Range<usize>,
    },
    /// The plugin refused the header; `panicked` carries the message when
    /// it panicked doing so.
    Bad {
        /// The panic's message, when the plugin panicked.
        panicked: Option<String>,
    },
    /// An OAM packet: not for the hosts.
    Oam,
    /// The header claims more than the datagram holds, or no Ethernet
    /// header is left after it.
    Short,
}

/// Decapsulates one datagram with `plugin` and checks what it answered
/// against the datagram: the receive side's decision before it looks up
/// the device. Pure apart from the plugin call.
pub fn decap(plugin: &EncapPlugin, pkt: &[u8]) -> Decap {
    let info = match plugin.decap(pkt) {
        Ok(info) => info,
        Err(DecapError::Refused) => return Decap::Bad { panicked: None },
        Err(DecapError::Panicked(msg)) => {
            return Decap::Bad {
                panicked: Some(msg),
            }
        }
    };
    if info.flags & overlay_plugin_abi::DECAP_F_OAM != 0 {
        return Decap::Oam;
    }
    let hl = info.header_len as usize;
    if hl > pkt.len() || pkt.len() - hl < ETH_HLEN {
        return Decap::Short;
    }
    Decap::Frame {
        vnetid: info.vnetid,
        inner: hl..pkt.len(),
    }
}

/// The segment size of a `UDP_GRO` run, from the message's control data.
fn gro_size(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the control buffer was filled by recvmmsg, and the CMSG_*
    // functions walk it within msg_controllen; the data read is an int
    // inside a cmsg of that type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == libc::UDP_GRO {
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Whether `f` is a TCP segment whose checksum is right (the only kind a
/// run may take: the merged frame's checksum is left to the kernel).
pub fn tcp_ok(f: &[u8]) -> bool {
    layout(f).is_some_and(|l| l.proto == TCP && checksum_ok(f, &l))
}

/// Hands frame `bufs[frame]` to its lane: joins the run, or ends it and
/// starts another, or is written as it is.
fn offer(lane: &mut Lane, bufs: &[u8], frame: Range<usize>) {
    let f = &bufs[frame.clone()];
    if !lane.coalesce {
        write_one(&lane.port, f);
        return;
    }
    let ok = tcp_ok(f);
    if ok {
        if let Some(run) = lane.run.as_mut() {
            if let Some(p) = run.push(f) {
                lane.parts.push(frame.start + p.start..frame.start + p.end);
                lane.bytes += f.len();
                return;
            }
        }
    }
    flush(lane, bufs);
    if ok {
        if let Some((run, p)) = Run::start(f) {
            lane.run = Some(run);
            lane.parts.push(frame.start + p.start..frame.start + p.end);
            lane.first = frame;
            lane.bytes = f.len();
            return;
        }
    }
    write_one(&lane.port, f);
}

/// Writes the lane's run: one GSO frame, or its only segment as it came.
fn flush(lane: &mut Lane, bufs: &[u8]) {
    let Some(mut run) = lane.run.take() else {
        return;
    };
    let segs = run.segs() as u64;
    if segs == 1 {
        write_one(&lane.port, &bufs[lane.first.clone()]);
    } else {
        let (h, hdr) = run.finish();
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(lane.parts.len() + 1);
        iov.push(IoSlice::new(hdr));
        iov.extend(lane.parts.iter().map(|p| IoSlice::new(&bufs[p.clone()])));
        let st = &lane.port.stats;
        match lane.port.backend.write_gso(&h, &iov) {
            Ok(true) => {
                add(&st.rx_packets, segs);
                add(&st.rx_bytes, lane.bytes as u64);
                add(&st.rx_gso, 1);
            }
            Ok(false) => add(&st.drop_backend, segs),
            Err(e) => {
                tracing::debug!(
                    ifname = lane.port.backend.ifname(),
                    "GSO frame not written: {e}"
                );
                add(&st.drop_backend, segs);
            }
        }
    }
    lane.parts.clear();
}

/// Writes one whole frame to a device.
fn write_one(port: &Port, f: &[u8]) {
    match port.backend.write_batch(&[f]) {
        Ok(1) => {
            add(&port.stats.rx_packets, 1);
            add(&port.stats.rx_bytes, f.len() as u64);
        }
        _ => add(&port.stats.drop_backend, 1),
    }
}
