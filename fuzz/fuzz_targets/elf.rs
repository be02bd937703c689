//! The plugin loader's checks of a plugin file before `dlopen`: bytes
//! written to a file, then checked (`loader::check_file`, the ELF
//! structure: class, machine, every loadable and dynamic segment within
//! the file). A file cut short is the case that once brought the daemon
//! down, so inputs of the second kind take a real plugin cut where the
//! input says and go through the whole loader (`loader::scan`): the cut
//! file must be refused with a reason, or load, never crash.
//!
//! Input: a mode byte; mode even: the file's bytes; mode odd: four bytes,
//! the length to cut a real plugin file to (modulo its size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay_plugin_abi::loader;
use std::{path::PathBuf, sync::OnceLock};

fn dir() -> &'static PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("overlayd-fuzz-elf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// A real plugin file: the `direct` lookup, the smallest.
fn plugin() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let path = overlayd_fuzz::plugin_dir().join("liboverlay_direct.so");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = dir();
    if mode & 1 == 0 {
        let path = dir.join("input.so");
        std::fs::write(&path, rest).unwrap();
        if let Err(reason) = loader::check_file(&path) {
            assert!(!reason.is_empty() && !reason.contains('\0'), "{reason:?}");
        }
        return;
    }
    let Some(cut) = rest.get(..4) else {
        return;
    };
    let whole = plugin();
    let cut = u32::from_be_bytes(cut.try_into().unwrap()) as usize % whole.len();
    // The dynamic loader keeps a library loaded under its name and does
    // not read a file of that name again: names vary with the length so
    // that cuts that pass the checks are loaded too, from a bounded set of
    // names so that what stays loaded is bounded.
    let sub = dir.join("cut");
    std::fs::create_dir_all(&sub).unwrap();
    for e in std::fs::read_dir(&sub).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    std::fs::write(sub.join(format!("cut-{}.so", cut % 64)), &whole[..cut]).unwrap();
    let scan = loader::scan(&[sub]);
    for r in &scan.refused {
        assert!(!r.reason.is_empty() && !r.reason.contains('\0'), "{r}");
    }
});
