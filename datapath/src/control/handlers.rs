//! Request handlers: validated requests in, reply messages out.
//!
//! nlproto has already checked family, command, operation kind, version and
//! every attribute against the family's policy; handlers only implement
//! the semantics, on the device registry.
//!
//! One dispatcher (`Handlers::dispatch`) acts on what each command declares
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

use super::{
    reply::{unhandled, Part, Reply, DUMP_PART_LIMIT},
    target::CacheCursor,
    Dispatch, Outbox, Outgoing, Peer,
};
use crate::{devices::persist::Persist, devices::registry::Registry, stats::ServerStats};
use nlproto::{
    attr::align4,
    msg::{self, DoneMsg, NLM_F_DUMP_INTR},
    server::{ctrl_reply, parse_request_as, split_datagram, Request, RequestError},
    spec::{self, ctrl, handle, overlay as ov, target as tg},
    Emit,
};
use std::{collections::HashMap, time::Instant};

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
    Cache(CacheCursor),
}

/// The daemon's request side.
pub struct Handlers {
    registry: Registry,
    persist: Option<Persist>,
    /// Connections whose requests wait for one that is not finished.
    held: HashMap<u32, Held>,
    server: std::sync::Arc<ServerStats>,
}

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
            Cursor::Devices(next) => {
                super::overlay::devices_part(&self.registry, &dump.req, pid, next, &mut part)
            }
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

    /// Routes a request that answers at once to its family's handler.
    fn handle(&mut self, req: &Request, pid: u32, out: &mut Outbox) -> Reply {
        match req.family.id {
            ctrl::GENL_ID_CTRL => Ok(ctrl_reply(req, pid)),
            handle::ID => {
                super::handle::handle(req, pid, &self.server, self.registry.engine(), out)
            }
            ov::ID => super::overlay::handle(&mut self.registry, self.persist.as_mut(), req, pid),
            tg::ID => super::target::handle(&mut self.registry, req, pid),
            _ => Err(unhandled(req)),
        }
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

    fn changes(&mut self, out: &mut Outbox) {
        self.notify(out);
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
