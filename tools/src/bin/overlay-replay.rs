//! `overlay-replay`: replays recorded transcripts against a running
//! overlayd and compares its answers byte for byte (see `tools::replay`
//! for what is normalised), or with `--bless` rewrites the recorded
//! answers with the daemon's.

use clap::Parser;
use nlproto::transcript::Transcript;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tools::replay::{replay, Options};

/// Replay transcripts recorded with `overlayctl --record` against a fresh
/// overlayd and compare every answer byte for byte.
#[derive(Debug, Parser)]
#[command(name = "overlay-replay", version)]
struct Args {
    /// The daemon's control socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "OVERLAYD_SOCKET",
        default_value = nlproto::DEFAULT_SOCKET_PATH
    )]
    socket: PathBuf,
    /// Rewrite each file's recorded answers with the daemon's (after a
    /// deliberate protocol change); review the diff before committing.
    #[arg(long)]
    bless: bool,
    /// Seconds to wait for each datagram.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Transcript files, replayed in order on the same daemon.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = Options {
        timeout: Duration::from_secs(args.timeout.max(1)),
        bless: args.bless,
    };
    let mut failed = 0;
    for file in &args.files {
        let shown = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("overlay-replay: {shown}: cannot read it: {e}");
                failed += 1;
                continue;
            }
        };
        let transcript = match Transcript::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("overlay-replay: {shown}: {e}");
                failed += 1;
                continue;
            }
        };
        match replay(&transcript, &args.socket, &options) {
            Ok(result) if args.bless => {
                let new = result.to_text();
                if new == text {
                    println!("{shown}: unchanged");
                } else if let Err(e) = std::fs::write(file, new) {
                    eprintln!("overlay-replay: {shown}: cannot write it: {e}");
                    failed += 1;
                } else {
                    println!("{shown}: blessed");
                }
            }
            Ok(_) => println!("{shown}: ok ({} records)", transcript.records().count()),
            Err(e) => {
                eprintln!("overlay-replay: {shown}: {e}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "overlay-replay: {failed} of {} files failed",
            args.files.len()
        );
        ExitCode::FAILURE
    }
}
