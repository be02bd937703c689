//! The plugin adapter: the registry of what the loader accepted, by kind
//! and name, and ([`call`]) the calls into plugins in the daemon's own
//! types. The only module of the daemon where abi_stable types appear.

pub mod call;

pub use call::{DecapError, EncapInstance, EncapPlugin, Faults, LookupInstance, LookupPlugin};
use overlay_plugin_abi::{
    loader::{self, LoadedPlugin, PluginObject, Refusal},
    EncapInfo, LookupInfo, PluginKind, PropInfo,
};
use std::{path::PathBuf, sync::Arc};

/// What is known of every plugin, whatever its kind.
#[derive(Debug, Clone)]
pub struct PluginMeta {
    /// Plugin name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// The plugin-abi version it was built against.
    pub abi_version: String,
    /// The `.so` it came from.
    pub path: PathBuf,
}

/// A loaded encapsulation plugin.
pub struct EncapEntry {
    /// Identity.
    pub meta: PluginMeta,
    /// The shared plugin object.
    pub plugin: EncapPlugin,
    /// Its declaration.
    pub info: EncapInfo,
}

impl EncapEntry {
    /// The largest virtual network id this encapsulation can carry.
    pub fn max_vnetid(&self) -> u64 {
        match self.info.id_size {
            8.. => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        }
    }
}

/// A loaded lookup plugin.
pub struct LookupEntry {
    /// Identity.
    pub meta: PluginMeta,
    /// The shared plugin object.
    pub plugin: LookupPlugin,
    /// Its declaration.
    pub info: LookupInfo,
}

/// Every plugin the daemon loaded.
#[derive(Default)]
pub struct Plugins {
    /// Encapsulation plugins, in load order.
    pub encaps: Vec<Arc<EncapEntry>>,
    /// Lookup plugins, in load order.
    pub lookups: Vec<Arc<LookupEntry>>,
}

impl Plugins {
    /// Scans `dirs`; returns the registry and the files refused.
    pub fn load(dirs: &[PathBuf]) -> (Plugins, Vec<Refusal>) {
        // Named before anything of the file is read, so that a file that
        // brings the daemon down while loading is named in the log.
        let scan = loader::scan_with(dirs, |file| {
            tracing::info!("loading plugin file {}", file.display())
        });
        let mut plugins = Plugins::default();
        for p in scan.loaded {
            plugins.add(p);
        }
        (plugins, scan.refused)
    }

    fn add(&mut self, p: LoadedPlugin) {
        let meta = PluginMeta {
            name: p.name,
            version: p.version,
            abi_version: p.abi_version,
            path: p.path,
        };
        match p.object {
            PluginObject::Encap { plugin, info } => self.encaps.push(Arc::new(EncapEntry {
                meta,
                plugin: EncapPlugin::new(plugin),
                info,
            })),
            PluginObject::Lookup { plugin, info } => self.lookups.push(Arc::new(LookupEntry {
                meta,
                plugin: LookupPlugin::new(plugin),
                info,
            })),
        }
    }

    /// The encapsulation plugin called `name`.
    pub fn encap(&self, name: &str) -> Option<&Arc<EncapEntry>> {
        self.encaps.iter().find(|e| e.meta.name == name)
    }

    /// The lookup plugin called `name`.
    pub fn lookup(&self, name: &str) -> Option<&Arc<LookupEntry>> {
        self.lookups.iter().find(|e| e.meta.name == name)
    }

    /// Names of the encapsulation plugins.
    pub fn encap_names(&self) -> Vec<&str> {
        self.encaps.iter().map(|e| e.meta.name.as_str()).collect()
    }

    /// Names of the lookup plugins.
    pub fn lookup_names(&self) -> Vec<&str> {
        self.lookups.iter().map(|e| e.meta.name.as_str()).collect()
    }

    /// Every plugin as (identity, kind, properties), encap plugins first.
    pub fn listing(&self) -> Vec<PluginView<'_>> {
        let encaps = self.encaps.iter().map(|e| PluginView {
            meta: &e.meta,
            kind: PluginKind::ENCAP,
            properties: &e.info.properties,
            encap: Some(&e.info),
            lookup: None,
        });
        let lookups = self.lookups.iter().map(|l| PluginView {
            meta: &l.meta,
            kind: PluginKind::LOOKUP,
            properties: &l.info.properties,
            encap: None,
            lookup: Some(&l.info),
        });
        encaps.chain(lookups).collect()
    }
}

/// One plugin as the PLUGINS listing shows it.
pub struct PluginView<'a> {
    /// Identity.
    pub meta: &'a PluginMeta,
    /// Encap or lookup.
    pub kind: PluginKind,
    /// Declared properties.
    pub properties: &'a [PropInfo],
    /// The encap declaration, for encap plugins.
    pub encap: Option<&'a EncapInfo>,
    /// The lookup declaration, for lookup plugins.
    pub lookup: Option<&'a LookupInfo>,
}
