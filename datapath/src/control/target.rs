//! Handlers of the `overlay_target` family: target cache administration
//! and the interface of external lookup servers. `LOOKUP`, which waits,
//! is held by the dispatcher ([`super::handlers`]) until a request comes
//! or its deadline ([`lookup_deadline`]) passes, and the `CACHE_LIST` dump
//! is paced by it, a part at a time from a cursor (the device and the last
//! MAC sent); everything else answers at once.

use super::reply::{dev_ref, stat_list, unhandled, Part, Reply, StatAttrs};
use crate::{
    devices::device::Device,
    devices::notify::{cache_entry_attrs, CacheChange},
    devices::registry::Registry,
    target::{
        lookup::{Taken, Taker},
        Answer, DynTarget, Mac,
    },
};
use nlproto::{
    server::{Request, RequestError},
    spec::target as tg,
    Attr, AttrsExt, Message,
};
use overlay_plugin_abi::{dest, LookupAnswer, Point, MODE_DYNAMIC, MODE_POINT};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

type Items = Result<Vec<Vec<Attr>>, RequestError>;

fn device<'r>(reg: &'r Registry, req: &Request) -> Result<&'r Device, RequestError> {
    let r = dev_ref(req)?;
    reg.get(&r).map_err(|e| req.fail(e.errno, e.msg))
}

fn mac_attr(req: &Request) -> Result<Mac, RequestError> {
    let b = req.attrs.get_bytes(tg::ATTR_MAC).unwrap_or_default();
    Mac::from_slice(b).ok_or_else(|| req.fail(libc::EINVAL, "MAC (16) must be 6 bytes"))
}

/// The destination a request carries, checked against what the device
/// needs.
fn dest_attrs(req: &Request, needs: u32) -> Result<Point, RequestError> {
    let a = &req.attrs;
    let mut p = Point {
        mac: [0; 6],
        ip: [0; 16],
        port: 0,
    };
    let mut missing = Vec::new();
    if needs & dest::IP != 0 {
        match a.get_bytes(tg::ATTR_DEST_IP) {
            Some(b) => {
                p.ip = b.try_into().map_err(|_| {
                    req.fail(
                        libc::EINVAL,
                        "DEST_IP (17) must be a 16-byte in6_addr (IPv4 as ::ffff:a.b.c.d)",
                    )
                })?
            }
            None => missing.push("DEST_IP (17)"),
        }
    }
    if needs & dest::PORT != 0 {
        match a.get_u16(tg::ATTR_DEST_PORT) {
            Some(0) => return Err(req.fail(libc::EINVAL, "DEST_PORT (18) must be 1-65535")),
            Some(v) => p.port = v,
            None => missing.push("DEST_PORT (18)"),
        }
    }
    if needs & dest::ETHERNET != 0 {
        match a.get_bytes(tg::ATTR_DEST_MAC) {
            Some(b) => {
                p.mac = b
                    .try_into()
                    .map_err(|_| req.fail(libc::EINVAL, "DEST_MAC (19) must be 6 bytes"))?
            }
            None => missing.push("DEST_MAC (19)"),
        }
    }
    if !missing.is_empty() {
        return Err(req.fail(
            libc::EINVAL,
            format!(
                "the device's encapsulation needs a destination with {}",
                missing.join(" and ")
            ),
        ));
    }
    Ok(p)
}

/// The attributes of one cache entry.
fn entry_attrs(dev: &Device, mac: &Mac, answer: Answer) -> Vec<Attr> {
    cache_entry_attrs(dev.linkid, &dev.name, mac, answer, dev.encap.info.dest)
}

fn point_of(dev: &Device) -> Option<Point> {
    dev.dp.as_ref().and_then(|dp| dp.target().point())
}

/// The running cache of a dynamic device: ENOTSUP for a point device,
/// ENXIO when not active.
fn dyn_target(dev: &Device, req: &Request) -> Result<Arc<DynTarget>, RequestError> {
    if dev.lookup_dev.mode() != MODE_DYNAMIC {
        return Err(req.fail(
            libc::ENOTSUP,
            format!(
                "{} uses the point-mode lookup plugin {}: its single destination is set with the plugin's properties, not in a cache",
                dev.name, dev.search.meta.name
            ),
        ));
    }
    dev.dyn_target.clone().ok_or_else(|| {
        req.fail(
            libc::ENXIO,
            format!(
                "{} is not active: its target cache exists only while it is active",
                dev.name
            ),
        )
    })
}

/// When a `LOOKUP` stops waiting: after its `TIMEOUT_MS`, or the default
/// wait; an error when it asks for more than the longest wait.
pub(super) fn lookup_deadline(req: &Request) -> Result<Instant, RequestError> {
    let wait = req
        .attrs
        .get_u32(tg::ATTR_TIMEOUT_MS)
        .unwrap_or(tg::LOOKUP_TIMEOUT_DEFAULT_MS);
    if wait > tg::LOOKUP_TIMEOUT_MAX_MS {
        return Err(req.fail(
            libc::EINVAL,
            format!(
                "TIMEOUT_MS {wait} is above the longest wait, {} ms",
                tg::LOOKUP_TIMEOUT_MAX_MS
            ),
        ));
    }
    Ok(Instant::now() + Duration::from_millis(wait.into()))
}

/// The reply to a `LOOKUP` that got a request.
pub fn lookup_reply(req: &Request, pid: u32, t: &Taken) -> Vec<Message> {
    let r = &t.req;
    let dst_type = if r.is_broadcast() {
        tg::DST_BROADCAST
    } else if r.is_group() {
        tg::DST_MULTICAST
    } else {
        tg::DST_UNICAST
    };
    let attrs = vec![
        Attr::u64(tg::ATTR_REQID, t.reqid),
        Attr::u32(tg::ATTR_LINKID, t.target.linkid),
        Attr::str(tg::ATTR_NAME, &t.target.name),
        Attr::u64(tg::ATTR_VNETID, r.vnetid),
        Attr::u32(tg::ATTR_NEEDS, t.target.needs),
        Attr::bytes(tg::ATTR_SRC_MAC, r.src.to_vec()),
        Attr::bytes(tg::ATTR_DST_MAC, r.dst.to_vec()),
        Attr::u16(tg::ATTR_ETHERTYPE, r.ethertype),
        Attr::u16(tg::ATTR_VLAN, r.vlan),
        Attr::u32(tg::ATTR_HDR_LEN, r.hdr_len as u32),
        Attr::u32(tg::ATTR_PKT_LEN, r.frame_len - r.hdr_len as u32),
        Attr::u32(tg::ATTR_DST_TYPE, dst_type),
    ];
    req.respond(pid, vec![attrs])
}

/// A lookup service refusal (no such request held, a destination it
/// cannot use) as the request's `EINVAL`.
fn invalid(req: &Request) -> impl Fn(String) -> RequestError + '_ {
    |e| req.fail(libc::EINVAL, e)
}

fn reqid(req: &Request) -> u64 {
    req.attrs.get_u64(tg::ATTR_REQID).unwrap_or_default()
}

/// The frame of INJECT and RESEND, and the injector of the device they
/// name (by REQID held by this handle, or by LINKID / NAME).
fn inject_args(
    reg: &Registry,
    req: &Request,
    pid: u32,
) -> Result<(Vec<u8>, Arc<dyn crate::target::PacketPath>), RequestError> {
    let frame = req
        .attrs
        .get_bytes(tg::ATTR_FRAME)
        .unwrap_or_default()
        .to_vec();
    let injector = if req.attrs.get_u64(tg::ATTR_REQID).is_some() {
        let t = reg
            .lookups()
            .target_of(Taker::Handle(pid), reqid(req))
            .map_err(|e| req.fail(libc::ENOENT, e))?;
        t.injector()
    } else {
        let dev = device(reg, req)?;
        dev.dp
            .as_ref()
            .map(|dp| dp.injector() as Arc<dyn crate::target::PacketPath>)
    };
    let injector = injector.ok_or_else(|| {
        req.fail(
            libc::EAGAIN,
            "the device is not active: activate it before injecting frames",
        )
    })?;
    Ok((frame, injector))
}

/// Answers every command of the family but `LOOKUP` (held by the
/// dispatcher) and the `CACHE_LIST` dump (paced by it).
pub(super) fn handle(reg: &mut Registry, req: &Request, pid: u32) -> Reply {
    let taker = Taker::Handle(pid);
    let items = match req.command.id {
        tg::CMD_INFO => info(reg, req)?,
        tg::CMD_ASSOCIATE | tg::CMD_DISASSOCIATE => associate(reg, req)?,
        tg::CMD_DEGRADE => degrade(reg, req)?,
        tg::CMD_RESTORE => restore(reg, req)?,
        tg::CMD_RESPOND => respond(reg, req, taker)?,
        tg::CMD_DROP => drop_frame(reg, req, taker)?,
        tg::CMD_PKT => pkt(reg, req, taker)?,
        tg::CMD_INJECT => inject(reg, req, pid)?,
        tg::CMD_RESEND => resend(reg, req, pid)?,
        tg::CMD_CACHE_GET => cache_get(reg, req)?,
        tg::CMD_CACHE_SET => cache_set(reg, req)?,
        tg::CMD_CACHE_REMOVE => cache_remove(reg, req)?,
        tg::CMD_CACHE_FLUSH => cache_flush(reg, req)?,
        tg::CMD_LOOKUP_STATS => lookup_stats(reg, req)?,
        _ => return Err(unhandled(req)),
    };
    Ok(req.respond(pid, items))
}

/// `INFO`: a device's mode, needs, flags and waiting lookups.
fn info(reg: &Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let mut flags = 0;
    if dev.active {
        flags |= tg::INFO_ACTIVE;
    }
    let fault = dev.health.fault();
    if fault.is_some() {
        flags |= tg::INFO_DEGRADED;
    }
    if dev.associated {
        flags |= tg::INFO_ASSOCIATED;
    }
    let mut attrs = vec![
        Attr::u32(tg::ATTR_LINKID, dev.linkid),
        Attr::str(tg::ATTR_NAME, &dev.name),
        Attr::u32(tg::ATTR_NEEDS, dev.encap.info.dest),
        Attr::u32(tg::ATTR_MODE, dev.lookup_dev.mode()),
        Attr::u64(tg::ATTR_VNETID, dev.vnetid),
        Attr::u32(tg::ATTR_FLAGS, flags),
        Attr::u32(tg::ATTR_PENDING, reg.lookups().queued(dev.linkid) as u32),
    ];
    if let Some(msg) = fault {
        attrs.push(Attr::str(tg::ATTR_STATUS_MSG, msg));
    }
    Ok(vec![attrs])
}

/// `ASSOCIATE` and `DISASSOCIATE`: who serves a dynamic device's lookups.
fn associate(reg: &mut Registry, req: &Request) -> Items {
    let r = dev_ref(req)?;
    let on = req.command.id == tg::CMD_ASSOCIATE;
    let dev = reg.get(&r).map_err(|e| req.fail(e.errno, e.msg))?;
    if dev.lookup_dev.mode() != MODE_DYNAMIC {
        return Err(req.fail(
            libc::ENOTSUP,
            format!(
                "{} uses the point-mode lookup plugin {}; only a device in dynamic mode raises lookups to serve",
                dev.name, dev.search.meta.name
            ),
        ));
    }
    if dev.associated == on {
        return Err(if on {
            req.fail(
                libc::EEXIST,
                format!("{} is already served by external lookup servers", dev.name),
            )
        } else {
            req.fail(
                libc::EINVAL,
                format!(
                    "{} is not associated: its lookups are served by its plugin",
                    dev.name
                ),
            )
        });
    }
    let linkid = dev.linkid;
    reg.get_mut(&r)
        .map_err(|e| req.fail(e.errno, e.msg))?
        .associated = on;
    reg.lookups().set_external(linkid, on);
    Ok(vec![])
}

/// `DEGRADE`: an external lookup server marks the device degraded.
fn degrade(reg: &Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let msg = req.attrs.get_str(tg::ATTR_STATUS_MSG).unwrap_or_default();
    if msg.is_empty() {
        return Err(req.fail(libc::EINVAL, "STATUS_MSG (21) must say why"));
    }
    dev.health.degrade(msg);
    Ok(vec![])
}

/// `RESTORE`: the device back to ok.
fn restore(reg: &Registry, req: &Request) -> Items {
    device(reg, req)?.health.restore();
    Ok(vec![])
}

/// `RESPOND`: the answer to a lookup request this handle took.
fn respond(reg: &Registry, req: &Request, taker: Taker) -> Items {
    let t = reg
        .lookups()
        .target_of(taker, reqid(req))
        .map_err(invalid(req))?;
    let p = dest_attrs(req, t.needs)?;
    reg.lookups()
        .answer(taker, reqid(req), LookupAnswer::respond(p))
        .map_err(invalid(req))?;
    Ok(vec![])
}

/// `DROP`: a lookup request this handle took answered with drop.
fn drop_frame(reg: &Registry, req: &Request, taker: Taker) -> Items {
    reg.lookups()
        .answer(taker, reqid(req), LookupAnswer::drop_frame())
        .map_err(invalid(req))?;
    Ok(vec![])
}

/// `PKT`: the frame that raised a lookup request this handle took.
fn pkt(reg: &Registry, req: &Request, taker: Taker) -> Items {
    let frame = reg
        .lookups()
        .frame_of(taker, reqid(req))
        .map_err(invalid(req))?;
    Ok(vec![vec![
        Attr::u64(tg::ATTR_REQID, reqid(req)),
        Attr::bytes(tg::ATTR_FRAME, frame),
    ]])
}

/// `INJECT`: a frame delivered to the hosts as if from the underlay.
fn inject(reg: &Registry, req: &Request, pid: u32) -> Items {
    let (frame, inj) = inject_args(reg, req, pid)?;
    if frame.len() < 14 || frame.len() > tg::FRAME_MAX {
        return Err(req.fail(
            libc::EINVAL,
            format!(
                "FRAME must be an Ethernet frame of 14 to {} bytes, not {}",
                tg::FRAME_MAX,
                frame.len()
            ),
        ));
    }
    let n = inj
        .inbound(&[&frame[..]])
        .map_err(|e| req.fail(e.errno, e.msg))?;
    if n == 0 {
        return Err(req.fail(libc::ENOBUFS, "the backend did not take the frame"));
    }
    Ok(vec![])
}

/// `RESEND`: a frame sent down the transmit path.
fn resend(reg: &Registry, req: &Request, pid: u32) -> Items {
    let (frame, inj) = inject_args(reg, req, pid)?;
    inj.outbound(&frame).map_err(|e| req.fail(e.errno, e.msg))?;
    Ok(vec![])
}

/// `CACHE_GET`: a point device's destination, or a cached answer.
fn cache_get(reg: &Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let mac = mac_attr(req)?;
    Ok(if dev.lookup_dev.mode() == MODE_POINT {
        let p = point_of(dev).ok_or_else(|| {
            req.fail(
                libc::ENXIO,
                format!(
                    "{} is not active: its destination is known once it is",
                    dev.name
                ),
            )
        })?;
        vec![entry_attrs(dev, &mac, Answer::To(p))]
    } else {
        let answer = dyn_target(dev, req)?.answer(&mac).ok_or_else(|| {
            req.fail(
                libc::ENOENT,
                format!("{} has no answer cached for {mac}", dev.name),
            )
        })?;
        vec![entry_attrs(dev, &mac, answer)]
    })
}

/// `CACHE_SET`: an answer set by hand (a destination, or drop).
fn cache_set(reg: &mut Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let mac = mac_attr(req)?;
    let t = dyn_target(dev, req)?;
    let flags = req.attrs.get_u32(tg::ATTR_FLAGS).unwrap_or(0);
    if flags & !tg::ENTRY_DROP != 0 {
        return Err(req.fail(
            libc::EINVAL,
            format!("FLAGS {flags:#x}: the only entry flag is DROP (0x1)"),
        ));
    }
    let answer = if flags & tg::ENTRY_DROP != 0 {
        Answer::Drop
    } else {
        let p = dest_attrs(req, dev.encap.info.dest)?;
        t.check_point(&p).map_err(invalid(req))?;
        Answer::To(p)
    };
    t.set(&mac, answer);
    let (linkid, needs) = (dev.linkid, dev.encap.info.dest);
    reg.cache_changed(linkid, CacheChange::Set { mac, answer, needs });
    Ok(vec![])
}

/// `CACHE_REMOVE`: an entry's answer cleared.
fn cache_remove(reg: &mut Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let mac = mac_attr(req)?;
    let t = dyn_target(dev, req)?;
    if !t.remove(&mac) {
        return Err(req.fail(
            libc::ENOENT,
            format!("{} has no cache entry for {mac}", dev.name),
        ));
    }
    let linkid = dev.linkid;
    reg.cache_changed(linkid, CacheChange::Removed { mac });
    Ok(vec![])
}

/// `CACHE_FLUSH`: every answer of a device cleared.
fn cache_flush(reg: &mut Registry, req: &Request) -> Items {
    let dev = device(reg, req)?;
    let t = dyn_target(dev, req)?;
    t.flush();
    let linkid = dev.linkid;
    reg.cache_changed(linkid, CacheChange::Flushed);
    Ok(vec![])
}

/// `LOOKUP_STATS`: the lookup service's counters over every device.
fn lookup_stats(reg: &Registry, req: &Request) -> Items {
    if req.attrs.has(tg::ATTR_NAME) || req.attrs.has(tg::ATTR_LINKID) {
        return Err(req.fail(
            libc::EINVAL,
            "LOOKUP_STATS counts over every device and names none: leave out NAME and LINKID (a device's own lookup counters are in the overlay family's STATS)",
        ));
    }
    let lookups = reg.lookups();
    let stats = StatAttrs {
        list: tg::ATTR_STATS,
        entry: tg::ATTR_STAT,
        name: tg::ATTR_STAT_NAME,
        value: tg::ATTR_STAT_VALUE,
    };
    Ok(vec![vec![
        Attr::u32(
            tg::ATTR_PENDING,
            u32::try_from(lookups.queued_total()).unwrap_or(u32::MAX),
        ),
        stat_list(stats, lookups.stats.snapshot()),
    ]])
}

/// Where a `CACHE_LIST` dump goes on: devices in link-id order, each
/// device's answered entries in MAC order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CacheCursor {
    /// The one device listed, when the request names one.
    only: Option<u32>,
    /// The device being listed, or the next one; `None` once every
    /// device is in.
    linkid: Option<u32>,
    /// The last MAC sent of that device; `None` before its first entry.
    after: Option<Mac>,
}

/// Entries taken from a cache per lock: a part holds about forty, so one
/// or two runs fill it, and what a run took beyond the part is taken
/// again for the next one.
const CACHE_RUN: usize = 64;

/// The cursor of a new `CACHE_LIST` dump: of the device the request names
/// (`LINKID` or `NAME`; an error when there is no such device), or of
/// every device.
pub(super) fn cache_cursor(reg: &Registry, req: &Request) -> Result<CacheCursor, RequestError> {
    let only = if req.attrs.get_str(tg::ATTR_NAME).is_some()
        || req.attrs.get_u32(tg::ATTR_LINKID).is_some()
    {
        Some(device(reg, req)?.linkid)
    } else {
        None
    };
    Ok(CacheCursor {
        only,
        linkid: Some(only.unwrap_or(0)),
        after: None,
    })
}

/// Fills `part` with the `CACHE_LIST` entries from the cursor on: an
/// active point-mode device's one destination (as MAC 00:00:00:00:00:00),
/// a dynamic-mode device's valid and drop entries. Each cache is locked
/// only while a run of entries is copied out, never while a part is
/// written. Returns true when every entry is in.
pub(super) fn cache_part(
    reg: &Registry,
    req: &Request,
    pid: u32,
    cur: &mut CacheCursor,
    part: &mut Part,
) -> bool {
    let Some(from) = cur.linkid else {
        return true;
    };
    for dev in reg.devices_from(from) {
        if cur.only.is_some_and(|id| id != dev.linkid) {
            break;
        }
        if cur.linkid != Some(dev.linkid) {
            // The device the cursor was on is gone: start on this one.
            cur.linkid = Some(dev.linkid);
            cur.after = None;
        }
        if let Some(p) = point_of(dev) {
            if cur.after.is_none()
                && !part.add(req.reply(pid, entry_attrs(dev, &Mac::ZERO, Answer::To(p))))
            {
                return false;
            }
        } else if let Some(t) = &dev.dyn_target {
            loop {
                let run = t.answers_after(cur.after.as_ref(), CACHE_RUN);
                for (mac, answer) in &run.entries {
                    if !part.add(req.reply(pid, entry_attrs(dev, mac, *answer))) {
                        return false;
                    }
                    cur.after = Some(*mac);
                }
                match run.next {
                    Some(next) => cur.after = Some(next),
                    None => break,
                }
            }
        }
        cur.linkid = dev.linkid.checked_add(1);
        cur.after = None;
        if cur.linkid.is_none() {
            break;
        }
    }
    cur.linkid = None;
    true
}
