//! Overlay devices: identity, plugin instances, generic properties, state.

use crate::{
    dataplane::{Dataplane, TxTunables},
    error::{CtlError, CtlResult},
    plugins::{EncapEntry, EncapInstance, Faults, LookupEntry, LookupInstance, Plugins},
    stats::{DeviceStats, Health},
    target::{CacheLimits, DynSettings, DynTarget},
};
use overlay_plugin_abi::{
    prop::{perm, PropValue},
    PropInfo, PropType,
};
use std::{sync::Arc, time::Duration};

/// Default MTU of a new device.
pub const MTU_DEFAULT: u64 = 1400;
/// Smallest MTU.
pub const MTU_MIN: u64 = 576;
/// Largest MTU.
pub const MTU_MAX: u64 = 8900;
/// Longest link name, in bytes.
pub const LINK_NAMEMAX: usize = 31;
/// Longest host interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;
/// Backend kinds.
pub const BACKENDS: [&str; 2] = ["tap", "afpacket"];
/// Default `lookup_timeout`, in milliseconds.
pub const LOOKUP_TIMEOUT_DEFAULT: u64 = 2000;

/// The host's ephemeral port range, the default outer source port range;
/// RFC 7348's suggestion (49152-65535) when it cannot be read.
pub fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>());
            match (it.next(), it.next()) {
                (Some(Ok(lo)), Some(Ok(hi))) if lo > 0 && lo <= hi => Some((lo, hi)),
                _ => None,
            }
        })
        .unwrap_or((49152, 65535))
}

/// The generic properties every device has, in listing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generic {
    /// `mtu`: UINT, runtime-writable.
    Mtu,
    /// `vnetid`: UINT, runtime-writable (the packet path is quiesced).
    Vnetid,
    /// `encap`: STRING, read-only.
    Encap,
    /// `search`: STRING, read-only.
    Search,
    /// `backend`: STRING, `tap` or `afpacket`.
    Backend,
    /// `ifname`: STRING, the TAP to create or the interface to bind.
    Ifname,
    /// `srcport_min`: UINT, low end of the outer UDP source port range.
    SrcportMin,
    /// `srcport_max`: UINT, high end of that range.
    SrcportMax,
    /// `flood`: UINT 0 or 1, dynamic mode: replicate broadcast and
    /// multicast to every destination the lookup knows.
    Flood,
    /// `lookup_timeout`: UINT, milliseconds a lookup may take before it is
    /// asked again.
    LookupTimeout,
    /// `cache_entry_bytes`: UINT, most bytes queued on one cache entry.
    CacheEntryBytes,
    /// `cache_device_bytes`: UINT, most bytes queued on the whole cache.
    CacheDeviceBytes,
    /// `cache_ttl`: UINT, seconds an answer is trusted (0: for ever).
    CacheTtl,
    /// `cache_max_entries`: UINT, most cache entries.
    CacheMaxEntries,
}

impl Generic {
    /// All generic properties, in order.
    pub const ALL: [Generic; 14] = [
        Generic::Mtu,
        Generic::Vnetid,
        Generic::Encap,
        Generic::Search,
        Generic::Backend,
        Generic::Ifname,
        Generic::SrcportMin,
        Generic::SrcportMax,
        Generic::Flood,
        Generic::LookupTimeout,
        Generic::CacheEntryBytes,
        Generic::CacheDeviceBytes,
        Generic::CacheTtl,
        Generic::CacheMaxEntries,
    ];

    /// The property name.
    pub fn name(self) -> &'static str {
        match self {
            Generic::Mtu => "mtu",
            Generic::Vnetid => "vnetid",
            Generic::Encap => "encap",
            Generic::Search => "search",
            Generic::Backend => "backend",
            Generic::Ifname => "ifname",
            Generic::SrcportMin => "srcport_min",
            Generic::SrcportMax => "srcport_max",
            Generic::Flood => "flood",
            Generic::LookupTimeout => "lookup_timeout",
            Generic::CacheEntryBytes => "cache_entry_bytes",
            Generic::CacheDeviceBytes => "cache_device_bytes",
            Generic::CacheTtl => "cache_ttl",
            Generic::CacheMaxEntries => "cache_max_entries",
        }
    }
}

/// Who answers for a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The daemon itself.
    Generic(Generic),
    /// The device's encapsulation instance.
    Encap,
    /// The device's lookup instance.
    Lookup,
}

/// Health of a device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Status {
    /// Working.
    #[default]
    Ok,
    /// Something is wrong; the message says what.
    Degraded(String),
}

/// The identity of an underlay endpoint plus virtual network: no two
/// devices may share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnderlayKey {
    /// Encapsulation plugin name.
    pub encap: String,
    /// Listen address (`in6_addr`).
    pub addr: [u8; 16],
    /// Listen port.
    pub port: u16,
    /// Virtual network id.
    pub vnetid: u64,
}

/// One overlay device.
pub struct Device {
    /// Daemon-assigned link id.
    pub linkid: u32,
    /// Link name.
    pub name: String,
    /// Encapsulation plugin.
    pub encap: Arc<EncapEntry>,
    /// Lookup plugin.
    pub search: Arc<LookupEntry>,
    /// The device's encapsulation instance, shared with the transmit thread.
    pub encap_dev: Arc<EncapInstance>,
    /// The device's lookup instance, shared with the lookup threads.
    pub lookup_dev: Arc<LookupInstance>,
    /// Virtual network id.
    pub vnetid: u64,
    /// MTU of the overlay (the inner frames' IP MTU).
    pub mtu: u64,
    /// Whether the device is activated.
    pub active: bool,
    /// Health, shared with the packet path (which may degrade it).
    pub health: Arc<Health>,
    /// `backend` property.
    pub backend: String,
    /// `ifname` property; unset when the link name is too long for one.
    pub ifname: Option<String>,
    /// Outer UDP source port range.
    pub srcports: (u16, u16),
    /// Packet counters (kept across activations).
    pub stats: Arc<DeviceStats>,
    /// Settings the transmit thread follows while running.
    pub tunables: Arc<TxTunables>,
    /// The packet path, while active.
    pub dp: Option<Dataplane>,
    /// Dynamic mode, while active: the target cache.
    pub dyn_target: Option<Arc<DynTarget>>,
    /// `flood` property.
    pub flood: bool,
    /// `lookup_timeout` property, milliseconds.
    pub lookup_timeout: u64,
    /// The `cache_*` properties.
    pub cache_limits: CacheLimits,
    /// Whether its lookups are handed to external servers (`ASSOCIATE`).
    pub associated: bool,
    /// Created with `TEMPORARY`: never written to the state file.
    pub temporary: bool,
    /// Recorded as active in the state file although not active: it was
    /// active when the daemon stopped and re-activating it at restore
    /// failed, so the next restart tries again.
    pub activate_on_restore: bool,
}

impl Device {
    /// A new, inactive device with fresh plugin instances. Nothing is
    /// registered anywhere: dropping it leaves no trace.
    pub fn new(
        linkid: u32,
        name: &str,
        encap: Arc<EncapEntry>,
        search: Arc<LookupEntry>,
        vnetid: u64,
    ) -> CtlResult<Device> {
        check_link_name(name)?;
        if vnetid > encap.max_vnetid() {
            return Err(CtlError::invalid(format!(
                "vnetid {vnetid} is out of range for {}: its {}-byte id allows 0-{}",
                encap.meta.name,
                encap.info.id_size,
                encap.max_vnetid()
            )));
        }
        let needs = encap.info.dest;
        if search.info.dest & needs != needs {
            return Err(CtlError::new(
                libc::ENOTSUP,
                format!(
                    "lookup plugin {} cannot provide the destinations {} needs",
                    search.meta.name, encap.meta.name
                ),
            ));
        }
        let health = Arc::new(Health::default());
        let stats = Arc::new(DeviceStats::default());
        let faults = Faults::new(name, health.clone(), stats.clone());
        let encap_dev = encap
            .plugin
            .new_device(faults.clone())
            .map_err(|e| prefixed(&encap.meta.name, e))?;
        let lookup_dev = search
            .plugin
            .new_device(needs, vnetid, faults)
            .map_err(|e| prefixed(&search.meta.name, e))?;
        let srcports = ephemeral_ports();
        let vlan = encap.info.flags & overlay_plugin_abi::ENCAP_F_VLAN_TAG != 0;
        Ok(Device {
            linkid,
            name: name.to_string(),
            encap,
            search,
            encap_dev: Arc::new(encap_dev),
            lookup_dev: Arc::new(lookup_dev),
            vnetid,
            mtu: MTU_DEFAULT,
            active: false,
            health,
            backend: BACKENDS[0].to_string(),
            ifname: (name.len() <= IFNAME_MAX).then(|| name.to_string()),
            srcports,
            stats,
            tunables: Arc::new(TxTunables::new(MTU_DEFAULT, vlan, srcports.0, srcports.1)),
            dp: None,
            dyn_target: None,
            flood: false,
            lookup_timeout: LOOKUP_TIMEOUT_DEFAULT,
            cache_limits: CacheLimits::default(),
            associated: false,
            temporary: false,
            activate_on_restore: false,
        })
    }

    /// The generic property declarations, given the loaded plugins.
    pub fn generic_info(&self, g: Generic, plugins: &Plugins) -> PropInfo {
        match g {
            Generic::Mtu => PropInfo::uint("mtu")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(MTU_DEFAULT)
                .range(MTU_MIN, MTU_MAX),
            Generic::Vnetid => PropInfo::uint("vnetid")
                .perm(perm::RW | perm::RUNTIME)
                .range(0, self.encap.max_vnetid()),
            Generic::Backend => PropInfo::string("backend")
                .perm(perm::RRW)
                .default_str(BACKENDS[0])
                .possible(&BACKENDS),
            Generic::Ifname => PropInfo::string("ifname").perm(perm::RRW),
            Generic::SrcportMin => PropInfo::uint("srcport_min")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(ephemeral_ports().0 as u64)
                .range(1, 65535),
            Generic::SrcportMax => PropInfo::uint("srcport_max")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(ephemeral_ports().1 as u64)
                .range(1, 65535),
            Generic::Flood => PropInfo::uint("flood")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(0)
                .range(0, 1),
            Generic::LookupTimeout => PropInfo::uint("lookup_timeout")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(LOOKUP_TIMEOUT_DEFAULT)
                .range(10, 600_000),
            Generic::CacheEntryBytes => PropInfo::uint("cache_entry_bytes")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(CacheLimits::default().entry_bytes as u64)
                .range(0, 1 << 30),
            Generic::CacheDeviceBytes => PropInfo::uint("cache_device_bytes")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(CacheLimits::default().device_bytes as u64)
                .range(0, 1 << 34),
            Generic::CacheTtl => PropInfo::uint("cache_ttl")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(0)
                .range(0, 365 * 86_400),
            Generic::CacheMaxEntries => PropInfo::uint("cache_max_entries")
                .perm(perm::RW | perm::RUNTIME)
                .default_uint(CacheLimits::default().max_entries as u64)
                .range(1, 1 << 26),
            Generic::Encap => PropInfo::string("encap")
                .perm(perm::READ)
                .possible(&plugins.encap_names()),
            Generic::Search => PropInfo::string("search")
                .perm(perm::READ)
                .possible(&plugins.lookup_names()),
        }
    }

    /// Every property of the device, in listing order: generic, then the
    /// encapsulation plugin's, then the lookup plugin's.
    pub fn properties(&self, plugins: &Plugins) -> Vec<(Owner, PropInfo)> {
        let mut all: Vec<(Owner, PropInfo)> = Generic::ALL
            .iter()
            .map(|g| (Owner::Generic(*g), self.generic_info(*g, plugins)))
            .collect();
        all.extend(
            self.encap
                .info
                .properties
                .iter()
                .map(|p| (Owner::Encap, p.clone())),
        );
        all.extend(
            self.lookup_dev
                .properties()
                .into_iter()
                .map(|p| (Owner::Lookup, p)),
        );
        all
    }

    /// The property called `name` with its position in the listing.
    pub fn property(&self, name: &str, plugins: &Plugins) -> CtlResult<(u32, Owner, PropInfo)> {
        self.properties(plugins)
            .into_iter()
            .enumerate()
            .find(|(_, (_, p))| p.name.as_str() == name)
            .map(|(i, (o, p))| (i as u32, o, p))
            .ok_or_else(|| {
                CtlError::not_found(format!(
                    "device {} has no property named '{name}'; list them with a PROPINFO dump",
                    self.name
                ))
            })
    }

    /// The encoded value of a property; empty when unset.
    pub fn getprop(&self, owner: Owner, name: &str) -> CtlResult<Vec<u8>> {
        match owner {
            Owner::Generic(g) => Ok(self.generic_value(g)),
            Owner::Encap => self.encap_dev.getprop(name),
            Owner::Lookup => self.lookup_dev.getprop(name),
        }
    }

    /// The encoded value of a generic property; empty when unset.
    pub fn generic_value(&self, g: Generic) -> Vec<u8> {
        match g {
            Generic::Mtu => PropValue::Uint(self.mtu).encode(),
            Generic::Vnetid => PropValue::Uint(self.vnetid).encode(),
            Generic::Encap => PropValue::Str(self.encap.meta.name.clone()).encode(),
            Generic::Search => PropValue::Str(self.search.meta.name.clone()).encode(),
            Generic::Backend => PropValue::Str(self.backend.clone()).encode(),
            Generic::Ifname => match &self.ifname {
                Some(n) => PropValue::Str(n.clone()).encode(),
                None => Vec::new(),
            },
            Generic::SrcportMin => PropValue::Uint(self.srcports.0 as u64).encode(),
            Generic::SrcportMax => PropValue::Uint(self.srcports.1 as u64).encode(),
            Generic::Flood => PropValue::Uint(self.flood as u64).encode(),
            Generic::LookupTimeout => PropValue::Uint(self.lookup_timeout).encode(),
            Generic::CacheEntryBytes => {
                PropValue::Uint(self.cache_limits.entry_bytes as u64).encode()
            }
            Generic::CacheDeviceBytes => {
                PropValue::Uint(self.cache_limits.device_bytes as u64).encode()
            }
            Generic::CacheTtl => {
                PropValue::Uint(self.cache_limits.ttl.map_or(0, |t| t.as_secs())).encode()
            }
            Generic::CacheMaxEntries => {
                PropValue::Uint(self.cache_limits.max_entries as u64).encode()
            }
        }
    }

    /// The device's health as STATUS reports it.
    pub fn status(&self) -> Status {
        crate::devices::notify::status_of(&self.health)
    }

    /// Sets a generic property after validation; the caller has checked
    /// permissions and uniqueness.
    pub fn set_generic(&mut self, g: Generic, value: &PropValue) {
        match (g, value) {
            (Generic::Mtu, PropValue::Uint(v)) => {
                self.mtu = *v;
                let vlan = self.encap.info.flags & overlay_plugin_abi::ENCAP_F_VLAN_TAG != 0;
                self.tunables.set_mtu(*v, vlan);
            }
            (Generic::Vnetid, PropValue::Uint(v)) => self.vnetid = *v,
            (Generic::Backend, PropValue::Str(v)) => self.backend = v.clone(),
            (Generic::Ifname, PropValue::Str(v)) => self.ifname = Some(v.clone()),
            (Generic::SrcportMin, PropValue::Uint(v)) => self.srcports.0 = *v as u16,
            (Generic::SrcportMax, PropValue::Uint(v)) => self.srcports.1 = *v as u16,
            (Generic::Flood, PropValue::Uint(v)) => self.flood = *v != 0,
            (Generic::LookupTimeout, PropValue::Uint(v)) => self.lookup_timeout = *v,
            (Generic::CacheEntryBytes, PropValue::Uint(v)) => {
                self.cache_limits.entry_bytes = *v as usize
            }
            (Generic::CacheDeviceBytes, PropValue::Uint(v)) => {
                self.cache_limits.device_bytes = *v as usize
            }
            (Generic::CacheTtl, PropValue::Uint(v)) => {
                self.cache_limits.ttl = (*v > 0).then(|| Duration::from_secs(*v))
            }
            (Generic::CacheMaxEntries, PropValue::Uint(v)) => {
                self.cache_limits.max_entries = *v as usize
            }
            _ => {}
        }
        self.apply_dynamic();
        if matches!(g, Generic::SrcportMin | Generic::SrcportMax) {
            self.tunables
                .set_sport_range(self.srcports.0, self.srcports.1);
        }
    }

    /// Passes the dynamic-mode settings on to the running target cache.
    pub fn apply_dynamic(&self) {
        let Some(t) = &self.dyn_target else { return };
        t.configure(&DynSettings {
            flood: self.flood,
            lookup_timeout_ms: self.lookup_timeout,
            vnetid: self.vnetid,
            limits: self.cache_limits,
        });
    }

    /// Checks a generic value beyond its declaration: interface names, and
    /// a source port range that stays ordered.
    pub fn check_generic(&self, g: Generic, value: &PropValue) -> CtlResult<()> {
        match (g, value) {
            (Generic::Ifname, PropValue::Str(v)) => check_ifname(v),
            (Generic::SrcportMin, PropValue::Uint(v)) if *v > self.srcports.1 as u64 => {
                Err(CtlError::invalid(format!(
                    "srcport_min {v} is above srcport_max {}; raise srcport_max first",
                    self.srcports.1
                )))
            }
            (Generic::SrcportMax, PropValue::Uint(v)) if *v < self.srcports.0 as u64 => {
                Err(CtlError::invalid(format!(
                    "srcport_max {v} is below srcport_min {}; lower srcport_min first",
                    self.srcports.0
                )))
            }
            _ => Ok(()),
        }
    }

    /// The underlay key the device would have with the encapsulation
    /// property `set` (name, value) applied, or with the current values when
    /// `set` is `None`; `Ok(None)` while the listen address is not known.
    ///
    /// A scratch instance carries the change, so the device itself is not
    /// touched until the change is known to be acceptable.
    pub fn underlay_key_with(
        &self,
        set: Option<(&str, &[u8])>,
        vnetid: u64,
    ) -> CtlResult<Option<UnderlayKey>> {
        let spec = match set {
            None => self.encap_dev.socket(),
            Some((name, value)) => {
                let scratch = self
                    .encap
                    .plugin
                    .new_device(self.encap_dev.faults().clone())?;
                for p in self.encap.info.properties.iter() {
                    let cur = self.encap_dev.getprop(&p.name)?;
                    if !cur.is_empty() && p.name.as_str() != name {
                        scratch.setprop(&p.name, &cur)?;
                    }
                }
                scratch.setprop(name, value)?;
                scratch.socket()
            }
        };
        Ok(spec.ok().map(|s| UnderlayKey {
            encap: self.encap.meta.name.clone(),
            addr: s.addr,
            port: s.port,
            vnetid,
        }))
    }

    /// Required properties without a value, by name.
    pub fn missing_required(&self) -> Vec<String> {
        let mut missing: Vec<String> = Vec::new();
        if self.ifname.is_none() {
            missing.push("ifname".to_string());
        }
        missing.extend(self.encap_dev.missing_required());
        missing.extend(self.lookup_dev.missing_required());
        missing
    }
}

fn prefixed(plugin: &str, e: CtlError) -> CtlError {
    CtlError::new(e.errno, format!("{plugin}: {}", e.msg))
}

/// Checks a link name: 1 to 31 bytes, starting with a letter, of letters,
/// digits, `_`, `-` and `.`.
pub fn check_link_name(name: &str) -> CtlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= LINK_NAMEMAX
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CtlError::invalid(format!(
            "invalid link name '{name}': use 1 to {LINK_NAMEMAX} letters, digits, '_', '-' or '.', starting with a letter"
        )))
    }
}

/// Validates a generic property value by its declaration.
pub fn validate_generic(info: &PropInfo, value: &[u8]) -> CtlResult<PropValue> {
    debug_assert!(matches!(info.ptype, PropType::UINT | PropType::STRING));
    info.validate(value).map_err(CtlError::from)
}

/// Checks a host interface name: 1 to 15 bytes, no '/', whitespace or ':',
/// not `.` or `..`.
pub fn check_ifname(name: &str) -> CtlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(CtlError::invalid(format!(
            "invalid interface name '{name}': use 1 to {IFNAME_MAX} printable characters without '/', ':' or spaces"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names() {
        for good in ["ov0", "overlay.vx-1", "a", &"x".repeat(31)] {
            assert!(check_link_name(good).is_ok(), "{good}");
        }
        for bad in ["", "0ov", "ov/0", "ov 0", &"x".repeat(32), "ov\u{e9}"] {
            let e = check_link_name(bad).unwrap_err();
            assert_eq!(e.errno, libc::EINVAL);
        }
    }
}
