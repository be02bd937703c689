//! overlayd: the userspace overlay datapath daemon.
//!
//! # Theory
//!
//! An overlay device is a virtual Ethernet link whose frames travel
//! encapsulated over an underlay network. For every device the daemon keeps
//! two plugin instances: an **encapsulation** instance (how a frame is put
//! on the wire: VXLAN, ...) and a **lookup** instance (where it goes:
//! `direct`, ...). Plugins are `.so` files loaded at start
//! ([`plugins`], through `overlay_plugin_abi::loader`); the daemon knows
//! nothing of any particular encapsulation or lookup.
//!
//! ## Parts
//!
//! ```text
//!   overlayctl / any netlink client
//!            |  generic netlink over AF_UNIX SOCK_SEQPACKET
//!            v
//!   control::Server ---- one polling loop, connections in a slab,
//!            |           replies and notifications queued per
//!            |           connection, never blocking
//!            v
//!   control::handlers -- the dispatcher: requests already validated by
//!            |           nlproto against the family tables, handled as
//!            |           each command declares there (spec::Handling:
//!            |           paced dump, waits, saves the state file); the
//!            |           rest of a datagram waits for an unfinished one
//!            v
//!   control::{overlay, handle, target} - one module per family, one
//!            |           function per command; only semantics here
//!            v
//!   devices::registry -- devices by link id; create / activate / delete,
//!            |           properties, uniqueness of underlay endpoints;
//!            |           records an event per change (notify::Event,
//!            |           the one path of every notification) and a
//!            |           generation for dump consistency
//!            v
//!   devices::device ---- generic properties + the two plugin instances,
//!                        and while active in dynamic mode the device's
//!                        target (target::DynTarget)
//!
//!   target/ ------------ the target cache of each dynamic-mode device and
//!                        the lookup service that answers its misses with
//!                        lookup threads or external servers (the daemon's
//!                        varpd); the packet path and the handlers reach a
//!                        cache only through DynTarget's methods
//! ```
//!
//! The folders follow these parts: `control/` (server, dispatcher, the
//! families' handlers, credentials), `devices/` (registry, device,
//! persistence, notifications), `target/`, [`plugins`] (the adapter: the
//! only module where abi_stable types appear; the rest of the daemon calls
//! plugins in plain Rust types through it, and a device's plugin panics
//! are counted and degrade it there, in one place),
//! `dataplane/` (the packet path, below) and `sys/` (the OS edge). They
//! depend on each other one way, control -> devices -> dataplane -> target
//! -> plugins (DESIGN.md at the root of the repository).
//!
//! ## Packet path (while a device is active)
//!
//! ```text
//!  hosts --frames--> backend (TAP with vnet header | AF_PACKET)
//!                      | read: up to 64 KiB TSO frames   packet threads,
//!                      v                                 a fixed pool
//!   point destination, or the target cache (dynamic;    (one per CPU),
//!   one lookup per super-frame; a miss queues it)       epoll over every
//!                      -> segment in userspace          active backend
//!                      -> encap (plugin, once per segment) and mux
//!                      -> UDP GSO send (UDP_SEGMENT) on the socket bound
//!                         to the flow's source port      --> underlay
//!                         (other frames: sendmmsg batches on a raw socket)
//!
//!  underlay --UDP (GRO trains)--> mux socket
//!                      | recvmmsg / UDP_GRO
//!                      v
//!                 decap (plugin) -> vnetid -> device table snapshot
//!                      -> coalesce a flow's TCP segments
//!                      -> backend write (GSO frame + vnet header) --> hosts
//! ```
//!
//! [`dataplane`] owns this side: backends, the offload engine (pure
//! functions on bytes), muxes and the packet threads; [`target`] owns the
//! cache and the lookup service it asks. Every source (a device's backend,
//! a mux) is registered with one packet thread, the least loaded, and only
//! that thread runs it, so a device costs no thread of its own.
//!
//! The packet threads never take a lock the control thread holds for long
//! and never call a property method: settings they follow (MTU, source
//! port range) are atomics; the mux's device table is an immutable
//! snapshot swapped by the control thread, which waits until the packet
//! thread has picked it up. Counters are relaxed atomics added per batch.
//!
//! ## Device state machine
//!
//! ```text
//!            CREATE (all properties in the request applied, or nothing)
//!               |
//!               v
//!   +------> created --SETPROP (any writable property)--+
//!   |           |  ^                                     |
//!   |           |  +-------------------------------------+
//!   |        ACTIVATE: required properties set, endpoint unique,
//!   |           |       lookup started (point mode: its one
//!   |           |       destination asked; dynamic mode: an empty
//!   |           |       target cache), backend opened, mux joined,
//!   |           |       both registered with packet threads; any
//!   |           |       failure undoes the steps done
//!   |           v
//!   |        active --SETPROP (runtime properties only; others ENOTSUP)
//!   |           |
//!   |         DELETE (deactivates first: backend unregistered from its
//!   |           |      packet thread, mux left and its thread synced,
//!   |           |      backend closed, lookup stopped)
//!   |           v
//!   +------- gone (plugin instances dropped, nothing left registered)
//! ```
//!
//! ## Target cache entry (dynamic mode)
//!
//! ```text
//!   (none) | invalid --a frame: queued, lookup asked--> pending
//!   pending --respond--> valid (the queued frames sent there)
//!           --drop, inject, resend, replicate: the head frame
//!             handled--> pending while frames remain (a lookup
//!             asked for the next), else invalid
//!   valid | drop --CACHE_REMOVE, CACHE_FLUSH, expiry, the plugin's
//!                  take_stale after a property change--> invalid
//!   any --CACHE_SET (an administrator)--> valid | drop
//! ```
//!
//! Lookups whose taker does not answer in time are asked again; a device
//! whose lookups keep timing out is degraded ([`target::lookup`]).
//!
//! Status is orthogonal: a device is `ok` or `degraded` with a message. A
//! plugin call that panics (caught inside the plugin by the kit's
//! `catch_unwind`) fails that call, is counted and degrades the device.
//!
//! ## Guarantees
//!
//! * Every request gets an answer: a reply, an ack when asked, or
//!   NLMSG_ERROR with an errno and a message naming what was wrong.
//! * A failed CREATE leaves no device; a failed SETPROP leaves the old
//!   value (plugin properties are tried on a scratch instance first when
//!   they take part in the uniqueness check).
//! * No two devices share (encapsulation, listen address, listen port,
//!   vnetid); checked at CREATE, at SETPROP of any of those, and at
//!   ACTIVATE.
//! * The control loop never blocks on a client: a client that does not read
//!   its replies stops being read from, and other clients go on.
//! * Only uid 0 or a `CAP_NET_ADMIN` peer changes anything; the others are
//!   refused every admin command before a handler runs ([`control::cred`]).
//! * Every successful change is in the state file before its reply is sent,
//!   written atomically; a restart brings back every device not created
//!   temporary, active ones active, or degraded with the reason
//!   ([`devices::persist`]).
//! * Every change is notified to the members of its multicast group before
//!   the reply to the request that made it is queued. A member that does
//!   not read is sent one ENOBUFS report and misses notifications until its
//!   queue drains ([`devices::notify`]); nobody else waits for it.
//! * A device-table dump is produced as the client reads it; its parts
//!   produced after a change carry NLM_F_DUMP_INTR. A target cache dump is
//!   produced the same way, each cache locked only while a run of entries
//!   is copied out.
//! * A request behind an unfinished one in its datagram (a dump, a
//!   `LOOKUP` that waits) is answered after it, once.
#![warn(missing_docs)]

pub mod control;
pub mod dataplane;
pub mod devices;
pub mod error;
pub mod metrics;
pub mod plugins;
pub mod stats;
pub mod sys;
pub mod target;
