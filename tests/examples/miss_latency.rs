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
//! LOOKUP, RESPOND), as a varpd-style lookup daemon would.
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
const ETHERTYPE: u16 = 0x88b5; // local experimental
const SRC_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const WARMUP: u32 = 100;
/// How long one frame may take before the round counts as lost.
const FRAME_WAIT: Duration = Duration::from_secs(2);

fn main() {
    if !net::can_run() {
        std::process::exit(2);
    }
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .map(|v| v.parse().expect("ROUNDS is a number of rounds"))
        .unwrap_or(2000);
    let ns = Netns::new("lat");
    let daemon = Daemon::start_in_netns(&ns.name);
    let dir = TempDir::new("lat");

    let mut out = String::new();
    let files = measure(&daemon, &ns, &dir, "lat0", rounds, Serve::Files);
    let external = measure(&daemon, &ns, &dir, "lat1", rounds, Serve::External);
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
    println!("{rounds} rounds (after {WARMUP} warm-up rounds) per path\n\n{out}");
}

enum Serve {
    Files,
    External,
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
fn measure(d: &Daemon, ns: &Netns, dir: &TempDir, link: &str, rounds: u32, serve: Serve) -> Run {
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
    };
    std::fs::write(&config, json).unwrap();
    let port = format!("vxlan/listen_port={port}");
    let ifname = format!("ifname={link}");
    d.files_overlay(
        link,
        "vxlan",
        VNI,
        "127.0.0.1",
        &config,
        &[&port, &ifname, "mtu=1400"],
    );
    ns.ok(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{link}.disable_ipv6=1"),
    ]);
    ns.ip(&format!("link set {link} up"));

    let stop = Arc::new(AtomicBool::new(false));
    let server = match serve {
        Serve::Files => None,
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
