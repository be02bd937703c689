//! Finding, loading and checking plugins.
//!
//! Every `*.so` in the plugin directories is first checked as a file (a
//! regular file nobody else could have written, then its ELF structure, see
//! [`elf`]: a file that would make the dynamic loader read past its end is
//! refused before `dlopen` sees it). It is then opened with
//! `lib_header_from_path(..).init_root_module()`, which checks the ABI
//! version and the whole type layout before any plugin code runs (never
//! `RootModule::load_from_file`, which caches one library per root-module
//! type and would hand back the first plugin for every later one). The
//! declaration is then validated. Each refusal is one [`Refusal`] naming the
//! file and the reason; loading goes on with the next file.

use crate::{
    dest, EncapInfo, EncapPluginBox, LookupInfo, LookupPluginBox, PluginKind, PluginModRef,
    PropInfo, PropType, ENCAP_F_VLAN_TAG, MODE_DYNAMIC, MODE_POINT, PROP_NAMELEN, PROP_SIZEMAX,
};
use abi_stable::library::{lib_header_from_path, LibraryError, ROOT_MODULE_LOADER_NAME};
use std::{
    collections::HashSet,
    fmt,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

pub mod elf;

/// Longest plugin name, in bytes.
pub const PLUGIN_NAMEMAX: usize = 31;

/// A plugin that passed every check.
pub struct LoadedPlugin {
    /// Canonical path of the `.so`.
    pub path: PathBuf,
    /// Plugin name.
    pub name: String,
    /// Plugin version, as it declares it.
    pub version: String,
    /// The version of this interface crate the plugin was built against.
    pub abi_version: String,
    /// The plugin object.
    pub object: PluginObject,
}

/// The object behind a loaded plugin, by kind.
pub enum PluginObject {
    /// An encapsulation plugin and its declaration.
    Encap {
        /// The plugin.
        plugin: EncapPluginBox,
        /// Its declaration, read once at load.
        info: EncapInfo,
    },
    /// A lookup plugin and its declaration.
    Lookup {
        /// The plugin.
        plugin: LookupPluginBox,
        /// Its declaration, read once at load.
        info: LookupInfo,
    },
}

impl LoadedPlugin {
    /// Encap or lookup.
    pub fn kind(&self) -> PluginKind {
        match self.object {
            PluginObject::Encap { .. } => PluginKind::ENCAP,
            PluginObject::Lookup { .. } => PluginKind::LOOKUP,
        }
    }

    /// The properties the plugin declares.
    pub fn properties(&self) -> &[PropInfo] {
        match &self.object {
            PluginObject::Encap { info, .. } => &info.properties,
            PluginObject::Lookup { info, .. } => &info.properties,
        }
    }
}

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The file.
    pub path: PathBuf,
    /// One line saying why.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// The result of scanning the plugin directories.
#[derive(Default)]
pub struct Scan {
    /// Plugins loaded, in load order.
    pub loaded: Vec<LoadedPlugin>,
    /// Files refused.
    pub refused: Vec<Refusal>,
}

/// Loads every `*.so` of `dirs`, in order, each directory sorted by name.
/// A directory that does not exist is skipped silently; one that cannot be
/// read is reported as a refusal. A plugin whose name is already loaded is
/// refused.
pub fn scan(dirs: &[PathBuf]) -> Scan {
    scan_with(dirs, |_| {})
}

/// [`scan`], calling `before_load` with each file's path before anything
/// of it is read: a daemon logs it there, so that a file that crashes the
/// process while being loaded is named in the log.
pub fn scan_with(dirs: &[PathBuf], mut before_load: impl FnMut(&Path)) -> Scan {
    let mut scan = Scan::default();
    let mut names = HashSet::new();
    let mut seen_files = HashSet::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                scan.refused.push(Refusal {
                    path: dir.clone(),
                    reason: format!("cannot read plugin directory: {e}"),
                });
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect();
        files.sort();
        for file in files {
            // The same file reached twice (a directory listed twice, or a
            // symlink) is loaded once.
            let canon = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if !seen_files.insert(canon) {
                continue;
            }
            before_load(&file);
            match load(&file) {
                Ok(p) => {
                    if !names.insert(p.name.clone()) {
                        let first = scan
                            .loaded
                            .iter()
                            .find(|l| l.name == p.name)
                            .map(|l| l.path.display().to_string())
                            .unwrap_or_default();
                        scan.refused.push(Refusal {
                            path: file,
                            reason: format!(
                                "duplicate plugin name '{}' (already loaded from {first})",
                                p.name
                            ),
                        });
                    } else {
                        scan.loaded.push(p);
                    }
                }
                Err(reason) => scan.refused.push(Refusal { path: file, reason }),
            }
        }
    }
    scan
}

/// Loads and checks one plugin file. The error is a one-line reason.
pub fn load(path: &Path) -> Result<LoadedPlugin, String> {
    let path = std::fs::canonicalize(path).map_err(|e| format!("cannot open: {e}"))?;
    let meta = std::fs::metadata(&path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    // dlopen runs the file's constructors with the daemon's privileges: only
    // files that nobody else could have written are opened.
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o}); run chmod go-w on it",
            meta.mode() & 0o7777
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "owned by uid {}, neither root nor the daemon's user",
            meta.uid()
        ));
    }
    check_file(&path)?;
    let header = lib_header_from_path(&path).map_err(|e| library_reason(&e))?;
    let abi_version = header.version_strings().version.to_string();
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| library_reason(&e))?;
    let desc = (module.describe())();
    let name = desc.name.as_str().to_string();
    check_name(&name)?;
    let version = desc.version.as_str().to_string();
    let object = match desc.kind {
        PluginKind::ENCAP => {
            let plugin = (module.new_encap())()
                .into_result()
                .map_err(|e| format!("plugin '{name}' failed to initialise: {e}"))?;
            let info = plugin.info();
            check_encap(&name, &info)?;
            PluginObject::Encap { plugin, info }
        }
        PluginKind::LOOKUP => {
            let plugin = (module.new_lookup())()
                .into_result()
                .map_err(|e| format!("plugin '{name}' failed to initialise: {e}"))?;
            let info = plugin.info();
            check_lookup(&name, &info)?;
            PluginObject::Lookup { plugin, info }
        }
        other => return Err(format!("plugin '{name}' declares unknown kind {}", other.0)),
    };
    Ok(LoadedPlugin {
        path,
        name,
        version,
        abi_version,
        object,
    })
}

/// Reads the file and checks its ELF structure ([`elf::check`]): what
/// passes can be handed to `dlopen` without it reading past the end of
/// the file. The error is a one-line reason.
pub fn check_file(path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    elf::check(&data)
}

/// One line saying why abi_stable refused a file, by kind of failure, with
/// what to do about it.
fn library_reason(e: &LibraryError) -> String {
    match e {
        LibraryError::OpenError { .. } => {
            let text = short_reason(&e.to_string());
            // dlopen's own words ("invalid ELF header", "file too short")
            // are kept: they are what a person searches for.
            let last = text.rsplit(" because: ").next().unwrap_or(&text);
            if last.contains("invalid ELF header") || last.contains("file too short") {
                format!("not an ELF shared library: {last}")
            } else {
                format!("cannot load: {last}")
            }
        }
        LibraryError::GetSymbolError { symbol, .. } => {
            // The loader's text carries the symbol with its NUL byte; say
            // it in our words.
            let symbol = String::from_utf8_lossy(symbol);
            let symbol = symbol.trim_end_matches('\0');
            if symbol == ROOT_MODULE_LOADER_NAME {
                NO_ROOT_MODULE.to_string()
            } else {
                format!("cannot find symbol {symbol} in the library")
            }
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "ABI version mismatch: built against overlay-plugin-abi {actual_version}, \
             this daemon loads plugins built against {expected_version} or a later \
             compatible version; rebuild the plugin against overlay-plugin-abi {}",
            crate::ABI_VERSION
        ),
        LibraryError::AbiInstability(_) => {
            let full = e.to_string();
            let place = mismatch_place(&full)
                .map(|p| format!(" in {p}"))
                .unwrap_or_default();
            format!(
                "ABI layout mismatch{place}: the plugin was built against an incompatible \
                 overlay-plugin-abi (its types differ from this daemon's {}); rebuild it \
                 against the daemon's version. {}",
                crate::ABI_VERSION,
                short_reason(&full)
            )
        }
        LibraryError::Many(errors) => errors
            .iter()
            .map(library_reason)
            .collect::<Vec<_>>()
            .join("; "),
        other => short_reason(&other.to_string()),
    }
}

/// Where in the interface abi_stable found a layout mismatch, from the
/// path it prints to the offending type (the last error's `inside:` list
/// of fields, outermost first): the trait and method it lies under, and
/// the type, as `EncapDevice::socket, type SockOpt`. A trait object's
/// type is `<Trait>_TO`, its methods the fields of the `VTable` after it.
/// `None` when the text has no such path.
fn mismatch_place(full: &str) -> Option<String> {
    let block = &full[full.rfind("error(s)inside:")?..];
    let block = block.split("Layout of expected type:").next()?;
    let (mut in_trait, mut method, mut last) = (None, None, None);
    let mut vtable = false;
    for line in block.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix("type:") {
            let t = t.trim();
            if let Some(name) = t.strip_suffix("_TO<'lt>") {
                in_trait = Some(name);
                method = None;
            }
            vtable = in_trait.is_some() && t == "VTable";
            last = Some(t);
        } else if let Some(f) = line.strip_prefix("field_name:") {
            if vtable {
                method = Some(f.trim());
            }
            vtable = false;
        }
    }
    let ty = last?;
    Some(match (in_trait, method) {
        (Some(t), Some(m)) => format!("{t}::{m}, type {ty}"),
        (Some(t), None) => format!("the methods of {t}"),
        (None, _) => format!("type {ty}"),
    })
}

/// The refusal of a library without the root module every plugin exports.
const NO_ROOT_MODULE: &str = "not an overlayd plugin (no root module symbol): the library \
    does not export the plugin entry point; end the plugin crate with \
    export_encap_plugin! or export_lookup_plugin! and build it with \
    crate-type = [\"cdylib\"]";

/// abi_stable's errors run to thousands of lines for layout mismatches; a
/// log line keeps the last `Error:` block, whitespace collapsed and control
/// characters (the NUL ending a symbol name) dropped.
fn short_reason(full: &str) -> String {
    if full.contains("undefined symbol") {
        return NO_ROOT_MODULE.to_string();
    }
    let tail = match full.rfind("Error:") {
        Some(at) => &full[at..],
        None => full,
    };
    tail.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > PLUGIN_NAMEMAX {
        return Err(format!(
            "invalid registration: plugin name '{name}' must be 1 to {PLUGIN_NAMEMAX} bytes"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "invalid registration: plugin name '{name}' may hold only a-z, 0-9, '_' and '-'"
        ));
    }
    Ok(())
}

fn check_encap(name: &str, info: &EncapInfo) -> Result<(), String> {
    let bad = |what: String| Err(format!("invalid registration of '{name}': {what}"));
    if !(1..=8).contains(&info.id_size) {
        return bad(format!("id size {} is not in 1..=8", info.id_size));
    }
    if info.dest == 0 || info.dest & !dest::ALL != 0 {
        return bad(format!(
            "destination kinds {:#x} are empty or unknown",
            info.dest
        ));
    }
    if info.flags & !ENCAP_F_VLAN_TAG != 0 {
        return bad(format!("unknown flags {:#x}", info.flags));
    }
    if info.max_header_len == 0 || info.max_header_len > 512 {
        return bad(format!(
            "maximum header length {} is not in 1..=512",
            info.max_header_len
        ));
    }
    check_props(name, &info.properties)
}

fn check_lookup(name: &str, info: &LookupInfo) -> Result<(), String> {
    let bad = |what: String| Err(format!("invalid registration of '{name}': {what}"));
    if info.modes == 0 || info.modes & !(MODE_POINT | MODE_DYNAMIC) != 0 {
        return bad(format!("modes {:#x} are empty or unknown", info.modes));
    }
    if info.dest == 0 || info.dest & !dest::ALL != 0 {
        return bad(format!(
            "destination kinds {:#x} are empty or unknown",
            info.dest
        ));
    }
    check_props(name, &info.properties)
}

fn check_props(plugin: &str, props: &[PropInfo]) -> Result<(), String> {
    let mut seen = HashSet::new();
    let prefix = format!("{plugin}/");
    for p in props {
        let bad = |what: &str| {
            Err(format!(
                "invalid registration of '{plugin}': property '{}' {what}",
                p.name
            ))
        };
        if !p.name.starts_with(&prefix) || p.name.len() == prefix.len() {
            return bad(&format!("must be named {prefix}<name>"));
        }
        if p.name.len() >= PROP_NAMELEN {
            return bad(&format!("is longer than {} bytes", PROP_NAMELEN - 1));
        }
        if !seen.insert(p.name.as_str()) {
            return bad("is declared twice");
        }
        if !matches!(
            p.ptype,
            PropType::INT | PropType::UINT | PropType::IP | PropType::STRING
        ) {
            return bad(&format!("has unknown type {}", p.ptype.0));
        }
        if p.perm & !0xf != 0 {
            return bad(&format!("has unknown permission bits {:#x}", p.perm));
        }
        if p.default.len() > PROP_SIZEMAX {
            return bad("has a default over 256 bytes");
        }
        if !p.default.is_empty() {
            if let Err(e) = p.validate(&p.default) {
                return bad(&format!("has an invalid default: {e}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reason_keeps_the_last_error_block() {
        let long = "lots\nof\nlines\nError:too many fields\nExpected:\n    4\nFound:\n    3\n";
        assert_eq!(
            short_reason(long),
            "Error:too many fields Expected: 4 Found: 3"
        );
        let sym = "Could load symbol:\n\t_1as\0\nin library:\n\tx.so\nbecause:\n\tx.so: undefined symbol: _1as";
        let reason = short_reason(sym);
        assert!(reason.starts_with("not an overlayd plugin"), "{reason}");
        assert!(!reason.contains('\0'), "{reason:?}");
        assert_eq!(short_reason("Error:\0a\tb\u{1}c"), "Error: a b c");
    }

    /// The path abi_stable prints for a field added to `SockOpt` (the
    /// plugin built against the changed type), its layout details cut.
    const SOCKOPT_PATH: &str = "\
Compared <this>:\n    ...\n2 error(s)inside:
    <other>

    field_name:0
    type:PluginMod

    field_name:new_encap
    type:AFunctionPointer

    field_name:field_0
    type:EncapPlugin_TO<'lt>

    field_name:vtable
    type:PrefixRef<'a, VTable>

    field_name:0
    type:VTable

    field_name:new_device
    type:AFunctionPointer

    field_name:field_0
    type:EncapDevice_TO<'lt>

    field_name:vtable
    type:PrefixRef<'a, VTable>

    field_name:0
    type:VTable

    field_name:socket
    type:AFunctionPointer

    field_name:field_0
    type:SocketSpec

    field_name:0
    type:SockOpt

Layout of expected type:
    type:SockOpt
Error:too many fields
";

    #[test]
    fn a_layout_mismatch_names_the_trait_method_and_type() {
        assert_eq!(
            mismatch_place(SOCKOPT_PATH).as_deref(),
            Some("EncapDevice::socket, type SockOpt")
        );
        // A method added to a trait: the mismatch is its vtable's.
        let cut = SOCKOPT_PATH.split("    field_name:socket").next().unwrap();
        let vtable = format!("{cut}Layout of expected type:\n");
        assert_eq!(
            mismatch_place(&vtable).as_deref(),
            Some("the methods of EncapDevice")
        );
        assert_eq!(mismatch_place("Error:something else"), None);
    }

    #[test]
    fn registration_checks() {
        assert!(check_name("vxlan").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Bad/name").is_err());
        let mut info = EncapInfo {
            id_size: 3,
            flags: ENCAP_F_VLAN_TAG,
            dest: dest::IP | dest::PORT,
            max_header_len: 8,
            properties: vec![PropInfo::uint("x/port").default_uint(1).range(1, 9)].into(),
        };
        assert!(check_encap("x", &info).is_ok());
        info.id_size = 9;
        assert!(check_encap("x", &info).unwrap_err().contains("id size 9"));
        info.id_size = 3;
        info.dest = 0;
        assert!(check_encap("x", &info).is_err());
        info.dest = dest::IP;
        info.properties = vec![PropInfo::uint("y/port")].into();
        assert!(check_encap("x", &info).unwrap_err().contains("x/<name>"));
        info.properties = vec![PropInfo::uint("x/p"), PropInfo::uint("x/p")].into();
        assert!(check_encap("x", &info).unwrap_err().contains("twice"));
        info.properties = vec![PropInfo::uint("x/p").default_uint(0).range(1, 2)].into();
        assert!(check_encap("x", &info).unwrap_err().contains("default"));
        let lookup = LookupInfo {
            modes: 0,
            dest: dest::IP,
            properties: Default::default(),
        };
        assert!(check_lookup("x", &lookup).unwrap_err().contains("modes"));
    }

    #[test]
    fn scan_refuses_non_plugins_and_goes_on() {
        let dir = std::env::temp_dir().join(format!("ovl-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a-text.so"), b"not an ELF file").unwrap();
        std::fs::write(dir.join("ignored.txt"), b"x").unwrap();
        let scan = scan(&[dir.clone(), dir.join("missing")]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(scan.loaded.is_empty());
        assert_eq!(scan.refused.len(), 1, "{:?}", scan.refused);
        assert!(
            scan.refused[0].reason.contains("invalid ELF header")
                || scan.refused[0].reason.contains("too short"),
            "{}",
            scan.refused[0]
        );
    }
}
