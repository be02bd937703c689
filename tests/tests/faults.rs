//! Faults injected from outside while the daemon runs: each ends in a
//! clear error or a degraded status with a message, nothing lost, the
//! daemon alive.

use nlproto::client::Client;
use overlay_tests::{net, proto, Daemon, TempDir};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends `total` bytes of garbage datagrams (64 KiB each) as fast as the
/// daemon takes them, reading and dropping what it answers; gives up after
/// two minutes. Returns the bytes sent.
fn flood_garbage(socket: &std::path::Path, total: usize) -> usize {
    let fd = nlproto::sys::connect(socket).unwrap();
    let mut datagram = vec![0u8; 64 * 1024];
    // Not one valid message: a length field that overruns the datagram,
    // then bytes that vary from one datagram to the next.
    let mut x: u32 = 0x9e37_79b9;
    let mut sent = 0;
    let mut buf = vec![0u8; 128 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent < total && Instant::now() < deadline {
        for b in datagram.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        datagram[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        if nlproto::sys::try_send(fd.as_fd(), &datagram).unwrap() {
            sent += datagram.len();
        } else {
            nlproto::sys::wait_readable(fd.as_fd(), Duration::from_millis(10)).unwrap();
        }
        while let Some(n) = nlproto::sys::try_recv(fd.as_fd(), &mut buf).unwrap() {
            if n == 0 {
                break;
            }
        }
    }
    sent
}

#[test]
fn a_thousand_clients_and_a_garbage_flood_are_served_and_the_limit_refuses_clearly() {
    let d = Daemon::start_with_args(&["--max-connections", "1002"]);
    let pid = d.pid().unwrap();
    let mut first = d.client();
    proto::create(&mut first, "ov0", 42, &[]).unwrap();
    let before = rss_kib(pid);

    // A client sending 100 MB of garbage, while a thousand others ask.
    let socket = d.socket.clone();
    let flood = std::thread::spawn(move || flood_garbage(&socket, 100 << 20));
    let mut clients: Vec<Client> = (0..1000).map(|_| d.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        // Every one is answered, whatever the flood does.
        assert_eq!(proto::device_names(c), ["ov0"], "client {i}");
    }
    let sent = flood.join().unwrap();
    assert!(
        sent >= 100 << 20,
        "the daemon took only {sent} bytes of garbage"
    );
    for c in clients.iter_mut().step_by(97) {
        assert_eq!(proto::device_names(c), ["ov0"]);
    }
    // Memory stays bounded: a thousand connections and 100 MB of garbage
    // cost far less than the garbage itself.
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );

    // 1 + 1000 connections are open: one more fits, the next is refused
    // with a message saying why, at once.
    let mut last = d.client();
    assert_eq!(proto::device_names(&mut last), ["ov0"]);
    let refused = match Client::connect(&d.socket) {
        Ok(_) => panic!("a connection past the limit was served"),
        Err(e) => e,
    };
    let text = refused.to_string();
    assert!(
        text.contains("at most 1002 connections") && text.contains("--max-connections"),
        "{text}"
    );
    // Room again once clients go.
    clients.truncate(900);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match Client::connect(&d.socket) {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "still refused: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(proto::device_names(&mut again), ["ov0"]);
    assert!(d.log().contains("refusing connections"), "{}", d.log());
}

/// A small tmpfs mounted on a directory of the test's own, unmounted on
/// drop (lazily, so that a daemon still holding it cannot keep it).
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> SmallFs {
        std::fs::create_dir_all(dir).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={size},mode=0700 tmpfs {}",
            dir.display()
        ));
        SmallFs(dir.to_path_buf())
    }

    /// Makes the directory read-only to new opens: a read-only bind mount
    /// on top of it (a remount would be refused while the daemon holds
    /// its lock file open for writing).
    fn read_only(&self) {
        let d = self.0.display();
        sh(&format!(
            "mount --bind {d} {d} && mount -o remount,bind,ro {d}"
        ));
    }

    /// Takes the read-only layer away.
    fn writable(&self) {
        sh(&format!("umount {}", self.0.display()));
    }

    /// Fills the file system with a file named `filler`.
    fn fill(&self) {
        let out = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No space left"), "dd: {err}");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // The read-only layer if a failure left it, then the tmpfs.
        for _ in 0..2 {
            let done = Command::new("umount").arg("-l").arg(&self.0).status();
            if !done.is_ok_and(|s| s.success()) {
                break;
            }
        }
    }
}

fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The device names the state file holds.
fn saved_devices(state_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(state_dir.join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_read_only_or_full_state_directory_loses_no_change() {
    if !net::can_run() {
        return;
    }
    let work = TempDir::new("faults-state");
    let state = work.join("state");
    let fs = SmallFs::mount(&state, "512k");
    let state_arg = state.display().to_string();
    let mut d = Daemon::start_with_args(&["--state-dir", &state_arg]);
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &[]).unwrap();
    assert_eq!(saved_devices(&state), ["ov0"]);

    // Read-only: the change is made, the failed write logged.
    fs.read_only();
    proto::create(&mut c, "ov1", 2, &[]).unwrap();
    assert_eq!(proto::device_names(&mut c), ["ov0", "ov1"]);
    assert_eq!(saved_devices(&state), ["ov0"]);
    let log = d.log();
    assert!(
        log.contains("cannot save the device state") && log.contains("Read-only file system"),
        "{log}"
    );

    // Full: the same.
    fs.writable();
    fs.fill();
    proto::create(&mut c, "ov2", 3, &[]).unwrap();
    assert_eq!(saved_devices(&state), ["ov0"]);
    assert!(d.log().contains("No space left on device"), "{}", d.log());

    // Room again: the next change writes everything made meanwhile.
    std::fs::remove_file(state.join("filler")).unwrap();
    proto::setprop(&mut c, "ov0", "mtu", proto::uint(1450)).unwrap();
    assert_eq!(saved_devices(&state), ["ov0", "ov1", "ov2"]);

    // Read-only again, one more change, then kill -9: a restart restores
    // what was last written, and nothing else.
    fs.read_only();
    proto::create(&mut c, "ov3", 4, &[]).unwrap();
    drop(c);
    d.kill();
    fs.writable();
    d.restart();
    let mut c = d.client();
    assert_eq!(proto::device_names(&mut c), ["ov0", "ov1", "ov2"]);
    assert_eq!(proto::getprop_uint(&mut c, "ov0", "mtu"), 1450);
}

/// The device's status and its message (`STATUS`).
fn status(c: &mut Client, dev: &str) -> (u32, String) {
    use nlproto::{spec::overlay as ov, AttrsExt};
    let reply = c
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

/// Runs `ip ARGS` in the daemon's network namespace.
fn ip_in(d: &Daemon, args: &str) -> std::process::Output {
    Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", d.pid().unwrap()))
        .arg("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap()
}

/// Waits (at most ten seconds) until `dev`'s status message contains
/// `needle`; returns the message.
fn wait_status(c: &mut Client, dev: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, msg) = status(c, dev);
        if msg.contains(needle) {
            return msg;
        }
        assert!(
            Instant::now() < deadline,
            "{dev}: status {msg:?}, waited for {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tap_deleted_from_outside_degrades_its_device_and_activate_or_delete_works() {
    if !net::can_run() {
        return;
    }
    let d = Daemon::start();
    let mut c = d.client();
    for (dev, vnetid) in [("ov0", 1), ("ov1", 2), ("ov2", 3)] {
        proto::create(
            &mut c,
            dev,
            vnetid,
            &proto::full_props("10.0.0.1", "10.0.0.2"),
        )
        .unwrap();
        proto::activate(&mut c, dev).unwrap();
    }
    assert!(ip_in(&d, "link show ov0").status.success());

    // ov0's TAP deleted by someone else: ov0 degraded, saying what and
    // what to do; its neighbours untouched.
    let out = ip_in(&d, "link del ov0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg = wait_status(&mut c, "ov0", "deleted from outside");
    assert!(msg.contains("ov0") && msg.contains("activate"), "{msg}");
    assert_eq!(status(&mut c, "ov1"), (0, String::new()));

    // Activating it again brings the TAP back and clears the degradation.
    proto::activate(&mut c, "ov0").unwrap();
    assert!(ip_in(&d, "link show ov0").status.success());
    assert_eq!(status(&mut c, "ov0"), (0, String::new()));
    // An active, healthy device is still refused a second activation.
    let again = proto::activate(&mut c, "ov0").unwrap_err().to_string();
    assert!(again.contains("already active"), "{again}");

    // The same fault, then a delete: clean, nothing left behind.
    assert!(ip_in(&d, "link del ov1").status.success());
    wait_status(&mut c, "ov1", "deleted from outside");
    proto::delete(&mut c, "ov1").unwrap();
    assert_eq!(proto::device_names(&mut c), ["ov0", "ov2"]);
    assert_eq!(status(&mut c, "ov2"), (0, String::new()));
}

/// Runs overlayctl, panicking with its error output on failure.
fn ctl(d: &Daemon, args: &[&str]) -> String {
    let out = d.ctl(args);
    assert!(
        out.status.success(),
        "overlayctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test plugin (`tests/plugins/testplug`), built as a third party
/// builds it, in a directory of its own.
fn testplug_dir(work: &TempDir) -> PathBuf {
    let so = overlay_tests::build_out_of_tree(
        &overlay_tests::workspace_root().join("tests/plugins/testplug/Cargo.toml"),
        "overlay_testplug",
    );
    let dir = work.join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&so, dir.join("libsick.so")).unwrap();
    dir
}

/// Whether `ip` in the daemon's namespace resolved to `mac` on `dev`.
fn resolved(d: &Daemon, dev: &str, ip: &str, mac: &str) -> bool {
    let out = ip_in(d, &format!("neigh show {ip} dev {dev}"));
    String::from_utf8_lossy(&out.stdout).contains(mac)
}

#[test]
fn lookup_plugins_that_block_or_panic_leave_healthy_devices_alone() {
    if !net::can_run() {
        return;
    }
    let work = TempDir::new("faults-sick");
    let plugins = testplug_dir(&work);
    let hosts = work.join("hosts.json");
    // Ten hosts, one asked per round: each a fresh broadcast ARP request.
    let entries: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#""02:00:5e:10:00:{i:02x}": {{ "ip": "10.0.0.2", "arp": "192.0.2.{}" }}"#,
                10 + i
            )
        })
        .collect();
    std::fs::write(&hosts, format!("{{ {} }}", entries.join(", "))).unwrap();
    let d = Daemon::start_opts(
        &[overlay_tests::target_dir(), plugins],
        None,
        &[("OVERLAY_TESTPLUG", "sick-lookup")],
    );
    let sick = "vxlan/listen_ip=10.0.0.1,lookup_timeout=100,sick/on_lookup";
    ctl(
        &d,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "sick",
            "-v",
            "1",
            "-p",
            &format!("{sick}=block"),
            "ovb",
        ],
    );
    ctl(
        &d,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "sick",
            "-v",
            "2",
            "-p",
            &format!("{sick}=panic"),
            "ovp",
        ],
    );
    let files = format!("vxlan/listen_ip=10.0.0.1,files/config={}", hosts.display());
    ctl(
        &d,
        &[
            "create", "-e", "vxlan", "-s", "files", "-v", "3", "-p", &files, "ovf",
        ],
    );
    let direct = "vxlan/listen_ip=10.0.0.1,direct/dest_ip=10.0.0.2,direct/dest_port=4789";
    ctl(
        &d,
        &[
            "create", "-e", "vxlan", "-s", "direct", "-v", "4", "-p", direct, "ovd",
        ],
    );
    for (dev, net) in [
        ("ovb", "192.0.3.1/24"),
        ("ovp", "192.0.4.1/24"),
        ("ovf", "192.0.2.1/24"),
        ("ovd", "192.0.5.1/24"),
    ] {
        ctl(&d, &["activate", dev]);
        assert!(ip_in(&d, &format!("addr add {net} dev {dev}"))
            .status
            .success());
    }

    // Misses on the sick devices: ARP requests for many addresses, each a
    // lookup that blocks or panics, again and again as they time out.
    let ns = format!("--net=/proc/{}/ns/net", d.pid().unwrap());
    let mut pingers = Vec::new();
    for i in 2..34 {
        for net in ["192.0.3", "192.0.4"] {
            pingers.push(
                Command::new("nsenter")
                    .args([ns.as_str(), "ping", "-c", "3", "-i", "0.2", "-W", "1"])
                    .arg(format!("{net}.{i}"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
    }
    // The sick devices are degraded, saying why.
    let mut c = d.client();
    let msg = wait_status(&mut c, "ovp", "panic");
    assert!(msg.contains("sick/on_lookup"), "{msg}");
    wait_status(&mut c, "ovb", "has not returned");

    // Meanwhile the healthy ones work: files answers ARP for its hosts
    // (ten times over, so that lookups go on while the sick ones are
    // stuck), and the point-mode device sends.
    for i in 0..10 {
        let ip = format!("192.0.2.{}", 10 + i);
        let _ = Command::new("nsenter")
            .args([ns.as_str(), "ping", "-c", "1", "-W", "2", &ip])
            .output()
            .unwrap();
        assert!(
            resolved(&d, "ovf", &ip, &format!("02:00:5e:10:00:{i:02x}")),
            "files did not answer ARP for {ip}; {}",
            d.log()
        );
    }
    let _ = Command::new("nsenter")
        .args([
            ns.as_str(),
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "192.0.5.2",
        ])
        .output()
        .unwrap();
    let stats = ctl(&d, &["show", "-s", "-j", "ovd"]);
    assert!(!stats.contains("\"opackets\":0"), "{stats}");
    assert_eq!(status(&mut c, "ovf"), (0, String::new()));
    assert_eq!(status(&mut c, "ovd"), (0, String::new()));
    for mut p in pingers {
        let _ = p.kill();
        let _ = p.wait();
    }
    // A device whose lookups block can still be deleted.
    ctl(&d, &["delete", "ovb"]);
    ctl(&d, &["delete", "ovp"]);
}

#[test]
fn an_underlay_address_removed_then_restored_degrades_and_recovers_by_itself() {
    if !net::can_run() {
        return;
    }
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &proto::full_props("10.0.0.9", "10.0.0.2")).unwrap();
    proto::create(&mut c, "ov1", 2, &proto::full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    proto::activate(&mut c, "ov1").unwrap();

    // The address ov0 listens on goes away: ov0 degraded, saying so; ov1,
    // on another address, untouched.
    assert!(ip_in(&d, "addr del 10.0.0.9/24 dev ovt0").status.success());
    let msg = wait_status(&mut c, "ov0", "underlay address 10.0.0.9 is gone");
    assert!(msg.contains("recovers by itself"), "{msg}");
    assert_eq!(status(&mut c, "ov1"), (0, String::new()));

    // It comes back: ov0 is restored without anyone asking.
    let out = ip_in(&d, "addr add 10.0.0.9/24 dev ovt0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&mut c, "ov0") != (0, String::new()) {
        assert!(
            Instant::now() < deadline,
            "ov0 not restored: {:?}",
            status(&mut c, "ov0")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And it sends again.
    let before = proto::stats(&mut c, "ov0")
        .0
        .get("tx_packets")
        .copied()
        .unwrap_or(0);
    let _ = ip_in(&d, "addr add 192.0.2.1/24 dev ov0");
    let _ = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", d.pid().unwrap()))
        .args(["ping", "-c", "2", "-i", "0.2", "-W", "1", "192.0.2.2"])
        .output()
        .unwrap();
    let after = proto::stats(&mut c, "ov0")
        .0
        .get("tx_packets")
        .copied()
        .unwrap_or(0);
    assert!(
        after > before,
        "ov0 sent nothing after the address came back"
    );
}

/// A lookup plugin that panics while its state is saved for the state
/// file: the panic is counted and degrades its device, as a panic in any
/// other call into a plugin does, and the change is saved without it.
#[test]
fn a_panic_while_saving_lookup_state_degrades_the_device() {
    let work = TempDir::new("faults-save");
    let plugins = testplug_dir(&work);
    let d = Daemon::start_opts(
        &[overlay_tests::target_dir(), plugins],
        None,
        &[("OVERLAY_TESTPLUG", "sick-lookup")],
    );
    ctl(
        &d,
        &[
            "create",
            "-e",
            "vxlan",
            "-s",
            "sick",
            "-v",
            "1",
            "-p",
            "vxlan/listen_ip=10.0.0.1,sick/on_save=panic",
            "ovs",
        ],
    );
    let mut c = d.client();
    let msg = wait_status(&mut c, "ovs", "panic");
    assert!(msg.contains("sick/on_save"), "{msg}");
    let panics = proto::stats(&mut c, "ovs")
        .0
        .get("plugin_panics")
        .copied()
        .unwrap_or_default();
    assert!(panics >= 1, "plugin_panics {panics}");
}

/// The lookup threads' names in the daemon's process.
fn lookup_threads(d: &Daemon) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid().unwrap())).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "lookup")
        .count()
}

/// A device whose lookup plugin never returns, deleted, then another
/// like it: the second is degraded too, and a healthy device's lookups
/// are still answered. (Timeouts used to be noticed only by lookup
/// threads, and extra threads started only by an idle one: once every
/// thread was inside a blocking plugin, the first device's deleted with
/// them, nothing noticed the next device's timeouts and nobody's lookups
/// were answered.)
#[test]
fn a_deleted_device_whose_plugin_never_returns_leaves_the_next_ones_served() {
    if !net::can_run() {
        return;
    }
    let work = TempDir::new("faults-sick-deleted");
    let plugins = testplug_dir(&work);
    let hosts = work.join("hosts.json");
    std::fs::write(
        &hosts,
        r#"{ "02:00:5e:10:00:07": { "ip": "10.0.0.2", "arp": "192.0.2.7" } }"#,
    )
    .unwrap();
    // Two lookup threads, so that two blocking lookups would take them all.
    let d = Daemon::start_opts(
        &[overlay_tests::target_dir(), plugins],
        None,
        &[
            ("OVERLAY_TESTPLUG", "sick-lookup"),
            ("OVERLAYD_LOOKUP_THREADS", "2"),
        ],
    );
    let ns = format!("--net=/proc/{}/ns/net", d.pid().unwrap());
    let mut c = d.client();
    let sick = "vxlan/listen_ip=10.0.0.1,lookup_timeout=100,sick/on_lookup=block";
    for (round, vnetid) in [("first", "1"), ("second", "2")] {
        ctl(
            &d,
            &[
                "create", "-e", "vxlan", "-s", "sick", "-v", vnetid, "-p", sick, "ovb",
            ],
        );
        ctl(&d, &["activate", "ovb"]);
        assert!(ip_in(&d, "addr add 192.0.3.1/24 dev ovb").status.success());
        // A miss: ARP for an address nobody answers, asked again and
        // again, each time a lookup that blocks.
        let mut pinger = Command::new("nsenter")
            .args([ns.as_str(), "ping", "-c", "5", "-i", "0.2", "-W", "1"])
            .arg("192.0.3.7")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, msg) = status(&mut c, "ovb");
            if msg.contains("has not returned") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the {round} blocking device is not degraded: status {msg:?}; {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = pinger.kill();
        let _ = pinger.wait();
        ctl(&d, &["delete", "ovb"]);
    }

    // A healthy device next: its plugin answers ARP for its host.
    let files = format!("vxlan/listen_ip=10.0.0.1,files/config={}", hosts.display());
    ctl(
        &d,
        &[
            "create", "-e", "vxlan", "-s", "files", "-v", "3", "-p", &files, "ovf",
        ],
    );
    ctl(&d, &["activate", "ovf"]);
    assert!(ip_in(&d, "addr add 192.0.2.1/24 dev ovf").status.success());
    let _ = Command::new("nsenter")
        .args([ns.as_str(), "ping", "-c", "3", "-i", "0.2", "-W", "1"])
        .arg("192.0.2.7")
        .output()
        .unwrap();
    assert!(
        resolved(&d, "ovf", "192.0.2.7", "02:00:5e:10:00:07"),
        "files did not answer ARP after two blocking devices; {}",
        d.log()
    );
    assert_eq!(status(&mut c, "ovf"), (0, String::new()));
    // Each blocking plugin holds one thread; one was started in place of
    // each, and no more.
    let threads = lookup_threads(&d);
    assert!(threads <= 4, "{threads} lookup threads");
}

/// A status change made outside any request (here, the underlay address
/// going away and coming back) reaches the `status` group at once: a
/// monitor sees it while nobody sends the daemon anything.
#[test]
fn status_changes_outside_requests_are_notified_at_once() {
    use nlproto::client::Notification;
    use nlproto::spec::overlay as ov;
    use nlproto::AttrsExt;
    let d = Daemon::start();
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &proto::full_props("10.0.0.9", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    let mut monitor = d.client();
    let group = monitor
        .mcast_group_id(ov::NAME, ov::GROUP_STATUS_NAME)
        .unwrap();
    monitor.join_group(group).unwrap();
    // From here on no client sends a request: each notification must come
    // by itself, within the client's wait (10 s).
    let mut next_status = || match monitor.next_notification().expect("a notification") {
        Notification::Event(m) => {
            assert_eq!(m.cmd, ov::CMD_STATUS_CHANGED, "{m:?}");
            assert_eq!(m.attrs.get_str(ov::ATTR_NAME), Some("ov0"));
            m.attrs
                .get_str(ov::ATTR_STATUS_MSG)
                .unwrap_or("")
                .to_string()
        }
        Notification::Overrun => panic!("unexpected overrun"),
    };
    assert!(ip_in(&d, "addr del 10.0.0.9/24 dev ovt0").status.success());
    let msg = next_status();
    assert!(msg.contains("underlay address 10.0.0.9 is gone"), "{msg}");
    assert!(ip_in(&d, "addr add 10.0.0.9/24 dev ovt0").status.success());
    assert_eq!(next_status(), "", "restored");
}
