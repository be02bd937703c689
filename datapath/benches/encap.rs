//! Per-frame cost of encapsulation and decapsulation through the loaded
//! VXLAN plugin (the `.so`, called across the ABI as the daemon calls it),
//! next to a memcpy of the same frame, and the flow hash of the outer
//! source port.
//!
//! Run with `bench/run-criterion` (it builds the plugins first), or
//! `cargo build --release -p encap-vxlan && cargo bench -p datapath`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datapath::mux;
use overlay_plugin_abi::{
    abi_stable::std_types::{RSlice, RSliceMut},
    loader::{self, PluginObject},
};
use std::{hint::black_box, path::PathBuf};

fn plugin_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("liboverlay_vxlan.so");
        if p.exists() {
            return p;
        }
    }
    panic!("liboverlay_vxlan.so not built: run cargo build --release -p encap-vxlan first");
}

fn frame(len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| i as u8).collect();
    f[12] = 0x08;
    f[13] = 0x00;
    f[14] = 0x45;
    f[23] = 6;
    f
}

fn bench(c: &mut Criterion) {
    let plugin = loader::load(&plugin_path()).expect("the vxlan plugin loads");
    let PluginObject::Encap { plugin, .. } = plugin.object else {
        panic!("not an encapsulation plugin");
    };
    let dev = plugin.new_device().into_result().unwrap();
    let mut g = c.benchmark_group("per_frame");
    for len in [64usize, 1400] {
        let f = frame(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("encap_vxlan", len), &f, |b, f| {
            let mut hdr = [0u8; 64];
            b.iter(|| {
                dev.encap(
                    black_box(42),
                    RSlice::from_slice(black_box(f)),
                    RSliceMut::from_mut_slice(&mut hdr),
                )
                .unwrap()
            })
        });
        let mut pkt = vec![0u8; 8];
        dev.encap(
            42,
            RSlice::from_slice(&f),
            RSliceMut::from_mut_slice(&mut pkt),
        )
        .unwrap();
        pkt.extend_from_slice(&f);
        g.bench_with_input(BenchmarkId::new("decap_vxlan", len), &pkt, |b, p| {
            b.iter(|| plugin.decap(RSlice::from_slice(black_box(p))).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("memcpy", len), &f, |b, f| {
            let mut out = vec![0u8; f.len()];
            b.iter(|| {
                out.copy_from_slice(black_box(f));
                black_box(&out);
            })
        });
        g.bench_with_input(BenchmarkId::new("source_port_hash", len), &f, |b, f| {
            b.iter(|| mux::source_port(black_box(f), 32768, 60999))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
