//! The built `.so` loads through the daemon's loader, registers as the
//! `files` lookup plugin, and answers through the ABI.

use abi_stable::std_types::{RSlice, RStr};
use overlay_plugin_abi::{
    dest,
    loader::{self, PluginObject},
    prop::{ip_to_in6, PropValue},
    Action, LookupRequest, PluginKind, PropType, MODE_DYNAMIC, REQ_F_FLOOD,
};
use std::path::{Path, PathBuf};

/// The library cargo built next to the other plugins.
fn built_library() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join(profile)
        .join("liboverlay_files.so");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

#[test]
fn the_library_registers_and_answers_through_the_abi() {
    let plugin = loader::load(&built_library()).expect("the plugin loads");
    assert_eq!(plugin.name, "files");
    assert_eq!(plugin.kind(), PluginKind::LOOKUP);
    let PluginObject::Lookup {
        plugin: lookup,
        info,
    } = &plugin.object
    else {
        panic!("files is a lookup plugin");
    };
    assert_eq!(info.modes, MODE_DYNAMIC);
    assert_eq!(info.dest, dest::IP | dest::PORT);
    let names: Vec<&str> = plugin
        .properties()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "files/config",
            "files/default_port",
            "files/misses",
            "files/arp",
            "files/ndp",
            "files/dhcp",
            "files/dropped"
        ]
    );
    let refused = lookup.new_device(dest::ETHERNET, 1).err().expect("ENOTSUP");
    assert_eq!(refused.errno, libc::ENOTSUP);

    let dir = std::env::temp_dir().join(format!("overlay-files-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts.json");
    std::fs::write(
        &hosts,
        r#"{ "02:00:5e:10:00:01": { "ip": "198.51.100.11", "arp": "192.0.2.11" } }"#,
    )
    .unwrap();
    let dev = lookup.new_device(dest::IP | dest::PORT, 7).unwrap();
    assert_eq!(dev.mode(), MODE_DYNAMIC);
    let path = PropValue::Str(hosts.display().to_string()).encode();
    dev.setprop(RStr::from_str("files/config"), RSlice::from_slice(&path))
        .unwrap();
    dev.start().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut frame = vec![2, 0, 0x5e, 0x10, 0, 1, 2, 0, 0x5e, 0x10, 0, 2, 8, 0];
    frame.extend_from_slice(&[0x45; 46]);
    let req = LookupRequest::parse(7, &frame, REQ_F_FLOOD).unwrap();
    let answer = dev.lookup(&req, RSlice::from_slice(&frame)).unwrap();
    assert_eq!(answer.action, Action::RESPOND);
    assert_eq!(
        answer.points[0].ip,
        ip_to_in6("198.51.100.11".parse().unwrap())
    );
    assert_eq!(answer.points[0].port, 4789);

    frame[5] = 9;
    let req = LookupRequest::parse(7, &frame, 0).unwrap();
    let answer = dev.lookup(&req, RSlice::from_slice(&frame)).unwrap();
    assert_eq!(answer.action, Action::DROP);
    let misses = dev.getprop(RStr::from_str("files/misses")).unwrap();
    assert_eq!(
        PropValue::decode(PropType::UINT, &misses).unwrap(),
        PropValue::Uint(1)
    );
    dev.stop();
}
