//! Faults injected from outside while the daemon runs: each ends in a
//! clear error or a degraded status with a message, nothing lost, the
//! daemon alive.

use nlproto::client::Client;
use overlay_tests::proto;
use overlay_tests::Daemon;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Sends `total` bytes of garbage datagrams (64 KiB each) as fast as the
/// daemon takes them, reading and dropping what it answers; gives up after
/// two minutes. Returns the bytes sent.
fn flood_garbage(socket: &std::path::Path, total: usize) -> usize {
    let fd = nlproto::sys::connect(socket).unwrap();
    let mut datagram = vec![0u8; 64 * 1024];
    // Not one valid message: a length field that overruns the datagram,
    // then bytes that vary from one datagram to the next.
    let mut x: u32 = 0x9e37_79b9;
    let mut sent = 0;
    let mut buf = vec![0u8; 128 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent < total && Instant::now() < deadline {
        for b in datagram.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        datagram[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        if nlproto::sys::try_send(fd.as_fd(), &datagram).unwrap() {
            sent += datagram.len();
        } else {
            nlproto::sys::wait_readable(fd.as_fd(), Duration::from_millis(10)).unwrap();
        }
        while let Some(n) = nlproto::sys::try_recv(fd.as_fd(), &mut buf).unwrap() {
            if n == 0 {
                break;
            }
        }
    }
    sent
}

#[test]
fn a_thousand_clients_and_a_garbage_flood_are_served_and_the_limit_refuses_clearly() {
    let d = Daemon::start_with_args(&["--max-connections", "1002"]);
    let pid = d.pid().unwrap();
    let mut first = d.client();
    proto::create(&mut first, "ov0", 42, &[]).unwrap();
    let before = rss_kib(pid);

    // A client sending 100 MB of garbage, while a thousand others ask.
    let socket = d.socket.clone();
    let flood = std::thread::spawn(move || flood_garbage(&socket, 100 << 20));
    let mut clients: Vec<Client> = (0..1000).map(|_| d.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        // Every one is answered, whatever the flood does.
        assert_eq!(proto::device_names(c), ["ov0"], "client {i}");
    }
    let sent = flood.join().unwrap();
    assert!(
        sent >= 100 << 20,
        "the daemon took only {sent} bytes of garbage"
    );
    for c in clients.iter_mut().step_by(97) {
        assert_eq!(proto::device_names(c), ["ov0"]);
    }
    // Memory stays bounded: a thousand connections and 100 MB of garbage
    // cost far less than the garbage itself.
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );

    // 1 + 1000 connections are open: one more fits, the next is refused
    // with a message saying why, at once.
    let mut last = d.client();
    assert_eq!(proto::device_names(&mut last), ["ov0"]);
    let refused = match Client::connect(&d.socket) {
        Ok(_) => panic!("a connection past the limit was served"),
        Err(e) => e,
    };
    let text = refused.to_string();
    assert!(
        text.contains("at most 1002 connections") && text.contains("--max-connections"),
        "{text}"
    );
    // Room again once clients go.
    clients.truncate(900);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match Client::connect(&d.socket) {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "still refused: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(proto::device_names(&mut again), ["ov0"]);
    assert!(d.log().contains("refusing connections"), "{}", d.log());
}
