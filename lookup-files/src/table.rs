//! The hosts file: its JSON format, the checks on every value, and the
//! table lookups are answered from.
//!
//! Every value has its own type whose `Deserialize` checks it, so that a
//! bad value is reported by `serde_json` itself, at the line and column
//! where it stands.

use overlay_plugin_abi::{
    dest,
    prop::{check_unicast_endpoint, ip_to_in6},
    Mac, Point,
};
use serde::{
    de::{self, MapAccess, Visitor},
    Deserialize, Deserializer,
};
use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

/// An Ethernet address of a host (never a group address or all zeros),
/// in any spelling [`Mac::parse`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostMac(pub Mac);

impl HostMac {
    /// Parses `s` as [`Mac::parse`] does, refusing the addresses no host
    /// has.
    pub fn parse(s: &str) -> Result<HostMac, String> {
        let mac = Mac::parse(s)?;
        if mac.is_group() {
            return Err(format!(
                "invalid MAC address \"{s}\": {mac} is a group (multicast) address; \
                 entries are for the unicast address of a host"
            ));
        }
        if mac.is_zero() {
            return Err(format!(
                "invalid MAC address \"{s}\": the all-zero address belongs to no host"
            ));
        }
        Ok(HostMac(mac))
    }
}

/// A `Deserialize` for a string-typed value checked by `parse`.
macro_rules! string_value {
    ($ty:ty, $expecting:literal, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        parse(s).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

string_value!(
    HostMac,
    "a MAC address string such as \"02:00:5e:10:00:01\"",
    HostMac::parse
);

/// The underlay address of the host owning a MAC (`ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnderlayIp(pub IpAddr);

string_value!(UnderlayIp, "an IPv4 or IPv6 address string", |s: &str| {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| format!("invalid underlay address \"{s}\": write an IPv4 or IPv6 address"))?;
    if ip.is_unspecified() {
        return Err(format!(
            "invalid underlay address \"{s}\": the unspecified address reaches no host"
        ));
    }
    check_unicast_endpoint(ip).map_err(|e| format!("invalid underlay address \"{s}\": {e}"))?;
    Ok(UnderlayIp(ip))
});

/// The overlay IPv4 address of a MAC, answered to ARP (`arp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpAddr(pub Ipv4Addr);

string_value!(ArpAddr, "an IPv4 address string", |s: &str| {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| format!("invalid arp address \"{s}\": write an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(format!(
            "invalid arp address \"{s}\": ARP is answered only for a host's unicast address"
        ));
    }
    Ok(ArpAddr(ip))
});

/// The overlay IPv6 address of a MAC, answered to Neighbour Solicitations
/// (`ndp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NdpAddr(pub Ipv6Addr);

string_value!(NdpAddr, "an IPv6 address string", |s: &str| {
    let ip: Ipv6Addr = s
        .parse()
        .map_err(|_| format!("invalid ndp address \"{s}\": write an IPv6 address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || ip.to_ipv4_mapped().is_some()
    {
        return Err(format!(
            "invalid ndp address \"{s}\": Neighbour Solicitations are answered only for a \
             host's unicast address (not multicast, loopback, unspecified or IPv4-mapped)"
        ));
    }
    Ok(NdpAddr(ip))
});

/// An underlay UDP port, 1 to 65535 (`port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number from 1 to 65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                match u16::try_from(v) {
                    Ok(p) if p != 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!(
                        "invalid port {v}: a port is from 1 to 65535"
                    ))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::custom(format!(
                    "invalid port {v}: a port is from 1 to 65535"
                )))
            }
        }
        d.deserialize_u64(V)
    }
}

/// One MAC's entry as the file spells it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Underlay address of the host owning the MAC.
    pub ip: UnderlayIp,
    /// Underlay UDP port; the instance's default port when absent.
    #[serde(default)]
    pub port: Option<Port>,
    /// Overlay IPv4 address, for proxy ARP.
    #[serde(default)]
    pub arp: Option<ArpAddr>,
    /// Overlay IPv6 address, for proxy NDP.
    #[serde(default)]
    pub ndp: Option<NdpAddr>,
    /// The DHCP server this host's broadcast DHCP requests go to.
    #[serde(default, rename = "dhcp-proxy")]
    pub dhcp_proxy: Option<HostMac>,
}

/// The entries of a file, in file order, with every key normalised, as
/// parsed before the instance's destination kinds are applied.
struct Entries(Vec<(Mac, Entry)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object whose keys are MAC addresses and whose values are entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries: Vec<(Mac, Entry)> = Vec::new();
                let mut seen: HashMap<Mac, ()> = HashMap::new();
                let mut arp: HashMap<Ipv4Addr, Mac> = HashMap::new();
                let mut ndp: HashMap<Ipv6Addr, Mac> = HashMap::new();
                while let Some(HostMac(mac)) = map.next_key::<HostMac>()? {
                    if seen.insert(mac, ()).is_some() {
                        return Err(de::Error::custom(format!(
                            "duplicate entry for MAC {mac}: an earlier key spells the same \
                             address; keep one entry per MAC"
                        )));
                    }
                    let entry: Entry = map.next_value()?;
                    if let Some(ArpAddr(ip)) = entry.arp {
                        if let Some(other) = arp.insert(ip, mac) {
                            return Err(de::Error::custom(format!(
                                "arp address {ip} of {mac} is already the arp address of {other}; \
                                 an address is answered with one MAC"
                            )));
                        }
                    }
                    if let Some(NdpAddr(ip)) = entry.ndp {
                        if let Some(other) = ndp.insert(ip, mac) {
                            return Err(de::Error::custom(format!(
                                "ndp address {ip} of {mac} is already the ndp address of {other}; \
                                 an address is answered with one MAC"
                            )));
                        }
                    }
                    entries.push((mac, entry));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// A file that could not be used, with the errno `start` or `setprop`
/// returns for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// `ENOENT` for a missing file, `EINVAL` otherwise.
    pub errno: i32,
    /// `path: problem`, or `path:line:column: problem` for a parse error.
    pub msg: String,
}

/// What lookups are answered from: every entry with its underlay
/// destination worked out, and the indexes the proxies use.
#[derive(Debug)]
pub struct Table {
    /// The entries, by MAC.
    entries: HashMap<Mac, (Entry, Point)>,
    /// MAC by overlay IPv4 address.
    arp: HashMap<Ipv4Addr, Mac>,
    /// MAC by overlay IPv6 address.
    ndp: HashMap<Ipv6Addr, Mac>,
    /// Every distinct underlay destination, in file order.
    points: Vec<Point>,
}

impl Table {
    /// Reads and parses the file at `path`; `dest` (the encapsulation's
    /// destination kinds) and `default_port` decide each entry's point.
    pub fn load(path: &Path, dest: u32, default_port: u16) -> Result<Table, LoadError> {
        let bytes = std::fs::read(path).map_err(|e| LoadError {
            errno: if e.kind() == std::io::ErrorKind::NotFound {
                libc::ENOENT
            } else {
                libc::EINVAL
            },
            msg: format!("{}: cannot read: {e}", path.display()),
        })?;
        Table::parse(&bytes, dest, default_port).map_err(|e| LoadError {
            errno: libc::EINVAL,
            msg: format!("{}:{e}", path.display()),
        })
    }

    /// Parses a file's contents. The error is `line:column: problem`.
    pub fn parse(bytes: &[u8], dest: u32, default_port: u16) -> Result<Table, String> {
        let entries: Entries = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json writes "<problem> at line L column C"; the position
            // goes in front, as compilers write it.
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let problem = full.strip_suffix(&suffix).unwrap_or(&full);
            // Column 0 (nothing read yet on the line) reads as 1 in editors.
            format!("{}:{}: {problem}", e.line(), e.column().max(1))
        })?;
        Ok(Table::build(entries.0, dest, default_port))
    }

    fn build(list: Vec<(Mac, Entry)>, dest: u32, default_port: u16) -> Table {
        let mut table = Table {
            entries: HashMap::with_capacity(list.len()),
            arp: HashMap::new(),
            ndp: HashMap::new(),
            points: Vec::new(),
        };
        for (mac, entry) in list {
            let mut point = Point {
                mac: [0; 6],
                ip: [0; 16],
                port: 0,
            };
            if dest & dest::IP != 0 {
                point.ip = ip_to_in6(entry.ip.0);
            }
            if dest & dest::PORT != 0 {
                point.port = entry.port.map_or(default_port, |p| p.0);
            }
            if !table.points.contains(&point) {
                table.points.push(point);
            }
            if let Some(ArpAddr(ip)) = entry.arp {
                table.arp.insert(ip, mac);
            }
            if let Some(NdpAddr(ip)) = entry.ndp {
                table.ndp.insert(ip, mac);
            }
            table.entries.insert(mac, (entry, point));
        }
        table
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `mac`.
    pub fn entry(&self, mac: &[u8; 6]) -> Option<&Entry> {
        self.entries.get(&Mac(*mac)).map(|(e, _)| e)
    }

    /// Where frames to `mac` go.
    pub fn point(&self, mac: &[u8; 6]) -> Option<Point> {
        self.entries.get(&Mac(*mac)).map(|(_, p)| *p)
    }

    /// The MAC whose overlay IPv4 address is `ip`.
    pub fn arp(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.arp.get(&ip).map(|m| m.0)
    }

    /// The MAC whose overlay IPv6 address is `ip`.
    pub fn ndp(&self, ip: Ipv6Addr) -> Option<[u8; 6]> {
        self.ndp.get(&ip).map(|m| m.0)
    }

    /// The DHCP server of the host owning `client`.
    pub fn dhcp_server(&self, client: [u8; 6]) -> Option<[u8; 6]> {
        self.entry(&client)?.dhcp_proxy.map(|m| m.0 .0)
    }

    /// Every distinct underlay destination, in file order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// The MACs whose point differs between `self` and `new`: changed,
    /// removed or added, sorted.
    pub fn changed(&self, new: &Table) -> Vec<[u8; 6]> {
        let mut out: Vec<[u8; 6]> = self
            .entries
            .iter()
            .filter(|(mac, (_, p))| new.point(&mac.0) != Some(*p))
            .map(|(mac, _)| mac.0)
            .chain(
                new.entries
                    .keys()
                    .filter(|mac| !self.entries.contains_key(mac))
                    .map(|mac| mac.0),
            )
            .collect();
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: u32 = dest::IP | dest::PORT;

    fn parse(text: &str) -> Result<Table, String> {
        Table::parse(text.as_bytes(), BOTH, 4789)
    }

    const GOOD: &str = r#"{
  "02:00:5e:10:00:01": { "ip": "198.51.100.11", "port": 4790,
                         "arp": "192.0.2.11", "ndp": "2001:db8::11" },
  "2:0:5E:10:0:2": { "ip": "198.51.100.12",
                     "arp": "192.0.2.12", "ndp": "2001:db8::12",
                     "dhcp-proxy": "02-00-5e-10-00-01" },
  "0200.5e10.0003": { "ip": "2001:db8:ffff::13", "port": 4789 },
  "02005E100004": { "ip": "198.51.100.12" }
}"#;

    const A: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 1];
    const B: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 2];
    const C: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 3];
    const D: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 4];

    fn in6(s: &str) -> [u8; 16] {
        ip_to_in6(s.parse().unwrap())
    }

    #[test]
    fn good_file() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.len(), 4);
        let a = t.point(&A).unwrap();
        assert_eq!((a.ip, a.port), (in6("198.51.100.11"), 4790));
        let b = t.point(&B).unwrap();
        assert_eq!((b.ip, b.port), (in6("198.51.100.12"), 4789), "default port");
        assert_eq!(t.point(&C).unwrap().ip, in6("2001:db8:ffff::13"));
        assert_eq!(t.arp("192.0.2.12".parse().unwrap()), Some(B));
        assert_eq!(t.ndp("2001:db8::11".parse().unwrap()), Some(A));
        assert_eq!(t.arp("192.0.2.13".parse().unwrap()), None);
        assert_eq!(t.dhcp_server(B), Some(A));
        assert_eq!(t.dhcp_server(A), None);
        // B and D share a host: three distinct destinations, file order.
        let ips: Vec<_> = t.points().iter().map(|p| p.ip).collect();
        assert_eq!(
            ips,
            [
                in6("198.51.100.11"),
                in6("198.51.100.12"),
                in6("2001:db8:ffff::13")
            ]
        );
        assert!(parse("{}").unwrap().is_empty());
    }

    #[test]
    fn points_follow_destination_kinds() {
        let ip_only = Table::parse(GOOD.as_bytes(), dest::IP, 4789).unwrap();
        assert_eq!(ip_only.point(&A).unwrap().port, 0);
        // Entries differing only by port are one destination without ports.
        assert_eq!(ip_only.points().len(), 3);
        let other_default = Table::parse(GOOD.as_bytes(), BOTH, 6081).unwrap();
        assert_eq!(other_default.point(&B).unwrap().port, 6081);
        assert_eq!(other_default.point(&A).unwrap().port, 4790);
    }

    #[test]
    fn mac_spellings_normalise() {
        for s in [
            "02:00:5e:10:00:01",
            "2:0:5e:10:0:1",
            "02:00:5E:10:00:01",
            "02-00-5e-10-00-01",
            "0200.5e10.0001",
            "02005e100001",
        ] {
            assert_eq!(HostMac::parse(s), Ok(HostMac(Mac(A))), "{s}");
        }
        assert_eq!(Mac(A).to_string(), "02:00:5e:10:00:01");
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "02:00:5e:10:00:001",
            "02:00:5e:10::01",
            "02:00-5e:10:00:01",
            "0200.5e10.001",
            "02005e10000",
            "02:00:zz:10:00:01",
            "+2:00:5e:10:00:01",
        ] {
            let e = HostMac::parse(bad).unwrap_err();
            assert!(e.starts_with("invalid MAC address"), "{bad}: {e}");
        }
        assert!(HostMac::parse("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("group"));
        assert!(HostMac::parse("ff:ff:ff:ff:ff:ff")
            .unwrap_err()
            .contains("group"));
        assert!(HostMac::parse("0:0:0:0:0:0")
            .unwrap_err()
            .contains("all-zero"));
    }

    /// Each kind of bad file, with where and what.
    #[test]
    fn bad_files_name_line_column_and_problem() {
        let cases: &[(&str, &str)] = &[
            (
                "{\n  \"02:00:zz:10:00:01\": { \"ip\": \"198.51.100.1\" }\n}",
                "2:21: invalid MAC address \"02:00:zz:10:00:01\"",
            ),
            (
                "{\n  \"2:0:5e:10:0:1\": { \"ip\": \"198.51.100.1\" },\n  \"02-00-5E-10-00-01\": { \"ip\": \"198.51.100.2\" }\n}",
                "3:21: duplicate entry for MAC 02:00:5e:10:00:01",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100\" } }",
                "1:43: invalid underlay address \"198.51.100\"",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"224.0.0.1\" } }",
                "1:42: invalid underlay address \"224.0.0.1\": 224.0.0.1 is a multicast address",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"0.0.0.0\" } }",
                "1:40: invalid underlay address \"0.0.0.0\": the unspecified",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"port\": 4789 } }",
                "1:39: missing field `ip`",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"port\": 0 } }",
                "1:56: invalid port 0: a port is from 1 to 65535",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"port\": 65536 } }",
                "1:60: invalid port 65536",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"port\": -1 } }",
                "1:57: invalid port -1",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"port\": 47.89 } }",
                "1:60: invalid type: floating point `47.89`, expected a port number from 1 to 65535",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"port\": \"4789\" } }",
                "1:61: invalid type: string \"4789\", expected a port number",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"arp\": \"2001:db8::1\" } }",
                "1:67: invalid arp address \"2001:db8::1\"",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"ndp\": \"ff02::1\" } }",
                "1:63: invalid ndp address \"ff02::1\"",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"dhcp-proxy\": \"01:00:5e:00:00:01\" } }",
                "1:80: invalid MAC address \"01:00:5e:00:00:01\": 01:00:5e:00:00:01 is a group",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"prot\": 4789 } }",
                "1:53: unknown field `prot`, expected one of `ip`, `port`, `arp`, `ndp`, `dhcp-proxy`",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"arp\": \"192.0.2.1\" },\n  \"02:00:5e:10:00:02\": { \"ip\": \"198.51.100.2\", \"arp\": \"192.0.2.1\" } }",
                "2:69: arp address 192.0.2.1 of 02:00:5e:10:00:02 is already the arp address of 02:00:5e:10:00:01",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\", \"ndp\": \"2001:db8::1\" },\n  \"02:00:5e:10:00:02\": { \"ip\": \"198.51.100.2\", \"ndp\": \"2001:db8::1\" } }",
                "2:71: ndp address 2001:db8::1 of 02:00:5e:10:00:02 is already the ndp address",
            ),
            (
                "[ { \"ip\": \"198.51.100.1\" } ]",
                "1:1: invalid type: sequence, expected an object whose keys are MAC addresses",
            ),
            (
                "{ \"02:00:5e:10:00:01\": \"198.51.100.1\" }",
                "1:37: invalid type: string \"198.51.100.1\", expected struct Entry",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\" }, }",
                "1:50: trailing comma",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\" } } x",
                "1:51: trailing characters",
            ),
            (
                "{ \"02:00:5e:10:00:01\": { \"ip\": \"198.51.100.1\"",
                "1:45: EOF while parsing an object",
            ),
            ("", "1:1: EOF while parsing a value"),
        ];
        for (text, want) in cases.iter() {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("overlay-files-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        let e = Table::load(&missing, BOTH, 4789).unwrap_err();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(
            e.msg
                .starts_with(&format!("{}: cannot read", missing.display())),
            "{}",
            e.msg
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\n  \"02:00:5e:10:00:01\": { \"ip\": \"x\" }\n}\n").unwrap();
        let e = Table::load(&bad, BOTH, 4789).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(
            e.msg,
            format!(
                "{}:2:34: invalid underlay address \"x\": write an IPv4 or IPv6 address",
                bad.display()
            )
        );
        let e = Table::load(&dir, BOTH, 4789).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn changed_reports_exactly_the_differences() {
        let old = parse(GOOD).unwrap();
        assert!(old.changed(&parse(GOOD).unwrap()).is_empty());
        let new = parse(
            r#"{
  "02:00:5e:10:00:01": { "ip": "198.51.100.11", "port": 4790, "arp": "192.0.2.99" },
  "02:00:5e:10:00:02": { "ip": "198.51.100.12", "port": 4789 },
  "02:00:5e:10:00:03": { "ip": "2001:db8:ffff::99" },
  "02:00:5e:10:00:05": { "ip": "198.51.100.15" }
}"#,
        )
        .unwrap();
        // A and B keep their destination (B's explicit port equals the
        // default); C moved; D is gone; E is new.
        let e = [2, 0, 0x5e, 0x10, 0, 5];
        assert_eq!(old.changed(&new), vec![C, D, e]);
    }
}
