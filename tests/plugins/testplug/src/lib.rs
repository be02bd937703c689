//! A test plugin. With `OVERLAY_TESTPLUG` unset (or `panicky`) it is the
//! `panicky` encapsulation: a real 8-byte header (magic `PK`, two zero
//! bytes, 32-bit id) over UDP, whose property `panicky/panic_on` makes it
//! panic in `encap`, in `decap` or in `getprop`. Other values make it
//! register in a way the loader must refuse:
//!
//! | value | registration |
//! |---|---|
//! | `empty-name` | an empty plugin name |
//! | `bad-name` | a name with upper-case letters and a space |
//! | `id-size-0`, `id-size-9` | an id size outside 1..=8 |
//! | `no-dest` | no destination kind |
//! | `lookup-no-mode` | a lookup plugin (`nomode`) with no mode |
//!
//! `sick-lookup` makes it the `sick` lookup plugin instead, a dynamic one
//! whose `lookup` never answers: by property `sick/on_lookup`, it blocks
//! for ever (`block`) or panics (`panic`); with `sick/on_save` `panic`,
//! saving its state for the state file panics too.

use abi_stable::{
    export_root_module,
    prefix_type::PrefixTypeTrait,
    std_types::{RResult, RStr},
};
use overlay_plugin_abi::{
    buf, dest,
    kit::{self, Encap, EncapInstance, Lookup, LookupInstance},
    prop::{ip_to_in6, PropStore},
    DecapInfo, EncapInfo, EncapPluginBox, LookupInfo, LookupPluginBox, PluginDesc, PluginError,
    LookupAnswer, LookupRequest, PluginKind, PluginMod, PluginModRef, Point, PropInfo, SocketSpec,
    MODE_DYNAMIC, MODE_POINT,
};
use std::sync::{
    atomic::{AtomicBool, AtomicU8, Ordering},
    Arc,
};

const HEADER_LEN: usize = 8;
const MAGIC: u16 = 0x504b;
const LISTEN_IP: &str = "panicky/listen_ip";
const LISTEN_PORT: &str = "panicky/listen_port";
const PANIC_ON: &str = "panicky/panic_on";
const TARGETS: [&str; 4] = ["none", "encap", "decap", "getprop"];

fn mode() -> String {
    std::env::var("OVERLAY_TESTPLUG").unwrap_or_else(|_| "panicky".into())
}

extern "C" fn describe() -> PluginDesc {
    let m = mode();
    let (name, kind) = match m.as_str() {
        "empty-name" => ("", PluginKind::ENCAP),
        "bad-name" => ("Bad Name", PluginKind::ENCAP),
        "lookup-no-mode" => ("nomode", PluginKind::LOOKUP),
        "sick-lookup" => ("sick", PluginKind::LOOKUP),
        _ => ("panicky", PluginKind::ENCAP),
    };
    PluginDesc {
        name: RStr::from_str(name),
        kind,
        version: RStr::from_str(env!("CARGO_PKG_VERSION")),
    }
}

extern "C" fn new_encap() -> RResult<EncapPluginBox, PluginError> {
    kit::encap_box(Panicky::default)
}

extern "C" fn new_lookup() -> RResult<LookupPluginBox, PluginError> {
    if mode() == "sick-lookup" {
        kit::lookup_box(|| Sick)
    } else {
        kit::lookup_box(|| NoMode)
    }
}

/// The root module, written out rather than through the export macros
/// because its kind depends on the environment.
#[export_root_module]
pub fn overlay_plugin_root_module() -> PluginModRef {
    PluginMod {
        describe,
        new_encap,
        new_lookup,
    }
    .leak_into_prefix()
}

fn properties() -> Vec<PropInfo> {
    vec![
        PropInfo::ip(LISTEN_IP).required(),
        PropInfo::uint(LISTEN_PORT).default_uint(7100).range(1, 65535),
        PropInfo::string(PANIC_ON)
            .default_str("none")
            .possible(&TARGETS)
            .runtime(),
    ]
}

#[derive(Default)]
struct Panicky {
    /// Set by any device's `panic_on=decap`: decap belongs to the plugin.
    decap_panics: Arc<AtomicBool>,
}

impl Encap for Panicky {
    type Instance = PanickyDevice;

    fn info(&self) -> EncapInfo {
        let m = mode();
        EncapInfo {
            id_size: match m.as_str() {
                "id-size-0" => 0,
                "id-size-9" => 9,
                _ => 4,
            },
            flags: 0,
            dest: if m == "no-dest" {
                0
            } else {
                dest::IP | dest::PORT
            },
            max_header_len: HEADER_LEN as u32,
            properties: properties().into(),
        }
    }

    fn new_instance(&self) -> Result<PanickyDevice, PluginError> {
        Ok(PanickyDevice {
            props: PropStore::new(properties()),
            target: AtomicU8::new(0),
            decap_panics: self.decap_panics.clone(),
        })
    }

    fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
        if buf::get_u16(packet, 0)? != MAGIC {
            return Err(PluginError::invalid("not a panicky header"));
        }
        let vnetid = buf::get_u32(packet, 4)? as u64;
        if self.decap_panics.load(Ordering::Relaxed) {
            panic!("decap of a packet for id {vnetid}, as panicky/panic_on asks");
        }
        Ok(DecapInfo {
            vnetid,
            header_len: HEADER_LEN as u32,
            flags: 0,
        })
    }
}

struct PanickyDevice {
    props: PropStore,
    /// Index into TARGETS, read on the packet path without a lock.
    target: AtomicU8,
    decap_panics: Arc<AtomicBool>,
}

impl EncapInstance for PanickyDevice {
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        if name != PANIC_ON && self.target.load(Ordering::Relaxed) == 3 {
            panic!("getprop of {name}, as panicky/panic_on asks");
        }
        self.props.get(name)
    }

    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        let v = self.props.set(name, value)?;
        if name == PANIC_ON {
            let i = TARGETS
                .iter()
                .position(|t| Some(*t) == v.as_str())
                .unwrap_or(0);
            self.target.store(i as u8, Ordering::Relaxed);
            self.decap_panics.store(i == 2, Ordering::Relaxed);
        }
        Ok(())
    }

    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }

    fn socket(&self) -> Result<SocketSpec, PluginError> {
        let ip = self
            .props
            .ip(LISTEN_IP)
            .ok_or_else(|| PluginError::invalid(format!("{LISTEN_IP} is not set")))?;
        Ok(SocketSpec {
            domain: if ip.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            },
            sotype: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
            addr: ip_to_in6(ip),
            port: self.props.uint(LISTEN_PORT).unwrap_or(7100) as u16,
            options: Default::default(),
        })
    }

    fn header_len(&self) -> usize {
        HEADER_LEN
    }

    fn encap(&self, vnetid: u64, frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError> {
        if self.target.load(Ordering::Relaxed) == 1 {
            panic!(
                "encap of a {}-byte frame, as panicky/panic_on asks",
                frame.len()
            );
        }
        buf::put_u16(header, 0, MAGIC)?;
        buf::zero(header, 2, 2)?;
        buf::put_uint(header, 4, vnetid, 4)?;
        Ok(HEADER_LEN)
    }
}

/// A lookup plugin declaring no mode: refused at load, so its instance
/// only exists to complete the type.
struct NoMode;

impl Lookup for NoMode {
    type Instance = NoModeDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: 0,
            dest: dest::IP | dest::PORT,
            properties: Default::default(),
        }
    }

    fn new_instance(&self, _dest: u32, _vnetid: u64) -> Result<NoModeDevice, PluginError> {
        Err(PluginError::not_supported("nomode makes no devices"))
    }
}

struct NoModeDevice;

impl LookupInstance for NoModeDevice {
    fn mode(&self) -> u32 {
        MODE_POINT
    }
    fn properties(&self) -> Vec<PropInfo> {
        Vec::new()
    }
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::not_found(format!("no property named {name}")))
    }
    fn setprop(&self, name: &str, _value: &[u8]) -> Result<(), PluginError> {
        Err(PluginError::not_found(format!("no property named {name}")))
    }
    fn missing_required(&self) -> Vec<String> {
        Vec::new()
    }
    fn start(&self) -> Result<(), PluginError> {
        Err(PluginError::not_supported("nomode makes no devices"))
    }
    fn stop(&self) {}
    fn default_point(&self) -> Result<Point, PluginError> {
        Err(PluginError::not_supported("nomode makes no devices"))
    }
}

const ON_LOOKUP: &str = "sick/on_lookup";
const ON_SAVE: &str = "sick/on_save";

fn sick_properties() -> Vec<PropInfo> {
    vec![
        PropInfo::string(ON_LOOKUP)
            .default_str("panic")
            .possible(&["block", "panic"])
            .runtime(),
        PropInfo::string(ON_SAVE)
            .default_str("ok")
            .possible(&["ok", "panic"])
            .runtime(),
    ]
}

/// A dynamic lookup whose every lookup blocks for ever or panics.
struct Sick;

impl Lookup for Sick {
    type Instance = SickDevice;

    fn info(&self) -> LookupInfo {
        LookupInfo {
            modes: MODE_DYNAMIC,
            dest: dest::IP | dest::PORT,
            properties: sick_properties().into(),
        }
    }

    fn new_instance(&self, _dest: u32, _vnetid: u64) -> Result<SickDevice, PluginError> {
        Ok(SickDevice {
            props: PropStore::new(sick_properties()),
        })
    }
}

struct SickDevice {
    props: PropStore,
}

impl LookupInstance for SickDevice {
    fn mode(&self) -> u32 {
        MODE_DYNAMIC
    }
    fn properties(&self) -> Vec<PropInfo> {
        sick_properties()
    }
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
        self.props.get(name)
    }
    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
        self.props.set(name, value).map(|_| ())
    }
    fn missing_required(&self) -> Vec<String> {
        self.props.missing_required()
    }
    fn start(&self) -> Result<(), PluginError> {
        Ok(())
    }
    fn stop(&self) {}
    fn default_point(&self) -> Result<Point, PluginError> {
        Err(PluginError::not_supported("sick is a dynamic lookup"))
    }
    fn save(&self) -> Result<Vec<u8>, PluginError> {
        if self.props.string(ON_SAVE).as_deref() == Some("panic") {
            panic!("saving, as sick/on_save asks");
        }
        Ok(Vec::new())
    }
    fn lookup(&self, req: &LookupRequest, _frame: &[u8]) -> Result<LookupAnswer, PluginError> {
        if self.props.string(ON_LOOKUP).as_deref() == Some("block") {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        panic!("lookup of {:02x?}, as sick/on_lookup asks", req.dst);
    }
}
