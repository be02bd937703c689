//! `docs/protocol.md` embeds generated sections: the tables of every family
//! and the worked nlctrl example. These tests keep them equal to the code.
//! `NLPROTO_BLESS=1 cargo test -p nlproto doc_sync` rewrites them.

use crate::annotate::annotate;
use crate::msg::{pack, Emit, GenlMsg, NLM_F_ACK, NLM_F_REQUEST};
use crate::server::{ctrl_reply, requests};
use crate::spec::{ctrl, render_family_markdown, FAMILIES};
use crate::Attr;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");

/// The request and reply datagrams of a `CTRL_CMD_GETFAMILY` for `name`
/// from handle 1.
fn getfamily(name: &str, seq: u32) -> (Vec<u8>, Vec<u8>) {
    let request = GenlMsg {
        family: ctrl::GENL_ID_CTRL,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq,
        pid: 1,
        cmd: ctrl::CTRL_CMD_GETFAMILY,
        version: ctrl::VERSION,
        attrs: vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, name)],
    }
    .emit();
    let req = requests(&request).next().unwrap().unwrap();
    let reply = pack(&ctrl_reply(&req, 1));
    (request, reply)
}

/// The worked example: resolving `overlay`.
pub(crate) fn getfamily_example() -> (Vec<u8>, Vec<u8>) {
    getfamily("overlay", 3)
}

fn example_section() -> String {
    let (request, reply) = getfamily_example();
    format!(
        "Request datagram ({} bytes):\n\n```text\n{}```\n\nReply datagram ({} bytes): the `CTRL_CMD_NEWFAMILY` message, then the ack.\n\n```text\n{}```\n",
        request.len(),
        annotate(&request),
        reply.len(),
        annotate(&reply)
    )
}

fn error_example_section() -> String {
    let (_, reply) = getfamily("ovl", 4);
    format!(
        "Reply datagram ({} bytes):\n\n```text\n{}```\n",
        reply.len(),
        annotate(&reply)
    )
}

fn sections() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = FAMILIES
        .iter()
        .map(|f| (format!("family={}", f.name), render_family_markdown(f)))
        .collect();
    out.push(("example=getfamily".into(), example_section()));
    out.push(("example=getfamily-enoent".into(), error_example_section()));
    out
}

fn sync(doc: &str, key: &str, content: &str) -> Result<String, String> {
    let begin = format!("<!-- BEGIN GENERATED {key} -->\n");
    let end = format!("<!-- END GENERATED {key} -->");
    let b = doc
        .find(&begin)
        .ok_or_else(|| format!("docs/protocol.md lacks `{}`", begin.trim_end()))?
        + begin.len();
    let e = b + doc[b..]
        .find(&end)
        .ok_or_else(|| format!("docs/protocol.md lacks `{end}`"))?;
    if &doc[b..e] == content {
        return Ok(doc.to_string());
    }
    if std::env::var_os("NLPROTO_BLESS").is_some() {
        return Ok(format!("{}{}{}", &doc[..b], content, &doc[e..]));
    }
    Err(format!(
        "docs/protocol.md section {key} differs from the code; rerun with NLPROTO_BLESS=1.\n--- expected ---\n{content}--- found ---\n{}",
        &doc[b..e]
    ))
}

#[test]
fn protocol_doc_matches_the_code() {
    let mut doc = std::fs::read_to_string(DOC).expect("docs/protocol.md exists");
    let original = doc.clone();
    for (key, content) in sections() {
        // The example's bytes are little-endian; on other machines only the
        // tables are compared.
        if key.starts_with("example") && cfg!(target_endian = "big") {
            continue;
        }
        doc = sync(&doc, &key, &content).unwrap_or_else(|e| panic!("{e}"));
    }
    if doc != original {
        std::fs::write(DOC, doc).expect("rewrite docs/protocol.md");
    }
}

#[test]
fn example_is_what_linux_tools_parse() {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_generic::ctrl::{nlas::GenlCtrlAttrs, GenlCtrl};
    use netlink_packet_generic::GenlMessage;
    let (_, reply) = getfamily_example();
    let first = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&reply).unwrap();
    let NetlinkPayload::InnerMessage(m) = first.payload else {
        panic!("not a genl message")
    };
    assert!(m.payload.nlas.contains(&GenlCtrlAttrs::FamilyId(33)));
    let len = first.header.length as usize;
    let ack = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&reply[len..]).unwrap();
    assert!(matches!(ack.payload, NetlinkPayload::Error(ref e) if e.code.is_none()));
}
