//! The VXLAN receive side: underlay datagrams through the plugin's
//! `decap` and everything the daemon does after it up to the device's
//! lane ([`overlayd_fuzz::receive`]).
//!
//! Input: datagrams, each preceded by its length (two bytes, big-endian).
#![no_main]

use datapath::plugins::EncapPlugin;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn plugin() -> &'static EncapPlugin {
    static P: OnceLock<EncapPlugin> = OnceLock::new();
    P.get_or_init(|| EncapPlugin::linked(|| overlay_vxlan::Vxlan))
}

fuzz_target!(|data: &[u8]| overlayd_fuzz::receive(plugin(), data));
