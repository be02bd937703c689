//! The plugin's decisions, properties, counters and reloads, with frames
//! built byte by byte.

use super::*;
use overlay_plugin_abi::{prop::ip_to_in6, Action, REQ_F_FLOOD};
use std::{net::Ipv6Addr, path::PathBuf};

const A: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 1];
const B: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 2];
const C: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 3];
const D: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 4];
const UNKNOWN: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 0x99];
const BCAST: [u8; 6] = [0xff; 6];

/// A serves DHCP for B; B and D live on the same host; C has no port.
const HOSTS: &str = r#"{
  "02:00:5e:10:00:01": { "ip": "198.51.100.11", "port": 4790,
                         "arp": "192.0.2.11", "ndp": "2001:db8::11" },
  "02:00:5e:10:00:02": { "ip": "198.51.100.12", "port": 4789,
                         "arp": "192.0.2.12", "ndp": "2001:db8::12",
                         "dhcp-proxy": "02:00:5e:10:00:01" },
  "02-00-5E-10-00-03": { "ip": "198.51.100.13" },
  "0200.5e10.0004": { "ip": "198.51.100.12", "port": 4789 }
}"#;

/// A directory of hosts files, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "overlay-files-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn string(s: &str) -> Vec<u8> {
    PropValue::Str(s.to_string()).encode()
}

fn uint(v: u64) -> Vec<u8> {
    PropValue::Uint(v).encode()
}

fn counter(dev: &FilesDevice, name: &str) -> u64 {
    PropValue::decode(
        overlay_plugin_abi::PropType::UINT,
        &dev.getprop(name).unwrap(),
    )
    .unwrap()
    .as_uint()
    .unwrap()
}

fn counters(dev: &FilesDevice) -> [u64; 5] {
    COUNTERS.map(|n| counter(dev, n))
}

/// A started instance on `HOSTS`, for IP and port destinations.
fn started(dir: &Dir) -> FilesDevice {
    let dev = Files.new_instance(dest::IP | dest::PORT, 42).unwrap();
    dev.setprop(CONFIG, &string(&dir.write("hosts.json", HOSTS)))
        .unwrap();
    dev.start().unwrap();
    dev
}

fn point(ip: &str, port: u16) -> Point {
    Point {
        mac: [0; 6],
        ip: ip_to_in6(ip.parse().unwrap()),
        port,
    }
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ask(dev: &FilesDevice, frame: &[u8], flood: bool) -> LookupAnswer {
    let flags = if flood { REQ_F_FLOOD } else { 0 };
    let req = LookupRequest::parse(42, frame, flags).unwrap();
    dev.lookup(&req, frame).unwrap()
}

fn arp(src: [u8; 6], op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = eth(BCAST, src, ETHERTYPE_ARP);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

/// An ICMPv6 message from `src` to `dst` (IPv6), after an IPv6 header
/// with `next` as next header and hop limit 255.
fn ipv6(src_mac: [u8; 6], dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let o = dst.octets();
    let mut f = eth(
        [0x33, 0x33, o[12], o[13], o[14], o[15]],
        src_mac,
        ETHERTYPE_IPV6,
    );
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 255]);
    f.extend_from_slice(&"2001:db8::11".parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&o);
    f.extend_from_slice(payload);
    f
}

/// A Neighbour Solicitation from A for `target`, with a source link-layer
/// address option.
fn ns(target: &str) -> Vec<u8> {
    let t: Ipv6Addr = target.parse().unwrap();
    let o = t.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    );
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&o);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&A);
    ipv6(A, group, 58, &icmp)
}

/// A UDP broadcast from `src`, ports `sport` to `dport`, with a
/// `len`-byte payload (a BOOTP request when the ports are 68 and 67).
fn udp_broadcast(src: [u8; 6], sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut f = eth(BCAST, src, ETHERTYPE_IPV4);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&((20 + 8 + len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[0, 0, 0, 0, 255, 255, 255, 255]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend(std::iter::repeat_n(0u8, len));
    f
}

fn unicast(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = eth(dst, src, ETHERTYPE_IPV4);
    f.extend_from_slice(&[0x45; 46]);
    f
}

#[test]
fn declaration_and_destination_kinds() {
    let info = Files.info();
    assert_eq!(info.modes, MODE_DYNAMIC);
    assert_eq!(info.dest, dest::IP | dest::PORT);
    let names: Vec<String> = info.properties.iter().map(|p| p.name.to_string()).collect();
    assert_eq!(
        names,
        [CONFIG, DEFAULT_PORT, MISSES, ARP, NDP, DHCP, DROPPED]
    );
    let config = &info.properties[0];
    assert_eq!(config.ptype, overlay_plugin_abi::PropType::STRING);
    assert_eq!(
        config.perm,
        perm::REQ | perm::READ | perm::WRITE | perm::RUNTIME
    );
    for p in &info.properties[2..] {
        assert_eq!(p.perm, perm::READ, "{}", p.name);
    }
    let ip_only = Files.new_instance(dest::IP, 1).unwrap();
    assert!(!ip_only
        .properties()
        .iter()
        .any(|p| p.name.as_str() == DEFAULT_PORT));
    for bad in [dest::ETHERNET, dest::ETHERNET | dest::IP, 0] {
        let e = Files.new_instance(bad, 1).err().unwrap();
        assert_eq!(e.errno, libc::ENOTSUP, "{bad:#x}");
    }
    let dev = Files.new_instance(dest::IP | dest::PORT, 1).unwrap();
    assert_eq!(dev.mode(), MODE_DYNAMIC);
    assert_eq!(dev.default_point().unwrap_err().errno, libc::ENOTSUP);
    assert_eq!(dev.getprop(DEFAULT_PORT).unwrap(), uint(4789));
}

#[test]
fn start_needs_a_readable_good_file() {
    let dir = Dir::new("start");
    let dev = Files.new_instance(dest::IP | dest::PORT, 1).unwrap();
    assert_eq!(dev.missing_required(), [CONFIG]);
    assert_eq!(dev.start().unwrap_err().errno, libc::EAGAIN);
    let e = dev.setprop(CONFIG, &string("hosts.json")).unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(e.msg.contains("not an absolute path"), "{}", e.msg);
    // Not started: the path is only kept, so the file may come later.
    let missing = dir.0.join("later.json").display().to_string();
    dev.setprop(CONFIG, &string(&missing)).unwrap();
    assert!(dev.missing_required().is_empty());
    let e = dev.start().unwrap_err();
    assert_eq!(e.errno, libc::ENOENT);
    assert!(
        e.msg.starts_with(&format!("{missing}: cannot read")),
        "{}",
        e.msg
    );
    let bad = dir.write(
        "bad.json",
        "{\n  \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\",\n    \"port\": 99999 }\n}\n",
    );
    dev.setprop(CONFIG, &string(&bad)).unwrap();
    let e = dev.start().unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert_eq!(
        e.msg,
        format!("{bad}:3:17: invalid port 99999: a port is from 1 to 65535")
    );
    // Lookups before a successful start are refused, not guessed.
    let frame = unicast(A, B);
    let req = LookupRequest::parse(1, &frame, 0).unwrap();
    assert_eq!(dev.lookup(&req, &frame).unwrap_err().errno, libc::EAGAIN);
    dev.setprop(CONFIG, &string(&dir.write("good.json", HOSTS)))
        .unwrap();
    dev.start().unwrap();
    assert_eq!(ask(&dev, &frame, false).action, Action::RESPOND);
}

#[test]
fn unicast_answers_and_misses() {
    let dir = Dir::new("unicast");
    let dev = started(&dir);
    let answer = ask(&dev, &unicast(A, B), false);
    assert_eq!(answer, LookupAnswer::respond(point("198.51.100.11", 4790)));
    // No port in the entry: the default port.
    let answer = ask(&dev, &unicast(C, B), false);
    assert_eq!(answer, LookupAnswer::respond(point("198.51.100.13", 4789)));
    // A VLAN tag does not change where a MAC lives.
    let mut tagged = unicast(B, A);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let answer = ask(&dev, &tagged, false);
    assert_eq!(answer, LookupAnswer::respond(point("198.51.100.12", 4789)));
    assert_eq!(counters(&dev), [0; 5]);
    let answer = ask(&dev, &unicast(UNKNOWN, A), true);
    assert_eq!(answer.action, Action::DROP);
    assert_eq!(counter(&dev, MISSES), 1);
    assert_eq!(counter(&dev, DROPPED), 0);
}

#[test]
fn default_port_and_ip_only_destinations() {
    let dir = Dir::new("ports");
    let dev = Files.new_instance(dest::IP | dest::PORT, 1).unwrap();
    dev.setprop(CONFIG, &string(&dir.write("h.json", HOSTS)))
        .unwrap();
    dev.setprop(DEFAULT_PORT, &uint(6081)).unwrap();
    assert_eq!(
        dev.setprop(DEFAULT_PORT, &uint(0)).unwrap_err().errno,
        libc::EINVAL
    );
    dev.start().unwrap();
    let answer = ask(&dev, &unicast(C, A), false);
    assert_eq!(answer, LookupAnswer::respond(point("198.51.100.13", 6081)));

    let ip_only = Files.new_instance(dest::IP, 1).unwrap();
    ip_only
        .setprop(CONFIG, &string(&dir.write("h.json", HOSTS)))
        .unwrap();
    ip_only.start().unwrap();
    let answer = ask(&ip_only, &unicast(A, B), false);
    assert_eq!(answer, LookupAnswer::respond(point("198.51.100.11", 0)));
}

#[test]
fn arp_is_answered_from_the_table_and_never_forwarded() {
    let dir = Dir::new("arp");
    let dev = started(&dir);
    let request = arp(A, 1, [192, 0, 2, 11], [192, 0, 2, 12]);
    let answer = ask(&dev, &request, true);
    assert_eq!(answer.action, Action::INJECT);
    let reply = answer.frame.as_slice();
    assert_eq!(&reply[0..6], &A);
    assert_eq!(&reply[6..12], &B);
    assert_eq!(&reply[20..22], &[0, 2]);
    assert_eq!(&reply[22..28], &B);
    assert_eq!(&reply[28..32], &[192, 0, 2, 12]);
    assert_eq!(counter(&dev, ARP), 1);
    // An address the table lacks, a reply, a gratuitous announcement:
    // dropped and counted, flood or not.
    for frame in [
        arp(A, 1, [192, 0, 2, 11], [192, 0, 2, 77]),
        arp(A, 2, [192, 0, 2, 11], [192, 0, 2, 12]),
        arp(A, 1, [192, 0, 2, 11], [192, 0, 2, 11]),
    ] {
        assert_eq!(ask(&dev, &frame, true).action, Action::DROP);
    }
    assert_eq!(counters(&dev), [0, 1, 0, 0, 3]);
}

#[test]
fn neighbour_solicitations_are_answered_other_nd_dropped() {
    let dir = Dir::new("ndp");
    let dev = started(&dir);
    let answer = ask(&dev, &ns("2001:db8::12"), true);
    assert_eq!(answer.action, Action::INJECT);
    let na = answer.frame.as_slice();
    assert_eq!(&na[0..6], &A);
    assert_eq!(&na[6..12], &B);
    assert_eq!(na[54], 136);
    assert_eq!(
        &na[14 + 8..14 + 24],
        &"2001:db8::12".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(&na[na.len() - 6..], &B);
    assert_eq!(counter(&dev, NDP), 1);
    // Unknown target: dropped.
    assert_eq!(ask(&dev, &ns("2001:db8::77"), true).action, Action::DROP);
    // An unsolicited advertisement to all nodes: consumed, even when flooding.
    let mut na_msg = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    na_msg.extend_from_slice(&"2001:db8::11".parse::<Ipv6Addr>().unwrap().octets());
    let unsolicited = ipv6(A, "ff02::1".parse().unwrap(), 58, &na_msg);
    assert_eq!(ask(&dev, &unsolicited, true).action, Action::DROP);
    assert_eq!(counters(&dev), [0, 0, 1, 0, 2]);
}

#[test]
fn group_traffic_floods_only_when_the_device_does() {
    let dir = Dir::new("flood");
    let dev = started(&dir);
    // MLD rides behind a hop-by-hop header: not Neighbour Discovery.
    let mld = ipv6(
        C,
        "ff02::16".parse().unwrap(),
        0,
        &[58, 0, 5, 2, 0, 0, 1, 0],
    );
    let mdns = {
        let mut f = eth([0x01, 0x00, 0x5e, 0, 0, 0xfb], C, ETHERTYPE_IPV4);
        f.extend_from_slice(&[0x45; 40]);
        f
    };
    let broadcast = udp_broadcast(C, 137, 137, 50);
    let everyone_but_c = LookupAnswer::replicate(vec![
        point("198.51.100.11", 4790),
        point("198.51.100.12", 4789),
    ]);
    for frame in [&mld, &mdns, &broadcast] {
        assert_eq!(ask(&dev, frame, true), everyone_but_c);
    }
    assert_eq!(counters(&dev), [0; 5]);
    for frame in [&mld, &mdns, &broadcast] {
        assert_eq!(ask(&dev, frame, false).action, Action::DROP);
    }
    assert_eq!(counter(&dev, DROPPED), 3);
    // B and D share a host: D's broadcast goes to A's and C's hosts only.
    let from_d = ask(&dev, &udp_broadcast(D, 137, 137, 50), true);
    assert_eq!(
        from_d,
        LookupAnswer::replicate(vec![
            point("198.51.100.11", 4790),
            point("198.51.100.13", 4789),
        ])
    );
    // A sender the file does not know: every destination.
    let from_unknown = ask(&dev, &udp_broadcast(UNKNOWN, 137, 137, 50), true);
    assert_eq!(from_unknown.points.len(), 3);
    assert_eq!(counter(&dev, MISSES), 0);
}

#[test]
fn flood_with_a_single_host_has_nowhere_to_go() {
    let dir = Dir::new("alone");
    let dev = Files.new_instance(dest::IP | dest::PORT, 1).unwrap();
    let only = r#"{ "02:00:5e:10:00:01": { "ip": "198.51.100.11" } }"#;
    dev.setprop(CONFIG, &string(&dir.write("one.json", only)))
        .unwrap();
    dev.start().unwrap();
    let answer = ask(&dev, &udp_broadcast(A, 137, 137, 50), true);
    assert_eq!(answer.action, Action::DROP);
    assert_eq!(counter(&dev, DROPPED), 1);
}

#[test]
fn dhcp_requests_go_to_the_hosts_server() {
    let dir = Dir::new("dhcp");
    let dev = started(&dir);
    let request = udp_broadcast(B, 68, 67, 300);
    let answer = ask(&dev, &request, false);
    assert_eq!(answer.action, Action::RESEND);
    assert_eq!(&answer.frame[0..6], &A);
    assert_eq!(&answer.frame[6..], &request[6..]);
    assert_eq!(counter(&dev, DHCP), 1);
    // Other broadcast from B is group traffic.
    assert_eq!(
        ask(&dev, &udp_broadcast(B, 137, 137, 50), true).action,
        Action::REPLICATE
    );
    // A DHCP request too short for BOOTP is dropped.
    let short = udp_broadcast(B, 68, 67, 100);
    assert_eq!(ask(&dev, &short, true).action, Action::DROP);
    assert_eq!(counter(&dev, DROPPED), 1);
    // C has no dhcp-proxy: its DHCP is ordinary broadcast.
    let from_c = udp_broadcast(C, 68, 67, 300);
    assert_eq!(ask(&dev, &from_c, true).action, Action::REPLICATE);
    assert_eq!(ask(&dev, &from_c, false).action, Action::DROP);
    assert_eq!(counters(&dev), [0, 0, 0, 1, 2]);
}

#[test]
fn counters_are_read_only() {
    let dir = Dir::new("counters");
    let dev = started(&dir);
    ask(&dev, &unicast(UNKNOWN, A), false);
    ask(&dev, &unicast(UNKNOWN, A), false);
    assert_eq!(dev.getprop(MISSES).unwrap(), uint(2));
    let e = dev.setprop(MISSES, &uint(0)).unwrap_err();
    assert_eq!(e.errno, libc::EPERM);
    assert_eq!(counter(&dev, MISSES), 2);
    // Counters live as long as the instance, across stop and start.
    dev.stop();
    dev.start().unwrap();
    assert_eq!(counter(&dev, MISSES), 2);
    assert_eq!(dev.getprop("files/nosuch").unwrap_err().errno, libc::ENOENT);
}

#[test]
fn reload_reports_exactly_the_changed_macs() {
    let dir = Dir::new("reload");
    let dev = started(&dir);
    let first = dev.getprop(CONFIG).unwrap();
    assert!(dev.take_stale().is_empty());
    // The same file again: nothing changed.
    dev.setprop(CONFIG, &first).unwrap();
    assert!(dev.take_stale().is_empty());

    // A moves, B only gains an arp address, C is removed, D keeps its
    // destination with the port now implied, E is added.
    let e_mac = [2, 0, 0x5e, 0x10, 0, 5];
    let second = dir.write(
        "second.json",
        r#"{
  "02:00:5e:10:00:01": { "ip": "198.51.100.21", "port": 4790, "arp": "192.0.2.11" },
  "02:00:5e:10:00:02": { "ip": "198.51.100.12", "arp": "192.0.2.12", "ndp": "2001:db8::12",
                         "dhcp-proxy": "02:00:5e:10:00:01" },
  "02:00:5e:10:00:04": { "ip": "198.51.100.12" },
  "02:00:5e:10:00:05": { "ip": "198.51.100.15" }
}"#,
    );
    dev.setprop(CONFIG, &string(&second)).unwrap();
    assert_eq!(dev.getprop(CONFIG).unwrap(), string(&second));
    assert_eq!(dev.take_stale(), vec![A, C, e_mac]);
    assert!(dev.take_stale().is_empty(), "reported once");
    assert_eq!(
        ask(&dev, &unicast(A, B), false),
        LookupAnswer::respond(point("198.51.100.21", 4790))
    );
    assert_eq!(ask(&dev, &unicast(C, B), false).action, Action::DROP);

    // A bad file: the setprop fails naming it, the old table and value stay.
    let bad = dir.write(
        "bad.json",
        "{\n  \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.21\",\n  \"mtu\": 1400 }\n}",
    );
    let e = dev.setprop(CONFIG, &string(&bad)).unwrap_err();
    assert_eq!(e.errno, libc::EINVAL);
    assert!(
        e.msg
            .starts_with(&format!("{bad}:3:7: unknown field `mtu`")),
        "{}",
        e.msg
    );
    let missing = dir.0.join("gone.json").display().to_string();
    assert_eq!(
        dev.setprop(CONFIG, &string(&missing)).unwrap_err().errno,
        libc::ENOENT
    );
    assert_eq!(dev.getprop(CONFIG).unwrap(), string(&second));
    assert!(dev.take_stale().is_empty());
    assert_eq!(
        ask(&dev, &unicast(A, B), false),
        LookupAnswer::respond(point("198.51.100.21", 4790))
    );
}

#[test]
fn default_port_changes_while_active_move_only_portless_entries() {
    let dir = Dir::new("port-reload");
    let dev = started(&dir);
    assert_eq!(
        ask(&dev, &unicast(C, A), false),
        LookupAnswer::respond(point("198.51.100.13", 4789))
    );
    // C is the only entry without a port: only it changes.
    dev.setprop(DEFAULT_PORT, &uint(6081)).unwrap();
    assert_eq!(dev.getprop(DEFAULT_PORT).unwrap(), uint(6081));
    assert_eq!(dev.take_stale(), vec![C]);
    assert_eq!(
        ask(&dev, &unicast(C, A), false),
        LookupAnswer::respond(point("198.51.100.13", 6081))
    );
    assert_eq!(
        ask(&dev, &unicast(A, B), false),
        LookupAnswer::respond(point("198.51.100.11", 4790))
    );
    // The same port again changes nothing.
    dev.setprop(DEFAULT_PORT, &uint(6081)).unwrap();
    assert!(dev.take_stale().is_empty());

    // The file has gone bad since: the port stays as it was, and so does
    // the table.
    std::fs::write(dir.0.join("hosts.json"), "{ \"oops\" }").unwrap();
    let e = dev.setprop(DEFAULT_PORT, &uint(4789)).unwrap_err();
    assert_eq!(e.errno, libc::EINVAL, "{}", e.msg);
    assert!(e.msg.contains("hosts.json:1:"), "{}", e.msg);
    assert_eq!(dev.getprop(DEFAULT_PORT).unwrap(), uint(6081));
    assert!(dev.take_stale().is_empty());
    assert_eq!(
        ask(&dev, &unicast(C, A), false),
        LookupAnswer::respond(point("198.51.100.13", 6081))
    );
    // Out of range: refused before the file is read.
    assert_eq!(
        dev.setprop(DEFAULT_PORT, &uint(70000)).unwrap_err().errno,
        libc::EINVAL
    );
}

#[test]
fn stop_frees_the_table_and_start_rereads_the_file() {
    let dir = Dir::new("restart");
    let dev = started(&dir);
    dev.stop();
    let frame = unicast(A, B);
    let req = LookupRequest::parse(1, &frame, 0).unwrap();
    assert!(dev.lookup(&req, &frame).is_err());
    // Edited while stopped: start reads the new contents, and reports
    // nothing stale (the daemon forgot the stopped device's cache).
    dir.write(
        "hosts.json",
        r#"{ "02:00:5e:10:00:01": { "ip": "198.51.100.31" } }"#,
    );
    dev.start().unwrap();
    assert_eq!(
        ask(&dev, &frame, false),
        LookupAnswer::respond(point("198.51.100.31", 4789))
    );
    assert!(dev.take_stale().is_empty());
}

#[test]
fn lookups_during_reloads_see_one_table_or_the_other() {
    let dir = Dir::new("race");
    let dev = Arc::new(Files.new_instance(dest::IP | dest::PORT, 1).unwrap());
    // Both files send every MAC to one host, a different one in each, so
    // a lookup that mixed them would answer with a host in neither.
    let one = dir.write(
        "one.json",
        r#"{ "02:00:5e:10:00:01": { "ip": "198.51.100.1" },
        "02:00:5e:10:00:02": { "ip": "198.51.100.1" } }"#,
    );
    let two = dir.write(
        "two.json",
        r#"{ "02:00:5e:10:00:01": { "ip": "198.51.100.2" },
        "02:00:5e:10:00:02": { "ip": "198.51.100.2" } }"#,
    );
    dev.setprop(CONFIG, &string(&one)).unwrap();
    dev.start().unwrap();
    let hosts = [point("198.51.100.1", 4789), point("198.51.100.2", 4789)];
    let reader = {
        let dev = Arc::clone(&dev);
        std::thread::spawn(move || {
            let mut seen = [0u32; 2];
            for _ in 0..2000 {
                // A broadcast from an unknown sender lists every host.
                let a = ask(&dev, &udp_broadcast(UNKNOWN, 137, 137, 50), true);
                assert_eq!(a.points.len(), 1, "{a:?}");
                let i = hosts.iter().position(|h| *h == a.points[0]).unwrap();
                seen[i] += 1;
            }
            seen
        })
    };
    for i in 0..200 {
        let path = if i % 2 == 0 { &two } else { &one };
        dev.setprop(CONFIG, &string(path)).unwrap();
    }
    let seen = reader.join().unwrap();
    assert_eq!(seen.iter().sum::<u32>(), 2000);
}
