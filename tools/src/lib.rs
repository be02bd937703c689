//! `overlayctl`, the administration CLI of `overlayd`.
//!
//! The binary is a thin shell around [`run`]: everything that decides what
//! is sent and what is printed lives here, so it can be tested without a
//! daemon ([`commands::Daemon`] is the seam).

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod error;
pub mod kv;
pub mod model;
pub mod monitor;
pub mod raw;
pub mod replay;
pub mod table;
pub mod target;
pub mod value;

use cli::Command;
use nlproto::transcript::{connection_text, Record, Recorder, Transcript};
use std::path::Path;

pub use cli::Cli;
pub use commands::{execute, Connection, Daemon};
pub use error::Error;

/// Runs a parsed command line against the daemon at `cli.socket` and
/// returns what goes to stdout (printed even when the command fails) and
/// whether it succeeded. With `--record`, the connection's messages are
/// appended to the transcript file whatever the outcome, so that refused
/// requests can be recorded too. `monitor` writes to stdout itself, as
/// notifications arrive, returns nothing and is not recorded.
pub fn run(cli: &Cli) -> (Vec<u8>, Result<(), Error>) {
    if let cli::Command::Monitor = cli.command {
        let result = monitor::subscribe(&cli.socket).and_then(|mut client| {
            monitor::run(&mut client, cli.json, &mut std::io::stdout().lock())
        });
        return (Vec::new(), result);
    }
    let recorder = cli.record.as_ref().map(|_| Recorder::new());
    let mut daemon = match &recorder {
        Some(r) => Connection::recording(&cli.socket, r.clone()),
        None => Connection::new(&cli.socket),
    };
    let (out, result) = match &cli.command {
        Command::Raw(args) => match daemon.client() {
            Ok(client) => {
                let (text, result) = raw::run(client, args, args.verbose);
                (text.into_bytes(), result)
            }
            Err(e) => (Vec::new(), Err(Error::daemon("connect")(e))),
        },
        _ => match execute(cli, &mut daemon) {
            Ok(out) => (out, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        },
    };
    // Close the connection before writing: everything was received.
    drop(daemon);
    if let (Some(path), Some(rec)) = (&cli.record, recorder) {
        if let Err(e) = append_transcript(path, &rec.records()) {
            return (out, result.and(Err(e)));
        }
    }
    (out, result)
}

/// Appends one connection's records to the transcript at `path`, creating
/// the file with its header when it does not exist. An existing file must
/// be a transcript this build reads, so that nothing is appended to the
/// wrong file.
pub fn append_transcript(path: &Path, records: &[Record]) -> Result<(), Error> {
    let shown = path.display();
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::local(format!(
                "record: read {shown}: {}",
                error::io_text(&e)
            )))
        }
    };
    let mut text = match existing {
        Some(t) if !t.trim().is_empty() => {
            Transcript::parse(&t).map_err(|e| {
                Error::local(format!(
                    "record: {shown} is not a transcript to append to ({e}); remove it or choose another file"
                ))
            })?;
            t
        }
        _ => format!("{}\n", Transcript::header()),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&connection_text(records));
    std::fs::write(path, text)
        .map_err(|e| Error::local(format!("record: write {shown}: {}", error::io_text(&e))))
}
