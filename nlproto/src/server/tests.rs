use super::*;
use crate::attr::Unknown;
use crate::msg::{ErrorMsg, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_ROOT};
use crate::spec::{ctrl, handle};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLA_F_NESTED};
use netlink_packet_generic::ctrl::nlas::{GenlCtrlAttrs, McastGrpAttrs, OpAttrs};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use proptest::prelude::*;

const PID: u32 = 7;

fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((value.len() + 4) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize(align4(v.len()), 0);
    v
}

/// A raw request with the given attribute bytes.
fn raw(family: u16, flags: u16, cmd: u8, version: u8, attrs: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((20 + attrs.len()) as u32).to_ne_bytes());
    v.extend_from_slice(&family.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&11u32.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(&[cmd, version, 0, 0]);
    v.extend_from_slice(attrs);
    v
}

const RA: u16 = NLM_F_REQUEST | NLM_F_ACK;

fn refused(bytes: &[u8]) -> RequestError {
    parse_request(bytes, 0).expect_err("request should be refused")
}

fn check(bytes: &[u8], errno: i32, offset: Option<u32>, message: &str) {
    let e = refused(bytes);
    assert_eq!(
        (e.errno, e.offset, e.message.as_str()),
        (errno, offset, message)
    );
}

fn name(n: &str) -> Vec<u8> {
    nla(overlay::ATTR_NAME, &[n.as_bytes(), &[0]].concat())
}

fn create_attrs() -> Vec<u8> {
    [
        name("ov0"),
        nla(overlay::ATTR_ENCAP, b"vxlan\0"),
        nla(overlay::ATTR_SEARCH, b"direct\0"),
        nla(overlay::ATTR_VNETID, &5u64.to_ne_bytes()),
    ]
    .concat()
}

#[test]
fn accepts_a_valid_request() {
    let bytes = raw(overlay::ID, RA, overlay::CMD_CREATE, 1, &create_attrs());
    let req = parse_request(&bytes, 0).unwrap().unwrap();
    assert_eq!(req.family.name, "overlay");
    assert_eq!(req.command.name, "CREATE");
    assert!(!req.is_dump && req.wants_ack());
    assert_eq!(req.seq(), 11);
    assert_eq!(req.attrs.get_u64(overlay::ATTR_VNETID), Some(5));
    assert_eq!(req.device(), Ok(DeviceRef::Name("ov0")));
}

#[test]
fn read_only_callers_run_only_read_only_commands() {
    let ro = Privilege::ReadOnly;
    // Every admin command is refused before its attributes are looked at:
    // a CREATE without any attribute gets EPERM, not "requires NAME".
    for c in overlay::COMMANDS
        .iter()
        .filter(|c| c.privilege == Privilege::Admin)
    {
        let bytes = raw(overlay::ID, RA, c.id, 1, &[]);
        let e = parse_request_as(&bytes, 0, ro).expect_err("refused");
        assert_eq!(e.errno, libc::EPERM, "{}", c.name);
        assert_eq!(e.offset, None);
        assert!(e
            .message
            .contains(&format!("command {} of family overlay", c.name)));
        assert!(e.message.contains("needs admin privilege"), "{}", e.message);
        // The same request from an admin goes on to the ordinary checks.
        let admin = parse_request_as(&bytes, 0, Privilege::Admin);
        assert_ne!(admin.map_err(|e| e.errno), Err(libc::EPERM), "{}", c.name);
    }
    // Read-only commands (and nlctrl, and GET_PID) pass.
    let list = raw(overlay::ID, RA | NLM_F_DUMP, overlay::CMD_LIST, 1, &[]);
    assert!(parse_request_as(&list, 0, ro).unwrap().is_some());
    let pid = raw(handle::ID, RA, handle::CMD_GET_PID, 1, &[]);
    assert!(parse_request_as(&pid, 0, ro).unwrap().is_some());
    let fam = raw(
        ctrl::GENL_ID_CTRL,
        RA | NLM_F_DUMP,
        ctrl::CTRL_CMD_GETFAMILY,
        1,
        &[],
    );
    assert!(parse_request_as(&fam, 0, ro).unwrap().is_some());
    // requests_as applies the same rule to every message of a datagram.
    let create = raw(overlay::ID, RA, overlay::CMD_CREATE, 1, &create_attrs());
    let both = [create.clone(), list].concat();
    let errnos: Vec<_> = requests_as(&both, ro)
        .map(|r| r.err().map(|e| e.errno))
        .collect();
    assert_eq!(errnos, [Some(libc::EPERM), None]);
    assert!(requests(&create).all(|r| r.is_ok()));
}

#[test]
fn framing_errors() {
    let mut it = split_datagram(&[1, 2, 3, 4, 5, 6, 7]);
    let e = it.next().unwrap().unwrap_err();
    assert_eq!((e.errno, e.offset), (libc::EINVAL, None));
    assert_eq!(
        e.message,
        "datagram of 7 bytes is shorter than the 16-byte netlink header"
    );
    assert!(it.next().is_none());

    let mut short = raw(handle::ID, RA, 1, 1, &[]);
    short[0] = 8;
    let mut it = split_datagram(&short);
    assert_eq!(
        it.next().unwrap().unwrap_err().message,
        "message length 8 is shorter than the 16-byte netlink header"
    );
    assert!(it.next().is_none());

    // The length runs past the datagram: one error, then the rest is discarded.
    let mut long = raw(handle::ID, RA, 1, 1, &[]);
    long[0] = 64;
    let datagram = [long.clone(), raw(handle::ID, RA, 1, 1, &[])].concat();
    let mut it = split_datagram(&datagram);
    let e = it.next().unwrap().unwrap_err();
    assert_eq!(
        e.message,
        "message length 64 exceeds the datagram's 40 bytes"
    );
    assert_eq!(e.header.length, 64);
    assert_eq!(e.header.sequence_number, 11);
    assert!(it.next().is_none());

    // Same, in the second message.
    let datagram = [raw(handle::ID, RA, 1, 1, &[]), long].concat();
    let items: Vec<_> = split_datagram(&datagram).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    let e = items[1].as_ref().unwrap_err();
    assert_eq!(
        e.message,
        "message length 64 at byte 20 exceeds the datagram's 40 bytes"
    );
    assert_eq!(e.datagram_offset, 20);

    // parse_request applies the same checks on its own.
    check(
        &[0; 10],
        libc::EINVAL,
        None,
        "message of 10 bytes is shorter than the 16-byte netlink header",
    );
}

#[test]
fn several_messages_in_one_datagram() {
    // The first has an unpadded length (27): the next starts at 28.
    let first = raw(
        overlay::ID,
        RA,
        overlay::CMD_STATUS,
        1,
        &nla(overlay::ATTR_NAME, b"ab\0")[..7],
    );
    assert_eq!(first.len(), 27);
    let noop = {
        let mut n = raw(handle::ID, 0, 0, 0, &[]);
        n.truncate(16);
        n[0] = 16;
        n[4] = NLMSG_NOOP as u8;
        n
    };
    let third = raw(handle::ID, RA, handle::CMD_GET_PID, 1, &[]);
    let datagram = [first, vec![0], noop, third].concat();
    let offsets: Vec<usize> = split_datagram(&datagram)
        .map(|m| m.unwrap().offset)
        .collect();
    assert_eq!(offsets, [0, 28, 44]);
    let reqs: Vec<Request> = requests(&datagram).map(Result::unwrap).collect();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].attrs.get_str(overlay::ATTR_NAME), Some("ab"));
    assert_eq!(reqs[1].command.name, "GET_PID");
    assert_eq!(reqs[1].datagram_offset, 44);
}

#[test]
fn message_types_and_request_flag() {
    let mut noop = raw(handle::ID, 0, 0, 0, &[]);
    noop[4] = NLMSG_NOOP as u8;
    assert_eq!(parse_request(&noop, 0), Ok(None));
    let mut err = raw(handle::ID, RA, 0, 0, &[]);
    err[4] = NLMSG_ERROR as u8;
    check(
        &err,
        libc::EINVAL,
        None,
        "message type 2 (NLMSG_ERROR) is a netlink control message, not a request",
    );
    err[4] = 9;
    check(
        &err,
        libc::EINVAL,
        None,
        "message type 9 is a netlink control message, not a request",
    );
    check(
        &raw(handle::ID, NLM_F_ACK, 1, 1, &[]),
        libc::EINVAL,
        None,
        "NLM_F_REQUEST (0x1) is not set: only requests are accepted",
    );
}

#[test]
fn family_header_command_and_operation() {
    check(
        &raw(99, RA, 1, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "no family with id 99; resolve families with nlctrl CTRL_CMD_GETFAMILY",
    );
    let mut short = raw(overlay::ID, RA, 1, 1, &[]);
    short.truncate(18);
    short[0] = 18;
    check(
        &short,
        libc::EINVAL,
        None,
        "payload of 2 bytes is shorter than the 4-byte genetlink header",
    );
    check(
        &raw(overlay::ID, RA, 12, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "family overlay has no command 12",
    );
    // Notification-only commands are not requests.
    check(
        &raw(overlay::ID, RA, overlay::CMD_DEACTIVATED, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "family overlay has no command 11",
    );
    check(
        &raw(handle::ID, RA, 5, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "family overlay_handle has no command 5",
    );
    check(
        &raw(handle::ID, RA, handle::CMD_JOIN_GROUP, 1, &[]),
        libc::EINVAL,
        None,
        "command JOIN_GROUP requires attribute HANDLE_ATTR_MCAST_GROUP (2)",
    );
    check(
        &raw(handle::ID, RA | NLM_F_DUMP, handle::CMD_LEAVE_GROUP, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "command LEAVE_GROUP does not support dump requests (clear NLM_F_DUMP)",
    );
    check(
        &raw(overlay::ID, RA | NLM_F_DUMP, overlay::CMD_GETPROP, 1, &[]),
        libc::EOPNOTSUPP,
        None,
        "command GETPROP does not support dump requests (clear NLM_F_DUMP)",
    );
    // NLM_F_ROOT alone is not a dump.
    let req = parse_request(
        &raw(
            overlay::ID,
            RA | NLM_F_ROOT,
            overlay::CMD_LIST,
            1,
            &name("a"),
        ),
        0,
    )
    .unwrap()
    .unwrap();
    assert!(!req.is_dump);
}

#[test]
fn dump_only_commands_refuse_do_requests() {
    let watch = crate::spec::CommandSpec {
        id: 1,
        name: "WATCH",
        ops: crate::spec::OpSet::DUMP,
        min_version: 1,
        privilege: crate::spec::Privilege::ReadOnly,
        required: &[],
        doc: "",
        handling: crate::spec::Handling::PLAIN,
    };
    assert_eq!(
        operation_error(&watch, false).as_deref(),
        Some("command WATCH supports only dump requests (set NLM_F_DUMP)")
    );
    assert_eq!(operation_error(&watch, true), None);
}

#[test]
fn versions() {
    check(
        &raw(overlay::ID, RA, overlay::CMD_LIST, 7, &name("a")),
        libc::EINVAL,
        None,
        "family overlay version 7 is not supported (1..=1)",
    );
    check(
        &raw(overlay::ID, RA, overlay::CMD_LIST, 0, &name("a")),
        libc::EINVAL,
        None,
        "family overlay version 0 is not supported (1..=1)",
    );
    check(
        &raw(ctrl::GENL_ID_CTRL, RA, ctrl::CTRL_CMD_GETFAMILY, 3, &[]),
        libc::EINVAL,
        None,
        "family nlctrl version 3 is not supported (1..=2)",
    );
    assert!(parse_request(&raw(ctrl::GENL_ID_CTRL, RA | NLM_F_DUMP, 3, 1, &[]), 0).is_ok());
}

#[test]
fn attribute_errors_point_at_the_attribute() {
    // Overrunning the message.
    let mut a = name("ov0");
    a[0] = 200;
    check(
        &raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &a),
        libc::EINVAL,
        Some(20),
        "attribute NAME (2): length 200 runs past the end of the message (8 bytes left)",
    );
    // Overrunning its parent.
    let mut inner = nla(
        overlay::ATTR_PROP | NLA_F_NESTED,
        &nla(overlay::ATTR_PROP_NAME, b"mtu\0"),
    );
    inner[0] = 40;
    let props = nla(overlay::ATTR_PROPS | NLA_F_NESTED, &inner);
    let attrs = [create_attrs(), props].concat();
    check(
        &raw(overlay::ID, RA, overlay::CMD_CREATE, 1, &attrs),
        libc::EINVAL,
        Some(20 + 44 + 4),
        "attribute PROP (19): length 40 runs past the end of PROPS (18) (12 bytes left)",
    );
    // Wrong fixed size.
    let attrs = [name("ov0"), nla(overlay::ATTR_VNETID, &[1, 0, 0, 0])].concat();
    check(
        &raw(overlay::ID, RA, overlay::CMD_CREATE, 1, &attrs),
        libc::EINVAL,
        Some(28),
        "attribute VNETID (5): a u64 must be exactly 8 bytes, got 4",
    );
    // Missing NUL.
    check(
        &raw(
            overlay::ID,
            RA,
            overlay::CMD_STATUS,
            1,
            &nla(overlay::ATTR_NAME, b"ov0x"),
        ),
        libc::EINVAL,
        Some(20),
        "attribute NAME (2): string is not NUL-terminated",
    );
    // Too long.
    let attrs = [
        name("ov0"),
        nla(
            overlay::ATTR_PROP_NAME,
            &[b"p".repeat(64), vec![0]].concat(),
        ),
    ]
    .concat();
    check(
        &raw(overlay::ID, RA, overlay::CMD_GETPROP, 1, &attrs),
        libc::EINVAL,
        Some(28),
        "attribute PROP_NAME (9): string exceeds 63 bytes",
    );
    // Duplicate.
    let attrs = [name("a"), name("b")].concat();
    check(
        &raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &attrs),
        libc::EINVAL,
        Some(28),
        "attribute NAME (2): given more than once",
    );
    // Unknown type.
    check(
        &raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &nla(99, &[])),
        libc::EINVAL,
        Some(20),
        "unknown attribute type 99",
    );
}

#[test]
fn missing_required_attributes() {
    let attrs = [
        name("ov0"),
        nla(overlay::ATTR_ENCAP, b"vxlan\0"),
        nla(overlay::ATTR_SEARCH, b"direct\0"),
    ]
    .concat();
    check(
        &raw(overlay::ID, RA, overlay::CMD_CREATE, 1, &attrs),
        libc::EINVAL,
        None,
        "command CREATE requires attribute VNETID (5)",
    );
    // Dumps have no required attributes.
    let req = parse_request(
        &raw(
            overlay::ID,
            NLM_F_REQUEST | NLM_F_DUMP,
            overlay::CMD_PROPINFO,
            1,
            &name("a"),
        ),
        0,
    )
    .unwrap()
    .unwrap();
    assert!(req.is_dump);
    check(
        &raw(overlay::ID, RA, overlay::CMD_PROPINFO, 1, &name("a")),
        libc::EINVAL,
        None,
        "command PROPINFO requires attribute PROP_NAME (9)",
    );
}

#[test]
fn error_replies_echo_the_request() {
    let bytes = raw(
        overlay::ID,
        RA,
        overlay::CMD_STATUS,
        1,
        &nla(overlay::ATTR_NAME, b"ov0x"),
    );
    let e = refused(&bytes);
    let reply = e.reply(PID);
    let wire = reply.emit();
    let back = ErrorMsg::parse(&wire).unwrap();
    assert_eq!(back.errno, libc::EINVAL);
    assert_eq!(back.pid, PID);
    assert_eq!(back.seq, 11);
    assert_eq!(back.offset, Some(20));
    assert_eq!(
        back.message.as_deref(),
        Some("attribute NAME (2): string is not NUL-terminated")
    );
    assert_eq!(
        u16::from_ne_bytes([wire[6], wire[7]]),
        NLM_F_CAPPED | NLM_F_ACK_TLVS
    );
    assert_eq!(&wire[20..36], &bytes[..16]);
    assert_eq!(
        e.to_string(),
        "attribute NAME (2): string is not NUL-terminated (EINVAL)"
    );
}

#[test]
fn device_addressing() {
    let both = [nla(overlay::ATTR_LINKID, &3u32.to_ne_bytes()), name("ov0")].concat();
    let req = parse_request(&raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &both), 0)
        .unwrap()
        .unwrap();
    assert_eq!(req.device(), Ok(DeviceRef::Name("ov0")));
    let id = nla(overlay::ATTR_LINKID, &3u32.to_ne_bytes());
    let req = parse_request(&raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &id), 0)
        .unwrap()
        .unwrap();
    assert_eq!(req.device(), Ok(DeviceRef::LinkId(3)));
    let req = parse_request(&raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &[]), 0)
        .unwrap()
        .unwrap();
    let e = req.device().unwrap_err();
    assert_eq!(
        (e.errno, e.message.as_str(), e.offset),
        (
            libc::EINVAL,
            "name the device with NAME (2) or LINKID (1)",
            None
        )
    );
}

fn kinds(ms: &[Message]) -> Vec<(&'static str, u16)> {
    ms.iter()
        .map(|m| match m {
            Message::Genl(g) => ("genl", g.flags),
            Message::Error(e) if e.is_ack() => ("ack", e.flags()),
            Message::Error(e) => ("error", e.flags()),
            Message::Done(d) => ("done", d.flags()),
            Message::Noop { .. } => ("noop", 0),
        })
        .collect()
}

#[test]
fn responses_follow_the_operation_rules() {
    let t = parse_request(&raw(overlay::ID, RA, overlay::CMD_STATUS, 1, &name("a")), 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        kinds(&t.respond(PID, vec![vec![]])),
        [("genl", 0), ("ack", NLM_F_CAPPED)]
    );
    let t_noack = parse_request(
        &raw(
            overlay::ID,
            NLM_F_REQUEST,
            overlay::CMD_STATUS,
            1,
            &name("a"),
        ),
        0,
    )
    .unwrap()
    .unwrap();
    assert_eq!(kinds(&t_noack.respond(PID, vec![vec![]])), [("genl", 0)]);
    let w = parse_request(&raw(overlay::ID, RA, overlay::CMD_DELETE, 1, &name("a")), 0)
        .unwrap()
        .unwrap();
    assert_eq!(kinds(&w.respond(PID, vec![])), [("ack", NLM_F_CAPPED)]);
    let w_noack = parse_request(
        &raw(
            overlay::ID,
            NLM_F_REQUEST,
            overlay::CMD_DELETE,
            1,
            &name("a"),
        ),
        0,
    )
    .unwrap()
    .unwrap();
    assert!(w_noack.respond(PID, vec![]).is_empty());
    let d = parse_request(
        &raw(
            overlay::ID,
            NLM_F_REQUEST | NLM_F_DUMP,
            overlay::CMD_LIST,
            1,
            &[],
        ),
        0,
    )
    .unwrap()
    .unwrap();
    let out = d.respond(PID, vec![vec![], vec![]]);
    assert_eq!(
        kinds(&out),
        [
            ("genl", NLM_F_MULTI),
            ("genl", NLM_F_MULTI),
            ("done", NLM_F_MULTI)
        ]
    );
    let Message::Genl(first) = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        (first.cmd, first.seq, first.pid, first.family, first.version),
        (overlay::CMD_LIST, 11, PID, 33, 1)
    );
    let e = d.fail(libc::ENOENT, "no device named a").reply(PID);
    assert_eq!(e.seq, 11);
}

#[test]
fn pack_datagrams_respects_the_limit() {
    let d = parse_request(
        &raw(
            overlay::ID,
            NLM_F_REQUEST | NLM_F_DUMP,
            overlay::CMD_LIST,
            1,
            &[],
        ),
        0,
    )
    .unwrap()
    .unwrap();
    let items = (0..10)
        .map(|i| vec![Attr::u32(overlay::ATTR_LINKID, i)])
        .collect();
    let msgs = d.respond(PID, items); // 10 x 28 bytes + 20
    let grams = pack_datagrams(&msgs, 100);
    assert_eq!(
        grams.iter().map(Vec::len).collect::<Vec<_>>(),
        [84, 84, 84, 48]
    );
    assert_eq!(grams.concat(), crate::msg::pack(&msgs));
    assert_eq!(pack_datagrams(&msgs, 1).len(), 11);
    assert_eq!(pack_datagrams(&msgs, DEFAULT_DATAGRAM_LIMIT).len(), 1);
}

fn ctrl_request(flags: u16, attrs: &[u8]) -> Request {
    parse_request(
        &raw(
            ctrl::GENL_ID_CTRL,
            flags,
            ctrl::CTRL_CMD_GETFAMILY,
            2,
            attrs,
        ),
        0,
    )
    .unwrap()
    .unwrap()
}

fn only_error(out: &[Message]) -> &ErrorMsg {
    match out {
        [Message::Error(e)] => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ctrl_getfamily_by_name_and_id() {
    let out = ctrl_reply(
        &ctrl_request(RA, &nla(ctrl::CTRL_ATTR_FAMILY_NAME, b"overlay\0")),
        PID,
    );
    assert_eq!(kinds(&out), [("genl", 0), ("ack", NLM_F_CAPPED)]);
    let Message::Genl(reply) = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        (reply.family, reply.cmd, reply.version, reply.pid, reply.seq),
        (16, ctrl::CTRL_CMD_NEWFAMILY, 2, PID, 11)
    );
    assert_eq!(reply.attrs.get_u16(ctrl::CTRL_ATTR_FAMILY_ID), Some(33));
    assert_eq!(reply.attrs.get_u32(ctrl::CTRL_ATTR_MAXATTR), Some(38));
    let ops = reply.attrs.get_nested(ctrl::CTRL_ATTR_OPS).unwrap();
    assert_eq!(ops.len(), 10);
    assert_eq!(
        ops[0],
        Attr::nested(
            1,
            vec![
                Attr::u32(ctrl::CTRL_ATTR_OP_ID, 1),
                Attr::u32(ctrl::CTRL_ATTR_OP_FLAGS, 0xb)
            ]
        )
    );
    assert_eq!(
        ops[7],
        Attr::nested(
            8,
            vec![
                Attr::u32(ctrl::CTRL_ATTR_OP_ID, 8),
                Attr::u32(ctrl::CTRL_ATTR_OP_FLAGS, 0xe)
            ]
        )
    );
    let groups = reply
        .attrs
        .get_nested(ctrl::CTRL_ATTR_MCAST_GROUPS)
        .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(
        groups[1],
        Attr::nested(
            2,
            vec![
                Attr::str(ctrl::CTRL_ATTR_MCAST_GRP_NAME, "status"),
                Attr::u32(ctrl::CTRL_ATTR_MCAST_GRP_ID, 2)
            ]
        )
    );

    let out = ctrl_reply(
        &ctrl_request(
            NLM_F_REQUEST,
            &nla(ctrl::CTRL_ATTR_FAMILY_ID, &32u16.to_ne_bytes()),
        ),
        PID,
    );
    assert_eq!(out.len(), 1);
    let Message::Genl(reply) = &out[0] else {
        unreachable!()
    };
    assert_eq!(
        reply.attrs.get_str(ctrl::CTRL_ATTR_FAMILY_NAME),
        Some("overlay_handle")
    );
    // The reply decodes strictly with nlctrl's own policy.
    assert_eq!(&GenlMsg::parse(&reply.emit(), ctrl::ATTRS).unwrap(), reply);
    assert!(!reply.attrs.has(ctrl::CTRL_ATTR_MCAST_GROUPS));
}

#[test]
fn notifications_are_from_nobody() {
    let m = notification(&overlay::FAMILY, overlay::CMD_DELETE, vec![]);
    assert_eq!((m.seq, m.pid, m.flags, m.version), (0, 0, 0, 1));
    assert_eq!(m.family, overlay::ID);
    assert_eq!(overlay::FAMILY.command_name(11), Some("DEACTIVATED"));
    assert_eq!(overlay::FAMILY.command_name(6), Some("SETPROP"));
    assert_eq!(overlay::FAMILY.command_name(13), None);
    assert_eq!(
        crate::spec::mcast_group_by_id(2).map(|(f, g)| (f.name, g.name)),
        Some(("overlay", "status"))
    );
    assert!(crate::spec::mcast_group_by_id(4).is_none());
    assert_eq!(
        crate::spec::mcast_group_names(),
        "config (1), status (2), target (3)"
    );
}

#[test]
fn ctrl_getfamily_errors() {
    let out = ctrl_reply(
        &ctrl_request(RA, &nla(ctrl::CTRL_ATTR_FAMILY_NAME, b"ovl\0")),
        PID,
    );
    let e = only_error(&out);
    assert_eq!(e.errno, libc::ENOENT);
    assert_eq!(
        e.message.as_deref(),
        Some("no family named ovl; families: nlctrl, overlay_handle, overlay, overlay_target")
    );
    let out = ctrl_reply(
        &ctrl_request(RA, &nla(ctrl::CTRL_ATTR_FAMILY_ID, &17u16.to_ne_bytes())),
        PID,
    );
    assert_eq!(
        only_error(&out).message.as_deref(),
        Some("no family with id 17; families: nlctrl, overlay_handle, overlay, overlay_target")
    );
    let out = ctrl_reply(&ctrl_request(RA, &[]), PID);
    let e = only_error(&out);
    assert_eq!(e.errno, libc::EINVAL);
    assert_eq!(e.offset, None);
    // A too-long name fails the policy before the handler.
    let long = raw(
        ctrl::GENL_ID_CTRL,
        RA,
        3,
        2,
        &nla(
            ctrl::CTRL_ATTR_FAMILY_NAME,
            &[b"x".repeat(16), vec![0]].concat(),
        ),
    );
    assert_eq!(
        refused(&long).message,
        "attribute CTRL_ATTR_FAMILY_NAME (2): string exceeds 15 bytes"
    );
}

#[test]
fn ctrl_dump_lists_every_family() {
    let out = ctrl_reply(&ctrl_request(NLM_F_REQUEST | NLM_F_DUMP, &[]), PID);
    assert_eq!(
        kinds(&out),
        [
            ("genl", NLM_F_MULTI),
            ("genl", NLM_F_MULTI),
            ("genl", NLM_F_MULTI),
            ("genl", NLM_F_MULTI),
            ("done", NLM_F_MULTI)
        ]
    );
    let datagram = crate::msg::pack(&out);
    // netlink-packet-generic reads the same dump.
    let mut names = Vec::new();
    let mut mcast_seen = false;
    for m in split_datagram(&datagram) {
        let m = m.unwrap();
        let parsed = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(m.bytes).unwrap();
        match parsed.payload {
            NetlinkPayload::InnerMessage(g) => {
                assert_eq!(g.payload.cmd, GenlCtrlCmd::NewFamily);
                for nla in g.payload.nlas {
                    match nla {
                        GenlCtrlAttrs::FamilyName(n) => names.push(n),
                        GenlCtrlAttrs::Ops(ops)
                            if names.last().map(String::as_str) == Some("overlay") =>
                        {
                            assert_eq!(ops.len(), 10);
                            assert_eq!(ops[1], vec![OpAttrs::Id(2), OpAttrs::Flags(0xb)]);
                            assert_eq!(ops[3], vec![OpAttrs::Id(4), OpAttrs::Flags(0xe)]);
                        }
                        GenlCtrlAttrs::Ops(ops)
                            if names.last().map(String::as_str) == Some("overlay_handle") =>
                        {
                            assert_eq!(ops.len(), 4);
                            assert_eq!(ops[1], vec![OpAttrs::Id(2), OpAttrs::Flags(0xa)]);
                            assert_eq!(ops[2], vec![OpAttrs::Id(3), OpAttrs::Flags(0xa)]);
                            assert_eq!(ops[3], vec![OpAttrs::Id(4), OpAttrs::Flags(0xa)]);
                        }
                        GenlCtrlAttrs::McastGroups(groups) => {
                            // Decoded by netlink-packet-generic: the layout
                            // is Linux's.
                            let expected = match names.last().map(String::as_str) {
                                Some("overlay") => vec![
                                    vec![
                                        McastGrpAttrs::Name("config".into()),
                                        McastGrpAttrs::Id(1),
                                    ],
                                    vec![
                                        McastGrpAttrs::Name("status".into()),
                                        McastGrpAttrs::Id(2),
                                    ],
                                ],
                                Some("overlay_target") => vec![vec![
                                    McastGrpAttrs::Name("target".into()),
                                    McastGrpAttrs::Id(3),
                                ]],
                                other => panic!("groups in family {other:?}"),
                            };
                            assert_eq!(groups, expected);
                            mcast_seen = true;
                        }
                        _ => {}
                    }
                }
            }
            NetlinkPayload::Done(_) => names.push("DONE".into()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        names,
        [
            "nlctrl",
            "overlay_handle",
            "overlay",
            "overlay_target",
            "DONE"
        ]
    );
    assert!(mcast_seen, "overlay lists its multicast groups");
    assert_eq!(op_flags(&ctrl::COMMANDS[0]), 0xe);
    assert_eq!(op_flags(&handle::COMMANDS[0]), 0xa);
}

#[test]
fn mcast_groups_are_listed_when_present() {
    static F: FamilySpec = FamilySpec {
        name: "g",
        id: 40,
        version: 1,
        hdrsize: 0,
        maxattr: 0,
        attrs: &[],
        commands: &[],
        mcast_groups: &[crate::spec::McastGroupSpec {
            name: "events",
            id: 3,
            doc: "d",
        }],
        notifications: &[],
        doc: "",
    };
    let attrs = family_attrs(&F);
    let groups = attrs.get_nested(ctrl::CTRL_ATTR_MCAST_GROUPS).unwrap();
    assert_eq!(
        groups[0],
        Attr::nested(
            1,
            vec![
                Attr::str(ctrl::CTRL_ATTR_MCAST_GRP_NAME, "events"),
                Attr::u32(ctrl::CTRL_ATTR_MCAST_GRP_ID, 3)
            ]
        )
    );
    assert!(!attrs.has(ctrl::CTRL_ATTR_OPS));
    let bytes = GenlMsg {
        family: 16,
        flags: 0,
        seq: 0,
        pid: 0,
        cmd: 1,
        version: 2,
        attrs,
    }
    .emit();
    assert!(Message::parse(&bytes, ctrl::ATTRS, Unknown::Reject).is_ok());
}

fn header_then(family: u16, flags: u16, cmd: u8, version: u8, tail: Vec<u8>) -> Vec<u8> {
    raw(family, flags, cmd, version, &tail)
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for m in split_datagram(&bytes).flatten() {
            let _ = parse_request(m.bytes, m.offset);
        }
        let _ = parse_request(&bytes, 0);
        let _ = crate::annotate::annotate(&bytes);
        let _ = Message::parse(&bytes, overlay::ATTRS, Unknown::Keep);
    }

    #[test]
    fn arbitrary_attributes_never_panic(
        family in prop::sample::select(vec![16u16, 32, 33, 34]),
        flags in any::<u16>(),
        cmd in 0u8..12,
        version in 0u8..4,
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = header_then(family, flags, cmd, version, tail);
        for req in requests(&bytes).flatten() {
            if req.family.id == ctrl::GENL_ID_CTRL {
                let _ = ctrl_reply(&req, 1);
            }
            let _ = req.device();
        }
        let _ = crate::annotate::annotate(&bytes);
    }
}
