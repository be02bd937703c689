use super::*;
use crate::msg::{ErrorMsg, NLM_F_REQUEST};
use crate::server::{ctrl_reply, pack_datagrams, requests, DeviceRef, Request};
use crate::spec::overlay;
use std::thread;
use std::time::Instant;

const PID: u32 = 42;

/// What the fake daemon answers; a stand-in for overlayd's handlers.
fn handle_request(req: &Request) -> Vec<Message> {
    match (req.family.id, req.command.id) {
        (ctrl::GENL_ID_CTRL, _) => ctrl_reply(req, PID),
        (handle::ID, handle::CMD_GET_PID) => {
            req.respond(PID, vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, PID)]])
        }
        (overlay::ID, overlay::CMD_LIST) if req.is_dump => {
            let items = (1..=3)
                .map(|i| {
                    vec![
                        Attr::u32(overlay::ATTR_LINKID, i),
                        Attr::str(overlay::ATTR_NAME, format!("ov{i}")),
                    ]
                })
                .collect();
            req.respond(PID, items)
        }
        (overlay::ID, overlay::CMD_STATUS) => match req.device() {
            Ok(DeviceRef::Name("foo")) => vec![req
                .fail(libc::ENOENT, "no device named foo")
                .reply(PID)
                .into()],
            Ok(_) => req.respond(
                PID,
                vec![vec![
                    Attr::u32(overlay::ATTR_STATUS, overlay::STATUS_OK),
                    Attr::u32(99, 1),
                ]],
            ),
            Err(e) => vec![e.reply(PID).into()],
        },
        (overlay::ID, overlay::CMD_GETPROP) => {
            // A stale reply and a notification-like message come first.
            let mut stale = req.reply(PID, vec![]);
            stale.seq = req.seq().wrapping_sub(1);
            let mut out: Vec<Message> = vec![stale.into(), Message::Noop { seq: 0, pid: PID }];
            out.extend(req.respond(
                PID,
                vec![vec![Attr::bytes(
                    overlay::ATTR_PROP_VALUE,
                    1400u64.to_ne_bytes().to_vec(),
                )]],
            ));
            out
        }
        (overlay::ID, overlay::CMD_ACTIVATE) => vec![], // never answers
        (handle::ID, handle::CMD_JOIN_GROUP) => {
            match req.attrs.get_u32(handle::HANDLE_ATTR_MCAST_GROUP) {
                Some(1..=3) => req.respond(PID, vec![]),
                _ => vec![req.fail(libc::ENOENT, "no such group").reply(PID).into()],
            }
        }
        (overlay::ID, overlay::CMD_SETPROP) => {
            // The notification of the change comes before the ack, then an
            // overrun report.
            let n = crate::server::notification(
                &overlay::FAMILY,
                overlay::CMD_SETPROP,
                vec![Attr::str(overlay::ATTR_PROP_NAME, "mtu")],
            );
            let mut out: Vec<Message> = vec![n.into()];
            out.extend(req.respond(PID, vec![]));
            out.push(crate::msg::overrun().into());
            out
        }
        (overlay::ID, overlay::CMD_STATS) if req.is_dump => {
            let mut part = req.reply(PID, vec![Attr::u32(overlay::ATTR_LINKID, 1)]);
            part.flags |= NLM_F_DUMP_INTR;
            vec![part.into(), req.done(PID).into()]
        }
        _ => req.respond(PID, vec![]),
    }
}

/// Serves one connection until the peer goes away. Replies are packed into
/// small datagrams so that dumps span several.
fn serve(fd: OwnedFd) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while let Ok(datagram) = sys::recv(fd.as_fd()) {
            let mut out = Vec::new();
            for r in requests(&datagram) {
                match r {
                    Ok(req) => out.extend(handle_request(&req)),
                    Err(e) => out.push(e.reply(PID).into()),
                }
            }
            for g in pack_datagrams(&out, 64) {
                if sys::send(fd.as_fd(), &g).is_err() {
                    return;
                }
            }
        }
    })
}

fn pair_client() -> (Client, thread::JoinHandle<()>) {
    let (a, b) = seqpacket_pair().unwrap();
    let server = serve(b);
    (Client::from_fd(a, Duration::from_secs(5)).unwrap(), server)
}

#[test]
fn handshake_resolution_and_operations() {
    let (mut c, server) = pair_client();
    assert_eq!(c.pid(), PID);
    assert_eq!(c.family_id(overlay::NAME).unwrap(), overlay::ID);
    assert_eq!(c.family_id(ctrl::NAME).unwrap(), ctrl::GENL_ID_CTRL);

    let devices = c.dump(overlay::NAME, overlay::CMD_LIST, vec![]).unwrap();
    assert_eq!(devices.len(), 3);
    assert_eq!(devices[2].attrs.get_str(overlay::ATTR_NAME), Some("ov3"));
    assert!(devices
        .iter()
        .all(|d| d.pid == PID && d.flags == crate::msg::NLM_F_MULTI));

    let status = c
        .transact(
            overlay::NAME,
            overlay::CMD_STATUS,
            vec![Attr::u32(overlay::ATTR_LINKID, 1)],
        )
        .unwrap();
    assert_eq!(
        status.attrs.get_u32(overlay::ATTR_STATUS),
        Some(overlay::STATUS_OK)
    );
    // An attribute the client does not know is kept, not refused.
    assert_eq!(status.attrs.get_bytes(99), Some(&1u32.to_ne_bytes()[..]));

    let err = c
        .transact(
            overlay::NAME,
            overlay::CMD_STATUS,
            vec![Attr::str(overlay::ATTR_NAME, "foo")],
        )
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT));
    assert_eq!(err.to_string(), "no device named foo (ENOENT)");

    c.write(
        overlay::NAME,
        overlay::CMD_DELETE,
        vec![Attr::str(overlay::ATTR_NAME, "ov1")],
    )
    .unwrap();
    let e = c
        .transact(
            overlay::NAME,
            overlay::CMD_DELETE,
            vec![Attr::str(overlay::ATTR_NAME, "ov1")],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");

    let v = c
        .transact(
            overlay::NAME,
            overlay::CMD_GETPROP,
            vec![
                Attr::str(overlay::ATTR_NAME, "ov1"),
                Attr::str(overlay::ATTR_PROP_NAME, "mtu"),
            ],
        )
        .unwrap();
    assert_eq!(
        v.attrs.get_bytes(overlay::ATTR_PROP_VALUE),
        Some(&1400u64.to_ne_bytes()[..])
    );

    // A validation error from the dispatcher, with its offset.
    let e = c
        .transact(
            overlay::NAME,
            overlay::CMD_CREATE,
            vec![Attr::str(overlay::ATTR_NAME, "ov9")],
        )
        .unwrap_err();
    match e {
        Error::Netlink {
            errno,
            message,
            offset,
        } => {
            assert_eq!(errno, libc::EINVAL);
            assert_eq!(
                message.as_deref(),
                Some("command CREATE requires attribute ENCAP (3)")
            );
            assert_eq!(offset, None);
        }
        other => panic!("{other:?}"),
    }

    let families = c.families().unwrap();
    assert_eq!(
        families.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["nlctrl", "overlay_handle", "overlay", "overlay_target"]
    );
    assert_eq!(families[2].ops.len(), 10);
    assert_eq!(families[2].ops[0], (1, 0xb));
    assert_eq!(families[0].version, 2);

    assert!(matches!(
        c.transact("nope", 1, vec![]),
        Err(Error::Protocol(_))
    ));
    drop(c);
    server.join().unwrap();
}

#[test]
fn raw_bytes_and_timeouts() {
    let (mut c, server) = pair_client();
    // A message whose length runs past the datagram.
    let mut bad = GenlMsg {
        family: overlay::ID,
        flags: NLM_F_REQUEST,
        seq: 77,
        pid: 0,
        cmd: overlay::CMD_LIST,
        version: 1,
        attrs: vec![],
    }
    .emit();
    bad[0] = 64;
    c.send_raw(&bad).unwrap();
    let reply = ErrorMsg::parse(&c.recv_raw().unwrap()).unwrap();
    assert_eq!(reply.errno, libc::EINVAL);
    assert_eq!(reply.seq, 77);
    assert_eq!(
        reply.message.as_deref(),
        Some("message length 64 exceeds the datagram's 20 bytes")
    );

    c.set_timeout(Duration::from_millis(150));
    assert_eq!(c.timeout(), Duration::from_millis(150));
    let start = Instant::now();
    let e = c
        .write(
            overlay::NAME,
            overlay::CMD_ACTIVATE,
            vec![Attr::str(overlay::ATTR_NAME, "ov1")],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    assert!(start.elapsed() >= Duration::from_millis(150));
    drop(c);
    server.join().unwrap();
}

#[test]
fn connect_by_path() {
    let dir = std::env::temp_dir().join(format!("nlproto-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("overlayd.sock");
    let _ = std::fs::remove_file(&path);
    let listener = crate::sys::seqpacket_socket(false).unwrap();
    crate::sys::bind_listen(listener.as_fd(), &path, 4).unwrap();
    let acceptor = thread::spawn(move || {
        let conn = crate::sys::accept(listener.as_fd(), false)
            .unwrap()
            .unwrap();
        serve(conn).join().unwrap();
    });
    let mut c = Client::connect(&path).unwrap();
    assert_eq!(c.pid(), PID);
    assert_eq!(c.family_id("overlay_handle").unwrap(), handle::ID);
    drop(c);
    acceptor.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connection_failures() {
    let e = Client::connect("/nonexistent/overlayd.sock").unwrap_err();
    match &e {
        Error::Connect { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::ENOENT)),
        other => panic!("{other:?}"),
    }
    assert!(e
        .to_string()
        .starts_with("cannot connect to /nonexistent/overlayd.sock: "));
    assert!(matches!(Client::connect(""), Err(Error::Connect { .. })));

    // The daemon hangs up before answering.
    let (a, b) = seqpacket_pair().unwrap();
    drop(b);
    match Client::from_fd(a, Duration::from_secs(1)) {
        Err(Error::Io(e)) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn netlink_error_display() {
    let e = Error::Netlink {
        errno: libc::ENOENT,
        message: None,
        offset: None,
    };
    assert_eq!(e.to_string(), "no such file or directory (ENOENT)");
    let e = Error::Netlink {
        errno: 4095,
        message: Some("odd".into()),
        offset: Some(20),
    };
    assert_eq!(e.to_string(), "odd (errno 4095)");
    assert_eq!(Error::Timeout.errno(), None);
}

fn setprop_attrs() -> Vec<Attr> {
    vec![
        Attr::str(overlay::ATTR_NAME, "ov0"),
        Attr::str(overlay::ATTR_PROP_NAME, "mtu"),
        Attr::bytes(overlay::ATTR_PROP_VALUE, 1400u64.to_ne_bytes().to_vec()),
    ]
}

#[test]
fn notifications_are_kept_once_subscribed() {
    let (a, b) = seqpacket_pair().unwrap();
    let server = serve(b);
    let mut c = Client::from_fd(a, Duration::from_secs(5)).unwrap();
    // Before joining, notifications are dropped like any stray message.
    c.write(overlay::NAME, overlay::CMD_SETPROP, setprop_attrs())
        .unwrap();
    let config = c
        .mcast_group_id(overlay::NAME, overlay::GROUP_CONFIG_NAME)
        .unwrap();
    assert_eq!(config, overlay::GROUP_CONFIG);
    let e = c.mcast_group_id(overlay::NAME, "nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "protocol error: family overlay has no multicast group nope; it has: config, status"
    );
    assert_eq!(c.join_group(9).unwrap_err().errno(), Some(libc::ENOENT));
    c.join_group(config).unwrap();
    c.write(overlay::NAME, overlay::CMD_SETPROP, setprop_attrs())
        .unwrap();
    match c.next_notification().unwrap() {
        Notification::Event(m) => {
            assert_eq!((m.cmd, m.seq, m.pid), (overlay::CMD_SETPROP, 0, 0));
            assert_eq!(m.attrs.get_str(overlay::ATTR_PROP_NAME), Some("mtu"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.next_notification().unwrap(), Notification::Overrun);
    let d = c
        .dump_checked(overlay::NAME, overlay::CMD_STATS, vec![])
        .unwrap();
    assert!(d.interrupted);
    assert_eq!(d.items.len(), 1);
    let d = c
        .dump_checked(overlay::NAME, overlay::CMD_LIST, vec![])
        .unwrap();
    assert!(!d.interrupted);
    c.set_timeout(Duration::from_millis(50));
    assert!(matches!(c.next_notification(), Err(Error::Timeout)));
    drop(c);
    server.join().unwrap();
}

/// A client over one end of a socket pair whose other end the test drives
/// by hand, answering when and what it chooses. The overlay family's id
/// is known already, so that the client sends nothing but the test's
/// requests.
fn hand_driven(timeout: Duration) -> (Client, OwnedFd) {
    let (a, b) = seqpacket_pair().unwrap();
    let mut c = Client::bare(a, timeout);
    c.family_ids.insert(overlay::NAME.to_string(), overlay::ID);
    (c, b)
}

/// The one request of the next datagram the client sent.
fn next_request(peer: &OwnedFd) -> Request {
    let datagram = sys::recv(peer.as_fd()).unwrap();
    let mut reqs: Vec<Request> = requests(&datagram).map(|r| r.unwrap()).collect();
    assert_eq!(reqs.len(), 1, "one request a datagram");
    reqs.pop().unwrap()
}

fn answer(peer: &OwnedFd, messages: Vec<Message>) {
    for d in pack_datagrams(&messages, 4096) {
        sys::send(peer.as_fd(), &d).unwrap();
    }
}

fn activate_attrs(dev: &str) -> Vec<Attr> {
    vec![Attr::str(overlay::ATTR_NAME, dev)]
}

/// A request that timed out is answered later, when the next request is
/// already waiting: that answer is dropped, the next request gets its
/// own. (The peer sends nothing until the client has given up, so the
/// timeout is certain however slow the machine.)
#[test]
fn a_late_answer_is_not_taken_for_the_next_requests() {
    let (mut c, peer) = hand_driven(Duration::from_millis(100));
    let e = c
        .transact(overlay::NAME, overlay::CMD_STATUS, activate_attrs("ov1"))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    let late = next_request(&peer);

    c.set_timeout(Duration::from_secs(5));
    // The next request is sent before the late answer is there; the peer
    // then answers both, the late one first, as the daemon would.
    let mut this = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            let next = next_request(&peer);
            let mut out = late.respond(PID, vec![vec![Attr::u32(overlay::ATTR_STATUS, 7)]]);
            out.push(
                next.fail(libc::ENOENT, "no device named ov2")
                    .reply(PID)
                    .into(),
            );
            answer(&peer, out);
        });
        this = Some(c.write(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov2")));
    });
    let e = this.unwrap().unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");

    // The same for requests started without waiting: a timed-out wait
    // gives up every request in flight, and their late answers are
    // dropped, as is the late answer of a synchronous request.
    c.set_timeout(Duration::from_millis(100));
    let e = c
        .write(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov3"))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    let late_write = next_request(&peer);
    let first = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov4"))
        .unwrap();
    let second = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov5"))
        .unwrap();
    let e = c.finish().unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    let given_up = [next_request(&peer), next_request(&peer)];
    assert_eq!(
        given_up.iter().map(Request::seq).collect::<Vec<_>>(),
        [first, second]
    );
    let third = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov6"))
        .unwrap();
    let next = next_request(&peer);
    let mut out: Vec<Message> = late_write.respond(PID, vec![]);
    for r in &given_up {
        out.extend(r.respond(PID, vec![]));
    }
    out.push(next.fail(libc::EBUSY, "ov6 is busy").reply(PID).into());
    answer(&peer, out);
    c.set_timeout(Duration::from_secs(5));
    let (seq, outcome) = c.finish().unwrap();
    assert_eq!(seq, third);
    assert_eq!(outcome.unwrap_err().errno(), Some(libc::EBUSY));
    let e = c.finish().unwrap_err();
    assert!(
        e.to_string().contains("without a request started"),
        "nothing is left in flight: {e}"
    );
}

/// The daemon answers in order: an answer to a later request before the
/// oldest's is an error, not taken for either.
#[test]
fn an_answer_out_of_order_is_an_error() {
    let (mut c, peer) = hand_driven(Duration::from_secs(5));
    let first = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov1"))
        .unwrap();
    let second = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov2"))
        .unwrap();
    let _ = next_request(&peer);
    let later = next_request(&peer);
    assert_eq!(later.seq(), second);
    answer(&peer, later.respond(PID, vec![]));
    let e = c.finish().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("protocol error: the daemon answered request {second} before request {first}")
    );
}

/// A request made while started ones are in flight gets its own answer,
/// and the answers of the started ones that arrive before it are kept
/// for `finish`, in order.
#[test]
fn answers_to_started_requests_outlive_a_request_made_meanwhile() {
    let (mut c, peer) = hand_driven(Duration::from_secs(5));
    let first = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov1"))
        .unwrap();
    let second = c
        .start(overlay::NAME, overlay::CMD_ACTIVATE, activate_attrs("ov2"))
        .unwrap();
    let mut status = None;
    std::thread::scope(|s| {
        s.spawn(|| {
            let started = [next_request(&peer), next_request(&peer)];
            let now = next_request(&peer);
            let mut out: Vec<Message> = started[0].respond(PID, vec![]);
            out.push(
                started[1]
                    .fail(libc::EBUSY, "ov2 is busy")
                    .reply(PID)
                    .into(),
            );
            out.extend(now.respond(PID, vec![vec![Attr::u32(overlay::ATTR_STATUS, 7)]]));
            answer(&peer, out);
        });
        status = Some(c.transact(overlay::NAME, overlay::CMD_STATUS, activate_attrs("ov3")));
    });
    let reply = status.unwrap().unwrap();
    assert_eq!(reply.attrs.get_u32(overlay::ATTR_STATUS), Some(7));
    let (seq, outcome) = c.finish().unwrap();
    assert_eq!(seq, first);
    outcome.unwrap();
    let (seq, outcome) = c.finish().unwrap();
    assert_eq!(seq, second);
    assert_eq!(outcome.unwrap_err().errno(), Some(libc::EBUSY));
}
