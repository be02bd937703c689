//! The TAP frame path: what a read from a TAP with `IFF_VNET_HDR` gives
//! (a virtio-net header, then the frame), through the header's checks,
//! segmentation of GSO super-frames (as whole segments, with and without a
//! VLAN tag put back, and as headers for one UDP GSO send) and checksum
//! completion of partial checksums: the pure functions of
//! `dataplane::offload`, as the transmit side calls them.
//!
//! Input: the 10-byte virtio-net header, then the frame.
#![no_main]

use datapath::dataplane::offload::{
    csum::complete_checksum,
    layout::{checksum_ok, fill_checksum, layout},
    segment::Plan,
    vnet::{self, Hdr},
};
use libfuzzer_sys::fuzz_target;

/// A segment's room, as the transmit side gives it.
const SEG_ROOM: usize = 65536 + 64;

fuzz_target!(|data: &[u8]| {
    let Some(h) = Hdr::parse(data) else {
        return;
    };
    assert_eq!(Hdr::parse(&h.emit()), Some(h));
    let mut frame = data[vnet::HDR_LEN..].to_vec();
    if h.is_gso() {
        let Ok(plan) = h.check(frame.len()).and_then(|_| Plan::new(&frame, &h)) else {
            return;
        };
        segments(&frame, &plan);
    } else if h.flags & vnet::F_NEEDS_CSUM != 0 {
        if h.check(frame.len()).is_ok() {
            complete_checksum(&mut frame, h.csum_start as usize, h.csum_offset as usize);
        }
    } else if fill_checksum(&mut frame) {
        let l = layout(&frame).expect("a checksum filled in a frame without a layout");
        assert!(
            checksum_ok(&frame, &l),
            "a filled checksum that does not verify"
        );
    }
});

fn segments(frame: &[u8], plan: &Plan) {
    assert!(plan.count() >= 1);
    let mut seg = vec![0u8; SEG_ROOM];
    let mut tagged = vec![0u8; SEG_ROOM];
    let mut hdrs = vec![0u8; plan.hdrs_len()];
    let mut payload = 0;
    for i in 0..plan.count() {
        let p = plan.payload(i);
        assert!(p.start <= p.end && p.end <= frame.len());
        payload += p.len();
        let Some(n) = plan.segment(frame, i, None, &mut seg) else {
            continue;
        };
        assert_eq!(n, plan.seg_len(i));
        plan.write_headers(frame, i, &mut hdrs);
        assert_eq!(
            &hdrs[..],
            &seg[..plan.hdrs_len()],
            "GSO headers differ from segment {i}'s"
        );
        let l = plan.layout();
        if let Some(sl) = layout(&seg[..n]) {
            if (sl.l3, sl.l4, sl.proto, sl.v6) == (l.l3, l.l4, l.proto, l.v6) {
                assert!(
                    checksum_ok(&seg[..n], &sl),
                    "segment {i} of {} has a bad checksum",
                    plan.count()
                );
            }
        }
        if let Some(m) = plan.segment(frame, i, Some([0x81, 0, 0, 42]), &mut tagged) {
            assert_eq!(m, n + 4);
            assert_eq!(
                &tagged[16..m],
                &seg[12..n],
                "a VLAN tag changed more than the tag"
            );
        }
    }
    assert_eq!(payload, frame.len() - plan.hdrs_len());
}
