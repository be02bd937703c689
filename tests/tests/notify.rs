//! Multicast notifications against a real overlayd: the message of every
//! kind of change and its order, joining and leaving groups, a subscriber
//! that does not read (ENOBUFS once, nobody else stalls), and
//! NLM_F_DUMP_INTR on a dump that a change interrupts.

use nlproto::client::{Client, Notification};
use nlproto::msg::{NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST};
use nlproto::spec::{handle, overlay as ov};
use nlproto::{Attr, AttrsExt, GenlMsg, Message};
use overlay_tests::proto::{self, ip, name, overlay_request, request, uint};
use overlay_tests::Daemon;
use std::time::Duration;

fn event(c: &mut Client) -> GenlMsg {
    match c.next_notification().expect("a notification") {
        Notification::Event(m) => m,
        Notification::Overrun => panic!("unexpected overrun"),
    }
}

fn subscriber(d: &Daemon, groups: &[&str]) -> Client {
    let mut c = d.client();
    for g in groups {
        let id = c
            .mcast_group_id(ov::NAME, g)
            .expect("group listed by nlctrl");
        c.join_group(id).expect("JOIN_GROUP");
    }
    c
}

#[track_caller]
fn check_ids(m: &GenlMsg, cmd: u8, linkid: u32, dev: &str) {
    assert_eq!(m.family, ov::ID);
    assert_eq!(m.cmd, cmd, "{m:?}");
    assert_eq!((m.seq, m.pid, m.flags), (0, 0, 0), "{m:?}");
    assert_eq!(m.version, ov::VERSION);
    assert_eq!(m.attrs[0], Attr::u32(ov::ATTR_LINKID, linkid));
    assert_eq!(m.attrs[1], Attr::str(ov::ATTR_NAME, dev));
}

#[test]
fn every_change_is_notified_in_order() {
    let d = Daemon::start();
    let mut s = subscriber(&d, &["config", "status"]);
    let mut c = d.client();

    proto::create(
        &mut c,
        "ov0",
        42,
        &proto::full_props("10.0.0.1", "10.200.0.2"),
    )
    .expect("CREATE");
    proto::setprop(&mut c, "ov0", "direct/dest_ip", ip("10.200.0.3")).unwrap();
    proto::activate(&mut c, "ov0").expect("ACTIVATE");
    proto::setprop(&mut c, "ov0", "mtu", uint(1300)).unwrap();
    // A refused change notifies nothing.
    proto::setprop(&mut c, "ov0", "mtu", uint(1)).unwrap_err();
    proto::delete(&mut c, "ov0").unwrap();

    let m = event(&mut s);
    check_ids(&m, ov::CMD_CREATE, 1, "ov0");
    assert_eq!(m.attrs.get_str(ov::ATTR_ENCAP), Some("vxlan"));
    assert_eq!(m.attrs.get_str(ov::ATTR_SEARCH), Some("direct"));
    assert_eq!(m.attrs.get_u64(ov::ATTR_VNETID), Some(42));
    assert_eq!(m.attrs.get_u32(ov::ATTR_STATE), Some(ov::STATE_CREATED));
    assert_eq!(m.attrs.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_OK));

    let m = event(&mut s);
    check_ids(&m, ov::CMD_SETPROP, 1, "ov0");
    assert_eq!(m.attrs.get_str(ov::ATTR_PROP_NAME), Some("direct/dest_ip"));
    assert_eq!(m.attrs.get_u32(ov::ATTR_PROP_TYPE), Some(ov::PROP_TYPE_IP));
    assert_eq!(
        m.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&ip("10.200.0.3")[..])
    );

    let m = event(&mut s);
    check_ids(&m, ov::CMD_ACTIVATE, 1, "ov0");
    assert_eq!(m.attrs.get_u32(ov::ATTR_STATE), Some(ov::STATE_ACTIVE));

    // A runtime property while active.
    let m = event(&mut s);
    check_ids(&m, ov::CMD_SETPROP, 1, "ov0");
    assert_eq!(m.attrs.get_str(ov::ATTR_PROP_NAME), Some("mtu"));
    assert_eq!(
        m.attrs.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_UINT)
    );
    assert_eq!(
        m.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&uint(1300)[..])
    );

    // Deleting an active device deactivates it first.
    let m = event(&mut s);
    check_ids(&m, ov::CMD_DEACTIVATED, 1, "ov0");
    assert_eq!(m.attrs.get_u32(ov::ATTR_STATE), Some(ov::STATE_CREATED));
    let m = event(&mut s);
    check_ids(&m, ov::CMD_DELETE, 1, "ov0");
    assert_eq!(m.attrs.len(), 2);

    // Nothing else was sent: the next notification is the next change.
    proto::create(&mut c, "ov1", 7, &[]).unwrap();
    check_ids(&event(&mut s), ov::CMD_CREATE, 2, "ov1");
}

/// A member that makes a change itself gets the notification before the
/// reply, as on Linux.
#[test]
fn notification_precedes_the_requesters_own_reply() {
    let d = Daemon::start();
    let mut s = subscriber(&d, &["config"]);
    proto::create(&mut s, "ov0", 1, &[]).unwrap();
    // The client kept the CREATE notification it received before the reply.
    check_ids(&event(&mut s), ov::CMD_CREATE, 1, "ov0");

    let msg = overlay_request(
        ov::CMD_SETPROP,
        77,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_PROP_NAME, "mtu"),
            Attr::bytes(ov::ATTR_PROP_VALUE, uint(1500)),
        ],
    );
    s.send_raw(&msg).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(proto::recv_messages(&mut s));
    }
    assert_eq!(got.len(), 2, "{got:?}");
    match &got[0] {
        Message::Genl(m) => check_ids(m, ov::CMD_SETPROP, 1, "ov0"),
        other => panic!("notification first, got {other:?}"),
    }
    match &got[1] {
        Message::Error(e) => assert!(e.is_ack() && e.seq == 77, "{e:?}"),
        other => panic!("then the ack, got {other:?}"),
    }
}

#[test]
fn joining_and_leaving() {
    let d = Daemon::start();
    let mut s = d.client();
    let mut c = d.client();
    for bad in [0, 4, 99] {
        for cmd in [handle::CMD_JOIN_GROUP, handle::CMD_LEAVE_GROUP] {
            let r = s.write(
                handle::NAME,
                cmd,
                vec![Attr::u32(handle::HANDLE_ATTR_MCAST_GROUP, bad)],
            );
            proto::expect_err(
                r,
                libc::ENOENT,
                &[
                    &format!("no multicast group with id {bad}"),
                    "config (1), status (2), target (3)",
                ],
            );
        }
    }
    proto::expect_err(
        s.write(handle::NAME, handle::CMD_JOIN_GROUP, vec![]),
        libc::EINVAL,
        &["JOIN_GROUP", "HANDLE_ATTR_MCAST_GROUP (2)"],
    );
    // Leaving a group not joined, and joining twice, are no errors.
    s.leave_group(ov::GROUP_CONFIG).unwrap();
    s.join_group(ov::GROUP_CONFIG).unwrap();
    s.join_group(ov::GROUP_CONFIG).unwrap();
    // The target group can be joined already.
    s.join_group(nlproto::spec::target::GROUP_TARGET).unwrap();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    check_ids(&event(&mut s), ov::CMD_CREATE, 1, "ov0");
    // Joined twice, notified once; after leaving, nothing.
    s.leave_group(ov::GROUP_CONFIG).unwrap();
    proto::create(&mut c, "ov1", 2, &[]).unwrap();
    s.join_group(ov::GROUP_CONFIG).unwrap();
    proto::create(&mut c, "ov2", 3, &[]).unwrap();
    check_ids(&event(&mut s), ov::CMD_CREATE, 3, "ov2");
    // The status group does not carry config changes.
    let mut st = subscriber(&d, &["status"]);
    proto::delete(&mut c, "ov2").unwrap();
    check_ids(&event(&mut s), ov::CMD_DELETE, 3, "ov2");
    st.set_timeout(Duration::from_millis(300));
    assert!(matches!(
        st.next_notification(),
        Err(nlproto::client::Error::Timeout)
    ));
}

/// A subscriber that never reads gets exactly one ENOBUFS; meanwhile every
/// other client is answered; once it has read everything, delivery
/// resumes.
#[test]
fn slow_subscriber_is_told_once_and_stalls_nobody() {
    let d = Daemon::start();
    let mut slow = subscriber(&d, &["config"]);
    let mut fast = subscriber(&d, &["config"]);
    let mut w = d.client();
    let mut other = d.client();
    proto::create(&mut w, "ov0", 1, &[]).unwrap();
    check_ids(&event(&mut fast), ov::CMD_CREATE, 1, "ov0");

    // Enough changes to overflow the slow subscriber's socket buffer and
    // its queue; the daemon logs when it starts dropping.
    let overflowed = |d: &Daemon| d.log().contains("does not read its notifications");
    let mut changes = 0u64;
    while !overflowed(&d) {
        assert!(changes < 40_000, "no overrun after {changes} changes");
        for _ in 0..500 {
            changes += 1;
            proto::setprop(&mut w, "ov0", "mtu", uint(1000 + changes % 1000)).unwrap();
        }
        // Another client is answered all along, and a subscriber that reads
        // gets every notification in order.
        let pid = other
            .transact(handle::NAME, handle::CMD_GET_PID, vec![])
            .expect("answered while a subscriber is stuck");
        assert_eq!(
            pid.attrs.get_u32(handle::HANDLE_ATTR_PID),
            Some(other.pid())
        );
        for i in changes - 499..=changes {
            let m = event(&mut fast);
            assert_eq!(
                m.attrs.get_bytes(ov::ATTR_PROP_VALUE),
                Some(&uint(1000 + i % 1000)[..])
            );
        }
    }
    // A few more while it is still dropping.
    for _ in 0..10 {
        changes += 1;
        proto::setprop(&mut w, "ov0", "mtu", uint(1000 + changes % 1000)).unwrap();
    }

    // The slow subscriber reads: the CREATE and a prefix of the changes in
    // order, then one overrun report.
    check_ids(&event(&mut slow), ov::CMD_CREATE, 1, "ov0");
    let mut seen = 0u64;
    // Until the overrun report.
    while let Notification::Event(m) = slow.next_notification().expect("queued notifications") {
        seen += 1;
        check_ids(&m, ov::CMD_SETPROP, 1, "ov0");
        assert_eq!(
            m.attrs.get_bytes(ov::ATTR_PROP_VALUE),
            Some(&uint(1000 + seen % 1000)[..]),
            "notification {seen} in order"
        );
    }
    assert!(seen > 0 && seen < changes, "{seen} of {changes} delivered");
    eprintln!("overrun after {changes} changes; {seen} delivered before the report");
    // Everything after the overrun was dropped; delivery resumes now that
    // the queue has drained: the next notification is the next change.
    proto::setprop(&mut w, "ov0", "mtu", uint(4242)).unwrap();
    let m = event(&mut slow);
    assert_eq!(
        m.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&uint(4242)[..])
    );
}

fn list_dump_request(seq: u32) -> Vec<u8> {
    request(
        ov::ID,
        ov::CMD_LIST,
        ov::VERSION,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        vec![],
    )
}

/// GET_PID asking for an ack too: a reply and an ack, both of `seq`.
fn get_pid_request(seq: u32) -> Vec<u8> {
    request(
        handle::ID,
        handle::CMD_GET_PID,
        handle::VERSION,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        vec![],
    )
}

/// Creates temporary devices ov1..=ovN (nothing is written to the state
/// file per create).
fn temporary_devices(c: &mut Client, n: u32) {
    for i in 1..=n {
        let attrs = vec![
            name(&format!("ov{i}")),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, u64::from(i)),
            Attr::flag(ov::ATTR_TEMPORARY),
        ];
        c.transact(ov::NAME, ov::CMD_CREATE, attrs).unwrap();
    }
}

/// Reads one datagram of a dump: its messages' (is NLMSG_DONE, has
/// NLM_F_DUMP_INTR) and the link ids listed.
fn dump_part(c: &mut Client) -> (Vec<(bool, bool)>, Vec<u32>) {
    let mut flags = Vec::new();
    let mut ids = Vec::new();
    for m in proto::recv_messages(c) {
        match m {
            Message::Genl(g) => {
                flags.push((false, g.flags & NLM_F_DUMP_INTR != 0));
                ids.push(g.attrs.get_u32(ov::ATTR_LINKID).unwrap());
            }
            Message::Done(done) => flags.push((true, done.intr)),
            other => panic!("{other:?}"),
        }
    }
    (flags, ids)
}

#[test]
fn dumps_are_incremental_and_flag_interruptions() {
    let d = Daemon::start();
    let mut w = d.client();
    let mut r = d.client();
    const DEVICES: u32 = 500;
    temporary_devices(&mut w, DEVICES);

    // Undisturbed: several parts, none flagged.
    r.send_raw(&list_dump_request(5)).unwrap();
    let mut parts = 0;
    let mut ids = Vec::new();
    loop {
        let (flags, more) = dump_part(&mut r);
        parts += 1;
        ids.extend(more);
        assert!(flags.iter().all(|(_, intr)| !intr), "{flags:?}");
        if flags.last().is_some_and(|(done, _)| *done) {
            break;
        }
    }
    assert!(parts >= 3, "{parts} parts");
    assert_eq!(ids, (1..=DEVICES).collect::<Vec<_>>());

    // A change after the first part: the parts produced after it and
    // NLMSG_DONE carry NLM_F_DUMP_INTR. The daemon runs only a few parts
    // (32 KiB) ahead of a reader, so while this one waits after the first
    // part, most of the dump is still to be produced when the change comes.
    r.send_raw(&list_dump_request(6)).unwrap();
    let (first, _) = dump_part(&mut r);
    assert!(first.iter().all(|(done, intr)| !done && !intr), "{first:?}");
    proto::delete(&mut w, "ov1").unwrap();
    let mut later = Vec::new();
    loop {
        let (flags, _) = dump_part(&mut r);
        later.extend(flags);
        if later.last().is_some_and(|(done, _)| *done) {
            break;
        }
    }
    assert!(later.len() > 1, "the dump has more parts: {later:?}");
    assert_eq!(later.last(), Some(&(true, true)), "NLMSG_DONE is flagged");
    // Once flagged, always flagged.
    assert!(
        later.iter().skip_while(|(_, i)| !i).all(|(_, i)| *i),
        "{later:?}"
    );

    // A request behind a dump in the same datagram is answered after the
    // dump's NLMSG_DONE.
    let mut datagram = list_dump_request(8);
    datagram.extend(get_pid_request(9));
    r.send_raw(&datagram).unwrap();
    let mut seqs = Vec::new();
    while seqs.last() != Some(&9) || seqs.iter().filter(|s| **s == 9).count() < 2 {
        for m in proto::recv_messages(&mut r) {
            seqs.push(m.seq());
        }
        assert!(seqs.len() <= DEVICES as usize + 3, "{seqs:?}");
    }
    let first_9 = seqs.iter().position(|s| *s == 9).unwrap();
    assert_eq!(first_9, seqs.len() - 2, "GET_PID reply and ack come last");
    assert_eq!(
        seqs[..first_9].len(),
        DEVICES as usize,
        "the devices left and DONE"
    );

    // The client reports the flag too.
    let dump = r.dump_checked(ov::NAME, ov::CMD_STATS, vec![]).unwrap();
    assert!(!dump.interrupted);
    assert_eq!(dump.items.len(), DEVICES as usize - 1);
}

/// Long dumps go through part after part, repeatedly: a part is never
/// left waiting for a wakeup that already happened.
#[test]
fn long_dumps_complete() {
    let d = Daemon::start();
    let mut w = d.client();
    const DEVICES: u32 = 600;
    for i in 1..=DEVICES {
        proto::create(&mut w, &format!("ov{i}"), u64::from(i), &[]).unwrap();
    }
    for round in 0..20 {
        let cmd = if round % 2 == 0 {
            ov::CMD_LIST
        } else {
            ov::CMD_STATS
        };
        let dump = w
            .dump_checked(ov::NAME, cmd, vec![])
            .expect("dump completes");
        assert!(!dump.interrupted);
        let ids: Vec<u32> = dump
            .items
            .iter()
            .map(|m| m.attrs.get_u32(ov::ATTR_LINKID).unwrap())
            .collect();
        assert_eq!(ids, (1..=DEVICES).collect::<Vec<_>>());
    }
}

/// A dump that fits one part, with requests behind it in its datagram:
/// each request after it is answered once, in order, after the dump's
/// NLMSG_DONE.
#[test]
fn requests_behind_a_short_dump_are_answered_once() {
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov1", 1, &[]).unwrap();
    let mut datagram = list_dump_request(20);
    datagram.extend(get_pid_request(21));
    datagram.extend(list_dump_request(22));
    datagram.extend(get_pid_request(23));
    c.send_raw(&datagram).unwrap();
    let mut seqs = Vec::new();
    // LIST: one device and DONE; GET_PID: reply and ack; twice.
    while seqs.len() < 8 {
        for m in proto::recv_messages(&mut c) {
            seqs.push(m.seq());
        }
    }
    // Nothing more comes: a GET_PID of a later sequence number is
    // answered next.
    c.send_raw(&get_pid_request(24)).unwrap();
    for m in proto::recv_messages(&mut c) {
        seqs.push(m.seq());
    }
    assert_eq!(seqs, [20, 20, 21, 21, 22, 22, 23, 23, 24, 24]);
}

/// Requests in datagrams of their own sent right behind a long dump (read
/// by the daemon together with it) are answered after its NLMSG_DONE, in
/// order, each once.
#[test]
fn datagrams_behind_a_long_dump_wait_for_it() {
    let d = Daemon::start();
    let mut c = d.client();
    const DEVICES: u32 = 300;
    temporary_devices(&mut c, DEVICES);
    c.send_raw(&list_dump_request(30)).unwrap();
    for seq in 31..=33 {
        c.send_raw(&get_pid_request(seq)).unwrap();
    }
    c.send_raw(&list_dump_request(34)).unwrap();
    c.send_raw(&get_pid_request(35)).unwrap();
    let expected: Vec<u32> = std::iter::repeat_n(30, DEVICES as usize + 1)
        .chain([31, 31, 32, 32, 33, 33])
        .chain(std::iter::repeat_n(34, DEVICES as usize + 1))
        .chain([35, 35])
        .collect();
    let mut seqs = Vec::new();
    let mut datagrams = 0;
    while seqs.len() < expected.len() {
        datagrams += 1;
        assert!(datagrams <= expected.len(), "{seqs:?}");
        for m in proto::recv_messages(&mut c) {
            seqs.push(m.seq());
        }
    }
    assert_eq!(seqs, expected);
    assert!(datagrams > 10, "the dumps came in several parts");
}
