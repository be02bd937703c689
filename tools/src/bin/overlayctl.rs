//! `overlayctl`: see the `tools` library for the commands.

use clap::Parser;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use tools::Cli;

fn main() -> ExitCode {
    // Usage errors exit with 2 from here, as clap does.
    // `ip -batch FILE -force` spells the option with one dash.
    let cli =
        Cli::parse_from(
            std::env::args_os().map(|a| if a == "-force" { "--force".into() } else { a }),
        );
    if let Err(e) = cli.check() {
        e.exit();
    }
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
