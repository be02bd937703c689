//! What the fuzz targets share: the daemon's request side over a real
//! registry with the real plugins loaded, in a network namespace of its
//! own, and the plugins' directory.
//!
//! The targets are in `fuzz_targets/`; `scripts/fuzz` builds the plugins,
//! makes the seed corpora and runs every target. docs/reliability.md says
//! what each covers.

use datapath::{
    control::handlers::Handlers,
    devices::registry::{DevRef, Registry},
    plugins::Plugins,
};
use std::{
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

/// The environment variable naming the directory of the plugin `.so`
/// files the targets load (`scripts/fuzz` sets it).
pub const PLUGIN_DIR_VAR: &str = "OVERLAYD_FUZZ_PLUGINS";

/// The directory of the real plugins, from [`PLUGIN_DIR_VAR`].
pub fn plugin_dir() -> PathBuf {
    match std::env::var_os(PLUGIN_DIR_VAR) {
        Some(d) => PathBuf::from(d),
        None => panic!(
            "{PLUGIN_DIR_VAR} is not set: point it at the directory of the built plugins \
             (target/debug after cargo build --workspace), or run scripts/fuzz"
        ),
    }
}

/// Moves the process's main thread (and the threads it starts from now
/// on) into a network namespace of its own, so that the devices a target
/// activates create their TAPs and underlay sockets where nothing else
/// sees them. Needs root; once per process.
pub fn private_netns() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: unshare(2) only changes the calling thread's namespace.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert!(
            r == 0,
            "cannot enter a network namespace of its own (unshare: {}): this target \
             activates devices, which needs root",
            std::io::Error::last_os_error()
        );
        // The underlay addresses the golden transcripts' devices listen
        // on (those of the integration tests), on a veth pair, so that
        // their activation gets as far as it does in the tests. A child
        // process starts in the namespace of the thread that forks it.
        let mut script = String::from(
            "ip link set lo up && ip link add ovf0 type veth peer name ovf1 \
             && ip link set ovf1 up && ip link set ovf0 up",
        );
        for a in UNDERLAY_ADDRS {
            script += &format!(" && ip addr add {a} dev ovf0 nodad");
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "setting up the fuzz namespace's underlay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The integration tests' underlay addresses (`tests/src/lib.rs`).
const UNDERLAY_ADDRS: [&str; 5] = [
    "10.0.0.1/24",
    "10.0.0.9/24",
    "10.200.0.1/24",
    "2001:db8::1/64",
    "2001:db8::9/64",
];

/// The plugins of [`plugin_dir`], loaded once; panics unless the four
/// real plugins are there.
pub fn plugins() -> Arc<Plugins> {
    static PLUGINS: OnceLock<Arc<Plugins>> = OnceLock::new();
    PLUGINS
        .get_or_init(|| {
            let (plugins, _refused) = Plugins::load(&[plugin_dir()]);
            for name in ["vxlan", "geneve"] {
                assert!(
                    plugins.encap(name).is_some(),
                    "no {name} plugin in {:?}",
                    plugin_dir()
                );
            }
            for name in ["direct", "files"] {
                assert!(
                    plugins.lookup(name).is_some(),
                    "no {name} plugin in {:?}",
                    plugin_dir()
                );
            }
            Arc::new(plugins)
        })
        .clone()
}

/// The daemon's request side, over a registry of the real plugins, in
/// the private network namespace; one per process.
pub fn handlers() -> &'static Mutex<Handlers> {
    static HANDLERS: OnceLock<Mutex<Handlers>> = OnceLock::new();
    HANDLERS.get_or_init(|| {
        private_netns();
        Mutex::new(Handlers::new(Registry::with_lookup_threads(plugins(), 1)))
    })
}

/// Deletes every device and drops the recorded events, so that each input
/// starts from an empty registry.
pub fn reset(registry: &mut Registry) {
    let ids: Vec<u32> = registry.devices().map(|d| d.linkid).collect();
    for id in ids {
        let _ = registry.delete(&DevRef::LinkId(id));
    }
    let _ = registry.take_events();
}

/// Each encapsulation's receive side: underlay datagrams through the
/// plugin's `decap` and the daemon's checks after it
/// (`dataplane::rx::decap`), then, for the inner frames it accepts, the
/// receive coalescing a device's lane does (`tcp_ok`, `coalesce::Run`).
/// `data` holds datagrams, each preceded by its length (two bytes,
/// big-endian).
pub fn receive(plugin: &datapath::plugins::EncapPlugin, data: &[u8]) {
    use datapath::dataplane::{
        offload::coalesce::Run,
        rx::{decap, tcp_ok, Decap},
    };
    let mut rest = data;
    let mut run: Option<Run> = None;
    let mut segs = 0;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let pkt = &rest[2..2 + n];
        rest = &rest[2 + n..];
        let (vnetid, inner) = match decap(plugin, pkt) {
            Decap::Frame { vnetid, inner } => (vnetid, inner),
            Decap::Bad { panicked } => {
                assert!(panicked.is_none(), "decap panicked: {panicked:?}");
                continue;
            }
            Decap::Oam | Decap::Short => continue,
        };
        assert!(vnetid < 1 << 24, "a 24-bit id read as {vnetid}");
        assert!(inner.end == pkt.len() && inner.len() >= 14);
        let f = &pkt[inner];
        // As a lane does: join the run, or end it and start another.
        if tcp_ok(f) {
            if let Some(r) = run.as_mut() {
                if let Some(p) = r.push(f) {
                    assert!(p.end <= f.len() && p.start <= p.end);
                    segs += 1;
                    continue;
                }
            }
            finish(&mut run, segs);
            if let Some((r, p)) = Run::start(f) {
                assert!(p.end <= f.len() && p.start <= p.end);
                run = Some(r);
                segs = 1;
                continue;
            }
        }
        finish(&mut run, segs);
    }
    finish(&mut run, segs);
}

/// Ends a run: its merged header must describe what was merged.
fn finish(run: &mut Option<datapath::dataplane::offload::coalesce::Run>, segs: usize) {
    if let Some(mut r) = run.take() {
        assert_eq!(r.segs(), segs);
        let (h, hdr) = r.finish();
        assert!(!hdr.is_empty());
        if segs > 1 {
            assert!(h.is_gso(), "a run of {segs} segments written without GSO");
        }
    }
}
