//! Devices across restarts: the state file written on every change, read
//! back at start; temporary devices left out; clean stops keep the state;
//! corrupt files moved aside; what cannot be restored degraded, not lost.

use nlproto::spec::overlay as ov;
use nlproto::AttrsExt;
use overlay_tests::net::{self, Netns};
use overlay_tests::proto::{self, full_props, ip, uint};
use overlay_tests::Daemon;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn state_file(d: &Daemon) -> PathBuf {
    d.state_dir().join("state.json")
}

fn read_state(d: &Daemon) -> serde_json::Value {
    let text = std::fs::read_to_string(state_file(d)).expect("a state file");
    serde_json::from_str(&text).expect("the state file is JSON")
}

fn device<'a>(state: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    state["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["name"] == name)
}

fn status_msg(d: &Daemon, dev: &str) -> (u32, String) {
    let reply = d
        .client()
        .transact(ov::NAME, ov::CMD_STATUS, vec![proto::name(dev)])
        .expect("STATUS");
    (
        reply.attrs.get_u32(ov::ATTR_STATUS).unwrap(),
        reply
            .attrs
            .get_str(ov::ATTR_STATUS_MSG)
            .unwrap_or("")
            .to_string(),
    )
}

fn link_exists(ns: &Netns, ifname: &str) -> bool {
    ns.exec(&["ip", "link", "show", ifname]).status.success()
}

/// overlayd in namespace A, the kernel's vxlan in B; devices survive a
/// `kill -9` and a SIGTERM, the active one comes back active and carries
/// traffic again, the temporary one is gone.
#[test]
fn devices_survive_kill_and_clean_stop_and_traffic_resumes() {
    if !net::can_run() {
        return;
    }
    let a = Netns::new("pera");
    let b = Netns::new("perb");
    net::veth(&a, "ua", &b, "ub");
    b.ok(&["ethtool", "-K", "ub", "tx", "off"]);
    a.ip("addr add 198.51.100.1/24 dev ua nodad");
    b.ip("addr add 198.51.100.2/24 dev ub nodad");
    b.ip(
        "link add vx0 type vxlan id 42 dstport 4789 remote 198.51.100.1 local 198.51.100.2 dev ub",
    );
    b.ip("link set vx0 mtu 1400");
    b.ip("addr add 192.0.2.2/24 dev vx0");
    b.ip("link set vx0 up");
    let mut d = Daemon::start_in_netns(&a.name);

    let props = "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789";
    let create = |name: &str, vni: &str, temp: bool| {
        let mut args = vec![
            "create", "-e", "vxlan", "-s", "direct", "-v", vni, "-p", props,
        ];
        if temp {
            args.push("-t");
        }
        args.push(name);
        d.ctl_ok(&args);
    };
    create("ov0", "42", false);
    d.ctl_ok(&["prop-set", "ov0", "mtu=1380"]);
    d.ctl_ok(&["activate", "ov0"]);
    create("ov1", "43", false);
    d.ctl_ok(&["prop-set", "ov1", "mtu=1300", "srcport_min=40000"]);
    create("tmp0", "44", true);
    let shown = d.ctl_ok(&["show", "tmp0"]);
    assert!(shown.contains("created,temporary"), "{shown}");
    a.ip("addr add 192.0.2.1/24 dev ov0");
    a.ping("192.0.2.2", 2);

    let state = read_state(&d);
    assert_eq!(state["version"], 1);
    assert_eq!(device(&state, "ov0").unwrap()["active"], true);
    assert_eq!(device(&state, "ov1").unwrap()["active"], false);
    assert!(
        device(&state, "tmp0").is_none(),
        "temporary devices are not saved"
    );

    for round in ["kill -9", "SIGTERM"] {
        if round == "kill -9" {
            d.kill();
        } else {
            let status = d.terminate().expect("overlayd exits on SIGTERM");
            assert_eq!(status.code(), Some(0), "{}", d.log());
            assert!(!d.socket.exists(), "SIGTERM removes the socket");
            // The clean stop recorded the active device as active.
            assert_eq!(device(&read_state(&d), "ov0").unwrap()["active"], true);
        }
        assert!(
            !link_exists(&a, "ov0"),
            "{round}: the TAP goes with the daemon"
        );
        d.restart();
        let mut c = d.client();
        assert_eq!(proto::device_names(&mut c), ["ov0", "ov1"], "{round}");
        assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE, "{round}");
        assert_eq!(proto::state(&mut c, "ov1"), ov::STATE_CREATED, "{round}");
        assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1380);
        assert_eq!(proto::getprop_uint(&mut c, "ov1", "mtu"), 1300);
        assert_eq!(proto::getprop_uint(&mut c, "ov1", "srcport_min"), 40000);
        assert_eq!(proto::getprop_uint(&mut c, "ov1", "vnetid"), 43);
        assert_eq!(
            proto::getprop(&mut c, "ov1", "direct/dest_ip").unwrap(),
            Some(ip("198.51.100.2"))
        );
        // Link ids are kept, and a new device does not reuse tmp0's.
        let linkid = |c: &mut nlproto::client::Client, n: &str| {
            c.transact(ov::NAME, ov::CMD_LIST, vec![proto::name(n)])
                .unwrap()
                .attrs
                .get_u32(ov::ATTR_LINKID)
                .unwrap()
        };
        assert_eq!((linkid(&mut c, "ov0"), linkid(&mut c, "ov1")), (1, 2));
        // The TAP is new: the host's address on it is configured again.
        a.ip("addr add 192.0.2.1/24 dev ov0");
        a.ping("192.0.2.2", 2);
        b.ping("192.0.2.1", 2);
    }
    let mut c = d.client();
    let fresh = proto::create(&mut c, "ov9", 99, &[]).unwrap();
    assert_eq!(fresh.attrs.get_u32(ov::ATTR_LINKID), Some(4));
}

fn inode_and_bytes(p: &Path) -> (u64, Vec<u8>) {
    (
        std::fs::metadata(p).unwrap().ino(),
        std::fs::read(p).unwrap(),
    )
}

#[test]
fn refused_changes_leave_the_state_file_alone() {
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    let before = inode_and_bytes(&state_file(&d));

    proto::expect_err(proto::create(&mut c, "ov0", 2, &[]), libc::EEXIST, &["ov0"]);
    proto::expect_err(
        proto::create(&mut c, "ov1", 2, &[("mtu", uint(1))]),
        libc::EINVAL,
        &["mtu"],
    );
    proto::expect_err(
        proto::setprop(&mut c, "ov0", "mtu", uint(100_000)),
        libc::EINVAL,
        &["mtu"],
    );
    proto::expect_err(proto::activate(&mut c, "ov0"), libc::EINVAL, &["unset"]);
    proto::expect_err(proto::delete(&mut c, "nope"), libc::ENOENT, &["nope"]);
    assert_eq!(
        inode_and_bytes(&state_file(&d)),
        before,
        "the state file was rewritten"
    );

    proto::setprop(&mut c, "ov0", "mtu", uint(1500)).unwrap();
    let after = inode_and_bytes(&state_file(&d));
    assert_ne!(after, before, "a successful SETPROP is saved");
    let state: serde_json::Value = serde_json::from_slice(&after.1).unwrap();
    let mtu = device(&state, "ov0").unwrap()["props"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mtu")
        .unwrap()["value"]
        .clone();
    let hex: String = 1500u64
        .to_ne_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(mtu, hex);
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(d.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
}

/// Writes `content` as the state file of a stopped daemon, restarts it,
/// and checks that the file was moved aside with a log line saying why.
fn corrupt_case(content: &[u8], why: &str) {
    let mut d = Daemon::start();
    proto::create(&mut d.client(), "ov0", 1, &[]).unwrap();
    d.terminate().expect("overlayd stops");
    std::fs::write(state_file(&d), content).unwrap();
    d.restart();
    let path = state_file(&d).display().to_string();
    assert!(
        d.wait_log_line(Duration::from_secs(5), |l| l.contains("ERROR")
            && l.contains(&path)
            && l.contains(why)
            && l.contains("moved it to")),
        "no log line naming {path} and {why:?}:\n{}",
        d.log()
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(d.state_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), content, "kept as it was");
    let mut c = d.client();
    assert!(proto::device_names(&mut c).is_empty(), "starts empty");
    // And a fresh state file is in place again.
    assert_eq!(read_state(&d)["version"], 1);
}

#[test]
fn garbage_state_file_is_moved_aside() {
    corrupt_case(b"\x00\x01 this is not JSON", "is not a state file");
}

#[test]
fn state_file_of_another_version_is_moved_aside() {
    corrupt_case(
        br#"{"version": 99, "next_linkid": 2, "devices": []}"#,
        "has format version 99, and this overlayd reads version 1",
    );
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// What cannot be restored is kept and reported: a device whose plugin is
/// gone stays in the file (its name taken until deleted), one with a bad
/// property or a failing activation is created, degraded, and still
/// recorded active.
#[test]
fn what_cannot_be_restored_is_degraded_not_dropped() {
    let mut d = Daemon::start();
    d.terminate().expect("overlayd stops");
    let prop = |name: &str, v: Vec<u8>| serde_json::json!({"name": name, "value": hex(&v)});
    let record =
        |linkid: u32, name: &str, encap: &str, active: bool, props: Vec<serde_json::Value>| {
            serde_json::json!({
                "linkid": linkid, "name": name, "encap": encap, "search": "direct",
                "vnetid": linkid, "active": active, "props": props, "lookup_state": ""
            })
        };
    let good_props = || {
        full_props("10.0.0.1", "10.0.0.2")
            .into_iter()
            .map(|(n, v)| prop(n, v))
            .collect::<Vec<_>>()
    };
    // Listening on an address the namespace does not have fails at
    // activation, not before.
    let mut unbindable = vec![prop("vxlan/listen_ip", ip("10.77.0.1"))];
    unbindable.extend(good_props().into_iter().skip(1));
    let mut bad_prop = good_props();
    bad_prop.push(prop("mtu", uint(5)));
    // direct keeps no state of its own, so it refuses any.
    let mut badstate = record(5, "badstate", "vxlan", false, vec![]);
    badstate["lookup_state"] = "01ff".into();
    let state = serde_json::json!({
        "version": 1,
        "next_linkid": 6,
        "devices": [
            record(1, "good", "vxlan", true, good_props()),
            record(2, "noplugin", "nosuch", false, vec![]),
            record(3, "unbindable", "vxlan", true, unbindable),
            record(4, "badprop", "vxlan", false, bad_prop),
            badstate,
        ]
    });
    std::fs::write(state_file(&d), serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    d.restart();
    let mut c = d.client();
    assert_eq!(
        proto::device_names(&mut c),
        ["good", "unbindable", "badprop", "badstate"]
    );
    let (status, msg) = status_msg(&d, "badstate");
    assert_eq!(status, ov::STATUS_DEGRADED);
    assert!(
        msg.contains("lookup state") && msg.contains("cannot restore 2 bytes"),
        "{msg}"
    );
    assert_eq!(proto::state(&mut c, "good"), ov::STATE_ACTIVE);
    assert_eq!(status_msg(&d, "good"), (ov::STATUS_OK, String::new()));

    let (status, msg) = status_msg(&d, "unbindable");
    assert_eq!(status, ov::STATUS_DEGRADED);
    assert!(
        msg.starts_with("restored but not active: activation:"),
        "{msg}"
    );
    assert_eq!(proto::state(&mut c, "unbindable"), ov::STATE_CREATED);

    let (status, msg) = status_msg(&d, "badprop");
    assert_eq!(status, ov::STATUS_DEGRADED);
    assert!(
        msg.contains("restored incompletely") && msg.contains("mtu"),
        "{msg}"
    );
    // The other properties were set.
    assert_eq!(
        proto::getprop_uint(&mut c, "badprop", "direct/dest_port"),
        4789
    );

    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("cannot restore device noplugin")
            && l.contains("nosuch")),
        "{log}"
    );

    // The file still holds all four, the failed activation still active.
    let saved = read_state(&d);
    assert_eq!(saved["devices"].as_array().unwrap().len(), 5);
    assert_eq!(device(&saved, "unbindable").unwrap()["active"], true);
    assert_eq!(device(&saved, "noplugin").unwrap()["encap"], "nosuch");
    assert_eq!(saved["next_linkid"], 6);

    // The unrestorable name is taken until deleted by name.
    let text = proto::expect_err(
        proto::create(&mut c, "noplugin", 9, &[]),
        libc::EEXIST,
        &["noplugin", "could not be restored", "delete"],
    );
    assert!(text.contains("nosuch"), "{text}");
    proto::delete(&mut c, "noplugin").unwrap();
    assert!(device(&read_state(&d), "noplugin").is_none());
    proto::create(&mut c, "noplugin", 9, &[]).unwrap();

    // Fixing the address and activating clears the degradation.
    proto::setprop(&mut c, "unbindable", "vxlan/listen_ip", ip("10.0.0.9")).unwrap();
    proto::activate(&mut c, "unbindable").unwrap();
    assert_eq!(status_msg(&d, "unbindable"), (ov::STATUS_OK, String::new()));
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let d = Daemon::start();
    let other = overlay_tests::TempDir::new("state2");
    let state_dir = d.state_dir().display().to_string();
    let (status, log) = overlay_tests::run_overlayd_args_to_exit(
        &other.join("s"),
        &[overlay_tests::target_dir()],
        &["--state-dir", &state_dir],
        Duration::from_secs(10),
    );
    let status = status.expect("the second overlayd exits");
    assert!(!status.success());
    assert!(
        log.contains(&format!(
            "another overlayd uses the state directory {state_dir}"
        )),
        "{log}"
    );
}
