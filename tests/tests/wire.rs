//! The bytes on the wire: the worked examples of docs/protocol.md answered
//! byte for byte by the real daemon, handle PIDs from 1, and the layout of
//! errors, acks and NLMSG_DONE.

use nlproto::msg::{
    NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTI,
    NLM_F_REQUEST,
};
use nlproto::server::split_datagram;
use nlproto::spec::{ctrl, handle, overlay as ov};
use nlproto::Attr;
use overlay_tests::proto::{name, overlay_request, request};
use overlay_tests::Daemon;
use std::path::Path;

/// The hex dumps (```text blocks) of one generated example of the protocol
/// document, as bytes.
fn doc_example(example: &str) -> Vec<Vec<u8>> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("docs/protocol.md"),
    )
    .expect("docs/protocol.md");
    let begin = format!("<!-- BEGIN GENERATED example={example} -->");
    let end = format!("<!-- END GENERATED example={example} -->");
    let start = doc.find(&begin).expect("example in the document") + begin.len();
    let stop = start + doc[start..].find(&end).expect("end of the example");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in doc[start..stop].lines() {
        if line.starts_with("```text") {
            current = Some(Vec::new());
        } else if line.starts_with("```") {
            blocks.extend(current.take());
        } else if let Some(bytes) = current.as_mut() {
            let Some((offset, rest)) = line.split_once("  ") else {
                continue;
            };
            let offset = usize::from_str_radix(offset, 16).expect("an offset");
            assert_eq!(offset, bytes.len(), "offsets follow each other: {line}");
            for tok in rest.split_whitespace() {
                if tok.len() != 2 {
                    break;
                }
                match u8::from_str_radix(tok, 16) {
                    Ok(b) => bytes.push(b),
                    Err(_) => break,
                }
            }
        }
    }
    blocks
}

#[test]
fn pids_start_at_one() {
    let (d, first) = Daemon::start_with_first_client();
    assert_eq!(first.pid(), 1);
    let second = d.client();
    assert_eq!(second.pid(), 2);
}

#[test]
fn worked_example_resolving_overlay_byte_for_byte() {
    if cfg!(target_endian = "big") {
        return; // the document's example is little-endian
    }
    let (_d, mut c) = Daemon::start_with_first_client();
    assert_eq!(c.pid(), 1, "the example's handle has PID 1");
    let blocks = doc_example("getfamily");
    assert_eq!(blocks.len(), 2, "a request and a reply");
    let (req, reply) = (&blocks[0], &blocks[1]);
    assert_eq!(req.len(), 32);
    assert_eq!(reply.len(), 356);
    c.send_raw(req).unwrap();
    let got = c.recv_raw().unwrap();
    assert_eq!(
        got, *reply,
        "the daemon's answer differs from docs/protocol.md section 7"
    );

    // The error example: the same request naming "ovl", sequence number 4.
    let blocks = doc_example("getfamily-enoent");
    assert_eq!(blocks.len(), 1);
    let mut req = request(
        ctrl::GENL_ID_CTRL,
        ctrl::CTRL_CMD_GETFAMILY,
        2,
        NLM_F_REQUEST | NLM_F_ACK,
        4,
        vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, "ovl")],
    );
    // The example's request carries the handle's PID.
    req[12..16].copy_from_slice(&1u32.to_ne_bytes());
    c.send_raw(&req).unwrap();
    assert_eq!(c.recv_raw().unwrap(), blocks[0]);
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

#[test]
fn error_ack_and_done_layout() {
    let d = Daemon::start();
    let mut c = d.client();
    let pid = c.pid();

    // A transaction with NLM_F_ACK: reply (flags 0, family version) then a
    // 36-byte ack, in one datagram.
    c.send_raw(&overlay_request(
        ov::CMD_PLUGINS,
        5,
        vec![Attr::str(ov::ATTR_PLUGIN_NAME, "vxlan")],
    ))
    .unwrap();
    let dg = c.recv_raw().unwrap();
    let msgs: Vec<&[u8]> = split_datagram(&dg).map(|m| m.unwrap().bytes).collect();
    assert_eq!(msgs.len(), 2, "reply and ack together");
    let reply = msgs[0];
    assert_eq!(u16_at(reply, 4), ov::ID);
    assert_eq!(u16_at(reply, 6), 0, "reply flags");
    assert_eq!(u32_at(reply, 8), 5);
    assert_eq!(u32_at(reply, 12), pid);
    assert_eq!((reply[16], reply[17]), (ov::CMD_PLUGINS, ov::VERSION));
    let ack = msgs[1];
    assert_eq!(ack.len(), 36);
    assert_eq!(u32_at(ack, 0), 36);
    assert_eq!(u16_at(ack, 4), NLMSG_ERROR);
    assert_eq!(u16_at(ack, 6), NLM_F_CAPPED);
    assert_eq!(u32_at(ack, 8), 5);
    assert_eq!(u32_at(ack, 12), pid);
    assert_eq!(u32_at(ack, 16), 0, "error 0");
    assert_eq!(u16_at(ack, 24), ov::ID, "echoed type");

    // An error: capped echo, then MSG (NUL-terminated) and OFFS TLVs.
    let bad = overlay_request(
        ov::CMD_LIST,
        6,
        vec![name("ov0"), Attr::bytes(ov::ATTR_LINKID, vec![1])],
    );
    c.send_raw(&bad).unwrap();
    let dg = c.recv_raw().unwrap();
    let e: Vec<&[u8]> = split_datagram(&dg).map(|m| m.unwrap().bytes).collect();
    assert_eq!(e.len(), 1);
    let e = e[0];
    assert_eq!(u16_at(e, 4), NLMSG_ERROR);
    assert_eq!(u16_at(e, 6), NLM_F_CAPPED | NLM_F_ACK_TLVS);
    assert_eq!(u32_at(e, 8), 6);
    assert_eq!(u32_at(e, 12), pid);
    assert_eq!(u32_at(e, 16) as i32, -libc::EINVAL);
    assert_eq!(
        &e[20..36],
        &bad[..16],
        "the request's header echoed, capped"
    );
    // TLVs from byte 36.
    let msg_len = u16_at(e, 36) as usize;
    assert_eq!(u16_at(e, 38), 1, "NLMSGERR_ATTR_MSG first");
    let text = &e[40..36 + msg_len];
    assert_eq!(text.last(), Some(&0), "NUL-terminated");
    assert!(std::str::from_utf8(&text[..text.len() - 1])
        .unwrap()
        .contains("LINKID"));
    let offs_at = 36 + ((msg_len + 3) & !3);
    assert_eq!(u16_at(e, offs_at), 8);
    assert_eq!(u16_at(e, offs_at + 2), 2, "NLMSGERR_ATTR_OFFS");
    assert_eq!(u32_at(e, offs_at + 4), 28);
    assert_eq!(e.len(), offs_at + 8);
    assert_eq!(u32_at(e, 0) as usize, e.len());

    // A dump: parts flagged NLM_F_MULTI, NLMSG_DONE of 20 bytes with 0.
    c.send_raw(&request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST,
        7,
        vec![],
    ))
    .unwrap();
    let dg = c.recv_raw().unwrap();
    let m: Vec<&[u8]> = split_datagram(&dg).map(|m| m.unwrap().bytes).collect();
    assert_eq!(m.len(), 1, "no ack without NLM_F_ACK");
    assert_eq!(u32_at(m[0], 20 + 4), pid, "HANDLE_ATTR_PID");
    c.send_raw(&request(
        ov::ID,
        ov::CMD_PLUGINS,
        1,
        NLM_F_REQUEST | NLM_F_DUMP,
        8,
        vec![],
    ))
    .unwrap();
    let mut parts = 0;
    let done = loop {
        let dg = c.recv_raw().unwrap();
        let mut last = None;
        for m in split_datagram(&dg) {
            let m = m.unwrap().bytes.to_vec();
            assert_eq!(u32_at(&m, 8), 8);
            if u16_at(&m, 4) == NLMSG_DONE {
                last = Some(m);
            } else {
                assert_eq!(u16_at(&m, 6), NLM_F_MULTI);
                parts += 1;
            }
        }
        if let Some(done) = last {
            break done;
        }
    };
    assert_eq!(
        parts, 5,
        "one part per loaded plugin: geneve, vxlan, direct, etcd, files"
    );
    assert_eq!(done.len(), 20);
    assert_eq!(u16_at(&done, 6), NLM_F_MULTI);
    assert_eq!(u32_at(&done, 12), pid);
    assert_eq!(u32_at(&done, 16), 0);
}
