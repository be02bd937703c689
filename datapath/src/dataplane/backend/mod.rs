//! Backends: where a device's frames enter and leave the host.
//!
//! A backend is a link endpoint, in the manner of a userspace network
//! stack: it moves *batches* of whole Ethernet frames and reports what it
//! is (MTU, link address, header room, offload capabilities). Two exist:
//!
//! * [`tap::Tap`]: a TAP interface the daemon creates at activation and
//!   removes at deactivation; the overlay's hosts are the host stack (or
//!   whatever is bridged to the TAP).
//! * [`afpacket::AfPacket`]: an `AF_PACKET` socket bound to an existing
//!   interface (a veth, a bridge port), promiscuous, with a TPACKET_V3
//!   receive ring where the kernel allows it.
//!
//! Direction words: *read* takes frames the hosts sent (they go down the
//! transmit path, to be encapsulated); *write* delivers frames to the hosts
//! (decapsulated frames, and frames injected inbound by lookup proxies).
//!
//! Every frame a backend returns from [`Backend::read_batch`] has complete
//! checksums: frames whose checksum the kernel left for a NIC to finish
//! (`CHECKSUM_PARTIAL`, announced in a virtio-net header) are completed
//! with [`complete_checksum`] before they are handed on.

pub mod afpacket;
mod offload;
pub mod tap;

use std::{io, os::fd::BorrowedFd};

/// Largest frame a backend hands over (a 64 KiB GSO frame plus headers).
pub const MAX_FRAME: usize = 65536 + 64;
/// Frames moved per batch.
pub const BATCH: usize = 32;
/// Ethernet header length.
pub const ETH_HLEN: usize = 14;
/// 802.1Q tag length.
pub const VLAN_TAGSZ: usize = 4;

/// Offloads a backend can take part in. The data path may use them to
/// move fewer, larger frames; a backend without them moves MTU-sized
/// frames with complete checksums.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// Frames may be handed over with checksums left partial.
    pub csum_offload: bool,
    /// Frames may be larger than the MTU and segmented later (TSO/GSO).
    pub segmentation_offload: bool,
}

/// A reusable set of receive buffers.
pub struct RxBatch {
    bufs: Vec<Box<[u8]>>,
    lens: Vec<usize>,
    count: usize,
}

impl RxBatch {
    /// `n` buffers of `size` bytes each.
    pub fn new(n: usize, size: usize) -> RxBatch {
        RxBatch {
            bufs: (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect(),
            lens: vec![0; n],
            count: 0,
        }
    }

    /// Number of buffers.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// Forgets the frames held.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Number of frames held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The buffer the next frame goes into, or `None` when full.
    pub fn next_buf(&mut self) -> Option<&mut [u8]> {
        let i = self.count;
        self.bufs.get_mut(i).map(|b| &mut b[..])
    }

    /// Exchanges the buffer [`RxBatch::next_buf`] would return with `other`
    /// (of the same size), so a backend can keep what it read there without
    /// copying it. False when the batch is full.
    pub fn swap_next(&mut self, other: &mut Box<[u8]>) -> bool {
        match self.bufs.get_mut(self.count) {
            Some(b) => {
                std::mem::swap(b, other);
                true
            }
            None => false,
        }
    }

    /// Records that the buffer returned by [`RxBatch::next_buf`] now holds a
    /// frame of `len` bytes.
    pub fn commit(&mut self, len: usize) {
        self.lens[self.count] = len;
        self.count += 1;
    }

    /// Frame `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// Frame `i`, mutable (for completing checksums in place).
    pub fn frame_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.lens[i];
        &mut self.bufs[i][..len]
    }

    /// The frames held, in order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.count).map(|i| self.frame(i))
    }
}

/// A link endpoint moving batches of Ethernet frames.
pub trait Backend: Send + Sync {
    /// The host interface name.
    fn ifname(&self) -> &str;

    /// A descriptor that polls readable when frames can be read.
    fn as_fd(&self) -> BorrowedFd<'_>;

    /// Reads frames the hosts sent, without blocking, until the batch is
    /// full or nothing is left. Returns the number read (0: none waiting).
    fn read_batch(&self, batch: &mut RxBatch) -> io::Result<usize>;

    /// Whether frames already read are waiting to be handed over (the rest
    /// of a GSO frame a full batch cut short): the caller must then call
    /// [`Backend::read_batch`] again without waiting for the descriptor.
    fn has_pending(&self) -> bool {
        false
    }

    /// Delivers frames to the hosts. Returns how many were written; a frame
    /// the kernel refuses is skipped, not retried.
    fn write_batch(&self, frames: &[&[u8]]) -> io::Result<usize>;

    /// The interface MTU.
    fn mtu(&self) -> io::Result<u32>;

    /// Changes the interface MTU (a TAP follows the device's `mtu`).
    fn set_mtu(&self, mtu: u32) -> io::Result<()>;

    /// The interface's Ethernet address.
    fn link_addr(&self) -> [u8; 6];

    /// Header room a frame needs in front of its payload (Ethernet, VLAN).
    fn max_header_len(&self) -> usize {
        ETH_HLEN + VLAN_TAGSZ
    }

    /// Offloads in use.
    fn caps(&self) -> Caps;
}

/// The virtio-net header that TAP (`IFF_VNET_HDR`) and `AF_PACKET`
/// (`PACKET_VNET_HDR`) put in front of frames.
pub mod vnet {
    /// Size of `struct virtio_net_hdr`.
    pub const HDR_LEN: usize = 10;
    /// `flags`: the checksum is partial; `csum_start`/`csum_offset` say where.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// `flags`: the checksum is known good.
    pub const F_DATA_VALID: u8 = 2;
    /// `gso_type`: not a GSO frame.
    pub const GSO_NONE: u8 = 0;

    /// The fields the data path reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Hdr {
        /// `F_*` bits.
        pub flags: u8,
        /// `GSO_*` type.
        pub gso_type: u8,
        /// Ethernet header plus L3+L4 headers, for GSO.
        pub hdr_len: u16,
        /// Segment payload size, for GSO.
        pub gso_size: u16,
        /// Where checksumming starts, from the start of the frame.
        pub csum_start: u16,
        /// Where the checksum goes, from `csum_start`.
        pub csum_offset: u16,
    }

    impl Hdr {
        /// Parses the first [`HDR_LEN`] bytes (native byte order, as the
        /// kernel writes it for a legacy virtio-net header).
        pub fn parse(b: &[u8]) -> Option<Hdr> {
            let b = b.get(..HDR_LEN)?;
            let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
            Some(Hdr {
                flags: b[0],
                gso_type: b[1],
                hdr_len: u(2),
                gso_size: u(4),
                csum_start: u(6),
                csum_offset: u(8),
            })
        }
    }
}

/// Finishes a checksum the kernel left partial: the 16-bit ones'-complement
/// sum of `frame[start..]`, folded onto the partial value already stored at
/// `start + offset` (the pseudo-header sum), written back there.
///
/// Returns false when the offsets do not fit the frame (the frame is then
/// left as it was and should be dropped).
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if start >= frame.len() || at + 2 > frame.len() {
        return false;
    }
    let sum = ones_sum(&frame[start..], 0);
    let folded = !fold(sum);
    // UDP uses 0xffff for a computed zero; TCP would accept either.
    let folded = if folded == 0 { 0xffff } else { folded };
    frame[at..at + 2].copy_from_slice(&folded.to_be_bytes());
    true
}

/// The ones'-complement sum of `data` (big-endian 16-bit words) added to
/// `initial`, unfolded.
#[inline]
pub fn ones_sum(data: &[u8], initial: u32) -> u32 {
    let mut sum = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u64) << 8;
    }
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

/// Folds a 32-bit ones'-complement sum to 16 bits.
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/UDP frame whose UDP checksum field holds only the
    /// pseudo-header sum, as CHECKSUM_PARTIAL leaves it.
    fn partial_udp_frame() -> (Vec<u8>, u16) {
        let payload = b"hello, overlay";
        let udp_len = 8 + payload.len();
        let mut f = vec![0u8; 14 + 20 + udp_len];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let udp = &mut f[34..];
        udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        udp[2..4].copy_from_slice(&5678u16.to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        udp[8..].copy_from_slice(payload);
        // Pseudo-header: addresses, protocol, UDP length.
        let mut pseudo = ones_sum(&[192, 0, 2, 1, 192, 0, 2, 2], 0);
        pseudo += 17 + udp_len as u32;
        let partial = fold(pseudo);
        // The full checksum, computed independently.
        let mut full = ones_sum(&f[34..], pseudo);
        full = fold(full) as u32;
        let want = !(full as u16);
        f[40..42].copy_from_slice(&partial.to_be_bytes());
        (f, want)
    }

    #[test]
    fn completes_a_partial_udp_checksum() {
        let (mut f, want) = partial_udp_frame();
        assert!(complete_checksum(&mut f, 34, 6));
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), want);
        // Verifying: the sum over pseudo-header and datagram folds to 0xffff.
        let mut check = ones_sum(&[192, 0, 2, 1, 192, 0, 2, 2], 0) + 17 + (f.len() - 34) as u32;
        check = ones_sum(&f[34..], check);
        assert_eq!(fold(check), 0xffff);
    }

    #[test]
    fn refuses_offsets_outside_the_frame() {
        let mut f = vec![0u8; 40];
        assert!(!complete_checksum(&mut f, 40, 0));
        assert!(!complete_checksum(&mut f, 30, 9));
        assert!(complete_checksum(&mut f, 30, 8));
    }

    #[test]
    fn vnet_header_parses() {
        let mut b = [0u8; 10];
        b[0] = vnet::F_NEEDS_CSUM;
        b[6..8].copy_from_slice(&34u16.to_ne_bytes());
        b[8..10].copy_from_slice(&6u16.to_ne_bytes());
        let h = vnet::Hdr::parse(&b).unwrap();
        assert_eq!((h.flags, h.csum_start, h.csum_offset), (1, 34, 6));
        assert!(vnet::Hdr::parse(&b[..9]).is_none());
    }

    #[test]
    fn rx_batch_bookkeeping() {
        let mut b = RxBatch::new(2, 16);
        b.next_buf().unwrap()[..3].copy_from_slice(b"abc");
        b.commit(3);
        b.next_buf().unwrap()[..1].copy_from_slice(b"d");
        b.commit(1);
        assert!(b.next_buf().is_none());
        assert_eq!(b.frames().collect::<Vec<_>>(), vec![&b"abc"[..], &b"d"[..]]);
        b.clear();
        assert!(b.is_empty());
    }
}
