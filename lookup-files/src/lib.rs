//! The `files` lookup plugin: dynamic mode, every answer taken from a JSON
//! file that maps each host's MAC address to its underlay destination and,
//! optionally, its overlay IPv4 and IPv6 addresses and its DHCP server.
//!
//! For each frame whose destination MAC missed the device's target cache
//! the daemon asks [`FilesDevice::lookup`], which decides, in this order:
//!
//! 1. ARP: answered from the `arp` addresses (an injected reply); never
//!    forwarded.
//! 2. IPv6 to a `33:33:..` address that is Neighbour Discovery: a
//!    Neighbour Solicitation is answered from the `ndp` addresses (an
//!    injected advertisement); other Neighbour Discovery is dropped.
//! 3. IPv4 broadcast from a host whose entry has `dhcp-proxy`, when it is
//!    a DHCP request: re-sent, unicast to that server.
//! 4. Any other broadcast or multicast: replicated to every underlay
//!    destination of the file when the device floods, else dropped.
//! 5. Unicast: the destination MAC's underlay address and port.
//!
//! The file is read at `start` and again whenever `files/config` is set on
//! an active device; a reload swaps the whole table at once and reports
//! the MACs whose destination changed through `take_stale`. The file
//! format and every decision are described in `docs/files.md`.

pub mod table;

use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    prop::{perm, PropStore, PropValue},
    proxy::{self, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6},
    LookupAnswer, LookupInfo, LookupRequest, PluginError, Point, PropInfo, MODE_DYNAMIC,
};
use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
};
use table::Table;

/// The path of the hosts file.
pub const CONFIG: &str = "files/config";
/// The underlay port of entries without one.
pub const DEFAULT_PORT: &str = "files/default_port";
/// Counter: unicast lookups for a MAC the file does not have.
pub const MISSES: &str = "files/misses";
/// Counter: ARP requests answered.
pub const ARP: &str = "files/arp";
/// Counter: Neighbour Solicitations answered.
pub const NDP: &str = "files/ndp";
/// Counter: DHCP requests redirected to a server.
pub const DHCP: &str = "files/dhcp";
/// Counter: frames dropped for any other reason.
pub const DROPPED: &str = "files/dropped";

/// The port used when neither the entry nor `files/default_port` gives
/// one: the VXLAN port.
const PORT_DEFAULT: u64 = 4789;

const COUNTERS: [&str; 5] = [MISSES, ARP, NDP, DHCP, DROPPED];

fn config_prop() -> PropInfo {
    PropInfo::string(CONFIG).perm(perm::RRW).runtime()
}

fn default_port_prop() -> PropInfo {
    PropInfo::uint(DEFAULT_PORT)
        .perm(perm::RW)
        .default_uint(PORT_DEFAULT)
        .range(1, 65535)
        .runtime()
}

fn counter_props() -> impl Iterator<Item = PropInfo> {
    COUNTERS.iter().map(|n| PropInfo::uint(n).read_only())
}

/// The plugin object.
pub struct Files;

impl Lookup for Files {
    type Instance = FilesDevice;

    fn info(&self) -> LookupInfo {
        let mut props = vec![config_prop(), default_port_prop()];
        props.extend(counter_props());
        LookupInfo {
            modes: MODE_DYNAMIC,
            dest: dest::IP | dest::PORT,
            properties: props.into(),
        }
    }

    fn new_instance(&self, dest: u32, _vnetid: u64) -> Result<FilesDevice, PluginError> {
        if dest == 0 || dest & !(dest::IP | dest::PORT) != 0 {
            return Err(PluginError::not_supported(format!(
                "files provides IP and port destinations; this encapsulation needs kinds {dest:#x}"
            )));
        }
        let mut props = vec![config_prop()];
        // The default port only matters when the encapsulation needs ports.
        if dest & dest::PORT != 0 {
            props.push(default_port_prop());
        }
        props.extend(counter_props());
        Ok(FilesDevice {
            dest,
            props: PropStore::new(props),
            table: RwLock::new(None),
            control: Mutex::new(()),
            stale: Mutex::new(BTreeSet::new()),
            counters: Counters::default(),
        })
    }
}

/// The instance's counters, kept for its whole life (across stop and
/// start) and read through `getprop`.
#[derive(Default)]
struct Counters {
    misses: AtomicU64,
    arp: AtomicU64,
    ndp: AtomicU64,
    dhcp: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn get(&self, name: &str) -> Option<&AtomicU64> {
        Some(match name {
            MISSES => &self.misses,
            ARP => &self.arp,
            NDP => &self.ndp,
            DHCP => &self.dhcp,
            DROPPED => &self.dropped,
            _ => return None,
        })
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One device's table.
pub struct FilesDevice {
    dest: u32,
    props: PropStore,
    /// The table while started. Lookups clone the `Arc` and work on that
    /// copy, so a reload never shows them half of each table.
    table: RwLock<Option<Arc<Table>>>,
    /// Serialises start, stop and reloads, so that a reload cannot revive
    /// a table that `stop` has just freed, and two reloads cannot
    /// interleave their table and their property value.
    control: Mutex<()>,
    /// MACs whose destination changed in a reload, until `take_stale`.
    stale: Mutex<BTreeSet<[u8; 6]>>,
    counters: Counters,
}

impl FilesDevice {
    fn default_port(&self) -> u16 {
        self.props
            .uint(DEFAULT_PORT)
            .unwrap_or(PORT_DEFAULT)
            .clamp(1, 65535) as u16
    }

    fn load(&self, path: &str, port: u16) -> Result<Table, PluginError> {
        Table::load(Path::new(path), self.dest, port).map_err(|e| PluginError::new(e.errno, e.msg))
    }

    /// While started, replaces the table with `path` read with `port`,
    /// noting the MACs whose answer changed; nothing changes when the file
    /// cannot be read. The caller holds `control`.
    fn reload(&self, path: &str, port: u16) -> Result<(), PluginError> {
        let Some(old) = self.current() else {
            return Ok(());
        };
        let new = self.load(path, port)?;
        let changed = old.changed(&new);
        self.set_table(Some(Arc::new(new)));
        self.stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(changed);
        Ok(())
    }

    fn current(&self) -> Option<Arc<Table>> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_table(&self, table: Option<Arc<Table>>) {
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table;
    }

    fn drop_counted(&self) -> LookupAnswer {
        bump(&self.counters.dropped);
        LookupAnswer::drop_frame()
    }

    /// Broadcast and multicast: every underlay destination but the
    /// sender's own (its other local hosts see the frame on the host
    /// itself), when the device floods.
    fn replicate(&self, table: &Table, req: &LookupRequest) -> LookupAnswer {
        if !req.flood() {
            return self.drop_counted();
        }
        let own = table.point(&req.src);
        let points: Vec<Point> = table
            .points()
            .iter()
            .filter(|p| Some(**p) != own)
            .copied()
            .collect();
        if points.is_empty() {
            return self.drop_counted();
        }
        LookupAnswer::replicate(points)
    }

    fn decide(&self, table: &Table, req: &LookupRequest, frame: &[u8]) -> LookupAnswer {
        if req.ethertype == ETHERTYPE_ARP {
            // The table is authoritative for ARP: requests are answered
            // from it, everything else (replies, announcements, addresses
            // it does not know) stops here.
            return match proxy::proxy_arp(frame, |ip| table.arp(ip)) {
                Ok(reply) => {
                    bump(&self.counters.arp);
                    LookupAnswer::inject(reply)
                }
                Err(_) => self.drop_counted(),
            };
        }
        if req.ethertype == ETHERTYPE_IPV6 && req.dst[..2] == [0x33, 0x33] {
            match proxy::proxy_ndp(frame, |ip| table.ndp(ip)) {
                Ok(advert) => {
                    bump(&self.counters.ndp);
                    return LookupAnswer::inject(advert);
                }
                // Not Neighbour Discovery (MLD, mDNS, ...): group traffic.
                Err(e) if e.is_other_traffic() => {}
                Err(_) => return self.drop_counted(),
            }
        }
        if req.ethertype == ETHERTYPE_IPV4
            && req.is_broadcast()
            && table.dhcp_server(req.src).is_some()
        {
            match proxy::proxy_dhcp(frame, |client| table.dhcp_server(client)) {
                Ok(redirected) => {
                    bump(&self.counters.dhcp);
                    return LookupAnswer::resend(redirected);
                }
                // Some other IPv4 broadcast from that host.
                Err(e) if e.is_other_traffic() => {}
                Err(_) => return self.drop_counted(),
            }
        }
        if req.is_group() {
            return self.replicate(table, req);
        }
        match table.point(&req.dst) {
            Some(point) => LookupAnswer::respond(point),
            None => {
                bump(&self.counters.misses);
                LookupAnswer::drop_frame()
            }
        }
    }
}

impl LookupInstance for FilesDevice {
    fn mode(&self) -> u32 {
        MODE_DYNAMIC
    }

    fn properties(&self) -> Vec<PropInfo> {
        self.props.infos().to_vec()
    }

    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        match self.counters.get(name) {
            Some(c) => Ok(PropValue::Uint(c.load(Ordering::Relaxed)).encode()),
            None => self.props.get(name),
        }
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        if self.counters.get(name).is_some() {
            return Err(PluginError::new(
                libc::EPERM,
                format!("{name} is a counter and cannot be set"),
            ));
        }
        if name == DEFAULT_PORT {
            let port = match self.props.info(DEFAULT_PORT)?.validate(value)? {
                PropValue::Uint(p) => p as u16,
                other => return Err(PluginError::invalid(format!("{DEFAULT_PORT}: {other}"))),
            };
            // Active: the entries without a port move to the new one, read
            // from the file as it is now (a reload with the new port).
            let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(path) = self.props.string(CONFIG) {
                self.reload(&path, port)?;
            }
            return self.props.set(name, value).map(|_| ());
        }
        if name != CONFIG {
            return self.props.set(name, value).map(|_| ());
        }
        let path = match self.props.info(CONFIG)?.validate(value)? {
            PropValue::Str(s) => s,
            other => return Err(PluginError::invalid(format!("{CONFIG}: {other}"))),
        };
        if !path.starts_with('/') {
            return Err(PluginError::invalid(format!(
                "{CONFIG}: '{path}' is not an absolute path; give the file's full path, \
                 such as /etc/overlayd/hosts.json"
            )));
        }
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        // Active: the new (or the same) file replaces the table now, or
        // nothing changes at all.
        self.reload(&path, self.default_port())?;
        self.props.set(CONFIG, value).map(|_| ())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn start(&self) -> Result<(), PluginError> {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.props.string(CONFIG).ok_or_else(|| {
            PluginError::new(
                libc::EAGAIN,
                format!("files needs {CONFIG}, the path of its hosts file, before it can start"),
            )
        })?;
        let table = self.load(&path, self.default_port())?;
        self.set_table(Some(Arc::new(table)));
        Ok(())
    }

    fn stop(&self) {
        let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        self.set_table(None);
        // The daemon forgets a stopped device's cache; nothing is stale.
        self.stale
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn default_point(&self) -> Result<Point, PluginError> {
        Err(PluginError::not_supported(
            "files is a dynamic lookup: it has a destination per MAC, not one for the device",
        ))
    }

    fn lookup(&self, req: &LookupRequest, frame: &[u8]) -> Result<LookupAnswer, PluginError> {
        let table = self.current().ok_or_else(|| {
            PluginError::new(libc::EAGAIN, "files is not started: it has no table yet")
        })?;
        Ok(self.decide(&table, req, frame))
    }

    fn take_stale(&self) -> Vec<[u8; 6]> {
        std::mem::take(&mut *self.stale.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .collect()
    }
}

overlay_plugin_abi::export_lookup_plugin! {
    name: "files",
    version: env!("CARGO_PKG_VERSION"),
    new: Files,
}

#[cfg(test)]
mod tests;
