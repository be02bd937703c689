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
pub mod table;
pub mod value;

pub use cli::Cli;
pub use commands::{execute, Connection, Daemon};
pub use error::Error;

/// Runs a parsed command line against the daemon at `cli.socket` and
/// returns what goes to stdout. `monitor` writes to stdout itself, as
/// notifications arrive, and returns nothing.
pub fn run(cli: &Cli) -> Result<Vec<u8>, Error> {
    if let cli::Command::Monitor = cli.command {
        let mut client = monitor::subscribe(&cli.socket)?;
        monitor::run(&mut client, cli.json, &mut std::io::stdout().lock())?;
        return Ok(Vec::new());
    }
    let mut daemon = Connection::new(&cli.socket);
    execute(cli, &mut daemon)
}
