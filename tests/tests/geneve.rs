//! Geneve end to end, in namespaces joined by a veth underlay
//! (198.51.100.0/24), overlay 192.0.2.0/24, VNI 42:
//!
//! * two overlayd instances talking Geneve to each other, TAP backends;
//! * overlayd against Open vSwitch's userspace datapath (this kernel has no
//!   Geneve driver), with the options overlayd sends checked on the wire by
//!   tshark.
//!
//! Every address lives only inside the test's namespaces; every daemon the
//! test starts is stopped when the test ends, also on failure.

use overlay_tests::proto::stats;
use overlay_tests::{
    net::{self, Netns},
    tshark::Capture,
    Daemon, TempDir,
};
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const VNI: u32 = 42;
const A_UNDER: &str = "198.51.100.1";
const B_UNDER: &str = "198.51.100.2";
const A_OVER: &str = "192.0.2.1";
const B_OVER: &str = "192.0.2.2";
/// A non-critical option overlayd sends in the tests: class 0x0102, type 1.
const OPTION: &str = "0x0102:0x01:deadbeef";

fn ping_n(ns: &Netns, addr: &str, count: u32) {
    let count = count.to_string();
    let out = ns.exec(&["ping", "-c", &count, "-i", "0.2", "-W", "2", addr]);
    assert!(
        out.status.success(),
        "ping {addr} from {}: {}",
        ns.name,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn ping_fails(ns: &Netns, addr: &str) {
    let out = ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", addr]);
    assert!(
        !out.status.success(),
        "ping {addr} from {} got an answer",
        ns.name
    );
}

/// A geneve/direct device `ov0` on `d`, listening on `listen`, sending to
/// `peer`, with `extra` properties, activated and holding `addr/24`.
fn geneve_device(d: &Daemon, ns: &Netns, listen: &str, peer: &str, addr: &str, extra: &[&str]) {
    let mut props =
        format!("geneve/listen_ip={listen},direct/dest_ip={peer},direct/dest_port=6081");
    for e in extra {
        props.push(',');
        props.push_str(e);
    }
    let vni = VNI.to_string();
    d.ctl_ok(&[
        "create", "-e", "geneve", "-s", "direct", "-v", &vni, "-p", &props, "ov0",
    ]);
    d.ctl_ok(&["activate", "ov0"]);
    // No IPv6 chatter of its own: the tests count what reaches the peer.
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.ov0.disable_ipv6=1"]);
    ns.ip(&format!("addr add {addr}/24 dev ov0"));
}

/// 20 MB each way over TCP, checked by sha256 at the far end.
fn transfer_both_ways(a: &mut Netns, b: &mut Netns) {
    let dir = TempDir::new("gnv-xfer");
    let (src_a, dst_b) = (dir.join("a.bin"), dir.join("a.out"));
    let (src_b, dst_a) = (dir.join("b.bin"), dir.join("b.out"));
    net::random_file(&src_a, 20 << 20, 11);
    net::random_file(&src_b, 20 << 20, 12);
    net::tcp_transfer(a, b, B_OVER, 5001, &src_a, &dst_b);
    assert_eq!(net::sha256(&src_a), net::sha256(&dst_b), "A to B");
    net::tcp_transfer(b, a, A_OVER, 5002, &src_b, &dst_a);
    assert_eq!(net::sha256(&src_b), net::sha256(&dst_a), "B to A");
}

/// Two namespaces joined by a veth pair (`ua` in A, `ub` in B); A holds
/// its underlay address on `ua`.
fn namespaces(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    net::veth(&a, "ua", &b, "ub");
    a.ip(&format!("addr add {A_UNDER}/24 dev ua nodad"));
    (a, b)
}

struct TwoDaemons {
    // Field order is drop order: the daemons stop before their namespaces go.
    da: Daemon,
    db: Daemon,
    a: Netns,
    b: Netns,
}

#[test]
fn two_overlayd_talk_geneve() {
    if !net::can_run() {
        return;
    }
    let (a, b) = namespaces("gnv2");
    b.ip(&format!("addr add {B_UNDER}/24 dev ub nodad"));
    let mut t = TwoDaemons {
        da: Daemon::start_in_netns(&a.name),
        db: Daemon::start_in_netns(&b.name),
        a,
        b,
    };
    // A sends a non-critical option, which B skips.
    let opt = format!("geneve/options={OPTION}");
    geneve_device(&t.da, &t.a, A_UNDER, B_UNDER, A_OVER, &[&opt]);
    geneve_device(&t.db, &t.b, B_UNDER, A_UNDER, B_OVER, &[]);
    t.a.ping(B_OVER, 2);
    t.b.ping(A_OVER, 2);
    transfer_both_ways(&mut t.a, &mut t.b);
    let mut ca = t.da.client();
    let mut cb = t.db.client();
    let (dev_a, _) = stats(&mut ca, "ov0");
    let (dev_b, mux_b) = stats(&mut cb, "ov0");
    assert!(dev_a["tx_packets"] > 10_000, "{dev_a:?}");
    assert!(dev_b["rx_packets"] > 10_000, "{dev_b:?}");
    assert_eq!(mux_b["drop_bad_header"], 0, "{mux_b:?}");

    // A critical option is one B does not understand: B drops everything
    // A sends, and counts it.
    let before = stats(&mut cb, "ov0").1["drop_bad_header"];
    t.da.ctl_ok(&["prop-set", "ov0", "geneve/options=0x0102:0x80:deadbeef"]);
    ping_fails(&t.a, B_OVER);
    assert!(stats(&mut cb, "ov0").1["drop_bad_header"] >= before + 2);
    t.da.ctl_ok(&["prop-set", "ov0", &opt]);
    t.a.ping(B_OVER, 2);

    // Malformed and OAM packets straight at A's mux: counted, not
    // delivered, and forwarding goes on. (Octal escapes: the shell's
    // printf has no \x.)
    let (dev_before, mux_before) = stats(&mut ca, "ov0");
    let frame = "\\002\\000\\000\\000\\000\\001\\002\\000\\000\\000\\000\\002\\010\\000";
    let dst = format!("UDP4:{A_UNDER}:6081");
    let bad = [
        // Version 1.
        format!("\\100\\000\\145\\130\\000\\000\\052\\000{frame}"),
        // C bit and a critical option (class 0x0102, type 0x80).
        format!("\\001\\100\\145\\130\\000\\000\\052\\000\\001\\002\\200\\000{frame}"),
        // 63 words of options in a short packet.
        format!("\\077\\000\\145\\130\\000\\000\\052\\000{frame}"),
        // IPv4 rather than Ethernet.
        format!("\\000\\000\\010\\000\\000\\000\\052\\000{frame}"),
        // Shorter than the base header.
        "\\000\\000\\145".to_string(),
    ];
    let oam = format!("\\000\\200\\145\\130\\000\\000\\052\\000{frame}");
    for payload in bad.iter().chain([&oam]) {
        let script = format!("printf '{payload}' | socat -u - {dst}");
        t.b.ok(&["timeout", "5", "sh", "-c", &script]);
    }
    // The ping's replies come through the same socket after the packets
    // above, so the counters include them once it succeeds.
    t.b.ping(A_OVER, 2);
    let (dev_after, mux_after) = stats(&mut ca, "ov0");
    assert_eq!(
        mux_after["drop_bad_header"],
        mux_before["drop_bad_header"] + bad.len() as u64,
        "{mux_after:?}"
    );
    assert_eq!(
        mux_after["drop_oam"],
        mux_before["drop_oam"] + 1,
        "{mux_after:?}"
    );
    // Only the ping (3 requests, maybe an ARP exchange) reached the device.
    assert!(
        dev_after["rx_packets"] - dev_before["rx_packets"] <= 5,
        "{dev_before:?} {dev_after:?}"
    );
}

#[test]
fn geneve_in_dynamic_mode_with_files() {
    if !net::can_run() {
        return;
    }
    const B_MAC: &str = "02:00:00:00:00:b2";
    let (a, b) = namespaces("gnvd");
    b.ip(&format!("addr add {B_UNDER}/24 dev ub nodad"));
    let mut t = TwoDaemons {
        da: Daemon::start_in_netns(&a.name),
        db: Daemon::start_in_netns(&b.name),
        a,
        b,
    };
    // A looks B up in its file, which also answers A's ARP for B; B sends
    // everything to A (point mode), with the MAC the file gives it.
    let dir = TempDir::new("gnvd");
    let hosts = dir.join("hosts.json");
    std::fs::write(
        &hosts,
        format!(r#"{{ "{B_MAC}": {{ "ip": "{B_UNDER}", "arp": "{B_OVER}" }} }}"#),
    )
    .unwrap();
    // No port in the entry: files/default_port gives Geneve's.
    t.da.files_overlay(
        "ov0",
        "geneve",
        VNI,
        A_UNDER,
        &hosts,
        &["files/default_port=6081"],
    );
    t.a.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.ov0.disable_ipv6=1"]);
    t.a.ip(&format!("addr add {A_OVER}/24 dev ov0"));
    geneve_device(&t.db, &t.b, B_UNDER, A_UNDER, B_OVER, &[]);
    t.b.ip(&format!("link set ov0 address {B_MAC}"));

    t.a.ping(B_OVER, 2);
    transfer_both_ways(&mut t.a, &mut t.b);
    let mut ca = t.da.client();
    let (dev_a, _) = stats(&mut ca, "ov0");
    // A's ARP for B was answered in A; B's frames came back through a
    // single cached answer (B's MAC is looked up once).
    assert!(dev_a["lookup_proxied"] >= 1, "{dev_a:?}");
    assert_eq!(dev_a["lookup_replicated"], 0, "{dev_a:?}");
    assert!(dev_a["lookup_answers"] >= 1, "{dev_a:?}");
    assert!(dev_a["tx_packets"] > 10_000, "{dev_a:?}");
    let shown = t.da.ctl_ok(&["show", "-t", "ov0"]);
    assert!(
        shown.contains(&format!("{B_MAC}  {B_UNDER}:6081")),
        "{shown}"
    );
}

/// An Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath)
/// running in a namespace with every file under a private directory. Both
/// daemons are stopped through their pidfiles on drop.
struct Ovs {
    dir: TempDir,
}

impl Ovs {
    /// Starts both daemons in `ns`. They detach once ready, so each start
    /// returning means the daemon serves its sockets.
    fn start(ns: &Netns) -> Ovs {
        let ovs = Ovs {
            dir: TempDir::new("ovs"),
        };
        let d = ovs.dir.0.display().to_string();
        let db = format!("{d}/conf.db");
        ovs.run(&[
            "ovsdb-tool",
            "create",
            &db,
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        ovs.run_in(
            ns,
            &[
                "ovsdb-server",
                &db,
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--unixctl={d}/ovsdb.ctl"),
                &format!("--pidfile={d}/ovsdb.pid"),
                &format!("--log-file={d}/ovsdb.log"),
                "--detach",
            ],
        );
        ovs.vsctl(&["--no-wait", "init"]);
        ovs.run_in(
            ns,
            &[
                "ovs-vswitchd",
                &format!("unix:{d}/db.sock"),
                &format!("--unixctl={d}/vswitchd.ctl"),
                &format!("--pidfile={d}/vswitchd.pid"),
                &format!("--log-file={d}/vswitchd.log"),
                "--detach",
            ],
        );
        ovs
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.arg("30").args(args).stdin(Stdio::null());
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir.0);
        }
        c
    }

    fn check(&self, what: &[&str], c: &mut Command) -> String {
        let out = c.output().expect("the Open vSwitch tools run");
        assert!(
            out.status.success(),
            "{}: {}\n{}\nvswitchd log:\n{}",
            what.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn run(&self, args: &[&str]) -> String {
        self.check(args, &mut self.command(args))
    }

    fn run_in(&self, ns: &Netns, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &ns.name];
        full.extend_from_slice(args);
        self.check(args, &mut self.command(&full))
    }

    /// `ovs-vsctl` against this instance's database.
    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut full = vec!["ovs-vsctl", &db, "--timeout=20"];
        full.extend_from_slice(args);
        self.run(&full)
    }

    /// `ovs-appctl` to this instance's ovs-vswitchd.
    fn appctl(&self, args: &[&str]) -> String {
        let ctl = self.dir.join("vswitchd.ctl").display().to_string();
        let mut full = vec!["ovs-appctl", "-t", &ctl];
        full.extend_from_slice(args);
        self.run(&full)
    }

    /// The total of a coverage counter (0 when it has never been hit).
    fn coverage(&self, name: &str) -> u64 {
        self.appctl(&["coverage/show"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.rsplit("total:").next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        for pidfile in ["vswitchd.pid", "ovsdb.pid"] {
            let Some(pid) = std::fs::read_to_string(self.dir.join(pidfile))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill on the pid the daemon wrote; it is still ours
            // (the directory is private) unless it already exited.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while running(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if running(pid) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Whether `pid` is alive (an exited process waiting to be reaped is not).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn hex(field: &str) -> u64 {
    u64::from_str_radix(field.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("{field:?} is not a hex number"))
}

struct OvsTopology {
    // Field order is drop order: both daemons stop before the namespaces go.
    daemon: Daemon,
    ovs: Ovs,
    a: Netns,
    b: Netns,
}

#[test]
fn overlayd_with_open_vswitch_geneve() {
    if !net::can_run() {
        return;
    }
    for bin in ["ovs-vswitchd", "ovsdb-server", "tshark"] {
        assert!(on_path(bin), "{bin} is missing: run scripts/install-deps");
    }
    let (a, b) = namespaces("gnvovs");
    // B: Open vSwitch's userspace datapath. The kernel's own stack in B
    // must keep out of what OVS reads from the veth, and what B's kernel
    // sends on the veth must carry finished checksums (peers.md).
    b.ok(&["ethtool", "-K", "ub", "tx", "off"]);
    // OVS reads B's veth raw, without a virtio-net header, so what A sends
    // must cross the veth as a NIC would put it on a wire: datagrams cut
    // and checksums finished (A's UDP sockets leave both to the device, as
    // the kernel's vxlan does).
    a.ok(&["ethtool", "-K", "ua", "tx", "off"]);
    for knob in [
        "net.ipv4.conf.ub.rp_filter=1",
        "net.ipv4.conf.ub.arp_ignore=1",
        "net.ipv6.conf.ub.disable_ipv6=1",
    ] {
        b.ok(&["sysctl", "-q", "-w", knob]);
    }
    let ovs = Ovs::start(&b);
    let mac = b.ok(&["cat", "/sys/class/net/ub/address"]);
    let hwaddr = format!("other_config:hwaddr={}", mac.trim());
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
        &hwaddr,
        "--",
        "add-port",
        "br-phy",
        "ub",
    ]);
    // Tunnels route with OVS's own table: the underlay address belongs on
    // the bridge, not on the veth.
    b.ip(&format!("addr add {B_UNDER}/24 dev br-phy"));
    b.ip("link set br-phy up");
    let remote = format!("options:remote_ip={A_UNDER}");
    let local = format!("options:local_ip={B_UNDER}");
    let key = format!("options:key={VNI}");
    ovs.vsctl(&[
        "add-br",
        "br-gnv",
        "--",
        "set",
        "bridge",
        "br-gnv",
        "datapath_type=netdev",
        "--",
        "add-port",
        "br-gnv",
        "gnv0",
        "--",
        "set",
        "interface",
        "gnv0",
        "type=geneve",
        &remote,
        &local,
        &key,
        "options:dst_port=6081",
        "--",
        "set",
        "interface",
        "br-gnv",
        // OVS userspace does not fragment; the internal port defaults to 1500.
        "mtu_request=1450",
    ]);
    b.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.br-gnv.disable_ipv6=1"]);
    b.ip(&format!("addr add {B_OVER}/24 dev br-gnv"));
    b.ip("link set br-gnv up");

    // A: overlayd with a Geneve device sending a non-critical option.
    let daemon = Daemon::start_in_netns(&a.name);
    let mut t = OvsTopology { daemon, ovs, a, b };
    let opt = format!("geneve/options={OPTION}");
    geneve_device(&t.daemon, &t.a, A_UNDER, B_UNDER, A_OVER, &[&opt]);

    // What overlayd puts on the wire dissects as Geneve with our VNI and
    // option, and OVS answers it.
    let fields = [
        "ip.src",
        "geneve.vni",
        "geneve.proto_type",
        "geneve.flags.critical",
        "geneve.option.class",
        "geneve.option.type",
        "geneve.option.unknown.data",
    ];
    let filter = format!("udp dst port 6081 and src host {A_UNDER}");
    let cap = Capture::start(&t.a, "ua", &filter, &[], 3, 15, &fields);
    // tshark reports capturing a moment before its filter is live, so
    // send more than it waits for.
    ping_n(&t.a, B_OVER, 6);
    let rows = cap.finish();
    assert!(rows.len() >= 3, "captured {rows:?}");
    for r in &rows {
        assert_eq!(r.len(), fields.len(), "{r:?}");
        assert_eq!(r[0], A_UNDER, "{r:?}");
        assert_eq!(hex(&r[1]), VNI as u64, "{r:?}");
        assert_eq!(hex(&r[2]), 0x6558, "{r:?}");
        assert!(matches!(r[3].as_str(), "0" | "False"), "{r:?}");
        assert_eq!(hex(&r[4]), 0x0102, "{r:?}");
        assert_eq!(hex(&r[5]), 0x01, "{r:?}");
        assert_eq!(r[6], "deadbeef", "{r:?}");
    }
    // And what OVS sends dissects with the same VNI (and no options).
    let filter = format!("udp dst port 6081 and src host {B_UNDER}");
    let cap = Capture::start(&t.a, "ua", &filter, &[], 3, 15, &fields[..3]);
    ping_n(&t.b, A_OVER, 6);
    let rows = cap.finish();
    assert!(rows.len() >= 3, "captured {rows:?}");
    for r in &rows {
        assert_eq!(hex(&r[1]), VNI as u64, "{r:?}");
    }

    transfer_both_ways(&mut t.a, &mut t.b);
    let (dev, mux) = stats(&mut t.daemon.client(), "ov0");
    assert!(dev["tx_packets"] > 10_000, "{dev:?}");
    assert!(dev["rx_packets"] > 10_000, "{dev:?}");
    assert_eq!(mux["drop_bad_header"], 0, "{mux:?}");

    // A critical option OVS has no TLV mapping for: OVS refuses the
    // packets when it translates them into a flow. (A flow it had already
    // cached without looking at options would still forward them, hence
    // the flush.)
    t.daemon
        .ctl_ok(&["prop-set", "ov0", "geneve/options=0x0102:0x80:deadbeef"]);
    let before = t.ovs.coverage("drop_action_invalid_tunnel_metadata");
    t.ovs.appctl(&["dpctl/del-flows"]);
    t.a.ok(&["ip", "neigh", "flush", "all"]);
    ping_fails(&t.a, B_OVER);
    assert!(
        t.ovs.coverage("drop_action_invalid_tunnel_metadata") > before,
        "{}",
        t.ovs.appctl(&["coverage/show"])
    );
    // Non-critical again: traffic flows again.
    t.daemon.ctl_ok(&["prop-set", "ov0", &opt]);
    t.ovs.appctl(&["dpctl/del-flows"]);
    t.a.ping(B_OVER, 2);
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).exists()))
        .unwrap_or(false)
}
