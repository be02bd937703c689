//! The lookup plugin interface.

use crate::{PluginError, PropInfo};
use abi_stable::{
    sabi_trait,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// Lookup mode bit: one destination for every frame.
pub const MODE_POINT: u32 = 0x1;
/// Lookup mode bit: a destination per destination MAC, looked up on demand.
pub const MODE_DYNAMIC: u32 = 0x2;

/// An underlay destination. Which fields are meaningful follows the
/// encapsulation's destination kinds.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Point {
    /// Ethernet address ([`crate::dest::ETHERNET`]).
    pub mac: [u8; 6],
    /// IP address as an `in6_addr`, IPv4 v4-mapped ([`crate::dest::IP`]).
    pub ip: [u8; 16],
    /// Port, host order ([`crate::dest::PORT`]).
    pub port: u16,
}

/// What a lookup plugin is, declared once.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct LookupInfo {
    /// `MODE_*` bits it supports.
    pub modes: u32,
    /// The destination kinds it can provide ([`crate::dest`] bits); a device
    /// whose encapsulation needs other kinds cannot use it.
    pub dest: u32,
    /// Every property the plugin may expose (an instance may expose fewer,
    /// depending on the destination kinds).
    pub properties: RVec<PropInfo>,
}

/// A lookup plugin.
#[sabi_trait]
pub trait LookupPlugin: Send + Sync {
    /// The plugin's declaration.
    fn info(&self) -> LookupInfo;

    /// A new instance for a device whose encapsulation needs `dest` and
    /// whose virtual network id is `vnetid`. `ENOTSUP` when `dest` cannot be
    /// provided.
    #[sabi(last_prefix_field)]
    fn new_device(&self, dest: u32, vnetid: u64) -> RResult<LookupDeviceBox, PluginError>;
}

/// The per-device side of a lookup plugin.
#[sabi_trait]
pub trait LookupDevice: Send + Sync {
    /// The instance's mode (one `MODE_*` bit).
    fn mode(&self) -> u32;

    /// The properties of this instance.
    fn properties(&self) -> RVec<PropInfo>;

    /// The encoded value of a property; empty when unset.
    fn getprop(&self, name: RStr<'_>) -> RResult<RVec<u8>, PluginError>;

    /// Validates and stores a property value; on error the old value stays.
    fn setprop(&self, name: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), PluginError>;

    /// The names of required properties that have no value.
    fn missing_required(&self) -> RVec<RString>;

    /// Checks the configuration and acquires resources; called at activation.
    /// `EAGAIN` when something required is missing.
    fn start(&self) -> RResult<(), PluginError>;

    /// Undoes `start`; called at deactivation and delete.
    fn stop(&self);

    /// Point mode: the one destination of every frame.
    #[sabi(last_prefix_field)]
    fn default_point(&self) -> RResult<Point, PluginError>;

    /// The instance's private state, beyond its properties, as opaque
    /// bytes the daemon keeps in its state file across restarts (a learned
    /// table, a cursor into an external source). The daemon persists the
    /// properties itself, so an instance whose whole configuration is its
    /// properties returns nothing. Called on every change of the daemon's
    /// state; it should be quick.
    ///
    /// Added after the first version of the ABI: a plugin built before it
    /// gets this default, which saves nothing.
    fn save(&self) -> RResult<RVec<u8>, PluginError> {
        RResult::ROk(RVec::new())
    }

    /// Takes back what [`save`](LookupDevice::save) returned, on a fresh
    /// instance whose properties have already been restored, before
    /// `start`. Never called with empty bytes. An error leaves the device
    /// created and degraded with the error's message.
    ///
    /// The default (for plugins that save nothing, or predate this method)
    /// refuses any bytes, since it cannot know what they mean.
    fn restore(&self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        RResult::RErr(PluginError::not_supported(format!(
            "this lookup plugin keeps no saved state and cannot restore {} bytes",
            state.len()
        )))
    }
}

/// A boxed lookup plugin as it crosses the boundary.
pub type LookupPluginBox = LookupPlugin_TO<'static, RBox<()>>;
/// A boxed per-device lookup instance.
pub type LookupDeviceBox = LookupDevice_TO<'static, RBox<()>>;
