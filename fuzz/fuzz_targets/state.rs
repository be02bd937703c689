//! The state file loader: `state.json` as found in the state directory,
//! read and checked (`Persist::load`, a bad file moved aside), then
//! restored into a real registry with the real plugins (devices created
//! again, properties set, active ones activated in a private network
//! namespace), as the daemon does at start.
//!
//! Input: the file's bytes.
#![no_main]

use datapath::devices::persist::{Persist, STATE_FILE};
use libfuzzer_sys::fuzz_target;
use std::{path::PathBuf, sync::OnceLock};

fn state_dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        std::env::temp_dir().join(format!("overlayd-fuzz-state-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut h = overlayd_fuzz::handlers().lock().unwrap();
    let dir = state_dir();
    let mut persist = Persist::open(dir).expect("the state directory opens");
    std::fs::write(dir.join(STATE_FILE), data).unwrap();
    if let Some(state) = persist.load() {
        persist.restore(h.registry(), state);
        // What was restored is written back as the daemon writes it, and
        // reads again.
        persist
            .save(h.registry())
            .expect("the state file is written");
        let again = std::fs::read(dir.join(STATE_FILE)).unwrap();
        datapath::devices::persist::parse(&again).expect("a file the daemon wrote parses");
    }
    drop(persist);
    overlayd_fuzz::reset(h.registry());
    // Files moved aside pile up otherwise.
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".corrupt-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
});
