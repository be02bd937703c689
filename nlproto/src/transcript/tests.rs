use super::*;
use crate::msg::{self, GenlMsg, NLM_F_ACK, NLM_F_REQUEST};
use crate::spec::{handle, overlay as ov};
use crate::{Attr, Emit};

fn get_pid_request() -> Vec<u8> {
    GenlMsg {
        family: handle::ID,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq: 1,
        pid: 0,
        cmd: handle::CMD_GET_PID,
        version: 1,
        attrs: vec![],
    }
    .emit()
}

fn create_reply() -> Vec<u8> {
    GenlMsg {
        family: ov::ID,
        flags: 0,
        seq: 3,
        pid: 7,
        cmd: ov::CMD_CREATE,
        version: ov::VERSION,
        attrs: vec![
            Attr::u32(ov::ATTR_LINKID, 1),
            Attr::str(ov::ATTR_NAME, "ov0"),
            Attr::u64(ov::ATTR_VNETID, 42),
        ],
    }
    .emit()
}

fn sample() -> Transcript {
    let req = get_pid_request();
    let hdr = crate::msg::split_header(&req).unwrap().0;
    Transcript {
        notes: vec!["What this is about.".into(), "".into()],
        connections: vec![
            Connection {
                line: 0,
                records: vec![
                    Record::new(Direction::Sent, req.clone()),
                    Record::new(Direction::Received, create_reply()),
                    Record::new(Direction::Received, msg::ack(&hdr, 7).emit()),
                ],
            },
            Connection {
                line: 0,
                records: vec![Record::new(Direction::Sent, vec![0xde, 0xad])],
            },
        ],
    }
}

/// Line numbers are not part of what a record says.
fn without_lines(mut t: Transcript) -> Transcript {
    for c in &mut t.connections {
        c.line = 0;
        for r in &mut c.records {
            r.line = 0;
        }
    }
    t
}

#[test]
fn round_trip() {
    let t = sample();
    let text = t.to_text();
    let back = Transcript::parse(&text).unwrap();
    assert_eq!(without_lines(back.clone()), t);
    // Written again, the text is the same.
    assert_eq!(back.to_text(), text);
}

#[test]
fn text_layout() {
    let text = sample().to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "overlay-transcript 1");
    assert_eq!(lines[1], "# What this is about.");
    assert_eq!(lines[2], "#");
    let lines = &lines[2..];
    assert_eq!(lines[1], "");
    assert_eq!(lines[2], "connection");
    assert_eq!(
        lines[3],
        "# overlay_handle GET_PID v1 request seq=1 pid=0 (NLM_F_REQUEST | NLM_F_ACK)"
    );
    assert_eq!(lines[4], format!("> {}", hex(&get_pid_request())));
    assert_eq!(
        lines[5],
        "# overlay CREATE v1 reply seq=3 pid=7: LINKID=1 NAME=\"ov0\" VNETID=42"
    );
    assert!(lines[6].starts_with("< "));
    assert_eq!(
        lines[7],
        "# NLMSG_ERROR ack to family overlay_handle seq=1 pid=7 (NLM_F_CAPPED)"
    );
}

#[test]
fn line_numbers_and_global_record_numbers() {
    let text = "# leading comment\n\noverlay-transcript 1\nconnection\n> 0102\n\n# c\n< 03 04\nconnection\n< aabb\n";
    let t = Transcript::parse(text).unwrap();
    let got: Vec<(usize, usize, usize, Vec<u8>)> = t
        .records()
        .map(|(c, n, r)| (c, n, r.line, r.bytes.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 1, 5, vec![1, 2]),
            (0, 2, 8, vec![3, 4]),
            (1, 3, 10, vec![0xaa, 0xbb]),
        ]
    );
    assert_eq!(t.connections[1].line, 9);
}

#[test]
fn comments_are_ignored() {
    let a =
        Transcript::parse("overlay-transcript 1\nconnection\n# anything at all\n> 00\n").unwrap();
    let b = Transcript::parse("overlay-transcript 1\nconnection\n# other\n  # indented\n> 00\n")
        .unwrap();
    assert_eq!(without_lines(a), without_lines(b));
}

#[track_caller]
fn fails(text: &str, line: usize, needle: &str) {
    let e = Transcript::parse(text).unwrap_err();
    assert_eq!(e.line, line, "{e}");
    assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    assert!(e.to_string().starts_with(&format!("line {line}: ")));
}

#[test]
fn malformed_input_names_the_line() {
    fails("", 1, "no `overlay-transcript 1` header");
    fails("# only a comment\n", 1, "not a transcript");
    fails("connection\n> 00\n", 1, "expected the header");
    fails("overlay-transcript\n", 1, "lacks the format version");
    fails("overlay-transcript 2\n", 1, "version 2 is not supported");
    fails("overlay-transcript one\n", 1, "not a number");
    fails("overlay-transcript 1 extra\n", 1, "unexpected text");
    fails(
        "overlay-transcript 1\n> 00\n",
        2,
        "before the first `connection`",
    );
    fails(
        "overlay-transcript 1\nconnection\n> 0g\n",
        3,
        "'g' is not a hex digit",
    );
    fails(
        "overlay-transcript 1\nconnection\n\n< 012\n",
        4,
        "odd number of hex digits",
    );
    fails("overlay-transcript 1\nconnection\n<\n", 3, "has no bytes");
    fails("overlay-transcript 1\nconnection\n>00\n", 3, "put a space");
    fails("overlay-transcript 1\nconnection\n> \n", 3, "has no bytes");
    fails(
        "overlay-transcript 1\nconnection\n= 00\n",
        3,
        "expected `connection`",
    );
}

#[test]
fn recorder_splits_received_datagrams() {
    let mut rec = Recorder::new();
    let req = get_pid_request();
    let hdr = crate::msg::split_header(&req).unwrap().0;
    let mut datagram = create_reply();
    msg::ack(&hdr, 7).emit_into(&mut datagram);
    let tap: &mut dyn Tap = &mut rec;
    tap.sent(&req);
    tap.received(&datagram);
    let got = rec.records();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], Record::new(Direction::Sent, req));
    assert_eq!(got[1], Record::new(Direction::Received, create_reply()));
    assert_eq!(got[2].direction, Direction::Received);
    assert_eq!(got[2].bytes, msg::ack(&hdr, 7).emit());
}

#[test]
fn recorder_keeps_bytes_that_are_not_a_message() {
    let mut rec = Recorder::new();
    Tap::received(&mut rec, &[1, 2, 3]);
    assert_eq!(
        rec.records(),
        vec![Record::new(Direction::Received, vec![1, 2, 3])]
    );
}

#[test]
fn summaries_of_errors_and_dumps() {
    let req = get_pid_request();
    let hdr = crate::msg::split_header(&req).unwrap().0;
    let e = msg::error(&hdr, libc::ENOENT, Some("no device named ov9"), Some(20), 7);
    assert_eq!(
        crate::annotate::summary(&e.emit()),
        "NLMSG_ERROR -2 ENOENT to family overlay_handle seq=1 pid=7 (NLM_F_CAPPED | NLM_F_ACK_TLVS): NLMSGERR_ATTR_MSG=\"no device named ov9\" NLMSGERR_ATTR_OFFS=20"
    );
    assert_eq!(
        crate::annotate::summary(&msg::done(9, 7).emit()),
        "NLMSG_DONE 0 seq=9 pid=7 (NLM_F_MULTI)"
    );
    assert_eq!(
        crate::annotate::summary(&[1, 2]),
        "2 bytes: too short for a netlink header"
    );
}
