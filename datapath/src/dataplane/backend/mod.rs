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
//! with [`complete_checksum`](super::offload::csum::complete_checksum)
//! before they are handed on.

pub mod afpacket;
pub mod tap;

use super::offload::vnet;
use std::{
    io::{self, IoSlice},
    os::fd::BorrowedFd,
};

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
    /// [`Backend::write_gso`] takes GSO frames (merged segments).
    pub gso_write: bool,
}

/// A reusable set of receive buffers.
pub struct RxBatch {
    bufs: Vec<Box<[u8]>>,
    lens: Vec<usize>,
    hdrs: Vec<vnet::Hdr>,
    count: usize,
}

impl RxBatch {
    /// `n` buffers of `size` bytes each.
    pub fn new(n: usize, size: usize) -> RxBatch {
        RxBatch {
            bufs: (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect(),
            lens: vec![0; n],
            hdrs: vec![vnet::Hdr::default(); n],
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
        self.commit_with(len, vnet::Hdr::default());
    }

    /// As [`RxBatch::commit`], for a frame that still needs the work `hdr`
    /// describes (a GSO super-frame to segment).
    pub fn commit_with(&mut self, len: usize, hdr: vnet::Hdr) {
        self.lens[self.count] = len;
        self.hdrs[self.count] = hdr;
        self.count += 1;
    }

    /// The virtio-net header of frame `i`: all zero for a whole frame, a
    /// GSO type and size for a super-frame.
    pub fn hdr(&self, i: usize) -> &vnet::Hdr {
        &self.hdrs[i]
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
    /// Every frame has complete checksums, except GSO super-frames (whose
    /// header, [`RxBatch::hdr`], says how to segment them: segmentation
    /// computes every checksum).
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

    /// Delivers one GSO frame made of `parts` (headers, then payloads),
    /// described by `hdr`: the kernel segments it if it must. Only called
    /// when [`Caps::gso_write`]. Ok(false) when the kernel's queue is full
    /// (the frame is dropped, counted by the caller).
    fn write_gso(&self, hdr: &vnet::Hdr, parts: &[IoSlice<'_>]) -> io::Result<bool> {
        let _ = (hdr, parts);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
