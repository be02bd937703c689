//! Segmentation of GSO super-frames (TCP over IPv4/IPv6, UDP with
//! `UDP_SEGMENT`), as the kernel does for a device without TSO/USO.
//!
//! A [`Plan`] says how a super-frame splits: every segment has the
//! super-frame's headers (Ethernet to TCP/UDP) with its own lengths, IPv4
//! id, TCP sequence number, flags and checksums, followed by `mss` bytes
//! of the payload (the last one fewer). Two ways use it:
//!
//! * [`Plan::write_headers`] writes only a segment's headers, computing its
//!   checksum over the payload where it lies in the super-frame: the
//!   transmit path puts those headers and the payload slices side by side
//!   in one UDP GSO send without copying a payload byte.
//! * [`Plan::segment`] writes a whole segment into a buffer, for paths that
//!   need separate frames (no UDP GSO, an `AF_PACKET` peer, a frame queued
//!   for a lookup).

use super::{
    layout::{l4_checksum, layout, write_ipv4_checksum, Layout, TCP, UDP},
    vnet::{self, Bad},
};
use std::ops::Range;

/// TCP flags.
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// How one GSO super-frame splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    layout: Layout,
    /// Length of all headers (Ethernet to TCP/UDP).
    hdrs: usize,
    mss: usize,
    /// Length of the super-frame.
    len: usize,
    /// Number of segments.
    count: usize,
}

impl Plan {
    /// The split of `src` described by `h`. Fails with [`Bad::GsoSize`]
    /// for a segment size of 0 and [`Bad::GsoType`] for a GSO type we do
    /// not segment or headers that do not match it.
    pub fn new(src: &[u8], h: &vnet::Hdr) -> Result<Plan, Bad> {
        let mut layout = layout(src).ok_or(Bad::GsoType)?;
        let want = match h.gso_type & !vnet::GSO_ECN {
            vnet::GSO_TCPV4 if !layout.v6 => TCP,
            vnet::GSO_TCPV6 if layout.v6 => TCP,
            vnet::GSO_UDP_L4 => UDP,
            _ => return Err(Bad::GsoType),
        };
        if layout.proto != want {
            return Err(Bad::GsoType);
        }
        let l4_hdr = layout.l4_hdr_len(src);
        let hdrs = layout.l4 + l4_hdr;
        if hdrs > src.len() || (want == TCP && l4_hdr < 20) {
            return Err(Bad::GsoType);
        }
        let mss = h.gso_size as usize;
        if mss == 0 {
            return Err(Bad::GsoSize);
        }
        layout.end = src.len();
        let count = (src.len() - hdrs).div_ceil(mss).max(1);
        Ok(Plan {
            layout,
            hdrs,
            mss,
            len: src.len(),
            count,
        })
    }

    /// Number of segments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the headers every segment carries.
    pub fn hdrs_len(&self) -> usize {
        self.hdrs
    }

    /// Payload bytes of every segment but the last.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// The headers' layout (offsets in a segment without a VLAN tag added).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where segment `i`'s payload lies in the super-frame.
    pub fn payload(&self, i: usize) -> Range<usize> {
        let from = self.hdrs + i * self.mss;
        from..(from + self.mss).min(self.len)
    }

    /// Length of segment `i` (headers and payload).
    pub fn seg_len(&self, i: usize) -> usize {
        self.hdrs + self.payload(i).len()
    }

    /// Writes segment `i`'s headers into `out[..hdrs_len()]`, with its
    /// lengths, IPv4 id, sequence number, flags and checksums (computed
    /// over its payload in `src`). `src` is the super-frame the plan was
    /// made for; `out` is at least [`Plan::hdrs_len`] long.
    pub fn write_headers(&self, src: &[u8], i: usize, out: &mut [u8]) {
        let out = &mut out[..self.hdrs];
        out.copy_from_slice(&src[..self.hdrs]);
        self.fix(src, i, out, &self.layout);
    }

    /// Writes whole segment `i` of `src` into `out`, with `vlan` inserted
    /// after the MAC addresses; returns its length, `None` if it does not
    /// fit.
    pub fn segment(
        &self,
        src: &[u8],
        i: usize,
        vlan: Option<[u8; 4]>,
        out: &mut [u8],
    ) -> Option<usize> {
        let shift = if vlan.is_some() { 4 } else { 0 };
        let payload = &src[self.payload(i)];
        let h = copy_tagged(&src[..self.hdrs], vlan, out)?;
        let len = h + payload.len();
        out.get_mut(h..len)?.copy_from_slice(payload);
        let l = Layout {
            l3: self.layout.l3 + shift,
            l4: self.layout.l4 + shift,
            end: len,
            ..self.layout
        };
        self.fix(src, i, &mut out[..h], &l);
        Some(len)
    }

    /// Sets the fields of segment `i`'s headers `hdr` (laid out as `l`)
    /// that differ from the super-frame's.
    fn fix(&self, src: &[u8], i: usize, hdr: &mut [u8], l: &Layout) {
        let payload = &src[self.payload(i)];
        let plen = payload.len();
        let put16 =
            |hdr: &mut [u8], at: usize, v: u16| hdr[at..at + 2].copy_from_slice(&v.to_be_bytes());
        let l4_len = hdr.len() - l.l4 + plen;
        if l.v6 {
            put16(hdr, l.l3 + 4, (l4_len) as u16);
        } else {
            put16(hdr, l.l3 + 2, (hdr.len() - l.l3 + plen) as u16);
            // Consecutive ids, as the kernel gives them.
            let id = u16::from_be_bytes([hdr[l.l3 + 4], hdr[l.l3 + 5]]);
            put16(hdr, l.l3 + 4, id.wrapping_add(i as u16));
            write_ipv4_checksum(hdr, l);
        }
        if l.proto == TCP {
            let at = l.l4 + 4;
            let seq = u32::from_be_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
            let seq = seq.wrapping_add((i * self.mss) as u32);
            hdr[at..at + 4].copy_from_slice(&seq.to_be_bytes());
            let flags = &mut hdr[l.l4 + 13];
            if i + 1 != self.count {
                *flags &= !(FIN | PSH); // the last segment only
            }
            if i > 0 {
                *flags &= !CWR; // the first segment only
            }
        } else {
            put16(hdr, l.l4 + 4, l4_len as u16);
        }
        let c = l4_checksum(hdr, l, payload);
        let at = l.csum_at();
        hdr[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Copies `src` into `out`, inserting `vlan` after the MAC addresses.
/// `None` if it does not fit.
pub fn copy_tagged(src: &[u8], vlan: Option<[u8; 4]>, out: &mut [u8]) -> Option<usize> {
    match vlan {
        None => {
            out.get_mut(..src.len())?.copy_from_slice(src);
            Some(src.len())
        }
        Some(tag) => {
            let len = src.len() + 4;
            if src.len() < 12 || out.len() < len {
                return None;
            }
            out[..12].copy_from_slice(&src[..12]);
            out[12..16].copy_from_slice(&tag);
            out[16..len].copy_from_slice(&src[12..]);
            Some(len)
        }
    }
}

/// Largest number of segments one UDP GSO send carries (the kernel's
/// `UDP_MAX_SEGMENTS` is 64 on older kernels and 128 on newer ones).
pub const UDP_GSO_MAX_SEGS: usize = 64;

/// How many datagrams of `seg_len` bytes of UDP payload one UDP GSO send
/// may carry: at most [`UDP_GSO_MAX_SEGS`], and at most 64 KiB of IP
/// packet in all.
pub fn segs_per_send(seg_len: usize, v6: bool) -> usize {
    let max_payload = if v6 { 65535 - 8 } else { 65535 - 20 - 8 };
    (max_payload / seg_len.max(1)).clamp(1, UDP_GSO_MAX_SEGS)
}
