use super::*;
use nlproto::msg::{self, GenlMsg, NLM_F_REQUEST};
use nlproto::{Attr, Emit};

fn overlay(cmd: u8, pid: u32, attrs: Vec<Attr>) -> Vec<u8> {
    GenlMsg {
        family: ov::ID,
        flags: 0,
        seq: 5,
        pid,
        cmd,
        version: ov::VERSION,
        attrs,
    }
    .emit()
}

fn device(pid: u32, link: u32, name: &str) -> Vec<u8> {
    overlay(
        ov::CMD_LIST,
        pid,
        vec![
            Attr::u32(ov::ATTR_LINKID, link),
            Attr::str(ov::ATTR_NAME, name),
        ],
    )
}

#[test]
fn pids_and_link_ids_are_carried_over() {
    let mut n = Normaliser::new();
    let recorded = device(1, 1, "ov0");
    let got = device(7, 3, "ov0");
    assert_eq!(n.reply(&recorded, &got), recorded);
    // The same pairs again, and a second device.
    assert_eq!(n.reply(&recorded, &got), recorded);
    assert_eq!(
        n.reply(&device(1, 2, "ov1"), &device(7, 4, "ov1")),
        device(1, 2, "ov1")
    );
    // Requests go the other way.
    let req = GenlMsg {
        family: ov::ID,
        flags: NLM_F_REQUEST,
        seq: 9,
        pid: 1,
        cmd: ov::CMD_LIST,
        version: 1,
        attrs: vec![Attr::u32(ov::ATTR_LINKID, 2)],
    };
    let sent = n.request(&req.emit());
    let want = GenlMsg {
        pid: 7,
        attrs: vec![Attr::u32(ov::ATTR_LINKID, 4)],
        ..req
    };
    assert_eq!(sent, want.emit());
}

#[test]
fn mappings_stay_one_to_one() {
    let mut n = Normaliser::new();
    assert_eq!(
        n.reply(&device(1, 1, "ov0"), &device(7, 3, "ov0")),
        device(1, 1, "ov0")
    );
    // Link 1 of the recording was 3; a 4 now is a real difference.
    assert_ne!(
        n.reply(&device(1, 1, "ov0"), &device(7, 4, "ov0")),
        device(1, 1, "ov0")
    );
    // And 3 cannot also stand for the recording's 2.
    assert_ne!(
        n.reply(&device(1, 2, "ov1"), &device(7, 3, "ov1")),
        device(1, 2, "ov1")
    );
}

#[test]
fn other_fields_still_differ() {
    let mut n = Normaliser::new();
    assert_ne!(
        n.reply(&device(1, 1, "ov0"), &device(7, 3, "ov9")),
        device(1, 1, "ov0")
    );
    let mut n = Normaliser::new();
    // A VNETID is not a link id even with the same value.
    let a = overlay(ov::CMD_LIST, 1, vec![Attr::u64(ov::ATTR_VNETID, 1)]);
    let b = overlay(ov::CMD_LIST, 1, vec![Attr::u64(ov::ATTR_VNETID, 2)]);
    assert_ne!(n.reply(&a, &b), a);
}

fn plugin(file: &str) -> Vec<u8> {
    overlay(
        ov::CMD_PLUGINS,
        1,
        vec![
            Attr::str(ov::ATTR_PLUGIN_NAME, "vxlan"),
            Attr::str(ov::ATTR_PLUGIN_FILE, file),
            Attr::u32(ov::ATTR_PLUGIN_KIND, 1),
        ],
    )
}

#[test]
fn plugin_files_compare_by_file_name() {
    let mut n = Normaliser::new();
    let recorded = plugin("/build/a/target/debug/liboverlay_vxlan.so");
    let got = plugin("/elsewhere/liboverlay_vxlan.so");
    let out = n.reply(&recorded, &got);
    assert_eq!(out, recorded, "lengths are fixed up");
    assert_ne!(
        n.reply(&recorded, &plugin("/build/a/target/debug/libother.so")),
        recorded
    );
}

fn stats(values: [u64; 2]) -> Vec<u8> {
    let stat = |name: &str, v: u64| {
        Attr::nested(
            ov::ATTR_STAT,
            vec![
                Attr::str(ov::ATTR_STAT_NAME, name),
                Attr::u64(ov::ATTR_STAT_VALUE, v),
            ],
        )
    };
    overlay(
        ov::CMD_STATS,
        1,
        vec![
            Attr::u32(ov::ATTR_LINKID, 1),
            Attr::nested(
                ov::ATTR_STATS,
                vec![stat("tx_packets", values[0]), stat("tx_bytes", values[1])],
            ),
        ],
    )
}

#[test]
fn counter_values_are_carried_over_but_not_their_names() {
    let mut n = Normaliser::new();
    assert_eq!(n.reply(&stats([0, 0]), &stats([3, 210])), stats([0, 0]));
    // STAT_VALUE outside STATS replies is compared.
    let mut n = Normaliser::new();
    let a = overlay(ov::CMD_LIST, 1, vec![Attr::u64(ov::ATTR_STAT_VALUE, 1)]);
    let b = overlay(ov::CMD_LIST, 1, vec![Attr::u64(ov::ATTR_STAT_VALUE, 2)]);
    assert_ne!(n.reply(&a, &b), a);
}

#[test]
fn error_echo_pid_and_handle_pid() {
    let mut n = Normaliser::new();
    let req = GenlMsg {
        family: ov::ID,
        flags: NLM_F_REQUEST,
        seq: 2,
        pid: 1,
        cmd: 1,
        version: 1,
        attrs: vec![],
    };
    let hdr = |pid| {
        let mut h = req.header();
        h.port_number = pid;
        h
    };
    let recorded = msg::error(&hdr(1), libc::ENOENT, Some("no device named x"), None, 1).emit();
    let got = msg::error(&hdr(4), libc::ENOENT, Some("no device named x"), None, 4).emit();
    assert_eq!(n.reply(&recorded, &got), recorded);
    let other = msg::error(&hdr(4), libc::ENOENT, Some("no device named y"), None, 4).emit();
    assert_ne!(n.reply(&recorded, &other), recorded);
    let pid_reply = |p: u32| {
        GenlMsg {
            family: handle::ID,
            flags: 0,
            seq: 2,
            pid: p,
            cmd: handle::CMD_GET_PID,
            version: 1,
            attrs: vec![Attr::u32(handle::HANDLE_ATTR_PID, p)],
        }
        .emit()
    };
    assert_eq!(n.reply(&pid_reply(1), &pid_reply(4)), pid_reply(1));
}

#[test]
fn hex_diff_shows_differing_rows() {
    let a = [0u8; 20];
    let mut b = a;
    b[17] = 0xff;
    assert_eq!(
        hex_diff(&a, &b),
        "- 0010  00 00 00 00\n+ 0010  00 ff 00 00\n"
    );
    assert_eq!(hex_diff(&a, &a), "");
}
