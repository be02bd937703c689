//! A byte-by-byte annotated hex listing of a datagram, for documentation,
//! debugging and recorded transcripts. It never fails: bytes it cannot
//! interpret are listed as such.

use crate::attr::{align4, raw_attrs, RawAttrError};
use crate::msg::{
    GENL_HDRLEN, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN,
    NLMSG_MIN_TYPE, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_ECHO,
    NLM_F_MULTI, NLM_F_REQUEST,
};
use crate::spec::{self, ctrl, AttrKind, AttrSpec};
use crate::{errno, server};
use netlink_packet_core::NLA_TYPE_MASK;
use std::fmt::Write;

const EXTACK: &[AttrSpec] = &[
    AttrSpec::new(
        NLMSGERR_ATTR_MSG,
        "NLMSGERR_ATTR_MSG",
        AttrKind::Str { max: usize::MAX },
        "",
    ),
    AttrSpec::new(NLMSGERR_ATTR_OFFS, "NLMSGERR_ATTR_OFFS", AttrKind::U32, ""),
];

struct Listing {
    out: String,
}

fn ne_u16(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

fn ne_u32(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

impl Listing {
    /// One annotated item: its bytes, 8 per line, the text on the first.
    fn item(&mut self, at: usize, bytes: &[u8], depth: usize, text: &str) {
        if bytes.is_empty() {
            let _ = writeln!(
                self.out,
                "{at:04x}  {:23}  {}{text}",
                "",
                "  ".repeat(depth)
            );
            return;
        }
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let label = if i == 0 { text } else { "" };
            let line = format!(
                "{:04x}  {:23}  {}{label}",
                at + i * 8,
                hex.join(" "),
                "  ".repeat(depth)
            );
            let _ = writeln!(self.out, "{}", line.trim_end());
        }
    }

    fn padding(&mut self, at: usize, bytes: &[u8], depth: usize) {
        if !bytes.is_empty() {
            self.item(at, bytes, depth, "padding");
        }
    }

    fn header(&mut self, at: usize, h: &[u8], depth: usize, prefix: &str) -> (u16, u16) {
        let len = ne_u32(&h[0..4]);
        let kind = ne_u16(&h[4..6]);
        let flags = ne_u16(&h[6..8]);
        self.item(at, &h[0..4], depth, &format!("{prefix}nlmsg_len = {len}"));
        self.item(
            at + 4,
            &h[4..6],
            depth,
            &format!("{prefix}nlmsg_type = {kind} ({})", type_name(kind)),
        );
        self.item(
            at + 6,
            &h[6..8],
            depth,
            &format!(
                "{prefix}nlmsg_flags = 0x{flags:04x}{}",
                flag_names(kind, flags)
            ),
        );
        self.item(
            at + 8,
            &h[8..12],
            depth,
            &format!("{prefix}nlmsg_seq = {}", ne_u32(&h[8..12])),
        );
        self.item(
            at + 12,
            &h[12..16],
            depth,
            &format!("{prefix}nlmsg_pid = {}", ne_u32(&h[12..16])),
        );
        (kind, flags)
    }

    fn message(&mut self, at: usize, m: &[u8]) {
        let (kind, flags) = self.header(at, &m[..NLMSG_HDRLEN], 0, "");
        let body = &m[NLMSG_HDRLEN..];
        let b = at + NLMSG_HDRLEN;
        match kind {
            NLMSG_ERROR | NLMSG_DONE if body.len() >= 4 => {
                let code = ne_u32(&body[..4]) as i32;
                let what = match (kind, code) {
                    (NLMSG_ERROR, 0) => "error = 0 (ack)".to_string(),
                    (NLMSG_ERROR, c) => {
                        format!("error = {c} (-{})", errno::label(c.wrapping_neg()))
                    }
                    (_, 0) => "status = 0".to_string(),
                    (_, c) => format!("status = {c} (-{})", errno::label(c.wrapping_neg())),
                };
                self.item(b, &body[..4], 0, &what);
                let mut pos = 4;
                if kind == NLMSG_ERROR && body.len() >= 4 + NLMSG_HDRLEN {
                    self.header(b + 4, &body[4..4 + NLMSG_HDRLEN], 1, "echoed ");
                    pos += NLMSG_HDRLEN;
                    if flags & NLM_F_CAPPED == 0 {
                        let echoed = align4(ne_u32(&body[4..8]) as usize).max(NLMSG_HDRLEN);
                        let end = (4 + echoed).min(body.len());
                        if end > pos {
                            self.item(b + pos, &body[pos..end], 1, "echoed request payload");
                            pos = end;
                        }
                    }
                }
                if flags & NLM_F_ACK_TLVS != 0 {
                    self.attrs(Some(EXTACK), &body[pos..], b + pos, 0);
                } else if pos < body.len() {
                    self.item(b + pos, &body[pos..], 0, "unparsed");
                }
            }
            NLMSG_NOOP => {}
            k if k >= NLMSG_MIN_TYPE && body.len() >= GENL_HDRLEN => {
                let family = spec::family_by_id(k);
                let cmd = body[0];
                let cmd_name = match family {
                    Some(f) if f.id == ctrl::GENL_ID_CTRL && cmd == ctrl::CTRL_CMD_NEWFAMILY => {
                        " (CTRL_CMD_NEWFAMILY)".to_string()
                    }
                    Some(f) => f
                        .command(cmd)
                        .map(|c| format!(" ({})", c.name))
                        .unwrap_or_default(),
                    None => String::new(),
                };
                self.item(b, &body[..1], 0, &format!("genl cmd = {cmd}{cmd_name}"));
                self.item(
                    b + 1,
                    &body[1..2],
                    0,
                    &format!("genl version = {}", body[1]),
                );
                self.item(b + 2, &body[2..4], 0, "genl reserved");
                self.attrs(
                    family.map(|f| f.attrs),
                    &body[GENL_HDRLEN..],
                    b + GENL_HDRLEN,
                    0,
                );
            }
            _ => {
                if !body.is_empty() {
                    self.item(b, body, 0, "payload");
                }
            }
        }
    }

    fn attrs(
        &mut self,
        policy: Option<&'static [AttrSpec]>,
        bytes: &[u8],
        base: usize,
        depth: usize,
    ) {
        self.attrs_in(policy, false, bytes, base, depth)
    }

    fn attrs_in(
        &mut self,
        policy: Option<&'static [AttrSpec]>,
        entries: bool,
        bytes: &[u8],
        base: usize,
        depth: usize,
    ) {
        for item in raw_attrs(bytes) {
            let a = match item {
                Ok(a) => a,
                Err(RawAttrError::Truncated { at, rest }) => {
                    self.item(base + at, rest, depth, "truncated attribute header");
                    return;
                }
                Err(RawAttrError::BadLength {
                    at,
                    len,
                    raw_type,
                    rest,
                }) => {
                    let kind = raw_type & NLA_TYPE_MASK;
                    self.item(
                        base + at,
                        &rest[..4],
                        depth,
                        &format!("nla_len = {len} (invalid), nla_type = {kind}"),
                    );
                    if rest.len() > 4 {
                        self.item(base + at + 4, &rest[4..], depth, "unparsed");
                    }
                    return;
                }
            };
            let (at, kind) = (base + a.at, a.kind());
            let spec = if entries {
                None
            } else {
                policy.and_then(|p| p.iter().find(|s| s.id == kind))
            };
            let name = match (entries, spec) {
                (true, _) => format!("entry {kind}"),
                (false, Some(s)) => s.name.to_string(),
                (false, None) => "unknown".to_string(),
            };
            let flag = if a.nested() { " | NLA_F_NESTED" } else { "" };
            self.item(
                at,
                &a.wire[..4],
                depth,
                &format!("nla_len = {}, nla_type = {kind}{flag}: {name}", a.len),
            );
            let value = a.value;
            let v = at + 4;
            match (entries, spec.map(|s| s.kind)) {
                (true, _) => self.attrs(policy, value, v, depth + 1),
                (false, Some(AttrKind::Nested(p))) => self.attrs(Some(p), value, v, depth + 1),
                (false, Some(AttrKind::NestedIndexed(p))) => {
                    self.attrs_in(Some(p), true, value, v, depth + 1)
                }
                (false, Some(k)) => {
                    // Names are unique across the families; the op flags get their bit names.
                    let op_flags = spec.is_some_and(|s| s.name == "CTRL_ATTR_OP_FLAGS");
                    self.leaf(k, value, v, depth + 1, op_flags)
                }
                (false, None) => {
                    if !value.is_empty() {
                        self.item(v, value, depth + 1, "value");
                    }
                }
            }
            self.padding(at + a.len, a.padding(), depth + 1);
        }
    }

    fn leaf(&mut self, kind: AttrKind, v: &[u8], at: usize, depth: usize, op_flags: bool) {
        let text = match (kind, v.len()) {
            (AttrKind::U8, 1) => format!("= {}", v[0]),
            (AttrKind::U16, 2) => format!("= {}", ne_u16(v)),
            (AttrKind::U32, 4) if op_flags => {
                format!("= 0x{:x}{}", ne_u32(v), op_flag_names(ne_u32(v)))
            }
            (AttrKind::U32, 4) => format!("= {}", ne_u32(v)),
            (AttrKind::U64, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                format!("= {}", u64::from_ne_bytes(b))
            }
            (AttrKind::Str { .. }, n) if n > 0 && v[n - 1] == 0 => {
                format!("= {:?} + NUL", String::from_utf8_lossy(&v[..n - 1]))
            }
            (AttrKind::Binary { .. }, n) => format!("= {n} bytes"),
            _ => "value (does not match the policy)".to_string(),
        };
        if v.is_empty() {
            return;
        }
        self.item(at, v, depth, &text);
    }
}

fn op_flag_names(flags: u32) -> String {
    let names: Vec<&str> = [
        (ctrl::GENL_ADMIN_PERM, "GENL_ADMIN_PERM"),
        (ctrl::GENL_CMD_CAP_DO, "GENL_CMD_CAP_DO"),
        (ctrl::GENL_CMD_CAP_DUMP, "GENL_CMD_CAP_DUMP"),
        (ctrl::GENL_CMD_CAP_HASPOL, "GENL_CMD_CAP_HASPOL"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, n)| n)
    .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(" | "))
    }
}

fn type_name(kind: u16) -> String {
    match kind {
        NLMSG_NOOP => "NLMSG_NOOP".into(),
        NLMSG_ERROR => "NLMSG_ERROR".into(),
        NLMSG_DONE => "NLMSG_DONE".into(),
        NLMSG_OVERRUN => "NLMSG_OVERRUN".into(),
        k => match spec::family_by_id(k) {
            Some(f) => format!("family {}", f.name),
            None if k < NLMSG_MIN_TYPE => "reserved control type".into(),
            None => "unknown family".into(),
        },
    }
}

fn flag_names(kind: u16, flags: u16) -> String {
    let mut names = Vec::new();
    let mut left = flags;
    let mut take = |bit: u16, name: &'static str, names: &mut Vec<&'static str>| {
        if left & bit == bit && bit != 0 {
            names.push(name);
            left &= !bit;
        }
    };
    take(NLM_F_REQUEST, "NLM_F_REQUEST", &mut names);
    take(NLM_F_MULTI, "NLM_F_MULTI", &mut names);
    take(NLM_F_ACK, "NLM_F_ACK", &mut names);
    take(NLM_F_ECHO, "NLM_F_ECHO", &mut names);
    if kind == NLMSG_ERROR || kind == NLMSG_DONE {
        take(NLM_F_CAPPED, "NLM_F_CAPPED", &mut names);
        take(NLM_F_ACK_TLVS, "NLM_F_ACK_TLVS", &mut names);
    } else if flags & NLM_F_REQUEST != 0 {
        take(crate::msg::NLM_F_DUMP, "NLM_F_DUMP", &mut names);
    }
    if left != 0 {
        names.push("other bits");
    }
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(" | "))
    }
}

/// Lists every byte of a datagram with what it means: one line per field
/// (long values take several lines of 8 bytes), nested attributes indented.
/// Offsets count from the start of the datagram.
pub fn annotate(datagram: &[u8]) -> String {
    let mut l = Listing { out: String::new() };
    let mut last_end = 0;
    for item in server::split_datagram(datagram) {
        match item {
            Ok(raw) => {
                l.padding(last_end, &datagram[last_end..raw.offset], 0);
                if raw.offset != 0 {
                    l.out.push('\n');
                }
                l.message(raw.offset, raw.bytes);
                last_end = raw.offset + raw.bytes.len();
            }
            Err(e) => {
                let at = e.datagram_offset;
                l.padding(last_end, &datagram[last_end..at], 0);
                l.item(
                    at,
                    &datagram[at..],
                    0,
                    &format!("not a message: {}", e.message),
                );
                return l.out;
            }
        }
    }
    l.padding(last_end, &datagram[last_end..], 0);
    l.out
}

/// One line saying what a single message is, for a person skimming a
/// transcript: its kind, family and command, flags, sequence number, PID,
/// and its attributes by name with their values (`NAME="ov0" VNETID=42
/// PROPS{PROP{...}}`); for errors the errno and the extended-ack text. Like
/// [`annotate`] it never fails: what it cannot interpret it calls so.
pub fn summary(message: &[u8]) -> String {
    if message.len() < NLMSG_HDRLEN {
        return format!("{} bytes: too short for a netlink header", message.len());
    }
    let kind = ne_u16(&message[4..6]);
    let flags = ne_u16(&message[6..8]);
    let seq = ne_u32(&message[8..12]);
    let pid = ne_u32(&message[12..16]);
    let len = (ne_u32(&message[0..4]) as usize).clamp(NLMSG_HDRLEN, message.len());
    let body = &message[NLMSG_HDRLEN..len];
    let head = format!("seq={seq} pid={pid}{}", flag_names(kind, flags));
    match kind {
        NLMSG_ERROR | NLMSG_DONE if body.len() >= 4 => {
            let code = ne_u32(&body[..4]) as i32;
            let mut pos = 4;
            let mut about = String::new();
            if kind == NLMSG_ERROR && body.len() >= 4 + NLMSG_HDRLEN {
                let echoed = &body[4..4 + NLMSG_HDRLEN];
                let ekind = ne_u16(&echoed[4..6]);
                about = format!(" to {}", type_name(ekind));
                pos += if flags & NLM_F_CAPPED == 0 {
                    align4(ne_u32(&echoed[0..4]) as usize).max(NLMSG_HDRLEN)
                } else {
                    NLMSG_HDRLEN
                };
                pos = pos.min(body.len());
            }
            let what = if kind == NLMSG_ERROR {
                "NLMSG_ERROR"
            } else {
                "NLMSG_DONE"
            };
            let result = match (kind, code) {
                (NLMSG_ERROR, 0) => "ack".to_string(),
                (_, 0) => "0".to_string(),
                (_, c) => format!("{c} {}", errno::label(c.wrapping_neg())),
            };
            let mut out = format!("{what} {result}{about} {head}");
            if flags & NLM_F_ACK_TLVS != 0 && pos < body.len() {
                out.push_str(": ");
                out.push_str(&attr_summary(Some(EXTACK), &body[pos..]));
            }
            out
        }
        k if k >= NLMSG_MIN_TYPE && body.len() >= GENL_HDRLEN => {
            let family = spec::family_by_id(k);
            let cmd = body[0];
            let cmd_name = match family {
                Some(f) if f.id == ctrl::GENL_ID_CTRL && cmd == ctrl::CTRL_CMD_NEWFAMILY => {
                    "CTRL_CMD_NEWFAMILY".to_string()
                }
                Some(f) => f
                    .command(cmd)
                    .map_or_else(|| format!("command {cmd}"), |c| c.name.to_string()),
                None => format!("command {cmd}"),
            };
            let fam = family.map_or_else(|| format!("family {k}"), |f| f.name.to_string());
            let role = if flags & NLM_F_REQUEST != 0 {
                "request"
            } else {
                "reply"
            };
            let attrs = attr_summary(family.map(|f| f.attrs), &body[GENL_HDRLEN..]);
            let sep = if attrs.is_empty() { "" } else { ": " };
            format!("{fam} {cmd_name} v{} {role} {head}{sep}{attrs}", body[1])
        }
        k => format!("{} {head}, {} payload bytes", type_name(k), body.len()),
    }
}

/// The attributes of `bytes` on one line, nested ones in braces.
fn attr_summary(policy: Option<&'static [AttrSpec]>, bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    for item in raw_attrs(bytes) {
        let a = match item {
            Ok(a) => a,
            Err(RawAttrError::Truncated { rest, .. }) => {
                parts.push(format!("{} stray bytes", rest.len()));
                break;
            }
            Err(RawAttrError::BadLength { len, raw_type, .. }) => {
                let kind = raw_type & NLA_TYPE_MASK;
                parts.push(format!("attribute {kind} with bad nla_len {len}"));
                break;
            }
        };
        let (kind, value) = (a.kind(), a.value);
        let spec = policy.and_then(|p| p.iter().find(|s| s.id == kind));
        let text = match spec {
            None => format!("attribute{kind}={}", hex_short(value)),
            Some(s) => {
                let v = match s.kind {
                    AttrKind::Nested(p) => format!("{{{}}}", attr_summary(Some(p), value)),
                    AttrKind::NestedIndexed(p) => {
                        let entries = entry_summary(p, value);
                        format!("[{entries}]")
                    }
                    k => format!("={}", leaf_summary(k, value)),
                };
                format!("{}{v}", s.name)
            }
        };
        parts.push(text);
    }
    parts.join(" ")
}

fn entry_summary(policy: &'static [AttrSpec], bytes: &[u8]) -> String {
    let mut parts = Vec::new();
    for item in raw_attrs(bytes) {
        match item {
            Ok(e) => parts.push(format!("{{{}}}", attr_summary(Some(policy), e.value))),
            // Trailing bytes too short for a header are not reported.
            Err(RawAttrError::Truncated { .. }) => break,
            Err(RawAttrError::BadLength { .. }) => {
                parts.push("bad entry".to_string());
                break;
            }
        }
    }
    parts.join(" ")
}

fn leaf_summary(kind: AttrKind, v: &[u8]) -> String {
    match (kind, v.len()) {
        (AttrKind::U8, 1) => v[0].to_string(),
        (AttrKind::U16, 2) => ne_u16(v).to_string(),
        (AttrKind::U32, 4) => ne_u32(v).to_string(),
        (AttrKind::U64, 8) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            u64::from_ne_bytes(b).to_string()
        }
        (AttrKind::Str { .. }, n) if n > 0 && v[n - 1] == 0 => {
            format!("{:?}", String::from_utf8_lossy(&v[..n - 1]))
        }
        (AttrKind::Flag, 0) => "true".to_string(),
        _ => hex_short(v),
    }
}

/// Bytes as `0x` hex, the whole value: transcripts are read to compare.
fn hex_short(v: &[u8]) -> String {
    if v.is_empty() {
        return "(empty)".to_string();
    }
    let mut s = String::from("0x");
    for b in v {
        let _ = write!(s, "{b:02x}");
    }
    s
}
