//! `overlayctl`: see the `tools` library for the commands.

use clap::Parser;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use tools::Cli;

fn main() -> ExitCode {
    // Usage errors exit with 2 from here, as clap does.
    let cli = Cli::parse();
    let (out, result) = tools::run(&cli);
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&out).and_then(|()| stdout.flush());
    match (result, written) {
        (Err(e), _) => {
            eprintln!("overlayctl: {e}");
            ExitCode::FAILURE
        }
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not a failure.
        (Ok(()), Err(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        (Ok(()), Err(e)) => {
            eprintln!("overlayctl: write output: {}", tools::error::io_text(&e));
            ExitCode::FAILURE
        }
    }
}
