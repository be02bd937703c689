//! Miss-to-first-frame latency of dynamic mode, next to a cache hit.
//!
//! A release `overlayd` runs in a namespace of its own with a `files`
//! overlay over the loopback: the TAP is the overlay side, and a UDP
//! socket on 127.0.0.1 stands for the peer on the underlay. Each round
//! writes one frame into the TAP (an `AF_PACKET` socket on it, so the
//! frame enters overlayd exactly as a host's would) to a MAC never used
//! before, and times until the encapsulated packet reaches the peer's
//! socket: a miss, a lookup on a lookup thread, the answer, the send.
//! The same MAC is then sent again: a hit, the path without the lookup.
//! A second pass does the same with the lookups served by a server
//! outside the daemon over the `overlay_target` family (ASSOCIATE,
//! LOOKUP, RESPOND), as a varpd-style lookup daemon would. A third
//! pass has its answers in a local etcd member (in the same namespace)
//! through the `etcd` plugin. With etcd, two more figures: how long a
//! MAC moved to another destination (`etcdctl put`) takes until its
//! frames arrive there (MOVES moves, default 50), and how many lookups
//! per second the member serves to the daemon (a burst of BURST frames
//! to as many new MACs, default 2000).
//!
//! Run as root after `cargo build --release --workspace`:
//!
//! ```sh
//! bench/miss-latency.sh          # ROUNDS=2000 by default
//! ```
//!
//! Prints p50, p99 and max for each kind; nothing is asserted.

use nlproto::{client::Error as ClientError, spec::target as tg, Attr, AttrsExt};
use overlay_tests::{
    etcd::EtcdMember,
    net::{self, Netns, PacketSocket},
    Daemon, TempDir,
};
use std::{
    fmt::Write as _,
    net::UdpSocket,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

const VNI: u32 = 42;
const PEER_PORT: u16 = 4790;
/// Where a moved MAC goes (another peer socket).
const MOVED_PORT: u16 = 4793;
const ETCD_PREFIX: &str = "/overlayd/vnet/42";
const ETHERTYPE: u16 = 0x88b5; // local experimental
const SRC_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const WARMUP: u32 = 100;
/// How long one frame may take before the round counts as lost.
const FRAME_WAIT: Duration = Duration::from_secs(2);

fn main() {
    if !net::can_run() {
        std::process::exit(2);
    }
    let number = |name: &str, default: u32| -> u32 {
        std::env::var(name)
            .ok()
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
            .unwrap_or(default)
    };
    let rounds = number("ROUNDS", 2000);
    let moves = number("MOVES", 50);
    let burst = number("BURST", 2000);
    let ns = Netns::new("lat");
    let daemon = Daemon::start_in_netns(&ns.name);
    let dir = TempDir::new("lat");
    let etcd = EtcdMember::single(&ns, "127.0.0.1");

    let mut out = String::new();
    let files = measure(&daemon, &ns, &dir, "lat0", rounds, &Serve::Files);
    let external = measure(&daemon, &ns, &dir, "lat1", rounds, &Serve::External);
    let from_etcd = measure(&daemon, &ns, &dir, "lat2", rounds, &Serve::Etcd(&etcd));
    let moved = measure_moves(&daemon, &ns, &etcd, moves);
    let (served, rate) = measure_burst(&daemon, &ns, &etcd, burst);
    writeln!(
        out,
        "| path | p50 µs | p99 µs | max µs | lost |\n|---|---|---|---|---|"
    )
    .unwrap();
    for (name, r) in [
        ("hit (cache valid)", &files.hit),
        ("miss, files plugin", &files.miss),
        ("hit, external device", &external.hit),
        ("miss, external server over netlink", &external.miss),
        ("hit, etcd device", &from_etcd.hit),
        ("miss, etcd plugin (local member)", &from_etcd.miss),
        ("MAC moved in etcd: until frames arrive there", &moved),
    ] {
        writeln!(
            out,
            "| {name} | {:.1} | {:.1} | {:.1} | {} |",
            r.pct(50.0),
            r.pct(99.0),
            r.pct(100.0),
            r.lost
        )
        .unwrap();
    }
    let ratio = |a: &Samples, b: &Samples, p| a.pct(p) / b.pct(p);
    writeln!(
        out,
        "\nmiss/hit, files: {:.2} (p50), {:.2} (p99); external/files miss: {:.2} (p50)",
        ratio(&files.miss, &files.hit, 50.0),
        ratio(&files.miss, &files.hit, 99.0),
        ratio(&external.miss, &files.miss, 50.0),
    )
    .unwrap();
    writeln!(
        out,
        "etcd/files miss: {:.2} (p50), {:.2} (p99)\n\
         lookups answered from etcd in a burst of {burst} new MACs: {served}, {rate:.0} per second",
        ratio(&from_etcd.miss, &files.miss, 50.0),
        ratio(&from_etcd.miss, &files.miss, 99.0),
    )
    .unwrap();
    println!("{rounds} rounds (after {WARMUP} warm-up rounds) per path\n\n{out}");
}

enum Serve<'a> {
    Files,
    External,
    Etcd(&'a EtcdMember),
}

#[derive(Default)]
struct Samples {
    us: Vec<f64>,
    lost: u32,
}

impl Samples {
    fn push(&mut self, d: Option<Duration>) {
        match d {
            Some(d) => self.us.push(d.as_secs_f64() * 1e6),
            None => self.lost += 1,
        }
    }

    /// The `p`th percentile (nearest rank), in µs.
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.us.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

struct Run {
    miss: Samples,
    hit: Samples,
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x10, b[0], b[1], b[2], b[3]]
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One device `link` measured for `rounds` rounds, its lookups served as
/// `serve` says.
fn measure(d: &Daemon, ns: &Netns, dir: &TempDir, link: &str, rounds: u32, serve: &Serve) -> Run {
    let total = rounds + WARMUP;
    let config = dir.join(&format!("{link}.json"));
    let (json, port) = match serve {
        Serve::Files => {
            let mut json = String::from("{\n");
            for i in 0..total {
                let sep = if i + 1 == total { "" } else { "," };
                writeln!(
                    json,
                    "  \"{}\": {{ \"ip\": \"127.0.0.1\", \"port\": {PEER_PORT} }}{sep}",
                    mac_text(mac(i))
                )
                .unwrap();
            }
            json.push_str("}\n");
            (json, 4789)
        }
        // The files plugin with an empty file: the device is handed to
        // the external server, so the plugin is never asked.
        Serve::External => ("{}\n".to_string(), 4791),
        Serve::Etcd(e) => {
            let entries: Vec<(String, String)> =
                (0..total).map(|i| mac_entry(mac(i), PEER_PORT)).collect();
            e.put_many(&entries);
            (String::new(), 4792)
        }
    };
    let port = format!("vxlan/listen_port={port}");
    let ifname = format!("ifname={link}");
    if let Serve::Etcd(e) = serve {
        etcd_overlay(d, e, link, &[&port, &ifname, "mtu=1400"]);
    } else {
        std::fs::write(&config, json).unwrap();
        d.files_overlay(
            link,
            "vxlan",
            VNI,
            "127.0.0.1",
            &config,
            &[&port, &ifname, "mtu=1400"],
        );
    }
    ns.ok(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{link}.disable_ipv6=1"),
    ]);
    ns.ip(&format!("link set {link} up"));

    let stop = Arc::new(AtomicBool::new(false));
    let server = match serve {
        Serve::Files | Serve::Etcd(_) => None,
        Serve::External => {
            let mut c = d.client();
            c.write(
                tg::NAME,
                tg::CMD_ASSOCIATE,
                vec![Attr::str(tg::ATTR_NAME, link)],
            )
            .expect("ASSOCIATE");
            let stop = stop.clone();
            Some(std::thread::spawn(move || serve_external(c, &stop)))
        }
    };

    let tap = PacketSocket::open(ns, link);
    let peer = net::in_netns(ns, || UdpSocket::bind(("127.0.0.1", PEER_PORT))).unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut run = Run {
        miss: Samples::default(),
        hit: Samples::default(),
    };
    let mut seq = 0u32;
    for i in 0..total {
        let miss = round_trip(&tap, &peer, mac(i), &mut seq);
        let hit = round_trip(&tap, &peer, mac(i), &mut seq);
        if i >= WARMUP {
            run.miss.push(miss);
            run.hit.push(hit);
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(s) = server {
        s.join().unwrap();
    }
    d.ctl_ok(&["delete", link]);
    run
}

/// The directory entry placing `m` behind the peer socket at `port`.
fn mac_entry(m: [u8; 6], port: u16) -> (String, String) {
    (
        format!("{ETCD_PREFIX}/mac/{}", mac_text(m)),
        format!(r#"{{"ip":"127.0.0.1","port":{port}}}"#),
    )
}

/// Device `link` on the etcd plugin, reading `e`'s directory only
/// (`etcd/learn=0`: this host publishes nothing).
fn etcd_overlay(d: &Daemon, e: &EtcdMember, link: &str, extra: &[&str]) {
    let mut props = format!(
        "vxlan/listen_ip=127.0.0.1,etcd/endpoints={},etcd/learn=0",
        e.client_url
    );
    for x in extra {
        props.push(',');
        props.push_str(x);
    }
    let vni = VNI.to_string();
    d.ctl_ok(&[
        "create", "-e", "vxlan", "-s", "etcd", "-v", &vni, "-p", &props, link,
    ]);
    d.ctl_ok(&["activate", link]);
}

/// An etcd device in `ns` with its TAP up, and the sockets of its two
/// peers (at `PEER_PORT` and `MOVED_PORT`).
fn etcd_device(
    d: &Daemon,
    ns: &Netns,
    e: &EtcdMember,
    link: &str,
    port: u16,
) -> (PacketSocket, UdpSocket, UdpSocket) {
    let port = format!("vxlan/listen_port={port}");
    let ifname = format!("ifname={link}");
    etcd_overlay(d, e, link, &[&port, &ifname, "mtu=1400"]);
    ns.ok(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{link}.disable_ipv6=1"),
    ]);
    ns.ip(&format!("link set {link} up"));
    let peer = |port| {
        let s = net::in_netns(ns, move || UdpSocket::bind(("127.0.0.1", port))).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        s
    };
    (
        PacketSocket::open(ns, link),
        peer(PEER_PORT),
        peer(MOVED_PORT),
    )
}

/// `moves` times: a MAC whose frames reach one peer is moved to the
/// other by a put in etcd; timed from the put's completion until a frame
/// (one is sent every millisecond) arrives at the new peer.
fn measure_moves(d: &Daemon, ns: &Netns, e: &EtcdMember, moves: u32) -> Samples {
    let (tap, a, b) = etcd_device(d, ns, e, "lat3", 4794);
    let m = [0x02, 0x20, 0, 0, 0, 1];
    let mut at = PEER_PORT;
    let (k, v) = mac_entry(m, at);
    e.ctl_ok(&["put", &k, &v]);
    let mut seq = 0u32;
    // The first frame is a plain miss, answered from the entry.
    let _ = round_trip(&tap, &a, m, &mut seq);
    let mut samples = Samples::default();
    for _ in 0..moves {
        let (to, sock) = if at == PEER_PORT {
            (MOVED_PORT, &b)
        } else {
            (PEER_PORT, &a)
        };
        let (k, v) = mac_entry(m, to);
        e.ctl_ok(&["put", &k, &v]);
        let start = Instant::now();
        let mut arrived = None;
        while start.elapsed() < FRAME_WAIT {
            seq += 1;
            let mut payload = [0u8; 50];
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            tap.send(&net::ethernet_frame(m, SRC_MAC, ETHERTYPE, &payload));
            let mut buf = [0u8; 2048];
            if let Ok(n) = sock.recv(&mut buf) {
                if n >= 8 + 18 && buf[8 + 12..8 + 14] == ETHERTYPE.to_be_bytes() {
                    arrived = Some(start.elapsed());
                    break;
                }
            }
        }
        samples.push(arrived);
        at = to;
        // What went on to the old peer meanwhile is not wanted.
        for s in [&a, &b] {
            let mut buf = [0u8; 2048];
            while s.recv(&mut buf).is_ok() {}
        }
    }
    d.ctl_ok(&["delete", "lat3"]);
    samples
}

/// A burst of `burst` frames to as many MACs the daemon never looked up,
/// each in etcd: how many reach the peer and how many per second
/// (lookups served by the member), from the first frame sent to the
/// last received.
fn measure_burst(d: &Daemon, ns: &Netns, e: &EtcdMember, burst: u32) -> (u32, f64) {
    let (tap, a, _) = etcd_device(d, ns, e, "lat4", 4795);
    let macs: Vec<[u8; 6]> = (0..burst)
        .map(|i| {
            let b = i.to_be_bytes();
            [0x02, 0x30, b[0], b[1], b[2], b[3]]
        })
        .collect();
    let entries: Vec<(String, String)> = macs.iter().map(|m| mac_entry(*m, PEER_PORT)).collect();
    e.put_many(&entries);
    let start = Instant::now();
    for m in &macs {
        tap.send(&net::ethernet_frame(*m, SRC_MAC, ETHERTYPE, &[0u8; 50]));
    }
    let (mut got, mut last) = (0u32, start.elapsed());
    let mut quiet = Instant::now();
    // Until every frame arrived, or none for 2 s.
    while got < burst && quiet.elapsed() < FRAME_WAIT {
        let mut buf = [0u8; 2048];
        if let Ok(n) = a.recv(&mut buf) {
            if n >= 8 + 18 && buf[8 + 12..8 + 14] == ETHERTYPE.to_be_bytes() {
                got += 1;
                last = start.elapsed();
                quiet = Instant::now();
            }
        }
    }
    account(d, ns, "lat4", burst - got);
    d.ctl_ok(&["delete", "lat4"]);
    (got, f64::from(got) / last.as_secs_f64())
}

/// Says where the `missing` frames of a burst went: dropped by the TAP
/// before the daemon read them (its transmit queue full), by the daemon
/// (its counters and lookup figures), or by the peer's socket (its
/// receive buffer full).
fn account(d: &Daemon, ns: &Netns, dev: &str, missing: u32) {
    if missing == 0 {
        return;
    }
    let tap_dropped = ns.if_counter(dev, "tx_dropped");
    let snmp = ns.ok(&["cat", "/proc/net/snmp"]);
    let udp: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Udp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let rcvbuf_errors = udp
        .first()
        .and_then(|names| names.iter().position(|n| *n == "RcvbufErrors"))
        .and_then(|i| udp.get(1).and_then(|v| v.get(i)))
        .unwrap_or(&"?")
        .to_string();
    eprintln!(
        "burst: {missing} frames did not arrive; TAP {dev} tx_dropped {tap_dropped}, \
         UDP receive buffer errors in the namespace {rcvbuf_errors}; the device's counters:\n{}{}",
        d.ctl_ok(&["show", "-s", dev]),
        d.ctl_ok(&["lookup-stats"])
    );
}

/// Writes one frame to `dst` into the TAP and waits for it at the peer.
fn round_trip(
    tap: &PacketSocket,
    peer: &UdpSocket,
    dst: [u8; 6],
    seq: &mut u32,
) -> Option<Duration> {
    *seq += 1;
    let mut payload = [0u8; 50];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    let frame = net::ethernet_frame(dst, SRC_MAC, ETHERTYPE, &payload);
    let start = Instant::now();
    tap.send(&frame);
    let mut buf = [0u8; 2048];
    while start.elapsed() < FRAME_WAIT {
        let Ok(n) = peer.recv(&mut buf) else { continue };
        // 8 bytes of VXLAN header, then the frame.
        let inner = &buf[8..n];
        if n >= 8 + 18 && inner[12..14] == ETHERTYPE.to_be_bytes() && inner[14..18] == frame[14..18]
        {
            return Some(start.elapsed());
        }
    }
    None
}

/// Serves every lookup of the associated device: each MAC lives at the
/// peer's socket.
fn serve_external(mut c: nlproto::client::Client, stop: &AtomicBool) {
    let peer_ip = std::net::Ipv4Addr::LOCALHOST
        .to_ipv6_mapped()
        .octets()
        .to_vec();
    while !stop.load(Ordering::Relaxed) {
        let req = match c.transact(
            tg::NAME,
            tg::CMD_LOOKUP,
            vec![Attr::u32(tg::ATTR_TIMEOUT_MS, 100)],
        ) {
            Ok(m) => m,
            Err(ClientError::Netlink { errno, .. }) if errno == libc::ETIME => continue,
            Err(e) => panic!("LOOKUP: {e}"),
        };
        let id = req.attrs.get_u64(tg::ATTR_REQID).expect("request id");
        let dst = req.attrs.get_bytes(tg::ATTR_DST_MAC).expect("destination");
        // Only the frames of this program go out; the host's own
        // broadcast and multicast is dropped.
        let answer = if dst[0] & 1 == 0 {
            c.write(
                tg::NAME,
                tg::CMD_RESPOND,
                vec![
                    Attr::u64(tg::ATTR_REQID, id),
                    Attr::bytes(tg::ATTR_DEST_IP, peer_ip.clone()),
                    Attr::u16(tg::ATTR_DEST_PORT, PEER_PORT),
                ],
            )
        } else {
            c.write(tg::NAME, tg::CMD_DROP, vec![Attr::u64(tg::ATTR_REQID, id)])
        };
        answer.expect("answer");
    }
}
