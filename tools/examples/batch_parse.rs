//! How long `overlayctl -b` takes to parse a batch file of N cache-set
//! lines before sending anything: `cargo run --release -p tools --example
//! batch_parse [N]` (default 100,000).
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().expect("N, a number of lines"));
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "cache-set ov{} 02:00:00:{:02x}:{:02x}:{:02x}=192.0.2.{}:4789\n",
            i % 10,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            i % 250 + 1
        ));
    }
    let t = std::time::Instant::now();
    let lines = tools::batch::parse(&text);
    let ok = lines.iter().filter(|l| l.parsed.is_ok()).count();
    println!("{n} lines, {ok} parsed, {:?}", t.elapsed());
}
