//! Plugin loading from a directory holding plugins, junk, a non-plugin
//! ELF library, a duplicate and an unsafe file; and from an empty one.

use nlproto::spec::overlay as ov;
use nlproto::AttrsExt;
use overlay_tests::proto::{self, expect_err};
use overlay_tests::{plugin_path, Daemon, TempDir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Copies `from` to `dir/name` with exactly `mode`.
fn install(from: &Path, dir: &TempDir, name: &str, mode: u32) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    to
}

/// A real ELF shared library of the system that is not a plugin.
fn system_library() -> PathBuf {
    let dirs = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    let names = ["libz.so.1", "libm.so.6", "libdl.so.2", "libpthread.so.0"];
    for dir in dirs {
        for name in names {
            let p = Path::new(dir).join(name);
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.starts_with(b"\x7fELF") {
                    return p;
                }
            }
        }
    }
    panic!("no system shared library (libz, libm) found to copy");
}

/// PLUGINS dump: (name, file) of each loaded plugin.
fn loaded(d: &Daemon) -> Vec<(String, String)> {
    let mut c = d.client();
    c.dump(ov::NAME, ov::CMD_PLUGINS, vec![])
        .expect("PLUGINS dump")
        .iter()
        .map(|m| {
            (
                m.attrs.get_str(ov::ATTR_PLUGIN_NAME).unwrap().to_string(),
                m.attrs.get_str(ov::ATTR_PLUGIN_FILE).unwrap().to_string(),
            )
        })
        .collect()
}

fn skip_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("SKIP")).collect()
}

#[test]
fn real_plugins_load_and_everything_else_is_skipped_with_a_reason() {
    let dir = TempDir::new("plugins");
    // Longer than an ELF header, so the loader reads a wrong one rather
    // than too few bytes.
    std::fs::write(dir.join("junk.so"), "this is not an ELF file\n".repeat(64)).unwrap();
    std::fs::set_permissions(dir.join("junk.so"), std::fs::Permissions::from_mode(0o644)).unwrap();
    install(&system_library(), &dir, "notplugin.so", 0o755);
    install(
        &plugin_path("overlay_vxlan"),
        &dir,
        "liboverlay_vxlan.so",
        0o755,
    );
    install(
        &plugin_path("overlay_direct"),
        &dir,
        "liboverlay_direct.so",
        0o644,
    );
    // Sorted after the original, so it is the one refused.
    install(&plugin_path("overlay_vxlan"), &dir, "vxlan-copy.so", 0o644);
    // Not a .so: not even looked at.
    std::fs::write(dir.join("README.txt"), b"notes").unwrap();

    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    let canon = std::fs::canonicalize(&dir.0).unwrap();
    let plugins = loaded(&d);
    assert_eq!(
        plugins,
        [
            (
                "vxlan".to_string(),
                canon.join("liboverlay_vxlan.so").display().to_string()
            ),
            (
                "direct".to_string(),
                canon.join("liboverlay_direct.so").display().to_string()
            ),
        ]
    );

    let log = d.log();
    let skips = skip_lines(&log);
    assert_eq!(skips.len(), 3, "one SKIP per refused file:\n{log}");
    let skip_for = |file: &str| -> &str {
        let hits: Vec<&&str> = skips
            .iter()
            .filter(|l| l.contains(&format!("/{file}:")))
            .collect();
        assert_eq!(hits.len(), 1, "one SKIP line for {file}:\n{log}");
        hits[0]
    };
    let junk = skip_for("junk.so");
    assert!(junk.contains("invalid ELF header"), "{junk}");
    let notplugin = skip_for("notplugin.so");
    assert!(notplugin.contains("not an overlayd plugin"), "{notplugin}");
    assert!(notplugin.contains("export_encap_plugin!"), "{notplugin}");
    assert!(!log.contains('\0'), "the log holds a NUL byte: {log:?}");
    let dup = skip_for("vxlan-copy.so");
    assert!(dup.contains("duplicate plugin name 'vxlan'"), "{dup}");
    assert!(
        dup.contains("liboverlay_vxlan.so"),
        "names the first: {dup}"
    );
    assert!(!log.contains("README.txt"), "{log}");

    // The daemon serves, with the plugins it kept.
    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &proto::full_props("10.0.0.1", "10.0.0.2")).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    assert_eq!(proto::state(&mut c, "ov0"), ov::STATE_ACTIVE);
}

#[test]
fn group_or_other_writable_plugin_is_refused() {
    let dir = TempDir::new("plugins-mode");
    install(
        &plugin_path("overlay_vxlan"),
        &dir,
        "liboverlay_vxlan.so",
        0o666,
    );
    install(
        &plugin_path("overlay_direct"),
        &dir,
        "liboverlay_direct.so",
        0o644,
    );
    install(&plugin_path("overlay_direct"), &dir, "libgroup.so", 0o664);
    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    let names: Vec<String> = loaded(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["direct"]);
    let log = d.log();
    let skips = skip_lines(&log);
    assert_eq!(skips.len(), 2, "{log}");
    let vx = skips
        .iter()
        .find(|l| l.contains("/liboverlay_vxlan.so:"))
        .unwrap_or_else(|| panic!("no SKIP for the vxlan copy:\n{log}"));
    assert!(vx.contains("writable by group or others"), "{vx}");
    assert!(vx.contains("666"), "{vx}");
    let group = skips
        .iter()
        .find(|l| l.contains("/libgroup.so:"))
        .unwrap_or_else(|| panic!("no SKIP for the group-writable copy:\n{log}"));
    assert!(group.contains("writable by group or others"), "{group}");

    // Without an encapsulation plugin nothing can be created.
    let mut c = d.client();
    expect_err(
        proto::create(&mut c, "ov0", 1, &[]),
        libc::ENOENT,
        &["vxlan"],
    );
    assert!(proto::device_names(&mut c).is_empty());
}

#[test]
fn empty_plugin_directory() {
    let dir = TempDir::new("plugins-empty");
    let d = Daemon::start_with(std::slice::from_ref(&dir.0));
    assert!(loaded(&d).is_empty());
    let log = d.log();
    assert!(skip_lines(&log).is_empty(), "{log}");
    assert!(
        log.contains("no encapsulation plugin loaded"),
        "warns: {log}"
    );

    let mut c = d.client();
    let text = expect_err(
        proto::create(&mut c, "ov0", 1, &[]),
        libc::ENOENT,
        &["vxlan"],
    );
    assert!(text.contains("none"), "says nothing is loaded: {text}");
    assert!(proto::device_names(&mut c).is_empty());
    // It still answers everything else.
    let families = c.families().unwrap();
    assert_eq!(families.len(), 4);
    expect_err(
        c.transact(
            ov::NAME,
            ov::CMD_PLUGINS,
            vec![nlproto::Attr::str(ov::ATTR_PLUGIN_NAME, "vxlan")],
        ),
        libc::ENOENT,
        &["vxlan"],
    );
}

#[test]
fn directories_are_searched_in_order_and_each_file_loaded_once() {
    let target = overlay_tests::target_dir();
    let missing = TempDir::new("plugins-missing");
    let absent = missing.join("does-not-exist");
    let not_a_dir = missing.join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    // A symlink to a plugin already found through the first directory.
    let links = TempDir::new("plugins-links");
    std::os::unix::fs::symlink(plugin_path("overlay_vxlan"), links.join("vx.so")).unwrap();
    let d = Daemon::start_with(&[
        absent.clone(),
        target.clone(),
        target.clone(),
        links.0.clone(),
        not_a_dir.clone(),
    ]);
    let names: Vec<String> = loaded(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["geneve", "vxlan", "direct", "etcd", "files"]);
    let log = d.log();
    let skips = skip_lines(&log);
    // A missing directory is skipped silently, the same file reached twice
    // is loaded once; a path that is not a directory is reported.
    assert_eq!(skips.len(), 1, "{log}");
    assert!(skips[0].contains(&not_a_dir.display().to_string()), "{log}");
    assert!(!log.contains("duplicate"), "{log}");
}

/// Where the last loadable segment of the ELF file `data` ends in the file.
fn loadable_end(data: &[u8]) -> usize {
    use object::read::elf::{FileHeader, ProgramHeader};
    let h = object::elf::FileHeader64::<object::Endianness>::parse(data).unwrap();
    let en = h.endian().unwrap();
    h.program_headers(en, data)
        .unwrap()
        .iter()
        .filter(|p| p.p_type(en) == object::elf::PT_LOAD)
        .map(|p| (p.p_offset(en) + p.p_filesz(en)) as usize)
        .max()
        .unwrap()
}

#[test]
fn every_cut_inside_a_real_plugin_is_refused_before_it_is_opened() {
    for lib in [
        "overlay_vxlan",
        "overlay_geneve",
        "overlay_direct",
        "overlay_files",
    ] {
        let data = std::fs::read(plugin_path(lib)).unwrap();
        overlay_plugin_abi::loader::elf::check(&data)
            .unwrap_or_else(|e| panic!("{lib} whole is refused: {e}"));
        let end = loadable_end(&data);
        // About 2,000 cut points per plugin, and the last bytes one by one.
        let step = (end / 2000).max(1);
        let cuts = (0..end).step_by(step).chain(end.saturating_sub(64)..end);
        for cut in cuts {
            let e = overlay_plugin_abi::loader::elf::check(&data[..cut])
                .expect_err(&format!("{lib} cut at {cut} of {end} accepted"));
            assert!(!e.contains('\0'), "{e:?}");
        }
    }
}

#[test]
fn truncated_plugins_are_skipped_and_the_daemon_serves() {
    let dir = TempDir::new("plugins-cut");
    install(
        &plugin_path("overlay_vxlan"),
        &dir,
        "liboverlay_vxlan.so",
        0o755,
    );
    install(
        &plugin_path("overlay_direct"),
        &dir,
        "liboverlay_direct.so",
        0o644,
    );
    // Copies of a real plugin cut inside its loadable segments, as an
    // interrupted copy or upgrade leaves them: header only, in the
    // program headers, in each segment, one byte short.
    let data = std::fs::read(plugin_path("overlay_geneve")).unwrap();
    let end = loadable_end(&data);
    let mut cuts: Vec<usize> = vec![1, 16, 63, 64, 100, 1000, end - 1];
    cuts.extend((1..24).map(|k| end * k / 24));
    cuts.sort();
    cuts.dedup();
    let mut names = Vec::new();
    for cut in &cuts {
        let name = format!("libcut-{cut:08}.so");
        let path = dir.join(&name);
        std::fs::write(&path, &data[..*cut]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        names.push(name);
    }

    let mut d = Daemon::start_with(std::slice::from_ref(&dir.0));
    assert!(d.alive(), "overlayd died:\n{}", d.log());
    let loaded: Vec<String> = loaded(&d).into_iter().map(|(n, _)| n).collect();
    assert_eq!(loaded, ["vxlan", "direct"]);
    let log = d.log();
    assert!(!log.contains('\0'), "the log holds a NUL byte:\n{log:?}");
    let skips = skip_lines(&log);
    assert_eq!(skips.len(), cuts.len(), "one SKIP per cut file:\n{log}");
    for name in &names {
        let line = skips
            .iter()
            .find(|l| l.contains(&format!("/{name}:")))
            .unwrap_or_else(|| panic!("no SKIP for {name}:\n{log}"));
        assert!(
            line.contains("invalid ELF header")
                || line.contains("truncated or damaged")
                || line.contains("shorter than an ELF header"),
            "{line}"
        );
        // Each file is named before it is read.
        let loading = log
            .find(&format!("loading plugin file {}", dir.join(name).display()))
            .unwrap_or_else(|| panic!("{name} not named before loading:\n{log}"));
        assert!(loading < log.find(line).unwrap(), "{log}");
    }

    let mut c = d.client();
    proto::create(&mut c, "ov0", 1, &proto::full_props("10.0.0.1", "10.0.0.2")).unwrap();
    assert!(d.alive());
}
