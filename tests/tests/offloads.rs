//! End to end through the offloads of the packet path: TCP super-frames
//! from the TAP cut here and sent with UDP GSO, UDP GRO on the underlay
//! socket, received segments merged into GSO frames for the TAP; and the
//! per-frame paths that `overlayd --disable-offload` leaves.
//!
//! Namespaces A and B are joined by a veth pair (`ua`, `ub`), in one of two
//! settings: `Veth::On` keeps the veth's offloads (what a container or a
//! NIC with offloads gives: GSO packets cross whole), `Veth::Off` turns
//! every one of them off at both ends (every packet MTU-sized, checksums
//! computed in software). overlayd runs in A; B runs the kernel's vxlan or
//! a second overlayd.
//!
//! * Both settings, with either peer: 20 MB of TCP each way, checked by
//!   sha256, and the STATS counters show that super-frames left with UDP
//!   GSO, that received segments were merged, and (veth offloads on,
//!   overlayd on both ends) that GSO trains were read with UDP GRO: the
//!   tests fail if the offloads are not used.
//! * An IPv6 underlay, with IPv6 and IPv4 inner traffic.
//! * Inner IPv4, TCP and UDP checksums of IPv4 and IPv6 inner traffic,
//!   checked by tshark where they must be right (see [`inner_checksums`]).
//! * `--disable-offload`: the per-frame paths, with the counters to show it.
//!
//! Underlay 198.51.100.0/24 or 2001:db8:100::/64; overlay 192.0.2.0/25 and
//! 2001:db8:2::/65; a network behind A (the checksum tests) 192.0.2.128/25
//! and 2001:db8:2:0:8000::/65. Every address lives only inside the tests'
//! namespaces, which are deleted when a test ends, also on failure.

use overlay_tests::proto::stats;
use overlay_tests::{
    net::{self, Netns},
    Daemon, TempDir,
};
use std::{
    collections::HashMap,
    fs::File,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const VNI: u32 = 42;
const A_UNDER4: &str = "198.51.100.1";
const B_UNDER4: &str = "198.51.100.2";
const A_UNDER6: &str = "2001:db8:100::1";
const B_UNDER6: &str = "2001:db8:100::2";
const A4: &str = "192.0.2.1";
const B4: &str = "192.0.2.2";
const A6: &str = "2001:db8:2::1";
const B6: &str = "2001:db8:2::2";
/// Overlay prefixes: the lower halves of 192.0.2.0/24 and 2001:db8:2::/64.
const OVER4_PLEN: u32 = 25;
const OVER6_PLEN: u32 = 65;
/// The network behind A (checksum tests): the upper halves.
const A_BEHIND4: &str = "192.0.2.129";
const C4: &str = "192.0.2.130";
const A_BEHIND6: &str = "2001:db8:2:0:8000::1";
const C6: &str = "2001:db8:2:0:8000::2";
const MB: usize = 1 << 20;

/// The veth underlay's offload setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Veth {
    /// The veth's defaults: GSO packets cross the pair whole.
    On,
    /// `tx rx tso gso gro` off at both ends.
    Off,
}

type Counters = HashMap<String, u64>;

struct Topology {
    // Field order is drop order: the daemons stop before their namespaces go.
    daemons: Vec<Daemon>,
    a: Netns,
    b: Netns,
}

impl Topology {
    /// A and B joined by `ua`/`ub` with underlay addresses of one family,
    /// offloads as `veth` says; no daemon yet.
    fn new(tag: &str, under6: bool, veth: Veth) -> Topology {
        let a = Netns::new(&format!("off{tag}a"));
        let b = Netns::new(&format!("off{tag}b"));
        net::veth(&a, "ua", &b, "ub");
        if veth == Veth::Off {
            for (ns, ifname) in [(&a, "ua"), (&b, "ub")] {
                ns.ok(&[
                    "ethtool", "-K", ifname, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                    "gro", "off",
                ]);
            }
        }
        let (au, bu, plen) = if under6 {
            (A_UNDER6, B_UNDER6, 64)
        } else {
            (A_UNDER4, B_UNDER4, 24)
        };
        a.ip(&format!("addr add {au}/{plen} dev ua nodad"));
        b.ip(&format!("addr add {bu}/{plen} dev ub nodad"));
        Topology {
            daemons: Vec::new(),
            a,
            b,
        }
    }

    /// The kernel's vxlan in B (`vx0`), sending to A's underlay address.
    /// A veth hands the kernel's tunnel packets over with the inner
    /// checksum left for a NIC to finish, which no NIC does: B completes it
    /// itself (`tx off`), as interop.rs explains.
    fn kernel_peer(&self, with_v6: bool) {
        self.b.ok(&["ethtool", "-K", "ub", "tx", "off"]);
        self.b.ip(&format!(
            "link add vx0 type vxlan id {VNI} dstport 4789 remote {A_UNDER4} local {B_UNDER4} dev ub"
        ));
        self.b.ip("link set vx0 mtu 1400");
        if !with_v6 {
            quiet_ipv6(&self.b, "vx0");
        }
        self.b.ip(&format!("addr add {B4}/{OVER4_PLEN} dev vx0"));
        if with_v6 {
            self.b
                .ip(&format!("addr add {B6}/{OVER6_PLEN} dev vx0 nodad"));
        }
        self.b.ip("link set vx0 up");
    }

    /// overlayd in A (`b == false`) or B, started with `args`, with device
    /// `ov0` to the other side's underlay address, holding the overlay
    /// addresses of its side (IPv6 ones too with `with_v6`).
    fn overlayd(&mut self, b: bool, args: &[&str], under6: bool, with_v6: bool) {
        let ns = if b { &self.b } else { &self.a };
        let (mut listen, mut dest, v4, v6) = if b {
            (B_UNDER4, A_UNDER4, B4, B6)
        } else {
            (A_UNDER4, B_UNDER4, A4, A6)
        };
        if under6 {
            (listen, dest) = if b {
                (B_UNDER6, A_UNDER6)
            } else {
                (A_UNDER6, B_UNDER6)
            };
        }
        let d = Daemon::start_in_netns_with_args(&ns.name, args);
        let props = format!("vxlan/listen_ip={listen},direct/dest_ip={dest},direct/dest_port=4789");
        let vni = VNI.to_string();
        d.ctl_ok(&[
            "create", "-e", "vxlan", "-s", "direct", "-v", &vni, "-p", &props, "ov0",
        ]);
        d.ctl_ok(&["activate", "ov0"]);
        if !with_v6 {
            quiet_ipv6(ns, "ov0");
        }
        ns.ip(&format!("addr add {v4}/{OVER4_PLEN} dev ov0"));
        if with_v6 {
            ns.ip(&format!("addr add {v6}/{OVER6_PLEN} dev ov0 nodad"));
        }
        self.daemons.push(d);
    }

    /// Device and mux counters of `ov0` on daemon `i`.
    fn counters(&self, i: usize) -> (Counters, Counters) {
        stats(&mut self.daemons[i].client(), "ov0")
    }
}

/// No IPv6 chatter (router solicitations, MLD) on an interface that only
/// carries IPv4 in a test.
fn quiet_ipv6(ns: &Netns, ifname: &str) {
    let knob = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
    ns.ok(&["sysctl", "-q", "-w", &knob]);
}

/// `len` bytes over TCP from `from` to `to_addr` (in `to`), checked by
/// sha256 at the far end.
fn transfer(from: &mut Netns, to: &mut Netns, to_addr: &str, port: u16, len: usize, seed: u64) {
    let dir = TempDir::new("offxfer");
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    net::random_file(&src, len, seed);
    net::tcp_transfer(from, to, to_addr, port, &src, &dst);
    assert_eq!(
        net::sha256(&src),
        net::sha256(&dst),
        "{len} bytes from {} to {to_addr}",
        from.name
    );
}

/// 20 MB each way between A and B over IPv4, then what the offload path
/// did in A (the first daemon).
fn both_ways_20mb(t: &mut Topology) -> (Counters, Counters) {
    t.a.ping(B4, 2);
    transfer(&mut t.a, &mut t.b, B4, 5001, 20 * MB, 1);
    transfer(&mut t.b, &mut t.a, A4, 5002, 20 * MB, 2);
    t.counters(0)
}

/// overlayd <-> kernel vxlan, 20 MB each way: A's super-frames left with
/// UDP GSO, and the kernel's segments were merged for A's TAP.
fn with_kernel_vxlan(tag: &str, veth: Veth) {
    let mut t = Topology::new(tag, false, veth);
    t.kernel_peer(false);
    t.overlayd(false, &[], false, false);
    let (dev, mux) = both_ways_20mb(&mut t);
    assert!(
        dev["tx_gso"] > 0,
        "no super-frame sent with UDP GSO: {dev:?}"
    );
    assert!(mux["tx_gso"] >= dev["tx_gso"], "{mux:?}");
    assert!(dev["rx_gso"] > 0, "no received segments merged: {dev:?}");
    assert!(dev["rx_packets"] > 10_000, "{dev:?}");
    assert_eq!(mux["drop_bad_header"], 0, "{mux:?}");
}

/// overlayd <-> overlayd, 20 MB each way: both send with UDP GSO and merge
/// what they receive; with the veth's offloads on, the GSO packets cross
/// whole and each daemon reads them with UDP GRO.
fn with_overlayd(tag: &str, veth: Veth) {
    let mut t = Topology::new(tag, false, veth);
    t.overlayd(false, &[], false, false);
    t.overlayd(true, &[], false, false);
    both_ways_20mb(&mut t);
    for i in 0..2 {
        let (dev, mux) = t.counters(i);
        assert!(dev["tx_gso"] > 0, "daemon {i}: {dev:?}");
        assert!(mux["tx_gso"] >= dev["tx_gso"], "daemon {i}: {mux:?}");
        assert!(dev["rx_gso"] > 0, "daemon {i}: {dev:?}");
        if veth == Veth::On {
            assert!(mux["rx_gro"] > 0, "daemon {i}: no GRO read: {mux:?}");
        }
        assert_eq!(mux["drop_bad_header"], 0, "daemon {i}: {mux:?}");
        assert_eq!(dev["drop_backend"], 0, "daemon {i}: {dev:?}");
    }
}

#[test]
fn veth_offloads_on_kernel_vxlan() {
    if !net::can_run() {
        return;
    }
    with_kernel_vxlan("kon", Veth::On);
}

#[test]
fn veth_offloads_off_kernel_vxlan() {
    if !net::can_run() {
        return;
    }
    // UDP GSO out of a device without checksum offload: this kernel
    // checksums and segments the datagrams in software, so A still sends
    // one super-frame per send. (Older kernels refuse such a send with
    // EIO; overlayd then segments here, and tx_gso stays 0.)
    with_kernel_vxlan("koff", Veth::Off);
}

#[test]
fn veth_offloads_on_two_overlayd() {
    if !net::can_run() {
        return;
    }
    with_overlayd("oon", Veth::On);
}

#[test]
fn veth_offloads_off_two_overlayd() {
    if !net::can_run() {
        return;
    }
    with_overlayd("ooff", Veth::Off);
}

/// IPv6 underlay, two overlayds: 20 MB of IPv6 inner TCP from A to B
/// (TCPv6 super-frames, UDP GSO and GRO over IPv6), then IPv4 inner the
/// other way.
#[test]
fn ipv6_underlay_with_ipv6_and_ipv4_inner() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("v6", true, Veth::On);
    t.overlayd(false, &[], true, true);
    t.overlayd(true, &[], true, true);
    t.a.ping(B6, 2);
    transfer(&mut t.a, &mut t.b, B6, 5001, 20 * MB, 3);
    let (dev_a, mux_a) = t.counters(0);
    let (dev_b, mux_b) = t.counters(1);
    assert!(dev_a["tx_gso"] > 0, "{dev_a:?}");
    assert!(mux_a["tx_gso"] > 0, "{mux_a:?}");
    assert!(mux_b["rx_gro"] > 0, "{mux_b:?}");
    assert!(dev_b["rx_gso"] > 0, "{dev_b:?}");
    transfer(&mut t.b, &mut t.a, A4, 5002, 4 * MB, 4);
    let (dev_b2, _) = t.counters(1);
    let (dev_a2, mux_a2) = t.counters(0);
    assert!(dev_b2["tx_gso"] > dev_b["tx_gso"], "{dev_b2:?}");
    assert!(mux_a2["rx_gro"] > mux_a["rx_gro"], "{mux_a2:?}");
    assert!(dev_a2["rx_gso"] > dev_a["rx_gso"], "{dev_a2:?}");
}

/// A UDP socket opened in `ns`, bound to `addr`.
fn udp_socket(ns: &Netns, addr: &str) -> UdpSocket {
    let addr: SocketAddr = addr.parse().unwrap();
    net::in_netns(ns, move || UdpSocket::bind(addr))
        .unwrap_or_else(|e| panic!("UDP socket on {addr} in {}: {e}", ns.name))
}

/// Sets `UDP_SEGMENT`: every send is cut into datagrams of `size` bytes.
fn set_udp_segment(s: &UdpSocket, size: u16) {
    let v = libc::c_int::from(size);
    // SAFETY: passes a valid int of the stated size to setsockopt.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
}

/// `overlayd --disable-offload`: with UDP GSO and GRO off in A and TSO off
/// in B, 4 MB pass each way intact, and the counters show the per-frame
/// paths: A cuts its super-frames into whole datagrams, B's TAP hands over
/// MTU-sized frames only, and A reads a GSO train one datagram at a time.
#[test]
fn disabled_offloads_take_the_per_frame_paths() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("dis", false, Veth::On);
    let a_args = [
        "--disable-offload",
        "udp-gso",
        "--disable-offload",
        "udp-gro",
    ];
    t.overlayd(false, &a_args, false, false);
    t.overlayd(true, &["--disable-offload", "tso"], false, false);
    for (i, want) in [
        (0, ["on", "off", "off", "on"]),
        (1, ["off", "on", "on", "on"]),
    ] {
        let out = t.daemons[i].ctl_ok(&["-j", "status"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("status -j is JSON");
        let names = ["tso", "udp-gso", "udp-gro", "coalesce"];
        for (name, on) in names.iter().zip(want) {
            assert_eq!(v[0]["offload"][name], on, "daemon {i} {name}: {out}");
        }
    }
    t.a.ping(B4, 2);
    transfer(&mut t.a, &mut t.b, B4, 5001, 4 * MB, 5);
    transfer(&mut t.b, &mut t.a, A4, 5002, 4 * MB, 6);
    let (dev_a, mux_a) = t.counters(0);
    let (dev_b, mux_b) = t.counters(1);
    // A's TAP still gives super-frames; they are cut here and sent as
    // whole datagrams.
    assert!(dev_a["tx_segmented"] > 0, "{dev_a:?}");
    assert_eq!(dev_a["tx_gso"], 0, "{dev_a:?}");
    assert_eq!(mux_a["tx_gso"], 0, "{mux_a:?}");
    // B's TAP gives MTU-sized frames only.
    assert_eq!(dev_b["tx_segmented"], 0, "{dev_b:?}");
    assert_eq!(dev_b["tx_gso"], 0, "{dev_b:?}");
    assert_eq!(mux_b["tx_gso"], 0, "{mux_b:?}");
    assert!(dev_b["tx_packets"] > (4 * MB / 1400) as u64, "{dev_b:?}");
    // Both still merge what they receive (coalescing is on in both).
    assert!(dev_a["rx_gso"] > 0, "{dev_a:?}");
    assert!(dev_b["rx_gso"] > 0, "{dev_b:?}");
    assert_eq!(mux_a["rx_gro"], 0, "{mux_a:?}");

    // Neither daemon sent a GSO train, so UDP GRO has had nothing to do
    // yet. One UDP GSO send of 8 datagrams (no VXLAN flag: each is dropped
    // as a bad header) at each daemon: the veth carries the train whole;
    // B, with UDP GRO, reads it at once, A one datagram at a time.
    let payload = [0u8; 8 * 100];
    for (i, from, to) in [(1, &t.a, B_UNDER4), (0, &t.b, A_UNDER4)] {
        let (_, before) = t.counters(i);
        let s = udp_socket(from, "0.0.0.0:0");
        set_udp_segment(&s, 100);
        s.send_to(&payload, (to, 4789)).expect("UDP GSO send");
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = loop {
            let (_, m) = t.counters(i);
            if m["drop_bad_header"] >= before["drop_bad_header"] + 8 {
                break m;
            }
            assert!(Instant::now() < deadline, "daemon {i} never got 8: {m:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(after["drop_bad_header"], before["drop_bad_header"] + 8);
        let reads = after["rx_gro"] - before["rx_gro"];
        if i == 1 {
            assert_eq!(reads, 1, "B read the train in one: {after:?}");
        } else {
            assert_eq!(reads, 0, "A reads datagram by datagram: {after:?}");
        }
    }
}

/// tshark capturing one interface of a namespace, checking the inner
/// IPv4, TCP and UDP checksums of every frame `src_mac` sent, printed as
/// it goes (`-l -P`) so that a marker datagram says when all earlier frames
/// are in; the frames also go to a file, kept when a checksum is bad.
struct Capture {
    child: Child,
    dir: TempDir,
    ifname: String,
    what: String,
}

/// tshark's checksum status values (`tcp.checksum.status` and the like).
const CSUM_BAD: &str = "0";
const CSUM_GOOD: &str = "1";
/// The UDP port of the datagram that ends a capture.
const MARKER_PORT: u16 = 4999;

impl Capture {
    /// Starts tshark on `ifname` in `ns` for frames from `src_mac` that
    /// match `filter` too; returns once it captures.
    fn start(ns: &Netns, ifname: &str, src_mac: &str, filter: &str, what: &str) -> Capture {
        let dir = TempDir::new("offcap");
        let bpf = format!("ether src {src_mac} and ({filter})");
        let pcap = dir.join("cap.pcapng").display().to_string();
        let args = [
            "netns",
            "exec",
            &ns.name,
            "tshark",
            "-w",
            &pcap,
            "-P",
            "-n",
            "-l",
            "-i",
            ifname,
            // Past every transfer's own bound.
            "-a",
            "duration:400",
            "-B",
            "64",
            "-f",
            &bpf,
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "frame.protocols",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "tcp.len",
            "-e",
            "udp.dstport",
            // For the messages: which packet it was.
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags.str",
            "-e",
            "tcp.seq_raw",
            "-e",
            "tcp.checksum",
            "-e",
            "frame.number",
            "-e",
            "tcp.checksum_calculated",
        ];
        let child = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("out")).unwrap())
            .stderr(File::create(dir.join("err")).unwrap())
            .spawn()
            .expect("tshark starts");
        let mut cap = Capture {
            child,
            dir,
            ifname: ifname.to_string(),
            what: what.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cap.stderr().contains("Capturing on") {
            if Instant::now() > deadline || cap.child.try_wait().unwrap().is_some() {
                panic!(
                    "tshark on {what} did not start capturing:\n{}",
                    cap.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        cap
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("err")).unwrap_or_default()
    }

    /// The inner packets printed so far (complete lines only).
    fn packets(&self) -> Vec<Inner> {
        let out = std::fs::read_to_string(self.dir.join("out")).unwrap_or_default();
        let complete = out.rfind('\n').map_or("", |end| &out[..end]);
        complete.lines().filter_map(Inner::parse).collect()
    }

    fn saw_marker(&self) -> bool {
        self.packets().iter().any(|p| p.dport == Some(MARKER_PORT))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The innermost IP packet of a captured frame, with tshark's verdicts.
struct Inner {
    line: String,
    v6: bool,
    tcp: bool,
    /// IPv4 header checksum (IPv6 has none).
    ip_status: Option<String>,
    /// TCP or UDP checksum.
    l4_status: String,
    tcp_len: u64,
    dport: Option<u16>,
}

impl Inner {
    /// One line of tshark's fields; `None` for frames without an inner
    /// TCP or UDP packet of their own (ARP, neighbour discovery, ICMP and
    /// the packet headers an ICMP error quotes).
    fn parse(line: &str) -> Option<Inner> {
        let f: Vec<&str> = line.split('\t').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or("");
        let protos: Vec<&str> = field(0).split(':').collect();
        if protos.iter().any(|p| p.starts_with("icmp")) {
            return None;
        }
        // Inside the encapsulation, if any.
        let from = protos.iter().rposition(|p| *p == "vxlan").unwrap_or(0);
        let l3 = from
            + protos[from..]
                .iter()
                .position(|p| *p == "ip" || *p == "ipv6")?;
        let l4 = protos[l3..]
            .iter()
            .position(|p| *p == "tcp" || *p == "udp")?;
        let tcp = protos[l3 + l4] == "tcp";
        let v6 = protos[l3] == "ipv6";
        // Occurrences run outer to inner: the inner header's is the last.
        let last = |i: usize| field(i).rsplit(',').next().unwrap_or("").to_string();
        Some(Inner {
            line: line.to_string(),
            v6,
            tcp,
            ip_status: (!v6).then(|| last(1)),
            l4_status: if tcp {
                tcp_status(last(3), &last(12), &last(14))
            } else {
                last(2)
            },
            tcp_len: if tcp { last(4).parse().unwrap_or(0) } else { 0 },
            dport: if tcp { None } else { last(5).parse().ok() },
        })
    }
}

/// tshark's verdict on a TCP checksum, except that a field of 0xffff where
/// 0x0000 was computed is good: both are zero in ones' complement, every
/// receiver takes either, and Linux's own software checksum
/// (`skb_checksum_help`) writes 0xffff for a computed zero whatever the
/// protocol, so the kernel's side of a path may send it (overlayd keeps
/// 0x0000 for TCP). tshark calls it bad after RFC 1624; it comes about once
/// in 65,536 packets.
fn tcp_status(status: String, field: &str, calculated: &str) -> String {
    if status == CSUM_BAD && field == "0xffff" && calculated == "0x0000" {
        CSUM_GOOD.to_string()
    } else {
        status
    }
}

/// What one capture saw, and what was wrong in it: every inner checksum
/// must be good.
struct Seen {
    /// TCP payload bytes, [IPv4, IPv6].
    tcp_bytes: [u64; 2],
    /// TCP segments and UDP datagrams, [IPv4, IPv6].
    tcp: [u64; 2],
    udp: [u64; 2],
    /// The packets without a good checksum, described.
    bad: Option<String>,
}

fn check(mut cap: Capture) -> Seen {
    let _ = cap.child.kill();
    let _ = cap.child.wait();
    let packets = cap.packets();
    let bad: Vec<&Inner> = packets
        .iter()
        .filter(|p| {
            p.l4_status != CSUM_GOOD || p.ip_status.as_deref().is_some_and(|s| s != CSUM_GOOD)
        })
        .collect();
    let mut seen = Seen {
        tcp_bytes: [0; 2],
        tcp: [0; 2],
        udp: [0; 2],
        bad: None,
    };
    if !bad.is_empty() {
        // The capture outlives the test, for whoever looks into it.
        let kept = std::env::temp_dir().join(format!(
            "ovl-offloads-{}-{}.pcapng",
            std::process::id(),
            cap.ifname
        ));
        let kept = match std::fs::copy(cap.dir.join("cap.pcapng"), &kept) {
            Ok(_) => kept.display().to_string(),
            Err(e) => format!("not kept: {e}"),
        };
        let lines: Vec<&str> = bad.iter().take(5).map(|p| p.line.as_str()).collect();
        seen.bad = Some(format!(
            "{}: {} of {} inner packets without a good checksum ({CSUM_BAD} is bad; \
             the capture: {kept}), e.g.\n{}\n{}",
            cap.what,
            bad.len(),
            packets.len(),
            lines.join("\n"),
            cap.stderr()
        ));
    }
    for p in &packets {
        let fam = usize::from(p.v6);
        if p.tcp {
            seen.tcp[fam] += 1;
            seen.tcp_bytes[fam] += p.tcp_len;
        } else {
            seen.udp[fam] += 1;
        }
    }
    seen
}

/// The MAC address of `ifname` in `ns`.
fn mac_of(ns: &Netns, ifname: &str) -> String {
    let path = format!("/sys/class/net/{ifname}/address");
    ns.ok(&["cat", &path]).trim().to_string()
}

/// UDP datagrams from `from` to port 6001 (one at a time) and 6002 (a
/// `UDP_SEGMENT` send of 8 each) of `to`, for both families; returns the
/// receiving sockets.
fn udp_burst(from: &Netns, to: &Netns, to4: &str, to6: &str) -> Vec<(UdpSocket, String)> {
    let mut rx = Vec::new();
    for (dst, any) in [
        (to4.to_string(), "0.0.0.0:0"),
        (format!("[{to6}]"), "[::]:0"),
    ] {
        let plain = udp_socket(from, any);
        let gso = udp_socket(from, any);
        set_udp_segment(&gso, 1000);
        for (port, sock, len, n) in [(6001, &plain, 1000, 20), (6002, &gso, 8000, 5)] {
            let at = format!("{dst}:{port}");
            let r = udp_socket(to, &at);
            r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let payload = vec![0x5au8; len];
            for _ in 0..n {
                sock.send_to(&payload, at.as_str()).expect("UDP send");
            }
            rx.push((r, at));
        }
    }
    rx
}

/// Each socket got at least one datagram of the burst, whole.
fn check_received(rx: Vec<(UdpSocket, String)>) {
    let mut buf = [0u8; 2048];
    for (r, at) in rx {
        let n = r
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("nothing arrived at {at}: {e}"));
        assert_eq!(n, 1000, "datagram at {at}");
        assert!(buf[..n].iter().all(|&b| b == 0x5a), "datagram at {at}");
    }
}

/// Sends marker datagrams from `from` to `to` until every capture of
/// `caps` has printed one (bounded).
fn mark(from: &Netns, to: &str, caps: &[&Capture]) {
    let s = udp_socket(from, "0.0.0.0:0");
    for _ in 0..100 {
        s.send_to(b"end of capture", (to, MARKER_PORT))
            .expect("marker send");
        std::thread::sleep(Duration::from_millis(100));
        if caps.iter().all(|c| c.saw_marker()) {
            return;
        }
    }
    panic!("the marker datagram to {to} never showed in every capture");
}

/// Inner checksums on the wire, verified by tshark, with overlayd in A, the
/// kernel's vxlan in B, and a namespace C routed behind A:
///
/// * A to B (overlayd's transmit: super-frames cut here, frames with
///   partial checksums completed here): captured on B's underlay veth
///   (`ub`), where tshark dissects the VXLAN packets as they arrive, and on
///   B's `vx0` (its GRO off), where the kernel hands up each decapsulated
///   packet with its bytes as overlayd wrote them. With the veth's offloads
///   on, a UDP GSO train crosses `ub` as one packet, of which tshark
///   dissects the first segment only; `vx0` sees every segment, so it must
///   see all the TCP bytes sent.
/// * B to C (overlayd's receive: segments merged into GSO frames written
///   to A's TAP with a partial checksum, other frames written as they
///   came): a capture on A's TAP would show the merged frames before any
///   checksum is computed, so A forwards them to C over a veth without
///   offloads, where the kernel segments them and completes each checksum
///   from the start and seed overlayd wrote; captured as C receives them.
///   C's end checks checksums itself (`rx off`), so a bad one would also
///   stall the transfer.
///
/// TCP (1 MB each, sha256-checked) and UDP (single datagrams and UDP GSO
/// sends), IPv4 and IPv6 inner, over an IPv4 underlay.
fn inner_checksums(tag: &str, veth: Veth) {
    let mut t = Topology::new(tag, false, veth);
    t.kernel_peer(true);
    t.b.ok(&["ethtool", "-K", "vx0", "gro", "off"]);
    t.overlayd(false, &[], false, true);
    let mut c = Netns::new(&format!("off{tag}c"));
    net::veth(&t.a, "ac", &c, "ca");
    t.a.ok(&[
        "ethtool", "-K", "ac", "tx", "off", "tso", "off", "gso", "off",
    ]);
    c.ok(&["ethtool", "-K", "ca", "rx", "off", "gro", "off"]);
    t.a.ip("link set ac mtu 1400");
    c.ip("link set ca mtu 1400");
    t.a.ip(&format!("addr add {A_BEHIND4}/{OVER4_PLEN} dev ac"));
    t.a.ip(&format!("addr add {A_BEHIND6}/{OVER6_PLEN} dev ac nodad"));
    c.ip(&format!("addr add {C4}/{OVER4_PLEN} dev ca"));
    c.ip(&format!("addr add {C6}/{OVER6_PLEN} dev ca nodad"));
    t.a.ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    t.a.ok(&["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"]);
    c.ip(&format!("route add default via {A_BEHIND4}"));
    c.ip(&format!("-6 route add default via {A_BEHIND6}"));
    t.b.ip(&format!("route add {C4}/32 via {A4}"));
    t.b.ip(&format!("-6 route add {C6}/128 via {A6}"));
    for addr in [B4, B6] {
        t.a.ping(addr, 2);
        c.ping(addr, 2);
    }

    let ov0 = mac_of(&t.a, "ov0");
    let ua = mac_of(&t.a, "ua");
    let ac = mac_of(&t.a, "ac");
    let wire = Capture::start(&t.b, "ub", &ua, "udp port 4789", "B's underlay (ub)");
    let decap = Capture::start(&t.b, "vx0", &ov0, "ip or ip6", "B's vx0");
    let behind = Capture::start(&c, "ca", &ac, "ip or ip6", "C, behind A (ca)");

    // A bad checksum stalls a transfer (the receiver drops the segment):
    // the captures' verdict comes first, it says more.
    let mut stalled = Vec::new();
    let mut try_transfer = |from: &mut Netns, to: &mut Netns, addr, port, seed| {
        let run = || transfer(from, to, addr, port, MB, seed);
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            stalled.push(e);
        }
    };
    try_transfer(&mut t.a, &mut t.b, B4, 5001, 7);
    try_transfer(&mut t.a, &mut t.b, B6, 5002, 8);
    let to_b = udp_burst(&t.a, &t.b, B4, B6);
    try_transfer(&mut t.b, &mut c, C4, 5003, 9);
    try_transfer(&mut t.b, &mut c, C6, 5004, 10);
    let to_c = udp_burst(&t.b, &c, C4, C6);
    mark(&t.a, B4, &[&wire, &decap]);
    mark(&t.b, C4, &[&behind]);
    let wire = check(wire);
    let decap = check(decap);
    let behind = check(behind);
    let bad: Vec<&str> = [&wire, &decap, &behind]
        .iter()
        .filter_map(|s| s.bad.as_deref())
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    if let Some(e) = stalled.into_iter().next() {
        std::panic::resume_unwind(e);
    }
    check_received(to_b);
    check_received(to_c);

    let (dev, _) = t.counters(0);
    assert!(
        dev["tx_gso"] > 0,
        "no super-frame left with UDP GSO: {dev:?}"
    );
    assert!(dev["rx_gso"] > 0, "no merged frame written: {dev:?}");

    let mb = MB as u64;
    for fam in 0..2 {
        assert!(wire.tcp[fam] > 0 && wire.udp[fam] > 0, "ub, family {fam}");
        assert!(decap.tcp_bytes[fam] >= mb, "vx0, family {fam}");
        assert!(decap.udp[fam] > 0, "vx0, family {fam}");
        assert!(behind.tcp_bytes[fam] >= mb, "ca, family {fam}");
        assert!(behind.udp[fam] > 0, "ca, family {fam}");
        if veth == Veth::Off {
            // Every segment crosses the veth on its own.
            assert!(wire.tcp_bytes[fam] >= mb, "ub, family {fam}");
        }
    }
}

#[test]
fn inner_checksums_right_veth_offloads_on() {
    if !net::can_run() {
        return;
    }
    inner_checksums("con", Veth::On);
}

#[test]
fn inner_checksums_right_veth_offloads_off() {
    if !net::can_run() {
        return;
    }
    inner_checksums("coff", Veth::Off);
}
