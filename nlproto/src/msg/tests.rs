use super::*;
use crate::spec::{ctrl, handle, overlay};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;

fn getprop() -> GenlMsg {
    GenlMsg {
        family: overlay::ID,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq: 2,
        pid: 1,
        cmd: overlay::CMD_GETPROP,
        version: 1,
        attrs: vec![
            Attr::str(overlay::ATTR_NAME, "ov0"),
            Attr::str(overlay::ATTR_PROP_NAME, "mtu"),
        ],
    }
}

fn header(len: u32, kind: u16, flags: u16, seq: u32, pid: u32) -> NetlinkHeader {
    let mut h = NetlinkHeader::default();
    h.length = len;
    h.message_type = kind;
    h.flags = flags;
    h.sequence_number = seq;
    h.port_number = pid;
    h
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
const GETPROP_BYTES: [u8; 36] = [
    36, 0, 0, 0,            // nlmsg_len
    33, 0,                  // nlmsg_type: overlay
    5, 0,                   // NLM_F_REQUEST | NLM_F_ACK
    2, 0, 0, 0,             // seq
    1, 0, 0, 0,             // pid
    5, 1, 0, 0,             // cmd GETPROP, version 1, reserved
    8, 0, 2, 0, b'o', b'v', b'0', 0,   // NAME "ov0"
    8, 0, 9, 0, b'm', b't', b'u', 0,   // PROP_NAME "mtu"
];

#[cfg(target_endian = "little")]
#[test]
fn byte_exact_requests() {
    let get_pid = GenlMsg {
        family: handle::ID,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq: 7,
        pid: 0,
        cmd: handle::CMD_GET_PID,
        version: 1,
        attrs: vec![],
    };
    assert_eq!(
        get_pid.emit(),
        [20, 0, 0, 0, 32, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    );
    assert_eq!(getprop().emit(), GETPROP_BYTES);
    assert_eq!(getprop().encoded_len(), 36);
    assert_eq!(
        GenlMsg::parse(&GETPROP_BYTES, overlay::ATTRS).unwrap(),
        getprop()
    );
}

#[cfg(target_endian = "little")]
#[test]
fn byte_exact_error_ack_done() {
    let req = getprop().header();
    let e = error(&req, libc::ENOENT, Some("no"), Some(24), 1);
    #[rustfmt::skip]
    let expected: [u8; 52] = [
        52, 0, 0, 0,  2, 0,  0x00, 0x03,  2, 0, 0, 0,  1, 0, 0, 0,   // NLMSG_ERROR, CAPPED|ACK_TLVS
        0xfe, 0xff, 0xff, 0xff,                                       // -ENOENT
        36, 0, 0, 0,  33, 0,  5, 0,  2, 0, 0, 0,  1, 0, 0, 0,        // echoed request header
        7, 0, 1, 0, b'n', b'o', 0, 0,                                 // NLMSGERR_ATTR_MSG "no"
        8, 0, 2, 0, 24, 0, 0, 0,                                      // NLMSGERR_ATTR_OFFS 24
    ];
    assert_eq!(e.emit(), expected);

    let a = ack(&req, 1);
    #[rustfmt::skip]
    let expected: [u8; 36] = [
        36, 0, 0, 0,  2, 0,  0x00, 0x01,  2, 0, 0, 0,  1, 0, 0, 0,   // NLMSG_ERROR, CAPPED
        0, 0, 0, 0,
        36, 0, 0, 0,  33, 0,  5, 0,  2, 0, 0, 0,  1, 0, 0, 0,
    ];
    assert_eq!(a.emit(), expected);

    assert_eq!(
        done(9, 1).emit(),
        [20, 0, 0, 0, 3, 0, 2, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn round_trips() {
    let req = getprop().header();
    let nested = GenlMsg {
        family: overlay::ID,
        flags: NLM_F_MULTI,
        seq: 3,
        pid: 4,
        cmd: overlay::CMD_PLUGINS,
        version: 1,
        attrs: vec![
            Attr::str(overlay::ATTR_PLUGIN_NAME, "vxlan"),
            Attr::nested(
                overlay::ATTR_PROPS,
                vec![Attr::nested(
                    overlay::ATTR_PROP,
                    vec![
                        Attr::str(overlay::ATTR_PROP_NAME, "vxlan/mode"),
                        Attr::nested(
                            overlay::ATTR_PROP_POSSIBLE,
                            vec![Attr::str(28, "a"), Attr::str(28, "b")],
                        ),
                    ],
                )],
            ),
        ],
    };
    let messages: Vec<Message> = vec![
        nested.into(),
        getprop().into(),
        ack(&req, 1).into(),
        error(
            &req,
            libc::EINVAL,
            Some("attribute PROP_NAME (9): string exceeds 63 bytes"),
            Some(28),
            1,
        )
        .into(),
        error(&req, libc::EPERM, None, None, 1).into(),
        error(&req, libc::EEXIST, Some("x"), None, 1).into(),
        error(&req, libc::EINVAL, None, Some(20), 1).into(),
        done(3, 4).into(),
        DoneMsg {
            seq: 3,
            pid: 4,
            errno: libc::EIO,
            message: Some("plugin failed".into()),
            offset: None,
            intr: false,
        }
        .into(),
        DoneMsg {
            intr: true,
            ..done(5, 6)
        }
        .into(),
        overrun().into(),
        Message::Noop { seq: 1, pid: 2 },
    ];
    for m in &messages {
        let bytes = m.emit();
        // Always padded, the last attribute included: nlmsg_len itself is
        // a multiple of 4, as some netlink libraries require.
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len(),
            "{m:?}"
        );
        assert_eq!(
            &Message::parse(&bytes, overlay::ATTRS, Unknown::Reject).unwrap(),
            m,
            "{m:?}"
        );
    }
    assert!(ack(&req, 1).is_ack());
    assert_eq!(ack(&req, 1).flags(), NLM_F_CAPPED);
    assert_eq!(
        error(&req, 1, None, Some(1), 1).flags(),
        NLM_F_CAPPED | NLM_F_ACK_TLVS
    );
}

#[test]
fn several_messages_pack_into_one_datagram() {
    let req = getprop().header();
    let a = getprop();
    let b = ack(&req, 1);
    let c = done(2, 1);
    let mut datagram = Vec::new();
    a.emit_into(&mut datagram);
    b.emit_into(&mut datagram);
    c.emit_into(&mut datagram);
    assert_eq!(datagram, [a.emit(), b.emit(), c.emit()].concat());
    let all: Vec<Message> = vec![a.into(), b.into(), c.into()];
    assert_eq!(pack(&all), datagram);
    // A misaligned buffer is padded before the next message.
    let mut odd = vec![1u8];
    done(1, 1).emit_into(&mut odd);
    assert_eq!(odd.len(), 24);
    assert_eq!(&odd[4..], &done(1, 1).emit()[..]);
}

#[cfg(target_endian = "little")]
#[test]
fn parses_uncapped_errors_as_linux_sends_them() {
    // Linux without NETLINK_CAP_ACK echoes the whole request.
    let mut raw = Vec::new();
    raw.extend_from_slice(&(16u32 + 4 + 36 + 8).to_ne_bytes());
    raw.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    raw.extend_from_slice(&NLM_F_ACK_TLVS.to_ne_bytes());
    raw.extend_from_slice(&2u32.to_ne_bytes());
    raw.extend_from_slice(&1u32.to_ne_bytes());
    raw.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
    raw.extend_from_slice(&GETPROP_BYTES);
    raw.extend_from_slice(&[8, 0, 1, 0, b'b', b'a', b'd', 0]);
    let e = ErrorMsg::parse(&raw).unwrap();
    assert_eq!(e.errno, libc::EINVAL);
    assert_eq!(e.request, getprop().header());
    assert_eq!(e.message.as_deref(), Some("bad"));
    assert_eq!(e.offset, None);
}

#[test]
fn malformed_messages() {
    assert!(matches!(
        Message::parse(&[0; 8], overlay::ATTRS, Unknown::Keep),
        Err(MsgError::Malformed(_))
    ));
    let mut short_error = done(1, 1).emit();
    short_error[4] = NLMSG_ERROR as u8;
    assert!(ErrorMsg::parse(&short_error).is_err());
    let mut bad_attr = getprop().emit();
    bad_attr[20] = 3; // NAME's nla_len below 4
    match GenlMsg::parse(&bad_attr, overlay::ATTRS) {
        Err(MsgError::Attr(e)) => assert_eq!(e.offset, 20),
        other => panic!("{other:?}"),
    }
    let mut overrun = ack(&getprop().header(), 1).emit();
    overrun[0] = 200;
    assert!(ErrorMsg::parse(&overrun).is_err());
}

#[test]
fn interoperates_with_netlink_packet_generic() {
    // Ours -> theirs.
    let ours = GenlMsg {
        family: ctrl::GENL_ID_CTRL,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq: 5,
        pid: 0,
        cmd: ctrl::CTRL_CMD_GETFAMILY,
        version: 2,
        attrs: vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, "overlay")],
    };
    let bytes = ours.emit();
    let theirs = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&bytes).unwrap();
    assert_eq!(theirs.header.sequence_number, 5);
    match theirs.payload {
        NetlinkPayload::InnerMessage(g) => {
            assert_eq!(g.payload.cmd, GenlCtrlCmd::GetFamily);
            assert_eq!(
                g.payload.nlas,
                vec![GenlCtrlAttrs::FamilyName("overlay".into())]
            );
        }
        other => panic!("{other:?}"),
    }
    // Theirs -> ours, byte for byte.
    let mut m = NetlinkMessage::from(GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName("overlay".into())],
    }));
    m.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    m.header.sequence_number = 5;
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    assert_eq!(buf, bytes);
    assert_eq!(GenlMsg::parse(&buf, ctrl::ATTRS).unwrap(), ours);
    // Their ack parses as ours.
    let mut e = ErrorMessage::default();
    e.header = ours.header().length.to_ne_bytes().to_vec();
    e.header.extend_from_slice(&bytes[4..16]);
    let mut am = NetlinkMessage::new(
        header(0, NLMSG_ERROR, NLM_F_CAPPED, 5, 9),
        NetlinkPayload::<GenlMessage<GenlCtrl>>::Error(e),
    );
    am.finalize();
    let mut buf = vec![0; am.buffer_len()];
    am.serialize(&mut buf);
    let parsed = ErrorMsg::parse(&buf).unwrap();
    assert!(parsed.is_ack());
    assert_eq!(parsed.request, ours.header());
    assert_eq!(parsed.pid, 9);
}
