//! Request handlers: validated requests in, reply messages out.
//!
//! nlproto has already checked family, command, operation kind, version and
//! every attribute against the family's policy; handlers only implement
//! the semantics, on the device registry.

use super::{Dispatch, Peer};
use crate::{
    device::Status,
    error::CtlError,
    persist::Persist,
    registry::{CreateArgs, DevRef, Registry},
};
use nlproto::{
    server::{
        ctrl_reply, pack_datagrams, requests_as, DeviceRef, Request, RequestError,
        DEFAULT_DATAGRAM_LIMIT,
    },
    spec::{ctrl, handle, overlay as ov},
    Attr, AttrValue, AttrsExt, Message,
};
use overlay_plugin_abi::{abi_stable::std_types::ROption, PluginKind, PropInfo};

/// The daemon's request side.
pub struct Handlers {
    registry: Registry,
    persist: Option<Persist>,
}

type Reply = Result<Vec<Message>, RequestError>;

impl Handlers {
    /// Handlers over this registry.
    pub fn new(registry: Registry) -> Self {
        Handlers {
            registry,
            persist: None,
        }
    }

    /// Handlers over this registry that keep the state file of `persist`
    /// up to date.
    pub fn with_persist(registry: Registry, persist: Persist) -> Self {
        Handlers {
            registry,
            persist: Some(persist),
        }
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
        let ids: Vec<u32> = self.registry.devices().map(|d| d.linkid).collect();
        for id in ids {
            let _ = self.registry.delete(&DevRef::LinkId(id));
        }
    }

    fn handle(&mut self, req: &Request, pid: u32) -> Reply {
        match req.family.id {
            ctrl::GENL_ID_CTRL => Ok(ctrl_reply(req, pid)),
            handle::ID => match req.command.id {
                handle::CMD_GET_PID => {
                    Ok(req.respond(pid, vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, pid)]]))
                }
                _ => Err(unhandled(req)),
            },
            ov::ID => self.overlay(req, pid),
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
            ov::CMD_LIST => {
                if req.is_dump {
                    self.registry.devices().map(device_attrs).collect()
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
                    self.registry.devices().map(stats_attrs).collect()
                } else {
                    let dev = self.registry.get(&dev_ref(req)?).map_err(fail)?;
                    vec![stats_attrs(dev)]
                }
            }
            _ => return Err(unhandled(req)),
        };
        if matches!(
            req.command.id,
            ov::CMD_CREATE | ov::CMD_DELETE | ov::CMD_ACTIVATE | ov::CMD_SETPROP
        ) {
            self.save_state();
        }
        Ok(req.respond(pid, items))
    }
}

impl Dispatch for Handlers {
    fn datagram(&mut self, peer: Peer, datagram: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut messages = Vec::new();
        for r in requests_as(datagram, peer.access) {
            match r.and_then(|req| self.handle(&req, peer.pid)) {
                Ok(replies) => messages.extend(replies),
                Err(e) => messages.push(e.reply(peer.pid).into()),
            }
        }
        out.extend(pack_datagrams(&messages, DEFAULT_DATAGRAM_LIMIT));
    }

    fn closed(&mut self, _peer: Peer) {
        // Requests are answered synchronously, so a closed handle holds
        // nothing in this version of the protocol.
    }
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

fn dev_ref(req: &Request) -> Result<DevRef, RequestError> {
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

fn status_attrs(status: &Status) -> Vec<Attr> {
    match status {
        Status::Ok => vec![
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_OK),
            Attr::str(ov::ATTR_STATUS_MSG, ""),
        ],
        Status::Degraded(msg) => vec![
            Attr::u32(ov::ATTR_STATUS, ov::STATUS_DEGRADED),
            Attr::str(ov::ATTR_STATUS_MSG, truncate(msg, 255)),
        ],
    }
}

fn device_attrs(dev: &crate::device::Device) -> Vec<Attr> {
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

fn stats_attrs(dev: &crate::device::Device) -> Vec<Attr> {
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
    attrs
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

/// Cuts a string to at most `max` bytes on a character boundary, so that a
/// reply never violates the family's own policy.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
