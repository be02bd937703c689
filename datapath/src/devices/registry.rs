//! The device registry: every device by link id, and the operations the
//! control protocol exposes on them. Owned by the control thread; nothing
//! here blocks.

use crate::{
    dataplane::backend::{afpacket::AfPacket, tap::Tap, Backend},
    dataplane::mux::{MuxKey, MuxSet, Port},
    dataplane::{probe::Offloads, Engine},
    dataplane::{Dataplane, TxDest, TxTarget},
    devices::device::{validate_generic, Device, Generic, Owner, UnderlayKey},
    devices::notify::{CacheChange, Event, StatusTracker},
    error::{CtlError, CtlResult},
    plugins::Plugins,
    target::{
        lookup::{LookupService, DEFAULT_THREADS},
        DynIdentity, DynTarget,
    },
};
use overlay_plugin_abi::{prop::perm, PropInfo, MODE_DYNAMIC, MODE_POINT};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

/// How a request names a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevRef {
    /// By link name.
    Name(String),
    /// By link id.
    LinkId(u32),
}

/// A CREATE request.
#[derive(Debug, Clone)]
pub struct CreateArgs {
    /// Link name.
    pub name: String,
    /// Encapsulation plugin name.
    pub encap: String,
    /// Lookup plugin name.
    pub search: String,
    /// Virtual network id.
    pub vnetid: u64,
    /// Initial property values, applied in order, all or nothing.
    pub props: Vec<(String, Vec<u8>)>,
    /// Keep the device out of the state file.
    pub temporary: bool,
}

/// One property as PROPINFO reports it.
pub struct PropEntry {
    /// Position in the device's listing.
    pub id: u32,
    /// Declaration.
    pub info: PropInfo,
}

/// All devices.
pub struct Registry {
    plugins: Arc<Plugins>,
    devices: BTreeMap<u32, Device>,
    /// Link ids by device name (names never change).
    names: HashMap<String, u32>,
    next_linkid: u32,
    engine: Engine,
    /// Changes made since the handlers last took them.
    events: Vec<Event>,
    /// Bumped on every change of the device table (for dump consistency).
    generation: u64,
    status: StatusTracker,
    /// The health changes and the generation when statuses were last
    /// compared: while neither moves, no status can have changed.
    status_seen: Option<(u64, u64)>,
    lookups: Arc<LookupService>,
}

impl Registry {
    /// An empty registry over the loaded plugins.
    pub fn new(plugins: Arc<Plugins>) -> Self {
        Self::with_lookup_threads(plugins, DEFAULT_THREADS)
    }

    /// An empty registry whose lookup service runs `threads` lookup threads,
    /// with one packet thread per CPU and every offload the kernel has.
    pub fn with_lookup_threads(plugins: Arc<Plugins>, threads: usize) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let engine = Engine::start(cpus, Offloads::default().probe(), std::time::Duration::ZERO)
            .expect("cannot start the packet threads");
        Self::with_engine(plugins, threads, engine)
    }

    /// An empty registry over the loaded plugins, with `lookup_threads`
    /// lookup threads and the packet path `engine`.
    pub fn with_engine(plugins: Arc<Plugins>, lookup_threads: usize, engine: Engine) -> Self {
        Registry {
            lookups: LookupService::new(lookup_threads),
            plugins,
            devices: BTreeMap::new(),
            names: HashMap::new(),
            next_linkid: 1,
            engine,
            events: Vec::new(),
            generation: 0,
            status: StatusTracker::default(),
            status_seen: None,
        }
    }

    /// The lookup service of dynamic devices.
    pub fn lookups(&self) -> &Arc<LookupService> {
        &self.lookups
    }

    /// The device table's generation: it changes with every change to any
    /// device (create, property, activation, status, delete), so a dump
    /// that sees it change knows it may mix old and new state.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Devices with a link id of at least `linkid`, in link-id order (for
    /// dumps that resume where they stopped).
    pub fn devices_from(&self, linkid: u32) -> impl Iterator<Item = &Device> {
        self.devices.range(linkid..).map(|(_, d)| d)
    }

    /// The changes made since the last call, in order, then the cache
    /// entries lookup plugins invalidated (`take_stale`), then status
    /// changes of any device.
    pub fn take_events(&mut self) -> Vec<Event> {
        for (linkid, mac) in self.lookups.take_invalidated() {
            self.cache_changed(linkid, CacheChange::Removed { mac });
        }
        // Read before the devices are: a change made while they are read
        // moves the count again, and the next call looks once more.
        let seen = (crate::stats::health_changes(), self.generation);
        if self.status_seen != Some(seen) {
            let status = self.status.sync(
                self.devices
                    .values()
                    .map(|d| (d.linkid, d.name.as_str(), &*d.health)),
            );
            for e in status {
                self.record(e);
            }
            self.status_seen = Some(seen);
        }
        std::mem::take(&mut self.events)
    }

    /// Records a change made to a device's target cache,
    /// notified with the request's other changes. A cache is not the
    /// device table: dumps in progress are not interrupted by it.
    pub fn cache_changed(&mut self, linkid: u32, change: CacheChange) {
        if let Some(dev) = self.devices.get(&linkid) {
            let name = dev.name.clone();
            self.events.push(Event::CacheChanged {
                linkid,
                name,
                change,
            });
        }
    }

    fn record(&mut self, e: Event) {
        self.generation += 1;
        self.events.push(e);
    }

    /// The loaded plugins.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// The open muxes.
    pub fn muxes(&self) -> &MuxSet {
        &self.engine.muxes
    }

    /// The packet path: threads, muxes, offloads.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Devices in link-id order.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// The device `r` names.
    pub fn get(&self, r: &DevRef) -> CtlResult<&Device> {
        let found = match r {
            DevRef::LinkId(id) => self.devices.get(id),
            DevRef::Name(n) => self.names.get(n).and_then(|id| self.devices.get(id)),
        };
        found.ok_or_else(|| not_found(r))
    }

    /// The device `r` names, to change.
    pub fn get_mut(&mut self, r: &DevRef) -> CtlResult<&mut Device> {
        let id = self.get(r)?.linkid;
        Ok(self.devices.get_mut(&id).expect("device just found"))
    }

    /// Creates a device. On any error nothing is left behind: the device
    /// is built and configured aside and only inserted when complete.
    pub fn create(&mut self, args: CreateArgs) -> CtlResult<&Device> {
        if self.names.contains_key(&args.name) {
            return Err(CtlError::exists(format!(
                "a device named {} already exists",
                args.name
            )));
        }
        let encap = self.plugins.encap(&args.encap).cloned().ok_or_else(|| {
            CtlError::not_found(format!(
                "no encapsulation plugin named '{}'; loaded: {}",
                args.encap,
                list_or_none(&self.plugins.encap_names())
            ))
        })?;
        let search = self.plugins.lookup(&args.search).cloned().ok_or_else(|| {
            CtlError::not_found(format!(
                "no lookup plugin named '{}'; loaded: {}",
                args.search,
                list_or_none(&self.plugins.lookup_names())
            ))
        })?;
        let mut dev = Device::new(self.next_linkid, &args.name, encap, search, args.vnetid)?;
        dev.temporary = args.temporary;
        // The properties are applied together with the create: uniqueness
        // is checked once, on the finished device, below.
        for (name, value) in &args.props {
            self.setprop_on(&mut dev, name, value, false)?;
        }
        let key = dev.underlay_key_with(None, dev.vnetid)?;
        self.check_unique(&dev, key)?;
        let id = dev.linkid;
        self.next_linkid += 1;
        tracing::info!(link = %dev.name, linkid = id, "created");
        self.record(Event::Created {
            linkid: id,
            name: dev.name.clone(),
            encap: dev.encap.meta.name.to_string(),
            search: dev.search.meta.name.to_string(),
            vnetid: dev.vnetid,
        });
        self.names.insert(dev.name.clone(), id);
        Ok(self.devices.entry(id).or_insert(dev))
    }

    /// The link id the next created device gets.
    pub fn next_linkid(&self) -> u32 {
        self.next_linkid
    }

    /// Makes the next created device get link id `id` (restoring saved
    /// devices under their old ids). Ids only move forward: one below the
    /// next id is ignored, since it may have been used already.
    pub fn set_next_linkid(&mut self, id: u32) {
        self.next_linkid = self.next_linkid.max(id);
    }

    /// Deletes every device, as at daemon exit: the packet threads stop,
    /// the TAP interfaces go in one batch, then each device is deactivated
    /// and deleted; the lookup service stops last.
    pub fn shutdown(&mut self) {
        self.engine.shutdown();
        self.engine.release_taps();
        let ids: Vec<u32> = self.devices.keys().copied().collect();
        for id in ids {
            let _ = self.delete(&DevRef::LinkId(id));
        }
        self.lookups.shutdown();
    }

    /// The host lost (`present` false) or regained an address: every active
    /// device whose underlay listens on it is degraded, saying so, or
    /// restored when that was its fault.
    pub fn underlay_address(&mut self, addr: std::net::IpAddr, present: bool) {
        let in6 = overlay_plugin_abi::prop::ip_to_in6(addr);
        for dev in self.devices.values() {
            let Some(dp) = &dev.dp else { continue };
            if dp.mux.key.addr != in6 {
                continue;
            }
            let msg = format!(
                "underlay address {addr} is gone from the host: the device can neither send nor \
                 receive; it recovers by itself when the address is back"
            );
            if !present {
                if dev.health.degrade(&msg) {
                    tracing::warn!(link = %dev.name, "degraded: {msg}");
                }
            } else if dev.health.fault().as_deref() == Some(msg.as_str()) && dev.health.restore() {
                tracing::info!(link = %dev.name, "restored: underlay address {addr} is back");
            }
        }
    }

    /// Deletes a device, deactivating it first when active.
    pub fn delete(&mut self, r: &DevRef) -> CtlResult<()> {
        let id = self.get(r)?.linkid;
        let mut dev = self.devices.remove(&id).expect("device just found");
        self.names.remove(&dev.name);
        if dev.active {
            deactivate(&mut dev, &mut self.engine);
            self.record(Event::Deactivated {
                linkid: id,
                name: dev.name.clone(),
            });
        }
        tracing::info!(link = %dev.name, linkid = id, "deleted");
        self.record(Event::Deleted {
            linkid: id,
            name: dev.name,
        });
        Ok(())
    }

    /// Activates a device: every required property set, underlay endpoint
    /// unique, lookup started and, in point mode, a destination known. A
    /// failure undoes every step that succeeded.
    pub fn activate(&mut self, r: &DevRef) -> CtlResult<()> {
        let dev = self.get(r)?;
        let failed = dev.dp.as_ref().is_some_and(|dp| dp.backend_failed());
        if dev.active && !failed {
            return Err(CtlError::exists(format!("{} is already active", dev.name)));
        }
        if failed {
            // Its interface went away: start the packet path afresh.
            let id = dev.linkid;
            let dev = self.devices.get_mut(&id).expect("device just found");
            tracing::info!(link = %dev.name, "activating again: its backend failed");
            deactivate(dev, &mut self.engine);
        }
        let dev = self.get(r)?;
        let missing = dev.missing_required();
        if !missing.is_empty() {
            return Err(CtlError::invalid(format!(
                "cannot activate {}: unset required properties: {}",
                dev.name,
                missing.join(", ")
            )));
        }
        let key = dev.underlay_key_with(None, dev.vnetid)?;
        self.check_unique(dev, key)?;
        let id = self.get(r)?.linkid;
        let dev = self.devices.get_mut(&id).expect("device just found");
        dev.lookup_dev.start()?;
        match start_dataplane(dev, &mut self.engine, &self.lookups) {
            Ok(dp) => dev.dp = Some(dp),
            Err(e) => {
                dev.lookup_dev.stop();
                return Err(e);
            }
        }
        dev.active = true;
        if failed {
            // What degraded it was the backend that is now replaced.
            dev.health.restore();
        }
        if std::mem::take(&mut dev.activate_on_restore) {
            // What degraded it was the failed re-activation at restore.
            dev.health.restore();
        }
        tracing::info!(link = %dev.name, "activated");
        let name = dev.name.clone();
        self.record(Event::Activated { linkid: id, name });
        Ok(())
    }

    /// Property declarations of a device, or of one property.
    pub fn propinfo(&self, r: &DevRef, name: Option<&str>) -> CtlResult<Vec<PropEntry>> {
        let dev = self.get(r)?;
        match name {
            Some(n) => {
                let (id, _, info) = dev.property(n, &self.plugins)?;
                Ok(vec![PropEntry { id, info }])
            }
            None => Ok(dev
                .properties(&self.plugins)
                .into_iter()
                .enumerate()
                .map(|(i, (_, info))| PropEntry { id: i as u32, info })
                .collect()),
        }
    }

    /// The declaration and encoded value (empty when unset) of a property.
    pub fn getprop(&mut self, r: &DevRef, name: &str) -> CtlResult<(PropInfo, Vec<u8>)> {
        let plugins = self.plugins.clone();
        let dev = self.get_mut(r)?;
        let (_, owner, info) = dev.property(name, &plugins)?;
        if !info.has(perm::READ) {
            return Err(CtlError::new(
                libc::EPERM,
                format!("property {name} cannot be read"),
            ));
        }
        let value = dev.getprop(owner, name)?;
        Ok((info, value))
    }

    /// Sets a property; on any error the old value stays.
    pub fn setprop(&mut self, r: &DevRef, name: &str, value: &[u8]) -> CtlResult<()> {
        let id = self.get(r)?.linkid;
        let mut dev = self.devices.remove(&id).expect("device just found");
        let result = self.setprop_on(&mut dev, name, value, true);
        if result.is_ok() {
            let ptype = dev
                .property(name, &self.plugins)
                .map_or(0, |(_, _, info)| u32::from(info.ptype.0));
            self.record(Event::PropSet {
                linkid: id,
                name: dev.name.clone(),
                prop: name.to_string(),
                ptype,
                value: value.to_vec(),
            });
        }
        self.devices.insert(id, dev);
        result
    }

    /// Sets a property of `dev`, which is not in the table while this runs
    /// (so the uniqueness check compares it only with the others).
    fn setprop_on(
        &self,
        dev: &mut Device,
        name: &str,
        value: &[u8],
        check_unique: bool,
    ) -> CtlResult<()> {
        let (_, owner, info) = dev.property(name, &self.plugins)?;
        if !info.has(perm::WRITE) {
            return Err(CtlError::new(
                libc::EPERM,
                format!("property {name} is read-only"),
            ));
        }
        if dev.active && !info.has(perm::RUNTIME) {
            return Err(CtlError::new(
                libc::ENOTSUP,
                format!(
                    "property {name} cannot change while {} is active; delete and re-create the device to change it",
                    dev.name
                ),
            ));
        }
        match owner {
            Owner::Generic(g) => {
                let v = validate_generic(&info, value)?;
                dev.check_generic(g, &v)?;
                if g == Generic::Vnetid && check_unique {
                    let new = v.as_uint().unwrap_or_default();
                    let key = dev.underlay_key_with(None, new)?;
                    self.check_unique(dev, key)?;
                }
                apply_runtime(dev, g, &v, &self.engine)?;
                dev.set_generic(g, &v);
                Ok(())
            }
            Owner::Encap => {
                if check_unique {
                    let key = dev.underlay_key_with(Some((name, value)), dev.vnetid)?;
                    self.check_unique(dev, key)?;
                }
                dev.encap_dev.setprop(name, value)
            }
            Owner::Lookup => {
                dev.lookup_dev.setprop(name, value)?;
                // A reload may have changed answers: forget those (and
                // notify it, with this change).
                if let Some(t) = &dev.dyn_target {
                    self.lookups.invalidate(t, &dev.lookup_dev.take_stale());
                }
                Ok(())
            }
        }
    }

    /// EEXIST when another device has the same underlay key.
    fn check_unique(&self, dev: &Device, key: Option<UnderlayKey>) -> CtlResult<()> {
        let Some(key) = key else { return Ok(()) };
        for other in self.devices.values() {
            // Only a device of the same vnetid can have the same key: the
            // cheap test first, so that a create among thousands of
            // devices asks their plugins nothing.
            if other.linkid == dev.linkid || other.vnetid != key.vnetid {
                continue;
            }
            if other.underlay_key_with(None, other.vnetid).ok().flatten() == Some(key.clone()) {
                return Err(CtlError::exists(format!(
                    "device {} already uses {} vnetid {} on {}",
                    other.name,
                    key.encap,
                    key.vnetid,
                    endpoint(&key)
                )));
            }
        }
        Ok(())
    }
}

/// Brings up the packet path: backend, mux, transmit thread. A failure
/// undoes what was done (the backend closes when dropped, the mux is left).
fn start_dataplane(
    dev: &mut Device,
    engine: &mut Engine,
    lookups: &Arc<LookupService>,
) -> CtlResult<Dataplane> {
    let spec = dev.encap_dev.socket()?;
    let mode = dev.lookup_dev.mode();
    let dest = if mode == MODE_POINT {
        let point = dev.lookup_dev.default_point().map_err(|e| {
            CtlError::invalid(format!(
                "cannot activate {}: {} gave no destination: {}",
                dev.name, dev.search.meta.name, e.msg
            ))
        })?;
        TxDest::Point(point)
    } else if mode == MODE_DYNAMIC {
        let id = DynIdentity {
            linkid: dev.linkid,
            name: dev.name.clone(),
            needs: dev.encap.info.dest,
            domain: MuxKey::from_spec(&spec).domain,
        };
        let target = Arc::new(DynTarget::new(
            id,
            dev.cache_limits,
            dev.stats.clone(),
            dev.health.clone(),
            lookups,
        ));
        TxDest::Dynamic(target)
    } else {
        return Err(CtlError::invalid(format!(
            "cannot activate {}: lookup plugin {} reports mode {mode:#x}, neither point (1) nor dynamic (2)",
            dev.name, dev.search.meta.name
        )));
    };
    let ifname = dev.ifname.clone().unwrap_or_default();
    let backend: Arc<dyn Backend> = match dev.backend.as_str() {
        "afpacket" => Arc::new(AfPacket::open(&ifname).map_err(|e| backend_error(&ifname, e))?),
        _ => Arc::new(
            Tap::create(
                &ifname,
                dev.mtu as u32,
                engine.offloads.tso,
                Some(engine.tap_group),
            )
            .map_err(|e| backend_error(&ifname, e))?,
        ),
    };
    let port = Arc::new(Port {
        backend: backend.clone(),
        stats: dev.stats.clone(),
        health: dev.health.clone(),
    });
    let mux = engine.muxes.join(
        MuxKey::from_spec(&spec),
        &dev.encap,
        dev.vnetid,
        port.clone(),
        &engine.threads,
        &engine.offloads,
    )?;
    let target = TxTarget {
        vnetid: dev.vnetid,
        dest,
    };
    if let Some(t) = target.dynamic() {
        dev.dyn_target = Some(t.clone());
        dev.apply_dynamic();
        lookups.add_device(
            t.clone(),
            dev.lookup_dev.clone(),
            &dev.search.meta.name,
            dev.associated,
        );
    }
    let dp = Dataplane::start(
        &engine.threads,
        backend,
        mux.clone(),
        port,
        dev.encap_dev.clone(),
        dev.tunables.clone(),
        dev.stats.clone(),
        target,
    )
    .inspect_err(|_| engine.muxes.leave(&mux, dev.vnetid, &engine.threads));
    if dp.is_err() {
        if let Some(t) = dev.dyn_target.take() {
            lookups.remove_device(t.linkid);
        }
    }
    dp
}

fn backend_error(ifname: &str, e: std::io::Error) -> CtlError {
    CtlError::io(&format!("backend interface {ifname}"), &e)
}

/// What a change of a runtime property does to a running packet path,
/// before the value is stored.
fn apply_runtime(
    dev: &mut Device,
    g: Generic,
    v: &overlay_plugin_abi::prop::PropValue,
    engine: &Engine,
) -> CtlResult<()> {
    let Some(dp) = dev.dp.as_mut() else {
        return Ok(());
    };
    match g {
        Generic::Mtu if dev.backend == "tap" => {
            let mtu = v.as_uint().unwrap_or(dev.mtu) as u32;
            dp.backend
                .set_mtu(mtu)
                .map_err(|e| backend_error(dp.backend.ifname(), e))
        }
        Generic::Vnetid => {
            let target = TxTarget {
                vnetid: v.as_uint().unwrap_or(dev.vnetid),
                ..dp.target().clone()
            };
            dp.retarget(&engine.threads, target)
        }
        _ => Ok(()),
    }
}

/// Undoes activation. Infallible: deactivation must always complete.
/// Once it returns no frame of the device is sent or delivered, and its
/// backend interface is gone.
fn deactivate(dev: &mut Device, engine: &mut Engine) {
    if let Some(dp) = dev.dp.take() {
        drop(dp.stop(engine));
    }
    if let Some(t) = dev.dyn_target.take() {
        // Outstanding lookups are cancelled; queued frames freed, counted.
        t.stop();
    }
    dev.lookup_dev.stop();
    dev.active = false;
    tracing::info!(link = %dev.name, "deactivated");
}

fn endpoint(key: &UnderlayKey) -> String {
    let ip = overlay_plugin_abi::prop::ip_from_in6(key.addr);
    match ip {
        std::net::IpAddr::V4(v4) => format!("{v4}:{}", key.port),
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{}", key.port),
    }
}

fn not_found(r: &DevRef) -> CtlError {
    match r {
        DevRef::Name(n) => CtlError::not_found(format!("no device named {n}")),
        DevRef::LinkId(id) => CtlError::not_found(format!("no device with link id {id}")),
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none (check --plugin-dir)".to_string()
    } else {
        names.join(", ")
    }
}
