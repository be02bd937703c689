//! Transcripts: the messages one or more connections exchanged with the
//! daemon, as text that a person can read and a program can replay.
//!
//! ```text
//! overlay-transcript 1
//! # Anything after '#' on a line of its own is a comment.
//!
//! connection
//! # overlay_handle GET_PID v1 request seq=1 pid=0 (NLM_F_REQUEST | NLM_F_ACK)
//! > 1400000020000500010000000000000001010000
//! # overlay_handle GET_PID v1 reply seq=1 pid=1: HANDLE_ATTR_PID=1
//! < 1c000000200000000100000001000000010100000800010001000000
//! ```
//!
//! - The first line that is neither blank nor a comment is the header,
//!   `overlay-transcript` and the format version ([`VERSION`]).
//! - `connection` starts the records of a new connection to the daemon;
//!   every record belongs to the connection above it.
//! - A record is `>` (sent to the daemon) or `<` (received from it), a
//!   space, and the bytes in hex (whitespace between digits is allowed). A
//!   `>` record is one datagram exactly as it was sent; a `<` record is one
//!   message, received datagrams being split into their messages.
//! - The writer puts a one-line decoding ([`crate::annotate::summary`])
//!   above each record as a comment; the parser ignores comments, so an
//!   edited or stale comment changes nothing.

use crate::client::Tap;
use crate::server::split_datagram;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// The word the header line starts with.
pub const MAGIC: &str = "overlay-transcript";

/// The format version this module reads and writes.
pub const VERSION: u32 = 1;

/// The line that starts each connection's records.
pub const CONNECTION: &str = "connection";

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent to the daemon (`>`).
    Sent,
    /// Received from the daemon (`<`).
    Received,
}

impl Direction {
    /// The character that marks the direction in a transcript.
    pub fn symbol(self) -> char {
        match self {
            Direction::Sent => '>',
            Direction::Received => '<',
        }
    }
}

/// One message (or, for [`Direction::Sent`], one datagram).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Which way it went.
    pub direction: Direction,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The line it was read from (1-based), 0 for a record not read from
    /// text.
    pub line: usize,
}

impl Record {
    /// A record not read from text.
    pub fn new(direction: Direction, bytes: Vec<u8>) -> Record {
        Record {
            direction,
            bytes,
            line: 0,
        }
    }
}

/// The records of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Connection {
    /// The line of its `connection` marker (0 when not read from text).
    pub line: usize,
    /// Its records in the order they happened.
    pub records: Vec<Record>,
}

/// A whole transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The comment lines between the header and the first connection
    /// (without their `#`): what the transcript is about. The writer puts
    /// them back; comments elsewhere are regenerated from the records.
    pub notes: Vec<String>,
    /// The connections, in order.
    pub connections: Vec<Connection>,
}

/// A transcript's text is not well formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The offending line, 1-based.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex digits, ignoring whitespace between them.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<(usize, u8)> = text
        .bytes()
        .enumerate()
        .filter(|(_, c)| !c.is_ascii_whitespace())
        .collect();
    if digits.is_empty() {
        return Err("the record has no bytes; write them in hex after the direction".into());
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        let [(i, hi), (j, lo)] = pair else {
            return Err(format!(
                "odd number of hex digits ({}): every byte takes two",
                digits.len()
            ));
        };
        let hi = hex_value(*hi).ok_or_else(|| bad_digit(text, *i))?;
        let lo = hex_value(*lo).ok_or_else(|| bad_digit(text, *j))?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

fn bad_digit(text: &str, at: usize) -> String {
    let c = text[at..].chars().next().unwrap_or('?');
    format!("{c:?} is not a hex digit (0-9, a-f)")
}

/// `bytes` as lowercase hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Transcript {
    /// Reads a transcript's text.
    pub fn parse(text: &str) -> Result<Transcript, ParseError> {
        let mut header_seen = false;
        let mut t = Transcript::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| ParseError { line, message };
            let l = raw.trim();
            if l.is_empty() {
                continue;
            }
            if let Some(note) = l.strip_prefix('#') {
                if header_seen && t.connections.is_empty() {
                    t.notes
                        .push(note.strip_prefix(' ').unwrap_or(note).to_string());
                }
                continue;
            }
            if !header_seen {
                let mut words = l.split_whitespace();
                if words.next() != Some(MAGIC) {
                    return Err(err(format!(
                        "expected the header `{MAGIC} {VERSION}` before anything else, found {l:?}"
                    )));
                }
                let version = words.next().ok_or_else(|| {
                    err(format!(
                        "the header lacks the format version: `{MAGIC} {VERSION}`"
                    ))
                })?;
                if words.next().is_some() {
                    return Err(err(format!(
                        "unexpected text after the version in the header {l:?}"
                    )));
                }
                match version.parse::<u32>() {
                    Ok(VERSION) => {}
                    Ok(v) => {
                        return Err(err(format!(
                        "format version {v} is not supported; this build reads version {VERSION}"
                    )))
                    }
                    Err(_) => {
                        return Err(err(format!(
                            "format version {version:?} is not a number; expected {VERSION}"
                        )))
                    }
                }
                header_seen = true;
                continue;
            }
            if l == CONNECTION {
                t.connections.push(Connection {
                    line,
                    records: Vec::new(),
                });
                continue;
            }
            let direction = match l.as_bytes()[0] {
                b'>' => Direction::Sent,
                b'<' => Direction::Received,
                _ => {
                    return Err(err(format!(
                        "expected `{CONNECTION}`, a record (`> HEX` or `< HEX`) or a `#` comment, found {l:?}"
                    )))
                }
            };
            let rest = &l[1..];
            if rest.is_empty() {
                return Err(err(format!(
                    "the record has no bytes; write them in hex after `{} `",
                    direction.symbol()
                )));
            }
            if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
                return Err(err(format!(
                    "put a space between the direction {:?} and the hex bytes",
                    direction.symbol()
                )));
            }
            let bytes = parse_hex(rest).map_err(err)?;
            let Some(conn) = t.connections.last_mut() else {
                return Err(err(format!(
                    "a record before the first `{CONNECTION}` line; start the connection with one"
                )));
            };
            conn.records.push(Record {
                direction,
                bytes,
                line,
            });
        }
        if !header_seen {
            return Err(ParseError {
                line: text.lines().count().max(1),
                message: format!("no `{MAGIC} {VERSION}` header: this is not a transcript"),
            });
        }
        Ok(t)
    }

    /// The header line (without its newline).
    pub fn header() -> String {
        format!("{MAGIC} {VERSION}")
    }

    /// The transcript as text: the header, then each connection.
    pub fn to_text(&self) -> String {
        let mut out = Transcript::header();
        out.push('\n');
        for n in &self.notes {
            if n.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {n}");
            }
        }
        for c in &self.connections {
            out.push_str(&connection_text(&c.records));
        }
        out
    }

    /// Every record with its connection index and its number (1-based,
    /// counted across the whole transcript).
    pub fn records(&self) -> impl Iterator<Item = (usize, usize, &Record)> {
        self.connections
            .iter()
            .enumerate()
            .flat_map(|(ci, c)| c.records.iter().map(move |r| (ci, r)))
            .enumerate()
            .map(|(n, (ci, r))| (ci, n + 1, r))
    }
}

/// One connection's records as text: a blank line, the `connection`
/// marker, then each record under its decoded comment. Appending this to a
/// transcript's text adds the connection.
pub fn connection_text(records: &[Record]) -> String {
    let mut out = format!("\n{CONNECTION}\n");
    for r in records {
        let summary = crate::annotate::summary(&r.bytes);
        let _ = writeln!(out, "# {summary}");
        let _ = writeln!(out, "{} {}", r.direction.symbol(), hex(&r.bytes));
    }
    out
}

/// A [`Tap`] that keeps what a client sends and receives as records:
/// each sent datagram as one record, each received datagram split into its
/// messages. Clones share the records.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    records: Arc<Mutex<Vec<Record>>>,
}

impl Recorder {
    /// A recorder with nothing recorded.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// What has been recorded so far.
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn push(&self, record: Record) {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(record);
    }
}

impl Tap for Recorder {
    fn sent(&mut self, datagram: &[u8]) {
        self.push(Record::new(Direction::Sent, datagram.to_vec()));
    }

    fn received(&mut self, datagram: &[u8]) {
        for item in split_datagram(datagram) {
            let bytes = match item {
                Ok(m) => m.bytes,
                // Kept whole so that a replay shows the same bad bytes.
                Err(e) => &datagram[e.datagram_offset..],
            };
            self.push(Record::new(Direction::Received, bytes.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests;
