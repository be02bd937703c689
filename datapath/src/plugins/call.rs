//! Calls into plugins, in the daemon's own types.
//!
//! The plugin boxes speak abi_stable (`RSlice`, `RStr`, `RVec`, `RResult`);
//! this is the only place that does. Each wrapper turns a call into plain
//! Rust (`&[u8]`, `&str`, `Vec`, `Result` with [`CtlError`]) and sends every
//! error of a device's instance through [`Faults::fault`], the one path that
//! counts a panic in the device's `plugin_panics` and degrades it.
//!
//! The packet path calls [`EncapInstance::encap`] and [`EncapPlugin::decap`]
//! per packet: they pass the caller's slices through as they are and
//! allocate nothing unless the plugin fails.

use crate::{
    error::{CtlError, CtlResult},
    stats::{add, DeviceStats, Health},
};
use overlay_plugin_abi::{
    abi_stable::std_types::{RResult, RSlice, RSliceMut, RStr},
    DecapInfo, EncapDeviceBox, EncapInfo, EncapPluginBox, LookupAnswer, LookupDeviceBox,
    LookupInfo, LookupPluginBox, LookupRequest, Mac, PluginError, Point, PropInfo, SocketSpec,
};
use std::sync::Arc;

/// Where the plugin faults of one device go: its counters and its health.
pub struct Faults {
    name: String,
    health: Arc<Health>,
    stats: Arc<DeviceStats>,
}

impl Faults {
    /// The sink of the device called `name`.
    pub fn new(name: &str, health: Arc<Health>, stats: Arc<DeviceStats>) -> Arc<Faults> {
        Arc::new(Faults {
            name: name.to_string(),
            health,
            stats,
        })
    }

    /// The one path of a failed call into a device's plugin instance: a
    /// panic is counted (`plugin_panics` of STATS) and degrades the device,
    /// logged once per transition; the error goes on as a [`CtlError`].
    #[cold]
    fn fault(&self, e: PluginError) -> CtlError {
        if e.panicked {
            add(&self.stats.plugin_panics, 1);
            if self.health.degrade(&e.msg) {
                tracing::error!(device = %self.name, "degraded: {}", e.msg);
            }
        }
        CtlError::from(e)
    }

    #[inline]
    fn check<T>(&self, r: RResult<T, PluginError>) -> CtlResult<T> {
        match r {
            RResult::ROk(v) => Ok(v),
            RResult::RErr(e) => Err(self.fault(e)),
        }
    }
}

/// An error of a call made before any device is concerned (a new
/// instance): passed on, there is no device to degrade.
fn plain<T>(r: RResult<T, PluginError>) -> CtlResult<T> {
    r.into_result().map_err(CtlError::from)
}

/// Why `decap` gave no header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecapError {
    /// The plugin refused the packet.
    Refused,
    /// The plugin panicked; its message. The packet's device is not known,
    /// so the caller degrades every device that could have received it.
    Panicked(String),
}

/// An encapsulation plugin, shared by every device that uses it.
pub struct EncapPlugin(EncapPluginBox);

impl EncapPlugin {
    /// Wraps a loaded plugin.
    pub fn new(plugin: EncapPluginBox) -> EncapPlugin {
        EncapPlugin(plugin)
    }

    /// A plugin linked into the program (tests, fuzzing), boxed as its
    /// root module would box it.
    pub fn linked<T: overlay_plugin_abi::kit::Encap>(make: impl FnOnce() -> T) -> EncapPlugin {
        EncapPlugin(
            overlay_plugin_abi::kit::encap_box(make)
                .into_result()
                .expect("linked-in plugin"),
        )
    }

    /// The plugin's declaration.
    pub fn info(&self) -> EncapInfo {
        self.0.info()
    }

    /// A new instance for a device, its faults going to `faults`.
    pub fn new_device(&self, faults: Arc<Faults>) -> CtlResult<EncapInstance> {
        let dev = plain(self.0.new_device())?;
        Ok(EncapInstance { dev, faults })
    }

    /// Parses the header at the start of an underlay payload.
    #[inline]
    pub fn decap(&self, packet: &[u8]) -> Result<DecapInfo, DecapError> {
        match self.0.decap(RSlice::from_slice(packet)) {
            RResult::ROk(info) => Ok(info),
            RResult::RErr(e) => Err(decap_error(e)),
        }
    }
}

#[cold]
fn decap_error(e: PluginError) -> DecapError {
    if e.panicked {
        DecapError::Panicked(e.msg.into_string())
    } else {
        DecapError::Refused
    }
}

/// The property calls both kinds of instance have, alike (the boxes are
/// of two traits with the same methods).
macro_rules! property_calls {
    () => {
        /// The encoded value of a property; empty when unset.
        pub fn getprop(&self, name: &str) -> CtlResult<Vec<u8>> {
            self.faults
                .check(self.dev.getprop(RStr::from_str(name)))
                .map(|v| v.into_vec())
        }

        /// Validates and stores a property value.
        pub fn setprop(&self, name: &str, value: &[u8]) -> CtlResult<()> {
            self.faults.check(
                self.dev
                    .setprop(RStr::from_str(name), RSlice::from_slice(value)),
            )
        }

        /// Required properties without a value.
        pub fn missing_required(&self) -> Vec<String> {
            self.dev
                .missing_required()
                .into_iter()
                .map(|s| s.into_string())
                .collect()
        }
    };
}

/// A device's encapsulation instance.
pub struct EncapInstance {
    dev: EncapDeviceBox,
    faults: Arc<Faults>,
}

impl EncapInstance {
    /// Where its faults go (for a scratch instance of the same device).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    property_calls!();

    /// The underlay socket the instance needs.
    pub fn socket(&self) -> CtlResult<SocketSpec> {
        self.faults.check(self.dev.socket())
    }

    /// The length of the header `encap` writes now.
    pub fn header_len(&self) -> u32 {
        self.dev.header_len()
    }

    /// Writes the header for `frame` at the start of `header`; its length.
    #[inline]
    pub fn encap(&self, vnetid: u64, frame: &[u8], header: &mut [u8]) -> CtlResult<usize> {
        match self.dev.encap(
            vnetid,
            RSlice::from_slice(frame),
            RSliceMut::from_mut_slice(header),
        ) {
            RResult::ROk(n) => Ok(n as usize),
            RResult::RErr(e) => Err(self.faults.fault(e)),
        }
    }
}

/// A lookup plugin.
pub struct LookupPlugin(LookupPluginBox);

impl LookupPlugin {
    /// Wraps a loaded plugin.
    pub fn new(plugin: LookupPluginBox) -> LookupPlugin {
        LookupPlugin(plugin)
    }

    /// A plugin linked into the program (tests, fuzzing), boxed as its
    /// root module would box it.
    pub fn linked<T: overlay_plugin_abi::kit::Lookup>(make: impl FnOnce() -> T) -> LookupPlugin {
        LookupPlugin(
            overlay_plugin_abi::kit::lookup_box(make)
                .into_result()
                .expect("linked-in plugin"),
        )
    }

    /// The plugin's declaration.
    pub fn info(&self) -> LookupInfo {
        self.0.info()
    }

    /// A new instance for a device whose encapsulation needs `dest`, its
    /// faults going to `faults`.
    pub fn new_device(
        &self,
        dest: u32,
        vnetid: u64,
        faults: Arc<Faults>,
    ) -> CtlResult<LookupInstance> {
        let dev = plain(self.0.new_device(dest, vnetid))?;
        Ok(LookupInstance { dev, faults })
    }
}

/// A device's lookup instance.
pub struct LookupInstance {
    dev: LookupDeviceBox,
    faults: Arc<Faults>,
}

impl LookupInstance {
    /// Its mode (one `MODE_*` bit).
    pub fn mode(&self) -> u32 {
        self.dev.mode()
    }

    /// Its properties.
    pub fn properties(&self) -> Vec<PropInfo> {
        self.dev.properties().into_vec()
    }

    property_calls!();

    /// Checks the configuration and acquires resources.
    pub fn start(&self) -> CtlResult<()> {
        self.faults.check(self.dev.start())
    }

    /// Undoes `start`.
    pub fn stop(&self) {
        self.dev.stop()
    }

    /// Point mode: the one destination.
    pub fn default_point(&self) -> CtlResult<Point> {
        self.faults.check(self.dev.default_point())
    }

    /// The private state to keep across restarts.
    pub fn save(&self) -> CtlResult<Vec<u8>> {
        self.faults.check(self.dev.save()).map(|v| v.into_vec())
    }

    /// Takes back what `save` returned.
    pub fn restore(&self, state: &[u8]) -> CtlResult<()> {
        self.faults
            .check(self.dev.restore(RSlice::from_slice(state)))
    }

    /// Dynamic mode: where the frame of `req` goes.
    pub fn lookup(&self, req: &LookupRequest, frame: &[u8]) -> CtlResult<LookupAnswer> {
        self.faults
            .check(self.dev.lookup(req, RSlice::from_slice(frame)))
    }

    /// Dynamic mode: the MACs whose answers changed since the last call.
    pub fn take_stale(&self) -> Vec<Mac> {
        self.dev.take_stale().iter().map(|m| Mac(*m)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlay_plugin_abi::kit;
    use std::sync::atomic::Ordering::Relaxed;

    /// Refuses an empty frame and panics on one that starts with 0xff.
    struct Picky;
    struct PickyDev;
    impl kit::Encap for Picky {
        type Instance = PickyDev;
        fn info(&self) -> EncapInfo {
            EncapInfo {
                id_size: 3,
                flags: 0,
                dest: 0,
                max_header_len: 8,
                properties: Vec::new().into(),
            }
        }
        fn new_instance(&self) -> Result<PickyDev, PluginError> {
            Ok(PickyDev)
        }
        fn decap(&self, packet: &[u8]) -> Result<DecapInfo, PluginError> {
            match packet.first() {
                None => Err(PluginError::invalid("empty")),
                Some(0xff) => panic!("bad first byte"),
                Some(_) => Ok(DecapInfo {
                    vnetid: 7,
                    header_len: 8,
                    flags: 0,
                }),
            }
        }
    }
    impl kit::EncapInstance for PickyDev {
        fn getprop(&self, name: &str) -> Result<Vec<u8>, PluginError> {
            Err(PluginError::not_found(format!("no {name}")))
        }
        fn setprop(&self, _: &str, _: &[u8]) -> Result<(), PluginError> {
            panic!("setprop")
        }
        fn missing_required(&self) -> Vec<String> {
            vec!["picky/x".into()]
        }
        fn socket(&self) -> Result<SocketSpec, PluginError> {
            Err(PluginError::invalid("no socket"))
        }
        fn header_len(&self) -> usize {
            8
        }
        fn encap(&self, _: u64, frame: &[u8], header: &mut [u8]) -> Result<usize, PluginError> {
            match frame.first() {
                None => Err(PluginError::invalid("empty")),
                Some(0xff) => panic!("bad first byte"),
                Some(_) => {
                    header[..8].copy_from_slice(&[1; 8]);
                    Ok(8)
                }
            }
        }
    }

    fn device() -> (EncapPlugin, EncapInstance, Arc<Health>, Arc<DeviceStats>) {
        let plugin = EncapPlugin::linked(|| Picky);
        let (health, stats) = (
            Arc::new(Health::default()),
            Arc::new(DeviceStats::default()),
        );
        let faults = Faults::new("ov0", health.clone(), stats.clone());
        let dev = plugin.new_device(faults).unwrap();
        (plugin, dev, health, stats)
    }

    #[test]
    fn answers_and_refusals_pass_through_untouched() {
        let (plugin, dev, health, stats) = device();
        let mut hdr = [0u8; 16];
        assert_eq!(dev.encap(7, &[1, 2, 3], &mut hdr), Ok(8));
        assert_eq!(hdr[..8], [1; 8]);
        assert_eq!(plugin.decap(&[1]).unwrap().vnetid, 7);
        assert_eq!(plugin.decap(&[]), Err(DecapError::Refused));
        let e = dev.encap(7, &[], &mut hdr).unwrap_err();
        assert_eq!((e.errno, e.msg.as_str()), (libc::EINVAL, "empty"));
        assert_eq!(dev.getprop("x").unwrap_err().errno, libc::ENOENT);
        assert_eq!(dev.missing_required(), vec!["picky/x".to_string()]);
        assert_eq!(stats.plugin_panics.load(Relaxed), 0);
        assert_eq!(health.fault(), None);
    }

    #[test]
    fn a_panic_in_an_instance_is_counted_and_degrades_its_device() {
        let (_, dev, health, stats) = device();
        let e = dev.encap(7, &[0xff], &mut [0u8; 16]).unwrap_err();
        assert_eq!(e.errno, libc::EIO);
        assert!(e.msg.contains("bad first byte"), "{}", e.msg);
        assert_eq!(stats.plugin_panics.load(Relaxed), 1);
        assert_eq!(health.fault().as_deref(), Some(e.msg.as_str()));
        // A control-side call goes the same way.
        let e = dev.setprop("picky/x", b"1").unwrap_err();
        assert!(e.msg.contains("setprop"), "{}", e.msg);
        assert_eq!(stats.plugin_panics.load(Relaxed), 2);
        assert_eq!(health.fault().as_deref(), Some(e.msg.as_str()));
    }

    #[test]
    fn a_panic_in_decap_names_itself_for_the_mux() {
        let plugin = EncapPlugin::linked(|| Picky);
        match plugin.decap(&[0xff]) {
            Err(DecapError::Panicked(msg)) => assert!(msg.contains("bad first byte"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
