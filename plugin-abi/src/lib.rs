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
//! ## Versions
//!
//! The package name and version of this crate are part of the load check.
//! Within a major version a plugin may be *newer* than the daemon (more
//! trailing methods), never older in a way that removes something the daemon
//! calls. Any change the daemon must call is a new major version. See
//! `docs/plugins.md` for the full policy.
#![allow(non_local_definitions)]
#![warn(missing_docs)]

pub use abi_stable;

pub mod encap;
pub mod error;
pub mod kit;
pub mod loader;
pub mod lookup;
pub mod prop;

pub use encap::{
    DecapInfo, EncapDevice, EncapDeviceBox, EncapDevice_TO, EncapInfo, EncapPlugin, EncapPluginBox,
    EncapPlugin_TO, SockOpt, SocketSpec, DECAP_F_OAM, ENCAP_F_VLAN_TAG,
};
pub use error::PluginError;
pub use lookup::{
    LookupDevice, LookupDeviceBox, LookupDevice_TO, LookupInfo, LookupPlugin, LookupPluginBox,
    LookupPlugin_TO, Point, MODE_DYNAMIC, MODE_POINT,
};
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

/// The root module every plugin exports (through [`export_plugin!`]).
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
