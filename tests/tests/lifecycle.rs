//! A device's whole life through the nlproto client: family resolution,
//! handles, plugins, create, properties, activation, status, delete.

use nlproto::client::FamilyInfo;
use nlproto::spec::{ctrl, handle, overlay as ov};
use nlproto::{Attr, AttrValue, AttrsExt, GenlMsg};
use overlay_tests::proto::{self, ip, name, uint};
use overlay_tests::{plugin_path, Daemon};

const DO: u32 = ctrl::GENL_CMD_CAP_DO;
const DUMP: u32 = ctrl::GENL_CMD_CAP_DUMP;
const POL: u32 = ctrl::GENL_CMD_CAP_HASPOL;
const ADMIN: u32 = ctrl::GENL_ADMIN_PERM;

fn getfamily(c: &mut nlproto::client::Client, attr: Attr) -> FamilyInfo {
    let reply = c
        .transact(ctrl::NAME, ctrl::CTRL_CMD_GETFAMILY, vec![attr])
        .expect("CTRL_CMD_GETFAMILY");
    assert_eq!(reply.cmd, ctrl::CTRL_CMD_NEWFAMILY);
    assert_eq!(reply.family, ctrl::GENL_ID_CTRL);
    FamilyInfo::from_attrs(&reply.attrs).unwrap()
}

fn overlay_ops() -> Vec<(u32, u32)> {
    vec![
        (1, ADMIN | DO | POL), // CREATE
        (2, ADMIN | DO | POL), // DELETE
        (3, ADMIN | DO | POL), // ACTIVATE
        (4, DO | DUMP | POL),  // PROPINFO
        (5, DO | POL),         // GETPROP
        (6, ADMIN | DO | POL), // SETPROP
        (7, DO | POL),         // STATUS
        (8, DO | DUMP | POL),  // LIST
        (9, DO | DUMP | POL),  // PLUGINS
        (10, DO | DUMP | POL), // STATS
    ]
}

#[test]
fn nlctrl_resolves_and_dumps_the_families() {
    let d = Daemon::start();
    let mut c = d.client();

    let overlay = getfamily(&mut c, Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, "overlay"));
    assert_eq!(overlay.id, 33);
    assert_eq!(overlay.name, "overlay");
    assert_eq!(
        (overlay.version, overlay.hdrsize, overlay.maxattr),
        (1, 0, 38)
    );
    assert_eq!(overlay.ops, overlay_ops());
    assert_eq!(
        overlay.mcast_groups,
        [("config".to_string(), 1), ("status".to_string(), 2),]
    );

    let h = getfamily(
        &mut c,
        Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, "overlay_handle"),
    );
    assert_eq!(h.id, 32);
    assert_eq!((h.version, h.maxattr), (1, 10));
    assert_eq!(
        h.ops,
        vec![(1, DO | POL), (2, DO | POL), (3, DO | POL), (4, DO | POL)]
    );
    assert!(h.mcast_groups.is_empty());

    // By id as well.
    let by_id = getfamily(&mut c, Attr::u16(ctrl::CTRL_ATTR_FAMILY_ID, 33));
    assert_eq!(by_id, overlay);
    // The client's own resolution agrees.
    assert_eq!(c.family_id("overlay").unwrap(), 33);
    assert_eq!(c.family_id("overlay_handle").unwrap(), 32);

    let all = c.families().expect("nlctrl dump");
    let names: Vec<&str> = all.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["nlctrl", "overlay_handle", "overlay", "overlay_target"]
    );
    let nlctrl = &all[0];
    assert_eq!(nlctrl.id, 16);
    assert_eq!((nlctrl.version, nlctrl.maxattr), (2, 10));
    assert_eq!(
        nlctrl.ops,
        vec![(u32::from(ctrl::CTRL_CMD_GETFAMILY), DO | DUMP | POL)]
    );
    assert_eq!(all[1], h);
    assert_eq!(all[2], overlay);
}

#[test]
fn get_pid_is_nonzero_and_distinct_per_connection() {
    let d = Daemon::start();
    let mut a = d.client();
    let mut b = d.client();
    let pid = |c: &mut nlproto::client::Client| {
        let reply = c
            .transact(handle::NAME, handle::CMD_GET_PID, vec![])
            .expect("GET_PID");
        assert_eq!(reply.cmd, handle::CMD_GET_PID);
        // Every message of the daemon carries the handle's PID.
        let attr = reply.attrs.get_u32(handle::HANDLE_ATTR_PID).unwrap();
        assert_eq!(
            reply.pid, attr,
            "nlmsg_pid of the reply is the handle's PID"
        );
        attr
    };
    let pa = pid(&mut a);
    let pb = pid(&mut b);
    assert_ne!(pa, 0);
    assert_ne!(pb, 0);
    assert_ne!(pa, pb);
    assert_eq!(pa, a.pid());
    assert_eq!(pb, b.pid());
    // Stable on one connection.
    assert_eq!(pid(&mut a), pa);
    // Not reused after a connection closes.
    drop(b);
    let mut c = d.client();
    let pc = pid(&mut c);
    assert!(pc != pa && pc != pb, "{pc} reuses {pa} or {pb}");
}

fn possible(attrs: &[Attr]) -> Vec<String> {
    attrs
        .get_nested(ov::ATTR_PROP_POSSIBLE)
        .unwrap_or(&[])
        .all(ov::ATTR_POSSIBLE_VALUE)
        .map(|a| match &a.value {
            AttrValue::Str(s) => s.clone(),
            v => panic!("POSSIBLE_VALUE {v:?}"),
        })
        .collect()
}

fn plugin_props(p: &GenlMsg) -> Vec<Vec<Attr>> {
    p.attrs
        .get_nested(ov::ATTR_PROPS)
        .expect("PROPS in a PLUGINS reply")
        .iter()
        .map(|a| {
            assert_eq!(a.kind, ov::ATTR_PROP);
            match &a.value {
                AttrValue::Nested(v) => v.clone(),
                v => panic!("PROP {v:?}"),
            }
        })
        .collect()
}

#[test]
fn plugins_dump_describes_geneve_vxlan_direct_etcd_and_files() {
    let d = Daemon::start();
    let mut c = d.client();
    let plugins = c.dump(ov::NAME, ov::CMD_PLUGINS, vec![]).expect("PLUGINS");
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p.attrs.get_str(ov::ATTR_PLUGIN_NAME).unwrap())
        .collect();
    assert_eq!(names, ["geneve", "vxlan", "direct", "etcd", "files"]);

    let gn = &plugins[0].attrs;
    assert_eq!(gn.get_u32(ov::ATTR_PLUGIN_KIND), Some(ov::KIND_ENCAP));
    assert_eq!(gn.get_u32(ov::ATTR_PLUGIN_ID_SIZE), Some(3));
    assert_eq!(
        gn.get_u32(ov::ATTR_PLUGIN_DEST),
        Some(ov::DEST_IP | ov::DEST_PORT)
    );
    let gn_props: Vec<String> = plugin_props(&plugins[0])
        .iter()
        .map(|p| p.get_str(ov::ATTR_PROP_NAME).unwrap().to_string())
        .collect();
    assert_eq!(
        gn_props,
        ["geneve/listen_ip", "geneve/listen_port", "geneve/options"]
    );

    let vx = &plugins[1].attrs;
    assert_eq!(vx.get_u32(ov::ATTR_PLUGIN_KIND), Some(ov::KIND_ENCAP));
    assert_eq!(vx.get_u32(ov::ATTR_PLUGIN_ID_SIZE), Some(3));
    assert_eq!(
        vx.get_u32(ov::ATTR_PLUGIN_DEST),
        Some(ov::DEST_IP | ov::DEST_PORT)
    );
    assert_eq!(vx.get_u32(ov::ATTR_PLUGIN_FLAGS), Some(ov::FLAG_VLAN_TAG));
    assert!(!vx.has(ov::ATTR_PLUGIN_MODES));
    assert!(!vx.get_str(ov::ATTR_PLUGIN_VERSION).unwrap().is_empty());
    assert!(!vx.get_str(ov::ATTR_ABI_VERSION).unwrap().is_empty());
    let file = vx.get_str(ov::ATTR_PLUGIN_FILE).unwrap();
    assert_eq!(
        std::path::Path::new(file),
        std::fs::canonicalize(plugin_path("overlay_vxlan")).unwrap()
    );
    let props = plugin_props(&plugins[1]);
    assert_eq!(props.len(), 2);
    let listen_ip = &props[0];
    assert_eq!(
        listen_ip.get_str(ov::ATTR_PROP_NAME),
        Some("vxlan/listen_ip")
    );
    assert_eq!(
        listen_ip.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_IP)
    );
    assert_eq!(
        listen_ip.get_u32(ov::ATTR_PROP_PERM),
        Some(ov::PERM_REQ | ov::PERM_READ | ov::PERM_WRITE)
    );
    assert!(!listen_ip.has(ov::ATTR_PROP_DEFAULT));
    let port = &props[1];
    assert_eq!(port.get_str(ov::ATTR_PROP_NAME), Some("vxlan/listen_port"));
    assert_eq!(port.get_u32(ov::ATTR_PROP_TYPE), Some(ov::PROP_TYPE_UINT));
    assert_eq!(port.get_bytes(ov::ATTR_PROP_DEFAULT), Some(&uint(4789)[..]));
    assert_eq!(port.get_u64(ov::ATTR_PROP_RANGE_MIN), Some(1));
    assert_eq!(port.get_u64(ov::ATTR_PROP_RANGE_MAX), Some(65535));

    let di = &plugins[2].attrs;
    assert_eq!(di.get_u32(ov::ATTR_PLUGIN_KIND), Some(ov::KIND_LOOKUP));
    assert_eq!(di.get_u32(ov::ATTR_PLUGIN_MODES), Some(ov::MODE_POINT));
    assert_eq!(
        di.get_u32(ov::ATTR_PLUGIN_DEST),
        Some(ov::DEST_IP | ov::DEST_PORT)
    );
    assert!(!di.has(ov::ATTR_PLUGIN_ID_SIZE));
    assert!(!di.has(ov::ATTR_PLUGIN_FLAGS));
    assert!(di
        .get_str(ov::ATTR_PLUGIN_FILE)
        .unwrap()
        .ends_with("liboverlay_direct.so"));
    let props = plugin_props(&plugins[2]);
    let names: Vec<&str> = props
        .iter()
        .map(|p| p.get_str(ov::ATTR_PROP_NAME).unwrap())
        .collect();
    assert_eq!(names, ["direct/dest_ip", "direct/dest_port"]);
    assert_eq!(props[1].get_u64(ov::ATTR_PROP_RANGE_MIN), Some(1));
    assert_eq!(props[1].get_u64(ov::ATTR_PROP_RANGE_MAX), Some(65535));
    assert!(!props[1].has(ov::ATTR_PROP_DEFAULT));

    // The transaction form answers for one plugin.
    let one = c
        .transact(
            ov::NAME,
            ov::CMD_PLUGINS,
            vec![Attr::str(ov::ATTR_PLUGIN_NAME, "direct")],
        )
        .expect("PLUGINS transaction");
    assert_eq!(one.attrs, plugins[2].attrs);

    let et = &plugins[3].attrs;
    assert_eq!(et.get_u32(ov::ATTR_PLUGIN_KIND), Some(ov::KIND_LOOKUP));
    assert_eq!(et.get_u32(ov::ATTR_PLUGIN_MODES), Some(ov::MODE_DYNAMIC));
    assert_eq!(
        et.get_u32(ov::ATTR_PLUGIN_DEST),
        Some(ov::DEST_IP | ov::DEST_PORT)
    );
    assert!(et
        .get_str(ov::ATTR_PLUGIN_FILE)
        .unwrap()
        .ends_with("liboverlay_etcd.so"));
    let props = plugin_props(&plugins[3]);
    assert_eq!(props[0].get_str(ov::ATTR_PROP_NAME), Some("etcd/endpoints"));
    assert_eq!(
        props[0].get_u32(ov::ATTR_PROP_PERM),
        Some(ov::PERM_REQ | ov::PERM_READ | ov::PERM_WRITE)
    );

    let fi = &plugins[4].attrs;
    assert_eq!(fi.get_u32(ov::ATTR_PLUGIN_KIND), Some(ov::KIND_LOOKUP));
    assert_eq!(fi.get_u32(ov::ATTR_PLUGIN_MODES), Some(ov::MODE_DYNAMIC));
    assert_eq!(
        fi.get_u32(ov::ATTR_PLUGIN_DEST),
        Some(ov::DEST_IP | ov::DEST_PORT)
    );
    assert!(fi
        .get_str(ov::ATTR_PLUGIN_FILE)
        .unwrap()
        .ends_with("liboverlay_files.so"));
    let props = plugin_props(&plugins[4]);
    let perms: Vec<(&str, u32)> = props
        .iter()
        .map(|p| {
            (
                p.get_str(ov::ATTR_PROP_NAME).unwrap(),
                p.get_u32(ov::ATTR_PROP_PERM).unwrap(),
            )
        })
        .collect();
    let rrw_runtime = ov::PERM_REQ | ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME;
    let rw_runtime = ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME;
    assert_eq!(
        perms,
        [
            ("files/config", rrw_runtime),
            ("files/default_port", rw_runtime),
            ("files/misses", ov::PERM_READ),
            ("files/arp", ov::PERM_READ),
            ("files/ndp", ov::PERM_READ),
            ("files/dhcp", ov::PERM_READ),
            ("files/dropped", ov::PERM_READ),
        ]
    );
    assert_eq!(
        props[1].get_bytes(ov::ATTR_PROP_DEFAULT),
        Some(&uint(4789)[..])
    );
}

fn check_device_reply(m: &GenlMsg, linkid: u32, dev: &str, vnetid: u64, state: u32) {
    let a = &m.attrs;
    assert_eq!(a.get_u32(ov::ATTR_LINKID), Some(linkid), "{a:?}");
    assert_eq!(a.get_str(ov::ATTR_NAME), Some(dev));
    assert_eq!(a.get_str(ov::ATTR_ENCAP), Some("vxlan"));
    assert_eq!(a.get_str(ov::ATTR_SEARCH), Some("direct"));
    assert_eq!(a.get_u64(ov::ATTR_VNETID), Some(vnetid));
    assert_eq!(a.get_u32(ov::ATTR_STATE), Some(state));
    assert_eq!(a.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_OK));
    assert_eq!(a.get_str(ov::ATTR_STATUS_MSG), Some(""));
}

#[test]
fn device_lifecycle() {
    let d = Daemon::start();
    let mut c = d.client();
    assert!(proto::device_names(&mut c).is_empty());

    // CREATE with initial properties.
    let created = proto::create(
        &mut c,
        "ov0",
        42,
        &[("vxlan/listen_ip", ip("10.200.0.1")), ("mtu", uint(1450))],
    )
    .expect("CREATE");
    assert_eq!(created.cmd, ov::CMD_CREATE);
    check_device_reply(&created, 1, "ov0", 42, ov::STATE_CREATED);
    let second = proto::create(&mut c, "ov1", 43, &[]).expect("CREATE ov1");
    check_device_reply(&second, 2, "ov1", 43, ov::STATE_CREATED);

    // LIST: dump and transaction (by name and by link id).
    let all = c.dump(ov::NAME, ov::CMD_LIST, vec![]).expect("LIST dump");
    assert_eq!(all.len(), 2);
    check_device_reply(&all[0], 1, "ov0", 42, ov::STATE_CREATED);
    check_device_reply(&all[1], 2, "ov1", 43, ov::STATE_CREATED);
    let by_name = c
        .transact(ov::NAME, ov::CMD_LIST, vec![name("ov1")])
        .unwrap();
    check_device_reply(&by_name, 2, "ov1", 43, ov::STATE_CREATED);
    let by_id = c
        .transact(ov::NAME, ov::CMD_LIST, vec![Attr::u32(ov::ATTR_LINKID, 1)])
        .unwrap();
    check_device_reply(&by_id, 1, "ov0", 42, ov::STATE_CREATED);
    // NAME wins over LINKID.
    let both = c
        .transact(
            ov::NAME,
            ov::CMD_LIST,
            vec![Attr::u32(ov::ATTR_LINKID, 1), name("ov1")],
        )
        .unwrap();
    assert_eq!(both.attrs.get_str(ov::ATTR_NAME), Some("ov1"));

    // PROPINFO dump: order, ids, types, permissions, defaults, ranges.
    let info = c
        .dump(ov::NAME, ov::CMD_PROPINFO, vec![name("ov0")])
        .expect("PROPINFO dump");
    let names: Vec<&str> = info
        .iter()
        .map(|m| m.attrs.get_str(ov::ATTR_PROP_NAME).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mtu",
            "vnetid",
            "encap",
            "search",
            "backend",
            "ifname",
            "srcport_min",
            "srcport_max",
            "flood",
            "lookup_timeout",
            "cache_entry_bytes",
            "cache_device_bytes",
            "cache_ttl",
            "cache_max_entries",
            "vxlan/listen_ip",
            "vxlan/listen_port",
            "direct/dest_ip",
            "direct/dest_port"
        ]
    );
    // The generic ones are what clients are told to expect at CREATE.
    let generic: Vec<(&str, u32)> = info
        .iter()
        .map(|m| {
            (
                m.attrs.get_str(ov::ATTR_PROP_NAME).unwrap(),
                m.attrs.get_u32(ov::ATTR_PROP_TYPE).unwrap(),
            )
        })
        .filter(|(n, _)| !n.contains('/'))
        .collect();
    assert_eq!(generic, ov::GENERIC_PROPS);
    for (i, m) in info.iter().enumerate() {
        assert_eq!(m.attrs.get_u32(ov::ATTR_PROP_ID), Some(i as u32));
        assert_eq!(m.attrs.get_u32(ov::ATTR_LINKID), Some(1));
        assert_eq!(m.attrs.get_str(ov::ATTR_NAME), Some("ov0"));
    }
    let mtu = &info[0].attrs;
    assert_eq!(mtu.get_u32(ov::ATTR_PROP_TYPE), Some(ov::PROP_TYPE_UINT));
    assert_eq!(
        mtu.get_u32(ov::ATTR_PROP_PERM),
        Some(ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME)
    );
    assert_eq!(mtu.get_bytes(ov::ATTR_PROP_DEFAULT), Some(&uint(1400)[..]));
    assert_eq!(mtu.get_u64(ov::ATTR_PROP_RANGE_MIN), Some(576));
    assert_eq!(mtu.get_u64(ov::ATTR_PROP_RANGE_MAX), Some(8900));
    let vnetid = &info[1].attrs;
    assert_eq!(vnetid.get_u32(ov::ATTR_PROP_TYPE), Some(ov::PROP_TYPE_UINT));
    assert_eq!(
        vnetid.get_u32(ov::ATTR_PROP_PERM),
        Some(ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME)
    );
    assert_eq!(vnetid.get_u64(ov::ATTR_PROP_RANGE_MIN), Some(0));
    assert_eq!(vnetid.get_u64(ov::ATTR_PROP_RANGE_MAX), Some(16_777_215));
    for (m, plugins) in [
        (&info[2].attrs, &["geneve", "vxlan"][..]),
        (&info[3].attrs, &["direct", "etcd", "files"][..]),
    ] {
        assert_eq!(m.get_u32(ov::ATTR_PROP_TYPE), Some(ov::PROP_TYPE_STRING));
        assert_eq!(m.get_u32(ov::ATTR_PROP_PERM), Some(ov::PERM_READ));
        assert_eq!(possible(m), plugins);
    }
    let backend = &info[4].attrs;
    assert_eq!(possible(backend), ["tap", "afpacket"]);
    assert_eq!(
        backend.get_bytes(ov::ATTR_PROP_DEFAULT),
        Some(&b"tap\0"[..])
    );
    for m in &info[6..8] {
        assert_eq!(
            m.attrs.get_u32(ov::ATTR_PROP_PERM),
            Some(ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME)
        );
        assert_eq!(m.attrs.get_u64(ov::ATTR_PROP_RANGE_MAX), Some(65535));
    }
    // The dynamic-mode settings: runtime-writable, with defaults.
    for m in &info[8..14] {
        assert_eq!(
            m.attrs.get_u32(ov::ATTR_PROP_PERM),
            Some(ov::PERM_READ | ov::PERM_WRITE | ov::PERM_RUNTIME)
        );
        assert!(m.attrs.get_bytes(ov::ATTR_PROP_DEFAULT).is_some());
    }
    for m in info[4..6].iter().chain(&info[14..]) {
        assert_eq!(
            m.attrs.get_u32(ov::ATTR_PROP_PERM),
            Some(ov::PERM_REQ | ov::PERM_READ | ov::PERM_WRITE),
            "{:?}",
            m.attrs.get_str(ov::ATTR_PROP_NAME)
        );
    }
    // PROPINFO transaction for one property matches its dump entry.
    let one = c
        .transact(
            ov::NAME,
            ov::CMD_PROPINFO,
            vec![
                name("ov0"),
                Attr::str(ov::ATTR_PROP_NAME, "vxlan/listen_port"),
            ],
        )
        .unwrap();
    assert_eq!(one.attrs, info[15].attrs);

    // GETPROP: generic and plugin properties, in their wire encodings.
    let get = |c: &mut nlproto::client::Client, prop: &str| {
        c.transact(
            ov::NAME,
            ov::CMD_GETPROP,
            vec![name("ov0"), Attr::str(ov::ATTR_PROP_NAME, prop)],
        )
        .unwrap_or_else(|e| panic!("GETPROP {prop}: {e}"))
    };
    let mtu = get(&mut c, "mtu");
    assert_eq!(mtu.attrs.get_u32(ov::ATTR_LINKID), Some(1));
    assert_eq!(mtu.attrs.get_str(ov::ATTR_PROP_NAME), Some("mtu"));
    assert_eq!(
        mtu.attrs.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_UINT)
    );
    assert_eq!(
        mtu.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&uint(1450)[..])
    );
    let v = get(&mut c, "vnetid");
    assert_eq!(v.attrs.get_bytes(ov::ATTR_PROP_VALUE), Some(&uint(42)[..]));
    let e = get(&mut c, "encap");
    assert_eq!(
        e.attrs.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_STRING)
    );
    assert_eq!(
        e.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&b"vxlan\0"[..])
    );
    let s = get(&mut c, "search");
    assert_eq!(
        s.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&b"direct\0"[..])
    );
    let lip = get(&mut c, "vxlan/listen_ip");
    assert_eq!(
        lip.attrs.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_IP)
    );
    let raw = lip.attrs.get_bytes(ov::ATTR_PROP_VALUE).unwrap();
    assert_eq!(raw.len(), 16);
    assert_eq!(
        raw,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 200, 0, 1],
        "IPv4 is stored v4-mapped, network order"
    );
    let port = get(&mut c, "vxlan/listen_port");
    assert_eq!(
        port.attrs.get_bytes(ov::ATTR_PROP_VALUE),
        Some(&uint(4789)[..])
    );
    let unset = get(&mut c, "direct/dest_ip");
    assert_eq!(
        unset.attrs.get_u32(ov::ATTR_PROP_TYPE),
        Some(ov::PROP_TYPE_IP)
    );
    assert!(
        !unset.attrs.has(ov::ATTR_PROP_VALUE),
        "unset: no PROP_VALUE"
    );

    // SETPROP, read back.
    proto::setprop(&mut c, "ov0", "direct/dest_ip", ip("10.200.0.2")).unwrap();
    proto::setprop(&mut c, "ov0", "direct/dest_port", uint(4789)).unwrap();
    proto::setprop(&mut c, "ov0", "vxlan/listen_port", uint(8472)).unwrap();
    proto::setprop(&mut c, "ov0", "vnetid", uint(4242)).unwrap();
    assert_eq!(
        proto::getprop(&mut c, "ov0", "direct/dest_ip").unwrap(),
        Some(ip("10.200.0.2"))
    );
    assert_eq!(
        proto::getprop_uint(&mut c, "ov0", "vxlan/listen_port"),
        8472
    );
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "vnetid"), 4242);
    // The device's VNETID follows the property.
    let listed = c
        .transact(ov::NAME, ov::CMD_LIST, vec![name("ov0")])
        .unwrap();
    assert_eq!(listed.attrs.get_u64(ov::ATTR_VNETID), Some(4242));

    // ACTIVATE, then STATUS.
    proto::activate(&mut c, "ov0").expect("ACTIVATE");
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE);
    assert_eq!(proto::state(&mut c, "ov1"), ov::STATE_CREATED);
    let status = c
        .transact(ov::NAME, ov::CMD_STATUS, vec![name("ov0")])
        .expect("STATUS");
    assert_eq!(status.attrs.get_u32(ov::ATTR_LINKID), Some(1));
    assert_eq!(status.attrs.get_str(ov::ATTR_NAME), Some("ov0"));
    assert_eq!(status.attrs.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_OK));
    assert_eq!(status.attrs.get_str(ov::ATTR_STATUS_MSG), Some(""));
    // The runtime property still changes while active.
    proto::setprop(&mut c, "ov0", "mtu", uint(8900)).unwrap();
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 8900);

    // DELETE of the active device, and of the other by link id.
    proto::delete(&mut c, "ov0").expect("DELETE of an active device");
    assert_eq!(proto::device_names(&mut c), ["ov1"]);
    c.write(
        ov::NAME,
        ov::CMD_DELETE,
        vec![Attr::u32(ov::ATTR_LINKID, 2)],
    )
    .expect("DELETE by link id");
    assert!(proto::device_names(&mut c).is_empty());

    // Link ids are never reused; names are.
    let again = proto::create(&mut c, "ov0", 42, &[]).unwrap();
    check_device_reply(&again, 3, "ov0", 42, ov::STATE_CREATED);
    proto::delete(&mut c, "ov0").unwrap();
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn writes_without_ack_are_silent_and_errors_always_answered() {
    use nlproto::msg::NLM_F_REQUEST;
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    // A SETPROP without NLM_F_ACK gets no answer; the GET_PID sent after it
    // in the same datagram is the first thing answered.
    let mut datagram = proto::request(
        ov::ID,
        ov::CMD_SETPROP,
        1,
        NLM_F_REQUEST,
        900,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_PROP_NAME, "mtu"),
            Attr::bytes(ov::ATTR_PROP_VALUE, uint(1500)),
        ],
    );
    // The same without NLM_F_ACK but failing: answered anyway.
    datagram.extend(proto::request(
        ov::ID,
        ov::CMD_SETPROP,
        1,
        NLM_F_REQUEST,
        901,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_PROP_NAME, "mtu"),
            Attr::bytes(ov::ATTR_PROP_VALUE, uint(1)),
        ],
    ));
    datagram.extend(proto::request(
        handle::ID,
        handle::CMD_GET_PID,
        1,
        NLM_F_REQUEST,
        902,
        vec![],
    ));
    c.send_raw(&datagram).unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &nlproto::Message| m.seq() == 902) {
        seen.extend(proto::recv_messages(&mut c));
    }
    let seqs: Vec<u32> = seen.iter().map(|m| m.seq()).collect();
    assert_eq!(seqs, [901, 902], "{seen:?}");
    match &seen[0] {
        nlproto::Message::Error(e) => assert_eq!(e.errno, libc::EINVAL),
        other => panic!("{other:?}"),
    }
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1500);
}
