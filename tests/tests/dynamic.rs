//! Dynamic mode end to end: overlayd in namespace A with a `files`
//! overlay, kernel vxlan peers in B and C, all on one underlay bridge in A.
//! Underlay 198.51.100.0/24, overlay 192.0.2.0/24; every address lives
//! only inside the test's namespaces.

use nlproto::{
    client::{Client, Error as ClientError},
    spec::target as tg,
    Attr, AttrsExt,
};
use overlay_tests::proto::stats;
use overlay_tests::{
    net::{self, Netns},
    Daemon, TempDir,
};
use std::time::{Duration, Instant};

const VNI: u32 = 77;
const A_UNDER: &str = "198.51.100.1";
const A_MAC: &str = "02:00:00:00:00:0a";
/// (namespace tag, underlay address, overlay MAC, overlay address).
const PEERS: [(&str, &str, &str, &str); 2] = [
    ("b", "198.51.100.2", "02:00:00:00:00:0b", "192.0.2.2"),
    ("c", "198.51.100.3", "02:00:00:00:00:0c", "192.0.2.3"),
];

struct Topology {
    // Field order is drop order: the daemon stops before its namespace goes.
    daemon: Daemon,
    a: Netns,
    peers: Vec<Netns>,
    dir: TempDir,
}

impl Topology {
    /// A with a bridge holding the underlay address, one veth to each
    /// peer namespace, and a kernel vxlan in each peer that knows A
    /// statically (fdb and neighbour entries), so that the peers never
    /// ARP across the underlay themselves.
    fn new(tag: &str, npeers: usize) -> Topology {
        let a = Netns::new(&format!("{tag}a"));
        a.ip("link add br0 type bridge");
        a.ip(&format!("addr add {A_UNDER}/24 dev br0 nodad"));
        a.ip("link set br0 up");
        let mut peers = Vec::new();
        for (i, (ptag, under, mac, addr)) in PEERS.iter().take(npeers).enumerate() {
            let p = Netns::new(&format!("{tag}{ptag}"));
            let a_if = format!("ua{i}");
            net::veth(&a, &a_if, &p, "up0");
            a.ip(&format!("link set {a_if} master br0"));
            // Complete the inner checksums the veth leaves partial.
            p.ok(&["ethtool", "-K", "up0", "tx", "off"]);
            p.ip(&format!("addr add {under}/24 dev up0 nodad"));
            p.ip(&format!(
                "link add vx0 type vxlan id {VNI} dstport 4789 local {under} dev up0 nolearning"
            ));
            p.ip(&format!("link set vx0 address {mac} mtu 1400"));
            p.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.vx0.disable_ipv6=1"]);
            p.ip(&format!("addr add {addr}/24 dev vx0"));
            p.ip("link set vx0 up");
            p.ok(&[
                "bridge",
                "fdb",
                "append",
                A_MAC,
                "dev",
                "vx0",
                "dst",
                A_UNDER,
                "permanent",
            ]);
            p.ip(&format!(
                "neigh replace 192.0.2.1 lladdr {A_MAC} dev vx0 nud permanent"
            ));
            peers.push(p);
        }
        let daemon = Daemon::start_in_netns(&a.name);
        Topology {
            daemon,
            a,
            peers,
            dir: TempDir::new(tag),
        }
    }

    /// A files device `link` over `config` (JSON), activated, its TAP
    /// holding 192.0.2.1 with the MAC the peers know.
    fn files_overlay(&self, link: &str, config: &str, extra: &[&str]) {
        let path = self.dir.join("hosts.json");
        std::fs::write(&path, config).unwrap();
        let mut props = format!(
            "vxlan/listen_ip={A_UNDER},files/config={},ifname={link}",
            path.display()
        );
        for e in extra {
            props.push(',');
            props.push_str(e);
        }
        let vni = VNI.to_string();
        self.daemon.ctl_ok(&[
            "create", "-e", "vxlan", "-s", "files", "-v", &vni, "-p", &props, link,
        ]);
        self.daemon.ctl_ok(&["activate", link]);
        self.a.ip(&format!("link set {link} address {A_MAC}"));
        self.a.ok(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{link}.disable_ipv6=1"),
        ]);
        self.a.ip(&format!("addr add 192.0.2.1/24 dev {link}"));
        self.a.ip(&format!("link set {link} up"));
    }

    fn client(&self) -> Client {
        self.daemon.client()
    }
}

fn hosts_json() -> String {
    let mut entries = vec![format!(
        r#""{A_MAC}": {{ "ip": "{A_UNDER}", "port": 4789, "arp": "192.0.2.1" }}"#
    )];
    for (_, under, mac, addr) in PEERS {
        entries.push(format!(
            r#""{mac}": {{ "ip": "{under}", "port": 4789, "arp": "{addr}" }}"#
        ));
    }
    format!("{{\n  {}\n}}\n", entries.join(",\n  "))
}

fn prop_uint(c: &mut Client, link: &str, name: &str) -> u64 {
    use nlproto::spec::overlay as ov;
    let m = c
        .transact(
            ov::NAME,
            ov::CMD_GETPROP,
            vec![
                Attr::str(ov::ATTR_NAME, link),
                Attr::str(ov::ATTR_PROP_NAME, name),
            ],
        )
        .unwrap();
    let v = m.attrs.get_bytes(ov::ATTR_PROP_VALUE).unwrap();
    u64::from_ne_bytes(v.try_into().unwrap())
}

#[test]
fn files_overlay_reaches_two_kernel_peers_with_proxied_arp() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("dyn", 2);
    t.files_overlay("dy0", &hosts_json(), &[]);
    for (_, _, _, addr) in PEERS {
        t.a.ping(addr, 3);
    }
    // A's ARP requests were answered by the proxy: injected answers, no
    // frame replicated (flood is off), and the files plugin counted both.
    let mut c = t.client();
    let (s, _) = stats(&mut c, "dy0");
    assert!(s["lookup_proxied"] >= 2, "{s:?}");
    assert_eq!(s["lookup_replicated"], 0, "{s:?}");
    assert_eq!(prop_uint(&mut c, "dy0", "files/arp"), s["lookup_proxied"]);
    // The peers never saw an ARP frame: their neighbour entries for A are
    // the permanent ones, and they learnt nothing else over the overlay.
    for p in &t.peers {
        let neigh = p.ok(&["ip", "neigh", "show", "dev", "vx0"]);
        assert_eq!(neigh.lines().count(), 1, "{neigh}");
    }
    // Both MACs are cached now, each towards its own peer.
    let show = t.daemon.ctl_ok(&["show", "-t", "dy0"]);
    for (_, under, mac, _) in PEERS {
        assert!(
            show.lines()
                .any(|l| l.contains(mac) && l.contains(&format!("{under}:4789"))),
            "{show}"
        );
    }
    // Broadcast other than ARP and DHCP is dropped while `flood` is off,
    // replicated to both peers once it is on.
    let bcast = || {
        t.a.ok(&[
            "sh",
            "-c",
            "echo x | socat -u - UDP-DATAGRAM:192.0.2.255:9,broadcast",
        ]);
    };
    bcast();
    let replicated = |c: &mut Client| stats(c, "dy0").0["lookup_replicated"];
    assert_eq!(replicated(&mut c), 0);
    t.daemon.ctl_ok(&["prop-set", "dy0", "flood=1"]);
    bcast();
    let deadline = Instant::now() + Duration::from_secs(10);
    while replicated(&mut c) == 0 {
        assert!(Instant::now() < deadline, "flood=1 replicated nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.daemon.ctl_ok(&["prop-set", "dy0", "flood=0"]);
    // A smaller cache evicts at once.
    t.daemon.ctl_ok(&["prop-set", "dy0", "cache_max_entries=1"]);
    let show = t.daemon.ctl_ok(&["show", "-t", "dy0"]);
    // (The one entry kept may be the broadcast one, which is never listed.)
    assert!(show.lines().count() <= 2, "at most one entry: {show}");
    t.daemon
        .ctl_ok(&["prop-set", "dy0", "cache_max_entries=1024"]);

    // TCP to each, checked end to end.
    let dir = TempDir::new("dynx");
    for (i, (_, _, _, addr)) in PEERS.iter().enumerate() {
        let (src, dst) = (dir.join(&format!("{i}.bin")), dir.join(&format!("{i}.out")));
        net::random_file(&src, 4 << 20, i as u64 + 1);
        let mut peer = t.peers.remove(0);
        net::tcp_transfer(&mut t.a, &mut peer, addr, 5100 + i as u16, &src, &dst);
        assert_eq!(net::sha256(&src), net::sha256(&dst), "A to {addr}");
        t.peers.push(peer);
    }
}

/// LOOKUP until a request comes (bounded).
fn take_request(c: &mut Client) -> nlproto::GenlMsg {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no lookup request came");
        match c.transact(
            tg::NAME,
            tg::CMD_LOOKUP,
            vec![Attr::u32(tg::ATTR_TIMEOUT_MS, 500)],
        ) {
            Ok(m) => return m,
            Err(ClientError::Netlink { errno, .. }) if errno == libc::ETIME => continue,
            Err(e) => panic!("LOOKUP: {e}"),
        }
    }
}

#[test]
fn external_server_killed_mid_request_is_taken_over() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("ext", 1);
    t.files_overlay("dx0", "{}\n", &[]);
    let (_, b_under, b_mac, b_addr) = PEERS[0];
    // A knows B's MAC, so its first frame to B is unicast ICMP.
    t.a.ip(&format!(
        "neigh replace {b_addr} lladdr {b_mac} dev dx0 nud permanent"
    ));
    let mut admin = t.client();
    admin
        .write(
            tg::NAME,
            tg::CMD_ASSOCIATE,
            vec![Attr::str(tg::ATTR_NAME, "dx0")],
        )
        .unwrap();
    let ping =
        t.a.spawn(&["ping", "-c", "3", "-i", "0.3", "-W", "10", b_addr]);

    // The first server takes the request, reads its frame, and dies
    // without answering.
    let mut first = t.client();
    first.set_timeout(Duration::from_secs(5));
    let req = take_request(&mut first);
    let mac = req.attrs.get_bytes(tg::ATTR_DST_MAC).unwrap().to_vec();
    assert_eq!(mac, [2, 0, 0, 0, 0, 0x0b]);
    let first_id = req.attrs.get_u64(tg::ATTR_REQID).unwrap();
    let pkt = first
        .transact(
            tg::NAME,
            tg::CMD_PKT,
            vec![Attr::u64(tg::ATTR_REQID, first_id)],
        )
        .unwrap();
    let frame = pkt.attrs.get_bytes(tg::ATTR_FRAME).unwrap();
    assert_eq!(&frame[..6], &mac[..]);
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    drop(first);

    // A second server gets the same request back, under a new id, and
    // answers it: the queued pings go out and are answered.
    let mut second = t.client();
    second.set_timeout(Duration::from_secs(5));
    let req = take_request(&mut second);
    assert_eq!(req.attrs.get_bytes(tg::ATTR_DST_MAC).unwrap(), &mac[..]);
    let id = req.attrs.get_u64(tg::ATTR_REQID).unwrap();
    assert_ne!(id, first_id);
    // The old id is gone.
    let e = second
        .write(
            tg::NAME,
            tg::CMD_DROP,
            vec![Attr::u64(tg::ATTR_REQID, first_id)],
        )
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Netlink { errno, .. } if errno == libc::EINVAL),
        "{e}"
    );
    let ip: std::net::Ipv4Addr = b_under.parse().unwrap();
    second
        .write(
            tg::NAME,
            tg::CMD_RESPOND,
            vec![
                Attr::u64(tg::ATTR_REQID, id),
                Attr::bytes(tg::ATTR_DEST_IP, ip.to_ipv6_mapped().octets().to_vec()),
                Attr::u16(tg::ATTR_DEST_PORT, 4789),
            ],
        )
        .unwrap();
    t.a.wait(ping, Duration::from_secs(20));
    let (s, _) = stats(&mut admin, "dx0");
    assert_eq!(s["lookup_answers"], 1, "{s:?}");
    let got = admin
        .transact(
            tg::NAME,
            tg::CMD_CACHE_GET,
            vec![
                Attr::str(tg::ATTR_NAME, "dx0"),
                Attr::bytes(tg::ATTR_MAC, mac.clone()),
            ],
        )
        .unwrap();
    assert_eq!(got.attrs.get_u16(tg::ATTR_DEST_PORT), Some(4789));
}

/// The lookup service's counters (`overlayctl lookup-stats -j`), as
/// numbers by name, with the requests waiting.
fn lookup_stats(d: &Daemon) -> (std::collections::BTreeMap<String, u64>, u64) {
    let v: serde_json::Value =
        serde_json::from_str(&d.ctl_ok(&["lookup-stats", "-j"])).expect("JSON");
    let row = &v.as_array().expect("a list")[0];
    let counters = row["counters"]
        .as_object()
        .expect("counters")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a number")))
        .collect();
    let pending = row["pending"].as_str().expect("pending").parse().unwrap();
    (counters, pending)
}

#[track_caller]
fn assert_lookup_stats(d: &Daemon, [requests, answers, timeouts, late, pending]: [u64; 5]) {
    let (c, p) = lookup_stats(d);
    let expected: std::collections::BTreeMap<String, u64> = [
        ("requests", requests),
        ("answers", answers),
        ("timeouts", timeouts),
        ("late", late),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!((c, p), (expected, pending));
}

/// Polls the lookup service's counters (bounded) until `f` holds.
fn wait_lookup_stats(
    d: &Daemon,
    what: &str,
    f: impl Fn(&std::collections::BTreeMap<String, u64>, u64) -> bool,
) {
    for _ in 0..500 {
        let (c, p) = lookup_stats(d);
        if f(&c, p) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: the lookup service's counters never showed it");
}

/// An IPv4 frame from the hosts to `dst`, handed to the device's transmit
/// path with RESEND: a miss raises a lookup.
fn resend_to(c: &mut Client, link: &str, dst: [u8; 6]) {
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    c.write(
        tg::NAME,
        tg::CMD_RESEND,
        vec![
            Attr::str(tg::ATTR_NAME, link),
            Attr::bytes(tg::ATTR_FRAME, frame),
        ],
    )
    .unwrap();
}

#[test]
fn lookup_service_counters_follow_plugin_and_external_lookups() {
    if !net::can_run() {
        return;
    }
    // A namespace where the hosts say nothing on their own: without IPv6
    // and without an address on the TAP, every lookup is one of ours.
    let ns = Netns::new("lkst");
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.ip("link add du0 type bridge");
    ns.ip(&format!("addr add {A_UNDER}/24 dev du0"));
    ns.ip("link set du0 up");
    let d = Daemon::start_in_netns(&ns.name);
    let dir = TempDir::new("lkst");
    let config = dir.join("hosts.json");
    let (_, b_under, b_mac, _) = PEERS[0];
    std::fs::write(
        &config,
        format!(r#"{{"{b_mac}": {{"ip": "{b_under}", "port": 4789}}}}"#),
    )
    .unwrap();
    let props = format!(
        "vxlan/listen_ip={A_UNDER},files/config={},ifname=lk0",
        config.display()
    );
    d.ctl_ok(&[
        "create", "-e", "vxlan", "-s", "files", "-v", "77", "-p", &props, "lk0",
    ]);
    d.ctl_ok(&["activate", "lk0"]);
    let out = d.ctl_ok(&["lookup-stats"]);
    assert_eq!(
        out,
        "REQUESTS  ANSWERS  TIMEOUTS  LATE  PENDING\n\
         0         0        0         0     0\n"
    );

    // The plugin answers a frame to the MAC it knows.
    let mut admin = d.client();
    resend_to(&mut admin, "lk0", [2, 0, 0, 0, 0, 0x0b]);
    wait_lookup_stats(&d, "the plugin's answer", |c, _| c["answers"] == 1);
    assert_lookup_stats(&d, [1, 1, 0, 0, 0]);

    // An external server: a request waits until taken.
    admin
        .write(
            tg::NAME,
            tg::CMD_ASSOCIATE,
            vec![Attr::str(tg::ATTR_NAME, "lk0")],
        )
        .unwrap();
    d.ctl_ok(&["prop-set", "lk0", "lookup_timeout=50"]);
    let mut server = d.client();
    server.set_timeout(Duration::from_secs(5));
    resend_to(&mut admin, "lk0", [2, 0, 0, 0, 0, 0x21]);
    wait_lookup_stats(&d, "the request waiting", |_, p| p == 1);
    assert_lookup_stats(&d, [2, 1, 0, 0, 1]);

    // Taken and not answered within lookup_timeout: a timeout, and the
    // request goes back to the queue under a new id.
    let first = take_request(&mut server);
    let first_id = first.attrs.get_u64(tg::ATTR_REQID).unwrap();
    wait_lookup_stats(&d, "the timeout", |c, _| c["timeouts"] == 1);
    // Long enough now for the second take to be answered in time.
    d.ctl_ok(&["prop-set", "lk0", "lookup_timeout=60000"]);
    let again = take_request(&mut server);
    assert_eq!(
        again.attrs.get_bytes(tg::ATTR_DST_MAC),
        Some(&[2, 0, 0, 0, 0, 0x21][..])
    );
    let again_id = again.attrs.get_u64(tg::ATTR_REQID).unwrap();
    assert_ne!(again_id, first_id);
    // The old id is refused: not an answer, and not counted as one.
    let respond = |id: u64| {
        vec![
            Attr::u64(tg::ATTR_REQID, id),
            Attr::bytes(
                tg::ATTR_DEST_IP,
                [&[0u8; 10][..], &[0xff, 0xff, 198, 51, 100, 33]].concat(),
            ),
            Attr::u16(tg::ATTR_DEST_PORT, 4789),
        ]
    };
    let e = server
        .write(tg::NAME, tg::CMD_RESPOND, respond(first_id))
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Netlink { errno, .. } if errno == libc::EINVAL),
        "{e}"
    );
    server
        .write(tg::NAME, tg::CMD_RESPOND, respond(again_id))
        .unwrap();
    assert_lookup_stats(&d, [2, 2, 1, 0, 0]);

    // A DROP answer is an answer too.
    resend_to(&mut admin, "lk0", [2, 0, 0, 0, 0, 0x22]);
    let third = take_request(&mut server);
    server
        .write(
            tg::NAME,
            tg::CMD_DROP,
            vec![Attr::u64(
                tg::ATTR_REQID,
                third.attrs.get_u64(tg::ATTR_REQID).unwrap(),
            )],
        )
        .unwrap();
    assert_lookup_stats(&d, [3, 3, 1, 0, 0]);
}
