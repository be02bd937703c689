//! The `CACHE_LIST` dump of a large target cache: paced a part at a time
//! as the client reads, each answered entry once and in MAC order, and
//! resuming after the last MAC sent when the cache changes between parts.

use nlproto::{
    client::Client,
    msg::{NLM_F_ACK, NLM_F_REQUEST},
    spec::target as tg,
    Attr, AttrsExt, Message,
};
use overlay_tests::{
    proto::{self, cache_list_request, cache_set_request, numbered_mac},
    Daemon, TempDir,
};
use std::net::Ipv4Addr;

/// Entries the cache is filled with.
const ENTRIES: u32 = 20_000;
/// CACHE_SET requests sent per datagram while filling.
const PER_DATAGRAM: u32 = 200;

/// A daemon with `dyn0` active in dynamic mode (files, no hosts). The
/// directory holds the files plugin's config.
fn setup() -> (Daemon, TempDir) {
    let d = Daemon::start();
    let dir = TempDir::new("cache-list");
    let config = dir.join("hosts.json");
    std::fs::write(&config, "{}").unwrap();
    d.files_overlay("dyn0", "vxlan", 43, "10.200.0.1", &config, &[]);
    (d, dir)
}

/// The underlay address of the `n`th entry of a datagram while filling.
fn dest(n: u32) -> Ipv4Addr {
    let [a, b] = ((n % 60_000) as u16 + 1).to_be_bytes();
    Ipv4Addr::new(10, 9, a, b)
}

/// Sets the entries `macs` (numbered `first..`), many per datagram and
/// without acks, then one with an ack: an error on any of them would
/// arrive before that ack.
fn fill(c: &mut Client, macs: &[[u8; 6]]) {
    let mut seq = 1000;
    for chunk in macs.chunks(PER_DATAGRAM as usize) {
        let mut datagram = Vec::new();
        for (i, m) in chunk.iter().enumerate() {
            seq += 1;
            datagram.extend(cache_set_request(
                "dyn0",
                *m,
                dest(i as u32),
                NLM_F_REQUEST,
                seq,
            ));
        }
        c.send_raw(&datagram).unwrap();
    }
    seq += 1;
    c.send_raw(&cache_set_request(
        "dyn0",
        macs[0],
        dest(0),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    ))
    .unwrap();
    let ack = proto::expect_error_reply(c, seq);
    assert_eq!(ack.errno, 0, "{ack:?}");
}

/// Reads one part of the dump: the MACs it lists and whether it ends
/// with `NLMSG_DONE`.
fn read_part(c: &mut Client) -> (Vec<[u8; 6]>, bool) {
    let mut macs = Vec::new();
    let mut done = false;
    for m in proto::recv_messages(c) {
        assert!(!done, "nothing after NLMSG_DONE in its datagram");
        match m {
            Message::Genl(g) => {
                assert_eq!(g.cmd, tg::CMD_CACHE_LIST);
                assert_eq!(g.attrs.get_str(tg::ATTR_NAME), Some("dyn0"));
                let mac: [u8; 6] = g.attrs.get_bytes(tg::ATTR_MAC).unwrap().try_into().unwrap();
                macs.push(mac);
            }
            Message::Done(_) => done = true,
            other => panic!("{other:?}"),
        }
    }
    (macs, done)
}

/// Reads parts until `NLMSG_DONE` (at most one per entry and a few more):
/// every MAC listed, and the number of parts.
fn read_rest(c: &mut Client, mut macs: Vec<[u8; 6]>, mut parts: usize) -> (Vec<[u8; 6]>, usize) {
    let bound = 2 * ENTRIES as usize + 10;
    loop {
        assert!(parts < bound, "the dump never ended");
        let (more, done) = read_part(c);
        parts += 1;
        macs.extend(more);
        if done {
            return (macs, parts);
        }
    }
}

/// Asserts that `listed` is in strictly increasing MAC order (so no MAC
/// is listed twice).
#[track_caller]
fn assert_once_in_order(listed: &[[u8; 6]]) {
    if let Some(w) = listed.windows(2).find(|w| w[0] >= w[1]) {
        panic!("{:02x?} listed before {:02x?}", w[0], w[1]);
    }
}

#[test]
fn a_large_cache_is_listed_once_in_several_parts() {
    let (d, _dir) = setup();
    let mut c = d.client();
    // Set in an order unlike MAC order.
    let macs: Vec<[u8; 6]> = (0..ENTRIES)
        .map(|i| numbered_mac((i * 7919) % ENTRIES))
        .collect();
    fill(&mut c, &macs);

    c.send_raw(&cache_list_request("dyn0", 1)).unwrap();
    let (listed, parts) = read_rest(&mut c, Vec::new(), 0);
    assert_once_in_order(&listed);
    // Entries the device learnt by itself (frames the host sent on its
    // TAP) sort before or after the filled range; the range is all there.
    let ours: Vec<[u8; 6]> = listed
        .into_iter()
        .filter(|m| m[..2] == [0x02, 0x01])
        .collect();
    assert_eq!(ours, (0..ENTRIES).map(numbered_mac).collect::<Vec<_>>());
    // About forty entries fit in a part of a page.
    assert!(
        parts >= (ENTRIES / 100) as usize,
        "{ENTRIES} entries in only {parts} parts"
    );

    // The connection goes on serving after the dump.
    let reply = c
        .transact(
            tg::NAME,
            tg::CMD_CACHE_GET,
            vec![
                Attr::str(tg::ATTR_NAME, "dyn0"),
                Attr::bytes(tg::ATTR_MAC, numbered_mac(ENTRIES - 1).to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(
        reply.attrs.get_bytes(tg::ATTR_MAC),
        Some(&numbered_mac(ENTRIES - 1)[..])
    );
}

#[test]
fn entries_that_stay_are_listed_once_when_the_cache_changes_between_parts() {
    let (d, _dir) = setup();
    let mut c = d.client();
    let mut w = d.client();
    let macs: Vec<[u8; 6]> = (0..ENTRIES).map(numbered_mac).collect();
    fill(&mut c, &macs);

    c.send_raw(&cache_list_request("dyn0", 1)).unwrap();
    let (first, done) = read_part(&mut c);
    assert!(!done, "the dump has more than one part");
    // The daemon may already have produced the second part (it goes out
    // as soon as the first is read), no more: the cursor is within the
    // first hundred entries while the cache changes, far behind the
    // changes made ahead of it and past those made behind it.
    let removed: Vec<u32> = (10_000..10_500).collect();
    for &n in &removed {
        w.write(
            tg::NAME,
            tg::CMD_CACHE_REMOVE,
            vec![
                Attr::str(tg::ATTR_NAME, "dyn0"),
                Attr::bytes(tg::ATTR_MAC, numbered_mac(n).to_vec()),
            ],
        )
        .unwrap();
    }
    let ahead: Vec<[u8; 6]> = (0..300).map(|n| numbered_mac(2 * ENTRIES + n)).collect();
    let behind: Vec<[u8; 6]> = (0..300u32)
        .map(|n| {
            let b = n.to_be_bytes();
            [0x02, 0x00, 0, 0, b[2], b[3]]
        })
        .collect();
    fill(&mut w, &ahead);
    fill(&mut w, &behind);

    let (listed, parts) = read_rest(&mut c, first, 1);
    assert!(parts > 2, "{parts} parts");
    assert_once_in_order(&listed);
    for b in &behind {
        assert!(
            !listed.contains(b),
            "{b:02x?} was set behind the cursor and is not listed"
        );
    }
    let ours: Vec<[u8; 6]> = listed
        .into_iter()
        .filter(|m| m[..2] == [0x02, 0x01])
        .collect();
    let expected: Vec<[u8; 6]> = (0..ENTRIES)
        .filter(|n| !removed.contains(n))
        .map(numbered_mac)
        .chain(ahead.iter().copied())
        .collect();
    assert_eq!(ours.len(), expected.len());
    assert_eq!(ours, expected);
}
