//! Replaying transcripts against a daemon and comparing its answers byte
//! for byte.
//!
//! Each connection of the transcript is opened anew ([`Client::connect_bare`],
//! which sends nothing by itself). Each `>` record is sent as one datagram;
//! then every message answering it is received: up to the `NLMSG_ERROR`
//! (ack or error) or `NLMSG_DONE` carrying its sequence number, or its one
//! reply when it asked for neither an ack nor a dump, or nothing when the
//! transcript recorded nothing after it (a write without `NLM_F_ACK`).
//! These are compared with the `<` records that follow it.
//!
//! Before comparing, the fields that legitimately differ from one run to
//! the next are carried over from the recording ([`Field`]), found by
//! family, command and attribute, never by position alone:
//!
//! - handle PIDs ([`Field::Pid`]): `nlmsg_pid` of every message received,
//!   the echoed request's `nlmsg_pid` in `NLMSG_ERROR`, and
//!   `HANDLE_ATTR_PID` in overlay_handle replies. The daemon numbers
//!   handles in connection order, counting connections the transcript did
//!   not make (a test harness's readiness probe, other clients).
//! - link ids ([`Field::LinkId`]): the overlay family's top-level `LINKID`.
//!   They are never reused, so they depend on what the daemon did before.
//! - plugin file paths ([`Field::PluginFile`]): `PLUGIN_FILE` in PLUGINS
//!   replies depends on where the plugins were built or installed; the
//!   file name must still be the same.
//! - counter values ([`Field::Counter`]): `STAT_VALUE` in STATS replies
//!   counts traffic that the kernel and the timing decide (a TAP coming up
//!   sends IPv6 router solicitations); the counters' names, order and size
//!   are still compared. So are `CACHE_ENTRIES` in STATS replies, and the
//!   control server's figures in SERVER_STATS replies (`HANDLE_ATTR_HANDLES`,
//!   `HANDLE_ATTR_STAT_VALUE`), which count the replaying client's own
//!   connections and requests along with everyone else's, and the packet
//!   path's (`HANDLE_ATTR_PACKET_THREADS` follows the machine's CPUs, an
//!   offload's value what its kernel supports).
//!
//! PIDs and link ids are mapped first seen to first seen, and the mapping
//! must stay one to one: a reply naming link 2 where the recording named
//! link 1 passes only if link 1 of the recording has been link 2 all along.
//! Requests are rewritten the other way (their `nlmsg_pid` and overlay
//! `LINKID` attributes), as a client would. Sequence numbers are sent as
//! recorded, so they are compared as they are.

use nlproto::annotate::{annotate, summary};
use nlproto::attr::{align4, raw_attrs, RawAttr, RawAttrError};
use nlproto::client::Client;
use nlproto::msg::{NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP};
use nlproto::server::split_datagram;
use nlproto::spec::{self, handle, overlay as ov, AttrKind, AttrSpec};
use nlproto::transcript::{Direction, Record, Transcript};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// A field whose value may differ between the recording and the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A handle PID (u32).
    Pid,
    /// An overlay link id (u32).
    LinkId,
    /// A plugin's file path (string): only the file name is compared.
    PluginFile,
    /// A traffic counter (u64): only its presence and size are compared.
    Counter,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Offered each variable field with its value; returns the value to put
/// in its place, if any.
type Substitute<'a> = dyn FnMut(Field, &[u8]) -> Option<Vec<u8>> + 'a;

/// Which variable field an attribute is, if any.
fn classify(family: u16, cmd: u8, parents: &[&str], name: &str) -> Option<Field> {
    match (family, name) {
        (handle::ID, "HANDLE_ATTR_PID") if parents.is_empty() => Some(Field::Pid),
        (ov::ID, "LINKID") if parents.is_empty() => Some(Field::LinkId),
        (ov::ID, "PLUGIN_FILE") if parents.is_empty() && cmd == ov::CMD_PLUGINS => {
            Some(Field::PluginFile)
        }
        (ov::ID, "STAT_VALUE" | "CACHE_ENTRIES") if cmd == ov::CMD_STATS => Some(Field::Counter),
        (
            handle::ID,
            "HANDLE_ATTR_HANDLES" | "HANDLE_ATTR_STAT_VALUE" | "HANDLE_ATTR_PACKET_THREADS",
        ) if cmd == handle::CMD_SERVER_STATS => Some(Field::Counter),
        _ => None,
    }
}

/// Rebuilds `msg`, offering every variable field to `f`, which may
/// replace its value; lengths are fixed up when a value changes size.
/// Bytes the walk cannot interpret are copied as they are.
fn rewrite(msg: &[u8], f: &mut Substitute<'_>) -> Vec<u8> {
    if msg.len() < NLMSG_HDRLEN {
        return msg.to_vec();
    }
    let kind = u16_at(msg, 4);
    let mut out = msg[..NLMSG_HDRLEN].to_vec();
    put(&mut out, 12, f(Field::Pid, &msg[12..16]));
    let body = &msg[NLMSG_HDRLEN..];
    match kind {
        NLMSG_ERROR if body.len() >= 4 + NLMSG_HDRLEN => {
            // The error code and the echoed request header, whose PID is
            // the handle's; the rest (echoed payload, extended-ack texts)
            // is compared as it is.
            out.extend_from_slice(body);
            put(
                &mut out,
                NLMSG_HDRLEN + 4 + 12,
                f(Field::Pid, &body[16..20]),
            );
        }
        k if k >= 0x10 && body.len() >= 4 => {
            out.extend_from_slice(&body[..4]);
            match spec::family_by_id(k) {
                Some(fam) => {
                    let attrs = rewrite_attrs(&body[4..], fam.attrs, k, body[0], &[], f);
                    out.extend_from_slice(&attrs);
                }
                None => out.extend_from_slice(&body[4..]),
            }
        }
        _ => out.extend_from_slice(body),
    }
    if out.len() != msg.len() {
        let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out[0..4].copy_from_slice(&len.to_ne_bytes());
    }
    out
}

fn put(out: &mut [u8], at: usize, value: Option<Vec<u8>>) {
    if let Some(v) = value {
        if v.len() == 4 {
            out[at..at + 4].copy_from_slice(&v);
        }
    }
}

fn rewrite_attrs(
    bytes: &[u8],
    policy: &'static [AttrSpec],
    family: u16,
    cmd: u8,
    parents: &[&str],
    f: &mut Substitute<'_>,
) -> Vec<u8> {
    rewrite_walk(
        bytes,
        |a, f| {
            let s = spec::find_attr(policy, a.kind())?;
            let mut inner = parents.to_vec();
            inner.push(s.name);
            match s.kind {
                AttrKind::Nested(p) if a.nested() => {
                    Some(rewrite_attrs(a.value, p, family, cmd, &inner, f))
                }
                AttrKind::NestedIndexed(p) if a.nested() => Some(rewrite_walk(
                    a.value,
                    |e, f| Some(rewrite_attrs(e.value, p, family, cmd, &inner, f)),
                    f,
                )),
                _ => classify(family, cmd, parents, s.name).and_then(|field| f(field, a.value)),
            }
        },
        f,
    )
}

/// Copies the attributes of `bytes`, replacing the value of each for which
/// `value` gives a different one (its length fixed up, padded again).
/// Bytes that are not attributes are copied as they are.
fn rewrite_walk(
    bytes: &[u8],
    mut value: impl FnMut(&RawAttr<'_>, &mut Substitute<'_>) -> Option<Vec<u8>>,
    f: &mut Substitute<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for item in raw_attrs(bytes) {
        let a = match item {
            Ok(a) => a,
            Err(RawAttrError::Truncated { rest, .. } | RawAttrError::BadLength { rest, .. }) => {
                out.extend_from_slice(rest);
                break;
            }
        };
        match value(&a, f) {
            Some(v) if v != a.value => {
                let new_len = 4 + v.len();
                out.extend_from_slice(&u16::try_from(new_len).unwrap_or(u16::MAX).to_ne_bytes());
                out.extend_from_slice(&a.raw_type.to_ne_bytes());
                out.extend_from_slice(&v);
                out.resize(align4(out.len()), 0);
            }
            _ => out.extend_from_slice(a.wire),
        }
    }
    out
}

/// The variable fields of a message with their values, in walk order.
pub fn fields(msg: &[u8]) -> Vec<(Field, Vec<u8>)> {
    let mut found = Vec::new();
    rewrite(msg, &mut |field, v| {
        found.push((field, v.to_vec()));
        None
    });
    found
}

/// A one-to-one mapping between recorded and replayed values.
#[derive(Debug, Default)]
struct Bijection {
    to_replay: HashMap<Vec<u8>, Vec<u8>>,
    to_recorded: HashMap<Vec<u8>, Vec<u8>>,
}

impl Bijection {
    /// Pairs `recorded` with `replayed` unless either is paired with
    /// another value already; returns whether they are paired.
    fn pair(&mut self, recorded: &[u8], replayed: &[u8]) -> bool {
        match (self.to_replay.get(recorded), self.to_recorded.get(replayed)) {
            (None, None) => {
                self.to_replay.insert(recorded.to_vec(), replayed.to_vec());
                self.to_recorded
                    .insert(replayed.to_vec(), recorded.to_vec());
                true
            }
            (Some(r), _) => r == replayed,
            (None, Some(_)) => false,
        }
    }
}

/// The state of a replay: the mappings established so far.
#[derive(Debug, Default)]
pub struct Normaliser {
    pids: Bijection,
    links: Bijection,
}

fn file_name(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let path = &path[..end];
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

impl Normaliser {
    /// A normaliser with no mappings.
    pub fn new() -> Normaliser {
        Normaliser::default()
    }

    /// The request as this replay sends it: its `nlmsg_pid` and overlay
    /// `LINKID` attributes translated to the replay's values where known.
    pub fn request(&self, recorded: &[u8]) -> Vec<u8> {
        rewrite(recorded, &mut |field, v| match field {
            Field::Pid if v != [0, 0, 0, 0] => self.pids.to_replay.get(v).cloned(),
            Field::LinkId => self.links.to_replay.get(v).cloned(),
            _ => None,
        })
    }

    /// A received message translated into the recording's terms, pairing
    /// its variable fields with those of the `recorded` message when both
    /// have the same fields in the same order. The result equals
    /// `recorded` exactly when the daemon answered the same.
    pub fn reply(&mut self, recorded: &[u8], received: &[u8]) -> Vec<u8> {
        let theirs = fields(recorded);
        let ours = fields(received);
        let same_shape =
            theirs.len() == ours.len() && theirs.iter().zip(&ours).all(|(a, b)| a.0 == b.0);
        let mut paired: VecDeque<Option<Vec<u8>>> = VecDeque::new();
        for (i, (field, value)) in ours.iter().enumerate() {
            let rec = same_shape.then(|| &theirs[i].1);
            let translated = match field {
                Field::Pid | Field::LinkId => {
                    let map = if *field == Field::Pid {
                        &mut self.pids
                    } else {
                        &mut self.links
                    };
                    match rec {
                        Some(r) if map.pair(r, value) => Some(r.clone()),
                        _ => map.to_recorded.get(value).cloned(),
                    }
                }
                Field::PluginFile => rec
                    .filter(|r| file_name(r) == file_name(value) && !file_name(value).is_empty())
                    .cloned(),
                Field::Counter => rec.filter(|r| r.len() == value.len()).cloned(),
            };
            paired.push_back(translated);
        }
        rewrite(received, &mut |_, _| paired.pop_front().flatten())
    }
}

/// Whether `msg` ends the answer to a request of sequence number `seq`.
fn terminates(msg: &[u8], seq: u32) -> bool {
    msg.len() >= NLMSG_HDRLEN
        && matches!(u16_at(msg, 4), NLMSG_ERROR | NLMSG_DONE)
        && u32_at(msg, 8) == seq
}

/// A difference between the recording and the replay.
#[derive(Debug)]
pub struct Mismatch {
    /// The record's number in the transcript (1-based).
    pub record: usize,
    /// Its line in the file (0 when unknown).
    pub line: usize,
    /// What differs, with both messages decoded and a hex diff.
    pub text: String,
}

/// What can stop a replay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered differently from the recording.
    #[error("record {} (line {}): {}", .0.record, .0.line, .0.text)]
    Mismatch(Mismatch),
    /// The socket failed or the daemon stopped answering.
    #[error("record {record} (line {line}): {source}")]
    Client {
        /// The record being replayed.
        record: usize,
        /// Its line.
        line: usize,
        /// Why.
        #[source]
        source: nlproto::client::Error,
    },
}

/// A hex diff of two messages: the 16-byte rows that differ, the recorded
/// one as `-`, the received one as `+`.
pub fn hex_diff(expected: &[u8], got: &[u8]) -> String {
    let mut out = String::new();
    let rows = expected.len().max(got.len()).div_ceil(16);
    let row = |b: &[u8], r: usize| -> String {
        let start = (r * 16).min(b.len());
        let end = (r * 16 + 16).min(b.len());
        b[start..end]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for r in 0..rows {
        let (a, b) = (row(expected, r), row(got, r));
        if a != b {
            let _ = writeln!(out, "- {:04x}  {a}", r * 16);
            let _ = writeln!(out, "+ {:04x}  {b}", r * 16);
        }
    }
    out
}

fn mismatch_text(what: &str, expected: &[u8], got: &[u8]) -> String {
    format!(
        "{what}\nrecorded:\n{}\nreceived (variable fields carried over from the recording):\n{}\nhex diff (- recorded, + received):\n{}",
        annotate(expected),
        annotate(got),
        hex_diff(expected, got)
    )
}

/// How a replay runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long to wait for each datagram.
    pub timeout: Duration,
    /// Replace the recorded answers with the daemon's instead of comparing.
    pub bless: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: Duration::from_secs(10),
            bless: false,
        }
    }
}

/// Replays `transcript` against the daemon at `socket`. Returns the
/// transcript with the daemon's answers when blessing (the recorded one
/// otherwise), or the first difference.
pub fn replay(
    transcript: &Transcript,
    socket: &Path,
    options: &Options,
) -> Result<Transcript, Error> {
    let mut norm = Normaliser::new();
    let mut out = Transcript {
        notes: transcript.notes.clone(),
        connections: Vec::new(),
    };
    let mut number = 0;
    for conn in &transcript.connections {
        let mut client =
            Client::connect_bare(socket, options.timeout).map_err(|source| Error::Client {
                record: number + 1,
                line: conn.line,
                source,
            })?;
        let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
        let mut records = Vec::new();
        let recs = &conn.records;
        let mut i = 0;
        while i < recs.len() {
            let sent = &recs[i];
            number += 1;
            let client_err = |record: usize, line: usize| {
                move |source| Error::Client {
                    record,
                    line,
                    source,
                }
            };
            if sent.direction == Direction::Received {
                // Answers are consumed after their request; one here has no request.
                return Err(Error::Mismatch(Mismatch {
                    record: number,
                    line: sent.line,
                    text: "a received record without a sent record before it in its connection"
                        .into(),
                }));
            }
            let request = norm.request(&sent.bytes);
            client
                .send_raw(&request)
                .map_err(client_err(number, sent.line))?;
            records.push(sent.clone());
            let expected: Vec<&Record> = recs[i + 1..]
                .iter()
                .take_while(|r| r.direction == Direction::Received)
                .collect();
            i += 1 + expected.len();
            let seq = if request.len() >= NLMSG_HDRLEN {
                Some(u32_at(&request, 8))
            } else {
                None
            };
            let flags = if request.len() >= NLMSG_HDRLEN {
                u16_at(&request, 6)
            } else {
                0
            };
            let silent = flags & (NLM_F_ACK | NLM_F_DUMP) == 0;
            let mut answers: Vec<Vec<u8>> = Vec::new();
            let wanted = |answers: &Vec<Vec<u8>>| -> bool {
                match (seq, answers.last()) {
                    // Unframed requests: as many answers as were recorded.
                    (None, _) => answers.len() < expected.len(),
                    (Some(_), None) => !(silent && expected.is_empty()),
                    (Some(s), Some(last)) => !terminates(last, s) && !silent,
                }
            };
            while wanted(&answers) {
                let msg = match pending.pop_front() {
                    Some(m) => m,
                    None => {
                        let number_now = number + answers.len() + 1;
                        let line = expected.get(answers.len()).map_or(sent.line, |r| r.line);
                        let datagram = client.recv_raw().map_err(client_err(number_now, line))?;
                        for item in split_datagram(&datagram) {
                            pending.push_back(match item {
                                Ok(m) => m.bytes.to_vec(),
                                Err(e) => datagram[e.datagram_offset..].to_vec(),
                            });
                        }
                        continue;
                    }
                };
                answers.push(msg);
            }
            for (k, got) in answers.iter().enumerate() {
                let rec_number = number + k + 1;
                match expected.get(k) {
                    Some(want) => {
                        let translated = norm.reply(&want.bytes, got);
                        if translated != want.bytes && !options.bless {
                            return Err(Error::Mismatch(Mismatch {
                                record: rec_number,
                                line: want.line,
                                text: mismatch_text(
                                    "the daemon's answer differs from the recording",
                                    &want.bytes,
                                    &translated,
                                ),
                            }));
                        }
                        records.push(Record {
                            direction: Direction::Received,
                            bytes: translated,
                            line: want.line,
                        });
                    }
                    None if options.bless => {
                        records.push(Record::new(Direction::Received, norm.reply(&[], got)))
                    }
                    None => {
                        return Err(Error::Mismatch(Mismatch {
                            record: number + expected.len(),
                            line: expected.last().map_or(sent.line, |r| r.line),
                            text: format!(
                                "the daemon sent more than was recorded after this record:\n{}",
                                annotate(got)
                            ),
                        }))
                    }
                }
            }
            if answers.len() < expected.len() && !options.bless {
                let missing = expected[answers.len()];
                return Err(Error::Mismatch(Mismatch {
                    record: number + answers.len() + 1,
                    line: missing.line,
                    text: format!(
                        "the daemon's answer ended before this recorded message:\n{}",
                        summary(&missing.bytes)
                    ),
                }));
            }
            number += expected.len();
        }
        if let Some(extra) = pending.pop_front() {
            return Err(Error::Mismatch(Mismatch {
                record: number,
                line: recs.last().map_or(conn.line, |r| r.line),
                text: format!(
                    "the daemon sent more than was recorded at the end of the connection:\n{}",
                    annotate(&extra)
                ),
            }));
        }
        out.connections.push(nlproto::transcript::Connection {
            line: conn.line,
            records,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
