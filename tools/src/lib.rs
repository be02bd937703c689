//! `overlayctl`, the administration CLI of `overlayd`.
//!
//! The binary is a thin shell around [`run`]: everything that decides what
//! is sent and what is printed lives here, so it can be tested without a
//! daemon ([`commands::Daemon`] is the seam).

#![warn(missing_docs)]

pub mod batch;
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
pub mod watch;

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
    if let Some(path) = &cli.batch {
        return (Vec::new(), run_batch(cli, path));
    }
    if let Some(Command::Show {
        stats: true,
        interval: Some(interval),
        count,
        link,
        ..
    }) = &cli.command
    {
        let mut daemon = Connection::new(&cli.socket);
        let result = watch::run(
            &mut daemon,
            link.as_deref(),
            *interval,
            *count,
            cli.json,
            &mut std::io::stdout().lock(),
        );
        return (Vec::new(), result);
    }
    if let Some(cli::Command::Monitor) = cli.command {
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
        Some(Command::Raw(args)) => match daemon.client() {
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

/// `-b FILE`: reads the batch (standard input for `-`) and runs it over
/// one connection, writing each line's output and errors as they come.
fn run_batch(cli: &Cli, path: &Path) -> Result<(), Error> {
    let shown = path.display();
    let text = if path == Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)
            .map(|_| t)
            .map_err(|e| {
                Error::local(format!("-b -: read standard input: {}", error::io_text(&e)))
            })?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::local(format!("-b {shown}: {}", error::io_text(&e))))?
    };
    let mut client =
        nlproto::client::Client::connect(&cli.socket).map_err(|e| Error::daemon("connect")(e))?;
    let failed = batch::run(
        &mut client,
        &text,
        cli.json,
        cli.force,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    match failed {
        0 => Ok(()),
        1 => Err(Error::local(format!("-b {shown}: 1 line failed"))),
        n => Err(Error::local(format!("-b {shown}: {n} lines failed"))),
    }
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
