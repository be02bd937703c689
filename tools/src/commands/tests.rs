//! The commands against an in-memory daemon that follows the protocol's
//! rules closely enough to exercise every request the CLI makes.

use super::*;
use clap::Parser;
use nlproto::spec::target as tg;
use nlproto::AttrValue;

mod cache;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Transact,
    Write,
    Dump,
}

struct Prop {
    name: &'static str,
    ty: u32,
    perm: u32,
    default: Option<Vec<u8>>,
    range: Option<(u64, u64)>,
    possible: &'static [&'static str],
}

impl Prop {
    fn attrs(&self) -> Vec<Attr> {
        let mut a = vec![
            Attr::str(ov::ATTR_PROP_NAME, self.name),
            Attr::u32(ov::ATTR_PROP_TYPE, self.ty),
            Attr::u32(ov::ATTR_PROP_PERM, self.perm),
        ];
        if let Some(d) = &self.default {
            a.push(Attr::bytes(ov::ATTR_PROP_DEFAULT, d.clone()));
        }
        if let Some((min, max)) = self.range {
            a.push(Attr::u64(ov::ATTR_PROP_RANGE_MIN, min));
            a.push(Attr::u64(ov::ATTR_PROP_RANGE_MAX, max));
        }
        if !self.possible.is_empty() {
            a.push(Attr::nested(
                ov::ATTR_PROP_POSSIBLE,
                self.possible
                    .iter()
                    .map(|v| Attr::str(ov::ATTR_POSSIBLE_VALUE, *v))
                    .collect(),
            ));
        }
        a
    }
}

const RW: u32 = ov::PERM_READ | ov::PERM_WRITE;
const REQ: u32 = RW | ov::PERM_REQ;

fn generic() -> Vec<Prop> {
    vec![
        Prop {
            name: "mtu",
            ty: ov::PROP_TYPE_UINT,
            perm: RW | ov::PERM_RUNTIME,
            default: Some(1400u64.to_ne_bytes().to_vec()),
            range: Some((576, 8900)),
            possible: &[],
        },
        Prop {
            name: "vnetid",
            ty: ov::PROP_TYPE_UINT,
            perm: RW,
            default: None,
            range: Some((0, 16777215)),
            possible: &[],
        },
        Prop {
            name: "encap",
            ty: ov::PROP_TYPE_STRING,
            perm: ov::PERM_READ,
            default: None,
            range: None,
            possible: &["vxlan"],
        },
        Prop {
            name: "backend",
            ty: ov::PROP_TYPE_STRING,
            perm: RW,
            default: Some(b"tap\0".to_vec()),
            range: None,
            possible: &["tap", "afpacket"],
        },
        Prop {
            name: "ifname",
            ty: ov::PROP_TYPE_STRING,
            perm: RW,
            default: None,
            range: None,
            possible: &[],
        },
        Prop {
            name: "srcport_min",
            ty: ov::PROP_TYPE_UINT,
            perm: RW | ov::PERM_RUNTIME,
            default: Some(32768u64.to_ne_bytes().to_vec()),
            range: Some((1, 65535)),
            possible: &[],
        },
        Prop {
            name: "srcport_max",
            ty: ov::PROP_TYPE_UINT,
            perm: RW | ov::PERM_RUNTIME,
            default: Some(60999u64.to_ne_bytes().to_vec()),
            range: Some((1, 65535)),
            possible: &[],
        },
    ]
}

fn vxlan() -> Vec<Prop> {
    vec![
        Prop {
            name: "vxlan/listen_ip",
            ty: ov::PROP_TYPE_IP,
            perm: REQ,
            default: None,
            range: None,
            possible: &[],
        },
        Prop {
            name: "vxlan/listen_port",
            ty: ov::PROP_TYPE_UINT,
            perm: REQ,
            default: Some(4789u64.to_ne_bytes().to_vec()),
            range: Some((1, 65535)),
            possible: &[],
        },
    ]
}

fn direct() -> Vec<Prop> {
    vec![
        Prop {
            name: "direct/dest_ip",
            ty: ov::PROP_TYPE_IP,
            perm: REQ,
            default: None,
            range: None,
            possible: &[],
        },
        Prop {
            name: "direct/secret",
            ty: ov::PROP_TYPE_INT,
            perm: ov::PERM_WRITE,
            default: None,
            range: None,
            possible: &[],
        },
    ]
}

/// The daemon's device counters today, in its order.
const DEVICE_COUNTERS: &[&str] = &[
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "drop_mtu",
    "drop_runt",
    "drop_encap",
    "drop_no_destination",
    "drop_send",
    "drop_backend",
    "plugin_panics",
];

/// The daemon's mux counters today, in its order.
const MUX_COUNTERS: &[&str] = &[
    "rx_packets",
    "rx_bytes",
    "drop_unknown_vnetid",
    "drop_bad_header",
    "drop_short",
    "drop_oam",
    "tx_packets",
    "tx_bytes",
];

/// The endpoint of the fake's one mux.
const ENDPOINT: &str = "udp 10.0.0.1:4789";

struct Dev {
    name: String,
    vnetid: u64,
    active: bool,
    values: HashMap<String, Vec<u8>>,
    /// Counter values other than 0; names not in [`DEVICE_COUNTERS`] are
    /// reported after those, as a newer daemon's would be.
    counters: Vec<(&'static str, u64)>,
}

#[derive(Default)]
struct Fake {
    devices: Vec<Dev>,
    /// The target side of devices, by name; a device not here is in
    /// dynamic mode with an empty cache (see `cache::Target`).
    targets: HashMap<String, cache::Target>,
    /// The overlay_target requests, apart from `log`.
    target_log: Vec<(Op, u8, Vec<Attr>)>,
    /// The mux's counter values other than 0.
    mux_counters: Vec<(&'static str, u64)>,
    log: Vec<(Op, u8, Vec<Attr>)>,
}

fn fail(errno: i32, text: &str) -> ClientError {
    ClientError::Netlink {
        errno,
        message: Some(text.into()),
        offset: None,
    }
}

fn all_props() -> Vec<Prop> {
    let mut p = generic();
    p.extend(vxlan());
    p.extend(direct());
    p
}

impl Fake {
    fn with_device(name: &str) -> Fake {
        let mut f = Fake::default();
        f.devices.push(Dev {
            name: name.into(),
            vnetid: 42,
            active: false,
            values: HashMap::from([(
                "vxlan/listen_ip".to_string(),
                Ipv4Addr::new(10, 0, 0, 1)
                    .to_ipv6_mapped()
                    .octets()
                    .to_vec(),
            )]),
            counters: Vec::new(),
        });
        f
    }

    fn dev(&mut self, attrs: &[Attr]) -> Result<&mut Dev, ClientError> {
        let name = attrs
            .get_str(ov::ATTR_NAME)
            .expect("requests name the device");
        self.devices
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| fail(libc::ENOENT, &format!("no device named {name}")))
    }

    fn prop(attrs: &[Attr]) -> Result<Prop, ClientError> {
        let name = attrs.get_str(ov::ATTR_PROP_NAME).expect("PROP_NAME");
        all_props()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| fail(libc::ENOENT, &format!("no property {name}")))
    }

    fn dev_attrs(d: &Dev) -> Vec<Attr> {
        vec![
            Attr::u32(ov::ATTR_LINKID, 1),
            Attr::str(ov::ATTR_NAME, d.name.clone()),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, d.vnetid),
            Attr::u32(
                ov::ATTR_STATE,
                if d.active {
                    ov::STATE_ACTIVE
                } else {
                    ov::STATE_CREATED
                },
            ),
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_OK),
            Attr::str(ov::ATTR_STATUS_MSG, ""),
        ]
    }

    /// A `STATS` attribute: every `names` counter, then the other
    /// `values`.
    fn stats(names: &[&str], values: &[(&'static str, u64)]) -> Attr {
        let value = |n: &str| values.iter().find(|(v, _)| *v == n).map_or(0, |(_, v)| *v);
        let extra = values
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !names.contains(n));
        Attr::nested(
            ov::ATTR_STATS,
            names
                .iter()
                .copied()
                .chain(extra)
                .map(|n| {
                    Attr::nested(
                        ov::ATTR_STAT,
                        vec![
                            Attr::str(ov::ATTR_STAT_NAME, n),
                            Attr::u64(ov::ATTR_STAT_VALUE, value(n)),
                        ],
                    )
                })
                .collect(),
        )
    }

    /// A `STATS` reply: the mux only for an active device.
    fn stats_attrs(&self, d: &Dev) -> Vec<Attr> {
        let mut a = vec![
            Attr::u32(ov::ATTR_LINKID, 1),
            Attr::str(ov::ATTR_NAME, d.name.clone()),
            Fake::stats(DEVICE_COUNTERS, &d.counters),
        ];
        if d.active {
            a.push(Attr::nested(
                ov::ATTR_MUX,
                vec![
                    Attr::str(ov::ATTR_MUX_ENDPOINT, ENDPOINT),
                    Fake::stats(MUX_COUNTERS, &self.mux_counters),
                ],
            ));
        }
        a
    }

    fn writes(&self) -> Vec<u8> {
        self.log
            .iter()
            .filter(|(op, cmd, _)| *op == Op::Write || *cmd == ov::CMD_CREATE)
            .map(|(_, cmd, _)| *cmd)
            .collect()
    }

    /// A plugin as the daemon lists it: an encap plugin for IP and port
    /// with a 3-byte id and an 8-byte header, or a point-mode lookup
    /// plugin.
    fn plugin(name: &str, kind: u32, props: Vec<Prop>) -> Vec<Attr> {
        let declared = if kind == ov::KIND_ENCAP {
            vec![
                Attr::u32(ov::ATTR_PLUGIN_DEST, ov::DEST_IP | ov::DEST_PORT),
                Attr::u32(ov::ATTR_PLUGIN_ID_SIZE, 3),
                Attr::u32(ov::ATTR_PLUGIN_FLAGS, 0),
                Attr::u32(ov::ATTR_PLUGIN_MAX_HEADER_LEN, 8),
            ]
        } else {
            vec![
                Attr::u32(ov::ATTR_PLUGIN_DEST, ov::DEST_IP | ov::DEST_PORT),
                Attr::u32(ov::ATTR_PLUGIN_MODES, ov::MODE_POINT),
            ]
        };
        let mut attrs = vec![
            Attr::str(ov::ATTR_PLUGIN_NAME, name),
            Attr::u32(ov::ATTR_PLUGIN_KIND, kind),
            Attr::str(ov::ATTR_PLUGIN_VERSION, "0.1.0"),
            Attr::str(ov::ATTR_PLUGIN_FILE, format!("/lib/liboverlay_{name}.so")),
        ];
        attrs.extend(declared);
        attrs.push(Attr::nested(
            ov::ATTR_PROPS,
            props
                .iter()
                .map(|p| Attr::nested(ov::ATTR_PROP, p.attrs()))
                .collect(),
        ));
        attrs
    }
}

impl Daemon for Fake {
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        match family {
            ov::NAME => self.overlay_transact(cmd, attrs),
            tg::NAME => self.target_transact(cmd, attrs),
            _ => panic!("unexpected family {family}"),
        }
    }

    fn write(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        match family {
            ov::NAME => self.overlay_write(cmd, attrs),
            tg::NAME => self.target_write(cmd, attrs),
            _ => panic!("unexpected family {family}"),
        }
    }

    fn dump(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Vec<Attr>>, ClientError> {
        match family {
            ov::NAME => self.overlay_dump(cmd, attrs),
            tg::NAME => self.target_dump(cmd, attrs),
            _ => panic!("unexpected family {family}"),
        }
    }
}

/// The overlay family's requests.
impl Fake {
    fn overlay_transact(&mut self, cmd: u8, attrs: Vec<Attr>) -> Result<Vec<Attr>, ClientError> {
        self.log.push((Op::Transact, cmd, attrs.clone()));
        match cmd {
            ov::CMD_CREATE => {
                let name = attrs.get_str(ov::ATTR_NAME).unwrap().to_string();
                if self.devices.iter().any(|d| d.name == name) {
                    return Err(fail(libc::EEXIST, &format!("device {name} exists")));
                }
                let mut values = HashMap::new();
                for p in attrs.get_nested(ov::ATTR_PROPS).unwrap_or(&[]) {
                    let AttrValue::Nested(p) = &p.value else {
                        panic!("PROP not nested")
                    };
                    values.insert(
                        p.get_str(ov::ATTR_PROP_NAME).unwrap().to_string(),
                        p.get_bytes(ov::ATTR_PROP_VALUE).unwrap().to_vec(),
                    );
                }
                self.devices.push(Dev {
                    name,
                    vnetid: attrs.get_u64(ov::ATTR_VNETID).unwrap(),
                    active: false,
                    values,
                    counters: Vec::new(),
                });
                Ok(Fake::dev_attrs(self.devices.last().unwrap()))
            }
            ov::CMD_PROPINFO => {
                self.dev(&attrs)?;
                Ok(Fake::prop(&attrs)?.attrs())
            }
            ov::CMD_GETPROP => {
                let p = Fake::prop(&attrs)?;
                if p.perm & ov::PERM_READ == 0 {
                    return Err(fail(libc::EPERM, "write-only"));
                }
                let d = self.dev(&attrs)?;
                let mut a = vec![Attr::str(ov::ATTR_PROP_NAME, p.name)];
                if let Some(v) = d.values.get(p.name) {
                    a.push(Attr::bytes(ov::ATTR_PROP_VALUE, v.clone()));
                }
                Ok(a)
            }
            ov::CMD_LIST => Ok(Fake::dev_attrs(self.dev(&attrs)?)),
            ov::CMD_STATS => {
                let d = self.dev(&attrs)?;
                let name = d.name.clone();
                let d = self.devices.iter().find(|d| d.name == name).unwrap();
                Ok(self.stats_attrs(d))
            }
            _ => panic!("unexpected transaction {cmd}"),
        }
    }

    fn overlay_write(&mut self, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.log.push((Op::Write, cmd, attrs.clone()));
        match cmd {
            ov::CMD_ACTIVATE => {
                let d = self.dev(&attrs)?;
                if d.active {
                    return Err(fail(libc::EEXIST, "already active"));
                }
                d.active = true;
                Ok(())
            }
            ov::CMD_DELETE => {
                self.dev(&attrs)?;
                let name = attrs.get_str(ov::ATTR_NAME).unwrap();
                self.devices.retain(|d| d.name != name);
                Ok(())
            }
            ov::CMD_SETPROP => {
                let p = Fake::prop(&attrs)?;
                if p.perm & ov::PERM_WRITE == 0 {
                    return Err(fail(libc::EPERM, &format!("{} is read-only", p.name)));
                }
                let v = attrs.get_bytes(ov::ATTR_PROP_VALUE).unwrap().to_vec();
                self.dev(&attrs)?.values.insert(p.name.to_string(), v);
                Ok(())
            }
            _ => panic!("unexpected write {cmd}"),
        }
    }

    fn overlay_dump(&mut self, cmd: u8, attrs: Vec<Attr>) -> Result<Vec<Vec<Attr>>, ClientError> {
        self.log.push((Op::Dump, cmd, attrs.clone()));
        match cmd {
            ov::CMD_LIST => Ok(self.devices.iter().map(Fake::dev_attrs).collect()),
            ov::CMD_STATS => Ok(self.devices.iter().map(|d| self.stats_attrs(d)).collect()),
            ov::CMD_PLUGINS => Ok(vec![
                Fake::plugin("vxlan", ov::KIND_ENCAP, vxlan()),
                Fake::plugin("direct", ov::KIND_LOOKUP, direct()),
            ]),
            ov::CMD_PROPINFO => {
                let d = self.dev(&attrs)?;
                let name = d.name.clone();
                Ok(all_props()
                    .iter()
                    .map(|p| {
                        let mut a = vec![Attr::str(ov::ATTR_NAME, name.clone())];
                        a.extend(p.attrs());
                        a
                    })
                    .collect())
            }
            _ => panic!("unexpected dump {cmd}"),
        }
    }
}

use std::net::Ipv4Addr;

fn run(fake: &mut Fake, args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("overlayctl").chain(args.iter().copied()))
        .expect("valid command line");
    execute(&cli, fake)
        .map(|out| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn create_with_props() {
    let mut f = Fake::default();
    let out = run(
        &mut f,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "0x2a",
            "-p",
            "vxlan/listen_ip=10.200.0.1,direct/dest_ip=::1",
            "-p",
            "mtu=1450",
            "ov0",
        ],
    )
    .unwrap();
    assert_eq!(out, "");
    let (op, cmd, attrs) = f.log.last().unwrap();
    assert_eq!((*op, *cmd), (Op::Transact, ov::CMD_CREATE));
    assert_eq!(attrs.get_str(ov::ATTR_NAME), Some("ov0"));
    assert_eq!(attrs.get_str(ov::ATTR_ENCAP), Some("vxlan"));
    assert_eq!(attrs.get_str(ov::ATTR_SEARCH), Some("direct"));
    assert_eq!(attrs.get_u64(ov::ATTR_VNETID), Some(42));
    let d = &f.devices[0];
    assert_eq!(
        d.values["vxlan/listen_ip"],
        Ipv4Addr::new(10, 200, 0, 1).to_ipv6_mapped().octets()
    );
    assert_eq!(d.values["direct/dest_ip"][15], 1);
    assert_eq!(d.values["mtu"], 1450u64.to_ne_bytes());
}

#[test]
fn create_with_new_generic_props() {
    let mut f = Fake::default();
    run(
        &mut f,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "1",
            "-p",
            "backend=afpacket,ifname=eth1,srcport_min=40000,srcport_max=0xc350",
            "ov0",
        ],
    )
    .unwrap();
    let v = &f.devices[0].values;
    assert_eq!(v["backend"], b"afpacket\0");
    assert_eq!(v["ifname"], b"eth1\0");
    assert_eq!(v["srcport_min"], 40000u64.to_ne_bytes());
    assert_eq!(v["srcport_max"], 50000u64.to_ne_bytes());

    let e = run(
        &mut f,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "1",
            "-p",
            "srcport_min=low",
            "ov1",
        ],
    )
    .unwrap_err();
    assert!(
        e.starts_with("create ov1: srcport_min=low: invalid UINT value \"low\""),
        "{e}"
    );
    assert_eq!(f.devices.len(), 1);
}

#[test]
fn create_with_dynamic_mode_props() {
    let mut f = Fake::default();
    run(
        &mut f,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "1",
            "-p",
            "flood=1,lookup_timeout=500,cache_entry_bytes=4096",
            "-p",
            "cache_device_bytes=65536,cache_ttl=30,cache_max_entries=16",
            "ov0",
        ],
    )
    .unwrap();
    let v = &f.devices[0].values;
    for (name, value) in [
        ("flood", 1u64),
        ("lookup_timeout", 500),
        ("cache_entry_bytes", 4096),
        ("cache_device_bytes", 65536),
        ("cache_ttl", 30),
        ("cache_max_entries", 16),
    ] {
        assert_eq!(v[name], value.to_ne_bytes(), "{name}");
    }
}

#[test]
fn create_without_props_skips_the_plugin_dump() {
    let mut f = Fake::default();
    let out = run(
        &mut f,
        &[
            "-j", "create", "-e", "vxlan", "-s", "direct", "-v", "7", "ov1",
        ],
    )
    .unwrap();
    assert_eq!(f.log.len(), 1);
    assert!(!f.log[0].2.has(ov::ATTR_PROPS));
    assert_eq!(
        json(&out),
        serde_json::json!([{
            "link": "ov1", "encap": "vxlan", "search": "direct",
            "vnetid": "7", "state": "created", "status": "ok"
        }])
    );
}

#[test]
fn create_unknown_property_sends_nothing() {
    let mut f = Fake::default();
    let e = run(
        &mut f,
        &[
            "create", "-e", "vxlan", "-s", "direct", "-v", "1", "-p", "bogus=1", "ov0",
        ],
    )
    .unwrap_err();
    assert_eq!(
        e,
        "create ov0: unknown property bogus; the properties of encap vxlan and search direct are: \
         mtu, vnetid, encap, search, backend, ifname, srcport_min, srcport_max, flood, \
         lookup_timeout, cache_entry_bytes, cache_device_bytes, cache_ttl, cache_max_entries, \
         vxlan/listen_ip, vxlan/listen_port, direct/dest_ip, direct/secret"
    );
    assert!(f.writes().is_empty());
}

#[test]
fn create_unknown_plugin_is_named() {
    let mut f = Fake::default();
    let e = run(
        &mut f,
        &[
            "create",
            "-e",
            "geneve",
            "-s",
            "direct",
            "-v",
            "1",
            "-p",
            "geneve/x=1",
            "ov0",
        ],
    )
    .unwrap_err();
    assert!(e.contains("unknown property geneve/x"), "{e}");
    assert!(
        e.contains("(no encap plugin geneve is loaded; loaded: vxlan)"),
        "{e}"
    );
    assert!(f.writes().is_empty());
}

#[test]
fn create_reports_every_bad_argument_at_once() {
    let mut f = Fake::default();
    let e = run(
        &mut f,
        &[
            "create", "-e", "vxlan", "-s", "direct", "-v", "-1", "-p", "mtu", "ov0",
        ],
    )
    .unwrap_err();
    assert_eq!(
        e,
        "create ov0: -v: invalid UINT value \"-1\": must not be negative; \
         -p \"mtu\": expected KEY=VALUE"
    );
    assert!(f.log.is_empty(), "nothing may be sent");
}

#[test]
fn create_bad_values_send_nothing() {
    let mut f = Fake::default();
    let e = run(
        &mut f,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "1",
            "-p",
            "mtu=big,vxlan/listen_ip=1.2.3",
            "ov0",
        ],
    )
    .unwrap_err();
    assert!(
        e.starts_with("create ov0: mtu=big: invalid UINT value \"big\""),
        "{e}"
    );
    assert!(
        e.contains("; vxlan/listen_ip=1.2.3: invalid IP value"),
        "{e}"
    );
    assert!(f.writes().is_empty());
}

#[test]
fn create_duplicate_property() {
    let mut f = Fake::default();
    let e = run(
        &mut f,
        &[
            "create", "-e", "vxlan", "-s", "direct", "-v", "1", "-p", "mtu=1", "-p", "mtu=2", "ov0",
        ],
    )
    .unwrap_err();
    assert_eq!(e, "create ov0: -p: property mtu given more than once");
    assert!(f.log.is_empty());
}

#[test]
fn create_daemon_error() {
    let mut f = Fake::with_device("ov0");
    let e = run(
        &mut f,
        &["create", "-e", "vxlan", "-s", "direct", "-v", "1", "ov0"],
    )
    .unwrap_err();
    assert_eq!(e, "create ov0: device ov0 exists (EEXIST)");
}

#[test]
fn activate_and_delete() {
    let mut f = Fake::with_device("ov0");
    assert_eq!(run(&mut f, &["activate", "ov0"]).unwrap(), "");
    assert!(f.devices[0].active);
    assert_eq!(
        run(&mut f, &["activate", "ov0"]).unwrap_err(),
        "activate ov0: already active (EEXIST)"
    );
    assert_eq!(run(&mut f, &["delete", "ov0"]).unwrap(), "");
    assert!(f.devices.is_empty());
    assert_eq!(
        run(&mut f, &["delete", "ov0"]).unwrap_err(),
        "delete ov0: no device named ov0 (ENOENT)"
    );
}

#[test]
fn prop_set_encodes_by_reported_type() {
    let mut f = Fake::with_device("ov0");
    run(
        &mut f,
        &[
            "prop-set",
            "ov0",
            "mtu=0x5aa",
            "direct/dest_ip=2001:db8::2",
            "direct/secret=-7",
        ],
    )
    .unwrap();
    let v = &f.devices[0].values;
    assert_eq!(v["mtu"], 1450u64.to_ne_bytes());
    assert_eq!(v["direct/dest_ip"][..4], [0x20, 0x01, 0x0d, 0xb8]);
    assert_eq!(v["direct/secret"], (-7i64).to_ne_bytes());
    let cmds: Vec<_> = f.log.iter().map(|(op, c, _)| (*op, *c)).collect();
    assert_eq!(
        cmds,
        [
            (Op::Transact, ov::CMD_PROPINFO),
            (Op::Transact, ov::CMD_PROPINFO),
            (Op::Transact, ov::CMD_PROPINFO),
            (Op::Write, ov::CMD_SETPROP),
            (Op::Write, ov::CMD_SETPROP),
            (Op::Write, ov::CMD_SETPROP),
        ]
    );
}

#[test]
fn prop_set_parse_error_sends_nothing() {
    let mut f = Fake::with_device("ov0");
    let e = run(
        &mut f,
        &[
            "prop-set",
            "ov0",
            "mtu=1500",
            "vxlan/listen_port=-1",
            "vnetid=x",
        ],
    )
    .unwrap_err();
    assert_eq!(
        e,
        "prop-set ov0: vxlan/listen_port=-1: invalid UINT value \"-1\": must not be negative; \
         vnetid=x: invalid UINT value \"x\": expected a decimal number (or 0x followed by hexadecimal digits)"
    );
    assert!(f.writes().is_empty());
    assert!(!f.devices[0].values.contains_key("mtu"));
}

#[test]
fn prop_set_syntax_error_contacts_nobody() {
    let mut f = Fake::with_device("ov0");
    let e = run(&mut f, &["prop-set", "ov0", "mtu=1", "mtu"]).unwrap_err();
    assert_eq!(e, "prop-set ov0: \"mtu\": expected KEY=VALUE");
    let e = run(&mut f, &["prop-set", "ov0", "mtu=1", "mtu=2"]).unwrap_err();
    assert_eq!(e, "prop-set ov0: property mtu given more than once");
    assert!(f.log.is_empty());
}

#[test]
fn prop_set_unknown_property() {
    let mut f = Fake::with_device("ov0");
    let e = run(&mut f, &["prop-set", "ov0", "mtu=1500", "nope=1"]).unwrap_err();
    assert_eq!(e, "property nope of ov0: no property nope (ENOENT)");
    assert!(f.writes().is_empty());
}

#[test]
fn prop_set_daemon_refusal() {
    let mut f = Fake::with_device("ov0");
    let e = run(&mut f, &["prop-set", "ov0", "encap=vxlan"]).unwrap_err();
    assert_eq!(e, "set encap on ov0: encap is read-only (EPERM)");
}

#[test]
fn prop_get_all() {
    let mut f = Fake::with_device("ov0");
    let out = run(&mut f, &["prop-get", "ov0"]).unwrap();
    assert_eq!(
        out,
        "\
LINK  PROPERTY           PERM  REQ  VALUE     DEFAULT  POSSIBLE
ov0   mtu                rw    -    --        1400     576-8900
ov0   vnetid             rw    -    --        --       0-16777215
ov0   encap              r-    -    --        --       vxlan
ov0   backend            rw    -    --        tap      tap,afpacket
ov0   ifname             rw    -    --        --       --
ov0   srcport_min        rw    -    --        32768    1-65535
ov0   srcport_max        rw    -    --        60999    1-65535
ov0   vxlan/listen_ip    rw    y    10.0.0.1  --       --
ov0   vxlan/listen_port  rw    y    --        4789     1-65535
ov0   direct/dest_ip     rw    y    --        --       --
ov0   direct/secret      -w    -    --        --       --
"
    );
    // The write-only property is not read.
    let gets = f
        .log
        .iter()
        .filter(|(_, c, _)| *c == ov::CMD_GETPROP)
        .count();
    assert_eq!(gets, 10);
}

#[test]
fn prop_get_keys_json() {
    let mut f = Fake::with_device("ov0");
    let out = run(&mut f, &["prop-get", "-j", "ov0", "vxlan/listen_ip", "mtu"]).unwrap();
    assert_eq!(
        json(&out),
        serde_json::json!([
            {"link": "ov0", "property": "vxlan/listen_ip", "perm": "rw", "req": "y",
             "value": "10.0.0.1", "default": "--", "possible": "--"},
            {"link": "ov0", "property": "mtu", "perm": "rw", "req": "-",
             "value": "--", "default": "1400", "possible": "576-8900"}
        ])
    );
}

#[test]
fn prop_get_errors() {
    let mut f = Fake::with_device("ov0");
    assert_eq!(
        run(&mut f, &["prop-get", "ov0", "mtu", "nope"]).unwrap_err(),
        "property nope of ov0: no property nope (ENOENT)"
    );
    assert_eq!(
        run(&mut f, &["prop-get", "ov9"]).unwrap_err(),
        "list properties of ov9: no device named ov9 (ENOENT)"
    );
}

#[test]
fn show_all_and_one() {
    let mut f = Fake::with_device("ov0");
    f.devices.push(Dev {
        name: "overlay1".into(),
        vnetid: 16777215,
        active: true,
        values: HashMap::new(),
        counters: Vec::new(),
    });
    assert_eq!(
        run(&mut f, &["show"]).unwrap(),
        "\
LINK      ENCAP  SEARCH  VNETID    STATE    STATUS
ov0       vxlan  direct  42        created  ok
overlay1  vxlan  direct  16777215  active   ok
"
    );
    assert_eq!(
        run(&mut f, &["show", "-f", "ov0"]).unwrap(),
        "LINK  STATUS  DETAILS\nov0   ONLINE  --\n"
    );
    assert_eq!(
        json(&run(&mut f, &["show", "-j", "-f"]).unwrap()),
        serde_json::json!([
            {"link": "ov0", "status": "ONLINE", "details": "--"},
            {"link": "overlay1", "status": "ONLINE", "details": "--"}
        ])
    );
    assert_eq!(
        run(&mut f, &["show", "nope"]).unwrap_err(),
        "show nope: no device named nope (ENOENT)"
    );
}

#[test]
fn show_empty() {
    let mut f = Fake::default();
    assert_eq!(
        run(&mut f, &["show"]).unwrap(),
        "LINK  ENCAP  SEARCH  VNETID  STATE  STATUS\n"
    );
    assert_eq!(run(&mut f, &["show", "-j"]).unwrap(), "[]\n");
}

/// ov0 (created, some traffic and drops, a counter this client has never
/// heard of) and overlay1 (active, on the mux).
fn stats_fake() -> Fake {
    let mut f = Fake::with_device("ov0");
    f.devices[0].counters = vec![
        ("rx_packets", 10),
        ("rx_bytes", 1200),
        ("tx_packets", 7),
        ("tx_bytes", 900),
        ("drop_mtu", 2),
        ("drop_no_destination", 3),
        ("drop_send", 1),
        ("plugin_panics", 4),
        ("drop_future_reason", 5),
    ];
    f.devices.push(Dev {
        name: "overlay1".into(),
        vnetid: 7,
        active: true,
        values: HashMap::new(),
        counters: vec![("rx_packets", 123456789012), ("tx_bytes", 1)],
    });
    f.mux_counters = vec![("rx_packets", 50), ("drop_short", 6), ("drop_oam", 1)];
    f
}

#[test]
fn show_stats_table() {
    let mut f = stats_fake();
    assert_eq!(
        run(&mut f, &["show", "-s"]).unwrap(),
        "\
LINK      IPACKETS      RBYTES  OPACKETS  OBYTES  DROPS
ov0       10            1200    7         900     11
overlay1  123456789012  0       0         1       0
"
    );
    assert_eq!(f.log.last().unwrap().0, Op::Dump);
    assert_eq!(f.log.last().unwrap().1, ov::CMD_STATS);

    assert_eq!(
        run(&mut f, &["show", "--stats", "overlay1"]).unwrap(),
        "\
LINK      IPACKETS      RBYTES  OPACKETS  OBYTES  DROPS
overlay1  123456789012  0       0         1       0
"
    );
    let (op, cmd, attrs) = f.log.last().unwrap();
    assert_eq!((*op, *cmd), (Op::Transact, ov::CMD_STATS));
    assert_eq!(attrs.get_str(ov::ATTR_NAME), Some("overlay1"));
}

#[test]
fn show_stats_drops_sum_only_drop_counters() {
    let mut f = Fake::with_device("ov0");
    // Every drop_* counter counts, the known ones and a new one; a name
    // that merely contains "drop" and plugin_panics do not.
    f.devices[0].counters = vec![
        ("drop_mtu", 1),
        ("drop_runt", 10),
        ("drop_encap", 100),
        ("drop_no_destination", 1000),
        ("drop_send", 10000),
        ("drop_backend", 100000),
        ("drop_new", 1000000),
        ("plugin_panics", 7),
        ("rx_dropped", 7),
    ];
    let out = json(&run(&mut f, &["show", "-s", "-j", "ov0"]).unwrap());
    assert_eq!(out[0]["drops"], "1111111");
}

#[test]
fn show_stats_json() {
    let mut f = stats_fake();
    let out = run(&mut f, &["show", "-s", "-j"]).unwrap();
    assert_eq!(
        json(&out),
        serde_json::json!([
            {
                "link": "ov0", "ipackets": "10", "rbytes": "1200",
                "opackets": "7", "obytes": "900", "drops": "11",
                "counters": {
                    "rx_packets": 10, "rx_bytes": 1200, "tx_packets": 7,
                    "tx_bytes": 900, "drop_mtu": 2, "drop_runt": 0,
                    "drop_encap": 0, "drop_no_destination": 3, "drop_send": 1,
                    "drop_backend": 0, "plugin_panics": 4,
                    "drop_future_reason": 5
                }
            },
            {
                "link": "overlay1", "ipackets": "123456789012", "rbytes": "0",
                "opackets": "0", "obytes": "1", "drops": "0",
                "counters": {
                    "rx_packets": 123456789012u64, "rx_bytes": 0, "tx_packets": 0,
                    "tx_bytes": 1, "drop_mtu": 0, "drop_runt": 0,
                    "drop_encap": 0, "drop_no_destination": 0, "drop_send": 0,
                    "drop_backend": 0, "plugin_panics": 0
                },
                "mux": {
                    "endpoint": "udp 10.0.0.1:4789",
                    "counters": {
                        "rx_packets": 50, "rx_bytes": 0,
                        "drop_unknown_vnetid": 0, "drop_bad_header": 0,
                        "drop_short": 6, "drop_oam": 1,
                        "tx_packets": 0, "tx_bytes": 0
                    }
                }
            }
        ])
    );
    // Columns first, in order, then the counters, then the mux; counters in
    // the daemon's order.
    let at = |key: &str| out.find(key).unwrap();
    assert!(at("\"link\"") < at("\"ipackets\""));
    assert!(at("\"drops\"") < at("\"counters\""));
    assert!(at("\"counters\"") < at("\"mux\""));
    assert!(at("\"plugin_panics\"") < at("\"drop_future_reason\""));
    // An inactive device has no mux member at all.
    assert!(json(&out)[0].get("mux").is_none());
    // -v changes nothing in JSON.
    assert_eq!(run(&mut f, &["show", "-s", "-v", "-j"]).unwrap(), out);
}

#[test]
fn show_stats_verbose() {
    let mut f = stats_fake();
    assert_eq!(
        run(&mut f, &["show", "-s", "-v"]).unwrap(),
        "\
LINK      IPACKETS      RBYTES  OPACKETS  OBYTES  DROPS
ov0       10            1200    7         900     11
    rx_packets 10
    rx_bytes 1200
    tx_packets 7
    tx_bytes 900
    drop_mtu 2
    drop_runt 0
    drop_encap 0
    drop_no_destination 3
    drop_send 1
    drop_backend 0
    plugin_panics 4
    drop_future_reason 5
overlay1  123456789012  0       0         1       0
    rx_packets 123456789012
    rx_bytes 0
    tx_packets 0
    tx_bytes 1
    drop_mtu 0
    drop_runt 0
    drop_encap 0
    drop_no_destination 0
    drop_send 0
    drop_backend 0
    plugin_panics 0
    mux udp 10.0.0.1:4789
        rx_packets 50
        rx_bytes 0
        drop_unknown_vnetid 0
        drop_bad_header 0
        drop_short 6
        drop_oam 1
        tx_packets 0
        tx_bytes 0
"
    );
}

#[test]
fn show_stats_empty_and_errors() {
    let mut f = Fake::default();
    assert_eq!(
        run(&mut f, &["show", "-s"]).unwrap(),
        "LINK  IPACKETS  RBYTES  OPACKETS  OBYTES  DROPS\n"
    );
    assert_eq!(run(&mut f, &["show", "-s", "-j"]).unwrap(), "[]\n");
    assert_eq!(
        run(&mut f, &["show", "-s", "ov9"]).unwrap_err(),
        "show -s ov9: no device named ov9 (ENOENT)"
    );
}

/// A reply from a daemon with other counters than this client knows: the
/// columns it cannot fill show `--`, and everything it has is still listed.
#[test]
fn show_stats_other_counters() {
    struct Sparse;
    impl Daemon for Sparse {
        fn transact(&mut self, _: &str, cmd: u8, _: Vec<Attr>) -> Result<Vec<Attr>, ClientError> {
            assert_eq!(cmd, ov::CMD_STATS);
            Ok(vec![
                Attr::str(ov::ATTR_NAME, "ov0"),
                Attr::nested(
                    ov::ATTR_STATS,
                    vec![Attr::nested(
                        ov::ATTR_STAT,
                        vec![
                            Attr::str(ov::ATTR_STAT_NAME, "rx_frames"),
                            Attr::u64(ov::ATTR_STAT_VALUE, 3),
                        ],
                    )],
                ),
            ])
        }
        fn write(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<(), ClientError> {
            unreachable!()
        }
        fn dump(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<Vec<Vec<Attr>>, ClientError> {
            unreachable!()
        }
    }
    let cli = Cli::try_parse_from(["overlayctl", "show", "-s", "-v", "ov0"]).unwrap();
    let out = String::from_utf8(execute(&cli, &mut Sparse).unwrap()).unwrap();
    assert_eq!(
        out,
        "LINK  IPACKETS  RBYTES  OPACKETS  OBYTES  DROPS\n\
         ov0   --        --      --        --      --\n    \
         rx_frames 3\n"
    );
}

/// The counters and `PENDING` of a `LOOKUP_STATS` reply.
type LookupStatsReply = (Vec<(&'static str, u64)>, Option<u32>);

/// A daemon that answers `LOOKUP_STATS` with these counters and
/// `PENDING`, or with an error.
struct LookupStatsDaemon(Result<LookupStatsReply, i32>);

impl Daemon for LookupStatsDaemon {
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        assert_eq!((family, cmd), (tg::NAME, tg::CMD_LOOKUP_STATS));
        assert!(attrs.is_empty(), "LOOKUP_STATS names no device");
        let (counters, pending) = self.0.clone().map_err(|errno| ClientError::Netlink {
            errno,
            message: Some("the daemon refused".into()),
            offset: None,
        })?;
        let stats = counters
            .into_iter()
            .map(|(name, value)| {
                Attr::nested(
                    tg::ATTR_STAT,
                    vec![
                        Attr::str(tg::ATTR_STAT_NAME, name),
                        Attr::u64(tg::ATTR_STAT_VALUE, value),
                    ],
                )
            })
            .collect();
        let mut reply = vec![Attr::nested(tg::ATTR_STATS, stats)];
        if let Some(p) = pending {
            reply.push(Attr::u32(tg::ATTR_PENDING, p));
        }
        Ok(reply)
    }
    fn write(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<(), ClientError> {
        unreachable!()
    }
    fn dump(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<Vec<Vec<Attr>>, ClientError> {
        unreachable!()
    }
}

fn run_lookup_stats(d: &mut LookupStatsDaemon, args: &[&str]) -> Result<String, String> {
    run_on(d, args)
}

/// Runs overlayctl `args` against `d`: its output, or its error as text.
fn run_on(d: &mut dyn Daemon, args: &[&str]) -> Result<String, String> {
    let cli = Cli::try_parse_from(std::iter::once("overlayctl").chain(args.iter().copied()))
        .expect("valid command line");
    execute(&cli, d)
        .map(|out| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
}

#[test]
fn lookup_stats_table_and_json() {
    let mut d = LookupStatsDaemon(Ok((
        vec![
            ("requests", 12),
            ("answers", 10),
            ("timeouts", 3),
            ("late", 1),
        ],
        Some(2),
    )));
    assert_eq!(
        run_lookup_stats(&mut d, &["lookup-stats"]).unwrap(),
        "REQUESTS  ANSWERS  TIMEOUTS  LATE  PENDING\n\
         12        10       3         1     2\n"
    );
    assert_eq!(
        json(&run_lookup_stats(&mut d, &["lookup-stats", "-j"]).unwrap()),
        serde_json::json!([{
            "requests": "12", "answers": "10", "timeouts": "3", "late": "1", "pending": "2",
            "counters": {"requests": 12, "answers": 10, "timeouts": 3, "late": 1}
        }])
    );
}

/// A daemon with other counters than this client knows: the columns it
/// cannot fill show `--`, and JSON still lists every counter it sent.
#[test]
fn lookup_stats_other_counters() {
    let mut d = LookupStatsDaemon(Ok((vec![("requests", 5), ("retries", 7)], None)));
    assert_eq!(
        run_lookup_stats(&mut d, &["lookup-stats"]).unwrap(),
        "REQUESTS  ANSWERS  TIMEOUTS  LATE  PENDING\n\
         5         --       --        --    --\n"
    );
    let v = json(&run_lookup_stats(&mut d, &["lookup-stats", "-j"]).unwrap());
    assert_eq!(
        v[0]["counters"],
        serde_json::json!({"requests": 5, "retries": 7})
    );
    let mut refused = LookupStatsDaemon(Err(libc::EOPNOTSUPP));
    let e = run_lookup_stats(&mut refused, &["lookup-stats"]).unwrap_err();
    assert!(e.starts_with("lookup-stats: the daemon refused"), "{e}");
}

#[test]
fn plugins_table_verbose_and_json() {
    let mut f = Fake::default();
    let plain = run(&mut f, &["plugins"]).unwrap();
    assert_eq!(
        plain,
        "\
NAME    KIND    VERSION  FILE                       PROPERTIES
vxlan   encap   0.1.0    /lib/liboverlay_vxlan.so   vxlan/listen_ip,vxlan/listen_port
direct  lookup  0.1.0    /lib/liboverlay_direct.so  direct/dest_ip,direct/secret
"
    );
    let verbose = run(&mut f, &["plugins", "-v"]).unwrap();
    assert_eq!(
        verbose,
        "\
NAME    KIND    VERSION  FILE                       PROPERTIES
vxlan   encap   0.1.0    /lib/liboverlay_vxlan.so   vxlan/listen_ip,vxlan/listen_port
    destination ip+port, id 3 bytes, header 8 bytes, flags none
    vxlan/listen_ip IP rw req=y runtime=- default=-- possible=--
    vxlan/listen_port UINT rw req=y runtime=- default=4789 possible=1-65535
direct  lookup  0.1.0    /lib/liboverlay_direct.so  direct/dest_ip,direct/secret
    destination ip+port, modes point
    direct/dest_ip IP rw req=y runtime=- default=-- possible=--
    direct/secret INT -w req=- runtime=- default=-- possible=--
"
    );
    let j = json(&run(&mut f, &["plugins", "-j", "-v"]).unwrap());
    assert_eq!(
        j[0],
        serde_json::json!({
            "name": "vxlan", "kind": "encap", "version": "0.1.0",
            "file": "/lib/liboverlay_vxlan.so",
            "properties": "vxlan/listen_ip,vxlan/listen_port",
            "abi_version": "--",
            "destination": "ip+port", "id_size": 3, "max_header_len": 8,
            "flags": "none",
            "props": [
                {"name": "vxlan/listen_ip", "type": "IP", "perm": "rw",
                 "req": "y", "runtime": "-", "default": "--", "possible": "--"},
                {"name": "vxlan/listen_port", "type": "UINT", "perm": "rw",
                 "req": "y", "runtime": "-", "default": "4789", "possible": "1-65535"}
            ]
        })
    );
    assert_eq!(
        (&j[1]["destination"], &j[1]["modes"]),
        (&serde_json::json!("ip+port"), &serde_json::json!("point"))
    );
}

#[test]
fn completions_and_man_need_no_daemon() {
    let mut f = Fake::default();
    let out = run(&mut f, &["completions", "bash"]).unwrap();
    assert!(out.contains("overlayctl"));
    let out = run(&mut f, &["man"]).unwrap();
    assert!(
        out.contains(".TH overlayctl"),
        "{}",
        &out[..200.min(out.len())]
    );
    assert!(f.log.is_empty());
}

/// The same in-memory daemon behind a real socket, answering through
/// nlproto's dispatch validation: what the commands send must pass the
/// daemon's policy checks byte for byte.
mod wire {
    use super::*;
    use nlproto::msg::Message;
    use nlproto::server::{ctrl_reply, pack_datagrams, requests, DEFAULT_DATAGRAM_LIMIT};
    use nlproto::spec::{ctrl, handle, OpSet};
    use std::os::unix::net::UnixDatagram;
    use std::thread::JoinHandle;
    use std::time::Duration;

    const PID: u32 = 7;

    fn serve(sock: UnixDatagram, mut fake: Fake) -> Fake {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match sock.recv(&mut buf) {
                Ok(0) | Err(_) => return fake,
                Ok(n) => n,
            };
            let mut out: Vec<Message> = Vec::new();
            for req in requests(&buf[..n]) {
                let req = match req {
                    Ok(r) => r,
                    Err(e) => {
                        out.push(e.reply(PID).into());
                        continue;
                    }
                };
                if req.family.id == ctrl::GENL_ID_CTRL {
                    out.extend(ctrl_reply(&req, PID));
                    continue;
                }
                let attrs = req.attrs.clone();
                let cmd = req.command.id;
                let family = req.family.name;
                let result = if family == handle::NAME {
                    Ok(vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, PID)]])
                } else if req.is_dump {
                    fake.dump(family, cmd, attrs)
                } else if req.command.ops.contains(OpSet::WRITE) {
                    fake.write(family, cmd, attrs).map(|()| vec![])
                } else {
                    fake.transact(family, cmd, attrs).map(|a| vec![a])
                };
                match result {
                    Ok(items) => out.extend(req.respond(PID, items)),
                    Err(ClientError::Netlink { errno, message, .. }) => out.push(
                        req.fail(errno, message.unwrap_or_default())
                            .reply(PID)
                            .into(),
                    ),
                    Err(e) => panic!("{e}"),
                }
            }
            for d in pack_datagrams(&out, DEFAULT_DATAGRAM_LIMIT) {
                sock.send(&d).unwrap();
            }
        }
    }

    pub(super) fn start(fake: Fake) -> (Connection, JoinHandle<Fake>) {
        let (a, b) = nlproto::client::seqpacket_pair().unwrap();
        let server = std::thread::spawn(move || serve(UnixDatagram::from(b), fake));
        let client = Client::from_fd(a, Duration::from_secs(5)).unwrap();
        (Connection::from_client(client), server)
    }

    pub(super) fn run_on(conn: &mut Connection, args: &[&str]) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("overlayctl").chain(args.iter().copied()))
            .expect("valid command line");
        execute(&cli, conn)
            .map(|out| String::from_utf8(out).unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_command_over_the_wire() {
        let (mut c, server) = start(Fake::default());
        let created = run_on(
            &mut c,
            &[
                "create",
                "-j",
                "-e",
                "vxlan",
                "-s",
                "direct",
                "-v",
                "16777215",
                "-p",
                "vxlan/listen_ip=192.0.2.1,vxlan/listen_port=4789",
                "-p",
                "direct/dest_ip=2001:db8::1",
                "ov0",
            ],
        )
        .unwrap();
        assert_eq!(json(&created)[0]["vnetid"], "16777215");
        run_on(&mut c, &["prop-set", "ov0", "mtu=9000", "direct/secret=-1"]).unwrap();
        let got = run_on(&mut c, &["prop-get", "-j", "ov0"]).unwrap();
        let got = json(&got);
        let value = |name: &str| {
            got.as_array()
                .unwrap()
                .iter()
                .find(|r| r["property"] == name)
                .unwrap()["value"]
                .clone()
        };
        assert_eq!(value("mtu"), "9000");
        assert_eq!(value("vxlan/listen_ip"), "192.0.2.1");
        assert_eq!(value("direct/dest_ip"), "2001:db8::1");
        assert_eq!(value("direct/secret"), "--");
        let stats = json(&run_on(&mut c, &["show", "-s", "-j", "ov0"]).unwrap());
        assert_eq!(stats[0]["counters"]["drop_send"], 0);
        assert!(stats[0].get("mux").is_none());
        run_on(&mut c, &["activate", "ov0"]).unwrap();
        let stats = json(&run_on(&mut c, &["show", "-s", "-j"]).unwrap());
        assert_eq!(stats[0]["link"], "ov0");
        assert_eq!(stats[0]["drops"], "0");
        assert_eq!(stats[0]["mux"]["endpoint"], ENDPOINT);
        assert_eq!(stats[0]["mux"]["counters"]["drop_oam"], 0);
        assert_eq!(
            run_on(&mut c, &["show", "ov0"]).unwrap(),
            "LINK  ENCAP  SEARCH  VNETID    STATE   STATUS\n\
             ov0   vxlan  direct  16777215  active  ok\n"
        );
        assert_eq!(
            run_on(&mut c, &["activate", "ov0"]).unwrap_err(),
            "activate ov0: already active (EEXIST)"
        );
        assert!(run_on(&mut c, &["plugins"])
            .unwrap()
            .contains("vxlan/listen_port"));
        run_on(&mut c, &["delete", "ov0"]).unwrap();
        assert_eq!(run_on(&mut c, &["show", "-j"]).unwrap(), "[]\n");
        drop(c);
        let fake = server.join().unwrap();
        assert!(fake.devices.is_empty());
    }

    #[test]
    fn policy_errors_come_back_as_one_line() {
        let (mut c, server) = start(Fake::default());
        // A name longer than the protocol's 31 bytes fails the daemon's
        // policy check, which names the attribute.
        let long = "x".repeat(40);
        let e = run_on(&mut c, &["show", &long]).unwrap_err();
        assert!(
            e.starts_with(&format!("show {long}: attribute NAME (2)")),
            "{e}"
        );
        assert!(e.ends_with("(EINVAL)"), "{e}");
        assert!(!e.contains('\n'));
        drop(c);
        server.join().unwrap();
    }
}

/// A daemon that answers `SERVER_STATS` with two packet threads, these
/// offloads and one handle.
/// Offloads with their values, and the busy-poll window if the daemon says.
struct StatusDaemon(Vec<(&'static str, u64)>, Option<u32>);

impl Daemon for StatusDaemon {
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        assert_eq!((family, cmd), (handle::NAME, handle::CMD_SERVER_STATS));
        assert!(attrs.is_empty());
        let stat = |(name, value): (&str, u64)| {
            Attr::nested(
                handle::HANDLE_ATTR_STAT,
                vec![
                    Attr::str(handle::HANDLE_ATTR_STAT_NAME, name),
                    Attr::u64(handle::HANDLE_ATTR_STAT_VALUE, value),
                ],
            )
        };
        let busy = self
            .1
            .map(|us| Attr::u32(handle::HANDLE_ATTR_BUSY_POLL, us));
        Ok([
            Attr::u32(handle::HANDLE_ATTR_HANDLES, 1),
            Attr::nested(
                handle::HANDLE_ATTR_STATS,
                vec![stat(("connections", 4)), stat(("requests", 9))],
            ),
            Attr::u32(handle::HANDLE_ATTR_PACKET_THREADS, 2),
            Attr::nested(
                handle::HANDLE_ATTR_OFFLOADS,
                self.0.iter().copied().map(stat).collect(),
            ),
        ]
        .into_iter()
        .chain(busy)
        .collect())
    }
    fn write(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<(), ClientError> {
        unreachable!()
    }
    fn dump(&mut self, _: &str, _: u8, _: Vec<Attr>) -> Result<Vec<Vec<Attr>>, ClientError> {
        unreachable!()
    }
}

fn run_status(d: &mut StatusDaemon, args: &[&str]) -> String {
    run_on(d, args).expect("status")
}

#[test]
fn status_shows_threads_and_offloads_in_use() {
    let mut d = StatusDaemon(
        vec![("tso", 1), ("udp-gso", 0), ("udp-gro", 1), ("coalesce", 1)],
        Some(0),
    );
    assert_eq!(
        run_status(&mut d, &["status"]),
        "PACKET-THREADS  OFFLOADS              BUSY-POLL  HANDLES\n\
         2               tso,udp-gro,coalesce  off        1\n"
    );
    assert_eq!(
        json(&run_status(&mut d, &["status", "-j"])),
        serde_json::json!([{
            "packet-threads": "2", "offloads": "tso,udp-gro,coalesce", "busy-poll": "off",
            "handles": "1",
            "offload": {"tso": "on", "udp-gso": "off", "udp-gro": "on", "coalesce": "on"},
            "counters": {"connections": 4, "requests": 9}
        }])
    );
    // A daemon that does not say how it polls shows none.
    let mut none = StatusDaemon(vec![("tso", 0), ("udp-gso", 0)], None);
    assert!(run_status(&mut none, &["status"]).contains("2               none      --"));
    for (us, shown) in [(250, "250us"), (100_000, "100ms"), (1500, "1500us")] {
        let mut busy = StatusDaemon(vec![("tso", 1)], Some(us));
        let v = json(&run_status(&mut busy, &["status", "-j"]));
        assert_eq!(v[0]["busy-poll"], shown, "{v}");
    }
}
