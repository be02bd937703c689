//! `overlayctl`: see the `tools` library for the commands.

use clap::Parser;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use tools::Cli;

fn main() -> ExitCode {
    // Usage errors exit with 2 from here, as clap does.
    let cli = Cli::parse();
    match tools::run(&cli) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&out).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that stopped early (`| head`) is not a failure.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("overlayctl: write output: {}", tools::error::io_text(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("overlayctl: {e}");
            ExitCode::FAILURE
        }
    }
}
