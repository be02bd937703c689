//! Handlers of the `overlay` family: devices, their properties, status
//! and counters, and the loaded plugins. `LIST` and `STATS` dumps are
//! paced by the dispatcher ([`super::handlers`]), a part at a time from
//! the next link id ([`devices_part`]); everything else answers at once.

use super::reply::{dev_ref, stat_list, unhandled, Part, Reply, StatAttrs};
use crate::{
    devices::device::Device,
    devices::notify::{status_attrs, truncate},
    devices::persist::Persist,
    devices::registry::{CreateArgs, DevRef, Registry},
    error::CtlError,
    plugins::PluginView,
};
use nlproto::{
    server::{Request, RequestError},
    spec::overlay as ov,
    Attr, AttrValue, AttrsExt,
};
use overlay_plugin_abi::{PluginKind, PropInfo, PropRange};

type Items = Result<Vec<Vec<Attr>>, RequestError>;

const STATS: StatAttrs = StatAttrs {
    list: ov::ATTR_STATS,
    entry: ov::ATTR_STAT,
    name: ov::ATTR_STAT_NAME,
    value: ov::ATTR_STAT_VALUE,
};

/// Answers a request of the family (`LIST` and `STATS` dumps are the
/// dispatcher's).
pub(super) fn handle(
    reg: &mut Registry,
    persist: Option<&mut Persist>,
    req: &Request,
    pid: u32,
) -> Reply {
    let items = match req.command.id {
        ov::CMD_CREATE => create(reg, persist, req)?,
        ov::CMD_DELETE => delete(reg, persist, req)?,
        ov::CMD_ACTIVATE => {
            reg.activate(&dev_ref(req)?).map_err(fail(req))?;
            vec![]
        }
        ov::CMD_PROPINFO => propinfo(reg, req)?,
        ov::CMD_GETPROP => getprop(reg, req)?,
        ov::CMD_SETPROP => {
            let r = dev_ref(req)?;
            let name = req.attrs.get_str(ov::ATTR_PROP_NAME).unwrap_or_default();
            let value = req.attrs.get_bytes(ov::ATTR_PROP_VALUE).unwrap_or_default();
            reg.setprop(&r, name, value).map_err(fail(req))?;
            vec![]
        }
        ov::CMD_STATUS => {
            let dev = reg.get(&dev_ref(req)?).map_err(fail(req))?;
            let mut attrs = dev_ids(dev.linkid, &dev.name);
            attrs.extend(status_attrs(&dev.status()));
            vec![attrs]
        }
        ov::CMD_LIST if !req.is_dump => {
            vec![device_attrs(reg.get(&dev_ref(req)?).map_err(fail(req))?)]
        }
        ov::CMD_STATS if !req.is_dump => {
            vec![stats_attrs(reg.get(&dev_ref(req)?).map_err(fail(req))?)]
        }
        ov::CMD_PLUGINS => plugins(reg, req)?,
        _ => return Err(unhandled(req)),
    };
    Ok(req.respond(pid, items))
}

/// A registry error as the request's error.
fn fail(req: &Request) -> impl Fn(CtlError) -> RequestError + '_ {
    |e| req.fail(e.errno, e.msg)
}

fn create(reg: &mut Registry, persist: Option<&mut Persist>, req: &Request) -> Items {
    let args = create_args(req)?;
    if let Some(why) = persist.and_then(|p| p.unrestorable(&args.name)) {
        return Err(req.fail(
            libc::EEXIST,
            format!(
                "a device named {} is recorded in the state file but could not be restored ({why}); delete {} to drop that record",
                args.name, args.name
            ),
        ));
    }
    let dev = reg.create(args).map_err(fail(req))?;
    Ok(vec![device_attrs(dev)])
}

/// `DELETE`; a name the registry does not know may still be the record of
/// a device that could not be restored, which is then forgotten.
fn delete(reg: &mut Registry, persist: Option<&mut Persist>, req: &Request) -> Items {
    let r = dev_ref(req)?;
    if let Err(e) = reg.delete(&r) {
        let forgotten = match (&r, persist) {
            (DevRef::Name(n), Some(p)) => p.forget(n),
            _ => false,
        };
        if !forgotten {
            return Err(fail(req)(e));
        }
        tracing::info!("record of unrestorable device deleted");
    }
    Ok(vec![])
}

fn propinfo(reg: &mut Registry, req: &Request) -> Items {
    let r = dev_ref(req)?;
    let name = if req.is_dump {
        None
    } else {
        req.attrs.get_str(ov::ATTR_PROP_NAME)
    };
    let entries = reg.propinfo(&r, name).map_err(fail(req))?;
    let dev = reg.get(&r).map_err(fail(req))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let mut attrs = dev_ids(dev.linkid, &dev.name);
            attrs.push(Attr::u32(ov::ATTR_PROP_ID, e.id));
            attrs.extend(propinfo_attrs(&e.info));
            attrs
        })
        .collect())
}

fn getprop(reg: &mut Registry, req: &Request) -> Items {
    let r = dev_ref(req)?;
    let name = req.attrs.get_str(ov::ATTR_PROP_NAME).unwrap_or_default();
    let (info, value) = reg.getprop(&r, name).map_err(fail(req))?;
    let dev = reg.get(&r).map_err(fail(req))?;
    let mut attrs = dev_ids(dev.linkid, &dev.name);
    attrs.push(Attr::str(ov::ATTR_PROP_NAME, info.name.as_str()));
    attrs.push(Attr::u32(ov::ATTR_PROP_TYPE, info.ptype.0 as u32));
    if !value.is_empty() {
        attrs.push(Attr::bytes(ov::ATTR_PROP_VALUE, value));
    }
    Ok(vec![attrs])
}

/// `PLUGINS`: every loaded plugin, or the one named.
fn plugins(reg: &Registry, req: &Request) -> Items {
    let plugins = reg.plugins();
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
    Ok(listing.into_iter().map(plugin_attrs).collect())
}

fn plugin_attrs(p: PluginView<'_>) -> Vec<Attr> {
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
        attrs.push(Attr::u32(ov::ATTR_PLUGIN_MAX_HEADER_LEN, e.max_header_len));
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
}

/// Fills `part` with the devices from link id `next` on (`LIST` or
/// `STATS`, as the request asks). Returns true when every device is in.
pub(super) fn devices_part(
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

fn stats_attrs(dev: &Device) -> Vec<Attr> {
    let mut attrs = dev_ids(dev.linkid, &dev.name);
    attrs.push(stat_list(STATS, dev.stats.snapshot()));
    if let Some(dp) = &dev.dp {
        attrs.push(Attr::nested(
            ov::ATTR_MUX,
            vec![
                Attr::str(ov::ATTR_MUX_ENDPOINT, dp.mux.key.endpoint()),
                stat_list(STATS, dp.mux.stats.snapshot()),
            ],
        ));
    }
    if let Some(t) = &dev.dyn_target {
        attrs.push(Attr::u64(ov::ATTR_CACHE_ENTRIES, t.cache_entries() as u64));
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
    if let Some(r) = Option::<PropRange>::from(info.range) {
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
