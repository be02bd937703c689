//! The stable ABI between `overlayd` and its plugins.
//!
//! # Theory
//!
//! An overlay answers two questions for every frame: *how is it put on the
//! wire* and *where does it go*. The daemon owns neither answer. It loads
//! **encapsulation plugins** (VXLAN, Geneve, ...) for the first and
//! **lookup plugins** (direct, files, ...) for the second, each a `.so` file
//! built against this crate, possibly by a third party, possibly with another
//! compiler release than the daemon.
//!
//! ```text
//!            overlayd (host)                               plugin .so
//!  +-------------------------------------+     +-------------------------------+
//!  | loader: lib_header_from_path(path)  |---->| root module PluginMod         |
//!  |   layout + version check            |     |   describe() -> PluginDesc    |
//!  |                                     |     |   new_encap() / new_lookup()  |
//!  | device registry                     |     |                               |
//!  |   per device: EncapDevice  ---------|---->| per-device state (properties) |
//!  |               LookupDevice ---------|---->|                               |
//!  | mux (one per underlay socket)       |     |                               |
//!  |   decap() on the shared plugin -----|---->| stateless decap               |
//!  +-------------------------------------+     +-------------------------------+
//! ```
//!
//! ## Pieces
//!
//! * [`PluginMod`] is the root module every plugin exports. `abi_stable`
//!   checks its whole type layout, recursively, when the library is loaded:
//!   a plugin built against an incompatible copy of this crate is refused
//!   before any of its code runs (see [`loader`]).
//! * An **encap plugin** ([`EncapPlugin`]) is shared by every device using
//!   it. Decapsulation is a method of the plugin, not of a device, because
//!   the device is only known once the header has been parsed (its virtual
//!   network id selects it). Each device gets its own [`EncapDevice`]
//!   instance holding that device's properties; encapsulation is a method of
//!   the instance.
//! * A **lookup plugin** ([`LookupPlugin`]) makes one [`LookupDevice`] per
//!   overlay device. In *point* mode it yields one destination for all
//!   traffic ([`LookupDevice::default_point`]).
//! * **Properties** ([`PropInfo`]) are the only configuration channel. Their
//!   values cross the boundary as bytes in one encoding shared with the
//!   control protocol: `INT` and `UINT` are 8 bytes in native order, `IP` is
//!   a 16-byte IPv6 address in network order (IPv4 as `::ffff:a.b.c.d`),
//!   `STRING` is UTF-8 with a terminating NUL counted in the size. No value
//!   is longer than [`PROP_SIZEMAX`] bytes.
//!
//! ## Guarantees each side relies on
//!
//! * Every method takes `&self`; objects are `Send + Sync`. The daemon calls
//!   property methods from its control thread while packet threads call
//!   `encap`/`decap` on the same objects, so plugins keep their state behind
//!   their own locks and must never make the packet path wait on a property
//!   call longer than a short, uncontended lock.
//! * Per-packet calls write into buffers the host owns ([`EncapDevice::encap`]
//!   writes the header into a host slice; [`EncapPlugin::decap`] only reads).
//!   Nothing is allocated per packet on either side.
//! * A panic never crosses the boundary. The [`kit`] adapters wrap every
//!   entry point in `catch_unwind` inside the plugin and turn a panic into a
//!   [`PluginError`] with `panicked` set; the host counts it and degrades the
//!   device. Plugins therefore build with `panic = "unwind"` (the default).
//! * Plugins are never unloaded; a plugin's code lives as long as the daemon.
//!
//! ## Writing a plugin
//!
//! Implement the plain Rust traits of [`kit`] ([`kit::Encap`] and
//! [`kit::EncapInstance`], or [`kit::Lookup`] and [`kit::LookupInstance`]),
//! declare properties with the [`PropInfo`] builders and keep their values
//! in a [`prop::PropStore`], write headers with the bounds-checked helpers
//! of [`buf`], and end with [`export_encap_plugin!`] or
//! [`export_lookup_plugin!`]. The crate is a `cdylib` that also depends on
//! `abi_stable` directly. A complete encapsulation plugin:
//!
//! ```
//! use overlay_plugin_abi::{
//!     buf, dest,
//!     kit::{Encap, EncapInstance},
//!     prop::PropStore,
//!     DecapInfo, EncapInfo, PluginError, PropInfo, SocketSpec,
//! };
//!
//! const MAGIC: u16 = 0x6f76;
//! const HEADER_LEN: usize = 8; // magic, 2 reserved bytes, 32-bit id
//!
//! fn properties() -> Vec<PropInfo> {
//!     vec![
//!         PropInfo::ip("tiny/listen_ip").required(),
//!         PropInfo::uint("tiny/listen_port").default_uint(7000).range(1, 65535),
//!     ]
//! }
//!
//! pub struct Tiny;
//! pub struct TinyDevice(PropStore);
//!
//! impl Encap for Tiny {
//!     type Instance = TinyDevice;
//!     fn info(&self) -> EncapInfo {
//!         EncapInfo {
//!             id_size: 4,
//!             flags: 0,
//!             dest: dest::IP | dest::PORT,
//!             max_header_len: HEADER_LEN as u32,
//!             properties: properties().into(),
//!         }
//!     }
//!     fn new_instance(&self) -> Result<TinyDevice, PluginError> {
//!         Ok(TinyDevice(PropStore::new(properties())))
//!     }
//!     fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
//!         if buf::get_u16(packet, 0)? != MAGIC {
//!             return Err(PluginError::invalid("not a tiny header"));
//!         }
//!         let vnetid = buf::get_u32(packet, 4)? as u64;
//!         Ok(DecapInfo { vnetid, header_len: HEADER_LEN as u32, flags: 0 })
//!     }
//! }
//!
//! impl EncapInstance for TinyDevice {
//!     fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
//!         self.0.get(name)
//!     }
//!     fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError> {
//!         self.0.set(name, value).map(|_| ())
//!     }
//!     fn missing_required(&self) -> Vec<String> {
//!         self.0.missing_required()
//!     }
//!     fn socket(&self) -> Result<SocketSpec, PluginError> {
//!         SocketSpec::udp_from_props(&self.0, "tiny/listen_ip", "tiny/listen_port", 7000)
//!     }
//!     fn header_len(&self) -> usize {
//!         HEADER_LEN
//!     }
//!     fn encap(&self, vnetid: u64, _frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError> {
//!         buf::put_u16(header, 0, MAGIC)?;
//!         buf::zero(header, 2, 2)?;
//!         buf::put_uint(header, 4, vnetid, 4)?;
//!         Ok(HEADER_LEN)
//!     }
//! }
//!
//! overlay_plugin_abi::export_encap_plugin! {
//!     name: "tiny",
//!     version: "0.1.0",
//!     new: Tiny,
//! }
//! # // What the daemon does through the ABI, in miniature:
//! # let dev = Tiny.new_instance().unwrap();
//! # let mut hdr = [0u8; 8];
//! # assert_eq!(dev.encap(42, &[0; 14], &mut hdr).unwrap(), 8);
//! # assert_eq!(Tiny.decap(&hdr).unwrap().vnetid, 42);
//! ```
//!
//! `docs/plugins.md` in the repository walks through building, installing
//! and debugging plugins, and states the compatibility policy.
//!
//! ## Versions
//!
//! The package name and version of this crate are part of the load check.
//! Within a major version a plugin may be *newer* than the daemon (more
//! trailing methods), never older in a way that removes something the daemon
//! calls. Any change the daemon must call is a new major version. See
//! `docs/plugins.md` for the full policy.
#![allow(non_local_definitions)]
#![deny(missing_docs)]

pub use abi_stable;

pub mod buf;
pub mod csum;
pub mod encap;
pub mod error;
pub mod kit;
pub mod loader;
pub mod lookup;
pub mod mac;
pub mod prop;
pub mod proxy;

pub use encap::{
    DecapInfo, EncapDevice, EncapDeviceBox, EncapDevice_TO, EncapInfo, EncapPlugin, EncapPluginBox,
    EncapPlugin_TO, SockOpt, SocketSpec, DECAP_F_OAM, ENCAP_F_VLAN_TAG,
};
pub use error::PluginError;
pub use lookup::{
    Action, LookupAnswer, LookupDevice, LookupDeviceBox, LookupDevice_TO, LookupInfo, LookupPlugin,
    LookupPluginBox, LookupPlugin_TO, LookupRequest, Point, MODE_DYNAMIC, MODE_POINT, REQ_F_FLOOD,
};
pub use mac::Mac;
pub use prop::{PropInfo, PropRange, PropType, PROP_NAMELEN, PROP_SIZEMAX};

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
    StableAbi,
};

/// Destination kinds an encapsulation needs and a lookup can provide (bits).
pub mod dest {
    /// An Ethernet address.
    pub const ETHERNET: u32 = 0x1;
    /// An IP address (IPv4 or IPv6).
    pub const IP: u32 = 0x2;
    /// A UDP or TCP port.
    pub const PORT: u32 = 0x4;
    /// Every bit this version of the ABI knows.
    pub const ALL: u32 = ETHERNET | IP | PORT;
}

/// What a plugin is. A `u8` newtype rather than an enum, so that a later
/// version can add kinds without breaking the layout.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PluginKind(pub u8);

impl PluginKind {
    /// Turns frames into underlay payloads and back.
    pub const ENCAP: PluginKind = PluginKind(1);
    /// Decides where a frame is sent.
    pub const LOOKUP: PluginKind = PluginKind(2);

    /// The lower-case word used in logs and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::ENCAP => "encap",
            PluginKind::LOOKUP => "lookup",
            _ => "unknown",
        }
    }
}

/// The identity a plugin declares before anything else is called.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct PluginDesc {
    /// Unique plugin name, 1 to 31 bytes of `[a-z0-9_-]`; it prefixes the
    /// plugin's property names (`vxlan/listen_ip`).
    pub name: RStr<'static>,
    /// Encap or lookup.
    pub kind: PluginKind,
    /// The plugin's own version, free-form (usually its crate version).
    pub version: RStr<'static>,
}

/// The root module every plugin exports (through [`export_encap_plugin!`] or [`export_lookup_plugin!`]).
///
/// A prefix type: fields may be appended after the last prefix field in a
/// later minor version; the daemon treats an absent field as a refusal.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, kind and version of the plugin.
    pub describe: extern "C" fn() -> PluginDesc,
    /// Makes the encapsulation plugin object. Lookup plugins return an
    /// error (`ENOTSUP`).
    pub new_encap: extern "C" fn() -> RResult<EncapPluginBox, PluginError>,
    /// Makes the lookup plugin object. Encap plugins return an error.
    #[sabi(last_prefix_field)]
    pub new_lookup: extern "C" fn() -> RResult<LookupPluginBox, PluginError>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "overlay_plugin";
    const NAME: &'static str = "overlay_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this interface crate, as the loader compares it.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");
