//! The `etcd` lookup plugin end to end: three overlayd hosts in three
//! namespaces on one underlay bridge, a real etcd on that bridge, each
//! host with a dynamic-mode device `-s etcd` and no hosts file. Each
//! host's TAP is a port of a bridge holding the host's overlay address, as
//! a hypervisor's bridge holds its VMs' ports.
//!
//! Underlay 198.51.100.0/24 (hosts .1-.3, etcd members .100-.102),
//! overlay 192.0.2.0/24; every address lives only inside the test's
//! namespaces.

use overlay_tests::{
    etcd::{endpoints, EtcdMember},
    net::{self, Netns, PacketSocket},
    proto, tshark, Daemon, TempDir,
};
use std::time::{Duration, Instant};

const VNI: u32 = 42;
const PREFIX: &str = "/overlayd/vnet/42";

struct Host {
    // The daemon stops before its namespace goes.
    daemon: Daemon,
    ns: Netns,
    under: String,
    over: String,
}

struct Overlay {
    hosts: Vec<Host>,
    etcd: Vec<EtcdMember>,
    ul: Netns,
}

impl Overlay {
    /// The underlay bridge with `members` etcd members on it, and `n`
    /// hosts, each with its device `ov0` active and its overlay bridge up.
    fn new(tag: &str, n: usize, members: usize) -> Overlay {
        Self::with_props(tag, n, members, &[])
    }

    /// As [`Overlay::new`], every device with the properties `extra` too.
    fn with_props(tag: &str, n: usize, members: usize, extra: &[&str]) -> Overlay {
        let ul = Netns::new(&format!("etcd{tag}u"));
        ul.ip("link add br0 type bridge");
        let ips: Vec<String> = (0..members)
            .map(|i| format!("198.51.100.{}", 100 + i))
            .collect();
        for ip in &ips {
            ul.ip(&format!("addr add {ip}/24 dev br0 nodad"));
        }
        ul.ip("link set br0 up");
        let ip_refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let etcd = EtcdMember::cluster(&ul, &ip_refs);
        let mut o = Overlay {
            hosts: Vec::new(),
            etcd,
            ul,
        };
        for i in 1..=n {
            o.add_host(tag, i, extra);
        }
        o
    }

    fn add_host(&mut self, tag: &str, i: usize, extra: &[&str]) {
        let ns = Netns::new(&format!("etcd{tag}{i}"));
        ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
        let port = format!("u{i}");
        net::veth(&self.ul, &port, &ns, "up0");
        self.ul.ip(&format!("link set {port} master br0"));
        let under = format!("198.51.100.{i}");
        ns.ip(&format!("addr add {under}/24 dev up0 nodad"));
        let daemon = Daemon::start_in_netns(&ns.name);
        let host = Host {
            daemon,
            ns,
            under,
            over: format!("192.0.2.{i}"),
        };
        host.device(&endpoints(&self.etcd), extra);
        self.hosts.push(host);
    }

    /// Waits (bounded) until the directory has the MAC and IP entries of
    /// every host.
    fn wait_published(&self) {
        let want = self.hosts.len();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let keys = self.etcd[0].ctl_ok(&["get", "--prefix", "--keys-only", PREFIX]);
            let macs = keys.lines().filter(|k| k.contains("/mac/")).count();
            let ips = keys.lines().filter(|k| k.contains("/ip/192.0.2.")).count();
            if macs >= want && ips >= want {
                return;
            }
            // arp_notify's announcement can go out before the bridge's
            // port forwards; announce again, as hosts do.
            for h in &self.hosts {
                h.announce();
            }
            assert!(
                Instant::now() < deadline,
                "the hosts did not publish themselves within 20 s: {keys}\n{}",
                self.hosts[0].daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Host {
    /// Device ov0 on etcd at `endpoints`, its TAP a port of bridge brv
    /// holding the host's overlay address. The bridge announces the
    /// address when it comes up (arp_notify), as a booting host does.
    fn device(&self, endpoints: &str, extra: &[&str]) {
        let mut props = format!("vxlan/listen_ip={},etcd/lease_ttl=3,ifname=ov0", self.under);
        for e in extra {
            props.push(',');
            props.push_str(e);
        }
        let vni = VNI.to_string();
        self.daemon.ctl_ok(&[
            "create", "-e", "vxlan", "-s", "etcd", "-v", &vni, "-p", &props, "ov0",
        ]);
        // A positional prop-set takes the whole value, commas included
        // (-p splits its list at commas).
        self.daemon
            .ctl_ok(&["prop-set", "ov0", &format!("etcd/endpoints={endpoints}")]);
        self.daemon.ctl_ok(&["activate", "ov0"]);
        self.ns.ip("link add brv type bridge");
        self.ns
            .ok(&["sysctl", "-q", "-w", "net.ipv4.conf.brv.arp_notify=1"]);
        self.ns.ip("link set ov0 master brv");
        self.ns.ip("link set ov0 up");
        self.ns.ip(&format!("addr add {}/24 dev brv", self.over));
        self.ns.ip("link set brv up");
    }

    /// A gratuitous ARP for the host's overlay address, from its bridge.
    fn announce(&self) {
        let mac = net::mac(self.ns.ok(&["cat", "/sys/class/net/brv/address"]).trim());
        let ip: std::net::Ipv4Addr = self.over.parse().unwrap();
        PacketSocket::open(&self.ns, "brv").send(&garp(mac, ip.octets()));
    }

    fn counter(&self, name: &str) -> u64 {
        let mut c = self.daemon.client();
        proto::getprop_uint(&mut c, "ov0", name)
    }

    /// (status, details) of ov0 from `show -f -j`.
    fn fault(&self) -> (String, String) {
        let out = self.daemon.ctl_ok(&["show", "-f", "-j"]);
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["link"] == "ov0")
            .unwrap_or_else(|| panic!("no ov0 in {out}"))
            .clone();
        (
            row["status"].as_str().unwrap().to_string(),
            row["details"].as_str().unwrap_or("").to_string(),
        )
    }

    /// Pings `addr` until three pings in a row are answered, for at most
    /// `secs` seconds; panics with the last output otherwise.
    #[track_caller]
    fn reach(&self, addr: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self
                .ns
                .exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", addr]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} cannot reach {addr} within {secs} s: {}\n{}",
                self.ns.name,
                String::from_utf8_lossy(&out.stdout),
                self.daemon.log()
            );
        }
    }
}

#[test]
fn three_hosts_find_each_other_through_etcd_and_skip_bad_entries() {
    if !net::can_run() {
        return;
    }
    let mut o = Overlay::new("a", 3, 1);
    o.wait_published();
    // Every VXLAN frame on the underlay while the hosts resolve and ping
    // each other, dissected by tshark (every port of the underlay
    // bridge: a frame appears once per port it crosses).
    let cap = tshark::Capture::start(
        &o.ul,
        "any",
        "udp port 4789",
        &["-d", "udp.port==4789,vxlan"],
        100_000,
        120,
        &["frame.protocols"],
    );
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                o.hosts[a].reach(&o.hosts[b].over.clone(), 10);
            }
        }
    }
    let rows = cap.stop();
    // The protocols inside VXLAN, such as "eth:ethertype:ip:icmp".
    let inner: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.first()?.split_once(":vxlan:").map(|(_, i)| i))
        .collect();
    assert!(
        inner.iter().any(|p| p.contains(":icmp")),
        "tshark saw no ping inside VXLAN on the underlay: {rows:?}"
    );
    let arp: Vec<&&str> = inner
        .iter()
        .filter(|p| p.split(':').any(|x| x == "arp"))
        .collect();
    assert!(
        arp.is_empty(),
        "ARP crossed the underlay inside VXLAN ({} of {} inner frames): {arp:?}",
        arp.len(),
        inner.len()
    );
    for h in &o.hosts {
        assert!(h.counter("etcd/arp") >= 2, "ARP answered by proxy");
        assert!(h.counter("etcd/published") >= 2, "own MAC and IP");
    }

    // 20 MB over TCP between every pair, both directions.
    let dir = TempDir::new("etcd-tcp");
    let src = dir.join("src");
    net::random_file(&src, 20 << 20, 12);
    let sum = net::sha256(&src);
    let mut port = 5001;
    for a in 0..3 {
        for b in 0..3 {
            if a == b {
                continue;
            }
            let out = dir.join(&format!("out{a}{b}"));
            let to_addr = o.hosts[b].over.clone();
            let (from, to) = if a < b {
                let (l, r) = o.hosts.split_at_mut(b);
                (&mut l[a].ns, &mut r[0].ns)
            } else {
                let (l, r) = o.hosts.split_at_mut(a);
                (&mut r[0].ns, &mut l[b].ns)
            };
            net::tcp_transfer(from, to, &to_addr, port, &src, &out);
            assert_eq!(net::sha256(&out), sum, "host {a} to host {b}");
            port += 1;
        }
    }

    // Malformed entries written by hand: their IP entries are good, so
    // ARP is answered, but the MAC entries are not JSON, of the wrong
    // type, or an IPv6 destination on this IPv4 underlay: never answered.
    let e = &o.etcd[0];
    let bad = [
        ("50", "not json"),
        ("51", r#"{"ip":7}"#),
        ("52", r#"{"ip":"2001:db8::1"}"#),
    ];
    for (n, value) in bad {
        e.ctl_ok(&[
            "put",
            &format!("{PREFIX}/ip/192.0.2.{n}"),
            &format!(r#"{{"mac":"02:00:00:00:00:{n}"}}"#),
        ]);
        e.ctl_ok(&["put", &format!("{PREFIX}/mac/02:00:00:00:00:{n}"), value]);
    }
    e.ctl_ok(&["put", &format!("{PREFIX}/hosts/x"), "{}"]);
    let h = &o.hosts[0];
    let skipped = h.counter("etcd/skipped");
    for (n, _) in bad {
        let out =
            h.ns.exec(&["ping", "-c", "1", "-W", "1", &format!("192.0.2.{n}")]);
        assert!(!out.status.success(), "192.0.2.{n} was reached");
    }
    assert!(
        h.counter("etcd/skipped") >= skipped + 3,
        "each bad entry is counted"
    );
    let log = h.daemon.log();
    for (n, _) in bad {
        assert!(
            log.contains(&format!("skipped {PREFIX}/mac/02:00:00:00:00:{n}")),
            "{log}"
        );
    }
    assert!(log.contains(&format!("skipped {PREFIX}/hosts/x")), "{log}");
}

const GUEST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];

/// A gratuitous ARP request announcing `ip` at `mac`, as a guest sends
/// after it moved.
fn garp(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&ip);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip);
    net::ethernet_frame([0xff; 6], mac, 0x0806, &arp)
}

/// Waits (bounded by `secs`) until `f` holds.
#[track_caller]
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A guest (a VM, a container) with MAC `GUEST_MAC` and address
/// 192.0.2.99: a namespace whose veth's host side (`vmh`) is a port of a
/// host's bridge.
struct Guest {
    link: PacketSocket,
    // Its namespace lives as long as the guest.
    _ns: Netns,
}

impl Guest {
    /// A guest behind `host`, its namespace named `name`.
    fn behind(host: &Host, name: &str) -> Guest {
        let ns = Netns::new(name);
        ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
        net::veth(&ns, "vm0", &host.ns, "vmh");
        ns.ip("link set vm0 down");
        ns.ip("link set vm0 address 02:00:00:00:00:99 mtu 1400");
        ns.ip("addr add 192.0.2.99/24 dev vm0");
        host.ns.ip("link set vmh master brv");
        ns.ip("link set vm0 up");
        let link = PacketSocket::open(&ns, "vm0");
        Guest { link, _ns: ns }
    }

    /// A gratuitous ARP, as a guest sends after it booted or moved.
    fn announce(&self) {
        self.link.send(&garp(GUEST_MAC, [192, 0, 2, 99]));
    }

    /// The move: the host side of the guest's link goes from `from`'s
    /// bridge to `to`'s.
    fn moves(&self, from: &Host, to: &Host) {
        from.ns.ip(&format!("link set vmh netns {}", to.ns.name));
        to.ns.ip("link set vmh master brv");
        to.ns.ip("link set vmh up");
    }
}

/// The `host` of the guest's MAC entry in the directory.
fn guest_host(o: &Overlay) -> Option<String> {
    o.etcd[0]
        .get(&format!("{PREFIX}/mac/02:00:00:00:00:99"))
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .and_then(|v| v["host"].as_str().map(str::to_string))
}

#[test]
fn a_mac_that_moves_to_another_host_is_followed() {
    if !net::can_run() {
        return;
    }
    let o = Overlay::new("m", 3, 1);
    o.wait_published();
    // A guest behind host 1 announces itself (repeated until seen), as a
    // guest does after it booted.
    let guest = Guest::behind(&o.hosts[0], "etcdmv");
    eventually(10, "host 1 publishes the guest", || {
        guest.announce();
        guest_host(&o).as_deref() == Some("198.51.100.1")
    });
    o.hosts[2].reach("192.0.2.99", 10);

    // It moves to host 2 and announces itself there.
    guest.moves(&o.hosts[0], &o.hosts[1]);
    eventually(10, "host 2 publishes the guest", || {
        guest.announce();
        guest_host(&o).as_deref() == Some("198.51.100.2")
    });
    // Host 3 had the guest cached at host 1; its traffic follows.
    o.hosts[2].reach("192.0.2.99", 10);
    assert!(o.hosts[2].counter("etcd/watch_events") > 0);
    assert!(
        o.hosts[0]
            .daemon
            .wait_log_line(Duration::from_secs(5), |l| l
                .contains("02:00:00:00:00:99 moved to 198.51.100.2")),
        "{}",
        o.hosts[0].daemon.log()
    );
}

/// Debian's dnsmasq as a DHCP server (nothing else: no DNS) on `brv` of a
/// host's namespace, its leases and log in a temporary directory, stopped
/// by its own pid.
struct DhcpServer {
    child: std::process::Child,
    dir: TempDir,
}

impl DhcpServer {
    /// Leases `first`-`last` (/24, one hour), answering at once (no ping
    /// of an address before it is offered).
    fn start(ns: &Netns, first: &str, last: &str) -> DhcpServer {
        let dir = TempDir::new("etcd-dhcp");
        let log = std::fs::File::create(dir.join("log")).expect("dnsmasq log file");
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--conf-file=/dev/null",
                "--port=0",
                "--no-resolv",
                "--no-hosts",
            ])
            .args(["--interface=brv", "--bind-interfaces", "--user=root"])
            .arg(format!("--dhcp-range={first},{last},255.255.255.0,1h"))
            .arg(format!("--dhcp-leasefile={}", dir.join("leases").display()))
            .args(["--pid-file=", "--no-ping", "--log-dhcp", "--log-facility=-"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("dnsmasq starts (scripts/install-deps installs dnsmasq-base)");
        DhcpServer { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_address_a_dhcp_server_leases_is_answered_on_every_host() {
    if !net::can_run() {
        return;
    }
    // Flooding on: a client's DISCOVER is broadcast to every host.
    let o = Overlay::with_props("d", 3, 1, &["flood=1"]);
    o.wait_published();
    let server = DhcpServer::start(&o.hosts[1].ns, "192.0.2.200", "192.0.2.200");
    // A client behind host 1 (a namespace whose veth's host side is a
    // port of host 1's bridge) that asks for an address and only
    // configures it: it sends no ARP, so only the lease can teach the
    // directory its address.
    let client = Netns::new("etcddc");
    client.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    net::veth(&client, "vc0", &o.hosts[0].ns, "vch");
    client.ip("link set vc0 down");
    client.ip("link set vc0 address 02:00:00:00:00:c1");
    o.hosts[0].ns.ip("link set vch master brv");
    client.ip("link set vc0 up");
    let dir = TempDir::new("etcd-udhcpc");
    let script = dir.join("script");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$1\" in bound) ip addr add \"$ip/$mask\" dev \"$interface\";; esac\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Busybox's udhcpc: no broadcast flag, so the server answers unicast.
    let out = client.exec(&[
        "timeout",
        "30",
        "busybox",
        "udhcpc",
        "-f",
        "-q",
        "-n",
        "-t",
        "10",
        "-T",
        "1",
        "-i",
        "vc0",
        "-s",
        &script.display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("lease of 192.0.2.200 obtained"),
        "no lease: {text}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    // Host 2, behind which the server lives, published the lease.
    let key = format!("{PREFIX}/ip/192.0.2.200");
    let entry = || {
        o.etcd[0]
            .get(&key)
            .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
    };
    eventually(5, "the leased address is published", || entry().is_some());
    let e = entry().unwrap();
    assert_eq!(e["mac"], "02:00:00:00:00:c1", "{e}");
    assert_eq!(e["host"], "198.51.100.2", "{e}");
    // Host 3's ARP for it is answered by proxy, and host 3 reaches it.
    let h3 = &o.hosts[2];
    let answered = h3.counter("etcd/arp");
    h3.reach("192.0.2.200", 10);
    assert!(h3.counter("etcd/arp") > answered);
    let neigh = h3.ns.ok(&["ip", "neigh", "show", "192.0.2.200"]);
    assert!(neigh.contains("02:00:00:00:00:c1"), "{neigh}");
}

#[test]
fn an_etcd_outage_degrades_new_lookups_only_and_heals_by_itself() {
    if !net::can_run() {
        return;
    }
    let mut o = Overlay::new("f", 3, 1);
    o.wait_published();
    o.hosts[0].reach("192.0.2.2", 10);
    // Established traffic from host 1 to host 2 for the whole outage.
    let ns = o.hosts[0].ns.name.clone();
    let pinger = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "timeout", "60"])
            .args(["ping", "-c", "60", "-i", "0.25", "-W", "2", "192.0.2.2"])
            .output()
            .expect("ping runs")
    });
    o.etcd[0].kill();
    // A destination host 1 never talked to: its ARP cannot be answered.
    let out = o.hosts[0]
        .ns
        .exec(&["ping", "-c", "2", "-i", "0.5", "-W", "1", "192.0.2.3"]);
    assert!(!out.status.success(), "192.0.2.3 reached without etcd");
    let (status, msg) = o.hosts[0].fault();
    assert_eq!(status, "DEGRADED", "{msg}");
    assert!(msg.contains("http://198.51.100.100:2379"), "{msg}");
    assert!(o.hosts[0].counter("etcd/unavailable") > 0);
    std::thread::sleep(Duration::from_secs(8));
    o.etcd[0].restart();
    o.hosts[0].reach("192.0.2.3", 30);
    let (status, msg) = o.hosts[0].fault();
    assert_eq!(status, "ONLINE", "{msg}");
    assert!(o.hosts[0].counter("etcd/reconnects") >= 1);
    let ping = pinger.join().unwrap();
    let text = String::from_utf8_lossy(&ping.stdout);
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "established traffic was lost during the outage: {text}"
    );
}

#[test]
fn a_three_member_cluster_loses_a_member_and_nothing_changes() {
    if !net::can_run() {
        return;
    }
    let mut o = Overlay::new("c", 2, 3);
    o.wait_published();
    o.hosts[0].reach("192.0.2.2", 10);
    o.etcd[0].kill();
    // Learning goes on: host 2 gets a new address and announces it.
    let h2 = &o.hosts[1];
    h2.ns.ip("addr add 192.0.2.12/24 dev brv");
    let mac = net::mac(h2.ns.ok(&["cat", "/sys/class/net/brv/address"]).trim());
    let brv = PacketSocket::open(&h2.ns, "brv");
    let key = format!("{PREFIX}/ip/192.0.2.12");
    eventually(15, "host 2 publishes its new address", || {
        brv.send(&garp(mac, [192, 0, 2, 12]));
        // Until the others have elected a leader (when the killed member
        // led), reads fail: not yet.
        matches!(o.etcd[1].try_get(&key), Ok(Some(_)))
    });
    // Lookups go on: host 1 resolves the new address by proxy. (When the
    // killed member led the cluster, or carried host 1's lease and watch,
    // lookups fail until the others have elected a leader and the session
    // has moved to one of them, a second or two: the device may be
    // degraded meanwhile, and heals by itself.)
    o.hosts[0].reach("192.0.2.12", 15);
    eventually(10, "host 1's device is online again", || {
        o.hosts[0].reach("192.0.2.12", 5);
        o.hosts[0].fault().0 == "ONLINE"
    });
    // From then on every lookup is answered, whichever member the client
    // sends it to first (it learns that a member is down only from a
    // request routed there): each round empties host 1's caches, so that
    // the address and the MAC are read from etcd again.
    let refused = o.hosts[0].counter("etcd/unavailable");
    for _ in 0..10 {
        o.hosts[0].daemon.ctl_ok(&["cache-flush", "ov0"]);
        o.hosts[0].ns.ip("neigh flush dev brv");
        o.hosts[0].reach("192.0.2.2", 10);
    }
    assert_eq!(
        o.hosts[0].counter("etcd/unavailable"),
        refused,
        "a lookup was refused: {}",
        o.hosts[0].daemon.log()
    );
    let (status, msg) = o.hosts[0].fault();
    assert_eq!(status, "ONLINE", "{msg}");
}

#[test]
fn a_killed_daemon_s_entries_expire_and_a_restarted_one_yields_what_moved() {
    if !net::can_run() {
        return;
    }
    let mut o = Overlay::new("k", 2, 1);
    o.wait_published();
    let h1_ip = format!("{PREFIX}/ip/192.0.2.1");
    assert!(o.etcd[0].get(&h1_ip).is_some());
    o.hosts[0].daemon.kill();
    // The lease (etcd/lease_ttl=3) is no longer kept alive.
    eventually(15, "host 1's entries expire with its lease", || {
        o.etcd[0].get(&h1_ip).is_none()
    });
    let macs = o.etcd[0].ctl_ok(&["get", "--prefix", "--keys-only", &format!("{PREFIX}/mac/")]);
    assert_eq!(
        macs.lines().filter(|l| !l.is_empty()).count(),
        1,
        "only host 2's MAC is left: {macs}"
    );
    // Restarted, the daemon restores its device and publishes again.
    o.hosts[0].daemon.restart();
    // Its TAP is new: a port of the host's bridge again.
    o.hosts[0].ns.ip("link set ov0 master brv");
    o.hosts[0].ns.ip("link set ov0 up");
    eventually(15, "host 1 publishes again", || {
        o.hosts[0].announce();
        o.etcd[0].get(&h1_ip).is_some()
    });
    o.hosts[1].reach("192.0.2.1", 15);

    // A MAC that moves while its host's daemon is down: a guest behind
    // host 1, published by it, and saved in its state file by a clean
    // stop (which also revokes its lease).
    let guest = Guest::behind(&o.hosts[0], "etcdkv");
    eventually(10, "host 1 publishes the guest", || {
        guest.announce();
        guest_host(&o).as_deref() == Some("198.51.100.1")
    });
    o.hosts[0].daemon.stop();
    guest.moves(&o.hosts[0], &o.hosts[1]);
    eventually(10, "host 2 publishes the guest", || {
        guest.announce();
        guest_host(&o).as_deref() == Some("198.51.100.2")
    });
    // Restarted, host 1 owns the guest by its state file, but the
    // directory says it lives at host 2 now: host 1's lookups follow it
    // there, and host 1 does not claim it again.
    o.hosts[0].daemon.restart();
    o.hosts[0].ns.ip("link set ov0 master brv");
    o.hosts[0].ns.ip("link set ov0 up");
    o.hosts[0].reach("192.0.2.99", 15);
    assert_eq!(guest_host(&o).as_deref(), Some("198.51.100.2"));
    let log = o.hosts[0].daemon.log();
    assert!(
        log.contains("02:00:00:00:00:99 moved to 198.51.100.2 while this host was away"),
        "{log}"
    );
}
