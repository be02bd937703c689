//! Checksums on frames: the completion of a checksum the kernel left
//! partial. The sums themselves are the one internet checksum of
//! [`overlay_plugin_abi::csum`], re-exported here for the packet path.

pub use overlay_plugin_abi::csum::{fold, ones_sum, pseudo_sum};

/// Where the checksum lies in a UDP header.
const UDP_CSUM_OFFSET: usize = 6;

/// Finishes a checksum the kernel left partial: the sum of `frame[start..]`,
/// folded onto the partial value already stored at `start + offset` (the
/// pseudo-header sum), written back there.
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
    // UDP (its checksum sits 6 bytes in) sends a computed zero as 0xffff,
    // zero meaning "no checksum"; TCP and the others keep 0x0000, the form
    // RFC 1624 asks for (receivers take either).
    let folded = if folded == 0 && offset == UDP_CSUM_OFFSET {
        0xffff
    } else {
        folded
    };
    frame[at..at + 2].copy_from_slice(&folded.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/UDP frame whose UDP checksum field holds only the
    /// pseudo-header sum, as CHECKSUM_PARTIAL leaves it.
    fn partial_udp_frame() -> Vec<u8> {
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
        let pseudo = pseudo_sum(&[192, 0, 2, 1, 192, 0, 2, 2], 17, udp_len);
        f[40..42].copy_from_slice(&fold(pseudo).to_be_bytes());
        f
    }

    #[test]
    fn completes_a_partial_udp_checksum() {
        let mut f = partial_udp_frame();
        assert!(complete_checksum(&mut f, 34, 6));
        // Verifying: the sum over pseudo-header and datagram folds to 0xffff.
        let check = pseudo_sum(&[192, 0, 2, 1, 192, 0, 2, 2], 17, f.len() - 34);
        assert_eq!(fold(ones_sum(&f[34..], check)), 0xffff);
    }

    /// A sum that completes to zero: TCP keeps 0x0000, UDP sends 0xffff.
    #[test]
    fn a_computed_zero_is_all_ones_only_for_udp() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&[0xff, 0xff]);
        assert!(complete_checksum(&mut tcp, 0, 16));
        assert_eq!(tcp[16..18], [0, 0]);
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&[0xff, 0xff]);
        assert!(complete_checksum(&mut udp, 0, 6));
        assert_eq!(udp[6..8], [0xff, 0xff]);
    }

    #[test]
    fn refuses_offsets_outside_the_frame() {
        let mut f = vec![0u8; 40];
        assert!(!complete_checksum(&mut f, 40, 0));
        assert!(!complete_checksum(&mut f, 30, 9));
        assert!(complete_checksum(&mut f, 30, 8));
    }
}
