//! Dynamic mode end to end: overlayd in namespace A with a `files`
//! overlay, kernel vxlan peers in B and C, all on one underlay bridge in A.
//! Underlay 198.51.100.0/24, overlay 192.0.2.0/24 and fd00:77::/64; every
//! address lives only inside the test's namespaces.
//!
//! What the peers receive is read with AF_PACKET sockets on their `vx0`.
//! To show that a frame did *not* reach a peer, the test sends a marker
//! frame from A to that peer after the daemon has decided about the frame,
//! and reads until the marker: the underlay path is one FIFO, so anything
//! sent to the peer before the marker is read before it.

use nlproto::{
    client::{Client, Error as ClientError},
    spec::target as tg,
    Attr, AttrsExt,
};
use overlay_plugin_abi::csum;
use overlay_tests::proto::stats;
use overlay_tests::{
    net::{self, Netns, PacketSocket},
    Daemon, TempDir,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const VNI: u32 = 77;
const A_UNDER: &str = "198.51.100.1";
const A_MAC: &str = "02:00:00:00:00:0a";
const A_V6: &str = "fd00:77::1";
const BROADCAST: [u8; 6] = [0xff; 6];
/// The local experimental ethertype: frames only these tests send.
const ETHERTYPE_TEST: u16 = 0x88b5;
/// How long a peer may take to receive what the test waits for.
const RECV_WAIT: Duration = Duration::from_secs(5);

/// A kernel vxlan peer.
struct Peer {
    /// Namespace tag suffix.
    tag: &'static str,
    /// Underlay address.
    under: &'static str,
    /// MAC of its `vx0`.
    mac: &'static str,
    /// Overlay IPv4 address.
    v4: &'static str,
    /// Overlay IPv6 address (with [`Topology::new_v6`]).
    v6: &'static str,
}

const PEERS: [Peer; 2] = [
    Peer {
        tag: "b",
        under: "198.51.100.2",
        mac: "02:00:00:00:00:0b",
        v4: "192.0.2.2",
        v6: "fd00:77::2",
    },
    Peer {
        tag: "c",
        under: "198.51.100.3",
        mac: "02:00:00:00:00:0c",
        v4: "192.0.2.3",
        v6: "fd00:77::3",
    },
];

struct Topology {
    // Field order is drop order: the daemon stops before its namespace goes.
    daemon: Daemon,
    a: Netns,
    peers: Vec<Netns>,
    dir: TempDir,
    ipv6: bool,
}

impl Topology {
    /// A with a bridge holding the underlay address, one veth to each
    /// peer namespace, and a kernel vxlan in each peer that knows A
    /// statically (fdb and neighbour entries), so that the peers never
    /// ARP across the underlay themselves. IPv6 is off on the overlay.
    fn new(tag: &str, npeers: usize) -> Topology {
        Topology::build(tag, npeers, false)
    }

    /// As [`Topology::new`], with IPv6 overlay addresses as well: no
    /// link-local addresses (so no router or duplicate address traffic),
    /// the global ones without duplicate address detection, and a
    /// permanent neighbour entry for A in each peer.
    fn new_v6(tag: &str, npeers: usize) -> Topology {
        Topology::build(tag, npeers, true)
    }

    fn build(tag: &str, npeers: usize, ipv6: bool) -> Topology {
        let a = Netns::new(&format!("{tag}a"));
        // The TAPs overlayd creates are up at once: born without IPv6 (or
        // without a link-local address), they send no multicast of their
        // own that a test could mistake for its traffic.
        let quiet = if ipv6 {
            "net.ipv6.conf.default.addr_gen_mode=1"
        } else {
            "net.ipv6.conf.default.disable_ipv6=1"
        };
        a.ok(&["sysctl", "-q", "-w", quiet]);
        a.ip("link add br0 type bridge");
        a.ip(&format!("addr add {A_UNDER}/24 dev br0 nodad"));
        a.ip("link set br0 up");
        let mut peers = Vec::new();
        for (i, peer) in PEERS.iter().take(npeers).enumerate() {
            let p = Netns::new(&format!("{tag}{}", peer.tag));
            let a_if = format!("ua{i}");
            net::veth(&a, &a_if, &p, "up0");
            a.ip(&format!("link set {a_if} master br0"));
            // Complete the inner checksums the veth leaves partial.
            p.ok(&["ethtool", "-K", "up0", "tx", "off"]);
            p.ip(&format!("addr add {}/24 dev up0 nodad", peer.under));
            p.ip(&format!(
                "link add vx0 type vxlan id {VNI} dstport 4789 local {} dev up0 nolearning",
                peer.under
            ));
            p.ip(&format!("link set vx0 address {} mtu 1400", peer.mac));
            if ipv6 {
                p.ip("link set vx0 addrgenmode none");
                p.ip(&format!("addr add {}/64 dev vx0 nodad", peer.v6));
            } else {
                p.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.vx0.disable_ipv6=1"]);
            }
            p.ip(&format!("addr add {}/24 dev vx0", peer.v4));
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
            if ipv6 {
                p.ip(&format!(
                    "neigh replace {A_V6} lladdr {A_MAC} dev vx0 nud permanent"
                ));
            }
            peers.push(p);
        }
        let daemon = Daemon::start_in_netns(&a.name);
        Topology {
            daemon,
            a,
            peers,
            dir: TempDir::new(tag),
            ipv6,
        }
    }

    /// A files device `link` over `config` (JSON), activated, its TAP
    /// holding 192.0.2.1 (and fd00:77::1 with [`Topology::new_v6`]) with
    /// the MAC the peers know.
    fn files_overlay(&self, link: &str, config: &str, extra: &[&str]) {
        let path = self.dir.join("hosts.json");
        std::fs::write(&path, config).unwrap();
        let ifname = format!("ifname={link}");
        let mut extra = extra.to_vec();
        extra.push(&ifname);
        self.daemon
            .files_overlay(link, "vxlan", VNI, A_UNDER, &path, &extra);
        self.a.ip(&format!("link set {link} address {A_MAC}"));
        if self.ipv6 {
            self.a.ip(&format!("link set {link} addrgenmode none"));
            self.a.ip(&format!("addr add {A_V6}/64 dev {link} nodad"));
        } else {
            self.a.ok(&[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv6.conf.{link}.disable_ipv6=1"),
            ]);
        }
        self.a.ip(&format!("addr add 192.0.2.1/24 dev {link}"));
        self.a.ip(&format!("link set {link} up"));
    }

    fn client(&self) -> Client {
        self.daemon.client()
    }

    /// An AF_PACKET socket on each peer's `vx0`.
    fn peer_receivers(&self) -> Vec<PacketSocket> {
        self.peers
            .iter()
            .map(|p| PacketSocket::open(p, "vx0"))
            .collect()
    }
}

/// The hosts file: A and every peer, each with its `arp` and `ndp`
/// address; A's DHCP requests go to `dhcp_server` when given.
fn hosts_json(dhcp_server: Option<&str>) -> String {
    let proxy = dhcp_server
        .map(|m| format!(r#", "dhcp-proxy": "{m}""#))
        .unwrap_or_default();
    let mut entries = vec![format!(
        r#""{A_MAC}": {{ "ip": "{A_UNDER}", "port": 4789, "arp": "192.0.2.1", "ndp": "{A_V6}"{proxy} }}"#
    )];
    for p in &PEERS {
        entries.push(format!(
            r#""{}": {{ "ip": "{}", "port": 4789, "arp": "{}", "ndp": "{}" }}"#,
            p.mac, p.under, p.v4, p.v6
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

/// Waits (bounded) until the UINT property `name` exceeds `above`.
/// Checks that `link` answered at least one request per peer by proxy,
/// all of them counted in the files counter `counter`, and replicated
/// nothing.
fn assert_answered_by_proxy(c: &mut Client, link: &str, counter: &str) {
    let (s, _) = stats(c, link);
    assert!(s["lookup_proxied"] >= PEERS.len() as u64, "{s:?}");
    assert_eq!(s["lookup_replicated"], 0, "{s:?}");
    assert_eq!(prop_uint(c, link, counter), s["lookup_proxied"]);
}

fn wait_prop_above(c: &mut Client, link: &str, name: &str, above: u64) -> u64 {
    let deadline = Instant::now() + RECV_WAIT;
    loop {
        let v = prop_uint(c, link, name);
        if v > above {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A payload no other frame carries: the test's pid and a counter.
fn token(what: &str) -> Vec<u8> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("overlayd-test {what} {} {n}", std::process::id()).into_bytes()
}

/// Whether `frame` is a test frame carrying `token`.
fn carries(frame: &[u8], token: &[u8]) -> bool {
    frame.len() >= 14 + token.len()
        && frame[12..14] == ETHERTYPE_TEST.to_be_bytes()
        && &frame[14..14 + token.len()] == token
}

/// Sends a marker frame from A (`tx` on its TAP) to `peer_mac` and
/// returns every frame `rx` received before the marker.
fn frames_before_marker(tx: &PacketSocket, rx: &PacketSocket, peer_mac: &str) -> Vec<Vec<u8>> {
    let marker = token("marker");
    tx.send(&net::ethernet_frame(
        net::mac(peer_mac),
        net::mac(A_MAC),
        ETHERTYPE_TEST,
        &marker,
    ));
    let mut frames = rx
        .recv_until(RECV_WAIT, |f| carries(f, &marker))
        .unwrap_or_else(|| panic!("the marker to {peer_mac} never arrived"));
    frames.pop();
    frames
}

const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;

/// The ICMPv6 type of an untagged IPv6 frame without extension headers.
fn icmpv6_type(frame: &[u8]) -> Option<u8> {
    (frame.len() > 54 && frame[12..14] == [0x86, 0xdd] && frame[20] == 58).then(|| frame[54])
}

#[test]
fn files_overlay_reaches_two_kernel_peers_with_proxied_arp() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("dyn", 2);
    t.files_overlay("dy0", &hosts_json(None), &[]);
    for p in &PEERS {
        t.a.ping(p.v4, 3);
    }
    // A's ARP requests were answered by the proxy: injected answers, no
    // frame replicated (flood is off), and the files plugin counted both.
    let mut c = t.client();
    assert_answered_by_proxy(&mut c, "dy0", "files/arp");
    // The peers never saw an ARP frame: their neighbour entries for A are
    // the permanent ones, and they learnt nothing else over the overlay.
    for p in &t.peers {
        let neigh = p.ok(&["ip", "neigh", "show", "dev", "vx0"]);
        assert_eq!(neigh.lines().count(), 1, "{neigh}");
    }
    // Both MACs are cached now, each towards its own peer.
    let show = t.daemon.ctl_ok(&["show", "-t", "dy0"]);
    for p in &PEERS {
        assert!(
            show.lines()
                .any(|l| l.contains(p.mac) && l.contains(&format!("{}:4789", p.under))),
            "{show}"
        );
    }
    // Broadcast other than ARP and DHCP reaches both peers while `flood`
    // is on, and neither once it is off again: dropped and counted.
    let tx = PacketSocket::open(&t.a, "dy0");
    let rx = t.peer_receivers();
    let bcast = |what: &str| {
        let tok = token(what);
        tx.send(&net::ethernet_frame(
            BROADCAST,
            net::mac(A_MAC),
            ETHERTYPE_TEST,
            &tok,
        ));
        tok
    };
    let replicated = |c: &mut Client| stats(c, "dy0").0["lookup_replicated"];
    t.daemon.ctl_ok(&["prop-set", "dy0", "flood=1"]);
    let on = bcast("flood on");
    for (r, p) in rx.iter().zip(&PEERS) {
        let frames = r
            .recv_until(RECV_WAIT, |f| carries(f, &on))
            .unwrap_or_else(|| panic!("flood=1: the broadcast never reached {}", p.tag));
        let f = frames.last().unwrap();
        assert_eq!(f[..6], BROADCAST, "to {}", p.tag);
        assert_eq!(f[6..12], net::mac(A_MAC), "to {}", p.tag);
    }
    let flooded = replicated(&mut c);
    assert!(flooded >= 1, "flood=1 replicated nothing");
    t.daemon.ctl_ok(&["prop-set", "dy0", "flood=0"]);
    let dropped = prop_uint(&mut c, "dy0", "files/dropped");
    let off = bcast("flood off");
    wait_prop_above(&mut c, "dy0", "files/dropped", dropped);
    for (r, p) in rx.iter().zip(&PEERS) {
        let before = frames_before_marker(&tx, r, p.mac);
        assert!(
            !before.iter().any(|f| carries(f, &off)),
            "flood=0: the broadcast reached {}",
            p.tag
        );
    }
    assert_eq!(replicated(&mut c), flooded);
    // A smaller cache evicts at once.
    t.daemon.ctl_ok(&["prop-set", "dy0", "cache_max_entries=1"]);
    let show = t.daemon.ctl_ok(&["show", "-t", "dy0"]);
    // (The one entry kept may be the broadcast one, which is never listed.)
    assert!(show.lines().count() <= 2, "at most one entry: {show}");
    t.daemon
        .ctl_ok(&["prop-set", "dy0", "cache_max_entries=1024"]);

    // TCP to each, checked end to end.
    let dir = TempDir::new("dynx");
    for (i, addr) in PEERS.iter().map(|p| p.v4).enumerate() {
        let (src, dst) = (dir.join(&format!("{i}.bin")), dir.join(&format!("{i}.out")));
        net::random_file(&src, 4 << 20, i as u64 + 1);
        let mut peer = t.peers.remove(0);
        net::tcp_transfer(&mut t.a, &mut peer, addr, 5100 + i as u16, &src, &dst);
        assert_eq!(net::sha256(&src), net::sha256(&dst), "A to {addr}");
        t.peers.push(peer);
    }
}

#[test]
fn neighbour_solicitations_are_answered_by_the_proxy() {
    if !net::can_run() {
        return;
    }
    let t = Topology::new_v6("ndp", 2);
    t.files_overlay("dn0", &hosts_json(None), &[]);
    let tx = PacketSocket::open(&t.a, "dn0");
    let rx = t.peer_receivers();
    for p in &PEERS {
        t.a.ping(p.v6, 3);
    }
    // A's solicitations were answered by the proxy, and nothing was
    // replicated (flood is off, so a solicitation the plugin failed to
    // answer would have been dropped and the pings lost).
    let mut c = t.client();
    assert_answered_by_proxy(&mut c, "dn0", "files/ndp");
    assert_eq!(prop_uint(&mut c, "dn0", "files/arp"), 0);
    // A learnt each peer's MAC from the proxy's advertisements.
    let neigh = t.a.ok(&["ip", "-6", "neigh", "show", "dev", "dn0"]);
    for p in &PEERS {
        assert!(
            neigh
                .lines()
                .any(|l| l.starts_with(&format!("{} ", p.v6)) && l.contains(p.mac)),
            "{neigh}"
        );
    }
    // The peers received A's echo requests and no solicitation at all.
    for (r, p) in rx.iter().zip(&PEERS) {
        let before = frames_before_marker(&tx, r, p.mac);
        let types: Vec<u8> = before.iter().filter_map(|f| icmpv6_type(f)).collect();
        assert!(
            types.contains(&ICMPV6_ECHO_REQUEST),
            "{} saw no echo request: {types:?}",
            p.tag
        );
        assert!(
            !types.contains(&ICMPV6_NEIGHBOR_SOLICIT),
            "{} saw a neighbour solicitation: {types:?}",
            p.tag
        );
    }
}

/// A broadcast DHCP DISCOVER from `client`, as a client without an
/// address sends it: 0.0.0.0 to 255.255.255.255, UDP 68 to 67 without a
/// checksum, a BOOTP request with transaction id `xid` and one option
/// (message type DISCOVER).
fn dhcp_discover(client: [u8; 6], xid: u32) -> Vec<u8> {
    let mut bootp = vec![0u8; 236];
    bootp[..4].copy_from_slice(&[1, 1, 6, 0]); // request, Ethernet, 6, 0 hops
    bootp[4..8].copy_from_slice(&xid.to_be_bytes());
    bootp[10..12].copy_from_slice(&0x8000u16.to_be_bytes()); // answer by broadcast
    bootp[28..34].copy_from_slice(&client);
    bootp.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1, 255]);
    let udp_len = 8 + bootp.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&68u16.to_be_bytes());
    udp.extend_from_slice(&67u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&bootp);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
    let sum = !csum::fold(csum::ones_sum(&ip, 0));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    net::ethernet_frame(BROADCAST, client, 0x0800, &ip)
}

/// Whether `frame` is a DHCP request (UDP 68 to 67 in an untagged IPv4
/// frame with a 20-byte header) with transaction id `xid`.
fn is_dhcp_request(frame: &[u8], xid: u32) -> bool {
    frame.len() >= 50
        && frame[12..14] == [0x08, 0x00]
        && frame[14] == 0x45
        && frame[23] == 17
        && frame[34..38] == [0, 68, 0, 67]
        && frame[46..50] == xid.to_be_bytes()
}

#[test]
fn dhcp_requests_reach_their_server_only() {
    if !net::can_run() {
        return;
    }
    let (b, c) = (&PEERS[0], &PEERS[1]);
    let t = Topology::new("dhc", 2);
    // Flooding on: a request the plugin failed to redirect would reach
    // both peers as a broadcast instead of being dropped.
    t.files_overlay("dd0", &hosts_json(Some(b.mac)), &["flood=1"]);
    let tx = PacketSocket::open(&t.a, "dd0");
    let rx = t.peer_receivers();
    // A DHCP server's socket in B.
    let server = net::in_netns(&t.peers[0], || {
        let s = std::net::UdpSocket::bind("0.0.0.0:67")?;
        s.set_read_timeout(Some(RECV_WAIT))?;
        Ok(s)
    })
    .unwrap();
    let xid = 0xd4c0_0000 | (std::process::id() & 0xffff);
    let discover = dhcp_discover(net::mac(A_MAC), xid);
    tx.send(&discover);

    // B, the server, gets it addressed to its own MAC, otherwise as sent.
    let at_b = rx[0]
        .recv_until(RECV_WAIT, |f| is_dhcp_request(f, xid))
        .expect("the DISCOVER never reached B");
    let got = at_b.last().unwrap();
    assert_eq!(got[..6], net::mac(b.mac), "to B's unicast MAC");
    assert_eq!(got[6..], discover[6..], "the rest as A sent it");
    // B's stack takes the limited broadcast in a unicast frame.
    let mut buf = [0u8; 1500];
    let (n, from) = server.recv_from(&mut buf).expect("B's port 67 got nothing");
    assert_eq!(from.to_string(), "0.0.0.0:68");
    assert_eq!(buf[..n], discover[42..], "the BOOTP message");
    let mut admin = t.client();
    assert_eq!(prop_uint(&mut admin, "dd0", "files/dhcp"), 1);
    let (s, _) = stats(&mut admin, "dd0");
    assert_eq!(s["lookup_replicated"], 0, "{s:?}");
    // No second copy at B, none at all at C.
    let again = frames_before_marker(&tx, &rx[0], b.mac);
    assert!(
        !again.iter().any(|f| is_dhcp_request(f, xid)),
        "B got it twice"
    );
    let at_c = frames_before_marker(&tx, &rx[1], c.mac);
    assert!(!at_c.iter().any(|f| is_dhcp_request(f, xid)), "C got it");
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
    let (b_under, b_mac, b_addr) = (PEERS[0].under, PEERS[0].mac, PEERS[0].v4);
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

/// A daemon in a namespace where the hosts say nothing on their own
/// (without IPv6 and without an address on the TAP, every lookup is one a
/// test raised), with the files device `link` knowing only B's MAC.
/// Field order is drop order.
struct Quiet {
    d: Daemon,
    _ns: Netns,
    _dir: TempDir,
}

fn quiet_files_device(tag: &str, link: &str) -> Quiet {
    let ns = Netns::new(tag);
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.ip("link add du0 type bridge");
    ns.ip(&format!("addr add {A_UNDER}/24 dev du0"));
    ns.ip("link set du0 up");
    let d = Daemon::start_in_netns(&ns.name);
    let dir = TempDir::new(tag);
    let config = dir.join("hosts.json");
    let Peer {
        under: b_under,
        mac: b_mac,
        ..
    } = PEERS[0];
    std::fs::write(
        &config,
        format!(r#"{{"{b_mac}": {{"ip": "{b_under}", "port": 4789}}}}"#),
    )
    .unwrap();
    let ifname = format!("ifname={link}");
    d.files_overlay(link, "vxlan", VNI, A_UNDER, &config, &[&ifname]);
    Quiet {
        d,
        _ns: ns,
        _dir: dir,
    }
}

/// INFO's FLAGS for `link`.
fn info_flags(c: &mut Client, link: &str) -> u32 {
    c.transact(tg::NAME, tg::CMD_INFO, vec![Attr::str(tg::ATTR_NAME, link)])
        .unwrap()
        .attrs
        .get_u32(tg::ATTR_FLAGS)
        .unwrap()
}

#[test]
fn lookup_service_counters_follow_plugin_and_external_lookups() {
    if !net::can_run() {
        return;
    }
    let q = quiet_files_device("lkst", "lk0");
    let d = &q.d;
    let out = d.ctl_ok(&["lookup-stats"]);
    assert_eq!(
        out,
        "REQUESTS  ANSWERS  TIMEOUTS  LATE  PENDING\n\
         0         0        0         0     0\n"
    );

    // The plugin answers a frame to the MAC it knows.
    let mut admin = d.client();
    resend_to(&mut admin, "lk0", [2, 0, 0, 0, 0, 0x0b]);
    wait_lookup_stats(d, "the plugin's answer", |c, _| c["answers"] == 1);
    assert_lookup_stats(d, [1, 1, 0, 0, 0]);

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
    wait_lookup_stats(d, "the request waiting", |_, p| p == 1);
    assert_lookup_stats(d, [2, 1, 0, 0, 1]);

    // Taken and not answered within lookup_timeout: a timeout, and the
    // request goes back to the queue under a new id.
    let first = take_request(&mut server);
    let first_id = first.attrs.get_u64(tg::ATTR_REQID).unwrap();
    wait_lookup_stats(d, "the timeout", |c, _| c["timeouts"] == 1);
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
    assert_lookup_stats(d, [2, 2, 1, 0, 0]);

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
    assert_lookup_stats(d, [3, 3, 1, 0, 0]);
}

#[test]
fn an_association_survives_a_restart() {
    if !net::can_run() {
        return;
    }
    let mut q = quiet_files_device("asrs", "as0");
    let b_mac = net::mac(PEERS[0].mac);
    let mut admin = q.d.client();
    admin
        .write(
            tg::NAME,
            tg::CMD_ASSOCIATE,
            vec![Attr::str(tg::ATTR_NAME, "as0")],
        )
        .unwrap();
    let state = std::fs::read_to_string(q.d.state_dir().join("state.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(json["devices"][0]["associated"], true, "{state}");
    drop(admin);

    // After a restart the device is still handed to external servers: a
    // lookup for a MAC the plugin knows waits for a server.
    q.d.terminate().expect("a clean stop");
    q.d.restart();
    let mut admin = q.d.client();
    assert_eq!(
        info_flags(&mut admin, "as0"),
        tg::INFO_ACTIVE | tg::INFO_ASSOCIATED
    );
    let mut server = q.d.client();
    server.set_timeout(Duration::from_secs(5));
    resend_to(&mut admin, "as0", b_mac);
    let req = take_request(&mut server);
    assert_eq!(req.attrs.get_bytes(tg::ATTR_DST_MAC), Some(&b_mac[..]));
    let (s, _) = stats(&mut admin, "as0");
    assert_eq!(s["lookup_answers"], 0, "{s:?}");
    server
        .write(
            tg::NAME,
            tg::CMD_DROP,
            vec![Attr::u64(
                tg::ATTR_REQID,
                req.attrs.get_u64(tg::ATTR_REQID).unwrap(),
            )],
        )
        .unwrap();

    // Given back to the plugin, it stays so across the next restart.
    admin
        .write(
            tg::NAME,
            tg::CMD_DISASSOCIATE,
            vec![Attr::str(tg::ATTR_NAME, "as0")],
        )
        .unwrap();
    drop((admin, server));
    q.d.terminate().expect("a clean stop");
    q.d.restart();
    let mut admin = q.d.client();
    assert_eq!(info_flags(&mut admin, "as0"), tg::INFO_ACTIVE);
    resend_to(&mut admin, "as0", b_mac);
    wait_lookup_stats(&q.d, "the plugin's answer", |c, _| c["answers"] == 1);
    let (s, _) = stats(&mut admin, "as0");
    assert_eq!(s["lookup_answers"], 1, "{s:?}");
}
