//! Where the IP and TCP/UDP headers of an Ethernet frame lie, and the
//! checksums that depend on them.

use super::csum::{fold, ones_sum, pseudo_sum};

/// IP protocol number of TCP.
pub const TCP: u8 = 6;
/// IP protocol number of UDP.
pub const UDP: u8 = 17;

/// Where an IP packet's parts lie in an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// Start of the IP header.
    pub l3: usize,
    /// Start of the TCP/UDP header.
    pub l4: usize,
    /// End of the IP packet (Ethernet padding excluded).
    pub end: usize,
    /// `TCP` or `UDP`.
    pub proto: u8,
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?))
}

/// Finds the IP and TCP/UDP headers of an Ethernet frame (VLAN tags
/// allowed). IPv4 fragments and IPv6 extension headers are not followed:
/// `None`.
pub fn layout(f: &[u8]) -> Option<Layout> {
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

impl Layout {
    /// The source and destination addresses in `f`.
    pub fn addrs<'a>(&self, f: &'a [u8]) -> &'a [u8] {
        if self.v6 {
            &f[self.l3 + 8..self.l3 + 40]
        } else {
            &f[self.l3 + 12..self.l3 + 20]
        }
    }

    /// Offset of the TCP/UDP checksum field.
    pub fn csum_at(&self) -> usize {
        self.l4 + if self.proto == TCP { 16 } else { 6 }
    }

    /// Length of the TCP or UDP header in `f`.
    pub fn l4_hdr_len(&self, f: &[u8]) -> usize {
        if self.proto == TCP {
            (f[self.l4 + 12] >> 4) as usize * 4
        } else {
            8
        }
    }
}

/// The TCP/UDP checksum of a segment made of `hdr[l.l4..]` (its header,
/// checksum field zero or not: it is skipped) followed by `payload`, for
/// the addresses in `hdr`.
pub fn l4_checksum(hdr: &[u8], l: &Layout, payload: &[u8]) -> u16 {
    let seg = &hdr[l.l4..];
    let at = l.csum_at() - l.l4;
    let len = seg.len() + payload.len();
    let mut sum = pseudo_sum(l.addrs(hdr), l.proto, len);
    sum = ones_sum(&seg[..at], sum);
    sum = ones_sum(&seg[at + 2..], sum);
    // The header is a whole number of 16-bit words, so the payload's words
    // line up with the segment's.
    let c = !fold(ones_sum(payload, sum));
    if c == 0 && l.proto == UDP {
        // A computed zero is sent as all ones (zero means "none").
        0xffff
    } else {
        c
    }
}

/// Computes and stores the TCP/UDP checksum of the packet laid out as `l`
/// in `f` (`f[l.l4..l.end]` is the segment).
pub fn write_checksum(f: &mut [u8], l: &Layout) {
    let at = l.csum_at();
    let c = l4_checksum(&f[..l.end], l, &[]);
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Whether the TCP/UDP checksum of the packet laid out as `l` in `f` is
/// right (a UDP checksum of zero, "none", over IPv4 counts as right).
pub fn checksum_ok(f: &[u8], l: &Layout) -> bool {
    let at = l.csum_at();
    if l.proto == UDP && !l.v6 && f[at..at + 2] == [0, 0] {
        return true;
    }
    let sum = pseudo_sum(l.addrs(f), l.proto, l.end - l.l4);
    fold(ones_sum(&f[l.l4..l.end], sum)) == 0xffff
}

/// Computes the IPv4 header checksum in place.
pub fn write_ipv4_checksum(f: &mut [u8], l: &Layout) {
    f[l.l3 + 10..l.l3 + 12].fill(0);
    let c = !fold(ones_sum(&f[l.l3..l.l4], 0));
    f[l.l3 + 10..l.l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Completes the TCP/UDP checksum of a frame whose checksum the kernel
/// left partial without saying where it goes. False if the frame is not
/// one we can parse.
pub fn fill_checksum(f: &mut [u8]) -> bool {
    match layout(f) {
        Some(l) => {
            write_checksum(f, &l);
            true
        }
        None => false,
    }
}
