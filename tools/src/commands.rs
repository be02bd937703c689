//! The subcommands: what each sends to the daemon and what it prints.
//!
//! Every command checks all of its arguments before its first request, and
//! every value is encoded before the first request that changes state, so
//! a typo never leaves a half-applied change behind.

use crate::cli::{Cli, Command, CreateArgs};
use crate::error::Error;
use crate::kv::{check_unique, parse_assignment, parse_list, Assignment};
use crate::model::{
    Counters, Device, DeviceStats, LookupStats, Plugin, PropInfo, ServerStatus, NONE,
};
use crate::table::{Object, Row, Table};
use crate::value::{format_value, parse_u64, parse_value, PropType};
use clap::CommandFactory;
use nlproto::client::{Client, Error as ClientError};
use nlproto::spec::handle;
use nlproto::spec::overlay as ov;
use nlproto::spec::target as tg;
use nlproto::transcript::Recorder;
use nlproto::{Attr, AttrsExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// The requests the commands make, each to a family named as nlctrl knows
/// it (`overlay`, `overlay_target`). A trait so that the commands can be
/// tested against a scripted daemon.
pub trait Daemon {
    /// A TRANSACTION: one reply's attributes.
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError>;
    /// A WRITE: waits for the ack.
    fn write(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError>;
    /// A TRANSACTION whose reply is not needed, only its success. A
    /// pipelining daemon (`-b`) sends it without waiting.
    fn request(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.transact(family, cmd, attrs).map(|_| ())
    }
    /// A DUMP: every reply's attributes.
    fn dump(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Vec<Attr>>, ClientError>;
}

/// The daemon at a socket path, connected on the first request so that
/// argument errors are reported without touching the socket.
#[derive(Debug)]
pub struct Connection {
    path: PathBuf,
    client: Option<Client>,
    recorder: Option<Recorder>,
}

impl Connection {
    /// A connection to be made to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Connection {
        Connection {
            path: path.into(),
            client: None,
            recorder: None,
        }
    }

    /// A connection to be made to `path` whose every datagram `recorder`
    /// keeps.
    pub fn recording(path: impl Into<PathBuf>, recorder: Recorder) -> Connection {
        Connection {
            path: path.into(),
            client: None,
            recorder: Some(recorder),
        }
    }

    /// A connection over an already connected client.
    pub fn from_client(client: Client) -> Connection {
        Connection {
            path: PathBuf::new(),
            client: Some(client),
            recorder: None,
        }
    }

    /// The client, connected on first use.
    pub fn client(&mut self) -> Result<&mut Client, ClientError> {
        let client = match self.client.take() {
            Some(c) => c,
            None => match &self.recorder {
                Some(r) => Client::connect_tapped(
                    &self.path,
                    nlproto::client::DEFAULT_TIMEOUT,
                    Box::new(r.clone()),
                )?,
                None => Client::connect(&self.path)?,
            },
        };
        Ok(self.client.insert(client))
    }
}

impl Daemon for Connection {
    fn transact(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Attr>, ClientError> {
        Ok(self.client()?.transact(family, cmd, attrs)?.attrs)
    }

    fn write(&mut self, family: &str, cmd: u8, attrs: Vec<Attr>) -> Result<(), ClientError> {
        self.client()?.write(family, cmd, attrs)
    }

    fn dump(
        &mut self,
        family: &str,
        cmd: u8,
        attrs: Vec<Attr>,
    ) -> Result<Vec<Vec<Attr>>, ClientError> {
        Ok(self
            .client()?
            .dump(family, cmd, attrs)?
            .into_iter()
            .map(|m| m.attrs)
            .collect())
    }
}

/// Runs the command line against `daemon` and returns what goes to stdout.
pub fn execute(cli: &Cli, daemon: &mut dyn Daemon) -> Result<Vec<u8>, Error> {
    let json = cli.json;
    let Some(command) = &cli.command else {
        return Err(Error::local(
            "no command: give one (overlayctl --help lists them), or -b FILE",
        ));
    };
    let text = match command {
        Command::Create(args) => create(daemon, args, json)?,
        Command::Activate { link } => {
            daemon
                .write(ov::NAME, ov::CMD_ACTIVATE, vec![name_attr(link)])
                .map_err(Error::daemon(format!("activate {link}")))?;
            String::new()
        }
        Command::Delete { link } => {
            daemon
                .write(ov::NAME, ov::CMD_DELETE, vec![name_attr(link)])
                .map_err(Error::daemon(format!("delete {link}")))?;
            String::new()
        }
        Command::PropSet { link, assignments } => {
            prop_set(daemon, link, assignments)?;
            String::new()
        }
        Command::PropGet { link, keys } => output(&prop_get(daemon, link, keys)?, json),
        Command::Show {
            target: true, link, ..
        } => output(&cache::show_targets(daemon, link.as_deref())?, json),
        Command::Show {
            faults,
            stats: false,
            link,
            ..
        } => output(&show(daemon, link.as_deref(), *faults)?, json),
        Command::Show {
            stats: true,
            verbose,
            link,
            ..
        } => output(
            &show_stats(daemon, link.as_deref(), *verbose && !json)?,
            json,
        ),
        Command::CacheSet { link, entry } => {
            cache::set(daemon, link, entry)?;
            String::new()
        }
        Command::CacheGet { link, mac } => output(&cache::get(daemon, link, mac)?, json),
        Command::CacheRemove { link, mac } => {
            cache::remove(daemon, link, mac)?;
            String::new()
        }
        Command::CacheFlush { link } => {
            cache::flush(daemon, link)?;
            String::new()
        }
        Command::LookupStats => output(&lookup_stats(daemon)?, json),
        Command::Status => output(&status(daemon)?, json),
        Command::Plugins { verbose } => output(&plugins(daemon, *verbose && !json)?, json),
        Command::Raw(_) => {
            return Err(Error::local(
                "raw sends its request itself: run it through tools::run",
            ))
        }
        Command::Monitor => {
            return Err(Error::local(
                "monitor streams its output as notifications arrive: run it through tools::run",
            ))
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "overlayctl", &mut out);
            return Ok(out);
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .section("8")
                .render(&mut out)
                .map_err(|e| Error::local(format!("man: {e}")))?;
            return Ok(out);
        }
    };
    Ok(text.into_bytes())
}

fn output(table: &Table, json: bool) -> String {
    if json {
        table.to_json()
    } else {
        table.render()
    }
}

fn name_attr(link: &str) -> Attr {
    Attr::str(ov::ATTR_NAME, link)
}

/// Joins several local errors into the single line the CLI prints.
fn local_errors(context: &str, errors: Vec<String>) -> Result<(), Error> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::local(format!("{context}: {}", errors.join("; "))))
    }
}

/// The columns of `show`.
const SHOW_COLUMNS: &[&str] = &["LINK", "ENCAP", "SEARCH", "VNETID", "STATE", "STATUS"];
/// The columns of `show -f`.
const FAULT_COLUMNS: &[&str] = &["LINK", "STATUS", "DETAILS"];
/// The columns of `show -s`.
const STATS_COLUMNS: &[&str] = &["LINK", "IPACKETS", "RBYTES", "OPACKETS", "OBYTES", "DROPS"];
/// The columns of `lookup-stats`.
const LOOKUP_STATS_COLUMNS: &[&str] = &["REQUESTS", "ANSWERS", "TIMEOUTS", "LATE", "PENDING"];
/// The columns of `status`.
const STATUS_COLUMNS: &[&str] = &["PACKET-THREADS", "OFFLOADS", "BUSY-POLL", "HANDLES"];
/// The columns of `prop-get`.
const PROP_COLUMNS: &[&str] = &[
    "LINK", "PROPERTY", "PERM", "REQ", "VALUE", "DEFAULT", "POSSIBLE",
];
/// The columns of `plugins`.
const PLUGIN_COLUMNS: &[&str] = &["NAME", "KIND", "VERSION", "FILE", "PROPERTIES"];

fn device_table(devices: &[Device], faults: bool) -> Table {
    let mut t = Table::new(if faults { FAULT_COLUMNS } else { SHOW_COLUMNS });
    for d in devices {
        t.push(if faults {
            vec![d.name.clone(), d.fault_status_text(), d.details_text()]
        } else {
            vec![
                d.name.clone(),
                d.encap.clone(),
                d.search.clone(),
                d.vnetid_text(),
                d.state_text(),
                d.status_text(),
            ]
        });
    }
    t
}

/// `create`: checks every argument, learns the property types from the
/// plugins when initial properties are given, then sends one CREATE.
fn create(daemon: &mut dyn Daemon, args: &CreateArgs, json: bool) -> Result<String, Error> {
    let link = &args.link;
    let context = format!("create {link}");
    let vnetid = parse_u64(&args.vnetid).map_err(|e| format!("-v: {e}"));
    let mut errors: Vec<String> = vnetid.as_ref().err().cloned().into_iter().collect();
    let mut props: Vec<Assignment> = Vec::new();
    for p in &args.props {
        match parse_list(p) {
            Ok(list) => props.extend(list),
            Err(e) => errors.push(format!("-p {e}")),
        }
    }
    if let Err(e) = check_unique(&props) {
        errors.push(format!("-p: {e}"));
    }
    local_errors(&context, errors)?;
    // Already reported above when it failed; this only unwraps.
    let vnetid = vnetid.map_err(Error::Local)?;

    let mut attrs = vec![
        name_attr(link),
        Attr::str(ov::ATTR_ENCAP, &args.encap),
        Attr::str(ov::ATTR_SEARCH, &args.search),
        Attr::u64(ov::ATTR_VNETID, vnetid),
    ];
    if args.temporary {
        attrs.push(Attr::flag(ov::ATTR_TEMPORARY));
    }
    if !props.is_empty() {
        let encoded = encode_create_props(daemon, args, &props)?;
        attrs.push(Attr::nested(
            ov::ATTR_PROPS,
            encoded
                .into_iter()
                .map(|(name, value)| {
                    Attr::nested(
                        ov::ATTR_PROP,
                        vec![
                            Attr::str(ov::ATTR_PROP_NAME, name),
                            Attr::bytes(ov::ATTR_PROP_VALUE, value),
                        ],
                    )
                })
                .collect(),
        ));
    }
    if !json {
        daemon
            .request(ov::NAME, ov::CMD_CREATE, attrs)
            .map_err(Error::daemon(&context))?;
        return Ok(String::new());
    }
    let reply = daemon
        .transact(ov::NAME, ov::CMD_CREATE, attrs)
        .map_err(Error::daemon(&context))?;
    Ok(device_table(&[Device::from_attrs(&reply)], false).to_json())
}

/// Encodes `create -p` values. The device does not exist yet, so the types
/// come from the generic properties and the PLUGINS dump.
fn encode_create_props(
    daemon: &mut dyn Daemon,
    args: &CreateArgs,
    props: &[Assignment],
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let context = format!("create {}", args.link);
    let plugins: Vec<Plugin> = daemon
        .dump(ov::NAME, ov::CMD_PLUGINS, vec![])
        .map_err(Error::daemon(format!("{context}: list plugins")))?
        .iter()
        .map(|a| Plugin::from_attrs(a))
        .collect();
    let find = |kind: u32, name: &str| plugins.iter().find(|p| p.kind == kind && p.name == name);
    let encap = find(ov::KIND_ENCAP, &args.encap);
    let search = find(ov::KIND_LOOKUP, &args.search);

    let mut known: Vec<(String, PropType)> = ov::GENERIC_PROPS
        .iter()
        .map(|(n, t)| (n.to_string(), PropType::from_wire(*t)))
        .collect();
    for p in encap.iter().chain(search.iter()) {
        known.extend(p.props.iter().map(|i| (i.name.clone(), i.ty)));
    }
    let types: HashMap<&str, PropType> = known.iter().map(|(n, t)| (n.as_str(), *t)).collect();

    let mut errors = Vec::new();
    let mut unknown = Vec::new();
    let mut encoded = Vec::new();
    for a in props {
        match types.get(a.key.as_str()) {
            None => unknown.push(a.key.as_str()),
            Some(ty) => match parse_value(*ty, &a.value) {
                Ok(v) => encoded.push((a.key.clone(), v)),
                Err(e) => errors.push(format!("{}={}: {e}", a.key, a.value)),
            },
        }
    }
    if !unknown.is_empty() {
        let mut text = format!(
            "unknown propert{} {}; the properties of encap {} and search {} are: {}",
            if unknown.len() == 1 { "y" } else { "ies" },
            unknown.join(", "),
            args.encap,
            args.search,
            known
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let loaded = |kind: u32| {
            let names: Vec<&str> = plugins
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str())
                .collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        if encap.is_none() {
            text += &format!(
                " (no encap plugin {} is loaded; loaded: {})",
                args.encap,
                loaded(ov::KIND_ENCAP)
            );
        }
        if search.is_none() {
            text += &format!(
                " (no lookup plugin {} is loaded; loaded: {})",
                args.search,
                loaded(ov::KIND_LOOKUP)
            );
        }
        errors.insert(0, text);
    }
    local_errors(&context, errors)?;
    Ok(encoded)
}

/// A property's description from the daemon (PROPINFO transaction).
fn prop_info(daemon: &mut dyn Daemon, link: &str, prop: &str) -> Result<PropInfo, Error> {
    daemon
        .transact(
            ov::NAME,
            ov::CMD_PROPINFO,
            vec![name_attr(link), Attr::str(ov::ATTR_PROP_NAME, prop)],
        )
        .map(|a| PropInfo::from_attrs(&a))
        .map_err(Error::daemon(format!("property {prop} of {link}")))
}

/// `prop-set`: learns every property's type and encodes every value before
/// the first SETPROP.
fn prop_set(daemon: &mut dyn Daemon, link: &str, args: &[String]) -> Result<(), Error> {
    let context = format!("prop-set {link}");
    let mut errors = Vec::new();
    let mut list = Vec::new();
    for a in args {
        match parse_assignment(a) {
            Ok(a) => list.push(a),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Err(e) = check_unique(&list) {
        errors.push(e.to_string());
    }
    local_errors(&context, errors)?;

    let mut errors = Vec::new();
    let mut encoded = Vec::new();
    for a in &list {
        let info = prop_info(daemon, link, &a.key)?;
        match parse_value(info.ty, &a.value) {
            Ok(v) => encoded.push((a.key.as_str(), v)),
            Err(e) => errors.push(format!("{}={}: {e}", a.key, a.value)),
        }
    }
    local_errors(&context, errors)?;

    for (key, value) in encoded {
        daemon
            .write(
                ov::NAME,
                ov::CMD_SETPROP,
                vec![
                    name_attr(link),
                    Attr::str(ov::ATTR_PROP_NAME, key),
                    Attr::bytes(ov::ATTR_PROP_VALUE, value),
                ],
            )
            .map_err(Error::daemon(format!("set {key} on {link}")))?;
    }
    Ok(())
}

/// `prop-get`: the descriptions (one dump, or one PROPINFO per name), then
/// each value.
fn prop_get(daemon: &mut dyn Daemon, link: &str, keys: &[String]) -> Result<Table, Error> {
    let infos: Vec<(Option<String>, PropInfo)> = if keys.is_empty() {
        daemon
            .dump(ov::NAME, ov::CMD_PROPINFO, vec![name_attr(link)])
            .map_err(Error::daemon(format!("list properties of {link}")))?
            .iter()
            .map(|a| {
                (
                    a.get_str(ov::ATTR_NAME).map(str::to_string),
                    PropInfo::from_attrs(a),
                )
            })
            .collect()
    } else {
        keys.iter()
            .map(|k| Ok((None, prop_info(daemon, link, k)?)))
            .collect::<Result<_, Error>>()?
    };
    let mut t = Table::new(PROP_COLUMNS);
    for (name, info) in infos {
        // Reading a write-only property can only fail; show it as unset.
        let value = if info.perm & ov::PERM_READ != 0 {
            let reply = daemon
                .transact(
                    ov::NAME,
                    ov::CMD_GETPROP,
                    vec![name_attr(link), Attr::str(ov::ATTR_PROP_NAME, &info.name)],
                )
                .map_err(Error::daemon(format!("get {} of {link}", info.name)))?;
            reply
                .get_bytes(ov::ATTR_PROP_VALUE)
                .map(|v| format_value(info.ty, v))
        } else {
            None
        };
        t.push(vec![
            name.unwrap_or_else(|| link.to_string()),
            info.name.clone(),
            info.perm_text(),
            info.req_text().to_string(),
            value.unwrap_or_else(|| NONE.to_string()),
            info.default_text(),
            info.possible_text(),
        ]);
    }
    Ok(t)
}

/// `show` and `show -f`.
fn show(daemon: &mut dyn Daemon, link: Option<&str>, faults: bool) -> Result<Table, Error> {
    let devices: Vec<Device> = match link {
        Some(link) => {
            let reply = daemon
                .transact(ov::NAME, ov::CMD_LIST, vec![name_attr(link)])
                .map_err(Error::daemon(format!("show {link}")))?;
            vec![Device::from_attrs(&reply)]
        }
        None => daemon
            .dump(ov::NAME, ov::CMD_LIST, vec![])
            .map_err(Error::daemon("list devices"))?
            .iter()
            .map(|a| Device::from_attrs(a))
            .collect(),
    };
    Ok(device_table(&devices, faults))
}

/// Counters as `show -s -v` lines (`name value`), each after `indent`.
fn counter_lines(counters: &Counters, indent: &str) -> Vec<String> {
    counters
        .0
        .iter()
        .map(|(name, value)| format!("{indent}{name} {value}"))
        .collect()
}

/// Counters as one JSON object, by name, values as numbers.
fn counters_object(counters: &Counters) -> Value {
    Value::Object(
        counters
            .0
            .iter()
            .map(|(name, value)| (name.to_string(), Value::from(*value)))
            .collect(),
    )
}

/// One device's row of `show -s`. The detail lines (verbose) list every
/// counter of the device, then the mux's endpoint with its counters
/// indented one step further; JSON adds the same as `counters` and `mux`.
fn stats_row(s: &DeviceStats, verbose: bool) -> Row {
    let c = &s.counters;
    let mut detail = Vec::new();
    if verbose {
        detail.extend(counter_lines(c, ""));
        if let Some(mux) = &s.mux {
            detail.push(format!("mux {}", mux.endpoint));
            detail.extend(counter_lines(&mux.counters, "    "));
        }
    }
    let mut extra = Object::new();
    extra.insert("counters".into(), counters_object(c));
    if let Some(mux) = &s.mux {
        extra.insert(
            "mux".into(),
            json!({"endpoint": mux.endpoint, "counters": counters_object(&mux.counters)}),
        );
    }
    Row {
        cells: vec![
            s.name.clone(),
            c.text("rx_packets"),
            c.text("rx_bytes"),
            c.text("tx_packets"),
            c.text("tx_bytes"),
            c.drops_text(),
        ],
        detail,
        extra,
    }
}

/// `show -s`: one STATS transaction for a named device, else a dump.
fn show_stats(daemon: &mut dyn Daemon, link: Option<&str>, verbose: bool) -> Result<Table, Error> {
    let replies = match link {
        Some(link) => vec![daemon
            .transact(ov::NAME, ov::CMD_STATS, vec![name_attr(link)])
            .map_err(Error::daemon(format!("show -s {link}")))?],
        None => daemon
            .dump(ov::NAME, ov::CMD_STATS, vec![])
            .map_err(Error::daemon("show -s"))?,
    };
    let mut t = Table::new(STATS_COLUMNS);
    t.rows.extend(
        replies
            .iter()
            .map(|a| stats_row(&DeviceStats::from_attrs(a), verbose)),
    );
    Ok(t)
}

/// `lookup-stats`: one `LOOKUP_STATS` transaction, shown as one row; JSON
/// adds every counter by name as `counters`, so that counters a newer
/// daemon adds are not lost.
fn lookup_stats(daemon: &mut dyn Daemon) -> Result<Table, Error> {
    let reply = daemon
        .transact(tg::NAME, tg::CMD_LOOKUP_STATS, vec![])
        .map_err(Error::daemon("lookup-stats"))?;
    let s = LookupStats::from_attrs(&reply);
    let c = &s.counters;
    let mut t = Table::new(LOOKUP_STATS_COLUMNS);
    t.rows.push(Row {
        cells: vec![
            c.text("requests"),
            c.text("answers"),
            c.text("timeouts"),
            c.text("late"),
            s.pending
                .map_or_else(|| NONE.to_string(), |p| p.to_string()),
        ],
        detail: Vec::new(),
        extra: Object::from_iter([("counters".into(), counters_object(c))]),
    });
    Ok(t)
}

/// `status`: one `SERVER_STATS` transaction, shown as one row; JSON adds
/// each offload as "on" or "off" and the control server's counters.
fn status(daemon: &mut dyn Daemon) -> Result<Table, Error> {
    let reply = daemon
        .transact(handle::NAME, handle::CMD_SERVER_STATS, vec![])
        .map_err(Error::daemon("status"))?;
    let s = ServerStatus::from_attrs(&reply);
    let number = |n: Option<u32>| n.map_or_else(|| NONE.to_string(), |n| n.to_string());
    let offloads: Object = s
        .offloads
        .0
        .iter()
        .map(|(name, v)| (name.to_string(), json!(if *v != 0 { "on" } else { "off" })))
        .collect();
    let mut t = Table::new(STATUS_COLUMNS);
    t.rows.push(Row {
        cells: vec![
            number(s.packet_threads),
            s.offloads_text(),
            s.busy_poll_text().unwrap_or_else(|| NONE.to_string()),
            number(s.handles),
        ],
        detail: Vec::new(),
        extra: Object::from_iter([
            ("offload".into(), Value::Object(offloads)),
            ("counters".into(), counters_object(&s.counters)),
        ]),
    });
    Ok(t)
}

/// A property as one line of `plugins -v`.
fn prop_line(p: &PropInfo) -> String {
    format!(
        "{} {} {} req={} runtime={} default={} possible={}",
        p.name,
        p.ty,
        p.perm_text(),
        p.req_text(),
        p.runtime_text(),
        p.default_text(),
        p.possible_text()
    )
}

/// What `plugins -j` adds to the columns: the ABI version, what the plugin
/// declares (destination kinds; an encap plugin's id size, longest header
/// and flags, a
/// lookup plugin's modes) and its properties.
fn plugin_extra(p: &Plugin) -> Object {
    let mut o = Object::new();
    o.insert("abi_version".into(), json!(p.abi_version));
    o.insert("destination".into(), json!(p.dest_text()));
    if p.kind == ov::KIND_ENCAP {
        o.insert("id_size".into(), json!(p.id_size));
        o.insert("max_header_len".into(), json!(p.max_header_len));
        o.insert("flags".into(), json!(p.flags_text()));
    } else {
        o.insert("modes".into(), json!(p.modes_text()));
    }
    o.insert(
        "props".into(),
        p.props.iter().map(prop_object).collect::<Value>(),
    );
    o
}

/// A property as one object of `plugins -j`.
fn prop_object(p: &PropInfo) -> Value {
    json!({
        "name": p.name,
        "type": p.ty.name(),
        "perm": p.perm_text(),
        "req": p.req_text(),
        "runtime": p.runtime_text(),
        "default": p.default_text(),
        "possible": p.possible_text(),
    })
}

/// `plugins`; `verbose` adds one detail line per property.
fn plugins(daemon: &mut dyn Daemon, verbose: bool) -> Result<Table, Error> {
    let plugins = daemon
        .dump(ov::NAME, ov::CMD_PLUGINS, vec![])
        .map_err(Error::daemon("list plugins"))?;
    let mut t = Table::new(PLUGIN_COLUMNS);
    for attrs in &plugins {
        let p = Plugin::from_attrs(attrs);
        t.rows.push(Row {
            cells: vec![
                p.name.clone(),
                p.kind_text(),
                p.version.clone(),
                p.file.clone(),
                p.props_text(),
            ],
            detail: if verbose {
                std::iter::once(p.declares_text())
                    .chain(p.props.iter().map(prop_line))
                    .collect()
            } else {
                Vec::new()
            },
            extra: plugin_extra(&p),
        });
    }
    Ok(t)
}

mod cache;

#[cfg(test)]
mod tests;
