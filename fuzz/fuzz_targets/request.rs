//! The daemon's request path: one datagram from a connection, as the
//! control server hands it over, through nlproto's split, decode and
//! policy validation, then dispatch into a real registry with the real
//! plugins (devices created, changed, activated in a private network
//! namespace, deleted), dumps continued to their end, and the replies
//! packed into datagrams as the server sends them.
//!
//! Input: a flags byte (bit 0: the peer is read-only, not admin), then the
//! datagram. Every input starts from an empty registry.
#![no_main]

use datapath::control::{Dispatch, Outbox, Outgoing, Peer};
use libfuzzer_sys::fuzz_target;
use nlproto::spec::Privilege;

/// Dump parts and lookup waits continued per input, at most.
const RESUMES: usize = 10_000;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, datagram)) = data.split_first() else {
        return;
    };
    let peer = Peer {
        pid: 7,
        access: if flags & 1 == 0 {
            Privilege::Admin
        } else {
            Privilege::ReadOnly
        },
    };
    let mut h = overlayd_fuzz::handlers().lock().unwrap();
    let mut out = Outbox::default();
    h.datagram(peer, datagram, &mut out);
    send(&mut out);
    for _ in 0..RESUMES {
        if !h.busy(peer) {
            break;
        }
        h.resume(peer, &mut out);
        if out.items.is_empty() {
            // A LOOKUP waiting for a request that nobody makes.
            break;
        }
        send(&mut out);
    }
    h.closed(peer);
    overlayd_fuzz::reset(h.registry());
});

/// Emits what the server would send, as it would send it.
fn send(out: &mut Outbox) {
    let mut replies = Vec::new();
    for item in out.items.drain(..) {
        match item {
            Outgoing::Reply(m) => replies.push(m),
            Outgoing::Datagram(d) | Outgoing::Notify { datagram: d, .. } => {
                assert!(d.len() >= 16, "a datagram shorter than a netlink header");
            }
            Outgoing::Join(_) | Outgoing::Leave(_) => {}
        }
    }
    for d in nlproto::server::pack_datagrams(&replies, 32 * 1024) {
        let len = u32::from_ne_bytes(d[..4].try_into().unwrap()) as usize;
        assert!(len >= 16 && len <= d.len(), "a reply whose length is wrong");
    }
}
