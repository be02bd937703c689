//! Per-frame cost of encapsulation and decapsulation through the loaded
//! VXLAN and Geneve plugins (the `.so` files, called across the ABI as the
//! daemon calls them), next to a memcpy of the same frame, and the flow
//! hash of the outer source port.
//!
//! Run with `bench/run-criterion` (it builds the plugins first), or
//! `cargo build --release -p encap-vxlan -p encap-geneve && cargo bench -p datapath`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datapath::dataplane::mux;
use overlay_plugin_abi::{
    abi_stable::std_types::{RSlice, RSliceMut, RStr},
    loader::{self, PluginObject},
    prop::PropValue,
    EncapDeviceBox, EncapPluginBox,
};
use std::{hint::black_box, path::PathBuf};

fn plugin_path(lib: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join(format!("liboverlay_{lib}.so"));
        if p.exists() {
            return p;
        }
    }
    panic!("liboverlay_{lib}.so not built: run cargo build --release -p encap-{lib} first");
}

fn encap_plugin(lib: &str) -> (EncapPluginBox, EncapDeviceBox) {
    let plugin = loader::load(&plugin_path(lib)).expect("the plugin loads");
    let PluginObject::Encap { plugin, .. } = plugin.object else {
        panic!("{lib} is not an encapsulation plugin");
    };
    let dev = plugin.new_device().into_result().unwrap();
    (plugin, dev)
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
    let (plugin, dev) = encap_plugin("vxlan");
    let (geneve, geneve_dev) = encap_plugin("geneve");
    // A second Geneve device sending one non-critical option (8 bytes).
    let (_, geneve_opt_dev) = encap_plugin("geneve");
    let opts = PropValue::Str("0x0102:0x01:deadbeef".into()).encode();
    geneve_opt_dev
        .setprop(RStr::from_str("geneve/options"), RSlice::from_slice(&opts))
        .into_result()
        .unwrap();
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
        for (name, dev) in [("geneve", &geneve_dev), ("geneve_option", &geneve_opt_dev)] {
            g.bench_with_input(
                BenchmarkId::new(format!("encap_{name}"), len),
                &f,
                |b, f| {
                    let mut hdr = [0u8; 64];
                    b.iter(|| {
                        dev.encap(
                            black_box(42),
                            RSlice::from_slice(black_box(f)),
                            RSliceMut::from_mut_slice(&mut hdr),
                        )
                        .unwrap()
                    })
                },
            );
            let mut pkt = vec![0u8; dev.header_len() as usize];
            dev.encap(
                42,
                RSlice::from_slice(&f),
                RSliceMut::from_mut_slice(&mut pkt),
            )
            .unwrap();
            pkt.extend_from_slice(&f);
            g.bench_with_input(
                BenchmarkId::new(format!("decap_{name}"), len),
                &pkt,
                |b, p| b.iter(|| geneve.decap(RSlice::from_slice(black_box(p))).unwrap()),
            );
        }
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
