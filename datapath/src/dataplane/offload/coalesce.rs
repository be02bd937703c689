//! Receive coalescing: consecutive TCP segments of one flow merged into
//! one GSO frame for the TAP, as the kernel's GRO merges them for a NIC.
//!
//! A [`Run`] holds the headers of the first segment and checks each next
//! segment against them with the kernel's GRO rules: same Ethernet and IP
//! headers but for length, id and checksum (ids consecutive, or all equal
//! with DF set), same ports, acknowledgment, window, header length and
//! options, the next sequence number, only ACK (and PSH or CWR where they
//! may be) among the flags, a payload no longer than the first segment's.
//! A segment shorter than the first, or one with PSH, ends the run after
//! joining it. The caller keeps each segment's payload where it lies
//! ([`Run::start`] and [`Run::push`] return its range in the segment) and
//! writes the run as one frame: [`Run::finish`]'s virtio-net header and
//! headers, then the payloads in order. The merged frame's TCP checksum is
//! left partial (`NEEDS_CSUM`) for the kernel, so every segment's own
//! checksum must have been checked before it joins: a segment that fails
//! is written alone, as it came, and the host stack drops it.

use super::{
    csum::{fold, pseudo_sum},
    layout::{layout, write_ipv4_checksum, Layout, TCP},
    vnet,
};
use std::ops::Range;

/// Most segments merged into one frame.
pub const MAX_SEGS: usize = 64;
/// Longest headers a run keeps (Ethernet with two tags, IPv6, TCP with
/// the largest options).
pub const MAX_HDR: usize = 22 + 40 + 60;

/// TCP flags.
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const URG: u8 = 0x20;
const CWR: u8 = 0x80;

/// A run of TCP segments of one flow, being merged.
#[derive(Debug, Clone)]
pub struct Run {
    hdr: [u8; MAX_HDR],
    hdr_len: usize,
    l: Layout,
    /// Payload of the first segment: every segment but the last has it.
    mss: usize,
    segs: usize,
    /// Payload bytes merged so far.
    payload: usize,
    next_seq: u32,
    /// IPv4 ids: each segment's is the previous one's plus one, unless
    /// `fixed_id` (DF set and all equal).
    next_id: u16,
    fixed_id: bool,
    /// A segment shorter than `mss`, or with PSH, joined: nothing more may.
    closed: bool,
    psh: bool,
}

fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

fn be32(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

/// A TCP segment with data that may take part in a run: its layout and
/// header length, or `None`.
fn candidate(f: &[u8]) -> Option<(Layout, usize)> {
    let l = layout(f)?;
    if l.proto != TCP {
        return None;
    }
    if !l.v6 && l.l4 - l.l3 != 20 {
        return None; // IPv4 options: not merged, as GRO does not
    }
    let thl = l.l4_hdr_len(f);
    let hdr_len = l.l4 + thl;
    if thl < 20 || hdr_len > MAX_HDR || hdr_len >= l.end {
        return None; // bad header length, or no payload
    }
    if f[l.l4 + 13] & (FIN | SYN | RST | URG) != 0 {
        return None;
    }
    Some((l, hdr_len))
}

impl Run {
    /// Starts a run with segment `f` when it can lead one: an IPv4 (no
    /// options) or IPv6 TCP segment carrying data, with no SYN, FIN, RST
    /// or URG. Returns the run and where `f`'s payload lies.
    pub fn start(f: &[u8]) -> Option<(Run, Range<usize>)> {
        let (l, hdr_len) = candidate(f)?;
        let mut hdr = [0u8; MAX_HDR];
        hdr[..hdr_len].copy_from_slice(&f[..hdr_len]);
        let mss = l.end - hdr_len;
        let flags = f[l.l4 + 13];
        let id = if l.v6 { 0 } else { be16(f, l.l3 + 4) };
        let run = Run {
            hdr,
            hdr_len,
            l,
            mss,
            segs: 1,
            payload: mss,
            next_seq: be32(f, l.l4 + 4).wrapping_add(mss as u32),
            next_id: id.wrapping_add(1),
            fixed_id: false,
            closed: flags & PSH != 0,
            psh: flags & PSH != 0,
        };
        Some((run, hdr_len..l.end))
    }

    /// Number of segments merged.
    pub fn segs(&self) -> usize {
        self.segs
    }

    /// Joins segment `f` to the run when it continues it; returns where its
    /// payload lies, or `None` (the run is then unchanged: write it, and
    /// start another with `f`).
    pub fn push(&mut self, f: &[u8]) -> Option<Range<usize>> {
        if self.closed || self.segs == MAX_SEGS {
            return None;
        }
        let (l, hdr_len) = candidate(f)?;
        let h = &self.hdr[..self.hdr_len];
        if hdr_len != self.hdr_len || l.l3 != self.l.l3 || l.l4 != self.l.l4 || l.v6 != self.l.v6 {
            return None;
        }
        let plen = l.end - hdr_len;
        if plen > self.mss {
            return None;
        }
        // The IP packet, merged, must stay within its 16-bit length.
        if self.hdr_len - self.l.l3 + self.payload + plen > 65535 {
            return None;
        }
        // Ethernet header and tags.
        if f[..l.l3] != h[..l.l3] {
            return None;
        }
        let (a, b) = (l.l3, l.l4);
        let mut fixed_id = self.fixed_id;
        if l.v6 {
            // Version, class and flow label; next header and hop limit;
            // the addresses.
            if f[a..a + 4] != h[a..a + 4] || f[a + 6..b] != h[a + 6..b] {
                return None;
            }
        } else {
            // Version, header length and TOS; flags (DF); TTL and
            // protocol; the addresses.
            if f[a..a + 2] != h[a..a + 2]
                || f[a + 6..a + 10] != h[a + 6..a + 10]
                || f[a + 12..b] != h[a + 12..b]
            {
                return None;
            }
            let id = be16(f, a + 4);
            let df = f[a + 6] & 0x40 != 0;
            let first = self.next_id.wrapping_sub(self.segs as u16);
            if self.segs == 1 && df && id == first {
                fixed_id = true;
            } else if fixed_id {
                if id != first {
                    return None;
                }
            } else if id != self.next_id {
                return None;
            }
        }
        let t = b;
        // Ports; acknowledgment number; header length, flags and window
        // (PSH and CWR aside); options.
        let flags = f[t + 13];
        if f[t..t + 4] != h[t..t + 4]
            || be32(f, t + 4) != self.next_seq
            || f[t + 8..t + 12] != h[t + 8..t + 12]
            || f[t + 12] != h[t + 12]
            || (flags & !(PSH | CWR)) != (h[t + 13] & !(PSH | CWR))
            || flags & CWR != 0
            || f[t + 14..t + 16] != h[t + 14..t + 16]
            || f[t + 20..hdr_len] != h[t + 20..hdr_len]
        {
            return None;
        }
        self.fixed_id = fixed_id;
        self.segs += 1;
        self.payload += plen;
        self.next_seq = self.next_seq.wrapping_add(plen as u32);
        self.next_id = self.next_id.wrapping_add(1);
        if flags & PSH != 0 {
            self.psh = true;
            self.closed = true;
        }
        if plen < self.mss {
            self.closed = true;
        }
        Some(hdr_len..l.end)
    }

    /// The merged frame's virtio-net header and headers: lengths for the
    /// whole run, the IPv4 header checksum, PSH if any segment had it, and
    /// the TCP checksum left partial (the pseudo-header sum) for the
    /// kernel. The payloads follow, in the order they joined.
    pub fn finish(&mut self) -> (vnet::Hdr, &[u8]) {
        let l = self.l;
        let hl = self.hdr_len;
        let h = &mut self.hdr[..hl];
        let tcp_len = hl - l.l4 + self.payload;
        if l.v6 {
            h[l.l3 + 4..l.l3 + 6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        } else {
            let total = (hl - l.l3 + self.payload) as u16;
            h[l.l3 + 2..l.l3 + 4].copy_from_slice(&total.to_be_bytes());
            write_ipv4_checksum(h, &l);
        }
        if self.psh {
            h[l.l4 + 13] |= PSH;
        }
        let partial = fold(pseudo_sum(l.addrs(h), TCP, tcp_len));
        let at = l.csum_at();
        h[at..at + 2].copy_from_slice(&partial.to_be_bytes());
        let mut gso_type = if l.v6 {
            vnet::GSO_TCPV6
        } else {
            vnet::GSO_TCPV4
        };
        if h[l.l4 + 13] & CWR != 0 {
            gso_type |= vnet::GSO_ECN;
        }
        let vh = vnet::Hdr {
            flags: vnet::F_NEEDS_CSUM,
            gso_type,
            hdr_len: hl as u16,
            gso_size: self.mss as u16,
            csum_start: l.l4 as u16,
            csum_offset: 16,
        };
        (vh, &self.hdr[..hl])
    }
}
