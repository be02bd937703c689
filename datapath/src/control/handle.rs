//! Handlers of the `overlay_handle` family: the connection's own PID, its
//! multicast groups, and the daemon's figures (`SERVER_STATS`).

use super::{
    reply::{stat_list, unhandled, Reply, StatAttrs},
    Outbox, Outgoing,
};
use crate::{dataplane::Engine, stats::ServerStats};
use nlproto::{
    server::Request,
    spec::{self, handle},
    Attr, AttrsExt,
};

const STATS: StatAttrs = StatAttrs {
    list: handle::HANDLE_ATTR_STATS,
    entry: handle::HANDLE_ATTR_STAT,
    name: handle::HANDLE_ATTR_STAT_NAME,
    value: handle::HANDLE_ATTR_STAT_VALUE,
};

/// Answers a request of the family.
pub(super) fn handle(
    req: &Request,
    pid: u32,
    server: &ServerStats,
    engine: &Engine,
    out: &mut Outbox,
) -> Reply {
    match req.command.id {
        handle::CMD_GET_PID => {
            Ok(req.respond(pid, vec![vec![Attr::u32(handle::HANDLE_ATTR_PID, pid)]]))
        }
        handle::CMD_JOIN_GROUP | handle::CMD_LEAVE_GROUP => group(req, pid, out),
        handle::CMD_SERVER_STATS => {
            let mut attrs = server_stats_attrs(server);
            attrs.extend(engine_attrs(engine));
            Ok(req.respond(pid, vec![attrs]))
        }
        _ => Err(unhandled(req)),
    }
}

/// `JOIN_GROUP` and `LEAVE_GROUP`: the server changes the membership.
fn group(req: &Request, pid: u32, out: &mut Outbox) -> Reply {
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

fn server_stats_attrs(s: &ServerStats) -> Vec<Attr> {
    let handles = s.handles.load(std::sync::atomic::Ordering::Relaxed);
    vec![
        Attr::u32(
            handle::HANDLE_ATTR_HANDLES,
            u32::try_from(handles).unwrap_or(u32::MAX),
        ),
        stat_list(STATS, s.counters.snapshot()),
    ]
}

/// The packet path's part of `SERVER_STATS`: its threads, offloads and
/// busy polling.
fn engine_attrs(engine: &Engine) -> Vec<Attr> {
    let offloads = engine
        .offloads
        .list()
        .map(|(name, on)| (name, u64::from(on)));
    vec![
        Attr::u32(
            handle::HANDLE_ATTR_PACKET_THREADS,
            u32::try_from(engine.threads.len()).unwrap_or(u32::MAX),
        ),
        stat_list(
            StatAttrs {
                list: handle::HANDLE_ATTR_OFFLOADS,
                ..STATS
            },
            offloads,
        ),
        Attr::u32(
            handle::HANDLE_ATTR_BUSY_POLL,
            u32::try_from(engine.busy_poll.as_micros()).unwrap_or(u32::MAX),
        ),
    ]
}
