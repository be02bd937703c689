//! The control server under load and odd use: dumps spanning several
//! datagrams, oversized datagrams, a client that never reads, many
//! connections at once, and the finer points of attribute validation.

use nlproto::client::{Client, Error};
use nlproto::msg::{NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, NLM_F_REQUEST};
use nlproto::spec::{handle, overlay as ov};
use nlproto::{Attr, AttrsExt, Message};
use overlay_tests::proto::{self, name, overlay_request, request};
use overlay_tests::Daemon;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

#[test]
fn large_dump_spans_several_datagrams() {
    let d = Daemon::start();
    let mut c = d.client();
    let n = 400;
    for i in 0..n {
        proto::create(&mut c, &format!("overlay-device-{i:04}"), i, &[]).unwrap();
    }
    // Raw: every part flagged NLM_F_MULTI, then one NLMSG_DONE.
    c.send_raw(&request(
        ov::ID,
        ov::CMD_LIST,
        1,
        NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK,
        77,
        vec![],
    ))
    .unwrap();
    let mut datagrams = 0;
    let mut items = Vec::new();
    'outer: loop {
        datagrams += 1;
        for m in proto::recv_messages(&mut c) {
            assert_eq!(m.seq(), 77);
            match m {
                Message::Genl(g) => {
                    assert_eq!(g.flags & NLM_F_MULTI, NLM_F_MULTI);
                    items.push(g.attrs.get_str(ov::ATTR_NAME).unwrap().to_string());
                }
                Message::Done(done) => {
                    assert_eq!(done.errno, 0);
                    break 'outer;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(datagrams > 1, "{n} devices fit one datagram?");
    let expected: Vec<String> = (0..n).map(|i| format!("overlay-device-{i:04}")).collect();
    assert_eq!(items, expected);
    // NLM_F_ACK on a dump is ignored: the next thing is the next answer.
    let pid = c
        .transact(handle::NAME, handle::CMD_GET_PID, vec![])
        .unwrap();
    assert_eq!(pid.attrs.get_u32(handle::HANDLE_ATTR_PID), Some(c.pid()));
    assert_eq!(proto::device_names(&mut c), expected);
}

#[test]
fn oversized_datagram_is_refused_and_the_connection_goes_on() {
    let d = Daemon::start();
    let mut c = d.client();
    // One LIST request of about 80 KiB: more than the daemon reads at once.
    let chunk = Attr::bytes(ov::ATTR_PROP_VALUE, vec![0u8; 200]);
    let mut msg = overlay_request(ov::CMD_LIST, 80, vec![name("ov0")]);
    let mut filler = Vec::new();
    nlproto::attr::emit_attrs(&vec![chunk; 400], &mut filler);
    msg.extend(&filler);
    let len = msg.len() as u32;
    msg[..4].copy_from_slice(&len.to_ne_bytes());
    assert!(msg.len() > 64 * 1024);
    c.send_raw(&msg).unwrap();
    let e = proto::expect_error_reply(&mut c, 80);
    assert_eq!(e.errno, libc::EINVAL, "{e:?}");
    assert!(e.message.is_some());
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
}

#[test]
fn client_that_never_reads_does_not_stall_others() {
    let d = Daemon::start();
    let mut flooder = d.client();
    let flooder_pid = flooder.pid();
    // Non-blocking sends: stop when the daemon stops reading from us.
    let fd = flooder.as_fd().as_raw_fd();
    // SAFETY: fcntl on a descriptor the client owns and keeps open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    // Each datagram: 500 PLUGINS dumps, about half a megabyte of replies.
    let mut datagram = Vec::new();
    for i in 0..500 {
        datagram.extend(request(
            ov::ID,
            ov::CMD_PLUGINS,
            1,
            NLM_F_REQUEST | NLM_F_DUMP,
            1000 + i,
            vec![],
        ));
    }
    let mut sent = 0;
    let mut blocked = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && sent < 400 {
        match flooder.send_raw(&datagram) {
            Ok(()) => sent += 1,
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("flooding: {e}"),
        }
    }
    assert!(sent > 0);
    assert!(
        blocked,
        "the daemon kept reading {sent} datagrams of requests"
    );

    // Everyone else is served promptly meanwhile.
    let started = Instant::now();
    let mut other = Client::connect_with(&d.socket, Duration::from_secs(5)).expect("connect");
    proto::create(&mut other, "ov0", 1, &[]).unwrap();
    assert_eq!(proto::device_names(&mut other), ["ov0"]);
    assert!(started.elapsed() < Duration::from_secs(5));

    // When the flooder goes away its connection is cleaned up.
    drop(flooder);
    d.wait_closed(flooder_pid);
    let mut late = d.client();
    assert_eq!(proto::device_names(&mut late), ["ov0"]);
}

#[test]
fn many_connections_at_once() {
    let d = Daemon::start();
    let mut clients: Vec<Client> = (0..64).map(|_| d.client()).collect();
    let mut pids: Vec<u32> = clients.iter().map(Client::pid).collect();
    assert!(pids.iter().all(|p| *p != 0));
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 64, "every handle has its own PID");
    // Interleaved requests on all of them.
    for (i, c) in clients.iter_mut().enumerate() {
        proto::create(c, &format!("ov{i}"), i as u64, &[]).unwrap();
    }
    for c in clients.iter_mut() {
        assert_eq!(proto::device_names(c).len(), 64);
    }
}

#[test]
fn attribute_policy_details() {
    let d = Daemon::start();
    let mut c = d.client();
    let check = |c: &mut Client, msg: Vec<u8>, seq: u32, offset: Option<u32>, needle: &str| {
        c.send_raw(&msg).unwrap();
        let e = proto::expect_error_reply(c, seq);
        assert_eq!(e.errno, libc::EINVAL, "{e:?}");
        let text = e.message.unwrap_or_default();
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        assert_eq!(e.offset, offset, "{text}");
    };
    // A string without its NUL.
    let msg = overlay_request(
        ov::CMD_LIST,
        90,
        vec![Attr::bytes(ov::ATTR_NAME, b"ov0x".to_vec())],
    );
    check(&mut c, msg, 90, Some(20), "NUL");
    // Invalid UTF-8.
    let msg = overlay_request(
        ov::CMD_LIST,
        91,
        vec![Attr::bytes(ov::ATTR_NAME, vec![b'o', 0xff, 0])],
    );
    check(&mut c, msg, 91, Some(20), "UTF-8");
    // A name longer than 31 bytes.
    let msg = overlay_request(ov::CMD_LIST, 92, vec![name(&"x".repeat(32))]);
    check(&mut c, msg, 92, Some(20), "31");
    // NAME twice: the offset is the second one's.
    let msg = overlay_request(ov::CMD_LIST, 93, vec![name("ov0"), name("ov1")]);
    check(&mut c, msg, 93, Some(28), "more than once");
    // An attribute number the family does not have.
    let msg = overlay_request(ov::CMD_LIST, 94, vec![name("ov0"), Attr::u32(30, 1)]);
    check(&mut c, msg, 94, Some(28), "30");
    // A nested attribute without NLA_F_NESTED.
    let mut msg = overlay_request(
        ov::CMD_CREATE,
        95,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 1),
            Attr::nested(ov::ATTR_PROPS, vec![]),
        ],
    );
    let at = msg.len() - 4;
    msg[at + 2..at + 4].copy_from_slice(&ov::ATTR_PROPS.to_ne_bytes());
    check(&mut c, msg, 95, Some(at as u32), "NLA_F_NESTED");
    // Missing NLM_F_REQUEST.
    let msg = request(ov::ID, ov::CMD_LIST, 1, NLM_F_DUMP, 96, vec![]);
    check(&mut c, msg, 96, None, "NLM_F_REQUEST");
    // A payload shorter than the genetlink header.
    let mut msg = request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST,
        97,
        vec![],
    );
    msg.truncate(18);
    msg[..4].copy_from_slice(&18u32.to_ne_bytes());
    check(&mut c, msg, 97, None, "genetlink header");
    assert!(proto::device_names(&mut c).is_empty());
}
