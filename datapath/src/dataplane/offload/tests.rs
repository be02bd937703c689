//! The offload engine on byte fixtures: segmentation and coalescing undo
//! each other, and every bad input is refused.

use super::{
    coalesce::Run,
    csum::{complete_checksum, fold, ones_sum, pseudo_sum},
    layout::{checksum_ok, layout, TCP, UDP},
    segment::{segs_per_send, Plan},
    vnet::{self, Bad, Hdr},
};

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [192, 0, 2, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// TCP options: NOP, NOP, timestamps.
const TS_OPTS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A TSO super-frame as the host stack hands it to a TAP: lengths for the
/// whole packet, TCP checksum holding the pseudo-header sum only.
fn tcp_superframe(v6: bool, data: &[u8], flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let tcp_len = 20 + TS_OPTS.len() + data.len();
    if v6 {
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        ip[6] = TCP;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&SRC6);
        ip[24..40].copy_from_slice(&DST6);
        f.extend_from_slice(&ip);
    } else {
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = TCP;
        ip[12..16].copy_from_slice(&SRC4);
        ip[16..20].copy_from_slice(&DST4);
        f.extend_from_slice(&ip);
    }
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&0xffff_f000u32.to_be_bytes()); // wraps
    tcp[8..12].copy_from_slice(&77u32.to_be_bytes());
    tcp[12] = ((20 + TS_OPTS.len()) / 4) as u8 * 16;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&500u16.to_be_bytes());
    f.extend_from_slice(&tcp);
    f.extend_from_slice(&TS_OPTS);
    f.extend_from_slice(data);
    let l = layout(&f).unwrap();
    if !v6 {
        super::layout::write_ipv4_checksum(&mut f, &l);
    }
    let partial = fold(pseudo_sum(l.addrs(&f), TCP, tcp_len));
    let at = l.csum_at();
    f[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    f
}

fn gso(v6: bool, mss: u16) -> Hdr {
    Hdr {
        flags: vnet::F_NEEDS_CSUM,
        gso_type: if v6 { vnet::GSO_TCPV6 } else { vnet::GSO_TCPV4 },
        hdr_len: 0,
        gso_size: mss,
        csum_start: if v6 { 54 } else { 34 },
        csum_offset: 16,
    }
}

fn seq(f: &[u8]) -> u32 {
    let l = layout(f).unwrap();
    u32::from_be_bytes(f[l.l4 + 4..l.l4 + 8].try_into().unwrap())
}

fn ipv4_ok(f: &[u8]) -> bool {
    fold(ones_sum(&f[14..34], 0)) == 0xffff
}

/// Every segment of `src` by both ways of writing one, checked.
fn segments(src: &[u8], h: &Hdr) -> Vec<Vec<u8>> {
    let plan = Plan::new(src, h).unwrap();
    let mut out = Vec::new();
    for i in 0..plan.count() {
        let mut whole = vec![0u8; 2048];
        let n = plan.segment(src, i, None, &mut whole).unwrap();
        whole.truncate(n);
        let mut hdrs = vec![0u8; plan.hdrs_len()];
        plan.write_headers(src, i, &mut hdrs);
        let mut laid = hdrs.clone();
        laid.extend_from_slice(&src[plan.payload(i)]);
        assert_eq!(laid, whole, "segment {i}: headers + payload slice");
        assert_eq!(whole.len(), plan.seg_len(i));
        let l = layout(&whole).expect("segment parses");
        assert!(checksum_ok(&whole, &l), "segment {i}: L4 checksum");
        if !l.v6 {
            assert!(ipv4_ok(&whole), "segment {i}: IPv4 checksum");
        }
        out.push(whole);
    }
    out
}

/// The checksum a super-frame gets once the kernel completes it.
fn completed(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    let l = layout(&f).unwrap();
    assert!(complete_checksum(&mut f, l.l4, l.csum_at() - l.l4));
    f
}

#[test]
fn tcp4_superframe_splits_into_consistent_segments() {
    let data = payload(5000);
    let src = tcp_superframe(false, &data, 0x18); // ACK | PSH
    let segs = segments(&src, &gso(false, 1200));
    assert_eq!(segs.len(), 5);
    for (i, s) in segs.iter().enumerate() {
        // Lengths, ids, sequence numbers, flags.
        let plen = if i < 4 { 1200 } else { 200 };
        assert_eq!(s.len(), 14 + 20 + 32 + plen);
        assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
        assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16);
        assert_eq!(seq(s), 0xffff_f000u32.wrapping_add(1200 * i as u32));
        let psh = s[34 + 13] & 0x08 != 0;
        assert_eq!(psh, i == 4, "PSH on the last segment only");
        assert_eq!(&s[66..], &data[i * 1200..(i * 1200 + plen)]);
    }
}

#[test]
fn tcp6_superframe_splits_into_consistent_segments() {
    let data = payload(4000);
    let src = tcp_superframe(true, &data, 0x10);
    let segs = segments(&src, &gso(true, 1000));
    assert_eq!(segs.len(), 4);
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, 32 + 1000);
        assert_eq!(seq(s), 0xffff_f000u32.wrapping_add(1000 * i as u32));
    }
}

#[test]
fn cwr_stays_on_the_first_segment() {
    let src = tcp_superframe(false, &payload(3000), 0x90); // ACK | CWR
    let mut h = gso(false, 1000);
    h.gso_type |= vnet::GSO_ECN;
    let segs = segments(&src, &h);
    assert_eq!(segs[0][47] & 0x80, 0x80);
    assert!(segs[1..].iter().all(|s| s[47] & 0x80 == 0));
}

#[test]
fn udp_superframe_splits_into_datagrams() {
    // A UDP_SEGMENT super-frame over IPv6: every segment its own datagram.
    let data = payload(3000);
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    ip[6] = UDP;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&SRC6);
    ip[24..40].copy_from_slice(&DST6);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0]);
    f.extend_from_slice(&data);
    let h = Hdr {
        gso_type: vnet::GSO_UDP_L4,
        gso_size: 1400,
        ..Hdr::default()
    };
    let segs = segments(&f, &h);
    assert_eq!(segs.len(), 3);
    assert_eq!(u16::from_be_bytes([segs[2][58], segs[2][59]]), 8 + 200);
}

#[test]
fn vlan_tag_is_inserted_and_offsets_follow() {
    let src = tcp_superframe(false, &payload(2500), 0x10);
    let plan = Plan::new(&src, &gso(false, 1000)).unwrap();
    let mut out = vec![0u8; 2048];
    let n = plan
        .segment(&src, 1, Some([0x81, 0x00, 0x00, 0x05]), &mut out)
        .unwrap();
    let s = &out[..n];
    assert_eq!(&s[12..16], &[0x81, 0x00, 0x00, 0x05]);
    let l = layout(s).unwrap();
    assert_eq!(l.l3, 18);
    assert!(checksum_ok(s, &l));
    assert_eq!(fold(ones_sum(&s[18..38], 0)), 0xffff);
    // Too small a buffer: refused, not truncated.
    assert!(plan.segment(&src, 1, None, &mut out[..100]).is_none());
}

#[test]
fn inconsistent_headers_are_refused() {
    let v4 = tcp_superframe(false, &payload(3000), 0x10);
    let v6 = tcp_superframe(true, &payload(3000), 0x10);
    // The type must match the headers.
    assert_eq!(Plan::new(&v4, &gso(true, 1000)), Err(Bad::GsoType));
    assert_eq!(Plan::new(&v6, &gso(false, 1000)), Err(Bad::GsoType));
    let udp_on_tcp = Hdr {
        gso_type: vnet::GSO_UDP_L4,
        ..gso(false, 1000)
    };
    assert_eq!(Plan::new(&v4, &udp_on_tcp), Err(Bad::GsoType));
    let unknown = Hdr {
        gso_type: 3,
        ..gso(false, 1000)
    };
    assert_eq!(Plan::new(&v4, &unknown), Err(Bad::GsoType));
    // A zero segment size.
    assert_eq!(Plan::new(&v4, &gso(false, 0)), Err(Bad::GsoSize));
    // Headers cut short, or not IP at all.
    assert_eq!(Plan::new(&v4[..40], &gso(false, 1000)), Err(Bad::GsoType));
    let mut arp = v4.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(Plan::new(&arp, &gso(false, 1000)), Err(Bad::GsoType));
    // A TCP data offset below 5 words.
    let mut short_doff = v4.clone();
    short_doff[46] = 0x40;
    assert_eq!(Plan::new(&short_doff, &gso(false, 1000)), Err(Bad::GsoType));
    // The header's own checks: offsets and sizes against the frame.
    assert_eq!(gso(false, 5000).check(v4.len()), Err(Bad::GsoSize));
    let bad_csum = Hdr {
        csum_start: v4.len() as u16,
        ..gso(false, 1000)
    };
    assert_eq!(bad_csum.check(v4.len()), Err(Bad::Csum));
}

/// Asserts `a == b`, naming the first differing byte (frames are long).
fn same(a: &[u8], b: &[u8], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    if let Some(i) = (0..a.len()).find(|i| a[*i] != b[*i]) {
        panic!("{what}: byte {i} is {:#04x}, not {:#04x}", a[i], b[i]);
    }
}

/// Coalesces `segs` as the receive path does; returns the merged frames.
fn coalesce(segs: &[Vec<u8>]) -> Vec<(Option<Hdr>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut run: Option<(Run, Vec<Vec<u8>>)> = None;
    let flush = |run: &mut Option<(Run, Vec<Vec<u8>>)>, out: &mut Vec<_>| {
        if let Some((mut r, parts)) = run.take() {
            let (h, hdr) = r.finish();
            let mut f = hdr.to_vec();
            for p in &parts {
                f.extend_from_slice(p);
            }
            out.push((Some(h), f));
        }
    };
    for s in segs {
        if let Some((r, parts)) = run.as_mut() {
            if let Some(p) = r.push(s) {
                parts.push(s[p].to_vec());
                continue;
            }
        }
        flush(&mut run, &mut out);
        match Run::start(s) {
            Some((r, p)) => run = Some((r, vec![s[p].to_vec()])),
            None => out.push((None, s.clone())),
        }
    }
    flush(&mut run, &mut out);
    out
}

#[test]
fn coalescing_undoes_segmentation() {
    for v6 in [false, true] {
        let data = payload(20_000);
        let src = tcp_superframe(v6, &data, 0x18);
        let h = gso(v6, 1400);
        let segs = segments(&src, &h);
        let merged = coalesce(&segs);
        assert_eq!(merged.len(), 1, "one frame for the whole run");
        let (mh, f) = &merged[0];
        let mh = mh.unwrap();
        assert_eq!(mh.gso_type, h.gso_type);
        assert_eq!(mh.gso_size, 1400);
        assert_eq!(mh.flags, vnet::F_NEEDS_CSUM);
        assert_eq!(mh.hdr_len as usize, f.len() - data.len());
        // The merged frame is the super-frame again, checksums completed.
        same(&completed(f), &completed(&src), "merged vs super-frame");
        // And the kernel would split it into the very same segments.
        for (a, b) in segments(f, &mh).iter().zip(&segs) {
            same(a, b, "segment of the merged frame");
        }
    }
}

#[test]
fn fixed_ids_with_df_are_merged() {
    let src = tcp_superframe(false, &payload(3000), 0x10);
    let mut segs = segments(&src, &gso(false, 1000));
    for s in &mut segs {
        s[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        let l = layout(s).unwrap();
        super::layout::write_ipv4_checksum(s, &l);
    }
    assert_eq!(coalesce(&segs).len(), 1);
    // Without DF they must increase.
    for s in &mut segs {
        s[20] = 0;
    }
    assert_eq!(coalesce(&segs).len(), 3);
}

#[test]
fn runs_end_where_the_flow_does() {
    let src = tcp_superframe(false, &payload(4000), 0x10);
    let segs = segments(&src, &gso(false, 1000));
    let alone =
        |c: &[(Option<Hdr>, Vec<u8>)]| c.iter().map(|(h, _)| h.is_some()).collect::<Vec<_>>();

    // A gap in the sequence: two runs.
    let gap = vec![segs[0].clone(), segs[1].clone(), segs[3].clone()];
    assert_eq!(alone(&coalesce(&gap)), vec![true, true]);

    // A segment of another flow (other port) in between.
    let mut other = segs[1].clone();
    other[34..36].copy_from_slice(&40001u16.to_be_bytes());
    let mixed = vec![segs[0].clone(), other, segs[1].clone()];
    assert_eq!(coalesce(&mixed).len(), 3);

    // Another acknowledgment number, window or TTL.
    for (at, v) in [(42usize, 0x55u8), (49, 0x01), (22, 3)] {
        let mut changed = segs[1].clone();
        changed[at] ^= v;
        assert_eq!(coalesce(&[segs[0].clone(), changed]).len(), 2, "byte {at}");
    }

    // After a short segment, nothing joins.
    let short = tcp_superframe(false, &payload(500), 0x10);
    let mut late = segs[0].clone();
    late[38..42].copy_from_slice(&seq(&short).wrapping_add(500).to_be_bytes());
    let l = layout(&late).unwrap();
    super::layout::write_checksum(&mut late, &l);
    assert_eq!(coalesce(&[short, late]).len(), 2);

    // SYN, FIN, RST, URG never start a run; a pure ACK has no payload.
    for flag in [0x02u8, 0x01, 0x04, 0x20] {
        let mut f = segs[0].clone();
        f[47] |= flag;
        assert!(Run::start(&f).is_none(), "flag {flag:#x}");
    }
    let ack = tcp_superframe(false, &[], 0x10);
    assert!(Run::start(&ack).is_none());
    // Nor does anything but TCP.
    let mut udp = segs[0].clone();
    udp[23] = UDP;
    assert!(Run::start(&udp).is_none());
}

#[test]
fn a_run_stops_at_64_kib() {
    let src = tcp_superframe(false, &payload(64_000), 0x10);
    let segs = segments(&src, &gso(false, 1000));
    let mut long = segs.clone();
    // 64 segments of 1000 bytes plus headers exceed 65535: the run closes
    // before, and the rest starts another.
    let more = tcp_superframe(false, &payload(3000), 0x10);
    let extra = segments(&more, &gso(false, 1000));
    for (i, mut s) in extra.into_iter().enumerate() {
        let next = seq(&segs[0]).wrapping_add(64_000 + 1000 * i as u32);
        s[38..42].copy_from_slice(&next.to_be_bytes());
        s[18..20].copy_from_slice(&(0x1234u16 + 64 + i as u16).to_be_bytes());
        let l = layout(&s).unwrap();
        super::layout::write_ipv4_checksum(&mut s, &l);
        super::layout::write_checksum(&mut s, &l);
        long.push(s);
    }
    let merged = coalesce(&long);
    assert!(merged.len() >= 2);
    for (_, f) in &merged {
        assert!(f.len() - 14 <= 65535);
    }
    let total: usize = merged.iter().map(|(_, f)| f.len() - 66).sum();
    assert_eq!(total, 67_000);
}

#[test]
fn sends_are_sized_to_fit_64_kib() {
    assert_eq!(segs_per_send(1472, false), 44);
    assert_eq!(segs_per_send(100, false), 64);
    assert_eq!(segs_per_send(70_000, true), 1);
}
