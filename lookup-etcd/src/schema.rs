//! The directory's keys and values in etcd, as `docs/etcd.md` documents
//! them. Pure functions: no I/O, tested on text.
//!
//! ```text
//! <prefix>/vnet/<vnetid>/mac/<mac>  {"ip":"198.51.100.1","port":4789,"host":"198.51.100.1"}
//! <prefix>/vnet/<vnetid>/ip/<ip>    {"mac":"02:00:5e:10:00:01","host":"198.51.100.1"}
//! ```
//!
//! `<vnetid>` is decimal, `<mac>` six lower-case hex pairs separated by
//! `:`, `<ip>` an IPv4 address in dotted decimal or an IPv6 address in
//! its RFC 5952 form. Only those spellings are keys of the schema, so that
//! every (virtual network, MAC) and (virtual network, IP) has exactly one
//! key.

use overlay_plugin_abi::Mac;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The keys of one virtual network under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `<prefix>/vnet/<vnetid>/`, with exactly one `/` at the end.
    base: String,
}

/// A key of the schema, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Where a MAC lives.
    Mac(Mac),
    /// Which MAC owns an overlay IP address.
    Ip(IpAddr),
}

impl Keys {
    /// The keys of `vnetid` under `prefix` (`/overlayd`; trailing `/`
    /// ignored).
    pub fn new(prefix: &str, vnetid: u64) -> Keys {
        Keys {
            base: format!("{}/vnet/{vnetid}/", prefix.trim_end_matches('/')),
        }
    }

    /// Every key of the virtual network starts with this.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every MAC key of the virtual network starts with this.
    pub fn mac_prefix(&self) -> String {
        format!("{}mac/", self.base)
    }

    /// The key of `mac`.
    pub fn mac(&self, mac: Mac) -> String {
        format!("{}mac/{mac}", self.base)
    }

    /// The key of `ip`.
    pub fn ip(&self, ip: IpAddr) -> String {
        format!("{}ip/{ip}", self.base)
    }

    /// Parses a key under [`Keys::base`]; the error says why it is not a
    /// key of the schema.
    pub fn parse(&self, key: &[u8]) -> Result<Key, String> {
        let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8".to_string())?;
        let rest = key
            .strip_prefix(self.base.as_str())
            .ok_or_else(|| format!("{key} is not under {}", self.base))?;
        if let Some(m) = rest.strip_prefix("mac/") {
            let mac = Mac::parse(m).map_err(|e| format!("{key}: {e}"))?;
            if mac.to_string() != m {
                return Err(format!(
                    "{key}: MAC keys are written as six lower-case hex pairs separated by ':' ({mac})"
                ));
            }
            if mac.is_group() {
                return Err(format!("{key}: {mac} is a group address, not a host's"));
            }
            return Ok(Key::Mac(mac));
        }
        if let Some(i) = rest.strip_prefix("ip/") {
            let ip: IpAddr = i
                .parse()
                .map_err(|_| format!("{key}: \"{i}\" is not an IP address"))?;
            if ip.to_string() != i {
                return Err(format!(
                    "{key}: IP keys are written in the canonical form ({ip})"
                ));
            }
            return Ok(Key::Ip(ip));
        }
        Err(format!(
            "{key}: neither a mac/ nor an ip/ key of the virtual network"
        ))
    }
}

/// The value of a MAC key: where the MAC lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacEntry {
    /// The underlay address of the host the MAC lives behind.
    pub ip: IpAddr,
    /// Its underlay port; the reader's `etcd/port` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Which host published the entry (its `etcd/host_ip`); absent in
    /// entries written by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The MAC of the DHCP server that answers this host's requests.
    #[serde(
        default,
        rename = "dhcp-proxy",
        skip_serializing_if = "Option::is_none",
        with = "opt_mac"
    )]
    pub dhcp_proxy: Option<Mac>,
}

/// The value of an IP key: the MAC that owns the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpEntry {
    /// The owner.
    #[serde(with = "mac_text")]
    pub mac: Mac,
    /// Which host published the entry; absent in entries written by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Which IP family the underlay uses, to refuse destinations it cannot
/// reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 underlay.
    V4,
    /// IPv6 underlay.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl MacEntry {
    /// Parses and checks a MAC key's value for an underlay of `family`.
    pub fn parse(value: &[u8], family: Family) -> Result<MacEntry, String> {
        let e: MacEntry =
            serde_json::from_slice(value).map_err(|e| format!("not a MAC entry: {e}"))?;
        if let Err(why) = overlay_plugin_abi::prop::check_unicast_endpoint(e.ip) {
            return Err(format!("destination {}: {why}", e.ip));
        }
        if Family::of(e.ip) != family {
            return Err(format!(
                "destination {} is not of the underlay's address family ({family:?})",
                e.ip
            ));
        }
        if e.port == Some(0) {
            return Err("port 0 is not a destination port".into());
        }
        if let Some(m) = e.dhcp_proxy {
            if m.is_group() || m.is_zero() {
                return Err(format!("dhcp-proxy {m} is not a host's MAC"));
            }
        }
        Ok(e)
    }

    /// The value as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a MAC entry serialises")
    }
}

impl IpEntry {
    /// Parses and checks an IP key's value.
    pub fn parse(value: &[u8]) -> Result<IpEntry, String> {
        let e: IpEntry =
            serde_json::from_slice(value).map_err(|e| format!("not an IP entry: {e}"))?;
        if e.mac.is_group() || e.mac.is_zero() {
            return Err(format!("{} is not a host's MAC", e.mac));
        }
        Ok(e)
    }

    /// The value as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an IP entry serialises")
    }
}

mod mac_text {
    use overlay_plugin_abi::Mac;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Mac, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let text = String::deserialize(d)?;
        Mac::parse(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_mac {
    use overlay_plugin_abi::Mac;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Option<Mac>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mac>, D::Error> {
        let text = String::deserialize(d)?;
        Mac::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> Mac {
        Mac::parse(s).unwrap()
    }

    #[test]
    fn keys_round_trip_in_their_one_spelling() {
        let k = Keys::new("/overlayd/", 42);
        assert_eq!(k.base(), "/overlayd/vnet/42/");
        let m = mac("02:00:5e:10:00:01");
        assert_eq!(k.mac(m), "/overlayd/vnet/42/mac/02:00:5e:10:00:01");
        assert_eq!(k.parse(k.mac(m).as_bytes()), Ok(Key::Mac(m)));
        let ip: IpAddr = "2001:db8::11".parse().unwrap();
        assert_eq!(k.ip(ip), "/overlayd/vnet/42/ip/2001:db8::11");
        assert_eq!(k.parse(k.ip(ip).as_bytes()), Ok(Key::Ip(ip)));
        for bad in [
            "/overlayd/vnet/42/mac/02:00:5E:10:00:01",
            "/overlayd/vnet/42/mac/0200.5e10.0001",
            "/overlayd/vnet/42/mac/ff:ff:ff:ff:ff:ff",
            "/overlayd/vnet/42/ip/2001:0db8::11",
            "/overlayd/vnet/42/ip/300.1.1.1",
            "/overlayd/vnet/42/hosts/a",
            "/overlayd/vnet/4/mac/02:00:5e:10:00:01",
        ] {
            assert!(k.parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked_before_they_are_answered() {
        let e = MacEntry::parse(
            br#"{"ip":"198.51.100.1","port":4789,"host":"198.51.100.1"}"#,
            Family::V4,
        )
        .unwrap();
        assert_eq!(e.port, Some(4789));
        assert_eq!(MacEntry::parse(e.to_json().as_bytes(), Family::V4), Ok(e));
        let by_hand = MacEntry::parse(
            br#"{"ip":"198.51.100.2","dhcp-proxy":"02:00:5e:10:00:09"}"#,
            Family::V4,
        )
        .unwrap();
        assert_eq!(by_hand.host, None);
        assert_eq!(by_hand.dhcp_proxy, Some(mac("02:00:5e:10:00:09")));
        for (bad, why) in [
            (&b"not json"[..], "not a MAC entry"),
            (br#"{"ip":4}"#, "not a MAC entry"),
            (br#"{"ip":"198.51.100.1","port":"x"}"#, "not a MAC entry"),
            (br#"{"ip":"198.51.100.1","colour":"red"}"#, "unknown field"),
            (br#"{"ip":"2001:db8::1"}"#, "address family"),
            (br#"{"ip":"224.0.0.1"}"#, "destination"),
            (br#"{"ip":"198.51.100.1","port":0}"#, "port 0"),
        ] {
            let e = MacEntry::parse(bad, Family::V4).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let ip = IpEntry::parse(br#"{"mac":"02:00:5e:10:00:01"}"#).unwrap();
        assert_eq!(ip.mac, mac("02:00:5e:10:00:01"));
        assert!(IpEntry::parse(br#"{"mac":"01:00:5e:00:00:01"}"#).is_err());
        assert!(IpEntry::parse(br#"{"mac":7}"#).is_err());
    }
}
