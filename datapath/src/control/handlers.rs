//! Request handlers: validated requests in, reply messages out.
//!
//! nlproto has already checked family, command, operation kind, version and
//! every attribute against the family's policy; handlers only implement
//! the semantics, on the device registry.
//!
//! One dispatcher ([`Handlers::answer`]) acts on what each command declares
//! in nlproto's tables ([`spec::Handling`]): a paced dump is started and
//! produced a part at a time, a request that waits is held, a successful
//! request that saves writes the state file before its reply. After every
//! request the changes it made are taken from the registry and sent as
//! notifications, ahead of the request's reply. A request that is not
//! finished (a dump not done, a wait not over) holds the requests after it
//! in its datagram until it is. Dumps of the device
//! table (`LIST`, `STATS`) and of the target caches (`CACHE_LIST`) are
//! produced a part at a time as the client reads them (see
//! [`DUMP_PART_LIMIT`]), each resuming from a cursor (the next link id;
//! for a cache, the last MAC sent); a part produced after the device table
//! changed carries `NLM_F_DUMP_INTR`, and so does every later part and the
//! closing `NLMSG_DONE`.

use super::{Dispatch, Outbox, Outgoing, Peer};
use crate::{
    devices::device::Device,
    devices::notify::{status_attrs, truncate},
    devices::persist::Persist,
    devices::registry::{CreateArgs, DevRef, Registry},
    error::CtlError,
    stats::ServerStats,
};
use nlproto::{
    attr::align4,
    msg::{self, DoneMsg, NLM_F_DUMP_INTR},
    server::{ctrl_reply, parse_request_as, split_datagram, DeviceRef, Request, RequestError},
    spec::{self, ctrl, handle, overlay as ov, target as tg},
    Attr, AttrValue, AttrsExt, Emit, GenlMsg, Message,
};
use overlay_plugin_abi::{abi_stable::std_types::ROption, PluginKind, PropInfo};
use std::{collections::HashMap, time::Instant};

/// The size a part of a device-table dump aims for: about a page, like
/// Linux's first dump buffer (`NLMSG_GOODSIZE`). A larger message goes in
/// a part of its own.
pub const DUMP_PART_LIMIT: usize = 4096;

/// A paced dump in progress on a connection.
struct Dump {
    req: Request,
    /// Where the next part starts.
    cursor: Cursor,
    /// The table's generation when the dump started.
    generation: u64,
    /// Whether the table changed since: sticky.
    intr: bool,
}

/// A connection's request that is not finished, and the requests of its
/// datagram after it, which wait for it.
struct Held {
    request: Unfinished,
    /// The messages of the datagram after the request, and the offset of
    /// the first of them in the datagram.
    rest: Vec<u8>,
    rest_offset: usize,
    /// What the connection may run, for the rest.
    access: spec::Privilege,
}

/// What a request that is not finished waits for.
enum Unfinished {
    /// The client to read the dump's last part.
    Dump(Dump),
    /// A lookup request to take (`LOOKUP`), until the deadline.
    Lookup { req: Request, deadline: Instant },
}
/// Where a dump goes on.
enum Cursor {
    /// `LIST` or `STATS`: the next link id to report.
    Devices(Option<u32>),
    /// `CACHE_LIST`.
    Cache(super::target::CacheCursor),
}

/// The part of a paced dump being filled.
pub(super) struct Part {
    bytes: Vec<u8>,
    /// `NLM_F_DUMP_INTR` when the dump was interrupted.
    flags: u16,
}

impl Part {
    /// Adds `m`, with the dump's flags, unless the part is full (then
    /// returns false, and `m` goes in the next part). A message larger
    /// than [`DUMP_PART_LIMIT`] goes in a part of its own.
    pub(super) fn add(&mut self, mut m: GenlMsg) -> bool {
        m.flags |= self.flags;
        if !self.bytes.is_empty() && self.bytes.len() + m.encoded_len() > DUMP_PART_LIMIT {
            return false;
        }
        m.emit_into(&mut self.bytes);
        true
    }
}

/// The daemon's request side.
pub struct Handlers {
    registry: Registry,
    persist: Option<Persist>,
    /// Connections whose requests wait for one that is not finished.
    held: HashMap<u32, Held>,
    server: std::sync::Arc<ServerStats>,
}

type Reply = Result<Vec<Message>, RequestError>;

impl Handlers {
    /// Handlers over this registry.
    pub fn new(registry: Registry) -> Self {
        Handlers {
            registry,
            persist: None,
            held: HashMap::new(),
            server: Default::default(),
        }
    }

    /// Handlers over this registry that keep the state file of `persist`
    /// up to date.
    pub fn with_persist(registry: Registry, persist: Persist) -> Self {
        Handlers {
            registry,
            persist: Some(persist),
            held: HashMap::new(),
            server: Default::default(),
        }
    }

    /// Answers `SERVER_STATS` from these figures (the server's, see
    /// [`super::Server::stats`]); until then from zeros.
    pub fn set_server_stats(&mut self, stats: std::sync::Arc<ServerStats>) {
        self.server = stats;
    }

    /// Writes the state file (when there is one); a failure is logged,
    /// since the change it records has already been made.
    pub fn save_state(&self) {
        if let Some(p) = &self.persist {
            if let Err(e) = p.save(&self.registry) {
                tracing::error!("cannot save the device state: {e}");
            }
        }
    }

    /// The registry (for tests and shutdown).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Saves the state (active devices recorded as active, for the next
    /// start), then deletes every device, as at daemon exit.
    pub fn shutdown(&mut self) {
        self.save_state();
        self.registry.shutdown();
    }

    /// Answers the messages of `datagram` (whose first byte is at
    /// `base` in the datagram received) until the end, or until a request
    /// that is not finished, which holds the rest.
    fn answer(&mut self, peer: Peer, datagram: &[u8], base: usize, out: &mut Outbox) {
        let pid = peer.pid;
        for item in split_datagram(datagram) {
            let raw = match item {
                Ok(raw) => raw,
                Err(mut e) => {
                    e.datagram_offset += base;
                    out.replies([e.reply(pid).into()]);
                    continue;
                }
            };
            let req = match parse_request_as(raw.bytes, base + raw.offset, peer.access) {
                Ok(None) => continue,
                Ok(Some(req)) => req,
                Err(e) => {
                    out.replies([e.reply(pid).into()]);
                    continue;
                }
            };
            if let Some(request) = self.dispatch(req, pid, out) {
                let end = align4(raw.offset + raw.bytes.len()).min(datagram.len());
                let held = Held {
                    request,
                    rest: datagram[end..].to_vec(),
                    rest_offset: base + end,
                    access: peer.access,
                };
                self.held.insert(pid, held);
                return;
            }
        }
    }

    /// Answers one request as its command's handling declares; returns
    /// the request when it is not finished.
    fn dispatch(&mut self, req: Request, pid: u32, out: &mut Outbox) -> Option<Unfinished> {
        let handling = req.command.handling;
        let mut unfinished = if handling.paced && req.is_dump {
            match self.start_dump(req) {
                Ok(dump) => Unfinished::Dump(dump),
                Err(e) => {
                    out.replies([e.reply(pid).into()]);
                    return None;
                }
            }
        } else if handling.waits {
            match super::target::lookup_deadline(&req) {
                Ok(deadline) => Unfinished::Lookup { req, deadline },
                Err(e) => {
                    out.replies([e.reply(pid).into()]);
                    return None;
                }
            }
        } else {
            let result = self.handle(&req, pid, out);
            if result.is_ok() && handling.saves {
                self.save_state();
            }
            self.notify(out);
            match result {
                Ok(replies) => out.replies(replies),
                Err(e) => out.replies([e.reply(pid).into()]),
            }
            return None;
        };
        (!self.progress(&mut unfinished, pid, out)).then_some(unfinished)
    }

    /// A paced dump of `req`, from its first entry.
    fn start_dump(&self, req: Request) -> Result<Dump, RequestError> {
        let cursor = match req.family.id {
            tg::ID => Cursor::Cache(super::target::cache_cursor(&self.registry, &req)?),
            _ => Cursor::Devices(Some(0)),
        };
        Ok(Dump {
            req,
            cursor,
            generation: self.registry.generation(),
            intr: false,
        })
    }

    /// Takes an unfinished request a step further: the next part of a
    /// dump, or the answer to a wait if it came or its time is over.
    /// Returns true when the request is finished.
    fn progress(&mut self, request: &mut Unfinished, pid: u32, out: &mut Outbox) -> bool {
        match request {
            Unfinished::Dump(dump) => self.dump_part(dump, pid, out),
            Unfinished::Lookup { req, deadline } => {
                let reply = match self.registry.lookups().take_external(pid) {
                    Some(t) => super::target::lookup_reply(req, pid, &t),
                    None if Instant::now() >= *deadline => vec![req
                        .fail(
                            libc::ETIME,
                            "no lookup request came within the wait; ask again",
                        )
                        .reply(pid)
                        .into()],
                    None => return false,
                };
                out.replies(reply);
                true
            }
        }
    }

    /// Queues the notifications of the changes made since the last call.
    fn notify(&mut self, out: &mut Outbox) {
        for e in self.registry.take_events() {
            out.push(Outgoing::Notify {
                group: e.group(),
                datagram: e.message().emit(),
            });
        }
    }

    /// Produces the next part of a paced dump. Returns true when the dump
    /// is over (its `NLMSG_DONE` produced).
    fn dump_part(&self, dump: &mut Dump, pid: u32, out: &mut Outbox) -> bool {
        if self.registry.generation() != dump.generation {
            dump.intr = true;
        }
        let mut part = Part {
            bytes: Vec::new(),
            flags: if dump.intr { NLM_F_DUMP_INTR } else { 0 },
        };
        let over = match &mut dump.cursor {
            Cursor::Devices(next) => devices_part(&self.registry, &dump.req, pid, next, &mut part),
            Cursor::Cache(cursor) => {
                super::target::cache_part(&self.registry, &dump.req, pid, cursor, &mut part)
            }
        };
        let mut part = part.bytes;
        if !over {
            out.push(Outgoing::Datagram(part));
            return false;
        }
        let done = DoneMsg {
            intr: dump.intr,
            ..msg::done(dump.req.seq(), pid)
        };
        if !part.is_empty() && part.len() + done.emit().len() > DUMP_PART_LIMIT {
            out.push(Outgoing::Datagram(part));
            return false;
        }
        done.emit_into(&mut part);
        out.push(Outgoing::Datagram(part));
        true
    }

    fn handle(&mut self, req: &Request, pid: u32, out: &mut Outbox) -> Reply {
        match req.family.id {
            ctrl::GENL_ID_CTRL => Ok(ctrl_reply(req, pid)),
            handle::ID => match req.command.id {
                handle::CMD_GET_PID => {
                    Ok(req.respond(pid, vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, pid)]]))
                }
                handle::CMD_JOIN_GROUP | handle::CMD_LEAVE_GROUP => {
                    let id = req
                        .attrs
                        .get_u32(handle::HANDLE_ATTR_MCAST_GROUP)
                        .unwrap_or_default();
                    if spec::mcast_group_by_id(id).is_none() {
                        return Err(req.fail(
                            libc::ENOENT,
                            format!(
                                "no multicast group with id {id}; groups: {} (resolve them with nlctrl CTRL_CMD_GETFAMILY)",
                                spec::mcast_group_names()
                            ),
                        ));
                    }
                    out.push(if req.command.id == handle::CMD_JOIN_GROUP {
                        Outgoing::Join(id)
                    } else {
                        Outgoing::Leave(id)
                    });
                    Ok(req.respond(pid, vec![]))
                }
                handle::CMD_SERVER_STATS => {
                    let engine = self.registry.engine();
                    let mut attrs = server_stats_attrs(&self.server);
                    attrs.extend(engine_attrs(engine));
                    Ok(req.respond(pid, vec![attrs]))
                }
                _ => Err(unhandled(req)),
            },
            ov::ID => self.overlay(req, pid),
            tg::ID => super::target::handle(&mut self.registry, req, pid, out),
            _ => Err(unhandled(req)),
        }
    }

    fn overlay(&mut self, req: &Request, pid: u32) -> Reply {
        let fail = |e: CtlError| req.fail(e.errno, e.msg);
        let items = match req.command.id {
            ov::CMD_CREATE => {
                let args = create_args(req)?;
                if let Some(why) = self
                    .persist
                    .as_ref()
                    .and_then(|p| p.unrestorable(&args.name))
                {
                    return Err(req.fail(
                        libc::EEXIST,
                        format!(
                            "a device named {} is recorded in the state file but could not be restored ({why}); delete {} to drop that record",
                            args.name, args.name
                        ),
                    ));
                }
                let dev = self.registry.create(args).map_err(fail)?;
                vec![device_attrs(dev)]
            }
            ov::CMD_DELETE => {
                let r = dev_ref(req)?;
                if let Err(e) = self.registry.delete(&r) {
                    let forgotten = match (&r, self.persist.as_mut()) {
                        (DevRef::Name(n), Some(p)) => p.forget(n),
                        _ => false,
                    };
                    if !forgotten {
                        return Err(fail(e));
                    }
                    tracing::info!("record of unrestorable device deleted");
                }
                vec![]
            }
            ov::CMD_ACTIVATE => {
                self.registry.activate(&dev_ref(req)?).map_err(fail)?;
                vec![]
            }
            ov::CMD_PROPINFO => {
                let r = dev_ref(req)?;
                let name = if req.is_dump {
                    None
                } else {
                    req.attrs.get_str(ov::ATTR_PROP_NAME)
                };
                let entries = self.registry.propinfo(&r, name).map_err(fail)?;
                let dev = self.registry.get(&r).map_err(fail)?;
                entries
                    .into_iter()
                    .map(|e| {
                        let mut attrs = dev_ids(dev.linkid, &dev.name);
                        attrs.push(Attr::u32(ov::ATTR_PROP_ID, e.id));
                        attrs.extend(propinfo_attrs(&e.info));
                        attrs
                    })
                    .collect()
            }
            ov::CMD_GETPROP => {
                let r = dev_ref(req)?;
                let name = req.attrs.get_str(ov::ATTR_PROP_NAME).unwrap_or_default();
                let (info, value) = self.registry.getprop(&r, name).map_err(fail)?;
                let dev = self.registry.get(&r).map_err(fail)?;
                let mut attrs = dev_ids(dev.linkid, &dev.name);
                attrs.push(Attr::str(ov::ATTR_PROP_NAME, info.name.as_str()));
                attrs.push(Attr::u32(ov::ATTR_PROP_TYPE, info.ptype.0 as u32));
                if !value.is_empty() {
                    attrs.push(Attr::bytes(ov::ATTR_PROP_VALUE, value));
                }
                vec![attrs]
            }
            ov::CMD_SETPROP => {
                let r = dev_ref(req)?;
                let name = req.attrs.get_str(ov::ATTR_PROP_NAME).unwrap_or_default();
                let value = req.attrs.get_bytes(ov::ATTR_PROP_VALUE).unwrap_or_default();
                self.registry.setprop(&r, name, value).map_err(fail)?;
                vec![]
            }
            ov::CMD_STATUS => {
                let dev = self.registry.get(&dev_ref(req)?).map_err(fail)?;
                let mut attrs = dev_ids(dev.linkid, &dev.name);
                attrs.extend(status_attrs(&dev.status()));
                vec![attrs]
            }
            // Dumps of LIST and STATS are produced by dump_part.
            ov::CMD_LIST => {
                if req.is_dump {
                    return Err(unhandled(req));
                } else {
                    let dev = self.registry.get(&dev_ref(req)?).map_err(fail)?;
                    vec![device_attrs(dev)]
                }
            }
            ov::CMD_PLUGINS => {
                let plugins = self.registry.plugins();
                let wanted = if req.is_dump {
                    None
                } else {
                    req.attrs.get_str(ov::ATTR_PLUGIN_NAME)
                };
                let listing: Vec<_> = plugins
                    .listing()
                    .into_iter()
                    .filter(|p| wanted.is_none_or(|w| w == p.meta.name))
                    .collect();
                if let (Some(w), true) = (wanted, listing.is_empty()) {
                    let mut names = plugins.encap_names();
                    names.extend(plugins.lookup_names());
                    return Err(req.fail(
                        libc::ENOENT,
                        format!("no plugin named '{w}'; loaded: {}", names.join(", ")),
                    ));
                }
                listing
                    .into_iter()
                    .map(|p| {
                        let mut attrs = vec![
                            Attr::str(ov::ATTR_PLUGIN_NAME, p.meta.name.as_str()),
                            Attr::u32(
                                ov::ATTR_PLUGIN_KIND,
                                if p.kind == PluginKind::ENCAP {
                                    ov::KIND_ENCAP
                                } else {
                                    ov::KIND_LOOKUP
                                },
                            ),
                            Attr::str(ov::ATTR_PLUGIN_VERSION, truncate(&p.meta.version, 63)),
                            Attr::str(ov::ATTR_PLUGIN_FILE, p.meta.path.display().to_string()),
                            Attr::str(ov::ATTR_ABI_VERSION, truncate(&p.meta.abi_version, 31)),
                        ];
                        if let Some(e) = p.encap {
                            attrs.push(Attr::u32(ov::ATTR_PLUGIN_DEST, e.dest));
                            attrs.push(Attr::u32(ov::ATTR_PLUGIN_ID_SIZE, e.id_size));
                            attrs.push(Attr::u32(ov::ATTR_PLUGIN_FLAGS, e.flags));
                        }
                        if let Some(l) = p.lookup {
                            attrs.push(Attr::u32(ov::ATTR_PLUGIN_DEST, l.dest));
                            attrs.push(Attr::u32(ov::ATTR_PLUGIN_MODES, l.modes));
                        }
                        let props = p
                            .properties
                            .iter()
                            .map(|info| Attr::nested(ov::ATTR_PROP, propinfo_attrs(info)))
                            .collect();
                        attrs.push(Attr::nested(ov::ATTR_PROPS, props));
                        attrs
                    })
                    .collect()
            }
            ov::CMD_STATS => {
                if req.is_dump {
                    return Err(unhandled(req));
                } else {
                    let dev = self.registry.get(&dev_ref(req)?).map_err(fail)?;
                    vec![stats_attrs(dev)]
                }
            }
            _ => return Err(unhandled(req)),
        };
        Ok(req.respond(pid, items))
    }
}

impl Dispatch for Handlers {
    fn datagram(&mut self, peer: Peer, datagram: &[u8], out: &mut Outbox) {
        self.answer(peer, datagram, 0, out);
    }

    fn busy(&self, peer: Peer) -> bool {
        self.held.contains_key(&peer.pid)
    }

    fn resume(&mut self, peer: Peer, out: &mut Outbox) {
        let Some(mut held) = self.held.remove(&peer.pid) else {
            return;
        };
        if !self.progress(&mut held.request, peer.pid, out) {
            self.held.insert(peer.pid, held);
            return;
        }
        // (An empty rest is no datagram: split_datagram would answer it as
        // one too short.)
        if !held.rest.is_empty() {
            let peer = Peer {
                access: held.access,
                ..peer
            };
            self.answer(peer, &held.rest, held.rest_offset, out);
        }
    }

    fn addresses_changed(&mut self, changes: &[crate::sys::rtnl::AddrChange]) {
        for c in changes {
            self.registry.underlay_address(c.addr, c.present);
        }
    }

    fn closed(&mut self, peer: Peer) {
        // A dump or a wait in progress ends with its handle; lookup
        // requests it took go back to the queue for another handle.
        self.held.remove(&peer.pid);
        self.registry.lookups().release_handle(peer.pid);
    }
}

/// Fills `part` with the devices from link id `next` on (`LIST` or
/// `STATS`, as the request asks). Returns true when every device is in.
fn devices_part(
    reg: &Registry,
    req: &Request,
    pid: u32,
    next: &mut Option<u32>,
    part: &mut Part,
) -> bool {
    let Some(from) = *next else {
        return true;
    };
    for dev in reg.devices_from(from) {
        let attrs = match req.command.id {
            ov::CMD_STATS => stats_attrs(dev),
            _ => device_attrs(dev),
        };
        if !part.add(req.reply(pid, attrs)) {
            return false;
        }
        *next = dev.linkid.checked_add(1);
    }
    *next = None;
    true
}

/// A command in the table without a handler: a daemon bug, reported as such.
fn unhandled(req: &Request) -> RequestError {
    req.fail(
        libc::EOPNOTSUPP,
        format!(
            "command {} of family {} is not implemented by this daemon",
            req.command.name, req.family.name
        ),
    )
}

/// The device a request names (`NAME` or `LINKID`).
pub(super) fn dev_ref(req: &Request) -> Result<DevRef, RequestError> {
    Ok(match req.device()? {
        DeviceRef::Name(n) => DevRef::Name(n.to_string()),
        DeviceRef::LinkId(id) => DevRef::LinkId(id),
    })
}

fn create_args(req: &Request) -> Result<CreateArgs, RequestError> {
    let a = &req.attrs;
    let mut props = Vec::new();
    if let Some(list) = a.get_nested(ov::ATTR_PROPS) {
        for (i, entry) in list.iter().enumerate() {
            let inner: &[Attr] = match &entry.value {
                AttrValue::Nested(v) => v,
                _ => &[],
            };
            let (Some(name), Some(value)) = (
                inner.get_str(ov::ATTR_PROP_NAME),
                inner.get_bytes(ov::ATTR_PROP_VALUE),
            ) else {
                return Err(req.fail(
                    libc::EINVAL,
                    format!("PROPS entry {i} needs PROP_NAME (9) and PROP_VALUE (13)"),
                ));
            };
            props.push((name.to_string(), value.to_vec()));
        }
    }
    Ok(CreateArgs {
        name: a.get_str(ov::ATTR_NAME).unwrap_or_default().to_string(),
        encap: a.get_str(ov::ATTR_ENCAP).unwrap_or_default().to_string(),
        search: a.get_str(ov::ATTR_SEARCH).unwrap_or_default().to_string(),
        vnetid: a.get_u64(ov::ATTR_VNETID).unwrap_or_default(),
        props,
        temporary: a.has(ov::ATTR_TEMPORARY),
    })
}

fn dev_ids(linkid: u32, name: &str) -> Vec<Attr> {
    vec![
        Attr::u32(ov::ATTR_LINKID, linkid),
        Attr::str(ov::ATTR_NAME, name),
    ]
}

fn device_attrs(dev: &Device) -> Vec<Attr> {
    let mut attrs = dev_ids(dev.linkid, &dev.name);
    attrs.extend([
        Attr::str(ov::ATTR_ENCAP, dev.encap.meta.name.as_str()),
        Attr::str(ov::ATTR_SEARCH, dev.search.meta.name.as_str()),
        Attr::u64(ov::ATTR_VNETID, dev.vnetid),
        Attr::u32(
            ov::ATTR_STATE,
            if dev.active {
                ov::STATE_ACTIVE
            } else {
                ov::STATE_CREATED
            },
        ),
    ]);
    attrs.extend(status_attrs(&dev.status()));
    if dev.temporary {
        attrs.push(Attr::flag(ov::ATTR_TEMPORARY));
    }
    attrs
}

fn counters(snapshot: Vec<(&'static str, u64)>) -> Attr {
    let entries = snapshot
        .into_iter()
        .map(|(name, value)| {
            Attr::nested(
                ov::ATTR_STAT,
                vec![
                    Attr::str(ov::ATTR_STAT_NAME, name),
                    Attr::u64(ov::ATTR_STAT_VALUE, value),
                ],
            )
        })
        .collect();
    Attr::nested(ov::ATTR_STATS, entries)
}

fn stats_attrs(dev: &Device) -> Vec<Attr> {
    let mut attrs = dev_ids(dev.linkid, &dev.name);
    attrs.push(counters(dev.stats.snapshot()));
    if let Some(dp) = &dev.dp {
        attrs.push(Attr::nested(
            ov::ATTR_MUX,
            vec![
                Attr::str(ov::ATTR_MUX_ENDPOINT, dp.mux.key.endpoint()),
                counters(dp.mux.stats.snapshot()),
            ],
        ));
    }
    if let Some(t) = &dev.dyn_target {
        attrs.push(Attr::u64(ov::ATTR_CACHE_ENTRIES, t.cache_entries() as u64));
    }
    attrs
}

fn server_stats_attrs(s: &ServerStats) -> Vec<Attr> {
    let handles = s.handles.load(std::sync::atomic::Ordering::Relaxed);
    let counters = s
        .counters
        .snapshot()
        .into_iter()
        .map(|(name, value)| {
            Attr::nested(
                handle::HANDLE_ATTR_STAT,
                vec![
                    Attr::str(handle::HANDLE_ATTR_STAT_NAME, name),
                    Attr::u64(handle::HANDLE_ATTR_STAT_VALUE, value),
                ],
            )
        })
        .collect();
    vec![
        Attr::u32(
            handle::HANDLE_ATTR_HANDLES,
            u32::try_from(handles).unwrap_or(u32::MAX),
        ),
        Attr::nested(handle::HANDLE_ATTR_STATS, counters),
    ]
}

/// The packet path's part of `SERVER_STATS`: its threads and offloads.
fn engine_attrs(engine: &crate::dataplane::Engine) -> Vec<Attr> {
    let offloads = engine
        .offloads
        .list()
        .into_iter()
        .map(|(name, on)| {
            Attr::nested(
                handle::HANDLE_ATTR_STAT,
                vec![
                    Attr::str(handle::HANDLE_ATTR_STAT_NAME, name),
                    Attr::u64(handle::HANDLE_ATTR_STAT_VALUE, u64::from(on)),
                ],
            )
        })
        .collect();
    vec![
        Attr::u32(
            handle::HANDLE_ATTR_PACKET_THREADS,
            u32::try_from(engine.threads.len()).unwrap_or(u32::MAX),
        ),
        Attr::nested(handle::HANDLE_ATTR_OFFLOADS, offloads),
    ]
}

fn propinfo_attrs(info: &PropInfo) -> Vec<Attr> {
    let mut attrs = vec![
        Attr::str(ov::ATTR_PROP_NAME, info.name.as_str()),
        Attr::u32(ov::ATTR_PROP_TYPE, info.ptype.0 as u32),
        Attr::u32(ov::ATTR_PROP_PERM, info.perm as u32),
    ];
    if !info.default.is_empty() {
        attrs.push(Attr::bytes(ov::ATTR_PROP_DEFAULT, info.default.to_vec()));
    }
    if let ROption::RSome(r) = info.range {
        attrs.push(Attr::u64(ov::ATTR_PROP_RANGE_MIN, r.min));
        attrs.push(Attr::u64(ov::ATTR_PROP_RANGE_MAX, r.max));
    }
    if !info.possible.is_empty() {
        let values = info
            .possible
            .iter()
            .map(|v| Attr::str(ov::ATTR_POSSIBLE_VALUE, truncate(v, 255)))
            .collect();
        attrs.push(Attr::nested(ov::ATTR_PROP_POSSIBLE, values));
    }
    attrs
}
