//! `overlayctl monitor`: prints the daemon's notifications as they arrive.
//!
//! The monitor joins the overlay family's `config` and `status` groups and
//! the overlay_target family's `target` group, and prints one line per
//! notification (one JSON object per line with `-j`). When the daemon
//! reports that it dropped notifications (`ENOBUFS`), the monitor says so
//! and prints every device as a `LIST` dump shows it now, then goes on:
//! after that the devices are whole again. Cache entries are not listed
//! again (there can be many); `overlayctl show -t` shows them.

use crate::error::Error;
use crate::model::{Device, NONE};
use crate::table::Object;
use crate::target::Entry;
use crate::value::{format_value, PropType};
use nlproto::client::{Client, Error as ClientError, Notification};
use nlproto::spec::{self, overlay as ov, target as tg};
use nlproto::{AttrsExt, GenlMsg};
use serde_json::{json, Value};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::time::Duration;

/// The groups the monitor joins.
pub const GROUPS: [(&str, &str); 3] = [
    (ov::NAME, ov::GROUP_CONFIG_NAME),
    (ov::NAME, ov::GROUP_STATUS_NAME),
    (spec::target::NAME, spec::target::GROUP_TARGET_NAME),
];

/// How many times a resynchronising dump is repeated while changes keep
/// interrupting it.
const RESYNC_ATTEMPTS: usize = 5;

/// Where the monitor's notifications come from. A trait so that the loop
/// can be tested against scripted input.
pub trait EventSource {
    /// The next notification; [`ClientError::Timeout`] when none came for
    /// a while (the monitor just waits again).
    fn next(&mut self) -> Result<Notification, ClientError>;
    /// Every device now (a `LIST` dump), and whether the dump was
    /// interrupted by a change.
    fn devices(&mut self) -> Result<(Vec<GenlMsg>, bool), ClientError>;
}

impl EventSource for Client {
    fn next(&mut self) -> Result<Notification, ClientError> {
        self.next_notification()
    }

    fn devices(&mut self) -> Result<(Vec<GenlMsg>, bool), ClientError> {
        let d = self.dump_checked(ov::NAME, ov::CMD_LIST, vec![])?;
        Ok((d.items, d.interrupted))
    }
}

/// Connects to the daemon at `path` and joins [`GROUPS`].
pub fn subscribe(path: &Path) -> Result<Client, Error> {
    let mut c = Client::connect(path).map_err(Error::daemon("connect"))?;
    for (family, g) in GROUPS {
        let id = c
            .mcast_group_id(family, g)
            .map_err(Error::daemon(format!("look up multicast group {g}")))?;
        c.join_group(id)
            .map_err(Error::daemon(format!("join multicast group {g}")))?;
    }
    // Waits are long: a quiet daemon is normal; the loop just waits again.
    c.set_timeout(Duration::from_secs(3600));
    Ok(c)
}

/// Prints notifications from `src` to `out` until the source fails (the
/// daemon went away) or `out` is closed (`| head`, which ends it quietly).
pub fn run(src: &mut dyn EventSource, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    loop {
        let lines = match src.next() {
            Ok(Notification::Event(m)) => vec![event_line(&m, json)],
            Ok(Notification::Overrun) => resync(src, json)?,
            Err(ClientError::Timeout) => continue,
            Err(e) => return Err(Error::daemon("wait for notifications")(e)),
        };
        for line in lines {
            let written = writeln!(out, "{line}").and_then(|()| out.flush());
            match written {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => {
                    return Err(Error::local(format!(
                        "write output: {}",
                        crate::error::io_text(&e)
                    )))
                }
            }
        }
    }
}

/// The lines printed after an overrun: the report, then every device.
fn resync(src: &mut dyn EventSource, json: bool) -> Result<Vec<String>, Error> {
    let mut lines = vec![if json {
        json!({"event": "lost"}).to_string()
    } else {
        "lost: the daemon dropped notifications this monitor did not read in time; current devices follow".to_string()
    }];
    let mut attempt = 0;
    let devices = loop {
        attempt += 1;
        let (devices, interrupted) = src
            .devices()
            .map_err(Error::daemon("list devices after lost notifications"))?;
        if !interrupted || attempt == RESYNC_ATTEMPTS {
            break devices;
        }
    };
    lines.extend(devices.iter().map(|m| {
        let d = Device::from_attrs(&m.attrs);
        let linkid = m.attrs.get_u32(ov::ATTR_LINKID);
        if json {
            let mut o = with_link("device", &d.name, linkid);
            o.extend(device_object(&d));
            Value::Object(o).to_string()
        } else {
            format!("device {} {}", d.name, device_text(linkid, &d))
        }
    }));
    Ok(lines)
}

/// The members every event line starts with: `event`, `link` and, when
/// known, `linkid`.
fn with_link(event: &str, name: &str, linkid: Option<u32>) -> Object {
    let mut o = Object::new();
    o.insert("event".into(), event.into());
    o.insert("link".into(), name.into());
    if let Some(id) = linkid {
        o.insert("linkid".into(), id.into());
    }
    o
}

/// A string-valued object, members in the order given.
fn strings<const N: usize>(members: [(&str, String); N]) -> Object {
    members
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect()
}

fn device_object(d: &Device) -> Object {
    let mut o = strings([("encap", d.encap.clone()), ("search", d.search.clone())]);
    if let Some(v) = d.vnetid {
        o.insert("vnetid".into(), v.into());
    }
    o.extend(strings([
        ("state", d.state_text()),
        ("status", d.status_text()),
        ("status_msg", d.status_msg.clone()),
    ]));
    o
}

fn device_text(linkid: Option<u32>, d: &Device) -> String {
    let mut text = format!(
        "linkid={} encap={} search={} vnetid={} state={} status={}",
        linkid.map_or_else(|| NONE.to_string(), |v| v.to_string()),
        d.encap,
        d.search,
        d.vnetid_text(),
        d.state_text(),
        d.status_text()
    );
    if !d.status_msg.is_empty() {
        text.push_str(&format!(" ({})", d.status_msg));
    }
    text
}

/// The kind, text and JSON members of an overlay_target notification:
/// `cache-set MAC DESTINATION`, `cache-remove MAC`, `cache-flush`.
fn target_event(m: &GenlMsg) -> (String, String, Object) {
    let e = Entry::from_attrs(&m.attrs);
    match m.cmd {
        tg::CMD_CACHE_SET => (
            "cache-set".into(),
            format!("{} {}", e.target_text(), e.destination_text()),
            strings([
                ("target", e.target_text()),
                ("destination", e.destination_text()),
            ]),
        ),
        tg::CMD_CACHE_REMOVE => (
            "cache-remove".into(),
            e.target_text(),
            strings([("target", e.target_text())]),
        ),
        tg::CMD_CACHE_FLUSH => ("cache-flush".into(), String::new(), Object::new()),
        other => {
            let cname = tg::FAMILY
                .command_name(other)
                .map_or_else(|| other.to_string(), str::to_string);
            (
                "event".into(),
                format!("family={} command={cname}", tg::NAME),
                strings([("family", tg::NAME.to_string()), ("command", cname)]),
            )
        }
    }
}

/// One notification as one line: `create ov0 linkid=1 ...`, `setprop ov0
/// mtu=1500`, `activate ov0`, `deactivate ov0`, `delete ov0`, `degraded
/// ov0: why`, `restored ov0`, `cache-set ov0 02:00:00:00:00:02
/// 10.9.0.2:4789` (or `drop`), `cache-remove ov0 02:00:00:00:00:02`,
/// `cache-flush ov0`; with `json`, an object with `event`, `link`, `linkid`
/// and the details (`target` and `destination` for the cache).
pub fn event_line(m: &GenlMsg, json: bool) -> String {
    let a = &m.attrs;
    let name = a.get_str(ov::ATTR_NAME).unwrap_or(NONE).to_string();
    let linkid = a.get_u32(ov::ATTR_LINKID);
    let (kind, text, obj): (String, String, Object) = if m.family == tg::ID {
        target_event(m)
    } else if m.family != ov::ID {
        // A family this monitor does not know the events of yet: name it.
        let family = spec::family_by_id(m.family);
        let fname = family.map_or_else(|| m.family.to_string(), |f| f.name.to_string());
        let cname = family
            .and_then(|f| f.command_name(m.cmd))
            .map_or_else(|| m.cmd.to_string(), str::to_string);
        let text = format!("family={fname} command={cname}");
        let obj = strings([("family", fname), ("command", cname)]);
        ("event".into(), text, obj)
    } else {
        match m.cmd {
            ov::CMD_CREATE => {
                let d = Device::from_attrs(a);
                ("create".into(), device_text(linkid, &d), device_object(&d))
            }
            ov::CMD_SETPROP => {
                let prop = a.get_str(ov::ATTR_PROP_NAME).unwrap_or(NONE).to_string();
                let ty = PropType::from_wire(a.get_u32(ov::ATTR_PROP_TYPE).unwrap_or(0));
                let value = a
                    .get_bytes(ov::ATTR_PROP_VALUE)
                    .map_or_else(|| NONE.to_string(), |v| format_value(ty, v));
                (
                    "setprop".into(),
                    format!("{prop}={value}"),
                    strings([("property", prop), ("value", value)]),
                )
            }
            ov::CMD_ACTIVATE => ("activate".into(), String::new(), Object::new()),
            ov::CMD_DEACTIVATED => ("deactivate".into(), String::new(), Object::new()),
            ov::CMD_DELETE => ("delete".into(), String::new(), Object::new()),
            ov::CMD_STATUS_CHANGED => {
                let msg = a.get_str(ov::ATTR_STATUS_MSG).unwrap_or("").to_string();
                if a.get_u32(ov::ATTR_STATUS) == Some(ov::STATUS_OK) {
                    ("restored".into(), String::new(), Object::new())
                } else {
                    (
                        "degraded".into(),
                        msg.clone(),
                        strings([("status_msg", msg)]),
                    )
                }
            }
            other => {
                let cname = ov::FAMILY
                    .command_name(other)
                    .map_or_else(|| other.to_string(), str::to_string);
                (
                    "event".into(),
                    format!("command={cname}"),
                    strings([("command", cname)]),
                )
            }
        }
    };
    if json {
        let mut o = with_link(&kind, &name, linkid);
        o.extend(obj);
        Value::Object(o).to_string()
    } else if kind == "degraded" {
        format!("degraded {name}: {text}")
    } else if text.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {name} {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nlproto::server::notification;
    use nlproto::Attr;
    use std::collections::VecDeque;

    fn ids(linkid: u32, name: &str) -> Vec<Attr> {
        vec![
            Attr::u32(ov::ATTR_LINKID, linkid),
            Attr::str(ov::ATTR_NAME, name),
        ]
    }

    fn create_msg() -> GenlMsg {
        let mut a = ids(1, "ov0");
        a.extend([
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 42),
            Attr::u32(ov::ATTR_STATE, ov::STATE_CREATED),
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_OK),
            Attr::str(ov::ATTR_STATUS_MSG, ""),
        ]);
        notification(&ov::FAMILY, ov::CMD_CREATE, a)
    }

    fn setprop_msg() -> GenlMsg {
        let mut a = ids(1, "ov0");
        a.extend([
            Attr::str(ov::ATTR_PROP_NAME, "vxlan/listen_ip"),
            Attr::u32(ov::ATTR_PROP_TYPE, ov::PROP_TYPE_IP),
            Attr::bytes(
                ov::ATTR_PROP_VALUE,
                std::net::Ipv4Addr::new(10, 0, 0, 1)
                    .to_ipv6_mapped()
                    .octets()
                    .to_vec(),
            ),
        ]);
        notification(&ov::FAMILY, ov::CMD_SETPROP, a)
    }

    fn status_msg(status: u32, why: &str) -> GenlMsg {
        let mut a = ids(1, "ov0");
        a.extend([
            Attr::u32(ov::ATTR_STATUS, status),
            Attr::str(ov::ATTR_STATUS_MSG, why),
        ]);
        notification(&ov::FAMILY, ov::CMD_STATUS_CHANGED, a)
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            event_line(&create_msg(), false),
            "create ov0 linkid=1 encap=vxlan search=direct vnetid=42 state=created status=ok"
        );
        assert_eq!(
            event_line(&setprop_msg(), false),
            "setprop ov0 vxlan/listen_ip=10.0.0.1"
        );
        let mut a = ids(1, "ov0");
        a.push(Attr::u32(ov::ATTR_STATE, ov::STATE_ACTIVE));
        let m = notification(&ov::FAMILY, ov::CMD_ACTIVATE, a);
        assert_eq!(event_line(&m, false), "activate ov0");
        let m = notification(&ov::FAMILY, ov::CMD_DEACTIVATED, ids(1, "ov0"));
        assert_eq!(event_line(&m, false), "deactivate ov0");
        let m = notification(&ov::FAMILY, ov::CMD_DELETE, ids(1, "ov0"));
        assert_eq!(event_line(&m, false), "delete ov0");
        assert_eq!(
            event_line(&status_msg(ov::STATUS_DEGRADED, "plugin panicked"), false),
            "degraded ov0: plugin panicked"
        );
        assert_eq!(
            event_line(&status_msg(ov::STATUS_OK, ""), false),
            "restored ov0"
        );
        // A family this client does not know is named by number, not
        // dropped.
        let m = GenlMsg {
            family: 99,
            ..notification(&ov::FAMILY, 2, vec![])
        };
        assert_eq!(event_line(&m, false), "event -- family=99 command=2");
    }

    fn target_msg(cmd: u8, extra: Vec<Attr>) -> GenlMsg {
        let mut a = vec![
            Attr::u32(tg::ATTR_LINKID, 3),
            Attr::str(tg::ATTR_NAME, "ov1"),
        ];
        a.extend(extra);
        notification(&tg::FAMILY, cmd, a)
    }

    fn mac_attr(last: u8) -> Attr {
        Attr::bytes(tg::ATTR_MAC, vec![2, 0, 0, 0, 0, last])
    }

    fn cache_set_msg(dest: &str) -> GenlMsg {
        let mut a = vec![mac_attr(2)];
        match crate::target::parse_answer(dest).unwrap() {
            crate::target::Answer::Drop => a.push(Attr::u32(tg::ATTR_FLAGS, tg::ENTRY_DROP)),
            crate::target::Answer::To(d) => {
                a.push(Attr::u32(tg::ATTR_FLAGS, 0));
                a.extend(d.attrs());
            }
        }
        target_msg(tg::CMD_CACHE_SET, a)
    }

    #[test]
    fn target_text_lines() {
        assert_eq!(
            event_line(&cache_set_msg("10.9.0.2:4789"), false),
            "cache-set ov1 02:00:00:00:00:02 10.9.0.2:4789"
        );
        assert_eq!(
            event_line(&cache_set_msg("[2001:db8::2]:6081"), false),
            "cache-set ov1 02:00:00:00:00:02 [2001:db8::2]:6081"
        );
        assert_eq!(
            event_line(&cache_set_msg("drop"), false),
            "cache-set ov1 02:00:00:00:00:02 drop"
        );
        let m = target_msg(tg::CMD_CACHE_REMOVE, vec![mac_attr(0x0a)]);
        assert_eq!(event_line(&m, false), "cache-remove ov1 02:00:00:00:00:0a");
        let m = target_msg(tg::CMD_CACHE_FLUSH, vec![]);
        assert_eq!(event_line(&m, false), "cache-flush ov1");
        // A target command that is no notification today is named.
        let m = target_msg(tg::CMD_DEGRADE, vec![]);
        assert_eq!(
            event_line(&m, false),
            "event ov1 family=overlay_target command=DEGRADE"
        );
        // What is missing shows as --.
        let m = notification(&tg::FAMILY, tg::CMD_CACHE_REMOVE, vec![]);
        assert_eq!(event_line(&m, false), "cache-remove -- --");
    }

    #[test]
    fn target_json_lines() {
        assert_eq!(
            event_line(&cache_set_msg("10.9.0.2:4789"), true),
            r#"{"event":"cache-set","link":"ov1","linkid":3,"target":"02:00:00:00:00:02","destination":"10.9.0.2:4789"}"#
        );
        assert_eq!(
            event_line(&cache_set_msg("drop"), true),
            r#"{"event":"cache-set","link":"ov1","linkid":3,"target":"02:00:00:00:00:02","destination":"drop"}"#
        );
        let m = target_msg(tg::CMD_CACHE_REMOVE, vec![mac_attr(2)]);
        assert_eq!(
            event_line(&m, true),
            r#"{"event":"cache-remove","link":"ov1","linkid":3,"target":"02:00:00:00:00:02"}"#
        );
        let m = target_msg(tg::CMD_CACHE_FLUSH, vec![]);
        assert_eq!(
            event_line(&m, true),
            r#"{"event":"cache-flush","link":"ov1","linkid":3}"#
        );
        let m = target_msg(tg::CMD_RESTORE, vec![]);
        assert_eq!(
            event_line(&m, true),
            r#"{"event":"event","link":"ov1","linkid":3,"family":"overlay_target","command":"RESTORE"}"#
        );
    }

    #[test]
    fn json_lines() {
        let v: serde_json::Value = serde_json::from_str(&event_line(&create_msg(), true)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "event": "create", "link": "ov0", "linkid": 1, "encap": "vxlan",
                "search": "direct", "vnetid": 42, "state": "created", "status": "ok",
                "status_msg": ""
            })
        );
        let v: serde_json::Value = serde_json::from_str(&event_line(&setprop_msg(), true)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "event": "setprop", "link": "ov0", "linkid": 1,
                "property": "vxlan/listen_ip", "value": "10.0.0.1"
            })
        );
        let line = event_line(&status_msg(ov::STATUS_DEGRADED, "x"), true);
        assert_eq!(
            line,
            r#"{"event":"degraded","link":"ov0","linkid":1,"status_msg":"x"}"#
        );
    }

    struct Script {
        items: VecDeque<Result<Notification, ClientError>>,
        dumps: VecDeque<(Vec<GenlMsg>, bool)>,
    }

    impl EventSource for Script {
        fn next(&mut self) -> Result<Notification, ClientError> {
            self.items
                .pop_front()
                .unwrap_or(Err(ClientError::Protocol("connection closed".into())))
        }

        fn devices(&mut self) -> Result<(Vec<GenlMsg>, bool), ClientError> {
            Ok(self.dumps.pop_front().expect("a scripted dump"))
        }
    }

    #[test]
    fn overrun_resynchronises_and_goes_on() {
        let listed = GenlMsg {
            cmd: ov::CMD_LIST,
            ..create_msg()
        };
        let mut src = Script {
            items: VecDeque::from([
                Ok(Notification::Event(create_msg())),
                Err(ClientError::Timeout),
                Ok(Notification::Overrun),
                Ok(Notification::Event(setprop_msg())),
                Ok(Notification::Event(cache_set_msg("drop"))),
            ]),
            // The first dump was interrupted: the monitor dumps again.
            dumps: VecDeque::from([(vec![], true), (vec![listed], false)]),
        };
        let mut out = Vec::new();
        let e = run(&mut src, false, &mut out).unwrap_err();
        assert!(e.to_string().contains("connection closed"), "{e}");
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[0].starts_with("create ov0"));
        assert!(lines[1].starts_with("lost: "));
        assert_eq!(
            lines[2],
            "device ov0 linkid=1 encap=vxlan search=direct vnetid=42 state=created status=ok"
        );
        assert_eq!(lines[3], "setprop ov0 vxlan/listen_ip=10.0.0.1");
        assert_eq!(lines[4], "cache-set ov1 02:00:00:00:00:02 drop");
        assert!(src.dumps.is_empty());
    }
}
