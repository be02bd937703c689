//! The Prometheus endpoint: `overlayd --metrics ADDR:PORT` serves
//! `GET /metrics`, encoded by the `prometheus-client` crate: in the
//! OpenMetrics text format to a client that accepts it (Prometheus asks
//! for it first), else in the Prometheus text format 0.0.4 (curl,
//! `promtool check metrics`, older scrapers).
//!
//! # Where the figures come from
//!
//! The metrics thread is a client of the daemon's own control socket, like
//! `overlayctl`: at each scrape it sends, over one connection it keeps
//! (and opens again after an error), the read-only requests any client may
//! send: `SERVER_STATS` (overlay_handle), `LIST` and `STATS` dumps
//! (overlay) and `LOOKUP_STATS` (overlay_target). It turns the answers
//! into constant metrics for that scrape ([`Snapshot`], a
//! `prometheus_client` collector). Nothing but the socket is shared with
//! the control thread: no lock of the registry is taken from this thread,
//! and the figures are exactly what any client sees, with the protocol's
//! consistency (a dump's parts produced after a change say so).
//!
//! The cost falls on the control thread, which answers a scrape as it
//! answers `overlayctl show -s`: two paced dumps of the device table (about
//! 1 KiB of STATS per device) and two transactions. The metrics handle is
//! counted in `overlayd_control_handles`, and its requests in
//! `overlayd_control_requests_total`, as any client's are. Between scrapes
//! it costs nothing. docs/performance.md has the measured scrape time.
//!
//! An unanswered scrape (the control loop stopped, a request failed) is
//! answered `503 Service Unavailable` with the reason, so that Prometheus
//! records the target as down rather than stale figures.

use nlproto::client::Client;
use nlproto::spec::{handle, overlay as ov, target as tg};
use nlproto::{Attr, AttrValue, AttrsExt};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::{
    collections::{BTreeMap, HashSet},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    time::Duration,
};

/// The media type of an OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The two formats served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (counter samples end in `_total`, `# EOF` last).
    OpenMetrics,
    /// The Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// it, the Prometheus text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// How long a scrape waits for each answer of the control loop.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("--metrics {addr}: cannot listen: {source}; choose a free address and port")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// The endpoint, bound and not serving yet.
pub struct Endpoint {
    listener: TcpListener,
}

impl Endpoint {
    /// Binds the TCP listener, so that a bad address stops the daemon
    /// before it serves anything.
    pub fn bind(addr: SocketAddr) -> Result<Endpoint, BindError> {
        TcpListener::bind(addr)
            .map(|listener| Endpoint { listener })
            .map_err(|source| BindError { addr, source })
    }

    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes on a thread of its own, asking the daemon at the
    /// control socket `socket`, until the process exits.
    pub fn serve(self, socket: PathBuf) -> std::io::Result<()> {
        let server = tiny_http::Server::from_listener(self.listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let mut source = Source {
                    socket,
                    client: None,
                };
                for req in server.incoming_requests() {
                    let accept = req
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Accept"))
                        .map(|h| h.value.as_str().to_string());
                    let format = Format::negotiate(accept.as_deref());
                    let response = answer(&mut source, req.method(), req.url(), format);
                    let _ = req.respond(response);
                }
            })?;
        Ok(())
    }
}

/// The control socket and the connection kept to it.
struct Source {
    socket: PathBuf,
    client: Option<Client>,
}

impl Source {
    /// A scrape's figures; a failed connection is dropped, to be opened
    /// again by the next scrape.
    fn snapshot(&mut self) -> Result<Snapshot, String> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(
                Client::connect_with(&self.socket, TIMEOUT)
                    .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))?,
            ),
        };
        let r = Snapshot::read(client);
        if r.is_err() {
            self.client = None;
        }
        r
    }
}

type Response = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

fn text(code: u16, body: String) -> Response {
    tiny_http::Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

/// The answer to one HTTP request.
fn answer(source: &mut Source, method: &tiny_http::Method, url: &str, format: Format) -> Response {
    use tiny_http::Method;
    let path = url.split('?').next().unwrap_or("");
    match (method, path) {
        (Method::Get | Method::Head, "/metrics") => match source.snapshot() {
            Ok(snapshot) => match snapshot.encode(format) {
                Ok(body) => tiny_http::Response::from_string(body)
                    .with_header(header("Content-Type", format.content_type())),
                Err(e) => text(500, format!("cannot encode the metrics: {e}\n")),
            },
            Err(e) => {
                tracing::warn!("metrics scrape: {e}");
                text(503, format!("overlayd did not answer: {e}\n"))
            }
        },
        (Method::Get | Method::Head, "/") => {
            text(200, "overlayd: the metrics are at /metrics\n".into())
        }
        (Method::Get | Method::Head, _) => text(404, format!("no {path} here; try /metrics\n")),
        _ => text(405, "only GET and HEAD are answered\n".into()),
    }
    .with_header(header("Server", "overlayd"))
}

/// One metric family: help, type and samples (labels, value).
#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricType,
    samples: Vec<(Vec<(String, String)>, u64)>,
}

/// The figures of one scrape, by metric name (without the `overlayd_`
/// prefix, which the registry adds), as a collector.
#[derive(Debug, Default)]
pub struct Snapshot {
    families: BTreeMap<String, Family>,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Counters of a `STATS`-like list (`STAT` entries of name and value).
fn stat_list(attrs: &[Attr], stat: u16, name: u16, value: u16) -> Vec<(String, u64)> {
    attrs
        .all(stat)
        .filter_map(|a| match &a.value {
            AttrValue::Nested(kv) => Some((kv.get_str(name)?.to_string(), kv.get_u64(value)?)),
            _ => None,
        })
        .collect()
}

/// The help text of a device's or a mux's counter (docs/protocol.md,
/// STATS, has the full meaning of each).
fn counter_help(scope: &str, name: &str) -> String {
    let known = match (scope, name) {
        ("device", "rx_packets") => "frames decapsulated and delivered to the hosts",
        ("device", "rx_bytes") => "bytes of the frames delivered to the hosts",
        ("device", "tx_packets") => "frames from the hosts encapsulated and sent",
        ("device", "tx_bytes") => "bytes of the frames sent (inner frames)",
        ("device", "plugin_panics") => {
            "plugin calls for the device that panicked (each degrades it)"
        }
        ("device", "tx_injected") => "frames injected down the transmit path and sent",
        ("device", "rx_injected") => "frames injected towards the hosts and delivered",
        ("device", "lookup_requests") => "dynamic mode: lookups requested",
        ("device", "lookup_answers") => "dynamic mode: lookups answered with a destination",
        ("device", "lookup_drops") => {
            "dynamic mode: lookups answered by dropping (proxy answers included)"
        }
        ("device", "lookup_replicated") => "dynamic mode: frames replicated to every destination",
        ("device", "lookup_proxied") => {
            "dynamic mode: proxy answers (ARP, NDP) delivered to the hosts"
        }
        ("device", "lookup_timeouts") => {
            "dynamic mode: lookups not answered in time and asked again"
        }
        ("device", "lookup_errors") => {
            "dynamic mode: lookups that failed or gave an unusable answer"
        }
        ("mux", "rx_packets") => "underlay packets received, per underlay endpoint",
        ("mux", "rx_bytes") => "bytes of the underlay packets received (UDP payload)",
        ("mux", "tx_packets") => "underlay packets sent, per underlay endpoint",
        ("mux", "tx_bytes") => "bytes of the underlay packets sent (UDP payload)",
        ("mux", "plugin_panics") => {
            "decap calls that panicked (every device of the mux is degraded)"
        }
        _ => "",
    };
    if known.is_empty() {
        format!("the {scope} counter {name} of STATS (docs/protocol.md)")
    } else {
        known.to_string()
    }
}

impl Snapshot {
    fn add(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: Vec<(String, String)>,
        value: u64,
    ) {
        self.families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                help: help.to_string(),
                kind,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }

    /// A device's or a mux's counters: `drop_*` as one family with the
    /// reason as a label, the others one family each.
    fn counters(&mut self, scope: &str, key: (&str, &str), list: Vec<(String, u64)>) {
        for (name, value) in list {
            if let Some(reason) = name.strip_prefix("drop_") {
                self.add(
                    &format!("{scope}_drops"),
                    &format!("frames or packets dropped, per {scope} and reason (the drop_* counters of STATS)"),
                    MetricType::Counter,
                    labels(&[key, ("reason", reason)]),
                    value,
                );
            } else {
                self.add(
                    &format!("{scope}_{name}"),
                    &counter_help(scope, &name),
                    MetricType::Counter,
                    labels(&[key]),
                    value,
                );
            }
        }
    }

    /// Asks the daemon for one scrape's figures.
    pub fn read(c: &mut Client) -> Result<Snapshot, String> {
        let mut s = Snapshot::default();
        let server = c
            .transact(handle::NAME, handle::CMD_SERVER_STATS, vec![])
            .map_err(|e| format!("SERVER_STATS: {e}"))?;
        s.add(
            "control_handles",
            "control-socket connections open now (this scrape's included)",
            MetricType::Gauge,
            vec![],
            server
                .attrs
                .get_u32(handle::HANDLE_ATTR_HANDLES)
                .unwrap_or(0)
                .into(),
        );
        let list = server
            .attrs
            .get_nested(handle::HANDLE_ATTR_STATS)
            .unwrap_or_default();
        for (name, value) in stat_list(
            list,
            handle::HANDLE_ATTR_STAT,
            handle::HANDLE_ATTR_STAT_NAME,
            handle::HANDLE_ATTR_STAT_VALUE,
        ) {
            let help = match name.as_str() {
                "connections" => "control-socket connections accepted",
                "requests" => "control requests received",
                "errors" => "control requests answered with an error",
                "notifications_dropped" => {
                    "notifications dropped for handles that did not read them"
                }
                _ => "a counter of the control server's SERVER_STATS",
            };
            s.add(
                &format!("control_{name}"),
                help,
                MetricType::Counter,
                vec![],
                value,
            );
        }

        for d in c
            .dump(ov::NAME, ov::CMD_LIST, vec![])
            .map_err(|e| format!("LIST: {e}"))?
        {
            let a = &d.attrs;
            let link = a.get_str(ov::ATTR_NAME).unwrap_or_default();
            s.add(
                "device_info",
                "one per device: its encapsulation, lookup plugin and virtual network id",
                MetricType::Gauge,
                labels(&[
                    ("link", link),
                    ("encap", a.get_str(ov::ATTR_ENCAP).unwrap_or_default()),
                    ("search", a.get_str(ov::ATTR_SEARCH).unwrap_or_default()),
                    (
                        "vnetid",
                        &a.get_u64(ov::ATTR_VNETID).unwrap_or(0).to_string(),
                    ),
                ]),
                1,
            );
            s.add(
                "device_active",
                "1 when the device is active (its packet path running), 0 when only created",
                MetricType::Gauge,
                labels(&[("link", link)]),
                u64::from(a.get_u32(ov::ATTR_STATE) == Some(ov::STATE_ACTIVE)),
            );
            s.add(
                "device_degraded",
                "1 when the device is degraded (overlayctl show -f says why)",
                MetricType::Gauge,
                labels(&[("link", link)]),
                u64::from(a.get_u32(ov::ATTR_STATUS) == Some(ov::STATUS_DEGRADED)),
            );
        }

        let mut muxes = HashSet::new();
        for d in c
            .dump(ov::NAME, ov::CMD_STATS, vec![])
            .map_err(|e| format!("STATS: {e}"))?
        {
            let a = &d.attrs;
            let link = a.get_str(ov::ATTR_NAME).unwrap_or_default().to_string();
            let list = a.get_nested(ov::ATTR_STATS).unwrap_or_default();
            s.counters(
                "device",
                ("link", &link),
                stat_list(list, ov::ATTR_STAT, ov::ATTR_STAT_NAME, ov::ATTR_STAT_VALUE),
            );
            if let Some(n) = a.get_u64(ov::ATTR_CACHE_ENTRIES) {
                s.add(
                    "device_cache_entries",
                    "entries of an active dynamic-mode device's target cache (pending ones included)",
                    MetricType::Gauge,
                    labels(&[("link", &link)]),
                    n,
                );
            }
            // Devices sharing a mux report the same one: once is enough.
            if let Some(m) = a.get_nested(ov::ATTR_MUX) {
                let endpoint = m.get_str(ov::ATTR_MUX_ENDPOINT).unwrap_or_default();
                if muxes.insert(endpoint.to_string()) {
                    let list = m.get_nested(ov::ATTR_STATS).unwrap_or_default();
                    s.counters(
                        "mux",
                        ("endpoint", endpoint),
                        stat_list(list, ov::ATTR_STAT, ov::ATTR_STAT_NAME, ov::ATTR_STAT_VALUE),
                    );
                }
            }
        }

        let lookups = c
            .transact(tg::NAME, tg::CMD_LOOKUP_STATS, vec![])
            .map_err(|e| format!("LOOKUP_STATS: {e}"))?;
        s.add(
            "lookup_pending",
            "lookup requests waiting to be taken now",
            MetricType::Gauge,
            vec![],
            lookups.attrs.get_u32(tg::ATTR_PENDING).unwrap_or(0).into(),
        );
        let list = lookups.attrs.get_nested(tg::ATTR_STATS).unwrap_or_default();
        for (name, value) in stat_list(list, tg::ATTR_STAT, tg::ATTR_STAT_NAME, tg::ATTR_STAT_VALUE)
        {
            let help = match name.as_str() {
                "requests" => "lookup requests raised by dynamic-mode devices",
                "answers" => "lookup answers applied (from plugins and external servers)",
                "timeouts" => "lookups not answered in time and asked again",
                "late" => "answers of lookup plugins that came too late",
                _ => "a counter of the lookup service's LOOKUP_STATS",
            };
            s.add(
                &format!("lookup_{name}"),
                help,
                MetricType::Counter,
                vec![],
                value,
            );
        }
        Ok(s)
    }

    /// The snapshot as text in `format`.
    pub fn encode(self, format: Format) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("overlayd");
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?
            }
        }
        Ok(out)
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, f) in &self.families {
            let mut metric = encoder.encode_descriptor(name, &f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                let sample = metric.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
                    _ => {
                        ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The socket path as the metrics thread will connect to it: relative
/// paths are made absolute now, in case the working directory changes.
pub fn socket_path(socket: &Path) -> PathBuf {
    std::path::absolute(socket).unwrap_or_else(|_| socket.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_become_one_family_with_the_reason() {
        let mut s = Snapshot::default();
        s.counters(
            "device",
            ("link", "ov0"),
            vec![
                ("rx_packets".into(), 5),
                ("drop_mtu".into(), 2),
                ("drop_send".into(), 1),
                ("lookup_requests".into(), 7),
            ],
        );
        let text = s.encode(Format::OpenMetrics).unwrap();
        assert!(
            text.contains("# TYPE overlayd_device_drops counter\n"),
            "{text}"
        );
        assert!(
            text.contains("overlayd_device_drops_total{link=\"ov0\",reason=\"mtu\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("overlayd_device_drops_total{link=\"ov0\",reason=\"send\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("overlayd_device_rx_packets_total{link=\"ov0\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("overlayd_device_lookup_requests_total{link=\"ov0\"} 7\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn the_prometheus_format_names_counters_with_total_throughout() {
        let mut s = Snapshot::default();
        s.counters(
            "mux",
            ("endpoint", "udp 10.0.0.1:4789"),
            vec![("drop_short".into(), 3)],
        );
        let text = s.encode(Format::Prometheus).unwrap();
        assert!(
            text.contains("# TYPE overlayd_mux_drops_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "overlayd_mux_drops_total{endpoint=\"udp 10.0.0.1:4789\",reason=\"short\"} 3\n"
            ),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    }

    #[test]
    fn gauges_and_label_values_are_encoded_as_given() {
        let mut s = Snapshot::default();
        s.add(
            "device_info",
            "info",
            MetricType::Gauge,
            labels(&[("link", "a\"b"), ("vnetid", "42")]),
            1,
        );
        let text = s.encode(Format::OpenMetrics).unwrap();
        assert!(
            text.contains("# TYPE overlayd_device_info gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("overlayd_device_info{link=\"a\\\"b\",vnetid=\"42\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_taken_address_is_refused_with_its_name() {
        let first = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let e = Endpoint::bind(addr).err().expect("second bind fails");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("--metrics {addr}: cannot listen: ")),
            "{text}"
        );
    }
}
