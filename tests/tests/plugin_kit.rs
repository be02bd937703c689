//! The plugin kit as a third party uses it: the out-of-tree example plugins
//! built with their own `cargo build`, installed in a plugin directory and
//! driven through overlayctl; the registrations and ABI mismatches the
//! loader refuses; and plugin panics contained to the device they hit.
//!
//! Every plugin here is built in `target/examples` (shared, so repeated
//! runs are incremental); the first run compiles abi_stable once, in about
//! half a minute.

use nlproto::{
    spec::{overlay as ov, target as tg},
    Attr, AttrsExt,
};
use overlay_tests::proto::stats;
use overlay_tests::{
    build_out_of_tree, install_plugin,
    net::{self, Netns},
    out_of_tree_target_dir, stdout, target_dir, workspace_root, Daemon, TempDir,
};
use serde_json::Value;
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Builds run one at a time: cargo would serialise them on the target
/// directory's lock anyway, and this keeps its "Blocking" chatter away.
static BUILD: Mutex<()> = Mutex::new(());

fn build(manifest: &Path, lib: &str) -> PathBuf {
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    build_out_of_tree(manifest, lib)
}

fn encap_example() -> PathBuf {
    build(
        &workspace_root().join("examples/encap-example/Cargo.toml"),
        "overlay_encap_example",
    )
}

fn lookup_example() -> PathBuf {
    build(
        &workspace_root().join("examples/lookup-example/Cargo.toml"),
        "overlay_lookup_example",
    )
}

fn dynamic_example() -> PathBuf {
    build(
        &workspace_root().join("examples/dynamic-example/Cargo.toml"),
        "overlay_dynamic_example",
    )
}

fn testplug() -> PathBuf {
    build(
        &workspace_root().join("tests/plugins/testplug/Cargo.toml"),
        "overlay_testplug",
    )
}

fn ctl_err(d: &Daemon, args: &[&str]) -> String {
    let out = d.ctl(args);
    assert!(
        !out.status.success(),
        "overlayctl {} succeeded: {}",
        args.join(" "),
        stdout(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(text: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v.as_array().expect("a JSON array").clone()
}

fn skip_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("SKIP"))
        .map(str::to_string)
        .collect()
}

/// The one value of `prop-get -j LINK PROP`.
fn prop(d: &Daemon, link: &str, name: &str) -> String {
    let rows = json(&d.ctl_ok(&["prop-get", "-j", link, name]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["value"].as_str().unwrap().to_string()
}

#[test]
fn out_of_tree_examples_build_load_and_serve() {
    let dir = TempDir::new("kit-examples");
    install_plugin(&encap_example(), &dir, "libmagicid.so", 0o644);
    install_plugin(&lookup_example(), &dir, "libfixed.so", 0o644);
    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    let log = d.log();
    assert!(skip_lines(&log).is_empty(), "{log}");

    // plugins -j: kind, version, file, ABI version and every property.
    let plugins = json(&d.ctl_ok(&["plugins", "-j"]));
    let canon = std::fs::canonicalize(&dir.0).unwrap();
    let by_name: HashMap<&str, &Value> = plugins
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .collect();
    let magicid = by_name["magicid"];
    assert_eq!(magicid["kind"], "encap");
    assert_eq!(magicid["version"], "0.1.0");
    assert_eq!(
        magicid["file"],
        canon.join("libmagicid.so").display().to_string()
    );
    assert_eq!(magicid["abi_version"], "1.0.0");
    assert_eq!(magicid["max_header_len"], 8);
    let props = magicid["props"].as_array().unwrap();
    let port = props
        .iter()
        .find(|p| p["name"] == "magicid/listen_port")
        .unwrap();
    assert_eq!(port["type"], "UINT");
    assert_eq!(port["perm"], "rw");
    assert_eq!(port["default"], "7000");
    assert_eq!(port["possible"], "1024-65535");
    let ip = props
        .iter()
        .find(|p| p["name"] == "magicid/listen_ip")
        .unwrap();
    assert_eq!(ip["req"], "y");
    let version = props
        .iter()
        .find(|p| p["name"] == "magicid/header_version")
        .unwrap();
    assert_eq!(version["perm"], "r-");
    let fixed = by_name["fixed"];
    assert_eq!(fixed["kind"], "lookup");
    let family = fixed["props"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fixed/family")
        .unwrap();
    assert_eq!(family["possible"], "any,ipv4,ipv6");
    let dest_ip = fixed["props"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "fixed/dest_ip")
        .unwrap();
    assert_eq!(dest_ip["runtime"], "y");

    // plugins -v: one line per property with type, permissions, default
    // and range.
    let verbose = d.ctl_ok(&["plugins", "-v"]);
    assert!(
        verbose.contains(
            "magicid/listen_port UINT rw req=- runtime=- default=7000 possible=1024-65535"
        ),
        "{verbose}"
    );
    assert!(
        verbose.contains("fixed/dest_ip IP rw req=y runtime=y default=--"),
        "{verbose}"
    );
    // And what each plugin declares, as the daemon lists it.
    assert!(
        verbose.contains("\n    destination ip+port, id 4 bytes, header 8 bytes, flags none\n"),
        "{verbose}"
    );
    assert!(
        verbose.contains("\n    destination ip+port, modes point\n"),
        "{verbose}"
    );

    // A device with both, configured and inspected through overlayctl.
    d.ctl_ok(&[
        "create",
        "-e",
        "magicid",
        "-s",
        "fixed",
        "-v",
        "4000000000",
        "-p",
        "magicid/listen_ip=10.0.0.1,fixed/dest_ip=10.0.0.9",
        "ov0",
    ]);
    assert_eq!(prop(&d, "ov0", "magicid/listen_port"), "7000");
    assert_eq!(prop(&d, "ov0", "magicid/header_version"), "1");
    assert_eq!(prop(&d, "ov0", "fixed/family"), "any");
    assert_eq!(prop(&d, "ov0", "vnetid"), "4000000000");
    d.ctl_ok(&["prop-set", "ov0", "magicid/listen_port=7001"]);
    assert_eq!(prop(&d, "ov0", "magicid/listen_port"), "7001");
    // The plugins' own checks reach the user with their words.
    let e = ctl_err(&d, &["prop-set", "ov0", "magicid/listen_port=80"]);
    assert!(e.contains("1024-65535"), "{e}");
    let e = ctl_err(&d, &["prop-set", "ov0", "fixed/family=ipv6"]);
    assert!(e.contains("change fixed/dest_ip first"), "{e}");
    let e = ctl_err(&d, &["prop-set", "ov0", "magicid/header_version=2"]);
    assert!(e.contains("header_version"), "{e}");
    assert_eq!(prop(&d, "ov0", "magicid/listen_port"), "7001");

    // Activation opens the plugin's socket and the TAP; runtime
    // properties still change, others are refused.
    d.ctl_ok(&["activate", "ov0"]);
    let shown = json(&d.ctl_ok(&["show", "-j", "ov0"]));
    assert_eq!(shown[0]["state"], "active", "{shown:?}");
    d.ctl_ok(&["prop-set", "ov0", "fixed/dest_port=7002"]);
    assert_eq!(prop(&d, "ov0", "fixed/dest_port"), "7002");
    ctl_err(&d, &["prop-set", "ov0", "magicid/listen_port=7003"]);
    let faults = d.ctl_ok(&["show", "-f"]);
    assert!(faults.contains("ONLINE"), "{faults}");
}

/// The dynamic-mode example answers the lookups of its device from its
/// table, and a table change makes the daemon forget what it cached.
#[test]
fn the_dynamic_example_answers_lookups() {
    let dir = TempDir::new("kit-dynamic");
    install_plugin(&encap_example(), &dir, "libmagicid.so", 0o644);
    install_plugin(&dynamic_example(), &dir, "libpairs.so", 0o644);
    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    assert!(skip_lines(&d.log()).is_empty(), "{}", d.log());
    let plugins = json(&d.ctl_ok(&["plugins", "-j"]));
    let pairs = plugins.iter().find(|p| p["name"] == "pairs").unwrap();
    assert_eq!(pairs["modes"], "dynamic", "{pairs:?}");

    let to_a = "02:00:00:00:00:0a=10.0.0.10:7000";
    d.ctl_ok(&[
        "create",
        "-e",
        "magicid",
        "-s",
        "pairs",
        "-v",
        "5",
        "-p",
        &format!("magicid/listen_ip=10.0.0.1,pairs/table={to_a}"),
        "dy0",
    ]);
    d.ctl_ok(&["activate", "dy0"]);
    let mut c = d.client();
    let a = [2, 0, 0, 0, 0, 0x0a];
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&a);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    // The frame misses the cache; the plugin's answer fills it.
    c.write(
        tg::NAME,
        tg::CMD_RESEND,
        vec![
            Attr::str(tg::ATTR_NAME, "dy0"),
            Attr::bytes(tg::ATTR_FRAME, frame),
        ],
    )
    .unwrap();
    let cached = || d.ctl(&["cache-get", "dy0", "02:00:00:00:00:0a"]);
    let mut answered = false;
    for _ in 0..200 {
        let out = cached();
        if out.status.success() && stdout(&out).contains("10.0.0.10:7000") {
            answered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(answered, "no answer cached: {}", stdout(&cached()));
    // A's destination changes: the daemon forgets its answer at once.
    d.ctl_ok(&[
        "prop-set",
        "dy0",
        "pairs/table=02:00:00:00:00:0a=10.0.0.11:7000",
    ]);
    let e = ctl_err(&d, &["cache-get", "dy0", "02:00:00:00:00:0a"]);
    assert!(e.contains("no answer cached"), "{e}");
}

#[test]
fn invalid_registrations_are_refused_with_a_reason() {
    let so = testplug();
    let cases = [
        ("empty-name", "plugin name '' must be 1 to 31 bytes"),
        ("bad-name", "may hold only a-z, 0-9"),
        ("id-size-0", "id size 0 is not in 1..=8"),
        ("id-size-9", "id size 9 is not in 1..=8"),
        ("no-dest", "destination kinds 0x0 are empty or unknown"),
        ("lookup-no-mode", "modes 0x0 are empty or unknown"),
    ];
    for (mode, reason) in cases {
        let dir = TempDir::new("kit-badreg");
        let file = install_plugin(&so, &dir, &format!("lib{mode}.so"), 0o644);
        install_plugin(&lookup_example(), &dir, "libfixed.so", 0o644);
        let mut d = Daemon::start_opts(
            std::slice::from_ref(&dir.0),
            None,
            &[("OVERLAY_TESTPLUG", mode)],
        );
        let log = d.log();
        let skips = skip_lines(&log);
        assert_eq!(skips.len(), 1, "{mode}: one SKIP line:\n{log}");
        let canon = std::fs::canonicalize(&file).unwrap();
        assert!(
            skips[0].contains(&format!("{}:", canon.display())),
            "{mode}: names the file: {}",
            skips[0]
        );
        assert!(skips[0].contains("invalid registration"), "{}", skips[0]);
        assert!(skips[0].contains(reason), "{mode}: {}", skips[0]);
        // The daemon goes on with the plugin it could load.
        assert!(d.alive());
        let plugins = json(&d.ctl_ok(&["plugins", "-j"]));
        let names: Vec<&str> = plugins
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fixed"], "{mode}");
    }
}

/// Copies `from` into `to`, leaving files whose content is unchanged alone
/// (cargo fingerprints path dependencies by modification time).
fn sync_tree(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            sync_tree(&src, &dst, skip);
        } else {
            write_if_changed(&dst, &std::fs::read(&src).unwrap());
        }
    }
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Replaces `old` by `new` in the file, which must contain it.
fn patch(path: &Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(old),
        "{} no longer contains {old:?}: update this test",
        path.display()
    );
    write_if_changed(path, text.replacen(old, new, 1).as_bytes());
}

/// The encap example built against a copy of plugin-abi that `change`
/// altered; the copies live under `target/examples/<tag>` so that a rerun
/// rebuilds only what changed.
fn example_against_modified_abi(tag: &str, change: impl Fn(&Path)) -> PathBuf {
    let root = workspace_root();
    let base = out_of_tree_target_dir().join(tag);
    let abi = base.join("plugin-abi");
    let example = base.join("encap-example");
    sync_tree(&root.join("plugin-abi"), &abi, &[]);
    // The copy is built on its own: the workspace's inherited settings
    // become plain values.
    let manifest = "[package]\nname = \"overlay-plugin-abi\"\nversion = \"1.0.0\"\n\
        edition = \"2021\"\n[lib]\nname = \"overlay_plugin_abi\"\n[dependencies]\n\
        abi_stable = { version = \"0.11.3\", default-features = false }\nlibc = \"0.2\"\n\
        object = { version = \"0.40\", default-features = false, features = [\"read_core\", \"elf\", \"std\"] }\n";
    write_if_changed(&abi.join("Cargo.toml"), manifest.as_bytes());
    change(&abi);
    sync_tree(&root.join("examples/encap-example"), &example, &["target"]);
    patch(
        &example.join("Cargo.toml"),
        "path = \"../../plugin-abi\"",
        "path = \"../plugin-abi\"",
    );
    let manifest = std::fs::read_to_string(example.join("Cargo.toml")).unwrap();
    if !manifest.contains("\n[workspace]") {
        write_if_changed(
            &example.join("Cargo.toml"),
            format!("{manifest}\n[workspace]\n").as_bytes(),
        );
    }
    build(&example.join("Cargo.toml"), "overlay_encap_example")
}

#[test]
fn plugins_built_against_an_incompatible_abi_are_refused() {
    // A field added to a #[repr(C)] struct of the interface (the socket
    // option a plugin returns): same crate name and version, other layout.
    let layout = example_against_modified_abi("abi-layout", |abi| {
        patch(
            &abi.join("src/encap.rs"),
            "    pub value: RVec<u8>,\n}",
            "    pub value: RVec<u8>,\n    /// Added to break the layout.\n    pub weight: u32,\n}",
        );
    });
    let dir = TempDir::new("kit-abi");
    let bad_layout = install_plugin(&layout, &dir, "libmagicid-layout.so", 0o644);
    // Copied before the next build reuses the output path.
    let version = example_against_modified_abi("abi-version", |abi| {
        patch(
            &abi.join("Cargo.toml"),
            "version = \"1.0.0\"",
            "version = \"2.0.0\"",
        );
    });
    let bad_version = install_plugin(&version, &dir, "libmagicid-v2.so", 0o644);
    install_plugin(&encap_example(), &dir, "libmagicid.so", 0o644);
    install_plugin(&lookup_example(), &dir, "libfixed.so", 0o644);

    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    let log = d.log();
    let skips = skip_lines(&log);
    assert_eq!(skips.len(), 2, "{log}");
    let line_for = |file: &Path| -> &String {
        let canon = std::fs::canonicalize(file).unwrap();
        skips
            .iter()
            .find(|l| l.contains(&format!("{}:", canon.display())))
            .unwrap_or_else(|| panic!("no SKIP naming {}:\n{log}", canon.display()))
    };
    let l = line_for(&bad_layout);
    assert!(l.contains("ABI layout mismatch"), "{l}");
    // Where: the trait and method under which the changed type lies.
    assert!(l.contains("in EncapDevice::socket, type SockOpt"), "{l}");
    assert!(
        l.contains("Error:"),
        "keeps abi_stable's last error block: {l}"
    );
    let v = line_for(&bad_version);
    assert!(v.contains("ABI version mismatch"), "{v}");
    assert!(v.contains("2.0.0"), "{v}");
    // The compatible build of the same plugin loads beside them.
    let plugins = json(&d.ctl_ok(&["plugins", "-j"]));
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["magicid", "fixed"]);
}

/// (status, message) of one device from `show -f -j`.
fn fault(d: &Daemon, link: &str) -> (String, String) {
    let rows = json(&d.ctl_ok(&["show", "-f", "-j"]));
    let row = rows
        .iter()
        .find(|r| r["link"] == link)
        .unwrap_or_else(|| panic!("no {link} in {rows:?}"));
    (
        row["status"].as_str().unwrap().to_string(),
        row["details"].as_str().unwrap().to_string(),
    )
}

/// Sends a few frames into a TAP: pings to an address behind it, whose
/// ARP requests the device must encapsulate. Nobody answers, so each call
/// uses an address of its own (a failed neighbour is not probed again at
/// once).
fn poke(ns: &Netns, addr: &str) {
    let _ = ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", addr]);
}

#[test]
fn a_panicking_plugin_degrades_its_device_and_nothing_else() {
    if !net::can_run() {
        return;
    }
    let plug_dir = TempDir::new("kit-panic");
    install_plugin(&testplug(), &plug_dir, "libpanicky.so", 0o644);

    // A holds overlayd; B a kernel vxlan peer for the healthy device.
    let a = Netns::new("kpa");
    let b = Netns::new("kpb");
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
    let mut d = Daemon::start_opts(&[target_dir(), plug_dir.0.clone()], Some(&a.name), &[]);

    // ovok: vxlan to the kernel. ovbad: the panicking plugin, sending to
    // its own listen port, so that its packets come back through decap.
    d.ctl_ok(&[
        "create",
        "-e",
        "vxlan",
        "-s",
        "direct",
        "-v",
        "42",
        "-p",
        "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789",
        "ovok",
    ]);
    d.ctl_ok(&[
        "create",
        "-e",
        "panicky",
        "-s",
        "direct",
        "-v",
        "7",
        "-p",
        "panicky/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.1,direct/dest_port=7100",
        "ovbad",
    ]);
    d.ctl_ok(&["activate", "ovok"]);
    d.ctl_ok(&["activate", "ovbad"]);
    a.ip("addr add 192.0.2.1/24 dev ovok");
    a.ip("addr add 203.0.113.1/24 dev ovbad");
    a.ping("192.0.2.2", 2);
    let mut c = d.client();

    // Without a panic, ovbad's frames go out and come back decapsulated.
    poke(&a, "203.0.113.2");
    let (dev, _) = stats(&mut c, "ovbad");
    assert!(dev["tx_packets"] > 0 && dev["rx_packets"] > 0, "{dev:?}");
    assert_eq!(fault(&d, "ovbad").0, "ONLINE");

    // decap: counted on the mux, the mux's devices degraded.
    d.ctl_ok(&["prop-set", "ovbad", "panicky/panic_on=decap"]);
    poke(&a, "203.0.113.3");
    let (_, mux) = stats(&mut c, "ovbad");
    assert!(mux["plugin_panics"] > 0, "{mux:?}");
    let (status, msg) = fault(&d, "ovbad");
    assert_eq!(status, "DEGRADED");
    assert!(msg.contains("panicked in decap"), "{msg}");

    // encap: counted on the device.
    d.ctl_ok(&["prop-set", "ovbad", "panicky/panic_on=encap"]);
    poke(&a, "203.0.113.4");
    let (dev, _) = stats(&mut c, "ovbad");
    assert!(dev["plugin_panics"] > 0, "{dev:?}");
    assert!(dev["drop_encap"] >= dev["plugin_panics"], "{dev:?}");
    let (_, msg) = fault(&d, "ovbad");
    assert!(msg.contains("panicked in encap"), "{msg}");

    // A property call: that call fails with the panic's message. The
    // state file's snapshot after the change reads the plugin's
    // properties too, through the same path: those panics count as well.
    let before_set = stats(&mut c, "ovbad").0["plugin_panics"];
    d.ctl_ok(&["prop-set", "ovbad", "panicky/panic_on=getprop"]);
    let before = stats(&mut c, "ovbad").0["plugin_panics"];
    assert!(before > before_set, "{before} after {before_set}");
    let e = ctl_err(&d, &["prop-get", "ovbad", "panicky/listen_port"]);
    assert!(e.contains("panicked in getprop"), "{e}");
    assert_eq!(stats(&mut c, "ovbad").0["plugin_panics"], before + 1);
    let (_, msg) = fault(&d, "ovbad");
    assert!(msg.contains("panicked in getprop"), "{msg}");

    // Everything else goes on: the healthy device is untouched and still
    // carries traffic, the daemon answers.
    a.ping("192.0.2.2", 2);
    let (dev, mux) = stats(&mut c, "ovok");
    assert_eq!(dev["plugin_panics"], 0, "{dev:?}");
    assert_eq!(mux["plugin_panics"], 0, "{mux:?}");
    assert_eq!(fault(&d, "ovok").0, "ONLINE");
    assert!(d.alive(), "{}", d.log());
    let status = c
        .transact(
            ov::NAME,
            ov::CMD_STATUS,
            vec![Attr::str(ov::ATTR_NAME, "ovbad")],
        )
        .expect("STATUS");
    assert_eq!(
        status.attrs.get_u32(ov::ATTR_STATUS),
        Some(ov::STATUS_DEGRADED)
    );
    d.ctl_ok(&["delete", "ovbad"]);
    a.ping("192.0.2.2", 2);
    drop(c);
    d.stop();
}

/// A panic that degrades a device is told to the members of the `status`
/// group: one STATUS_CHANGED notification naming the device, degraded,
/// with the panic's message.
#[test]
fn a_panic_is_notified_to_the_status_group() {
    use nlproto::{client::Notification, spec::overlay as ov};
    let plug_dir = TempDir::new("kit-status");
    install_plugin(&testplug(), &plug_dir, "libpanicky.so", 0o644);
    let d = Daemon::start_opts(&[target_dir(), plug_dir.0.clone()], None, &[]);
    d.ctl_ok(&[
        "create", "-e", "panicky", "-s", "direct", "-v", "7", "ovbad",
    ]);
    let mut sub = d.client();
    let group = sub.mcast_group_id(ov::NAME, "status").unwrap();
    sub.join_group(group).unwrap();
    d.ctl_ok(&["prop-set", "ovbad", "panicky/panic_on=getprop"]);
    ctl_err(&d, &["prop-get", "ovbad", "panicky/listen_port"]);
    let m = match sub.next_notification().expect("a notification") {
        Notification::Event(m) => m,
        Notification::Overrun => panic!("unexpected overrun"),
    };
    assert_eq!(m.cmd, ov::CMD_STATUS_CHANGED);
    assert_eq!((m.seq, m.pid), (0, 0));
    assert_eq!(m.attrs.get_str(ov::ATTR_NAME), Some("ovbad"));
    assert_eq!(m.attrs.get_u32(ov::ATTR_STATUS), Some(ov::STATUS_DEGRADED));
    let msg = m.attrs.get_str(ov::ATTR_STATUS_MSG).unwrap_or_default();
    assert!(msg.contains("panicked in getprop"), "{msg}");
}
