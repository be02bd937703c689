//! `overlayctl show -s -i SECONDS`: per-second rates of every device (or
//! of one), printed every interval until interrupted, as `vmstat 1` or
//! `ip -s` over time.
//!
//! Each interval takes one `STATS` answer (a dump, or one device's
//! transaction) and divides the growth of each counter since the previous
//! one by the time measured between them (not the interval asked for, so
//! that a slow answer does not inflate the rates). The first line comes
//! after the first interval. A device that appears has no rate until its
//! second sample; a counter that went down (the device was deleted and
//! created again) counts from zero. With `-j`, each interval is one JSON
//! object on a line of its own.

use crate::commands::Daemon;
use crate::error::Error;
use crate::model::DeviceStats;
use nlproto::spec::overlay as ov;
use nlproto::Attr;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The columns of the text output.
const COLUMNS: &[&str] = &[
    "LINK", "IPKTS/s", "IBITS/s", "OPKTS/s", "OBITS/s", "DROPS/s",
];

/// What is kept of one device's counters between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Frames delivered to the hosts.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Every `drop_*` counter, summed.
    pub drops: u64,
}

impl Sample {
    fn of(s: &DeviceStats) -> Sample {
        let get = |name: &str| {
            s.counters
                .0
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| *v)
        };
        Sample {
            rx_packets: get("rx_packets"),
            rx_bytes: get("rx_bytes"),
            tx_packets: get("tx_packets"),
            tx_bytes: get("tx_bytes"),
            drops: s
                .counters
                .0
                .iter()
                .filter(|(n, _)| n.starts_with("drop_"))
                .map(|(_, v)| *v)
                .sum(),
        }
    }
}

/// One device's rates over an interval, per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    /// The device.
    pub link: String,
    /// Frames delivered to the hosts per second.
    pub rx_pps: f64,
    /// Bits delivered per second.
    pub rx_bps: f64,
    /// Frames sent per second.
    pub tx_pps: f64,
    /// Bits sent per second.
    pub tx_bps: f64,
    /// Drops per second.
    pub drops_ps: f64,
}

/// The rates between two samples `secs` apart; a counter that went down
/// counts from zero.
pub fn rates(link: &str, before: &Sample, after: &Sample, secs: f64) -> Rates {
    let d = |a: u64, b: u64| if b >= a { (b - a) as f64 } else { b as f64 };
    let per = |a, b| d(a, b) / secs;
    Rates {
        link: link.to_string(),
        rx_pps: per(before.rx_packets, after.rx_packets),
        rx_bps: per(before.rx_bytes, after.rx_bytes) * 8.0,
        tx_pps: per(before.tx_packets, after.tx_packets),
        tx_bps: per(before.tx_bytes, after.tx_bytes) * 8.0,
        drops_ps: per(before.drops, after.drops),
    }
}

/// A rate as the text shows it: whole numbers, with k, M, G above 10,000.
pub fn human(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.1}k", v / 1e3)
    } else if v < 10_000_000_000.0 {
        format!("{:.1}M", v / 1e6)
    } else {
        format!("{:.1}G", v / 1e9)
    }
}

/// The text of one interval: a header and a row per device, aligned.
pub fn text(rows: &[Rates]) -> String {
    let mut t = crate::table::Table::new(COLUMNS);
    for r in rows {
        t.push(vec![
            r.link.clone(),
            human(r.rx_pps),
            human(r.rx_bps),
            human(r.tx_pps),
            human(r.tx_bps),
            human(r.drops_ps),
        ]);
    }
    t.render()
}

/// The JSON object of one interval.
pub fn json(rows: &[Rates], secs: f64, now: SystemTime) -> String {
    let time = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let devices: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "link": r.link,
                "rx_pps": r.rx_pps,
                "rx_bps": r.rx_bps,
                "tx_pps": r.tx_pps,
                "tx_bps": r.tx_bps,
                "drops_ps": r.drops_ps,
            })
        })
        .collect();
    serde_json::json!({
        "time": (time * 1000.0).round() / 1000.0,
        "interval": (secs * 1000.0).round() / 1000.0,
        "devices": devices,
    })
    .to_string()
}

fn sample(daemon: &mut dyn Daemon, link: Option<&str>) -> Result<Vec<(String, Sample)>, Error> {
    let replies = match link {
        Some(link) => vec![daemon
            .transact(
                ov::NAME,
                ov::CMD_STATS,
                vec![Attr::str(ov::ATTR_NAME, link)],
            )
            .map_err(Error::daemon(format!("show -s {link}")))?],
        None => daemon
            .dump(ov::NAME, ov::CMD_STATS, vec![])
            .map_err(Error::daemon("show -s"))?,
    };
    Ok(replies
        .iter()
        .map(|a| {
            let s = DeviceStats::from_attrs(a);
            (s.name.clone(), Sample::of(&s))
        })
        .collect())
}

/// The interval `-i` asks for, checked: a positive number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.01..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{text:?} is not an interval: give seconds between 0.01 and 86400, e.g. 1 or 0.5"
        )),
    }
}

/// Prints the rates every `interval`, `count` times (for ever when
/// `None`), writing each interval to `out` as soon as it is known.
pub fn run(
    daemon: &mut dyn Daemon,
    link: Option<&str>,
    interval: Duration,
    count: Option<u64>,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let mut before: HashMap<String, Sample> = sample(daemon, link)?.into_iter().collect();
    let mut at = Instant::now();
    let mut next = at + interval;
    let mut printed = 0u64;
    while count.is_none_or(|c| printed < c) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += interval;
        let now = Instant::now();
        let samples = sample(daemon, link)?;
        let secs = now.duration_since(at).as_secs_f64().max(1e-6);
        let rows: Vec<Rates> = samples
            .iter()
            .filter_map(|(name, s)| before.get(name).map(|b| rates(name, b, s, secs)))
            .collect();
        let body = if as_json {
            format!("{}\n", json(&rows, secs, SystemTime::now()))
        } else {
            text(&rows)
        };
        let written = out.write_all(body.as_bytes()).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            // A reader that went away (`| head`) ends the watch.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => {
                return Err(Error::local(format!(
                    "write output: {}",
                    crate::error::io_text(&e)
                )))
            }
        }
        before = samples.into_iter().collect();
        at = now;
        printed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(rx: u64, rxb: u64, tx: u64, txb: u64, drops: u64) -> Sample {
        Sample {
            rx_packets: rx,
            rx_bytes: rxb,
            tx_packets: tx,
            tx_bytes: txb,
            drops,
        }
    }

    #[test]
    fn rates_per_second_from_the_measured_time() {
        let r = rates(
            "ov0",
            &s(10, 1000, 0, 0, 1),
            &s(30, 3000, 50, 75_000, 3),
            2.0,
        );
        assert_eq!(
            (r.rx_pps, r.rx_bps, r.tx_pps, r.tx_bps, r.drops_ps),
            (10.0, 8000.0, 25.0, 300_000.0, 1.0)
        );
    }

    #[test]
    fn a_counter_that_went_down_counts_from_zero() {
        let r = rates("ov0", &s(100, 0, 0, 0, 0), &s(5, 0, 0, 0, 0), 1.0);
        assert_eq!(r.rx_pps, 5.0);
    }

    #[test]
    fn text_and_json_of_an_interval() {
        let rows = [rates(
            "ov0",
            &s(0, 0, 0, 0, 0),
            &s(2, 250, 20_000, 1_500_000_000, 0),
            1.0,
        )];
        assert_eq!(
            text(&rows),
            "LINK  IPKTS/s  IBITS/s  OPKTS/s  OBITS/s  DROPS/s\nov0   2        2000     20.0k    12.0G    0\n"
        );
        let v: serde_json::Value =
            serde_json::from_str(&json(&rows, 1.0, UNIX_EPOCH + Duration::from_secs(5))).unwrap();
        assert_eq!(v["time"], 5.0);
        assert_eq!(v["interval"], 1.0);
        assert_eq!(v["devices"][0]["link"], "ov0");
        assert_eq!(v["devices"][0]["tx_bps"], 12e9);
        assert_eq!(v["devices"][0]["rx_pps"], 2.0);
    }

    #[test]
    fn intervals_must_be_positive_seconds() {
        assert_eq!(parse_interval("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        for bad in ["0", "-1", "x", "inf", "NaN", "100000"] {
            assert!(
                parse_interval(bad).unwrap_err().contains("not an interval"),
                "{bad}"
            );
        }
    }
}
