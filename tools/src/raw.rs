//! `overlayctl raw`: one generic-netlink request of any family and command,
//! built from names and typed values, and every answer to it printed as
//! the daemon sent it. For trying a command before the CLI has a verb for
//! it, for recording error cases into transcripts, and for debugging.

use crate::cli::RawArgs;
use crate::error::Error;
use crate::value::parse_u64;
use nlproto::annotate::{annotate, summary};
use nlproto::attr::align4;
use nlproto::client::Client;
use nlproto::msg::{NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use nlproto::server::split_datagram;
use nlproto::spec::{self, AttrKind, FamilySpec};
use std::fmt::Write;

/// The flag a nested attribute's type carries on the wire.
const NLA_F_NESTED: u16 = 0x8000;

/// The family addressed: a known one, or a bare number.
struct Target {
    id: u16,
    spec: Option<&'static FamilySpec>,
}

fn family(client: &mut Client, text: &str) -> Result<Target, Error> {
    if let Ok(id) = text.parse::<u16>() {
        return Ok(Target {
            id,
            spec: spec::family_by_id(id),
        });
    }
    let Some(f) = spec::family_by_name(text) else {
        return Err(Error::local(format!(
            "unknown family {text:?}: give one of {} or a family id number",
            spec::family_names()
        )));
    };
    let id = client
        .family_id(f.name)
        .map_err(Error::daemon(format!("resolve family {}", f.name)))?;
    Ok(Target { id, spec: Some(f) })
}

fn command(target: &Target, text: &str) -> Result<u8, Error> {
    if let Ok(n) = text.parse::<u8>() {
        return Ok(n);
    }
    match target.spec {
        Some(f) => {
            // nlctrl's command is known to people as GETFAMILY too.
            let name = text.strip_prefix("CTRL_CMD_").unwrap_or(text);
            f.commands
                .iter()
                .find(|c| c.name.strip_prefix("CTRL_CMD_").unwrap_or(c.name) == name)
                .map(|c| c.id)
                .ok_or_else(|| {
                    let names: Vec<&str> = f.commands.iter().map(|c| c.name).collect();
                    Error::local(format!(
                        "family {} has no command {text:?}; its commands: {} (or give a number)",
                        f.name,
                        names.join(", ")
                    ))
                })
        }
        None => Err(Error::local(format!(
            "family {} is not known here: give the command as a number",
            target.id
        ))),
    }
}

fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One `ATTR=VALUE` as a whole attribute (header, value, padding).
fn attribute(target: &Target, assignment: &str) -> Result<Vec<u8>, Error> {
    let bad = |why: String| Error::local(format!("attribute {assignment:?}: {why}"));
    let (name, value) = assignment
        .split_once('=')
        .ok_or_else(|| bad("write it as NAME=VALUE".into()))?;
    let policy = target.spec.map(|f| f.attrs).unwrap_or(&[]);
    let (kind, attr_kind) = match name.parse::<u16>() {
        Ok(n) => (n, policy.iter().find(|a| a.id == n).map(|a| a.kind)),
        Err(_) => {
            let a = policy.iter().find(|a| a.name == name).ok_or_else(|| {
                let names: Vec<&str> = policy.iter().map(|a| a.name).collect();
                bad(format!(
                    "no top-level attribute {name} here; known: {} (or give a number)",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?;
            (a.id, Some(a.kind))
        }
    };
    let number = |bits: u32| -> Result<u64, Error> {
        let v = parse_u64(value).map_err(|e| bad(e.to_string()))?;
        if bits < 64 && v >> bits != 0 {
            return Err(bad(format!("{v} does not fit in {bits} bits")));
        }
        Ok(v)
    };
    let mut flags = 0;
    let bytes = if let Some(hex) = value.strip_prefix("hex:") {
        if attr_kind.is_some_and(AttrKind::is_nested) {
            flags = NLA_F_NESTED;
        }
        parse_hex(hex).ok_or_else(|| bad("hex: takes pairs of hex digits".into()))?
    } else {
        match attr_kind {
            Some(AttrKind::U8) => vec![number(8)? as u8],
            Some(AttrKind::U16) => (number(16)? as u16).to_ne_bytes().to_vec(),
            Some(AttrKind::U32) => (number(32)? as u32).to_ne_bytes().to_vec(),
            Some(AttrKind::U64) => number(64)?.to_ne_bytes().to_vec(),
            Some(AttrKind::Str { .. }) => {
                let mut b = value.as_bytes().to_vec();
                b.push(0);
                b
            }
            Some(AttrKind::Flag) if value.is_empty() => Vec::new(),
            Some(AttrKind::Flag) => return Err(bad("a flag takes no value: NAME=".into())),
            Some(k) => {
                return Err(bad(format!(
                    "a {} value is given in hex: {name}=hex:0a0b...",
                    k.type_name()
                )))
            }
            None => {
                return Err(bad(format!(
                    "attribute {kind} is not in the family's policy: give its value as hex:..."
                )))
            }
        }
    };
    let len = u16::try_from(4 + bytes.len())
        .ok()
        .filter(|l| *l <= u16::MAX - 3)
        .ok_or_else(|| bad("the value is too long for a netlink attribute".into()))?;
    let mut out = Vec::with_capacity(align4(usize::from(len)));
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&(kind | flags).to_ne_bytes());
    out.extend_from_slice(&bytes);
    out.resize(align4(out.len()), 0);
    Ok(out)
}

/// Sends the request `args` describes on `client` and returns the text to
/// print: one line per message received ([`summary`]), or with `verbose`
/// every byte annotated. A negative error or dump status is returned as
/// an error after the text, so that the command fails.
pub fn run(client: &mut Client, args: &RawArgs, verbose: bool) -> (String, Result<(), Error>) {
    let mut out = String::new();
    let result = (|| {
        let target = family(client, &args.family)?;
        let cmd = command(&target, &args.command)?;
        let version = match args.genl_version {
            Some(v) => v,
            None => target.spec.map_or(1, |f| f.version),
        };
        let mut attrs = Vec::new();
        for a in &args.attrs {
            attrs.extend(attribute(&target, a)?);
        }
        let mut flags = NLM_F_REQUEST;
        if !args.no_ack {
            flags |= NLM_F_ACK;
        }
        if args.dump {
            flags |= NLM_F_DUMP;
        }
        let seq = client.next_seq();
        let len = u32::try_from(20 + attrs.len()).expect("attributes are bounded");
        let mut msg = Vec::with_capacity(len as usize);
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&target.id.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&client.pid().to_ne_bytes());
        msg.extend_from_slice(&[cmd, version, 0, 0]);
        msg.extend_from_slice(&attrs);
        client
            .send_raw(&msg)
            .map_err(Error::daemon("send the request"))?;
        loop {
            let datagram = client
                .recv_raw()
                .map_err(Error::daemon("wait for the answer"))?;
            for item in split_datagram(&datagram) {
                let m = item.map_err(|e| {
                    Error::local(format!("bad datagram from the daemon: {}", e.message))
                })?;
                let m = m.bytes;
                if u32::from_ne_bytes([m[8], m[9], m[10], m[11]]) != seq {
                    continue;
                }
                if verbose {
                    let _ = writeln!(out, "{}", annotate(m));
                } else {
                    let _ = writeln!(out, "{}", summary(m));
                }
                let kind = u16::from_ne_bytes([m[4], m[5]]);
                let code = m
                    .get(16..20)
                    .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                let last = match kind {
                    NLMSG_ERROR | NLMSG_DONE => true,
                    // Without an ack, a transaction ends with its reply.
                    _ => args.no_ack && !args.dump,
                };
                if last {
                    if code < 0 {
                        return Err(Error::local(format!(
                            "the daemon answered {} ({})",
                            code,
                            nlproto::errno::label(code.wrapping_neg())
                        )));
                    }
                    return Ok(());
                }
            }
        }
    })();
    (out, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlproto::spec::overlay as ov;

    fn overlay() -> Target {
        Target {
            id: ov::ID,
            spec: spec::family_by_id(ov::ID),
        }
    }

    #[test]
    fn typed_values() {
        let t = overlay();
        assert_eq!(
            attribute(&t, "NAME=ov0").unwrap(),
            [8, 0, 2, 0, b'o', b'v', b'0', 0]
        );
        let mut v = vec![12, 0, 5, 0];
        v.extend_from_slice(&42u64.to_ne_bytes());
        assert_eq!(attribute(&t, "VNETID=42").unwrap(), v);
        assert_eq!(
            attribute(&t, "5=hex:0102").unwrap(),
            [6, 0, 5, 0, 1, 2, 0, 0]
        );
        // Nested values in hex carry NLA_F_NESTED.
        assert_eq!(attribute(&t, "PROPS=hex:").unwrap(), [4, 0, 18, 0x80]);
    }

    #[test]
    fn bad_attributes_say_why() {
        let t = overlay();
        let e = |a: &str| attribute(&t, a).unwrap_err().to_string();
        assert!(e("NAME").contains("NAME=VALUE"));
        assert!(e("NOPE=1").contains("no top-level attribute NOPE"));
        assert!(e("LINKID=4294967296").contains("does not fit in 32 bits"));
        assert!(e("PROP_VALUE=12").contains("hex:"));
        assert!(e("99=1").contains("not in the family's policy"));
        assert!(e("NAME=hex:123").contains("pairs of hex digits"));
    }

    #[test]
    fn commands_by_name_or_number() {
        let t = overlay();
        assert_eq!(command(&t, "CREATE").unwrap(), ov::CMD_CREATE);
        assert_eq!(command(&t, "200").unwrap(), 200);
        assert!(command(&t, "FROB")
            .unwrap_err()
            .to_string()
            .contains("CREATE"));
        let ctrl = Target {
            id: 16,
            spec: spec::family_by_id(16),
        };
        assert_eq!(command(&ctrl, "GETFAMILY").unwrap(), 3);
        let unknown = Target { id: 77, spec: None };
        assert!(command(&unknown, "X")
            .unwrap_err()
            .to_string()
            .contains("as a number"));
    }
}
