//! The overlayd control protocol: generic netlink over a Unix
//! `SOCK_SEQPACKET` socket.
//!
//! Messages are byte-for-byte Linux netlink: a 16-byte `nlmsghdr`, a 4-byte
//! `genlmsghdr`, then 4-byte aligned attributes in native byte order. One
//! datagram may carry several messages. Every connection is a *handle* with
//! a PID the daemon assigns; the daemon puts it in `nlmsg_pid` of everything
//! it sends.
//!
//! The crate has seven parts, each usable alone:
//!
//! - [`spec`]: the families declared once as data (ids, commands, operation
//!   kinds, privileges, attribute policies) and the Markdown rendering that
//!   `docs/protocol.md` embeds.
//! - [`attr`]: a generic attribute tree ([`attr::Attr`]) that emits through
//!   netlink-packet-core, and a strict policy-driven decoder whose errors
//!   name the attribute and its byte offset.
//! - [`msg`]: whole messages ([`msg::GenlMsg`], acks and errors with
//!   extended-ack TLVs, `NLMSG_DONE`) and their decoding.
//! - [`server`]: what the daemon needs, without I/O: datagram splitting,
//!   the dispatch validation in the protocol's order, reply building, and
//!   the whole nlctrl handler.
//! - [`client`]: a blocking client over the Unix socket, with a
//!   [`client::Tap`] that sees every datagram.
//! - [`sys`]: the transport, Unix `SOCK_SEQPACKET` sockets through `nix`,
//!   which the client and the daemon both use (the only part that does
//!   I/O).
//! - [`transcript`]: the text format of recorded exchanges with the daemon
//!   (golden transcripts), its parser and writer, and a recording tap.
//!
//! Guarantees: no input bytes make the decoders panic (property-tested); a
//! request that reaches a handler has passed every check of the protocol's
//! dispatch validation; error offsets always count from the start of the
//! offending message's `nlmsghdr`.

#![warn(missing_docs)]

pub mod annotate;
pub mod attr;
pub mod client;
pub mod errno;
pub mod msg;
pub mod server;
pub mod spec;
pub mod sys;
pub mod transcript;

pub use attr::{Attr, AttrValue, AttrsExt};
pub use msg::{Emit, GenlMsg, Message};

/// The daemon's default socket path.
pub const DEFAULT_SOCKET_PATH: &str = "/run/overlayd/overlayd.sock";

#[cfg(test)]
mod doc_sync;
