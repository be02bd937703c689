//! The property model: what a property is, how its value is encoded, and a
//! store that validates and keeps values for a plugin instance.

use crate::PluginError;
use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::RwLock,
};

/// Largest encoded value, default included.
pub const PROP_SIZEMAX: usize = 256;
/// Largest property name, the terminating NUL included.
pub const PROP_NAMELEN: usize = 64;

/// The type of a property value. A `u8` newtype so that later versions can
/// add types without changing the layout.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PropType(pub u8);

impl PropType {
    /// Signed 64-bit integer, 8 bytes, native order.
    pub const INT: PropType = PropType(1);
    /// Unsigned 64-bit integer, 8 bytes, native order.
    pub const UINT: PropType = PropType(2);
    /// IP address: 16 bytes, network order, IPv4 as `::ffff:a.b.c.d`.
    pub const IP: PropType = PropType(3);
    /// UTF-8 string, NUL-terminated; the size counts the NUL.
    pub const STRING: PropType = PropType(4);

    /// The upper-case name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PropType::INT => "INT",
            PropType::UINT => "UINT",
            PropType::IP => "IP",
            PropType::STRING => "STRING",
            _ => "UNKNOWN",
        }
    }
}

/// Permission bits of a property.
pub mod perm {
    /// The property needs a value (set, or a default) before activation.
    pub const REQ: u8 = 0x1;
    /// The value can be read.
    pub const READ: u8 = 0x2;
    /// The value can be written.
    pub const WRITE: u8 = 0x4;
    /// The value can be written while the device is active.
    pub const RUNTIME: u8 = 0x8;
    /// Read and write.
    pub const RW: u8 = READ | WRITE;
    /// Required, read and write.
    pub const RRW: u8 = REQ | READ | WRITE;
}

/// An inclusive range of allowed numeric values.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PropRange {
    /// Smallest allowed value (as `i64` for `INT`, stored in the same bits).
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
}

/// Everything a client needs to know about one property.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PropInfo {
    /// `plugin/name` for plugin properties.
    pub name: RString,
    /// Value type.
    pub ptype: PropType,
    /// [`perm`] bits.
    pub perm: u8,
    /// Encoded default value; empty when there is none.
    pub default: RVec<u8>,
    /// Allowed numeric range, if any.
    pub range: ROption<PropRange>,
    /// Allowed string values; empty means any.
    pub possible: RVec<RString>,
}

impl PropInfo {
    fn new(name: &str, ptype: PropType) -> Self {
        PropInfo {
            name: name.into(),
            ptype,
            perm: perm::RW,
            default: RVec::new(),
            range: ROption::RNone,
            possible: RVec::new(),
        }
    }

    /// A signed integer property, read-write.
    pub fn int(name: &str) -> Self {
        Self::new(name, PropType::INT)
    }
    /// An unsigned integer property, read-write.
    pub fn uint(name: &str) -> Self {
        Self::new(name, PropType::UINT)
    }
    /// An IP address property, read-write.
    pub fn ip(name: &str) -> Self {
        Self::new(name, PropType::IP)
    }
    /// A string property, read-write.
    pub fn string(name: &str) -> Self {
        Self::new(name, PropType::STRING)
    }

    /// Replaces the permission bits.
    pub fn perm(mut self, bits: u8) -> Self {
        self.perm = bits;
        self
    }
    /// Marks the property required.
    pub fn required(mut self) -> Self {
        self.perm |= perm::REQ;
        self
    }
    /// Marks the property writable while the device is active.
    pub fn runtime(mut self) -> Self {
        self.perm |= perm::RUNTIME;
        self
    }
    /// Sets an encoded default.
    pub fn default_value(mut self, value: &PropValue) -> Self {
        self.default = value.encode().into();
        self
    }
    /// Sets an unsigned default.
    pub fn default_uint(self, v: u64) -> Self {
        self.default_value(&PropValue::Uint(v))
    }
    /// Sets a string default.
    pub fn default_str(self, v: &str) -> Self {
        self.default_value(&PropValue::Str(v.to_string()))
    }
    /// Sets a signed default.
    pub fn default_int(self, v: i64) -> Self {
        self.default_value(&PropValue::Int(v))
    }
    /// Sets an address default (IPv4 is stored v4-mapped).
    pub fn default_ip(self, v: IpAddr) -> Self {
        self.default_value(&PropValue::Ip(v))
    }
    /// Makes the property read-only (clears the write and runtime bits).
    pub fn read_only(mut self) -> Self {
        self.perm &= !(perm::WRITE | perm::RUNTIME);
        self.perm |= perm::READ;
        self
    }
    /// Sets the allowed range of an unsigned property, both ends included.
    pub fn range(mut self, min: u64, max: u64) -> Self {
        self.range = ROption::RSome(PropRange { min, max });
        self
    }
    /// Sets the allowed range of a signed property, both ends included
    /// (stored in the same bits as [`PropInfo::range`]).
    pub fn range_int(mut self, min: i64, max: i64) -> Self {
        self.range = ROption::RSome(PropRange {
            min: min as u64,
            max: max as u64,
        });
        self
    }
    /// Sets the allowed string values.
    pub fn possible(mut self, values: &[&str]) -> Self {
        self.possible = values.iter().map(|v| RString::from(*v)).collect();
        self
    }
    /// Whether the bits include `bit`.
    pub fn has(&self, bit: u8) -> bool {
        self.perm & bit != 0
    }

    /// Checks an encoded value against type, size, range and possible values.
    pub fn validate(&self, bytes: &[u8]) -> Result<PropValue, PluginError> {
        let value = PropValue::decode(self.ptype, bytes)
            .map_err(|e| PluginError::invalid(format!("{}: {e}", self.name)))?;
        if let ROption::RSome(r) = self.range {
            let inside = match value {
                PropValue::Uint(v) => v >= r.min && v <= r.max,
                PropValue::Int(v) => v >= r.min as i64 && v <= r.max as i64,
                _ => true,
            };
            if !inside {
                return Err(PluginError::invalid(format!(
                    "{}: {} is outside the allowed range {}-{}",
                    self.name, value, r.min, r.max
                )));
            }
        }
        if let PropValue::Str(s) = &value {
            if !self.possible.is_empty() && !self.possible.iter().any(|p| p.as_str() == s) {
                let list: Vec<&str> = self.possible.iter().map(|p| p.as_str()).collect();
                return Err(PluginError::invalid(format!(
                    "{}: '{s}' is not one of: {}",
                    self.name,
                    list.join(", ")
                )));
            }
        }
        Ok(value)
    }
}

/// A decoded property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropValue {
    /// `INT`.
    Int(i64),
    /// `UINT`.
    Uint(u64),
    /// `IP`; IPv4 addresses are kept as IPv4.
    Ip(IpAddr),
    /// `STRING`, without the NUL.
    Str(String),
}

impl std::fmt::Display for PropValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropValue::Int(v) => write!(f, "{v}"),
            PropValue::Uint(v) => write!(f, "{v}"),
            PropValue::Ip(v) => write!(f, "{v}"),
            PropValue::Str(v) => f.write_str(v),
        }
    }
}

impl PropValue {
    /// Encodes the value in the wire form of its type.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PropValue::Int(v) => v.to_ne_bytes().to_vec(),
            PropValue::Uint(v) => v.to_ne_bytes().to_vec(),
            PropValue::Ip(ip) => ip_to_in6(*ip).to_vec(),
            PropValue::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
        }
    }

    /// Decodes a value of type `ptype`, checking its size and form.
    pub fn decode(ptype: PropType, bytes: &[u8]) -> Result<PropValue, String> {
        match ptype {
            PropType::INT | PropType::UINT => {
                let raw: [u8; 8] = bytes.try_into().map_err(|_| {
                    format!("a {} value is 8 bytes, not {}", ptype.as_str(), bytes.len())
                })?;
                Ok(if ptype == PropType::INT {
                    PropValue::Int(i64::from_ne_bytes(raw))
                } else {
                    PropValue::Uint(u64::from_ne_bytes(raw))
                })
            }
            PropType::IP => {
                let raw: [u8; 16] = bytes
                    .try_into()
                    .map_err(|_| format!("an IP value is 16 bytes, not {}", bytes.len()))?;
                Ok(PropValue::Ip(ip_from_in6(raw)))
            }
            PropType::STRING => {
                let Some((&0, body)) = bytes.split_last() else {
                    return Err("a STRING value must end with a NUL byte".into());
                };
                if body.contains(&0) {
                    return Err("a STRING value has a NUL byte inside it".into());
                }
                if bytes.len() > PROP_SIZEMAX {
                    return Err(format!("a STRING value is at most {PROP_SIZEMAX} bytes"));
                }
                std::str::from_utf8(body)
                    .map(|s| PropValue::Str(s.to_string()))
                    .map_err(|_| "a STRING value must be UTF-8".into())
            }
            other => Err(format!("unknown property type {}", other.0)),
        }
    }

    /// The unsigned value, if this is one.
    pub fn as_uint(&self) -> Option<u64> {
        match self {
            PropValue::Uint(v) => Some(*v),
            _ => None,
        }
    }
    /// The address, if this is one.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            PropValue::Ip(v) => Some(*v),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PropValue::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// An address as the 16 bytes of an `in6_addr`, IPv4 v4-mapped.
#[inline]
pub fn ip_to_in6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address held in an `in6_addr`; v4-mapped addresses become IPv4.
#[inline]
pub fn ip_from_in6(raw: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(raw);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Whether an address can be an overlay endpoint (listen or destination):
/// not multicast, not IPv4-compatible (`::a.b.c.d`), not 6to4 (`2002::/16`),
/// not the IPv4 broadcast. The unspecified address is left to the caller.
pub fn check_unicast_endpoint(ip: IpAddr) -> Result<(), String> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_multicast() {
                return Err(format!("{v4} is a multicast address"));
            }
            if v4 == Ipv4Addr::BROADCAST {
                return Err(format!("{v4} is the broadcast address"));
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if v6.is_multicast() {
                return Err(format!("{v6} is a multicast address"));
            }
            if seg[0] == 0x2002 {
                return Err(format!("{v6} is a 6to4 address"));
            }
            if seg[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
                return Err(format!(
                    "{v6} is an IPv4-compatible address; write IPv4 addresses as a.b.c.d"
                ));
            }
        }
    }
    Ok(())
}

/// A validating store of property values for one plugin instance: declare
/// the properties once, then answer `getprop`/`setprop` from it.
///
/// Defaults are the initial values, so a required property with a default
/// is always satisfied. Reads take a shared lock; plugins that read a
/// property on the packet path should cache it instead (see the VXLAN
/// plugin for the pattern).
pub struct PropStore {
    infos: Vec<PropInfo>,
    values: RwLock<HashMap<String, Vec<u8>>>,
}

impl PropStore {
    /// A store for these properties, each set to its default.
    pub fn new(infos: Vec<PropInfo>) -> Self {
        let values = infos
            .iter()
            .filter(|i| !i.default.is_empty())
            .map(|i| (i.name.to_string(), i.default.to_vec()))
            .collect();
        PropStore {
            infos,
            values: RwLock::new(values),
        }
    }

    /// The declared properties.
    pub fn infos(&self) -> &[PropInfo] {
        &self.infos
    }

    /// The declaration of `name`.
    pub fn info(&self, name: &str) -> Result<&PropInfo, PluginError> {
        self.infos
            .iter()
            .find(|i| i.name.as_str() == name)
            .ok_or_else(|| PluginError::not_found(format!("no property named {name}")))
    }

    /// The encoded value; empty when unset.
    pub fn get(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.info(name)?;
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        Ok(values.get(name).cloned().unwrap_or_default())
    }

    /// The decoded value, when set.
    pub fn value(&self, name: &str) -> Option<PropValue> {
        let info = self.info(name).ok()?;
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values
            .get(name)
            .and_then(|b| PropValue::decode(info.ptype, b).ok())
    }

    /// Validates (type, size, range, possible values, then `check`) and
    /// stores; on error the old value stays.
    pub fn set_with(
        &self,
        name: &str,
        bytes: &[u8],
        check: impl FnOnce(&PropValue) -> Result<(), String>,
    ) -> Result<PropValue, PluginError> {
        let info = self.info(name)?;
        let value = info.validate(bytes)?;
        check(&value).map_err(|e| PluginError::invalid(format!("{name}: {e}")))?;
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.insert(name.to_string(), bytes.to_vec());
        Ok(value)
    }

    /// The value of an unsigned property, when set.
    pub fn uint(&self, name: &str) -> Option<u64> {
        self.value(name).and_then(|v| v.as_uint())
    }

    /// The value of a signed property, when set.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.value(name)? {
            PropValue::Int(v) => Some(v),
            _ => None,
        }
    }

    /// The value of an address property, when set.
    pub fn ip(&self, name: &str) -> Option<IpAddr> {
        self.value(name).and_then(|v| v.as_ip())
    }

    /// The value of a string property, when set.
    pub fn string(&self, name: &str) -> Option<String> {
        match self.value(name)? {
            PropValue::Str(v) => Some(v),
            _ => None,
        }
    }

    /// [`PropStore::set_with`] without an extra check.
    pub fn set(&self, name: &str, bytes: &[u8]) -> Result<PropValue, PluginError> {
        self.set_with(name, bytes, |_| Ok(()))
    }

    /// The names of required properties that have no value.
    pub fn missing_required(&self) -> Vec<String> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        self.infos
            .iter()
            .filter(|i| i.has(perm::REQ) && !values.contains_key(i.name.as_str()))
            .map(|i| i.name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_wire_form() {
        for (t, v) in [
            (PropType::UINT, PropValue::Uint(4789)),
            (PropType::INT, PropValue::Int(-3)),
            (PropType::IP, PropValue::Ip("192.0.2.1".parse().unwrap())),
            (PropType::IP, PropValue::Ip("2001:db8::1".parse().unwrap())),
            (PropType::STRING, PropValue::Str("abc".into())),
        ] {
            assert_eq!(PropValue::decode(t, &v.encode()).unwrap(), v);
        }
        let v4 = PropValue::Ip("192.0.2.1".parse().unwrap()).encode();
        assert_eq!(&v4[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(PropValue::Str("ab".into()).encode(), b"ab\0");
    }

    #[test]
    fn decode_rejects_bad_sizes_and_forms() {
        assert!(PropValue::decode(PropType::UINT, &[0; 4]).is_err());
        assert!(PropValue::decode(PropType::IP, &[0; 4]).is_err());
        assert!(PropValue::decode(PropType::STRING, b"abc").is_err());
        assert!(PropValue::decode(PropType::STRING, b"a\0c\0").is_err());
        assert!(PropValue::decode(PropType::STRING, &[0xff, 0]).is_err());
        assert!(PropValue::decode(PropType(9), &[0]).is_err());
    }

    #[test]
    fn store_keeps_old_value_on_failed_set() {
        let store = PropStore::new(vec![
            PropInfo::uint("x/port")
                .required()
                .default_uint(4789)
                .range(1, 65535),
            PropInfo::ip("x/ip").required(),
            PropInfo::string("x/mode").possible(&["a", "b"]),
        ]);
        assert_eq!(store.missing_required(), vec!["x/ip".to_string()]);
        assert_eq!(store.value("x/port"), Some(PropValue::Uint(4789)));
        let err = store.set("x/port", &0u64.to_ne_bytes()).unwrap_err();
        assert_eq!(err.errno, libc::EINVAL);
        assert!(err.msg.contains("1-65535"), "{}", err.msg);
        assert_eq!(store.value("x/port"), Some(PropValue::Uint(4789)));
        store.set("x/port", &6081u64.to_ne_bytes()).unwrap();
        assert_eq!(store.value("x/port"), Some(PropValue::Uint(6081)));
        assert!(store.set("x/mode", b"c\0").is_err());
        store.set("x/mode", b"b\0").unwrap();
        assert_eq!(store.get("nope").unwrap_err().errno, libc::ENOENT);
        assert_eq!(store.get("x/ip").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn builders_cover_signed_addresses_and_read_only() {
        let p = PropInfo::int("x/offset")
            .default_int(-5)
            .range_int(-10, 10)
            .runtime();
        assert!(p.validate(&(-10i64).to_ne_bytes()).is_ok());
        assert!(p.validate(&(-11i64).to_ne_bytes()).is_err());
        assert!(p.validate(&11i64.to_ne_bytes()).is_err());
        assert_eq!(p.default, (-5i64).to_ne_bytes());
        let ro = p.clone().read_only();
        assert!(ro.has(perm::READ) && !ro.has(perm::WRITE) && !ro.has(perm::RUNTIME));
        let ip = PropInfo::ip("x/ip")
            .required()
            .default_ip("192.0.2.1".parse().unwrap());
        assert!(ip.has(perm::REQ));
        let store = PropStore::new(vec![ip, p, PropInfo::string("x/s").default_str("a")]);
        assert_eq!(store.ip("x/ip"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(store.int("x/offset"), Some(-5));
        assert_eq!(store.string("x/s").as_deref(), Some("a"));
        assert_eq!(store.uint("x/offset"), None, "wrong type is None");
        assert!(store.missing_required().is_empty());
    }

    #[test]
    fn endpoint_check_rejects_what_cannot_be_a_tunnel_end() {
        for bad in [
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "2002::1",
            "::10.0.0.1",
        ] {
            assert!(
                check_unicast_endpoint(bad.parse().unwrap()).is_err(),
                "{bad}"
            );
        }
        for good in ["10.0.0.1", "::", "0.0.0.0", "2001:db8::1", "::1"] {
            assert!(
                check_unicast_endpoint(good.parse().unwrap()).is_ok(),
                "{good}"
            );
        }
    }
}
