//! Golden transcripts: every `tests/golden/*.nlt`, recorded from real
//! sessions with `overlayctl --record` (see `scripts/record-golden`), is
//! replayed by `overlay-replay` against a fresh daemon of the harness
//! (which sits in a network namespace with the underlay addresses, so
//! activation works) and must be answered byte for byte, up to the fields
//! `tools::replay` documents as variable.

use overlay_tests::{stderr, stdout, target_dir, Daemon};
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nlt"))
        .collect();
    files.sort();
    files
}

fn replay(daemon: &Daemon, file: &Path) -> std::process::Output {
    Command::new(target_dir().join("overlay-replay"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg(file)
        .env_remove("OVERLAYD_SOCKET")
        .output()
        .expect("overlay-replay runs")
}

#[test]
fn every_golden_transcript_replays_byte_for_byte() {
    let files = golden_files();
    assert!(
        files.len() >= 3,
        "expected the golden transcripts in tests/golden, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        let d = Daemon::start();
        let out = replay(&d, file);
        if out.status.success() {
            assert!(stdout(&out).contains(": ok ("), "{}", stdout(&out));
        } else {
            failures.push(format!(
                "{}:\n{}{}\ndaemon log:\n{}",
                file.display(),
                stdout(&out),
                stderr(&out),
                d.log()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every command of every family is exercised by some golden transcript,
/// so that a new command cannot land without one.
#[test]
fn goldens_cover_every_command() {
    use nlproto::spec::FAMILIES;
    use nlproto::transcript::{Direction, Transcript};
    let mut seen = std::collections::HashSet::new();
    for file in golden_files() {
        let t = Transcript::parse(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (_, _, r) in t.records() {
            if r.direction == Direction::Sent && r.bytes.len() >= 20 {
                let family = u16::from_ne_bytes([r.bytes[4], r.bytes[5]]);
                let flags = u16::from_ne_bytes([r.bytes[6], r.bytes[7]]);
                let dump = flags & nlproto::msg::NLM_F_DUMP != 0;
                seen.insert((family, r.bytes[16], dump));
            }
        }
    }
    let mut missing = Vec::new();
    for f in FAMILIES {
        for c in f.commands {
            if c.ops.allows_do() && !seen.contains(&(f.id, c.id, false)) {
                missing.push(format!("{} {} (do)", f.name, c.name));
            }
            if c.ops.allows_dump() && !seen.contains(&(f.id, c.id, true)) {
                missing.push(format!("{} {} (dump)", f.name, c.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no golden transcript sends {}; add one (tests/golden/README.md)",
        missing.join(", ")
    );
}

/// A transcript whose recorded answer was altered fails, naming the
/// record, with both messages decoded and a hex diff.
#[test]
fn a_difference_fails_and_names_the_record() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/plugins.nlt");
    let text = std::fs::read_to_string(&file).unwrap();
    // "vxlan" in the first PLUGINS reply becomes "vxlam".
    let mut t = nlproto::transcript::Transcript::parse(&text).unwrap();
    let hex_vxlan = nlproto::transcript::hex(b"vxlan\0");
    let (ci, ri) = t
        .connections
        .iter()
        .enumerate()
        .find_map(|(ci, c)| {
            c.records
                .iter()
                .position(|r| {
                    r.direction == nlproto::transcript::Direction::Received
                        && nlproto::transcript::hex(&r.bytes).contains(&hex_vxlan)
                        && r.bytes[4] == 33
                })
                .map(|ri| (ci, ri))
        })
        .expect("a PLUGINS reply naming vxlan");
    let number = t
        .records()
        .find(|(c, _, r)| *c == ci && std::ptr::eq(*r, &t.connections[ci].records[ri]))
        .map(|(_, n, _)| n)
        .unwrap();
    let rec = &mut t.connections[ci].records[ri];
    let at = nlproto::transcript::hex(&rec.bytes)
        .find(&hex_vxlan)
        .unwrap()
        / 2;
    rec.bytes[at + 4] = b'm';
    let dir = overlay_tests::TempDir::new("golden");
    let altered = dir.join("altered.nlt");
    std::fs::write(&altered, t.to_text()).unwrap();
    let d = Daemon::start();
    let out = replay(&d, &altered);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("altered.nlt: record {number} (line ")),
        "{err}"
    );
    assert!(err.contains("hex diff"), "{err}");
    assert!(err.contains("\"vxlam\" + NUL"), "{err}");
    assert!(err.contains("\"vxlan\" + NUL"), "{err}");
}
