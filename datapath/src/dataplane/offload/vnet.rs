//! The virtio-net header that TAP (`IFF_VNET_HDR`) and `AF_PACKET`
//! (`PACKET_VNET_HDR`) put in front of frames: which checksum is left
//! partial and how a GSO super-frame is to be segmented.

/// Size of `struct virtio_net_hdr`.
pub const HDR_LEN: usize = 10;
/// `flags`: the checksum is partial; `csum_start`/`csum_offset` say where.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum is known good.
pub const F_DATA_VALID: u8 = 2;
/// `gso_type`: not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type`: UDP segmentation (`UDP_SEGMENT`), IPv4 or IPv6.
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` flag: the TCP stream uses ECN (CWR on the first segment only).
pub const GSO_ECN: u8 = 0x80;

/// The fields of a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hdr {
    /// `F_*` bits.
    pub flags: u8,
    /// `GSO_*` type.
    pub gso_type: u8,
    /// Ethernet header plus L3+L4 headers, for GSO (a hint).
    pub hdr_len: u16,
    /// Segment payload size, for GSO.
    pub gso_size: u16,
    /// Where checksumming starts, from the start of the frame.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

/// Why a virtio-net header does not describe its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// A GSO frame with `gso_size` 0, or larger than the frame.
    GsoSize,
    /// A GSO type we do not know, or one that does not match the frame's
    /// headers (TCPV4 on an IPv6 frame, UDP on a TCP segment, ...).
    GsoType,
    /// `csum_start`/`csum_offset` point outside the frame.
    Csum,
}

impl Hdr {
    /// Parses the first [`HDR_LEN`] bytes (native byte order, as the
    /// kernel writes a legacy virtio-net header).
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

    /// The header as the kernel reads it.
    pub fn emit(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Whether the frame is a GSO super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type != GSO_NONE
    }

    /// Checks what can be checked without parsing the frame's headers: a
    /// partial checksum inside the frame, a GSO size that is not 0 and not
    /// larger than the frame, a known GSO type. (That the type matches the
    /// headers is checked by segmentation, which parses them.)
    pub fn check(&self, frame_len: usize) -> Result<(), Bad> {
        if self.flags & F_NEEDS_CSUM != 0 {
            let at = self.csum_start as usize + self.csum_offset as usize;
            if self.csum_start as usize >= frame_len || at + 2 > frame_len {
                return Err(Bad::Csum);
            }
        }
        if self.is_gso() {
            match self.gso_type & !GSO_ECN {
                GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4 => {}
                _ => return Err(Bad::GsoType),
            }
            if self.gso_size == 0 || self.gso_size as usize > frame_len {
                return Err(Bad::GsoSize);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_emits() {
        let mut b = [0u8; 10];
        b[0] = F_NEEDS_CSUM;
        b[1] = GSO_TCPV4;
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        b[6..8].copy_from_slice(&34u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let h = Hdr::parse(&b).unwrap();
        assert_eq!(
            (h.flags, h.gso_type, h.gso_size, h.csum_start, h.csum_offset),
            (1, 1, 1448, 34, 16)
        );
        assert_eq!(h.emit(), b);
        assert!(Hdr::parse(&b[..9]).is_none());
    }

    #[test]
    fn checks_offsets_sizes_and_types() {
        let csum = Hdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Hdr::default()
        };
        assert_eq!(csum.check(52), Ok(()));
        assert_eq!(csum.check(51), Err(Bad::Csum));
        assert_eq!(csum.check(34), Err(Bad::Csum));
        let gso = Hdr {
            gso_type: GSO_TCPV4 | GSO_ECN,
            gso_size: 1448,
            ..csum
        };
        assert_eq!(gso.check(3000), Ok(()));
        assert_eq!(gso.check(1000), Err(Bad::GsoSize));
        assert_eq!(Hdr { gso_size: 0, ..gso }.check(3000), Err(Bad::GsoSize));
        assert_eq!(Hdr { gso_type: 3, ..gso }.check(3000), Err(Bad::GsoType));
        assert_eq!(Hdr::default().check(0), Ok(()));
    }
}
