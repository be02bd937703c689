//! Devices across daemon restarts: one state file, rewritten atomically on
//! every change, read back at start.
//!
//! # The state file
//!
//! `<state dir>/state.json`, JSON, versioned ([`STATE_VERSION`]):
//!
//! ```json
//! {
//!   "version": 1,
//!   "next_linkid": 3,
//!   "devices": [
//!     {
//!       "linkid": 1, "name": "ov0", "encap": "vxlan", "search": "direct",
//!       "vnetid": 42, "active": true,
//!       "props": [ { "name": "mtu", "value": "7805000000000000" }, ... ],
//!       "lookup_state": ""
//!     }
//!   ]
//! }
//! ```
//!
//! Property values are the encoded bytes of the protocol (`PROP_VALUE`) in
//! hex, so every type round-trips exactly; every writable property with a
//! value is saved, in the device's listing order. `lookup_state` is what
//! the lookup instance's `save` returned, in hex (empty for most plugins).
//! `"associated": true` is added for a dynamic-mode device handed to
//! external lookup servers (the target family's `ASSOCIATE`); it is set
//! again before the device is activated at the next start, so that its
//! lookups wait for a server instead of reaching the plugin.
//! Devices created `TEMPORARY` are never written.
//!
//! # When it is written
//!
//! After every successful CREATE, DELETE, ACTIVATE, SETPROP, ASSOCIATE and
//! DISASSOCIATE (a refused request leaves the file untouched), once at
//! start after the restore, and at a clean stop. Each write goes to a temporary file in the same
//! directory, is fsynced, renamed over `state.json`, and the directory is
//! fsynced: a crash leaves the old file or the new one, never a mix.
//!
//! # Stopping and starting
//!
//! A clean stop (SIGTERM, SIGINT, SIGHUP) writes the state with every
//! active device recorded as active, then tears the devices down: the
//! state describes what was running, and the next start brings it back.
//! A `kill -9` loses nothing either, since every change was already
//! written.
//!
//! At start the devices are created again under their link ids, their
//! properties set, their lookup state restored and those recorded active
//! activated again. A device whose property, lookup state or activation
//! cannot be restored is kept (created, with what could be set) and
//! degraded with a message saying what failed; one recorded active stays
//! recorded active, so that the next start tries again. A device that
//! cannot be created at all (its plugin is no longer installed) is logged
//! and its record kept in the file as it was; its name stays taken until
//! it is deleted by name. Nothing is dropped silently.
//!
//! A state file that cannot be read or parsed, or has another version, is
//! logged with the reason and renamed `state.json.corrupt-<unix time>`;
//! the daemon then starts with no devices. A lock file in the directory
//! keeps a second daemon from using the same state.

use crate::{
    devices::device::Owner,
    devices::registry::{CreateArgs, DevRef, Registry},
};
use nix::fcntl::{Flock, FlockArg};
use overlay_plugin_abi::{prop::perm, MODE_DYNAMIC};
use serde::{Deserialize, Serialize};
use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// The version of the state file format this daemon reads and writes.
pub const STATE_VERSION: u32 = 1;
/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Format version, [`STATE_VERSION`].
    pub version: u32,
    /// The link id the next created device gets (ids are never reused).
    pub next_linkid: u32,
    /// The persistent devices, in link-id order.
    pub devices: Vec<DeviceRecord>,
}

/// One device as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Link id.
    pub linkid: u32,
    /// Link name.
    pub name: String,
    /// Encapsulation plugin name.
    pub encap: String,
    /// Lookup plugin name.
    pub search: String,
    /// Virtual network id.
    pub vnetid: u64,
    /// Whether the device is to be active.
    pub active: bool,
    /// Writable properties with a value, in listing order.
    pub props: Vec<PropRecord>,
    /// The lookup instance's saved state, hex.
    #[serde(default)]
    pub lookup_state: String,
    /// Whether external servers serve its lookups (target family
    /// `ASSOCIATE`); written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub associated: bool,
}

/// One property value as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropRecord {
    /// Property name.
    pub name: String,
    /// Encoded value (as in `PROP_VALUE`), hex.
    pub value: String,
}

/// Only the version, read before the rest so that a file of another
/// version is reported as such rather than as a parse error.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Another daemon holds the directory's lock.
    #[error(
        "another overlayd uses the state directory {0}; stop it or choose another with --state-dir"
    )]
    Locked(PathBuf),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The state directory, locked for this daemon, and the records it could
/// not restore.
pub struct Persist {
    dir: PathBuf,
    _lock: Flock<File>,
    /// Records whose device could not be created at restore, kept as they
    /// were.
    unrestorable: Vec<(DeviceRecord, String)>,
    /// What the file holds, as last written: a change that leaves it the
    /// same (one to a temporary device) costs no write and no fsync.
    written: std::sync::Mutex<Option<String>>,
}

impl Persist {
    /// Opens (creating it, mode 0700) and locks the state directory.
    pub fn open(dir: &Path) -> Result<Persist, PersistError> {
        let io_err = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| PersistError::Io { what, path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("cannot create the state directory", dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err("cannot open the lock file", &lock_path))?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                PersistError::Locked(dir.to_path_buf())
            } else {
                io_err("cannot lock", &lock_path)(e.into())
            }
        })?;
        Ok(Persist {
            dir: dir.to_path_buf(),
            _lock: lock,
            unrestorable: Vec::new(),
            written: std::sync::Mutex::new(None),
        })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the state file. `None` when there is none, or when it was
    /// unusable: then it has been logged and moved aside.
    pub fn load(&self) -> Option<StateFile> {
        let path = self.path();
        let problem = match std::fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => format!("cannot be read: {e}"),
            Ok(bytes) => match parse(&bytes) {
                Ok(state) => return Some(state),
                Err(p) => p,
            },
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{STATE_FILE}.corrupt-{now}"));
        match std::fs::rename(&path, &aside) {
            Ok(()) => tracing::error!(
                "state file {} {problem}; moved it to {} and starting with no devices",
                path.display(),
                aside.display()
            ),
            Err(e) => tracing::error!(
                "state file {} {problem}; moving it to {} failed ({e}); starting with no devices, and the next change overwrites it",
                path.display(),
                aside.display()
            ),
        }
        None
    }

    /// Creates the saved devices again; see the module documentation.
    pub fn restore(&mut self, registry: &mut Registry, state: StateFile) {
        let mut records = state.devices;
        records.sort_by_key(|r| r.linkid);
        for rec in records {
            if let Err(why) = restore_one(registry, &rec) {
                tracing::error!(
                    link = %rec.name,
                    linkid = rec.linkid,
                    "cannot restore device {}: {why}; its record is kept in {} until it is deleted by name",
                    rec.name,
                    self.path().display()
                );
                self.unrestorable.push((rec, why));
            }
        }
        let next = state.next_linkid.max(
            self.unrestorable
                .iter()
                .map(|(r, _)| r.linkid + 1)
                .max()
                .unwrap_or(1),
        );
        registry.set_next_linkid(next);
    }

    /// Why the record of the device called `name` could not be restored,
    /// when there is such a record.
    pub fn unrestorable(&self, name: &str) -> Option<&str> {
        self.unrestorable
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(_, why)| why.as_str())
    }

    /// Drops the unrestorable record of `name`; whether there was one.
    pub fn forget(&mut self, name: &str) -> bool {
        let before = self.unrestorable.len();
        self.unrestorable.retain(|(r, _)| r.name != name);
        self.unrestorable.len() != before
    }

    /// The state as it is now.
    pub fn snapshot(&self, registry: &Registry) -> StateFile {
        let mut devices: Vec<DeviceRecord> = registry
            .devices()
            .filter(|d| !d.temporary)
            .map(|d| record(registry, d))
            .collect();
        devices.extend(self.unrestorable.iter().map(|(r, _)| r.clone()));
        devices.sort_by_key(|r| r.linkid);
        StateFile {
            version: STATE_VERSION,
            next_linkid: registry.next_linkid(),
            devices,
        }
    }

    /// Writes the state file atomically. Failures are logged by the
    /// caller, which has already made the change in memory.
    pub fn save(&self, registry: &Registry) -> Result<(), PersistError> {
        let state = self.snapshot(registry);
        let mut text = serde_json::to_string_pretty(&state).expect("state serializes");
        text.push('\n');
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let path = self.path();
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let io_err = |what: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source: io::Error| PersistError::Io { what, path, source }
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("cannot write", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot sync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io_err("cannot rename the new state to", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot sync the directory", &self.dir))?;
        *written = Some(text);
        Ok(())
    }
}

/// Parses a state file, or says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<StateFile, String> {
    let v: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a state file: {e}"))?;
    if v.version != STATE_VERSION {
        return Err(format!(
            "has format version {}, and this overlayd reads version {STATE_VERSION}",
            v.version
        ));
    }
    let state: StateFile =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a valid state file: {e}"))?;
    for d in &state.devices {
        for p in &d.props {
            unhex(&p.value)
                .map_err(|e| format!("has a bad value for {} of {}: {e}", p.name, d.name))?;
        }
        unhex(&d.lookup_state)
            .map_err(|e| format!("has a bad lookup_state for {}: {e}", d.name))?;
    }
    Ok(state)
}

fn record(registry: &Registry, d: &crate::devices::device::Device) -> DeviceRecord {
    let mut props = Vec::new();
    for (owner, info) in d.properties(registry.plugins()) {
        if !info.has(perm::WRITE) {
            continue;
        }
        let name = info.name.as_str();
        let value = match owner {
            Owner::Generic(g) => Ok(d.generic_value(g)),
            Owner::Encap => d.encap_dev.getprop(name),
            Owner::Lookup => d.lookup_dev.getprop(name),
        };
        match value {
            Ok(v) if v.is_empty() => {}
            Ok(v) => props.push(PropRecord {
                name: name.to_string(),
                value: hex(&v),
            }),
            Err(e) => tracing::warn!(
                link = %d.name,
                "cannot read {name} to save it: {}; the state file goes without it",
                e.msg
            ),
        }
    }
    // A panic is counted and degrades the device (as in every call into a
    // plugin), and the record goes without the state.
    let lookup_state = match d.lookup_dev.save() {
        Ok(v) => hex(&v),
        Err(e) => {
            tracing::warn!(
                link = %d.name,
                "lookup plugin {} cannot save its state: {}",
                d.search.meta.name,
                e.msg
            );
            String::new()
        }
    };
    DeviceRecord {
        linkid: d.linkid,
        name: d.name.clone(),
        encap: d.encap.meta.name.clone(),
        search: d.search.meta.name.clone(),
        vnetid: d.vnetid,
        active: d.active || d.activate_on_restore,
        props,
        lookup_state,
        associated: d.associated,
    }
}

/// Restores one device. `Err` only when it cannot be created at all;
/// anything later degrades it instead.
fn restore_one(registry: &mut Registry, rec: &DeviceRecord) -> Result<(), String> {
    registry.set_next_linkid(rec.linkid);
    let args = CreateArgs {
        name: rec.name.clone(),
        encap: rec.encap.clone(),
        search: rec.search.clone(),
        vnetid: rec.vnetid,
        props: Vec::new(),
        temporary: false,
    };
    let linkid = registry.create(args).map_err(|e| e.msg)?.linkid;
    let r = DevRef::LinkId(linkid);
    let mut problems = Vec::new();

    // Properties in saved order; one refused only because another is not
    // set yet (srcport_min above the default srcport_max) succeeds on a
    // later pass, so passes repeat while they make progress.
    let mut pending: Vec<(&str, Vec<u8>)> = rec
        .props
        .iter()
        .filter(|p| p.name != "vnetid")
        .map(|p| (p.name.as_str(), unhex(&p.value).unwrap_or_default()))
        .collect();
    loop {
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for (name, value) in pending.iter() {
            if let Err(e) = registry.setprop(&r, name, value) {
                failed.push((*name, value.clone()));
                errors.push(format!("{name}: {}", e.msg));
            }
        }
        if failed.is_empty() {
            break;
        }
        if failed.len() == pending.len() {
            problems.extend(errors);
            break;
        }
        pending = failed;
    }

    let state = unhex(&rec.lookup_state).unwrap_or_default();
    if !state.is_empty() {
        let dev = registry.get(&r).map_err(|e| e.msg)?;
        if let Err(e) = dev.lookup_dev.restore(&state) {
            problems.push(format!("lookup state: {}", e.msg));
        }
    }

    // Associated before activation, so that no lookup reaches the plugin.
    if rec.associated {
        let dev = registry.get_mut(&r).map_err(|e| e.msg)?;
        if dev.lookup_dev.mode() == MODE_DYNAMIC {
            dev.associated = true;
        } else {
            problems.push(format!(
                "association: the lookup plugin {} now works in point mode, so there are no lookups for external servers to serve",
                dev.search.meta.name
            ));
        }
    }

    if rec.active {
        if problems.is_empty() {
            if let Err(e) = registry.activate(&r) {
                problems.push(format!("activation: {}", e.msg));
            }
        }
        if !problems.is_empty() {
            if let Ok(dev) = registry.get_mut(&r) {
                dev.activate_on_restore = true;
            }
        }
    }

    if problems.is_empty() {
        tracing::info!(
            link = %rec.name,
            linkid,
            active = rec.active,
            "restored"
        );
    } else {
        let what = if rec.active {
            "restored but not active"
        } else {
            "restored incompletely"
        };
        let msg = format!("{what}: {}", problems.join("; "));
        tracing::error!(link = %rec.name, linkid, "{msg}");
        if let Ok(dev) = registry.get_mut(&r) {
            dev.health.degrade(&msg);
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() & 1 == 1 {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("{text:?} is not hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let v = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&v), "0001abff");
        assert_eq!(unhex("0001abff").unwrap(), v);
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
        assert!(unhex("é1").is_err());
    }

    #[test]
    fn parse_reports_what_is_wrong() {
        assert!(parse(b"garbage")
            .unwrap_err()
            .contains("is not a state file"));
        let e = parse(br#"{"version": 99, "devices": []}"#).unwrap_err();
        assert!(
            e.contains("version 99") && e.contains("reads version 1"),
            "{e}"
        );
        let e = parse(br#"{"version": 1}"#).unwrap_err();
        assert!(e.contains("not a valid state file"), "{e}");
        let bad_value = br#"{"version":1,"next_linkid":2,"devices":[{"linkid":1,"name":"ov0",
            "encap":"vxlan","search":"direct","vnetid":1,"active":false,
            "props":[{"name":"mtu","value":"x"}]}]}"#;
        let e = parse(bad_value).unwrap_err();
        assert!(e.contains("mtu of ov0"), "{e}");
        let good = StateFile {
            version: STATE_VERSION,
            next_linkid: 3,
            devices: vec![DeviceRecord {
                linkid: 2,
                name: "ov0".into(),
                encap: "vxlan".into(),
                search: "direct".into(),
                vnetid: 7,
                active: true,
                props: vec![PropRecord {
                    name: "mtu".into(),
                    value: hex(&1500u64.to_ne_bytes()),
                }],
                lookup_state: String::new(),
                associated: false,
            }],
        };
        let text = serde_json::to_vec(&good).unwrap();
        assert_eq!(parse(&text).unwrap(), good);
        // "associated" is written only when set, and read back.
        assert!(!String::from_utf8_lossy(&text).contains("associated"));
        let mut served = good.clone();
        served.devices[0].associated = true;
        let text = serde_json::to_vec(&served).unwrap();
        assert!(String::from_utf8_lossy(&text).contains(r#""associated":true"#));
        assert_eq!(parse(&text).unwrap(), served);
    }

    #[test]
    fn the_directory_is_locked_and_corrupt_files_move_aside() {
        let dir = std::env::temp_dir().join(format!("ovl-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = Persist::open(&dir).unwrap();
        assert!(matches!(Persist::open(&dir), Err(PersistError::Locked(_))));
        assert!(p.load().is_none(), "no file yet");
        std::fs::write(p.path(), b"{ not json").unwrap();
        assert!(p.load().is_none());
        assert!(!p.path().exists());
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        drop(p);
        Persist::open(&dir).expect("the lock goes with its holder");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
