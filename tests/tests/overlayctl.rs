//! The overlayctl binary against a real daemon: its tables, its JSON, its
//! errors (one line on stderr with the daemon's text), and local value
//! checks that change nothing.

use overlay_tests::proto::{self, full_props, ip};
use overlay_tests::{ctl_failed as fails, ctl_succeeded as ok, Daemon};
use serde_json::Value;

const PROP_COLUMNS: [&str; 7] = [
    "LINK", "PROPERTY", "PERM", "REQ", "VALUE", "DEFAULT", "POSSIBLE",
];
const SHOW_COLUMNS: [&str; 6] = ["LINK", "ENCAP", "SEARCH", "VNETID", "STATE", "STATUS"];
const FAULT_COLUMNS: [&str; 3] = ["LINK", "STATUS", "DETAILS"];
const PLUGIN_COLUMNS: [&str; 5] = ["NAME", "KIND", "VERSION", "FILE", "PROPERTIES"];

/// A text table: the header cells and the rows' cells (no cell in these
/// tests holds a blank).
fn table(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("a header line")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    (header, rows)
}

fn row<'a>(rows: &'a [Vec<String>], col: usize, key: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[col] == key)
        .unwrap_or_else(|| panic!("no row {key} in {rows:?}"))
}

/// Parses `-j` output: an array of objects whose keys are `columns` in
/// lower case (plus, when `extra_ok`, further members after them).
#[track_caller]
fn json(text: &str, columns: &[&str], extra_ok: bool) -> Vec<serde_json::Map<String, Value>> {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let items = v.as_array().expect("a JSON array").clone();
    items
        .into_iter()
        .map(|item| {
            let obj = item.as_object().expect("an array of objects").clone();
            for c in columns {
                let key = c.to_lowercase();
                assert!(obj.contains_key(&key), "no {key} in {obj:?}");
                assert!(obj[&key].is_string(), "{key} is a string");
            }
            if !extra_ok {
                assert_eq!(obj.len(), columns.len(), "{obj:?}");
            }
            obj
        })
        .collect()
}

#[test]
fn create_inspect_change_activate_delete() {
    let d = Daemon::start();
    let out = ok(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=10.200.0.1,direct/dest_ip=10.200.0.2",
        "-p",
        "direct/dest_port=4789",
        "ov0",
    ]));
    assert_eq!(out, "", "create prints nothing without -j");
    ok(d.ctl(&["create", "-e", "vxlan", "-s", "direct", "-v", "0x2b", "ov1"]));

    // prop-get: every property, values `--` when unset.
    let (header, rows) = table(&ok(d.ctl(&["prop-get", "ov0"])));
    assert_eq!(header, PROP_COLUMNS);
    let props: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        props,
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
    assert!(
        rows.iter().all(|r| r[0] == "ov0" && r.len() == 7),
        "{rows:?}"
    );
    assert_eq!(
        row(&rows, 1, "mtu"),
        ["ov0", "mtu", "rw", "-", "1400", "1400", "576-8900"]
    );
    assert_eq!(
        row(&rows, 1, "vnetid"),
        ["ov0", "vnetid", "rw", "-", "42", "--", "0-16777215"]
    );
    assert_eq!(
        row(&rows, 1, "encap"),
        ["ov0", "encap", "r-", "-", "vxlan", "--", "geneve,vxlan"]
    );
    assert_eq!(
        row(&rows, 1, "search"),
        [
            "ov0",
            "search",
            "r-",
            "-",
            "direct",
            "--",
            "direct,etcd,files"
        ]
    );
    assert_eq!(
        row(&rows, 1, "vxlan/listen_ip"),
        [
            "ov0",
            "vxlan/listen_ip",
            "rw",
            "y",
            "10.200.0.1",
            "--",
            "--"
        ]
    );
    assert_eq!(
        row(&rows, 1, "vxlan/listen_port"),
        [
            "ov0",
            "vxlan/listen_port",
            "rw",
            "y",
            "4789",
            "4789",
            "1-65535"
        ]
    );
    assert_eq!(
        row(&rows, 1, "direct/dest_port"),
        [
            "ov0",
            "direct/dest_port",
            "rw",
            "y",
            "4789",
            "--",
            "1-65535"
        ]
    );
    let (_, rows) = table(&ok(d.ctl(&["prop-get", "ov1", "direct/dest_ip", "vnetid"])));
    assert_eq!(
        rows,
        [
            ["ov1", "direct/dest_ip", "rw", "y", "--", "--", "--"],
            ["ov1", "vnetid", "rw", "-", "43", "--", "0-16777215"]
        ]
    );

    // prop-set, read back.
    assert_eq!(
        ok(d.ctl(&["prop-set", "ov0", "mtu=1450", "vxlan/listen_port=8472"])),
        ""
    );
    let (_, rows) = table(&ok(d.ctl(&["prop-get", "ov0", "mtu", "vxlan/listen_port"])));
    assert_eq!(rows[0][4], "1450");
    assert_eq!(rows[1][4], "8472");

    // show: created, then active after activate.
    let (header, rows) = table(&ok(d.ctl(&["show"])));
    assert_eq!(header, SHOW_COLUMNS);
    assert_eq!(
        rows,
        [
            ["ov0", "vxlan", "direct", "42", "created", "ok"],
            ["ov1", "vxlan", "direct", "43", "created", "ok"]
        ]
    );
    assert_eq!(ok(d.ctl(&["activate", "ov0"])), "");
    let (_, rows) = table(&ok(d.ctl(&["show", "ov0"])));
    assert_eq!(rows, [["ov0", "vxlan", "direct", "42", "active", "ok"]]);

    // show -f.
    let (header, rows) = table(&ok(d.ctl(&["show", "-f"])));
    assert_eq!(header, FAULT_COLUMNS);
    assert_eq!(rows, [["ov0", "ONLINE", "--"], ["ov1", "ONLINE", "--"]]);
    let (_, rows) = table(&ok(d.ctl(&["show", "-f", "ov1"])));
    assert_eq!(rows, [["ov1", "ONLINE", "--"]]);

    // The runtime property changes while active.
    ok(d.ctl(&["prop-set", "ov0", "mtu=1500"]));
    let (_, rows) = table(&ok(d.ctl(&["prop-get", "ov0", "mtu"])));
    assert_eq!(rows[0][4], "1500");

    // delete, active or not.
    assert_eq!(ok(d.ctl(&["delete", "ov0"])), "");
    ok(d.ctl(&["delete", "ov1"]));
    let out = ok(d.ctl(&["show"]));
    let (header, rows) = table(&out);
    assert_eq!(header, SHOW_COLUMNS);
    assert!(rows.is_empty(), "{out}");
    let mut c = d.client();
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn plugins_table() {
    let d = Daemon::start();
    let (header, rows) = table(&ok(d.ctl(&["plugins"])));
    assert_eq!(header, PLUGIN_COLUMNS);
    assert_eq!(rows.len(), 5, "{rows:?}");
    let gn = row(&rows, 0, "geneve");
    assert_eq!(gn[1], "encap");
    assert!(gn[3].ends_with("/liboverlay_geneve.so"), "{gn:?}");
    assert_eq!(gn[4], "geneve/listen_ip,geneve/listen_port,geneve/options");
    let vx = row(&rows, 0, "vxlan");
    assert_eq!(vx[1], "encap");
    assert!(!vx[2].is_empty());
    assert!(vx[3].ends_with("/liboverlay_vxlan.so"), "{vx:?}");
    assert_eq!(vx[4], "vxlan/listen_ip,vxlan/listen_port");
    let di = row(&rows, 0, "direct");
    assert_eq!(di[1], "lookup");
    assert!(di[3].ends_with("/liboverlay_direct.so"), "{di:?}");
    assert_eq!(di[4], "direct/dest_ip,direct/dest_port");
    let et = row(&rows, 0, "etcd");
    assert_eq!(et[1], "lookup");
    assert!(et[3].ends_with("/liboverlay_etcd.so"), "{et:?}");
    assert!(et[4].starts_with("etcd/endpoints,etcd/prefix,"), "{et:?}");
    let fi = row(&rows, 0, "files");
    assert_eq!(fi[1], "lookup");
    assert!(fi[3].ends_with("/liboverlay_files.so"), "{fi:?}");
    assert_eq!(
        fi[4],
        "files/config,files/default_port,files/misses,files/arp,files/ndp,files/dhcp,files/dropped"
    );
}

#[test]
fn json_outputs() {
    let d = Daemon::start();
    assert_eq!(
        json(&ok(d.ctl(&["show", "-j"])), &SHOW_COLUMNS, false),
        Vec::<serde_json::Map<String, Value>>::new()
    );
    let created = json(
        &ok(d.ctl(&[
            "-j",
            "create",
            "-e",
            "vxlan",
            "-s",
            "direct",
            "-v",
            "42",
            "-p",
            "vxlan/listen_ip=10.200.0.1",
            "ov0",
        ])),
        &SHOW_COLUMNS,
        false,
    );
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["link"], "ov0");
    assert_eq!(created[0]["state"], "created");

    let shown = json(&ok(d.ctl(&["show", "-j"])), &SHOW_COLUMNS, false);
    assert_eq!(shown.len(), 1);
    let o = &shown[0];
    assert_eq!(
        (
            &o["link"],
            &o["encap"],
            &o["search"],
            &o["vnetid"],
            &o["state"],
            &o["status"]
        ),
        (
            &Value::from("ov0"),
            &Value::from("vxlan"),
            &Value::from("direct"),
            &Value::from("42"),
            &Value::from("created"),
            &Value::from("ok")
        )
    );

    let faults = json(&ok(d.ctl(&["show", "-f", "-j"])), &FAULT_COLUMNS, false);
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["status"], "ONLINE");
    assert_eq!(faults[0]["details"], "--");

    let props = json(&ok(d.ctl(&["prop-get", "-j", "ov0"])), &PROP_COLUMNS, false);
    assert_eq!(props.len(), 18);
    let mtu = &props[0];
    assert_eq!(mtu["property"], "mtu");
    assert_eq!(mtu["value"], "1400");
    assert_eq!(mtu["default"], "1400");
    assert_eq!(mtu["possible"], "576-8900");
    assert_eq!(mtu["perm"], "rw");
    assert_eq!(mtu["req"], "-");
    let dest = props
        .iter()
        .find(|p| p["property"] == "direct/dest_ip")
        .unwrap();
    assert_eq!(dest["value"], "--");
    assert_eq!(dest["req"], "y");
    let listen = props
        .iter()
        .find(|p| p["property"] == "vxlan/listen_ip")
        .unwrap();
    assert_eq!(listen["value"], "10.200.0.1");

    // The plugin listing carries the columns (and its properties after them).
    let plugins = json(&ok(d.ctl(&["plugins", "-j"])), &PLUGIN_COLUMNS, true);
    let names: Vec<&Value> = plugins.iter().map(|p| &p["name"]).collect();
    assert_eq!(names, ["geneve", "vxlan", "direct", "etcd", "files"]);
    assert_eq!(plugins[0]["kind"], "encap");
    assert_eq!(plugins[1]["kind"], "encap");
    assert_eq!(plugins[2]["kind"], "lookup");
    assert_eq!(plugins[3]["kind"], "lookup");
    assert_eq!(plugins[4]["kind"], "lookup");
    // Each encapsulation's longest header, as it declares it.
    assert_eq!(plugins[0]["max_header_len"], 260);
    assert_eq!(plugins[1]["max_header_len"], 8);
    assert_eq!(
        plugins[1]["properties"],
        "vxlan/listen_ip,vxlan/listen_port"
    );
    assert!(plugins[1]["file"]
        .as_str()
        .unwrap()
        .ends_with("/liboverlay_vxlan.so"));
}

#[test]
fn daemon_errors_are_one_line_with_the_daemon_text() {
    let d = Daemon::start();
    let mut c = d.client();
    ok(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=10.0.0.1",
        "ov0",
    ]));

    // Unset required properties: the daemon names them.
    let text = proto::expect_err(proto::activate(&mut c, "ov0"), libc::EINVAL, &[]);
    let err = fails(d.ctl(&["activate", "ov0"]));
    assert!(err.contains(&text), "{err:?} lacks {text:?}");
    assert!(
        err.contains("direct/dest_ip") && err.contains("direct/dest_port"),
        "{err}"
    );
    assert!(err.contains("EINVAL"), "{err}");

    // Duplicate name.
    let text = proto::expect_err(proto::create(&mut c, "ov0", 1, &[]), libc::EEXIST, &[]);
    let err = fails(d.ctl(&["create", "-e", "vxlan", "-s", "direct", "-v", "1", "ov0"]));
    assert!(err.contains(&text), "{err:?} lacks {text:?}");
    assert!(err.contains("EEXIST"), "{err}");

    // Duplicate endpoint.
    let text = proto::expect_err(
        proto::create(&mut c, "ov1", 42, &[("vxlan/listen_ip", ip("10.0.0.1"))]),
        libc::EEXIST,
        &[],
    );
    let err = fails(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=10.0.0.1",
        "ov1",
    ]));
    assert!(err.contains(&text), "{err:?} lacks {text:?}");

    // Unknown device, read-only property, out-of-range value.
    let err = fails(d.ctl(&["delete", "ghost"]));
    assert!(
        err.contains("no device named ghost") && err.contains("ENOENT"),
        "{err}"
    );
    let err = fails(d.ctl(&["show", "ghost"]));
    assert!(err.contains("ghost") && err.contains("ENOENT"), "{err}");
    let err = fails(d.ctl(&["prop-set", "ov0", "encap=vxlan"]));
    assert!(err.contains("encap") && err.contains("EPERM"), "{err}");
    let err = fails(d.ctl(&["prop-set", "ov0", "mtu=100"]));
    assert!(err.contains("576-8900") && err.contains("EINVAL"), "{err}");
    let err = fails(d.ctl(&["prop-get", "ov0", "nosuch"]));
    assert!(err.contains("nosuch") && err.contains("ENOENT"), "{err}");

    // Not while active.
    ok(d.ctl(&[
        "prop-set",
        "ov0",
        "direct/dest_ip=10.0.0.2",
        "direct/dest_port=4789",
    ]));
    ok(d.ctl(&["activate", "ov0"]));
    let err = fails(d.ctl(&["activate", "ov0"]));
    assert!(
        err.contains("already active") && err.contains("EEXIST"),
        "{err}"
    );
    let err = fails(d.ctl(&["prop-set", "ov0", "vxlan/listen_port=4790"]));
    assert!(
        err.contains("vxlan/listen_port") && err.contains("EOPNOTSUPP"),
        "{err}"
    );

    assert_eq!(proto::device_names(&mut c), ["ov0"]);
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "vnetid"), 42);
}

#[test]
fn unparsable_values_fail_locally_and_change_nothing() {
    let d = Daemon::start();
    let mut c = d.client();
    ok(d.ctl(&["create", "-e", "vxlan", "-s", "direct", "-v", "1", "ov0"]));

    let err = fails(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "2",
        "-p",
        "mtu=1500,vxlan/listen_ip=notanip",
        "ov1",
    ]));
    assert!(err.contains("vxlan/listen_ip=notanip"), "{err}");
    assert!(
        !err.contains("(E"),
        "no daemon errno, the value never left: {err}"
    );
    assert_eq!(proto::device_names(&mut c), ["ov0"]);

    let err = fails(d.ctl(&["prop-set", "ov0", "mtu=-1"]));
    assert!(err.contains("mtu=-1"), "{err}");
    assert!(!err.contains("(E"), "{err}");
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1400);

    // Every value is checked before the first one is set.
    let err = fails(d.ctl(&["prop-set", "ov0", "mtu=1500", "vxlan/listen_ip=notanip"]));
    assert!(err.contains("vxlan/listen_ip=notanip"), "{err}");
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1400);
    assert_eq!(
        proto::getprop(&mut c, "ov0", "vxlan/listen_ip").unwrap(),
        None
    );

    let err = fails(d.ctl(&["prop-set", "ov0", "direct/dest_port=80x"]));
    assert!(err.contains("direct/dest_port=80x"), "{err}");
    assert_eq!(
        proto::getprop(&mut c, "ov0", "direct/dest_port").unwrap(),
        None
    );

    let err = fails(d.ctl(&["create", "-e", "vxlan", "-s", "direct", "-v", "-5", "ov2"]));
    assert!(err.contains("-5"), "{err}");
    assert_eq!(proto::device_names(&mut c), ["ov0"]);
}

#[test]
fn ipv6_values_read_back_as_written() {
    let d = Daemon::start();
    let mut c = d.client();
    ok(d.ctl(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "9",
        "-p",
        "vxlan/listen_ip=2001:db8::1",
        "ov6",
    ]));
    let (_, rows) = table(&ok(d.ctl(&["prop-get", "ov6", "vxlan/listen_ip"])));
    assert_eq!(rows[0][4], "2001:db8::1");
    assert_eq!(
        proto::getprop(&mut c, "ov6", "vxlan/listen_ip").unwrap(),
        Some(ip("2001:db8::1"))
    );
    ok(d.ctl(&[
        "prop-set",
        "ov6",
        "direct/dest_ip=2001:db8::2",
        "direct/dest_port=4789",
    ]));
    let props = json(
        &ok(d.ctl(&["prop-get", "-j", "ov6", "direct/dest_ip"])),
        &PROP_COLUMNS,
        false,
    );
    assert_eq!(props[0]["value"], "2001:db8::2");
    ok(d.ctl(&["activate", "ov6"]));
    let (_, rows) = table(&ok(d.ctl(&["show", "ov6"])));
    assert_eq!(rows[0][4], "active");

    // An IPv4 device next to it, through the same path.
    let mut list = full_props("10.0.0.1", "10.0.0.2");
    list.retain(|(n, _)| *n != "direct/dest_port");
    proto::create(&mut c, "ov4", 9, &list).unwrap();
    let (_, rows) = table(&ok(d.ctl(&[
        "prop-get",
        "ov4",
        "vxlan/listen_ip",
        "direct/dest_ip",
    ])));
    assert_eq!(rows[0][4], "10.0.0.1");
    assert_eq!(rows[1][4], "10.0.0.2");
}

#[test]
fn errors_with_json_and_without_a_daemon() {
    let mut d = Daemon::start();
    // -j changes nothing about errors: stdout stays empty.
    let err = fails(d.ctl(&["-j", "show", "ghost"]));
    assert!(err.contains("no device named ghost"), "{err}");
    let err = fails(d.ctl(&[
        "create", "-e", "vxlan", "-s", "direct", "-v", "1", "-p", "mtu=1500", "-p", "mtu=1600",
        "ov0",
    ]));
    assert!(
        err.contains("mtu") && err.contains("more than once"),
        "{err}"
    );
    let mut c = d.client();
    assert!(proto::device_names(&mut c).is_empty());
    drop(c);

    // Once the daemon is gone: one line naming the socket.
    assert_eq!(d.terminate().and_then(|s| s.code()), Some(0));
    let err = fails(d.ctl(&["show"]));
    assert!(err.contains(&d.socket.display().to_string()), "{err}");
}
