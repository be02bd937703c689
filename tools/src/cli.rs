//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Where `overlayd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/overlayd/overlayd.sock";

/// Administer overlayd's overlay devices and plugins.
#[derive(Debug, Parser)]
#[command(
    name = "overlayctl",
    version,
    propagate_version = true,
    subcommand_required = false
)]
pub struct Cli {
    /// The daemon's control socket.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "OVERLAYD_SOCKET",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    /// Print a JSON array of objects instead of a table.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,

    /// Record every message sent to and received from the daemon into this
    /// transcript file, appended as one connection (the file is created
    /// with its header when missing). Replay it with overlay-replay.
    #[arg(long, global = true, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Run the commands of FILE (`-` for standard input), one per line,
    /// over one connection, as `ip -batch` does; lines are numbered in
    /// errors. Stops at the first error unless --force.
    #[arg(short = 'b', long = "batch", value_name = "FILE")]
    pub batch: Option<PathBuf>,

    /// With -b: run every line even after an error (the exit status still
    /// says a line failed). `-force` is accepted too, as ip spells it.
    #[arg(long, requires = "batch")]
    pub force: bool,

    /// What to do (not with -b, whose file holds the commands).
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Refuses a command line with both a batch and a command, or with
    /// neither, as clap refuses other usage errors (exit status 2).
    pub fn check(&self) -> Result<(), clap::Error> {
        use clap::{error::ErrorKind, CommandFactory};
        match (&self.batch, &self.command) {
            (Some(_), Some(_)) => Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                "-b runs the commands of its file: give no command with it",
            )),
            (None, None) => Err(Cli::command().error(
                ErrorKind::MissingSubcommand,
                "a command is needed (or -b FILE)",
            )),
            _ => Ok(()),
        }
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Create an overlay device.
    Create(CreateArgs),
    /// Activate a device (every required property must be set).
    Activate {
        /// The device.
        link: String,
    },
    /// Delete a device, deactivating it first when active.
    Delete {
        /// The device.
        link: String,
    },
    /// Set properties of a device.
    PropSet {
        /// The device.
        link: String,
        /// The values to set.
        #[arg(value_name = "KEY=VALUE", required = true)]
        assignments: Vec<String>,
    },
    /// Show properties of a device: all of them, or the ones named.
    PropGet {
        /// The device.
        link: String,
        /// Property names.
        #[arg(value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Show devices: all of them, or the one named.
    Show {
        /// Show each device's fault status and its reason.
        #[arg(short = 'f', long)]
        faults: bool,
        /// Show each device's packet and byte counts and its drops (the sum
        /// of every drop_* counter); -j adds every counter, and those of the
        /// device's mux.
        #[arg(short = 's', long, conflicts_with = "faults")]
        stats: bool,
        /// With -s: also list every counter of the device by name, then the
        /// mux's endpoint and counters.
        #[arg(short = 'v', long, requires = "stats")]
        verbose: bool,
        /// Show each active device's target cache: every answered entry,
        /// its MAC and where its frames go (`drop`, `IP:PORT`,
        /// `[IPv6]:PORT`, an IP alone when the device needs no port); a
        /// point-mode device shows its one target as `*:*:*:*:*:*`.
        #[arg(short = 't', long, conflicts_with_all = ["faults", "stats", "verbose"])]
        target: bool,
        /// With -s: print each device's rates per second (packets, bits,
        /// drops) every SECONDS until interrupted, as vmstat does; -j gives
        /// one JSON object per interval.
        #[arg(short = 'i', long, value_name = "SECONDS", requires = "stats",
              value_parser = crate::watch::parse_interval)]
        interval: Option<std::time::Duration>,
        /// With -i: stop after COUNT intervals.
        #[arg(short = 'c', long, value_name = "COUNT", requires = "interval")]
        count: Option<u64>,
        /// The device.
        link: Option<String>,
    },
    /// Set where a dynamic-mode device sends frames for a MAC, or drop them.
    ///
    /// The destination must have exactly the parts the device needs
    /// (asked of the daemon before anything is set): IP and port for VXLAN
    /// and Geneve. A point-mode device has no cache entries to set.
    CacheSet {
        /// The device.
        link: String,
        /// The entry: MAC=IP:PORT, MAC=[IPv6]:PORT, MAC=IP when the device
        /// needs no port, or MAC=drop. MACs are six hexadecimal bytes
        /// separated by ':' or '-'.
        #[arg(value_name = "MAC=DESTINATION")]
        entry: String,
    },
    /// Show what a device's target cache answers for a MAC.
    ///
    /// A point-mode device answers its one destination for every MAC.
    CacheGet {
        /// The device.
        link: String,
        /// The MAC (six hexadecimal bytes separated by ':' or '-').
        mac: String,
    },
    /// Clear what a device's target cache answers for a MAC.
    ///
    /// The next frame to that MAC asks the lookup again.
    CacheRemove {
        /// The device.
        link: String,
        /// The MAC (six hexadecimal bytes separated by ':' or '-').
        mac: String,
    },
    /// Clear every answer of a device's target cache.
    CacheFlush {
        /// The device.
        link: String,
    },
    /// Show the lookup service's counters, over every dynamic-mode device:
    /// lookup requests raised, answers applied (from lookup plugins and
    /// external servers), timeouts, answers of lookup plugins that came
    /// too late, and the requests waiting to be taken now. -j adds every
    /// counter by name, as numbers.
    LookupStats,
    /// Show the daemon itself: its packet threads, the offloads of its
    /// packet path in use (what the kernel supports, less what
    /// --disable-offload turned off), how long its packet threads poll
    /// after their last frame (overlayd --busy-poll) and the control
    /// connections open now;
    /// -j adds each offload as on or off and the control server's counters.
    Status,
    /// Show the loaded plugins.
    Plugins {
        /// Also list each property's type, permissions, default and
        /// possible values.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Send one request of any family and command, built from names and
    /// typed values, and print each message of the answer on a line.
    Raw(RawArgs),
    /// Print the daemon's notifications as they arrive, one line each
    /// (one JSON object per line with -j): devices created, activated,
    /// deactivated and deleted, properties set, status changes, target
    /// cache entries set, removed and flushed. When the
    /// daemon reports that notifications were lost, print a `lost` line and
    /// every current device, then go on. Runs until interrupted.
    Monitor,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page, overlayctl(8) (roff, for man -l -).
    Man,
}

/// `create`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The encapsulation plugin (e.g. vxlan).
    #[arg(short = 'e', long, value_name = "ENCAP")]
    pub encap: String,
    /// The lookup plugin (e.g. direct).
    #[arg(short = 's', long, value_name = "SEARCH")]
    pub search: String,
    /// The virtual network id (decimal or 0x hex).
    // Hyphen values are let through so that a negative id gets the value
    // parser's clear message rather than clap's "unexpected argument".
    #[arg(short = 'v', long, value_name = "VNETID", allow_hyphen_values = true)]
    pub vnetid: String,
    /// Initial property values, applied atomically with the create.
    #[arg(short = 'p', long = "prop", value_name = "KEY=VALUE[,KEY=VALUE...]")]
    pub props: Vec<String>,
    /// Temporary: the daemon does not save the device, so it is gone after
    /// the daemon restarts (like `dladm create-overlay -t`).
    #[arg(short = 't', long)]
    pub temporary: bool,
    /// The new device's name.
    pub link: String,
}

/// `raw`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct RawArgs {
    /// Send a dump request (NLM_F_DUMP) and print every part.
    #[arg(short = 'd', long)]
    pub dump: bool,
    /// Leave NLM_F_ACK out: a transaction then ends with its reply.
    #[arg(long)]
    pub no_ack: bool,
    /// The genetlink version to send (default: the family's).
    #[arg(long = "genl-version", value_name = "N")]
    pub genl_version: Option<u8>,
    /// Annotate every byte of each message instead of one line each.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// The family: a name (nlctrl, overlay_handle, overlay) or an id.
    pub family: String,
    /// The command: its name in the family (CREATE, GETFAMILY) or a number.
    pub command: String,
    /// Attributes, each NAME=VALUE with NAME as the protocol document
    /// spells it (or a number). Values are typed by the family's policy:
    /// numbers for u8..u64, text for strings, `hex:0a0b...` for anything
    /// (binary and nested values, deliberately bad values).
    #[arg(value_name = "ATTR=VALUE")]
    pub attrs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("overlayctl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create() {
        let cli = parse(&[
            "create", "-e", "vxlan", "-s", "direct", "-v", "42", "-p", "a=1,b=2", "-p", "c=3",
            "ov0",
        ])
        .unwrap();
        let Command::Create(c) = cli.command.unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.encap.as_str(), c.search.as_str(), c.vnetid.as_str()),
            ("vxlan", "direct", "42")
        );
        assert_eq!(c.props, ["a=1,b=2", "c=3"]);
        assert_eq!(c.link, "ov0");
        assert!(!c.temporary);
        let cli = parse(&["create", "-t", "-e", "x", "-s", "y", "-v", "1", "ov1"]).unwrap();
        let Command::Create(c) = cli.command.unwrap() else {
            panic!()
        };
        assert!(c.temporary);
    }

    #[test]
    fn create_needs_its_options() {
        let e = parse(&["create", "-e", "vxlan", "-v", "1", "ov0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn global_options_anywhere() {
        let cli = parse(&["show", "-j", "--socket", "/tmp/s", "ov0"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        let cli = parse(&["--json", "plugins", "-v"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command.unwrap(),
            Command::Plugins { verbose: true }
        ));
    }

    #[test]
    fn show_faults() {
        let cli = parse(&["show", "-f"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                faults: true,
                stats: false,
                verbose: false,
                target: false,
                link: None,
                ..
            }
        ));
    }

    #[test]
    fn show_stats() {
        let cli = parse(&["show", "-s", "ov0"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                faults: false,
                stats: true,
                verbose: false,
                target: false,
                link: Some(ref l),
                ..
            } if l == "ov0"
        ));
        let cli = parse(&["show", "--stats", "--verbose"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                stats: true,
                verbose: true,
                link: None,
                ..
            }
        ));
        let cli = parse(&["show", "-sv", "-j"]).unwrap();
        assert!(cli.json);
        // -s and -f are different views; -v only details -s.
        assert_eq!(parse(&["show", "-s", "-f"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["show", "-v"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn show_target() {
        let cli = parse(&["show", "-t", "ov0"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                target: true,
                faults: false,
                stats: false,
                link: Some(ref l),
                ..
            } if l == "ov0"
        ));
        let cli = parse(&["show", "--target", "-j"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                target: true,
                link: None,
                ..
            }
        ));
        for bad in [
            ["show", "-t", "-f"],
            ["show", "-t", "-s"],
            ["show", "-t", "-v"],
        ] {
            assert_eq!(parse(&bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn cache_commands() {
        let cli = parse(&["cache-set", "ov0", "2:0:0:0:0:2=drop"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::CacheSet { ref link, ref entry } if link == "ov0" && entry == "2:0:0:0:0:2=drop"
        ));
        // One entry per command, so a refusal never leaves some set.
        assert_eq!(
            parse(&["cache-set", "ov0", "a=drop", "b=drop"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse(&["cache-set", "ov0"]).unwrap_err().exit_code(), 2);
        let cli = parse(&["cache-get", "-j", "ov0", "02-00-00-00-00-02"]).unwrap();
        assert!(cli.json);
        assert!(
            matches!(cli.command.unwrap(), Command::CacheGet { ref mac, .. } if mac == "02-00-00-00-00-02")
        );
        assert!(matches!(
            parse(&["cache-remove", "ov0", "x"])
                .unwrap()
                .command
                .unwrap(),
            Command::CacheRemove { .. }
        ));
        assert!(matches!(
            parse(&["cache-flush", "ov0"]).unwrap().command.unwrap(),
            Command::CacheFlush { ref link } if link == "ov0"
        ));
        assert_eq!(parse(&["cache-flush"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn prop_set_needs_an_assignment() {
        assert_eq!(parse(&["prop-set", "ov0"]).unwrap_err().exit_code(), 2);
        let cli = parse(&["prop-set", "ov0", "mtu=1400", "x=-1"]).unwrap();
        let Command::PropSet { assignments, .. } = cli.command.unwrap() else {
            panic!()
        };
        assert_eq!(assignments, ["mtu=1400", "x=-1"]);
    }

    #[test]
    fn record_and_raw() {
        let cli = parse(&[
            "--record",
            "/tmp/t.nlt",
            "raw",
            "overlay",
            "LIST",
            "-d",
            "NAME=ov0",
        ])
        .unwrap();
        assert_eq!(cli.record, Some(PathBuf::from("/tmp/t.nlt")));
        let Command::Raw(r) = cli.command.unwrap() else {
            panic!()
        };
        assert!(r.dump && !r.no_ack && !r.verbose);
        assert_eq!((r.family.as_str(), r.command.as_str()), ("overlay", "LIST"));
        assert_eq!(r.attrs, ["NAME=ov0"]);
    }

    #[test]
    fn monitor() {
        let cli = parse(&["monitor", "-j"]).unwrap();
        assert!(cli.json);
        assert!(matches!(cli.command.unwrap(), Command::Monitor));
        assert_eq!(parse(&["monitor", "ov0"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn batch_and_force() {
        let cli = parse(&["-b", "cmds.txt", "--force"]).unwrap();
        assert_eq!(cli.batch, Some(PathBuf::from("cmds.txt")));
        assert!(cli.force && cli.command.is_none());
        let cli = parse(&["-j", "-b", "-"]).unwrap();
        assert!(cli.json && !cli.force);
        assert!(cli.check().is_ok());
        // A batch holds its commands; --force means nothing without one.
        let both = parse(&["-b", "f", "show"]).unwrap().check().unwrap_err();
        assert_eq!(both.exit_code(), 2);
        assert_eq!(parse(&["--force", "show"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&[]).unwrap().check().unwrap_err().exit_code(), 2);
    }

    #[test]
    fn show_interval() {
        let cli = parse(&["show", "-s", "-i", "0.5", "-c", "3", "ov0"]).unwrap();
        assert!(matches!(
            cli.command.unwrap(),
            Command::Show {
                stats: true,
                interval: Some(d),
                count: Some(3),
                ..
            } if d == std::time::Duration::from_millis(500)
        ));
        // Rates are of counters: -i needs -s, -c needs -i.
        assert_eq!(parse(&["show", "-i", "1"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["show", "-s", "-c", "1"]).unwrap_err().exit_code(),
            2
        );
        let e = parse(&["show", "-s", "-i", "0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not an interval"), "{e}");
    }

    #[test]
    fn prop_get_keys_optional() {
        let cli = parse(&["prop-get", "ov0"]).unwrap();
        assert!(
            matches!(cli.command.unwrap(), Command::PropGet { ref keys, .. } if keys.is_empty())
        );
    }
}
