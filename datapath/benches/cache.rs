//! Cost of a target-cache lookup (a frame's destination MAC to its
//! destination) with a million valid entries, and the memory one entry
//! takes.
//!
//! Run with `bench/run-criterion cache` (or `cargo bench -p datapath --bench
//! cache`). The memory figure is printed before the timings: the growth of
//! the process's resident set while the cache fills, divided by the number
//! of entries.

use criterion::{criterion_group, criterion_main, Criterion};
use datapath::target::{
    cache::{TargetCache, Verdict},
    Answer, CacheLimits, Mac,
};
use overlay_plugin_abi::Point;
use std::{hint::black_box, time::Instant};

const ENTRIES: u32 = 1_000_000;

fn mac(i: u32) -> Mac {
    let b = i.to_be_bytes();
    Mac([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

fn point(i: u32) -> Point {
    let mut ip = [0u8; 16];
    ip[10] = 0xff;
    ip[11] = 0xff;
    ip[12..].copy_from_slice(&(0x0a00_0000 | (i & 0xffff)).to_be_bytes());
    Point {
        mac: [0; 6],
        ip,
        port: 4789,
    }
}

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn filled() -> TargetCache {
    let mut c = TargetCache::new(CacheLimits::default());
    let now = Instant::now();
    for i in 0..ENTRIES {
        c.set(&mac(i), Answer::To(point(i)), now);
    }
    c
}

fn bench(c: &mut Criterion) {
    let before = rss();
    let mut cache = filled();
    let after = rss();
    println!(
        "target cache: {} entries, {:.0} bytes per entry (resident set growth)",
        cache.len(),
        (after - before) as f64 / cache.len() as f64
    );
    let frame = [0u8; 64];
    let now = Instant::now();
    let mut g = c.benchmark_group("target_cache_1m");
    // A pseudo-random walk over the entries, so that lookups miss the CPU
    // caches as a busy device's would.
    let mut i: u32 = 1;
    g.bench_function("hit", |b| {
        b.iter(|| {
            i = i.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let (v, _) = cache.lookup(black_box(&mac(i % ENTRIES)), &frame, now);
            debug_assert!(matches!(v, Verdict::Send(_)));
            v
        })
    });
    // The same MAC again and again: the cost with everything in cache.
    g.bench_function("hit_same_mac", |b| {
        b.iter(|| cache.lookup(black_box(&mac(7)), &frame, now))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
