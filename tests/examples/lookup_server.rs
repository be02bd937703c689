//! An external lookup server for the soak (`bench/soak.sh`): it takes over
//! the lookups of one dynamic-mode device over the `overlay_target` family
//! (ASSOCIATE, then LOOKUP in a loop) and answers every unicast MAC with one
//! underlay destination, dropping broadcast and multicast, as a varpd-style
//! lookup daemon would.
//!
//! ```sh
//! lookup_server SOCKET LINK DEST_IP DEST_PORT SECONDS
//! ```
//!
//! Serves for SECONDS, then prints how many lookups it answered, dropped
//! and answered too late (the request had timed out and was taken back:
//! counted, not an error). Exits non-zero (with the reason) when the daemon refuses a
//! request or goes away, or when it answered none: a soak that asked for
//! lookups and got none served has failed.

use nlproto::{client::Error as ClientError, spec::target as tg, Attr, AttrsExt};
use std::{
    net::IpAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

const USAGE: &str = "usage: lookup_server SOCKET LINK DEST_IP DEST_PORT SECONDS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, link, ip, port, seconds] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let parsed = (
        ip.parse::<IpAddr>(),
        port.parse::<u16>(),
        seconds.parse::<u64>(),
    );
    let (Ok(ip), Ok(port), Ok(seconds)) = parsed else {
        eprintln!("lookup_server: DEST_IP is an IPv4 or IPv6 address, DEST_PORT a UDP port, SECONDS a whole number\n{USAGE}");
        return ExitCode::from(2);
    };
    match serve(socket, link, ip, port, Duration::from_secs(seconds)) {
        Ok(n) if n.answered > 0 => {
            println!(
                "lookup_server: {link}: {} lookups answered, {} dropped, {} too late",
                n.answered, n.dropped, n.late
            );
            ExitCode::SUCCESS
        }
        Ok(n) => {
            eprintln!(
                "lookup_server: {link}: no lookup answered in {seconds} s ({} dropped, {} too late): is traffic sent to unknown MACs on {link}?",
                n.dropped, n.late
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lookup_server: {link}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the server did with the requests it took.
#[derive(Default)]
struct Counts {
    answered: u64,
    dropped: u64,
    late: u64,
}

/// Whether the daemon refused an answer because its request is no longer
/// held: it timed out and was re-queued, or its device stopped.
fn is_late(e: &ClientError) -> bool {
    matches!(e, ClientError::Netlink { errno, message: Some(m), .. }
        if *errno == libc::EINVAL && m.starts_with("no request"))
}

/// Associates `link`, then answers its lookups until `time` has passed.
fn serve(
    socket: &str,
    link: &str,
    ip: IpAddr,
    port: u16,
    time: Duration,
) -> Result<Counts, String> {
    let mut c = nlproto::client::Client::connect(socket)
        .map_err(|e| format!("cannot connect to {socket}: {e}"))?;
    c.write(
        tg::NAME,
        tg::CMD_ASSOCIATE,
        vec![Attr::str(tg::ATTR_NAME, link)],
    )
    .map_err(|e| format!("ASSOCIATE: {e}"))?;
    let dest = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
    .octets()
    .to_vec();
    let end = Instant::now() + time;
    let mut n = Counts::default();
    while Instant::now() < end {
        let req = match c.transact(
            tg::NAME,
            tg::CMD_LOOKUP,
            vec![Attr::u32(tg::ATTR_TIMEOUT_MS, 200)],
        ) {
            Ok(m) => m,
            Err(ClientError::Netlink { errno, .. }) if errno == libc::ETIME => continue,
            Err(e) => return Err(format!("LOOKUP: {e}")),
        };
        let id = req
            .attrs
            .get_u64(tg::ATTR_REQID)
            .ok_or("LOOKUP: a request without REQID")?;
        let mac = req
            .attrs
            .get_bytes(tg::ATTR_DST_MAC)
            .ok_or("LOOKUP: a request without DST_MAC")?;
        let unicast = mac.first().is_some_and(|b| b & 1 == 0);
        let (what, r) = if unicast {
            let attrs = vec![
                Attr::u64(tg::ATTR_REQID, id),
                Attr::bytes(tg::ATTR_DEST_IP, dest.clone()),
                Attr::u16(tg::ATTR_DEST_PORT, port),
            ];
            ("RESPOND", c.write(tg::NAME, tg::CMD_RESPOND, attrs))
        } else {
            let attrs = vec![Attr::u64(tg::ATTR_REQID, id)];
            ("DROP", c.write(tg::NAME, tg::CMD_DROP, attrs))
        };
        match r {
            Ok(()) if unicast => n.answered += 1,
            Ok(()) => n.dropped += 1,
            Err(e) if is_late(&e) => n.late += 1,
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    Ok(n)
}
