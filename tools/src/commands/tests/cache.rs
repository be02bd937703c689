//! The target cache commands against the in-memory daemon, whose
//! overlay_target side follows the family's rules: ENXIO for a device that
//! is not active, ENOTSUP for setting a point-mode device's cache, EINVAL
//! for a destination with a part missing or extra, ENOENT for a MAC without
//! an answer.

use super::*;
use crate::target::{Answer, Destination, Mac};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

/// The overlay_target side of one fake device.
pub(super) struct Target {
    /// `Some` in point mode: the one destination.
    point: Option<Destination>,
    /// `DEST_*` bits.
    needs: u32,
    entries: BTreeMap<Mac, Answer>,
}

const IP_PORT: u32 = ov::DEST_IP | ov::DEST_PORT;

impl Default for Target {
    fn default() -> Target {
        Target {
            point: None,
            needs: IP_PORT,
            entries: BTreeMap::new(),
        }
    }
}

fn mac(last: u8) -> Mac {
    Mac([2, 0, 0, 0, 0, last])
}

fn ip4(text: &str) -> Option<Ipv6Addr> {
    Some(text.parse::<Ipv4Addr>().unwrap().to_ipv6_mapped())
}

fn to(ip: &str, port: u16) -> Answer {
    Answer::To(Destination {
        mac: None,
        ip: ip4(ip),
        port: Some(port),
    })
}

/// The attributes of an entry as the daemon sends them.
fn entry_attrs(link: &str, mac: Mac, answer: &Answer) -> Vec<Attr> {
    let mut a = vec![
        Attr::u32(tg::ATTR_LINKID, 1),
        Attr::str(tg::ATTR_NAME, link),
        Attr::bytes(tg::ATTR_MAC, mac.0.to_vec()),
    ];
    match answer {
        Answer::Drop => a.push(Attr::u32(tg::ATTR_FLAGS, tg::ENTRY_DROP)),
        Answer::To(d) => {
            a.push(Attr::u32(tg::ATTR_FLAGS, 0));
            a.extend(d.attrs());
        }
    }
    a
}

impl Fake {
    /// Adds an active device with this target side.
    fn with_target(&mut self, name: &str, target: Target) {
        self.devices.push(Dev {
            name: name.into(),
            vnetid: 42,
            active: true,
            values: HashMap::new(),
            counters: Vec::new(),
        });
        self.targets.insert(name.into(), target);
    }

    /// The named device, which must be active, and its target side.
    fn active_target(&mut self, attrs: &[Attr]) -> Result<(String, &mut Target), ClientError> {
        let name = attrs
            .get_str(tg::ATTR_NAME)
            .expect("requests name the device")
            .to_string();
        let d = self.dev(attrs)?;
        if !d.active {
            return Err(fail(libc::ENXIO, &format!("{name} is not active")));
        }
        Ok((name.clone(), self.targets.entry(name).or_default()))
    }

    fn target_cmds(&self) -> Vec<(Op, u8)> {
        self.target_log.iter().map(|(o, c, _)| (*o, *c)).collect()
    }

    pub(super) fn target_transact(
        &mut self,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        self.target_log.push((Op::Transact, cmd, attrs.clone()));
        match cmd {
            tg::CMD_INFO => {
                let d = self.dev(&attrs)?;
                let (name, active) = (d.name.clone(), d.active);
                let t = self.targets.entry(name.clone()).or_default();
                Ok(vec![
                    Attr::u32(tg::ATTR_LINKID, 1),
                    Attr::str(tg::ATTR_NAME, name),
                    Attr::u32(tg::ATTR_NEEDS, t.needs),
                    Attr::u32(
                        tg::ATTR_MODE,
                        if t.point.is_some() {
                            ov::MODE_POINT
                        } else {
                            ov::MODE_DYNAMIC
                        },
                    ),
                    Attr::u64(tg::ATTR_VNETID, 42),
                    Attr::u32(tg::ATTR_FLAGS, if active { tg::INFO_ACTIVE } else { 0 }),
                    Attr::u32(tg::ATTR_PENDING, 0),
                ])
            }
            tg::CMD_CACHE_GET => {
                let key = Mac::from_slice(attrs.get_bytes(tg::ATTR_MAC).unwrap()).unwrap();
                let (name, t) = self.active_target(&attrs)?;
                let answer = match t.point {
                    Some(d) => Answer::To(d),
                    None => *t
                        .entries
                        .get(&key)
                        .ok_or_else(|| fail(libc::ENOENT, &format!("no entry for {key}")))?,
                };
                Ok(entry_attrs(&name, key, &answer))
            }
            _ => panic!("unexpected target transaction {cmd}"),
        }
    }

    pub(super) fn target_write(&mut self, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.target_log.push((Op::Write, cmd, attrs.clone()));
        let (_, t) = self.active_target(&attrs)?;
        let key = attrs.get_bytes(tg::ATTR_MAC).and_then(Mac::from_slice);
        match cmd {
            tg::CMD_CACHE_SET => {
                if t.point.is_some() {
                    return Err(fail(libc::ENOTSUP, "a point-mode device has no cache"));
                }
                let dest = Destination::from_attrs(&attrs);
                let answer = if attrs.get_u32(tg::ATTR_FLAGS) == Some(tg::ENTRY_DROP) {
                    if dest.kinds() != 0 {
                        return Err(fail(libc::EINVAL, "a drop entry has no destination"));
                    }
                    Answer::Drop
                } else {
                    if dest.kinds() != t.needs {
                        return Err(fail(libc::EINVAL, "destination parts do not match NEEDS"));
                    }
                    Answer::To(dest)
                };
                t.entries.insert(key.unwrap(), answer);
            }
            tg::CMD_CACHE_REMOVE => {
                t.entries.remove(&key.unwrap());
            }
            tg::CMD_CACHE_FLUSH => t.entries.clear(),
            _ => panic!("unexpected target write {cmd}"),
        }
        Ok(())
    }

    /// `CACHE_LIST`: the devices in creation order (not name order), each
    /// one's entries in MAC order.
    pub(super) fn target_dump(
        &mut self,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Vec<Attr>>, ClientError> {
        self.target_log.push((Op::Dump, cmd, attrs.clone()));
        assert_eq!(cmd, tg::CMD_CACHE_LIST);
        let names: Vec<String> = if attrs.has(tg::ATTR_NAME) {
            vec![self.active_target(&attrs)?.0]
        } else {
            self.devices
                .iter()
                .filter(|d| d.active)
                .map(|d| d.name.clone())
                .collect()
        };
        let mut out = Vec::new();
        for name in names {
            let t = self.targets.entry(name.clone()).or_default();
            match t.point {
                Some(d) => out.push(entry_attrs(&name, Mac::ZERO, &Answer::To(d))),
                None => out.extend(t.entries.iter().map(|(m, a)| entry_attrs(&name, *m, a))),
            }
        }
        Ok(out)
    }
}

/// ov1 (dynamic: a drop entry, an IPv4 and an IPv6 destination), created
/// before pt0 (point), and ov9, not active.
fn cache_fake() -> Fake {
    let mut f = Fake::default();
    let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    f.with_target(
        "ov1",
        Target {
            entries: BTreeMap::from([
                (mac(0x0a), Answer::Drop),
                (mac(0x02), to("10.9.0.2", 4789)),
                (
                    mac(0x03),
                    Answer::To(Destination {
                        mac: None,
                        ip: Some(v6),
                        port: Some(6081),
                    }),
                ),
            ]),
            ..Target::default()
        },
    );
    f.with_target(
        "pt0",
        Target {
            point: Some(Destination {
                mac: None,
                ip: ip4("10.0.0.2"),
                port: Some(4789),
            }),
            ..Target::default()
        },
    );
    f.with_target("ov9", Target::default());
    f.devices.last_mut().unwrap().active = false;
    f
}

#[test]
fn show_target_table_sorted() {
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["show", "-t"]).unwrap(),
        "\
LINK  TARGET             DESTINATION
ov1   02:00:00:00:00:02  10.9.0.2:4789
ov1   02:00:00:00:00:03  [2001:db8::2]:6081
ov1   02:00:00:00:00:0a  drop
pt0   *:*:*:*:*:*        10.0.0.2:4789
"
    );
    assert_eq!(f.target_cmds(), [(Op::Dump, tg::CMD_CACHE_LIST)]);
    assert!(f.target_log[0].2.is_empty(), "every device: no NAME");
    assert!(f.log.is_empty(), "nothing of the overlay family");

    // Sorted by link first even when the daemon answers in another order.
    f.devices.reverse();
    assert_eq!(
        run(&mut f, &["show", "-t"]).unwrap().lines().nth(1),
        Some("ov1   02:00:00:00:00:02  10.9.0.2:4789")
    );

    assert_eq!(
        run(&mut f, &["show", "--target", "pt0"]).unwrap(),
        "LINK  TARGET       DESTINATION\npt0   *:*:*:*:*:*  10.0.0.2:4789\n"
    );
    let (_, _, attrs) = f.target_log.last().unwrap();
    assert_eq!(attrs.get_str(tg::ATTR_NAME), Some("pt0"));
}

#[test]
fn show_target_json() {
    let mut f = cache_fake();
    let out = run(&mut f, &["show", "-t", "-j"]).unwrap();
    assert_eq!(
        json(&out),
        serde_json::json!([
            {"link": "ov1", "target": "02:00:00:00:00:02", "destination": "10.9.0.2:4789"},
            {"link": "ov1", "target": "02:00:00:00:00:03", "destination": "[2001:db8::2]:6081"},
            {"link": "ov1", "target": "02:00:00:00:00:0a", "destination": "drop"},
            {"link": "pt0", "target": "*:*:*:*:*:*", "destination": "10.0.0.2:4789"}
        ])
    );
    // Key order: the columns' order.
    assert!(out.find("\"link\"").unwrap() < out.find("\"target\"").unwrap());
    assert!(out.find("\"target\"").unwrap() < out.find("\"destination\"").unwrap());
}

#[test]
fn show_target_empty_and_errors() {
    let mut f = Fake::default();
    assert_eq!(
        run(&mut f, &["show", "-t"]).unwrap(),
        "LINK  TARGET  DESTINATION\n"
    );
    assert_eq!(run(&mut f, &["show", "-t", "-j"]).unwrap(), "[]\n");
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["show", "-t", "nope"]).unwrap_err(),
        "show -t nope: no device named nope (ENOENT)"
    );
    assert_eq!(
        run(&mut f, &["show", "-t", "ov9"]).unwrap_err(),
        "show -t ov9: ov9 is not active (ENXIO)"
    );
}

/// A destination that needs only an IP (an encapsulation without ports)
/// and one that needs an Ethernet address are shown as such.
#[test]
fn show_target_other_needs() {
    let mut f = Fake::default();
    f.with_target(
        "ov0",
        Target {
            needs: ov::DEST_IP,
            entries: BTreeMap::from([(
                mac(1),
                Answer::To(Destination {
                    mac: None,
                    ip: ip4("10.9.0.1"),
                    port: None,
                }),
            )]),
            ..Target::default()
        },
    );
    f.with_target(
        "ov1",
        Target {
            needs: ov::DEST_ETHERNET,
            entries: BTreeMap::from([(
                mac(1),
                Answer::To(Destination {
                    mac: Some(mac(0xee)),
                    ip: None,
                    port: None,
                }),
            )]),
            ..Target::default()
        },
    );
    assert_eq!(
        run(&mut f, &["show", "-t"]).unwrap(),
        "\
LINK  TARGET             DESTINATION
ov0   02:00:00:00:00:01  10.9.0.1
ov1   02:00:00:00:00:01  02:00:00:00:00:ee
"
    );
}

#[test]
fn cache_get() {
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["cache-get", "ov1", "2-0-0-0-0-2"]).unwrap(),
        "LINK  TARGET             DESTINATION\nov1   02:00:00:00:00:02  10.9.0.2:4789\n"
    );
    let (op, cmd, attrs) = f.target_log.last().unwrap();
    assert_eq!((*op, *cmd), (Op::Transact, tg::CMD_CACHE_GET));
    assert_eq!(attrs.get_bytes(tg::ATTR_MAC), Some(&[2, 0, 0, 0, 0, 2][..]));
    assert_eq!(
        json(&run(&mut f, &["cache-get", "-j", "ov1", "02:00:00:00:00:0A"]).unwrap()),
        serde_json::json!([{"link": "ov1", "target": "02:00:00:00:00:0a", "destination": "drop"}])
    );
    // A point-mode device answers its destination for any MAC.
    assert_eq!(
        run(&mut f, &["cache-get", "pt0", "02:00:00:00:00:77"]).unwrap(),
        "LINK  TARGET             DESTINATION\npt0   02:00:00:00:00:77  10.0.0.2:4789\n"
    );
}

#[test]
fn cache_get_errors() {
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["cache-get", "ov1", "02:00:00:00:00:99"]).unwrap_err(),
        "cache-get ov1 02:00:00:00:00:99: no entry for 02:00:00:00:00:99 (ENOENT)"
    );
    assert_eq!(
        run(&mut f, &["cache-get", "ov9", "2:0:0:0:0:1"]).unwrap_err(),
        "cache-get ov9 02:00:00:00:00:01: ov9 is not active (ENXIO)"
    );
    let sent = f.target_log.len();
    assert_eq!(
        run(&mut f, &["cache-get", "ov1", "02:00:00:00:00"]).unwrap_err(),
        format!("cache-get ov1: invalid MAC address \"02:00:00:00:00\": 5 groups instead of 6; write {}", overlay_plugin_abi::mac::MAC_FORMS)
    );
    assert_eq!(f.target_log.len(), sent, "nothing sent for a bad MAC");
}

#[test]
fn cache_set_destination_after_info() {
    let mut f = cache_fake();
    assert_eq!(
        run(
            &mut f,
            &["cache-set", "ov1", "02:00:00:00:00:05=10.9.0.5:4789"]
        )
        .unwrap(),
        ""
    );
    assert_eq!(
        f.target_cmds(),
        [(Op::Transact, tg::CMD_INFO), (Op::Write, tg::CMD_CACHE_SET)]
    );
    let (_, _, attrs) = f.target_log.last().unwrap();
    assert_eq!(attrs.get_str(tg::ATTR_NAME), Some("ov1"));
    assert_eq!(attrs.get_bytes(tg::ATTR_MAC), Some(&mac(5).0[..]));
    assert_eq!(
        attrs.get_bytes(tg::ATTR_DEST_IP),
        Some(&ip4("10.9.0.5").unwrap().octets()[..])
    );
    assert_eq!(attrs.get_u16(tg::ATTR_DEST_PORT), Some(4789));
    assert!(!attrs.has(tg::ATTR_FLAGS) && !attrs.has(tg::ATTR_DEST_MAC));
    assert_eq!(f.targets["ov1"].entries[&mac(5)], to("10.9.0.5", 4789));

    // IPv6 with a port, and an entry changed from drop to a destination.
    run(&mut f, &["cache-set", "ov1", "2:0:0:0:0:a=[2001:db8::a]:1"]).unwrap();
    assert_eq!(
        f.targets["ov1"].entries[&mac(0x0a)].to_string(),
        "[2001:db8::a]:1"
    );
    // -j prints nothing either.
    assert_eq!(
        run(
            &mut f,
            &["cache-set", "-j", "ov1", "2:0:0:0:0:a=10.0.0.1:2"]
        )
        .unwrap(),
        ""
    );
}

#[test]
fn cache_set_drop_needs_no_info() {
    let mut f = cache_fake();
    run(&mut f, &["cache-set", "ov1", "02:00:00:00:00:02=Drop"]).unwrap();
    assert_eq!(f.target_cmds(), [(Op::Write, tg::CMD_CACHE_SET)]);
    let (_, _, attrs) = &f.target_log[0];
    assert_eq!(attrs.get_u32(tg::ATTR_FLAGS), Some(tg::ENTRY_DROP));
    assert!(!attrs.has(tg::ATTR_DEST_IP) && !attrs.has(tg::ATTR_DEST_PORT));
    assert_eq!(f.targets["ov1"].entries[&mac(2)], Answer::Drop);
}

#[test]
fn cache_set_checks_needs_before_setting() {
    let mut f = cache_fake();
    let e = run(&mut f, &["cache-set", "ov1", "02:00:00:00:00:05=10.9.0.5"]).unwrap_err();
    assert_eq!(
        e,
        "cache-set ov1: \"02:00:00:00:00:05=10.9.0.5\": the device needs an IP and a port \
         (a port is missing): write MAC=IP:PORT (IPv6 as [addr]:port)"
    );
    // An IPv6 address whose last group was meant as a port reads as an
    // address; the needs check catches it.
    let e = run(
        &mut f,
        &["cache-set", "ov1", "2:0:0:0:0:5=2001:db8::5:4789"],
    )
    .unwrap_err();
    assert!(
        e.contains("(a port is missing): write MAC=IP:PORT (IPv6 as [addr]:port)"),
        "{e}"
    );
    assert_eq!(
        f.target_cmds(),
        [(Op::Transact, tg::CMD_INFO), (Op::Transact, tg::CMD_INFO)],
        "only INFO was sent"
    );
    assert!(!f.targets["ov1"].entries.contains_key(&mac(5)));

    // A device that needs only an IP refuses a port, and takes a bare IP.
    f.with_target(
        "ip0",
        Target {
            needs: ov::DEST_IP,
            ..Target::default()
        },
    );
    let e = run(&mut f, &["cache-set", "ip0", "2:0:0:0:0:5=10.0.0.5:4789"]).unwrap_err();
    assert_eq!(
        e,
        "cache-set ip0: \"2:0:0:0:0:5=10.0.0.5:4789\": the device needs an IP \
         (a port is not used): write MAC=IP"
    );
    run(&mut f, &["cache-set", "ip0", "2:0:0:0:0:5=10.0.0.5"]).unwrap();
    assert_eq!(f.targets["ip0"].entries[&mac(5)].to_string(), "10.0.0.5");
}

#[test]
fn cache_set_parse_errors_send_nothing() {
    let mut f = cache_fake();
    let tail = "; expected MAC=IP:PORT, MAC=[IPv6]:PORT, MAC=IP (no port) or MAC=drop";
    for (arg, why) in [
        ("02:00:00:00:00:05", "no '='"),
        ("02:00:00:00:00:05=10.9.0.5:0", "port 0 outside 1-65535"),
        (
            "2:0:0:0:0=10.9.0.5:1",
            &format!(
                "invalid MAC address \"2:0:0:0:0\": 5 groups instead of 6; write {}",
                overlay_plugin_abi::mac::MAC_FORMS
            ),
        ),
        (
            "02:00:00:00:00:05=10.9.0.5:x",
            "invalid port \"x\": expected a decimal number",
        ),
    ] {
        let e = run(&mut f, &["cache-set", "ov1", arg]).unwrap_err();
        assert_eq!(e, format!("cache-set ov1: \"{arg}\": {why}{tail}"));
    }
    assert!(f.target_log.is_empty(), "nothing may be sent");
}

#[test]
fn cache_set_daemon_refusals() {
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["cache-set", "pt0", "2:0:0:0:0:1=10.0.0.9:4789"]).unwrap_err(),
        "cache-set pt0 02:00:00:00:00:01: a point-mode device has no cache (EOPNOTSUPP)"
    );
    assert_eq!(
        run(&mut f, &["cache-set", "pt0", "2:0:0:0:0:1=drop"]).unwrap_err(),
        "cache-set pt0 02:00:00:00:00:01: a point-mode device has no cache (EOPNOTSUPP)"
    );
    assert_eq!(
        run(&mut f, &["cache-set", "ov9", "2:0:0:0:0:1=10.0.0.9:4789"]).unwrap_err(),
        "cache-set ov9 02:00:00:00:00:01: ov9 is not active (ENXIO)"
    );
    assert_eq!(
        run(&mut f, &["cache-set", "nope", "2:0:0:0:0:1=10.0.0.9:4789"]).unwrap_err(),
        "cache-set nope: no device named nope (ENOENT)"
    );
}

#[test]
fn cache_remove_and_flush() {
    let mut f = cache_fake();
    assert_eq!(
        run(&mut f, &["cache-remove", "ov1", "2:0:0:0:0:2"]).unwrap(),
        ""
    );
    let (op, cmd, attrs) = f.target_log.last().unwrap();
    assert_eq!((*op, *cmd), (Op::Write, tg::CMD_CACHE_REMOVE));
    assert_eq!(attrs.get_bytes(tg::ATTR_MAC), Some(&mac(2).0[..]));
    assert!(!f.targets["ov1"].entries.contains_key(&mac(2)));
    assert_eq!(f.targets["ov1"].entries.len(), 2);

    assert_eq!(run(&mut f, &["cache-flush", "-j", "ov1"]).unwrap(), "");
    assert_eq!(f.target_log.last().unwrap().1, tg::CMD_CACHE_FLUSH);
    assert!(f.targets["ov1"].entries.is_empty());

    let sent = f.target_log.len();
    assert_eq!(
        run(&mut f, &["cache-remove", "ov1", "2:0:0:0:0:2:3"]).unwrap_err(),
        format!("cache-remove ov1: invalid MAC address \"2:0:0:0:0:2:3\": 7 groups instead of 6; write {}", overlay_plugin_abi::mac::MAC_FORMS)
    );
    assert_eq!(f.target_log.len(), sent);
    assert_eq!(
        run(&mut f, &["cache-remove", "ov9", "2:0:0:0:0:2"]).unwrap_err(),
        "cache-remove ov9 02:00:00:00:00:02: ov9 is not active (ENXIO)"
    );
    assert_eq!(
        run(&mut f, &["cache-flush", "nope"]).unwrap_err(),
        "cache-flush nope: no device named nope (ENOENT)"
    );
}

/// Every target command through nlproto's dispatch validation.
#[test]
fn every_cache_command_over_the_wire() {
    let (mut c, server) = super::wire::start(cache_fake());
    let run_on = super::wire::run_on;
    run_on(
        &mut c,
        &["cache-set", "ov1", "02:00:00:00:00:05=10.9.0.5:4789"],
    )
    .unwrap();
    run_on(
        &mut c,
        &["cache-set", "ov1", "02:00:00:00:00:06=[2001:db8::6]:1"],
    )
    .unwrap();
    run_on(&mut c, &["cache-set", "ov1", "02:00:00:00:00:07=drop"]).unwrap();
    run_on(&mut c, &["cache-remove", "ov1", "02:00:00:00:00:0a"]).unwrap();
    assert_eq!(
        run_on(&mut c, &["cache-get", "ov1", "02:00:00:00:00:06"]).unwrap(),
        "LINK  TARGET             DESTINATION\nov1   02:00:00:00:00:06  [2001:db8::6]:1\n"
    );
    assert_eq!(
        run_on(&mut c, &["show", "-t", "ov1"]).unwrap(),
        "\
LINK  TARGET             DESTINATION
ov1   02:00:00:00:00:02  10.9.0.2:4789
ov1   02:00:00:00:00:03  [2001:db8::2]:6081
ov1   02:00:00:00:00:05  10.9.0.5:4789
ov1   02:00:00:00:00:06  [2001:db8::6]:1
ov1   02:00:00:00:00:07  drop
"
    );
    assert_eq!(
        run_on(&mut c, &["cache-get", "ov1", "02:00:00:00:00:0a"]).unwrap_err(),
        "cache-get ov1 02:00:00:00:00:0a: no entry for 02:00:00:00:00:0a (ENOENT)"
    );
    run_on(&mut c, &["cache-flush", "ov1"]).unwrap();
    assert_eq!(
        run_on(&mut c, &["show", "-t", "-j", "ov1"]).unwrap(),
        "[]\n"
    );
    drop(c);
    let fake = server.join().unwrap();
    assert!(fake.targets["ov1"].entries.is_empty());
}
