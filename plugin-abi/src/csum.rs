//! The internet checksum (RFC 1071): the ones'-complement sum of 16-bit
//! big-endian words, the one copy that the daemon's packet path and the
//! [`proxy`](crate::proxy) helpers (and any plugin) use.
//!
//! The sum is independent of byte order (RFC 1071, section 2(B)), so the
//! bulk of the data is added as native 32-bit halves of 64-bit words into
//! two wide accumulators, with no carry handling inside the loop, and the
//! result is folded and turned big-endian once at the end. That runs at
//! several bytes a cycle, which matters because the packet path sums every
//! payload byte it segments or coalesces.

/// The ones'-complement sum of `data` (big-endian 16-bit words, an odd
/// last byte padded with zero) added to `initial`, not yet folded: pass
/// the result to [`fold`]. `data` must start on an even offset of the
/// summed region (payload slices of one segment always do).
#[inline]
pub fn ones_sum(data: &[u8], initial: u32) -> u32 {
    let (mut a, mut b) = (0u64, 0u64);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        a += v & 0xffff_ffff;
        b += v >> 32;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Zero padding after the data, in memory order: the same as the
        // RFC's zero byte after an odd last byte.
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        let v = u64::from_ne_bytes(last);
        a += v & 0xffff_ffff;
        b += v >> 32;
    }
    // Each accumulator holds at most 2^32 * len/8, far from overflowing
    // for any packet; fold to 16 bits in native order.
    let mut s = a + b;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    let native = s as u16;
    // Native 16-bit words summed on a little-endian machine give the
    // byte-swapped big-endian sum.
    let be = u16::from_be_bytes(native.to_ne_bytes());
    initial + be as u32
}

/// Folds a 32-bit ones'-complement sum to 16 bits.
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The sum of an IPv4 or IPv6 pseudo-header: the two addresses (`addrs`,
/// source then destination, 8 or 32 bytes), the protocol and the length of
/// the transport segment.
#[inline]
pub fn pseudo_sum(addrs: &[u8], proto: u8, len: usize) -> u32 {
    // The length counts as a 32-bit word for IPv6 and a 16-bit one for
    // IPv4; segments are below 2^16 either way here, but a larger length
    // is summed correctly too.
    let len = len as u32;
    ones_sum(addrs, proto as u32 + (len >> 16) + (len & 0xffff))
}

/// The RFC 1071 definition, word by word: the oracle the tests (here and
/// in [`proxy`](crate::proxy)) check the fast sum against.
#[cfg(test)]
pub(crate) fn reference(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial as u64;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u64;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071, section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_sum(&data, 0)), 0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(fold(ones_sum(&[0xab], 0)), 0xab00);
        assert_eq!(fold(ones_sum(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 0)), 0x1914);
        assert_eq!(fold(ones_sum(&[], 7)), 7);
    }

    proptest! {
        #[test]
        fn matches_the_definition(data in proptest::collection::vec(any::<u8>(), 0..3000), init in 0u32..0x2_0000) {
            prop_assert_eq!(fold(ones_sum(&data, init)), reference(&data, init));
        }

        #[test]
        fn sums_of_even_parts_add_up(data in proptest::collection::vec(any::<u8>(), 0..3000), cut in 0usize..1500) {
            let cut = (cut * 2).min(data.len() & !1);
            let whole = fold(ones_sum(&data, 0));
            let parts = fold(ones_sum(&data[cut..], ones_sum(&data[..cut], 0)));
            // 0 and 0xffff are the same number in ones' complement.
            let norm = |v: u16| if v == 0xffff { 0 } else { v };
            prop_assert_eq!(norm(whole), norm(parts));
        }
    }
}
