//! The target cache as the CLI sees it: MAC addresses, destinations and
//! cache entries, parsed from the command line and read from the
//! `overlay_target` family's replies and notifications.
//!
//! A destination is written the way the device needs it: `IP:PORT` for an
//! encapsulation that needs an address and a port (IPv6 in brackets,
//! `[2001:db8::2]:4789`), a bare IP when it needs no port, and an Ethernet
//! address (`MAC`, or `MAC,IP:PORT` when it needs both) when it needs one.
//! `drop` stands for an entry whose frames are dropped. The key of a
//! point-mode device's single target is the all-zero MAC, printed
//! `*:*:*:*:*:*`.

use crate::model::NONE;
use nlproto::spec::overlay as ov;
use nlproto::spec::target as tg;
use nlproto::{Attr, AttrsExt};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a `cache-set` entry is written on the command line.
pub const ENTRY_FORM: &str = "MAC=IP:PORT, MAC=[IPv6]:PORT, MAC=IP (no port) or MAC=drop";

/// How the key of a point-mode device's target is printed.
pub const POINT_TARGET: &str = "*:*:*:*:*:*";

pub use overlay_plugin_abi::mac::{Mac, MAC_FORMS};

/// How the key of a cache entry is printed: lower case, zero-padded,
/// [`POINT_TARGET`] for a point-mode device's target (the all-zero MAC).
pub fn target_text(mac: &Mac) -> String {
    if mac.is_zero() {
        POINT_TARGET.to_string()
    } else {
        mac.to_string()
    }
}

/// Where frames for a MAC go: the parts the device's encapsulation needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// The underlay Ethernet address (`DEST_MAC`).
    pub mac: Option<Mac>,
    /// The underlay IP (`DEST_IP`), IPv4 v4-mapped.
    pub ip: Option<Ipv6Addr>,
    /// The underlay UDP port (`DEST_PORT`).
    pub port: Option<u16>,
}

impl Destination {
    /// The `DEST_*` bits of the parts present.
    pub fn kinds(&self) -> u32 {
        let mut k = 0;
        if self.mac.is_some() {
            k |= ov::DEST_ETHERNET;
        }
        if self.ip.is_some() {
            k |= ov::DEST_IP;
        }
        if self.port.is_some() {
            k |= ov::DEST_PORT;
        }
        k
    }

    /// The attributes that carry it.
    pub fn attrs(&self) -> Vec<Attr> {
        let mut a = Vec::new();
        if let Some(ip) = self.ip {
            a.push(Attr::bytes(tg::ATTR_DEST_IP, ip.octets().to_vec()));
        }
        if let Some(port) = self.port {
            a.push(Attr::u16(tg::ATTR_DEST_PORT, port));
        }
        if let Some(mac) = self.mac {
            a.push(Attr::bytes(tg::ATTR_DEST_MAC, mac.0.to_vec()));
        }
        a
    }

    /// Reads the destination attributes present; a value of the wrong size
    /// counts as absent.
    pub fn from_attrs(attrs: &[Attr]) -> Destination {
        Destination {
            mac: attrs.get_bytes(tg::ATTR_DEST_MAC).and_then(Mac::from_slice),
            ip: attrs
                .get_bytes(tg::ATTR_DEST_IP)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from),
            port: attrs.get_u16(tg::ATTR_DEST_PORT),
        }
    }
}

impl fmt::Display for Destination {
    /// `MAC`, `IP`, `IP:PORT`, `[IPv6]:PORT`, `MAC,IP:PORT`; `--` when
    /// empty. IPv4 shows dotted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(mac) = self.mac {
            parts.push(mac.to_string());
        }
        let ip = self.ip.map(|ip| match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(ip),
        });
        match (ip, self.port) {
            (Some(IpAddr::V6(v6)), Some(port)) => parts.push(format!("[{v6}]:{port}")),
            (Some(ip), Some(port)) => parts.push(format!("{ip}:{port}")),
            (Some(ip), None) => parts.push(ip.to_string()),
            // A port alone is not a destination any encapsulation needs,
            // but show what came.
            (None, Some(port)) => parts.push(format!(":{port}")),
            (None, None) => {}
        }
        if parts.is_empty() {
            f.write_str(NONE)
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// What an entry answers: a destination, or drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Frames for the MAC are dropped.
    Drop,
    /// Frames for the MAC go here.
    To(Destination),
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Drop => f.write_str("drop"),
            Answer::To(d) => d.fmt(f),
        }
    }
}

/// Parses a port: decimal, 1 to 65535.
fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "invalid port \"{text}\": expected a decimal number"
        ));
    }
    match text.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!("port {text} outside 1-65535")),
    }
}

/// Parses `IP`, `IP:PORT` or `[IPv6]:PORT` (also `[IPv6]`).
fn parse_ip_port(text: &str) -> Result<(Ipv6Addr, Option<u16>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!("\"{text}\": '[' without its ']'"));
        };
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| format!("\"{inside}\" in brackets is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(format!("\"{after}\" after ']': expected :PORT")),
            },
        };
        return Ok((ip, port));
    }
    match text.matches(':').count() {
        0 => text
            .parse::<Ipv4Addr>()
            .map(|v4| (v4.to_ipv6_mapped(), None))
            .map_err(|_| format!("\"{text}\" is not an IPv4 or IPv6 address")),
        1 => {
            let (ip, port) = text.split_once(':').expect("one ':'");
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("\"{ip}\" before ':' is not an IPv4 address"))?;
            Ok((ip.to_ipv6_mapped(), Some(parse_port(port)?)))
        }
        _ => text.parse::<Ipv6Addr>().map(|v6| (v6, None)).map_err(|_| {
            format!(
                "\"{text}\" is not an IPv6 address (an IPv6 address with a port is written [addr]:port)"
            )
        }),
    }
}

/// Parses the destination of a `cache-set` entry: `drop` (any case),
/// `IP`, `IP:PORT`, `[IPv6]:PORT`, an Ethernet address, or an Ethernet
/// address, a comma and one of the IP forms.
pub fn parse_answer(text: &str) -> Result<Answer, String> {
    if text.eq_ignore_ascii_case("drop") {
        return Ok(Answer::Drop);
    }
    if text.is_empty() {
        return Err("empty destination".into());
    }
    let (mac, rest) = match text.split_once(',') {
        Some((mac, rest)) => (Some(Mac::parse(mac)?), Some(rest)),
        // Six groups of one or two hex digits are never an IP address, so
        // an Ethernet destination alone needs no marker.
        None => match Mac::parse(text) {
            Ok(mac) => (Some(mac), None),
            Err(_) => (None, Some(text)),
        },
    };
    let (ip, port) = match rest {
        Some(r) => {
            let (ip, port) = parse_ip_port(r)?;
            (Some(ip), port)
        }
        None => (None, None),
    };
    Ok(Answer::To(Destination { mac, ip, port }))
}

/// A `cache-set` argument, `MAC=DESTINATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryArg {
    /// The key.
    pub mac: Mac,
    /// What it answers.
    pub answer: Answer,
}

/// Parses a `cache-set` argument; the error names the argument and the
/// expected form.
pub fn parse_entry(arg: &str) -> Result<EntryArg, String> {
    let fail = |why: String| format!("\"{arg}\": {why}; expected {ENTRY_FORM}");
    let Some((mac, dest)) = arg.split_once('=') else {
        return Err(fail("no '='".into()));
    };
    let mac = Mac::parse(mac).map_err(fail)?;
    if mac == Mac::ZERO {
        return Err(fail(format!(
            "{} is not a station address (it stands for a point-mode device's single target)",
            Mac::ZERO
        )));
    }
    let answer = parse_answer(dest).map_err(fail)?;
    Ok(EntryArg { mac, answer })
}

/// Names the `DEST_*` bits: `an Ethernet address, an IP and a port`.
pub fn kinds_text(kinds: u32) -> String {
    let mut names = Vec::new();
    if kinds & ov::DEST_ETHERNET != 0 {
        names.push("an Ethernet address");
    }
    if kinds & ov::DEST_IP != 0 {
        names.push("an IP");
    }
    if kinds & ov::DEST_PORT != 0 {
        names.push("a port");
    }
    match names.len() {
        0 => "nothing".to_string(),
        1 => names[0].to_string(),
        n => format!("{} and {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// How a destination with these `DEST_*` parts is written.
pub fn kinds_form(kinds: u32) -> String {
    let ip = match (kinds & ov::DEST_IP != 0, kinds & ov::DEST_PORT != 0) {
        (true, true) => Some("IP:PORT (IPv6 as [addr]:port)"),
        (true, false) => Some("IP"),
        (false, true) => Some(":PORT"),
        (false, false) => None,
    };
    match (kinds & ov::DEST_ETHERNET != 0, ip) {
        (true, Some(ip)) => format!("MAC,{ip}"),
        (true, None) => "MAC".to_string(),
        (false, Some(ip)) => ip.to_string(),
        (false, None) => "drop".to_string(),
    }
}

/// Checks a destination against what a device needs (INFO's `NEEDS`), so
/// that a half destination is refused before anything is sent.
pub fn check_needs(dest: &Destination, needs: u32) -> Result<(), String> {
    let given = dest.kinds();
    if given == needs {
        return Ok(());
    }
    let missing = needs & !given;
    let extra = given & !needs;
    let verb = |kinds: u32| if kinds.count_ones() > 1 { "are" } else { "is" };
    let mut why = Vec::new();
    if missing != 0 {
        why.push(format!("{} {} missing", kinds_text(missing), verb(missing)));
    }
    if extra != 0 {
        why.push(format!("{} {} not used", kinds_text(extra), verb(extra)));
    }
    Err(format!(
        "the device needs {} ({}): write MAC={}",
        kinds_text(needs),
        why.join(", "),
        kinds_form(needs)
    ))
}

/// A cache entry as a `CACHE_GET` or `CACHE_LIST` reply, or a `CACHE_SET`
/// notification, carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The device's name.
    pub link: String,
    /// The device's link id.
    pub linkid: Option<u32>,
    /// The key; `None` when the attribute is missing or malformed.
    pub mac: Option<Mac>,
    /// What it answers.
    pub answer: Answer,
}

impl Entry {
    /// Reads an entry; leniently, like the rest of the model: what is
    /// missing shows as `--`.
    pub fn from_attrs(attrs: &[Attr]) -> Entry {
        let drop = attrs.get_u32(tg::ATTR_FLAGS).unwrap_or(0) & tg::ENTRY_DROP != 0;
        Entry {
            link: attrs.get_str(tg::ATTR_NAME).unwrap_or(NONE).to_string(),
            linkid: attrs.get_u32(tg::ATTR_LINKID),
            mac: attrs.get_bytes(tg::ATTR_MAC).and_then(Mac::from_slice),
            answer: if drop {
                Answer::Drop
            } else {
                Answer::To(Destination::from_attrs(attrs))
            },
        }
    }

    /// The TARGET column.
    pub fn target_text(&self) -> String {
        self.mac
            .map_or_else(|| NONE.to_string(), |m| target_text(&m))
    }

    /// The DESTINATION column.
    pub fn destination_text(&self) -> String {
        self.answer.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Option<Ipv6Addr> {
        Some(Ipv4Addr::new(a, b, c, d).to_ipv6_mapped())
    }

    #[test]
    fn mac_spellings() {
        // The parser is the shared one (its own tests cover every form);
        // the CLI adds the point-mode target's spelling.
        let want = Mac([0x02, 0, 0, 0, 0, 0x02]);
        for text in ["02:00:00:00:00:02", "2-0-0-00-0-02", "0200.0000.0002"] {
            assert_eq!(Mac::parse(text), Ok(want), "{text}");
        }
        let m = Mac::parse("AA:bb:Cc:0D:e:F0").unwrap();
        assert_eq!(m.to_string(), "aa:bb:cc:0d:0e:f0");
        assert_eq!(
            target_text(&Mac::parse("0:0:0:0:0:0").unwrap()),
            "*:*:*:*:*:*"
        );
        assert_eq!(target_text(&want), "02:00:00:00:00:02");
        assert_eq!(
            Mac::parse("02:00-00:00:00:02").unwrap_err(),
            format!(
                "invalid MAC address \"02:00-00:00:00:02\": separators mixed; write {MAC_FORMS}"
            )
        );
    }

    #[test]
    fn answers() {
        let to = |mac: Option<Mac>, ip, port| Answer::To(Destination { mac, ip, port });
        assert_eq!(parse_answer("drop"), Ok(Answer::Drop));
        assert_eq!(parse_answer("DROP"), Ok(Answer::Drop));
        assert_eq!(
            parse_answer("10.9.0.2:4789"),
            Ok(to(None, v4(10, 9, 0, 2), Some(4789)))
        );
        assert_eq!(
            parse_answer("10.9.0.2"),
            Ok(to(None, v4(10, 9, 0, 2), None))
        );
        let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            parse_answer("[2001:db8::2]:6081"),
            Ok(to(None, Some(v6), Some(6081)))
        );
        assert_eq!(parse_answer("[2001:db8::2]"), Ok(to(None, Some(v6), None)));
        assert_eq!(parse_answer("2001:db8::2"), Ok(to(None, Some(v6), None)));
        let m = Mac([2, 0, 0, 0, 0, 9]);
        assert_eq!(parse_answer("2:0:0:0:0:9"), Ok(to(Some(m), None, None)));
        assert_eq!(
            parse_answer("02-00-00-00-00-09,10.9.0.2:1"),
            Ok(to(Some(m), v4(10, 9, 0, 2), Some(1)))
        );
        assert_eq!(
            parse_answer("10.9.0.2:65535"),
            Ok(to(None, v4(10, 9, 0, 2), Some(65535)))
        );
    }

    #[test]
    fn answer_refusals() {
        for (text, why) in [
            ("", "empty destination"),
            ("10.9.0.2:0", "port 0 outside 1-65535"),
            ("10.9.0.2:65536", "port 65536 outside 1-65535"),
            ("10.9.0.2:99999999999", "port 99999999999 outside 1-65535"),
            ("10.9.0.2:", "invalid port \"\": expected a decimal number"),
            ("10.9.0.2:+1", "invalid port \"+1\": expected a decimal number"),
            ("10.9.0.2:http", "invalid port \"http\": expected a decimal number"),
            ("10.9.0", "\"10.9.0\" is not an IPv4 or IPv6 address"),
            ("host:4789", "\"host\" before ':' is not an IPv4 address"),
            (
                "2001:db8::2:4789x",
                "\"2001:db8::2:4789x\" is not an IPv6 address (an IPv6 address with a port is written [addr]:port)",
            ),
            ("[2001:db8::2", "\"[2001:db8::2\": '[' without its ']'"),
            ("[10.9.0.2]:1", "\"10.9.0.2\" in brackets is not an IPv6 address"),
            ("[::1]4789", "\"4789\" after ']': expected :PORT"),
            ("[::1]:0", "port 0 outside 1-65535"),
            (
                "zz:0:0:0:0:1,10.0.0.1",
                &format!("invalid MAC address \"zz:0:0:0:0:1\": \"zz\" is not 1 or 2 hexadecimal digits; write {MAC_FORMS}"),
            ),
        ] {
            assert_eq!(parse_answer(text), Err(why.to_string()), "{text}");
        }
    }

    #[test]
    fn entry_args() {
        let e = parse_entry("02:00:00:00:00:02=10.9.0.2:4789").unwrap();
        assert_eq!(e.mac, Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(e.answer.to_string(), "10.9.0.2:4789");
        let e = parse_entry("A-B-C-D-E-F=Drop").unwrap();
        assert_eq!(e.mac.to_string(), "0a:0b:0c:0d:0e:0f");
        assert_eq!(e.answer, Answer::Drop);
        let tail = format!("; expected {ENTRY_FORM}");
        for (arg, why) in [
            ("02:00:00:00:00:02", "no '='".to_string()),
            ("", "no '='".to_string()),
            (
                "=10.0.0.1",
                format!("invalid MAC address \"\": no separators, and not twelve digits; write {MAC_FORMS}"),
            ),
            (
                "02:00:00:00:00:02=",
                "empty destination".to_string(),
            ),
            (
                "0:0:0:0:0:0=drop",
                "00:00:00:00:00:00 is not a station address (it stands for a point-mode device's single target)".to_string(),
            ),
            (
                "02:00:00:00:00:02=[::1]:x",
                "invalid port \"x\": expected a decimal number".to_string(),
            ),
        ] {
            assert_eq!(
                parse_entry(arg),
                Err(format!("\"{arg}\": {why}{tail}")),
                "{arg}"
            );
        }
    }

    #[test]
    fn destination_text() {
        let d = |mac, ip, port| Destination { mac, ip, port }.to_string();
        assert_eq!(d(None, v4(10, 9, 0, 2), Some(4789)), "10.9.0.2:4789");
        assert_eq!(d(None, v4(10, 9, 0, 2), None), "10.9.0.2");
        let v6 = Some("2001:db8::2".parse().unwrap());
        assert_eq!(d(None, v6, Some(6081)), "[2001:db8::2]:6081");
        assert_eq!(d(None, v6, None), "2001:db8::2");
        let m = Some(Mac([2, 0, 0, 0, 0, 9]));
        assert_eq!(d(m, None, None), "02:00:00:00:00:09");
        assert_eq!(d(m, v4(1, 2, 3, 4), Some(5)), "02:00:00:00:00:09,1.2.3.4:5");
        assert_eq!(d(None, None, Some(5)), ":5");
        assert_eq!(d(None, None, None), "--");
        assert_eq!(Answer::Drop.to_string(), "drop");
    }

    #[test]
    fn round_trip_through_text() {
        for text in [
            "10.9.0.2:4789",
            "10.9.0.2",
            "[2001:db8::2]:6081",
            "2001:db8::2",
            "02:00:00:00:00:09",
            "02:00:00:00:00:09,1.2.3.4:5",
            "drop",
        ] {
            assert_eq!(parse_answer(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn needs() {
        let ipp = ov::DEST_IP | ov::DEST_PORT;
        let dest = |a: &str| match parse_answer(a).unwrap() {
            Answer::To(d) => d,
            Answer::Drop => unreachable!(),
        };
        assert_eq!(check_needs(&dest("10.0.0.2:4789"), ipp), Ok(()));
        assert_eq!(check_needs(&dest("10.0.0.2"), ov::DEST_IP), Ok(()));
        assert_eq!(
            check_needs(&dest("10.0.0.2"), ipp),
            Err("the device needs an IP and a port (a port is missing): write MAC=IP:PORT (IPv6 as [addr]:port)".into())
        );
        assert_eq!(
            check_needs(&dest("10.0.0.2:1"), ov::DEST_IP),
            Err("the device needs an IP (a port is not used): write MAC=IP".into())
        );
        assert_eq!(
            check_needs(&dest("10.0.0.2:1"), ov::DEST_ETHERNET),
            Err("the device needs an Ethernet address (an Ethernet address is missing, an IP and a port are not used): write MAC=MAC".into())
        );
        assert_eq!(
            check_needs(&dest("2:0:0:0:0:1"), ov::DEST_ETHERNET | ipp),
            Err("the device needs an Ethernet address, an IP and a port (an IP and a port are missing): write MAC=MAC,IP:PORT (IPv6 as [addr]:port)".into())
        );
    }

    #[test]
    fn attrs_round_trip() {
        let d = Destination {
            mac: Some(Mac([2, 0, 0, 0, 0, 9])),
            ip: v4(10, 9, 0, 2),
            port: Some(4789),
        };
        let a = d.attrs();
        assert_eq!(a.get_bytes(tg::ATTR_DEST_IP).unwrap().len(), 16);
        assert_eq!(a.get_u16(tg::ATTR_DEST_PORT), Some(4789));
        assert_eq!(Destination::from_attrs(&a), d);
        assert_eq!(Destination::from_attrs(&[]), Destination::default());
        // Wrong sizes read as absent rather than as garbage.
        let odd = [
            Attr::bytes(tg::ATTR_DEST_IP, vec![10, 0, 0, 1]),
            Attr::bytes(tg::ATTR_DEST_MAC, vec![1, 2, 3]),
        ];
        assert_eq!(Destination::from_attrs(&odd), Destination::default());
    }

    #[test]
    fn entries_from_attrs() {
        let mut a = vec![
            Attr::u32(tg::ATTR_LINKID, 3),
            Attr::str(tg::ATTR_NAME, "ov0"),
            Attr::bytes(tg::ATTR_MAC, vec![2, 0, 0, 0, 0, 2]),
            Attr::u32(tg::ATTR_FLAGS, 0),
        ];
        a.extend(
            Destination {
                mac: None,
                ip: v4(10, 9, 0, 2),
                port: Some(4789),
            }
            .attrs(),
        );
        let e = Entry::from_attrs(&a);
        assert_eq!(e.link, "ov0");
        assert_eq!(e.linkid, Some(3));
        assert_eq!(e.target_text(), "02:00:00:00:00:02");
        assert_eq!(e.destination_text(), "10.9.0.2:4789");
        a[3] = Attr::u32(tg::ATTR_FLAGS, tg::ENTRY_DROP);
        assert_eq!(Entry::from_attrs(&a).destination_text(), "drop");
        let e = Entry::from_attrs(&[Attr::bytes(tg::ATTR_MAC, vec![0; 6])]);
        assert_eq!(
            (
                e.link.as_str(),
                e.target_text().as_str(),
                e.destination_text().as_str()
            ),
            ("--", "*:*:*:*:*:*", "--")
        );
        assert_eq!(Entry::from_attrs(&[]).target_text(), "--");
    }

    #[test]
    fn kinds_names() {
        assert_eq!(kinds_text(0), "nothing");
        assert_eq!(kinds_text(ov::DEST_PORT), "a port");
        assert_eq!(kinds_form(0), "drop");
        assert_eq!(kinds_form(ov::DEST_ETHERNET), "MAC");
    }
}
