//! Every refusal of the overlay family: the errno, an extended-ack text
//! that names what is wrong, and no state change.

use nlproto::client::Client;
use nlproto::spec::overlay as ov;
use nlproto::Attr;
use overlay_tests::proto::{self, expect_err, expect_err_in, full_props, ip, name, uint};
use overlay_tests::Daemon;

fn client() -> (Daemon, Client) {
    let d = Daemon::start();
    let c = d.client();
    (d, c)
}

#[test]
fn create_duplicate_name() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    expect_err(proto::create(&mut c, "ov0", 2, &[]), libc::EEXIST, &["ov0"]);
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "vnetid"), 1);
}

#[test]
fn create_duplicate_underlay_endpoint_and_vnetid() {
    let (_d, mut c) = client();
    let listen = |a: &str| vec![("vxlan/listen_ip", ip(a))];
    proto::create(&mut c, "ov0", 42, &listen("10.0.0.1")).unwrap();
    let text = expect_err(
        proto::create(&mut c, "ov1", 42, &listen("10.0.0.1")),
        libc::EEXIST,
        &["ov0", "42", "10.0.0.1"],
    );
    assert!(text.contains("4789"), "{text}");
    // The port written explicitly is the same endpoint.
    let mut same = listen("10.0.0.1");
    same.push(("vxlan/listen_port", uint(4789)));
    expect_err(
        proto::create(&mut c, "ov1", 42, &same),
        libc::EEXIST,
        &["ov0"],
    );
    assert_eq!(proto::device_names(&mut c), ["ov0"]);

    // Any one of address, port or vnetid differing is another endpoint.
    proto::create(&mut c, "ov1", 42, &listen("10.0.0.2")).expect("other listen ip");
    // (The port goes first: see
    // create_props_are_checked_for_uniqueness_as_a_whole.)
    let port = [
        ("vxlan/listen_port", uint(4790)),
        ("vxlan/listen_ip", ip("10.0.0.1")),
    ];
    proto::create(&mut c, "ov2", 42, &port).expect("other listen port");
    proto::create(&mut c, "ov3", 43, &listen("10.0.0.1")).expect("other vnetid");
    // Without a listen address there is no endpoint yet to collide.
    proto::create(&mut c, "ov4", 42, &[]).expect("no listen ip");
    assert_eq!(
        proto::device_names(&mut c),
        ["ov0", "ov1", "ov2", "ov3", "ov4"]
    );
}

/// CREATE applies its PROPS "atomically with the create": only the
/// resulting device must be unique, whatever order the properties come in.
#[test]
fn create_props_are_checked_for_uniqueness_as_a_whole() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 42, &[("vxlan/listen_ip", ip("10.0.0.1"))]).unwrap();
    // Port first: the device is 10.0.0.1:4790, unique.
    proto::create(
        &mut c,
        "ov1",
        42,
        &[
            ("vxlan/listen_port", uint(4790)),
            ("vxlan/listen_ip", ip("10.0.0.1")),
        ],
    )
    .expect("10.0.0.1:4790 vnetid 42, port given first");
    // The same device with the address first must be accepted too.
    proto::create(
        &mut c,
        "ov2",
        42,
        &[
            ("vxlan/listen_ip", ip("10.0.0.1")),
            ("vxlan/listen_port", uint(4791)),
        ],
    )
    .expect("10.0.0.1:4791 vnetid 42, address given first");
    // And a vnetid given in PROPS counts, not the one it replaces.
    proto::create(
        &mut c,
        "ov3",
        7,
        &[("vxlan/listen_ip", ip("10.0.0.1")), ("vnetid", uint(43))],
    )
    .expect("10.0.0.1:4789 vnetid 43 through PROPS");
    let text = expect_err(
        proto::create(
            &mut c,
            "ov4",
            43,
            &[("vxlan/listen_ip", ip("10.0.0.1")), ("vnetid", uint(42))],
        ),
        libc::EEXIST,
        &["ov0"],
    );
    assert!(text.contains("42"), "{text}");
    assert_eq!(proto::device_names(&mut c), ["ov0", "ov1", "ov2", "ov3"]);
}

#[test]
fn setprop_that_would_duplicate_an_endpoint_keeps_the_old_value() {
    let (_d, mut c) = client();
    let listen = |a: &str| vec![("vxlan/listen_ip", ip(a))];
    proto::create(&mut c, "ov0", 42, &listen("10.0.0.1")).unwrap();
    proto::create(&mut c, "ov1", 42, &listen("10.0.0.2")).unwrap();
    proto::create(&mut c, "ov2", 43, &listen("10.0.0.1")).unwrap();
    let port = [
        ("vxlan/listen_port", uint(4790)),
        ("vxlan/listen_ip", ip("10.0.0.1")),
    ];
    proto::create(&mut c, "ov3", 42, &port).unwrap();
    proto::create(&mut c, "ov4", 42, &[]).unwrap();

    // Listen address.
    expect_err(
        proto::setprop(&mut c, "ov1", "vxlan/listen_ip", ip("10.0.0.1")),
        libc::EEXIST,
        &["ov0", "42"],
    );
    assert_eq!(
        proto::getprop(&mut c, "ov1", "vxlan/listen_ip").unwrap(),
        Some(ip("10.0.0.2"))
    );
    // vnetid.
    expect_err(
        proto::setprop(&mut c, "ov2", "vnetid", uint(42)),
        libc::EEXIST,
        &["ov0", "42"],
    );
    assert_eq!(proto::getprop_uint(&mut c, "ov2", "vnetid"), 43);
    let listed = c
        .transact(ov::NAME, ov::CMD_LIST, vec![name("ov2")])
        .unwrap();
    assert_eq!(
        nlproto::AttrsExt::get_u64(listed.attrs.as_slice(), ov::ATTR_VNETID),
        Some(43)
    );
    // Listen port.
    expect_err(
        proto::setprop(&mut c, "ov3", "vxlan/listen_port", uint(4789)),
        libc::EEXIST,
        &["ov0"],
    );
    assert_eq!(
        proto::getprop_uint(&mut c, "ov3", "vxlan/listen_port"),
        4790
    );
    // First listen address of a device that had none.
    expect_err(
        proto::setprop(&mut c, "ov4", "vxlan/listen_ip", ip("10.0.0.1")),
        libc::EEXIST,
        &["ov0"],
    );
    assert_eq!(
        proto::getprop(&mut c, "ov4", "vxlan/listen_ip").unwrap(),
        None
    );

    // Setting a device's own current value is no conflict.
    proto::setprop(&mut c, "ov0", "vxlan/listen_ip", ip("10.0.0.1")).unwrap();
    proto::setprop(&mut c, "ov0", "vnetid", uint(42)).unwrap();
    // A change that leaves the endpoint unique is accepted.
    proto::setprop(&mut c, "ov2", "vnetid", uint(44)).unwrap();
    assert_eq!(proto::getprop_uint(&mut c, "ov2", "vnetid"), 44);
}

#[test]
fn vnetid_range_follows_the_encapsulation() {
    let (_d, mut c) = client();
    let text = expect_err(
        proto::create(&mut c, "ov0", 16_777_216, &[]),
        libc::EINVAL,
        &["16777216"],
    );
    assert!(
        text.contains("16777215"),
        "the allowed range is named: {text}"
    );
    assert!(proto::device_names(&mut c).is_empty());
    expect_err(
        proto::create(&mut c, "ov0", u64::MAX, &[]),
        libc::EINVAL,
        &["vnetid"],
    );
    let created = proto::create(&mut c, "ov0", 16_777_215, &[]).expect("largest VNI");
    assert_eq!(
        nlproto::AttrsExt::get_u64(created.attrs.as_slice(), ov::ATTR_VNETID),
        Some(16_777_215)
    );
    proto::create(&mut c, "ov1", 0, &[]).expect("VNI 0");
    expect_err(
        proto::setprop(&mut c, "ov1", "vnetid", uint(16_777_216)),
        libc::EINVAL,
        &["vnetid", "16777215"],
    );
    assert_eq!(proto::getprop_uint(&mut c, "ov1", "vnetid"), 0);
}

#[test]
fn unknown_plugins_are_named_with_the_loaded_ones() {
    let (_d, mut c) = client();
    let text = expect_err(
        proto::create_with(&mut c, "ov0", "nvgre", "direct", 1, &[]),
        libc::ENOENT,
        &["nvgre", "geneve", "vxlan"],
    );
    assert!(
        !text.contains("direct"),
        "lists encapsulations only: {text}"
    );
    expect_err(
        proto::create_with(&mut c, "ov0", "vxlan", "svp", 1, &[]),
        libc::ENOENT,
        &["svp", "direct", "files"],
    );
    // A plugin of the other kind is not accepted in its place.
    expect_err(
        proto::create_with(&mut c, "ov0", "direct", "vxlan", 1, &[]),
        libc::ENOENT,
        &["direct"],
    );
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn create_with_unknown_property_leaves_nothing() {
    let (_d, mut c) = client();
    expect_err(
        proto::create(
            &mut c,
            "ov0",
            1,
            &[("mtu", uint(1500)), ("vxlan/nosuch", uint(1))],
        ),
        libc::ENOENT,
        &["vxlan/nosuch"],
    );
    assert!(proto::device_names(&mut c).is_empty());
    // The name is still free.
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1400);
}

#[test]
fn create_with_bad_property_value_leaves_nothing() {
    let (_d, mut c) = client();
    for (prop, value, needle) in [
        ("mtu", uint(10), "mtu"),
        ("mtu", vec![0u8; 4], "mtu"),
        ("vxlan/listen_ip", vec![10, 0, 0, 1], "vxlan/listen_ip"),
        ("vxlan/listen_ip", ip("224.0.0.1"), "vxlan/listen_ip"),
        ("vxlan/listen_port", uint(0), "vxlan/listen_port"),
        ("direct/dest_port", uint(65536), "direct/dest_port"),
    ] {
        // A good value first: all or nothing.
        let list = [("direct/dest_ip", ip("10.0.0.2")), (prop, value)];
        expect_err(
            proto::create(&mut c, "ov0", 1, &list),
            libc::EINVAL,
            &[needle],
        );
        assert!(
            proto::device_names(&mut c).is_empty(),
            "a device is left after a bad {prop}"
        );
    }
    // A read-only property cannot be given either.
    expect_err(
        proto::create(&mut c, "ov0", 1, &[("encap", b"vxlan\0".to_vec())]),
        libc::EPERM,
        &["encap"],
    );
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn create_with_bad_name() {
    let (_d, mut c) = client();
    for bad in ["0ov", "ov/0", "ov 0"] {
        expect_err(proto::create(&mut c, bad, 1, &[]), libc::EINVAL, &[bad]);
    }
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn activate_names_every_unset_required_property() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    let text = expect_err(
        proto::activate(&mut c, "ov0"),
        libc::EINVAL,
        &[
            "ov0",
            "vxlan/listen_ip",
            "direct/dest_ip",
            "direct/dest_port",
        ],
    );
    // The port has a default, so it is not missing.
    assert!(!text.contains("vxlan/listen_port"), "{text}");
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_CREATED);

    proto::setprop(&mut c, "ov0", "vxlan/listen_ip", ip("10.0.0.1")).unwrap();
    proto::setprop(&mut c, "ov0", "direct/dest_port", uint(4789)).unwrap();
    let text = expect_err(
        proto::activate(&mut c, "ov0"),
        libc::EINVAL,
        &["direct/dest_ip"],
    );
    assert!(!text.contains("vxlan/listen_ip"), "{text}");
    assert!(!text.contains("direct/dest_port"), "{text}");
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_CREATED);

    proto::setprop(&mut c, "ov0", "direct/dest_ip", ip("10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE);
}

#[test]
fn activate_twice() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    expect_err(proto::activate(&mut c, "ov0"), libc::EEXIST, &["ov0"]);
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE);
}

#[test]
fn active_device_refuses_non_runtime_properties() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 7, &full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    assert_eq!(libc::ENOTSUP, 95);
    for (prop, value) in [
        ("ifname", b"other0\0".to_vec()),
        ("backend", b"afpacket\0".to_vec()),
        ("vxlan/listen_ip", ip("10.0.0.9")),
        ("vxlan/listen_port", uint(4790)),
        ("direct/dest_ip", ip("10.0.0.9")),
        ("direct/dest_port", uint(4790)),
    ] {
        let before = proto::getprop(&mut c, "ov0", prop).unwrap();
        expect_err(
            proto::setprop(&mut c, "ov0", prop, value),
            libc::ENOTSUP,
            &[prop, "ov0"],
        );
        assert_eq!(
            proto::getprop(&mut c, "ov0", prop).unwrap(),
            before,
            "{prop}"
        );
    }
    proto::setprop(&mut c, "ov0", "mtu", uint(1500)).expect("mtu is runtime");
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1500);
    // The packet path is quiesced and re-keyed for a new vnetid.
    proto::setprop(&mut c, "ov0", "vnetid", uint(8)).expect("vnetid is runtime");
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "vnetid"), 8);
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE);
}

#[test]
fn read_only_properties() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &full_props("10.0.0.1", "10.0.0.2")).unwrap();
    for prop in ["encap", "search"] {
        expect_err(
            proto::setprop(&mut c, "ov0", prop, b"vxlan\0".to_vec()),
            libc::EPERM,
            &[prop],
        );
    }
    assert_eq!(
        proto::getprop(&mut c, "ov0", "encap").unwrap(),
        Some(b"vxlan\0".to_vec())
    );
    // Read-only wins over "not while active".
    proto::activate(&mut c, "ov0").unwrap();
    expect_err(
        proto::setprop(&mut c, "ov0", "encap", b"vxlan\0".to_vec()),
        libc::EPERM,
        &["encap"],
    );
}

#[test]
fn bad_size_or_range_keeps_the_old_value() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 5, &full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::setprop(&mut c, "ov0", "mtu", uint(1500)).unwrap();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("mtu", vec![0xdc, 0x05, 0, 0], &["mtu", "8"]),
        ("mtu", uint(575), &["mtu", "576"]),
        ("mtu", uint(8901), &["mtu", "8900"]),
        ("mtu", vec![], &["mtu"]),
        ("vnetid", vec![1, 0], &["vnetid"]),
        (
            "vxlan/listen_ip",
            vec![10, 0, 0, 9],
            &["vxlan/listen_ip", "16"],
        ),
        (
            "vxlan/listen_ip",
            ip("255.255.255.255"),
            &["vxlan/listen_ip"],
        ),
        (
            "vxlan/listen_port",
            uint(0),
            &["vxlan/listen_port", "65535"],
        ),
        (
            "vxlan/listen_port",
            uint(65536),
            &["vxlan/listen_port", "65535"],
        ),
        (
            "vxlan/listen_port",
            vec![0xb5, 0x12],
            &["vxlan/listen_port"],
        ),
        ("direct/dest_ip", ip("::"), &["direct/dest_ip"]),
        ("direct/dest_ip", vec![0; 17], &["direct/dest_ip"]),
        ("direct/dest_port", uint(70000), &["direct/dest_port"]),
    ];
    for (prop, value, needles) in cases {
        let before = proto::getprop(&mut c, "ov0", prop).unwrap();
        assert!(before.is_some(), "{prop} set beforehand");
        expect_err(
            proto::setprop(&mut c, "ov0", prop, value.clone()),
            libc::EINVAL,
            needles,
        );
        assert_eq!(
            proto::getprop(&mut c, "ov0", prop).unwrap(),
            before,
            "{prop} changed by a refused value {value:?}"
        );
    }
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1500);
}

/// The requests that name a device, each with what else it needs.
fn device_requests(dev: Attr) -> Vec<(&'static str, u8, Vec<Attr>, bool)> {
    let prop = || Attr::str(ov::ATTR_PROP_NAME, "mtu");
    let with = |extra: Vec<Attr>| {
        let mut v = vec![dev.clone()];
        v.extend(extra);
        v
    };
    vec![
        ("DELETE", ov::CMD_DELETE, with(vec![]), false),
        ("ACTIVATE", ov::CMD_ACTIVATE, with(vec![]), false),
        ("PROPINFO", ov::CMD_PROPINFO, with(vec![prop()]), false),
        ("PROPINFO dump", ov::CMD_PROPINFO, with(vec![]), true),
        ("GETPROP", ov::CMD_GETPROP, with(vec![prop()]), false),
        (
            "SETPROP",
            ov::CMD_SETPROP,
            with(vec![prop(), Attr::bytes(ov::ATTR_PROP_VALUE, uint(1500))]),
            false,
        ),
        ("STATUS", ov::CMD_STATUS, with(vec![]), false),
        ("LIST", ov::CMD_LIST, with(vec![]), false),
    ]
}

fn send(
    c: &mut Client,
    cmd: u8,
    attrs: Vec<Attr>,
    dump: bool,
) -> Result<(), nlproto::client::Error> {
    if dump {
        c.dump(ov::NAME, cmd, attrs).map(|_| ())
    } else if matches!(cmd, ov::CMD_DELETE | ov::CMD_ACTIVATE | ov::CMD_SETPROP) {
        c.write(ov::NAME, cmd, attrs)
    } else {
        c.transact(ov::NAME, cmd, attrs).map(|_| ())
    }
}

#[test]
fn unknown_device_for_every_device_command() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    for (what, cmd, attrs, dump) in device_requests(name("ghost")) {
        let r = send(&mut c, cmd, attrs, dump);
        expect_err_in(what, r, libc::ENOENT, &["no device named ghost"]);
    }
    for (what, cmd, attrs, dump) in device_requests(Attr::u32(ov::ATTR_LINKID, 99)) {
        let r = send(&mut c, cmd, attrs, dump);
        expect_err_in(what, r, libc::ENOENT, &["link id 99"]);
    }
    // The existing device was not touched.
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_CREATED);
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1400);
}

#[test]
fn request_without_a_device() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    for (what, cmd, mut attrs, dump) in device_requests(name("ov0")) {
        attrs.remove(0);
        let r = send(&mut c, cmd, attrs, dump);
        expect_err_in(what, r, libc::EINVAL, &["NAME (2)", "LINKID (1)"]);
    }
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_CREATED);
}

#[test]
fn unknown_property() {
    let (_d, mut c) = client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    expect_err(
        proto::getprop(&mut c, "ov0", "vxlan/ttl"),
        libc::ENOENT,
        &["vxlan/ttl", "ov0"],
    );
    expect_err(
        proto::setprop(&mut c, "ov0", "speed", uint(1)),
        libc::ENOENT,
        &["speed"],
    );
    expect_err(
        c.transact(
            ov::NAME,
            ov::CMD_PROPINFO,
            vec![name("ov0"), Attr::str(ov::ATTR_PROP_NAME, "speed")],
        ),
        libc::ENOENT,
        &["speed"],
    );
    expect_err(
        c.transact(
            ov::NAME,
            ov::CMD_PLUGINS,
            vec![Attr::str(ov::ATTR_PLUGIN_NAME, "nvgre")],
        ),
        libc::ENOENT,
        &["nvgre", "geneve", "vxlan", "direct"],
    );
}

#[test]
fn required_attributes_are_named() {
    let (_d, mut c) = client();
    expect_err(
        c.transact(
            ov::NAME,
            ov::CMD_CREATE,
            vec![
                name("ov0"),
                Attr::str(ov::ATTR_ENCAP, "vxlan"),
                Attr::str(ov::ATTR_SEARCH, "direct"),
            ],
        ),
        libc::EINVAL,
        &["VNETID"],
    );
    expect_err(
        c.transact(ov::NAME, ov::CMD_GETPROP, vec![name("ov0")]),
        libc::EINVAL,
        &["PROP_NAME"],
    );
    expect_err(
        c.write(
            ov::NAME,
            ov::CMD_SETPROP,
            vec![name("ov0"), Attr::str(ov::ATTR_PROP_NAME, "mtu")],
        ),
        libc::EINVAL,
        &["PROP_VALUE"],
    );
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn create_props_entry_without_a_value() {
    let (_d, mut c) = client();
    let r = c.transact(
        ov::NAME,
        ov::CMD_CREATE,
        vec![
            name("ov0"),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, 1),
            Attr::nested(
                ov::ATTR_PROPS,
                vec![Attr::nested(
                    ov::ATTR_PROP,
                    vec![Attr::str(ov::ATTR_PROP_NAME, "mtu")],
                )],
            ),
        ],
    );
    expect_err(r, libc::EINVAL, &["PROP_VALUE"]);
    assert!(proto::device_names(&mut c).is_empty());
}
