//! How many control transactions a second: the kernel's generic netlink
//! next to overlayd's socket, in one run.
//!
//! The transaction is nlctrl `CTRL_CMD_GETFAMILY` by name, the request
//! every netlink client sends first. It goes to the kernel through an
//! `AF_NETLINK` socket (`NETLINK_GENERIC`), and to a release `overlayd`
//! (in a namespace of its own) through its Unix socket. Each is timed one
//! at a time (send, wait for the reply, send the next) and pipelined
//! (WINDOW requests in flight, default 64, each in its own datagram, a new
//! one sent as each reply arrives). The floor of a round trip between two
//! processes over an `AF_UNIX` `SOCK_SEQPACKET` pair is timed beside them.
//! The four rates are measured ROUNDS times (default 3), interleaved, each
//! for SECONDS (default 2); the median is printed.
//!
//! With DEVICES set (default 0), that many temporary devices are created
//! first, so that the daemon answers with a large device table.
//!
//! Then the target cache: a dynamic-mode device is filled with ENTRIES
//! (default 1,000,000) `CACHE_SET`s through the socket, the daemon's
//! resident memory is read before and after (bytes per entry), and one
//! `CACHE_LIST` dump of them all is timed from request to `NLMSG_DONE`.
//!
//! Run as root after `cargo build --release --workspace`:
//!
//! ```sh
//! bench/control-rate
//! ```
//!
//! Nothing is asserted beyond each reply answering its request.

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};
use nlproto::{
    client::Client,
    msg::{GenlMsg, NLM_F_ACK, NLM_F_REQUEST},
    server::split_datagram,
    spec::{ctrl, overlay as ov, target as tg},
    Attr, Emit, Message,
};
use overlay_tests::{
    net::{self, Netns},
    proto::{self, cache_list_request, cache_set_request, numbered_mac},
    Daemon, TempDir,
};
use std::{
    net::Ipv4Addr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

/// `CACHE_SET` requests per datagram while filling the cache.
const PER_DATAGRAM: u32 = 256;

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
        .unwrap_or(default)
}

fn main() {
    if !net::can_run() {
        std::process::exit(2);
    }
    let seconds = Duration::from_secs(number("SECONDS", 2));
    let rounds = number("ROUNDS", 3) as usize;
    let window = number("WINDOW", 64) as usize;
    let entries = number("ENTRIES", 1_000_000) as u32;

    let ns = Netns::new("ctlrate");
    ns.ip("link set lo up");
    ns.ip("addr add 198.51.100.1/24 dev lo");
    let daemon = Daemon::start_in_netns(&ns.name);
    let devices = number("DEVICES", 0) as u32;
    create_devices(&mut daemon.client(), devices);
    eprintln!("{devices} devices created; measuring");

    let kernel = kernel_socket();
    let ours = daemon.client();
    let (floor_a, floor_b) = nlproto::client::seqpacket_pair().expect("a socket pair");
    let echo = std::thread::spawn(move || echo(floor_b));

    let rows: [(&str, usize); 5] = [
        ("kernel genetlink, one at a time", 1),
        ("kernel genetlink, pipelined", window),
        ("overlayd, one at a time", 1),
        ("overlayd, pipelined", window),
        ("AF_UNIX seqpacket round trip (floor)", 1),
    ];
    let mut rates = vec![Vec::new(); rows.len()];
    let mut sizes = [0usize; 2];
    for _ in 0..rounds {
        for (i, (_, w)) in rows.iter().enumerate() {
            let (fd, name) = match i {
                0 | 1 => (kernel.as_fd(), "nlctrl"),
                2 | 3 => (ours.as_fd(), "nlctrl"),
                _ => (floor_a.as_fd(), "nlctrl"),
            };
            let (rate, size) = transactions(fd, name, *w, seconds);
            if i < 4 {
                sizes[i / 2] = size;
            }
            rates[i].push(rate);
        }
    }
    drop(floor_a);
    echo.join().expect("the echo thread");

    println!(
        "CTRL_CMD_GETFAMILY nlctrl, transactions per second (median of {rounds} x {}s; \
         reply {} bytes from the kernel, {} from overlayd; pipelined = {window} in flight; \
         {devices} devices in overlayd's table):",
        seconds.as_secs(),
        sizes[0],
        sizes[1]
    );
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    println!("  {:<40} {:>10} {:>10} {:>10}", "", "median", "min", "max");
    for (((label, _), m), r) in rows.iter().zip(&medians).zip(&rates) {
        // `median` sorted each row.
        println!(
            "  {label:<40} {m:>10.0} {:>10.0} {:>10.0}",
            r[0],
            r[r.len() - 1]
        );
    }
    println!(
        "  overlayd pipelined / kernel one at a time: {:.2}x",
        medians[3] / medians[0]
    );

    cache_dump(&daemon, entries);
}

/// Creates `n` temporary vxlan/direct devices.
fn create_devices(c: &mut Client, n: u32) {
    for i in 1..=n {
        let attrs = vec![
            Attr::str(ov::ATTR_NAME, format!("t{i}")),
            Attr::str(ov::ATTR_ENCAP, "vxlan"),
            Attr::str(ov::ATTR_SEARCH, "direct"),
            Attr::u64(ov::ATTR_VNETID, u64::from(i)),
            Attr::flag(ov::ATTR_TEMPORARY),
        ];
        c.transact(ov::NAME, ov::CMD_CREATE, attrs)
            .expect("CREATE a device");
    }
}

/// An `AF_NETLINK` generic netlink socket bound to a kernel-chosen port.
fn kernel_socket() -> OwnedFd {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkGeneric,
    )
    .expect("an AF_NETLINK socket");
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).expect("bind the netlink socket");
    fd
}

fn getfamily(name: &str, seq: u32) -> Vec<u8> {
    GenlMsg {
        family: ctrl::GENL_ID_CTRL,
        flags: NLM_F_REQUEST,
        seq,
        pid: 0,
        cmd: ctrl::CTRL_CMD_GETFAMILY,
        version: 1,
        attrs: vec![Attr::str(ctrl::CTRL_ATTR_FAMILY_NAME, name)],
    }
    .emit()
}

/// Runs GETFAMILY transactions for `time` with `window` in flight: the
/// rate, and the size of a reply. Every reply must answer a request sent
/// (its sequence number, in order) with a `CTRL_CMD_NEWFAMILY`.
fn transactions(fd: BorrowedFd<'_>, family: &str, window: usize, time: Duration) -> (f64, usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent: u32 = 0;
    let mut answered: u32 = 0;
    let mut size = 0;
    let start = Instant::now();
    let mut stop = false;
    loop {
        while !stop && (sent - answered) < window as u32 {
            sent += 1;
            send(fd.as_raw_fd(), &getfamily(family, sent), MsgFlags::empty())
                .expect("send a request");
        }
        if sent == answered {
            break;
        }
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("receive a reply");
        for m in split_datagram(&buf[..n]) {
            let m = m.expect("a well-framed reply");
            answered += 1;
            size = m.bytes.len();
            // The header is enough: the kernel's reply carries attributes
            // of its own version that need no decoding here.
            let b = m.bytes;
            let kind = u16::from_ne_bytes([b[4], b[5]]);
            let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
            let cmd = b.get(16).copied();
            // The floor's echo returns the request itself.
            let answers = kind == ctrl::GENL_ID_CTRL
                && seq == answered
                && (cmd == Some(ctrl::CTRL_CMD_NEWFAMILY) || cmd == Some(ctrl::CTRL_CMD_GETFAMILY));
            assert!(
                answers,
                "reply {answered} (type {kind}, seq {seq}, command {cmd:?}) does not answer it"
            );
        }
        if !stop && start.elapsed() >= time {
            stop = true;
        }
    }
    (answered as f64 / start.elapsed().as_secs_f64(), size)
}

/// Sends every datagram back until the other end closes.
fn echo(fd: OwnedFd) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if send(fd.as_raw_fd(), &buf[..n], MsgFlags::MSG_NOSIGNAL).is_err() {
                    return;
                }
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon runs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// The `n`th CACHE_SET of the fill.
fn set_request(n: u32, seq: u32, flags: u16) -> Vec<u8> {
    let [_, _, c, d] = n.to_be_bytes();
    cache_set_request(
        "dyn0",
        numbered_mac(n),
        Ipv4Addr::new(10, 9, c, d),
        flags,
        seq,
    )
}

/// Fills a dynamic device's cache with `entries` and times one dump of it.
fn cache_dump(daemon: &Daemon, entries: u32) {
    let dir = TempDir::new("ctlrate");
    let config = dir.join("hosts.json");
    std::fs::write(&config, "{}").expect("write the hosts file");
    daemon.files_overlay("dyn0", "vxlan", 43, "198.51.100.1", &config, &[]);
    let pid = daemon.pid().expect("the daemon runs");
    let mut c = daemon.client();
    let before = rss_bytes(pid);

    let start = Instant::now();
    let mut seq = 0;
    let mut n = 0;
    while n < entries {
        let mut datagram = Vec::new();
        for _ in 0..PER_DATAGRAM.min(entries - n) {
            seq += 1;
            datagram.extend(set_request(n, seq, NLM_F_REQUEST));
            n += 1;
        }
        c.send_raw(&datagram).expect("send CACHE_SETs");
    }
    // Requests are answered in order: the ack of one more means the
    // daemon has taken every one before it (an error would come first).
    seq += 1;
    c.send_raw(&set_request(0, seq, NLM_F_REQUEST | NLM_F_ACK))
        .expect("send the last CACHE_SET");
    let ack = proto::expect_error_reply(&mut c, seq);
    assert_eq!(ack.errno, 0, "{ack:?}");
    let fill = start.elapsed();
    let after = rss_bytes(pid);

    seq += 1;
    let start = Instant::now();
    c.send_raw(&cache_list_request("dyn0", seq))
        .expect("send CACHE_LIST");
    let mut listed: u64 = 0;
    let mut parts: u64 = 0;
    let mut bytes: u64 = 0;
    'dump: loop {
        let datagram = c.recv_raw().expect("a part of the dump");
        parts += 1;
        bytes += datagram.len() as u64;
        for m in split_datagram(&datagram) {
            match proto::parse(m.expect("a well-framed part").bytes) {
                Message::Genl(g) if g.cmd == tg::CMD_CACHE_LIST => listed += 1,
                Message::Done(_) => break 'dump,
                other => panic!("in the dump: {other:?}"),
            }
        }
    }
    let dump = start.elapsed();
    assert_eq!(listed, u64::from(entries), "every entry listed once");
    println!(
        "target cache of {entries} entries: filled in {:.2} s ({:.0} CACHE_SET/s, {PER_DATAGRAM} per datagram); \
         resident memory {:.1} -> {:.1} MiB, {:.0} bytes per entry",
        fill.as_secs_f64(),
        f64::from(entries) / fill.as_secs_f64(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / f64::from(entries)
    );
    println!(
        "CACHE_LIST of {entries} entries: {:.3} s, {parts} datagrams, {:.1} MiB",
        dump.as_secs_f64(),
        bytes as f64 / 1048576.0
    );
}
