//! What a plugin author writes against: plain Rust traits, adapters that
//! turn them into the ABI objects with every entry point guarded by
//! `catch_unwind`, and the macros that export the root module.
//!
//! A complete encapsulation plugin implements [`Encap`] and
//! [`EncapInstance`] and ends with
//!
//! ```ignore
//! overlay_plugin_abi::export_encap_plugin! {
//!     name: "vxlan",
//!     version: env!("CARGO_PKG_VERSION"),
//!     new: Vxlan::new(),
//! }
//! ```
//!
//! The plugin crate must also depend on `abi_stable` directly, because the
//! export attribute expands to paths under `::abi_stable`.

use crate::{
    DecapInfo, EncapDevice, EncapDeviceBox, EncapDevice_TO, EncapInfo, EncapPlugin, EncapPluginBox,
    EncapPlugin_TO, LookupAnswer, LookupDevice, LookupDeviceBox, LookupDevice_TO, LookupInfo,
    LookupPlugin, LookupPluginBox, LookupPlugin_TO, LookupRequest, PluginError, Point, PropInfo,
    SocketSpec,
};
use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RResult, RSlice, RSliceMut, RStr, RString, RVec},
};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into a [`PluginError`] for `call`.
#[inline]
pub fn guard<R>(call: &str, f: impl FnOnce() -> Result<R, PluginError>) -> RResult<R, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into(),
        Err(payload) => RResult::RErr(PluginError::from_panic(call, &*payload)),
    }
}

/// Runs an infallible `f`; a panic yields `fallback`.
#[inline]
fn guard_or<R>(f: impl FnOnce() -> R, fallback: R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// An encapsulation plugin, shared by all devices that use it.
pub trait Encap: Send + Sync + 'static {
    /// The per-device instance.
    type Instance: EncapInstance;
    /// The plugin's declaration.
    fn info(&self) -> EncapInfo;
    /// A new per-device instance with default properties.
    fn new_instance(&self) -> Result<Self::Instance, PluginError>;
    /// Parses the header at the start of `packet`.
    fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError>;
}

/// The per-device side of an encapsulation plugin.
pub trait EncapInstance: Send + Sync + 'static {
    /// The encoded value of a property; empty when unset.
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError>;
    /// Validates and stores a value; on error the old one stays.
    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError>;
    /// Required properties without a value.
    fn missing_required(&self) -> Vec<String>;
    /// The underlay socket this device needs.
    fn socket(&self) -> Result<SocketSpec, PluginError>;
    /// The length of the header `encap` writes.
    fn header_len(&self) -> usize;
    /// Writes the header for `frame` into `header`; returns its length.
    fn encap(&self, vnetid: u64, frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError>;
}

/// A lookup plugin.
pub trait Lookup: Send + Sync + 'static {
    /// The per-device instance.
    type Instance: LookupInstance;
    /// The plugin's declaration.
    fn info(&self) -> LookupInfo;
    /// A new instance for a device needing `dest` kinds on `vnetid`.
    fn new_instance(&self, dest: u32, vnetid: u64) -> Result<Self::Instance, PluginError>;
}

/// The per-device side of a lookup plugin.
pub trait LookupInstance: Send + Sync + 'static {
    /// The instance's mode (`MODE_POINT` or `MODE_DYNAMIC`).
    fn mode(&self) -> u32;
    /// The instance's properties.
    fn properties(&self) -> Vec<PropInfo>;
    /// The encoded value of a property; empty when unset.
    fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError>;
    /// Validates and stores a value; on error the old one stays.
    fn setprop(&self, name: &str, value: &[u8]) -> Result<(), PluginError>;
    /// Required properties without a value.
    fn missing_required(&self) -> Vec<String>;
    /// Checks the configuration and acquires resources.
    fn start(&self) -> Result<(), PluginError>;
    /// Undoes `start`.
    fn stop(&self);
    /// Point mode: the single destination.
    fn default_point(&self) -> Result<Point, PluginError>;
    /// State beyond the properties to keep across daemon restarts, as
    /// bytes only this plugin reads back; see [`LookupDevice::save`]. The
    /// default saves nothing, which is right for an instance configured
    /// by its properties alone.
    fn save(&self) -> Result<Vec<u8>, PluginError> {
        Ok(Vec::new())
    }
    /// Takes back what [`save`](LookupInstance::save) returned (never
    /// empty), after the properties and before `start`. The default refuses,
    /// since a plugin that saves nothing has nothing to read.
    fn restore(&self, state: &[u8]) -> Result<(), PluginError> {
        Err(PluginError::not_supported(format!(
            "this lookup plugin keeps no saved state and cannot restore {} bytes",
            state.len()
        )))
    }
    /// Dynamic mode: where the frame of `req` goes; see
    /// [`LookupDevice::lookup`]. The default refuses, for point-mode
    /// plugins.
    fn lookup(&self, req: &LookupRequest, frame: &[u8]) -> Result<LookupAnswer, PluginError> {
        let _ = (req, frame);
        Err(PluginError::not_supported(
            "this lookup plugin does not implement dynamic lookups",
        ))
    }
    /// Dynamic mode: MACs whose answers changed since the last call; see
    /// [`LookupDevice::take_stale`].
    fn take_stale(&self) -> Vec<[u8; 6]> {
        Vec::new()
    }
}

fn strings(v: Vec<String>) -> RVec<RString> {
    v.into_iter().map(RString::from).collect()
}

/// Adapts an [`Encap`] to the ABI trait.
pub struct EncapAdapter<T>(pub T);

impl<T: Encap> EncapPlugin for EncapAdapter<T> {
    fn info(&self) -> EncapInfo {
        // A panic here yields an invalid declaration (id size 0), which the
        // loader refuses.
        guard_or(
            || self.0.info(),
            EncapInfo {
                id_size: 0,
                flags: 0,
                dest: 0,
                max_header_len: 0,
                properties: RVec::new(),
            },
        )
    }

    fn new_device(&self) -> RResult<EncapDeviceBox, PluginError> {
        guard("new_device", || {
            let inst = self.0.new_instance()?;
            Ok(EncapDevice_TO::from_value(
                EncapInstanceAdapter(inst),
                TD_Opaque,
            ))
        })
    }

    fn decap(&self, packet: RSlice<'_, u8>) -> RResult<DecapInfo, PluginError> {
        guard("decap", || self.0.decap(packet.as_slice()))
    }
}

/// Adapts an [`EncapInstance`] to the ABI trait.
pub struct EncapInstanceAdapter<T>(pub T);

impl<T: EncapInstance> EncapDevice for EncapInstanceAdapter<T> {
    fn getprop(&self, name: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        guard("getprop", || self.0.getprop(name.as_str()).map(RVec::from))
    }

    fn setprop(&self, name: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard("setprop", || {
            self.0.setprop(name.as_str(), value.as_slice())
        })
    }

    fn missing_required(&self) -> RVec<RString> {
        guard_or(|| strings(self.0.missing_required()), RVec::new())
    }

    fn socket(&self) -> RResult<SocketSpec, PluginError> {
        guard("socket", || self.0.socket())
    }

    fn header_len(&self) -> u32 {
        guard_or(|| self.0.header_len() as u32, 0)
    }

    fn encap(
        &self,
        vnetid: u64,
        frame: RSlice<'_, u8>,
        mut header: RSliceMut<'_, u8>,
    ) -> RResult<u32, PluginError> {
        guard("encap", || {
            self.0
                .encap(vnetid, frame.as_slice(), header.as_mut_slice())
                .map(|n| n as u32)
        })
    }
}

/// Adapts a [`Lookup`] to the ABI trait.
pub struct LookupAdapter<T>(pub T);

impl<T: Lookup> LookupPlugin for LookupAdapter<T> {
    fn info(&self) -> LookupInfo {
        guard_or(
            || self.0.info(),
            LookupInfo {
                modes: 0,
                dest: 0,
                properties: RVec::new(),
            },
        )
    }

    fn new_device(&self, dest: u32, vnetid: u64) -> RResult<LookupDeviceBox, PluginError> {
        guard("new_device", || {
            let inst = self.0.new_instance(dest, vnetid)?;
            Ok(LookupDevice_TO::from_value(
                LookupInstanceAdapter(inst),
                TD_Opaque,
            ))
        })
    }
}

/// Adapts a [`LookupInstance`] to the ABI trait.
pub struct LookupInstanceAdapter<T>(pub T);

impl<T: LookupInstance> LookupDevice for LookupInstanceAdapter<T> {
    fn mode(&self) -> u32 {
        guard_or(|| self.0.mode(), 0)
    }

    fn properties(&self) -> RVec<PropInfo> {
        guard_or(|| self.0.properties().into(), RVec::new())
    }

    fn getprop(&self, name: RStr<'_>) -> RResult<RVec<u8>, PluginError> {
        guard("getprop", || self.0.getprop(name.as_str()).map(RVec::from))
    }

    fn setprop(&self, name: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard("setprop", || {
            self.0.setprop(name.as_str(), value.as_slice())
        })
    }

    fn missing_required(&self) -> RVec<RString> {
        guard_or(|| strings(self.0.missing_required()), RVec::new())
    }

    fn start(&self) -> RResult<(), PluginError> {
        guard("start", || self.0.start())
    }

    fn stop(&self) {
        guard_or(|| self.0.stop(), ())
    }

    fn default_point(&self) -> RResult<Point, PluginError> {
        guard("default_point", || self.0.default_point())
    }

    fn save(&self) -> RResult<RVec<u8>, PluginError> {
        guard("save", || self.0.save().map(RVec::from))
    }

    fn restore(&self, state: RSlice<'_, u8>) -> RResult<(), PluginError> {
        guard("restore", || self.0.restore(state.as_slice()))
    }

    fn lookup(
        &self,
        req: &LookupRequest,
        frame: RSlice<'_, u8>,
    ) -> RResult<LookupAnswer, PluginError> {
        guard("lookup", || self.0.lookup(req, frame.as_slice()))
    }

    fn take_stale(&self) -> RVec<[u8; 6]> {
        guard_or(|| self.0.take_stale().into(), RVec::new())
    }
}

/// Boxes an [`Encap`] built by `make` for the root module.
pub fn encap_box<T: Encap>(make: impl FnOnce() -> T) -> RResult<EncapPluginBox, PluginError> {
    guard("new_encap", || {
        Ok(EncapPlugin_TO::from_value(EncapAdapter(make()), TD_Opaque))
    })
}

/// Boxes a [`Lookup`] built by `make` for the root module.
pub fn lookup_box<T: Lookup>(make: impl FnOnce() -> T) -> RResult<LookupPluginBox, PluginError> {
    guard("new_lookup", || {
        Ok(LookupPlugin_TO::from_value(
            LookupAdapter(make()),
            TD_Opaque,
        ))
    })
}

/// Exports an encapsulation plugin's root module.
///
/// `new` is an expression building the [`Encap`] value; it runs once, when
/// the daemon loads the plugin, inside `catch_unwind`.
#[macro_export]
macro_rules! export_encap_plugin {
    (name: $name:expr, version: $version:expr, new: $new:expr $(,)?) => {
        #[::abi_stable::export_root_module]
        pub fn overlay_plugin_root_module() -> $crate::PluginModRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn describe() -> $crate::PluginDesc {
                $crate::PluginDesc {
                    name: ::abi_stable::std_types::RStr::from_str($name),
                    kind: $crate::PluginKind::ENCAP,
                    version: ::abi_stable::std_types::RStr::from_str($version),
                }
            }
            extern "C" fn new_encap(
            ) -> ::abi_stable::std_types::RResult<$crate::EncapPluginBox, $crate::PluginError> {
                $crate::kit::encap_box(|| $new)
            }
            extern "C" fn new_lookup(
            ) -> ::abi_stable::std_types::RResult<$crate::LookupPluginBox, $crate::PluginError>
            {
                ::abi_stable::std_types::RResult::RErr($crate::PluginError::not_supported(
                    "an encapsulation plugin has no lookup object",
                ))
            }
            $crate::PluginMod {
                describe,
                new_encap,
                new_lookup,
            }
            .leak_into_prefix()
        }
    };
}

/// Exports a lookup plugin's root module; see [`export_encap_plugin!`].
#[macro_export]
macro_rules! export_lookup_plugin {
    (name: $name:expr, version: $version:expr, new: $new:expr $(,)?) => {
        #[::abi_stable::export_root_module]
        pub fn overlay_plugin_root_module() -> $crate::PluginModRef {
            use ::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn describe() -> $crate::PluginDesc {
                $crate::PluginDesc {
                    name: ::abi_stable::std_types::RStr::from_str($name),
                    kind: $crate::PluginKind::LOOKUP,
                    version: ::abi_stable::std_types::RStr::from_str($version),
                }
            }
            extern "C" fn new_encap(
            ) -> ::abi_stable::std_types::RResult<$crate::EncapPluginBox, $crate::PluginError> {
                ::abi_stable::std_types::RResult::RErr($crate::PluginError::not_supported(
                    "a lookup plugin has no encapsulation object",
                ))
            }
            extern "C" fn new_lookup(
            ) -> ::abi_stable::std_types::RResult<$crate::LookupPluginBox, $crate::PluginError>
            {
                $crate::kit::lookup_box(|| $new)
            }
            $crate::PluginMod {
                describe,
                new_encap,
                new_lookup,
            }
            .leak_into_prefix()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Boom;
    impl Encap for Boom {
        type Instance = BoomInst;
        fn info(&self) -> EncapInfo {
            panic!("no info today")
        }
        fn new_instance(&self) -> Result<BoomInst, PluginError> {
            Ok(BoomInst)
        }
        fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
            if packet.is_empty() {
                panic!("empty packet");
            }
            Err(PluginError::invalid("short"))
        }
    }
    struct BoomInst;
    impl EncapInstance for BoomInst {
        fn getprop(&self, _: &str) -> Result<Vec<u8>, PluginError> {
            panic!("getprop")
        }
        fn setprop(&self, _: &str, _: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn missing_required(&self) -> Vec<String> {
            vec![]
        }
        fn socket(&self) -> Result<SocketSpec, PluginError> {
            Err(PluginError::invalid("no"))
        }
        fn header_len(&self) -> usize {
            8
        }
        fn encap(&self, _: u64, _: &[u8], _: &mut [u8]) -> Result<usize, PluginError> {
            panic!("encap")
        }
    }

    /// A lookup whose instances count something worth keeping.
    struct Counting {
        keeps_state: bool,
    }
    struct CountingInst {
        keeps_state: bool,
        n: std::sync::atomic::AtomicU64,
    }
    impl Lookup for Counting {
        type Instance = CountingInst;
        fn info(&self) -> LookupInfo {
            LookupInfo {
                modes: crate::MODE_POINT,
                dest: crate::dest::IP,
                properties: RVec::new(),
            }
        }
        fn new_instance(&self, _: u32, _: u64) -> Result<CountingInst, PluginError> {
            Ok(CountingInst {
                keeps_state: self.keeps_state,
                n: 41.into(),
            })
        }
    }
    impl LookupInstance for CountingInst {
        fn mode(&self) -> u32 {
            crate::MODE_POINT
        }
        fn properties(&self) -> Vec<PropInfo> {
            vec![]
        }
        fn getprop(&self, _: &str) -> Result<Vec<u8>, PluginError> {
            Ok(vec![])
        }
        fn setprop(&self, _: &str, _: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn missing_required(&self) -> Vec<String> {
            vec![]
        }
        fn start(&self) -> Result<(), PluginError> {
            Ok(())
        }
        fn stop(&self) {}
        fn default_point(&self) -> Result<Point, PluginError> {
            Err(PluginError::invalid("none"))
        }
        fn save(&self) -> Result<Vec<u8>, PluginError> {
            if !self.keeps_state {
                return Ok(Vec::new());
            }
            let n = self.n.load(std::sync::atomic::Ordering::Relaxed);
            Ok(n.to_le_bytes().to_vec())
        }
        fn restore(&self, state: &[u8]) -> Result<(), PluginError> {
            if !self.keeps_state {
                return Err(PluginError::not_supported("no state"));
            }
            if state == b"boom" {
                panic!("cannot read my own state");
            }
            let bytes: [u8; 8] = state
                .try_into()
                .map_err(|_| PluginError::invalid("8 bytes expected"))?;
            self.n.store(
                u64::from_le_bytes(bytes),
                std::sync::atomic::Ordering::Relaxed,
            );
            Ok(())
        }
    }

    #[test]
    fn lookup_state_round_trips_through_the_abi() {
        let p = lookup_box(|| Counting { keeps_state: true }).unwrap();
        let a = p.new_device(crate::dest::IP, 1).unwrap();
        let saved = a.save().unwrap();
        assert_eq!(saved.as_slice(), 41u64.to_le_bytes());
        let b = p.new_device(crate::dest::IP, 1).unwrap();
        b.restore(RSlice::from_slice(&7u64.to_le_bytes())).unwrap();
        assert_eq!(b.save().unwrap().as_slice(), 7u64.to_le_bytes());
        assert_eq!(
            b.restore(RSlice::from_slice(b"x")).unwrap_err().errno,
            libc::EINVAL
        );
        assert!(b.restore(RSlice::from_slice(b"boom")).unwrap_err().panicked);
    }

    /// A LookupInstance that does not implement save/restore.
    struct Plain;
    impl LookupInstance for Plain {
        fn mode(&self) -> u32 {
            crate::MODE_POINT
        }
        fn properties(&self) -> Vec<PropInfo> {
            vec![]
        }
        fn getprop(&self, _: &str) -> Result<Vec<u8>, PluginError> {
            Ok(vec![])
        }
        fn setprop(&self, _: &str, _: &[u8]) -> Result<(), PluginError> {
            Ok(())
        }
        fn missing_required(&self) -> Vec<String> {
            vec![]
        }
        fn start(&self) -> Result<(), PluginError> {
            Ok(())
        }
        fn stop(&self) {}
        fn default_point(&self) -> Result<Point, PluginError> {
            Err(PluginError::invalid("none"))
        }
    }

    #[test]
    fn default_save_is_empty_and_restore_refuses_bytes() {
        let dev = LookupDevice_TO::from_value(LookupInstanceAdapter(Plain), TD_Opaque);
        assert!(dev.save().unwrap().is_empty());
        let e = dev.restore(RSlice::from_slice(&[1, 2, 3])).unwrap_err();
        assert_eq!(e.errno, libc::ENOTSUP);
        assert!(e.msg.contains("3 bytes"), "{}", e.msg);
    }

    #[test]
    fn panics_become_errors_marked_panicked() {
        let p = encap_box(|| Boom).unwrap();
        assert_eq!(p.info().id_size, 0);
        let err = p.decap(RSlice::from_slice(&[])).unwrap_err();
        assert!(err.panicked);
        assert_eq!(err.errno, libc::EIO);
        assert!(err.msg.contains("empty packet"), "{}", err.msg);
        let plain = p.decap(RSlice::from_slice(&[1])).unwrap_err();
        assert!(!plain.panicked);
        let dev = p.new_device().unwrap();
        assert!(dev.getprop(RStr::from_str("x")).unwrap_err().panicked);
        let mut hdr = [0u8; 8];
        let err = dev
            .encap(
                1,
                RSlice::from_slice(&[0; 14]),
                RSliceMut::from_mut_slice(&mut hdr),
            )
            .unwrap_err();
        assert!(err.panicked);
        assert_eq!(dev.header_len(), 8);
    }
}
