//! `overlayd`: loads the plugins, restores the saved devices, then serves
//! the control socket until SIGTERM, SIGINT or SIGHUP.
//!
//! Under systemd (`Type=notify`), `READY=1` is sent to `$NOTIFY_SOCKET`
//! once the control socket is listening, the saved devices are restored
//! and the metrics endpoint (if any) is listening; `STOPPING=1` when a
//! signal starts the clean stop.

use clap::{CommandFactory, Parser, ValueEnum};
use datapath::{
    control::{handlers::Handlers, Server},
    dataplane::{probe::Offloads, Engine},
    devices::{persist::Persist, registry::Registry},
    metrics,
    plugins::Plugins,
};
use nix::unistd::{Gid, Group};
use sd_notify::NotifyState;
use std::{path::PathBuf, process::ExitCode, sync::Arc};

/// Where plugins are looked for when no directory is given.
const SYSTEM_PLUGIN_DIR: &str = "/usr/lib/overlayd/plugins";

/// What `--generate` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Generate {
    /// The manual page, overlayd(8), in roff.
    Man,
    /// The bash completion script.
    Bash,
    /// The zsh completion script.
    Zsh,
    /// The fish completion script.
    Fish,
}

#[derive(Parser, Debug)]
#[command(
    name = "overlayd",
    version,
    about = "Userspace overlay datapath daemon",
    long_about = "overlayd runs overlay devices: Ethernet links whose frames travel \
encapsulated (VXLAN, Geneve) over an underlay network, to destinations that \
lookup plugins decide. Plugins are .so files loaded at start. The daemon is \
driven over its control socket by generic-netlink messages; overlayctl(8) is \
its command line, and docs/protocol.md describes the protocol for other \
clients.\n\n\
Devices not created temporary are kept in STATE_DIR/state.json and restored \
at start. SIGTERM, SIGINT and SIGHUP stop the daemon cleanly: the state is \
written, every device deactivated (its TAP removed) and the socket removed. \
Under systemd (Type=notify) READY=1 is sent once the socket listens and the \
saved devices are restored. Every option can also be given by its \
environment variable (OVERLAYD_*), which is how the packaged service reads \
/etc/default/overlayd."
)]
struct Args {
    /// Control socket path.
    #[arg(
        long,
        env = "OVERLAYD_SOCKET",
        default_value = "/run/overlayd/overlayd.sock"
    )]
    socket: PathBuf,

    /// Directory of plugin `.so` files; repeatable, searched in order.
    /// Default: the directory of the overlayd executable, then
    /// /usr/lib/overlayd/plugins.
    #[arg(
        long = "plugin-dir",
        env = "OVERLAYD_PLUGIN_DIR",
        value_delimiter = ':'
    )]
    plugin_dirs: Vec<PathBuf>,

    /// Group owning the control socket (mode 0660), by name or number.
    /// Its members may connect; only uid 0 and processes holding
    /// CAP_NET_ADMIN may change anything, everyone else may only read.
    #[arg(
        long,
        env = "OVERLAYD_GROUP",
        value_name = "NAME|GID",
        default_value = "0"
    )]
    group: String,

    /// Directory of the state file that keeps devices across restarts.
    #[arg(
        long = "state-dir",
        env = "OVERLAYD_STATE_DIR",
        value_name = "DIR",
        default_value = "/var/lib/overlayd"
    )]
    state_dir: PathBuf,

    /// Lookup threads running the lookup plugins of dynamic devices (one
    /// more is started for each stuck in a plugin past its lookup timeout,
    /// up to 32 stuck).
    #[arg(
        long = "lookup-threads",
        env = "OVERLAYD_LOOKUP_THREADS",
        value_name = "N",
        default_value_t = datapath::target::lookup::DEFAULT_THREADS as u16,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    lookup_threads: u16,

    /// Control connections served at once; past it a new client is told
    /// so (EUSERS, with a message) and closed.
    #[arg(
        long = "max-connections",
        env = "OVERLAYD_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = datapath::control::DEFAULT_MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    max_connections: u32,

    /// Packet threads serving every device and underlay socket (default:
    /// one per CPU).
    #[arg(
        long = "packet-threads",
        env = "OVERLAYD_PACKET_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    packet_threads: Option<u16>,

    /// Keeps each packet thread polling for USECS microseconds after its
    /// last frame before it sleeps: the next frame then does not wait for
    /// the thread (and an idle processor) to wake, which cuts the latency
    /// of request/response traffic at the price of a busy processor while
    /// traffic flows. 0 (the default) turns it off.
    #[arg(
        long = "busy-poll",
        env = "OVERLAYD_BUSY_POLL",
        value_name = "USECS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000)
    )]
    busy_poll: u32,

    /// Turns an offload off, for debugging or to measure what it is worth:
    /// tso (super-frames from the TAP), udp-gso (one send per super-frame),
    /// udp-gro (several datagrams per read), coalesce (merged TCP segments
    /// written to the TAP). Repeatable, or comma-separated.
    #[arg(
        long = "disable-offload",
        env = "OVERLAYD_DISABLE_OFFLOAD",
        value_name = "NAME",
        value_delimiter = ','
    )]
    disable_offload: Vec<String>,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (Prometheus text,
    /// or OpenMetrics when the scraper asks for it);
    /// off unless given. An IPv6 address is written [ADDR]:PORT.
    #[arg(long, env = "OVERLAYD_METRICS", value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,

    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "OVERLAYD_LOG", default_value = "info")]
    log: String,

    /// Print the manual page or a shell's completion script, and exit.
    #[arg(long, value_name = "WHAT")]
    generate: Option<Generate>,
}

/// Prints what `--generate` asks for.
fn generate(what: Generate) -> ExitCode {
    let mut out = Vec::new();
    let mut cmd = Args::command();
    let written = match what {
        Generate::Man => clap_mangen::Man::new(cmd).section("8").render(&mut out),
        Generate::Bash | Generate::Zsh | Generate::Fish => {
            let shell = match what {
                Generate::Bash => clap_complete::Shell::Bash,
                Generate::Zsh => clap_complete::Shell::Zsh,
                _ => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "overlayd", &mut out);
            Ok(())
        }
    };
    match written.and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("overlayd: --generate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(what) = args.generate {
        return generate(what);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // Exit signals are read through a signalfd by the control loop; block
    // them before any thread starts so none of them takes the signal.
    if let Err(e) = datapath::sys::signal::block_exit_signals() {
        tracing::error!("cannot block exit signals: {e}");
        return ExitCode::FAILURE;
    }

    let dirs = if args.plugin_dirs.is_empty() {
        default_plugin_dirs()
    } else {
        args.plugin_dirs.clone()
    };
    let (plugins, refused) = Plugins::load(&dirs);
    for r in &refused {
        tracing::warn!("SKIP {r}");
    }
    for p in plugins.listing() {
        tracing::info!(
            "loaded {} plugin {} {} from {}",
            p.kind.as_str(),
            p.meta.name,
            p.meta.version,
            p.meta.path.display()
        );
    }
    if plugins.encaps.is_empty() || plugins.lookups.is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        tracing::warn!(
            "no {} plugin loaded from {}; devices cannot be created until one is installed",
            if plugins.encaps.is_empty() {
                "encapsulation"
            } else {
                "lookup"
            },
            shown.join(", ")
        );
    }

    let gid = match resolve_group(&args.group) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut server = match Server::bind(&args.socket, gid) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    server.set_max_connections(args.max_connections as usize);
    // Bound now, so that a taken or forbidden address stops the daemon
    // before it touches the state; served once the daemon is ready.
    let endpoint = match args.metrics.map(metrics::Endpoint::bind).transpose() {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // After the socket: a second daemon on the same socket stops above,
    // before it touches the state.
    let mut persist = match Persist::open(&args.state_dir) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut wanted = Offloads::default();
    for name in &args.disable_offload {
        if let Err(e) = wanted.disable(name.trim()) {
            tracing::error!("--disable-offload: {e}");
            return ExitCode::FAILURE;
        }
    }
    let offloads = wanted.probe();
    let threads = args.packet_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    raise_fd_limit();
    let engine = match Engine::start(
        threads,
        offloads,
        std::time::Duration::from_micros(args.busy_poll.into()),
    ) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("cannot start the packet threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("{threads} packet thread(s); offloads: {offloads}");
    let mut registry = Registry::with_engine(Arc::new(plugins), args.lookup_threads.into(), engine);
    registry.lookups().set_waker(server.waker());
    datapath::stats::on_health_change(server.waker());
    if let Some(state) = persist.load() {
        tracing::info!(
            "restoring {} device(s) from {}",
            state.devices.len(),
            persist.path().display()
        );
        persist.restore(&mut registry, state);
    }
    // Written once now, so that an unwritable state directory stops the
    // daemon here rather than losing changes later.
    if let Err(e) = persist.save(&registry) {
        tracing::error!("{e}; choose a writable directory with --state-dir");
        Handlers::new(registry).shutdown();
        return ExitCode::FAILURE;
    }
    tracing::info!(
        "listening on {} (group {}), state in {}",
        server.path().display(),
        gid,
        persist.path().display()
    );
    let mut handlers = Handlers::with_persist(registry, persist);
    handlers.set_server_stats(server.stats());
    if let Some(endpoint) = endpoint {
        let shown = endpoint
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        if let Err(e) = endpoint.serve(metrics::socket_path(server.path())) {
            tracing::error!("--metrics: cannot start the metrics thread: {e}");
            handlers.shutdown();
            return ExitCode::FAILURE;
        }
        tracing::info!("metrics at http://{shown}/metrics");
    }
    let status = format!("listening on {}", server.path().display());
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]) {
        tracing::warn!("cannot tell the service manager the daemon is ready: {e}");
    }
    let result = server.run(&mut handlers);
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    match result {
        Ok(sig) => {
            tracing::info!("{sig}: shutting down");
            handlers.shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("control loop failed: {e}");
            handlers.shutdown();
            ExitCode::FAILURE
        }
    }
}

/// Raises the limit of open descriptors to the hard limit: every active
/// device holds its backend's descriptor, so thousands of devices need
/// thousands of descriptors (1024 is the usual soft limit).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
        tracing::debug!("open-file limit {}", hard.max(soft));
    }
}

/// The group `--group` names: a number, or a name from the group database.
fn resolve_group(spec: &str) -> Result<Gid, String> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(spec) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!(
            "--group {spec}: no such group; give an existing group name or a numeric gid"
        )),
        Err(e) => Err(format!("--group {spec}: cannot look the group up: {e}")),
    }
}

fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
    {
        dirs.push(dir);
    }
    dirs.push(PathBuf::from(SYSTEM_PLUGIN_DIR));
    dirs
}
