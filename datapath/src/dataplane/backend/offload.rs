//! Software offloads shared by the backends: what a NIC would do for the
//! kernel, done in userspace for frames a backend hands over with work left
//! (checksums to compute, GSO frames to segment). Both the `AF_PACKET`
//! backend (frames the kernel queued with offloads pending) and the TAP
//! backend (with `TUNSETOFFLOAD`, 64 KiB TSO frames from the host stack)
//! use them.

use super::vnet;

/// Copies `src` into `out`, inserting `vlan` after the MAC addresses.
/// `None` if it does not fit.
pub(in crate::dataplane::backend) fn copy_tagged(
    src: &[u8],
    vlan: Option<[u8; 4]>,
    out: &mut [u8],
) -> Option<usize> {
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

/// IPv4/IPv6 TCP and UDP checksums, computed in full.
pub(super) mod l4 {
    use super::super::{fold, ones_sum};

    pub(in crate::dataplane::backend) const TCP: u8 = 6;
    pub(in crate::dataplane::backend) const UDP: u8 = 17;

    /// Where an IP packet's parts lie in an Ethernet frame.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(in crate::dataplane::backend) struct Layout {
        pub(in crate::dataplane::backend) v6: bool,
        /// Start of the IP header.
        pub(in crate::dataplane::backend) l3: usize,
        /// Start of the TCP/UDP header.
        pub(in crate::dataplane::backend) l4: usize,
        /// End of the IP packet (Ethernet padding excluded).
        pub(in crate::dataplane::backend) end: usize,
        pub(in crate::dataplane::backend) proto: u8,
    }

    fn be16(f: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?))
    }

    /// Finds the IP and TCP/UDP headers of an Ethernet frame (VLAN tags
    /// allowed). IPv4 fragments and IPv6 extension headers are not
    /// followed: `None`.
    pub(in crate::dataplane::backend) fn layout(f: &[u8]) -> Option<Layout> {
        let mut l3 = 12;
        let mut ethertype = be16(f, l3)?;
        while ethertype == 0x8100 || ethertype == 0x88a8 {
            l3 += 4;
            ethertype = be16(f, l3)?;
        }
        l3 += 2;
        let (v6, l4, end, proto) = match ethertype {
            0x0800 => {
                let vihl = *f.get(l3)?;
                let ihl = (vihl & 0x0f) as usize * 4;
                if vihl >> 4 != 4 || ihl < 20 || be16(f, l3 + 6)? & 0x3fff != 0 {
                    return None;
                }
                (
                    false,
                    l3 + ihl,
                    l3 + be16(f, l3 + 2)? as usize,
                    *f.get(l3 + 9)?,
                )
            }
            0x86dd => {
                if *f.get(l3)? >> 4 != 6 {
                    return None;
                }
                (
                    true,
                    l3 + 40,
                    l3 + 40 + be16(f, l3 + 4)? as usize,
                    *f.get(l3 + 6)?,
                )
            }
            _ => return None,
        };
        let min = match proto {
            TCP => 20,
            UDP => 8,
            _ => return None,
        };
        if l4 + min > end || end > f.len() {
            return None;
        }
        Some(Layout {
            v6,
            l3,
            l4,
            end,
            proto,
        })
    }

    /// Computes and stores the TCP/UDP checksum of the packet laid out as
    /// `l` in `f` (`f[l.l4..l.end]` is the segment).
    pub(in crate::dataplane::backend) fn write_checksum(f: &mut [u8], l: &Layout) {
        let at = l.l4 + if l.proto == TCP { 16 } else { 6 };
        f[at..at + 2].fill(0);
        let addrs = if l.v6 {
            &f[l.l3 + 8..l.l3 + 40]
        } else {
            &f[l.l3 + 12..l.l3 + 20]
        };
        let len = (l.end - l.l4) as u32;
        let sum = ones_sum(addrs, l.proto as u32 + len);
        let mut c = !fold(ones_sum(&f[l.l4..l.end], sum));
        if c == 0 && l.proto == UDP {
            // A computed zero is sent as all ones (zero means "none").
            c = 0xffff;
        }
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// Computes the IPv4 header checksum in place.
    pub(in crate::dataplane::backend) fn write_ipv4_checksum(f: &mut [u8], l: &Layout) {
        f[l.l3 + 10..l.l3 + 12].fill(0);
        let c = !fold(ones_sum(&f[l.l3..l.l4], 0));
        f[l.l3 + 10..l.l3 + 12].copy_from_slice(&c.to_be_bytes());
    }

    /// Completes the TCP/UDP checksum of a frame whose checksum the kernel
    /// left partial without saying where it goes. False if the frame is
    /// not one we can parse.
    pub(in crate::dataplane::backend) fn fill_checksum(f: &mut [u8]) -> bool {
        match layout(f) {
            Some(l) => {
                write_checksum(f, &l);
                true
            }
            None => false,
        }
    }
}

/// Software segmentation of GSO frames (TCP over IPv4/IPv6, UDP with
/// `UDP_SEGMENT`), as the kernel would do for a device without TSO/USO.
pub(super) mod gso {
    use super::{copy_tagged, l4, vnet};

    const TCPV4: u8 = 1;
    const TCPV6: u8 = 4;
    const UDP_L4: u8 = 5;
    /// `gso_type` flag: ECN (CWR) in use.
    const ECN: u8 = 0x80;

    /// How one GSO frame splits.
    #[derive(Debug)]
    pub(in crate::dataplane::backend) struct Plan {
        layout: l4::Layout,
        /// Length of all headers (Ethernet to TCP/UDP).
        hdrs: usize,
        mss: usize,
        /// Number of segments.
        pub(in crate::dataplane::backend) count: usize,
    }

    impl Plan {
        /// The split of `src` described by `h`; `None` for a GSO type we do
        /// not segment or a frame that does not match it.
        pub(in crate::dataplane::backend) fn new(src: &[u8], h: &vnet::Hdr) -> Option<Plan> {
            let mut layout = l4::layout(src)?;
            let want = match h.gso_type & !ECN {
                TCPV4 if !layout.v6 => l4::TCP,
                TCPV6 if layout.v6 => l4::TCP,
                UDP_L4 => l4::UDP,
                _ => return None,
            };
            if layout.proto != want {
                return None;
            }
            let l4_hdr = match want {
                l4::TCP => (src[layout.l4 + 12] >> 4) as usize * 4,
                _ => 8,
            };
            let hdrs = layout.l4 + l4_hdr;
            let mss = h.gso_size as usize;
            if mss == 0 || hdrs > src.len() || (want == l4::TCP && l4_hdr < 20) {
                return None;
            }
            layout.end = src.len();
            let count = (src.len() - hdrs).div_ceil(mss).max(1);
            Some(Plan {
                layout,
                hdrs,
                mss,
                count,
            })
        }

        /// Writes segment `i` of `src` into `out`, with `vlan` inserted;
        /// returns its length, `None` if it does not fit.
        pub(in crate::dataplane::backend) fn segment(
            &self,
            src: &[u8],
            i: usize,
            vlan: Option<[u8; 4]>,
            out: &mut [u8],
        ) -> Option<usize> {
            let shift = if vlan.is_some() { 4 } else { 0 };
            let from = self.hdrs + i * self.mss;
            let to = (from + self.mss).min(src.len());
            let h = copy_tagged(&src[..self.hdrs], vlan, out)?;
            let len = h + (to - from);
            out.get_mut(h..len)?.copy_from_slice(&src[from..to]);
            let out = &mut out[..len];
            let l = l4::Layout {
                l3: self.layout.l3 + shift,
                l4: self.layout.l4 + shift,
                end: len,
                ..self.layout
            };
            let put16 = |out: &mut [u8], at: usize, v: u16| {
                out[at..at + 2].copy_from_slice(&v.to_be_bytes())
            };
            let get16 = |at: usize| u16::from_be_bytes([src[at - shift], src[at + 1 - shift]]);
            if l.v6 {
                put16(out, l.l3 + 4, (len - l.l3 - 40) as u16);
            } else {
                put16(out, l.l3 + 2, (len - l.l3) as u16);
                // Consecutive IDs, as the kernel gives them.
                put16(out, l.l3 + 4, get16(l.l3 + 4).wrapping_add(i as u16));
                l4::write_ipv4_checksum(out, &l);
            }
            let last = i + 1 == self.count;
            if l.proto == l4::TCP {
                let seq = u32::from_be_bytes(
                    src[self.layout.l4 + 4..self.layout.l4 + 8]
                        .try_into()
                        .unwrap(),
                );
                let seq = seq.wrapping_add((i * self.mss) as u32);
                out[l.l4 + 4..l.l4 + 8].copy_from_slice(&seq.to_be_bytes());
                let flags = &mut out[l.l4 + 13];
                if !last {
                    *flags &= !(0x01 | 0x08); // FIN, PSH: last segment only
                }
                if i > 0 {
                    *flags &= !0x80; // CWR: first segment only
                }
            } else {
                put16(out, l.l4 + 4, (len - l.l4) as u16);
            }
            l4::write_checksum(out, &l);
            Some(len)
        }
    }
}
