//! The files lookup plugin: its hosts-file parser (the file read when the
//! instance starts) and its answers to frames, the ARP, NDP and DHCP
//! proxies among them, as the lookup service asks them; and the reader of
//! DHCP servers' replies that lease learning uses (`proxy::dhcp_reply`).
//!
//! Input: the length of the hosts file (two bytes, big-endian), the file,
//! a flags byte (bit 0: the device floods; bit 1: IP-only destinations),
//! then the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use overlay_files::{Files, CONFIG};
use overlay_plugin_abi::{
    dest,
    kit::{Lookup, LookupInstance},
    proxy,
    prop::PropValue,
    Action, LookupRequest, REQ_F_FLOOD,
};
use std::{path::PathBuf, sync::OnceLock};

fn hosts_path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("overlayd-fuzz-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("hosts.json")
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n = usize::from(u16::from_be_bytes([data[0], data[1]])).min(data.len() - 2);
    let (hosts, rest) = data[2..].split_at(n);
    let Some((&flags, frame)) = rest.split_first() else {
        return;
    };
    // A frame from the network, as a learning plugin reads it.
    let _ = proxy::dhcp_reply(frame);
    let kinds = if flags & 2 != 0 {
        dest::IP
    } else {
        dest::IP | dest::PORT
    };
    let dev = Files.new_instance(kinds, 42).unwrap();
    let path = hosts_path();
    std::fs::write(path, hosts).unwrap();
    let value = PropValue::Str(path.display().to_string()).encode();
    dev.setprop(CONFIG, &value).unwrap();
    if dev.start().is_err() {
        return;
    }
    let req_flags = if flags & 1 != 0 { REQ_F_FLOOD } else { 0 };
    if let Some(req) = LookupRequest::parse(42, frame, req_flags) {
        let answer = dev
            .lookup(&req, frame)
            .expect("a started files instance answers");
        match answer.action {
            Action::RESPOND => assert_eq!(answer.points.len(), 1),
            Action::INJECT | Action::RESEND => {
                assert!(
                    answer.frame.len() >= 14,
                    "a proxied frame without an Ethernet header"
                )
            }
            _ => {}
        }
    }
    // Reading the file again gives the same table: nothing changed.
    dev.setprop(CONFIG, &value).unwrap();
    assert!(
        dev.take_stale().is_empty(),
        "a reload of the same file changed entries"
    );
    dev.stop();
});
