//! End to end against the Linux kernel's vxlan: overlayd in namespace A,
//! a kernel vxlan device in namespace B, a veth pair as the underlay.
//! Underlay 198.51.100.0/24 (or 2001:db8:100::/64), overlay 192.0.2.0/24;
//! every address lives only inside the test's namespaces.

use nlproto::client::Client;
use overlay_tests::proto::stats;
use overlay_tests::{
    net::{self, Netns},
    Daemon, TempDir,
};

const VNI: u32 = 42;

struct Topology {
    // Field order is drop order: the daemon stops before its namespace goes.
    daemon: Daemon,
    a: Netns,
    b: Netns,
    a_under: &'static str,
    b_under: &'static str,
}

impl Topology {
    /// A and B joined by a veth pair (`ua` in A, `ub` in B) with underlay
    /// addresses, overlayd running in A, nothing created yet.
    fn new(tag: &str, v6: bool) -> Topology {
        let a = Netns::new(&format!("{tag}a"));
        let b = Netns::new(&format!("{tag}b"));
        net::veth(&a, "ua", &b, "ub");
        let (a_under, b_under, plen) = if v6 {
            ("2001:db8:100::1", "2001:db8:100::2", 64)
        } else {
            ("198.51.100.1", "198.51.100.2", 24)
        };
        // A veth hands the kernel's tunnel packets over with the inner
        // checksum left for a NIC to finish, and no NIC ever does: a reader
        // of the UDP payload sees only the pseudo-header sum. A real
        // underlay NIC completes it; on the veth, B must complete it itself.
        b.ok(&["ethtool", "-K", "ub", "tx", "off"]);
        a.ip(&format!("addr add {a_under}/{plen} dev ua nodad"));
        b.ip(&format!("addr add {b_under}/{plen} dev ub nodad"));
        let daemon = Daemon::start_in_netns(&a.name);
        Topology {
            daemon,
            a,
            b,
            a_under,
            b_under,
        }
    }

    /// A kernel vxlan device in B for `vni`, holding `addr/24`.
    fn kernel_vxlan(&self, ifname: &str, vni: u32, addr: &str) {
        self.b.ip(&format!(
            "link add {ifname} type vxlan id {vni} dstport 4789 remote {} local {} dev ub",
            self.a_under, self.b_under
        ));
        self.b.ip(&format!("link set {ifname} mtu 1400"));
        // No IPv6 chatter (router solicitations, MLD) of its own: the
        // tests count what reaches each overlay device.
        let knob = format!("net.ipv6.conf.{ifname}.disable_ipv6=1");
        self.b.ok(&["sysctl", "-q", "-w", &knob]);
        self.b.ip(&format!("addr add {addr}/24 dev {ifname}"));
        self.b.ip(&format!("link set {ifname} up"));
    }

    /// An overlayd device for `vni`, created and activated with overlayctl.
    fn overlay(&self, link: &str, vni: u32, extra: &[&str]) {
        let mut props = format!(
            "vxlan/listen_ip={},direct/dest_ip={},direct/dest_port=4789",
            self.a_under, self.b_under
        );
        for e in extra {
            props.push(',');
            props.push_str(e);
        }
        let vni = vni.to_string();
        self.daemon.ctl_ok(&[
            "create", "-e", "vxlan", "-s", "direct", "-v", &vni, "-p", &props, link,
        ]);
        self.daemon.ctl_ok(&["activate", link]);
    }

    fn client(&self) -> Client {
        self.daemon.client()
    }
}

fn ping_fails(ns: &Netns, addr: &str) {
    let out = ns.exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", addr]);
    assert!(
        !out.status.success(),
        "ping {addr} from {} got an answer",
        ns.name
    );
}

/// 20 MB each way over TCP, checked by sha256 at the far end.
fn transfer_both_ways(t: &mut Topology, a_addr: &str, b_addr: &str) {
    let dir = TempDir::new("xfer");
    let (src_a, dst_b) = (dir.join("a.bin"), dir.join("a.out"));
    let (src_b, dst_a) = (dir.join("b.bin"), dir.join("b.out"));
    net::random_file(&src_a, 20 << 20, 1);
    net::random_file(&src_b, 20 << 20, 2);
    net::tcp_transfer(&mut t.a, &mut t.b, b_addr, 5001, &src_a, &dst_b);
    assert_eq!(net::sha256(&src_a), net::sha256(&dst_b), "A to B");
    net::tcp_transfer(&mut t.b, &mut t.a, a_addr, 5002, &src_b, &dst_a);
    assert_eq!(net::sha256(&src_b), net::sha256(&dst_a), "B to A");
}

#[test]
fn tap_backend_with_kernel_vxlan() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("tap", false);
    t.kernel_vxlan("vx0", VNI, "192.0.2.2");
    t.overlay("ov0", VNI, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov0");
    t.a.ping("192.0.2.2", 2);
    t.b.ping("192.0.2.1", 2);
    transfer_both_ways(&mut t, "192.0.2.1", "192.0.2.2");
    let (dev, mux) = stats(&mut t.client(), "ov0");
    assert!(dev["tx_packets"] > 10_000, "{dev:?}");
    assert!(dev["rx_packets"] > 10_000, "{dev:?}");
    assert_eq!(mux["drop_unknown_vnetid"], 0, "{mux:?}");
    // Deleting the active device removes its TAP.
    t.daemon.ctl_ok(&["delete", "ov0"]);
    assert!(!t.a.exec(&["ip", "link", "show", "ov0"]).status.success());
}

#[test]
fn afpacket_backend_with_kernel_vxlan() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("afp", false);
    t.kernel_vxlan("vx0", VNI, "192.0.2.2");
    // The overlay's host is the far end of a veth inside A; overlayd reads
    // and writes the near end. Default offloads stay on: partial checksums
    // must be completed by the backend.
    t.a.ip("link add host0 type veth peer name tap0");
    t.a.ip("link set host0 mtu 1400");
    t.a.ip("link set tap0 mtu 1400");
    t.a.ip("link set host0 up");
    t.a.ip("link set tap0 up");
    t.a.ip("addr add 192.0.2.1/24 dev host0");
    t.overlay("ov0", VNI, &["backend=afpacket", "ifname=tap0"]);
    t.a.ping("192.0.2.2", 2);
    t.b.ping("192.0.2.1", 2);
    transfer_both_ways(&mut t, "192.0.2.1", "192.0.2.2");
}

#[test]
fn ipv6_underlay() {
    if !net::can_run() {
        return;
    }
    let mut t = Topology::new("v6", true);
    t.kernel_vxlan("vx0", VNI, "192.0.2.2");
    t.overlay("ov0", VNI, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov0");
    t.a.ping("192.0.2.2", 2);
    t.b.ping("192.0.2.1", 2);
    transfer_both_ways(&mut t, "192.0.2.1", "192.0.2.2");
}

#[test]
fn two_vnis_share_one_mux_and_stay_apart() {
    if !net::can_run() {
        return;
    }
    let t = Topology::new("vni", false);
    t.kernel_vxlan("vx42", 42, "192.0.2.2");
    t.kernel_vxlan("vx43", 43, "203.0.113.2");
    t.overlay("ov42", 42, &[]);
    t.overlay("ov43", 43, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov42");
    t.a.ip("addr add 203.0.113.1/24 dev ov43");
    let mut c = t.client();
    let (_, m42) = stats(&mut c, "ov42");
    let (_, m43) = stats(&mut c, "ov43");
    assert_eq!(m42.len(), m43.len());

    let before = stats(&mut c, "ov43").0["rx_packets"];
    t.b.ping("192.0.2.1", 2);
    assert_eq!(
        stats(&mut c, "ov43").0["rx_packets"],
        before,
        "VNI 42 reached ov43"
    );
    assert!(stats(&mut c, "ov42").0["rx_packets"] > 0);

    let before = stats(&mut c, "ov42").0["rx_packets"];
    t.b.ping("203.0.113.1", 2);
    assert_eq!(
        stats(&mut c, "ov42").0["rx_packets"],
        before,
        "VNI 43 reached ov42"
    );
    // Both ends share one underlay socket.
    let out = t.daemon.ctl_ok(&["show", "-s", "-j"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let endpoints: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["mux"]["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints, ["udp 198.51.100.1:4789"; 2]);
}

#[test]
fn unknown_vni_and_malformed_packets_are_counted_and_forwarding_goes_on() {
    if !net::can_run() {
        return;
    }
    let t = Topology::new("bad", false);
    t.kernel_vxlan("vx0", VNI, "192.0.2.2");
    t.kernel_vxlan("vx99", 99, "203.0.113.2");
    t.overlay("ov0", VNI, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov0");
    t.a.ping("192.0.2.2", 2);
    let mut c = t.client();
    let (_, before) = stats(&mut c, "ov0");

    // VNI 99: nobody in A; the ARP requests the kernel sends are dropped.
    ping_fails(&t.b, "203.0.113.1");
    // A header without the I flag, a packet shorter than the header, and a
    // header with nothing after it.
    let dst = format!("UDP4:{}:4789", t.a_under);
    // (Octal escapes: the shell's printf has no \x.)
    for payload in [
        "\\000\\000\\000\\000\\000\\000\\052\\000garbage",
        "\\010\\000",
        "\\010\\000\\000\\000\\000\\000\\052\\000",
    ] {
        let script = format!("printf '{payload}' | socat -u - {dst}");
        t.b.ok(&["timeout", "5", "sh", "-c", &script]);
    }
    t.a.ping("192.0.2.2", 2);
    let (_, after) = stats(&mut c, "ov0");
    assert!(
        after["drop_unknown_vnetid"] > before["drop_unknown_vnetid"],
        "{after:?}"
    );
    assert!(
        after["drop_bad_header"] >= before["drop_bad_header"] + 2,
        "{after:?}"
    );
    assert!(after["drop_short"] > before["drop_short"], "{after:?}");
}

#[test]
fn mtu_follows_the_property_and_oversized_frames_are_dropped() {
    if !net::can_run() {
        return;
    }
    let t = Topology::new("mtu", false);
    t.kernel_vxlan("vx0", VNI, "192.0.2.2");
    t.overlay("ov0", VNI, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov0");
    t.daemon.ctl_ok(&["prop-set", "ov0", "mtu=1300"]);
    let link = t.a.ok(&["ip", "link", "show", "ov0"]);
    assert!(link.contains("mtu 1300"), "{link}");
    t.a.ping("192.0.2.2", 2);
    // Raise the TAP's MTU behind the daemon's back: frames over the
    // device MTU now reach the daemon and are dropped and counted.
    t.a.ip("link set ov0 mtu 1400");
    let mut c = t.client();
    let before = stats(&mut c, "ov0").0["drop_mtu"];
    let out = t.a.exec(&[
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        "1350",
        "192.0.2.2",
    ]);
    assert!(!out.status.success());
    assert!(stats(&mut c, "ov0").0["drop_mtu"] >= before + 2);
}

#[test]
fn vnetid_change_while_active_moves_the_traffic() {
    if !net::can_run() {
        return;
    }
    let t = Topology::new("rekey", false);
    t.kernel_vxlan("vx42", 42, "192.0.2.2");
    t.kernel_vxlan("vx43", 43, "203.0.113.2");
    t.overlay("ov0", 42, &[]);
    t.a.ip("addr add 192.0.2.1/24 dev ov0");
    t.a.ip("addr add 203.0.113.1/24 dev ov0");
    t.a.ping("192.0.2.2", 2);
    t.daemon.ctl_ok(&["prop-set", "ov0", "vnetid=43"]);
    // After the change every frame carries VNI 43: B's vx43 answers, vx42
    // no longer hears anything.
    t.a.ok(&["ip", "neigh", "flush", "all"]);
    let before42 = t.b.if_counter("vx42", "rx_packets");
    t.a.ping("203.0.113.2", 2);
    ping_fails(&t.a, "192.0.2.2");
    assert_eq!(t.b.if_counter("vx42", "rx_packets"), before42);
}
