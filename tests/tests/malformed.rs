//! Malformed and unusual datagrams sent raw: each gets an NLMSG_ERROR with
//! the right errno, an extended-ack text and, for attributes, the offset;
//! and the connection goes on serving.

use nlproto::client::Client;
use nlproto::msg::{ErrorMsg, NLMSG_NOOP, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use nlproto::spec::{handle, overlay as ov};
use nlproto::{Attr, Message};
use overlay_tests::proto::{self, name, overlay_request, request};
use overlay_tests::Daemon;

/// Sets `nlmsg_len` of the message at the start of `bytes`.
fn set_len(bytes: &mut [u8], len: u32) {
    bytes[..4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends raw attribute bytes to a message and fixes its length.
fn with_tail(mut msg: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    msg.extend_from_slice(tail);
    let len = msg.len() as u32;
    set_len(&mut msg, len);
    msg
}

/// An `nlattr` header.
fn nla(len: u16, kind: u16) -> Vec<u8> {
    let mut v = len.to_ne_bytes().to_vec();
    v.extend_from_slice(&kind.to_ne_bytes());
    v
}

/// The connection still works: a transaction and a dump succeed.
fn still_serving(c: &mut Client) {
    let pid = c
        .transact(handle::NAME, handle::CMD_GET_PID, vec![])
        .expect("GET_PID after a malformed request");
    assert_eq!(
        nlproto::AttrsExt::get_u32(pid.attrs.as_slice(), handle::HANDLE_ATTR_PID),
        Some(c.pid())
    );
    proto::device_names(c);
}

/// Sends `bytes`, expects exactly one NLMSG_ERROR answering `seq` with
/// `errno`, a text holding every needle, and the handle's PID.
#[track_caller]
fn refused(c: &mut Client, bytes: &[u8], seq: u32, errno: i32, needles: &[&str]) -> ErrorMsg {
    c.send_raw(bytes).unwrap();
    let e = proto::expect_error_reply(c, seq);
    assert_eq!(
        e.errno,
        errno,
        "expected {}, got {} ({:?})",
        nlproto::errno::label(errno),
        nlproto::errno::label(e.errno),
        e.message
    );
    let text = e.message.clone().expect("extended-ack text");
    for n in needles {
        assert!(text.contains(n), "{text:?} does not mention {n:?}");
    }
    assert_eq!(e.pid, c.pid(), "nlmsg_pid is the handle's PID");
    assert_eq!(
        e.request.sequence_number, seq,
        "the request header is echoed"
    );
    e
}

#[test]
fn truncated_header() {
    let d = Daemon::start();
    let mut c = d.client();
    let full = overlay_request(ov::CMD_LIST, 7, vec![name("ov0")]);
    // 12 bytes: length, type, flags and sequence number, no PID.
    let e = refused(&mut c, &full[..12], 7, libc::EINVAL, &["12", "16"]);
    assert_eq!(e.offset, None);
    still_serving(&mut c);
    // 3 bytes: not even a length. One error, nothing else.
    c.send_raw(&full[..3]).unwrap();
    let msgs = proto::recv_messages(&mut c);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    match &msgs[0] {
        Message::Error(e) => {
            assert_eq!(e.errno, libc::EINVAL);
            assert!(e.message.as_deref().unwrap_or("").contains('3'), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    still_serving(&mut c);
}

/// An empty datagram is a datagram shorter than 16 bytes like any other:
/// it is answered with EINVAL, and the connection stays open.
#[test]
fn empty_datagram() {
    let d = Daemon::start();
    let mut c = d.client();
    c.send_raw(&[]).unwrap();
    let msgs = match c.recv_raw() {
        Ok(datagram) => nlproto::server::split_datagram(&datagram)
            .map(|m| proto::parse(m.expect("a well-framed reply").bytes))
            .collect::<Vec<_>>(),
        Err(e) => panic!(
            "an empty datagram got no EINVAL ({e}); the daemon's log:\n{}",
            d.log()
        ),
    };
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    match &msgs[0] {
        Message::Error(e) => {
            assert_eq!(e.errno, libc::EINVAL);
            assert!(e.message.as_deref().unwrap_or("").contains("16"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    still_serving(&mut c);
}

#[test]
fn length_beyond_the_datagram() {
    let d = Daemon::start();
    let mut c = d.client();
    let mut msg = overlay_request(ov::CMD_LIST, 8, vec![name("ov0")]);
    let real = msg.len();
    set_len(&mut msg, real as u32 + 40);
    let e = refused(
        &mut c,
        &msg,
        8,
        libc::EINVAL,
        &[&(real + 40).to_string(), &real.to_string()],
    );
    assert_eq!(e.request.length as usize, real + 40);
    assert_eq!(e.offset, None);
    still_serving(&mut c);
    // A length below the header's own size is refused as well.
    set_len(&mut msg, 8);
    refused(&mut c, &msg, 8, libc::EINVAL, &["16"]);
    still_serving(&mut c);
}

#[test]
fn attribute_overrunning_the_message() {
    let d = Daemon::start();
    let mut c = d.client();
    // NAME claims 60 bytes; 8 are left in the message.
    let mut msg = overlay_request(ov::CMD_LIST, 9, vec![name("ov0")]);
    msg[20..22].copy_from_slice(&60u16.to_ne_bytes());
    let e = refused(&mut c, &msg, 9, libc::EINVAL, &["NAME", "60", "8"]);
    assert_eq!(e.offset, Some(20));
    still_serving(&mut c);
}

#[test]
fn attribute_overrunning_its_nested_parent() {
    let d = Daemon::start();
    let mut c = d.client();
    let base = overlay_request(
        ov::CMD_CREATE,
        10,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 1),
        ],
    );
    let props_at = base.len();
    // PROPS of 12 bytes holding a PROP that claims 40.
    let mut tail = nla(12, ov::ATTR_PROPS | 0x8000);
    tail.extend(nla(40, ov::ATTR_PROP | 0x8000));
    tail.extend([0u8; 4]);
    let msg = with_tail(base, &tail);
    let e = refused(
        &mut c,
        &msg,
        10,
        libc::EINVAL,
        &["PROP (19)", "PROPS (18)", "40"],
    );
    assert_eq!(
        e.offset,
        Some(props_at as u32 + 4),
        "offset of the PROP header"
    );
    assert!(proto::device_names(&mut c).is_empty(), "nothing created");
    still_serving(&mut c);
}

#[test]
fn unknown_command() {
    let d = Daemon::start();
    let mut c = d.client();
    let msg = overlay_request(12, 11, vec![]);
    let e = refused(&mut c, &msg, 11, libc::EOPNOTSUPP, &["overlay", "12"]);
    assert_eq!(e.offset, None);
    still_serving(&mut c);
    // Past overlay_handle's commands.
    let msg = request(handle::ID, 5, 1, NLM_F_REQUEST | NLM_F_ACK, 12, vec![]);
    refused(&mut c, &msg, 12, libc::EOPNOTSUPP, &["overlay_handle", "5"]);
    still_serving(&mut c);
    // A dump of a command without one.
    let msg = request(
        ov::ID,
        ov::CMD_GETPROP,
        1,
        NLM_F_REQUEST | NLM_F_DUMP,
        13,
        vec![],
    );
    refused(&mut c, &msg, 13, libc::EOPNOTSUPP, &["GETPROP", "dump"]);
    still_serving(&mut c);
}

#[test]
fn wrong_version() {
    let d = Daemon::start();
    let mut c = d.client();
    for (version, seq) in [(7u8, 14u32), (0, 15)] {
        let msg = request(
            ov::ID,
            ov::CMD_LIST,
            version,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            vec![],
        );
        let e = refused(
            &mut c,
            &msg,
            seq,
            libc::EINVAL,
            &["overlay", &format!("version {version}")],
        );
        assert_eq!(e.offset, None);
        still_serving(&mut c);
    }
}

#[test]
fn unknown_family() {
    let d = Daemon::start();
    let mut c = d.client();
    let msg = request(99, 1, 1, NLM_F_REQUEST | NLM_F_ACK, 16, vec![]);
    let e = refused(&mut c, &msg, 16, libc::EOPNOTSUPP, &["99"]);
    assert_eq!(e.offset, None);
    still_serving(&mut c);
    // A control message type is no request either.
    let mut msg = msg;
    msg[4..6].copy_from_slice(&2u16.to_ne_bytes());
    refused(&mut c, &msg, 16, libc::EINVAL, &["NLMSG_ERROR"]);
    still_serving(&mut c);
}

#[test]
fn wrong_size_integer_attributes_point_at_the_attribute() {
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    // NAME "ov0" takes bytes 20..28, so LINKID starts at 28.
    let msg = overlay_request(
        ov::CMD_LIST,
        17,
        vec![name("ov0"), Attr::bytes(ov::ATTR_LINKID, vec![1, 0])],
    );
    let e = refused(&mut c, &msg, 17, libc::EINVAL, &["LINKID (1)", "4", "2"]);
    assert_eq!(e.offset, Some(28));
    still_serving(&mut c);

    // A u64 of 4 bytes after NAME (8), ENCAP (12) and SEARCH (12): at 52.
    let msg = overlay_request(
        ov::CMD_CREATE,
        18,
        vec![
            name("ov1"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::bytes(ov::ATTR_VNETID, vec![0; 4]),
        ],
    );
    let e = refused(&mut c, &msg, 18, libc::EINVAL, &["VNETID (5)", "8"]);
    assert_eq!(e.offset, Some(52));

    // Inside PROPS (at 64) > PROP (68) > PROP_NAME "mtu" (72..80) > PROP_ID.
    let msg = overlay_request(
        ov::CMD_CREATE,
        19,
        vec![
            name("ov1"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 2),
            Attr::nested(
                ov::ATTR_PROPS,
                vec![Attr::nested(
                    ov::ATTR_PROP,
                    vec![
                        Attr::str(ov::ATTR_PROP_NAME, "mtu"),
                        Attr::bytes(ov::ATTR_PROP_ID, vec![0, 0]),
                    ],
                )],
            ),
        ],
    );
    let e = refused(&mut c, &msg, 19, libc::EINVAL, &["PROP_ID (10)"]);
    assert_eq!(e.offset, Some(80));
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    still_serving(&mut c);
}

/// Receives until a message with `last_seq` ends the exchange (its reply
/// set complete: NLMSG_DONE, an error, or an ack).
fn collect_until(c: &mut Client, last_seq: u32) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        for m in proto::recv_messages(c) {
            let end = m.seq() == last_seq && matches!(m, Message::Done(_) | Message::Error(_));
            out.push(m);
            if end {
                return out;
            }
        }
    }
}

#[test]
fn three_requests_in_one_datagram_are_answered_in_order() {
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    let mut datagram = request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST | NLM_F_ACK,
        30,
        vec![],
    );
    datagram.extend(overlay_request(12, 31, vec![]));
    datagram.extend(request(
        ov::ID,
        ov::CMD_LIST,
        1,
        NLM_F_REQUEST | NLM_F_DUMP,
        32,
        vec![],
    ));
    c.send_raw(&datagram).unwrap();
    let msgs = collect_until(&mut c, 32);
    let summary: Vec<(u32, &str)> = msgs
        .iter()
        .map(|m| {
            (
                m.seq(),
                match m {
                    Message::Genl(_) => "data",
                    Message::Error(e) if e.is_ack() => "ack",
                    Message::Error(_) => "error",
                    Message::Done(_) => "done",
                    Message::Noop { .. } => "noop",
                },
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (30, "data"),
            (30, "ack"),
            (31, "error"),
            (32, "data"),
            (32, "done")
        ]
    );
    match &msgs[0] {
        Message::Genl(g) => assert_eq!(
            nlproto::AttrsExt::get_u32(g.attrs.as_slice(), handle::HANDLE_ATTR_PID),
            Some(c.pid())
        ),
        _ => unreachable!(),
    }
    match &msgs[2] {
        Message::Error(e) => {
            assert_eq!(e.errno, libc::EOPNOTSUPP);
            assert!(e.message.as_deref().unwrap().contains("12"));
        }
        _ => unreachable!(),
    }
    match &msgs[3] {
        Message::Genl(g) => {
            assert_eq!(
                g.flags & nlproto::msg::NLM_F_MULTI,
                nlproto::msg::NLM_F_MULTI
            );
            assert_eq!(
                nlproto::AttrsExt::get_str(g.attrs.as_slice(), ov::ATTR_NAME),
                Some("ov0")
            );
        }
        _ => unreachable!(),
    }
    still_serving(&mut c);
}

#[test]
fn noop_is_ignored_and_a_framing_error_ends_the_datagram() {
    let d = Daemon::start();
    let mut c = d.client();
    // NOOP in the middle: no answer for it.
    let mut noop = vec![0u8; 16];
    set_len(&mut noop, 16);
    noop[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
    noop[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    noop[8..12].copy_from_slice(&40u32.to_ne_bytes());
    let mut datagram = request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST,
        39,
        vec![],
    );
    datagram.extend(&noop);
    datagram.extend(request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST | NLM_F_ACK,
        41,
        vec![],
    ));
    c.send_raw(&datagram).unwrap();
    let seqs: Vec<u32> = collect_until(&mut c, 41).iter().map(Message::seq).collect();
    assert_eq!(seqs, [39, 41, 41]);

    // GET_PID, then a message claiming more bytes than there are, then a
    // LIST: the LIST is discarded with the broken rest of the datagram.
    let mut datagram = request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST | NLM_F_ACK,
        42,
        vec![],
    );
    let mut bad = overlay_request(ov::CMD_LIST, 43, vec![]);
    set_len(&mut bad, 1000);
    datagram.extend(&bad);
    datagram.extend(request(
        ov::ID,
        ov::CMD_LIST,
        1,
        NLM_F_REQUEST | NLM_F_DUMP,
        44,
        vec![],
    ));
    c.send_raw(&datagram).unwrap();
    let msgs = collect_until(&mut c, 43);
    let seqs: Vec<u32> = msgs.iter().map(Message::seq).collect();
    assert_eq!(seqs, [42, 42, 43]);
    match &msgs[2] {
        Message::Error(e) => {
            assert_eq!(e.errno, libc::EINVAL);
            assert!(e.message.as_deref().unwrap().contains("1000"), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    // The next answer on the connection is for the next request, not 44.
    c.send_raw(&request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST | NLM_F_ACK,
        45,
        vec![],
    ))
    .unwrap();
    let seqs: Vec<u32> = collect_until(&mut c, 45).iter().map(Message::seq).collect();
    assert_eq!(seqs, [45, 45]);
}

#[test]
fn client_closing_without_reading_does_not_disturb_the_daemon() {
    let mut d = Daemon::start();
    let mut watcher = d.client();
    let mut pids = Vec::new();
    for i in 0..5 {
        let mut c = d.client();
        pids.push(c.pid());
        let msg = overlay_request(
            ov::CMD_CREATE,
            50,
            vec![
                name(&format!("gone{i}")),
                Attr::str(ov::ATTR_ENCAP, "vxlan"),
                Attr::str(ov::ATTR_SEARCH, "direct"),
                Attr::u64(ov::ATTR_VNETID, 100 + i),
            ],
        );
        c.send_raw(&msg).unwrap();
        drop(c);
    }
    for pid in pids {
        d.wait_closed(pid);
    }
    let names = proto::device_names(&mut watcher);
    assert_eq!(names, ["gone0", "gone1", "gone2", "gone3", "gone4"]);
    // Both the old and a new connection are served.
    still_serving(&mut watcher);
    let mut fresh = d.client();
    still_serving(&mut fresh);
    assert!(d.alive());
}

#[test]
fn client_disconnecting_mid_message_does_not_disturb_anything() {
    let mut d = Daemon::start();
    let mut watcher = d.client();
    proto::create(&mut watcher, "ov0", 1, &[]).unwrap();
    let create = overlay_request(
        ov::CMD_CREATE,
        60,
        vec![
            name("half"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 2),
        ],
    );
    let mut pids = Vec::new();
    for cut in [8, create.len() / 2, create.len() - 4] {
        let mut c = d.client();
        pids.push(c.pid());
        c.send_raw(&create[..cut]).unwrap();
        drop(c);
    }
    // A client that connects and leaves without a word.
    let silent = d.client();
    pids.push(silent.pid());
    drop(silent);
    for pid in pids {
        d.wait_closed(pid);
    }
    still_serving(&mut watcher);
    let names = proto::device_names(&mut watcher);
    assert_eq!(names, ["ov0"], "a half message created something");
    let mut fresh = d.client();
    still_serving(&mut fresh);
    proto::create(&mut fresh, "ov1", 2, &[]).unwrap();
    assert_eq!(proto::device_names(&mut watcher), ["ov0", "ov1"]);
    assert!(d.alive());
}
